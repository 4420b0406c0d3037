//! Typed launches of the kernels in `kernels/`, one method per kernel (or per forward /
//! backward pair of kernels). Each checks buffer lengths against the kernel's layout contract
//! (the comment above the kernel in its `.cu` file) before launching.

use crate::device::{Arg, Gpu};
use anyhow::{Result, ensure};
use cudarc::driver::{DevicePtr, DevicePtrMut, LaunchConfig};
use half::bf16;

const THREADS: u32 = 256;

/// One block per row.
fn per_row(rows: usize, threads: u32) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows as u32, 1, 1),
        block_dim: (threads, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One warp per row, 8 warps a block.
fn per_warp(rows: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (rows.div_ceil(8).max(1) as u32, 1, 1),
        block_dim: (256, 1, 1),
        shared_mem_bytes: 0,
    }
}

/// One thread per element.
fn per_element(n: usize) -> LaunchConfig {
    LaunchConfig {
        grid_dim: (n.div_ceil(THREADS as usize).max(1) as u32, 1, 1),
        block_dim: (THREADS, 1, 1),
        shared_mem_bytes: 0,
    }
}

fn need(what: &str, have: usize, want: usize) -> Result<()> {
    ensure!(
        have >= want,
        "{what} has {have} elements, the launch needs {want}"
    );
    Ok(())
}

/// Shapes of one attention call (see `kernels/attention.cu`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct AttnDims {
    /// Batch rows.
    pub b: usize,
    /// New query positions per row.
    pub tq: usize,
    /// Key/value capacity per row (the sequence length when training).
    pub s: usize,
    /// Query heads.
    pub nh: usize,
    /// Key/value heads; `nh` is a multiple of it (grouped-query attention).
    pub nkv: usize,
    /// Head dimension.
    pub hd: usize,
}

impl AttnDims {
    fn check(&self) -> Result<()> {
        ensure!(
            self.nkv > 0 && self.nh.is_multiple_of(self.nkv),
            "attention: {} query heads are not a multiple of {} key/value heads",
            self.nh,
            self.nkv
        );
        ensure!(
            self.tq <= self.s,
            "attention: {} queries exceed capacity {}",
            self.tq,
            self.s
        );
        Ok(())
    }
    fn q_len(&self) -> usize {
        self.b * self.tq * self.nh * self.hd
    }
    fn kv_len(&self) -> usize {
        self.b * self.s * self.nkv * self.hd
    }
    fn att_len(&self) -> usize {
        self.b * self.nh * self.tq * self.s
    }
    /// Rows of per-query statistics (`lse`, `delta`): `[b, nh, tq]`.
    fn rows(&self) -> usize {
        self.b * self.nh * self.tq
    }
}

/// AdamW's per-step scalars, computed on the host in f64 like the CPU reference.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamStep {
    /// `lr / (1 - beta1^t)`.
    pub step_size: f32,
    /// `1 - lr · weight_decay` (1 for tensors exempt from decay).
    pub decay: f32,
    /// Decay of the first moment.
    pub beta1: f32,
    /// Decay of the second moment.
    pub beta2: f32,
    /// Added to the denominator `sqrt(v) / bc2_sqrt`.
    pub eps: f32,
    /// `sqrt(1 - beta2^t)`.
    pub bc2_sqrt: f32,
}

impl AdamStep {
    /// The scalars of step `t` (1-based) of torch's AdamW.
    pub fn new(t: u64, lr: f64, beta1: f64, beta2: f64, eps: f64, weight_decay: f64) -> Self {
        Self {
            step_size: (lr / (1.0 - beta1.powi(t as i32))) as f32,
            decay: (1.0 - lr * weight_decay) as f32,
            beta1: beta1 as f32,
            beta2: beta2 as f32,
            eps: eps as f32,
            bc2_sqrt: (1.0 - beta2.powi(t as i32)).sqrt() as f32,
        }
    }
}

/// The sampling kernel's arguments: the model contract's `SamplingParams` less the length.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct SampleParams {
    /// 0 or less: greedy.
    pub temperature: f32,
    /// 0 keeps every token.
    pub top_k: usize,
    /// 1 keeps every token.
    pub top_p: f32,
}

impl From<&sqlrft_model::sampling::SamplingParams> for SampleParams {
    fn from(p: &sqlrft_model::sampling::SamplingParams) -> Self {
        Self {
            temperature: p.temperature,
            top_k: p.top_k,
            top_p: p.top_p,
        }
    }
}

/// `n` rows of `c` values: the shape of a row-wise kernel.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Rows {
    /// Number of rows.
    pub n: usize,
    /// Values per row.
    pub c: usize,
}

/// `n` positions of `heads` heads of `hd` values each: what RoPE rotates.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct HeadRows {
    /// Positions (tokens).
    pub n: usize,
    /// Heads per position.
    pub heads: usize,
    /// Values per head; even, as RoPE rotates pairs.
    pub hd: usize,
}

/// `rows` rows of `vocab` logits, read at temperature `1 / inv_temp`.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct LogitRows {
    /// Rows of logits.
    pub rows: usize,
    /// Logits per row.
    pub vocab: usize,
    /// `1 / temperature`, multiplied into every logit.
    pub inv_temp: f32,
}

/// The query, key and value tensors of one attention call (layouts in `kernels/attention.cu`).
pub struct Qkv<'a> {
    /// Queries, `[b, tq, nh, hd]`.
    pub q: &'a dyn DevicePtr<bf16>,
    /// Keys, `[b, s, nkv, hd]`.
    pub k: &'a dyn DevicePtr<bf16>,
    /// Values, `[b, s, nkv, hd]`.
    pub v: &'a dyn DevicePtr<bf16>,
}

/// Where an attention backward writes the gradients of q, k and v.
pub struct QkvGrads<'a> {
    /// Gradient of the queries, laid out like `q`.
    pub dq: &'a mut dyn DevicePtrMut<bf16>,
    /// Gradient of the keys, laid out like `k`.
    pub dk: &'a mut dyn DevicePtrMut<bf16>,
    /// Gradient of the values, laid out like `v`.
    pub dv: &'a mut dyn DevicePtrMut<bf16>,
}

/// What an RMSNorm forward keeps for its backward: its input, its weight and each row's
/// `1 / rms`.
pub struct NormSaved<'a> {
    /// The forward's input, `[n, c]`.
    pub inp: &'a dyn DevicePtr<bf16>,
    /// The norm's weight, `[c]`.
    pub weight: &'a dyn DevicePtr<bf16>,
    /// Each row's `1 / rms` from the forward, `[n]`.
    pub rstd: &'a dyn DevicePtr<f32>,
}

/// What a flash attention forward keeps for its backward: its output and each query row's
/// log-sum-exp.
pub struct FlashSaved<'a> {
    /// The forward's output, laid out like `q`.
    pub out: &'a dyn DevicePtr<bf16>,
    /// Log-sum-exp of each query row's scaled scores, `[b, nh, tq]`.
    pub lse: &'a dyn DevicePtr<f32>,
}

/// What AdamW keeps per parameter: the fp32 master weights and both moments.
pub struct AdamState<'a> {
    /// fp32 master weights, updated in place.
    pub master: &'a mut dyn DevicePtrMut<f32>,
    /// First moment: running mean of the gradients.
    pub m: &'a mut dyn DevicePtrMut<f32>,
    /// Second moment: running mean of the squared gradients.
    pub v: &'a mut dyn DevicePtrMut<f32>,
}

impl Gpu {
    /// `out[t, :] = table[tokens[t], :]` for `n` tokens of width `c`.
    pub fn embedding_forward(
        &self,
        out: &mut impl DevicePtrMut<bf16>,
        tokens: &impl DevicePtr<i32>,
        table: &impl DevicePtr<bf16>,
        n: usize,
        c: usize,
    ) -> Result<()> {
        need("embedding out", out.len(), n * c)?;
        need("embedding tokens", tokens.len(), n)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (t, _t) = tokens.device_ptr(s);
        let (w, _w) = table.device_ptr(s);
        let args = [
            Arg::Ptr(o),
            Arg::Ptr(t),
            Arg::Ptr(w),
            Arg::I32(n as i32),
            Arg::I32(c as i32),
        ];
        self.launch("embedding_forward", per_row(n, THREADS), &args)
    }

    /// Accumulates `dtable[tokens[t], :] += dout[t, :]` in fp32. Repeated tokens add
    /// atomically, so their order of summation varies between runs.
    pub fn embedding_backward(
        &self,
        dtable: &mut impl DevicePtrMut<f32>,
        dout: &impl DevicePtr<bf16>,
        tokens: &impl DevicePtr<i32>,
        n: usize,
        c: usize,
    ) -> Result<()> {
        need("embedding dout", dout.len(), n * c)?;
        need("embedding tokens", tokens.len(), n)?;
        let s = &self.stream;
        let (d, _d) = dtable.device_ptr_mut(s);
        let (g, _g) = dout.device_ptr(s);
        let (t, _t) = tokens.device_ptr(s);
        let args = [
            Arg::Ptr(d),
            Arg::Ptr(g),
            Arg::Ptr(t),
            Arg::I32(n as i32),
            Arg::I32(c as i32),
        ];
        self.launch("embedding_backward", per_row(n, THREADS), &args)
    }

    /// RMSNorm of `n` rows of `c`: `out = x / sqrt(mean(x²) + eps) · weight`; keeps each
    /// row's `1 / rms` in `rstd` for the backward.
    pub fn rmsnorm_forward(
        &self,
        out: &mut impl DevicePtrMut<bf16>,
        rstd: &mut impl DevicePtrMut<f32>,
        inp: &impl DevicePtr<bf16>,
        weight: &impl DevicePtr<bf16>,
        Rows { n, c }: Rows,
        eps: f32,
    ) -> Result<()> {
        need("rmsnorm out", out.len(), n * c)?;
        need("rmsnorm rstd", rstd.len(), n)?;
        need("rmsnorm inp", inp.len(), n * c)?;
        need("rmsnorm weight", weight.len(), c)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (r, _r) = rstd.device_ptr_mut(s);
        let (x, _x) = inp.device_ptr(s);
        let (w, _w) = weight.device_ptr(s);
        let args = [
            Arg::Ptr(o),
            Arg::Ptr(r),
            Arg::Ptr(x),
            Arg::Ptr(w),
            Arg::I32(n as i32),
            Arg::I32(c as i32),
            Arg::F32(eps),
        ];
        self.launch("rmsnorm_forward", per_row(n, THREADS), &args)
    }

    /// Accumulates into `dinp` (bf16) and `dweight` (fp32).
    pub fn rmsnorm_backward(
        &self,
        dinp: &mut impl DevicePtrMut<bf16>,
        dweight: &mut impl DevicePtrMut<f32>,
        dout: &impl DevicePtr<bf16>,
        saved: NormSaved<'_>,
        Rows { n, c }: Rows,
    ) -> Result<()> {
        let NormSaved { inp, weight, rstd } = saved;
        need("rmsnorm dinp", dinp.len(), n * c)?;
        need("rmsnorm dweight", dweight.len(), c)?;
        need("rmsnorm dout", dout.len(), n * c)?;
        need("rmsnorm inp", inp.len(), n * c)?;
        need("rmsnorm weight", weight.len(), c)?;
        need("rmsnorm rstd", rstd.len(), n)?;
        let s = &self.stream;
        let (di, _di) = dinp.device_ptr_mut(s);
        let (dw, _dw) = dweight.device_ptr_mut(s);
        let (g, _g) = dout.device_ptr(s);
        let (x, _x) = inp.device_ptr(s);
        let (w, _w) = weight.device_ptr(s);
        let (r, _r) = rstd.device_ptr(s);
        // Enough blocks to fill the GPU; each folds its rows' dweight in shared memory first.
        let blocks = n.min(self.info.multiprocessors.max(1) as usize * 4).max(1);
        let cfg = LaunchConfig {
            shared_mem_bytes: (c * 4) as u32,
            ..per_row(blocks, THREADS)
        };
        let args = [
            Arg::Ptr(di),
            Arg::Ptr(dw),
            Arg::Ptr(g),
            Arg::Ptr(x),
            Arg::Ptr(w),
            Arg::Ptr(r),
            Arg::I32(n as i32),
            Arg::I32(c as i32),
        ];
        self.launch("rmsnorm_backward", cfg, &args)
    }

    /// Rotates `x` ([n, heads, hd]) in place; `backward` applies the inverse rotation.
    pub fn rope(
        &self,
        x: &mut impl DevicePtrMut<bf16>,
        positions: &impl DevicePtr<i32>,
        inv_freq: &impl DevicePtr<f32>,
        HeadRows { n, heads, hd }: HeadRows,
        backward: bool,
    ) -> Result<()> {
        ensure!(hd.is_multiple_of(2), "rope: head dimension {hd} is odd");
        need("rope x", x.len(), n * heads * hd)?;
        need("rope positions", positions.len(), n)?;
        need("rope inv_freq", inv_freq.len(), hd / 2)?;
        let s = &self.stream;
        let (xp, _x) = x.device_ptr_mut(s);
        let (p, _p) = positions.device_ptr(s);
        let (f, _f) = inv_freq.device_ptr(s);
        let args = [
            Arg::Ptr(xp),
            Arg::Ptr(p),
            Arg::Ptr(f),
            Arg::I32(n as i32),
            Arg::I32(heads as i32),
            Arg::I32(hd as i32),
        ];
        let name = if backward {
            "rope_backward"
        } else {
            "rope_forward"
        };
        self.launch(name, per_element(n * heads * hd / 2), &args)
    }

    /// `x += y` over `n` elements (the residual stream).
    pub fn residual_add(
        &self,
        x: &mut impl DevicePtrMut<bf16>,
        y: &impl DevicePtr<bf16>,
        n: usize,
    ) -> Result<()> {
        need("residual x", x.len(), n)?;
        need("residual y", y.len(), n)?;
        let s = &self.stream;
        let (xp, _x) = x.device_ptr_mut(s);
        let (yp, _y) = y.device_ptr(s);
        let args = [Arg::Ptr(xp), Arg::Ptr(xp), Arg::Ptr(yp), Arg::I64(n as i64)];
        self.launch("residual_add", per_element(n), &args)
    }

    /// `x[r, :] += bias` for `n` rows of width `c`.
    pub fn bias_add(
        &self,
        x: &mut impl DevicePtrMut<bf16>,
        bias: &impl DevicePtr<bf16>,
        n: usize,
        c: usize,
    ) -> Result<()> {
        need("bias_add x", x.len(), n * c)?;
        need("bias_add bias", bias.len(), c)?;
        let s = &self.stream;
        let (xp, _x) = x.device_ptr_mut(s);
        let (b, _b) = bias.device_ptr(s);
        let args = [
            Arg::Ptr(xp),
            Arg::Ptr(b),
            Arg::I32(n as i32),
            Arg::I32(c as i32),
        ];
        self.launch("bias_add", per_element(n * c), &args)
    }

    /// Accumulates `dbias += Σ_rows dout`.
    pub fn bias_backward(
        &self,
        dbias: &mut impl DevicePtrMut<f32>,
        dout: &impl DevicePtr<bf16>,
        n: usize,
        c: usize,
    ) -> Result<()> {
        need("bias dbias", dbias.len(), c)?;
        need("bias dout", dout.len(), n * c)?;
        let s = &self.stream;
        let (d, _d) = dbias.device_ptr_mut(s);
        let (g, _g) = dout.device_ptr(s);
        let args = [
            Arg::Ptr(d),
            Arg::Ptr(g),
            Arg::I32(n as i32),
            Arg::I32(c as i32),
        ];
        self.launch("bias_backward", per_element(c), &args)
    }

    /// Causal GQA attention forward: writes the probabilities `att` and `out`.
    pub fn attention_forward(
        &self,
        out: &mut impl DevicePtrMut<bf16>,
        att: &mut impl DevicePtrMut<f32>,
        Qkv { q, k, v }: Qkv<'_>,
        past: &impl DevicePtr<i32>,
        d: AttnDims,
    ) -> Result<()> {
        d.check()?;
        need("attention out", out.len(), d.q_len())?;
        need("attention att", att.len(), d.att_len())?;
        need("attention q", q.len(), d.q_len())?;
        need("attention k", k.len(), d.kv_len())?;
        need("attention v", v.len(), d.kv_len())?;
        need("attention past", past.len(), d.b)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (a, _a) = att.device_ptr_mut(s);
        let (qp, _q) = q.device_ptr(s);
        let (kp, _k) = k.device_ptr(s);
        let (vp, _v) = v.device_ptr(s);
        let (pp, _p) = past.device_ptr(s);
        let dims = [d.b, d.tq, d.s, d.nh, d.nkv, d.hd].map(|x| Arg::I32(x as i32));
        let scale = 1.0 / (d.hd as f32).sqrt();
        let mut args = vec![Arg::Ptr(a), Arg::Ptr(qp), Arg::Ptr(kp), Arg::Ptr(pp)];
        args.extend(dims);
        args.push(Arg::F32(scale));
        self.launch(
            "attention_softmax_forward",
            per_row(d.b * d.nh * d.tq, THREADS),
            &args,
        )?;
        let mut args = vec![Arg::Ptr(o), Arg::Ptr(a), Arg::Ptr(vp), Arg::Ptr(pp)];
        args.extend(dims);
        self.launch("attention_values_forward", per_element(d.q_len()), &args)
    }

    /// Causal GQA attention backward for training (`tq == s`, no cache): writes `dq`, `dk`,
    /// `dv`, using `ds` (same shape as `att`) as scratch.
    pub fn attention_backward(
        &self,
        QkvGrads { dq, dk, dv }: QkvGrads<'_>,
        ds: &mut impl DevicePtrMut<f32>,
        dout: &impl DevicePtr<bf16>,
        att: &impl DevicePtr<f32>,
        Qkv { q, k, v }: Qkv<'_>,
        d: AttnDims,
    ) -> Result<()> {
        d.check()?;
        ensure!(
            d.tq == d.s,
            "attention backward runs without a cache (tq == s)"
        );
        need("attention dq", dq.len(), d.q_len())?;
        need("attention dk", dk.len(), d.kv_len())?;
        need("attention dv", dv.len(), d.kv_len())?;
        need("attention ds", ds.len(), d.att_len())?;
        need("attention dout", dout.len(), d.q_len())?;
        need("attention att", att.len(), d.att_len())?;
        need("attention q", q.len(), d.q_len())?;
        need("attention k", k.len(), d.kv_len())?;
        need("attention v", v.len(), d.kv_len())?;
        let s = &self.stream;
        let (dqp, _dq) = dq.device_ptr_mut(s);
        let (dkp, _dk) = dk.device_ptr_mut(s);
        let (dvp, _dv) = dv.device_ptr_mut(s);
        let (dsp, _ds) = ds.device_ptr_mut(s);
        let (go, _go) = dout.device_ptr(s);
        let (a, _a) = att.device_ptr(s);
        let (qp, _q) = q.device_ptr(s);
        let (kp, _k) = k.device_ptr(s);
        let (vp, _v) = v.device_ptr(s);
        let dims = [d.b, d.tq, d.nh, d.nkv, d.hd].map(|x| Arg::I32(x as i32));
        let scale = 1.0 / (d.hd as f32).sqrt();
        let mut args = vec![Arg::Ptr(dsp), Arg::Ptr(a), Arg::Ptr(go), Arg::Ptr(vp)];
        args.extend(dims);
        args.push(Arg::F32(scale));
        self.launch(
            "attention_softmax_backward",
            per_row(d.b * d.nh * d.tq, THREADS),
            &args,
        )?;
        let mut args = vec![Arg::Ptr(dqp), Arg::Ptr(dsp), Arg::Ptr(kp)];
        args.extend(dims);
        self.launch("attention_backward_dq", per_element(d.q_len()), &args)?;
        let mut args = vec![
            Arg::Ptr(dkp),
            Arg::Ptr(dvp),
            Arg::Ptr(dsp),
            Arg::Ptr(a),
            Arg::Ptr(qp),
            Arg::Ptr(go),
        ];
        args.extend(dims);
        self.launch("attention_backward_dkv", per_element(d.kv_len()), &args)
    }

    /// Causal GQA attention forward without materialised probabilities: writes `out` and each
    /// query row's log-sum-exp `lse` (`[b, nh, tq]`) for the backward pass.
    pub fn flash_attention_forward(
        &self,
        out: &mut impl DevicePtrMut<bf16>,
        lse: &mut impl DevicePtrMut<f32>,
        Qkv { q, k, v }: Qkv<'_>,
        past: &impl DevicePtr<i32>,
        d: AttnDims,
    ) -> Result<()> {
        d.check()?;
        ensure!(
            d.hd <= 128,
            "flash attention handles head dimensions up to 128, not {}",
            d.hd
        );
        need("attention out", out.len(), d.q_len())?;
        need("attention lse", lse.len(), d.rows())?;
        need("attention q", q.len(), d.q_len())?;
        need("attention k", k.len(), d.kv_len())?;
        need("attention v", v.len(), d.kv_len())?;
        need("attention past", past.len(), d.b)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (l, _l) = lse.device_ptr_mut(s);
        let (qp, _q) = q.device_ptr(s);
        let (kp, _k) = k.device_ptr(s);
        let (vp, _v) = v.device_ptr(s);
        let (pp, _p) = past.device_ptr(s);
        let mut args = vec![
            Arg::Ptr(o),
            Arg::Ptr(l),
            Arg::Ptr(qp),
            Arg::Ptr(kp),
            Arg::Ptr(vp),
            Arg::Ptr(pp),
        ];
        args.extend([d.b, d.tq, d.s, d.nh, d.nkv, d.hd].map(|x| Arg::I32(x as i32)));
        args.push(Arg::F32(1.0 / (d.hd as f32).sqrt()));
        self.launch("flash_attention_forward", per_warp(d.rows()), &args)
    }

    /// Flash attention backward for training (`tq == s`): writes `dq`, `dk`, `dv` from the
    /// forward's `out` and `lse`; `delta` (`[b, nh, tq]`) is scratch.
    pub fn flash_attention_backward(
        &self,
        QkvGrads { dq, dk, dv }: QkvGrads<'_>,
        delta: &mut impl DevicePtrMut<f32>,
        dout: &impl DevicePtr<bf16>,
        FlashSaved { out, lse }: FlashSaved<'_>,
        Qkv { q, k, v }: Qkv<'_>,
        d: AttnDims,
    ) -> Result<()> {
        d.check()?;
        ensure!(
            d.tq == d.s,
            "attention backward runs without a cache (tq == s)"
        );
        ensure!(
            d.hd <= 128,
            "flash attention handles head dimensions up to 128, not {}",
            d.hd
        );
        need("attention dq", dq.len(), d.q_len())?;
        need("attention dk", dk.len(), d.kv_len())?;
        need("attention dv", dv.len(), d.kv_len())?;
        need("attention delta", delta.len(), d.rows())?;
        need("attention dout", dout.len(), d.q_len())?;
        need("attention out", out.len(), d.q_len())?;
        need("attention lse", lse.len(), d.rows())?;
        need("attention q", q.len(), d.q_len())?;
        need("attention k", k.len(), d.kv_len())?;
        need("attention v", v.len(), d.kv_len())?;
        let s = &self.stream;
        let (dqp, _dq) = dq.device_ptr_mut(s);
        let (dkp, _dk) = dk.device_ptr_mut(s);
        let (dvp, _dv) = dv.device_ptr_mut(s);
        let (dl, _dl) = delta.device_ptr_mut(s);
        let (go, _go) = dout.device_ptr(s);
        let (o, _o) = out.device_ptr(s);
        let (l, _l) = lse.device_ptr(s);
        let (qp, _q) = q.device_ptr(s);
        let (kp, _k) = k.device_ptr(s);
        let (vp, _v) = v.device_ptr(s);
        let scale = Arg::F32(1.0 / (d.hd as f32).sqrt());
        let (b, t, nh, nkv, hd) = [d.b, d.tq, d.nh, d.nkv, d.hd]
            .map(|x| Arg::I32(x as i32))
            .into();
        self.launch(
            "flash_attention_backward_delta",
            per_warp(d.rows()),
            &[Arg::Ptr(dl), Arg::Ptr(go), Arg::Ptr(o), b, t, nh, hd],
        )?;
        let args = [
            Arg::Ptr(dqp),
            Arg::Ptr(qp),
            Arg::Ptr(kp),
            Arg::Ptr(vp),
            Arg::Ptr(go),
            Arg::Ptr(l),
            Arg::Ptr(dl),
            b,
            t,
            nh,
            nkv,
            hd,
            scale,
        ];
        self.launch("flash_attention_backward_dq", per_warp(d.rows()), &args)?;
        let args = [
            Arg::Ptr(dkp),
            Arg::Ptr(dvp),
            Arg::Ptr(qp),
            Arg::Ptr(kp),
            Arg::Ptr(vp),
            Arg::Ptr(go),
            Arg::Ptr(l),
            Arg::Ptr(dl),
            b,
            t,
            nh,
            nkv,
            hd,
            scale,
        ];
        self.launch(
            "flash_attention_backward_dkv",
            per_warp(d.b * d.nkv * d.tq),
            &args,
        )
    }

    /// `out = silu(gate) · up` over `n` elements.
    pub fn swiglu_forward(
        &self,
        out: &mut impl DevicePtrMut<bf16>,
        gate: &impl DevicePtr<bf16>,
        up: &impl DevicePtr<bf16>,
        n: usize,
    ) -> Result<()> {
        need("swiglu out", out.len(), n)?;
        need("swiglu gate", gate.len(), n)?;
        need("swiglu up", up.len(), n)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (g, _g) = gate.device_ptr(s);
        let (u, _u) = up.device_ptr(s);
        let args = [Arg::Ptr(o), Arg::Ptr(g), Arg::Ptr(u), Arg::I64(n as i64)];
        self.launch("swiglu_forward", per_element(n), &args)
    }

    /// Overwrites `dgate` and `dup` (fresh GEMM inputs, nothing to accumulate into) from
    /// `dout` and the forward's inputs.
    pub fn swiglu_backward(
        &self,
        dgate: &mut impl DevicePtrMut<bf16>,
        dup: &mut impl DevicePtrMut<bf16>,
        dout: &impl DevicePtr<bf16>,
        gate: &impl DevicePtr<bf16>,
        up: &impl DevicePtr<bf16>,
        n: usize,
    ) -> Result<()> {
        for (what, len) in [
            ("dgate", dgate.len()),
            ("dup", dup.len()),
            ("dout", dout.len()),
            ("gate", gate.len()),
            ("up", up.len()),
        ] {
            need(what, len, n)?;
        }
        let s = &self.stream;
        let (dg, _dg) = dgate.device_ptr_mut(s);
        let (du, _du) = dup.device_ptr_mut(s);
        let (go, _go) = dout.device_ptr(s);
        let (g, _g) = gate.device_ptr(s);
        let (u, _u) = up.device_ptr(s);
        let args = [
            Arg::Ptr(dg),
            Arg::Ptr(du),
            Arg::Ptr(go),
            Arg::Ptr(g),
            Arg::Ptr(u),
            Arg::I64(n as i64),
        ];
        self.launch("swiglu_backward", per_element(n), &args)
    }

    /// Log-probs, entropies and log-sum-exps of `r` rows of `v` logits at temperature `1/inv_temp`.
    pub fn logprob_forward(
        &self,
        logp: &mut impl DevicePtrMut<f32>,
        entropy: &mut impl DevicePtrMut<f32>,
        lse: &mut impl DevicePtrMut<f32>,
        logits: &impl DevicePtr<bf16>,
        targets: &impl DevicePtr<i32>,
        shape: LogitRows,
    ) -> Result<()> {
        let LogitRows {
            rows: r,
            vocab: v,
            inv_temp,
        } = shape;
        need("logprob logp", logp.len(), r)?;
        need("logprob entropy", entropy.len(), r)?;
        need("logprob lse", lse.len(), r)?;
        need("logprob logits", logits.len(), r * v)?;
        need("logprob targets", targets.len(), r)?;
        let s = &self.stream;
        let (lp, _lp) = logp.device_ptr_mut(s);
        let (en, _en) = entropy.device_ptr_mut(s);
        let (ls, _ls) = lse.device_ptr_mut(s);
        let (z, _z) = logits.device_ptr(s);
        let (t, _t) = targets.device_ptr(s);
        let args = [
            Arg::Ptr(lp),
            Arg::Ptr(en),
            Arg::Ptr(ls),
            Arg::Ptr(z),
            Arg::Ptr(t),
            Arg::I32(r as i32),
            Arg::I32(v as i32),
            Arg::F32(inv_temp),
        ];
        self.launch("logprob_forward", per_row(r, 1024), &args)
    }

    /// Overwrites the chunk's `logits` with their gradient for upstream `dlogp` (the buffer is
    /// reused by the next chunk anyway, so no second [r, v] buffer is needed).
    pub fn logprob_backward_in_place(
        &self,
        logits: &mut impl DevicePtrMut<bf16>,
        lse: &impl DevicePtr<f32>,
        targets: &impl DevicePtr<i32>,
        dlogp: &impl DevicePtr<f32>,
        shape: LogitRows,
    ) -> Result<()> {
        let LogitRows {
            rows: r,
            vocab: v,
            inv_temp,
        } = shape;
        need("logprob logits", logits.len(), r * v)?;
        need("logprob lse", lse.len(), r)?;
        need("logprob targets", targets.len(), r)?;
        need("logprob dlogp", dlogp.len(), r)?;
        let s = &self.stream;
        let (z, _z) = logits.device_ptr_mut(s);
        let (l, _l) = lse.device_ptr(s);
        let (t, _t) = targets.device_ptr(s);
        let (g, _g) = dlogp.device_ptr(s);
        let args = [
            Arg::Ptr(z),
            Arg::Ptr(z),
            Arg::Ptr(l),
            Arg::Ptr(t),
            Arg::Ptr(g),
            Arg::I32(r as i32),
            Arg::I32(v as i32),
            Arg::F32(inv_temp),
        ];
        self.launch("logprob_backward", per_row(r, 1024), &args)
    }

    /// Global L2 norm of `g` into `out[0]` and the clip coefficient into `out[1]`
    /// (`partial` is scratch; its length sets the first pass's block count).
    pub fn grad_norm(
        &self,
        out: &mut impl DevicePtrMut<f32>,
        partial: &mut (impl DevicePtrMut<f32> + DevicePtr<f32>),
        g: &impl DevicePtr<f32>,
        n: usize,
        max_norm: f32,
    ) -> Result<()> {
        let blocks = partial.len();
        self.grad_norm_partial_into(partial, g, n)?;
        self.grad_norm_finish(out, partial, blocks, max_norm)
    }

    /// First pass: one sum of squares of `g` per element of `partial` (one block each). Several
    /// tensors write disjoint stretches of one partial buffer, then one finish reduces them all.
    pub fn grad_norm_partial_into(
        &self,
        partial: &mut impl DevicePtrMut<f32>,
        g: &impl DevicePtr<f32>,
        n: usize,
    ) -> Result<()> {
        need("grad_norm g", g.len(), n)?;
        let blocks = partial.len();
        ensure!(blocks > 0, "grad_norm needs at least one partial sum");
        let s = &self.stream;
        let (p, _p) = partial.device_ptr_mut(s);
        let (gp, _g) = g.device_ptr(s);
        let args = [Arg::Ptr(p), Arg::Ptr(gp), Arg::I64(n as i64)];
        self.launch("grad_norm_partial", per_row(blocks, THREADS), &args)
    }

    /// Second pass: `out[0]` = the norm over `nparts` partial sums, `out[1]` = torch's clip
    /// coefficient for `max_norm` (1 when `max_norm <= 0`).
    pub fn grad_norm_finish(
        &self,
        out: &mut impl DevicePtrMut<f32>,
        partial: &impl DevicePtr<f32>,
        nparts: usize,
        max_norm: f32,
    ) -> Result<()> {
        need("grad_norm out", out.len(), 2)?;
        need("grad_norm partial", partial.len(), nparts)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (p, _p) = partial.device_ptr(s);
        let args = [
            Arg::Ptr(o),
            Arg::Ptr(p),
            Arg::I32(nparts as i32),
            Arg::F32(max_norm),
        ];
        self.launch("grad_norm_finish", per_row(1, 1024), &args)
    }

    /// One AdamW step over `n` elements; `clip` points at the clip coefficient
    /// (`grad_norm`'s `out[1..]`). `weights`, when given, receives the bf16 copy.
    pub fn adamw_step(
        &self,
        AdamState { master, m, v }: AdamState<'_>,
        weights: Option<&mut cudarc::driver::CudaViewMut<'_, bf16>>,
        grad: &impl DevicePtr<f32>,
        clip: &impl DevicePtr<f32>,
        n: usize,
        a: AdamStep,
    ) -> Result<()> {
        need("adamw master", master.len(), n)?;
        need("adamw grad", grad.len(), n)?;
        need("adamw m", m.len(), n)?;
        need("adamw v", v.len(), n)?;
        need("adamw clip", clip.len(), 1)?;
        let s = &self.stream;
        let (w, _w) = match weights {
            Some(w) => {
                need("adamw weights", w.len(), n)?;
                let (p, g) = w.device_ptr_mut(s);
                (p, Some(g))
            }
            None => (0, None),
        };
        let (mp, _mp) = master.device_ptr_mut(s);
        let (gp, _g) = grad.device_ptr(s);
        let (m1, _m1) = m.device_ptr_mut(s);
        let (v1, _v1) = v.device_ptr_mut(s);
        let (c, _c) = clip.device_ptr(s);
        let args = [
            Arg::Ptr(mp),
            Arg::Ptr(w),
            Arg::Ptr(gp),
            Arg::Ptr(m1),
            Arg::Ptr(v1),
            Arg::Ptr(c),
            Arg::I64(n as i64),
            Arg::F32(a.step_size),
            Arg::F32(a.decay),
            Arg::F32(a.beta1),
            Arg::F32(a.beta2),
            Arg::F32(a.eps),
            Arg::F32(a.bc2_sqrt),
        ];
        self.launch("adamw_step", per_element(n), &args)
    }

    /// `out = bf16(inp)` over `n` elements, rounding to nearest even.
    pub fn cast_f32_to_bf16(
        &self,
        out: &mut impl DevicePtrMut<bf16>,
        inp: &impl DevicePtr<f32>,
        n: usize,
    ) -> Result<()> {
        need("cast out", out.len(), n)?;
        need("cast inp", inp.len(), n)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (i, _i) = inp.device_ptr(s);
        self.launch(
            "cast_f32_to_bf16",
            per_element(n),
            &[Arg::Ptr(o), Arg::Ptr(i), Arg::I64(n as i64)],
        )
    }

    /// `out = f32(inp)` over `n` elements (exact).
    pub fn cast_bf16_to_f32(
        &self,
        out: &mut impl DevicePtrMut<f32>,
        inp: &impl DevicePtr<bf16>,
        n: usize,
    ) -> Result<()> {
        need("cast out", out.len(), n)?;
        need("cast inp", inp.len(), n)?;
        let s = &self.stream;
        let (o, _o) = out.device_ptr_mut(s);
        let (i, _i) = inp.device_ptr(s);
        self.launch(
            "cast_bf16_to_f32",
            per_element(n),
            &[Arg::Ptr(o), Arg::Ptr(i), Arg::I64(n as i64)],
        )
    }

    /// `acc += scale · inp`: folds a bf16 gradient into an fp32 one.
    pub fn accumulate_bf16_into_f32(
        &self,
        acc: &mut impl DevicePtrMut<f32>,
        inp: &impl DevicePtr<bf16>,
        scale: f32,
        n: usize,
    ) -> Result<()> {
        need("accumulate acc", acc.len(), n)?;
        need("accumulate inp", inp.len(), n)?;
        let s = &self.stream;
        let (a, _a) = acc.device_ptr_mut(s);
        let (i, _i) = inp.device_ptr(s);
        let args = [
            Arg::Ptr(a),
            Arg::Ptr(i),
            Arg::F32(scale),
            Arg::I64(n as i64),
        ];
        self.launch("accumulate_bf16_into_f32", per_element(n), &args)
    }

    /// Appends `tn` new positions per batch row to the caches at `past[b]`.
    pub fn kv_cache_append(
        &self,
        kcache: &mut impl DevicePtrMut<bf16>,
        vcache: &mut impl DevicePtrMut<bf16>,
        k: &impl DevicePtr<bf16>,
        v: &impl DevicePtr<bf16>,
        past: &impl DevicePtr<i32>,
        d: AttnDims,
    ) -> Result<()> {
        need("kv cache k", kcache.len(), d.kv_len())?;
        need("kv cache v", vcache.len(), d.kv_len())?;
        let new = d.b * d.tq * d.nkv * d.hd;
        need("kv new k", k.len(), new)?;
        need("kv new v", v.len(), new)?;
        need("kv past", past.len(), d.b)?;
        let s = &self.stream;
        let (kc, _kc) = kcache.device_ptr_mut(s);
        let (vc, _vc) = vcache.device_ptr_mut(s);
        let (kp, _k) = k.device_ptr(s);
        let (vp, _v) = v.device_ptr(s);
        let (pp, _p) = past.device_ptr(s);
        let mut args = vec![
            Arg::Ptr(kc),
            Arg::Ptr(vc),
            Arg::Ptr(kp),
            Arg::Ptr(vp),
            Arg::Ptr(pp),
        ];
        args.extend([d.b, d.tq, d.s, d.nkv, d.hd].map(|x| Arg::I32(x as i32)));
        self.launch("kv_cache_append", per_element(new), &args)
    }

    /// Samples one token per row of `logits` ([b, v]) with the uniform numbers `uniforms`.
    pub fn sample_rows(
        &self,
        tokens: &mut impl DevicePtrMut<i32>,
        logp: &mut impl DevicePtrMut<f32>,
        logits: &impl DevicePtr<bf16>,
        uniforms: &impl DevicePtr<f32>,
        Rows { n: b, c: v }: Rows,
        p: SampleParams,
    ) -> Result<()> {
        need("sample tokens", tokens.len(), b)?;
        need("sample logp", logp.len(), b)?;
        need("sample logits", logits.len(), b * v)?;
        need("sample uniforms", uniforms.len(), b)?;
        let s = &self.stream;
        let (t, _t) = tokens.device_ptr_mut(s);
        let (l, _l) = logp.device_ptr_mut(s);
        let (z, _z) = logits.device_ptr(s);
        let (u, _u) = uniforms.device_ptr(s);
        let args = [
            Arg::Ptr(t),
            Arg::Ptr(l),
            Arg::Ptr(z),
            Arg::Ptr(u),
            Arg::I32(b as i32),
            Arg::I32(v as i32),
            Arg::F32(p.temperature),
            Arg::I32(p.top_k.min(i32::MAX as usize) as i32),
            Arg::F32(p.top_p),
        ];
        self.launch("sample_rows", per_row(b, 1024), &args)
    }
}
