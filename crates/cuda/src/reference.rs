//! Plain CPU references for every kernel, in f64 arithmetic over f32 inputs (the bf16 values
//! the GPU sees, widened). [`crate::check`] holds the GPU to these; they are written from the
//! maths in each kernel's comment, not from the kernel, and mirror the trainer's CPU layers.

/// `out[t] = table[tokens[t]]`.
pub fn embedding_forward(tokens: &[i32], table: &[f32], c: usize) -> Vec<f32> {
    tokens
        .iter()
        .flat_map(|&t| table[t as usize * c..(t as usize + 1) * c].iter().copied())
        .collect()
}

/// `dtable[tokens[t]] += dout[t]`.
pub fn embedding_backward(dtable: &mut [f32], dout: &[f32], tokens: &[i32], c: usize) {
    for (row, &t) in dout.chunks(c).zip(tokens) {
        for (d, g) in dtable[t as usize * c..(t as usize + 1) * c]
            .iter_mut()
            .zip(row)
        {
            *d = (*d as f64 + *g as f64) as f32;
        }
    }
}

/// RMSNorm rows; returns (out, rstd).
pub fn rmsnorm_forward(inp: &[f32], weight: &[f32], c: usize, eps: f32) -> (Vec<f32>, Vec<f32>) {
    let mut out = Vec::with_capacity(inp.len());
    let mut rstd = vec![];
    for x in inp.chunks(c) {
        let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / c as f64;
        let r = 1.0 / (ms + eps as f64).sqrt();
        rstd.push(r as f32);
        out.extend(
            x.iter()
                .zip(weight)
                .map(|(&x, &w)| (x as f64 * r * w as f64) as f32),
        );
    }
    (out, rstd)
}

/// Accumulates `dinp` and `dweight` (rstd recomputed in f64 from `inp`).
pub fn rmsnorm_backward(
    dinp: &mut [f32],
    dweight: &mut [f32],
    dout: &[f32],
    inp: &[f32],
    weight: &[f32],
    c: usize,
    eps: f32,
) {
    for ((di, g), x) in dinp.chunks_mut(c).zip(dout.chunks(c)).zip(inp.chunks(c)) {
        let ms = x.iter().map(|&v| v as f64 * v as f64).sum::<f64>() / c as f64;
        let r = 1.0 / (ms + eps as f64).sqrt();
        let gwx = (0..c)
            .map(|i| g[i] as f64 * weight[i] as f64 * x[i] as f64)
            .sum::<f64>()
            / c as f64;
        for i in 0..c {
            let d = r * g[i] as f64 * weight[i] as f64 - r * r * r * x[i] as f64 * gwx;
            di[i] = (di[i] as f64 + d) as f32;
            dweight[i] = (dweight[i] as f64 + g[i] as f64 * x[i] as f64 * r) as f32;
        }
    }
}

/// Rotates `x` ([n, heads, hd]); `sign` -1 is the inverse rotation (the backward pass).
pub fn rope(
    x: &mut [f32],
    positions: &[i32],
    inv_freq: &[f32],
    heads: usize,
    hd: usize,
    sign: f64,
) {
    let half = hd / 2;
    for (row, &pos) in x.chunks_mut(heads * hd).zip(positions) {
        for (i, &f) in inv_freq.iter().enumerate() {
            // The kernel forms the angle in f32, as transformers does: so does the reference.
            let angle = (pos as f32 * f) as f64;
            let (s, c) = (angle.sin() * sign, angle.cos());
            for head in row.chunks_mut(hd) {
                let (a, b) = (head[i] as f64, head[i + half] as f64);
                head[i] = (a * c - b * s) as f32;
                head[i + half] = (b * c + a * s) as f32;
            }
        }
    }
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

/// `silu(gate) · up`, element by element.
pub fn swiglu_forward(gate: &[f32], up: &[f32]) -> Vec<f32> {
    gate.iter()
        .zip(up)
        .map(|(&g, &u)| (g as f64 * sigmoid(g as f64) * u as f64) as f32)
        .collect()
}

/// Returns (dgate, dup).
pub fn swiglu_backward(dout: &[f32], gate: &[f32], up: &[f32]) -> (Vec<f32>, Vec<f32>) {
    let mut dgate = vec![];
    let mut dup = vec![];
    for i in 0..dout.len() {
        let (g, d) = (gate[i] as f64, dout[i] as f64);
        let s = sigmoid(g);
        dup.push((d * g * s) as f32);
        dgate.push((d * up[i] as f64 * (s + g * s * (1.0 - s))) as f32);
    }
    (dgate, dup)
}

/// Shapes as in `kernels/attention.cu`.
#[derive(Clone, Copy, Debug)]
pub struct Attn {
    /// Batch rows.
    pub b: usize,
    /// Query positions per row.
    pub tq: usize,
    /// Key/value positions per row.
    pub s: usize,
    /// Query heads.
    pub nh: usize,
    /// Key/value heads; `nh` is a multiple of it.
    pub nkv: usize,
    /// Head dimension.
    pub hd: usize,
}

impl Attn {
    fn qi(&self, b: usize, t: usize, h: usize) -> usize {
        ((b * self.tq + t) * self.nh + h) * self.hd
    }
    fn ki(&self, b: usize, u: usize, g: usize) -> usize {
        ((b * self.s + u) * self.nkv + g) * self.hd
    }
    fn ai(&self, b: usize, h: usize, t: usize) -> usize {
        ((b * self.nh + h) * self.tq + t) * self.s
    }
}

fn dot(a: &[f32], b: &[f32]) -> f64 {
    a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
}

/// Returns (out, att) for queries that see keys `u <= past[b] + t`.
pub fn attention_forward(
    q: &[f32],
    k: &[f32],
    v: &[f32],
    past: &[i32],
    d: Attn,
) -> (Vec<f32>, Vec<f32>) {
    let scale = 1.0 / (d.hd as f64).sqrt();
    let group = d.nh / d.nkv;
    let mut out = vec![0.0; d.b * d.tq * d.nh * d.hd];
    let mut att = vec![0.0; d.b * d.nh * d.tq * d.s];
    for b in 0..d.b {
        for h in 0..d.nh {
            let g = h / group;
            for t in 0..d.tq {
                let last = past[b] as usize + t;
                let qrow = &q[d.qi(b, t, h)..d.qi(b, t, h) + d.hd];
                let scores: Vec<f64> = (0..=last)
                    .map(|u| dot(qrow, &k[d.ki(b, u, g)..d.ki(b, u, g) + d.hd]) * scale)
                    .collect();
                let mx = scores.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
                let sum: f64 = scores.iter().map(|s| (s - mx).exp()).sum();
                let a0 = d.ai(b, h, t);
                for (u, s) in scores.iter().enumerate() {
                    att[a0 + u] = ((s - mx).exp() / sum) as f32;
                }
                for e in 0..d.hd {
                    let acc: f64 = (0..=last)
                        .map(|u| ((scores[u] - mx).exp() / sum) * v[d.ki(b, u, g) + e] as f64)
                        .sum();
                    out[d.qi(b, t, h) + e] = acc as f32;
                }
            }
        }
    }
    (out, att)
}

/// Returns (dq, dk, dv) for a training forward (`tq == s`, no cache).
pub fn attention_backward(
    dout: &[f32],
    q: &[f32],
    k: &[f32],
    v: &[f32],
    d: Attn,
) -> (Vec<f32>, Vec<f32>, Vec<f32>) {
    let zeros = vec![0; d.b];
    let (_, att) = attention_forward(q, k, v, &zeros, d);
    let scale = 1.0 / (d.hd as f64).sqrt();
    let group = d.nh / d.nkv;
    let mut dq = vec![0.0f64; q.len()];
    let mut dk = vec![0.0f64; k.len()];
    let mut dv = vec![0.0f64; v.len()];
    for b in 0..d.b {
        for h in 0..d.nh {
            let g = h / group;
            for t in 0..d.tq {
                let a0 = d.ai(b, h, t);
                let go = &dout[d.qi(b, t, h)..d.qi(b, t, h) + d.hd];
                let dp: Vec<f64> = (0..=t)
                    .map(|u| dot(go, &v[d.ki(b, u, g)..d.ki(b, u, g) + d.hd]))
                    .collect();
                let pdp: f64 = (0..=t).map(|u| att[a0 + u] as f64 * dp[u]).sum();
                for u in 0..=t {
                    let p = att[a0 + u] as f64;
                    let ds = p * (dp[u] - pdp) * scale;
                    for e in 0..d.hd {
                        dv[d.ki(b, u, g) + e] += p * go[e] as f64;
                        dq[d.qi(b, t, h) + e] += ds * k[d.ki(b, u, g) + e] as f64;
                        dk[d.ki(b, u, g) + e] += ds * q[d.qi(b, t, h) + e] as f64;
                    }
                }
            }
        }
    }
    let f = |v: Vec<f64>| v.into_iter().map(|x| x as f32).collect();
    (f(dq), f(dk), f(dv))
}

/// Log-sum-exp of `row · inv_temp`, in f64.
fn lse(row: &[f32], inv_temp: f64) -> f64 {
    let mx = row
        .iter()
        .map(|&z| z as f64 * inv_temp)
        .fold(f64::NEG_INFINITY, f64::max);
    mx + row
        .iter()
        .map(|&z| (z as f64 * inv_temp - mx).exp())
        .sum::<f64>()
        .ln()
}

/// Returns (logp, entropy) per row.
pub fn logprob_forward(
    logits: &[f32],
    targets: &[i32],
    v: usize,
    inv_temp: f32,
) -> (Vec<f32>, Vec<f32>) {
    let it = inv_temp as f64;
    logits
        .chunks(v)
        .zip(targets)
        .map(|(row, &t)| {
            let l = lse(row, it);
            let pz: f64 = row
                .iter()
                .map(|&z| {
                    let z = z as f64 * it;
                    (z - l).exp() * z
                })
                .sum();
            ((row[t as usize] as f64 * it - l) as f32, (l - pz) as f32)
        })
        .unzip()
}

/// `dlogits` for upstream `dlogp`.
pub fn logprob_backward(
    logits: &[f32],
    targets: &[i32],
    dlogp: &[f32],
    v: usize,
    inv_temp: f32,
) -> Vec<f32> {
    let it = inv_temp as f64;
    let mut out = Vec::with_capacity(logits.len());
    for ((row, &t), &g) in logits.chunks(v).zip(targets).zip(dlogp) {
        let l = lse(row, it);
        for (j, &z) in row.iter().enumerate() {
            let p = (z as f64 * it - l).exp();
            let onehot = if j == t as usize { 1.0 } else { 0.0 };
            out.push((g as f64 * it * (onehot - p)) as f32);
        }
    }
    out
}

/// (norm, clip coefficient) as torch's `clip_grad_norm_` computes them.
pub fn grad_norm(g: &[f32], max_norm: f32) -> (f32, f32) {
    let norm = g.iter().map(|&x| x as f64 * x as f64).sum::<f64>().sqrt();
    let coef = if max_norm > 0.0 {
        (max_norm as f64 / (norm + 1e-6)).min(1.0)
    } else {
        1.0
    };
    (norm as f32, coef as f32)
}

/// One torch AdamW step on every element, the gradient scaled by `clip`.
pub fn adamw_step(
    p: &mut [f32],
    g: &[f32],
    m: &mut [f32],
    v: &mut [f32],
    clip: f32,
    a: crate::ops::AdamStep,
) {
    for i in 0..p.len() {
        let gi = g[i] as f64 * clip as f64;
        let mut pi = p[i] as f64 * a.decay as f64;
        let mi = a.beta1 as f64 * m[i] as f64 + (1.0 - a.beta1 as f64) * gi;
        let vi = a.beta2 as f64 * v[i] as f64 + (1.0 - a.beta2 as f64) * gi * gi;
        pi -= a.step_size as f64 * mi / (vi.sqrt() / a.bc2_sqrt as f64 + a.eps as f64);
        (p[i], m[i], v[i]) = (pi as f32, mi as f32, vi as f32);
    }
}

/// The token the sampling kernel must pick for uniform `u`, with its full-distribution
/// log-prob, and the cumulative mass at the chosen token's boundaries (to tell a real mismatch
/// from f32 rounding at a boundary). Kept set: top-k by value, then the smallest prefix (by
/// descending probability) reaching `top_p` of the kept mass, each widened to every token tied
/// with its last one (transformers' `TopKLogitsWarper` keeps ties too); the draw walks kept
/// tokens in vocabulary order. That is `sqlrft_model::sampling::sample_token`'s rule, in f64.
pub fn sample_row(row: &[f32], p: crate::ops::SampleParams, u: f32) -> (i32, f32, f64) {
    let greedy = p.temperature <= 0.0;
    let it = if greedy {
        1.0
    } else {
        1.0 / p.temperature as f64
    };
    let l = lse(row, it);
    let logp = |j: usize| (row[j] as f64 * it - l) as f32;
    let prob = |j: usize| (row[j] as f64 * it - l).exp();
    if greedy {
        let best = (0..row.len()).fold(0, |b, j| if row[j] > row[b] { j } else { b });
        return (best as i32, logp(best), f64::INFINITY);
    }
    let mut order: Vec<usize> = (0..row.len()).collect();
    order.sort_by(|&a, &b| row[b].total_cmp(&row[a]));
    // Thresholds keep every token tied with the last one kept, as transformers' warpers do.
    let keep_from = |order: &mut Vec<usize>, last: usize| {
        let thr = row[order[last]];
        order.retain(|&j| row[j] >= thr);
    };
    if p.top_k > 0 && p.top_k < row.len() {
        keep_from(&mut order, p.top_k - 1);
    }
    if p.top_p < 1.0 {
        let kept: f64 = order.iter().map(|&j| prob(j)).sum();
        let mut cum = 0.0;
        let mut keep = 0;
        for &j in &order {
            keep += 1;
            cum += prob(j);
            if cum >= p.top_p as f64 * kept {
                break;
            }
        }
        keep_from(&mut order, keep - 1);
    }
    order.sort_unstable();
    let total: f64 = order.iter().map(|&j| prob(j)).sum();
    let target = u as f64 * total;
    let mut cum = 0.0;
    for &j in &order {
        let before = cum;
        cum += prob(j);
        if cum > target {
            let margin = (target - before).min(cum - target) / total;
            return (j as i32, logp(j), margin);
        }
    }
    let last = *order.last().expect("one token kept");
    (last as i32, logp(last), 0.0)
}

/// `C[m, n] = op(A) · op(B)` (see [`crate::GemmShape`]), alpha and beta applied to `c`.
pub fn gemm(s: crate::GemmShape, a: &[f32], b: &[f32], c: &mut [f32]) {
    for i in 0..s.m {
        for j in 0..s.n {
            let mut acc = 0.0f64;
            for l in 0..s.k {
                let x = if s.trans_a {
                    a[l * s.m + i]
                } else {
                    a[i * s.k + l]
                };
                let y = if s.trans_b {
                    b[j * s.k + l]
                } else {
                    b[l * s.n + j]
                };
                acc += x as f64 * y as f64;
            }
            let idx = i * s.n + j;
            c[idx] = (s.alpha as f64 * acc + s.beta as f64 * c[idx] as f64) as f32;
        }
    }
}

#[cfg(test)]
mod tests {
    //! The references' backward passes against central differences of their forward passes,
    //! so the GPU is held to something that is itself checked.
    use super::*;
    use rand::{Rng, SeedableRng};
    use rand_chacha::ChaCha8Rng;

    fn random(n: usize, rng: &mut ChaCha8Rng) -> Vec<f32> {
        (0..n).map(|_| rng.random_range(-1.0..1.0)).collect()
    }

    fn dotf(a: &[f32], b: &[f32]) -> f64 {
        a.iter().zip(b).map(|(&x, &y)| x as f64 * y as f64).sum()
    }

    /// Central differences of `loss` with respect to every element of `x`.
    fn numeric_grad(x: &[f32], loss: impl Fn(&[f32]) -> f64) -> Vec<f32> {
        let h = 1e-2f32;
        (0..x.len())
            .map(|i| {
                let mut p = x.to_vec();
                p[i] += h;
                let up = loss(&p);
                p[i] -= 2.0 * h;
                let down = loss(&p);
                ((up - down) / (2.0 * h as f64)) as f32
            })
            .collect()
    }

    fn assert_close(got: &[f32], want: &[f32], what: &str) {
        let num: f64 = got
            .iter()
            .zip(want)
            .map(|(a, b)| (a - b) as f64 * (a - b) as f64)
            .sum();
        let den: f64 = want.iter().map(|b| *b as f64 * *b as f64).sum();
        let rel = (num / den).sqrt();
        assert!(rel < 1e-3, "{what}: relative error {rel:.2e}");
    }

    #[test]
    fn rmsnorm_backward_is_the_gradient_of_rmsnorm_forward() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let (n, c, eps) = (3, 8, 1e-5);
        let (x, w, g) = (
            random(n * c, &mut rng),
            random(c, &mut rng),
            random(n * c, &mut rng),
        );
        let mut dx = vec![0.0; n * c];
        let mut dw = vec![0.0; c];
        rmsnorm_backward(&mut dx, &mut dw, &g, &x, &w, c, eps);
        assert_close(
            &dx,
            &numeric_grad(&x, |x| dotf(&rmsnorm_forward(x, &w, c, eps).0, &g)),
            "dx",
        );
        assert_close(
            &dw,
            &numeric_grad(&w, |w| dotf(&rmsnorm_forward(&x, w, c, eps).0, &g)),
            "dw",
        );
    }

    #[test]
    fn swiglu_backward_is_the_gradient_of_swiglu_forward() {
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let (gate, up, d) = (
            random(20, &mut rng),
            random(20, &mut rng),
            random(20, &mut rng),
        );
        let (dgate, dup) = swiglu_backward(&d, &gate, &up);
        assert_close(
            &dgate,
            &numeric_grad(&gate, |g| dotf(&swiglu_forward(g, &up), &d)),
            "dgate",
        );
        assert_close(
            &dup,
            &numeric_grad(&up, |u| dotf(&swiglu_forward(&gate, u), &d)),
            "dup",
        );
    }

    #[test]
    fn attention_backward_is_the_gradient_of_attention_forward() {
        let mut rng = ChaCha8Rng::seed_from_u64(3);
        let d = Attn {
            b: 2,
            tq: 4,
            s: 4,
            nh: 4,
            nkv: 2,
            hd: 3,
        };
        let nq = d.b * d.tq * d.nh * d.hd;
        let nkv = d.b * d.s * d.nkv * d.hd;
        let (q, k, v, g) = (
            random(nq, &mut rng),
            random(nkv, &mut rng),
            random(nkv, &mut rng),
            random(nq, &mut rng),
        );
        let past = vec![0; d.b];
        let (dq, dk, dv) = attention_backward(&g, &q, &k, &v, d);
        let out =
            |q: &[f32], k: &[f32], v: &[f32]| dotf(&attention_forward(q, k, v, &past, d).0, &g);
        assert_close(&dq, &numeric_grad(&q, |q| out(q, &k, &v)), "dq");
        assert_close(&dk, &numeric_grad(&k, |k| out(&q, k, &v)), "dk");
        assert_close(&dv, &numeric_grad(&v, |v| out(&q, &k, v)), "dv");
    }

    #[test]
    fn attention_with_a_cache_equals_the_last_rows_of_full_attention() {
        let mut rng = ChaCha8Rng::seed_from_u64(4);
        let full = Attn {
            b: 1,
            tq: 5,
            s: 5,
            nh: 2,
            nkv: 1,
            hd: 4,
        };
        let (q, k, v) = (
            random(5 * 2 * 4, &mut rng),
            random(5 * 4, &mut rng),
            random(5 * 4, &mut rng),
        );
        let (want, _) = attention_forward(&q, &k, &v, &[0], full);
        let step = Attn { tq: 1, ..full };
        let (got, _) = attention_forward(&q[4 * 8..], &k, &v, &[4], step);
        assert_close(&got, &want[4 * 8..], "decode step");
    }

    #[test]
    fn logprob_backward_is_the_gradient_of_the_log_probs() {
        let mut rng = ChaCha8Rng::seed_from_u64(5);
        let (r, v, inv_temp) = (3, 7, 1.0 / 0.7);
        let z: Vec<f32> = random(r * v, &mut rng).iter().map(|x| x * 4.0).collect();
        let targets = [0, 6, 3];
        let dlogp = random(r, &mut rng);
        let got = logprob_backward(&z, &targets, &dlogp, v, inv_temp);
        let want = numeric_grad(&z, |z| {
            dotf(&logprob_forward(z, &targets, v, inv_temp).0, &dlogp)
        });
        assert_close(&got, &want, "dlogits");
    }

    #[test]
    fn entropy_of_a_uniform_row_is_log_v() {
        let (_, ent) = logprob_forward(&[0.5; 16], &[3], 16, 1.0);
        assert!((ent[0] - 16f32.ln()).abs() < 1e-6, "{}", ent[0]);
    }

    #[test]
    fn rope_backward_undoes_rope_forward() {
        let mut rng = ChaCha8Rng::seed_from_u64(6);
        let x = random(3 * 2 * 8, &mut rng);
        let inv_freq = [1.0, 0.1, 0.01, 0.001];
        let mut y = x.clone();
        rope(&mut y, &[0, 7, 300], &inv_freq, 2, 8, 1.0);
        assert!(
            y.iter().zip(&x).skip(16).any(|(a, b)| (a - b).abs() > 1e-3),
            "rope moved nothing"
        );
        rope(&mut y, &[0, 7, 300], &inv_freq, 2, 8, -1.0);
        assert_close(&y, &x, "round trip");
    }

    #[test]
    fn sampling_with_top_k_one_or_zero_temperature_is_greedy() {
        let row = [0.1, 2.0, -1.0, 1.9];
        let p = crate::ops::SampleParams {
            temperature: 1.0,
            top_k: 1,
            top_p: 1.0,
        };
        for u in [0.0, 0.5, 0.999] {
            assert_eq!(sample_row(&row, p, u).0, 1);
        }
        let greedy = crate::ops::SampleParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        };
        assert_eq!(sample_row(&row, greedy, 0.3).0, 1);
    }

    #[test]
    fn top_p_keeps_the_smallest_nucleus_and_draws_in_vocabulary_order() {
        // probs ∝ e^z: 3.0 and 2.9 hold most of the mass; top_p 0.5 keeps only the first.
        let row = [0.0, 3.0, 2.9, -5.0];
        let p = crate::ops::SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 0.5,
        };
        assert_eq!(sample_row(&row, p, 0.99).0, 1);
        let p = crate::ops::SampleParams { top_p: 0.9, ..p };
        // Kept {1, 2} walked in index order: a small u picks 1, a large one 2.
        assert_eq!(sample_row(&row, p, 0.01).0, 1);
        assert_eq!(sample_row(&row, p, 0.99).0, 2);
    }

    #[test]
    fn top_k_keeps_tokens_tied_with_the_kth() {
        let row = [1.0, 3.0, 2.0, 2.0, -1.0];
        let p = crate::ops::SampleParams {
            temperature: 1.0,
            top_k: 2,
            top_p: 1.0,
        };
        // Kept {1, 2, 3}: u near 1 lands on the last kept token in vocabulary order.
        assert_eq!(sample_row(&row, p, 0.999).0, 3);
        assert_eq!(sample_row(&row, p, 0.0).0, 1);
    }

    /// Hands out `u` as every `f32` draw (rand's `f32` is the top 24 bits of a `u32`).
    struct FixedDraw(f32);

    impl rand::RngCore for FixedDraw {
        fn next_u32(&mut self) -> u32 {
            ((self.0 * (1u32 << 24) as f32) as u32) << 8
        }
        fn next_u64(&mut self) -> u64 {
            self.next_u32() as u64
        }
        fn fill_bytes(&mut self, dst: &mut [u8]) {
            dst.fill(0)
        }
    }

    #[test]
    fn the_kernels_reference_picks_what_the_model_contracts_sampler_picks() {
        use sqlrft_model::sampling::{SamplingParams, sample_token};
        let mut rng = ChaCha8Rng::seed_from_u64(8);
        let mut compared = 0;
        for case in 0..400 {
            // Few distinct values, so ties at the top-k and top-p cuts are common.
            let row: Vec<f32> = (0..32)
                .map(|_| rng.random_range(0..6) as f32 * 0.5)
                .collect();
            let params = SamplingParams {
                temperature: [1.0, 0.7][case % 2],
                top_k: [0, 1, 3, 8][case % 4],
                top_p: [1.0, 0.9, 0.5][case % 3],
                max_new_tokens: 1,
            };
            let u = (rng.random_range(0..1u32 << 24) as f32) / (1u32 << 24) as f32;
            let (want, _, margin) = sample_row(&row, crate::ops::SampleParams::from(&params), u);
            if margin < 1e-5 {
                continue; // f32 and f64 may round a boundary draw either way
            }
            let (got, _) = sample_token(&row, &params, &mut FixedDraw(u));
            assert_eq!(
                got as i32, want,
                "case {case}: {params:?}, u {u}, row {row:?}"
            );
            compared += 1;
        }
        assert!(compared > 300, "only {compared} draws compared");
    }

    #[test]
    fn gemm_shapes_mean_what_their_names_say() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let (m, n, k) = (3, 4, 5);
        let (x, w, dy) = (
            random(m * k, &mut rng),
            random(n * k, &mut rng),
            random(m * n, &mut rng),
        );
        let mut y = vec![0.0; m * n];
        gemm(crate::GemmShape::linear(m, n, k), &x, &w, &mut y);
        for i in 0..m {
            for o in 0..n {
                let want = dotf(&x[i * k..(i + 1) * k], &w[o * k..(o + 1) * k]) as f32;
                assert!((y[i * n + o] - want).abs() < 1e-5);
            }
        }
        // The backward shapes are the gradients of Σ dy · y.
        let loss_x = |x: &[f32]| {
            let mut y = vec![0.0; m * n];
            gemm(crate::GemmShape::linear(m, n, k), x, &w, &mut y);
            dotf(&y, &dy)
        };
        let mut dx = vec![0.0; m * k];
        gemm(crate::GemmShape::linear_dinput(m, n, k), &dy, &w, &mut dx);
        assert_close(&dx, &numeric_grad(&x, loss_x), "dinput");
        let loss_w = |w: &[f32]| {
            let mut y = vec![0.0; m * n];
            gemm(crate::GemmShape::linear(m, n, k), &x, w, &mut y);
            dotf(&y, &dy)
        };
        let mut dw = vec![0.0; n * k];
        gemm(crate::GemmShape::linear_dweight(m, n, k), &dy, &x, &mut dw);
        assert_close(&dw, &numeric_grad(&w, loss_w), "dweight");
    }

    #[test]
    fn adamw_first_step_moves_each_weight_by_lr() {
        let a = crate::ops::AdamStep::new(1, 0.1, 0.9, 0.999, 1e-8, 0.0);
        let mut p = vec![1.0, -2.0];
        let (mut m, mut v) = (vec![0.0; 2], vec![0.0; 2]);
        adamw_step(&mut p, &[0.5, -3.0], &mut m, &mut v, 1.0, a);
        assert!(
            (p[0] - 0.9).abs() < 1e-5 && (p[1] + 1.9).abs() < 1e-5,
            "{p:?}"
        );
    }
}
