//! Training on the GPU, full fine-tuning or LoRA: forward with per-layer checkpoints, backward
//! with per-layer recomputation, global gradient norm and fused AdamW on fp32 master weights.
//!
//! Memory: the forward keeps only each layer's input (`[tokens, hidden]` bf16 per layer) and
//! the final norm's output; the backward re-runs one layer's forward at a time to get its
//! activations back (llm.c's "recompute" trade: one extra forward for activation memory that
//! no longer grows with depth). Weight gradients come out of bf16 GEMMs and are folded into
//! fp32 gradient buffers; the optimizer updates fp32 masters and rewrites the bf16 weights.
//!
//! The split into [`GpuTrainer::forward`] and [`GpuTrainer::backward`] matches GRPO: the loss's
//! gradient with respect to each log-prob depends on the log-probs (ratios, KL), so the host
//! computes `dlogp` between the two calls.

use crate::device::Gpu;
use crate::gemm::GemmShape;
use crate::model::{
    Acts, Attention, GpuModel, ModelDims, Scores, layer_name, lora_name, lora_tensors,
};
use crate::ops::{
    AdamState, AdamStep, FlashSaved, HeadRows, LogitRows, NormSaved, Qkv, QkvGrads, Rows,
};
use anyhow::{Context, Result, anyhow, ensure};
use cudarc::driver::{CudaSlice, DevicePtr};
use half::bf16;
use sqlrft_model::lora::LoraConfig;
use sqlrft_model::optim::OptimParams;
use sqlrft_model::params::Proj;
use std::collections::HashMap;

/// How [`GpuTrainer::forward_with`] scores a batch: the temperature its log-probs are read at,
/// the rows of logits materialised at once, and whether LoRA adapters apply (false: the frozen
/// base weights, TRL's reference model).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Scoring {
    /// Temperature the log-probs are read at.
    pub temperature: f32,
    /// Rows of logits the lm head materialises at once.
    pub chunk_rows: usize,
    /// Apply the LoRA adapters; false scores with the frozen base weights.
    pub adapters: bool,
}

/// What the backward pass needs from the forward pass of one batch.
pub struct Saved {
    tokens: Vec<i32>,
    b: usize,
    t: usize,
    inv_temp: f32,
    chunk: usize,
    /// Whether the forward applied the adapters (the backward recomputes with them on).
    adapters: bool,
    /// Input of each layer, then the final norm's input: `layers + 1` buffers of `[b·t, hidden]`.
    checkpoints: Vec<CudaSlice<bf16>>,
    h_final: CudaSlice<bf16>,
    rstd_final: CudaSlice<f32>,
    targets: CudaSlice<i32>,
    lse: CudaSlice<f32>,
}

/// One tensor's trainable state, as host buffers (for checkpoints).
#[derive(Clone, Debug, PartialEq)]
pub struct TensorState {
    /// fp32 master weights.
    pub master: Vec<f32>,
    /// AdamW's first moment.
    pub m: Vec<f32>,
    /// AdamW's second moment.
    pub v: Vec<f32>,
}

/// A model being trained: bf16 weights for the passes; fp32 masters, gradients and AdamW
/// moments for the trainable tensors (every weight, or only the LoRA adapters).
pub struct GpuTrainer {
    /// The model the passes run; the optimizer rewrites its bf16 weights from the masters.
    pub model: GpuModel,
    /// The trainable tensors' names and lengths, in optimizer order.
    trainable: Vec<(String, usize)>,
    /// Receives the weight gradient of a frozen norm (the kernel always writes one).
    norm_sink: CudaSlice<f32>,
    master: HashMap<String, CudaSlice<f32>>,
    grads: HashMap<String, CudaSlice<f32>>,
    m: HashMap<String, CudaSlice<f32>>,
    v: HashMap<String, CudaSlice<f32>>,
    /// Optimizer steps taken.
    pub step: u64,
    /// bf16 landing buffer for one weight gradient, before it is folded into fp32.
    scratch: CudaSlice<bf16>,
    /// `[norm, clip coefficient]` from the last [`Self::clip_grad_norm`]; the coefficient is
    /// 1 when no clipping is pending.
    clip: CudaSlice<f32>,
}

impl GpuTrainer {
    /// Full fine-tuning: uploads f32 weights (Hugging Face names) as fp32 masters and their
    /// bf16 copies.
    pub fn upload(
        gpu: &Gpu,
        dims: ModelDims,
        weight: &mut dyn FnMut(&str, usize) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let mut host: HashMap<String, Vec<f32>> = HashMap::new();
        let model = GpuModel::upload(gpu, dims.clone(), &mut |name, len| {
            let w = weight(name, len)?;
            host.insert(name.to_string(), w.clone());
            Ok(w)
        })?;
        Self::with_trainable(gpu, model, dims.tensors(), host)
    }

    /// LoRA: the base weights are frozen (bf16 only); the adapters `adapter(name, len)`
    /// returns (PEFT names) are trained.
    pub fn upload_lora(
        gpu: &Gpu,
        dims: ModelDims,
        weight: &mut dyn FnMut(&str, usize) -> Result<Vec<f32>>,
        spec: LoraConfig,
        adapter: &mut dyn FnMut(&str, usize) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let trainable = lora_tensors(&spec, &dims)?;
        let mut model = GpuModel::upload(gpu, dims, weight)?;
        let mut host: HashMap<String, Vec<f32>> = HashMap::new();
        model.add_lora(gpu, spec, &mut |name, len| {
            let w = adapter(name, len)?;
            host.insert(name.to_string(), w.clone());
            Ok(w)
        })?;
        Self::with_trainable(gpu, model, trainable, host)
    }

    fn with_trainable(
        gpu: &Gpu,
        model: GpuModel,
        trainable: Vec<(String, usize)>,
        host: HashMap<String, Vec<f32>>,
    ) -> Result<Self> {
        let (mut master, mut grads, mut m, mut v) = (
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
            HashMap::new(),
        );
        // The scratch buffer holds any weight gradient, trainable or not (frozen ones are not
        // computed, but the lm head's is the largest and the widest GEMM output).
        let largest = model
            .dims
            .tensors()
            .iter()
            .chain(&trainable)
            .map(|(_, len)| *len)
            .max()
            .unwrap_or(1);
        for (name, len) in &trainable {
            master.insert(name.clone(), gpu.upload(&host[name])?);
            grads.insert(name.clone(), gpu.zeros::<f32>(*len)?);
            m.insert(name.clone(), gpu.zeros::<f32>(*len)?);
            v.insert(name.clone(), gpu.zeros::<f32>(*len)?);
        }
        Ok(Self {
            norm_sink: gpu.zeros(model.dims.hidden)?,
            model,
            trainable,
            master,
            grads,
            m,
            v,
            step: 0,
            scratch: gpu.zeros(largest)?,
            clip: gpu.upload(&[0.0f32, 1.0])?,
        })
    }

    /// The trainable tensors' names and lengths.
    pub fn trainable(&self) -> &[(String, usize)] {
        &self.trainable
    }

    /// Scores `b` rows of `t` tokens (position `p` predicts token `p + 1`; `[b, t - 1]` each)
    /// and keeps what [`Self::backward`] needs.
    pub fn forward(
        &self,
        gpu: &Gpu,
        tokens: &[i32],
        b: usize,
        t: usize,
        temperature: f32,
        chunk_rows: usize,
    ) -> Result<(Saved, Scores)> {
        let scoring = Scoring {
            temperature,
            chunk_rows,
            adapters: true,
        };
        self.forward_with(gpu, tokens, b, t, scoring)
    }

    /// Like [`Self::forward`], with [`Scoring::adapters`] false to score with the frozen base
    /// weights (TRL's reference model when training LoRA).
    pub fn forward_with(
        &self,
        gpu: &Gpu,
        tokens: &[i32],
        b: usize,
        t: usize,
        scoring: Scoring,
    ) -> Result<(Saved, Scores)> {
        let Scoring {
            temperature,
            chunk_rows,
            adapters,
        } = scoring;
        ensure!(t >= 2, "training needs at least two tokens per sequence");
        ensure!(temperature > 0.0, "temperature must be positive");
        let d = &self.model.dims;
        let (n, c) = (b * t, d.hidden);
        let mut st = self.model.step(gpu, tokens, b, t, &vec![0; b], t)?;
        st.adapters = adapters;
        let mut a = Acts::new(
            gpu,
            d,
            st.attn,
            self.model.lora_rank(),
            self.model.attention,
        )?;
        let mut x = gpu.zeros::<bf16>(n * c)?;
        let embed = self.model.w("model.embed_tokens.weight");
        gpu.embedding_forward(&mut x, &st.tokens, embed, n, c)?;
        let mut checkpoints = Vec::with_capacity(d.layers + 1);
        for l in 0..d.layers {
            checkpoints.push(copy(gpu, &x)?);
            self.model
                .layer_forward(gpu, l, &mut x, &mut a, &st, None)?;
        }
        let mut h_final = gpu.zeros::<bf16>(n * c)?;
        let mut rstd_final = gpu.zeros::<f32>(n)?;
        let norm = self.model.w("model.norm.weight");
        gpu.rmsnorm_forward(
            &mut h_final,
            &mut rstd_final,
            &x,
            norm,
            Rows { n, c },
            d.rms_norm_eps,
        )?;
        checkpoints.push(x);

        let inv_temp = 1.0 / temperature;
        let head = self
            .model
            .head_scores(gpu, &h_final, tokens, t, inv_temp, chunk_rows)?;
        let scores = head.scores(gpu, t)?;
        let saved = Saved {
            tokens: tokens.to_vec(),
            b,
            t,
            inv_temp,
            chunk: head.chunk,
            adapters,
            checkpoints,
            h_final,
            rstd_final,
            targets: head.targets,
            lse: head.lse,
        };
        Ok((saved, scores))
    }

    /// Accumulates into the gradients the gradient of `Σ dlogp · logp` (`dlogp` is `[b, t - 1]`,
    /// laid out like the forward's scores; zeros for prompt and padding positions). The
    /// forward must have run with the adapters on.
    pub fn backward(&mut self, gpu: &Gpu, saved: Saved, dlogp: &[f32]) -> Result<()> {
        let (b, t) = (saved.b, saved.t);
        ensure!(
            saved.adapters,
            "the backward pass needs a forward with the adapters on"
        );
        ensure!(
            dlogp.len() == b * (t - 1),
            "dlogp has {} values, the batch scores {}",
            dlogp.len(),
            b * (t - 1)
        );
        let Self {
            model,
            grads,
            scratch,
            norm_sink,
            ..
        } = self;
        let mut sink = Sink {
            grads,
            scratch,
            norm_sink,
        };
        let d = &model.dims;
        let (n, c, vocab) = (b * t, d.hidden, d.vocab);
        let (qd, kvd, i) = (
            d.heads * d.head_dim,
            d.kv_heads * d.head_dim,
            d.intermediate,
        );
        // Each sequence's last position predicts nothing: its upstream gradient is 0.
        let mut full = Vec::with_capacity(n);
        for row in dlogp.chunks(t - 1) {
            full.extend_from_slice(row);
            full.push(0.0);
        }
        let ddlogp = gpu.upload(&full)?;

        // lm head and final norm, chunk by chunk: logits are recomputed, turned into their
        // gradient in place, and pushed through the head's two GEMMs.
        let head_name = d.lm_head_name();
        let head = model.w(head_name).slice(..);
        let mut dh = gpu.zeros::<bf16>(n * c)?;
        let mut logits = gpu.zeros::<bf16>(saved.chunk * vocab)?;
        for r0 in (0..n).step_by(saved.chunk) {
            let rows = saved.chunk.min(n - r0);
            let h = saved.h_final.slice(r0 * c..(r0 + rows) * c);
            let mut z = logits.slice_mut(..rows * vocab);
            gpu.gemm(GemmShape::linear(rows, vocab, c), &h, &head, &mut z)?;
            gpu.logprob_backward_in_place(
                &mut z,
                &saved.lse.slice(r0..r0 + rows),
                &saved.targets.slice(r0..r0 + rows),
                &ddlogp.slice(r0..r0 + rows),
                LogitRows {
                    rows,
                    vocab,
                    inv_temp: saved.inv_temp,
                },
            )?;
            let z = z.slice(..);
            let mut dh_rows = dh.slice_mut(r0 * c..(r0 + rows) * c);
            gpu.gemm(
                GemmShape::linear_dinput(rows, vocab, c),
                &z,
                &head,
                &mut dh_rows,
            )?;
            sink.weight(
                gpu,
                head_name,
                &z,
                &h,
                GemmShape::linear_dweight(rows, vocab, c),
                1.0,
            )?;
        }
        let mut dx = gpu.zeros::<bf16>(n * c)?;
        let final_norm = NormSaved {
            inp: &saved.checkpoints[d.layers],
            weight: model.w("model.norm.weight"),
            rstd: &saved.rstd_final,
        };
        gpu.rmsnorm_backward(
            &mut dx,
            sink.norm("model.norm.weight"),
            &dh,
            final_norm,
            Rows { n, c },
        )?;

        // Layers in reverse, each recomputed from its checkpoint.
        let st = model.step(gpu, &saved.tokens, b, t, &vec![0; b], t)?;
        let rank = model.lora_rank();
        let mut a = Acts::new(gpu, d, st.attn, rank, model.attention)?;
        let mut lora_t = gpu.zeros::<bf16>((n * rank).max(1))?;
        let mut dact = gpu.zeros::<bf16>(n * i)?;
        let mut dgate = gpu.zeros::<bf16>(n * i)?;
        let mut dup = gpu.zeros::<bf16>(n * i)?;
        let mut dy = gpu.zeros::<bf16>(n * qd)?;
        let mut dq = gpu.zeros::<bf16>(n * qd)?;
        let mut dk = gpu.zeros::<bf16>(n * kvd)?;
        let mut dv = gpu.zeros::<bf16>(n * kvd)?;
        let mut dh1 = gpu.zeros::<bf16>(n * c)?;
        let mut dh2 = gpu.zeros::<bf16>(n * c)?;
        // Scratch of the attention backward: dscores, or flash's per-row delta.
        let mut ds = gpu.zeros::<f32>(match model.attention {
            Attention::Materialised => b * d.heads * t * t,
            Attention::Flash => b * d.heads * t,
        })?;
        for l in (0..d.layers).rev() {
            let x_in = &saved.checkpoints[l];
            let mut x = copy(gpu, x_in)?;
            model.layer_forward(gpu, l, &mut x, &mut a, &st, None)?;
            let mut lin = Linear {
                gpu,
                model,
                sink: &mut sink,
                lora_t: &mut lora_t,
                l,
                n,
            };

            // MLP: x_out = x_mid + down(act), act = swiglu(gate(h2), up(h2)), h2 = norm2(x_mid).
            // dx holds d(x_out), which is also d(x_mid) through the residual.
            lin.backward("down_proj", &dx, &a.act, a.lora_u.get(6), &mut dact, 0.0)?;
            gpu.swiglu_backward(&mut dgate, &mut dup, &dact, &a.gate, &a.up, n * i)?;
            lin.backward("gate_proj", &dgate, &a.h2, a.lora_u.get(4), &mut dh2, 0.0)?;
            lin.backward("up_proj", &dup, &a.h2, a.lora_u.get(5), &mut dh2, 1.0)?;
            let norm2 = NormSaved {
                inp: &a.x_mid,
                weight: model.w(&layer_name(l, "post_attention_layernorm.weight")),
                rstd: &a.rstd2,
            };
            gpu.rmsnorm_backward(
                &mut dx,
                sink.norm(&layer_name(l, "post_attention_layernorm.weight")),
                &dh2,
                norm2,
                Rows { n, c },
            )?;

            // Attention: x_mid = x_in + o(y), y = attention(rope(q(h1)), rope(k(h1)), v(h1)).
            let mut lin = Linear {
                gpu,
                model,
                sink: &mut sink,
                lora_t: &mut lora_t,
                l,
                n,
            };
            lin.backward("o_proj", &dx, &a.y, a.lora_u.get(3), &mut dy, 0.0)?;
            let grads = QkvGrads {
                dq: &mut dq,
                dk: &mut dk,
                dv: &mut dv,
            };
            let qkv = Qkv {
                q: &a.q,
                k: &a.k,
                v: &a.v,
            };
            match model.attention {
                Attention::Materialised => {
                    gpu.attention_backward(grads, &mut ds, &dy, &a.att, qkv, st.attn)?
                }
                Attention::Flash => {
                    let forward = FlashSaved {
                        out: &a.y,
                        lse: &a.lse,
                    };
                    gpu.flash_attention_backward(grads, &mut ds, &dy, forward, qkv, st.attn)?
                }
            }
            for (g, heads) in [(&mut dq, d.heads), (&mut dk, d.kv_heads)] {
                let dims = HeadRows {
                    n,
                    heads,
                    hd: d.head_dim,
                };
                gpu.rope(g, &st.positions, model.inv_freq(), dims, true)?;
            }
            for (j, (proj, g, width)) in [("q", &dq, qd), ("k", &dk, kvd), ("v", &dv, kvd)]
                .into_iter()
                .enumerate()
            {
                let p = format!("{proj}_proj");
                let beta = if j == 0 { 0.0 } else { 1.0 };
                lin.backward(&p, g, &a.h1, a.lora_u.get(j), &mut dh1, beta)?;
                if d.qkv_bias {
                    let bias = layer_name(l, &format!("self_attn.{p}.bias"));
                    if let Some(db) = lin.sink.grads.get_mut(&bias) {
                        gpu.bias_backward(db, g, n, width)?;
                    }
                }
            }
            let norm1 = NormSaved {
                inp: x_in,
                weight: model.w(&layer_name(l, "input_layernorm.weight")),
                rstd: &a.rstd1,
            };
            gpu.rmsnorm_backward(
                &mut dx,
                sink.norm(&layer_name(l, "input_layernorm.weight")),
                &dh1,
                norm1,
                Rows { n, c },
            )?;
        }
        if let Some(g) = sink.grads.get_mut("model.embed_tokens.weight") {
            gpu.embedding_backward(g, &dx, &st.tokens, n, c)?;
        }
        Ok(())
    }

    /// Sets every gradient to zero.
    pub fn zero_grad(&mut self, gpu: &Gpu) -> Result<()> {
        for g in self.grads.values_mut() {
            gpu.stream()
                .memset_zeros(g)
                .map_err(|e| anyhow!("zeroing gradients failed: {e:?}"))?;
        }
        Ok(())
    }

    /// The accumulated gradient of `name`, on the host (for tests and checkpoints).
    pub fn grad_host(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        let g = self
            .grads
            .get(name)
            .with_context(|| format!("no gradient `{name}`"))?;
        gpu.download(g)
    }

    /// The fp32 master weight `name`, on the host.
    pub fn master_host(&self, gpu: &Gpu, name: &str) -> Result<Vec<f32>> {
        let w = self
            .master
            .get(name)
            .with_context(|| format!("no weight `{name}`"))?;
        gpu.download(w)
    }

    /// The state of trainable tensor `name` (see [`Self::trainable`]).
    pub fn read_state(&self, gpu: &Gpu, name: &str) -> Result<TensorState> {
        let get = |m: &HashMap<String, CudaSlice<f32>>| -> Result<Vec<f32>> {
            gpu.download(m.get(name).with_context(|| format!("no weight `{name}`"))?)
        };
        Ok(TensorState {
            master: get(&self.master)?,
            m: get(&self.m)?,
            v: get(&self.v)?,
        })
    }

    /// Restores tensor `name` from a checkpoint, bf16 copy included.
    pub fn write_state(&mut self, gpu: &Gpu, name: &str, state: &TensorState) -> Result<()> {
        let len = self
            .master
            .get(name)
            .with_context(|| format!("no weight `{name}`"))?
            .len();
        for (what, v) in [("master", &state.master), ("m", &state.m), ("v", &state.v)] {
            ensure!(
                v.len() == len,
                "checkpoint's {what} of `{name}` has {} values, the model {len}",
                v.len()
            );
        }
        for (map, host) in [
            (&mut self.master, &state.master),
            (&mut self.m, &state.m),
            (&mut self.v, &state.v),
        ] {
            let dst = map.get_mut(name).expect("length checked above");
            gpu.stream()
                .memcpy_htod(host.as_slice(), dst)
                .map_err(|e| anyhow!("copy to GPU failed: {e:?}"))?;
        }
        let w = self
            .model
            .weights_mut()
            .get_mut(name)
            .expect("weights and masters agree");
        gpu.cast_f32_to_bf16(w, &self.master[name], len)
    }

    /// Global L2 norm of the accumulated gradients (fixed-order reduction) and torch's
    /// `clip_grad_norm_` coefficient for `max_norm` (0: no clipping), which the next
    /// [`Self::optimizer_step`] applies. Returns the norm before clipping.
    pub fn clip_grad_norm(&mut self, gpu: &Gpu, max_norm: f64) -> Result<f64> {
        let names = self.trainable.clone();
        let blocks = |len: usize| len.div_ceil(256 * 64).clamp(1, 1024);
        let total_blocks: usize = names.iter().map(|(_, len)| blocks(*len)).sum();
        let mut partial = gpu.zeros::<f32>(total_blocks)?;
        let mut off = 0;
        for (name, len) in &names {
            let k = blocks(*len);
            // Each tensor's blocks write their own stretch of the partial sums.
            gpu.grad_norm_partial_into(
                &mut partial.slice_mut(off..off + k),
                &self.grads[name],
                *len,
            )?;
            off += k;
        }
        gpu.grad_norm_finish(&mut self.clip, &partial, total_blocks, max_norm as f32)?;
        Ok(gpu.download(&self.clip)?[0] as f64)
    }

    /// One AdamW step on every tensor (biases and norm weights without weight decay, as the
    /// Hugging Face Trainer does), gradients scaled by the pending clip coefficient.
    pub fn optimizer_step(&mut self, gpu: &Gpu, lr: f64, opt: &OptimParams) -> Result<()> {
        self.step += 1;
        let step = |weight_decay| {
            AdamStep::new(
                self.step,
                lr,
                opt.adam_beta1,
                opt.adam_beta2,
                opt.adam_epsilon,
                weight_decay,
            )
        };
        let (decayed, exempt) = (step(opt.weight_decay), step(0.0));
        for (name, len) in self.trainable.clone() {
            let a = if name.ends_with(".bias") || name.contains("norm") {
                exempt
            } else {
                decayed
            };
            let w = self
                .model
                .weights_mut()
                .get_mut(&name)
                .expect("weights and tensors agree");
            let state = AdamState {
                master: self
                    .master
                    .get_mut(&name)
                    .expect("masters and tensors agree"),
                m: self.m.get_mut(&name).expect("moments and tensors agree"),
                v: self.v.get_mut(&name).expect("moments and tensors agree"),
            };
            gpu.adamw_step(
                state,
                Some(&mut w.slice_mut(..)),
                &self.grads[&name],
                &self.clip.slice(1..2),
                len,
                a,
            )?;
        }
        // The coefficient served this step; the next one starts unclipped.
        gpu.stream()
            .memcpy_htod(&[0.0f32, 1.0], &mut self.clip)
            .map_err(|e| anyhow!("copy to GPU failed: {e:?}"))?;
        Ok(())
    }
}

fn copy(gpu: &Gpu, x: &CudaSlice<bf16>) -> Result<CudaSlice<bf16>> {
    gpu.stream()
        .clone_dtod(x)
        .map_err(|e| anyhow!("copying an activation failed: {e:?}"))
}

/// Where gradients go: fp32 buffers of the trainable tensors; frozen ones are skipped.
struct Sink<'a> {
    grads: &'a mut HashMap<String, CudaSlice<f32>>,
    /// bf16 landing buffer of a weight-gradient GEMM.
    scratch: &'a mut CudaSlice<bf16>,
    norm_sink: &'a mut CudaSlice<f32>,
}

impl Sink<'_> {
    /// `grad[name] += scale · op(a) · op(b)` (a weight-gradient GEMM of shape `s`), when
    /// `name` is trainable.
    fn weight<I: DevicePtr<bf16>>(
        &mut self,
        gpu: &Gpu,
        name: &str,
        a: &I,
        b: &I,
        s: GemmShape,
        scale: f32,
    ) -> Result<()> {
        let Some(g) = self.grads.get_mut(name) else {
            return Ok(());
        };
        let len = s.m * s.n;
        let mut tmp = self.scratch.slice_mut(..len);
        gpu.gemm(s, a, b, &mut tmp)?;
        gpu.accumulate_bf16_into_f32(g, &tmp, scale, len)
    }

    /// The gradient buffer of norm weight `name`, or a sink when it is frozen.
    fn norm(&mut self, name: &str) -> &mut CudaSlice<f32> {
        match self.grads.get_mut(name) {
            Some(g) => g,
            None => self.norm_sink,
        }
    }
}

/// Backward of a layer's projections `y = x Wᵀ + s (x Aᵀ) Bᵀ`.
struct Linear<'a, 'b> {
    gpu: &'a Gpu,
    model: &'a GpuModel,
    sink: &'a mut Sink<'b>,
    /// `dy B`, `[n, rank]`.
    lora_t: &'a mut CudaSlice<bf16>,
    l: usize,
    n: usize,
}

impl Linear<'_, '_> {
    /// `dx = beta · dx + dy W (+ s (dy B) A)`; accumulates W's gradient, or the adapter's
    /// (`dB += s dyᵀ u`, `dA += s (dy B)ᵀ x`, with `u = x Aᵀ` from the forward).
    fn backward(
        &mut self,
        proj: &str,
        dy: &CudaSlice<bf16>,
        x: &CudaSlice<bf16>,
        u: Option<&CudaSlice<bf16>>,
        dx: &mut CudaSlice<bf16>,
        beta: f32,
    ) -> Result<()> {
        let (gpu, n, l) = (self.gpu, self.n, self.l);
        let (inp, out) = self.model.dims.projection(proj);
        let w_name = format!("{}.weight", proj_path(proj, l));
        gpu.gemm(
            GemmShape::linear_dinput(n, out, inp).with_beta(beta),
            dy,
            self.model.w(&w_name),
            dx,
        )?;
        self.sink.weight(
            gpu,
            &w_name,
            dy,
            x,
            GemmShape::linear_dweight(n, out, inp),
            1.0,
        )?;
        if let (Some((a, b, scale)), Some(u)) = (self.model.adapter(l, proj), u) {
            let r = self.model.lora_rank();
            let t = &mut *self.lora_t;
            gpu.gemm(GemmShape::linear_dinput(n, out, r), dy, b, t)?;
            gpu.gemm(
                GemmShape::linear_dinput(n, r, inp)
                    .with_alpha(scale)
                    .with_beta(1.0),
                &*t,
                a,
                dx,
            )?;
            let (an, bn) = (lora_name(l, proj, 'A'), lora_name(l, proj, 'B'));
            self.sink
                .weight(gpu, &bn, dy, u, GemmShape::linear_dweight(n, out, r), scale)?;
            self.sink.weight(
                gpu,
                &an,
                &*t,
                x,
                GemmShape::linear_dweight(n, r, inp),
                scale,
            )?;
        }
        Ok(())
    }
}

/// `model.layers.{l}.{module}.{proj}`: the model contract's path of projection `proj`.
fn proj_path(proj: &str, l: usize) -> String {
    Proj::parse(proj)
        .unwrap_or_else(|| panic!("`{proj}` is not a projection"))
        .path(l)
}
