//! The CPU f32 layers of a Qwen2 / Llama decoder, each `forward` with its `backward` beside it.
//!
//! Shapes are row-major; `t` is the number of positions of one sequence. Backward functions
//! *accumulate* (`+=`) into parameter gradients and into input gradients, the llm.c way, so a
//! residual stream's gradient can flow into one buffer from two branches. Matrix products go
//! through the `gemm` crate on rayon's threads; the rest is split over heads or rows with rayon.

use rayon::prelude::*;

fn axpy(y: &mut [f32], a: f32, x: &[f32]) {
    for (y, x) in y.iter_mut().zip(x) {
        *y += a * x;
    }
}

// ---------------------------------------------------------------------------------------------
// Embedding

/// `out[t] = table[tokens[t]]`.
pub fn embedding_forward(out: &mut [f32], tokens: &[u32], table: &[f32], c: usize) {
    for (row, &tok) in out.chunks_mut(c).zip(tokens) {
        let tok = tok as usize;
        row.copy_from_slice(&table[tok * c..(tok + 1) * c]);
    }
}

/// `dtable[tokens[t]] += dout[t]`.
pub fn embedding_backward(dtable: &mut [f32], dout: &[f32], tokens: &[u32], c: usize) {
    for (row, &tok) in dout.chunks(c).zip(tokens) {
        let tok = tok as usize;
        axpy(&mut dtable[tok * c..(tok + 1) * c], 1.0, row);
    }
}

// ---------------------------------------------------------------------------------------------
// Matrix products through the `gemm` crate: SIMD kernels picked at run time for the CPU in hand
// (no `target-cpu=native`, so the binary runs anywhere) and rayon's threads.

/// Products below this many multiply-adds run on the calling thread: threading costs more.
const GEMM_PAR_MIN_WORK: usize = 1 << 17;

/// A matrix operand in a row-major buffer; a transpose is the same buffer with strides swapped.
#[derive(Clone, Copy)]
pub struct Mat<'a> {
    data: &'a [f32],
    rows: usize,
    cols: usize,
    row_stride: isize,
    col_stride: isize,
}

impl<'a> Mat<'a> {
    /// `data` as a `rows × cols` row-major matrix.
    pub fn rows(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "matrix buffer does not match its shape"
        );
        Self {
            data,
            rows,
            cols,
            row_stride: cols as isize,
            col_stride: 1,
        }
    }

    /// A `rows × cols` view of `data` with element `(i, j)` at `i · row_stride + j · col_stride`:
    /// one head's slice of a `[t, heads · hd]` buffer, or its transpose.
    pub fn strided(
        data: &'a [f32],
        (rows, cols): (usize, usize),
        (row_stride, col_stride): (usize, usize),
    ) -> Self {
        let last = (rows.max(1) - 1) * row_stride + (cols.max(1) - 1) * col_stride;
        assert!(
            rows == 0 || cols == 0 || last < data.len(),
            "strided view reaches past its buffer"
        );
        Self {
            data,
            rows,
            cols,
            row_stride: row_stride as isize,
            col_stride: col_stride as isize,
        }
    }

    /// The transpose of `data` read as a `cols × rows` row-major matrix: a `rows × cols` view.
    pub fn transposed(data: &'a [f32], rows: usize, cols: usize) -> Self {
        assert_eq!(
            data.len(),
            rows * cols,
            "matrix buffer does not match its shape"
        );
        Self {
            data,
            rows,
            cols,
            row_stride: 1,
            col_stride: rows as isize,
        }
    }
}

/// `dst = scale · lhs · rhs`, or `dst += scale · lhs · rhs` when `accumulate`; `dst` is row-major
/// `lhs.rows × rhs.cols`.
pub fn gemm(dst: &mut [f32], lhs: Mat<'_>, rhs: Mat<'_>, scale: f32, accumulate: bool) {
    let (m, k, n) = (lhs.rows, lhs.cols, rhs.cols);
    assert_eq!(rhs.rows, k, "inner dimensions differ");
    assert_eq!(
        dst.len(),
        m * n,
        "output buffer does not match the product's shape"
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            dst.fill(0.0);
        }
        return;
    }
    let parallelism = if m * n * k < GEMM_PAR_MIN_WORK {
        gemm::Parallelism::None
    } else {
        gemm::Parallelism::Rayon(rayon::current_num_threads())
    };
    // SAFETY: every operand's shape was checked against its buffer's length above (`Mat`'s
    // constructors and the asserts), and the strides address exactly those buffers.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            dst.as_mut_ptr(),
            1,
            n as isize,
            accumulate,
            lhs.data.as_ptr(),
            lhs.col_stride,
            lhs.row_stride,
            rhs.data.as_ptr(),
            rhs.col_stride,
            rhs.row_stride,
            1.0,
            scale,
            false,
            false,
            false,
            parallelism,
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Linear: out = inp · Wᵀ + b, W is [oc, c] as Hugging Face stores it.

/// `out[t, o] = Σ_i inp[t, i] · w[o, i] + bias[o]`.
pub fn matmul_forward(
    out: &mut [f32],
    inp: &[f32],
    w: &[f32],
    bias: Option<&[f32]>,
    c: usize,
    oc: usize,
) {
    let t = inp.len() / c;
    if let Some(b) = bias {
        out.chunks_mut(oc).for_each(|row| row.copy_from_slice(b));
    }
    gemm(
        out,
        Mat::rows(inp, t, c),
        Mat::transposed(w, c, oc),
        1.0,
        bias.is_some(),
    );
}

/// Where a linear layer's parameter gradients accumulate, when they are wanted.
pub struct WeightGrads<'a> {
    /// Accumulates `doutᵀ · inp`, shaped like the weight (`oc × c`).
    pub w: &'a mut [f32],
    /// Accumulates `Σ_t dout`, for a layer with a bias.
    pub bias: Option<&'a mut [f32]>,
}

/// Accumulates `dinp += dout · W`, and, when `grads` asks, the weight's and bias's gradients.
pub fn matmul_backward(
    dinp: &mut [f32],
    grads: Option<WeightGrads<'_>>,
    dout: &[f32],
    inp: &[f32],
    w: &[f32],
    c: usize,
    oc: usize,
) {
    let t = dout.len() / oc;
    gemm(dinp, Mat::rows(dout, t, oc), Mat::rows(w, oc, c), 1.0, true);
    let Some(WeightGrads { w: dw, bias: dbias }) = grads else {
        return;
    };
    gemm(
        dw,
        Mat::transposed(dout, oc, t),
        Mat::rows(inp, t, c),
        1.0,
        true,
    );
    if let Some(db) = dbias {
        for row in dout.chunks(oc) {
            axpy(db, 1.0, row);
        }
    }
}

// ---------------------------------------------------------------------------------------------
// RMSNorm: out = x / sqrt(mean(x²) + eps) · weight

/// Normalises each row of `inp`; keeps `rstd[t]` for the backward pass.
pub fn rmsnorm_forward(
    out: &mut [f32],
    rstd: &mut [f32],
    inp: &[f32],
    weight: &[f32],
    c: usize,
    eps: f32,
) {
    for ((orow, x), r) in out.chunks_mut(c).zip(inp.chunks(c)).zip(rstd.iter_mut()) {
        let ms = x.iter().map(|v| v * v).sum::<f32>() / c as f32;
        *r = 1.0 / (ms + eps).sqrt();
        for ((o, &xi), &wi) in orow.iter_mut().zip(x).zip(weight) {
            *o = xi * *r * wi;
        }
    }
}

/// Accumulates into `dinp` and `dweight`.
pub fn rmsnorm_backward(
    dinp: &mut [f32],
    dweight: Option<&mut [f32]>,
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    rstd: &[f32],
    c: usize,
) {
    for (((di, g), x), &r) in dinp
        .chunks_mut(c)
        .zip(dout.chunks(c))
        .zip(inp.chunks(c))
        .zip(rstd)
    {
        // y_i = x_i r w_i, r = (mean x² + eps)^-½ ⇒ dx_i = r (g_i w_i) - r³ x_i mean_j(g_j w_j x_j)
        let gwx = g
            .iter()
            .zip(weight)
            .zip(x)
            .map(|((g, w), x)| g * w * x)
            .sum::<f32>()
            / c as f32;
        for (((d, &gi), &wi), &xi) in di.iter_mut().zip(g).zip(weight).zip(x) {
            *d += r * gi * wi - r * r * r * xi * gwx;
        }
    }
    if let Some(dw) = dweight {
        for ((g, x), &r) in dout.chunks(c).zip(inp.chunks(c)).zip(rstd) {
            for ((d, &gi), &xi) in dw.iter_mut().zip(g).zip(x) {
                *d += gi * xi * r;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Rotary position embedding, Hugging Face's rotate_half layout: dimension i pairs with i + hd/2.

/// Rotates every head of `x` ([t, heads · hd]) in place; `positions[t]` is the absolute position.
pub fn rope_forward(x: &mut [f32], positions: &[usize], inv_freq: &[f32], heads: usize, hd: usize) {
    rope_rotate(x, positions, inv_freq, heads, hd, 1.0);
}

/// The rotation is orthogonal, so its gradient is the inverse rotation applied to `dx` in place.
pub fn rope_backward(
    dx: &mut [f32],
    positions: &[usize],
    inv_freq: &[f32],
    heads: usize,
    hd: usize,
) {
    rope_rotate(dx, positions, inv_freq, heads, hd, -1.0);
}

fn rope_rotate(
    x: &mut [f32],
    positions: &[usize],
    inv_freq: &[f32],
    heads: usize,
    hd: usize,
    sign: f32,
) {
    let half = hd / 2;
    for (row, &pos) in x.chunks_mut(heads * hd).zip(positions) {
        for (i, &f) in inv_freq.iter().enumerate() {
            let angle = pos as f32 * f;
            let (sin, cos) = (
                (angle as f64).sin() as f32 * sign,
                (angle as f64).cos() as f32,
            );
            for h in 0..heads {
                let head = &mut row[h * hd..(h + 1) * hd];
                let (a, b) = (head[i], head[i + half]);
                head[i] = a * cos - b * sin;
                head[i + half] = b * cos + a * sin;
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Causal grouped-query attention over one sequence.

/// Shapes of one attention call.
#[derive(Clone, Copy, Debug)]
pub struct AttnShape {
    /// Query heads.
    pub nh: usize,
    /// Key/value heads (divides `nh`).
    pub nkv: usize,
    /// Head dimension.
    pub hd: usize,
}

/// `out[t, h] = Σ_{u ≤ past + t} softmax_u(q[t,h]·k[u,g] / √hd) v[u,g]` with `g = h / (nh/nkv)`.
///
/// `q` holds `t` new positions; `k`, `v` hold `past + t` positions (a KV cache plus the new ones).
/// `att` ([nh, t, past + t]) keeps the probabilities for the backward pass. Per head, the scores
/// are one matrix product `Q Kᵀ` and the output another, `P V`.
pub fn attention_forward(
    out: &mut [f32],
    att: &mut [f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    s: AttnShape,
) {
    let AttnShape { nh, nkv, hd } = s;
    let t_new = q.len() / (nh * hd);
    let t_all = k.len() / (nkv * hd);
    let past = t_all - t_new;
    let scale = 1.0 / (hd as f32).sqrt();
    let group = nh / nkv;
    // Parallel over heads: each head writes its own slice of `att`; `out` is gathered after.
    let per_head: Vec<Vec<f32>> = att
        .par_chunks_mut(t_new * t_all)
        .enumerate()
        .map(|(h, att_h)| {
            let g = h / group;
            let q_h = Mat::strided(&q[h * hd..], (t_new, hd), (nh * hd, 1));
            let k_t = Mat::strided(&k[g * hd..], (hd, t_all), (1, nkv * hd));
            gemm(att_h, q_h, k_t, scale, false);
            for (t, prow) in att_h.chunks_mut(t_all).enumerate() {
                let last = past + t;
                let max = prow[..=last]
                    .iter()
                    .fold(f32::NEG_INFINITY, |m, &x| m.max(x));
                let mut sum = 0.0;
                for p in prow[..=last].iter_mut() {
                    *p = (*p - max).exp();
                    sum += *p;
                }
                for p in prow[..=last].iter_mut() {
                    *p /= sum;
                }
                prow[last + 1..].fill(0.0);
            }
            let mut o = vec![0.0f32; t_new * hd];
            let v_g = Mat::strided(&v[g * hd..], (t_all, hd), (nkv * hd, 1));
            gemm(&mut o, Mat::rows(att_h, t_new, t_all), v_g, 1.0, false);
            o
        })
        .collect();
    for (h, o) in per_head.iter().enumerate() {
        for t in 0..t_new {
            out[(t * nh + h) * hd..(t * nh + h + 1) * hd].copy_from_slice(&o[t * hd..(t + 1) * hd]);
        }
    }
}

/// The query, key and value projections an attention forward read.
#[derive(Clone, Copy)]
pub struct Qkv<'a> {
    /// Queries, `t × nh × hd`.
    pub q: &'a [f32],
    /// Keys, `t × nkv × hd`.
    pub k: &'a [f32],
    /// Values, `t × nkv × hd`.
    pub v: &'a [f32],
}

/// Accumulates `dq`, `dk`, `dv` for a full (no cache) causal forward that read `qkv`.
pub fn attention_backward(
    dq: &mut [f32],
    dk: &mut [f32],
    dv: &mut [f32],
    dout: &[f32],
    att: &[f32],
    qkv: Qkv<'_>,
    s: AttnShape,
) {
    let Qkv { q, k, v } = qkv;
    let AttnShape { nh, nkv, hd } = s;
    let t_len = q.len() / (nh * hd);
    let scale = 1.0 / (hd as f32).sqrt();
    let group = nh / nkv;
    // The heads of one key/value group share its dk and dv, so groups run in parallel, each into
    // its own buffers ([head of group, t, hd] and [t, hd]), added into the outputs after, in order.
    // Per head: dP = dO Vᵀ, dS = P ∘ (dP − rowsum(P ∘ dP)) / √hd, dQ = dS K, dK += dSᵀ Q, dV += Pᵀ dO.
    let parts: Vec<(Vec<f32>, Vec<f32>, Vec<f32>)> = (0..nkv)
        .into_par_iter()
        .map(|g| {
            let (mut dq_g, mut dk_g, mut dv_g) = (
                vec![0.0f32; group * t_len * hd],
                vec![0.0f32; t_len * hd],
                vec![0.0f32; t_len * hd],
            );
            let k_g = Mat::strided(&k[g * hd..], (t_len, hd), (nkv * hd, 1));
            let v_t = Mat::strided(&v[g * hd..], (hd, t_len), (1, nkv * hd));
            let mut ds = vec![0.0f32; t_len * t_len];
            for hh in 0..group {
                let h = g * group + hh;
                let p = &att[h * t_len * t_len..(h + 1) * t_len * t_len];
                let do_h = Mat::strided(&dout[h * hd..], (t_len, hd), (nh * hd, 1));
                let q_h = Mat::strided(&q[h * hd..], (t_len, hd), (nh * hd, 1));
                gemm(&mut ds, do_h, v_t, 1.0, false);
                for (drow, prow) in ds.chunks_mut(t_len).zip(p.chunks(t_len)) {
                    let pdp: f32 = drow.iter().zip(prow).map(|(d, p)| d * p).sum();
                    for (d, &p) in drow.iter_mut().zip(prow) {
                        *d = p * (*d - pdp) * scale;
                    }
                }
                let dq_h = &mut dq_g[hh * t_len * hd..(hh + 1) * t_len * hd];
                gemm(dq_h, Mat::rows(&ds, t_len, t_len), k_g, 1.0, false);
                gemm(
                    &mut dk_g,
                    Mat::transposed(&ds, t_len, t_len),
                    q_h,
                    1.0,
                    true,
                );
                gemm(&mut dv_g, Mat::transposed(p, t_len, t_len), do_h, 1.0, true);
            }
            (dq_g, dk_g, dv_g)
        })
        .collect();
    for (g, (dq_g, dk_g, dv_g)) in parts.iter().enumerate() {
        for t in 0..t_len {
            let kv = (t * nkv + g) * hd;
            axpy(&mut dk[kv..kv + hd], 1.0, &dk_g[t * hd..(t + 1) * hd]);
            axpy(&mut dv[kv..kv + hd], 1.0, &dv_g[t * hd..(t + 1) * hd]);
            for hh in 0..group {
                let qoff = (t * nh + g * group + hh) * hd;
                let src = (hh * t_len + t) * hd;
                axpy(&mut dq[qoff..qoff + hd], 1.0, &dq_g[src..src + hd]);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// SwiGLU: out = silu(gate) · up

fn sigmoid(x: f32) -> f32 {
    1.0 / (1.0 + (-x).exp())
}

/// `out = gate · σ(gate) · up`.
pub fn swiglu_forward(out: &mut [f32], gate: &[f32], up: &[f32]) {
    for ((o, &g), &u) in out.iter_mut().zip(gate).zip(up) {
        *o = g * sigmoid(g) * u;
    }
}

/// Accumulates `dgate` and `dup`.
pub fn swiglu_backward(dgate: &mut [f32], dup: &mut [f32], dout: &[f32], gate: &[f32], up: &[f32]) {
    for i in 0..dout.len() {
        let (g, s) = (gate[i], sigmoid(gate[i]));
        let silu = g * s;
        dup[i] += dout[i] * silu;
        dgate[i] += dout[i] * up[i] * (s + g * s * (1.0 - s));
    }
}

// ---------------------------------------------------------------------------------------------
// Token log-probabilities and entropy from logits (the lm head's output).

/// `log softmax(logits / temperature)[target]` and the entropy of that distribution, per row.
pub fn token_logprob_forward(
    logits: &[f32],
    targets: &[u32],
    temperature: f32,
    v: usize,
) -> (Vec<f32>, Vec<f32>) {
    logits
        .chunks(v)
        .zip(targets)
        .map(|(row, &tgt)| {
            let (lse, probs) = scaled_softmax(row, temperature);
            let entropy = -probs
                .iter()
                .zip(row)
                .map(|(p, &z)| p * (z / temperature - lse))
                .sum::<f32>();
            (row[tgt as usize] / temperature - lse, entropy)
        })
        .unzip()
}

/// Accumulates `dlogits` for upstream gradients `dlogp` on the gathered log-probs.
pub fn token_logprob_backward(
    dlogits: &mut [f32],
    dlogp: &[f32],
    logits: &[f32],
    targets: &[u32],
    temperature: f32,
    v: usize,
) {
    for (((d, row), &tgt), &g) in dlogits
        .chunks_mut(v)
        .zip(logits.chunks(v))
        .zip(targets)
        .zip(dlogp)
    {
        if g == 0.0 {
            continue;
        }
        let (_, probs) = scaled_softmax(row, temperature);
        for (dj, p) in d.iter_mut().zip(&probs) {
            *dj -= g * p / temperature;
        }
        d[tgt as usize] += g / temperature;
    }
}

/// Log-sum-exp of `row / temperature` and the probabilities.
pub fn scaled_softmax(row: &[f32], temperature: f32) -> (f32, Vec<f32>) {
    let max = row.iter().fold(f32::NEG_INFINITY, |m, &z| m.max(z)) / temperature;
    let mut probs: Vec<f32> = row.iter().map(|&z| (z / temperature - max).exp()).collect();
    let sum: f32 = probs.iter().sum();
    probs.iter_mut().for_each(|p| *p /= sum);
    (max + sum.ln(), probs)
}

#[cfg(test)]
mod tests {
    //! Finite-difference gradient checks: each layer's backward against central differences of
    //! a random linear functional of its forward, in f64-accumulated f32.
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn randn(rng: &mut ChaCha8Rng, n: usize) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0f32..1.0)).collect()
    }

    /// Checks `analytic` against d/dx Σ proj·f(x) by central differences on every coordinate.
    fn check(name: &str, x: &[f32], analytic: &[f32], f: impl Fn(&[f32]) -> f64) {
        let eps = 1e-2f32;
        let mut xp = x.to_vec();
        for i in 0..x.len() {
            xp[i] = x[i] + eps;
            let up = f(&xp);
            xp[i] = x[i] - eps;
            let down = f(&xp);
            xp[i] = x[i];
            let numeric = (up - down) / (2.0 * eps as f64);
            let err = (numeric - analytic[i] as f64).abs();
            assert!(
                err <= 2e-3 + 2e-2 * numeric.abs(),
                "{name}[{i}]: numeric {numeric} vs analytic {}",
                analytic[i]
            );
        }
    }

    fn proj_dot(proj: &[f32], y: &[f32]) -> f64 {
        proj.iter().zip(y).map(|(&a, &b)| a as f64 * b as f64).sum()
    }

    #[test]
    fn matmul_gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (t, c, oc) = (3, 5, 4);
        let (x, w, b, proj) = (
            randn(&mut rng, t * c),
            randn(&mut rng, oc * c),
            randn(&mut rng, oc),
            randn(&mut rng, t * oc),
        );
        let fwd = |x: &[f32], w: &[f32], b: &[f32]| {
            let mut y = vec![0.0; t * oc];
            matmul_forward(&mut y, x, w, Some(b), c, oc);
            proj_dot(&proj, &y)
        };
        let (mut dx, mut dw, mut db) = (vec![0.0; t * c], vec![0.0; oc * c], vec![0.0; oc]);
        matmul_backward(
            &mut dx,
            Some(WeightGrads {
                w: &mut dw,
                bias: Some(&mut db),
            }),
            &proj,
            &x,
            &w,
            c,
            oc,
        );
        check("dx", &x, &dx, |x| fwd(x, &w, &b));
        check("dw", &w, &dw, |w| fwd(&x, w, &b));
        check("db", &b, &db, |b| fwd(&x, &w, b));
    }

    #[test]
    fn rmsnorm_gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (t, c) = (3, 6);
        let (x, w, proj) = (
            randn(&mut rng, t * c),
            randn(&mut rng, c),
            randn(&mut rng, t * c),
        );
        let fwd = |x: &[f32], w: &[f32]| {
            let (mut y, mut r) = (vec![0.0; t * c], vec![0.0; t]);
            rmsnorm_forward(&mut y, &mut r, x, w, c, 1e-6);
            proj_dot(&proj, &y)
        };
        let (mut y, mut r) = (vec![0.0; t * c], vec![0.0; t]);
        rmsnorm_forward(&mut y, &mut r, &x, &w, c, 1e-6);
        let (mut dx, mut dw) = (vec![0.0; t * c], vec![0.0; c]);
        rmsnorm_backward(&mut dx, Some(&mut dw), &proj, &x, &w, &r, c);
        check("dx", &x, &dx, |x| fwd(x, &w));
        check("dw", &w, &dw, |w| fwd(&x, w));
    }

    #[test]
    fn rope_gradient_is_the_inverse_rotation() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let (t, heads, hd) = (4, 2, 6);
        let inv_freq: Vec<f32> = (0..hd / 2)
            .map(|i| 1.0 / 10000f32.powf(2.0 * i as f32 / hd as f32))
            .collect();
        let positions = [0, 1, 5, 9];
        let (x, proj) = (
            randn(&mut rng, t * heads * hd),
            randn(&mut rng, t * heads * hd),
        );
        let mut dx = proj.clone();
        rope_backward(&mut dx, &positions, &inv_freq, heads, hd);
        check("dx", &x, &dx, |x| {
            let mut y = x.to_vec();
            rope_forward(&mut y, &positions, &inv_freq, heads, hd);
            proj_dot(&proj, &y)
        });
    }

    #[test]
    fn attention_gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let s = AttnShape {
            nh: 4,
            nkv: 2,
            hd: 3,
        };
        let t = 4;
        let (q, k, v) = (
            randn(&mut rng, t * 12),
            randn(&mut rng, t * 6),
            randn(&mut rng, t * 6),
        );
        let proj = randn(&mut rng, t * 12);
        let fwd = |q: &[f32], k: &[f32], v: &[f32]| {
            let (mut o, mut a) = (vec![0.0; t * 12], vec![0.0; 4 * t * t]);
            attention_forward(&mut o, &mut a, q, k, v, s);
            proj_dot(&proj, &o)
        };
        let (mut o, mut a) = (vec![0.0; t * 12], vec![0.0; 4 * t * t]);
        attention_forward(&mut o, &mut a, &q, &k, &v, s);
        let (mut dq, mut dk, mut dv) = (vec![0.0; t * 12], vec![0.0; t * 6], vec![0.0; t * 6]);
        attention_backward(
            &mut dq,
            &mut dk,
            &mut dv,
            &proj,
            &a,
            Qkv {
                q: &q,
                k: &k,
                v: &v,
            },
            s,
        );
        check("dq", &q, &dq, |q| fwd(q, &k, &v));
        check("dk", &k, &dk, |k| fwd(&q, k, &v));
        check("dv", &v, &dv, |v| fwd(&q, &k, v));
    }

    #[test]
    fn attention_is_causal() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let s = AttnShape {
            nh: 2,
            nkv: 1,
            hd: 2,
        };
        let (q, mut k, mut v) = (
            randn(&mut rng, 3 * 4),
            randn(&mut rng, 3 * 2),
            randn(&mut rng, 3 * 2),
        );
        let (mut o1, mut a) = (vec![0.0; 12], vec![0.0; 18]);
        attention_forward(&mut o1, &mut a, &q, &k, &v, s);
        k[4] += 1.0;
        v[5] += 1.0;
        let mut o2 = vec![0.0; 12];
        attention_forward(&mut o2, &mut a, &q, &k, &v, s);
        assert_eq!(
            o1[..8],
            o2[..8],
            "changing the last position's key/value changed earlier outputs"
        );
        assert_ne!(o1[8..], o2[8..]);
    }

    #[test]
    fn swiglu_gradients_match_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let (g, u, proj) = (randn(&mut rng, 7), randn(&mut rng, 7), randn(&mut rng, 7));
        let fwd = |g: &[f32], u: &[f32]| {
            let mut y = vec![0.0; 7];
            swiglu_forward(&mut y, g, u);
            proj_dot(&proj, &y)
        };
        let (mut dg, mut du) = (vec![0.0; 7], vec![0.0; 7]);
        swiglu_backward(&mut dg, &mut du, &proj, &g, &u);
        check("dgate", &g, &dg, |g| fwd(g, &u));
        check("dup", &u, &du, |u| fwd(&g, u));
    }

    #[test]
    fn embedding_gradient_scatters_rows() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (v, c) = (5, 3);
        let table = randn(&mut rng, v * c);
        let tokens = [1u32, 4, 1];
        let proj = randn(&mut rng, 3 * c);
        let mut dtable = vec![0.0; v * c];
        embedding_backward(&mut dtable, &proj, &tokens, c);
        check("dtable", &table, &dtable, |tb| {
            let mut y = vec![0.0; 3 * c];
            embedding_forward(&mut y, &tokens, tb, c);
            proj_dot(&proj, &y)
        });
    }

    #[test]
    fn token_logprob_gradient_matches_finite_differences() {
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let v = 6;
        let logits = randn(&mut rng, 2 * v);
        let targets = [2u32, 5];
        let proj = [0.7f32, -1.3];
        let mut d = vec![0.0; 2 * v];
        token_logprob_backward(&mut d, &proj, &logits, &targets, 0.6, v);
        check("dlogits", &logits, &d, |z| {
            let (lp, _) = token_logprob_forward(z, &targets, 0.6, v);
            proj_dot(&proj, &lp)
        });
        let (_, ent) = token_logprob_forward(&[0.0; 6], &[0], 1.0, 6);
        assert!(
            (ent[0] - (6f32).ln()).abs() < 1e-6,
            "uniform entropy is ln V"
        );
    }
}
