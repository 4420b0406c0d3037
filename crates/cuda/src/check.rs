//! Every kernel against its CPU reference on fresh random inputs, at small shapes that are not
//! multiples of the block sizes. Outputs a kernel overwrites are poisoned with NaN first, so an
//! element it fails to write shows up as an infinite error. Used by the GPU tests and by
//! `sqlrft cuda check` on a GPU machine.

use crate::device::Gpu;
use crate::ops::{
    AdamState, AdamStep, AttnDims, FlashSaved, HeadRows, LogitRows, NormSaved, Qkv, QkvGrads, Rows,
    SampleParams,
};
use crate::reference as cpu;
use crate::{GemmShape, reference};
use anyhow::Result;
use half::bf16;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The result of holding one kernel (at one shape) to its reference.
#[derive(Clone, Debug, Serialize)]
pub struct KernelCheck {
    /// What was checked: a kernel's entry point, or the group's name when the group failed.
    pub kernel: String,
    /// The shape checked (`n=19 c=72`); empty when the group failed.
    pub shape: String,
    /// ‖gpu − cpu‖ / ‖cpu‖; infinite when the GPU left NaN anywhere.
    pub rel_err: f64,
    /// Largest absolute difference from the reference.
    pub max_abs_err: f64,
    /// Largest `rel_err` that passes: looser for bf16 outputs than for fp32 ones.
    pub tolerance: f64,
    /// `rel_err <= tolerance`.
    pub passed: bool,
    /// Why the group stopped (a launch or copy failed), when it did.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

/// bf16 outputs: one rounding of a value near 1 is 2^-9 relative; sums of a few add a little.
const BF16_TOL: f64 = 1e-2;
/// fp32 outputs computed from bf16 inputs in fp32.
const F32_TOL: f64 = 1e-4;

fn rel_err(got: &[f32], want: &[f32]) -> (f64, f64) {
    assert_eq!(got.len(), want.len(), "compared buffers differ in length");
    let (mut num, mut den, mut max) = (0.0f64, 0.0f64, 0.0f64);
    for (&g, &w) in got.iter().zip(want) {
        if !g.is_finite() && g != w {
            return (f64::INFINITY, f64::INFINITY);
        }
        let d = (g as f64 - w as f64).abs();
        num += d * d;
        den += w as f64 * w as f64;
        max = max.max(d);
    }
    ((num / den.max(1e-30)).sqrt(), max)
}

/// The random source of the inputs and the results so far.
pub struct Checks {
    rng: ChaCha8Rng,
    out: Vec<KernelCheck>,
}

impl Checks {
    fn record(&mut self, kernel: &str, shape: String, got: &[f32], want: &[f32], tolerance: f64) {
        let (rel_err, max_abs_err) = rel_err(got, want);
        self.out.push(KernelCheck {
            kernel: kernel.into(),
            shape,
            rel_err,
            max_abs_err,
            tolerance,
            passed: rel_err <= tolerance,
            error: None,
        });
    }

    /// Random values in [-scale, scale], rounded to bf16; returns the bf16 and f32 views.
    fn bf16s(&mut self, n: usize, scale: f32) -> (Vec<bf16>, Vec<f32>) {
        let b: Vec<bf16> = (0..n)
            .map(|_| bf16::from_f32(self.rng.random_range(-scale..scale)))
            .collect();
        let f = b.iter().map(|x| x.to_f32()).collect();
        (b, f)
    }

    fn f32s(&mut self, n: usize, lo: f32, hi: f32) -> Vec<f32> {
        (0..n).map(|_| self.rng.random_range(lo..hi)).collect()
    }

    fn ints(&mut self, n: usize, below: i32) -> Vec<i32> {
        (0..n).map(|_| self.rng.random_range(0..below)).collect()
    }
}

fn widen(v: &[bf16]) -> Vec<f32> {
    v.iter().map(|x| x.to_f32()).collect()
}

fn nan_bf16(n: usize) -> Vec<bf16> {
    vec![bf16::NAN; n]
}

type Group = fn(&Gpu, &mut Checks) -> Result<()>;

/// The check groups, one per kernel file (plus the GEMM wrapper), by name.
pub const GROUPS: &[(&str, Group)] = &[
    ("embedding", embedding),
    ("rmsnorm", rmsnorm),
    ("rope", rope),
    ("residual", residual),
    ("swiglu", swiglu),
    ("attention", attention),
    ("flash_attention", flash_attention),
    ("logprob", logprob),
    ("optimizer", grad_norm_and_adamw),
    ("cast", casts),
    ("kv_cache", kv_cache),
    ("sampling", sampling),
    ("gemm", gemm),
];

/// Runs every check group (or those named in `only`) with inputs drawn from `seed`. A group
/// whose launch or copy fails is reported as a failed check with the error, and the remaining
/// groups still run (after a launch fault the GPU context is usually unusable, so later groups
/// may fail too: run one group per process with `only` to localise it).
pub fn run(gpu: &Gpu, seed: u64, only: &[String]) -> Result<Vec<KernelCheck>> {
    if let Some(unknown) = only.iter().find(|o| !GROUPS.iter().any(|(n, _)| n == o)) {
        let names: Vec<&str> = GROUPS.iter().map(|(n, _)| *n).collect();
        anyhow::bail!(
            "no check group `{unknown}`; the groups are {}",
            names.join(", ")
        );
    }
    let mut c = Checks {
        rng: ChaCha8Rng::seed_from_u64(seed),
        out: vec![],
    };
    for (name, group) in GROUPS {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        if let Err(e) = group(gpu, &mut c).and_then(|()| gpu.synchronize()) {
            c.out.push(KernelCheck {
                kernel: (*name).into(),
                shape: String::new(),
                rel_err: f64::INFINITY,
                max_abs_err: f64::INFINITY,
                tolerance: 0.0,
                passed: false,
                error: Some(format!("{e:#}")),
            });
        }
    }
    Ok(c.out)
}

/// Runs every check group once with inputs drawn from `seed`.
pub fn run_all(gpu: &Gpu, seed: u64) -> Result<Vec<KernelCheck>> {
    run(gpu, seed, &[])
}

fn embedding(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let (vocab, n, dim) = (50, 19, 72);
    let (table, table_f) = c.bf16s(vocab * dim, 1.0);
    // Repeated tokens exercise the backward's atomics.
    let tokens = c.ints(n, 10);
    let mut out = gpu.upload(&nan_bf16(n * dim))?;
    let (dt, dtok) = (gpu.upload(&table)?, gpu.upload(&tokens)?);
    gpu.embedding_forward(&mut out, &dtok, &dt, n, dim)?;
    let want = cpu::embedding_forward(&tokens, &table_f, dim);
    c.record(
        "embedding_forward",
        format!("n={n} c={dim}"),
        &widen(&gpu.download(&out)?),
        &want,
        0.0,
    );

    let (dout, dout_f) = c.bf16s(n * dim, 1.0);
    let start = c.f32s(vocab * dim, -1.0, 1.0);
    let mut dtable = gpu.upload(&start)?;
    gpu.embedding_backward(&mut dtable, &gpu.upload(&dout)?, &dtok, n, dim)?;
    let mut want = start;
    cpu::embedding_backward(&mut want, &dout_f, &tokens, dim);
    c.record(
        "embedding_backward",
        format!("n={n} c={dim}"),
        &gpu.download(&dtable)?,
        &want,
        1e-6,
    );
    Ok(())
}

fn rmsnorm(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let (n, dim, eps) = (13, 200, 1e-6);
    let (x, xf) = c.bf16s(n * dim, 2.0);
    let (w, wf) = c.bf16s(dim, 1.5);
    let (dx, dw) = (gpu.upload(&x)?, gpu.upload(&w)?);
    let mut out = gpu.upload(&nan_bf16(n * dim))?;
    let mut rstd = gpu.upload(&vec![f32::NAN; n])?;
    let rows = Rows { n, c: dim };
    gpu.rmsnorm_forward(&mut out, &mut rstd, &dx, &dw, rows, eps)?;
    let (want, want_rstd) = cpu::rmsnorm_forward(&xf, &wf, dim, eps);
    let shape = format!("n={n} c={dim}");
    c.record(
        "rmsnorm_forward",
        shape.clone(),
        &widen(&gpu.download(&out)?),
        &want,
        BF16_TOL,
    );
    c.record(
        "rmsnorm_forward.rstd",
        shape.clone(),
        &gpu.download(&rstd)?,
        &want_rstd,
        F32_TOL,
    );

    let (g, gf) = c.bf16s(n * dim, 1.0);
    let (dinp0, dinp0_f) = c.bf16s(n * dim, 1.0);
    let dw0 = c.f32s(dim, -1.0, 1.0);
    let mut dinp = gpu.upload(&dinp0)?;
    let mut dweight = gpu.upload(&dw0)?;
    let saved = NormSaved {
        inp: &dx,
        weight: &dw,
        rstd: &rstd,
    };
    gpu.rmsnorm_backward(&mut dinp, &mut dweight, &gpu.upload(&g)?, saved, rows)?;
    let (mut want_dx, mut want_dw) = (dinp0_f, dw0);
    cpu::rmsnorm_backward(&mut want_dx, &mut want_dw, &gf, &xf, &wf, dim, eps);
    c.record(
        "rmsnorm_backward.dinp",
        shape.clone(),
        &widen(&gpu.download(&dinp)?),
        &want_dx,
        BF16_TOL,
    );
    c.record(
        "rmsnorm_backward.dweight",
        shape,
        &gpu.download(&dweight)?,
        &want_dw,
        F32_TOL,
    );
    Ok(())
}

fn rope(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let (n, heads, hd) = (11, 3, 64);
    // Qwen2's base; positions far apart test the angle's range.
    let inv_freq: Vec<f32> = (0..hd / 2)
        .map(|i| 1.0 / 1_000_000f32.powf(2.0 * i as f32 / hd as f32))
        .collect();
    let positions: Vec<i32> = (0..n as i32).map(|t| t * 97 + 3).collect();
    let (dp, df) = (gpu.upload(&positions)?, gpu.upload(&inv_freq)?);
    for backward in [false, true] {
        let (x, mut want) = c.bf16s(n * heads * hd, 1.0);
        let mut dx = gpu.upload(&x)?;
        gpu.rope(&mut dx, &dp, &df, HeadRows { n, heads, hd }, backward)?;
        cpu::rope(
            &mut want,
            &positions,
            &inv_freq,
            heads,
            hd,
            if backward { -1.0 } else { 1.0 },
        );
        let name = if backward {
            "rope_backward"
        } else {
            "rope_forward"
        };
        let shape = format!("n={n} heads={heads} hd={hd}");
        c.record(name, shape, &widen(&gpu.download(&dx)?), &want, BF16_TOL);
    }
    Ok(())
}

fn residual(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let (n, dim) = (9, 130);
    let (a, af) = c.bf16s(n * dim, 1.0);
    let (b, bf) = c.bf16s(n * dim, 1.0);
    let mut da = gpu.upload(&a)?;
    gpu.residual_add(&mut da, &gpu.upload(&b)?, n * dim)?;
    let want: Vec<f32> = af.iter().zip(&bf).map(|(x, y)| x + y).collect();
    c.record(
        "residual_add",
        format!("n={}", n * dim),
        &widen(&gpu.download(&da)?),
        &want,
        BF16_TOL,
    );

    let (bias, biasf) = c.bf16s(dim, 1.0);
    let dbias = gpu.upload(&bias)?;
    gpu.bias_add(&mut da, &dbias, n, dim)?;
    let want: Vec<f32> = want
        .iter()
        .enumerate()
        .map(|(i, x)| x + biasf[i % dim])
        .collect();
    c.record(
        "bias_add",
        format!("n={n} c={dim}"),
        &widen(&gpu.download(&da)?),
        &want,
        BF16_TOL,
    );

    let start = c.f32s(dim, -1.0, 1.0);
    let mut db = gpu.upload(&start)?;
    gpu.bias_backward(&mut db, &gpu.upload(&b)?, n, dim)?;
    let want: Vec<f32> = (0..dim)
        .map(|j| start[j] + (0..n).map(|r| bf[r * dim + j]).sum::<f32>())
        .collect();
    c.record(
        "bias_backward",
        format!("n={n} c={dim}"),
        &gpu.download(&db)?,
        &want,
        F32_TOL,
    );
    Ok(())
}

fn swiglu(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let n = 1000;
    let (g, gf) = c.bf16s(n, 4.0);
    let (u, uf) = c.bf16s(n, 2.0);
    let (dg, du) = (gpu.upload(&g)?, gpu.upload(&u)?);
    let mut out = gpu.upload(&nan_bf16(n))?;
    gpu.swiglu_forward(&mut out, &dg, &du, n)?;
    let want = cpu::swiglu_forward(&gf, &uf);
    c.record(
        "swiglu_forward",
        format!("n={n}"),
        &widen(&gpu.download(&out)?),
        &want,
        BF16_TOL,
    );

    let (d, df) = c.bf16s(n, 1.0);
    let mut dgate = gpu.upload(&nan_bf16(n))?;
    let mut dup = gpu.upload(&nan_bf16(n))?;
    gpu.swiglu_backward(&mut dgate, &mut dup, &gpu.upload(&d)?, &dg, &du, n)?;
    let (want_g, want_u) = cpu::swiglu_backward(&df, &gf, &uf);
    c.record(
        "swiglu_backward.dgate",
        format!("n={n}"),
        &widen(&gpu.download(&dgate)?),
        &want_g,
        BF16_TOL,
    );
    c.record(
        "swiglu_backward.dup",
        format!("n={n}"),
        &widen(&gpu.download(&dup)?),
        &want_u,
        BF16_TOL,
    );
    Ok(())
}

fn attention(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    // Training shape: no cache.
    let d = AttnDims {
        b: 2,
        tq: 7,
        s: 7,
        nh: 4,
        nkv: 2,
        hd: 16,
    };
    let r = cpu::Attn {
        b: d.b,
        tq: d.tq,
        s: d.s,
        nh: d.nh,
        nkv: d.nkv,
        hd: d.hd,
    };
    let shape = format!("{d:?}");
    let nq = d.b * d.tq * d.nh * d.hd;
    let nkv = d.b * d.s * d.nkv * d.hd;
    let (q, qf) = c.bf16s(nq, 1.0);
    let (k, kf) = c.bf16s(nkv, 1.0);
    let (v, vf) = c.bf16s(nkv, 1.0);
    let past = vec![0i32; d.b];
    let (dq_in, dk_in, dv_in, dpast) = (
        gpu.upload(&q)?,
        gpu.upload(&k)?,
        gpu.upload(&v)?,
        gpu.upload(&past)?,
    );
    let mut out = gpu.upload(&nan_bf16(nq))?;
    let mut att = gpu.upload(&vec![f32::NAN; d.b * d.nh * d.tq * d.s])?;
    let qkv = || Qkv {
        q: &dq_in,
        k: &dk_in,
        v: &dv_in,
    };
    gpu.attention_forward(&mut out, &mut att, qkv(), &dpast, d)?;
    let (want, want_att) = cpu::attention_forward(&qf, &kf, &vf, &past, r);
    c.record(
        "attention_forward",
        shape.clone(),
        &widen(&gpu.download(&out)?),
        &want,
        BF16_TOL,
    );
    c.record(
        "attention_forward.att",
        shape.clone(),
        &gpu.download(&att)?,
        &want_att,
        F32_TOL,
    );

    let (g, gf) = c.bf16s(nq, 1.0);
    let mut dq = gpu.upload(&nan_bf16(nq))?;
    let mut dk = gpu.upload(&nan_bf16(nkv))?;
    let mut dv = gpu.upload(&nan_bf16(nkv))?;
    let mut ds = gpu.upload(&vec![f32::NAN; d.b * d.nh * d.tq * d.s])?;
    let grads = QkvGrads {
        dq: &mut dq,
        dk: &mut dk,
        dv: &mut dv,
    };
    gpu.attention_backward(grads, &mut ds, &gpu.upload(&g)?, &att, qkv(), d)?;
    let (wq, wk, wv) = cpu::attention_backward(&gf, &qf, &kf, &vf, r);
    c.record(
        "attention_backward.dq",
        shape.clone(),
        &widen(&gpu.download(&dq)?),
        &wq,
        BF16_TOL,
    );
    c.record(
        "attention_backward.dk",
        shape.clone(),
        &widen(&gpu.download(&dk)?),
        &wk,
        BF16_TOL,
    );
    c.record(
        "attention_backward.dv",
        shape,
        &widen(&gpu.download(&dv)?),
        &wv,
        BF16_TOL,
    );

    // Decoding shape: one new query per row against a partly filled cache.
    let d = AttnDims {
        b: 3,
        tq: 1,
        s: 12,
        nh: 6,
        nkv: 2,
        hd: 32,
    };
    let r = cpu::Attn {
        b: d.b,
        tq: d.tq,
        s: d.s,
        nh: d.nh,
        nkv: d.nkv,
        hd: d.hd,
    };
    let past = vec![0i32, 5, 11];
    let nq = d.b * d.nh * d.hd;
    let nkv = d.b * d.s * d.nkv * d.hd;
    let (q, qf) = c.bf16s(nq, 1.0);
    let (k, kf) = c.bf16s(nkv, 1.0);
    let (v, vf) = c.bf16s(nkv, 1.0);
    let mut out = gpu.upload(&nan_bf16(nq))?;
    let mut att = gpu.upload(&vec![f32::NAN; d.b * d.nh * d.s])?;
    let qkv = Qkv {
        q: &gpu.upload(&q)?,
        k: &gpu.upload(&k)?,
        v: &gpu.upload(&v)?,
    };
    gpu.attention_forward(&mut out, &mut att, qkv, &gpu.upload(&past)?, d)?;
    let (want, _) = cpu::attention_forward(&qf, &kf, &vf, &past, r);
    c.record(
        "attention_forward.decode",
        format!("{d:?} past={past:?}"),
        &widen(&gpu.download(&out)?),
        &want,
        BF16_TOL,
    );
    Ok(())
}

fn flash_attention(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    // Training shape, head dimension 64 (two values per lane), against the same references as
    // the materialised kernels.
    let d = AttnDims {
        b: 2,
        tq: 9,
        s: 9,
        nh: 4,
        nkv: 2,
        hd: 64,
    };
    let r = cpu::Attn {
        b: d.b,
        tq: d.tq,
        s: d.s,
        nh: d.nh,
        nkv: d.nkv,
        hd: d.hd,
    };
    let shape = format!("{d:?}");
    let (nq, nkv, rows) = (
        d.b * d.tq * d.nh * d.hd,
        d.b * d.s * d.nkv * d.hd,
        d.b * d.nh * d.tq,
    );
    let (q, qf) = c.bf16s(nq, 1.0);
    let (k, kf) = c.bf16s(nkv, 1.0);
    let (v, vf) = c.bf16s(nkv, 1.0);
    let past = vec![0i32; d.b];
    let (dq_in, dk_in, dv_in, dpast) = (
        gpu.upload(&q)?,
        gpu.upload(&k)?,
        gpu.upload(&v)?,
        gpu.upload(&past)?,
    );
    let mut out = gpu.upload(&nan_bf16(nq))?;
    let mut lse = gpu.upload(&vec![f32::NAN; rows])?;
    let qkv = || Qkv {
        q: &dq_in,
        k: &dk_in,
        v: &dv_in,
    };
    gpu.flash_attention_forward(&mut out, &mut lse, qkv(), &dpast, d)?;
    let (want, _) = cpu::attention_forward(&qf, &kf, &vf, &past, r);
    c.record(
        "flash_attention_forward",
        shape.clone(),
        &widen(&gpu.download(&out)?),
        &want,
        BF16_TOL,
    );

    let (g, gf) = c.bf16s(nq, 1.0);
    let mut dq = gpu.upload(&nan_bf16(nq))?;
    let mut dk = gpu.upload(&nan_bf16(nkv))?;
    let mut dv = gpu.upload(&nan_bf16(nkv))?;
    let mut delta = gpu.upload(&vec![f32::NAN; rows])?;
    let grads = QkvGrads {
        dq: &mut dq,
        dk: &mut dk,
        dv: &mut dv,
    };
    let forward = FlashSaved {
        out: &out,
        lse: &lse,
    };
    gpu.flash_attention_backward(grads, &mut delta, &gpu.upload(&g)?, forward, qkv(), d)?;
    let (wq, wk, wv) = cpu::attention_backward(&gf, &qf, &kf, &vf, r);
    c.record(
        "flash_attention_backward.dq",
        shape.clone(),
        &widen(&gpu.download(&dq)?),
        &wq,
        BF16_TOL,
    );
    c.record(
        "flash_attention_backward.dk",
        shape.clone(),
        &widen(&gpu.download(&dk)?),
        &wk,
        BF16_TOL,
    );
    c.record(
        "flash_attention_backward.dv",
        shape,
        &widen(&gpu.download(&dv)?),
        &wv,
        BF16_TOL,
    );

    // Decoding shape against a partly filled cache, head dimension 128.
    let d = AttnDims {
        b: 3,
        tq: 1,
        s: 12,
        nh: 4,
        nkv: 1,
        hd: 128,
    };
    let r = cpu::Attn {
        b: d.b,
        tq: d.tq,
        s: d.s,
        nh: d.nh,
        nkv: d.nkv,
        hd: d.hd,
    };
    let past = vec![0i32, 5, 11];
    let (nq, nkv) = (d.b * d.nh * d.hd, d.b * d.s * d.nkv * d.hd);
    let (q, qf) = c.bf16s(nq, 1.0);
    let (k, kf) = c.bf16s(nkv, 1.0);
    let (v, vf) = c.bf16s(nkv, 1.0);
    let mut out = gpu.upload(&nan_bf16(nq))?;
    let mut lse = gpu.upload(&vec![f32::NAN; d.b * d.nh])?;
    let qkv = Qkv {
        q: &gpu.upload(&q)?,
        k: &gpu.upload(&k)?,
        v: &gpu.upload(&v)?,
    };
    gpu.flash_attention_forward(&mut out, &mut lse, qkv, &gpu.upload(&past)?, d)?;
    let (want, _) = cpu::attention_forward(&qf, &kf, &vf, &past, r);
    let shape = format!("{d:?} past={past:?}");
    c.record(
        "flash_attention_forward.decode",
        shape,
        &widen(&gpu.download(&out)?),
        &want,
        BF16_TOL,
    );
    Ok(())
}

fn logprob(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    // A vocabulary that is not a multiple of the block size, and logits of LLM-like spread.
    let (r, v, temperature) = (5, 3001, 0.7f32);
    let (z, zf) = c.bf16s(r * v, 8.0);
    let targets = c.ints(r, v as i32);
    let (dz, dt) = (gpu.upload(&z)?, gpu.upload(&targets)?);
    let mut logp = gpu.upload(&vec![f32::NAN; r])?;
    let mut ent = gpu.upload(&vec![f32::NAN; r])?;
    let mut lse = gpu.upload(&vec![f32::NAN; r])?;
    let shape = LogitRows {
        rows: r,
        vocab: v,
        inv_temp: 1.0 / temperature,
    };
    gpu.logprob_forward(&mut logp, &mut ent, &mut lse, &dz, &dt, shape)?;
    let (want_lp, want_ent) = cpu::logprob_forward(&zf, &targets, v, 1.0 / temperature);
    let logits = shape;
    let shape = format!("r={r} v={v} T={temperature}");
    c.record(
        "logprob_forward.logp",
        shape.clone(),
        &gpu.download(&logp)?,
        &want_lp,
        F32_TOL,
    );
    c.record(
        "logprob_forward.entropy",
        shape.clone(),
        &gpu.download(&ent)?,
        &want_ent,
        F32_TOL,
    );

    let dlogp = c.f32s(r, -1.0, 1.0);
    let mut dlogits = dz;
    gpu.logprob_backward_in_place(&mut dlogits, &lse, &dt, &gpu.upload(&dlogp)?, logits)?;
    let want = cpu::logprob_backward(&zf, &targets, &dlogp, v, 1.0 / temperature);
    c.record(
        "logprob_backward",
        shape,
        &widen(&gpu.download(&dlogits)?),
        &want,
        BF16_TOL,
    );
    Ok(())
}

fn grad_norm_and_adamw(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let n = 100_003;
    let g = c.f32s(n, -0.01, 0.01);
    let dg = gpu.upload(&g)?;
    for max_norm in [0.1f32, 1e6, 0.0] {
        let mut out = gpu.upload(&[f32::NAN; 2])?;
        let mut partial = gpu.zeros::<f32>(37)?;
        gpu.grad_norm(&mut out, &mut partial, &dg, n, max_norm)?;
        let (norm, coef) = cpu::grad_norm(&g, max_norm);
        c.record(
            "grad_norm",
            format!("n={n} max_norm={max_norm}"),
            &gpu.download(&out)?,
            &[norm, coef],
            1e-5,
        );
    }

    let mut p = c.f32s(n, -1.0, 1.0);
    let mut m = c.f32s(n, -0.01, 0.01);
    let mut v = c.f32s(n, 0.0, 1e-4);
    let clip = 0.5f32;
    let a = AdamStep::new(3, 1e-3, 0.9, 0.999, 1e-8, 0.1);
    let (mut dp, mut dm, mut dv) = (gpu.upload(&p)?, gpu.upload(&m)?, gpu.upload(&v)?);
    let mut weights = gpu.upload(&nan_bf16(n))?;
    let dclip = gpu.upload(&[clip])?;
    let state = AdamState {
        master: &mut dp,
        m: &mut dm,
        v: &mut dv,
    };
    gpu.adamw_step(state, Some(&mut weights.slice_mut(..)), &dg, &dclip, n, a)?;
    reference::adamw_step(&mut p, &g, &mut m, &mut v, clip, a);
    let shape = format!("n={n} t=3 clip={clip}");
    // The step moves weights by ~lr; compare the update, not the weights, so the tolerance bites.
    c.record(
        "adamw_step.master",
        shape.clone(),
        &gpu.download(&dp)?,
        &p,
        1e-6,
    );
    c.record("adamw_step.m", shape.clone(), &gpu.download(&dm)?, &m, 1e-5);
    c.record("adamw_step.v", shape.clone(), &gpu.download(&dv)?, &v, 1e-5);
    c.record(
        "adamw_step.bf16_copy",
        shape,
        &widen(&gpu.download(&weights)?),
        &p,
        BF16_TOL,
    );
    Ok(())
}

fn casts(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let n = 777;
    let x = c.f32s(n, -3.0, 3.0);
    let mut b = gpu.upload(&nan_bf16(n))?;
    gpu.cast_f32_to_bf16(&mut b, &gpu.upload(&x)?, n)?;
    let got = gpu.download(&b)?;
    let want: Vec<f32> = x.iter().map(|&v| bf16::from_f32(v).to_f32()).collect();
    c.record(
        "cast_f32_to_bf16",
        format!("n={n}"),
        &widen(&got),
        &want,
        0.0,
    );
    let mut f = gpu.upload(&vec![f32::NAN; n])?;
    gpu.cast_bf16_to_f32(&mut f, &b, n)?;
    c.record(
        "cast_bf16_to_f32",
        format!("n={n}"),
        &gpu.download(&f)?,
        &want,
        0.0,
    );
    let acc0 = c.f32s(n, -1.0, 1.0);
    let mut acc = gpu.upload(&acc0)?;
    gpu.accumulate_bf16_into_f32(&mut acc, &b, 0.25, n)?;
    let want: Vec<f32> = acc0.iter().zip(&want).map(|(a, w)| a + 0.25 * w).collect();
    c.record(
        "accumulate_bf16_into_f32",
        format!("n={n}"),
        &gpu.download(&acc)?,
        &want,
        1e-7,
    );
    Ok(())
}

fn kv_cache(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let d = AttnDims {
        b: 3,
        tq: 2,
        s: 10,
        nh: 4,
        nkv: 2,
        hd: 8,
    };
    let row = d.nkv * d.hd;
    let past = vec![0i32, 3, 8];
    let (k0, mut want_k) = c.bf16s(d.b * d.s * row, 1.0);
    let (v0, mut want_v) = c.bf16s(d.b * d.s * row, 1.0);
    let (k, kf) = c.bf16s(d.b * d.tq * row, 1.0);
    let (v, vf) = c.bf16s(d.b * d.tq * row, 1.0);
    let (mut kc, mut vc) = (gpu.upload(&k0)?, gpu.upload(&v0)?);
    gpu.kv_cache_append(
        &mut kc,
        &mut vc,
        &gpu.upload(&k)?,
        &gpu.upload(&v)?,
        &gpu.upload(&past)?,
        d,
    )?;
    for (b, &start) in past.iter().enumerate() {
        for t in 0..d.tq {
            let dst = (b * d.s + start as usize + t) * row;
            let src = (b * d.tq + t) * row;
            want_k[dst..dst + row].copy_from_slice(&kf[src..src + row]);
            want_v[dst..dst + row].copy_from_slice(&vf[src..src + row]);
        }
    }
    let shape = format!("{d:?} past={past:?}");
    c.record(
        "kv_cache_append.k",
        shape.clone(),
        &widen(&gpu.download(&kc)?),
        &want_k,
        0.0,
    );
    c.record(
        "kv_cache_append.v",
        shape,
        &widen(&gpu.download(&vc)?),
        &want_v,
        0.0,
    );
    Ok(())
}

fn sampling(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let (b, v) = (64, 5003);
    let cases = [
        SampleParams {
            temperature: 1.0,
            top_k: 0,
            top_p: 1.0,
        },
        SampleParams {
            temperature: 0.8,
            top_k: 50,
            top_p: 1.0,
        },
        SampleParams {
            temperature: 1.2,
            top_k: 0,
            top_p: 0.9,
        },
        SampleParams {
            temperature: 1.0,
            top_k: 20,
            top_p: 0.5,
        },
        SampleParams {
            temperature: 0.0,
            top_k: 0,
            top_p: 1.0,
        },
    ];
    for p in cases {
        let (z, zf) = c.bf16s(b * v, 6.0);
        let u = c.f32s(b, 0.0, 1.0);
        let mut tokens = gpu.upload(&vec![-1i32; b])?;
        let mut logp = gpu.upload(&vec![f32::NAN; b])?;
        gpu.sample_rows(
            &mut tokens,
            &mut logp,
            &gpu.upload(&z)?,
            &gpu.upload(&u)?,
            Rows { n: b, c: v },
            p,
        )?;
        let (got_t, got_lp) = (gpu.download(&tokens)?, gpu.download(&logp)?);
        // A row whose draw falls within f32 rounding of a token boundary may pick the
        // neighbour; such rows are compared on nothing but the kept set being the same.
        let mut mismatched = 0usize;
        let (mut want_lp, mut have_lp) = (vec![], vec![]);
        for row in 0..b {
            let (t, lp, margin) = cpu::sample_row(&zf[row * v..(row + 1) * v], p, u[row]);
            if got_t[row] == t {
                want_lp.push(lp);
                have_lp.push(got_lp[row]);
            } else if margin > 1e-4 {
                mismatched += 1;
            }
        }
        let shape = format!("b={b} v={v} {p:?}");
        c.record(
            "sample_rows.logp",
            shape.clone(),
            &have_lp,
            &want_lp,
            F32_TOL,
        );
        c.out.push(KernelCheck {
            kernel: "sample_rows.tokens".into(),
            shape,
            rel_err: mismatched as f64 / b as f64,
            max_abs_err: mismatched as f64,
            tolerance: 0.0,
            passed: mismatched == 0,
            error: None,
        });
    }
    Ok(())
}

fn gemm(gpu: &Gpu, c: &mut Checks) -> Result<()> {
    let (m, n, k) = (37, 53, 96);
    let shapes = [
        ("gemm.linear", GemmShape::linear(m, n, k)),
        ("gemm.linear_dinput", GemmShape::linear_dinput(m, n, k)),
        ("gemm.linear_dweight", GemmShape::linear_dweight(m, n, k)),
        (
            "gemm.accumulate",
            GemmShape::linear(m, n, k).with_alpha(0.5).with_beta(1.0),
        ),
    ];
    for (name, s) in shapes {
        let (a, af) = c.bf16s(s.m * s.k, 1.0);
        let (b, bf) = c.bf16s(s.k * s.n, 1.0);
        let (c0, mut want) = c.bf16s(s.m * s.n, 1.0);
        let mut out = gpu.upload(&if s.beta == 0.0 {
            nan_bf16(s.m * s.n)
        } else {
            c0
        })?;
        if s.beta == 0.0 {
            want.fill(0.0);
        }
        gpu.gemm(s, &gpu.upload(&a)?, &gpu.upload(&b)?, &mut out)?;
        cpu::gemm(s, &af, &bf, &mut want);
        c.record(
            name,
            format!("{s:?}"),
            &widen(&gpu.download(&out)?),
            &want,
            BF16_TOL,
        );
    }
    Ok(())
}
