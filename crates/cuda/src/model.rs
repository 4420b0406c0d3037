//! A Qwen2 / Llama decoder's forward pass on the GPU, built from the kernels and cuBLASLt GEMMs:
//! the piece the trainer's CUDA backend runs for scoring, and what `sqlrft cuda forward` holds to
//! transformers. bf16 weights and activations, fp32 log-probs; the lm head runs in row chunks
//! through the log-prob kernels, so full-vocabulary logits exist one chunk at a time.

use crate::device::Gpu;
use crate::gemm::GemmShape;
use crate::ops::{AttnDims, HeadRows, LogitRows, Qkv, Rows, SampleParams};
use anyhow::{Result, bail, ensure};
use cudarc::driver::CudaSlice;
use half::bf16;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::params::{Layout, ModelLayout, Proj, load_weights};
use sqlrft_model::sampling::SamplingParams;
use std::collections::HashMap;
use std::path::Path;

/// The shapes and constants the kernels read, derived from the one [`ModelConfig`] (built only
/// by [`ModelDims::from_config`], so the GPU and the CPU reference cannot disagree on a shape).
#[derive(Clone, Debug)]
pub struct ModelDims {
    /// The parsed `config.json` these shapes come from.
    pub config: ModelConfig,
    /// Vocabulary size: rows of the embedding and of the lm head.
    pub vocab: usize,
    /// Width of the residual stream.
    pub hidden: usize,
    /// Width of the MLP's gate and up projections.
    pub intermediate: usize,
    /// Decoder layers.
    pub layers: usize,
    /// Query heads.
    pub heads: usize,
    /// Key/value heads; `heads` is a multiple of it (grouped-query attention).
    pub kv_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Added to each row's mean square in RMSNorm.
    pub rms_norm_eps: f32,
    /// q/k/v projections have biases (Qwen2).
    pub qkv_bias: bool,
    /// The lm head is the embedding matrix (no `lm_head.weight`).
    pub tie_word_embeddings: bool,
    /// Rotary inverse frequencies, `head_dim / 2` of them (scaling already applied).
    pub inv_freq: Vec<f32>,
}

impl ModelDims {
    /// The GPU's view of `config`. Errors on what the kernels do not implement: an output
    /// projection bias (llama's `attention_bias`).
    pub fn from_config(config: ModelConfig) -> Result<Self> {
        ensure!(
            !config.o_bias,
            "this llama model has attention_bias = true (an output-projection bias), which the \
             CUDA backend does not implement; train it with --device cpu"
        );
        Ok(Self {
            vocab: config.vocab_size,
            hidden: config.hidden_size,
            intermediate: config.intermediate_size,
            layers: config.num_hidden_layers,
            heads: config.num_attention_heads,
            kv_heads: config.num_key_value_heads,
            head_dim: config.head_dim,
            rms_norm_eps: config.rms_norm_eps,
            qkv_bias: config.qkv_bias,
            tie_word_embeddings: config.tie_word_embeddings,
            inv_freq: config.rope_inv_freq(),
            config,
        })
    }

    /// Every weight's Hugging Face name and length, in the model contract's layout order
    /// ([`ModelLayout`]); a tied lm head is the embedding, listed once.
    pub fn tensors(&self) -> Vec<(String, usize)> {
        names_and_lengths(ModelLayout::new(&self.config).layout)
    }

    /// (in, out) features of projection `proj`.
    pub fn projection(&self, proj: &str) -> (usize, usize) {
        let p = Proj::parse(proj).unwrap_or_else(|| panic!("`{proj}` is not a projection"));
        p.dims(&self.config)
    }

    /// The lm head's weight: the embedding when tied.
    pub fn lm_head_name(&self) -> &'static str {
        if self.tie_word_embeddings {
            "model.embed_tokens.weight"
        } else {
            "lm_head.weight"
        }
    }

    /// Number of parameters (each weight once; a tied lm head is the embedding).
    pub fn parameters(&self) -> usize {
        self.tensors().iter().map(|(_, len)| len).sum()
    }
}

/// How attention runs.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum, serde::Serialize)]
pub enum Attention {
    /// Probabilities materialised (`[rows, heads, T, S]` fp32): the simple reference.
    #[default]
    Materialised,
    /// Online softmax, one warp per query row, only a log-sum-exp per row kept.
    Flash,
}

/// Adapter tensors' PEFT names and lengths for `lora` on `dims`, in the model contract's
/// layout order ([`LoraLayout`]). Errors on rank 0 or an unknown target module.
pub fn lora_tensors(lora: &LoraConfig, dims: &ModelDims) -> Result<Vec<(String, usize)>> {
    Ok(names_and_lengths(
        LoraLayout::new(lora, &dims.config)?.layout,
    ))
}

/// Each tensor of `layout`, by name and length, in order.
fn names_and_lengths(layout: Layout) -> Vec<(String, usize)> {
    layout
        .tensors
        .into_iter()
        .map(|t| {
            let len = t.len();
            (t.name, len)
        })
        .collect()
}

/// `alpha / rank`, the factor on the adapters' output.
pub fn lora_scale(lora: &LoraConfig) -> f32 {
    lora.alpha / lora.rank as f32
}

/// PEFT's name of adapter matrix `ab` ('A' or 'B') of projection `proj` in layer `l` (the
/// name [`LoraLayout`] gives it).
pub fn lora_name(l: usize, proj: &str, ab: char) -> String {
    let p = Proj::parse(proj).unwrap_or_else(|| panic!("`{proj}` is not a projection"));
    format!("base_model.model.{}.lora_{ab}.weight", p.path(l))
}

/// Which adapted projection a LoRA launch is for: `proj` (`q_proj`, …) of layer `layer`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct AdaptedProj<'a> {
    pub layer: usize,
    pub proj: &'a str,
}

/// Keys and values of every layer for `batch` rows of up to `capacity` positions.
pub struct KvCache {
    k: Vec<CudaSlice<bf16>>,
    v: Vec<CudaSlice<bf16>>,
    batch: usize,
    capacity: usize,
}

impl KvCache {
    /// Zeroed keys and values of every layer, `[batch, capacity, kv_heads, head_dim]` each.
    pub fn new(gpu: &Gpu, d: &ModelDims, batch: usize, capacity: usize) -> Result<Self> {
        let len = batch * capacity * d.kv_heads * d.head_dim;
        let mut k = vec![];
        let mut v = vec![];
        for _ in 0..d.layers {
            k.push(gpu.zeros::<bf16>(len)?);
            v.push(gpu.zeros::<bf16>(len)?);
        }
        Ok(Self {
            k,
            v,
            batch,
            capacity,
        })
    }
}

/// One sampled completion.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Completion {
    /// Sampled token ids, the end-of-sequence token included when one ended the row.
    pub tokens: Vec<i32>,
    /// `log softmax(logits / temperature)[token]` per token, before top-k / top-p truncation.
    pub logps: Vec<f32>,
    /// Ended at `max_new` tokens without an end-of-sequence token.
    pub truncated: bool,
    finished: bool,
}

/// Per scored position: log-prob of the next token and entropy, `[b, t - 1]` each.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Scores {
    /// `log softmax(logits / temperature)` at each next token.
    pub logps: Vec<f32>,
    /// Entropy of each position's next-token distribution at the same temperature.
    pub entropies: Vec<f32>,
}

/// Model weights on the GPU in bf16, by Hugging Face name.
pub struct GpuModel {
    /// The model's shapes.
    pub dims: ModelDims,
    /// Adapters, when the model has them (their weights live in `weights` too).
    pub lora: Option<LoraConfig>,
    /// Which attention kernels the passes use.
    pub attention: Attention,
    weights: HashMap<String, CudaSlice<bf16>>,
    inv_freq: CudaSlice<f32>,
}

/// One layer's forward activations, kept for its backward pass; reused from layer to layer.
pub(crate) struct Acts {
    pub h1: CudaSlice<bf16>,
    pub rstd1: CudaSlice<f32>,
    pub q: CudaSlice<bf16>,
    pub k: CudaSlice<bf16>,
    pub v: CudaSlice<bf16>,
    /// Materialised attention's probabilities (empty under flash attention).
    pub att: CudaSlice<f32>,
    /// Flash attention's per-row log-sum-exp, `[b, nh, tq]`.
    pub lse: CudaSlice<f32>,
    pub y: CudaSlice<bf16>,
    /// The residual stream between attention and MLP (the second norm's input).
    pub x_mid: CudaSlice<bf16>,
    pub h2: CudaSlice<bf16>,
    pub rstd2: CudaSlice<f32>,
    pub gate: CudaSlice<bf16>,
    pub up: CudaSlice<bf16>,
    pub act: CudaSlice<bf16>,
    /// `x Aᵀ` of each adapted projection, in [`Proj::ALL`] order (`[tokens, rank]`).
    pub lora_u: Vec<CudaSlice<bf16>>,
}

impl Acts {
    pub(crate) fn new(
        gpu: &Gpu,
        d: &ModelDims,
        attn: AttnDims,
        rank: usize,
        kind: Attention,
    ) -> Result<Self> {
        let probs = match kind {
            Attention::Materialised => attn.b * d.heads * attn.tq * attn.s,
            Attention::Flash => 1,
        };
        let n = attn.b * attn.tq;
        let (c, qd, kvd, i) = (
            d.hidden,
            d.heads * d.head_dim,
            d.kv_heads * d.head_dim,
            d.intermediate,
        );
        Ok(Self {
            h1: gpu.zeros(n * c)?,
            rstd1: gpu.zeros(n)?,
            q: gpu.zeros(n * qd)?,
            k: gpu.zeros(n * kvd)?,
            v: gpu.zeros(n * kvd)?,
            att: gpu.zeros(probs)?,
            lse: gpu.zeros(attn.b * d.heads * attn.tq)?,
            y: gpu.zeros(n * qd)?,
            x_mid: gpu.zeros(n * c)?,
            h2: gpu.zeros(n * c)?,
            rstd2: gpu.zeros(n)?,
            gate: gpu.zeros(n * i)?,
            up: gpu.zeros(n * i)?,
            act: gpu.zeros(n * i)?,
            lora_u: (0..if rank > 0 { Proj::ALL.len() } else { 0 })
                .map(|_| gpu.zeros(n * rank))
                .collect::<Result<_>>()?,
        })
    }
}

/// `model.layers.{l}.{suffix}`.
pub(crate) fn layer_name(l: usize, suffix: &str) -> String {
    format!("model.layers.{l}.{suffix}")
}

/// The token ids, positions and per-row cached lengths of one decoder call, on the GPU.
pub(crate) struct Step {
    pub tokens: CudaSlice<i32>,
    pub positions: CudaSlice<i32>,
    pub past: CudaSlice<i32>,
    pub attn: AttnDims,
    /// Apply the LoRA adapters (the trained policy) or not (the reference model).
    pub adapters: bool,
}

impl GpuModel {
    /// Uploads the weights that `weight(name, expected_len)` returns (f32, Hugging Face names,
    /// as [`ModelDims::tensors`] lists them).
    pub fn upload(
        gpu: &Gpu,
        dims: ModelDims,
        weight: &mut dyn FnMut(&str, usize) -> Result<Vec<f32>>,
    ) -> Result<Self> {
        let mut weights = HashMap::new();
        for (name, len) in dims.tensors() {
            let w = weight(&name, len)?;
            ensure!(
                w.len() == len,
                "weight `{name}` has {} values, expected {len}",
                w.len()
            );
            let b: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
            weights.insert(name, gpu.upload(&b)?);
        }
        Ok(Self {
            inv_freq: gpu.upload(&dims.inv_freq)?,
            weights,
            dims,
            lora: None,
            attention: Attention::default(),
        })
    }

    /// Adds LoRA adapters with the weights `weight(name, len)` returns (PEFT names).
    pub fn add_lora(
        &mut self,
        gpu: &Gpu,
        spec: LoraConfig,
        weight: &mut dyn FnMut(&str, usize) -> Result<Vec<f32>>,
    ) -> Result<()> {
        for (name, len) in lora_tensors(&spec, &self.dims)? {
            let w = weight(&name, len)?;
            ensure!(
                w.len() == len,
                "adapter `{name}` has {} values, expected {len}",
                w.len()
            );
            let b: Vec<bf16> = w.iter().map(|&x| bf16::from_f32(x)).collect();
            self.weights.insert(name, gpu.upload(&b)?);
        }
        self.lora = Some(spec);
        Ok(())
    }

    /// The adapter of `proj` in layer `l`, when there is one: (A, B, scale).
    pub(crate) fn adapter(
        &self,
        l: usize,
        proj: &str,
    ) -> Option<(&CudaSlice<bf16>, &CudaSlice<bf16>, f32)> {
        let spec = self.lora.as_ref()?;
        spec.target_modules.iter().any(|t| t == proj).then(|| {
            (
                self.w(&lora_name(l, proj, 'A')),
                self.w(&lora_name(l, proj, 'B')),
                lora_scale(spec),
            )
        })
    }

    /// `out += s · (x Aᵀ) Bᵀ` for the adapter of `proj` in layer `l`, keeping `x Aᵀ` in `u` for the backward.
    fn lora_forward(
        &self,
        gpu: &Gpu,
        AdaptedProj { layer: l, proj }: AdaptedProj<'_>,
        x: &CudaSlice<bf16>,
        out: &mut CudaSlice<bf16>,
        u: &mut CudaSlice<bf16>,
        n: usize,
    ) -> Result<()> {
        if let Some((a, b, scale)) = self.adapter(l, proj) {
            let (inp, outw) = self.dims.projection(proj);
            let r = self.lora.as_ref().map_or(0, |s| s.rank);
            gpu.gemm(GemmShape::linear(n, r, inp), x, a, u)?;
            gpu.gemm(
                GemmShape::linear(n, outw, r)
                    .with_alpha(scale)
                    .with_beta(1.0),
                &*u,
                b,
                out,
            )?;
        }
        Ok(())
    }

    /// Loads a Hugging Face model directory through the model contract's loader.
    pub fn load(gpu: &Gpu, dir: &Path) -> Result<Self> {
        let (dims, mut weight) = open_checkpoint(dir)?;
        Self::upload(gpu, dims, &mut weight)
    }

    /// The bf16 weight called `name` (a name from [`ModelDims::tensors`]).
    pub(crate) fn w(&self, name: &str) -> &CudaSlice<bf16> {
        self.weights
            .get(name)
            .unwrap_or_else(|| panic!("no weight `{name}`: names come from ModelDims::tensors"))
    }

    pub(crate) fn inv_freq(&self) -> &CudaSlice<f32> {
        &self.inv_freq
    }

    pub(crate) fn weights_mut(&mut self) -> &mut HashMap<String, CudaSlice<bf16>> {
        &mut self.weights
    }

    pub(crate) fn lora_rank(&self) -> usize {
        self.lora.as_ref().map_or(0, |s| s.rank)
    }

    fn lm_head(&self) -> &CudaSlice<bf16> {
        self.w(self.dims.lm_head_name())
    }

    /// Uploads what one decoder call needs to know about its positions.
    pub(crate) fn step(
        &self,
        gpu: &Gpu,
        tokens: &[i32],
        b: usize,
        tq: usize,
        past: &[i32],
        s: usize,
    ) -> Result<Step> {
        let d = &self.dims;
        ensure!(
            tokens.len() == b * tq && past.len() == b,
            "{} tokens are not {b} sequences of {tq}",
            tokens.len()
        );
        if let Some(bad) = tokens.iter().find(|&&x| x < 0 || x as usize >= d.vocab) {
            bail!(
                "token id {bad} is outside the model's vocabulary ({})",
                d.vocab
            );
        }
        let positions: Vec<i32> = past.iter().flat_map(|&p| p..p + tq as i32).collect();
        Ok(Step {
            tokens: gpu.upload(tokens)?,
            positions: gpu.upload(&positions)?,
            past: gpu.upload(past)?,
            attn: AttnDims {
                b,
                tq,
                s,
                nh: d.heads,
                nkv: d.kv_heads,
                hd: d.head_dim,
            },
            adapters: true,
        })
    }

    /// One decoder layer on the residual stream `x` (updated in place), its activations in `a`.
    pub(crate) fn layer_forward(
        &self,
        gpu: &Gpu,
        l: usize,
        x: &mut CudaSlice<bf16>,
        a: &mut Acts,
        st: &Step,
        cache: Option<&mut KvCache>,
    ) -> Result<()> {
        let d = &self.dims;
        let n = st.attn.b * st.attn.tq;
        let (c, qd, kvd, i) = (
            d.hidden,
            d.heads * d.head_dim,
            d.kv_heads * d.head_dim,
            d.intermediate,
        );
        let w = |s: &str| self.w(&layer_name(l, s));
        let at = |proj: &'static str| AdaptedProj { layer: l, proj };
        gpu.rmsnorm_forward(
            &mut a.h1,
            &mut a.rstd1,
            x,
            w("input_layernorm.weight"),
            Rows { n, c },
            d.rms_norm_eps,
        )?;
        // Adapters add `s · (x Aᵀ) Bᵀ` to a projection's output right after its GEMM.
        let lora = st.adapters && !a.lora_u.is_empty();
        for (j, (out, proj, width, heads)) in [
            (&mut a.q, "q", qd, d.heads),
            (&mut a.k, "k", kvd, d.kv_heads),
            (&mut a.v, "v", kvd, 0),
        ]
        .into_iter()
        .enumerate()
        {
            gpu.gemm(
                GemmShape::linear(n, width, c),
                &a.h1,
                w(&format!("self_attn.{proj}_proj.weight")),
                out,
            )?;
            if lora {
                let p = format!("{proj}_proj");
                let site = AdaptedProj { layer: l, proj: &p };
                self.lora_forward(gpu, site, &a.h1, out, &mut a.lora_u[j], n)?;
            }
            if d.qkv_bias {
                gpu.bias_add(out, w(&format!("self_attn.{proj}_proj.bias")), n, width)?;
            }
            if heads > 0 {
                let dims = HeadRows {
                    n,
                    heads,
                    hd: d.head_dim,
                };
                gpu.rope(out, &st.positions, &self.inv_freq, dims, false)?;
            }
        }
        let (keys, values) = match cache {
            Some(kv) => {
                let (kc, vc) = (&mut kv.k[l], &mut kv.v[l]);
                gpu.kv_cache_append(kc, vc, &a.k, &a.v, &st.past, st.attn)?;
                (&*kc, &*vc)
            }
            None => (&a.k, &a.v),
        };
        let qkv = Qkv {
            q: &a.q,
            k: keys,
            v: values,
        };
        match self.attention {
            Attention::Materialised => {
                gpu.attention_forward(&mut a.y, &mut a.att, qkv, &st.past, st.attn)?
            }
            Attention::Flash => {
                gpu.flash_attention_forward(&mut a.y, &mut a.lse, qkv, &st.past, st.attn)?
            }
        }
        // The residual add rides on the GEMM: x = 1 · y Woᵀ + 1 · x.
        gpu.gemm(
            GemmShape::linear(n, c, qd).with_beta(1.0),
            &a.y,
            w("self_attn.o_proj.weight"),
            x,
        )?;
        if lora {
            self.lora_forward(gpu, at("o_proj"), &a.y, x, &mut a.lora_u[3], n)?;
        }
        gpu.stream()
            .memcpy_dtod(&*x, &mut a.x_mid)
            .map_err(|e| anyhow::anyhow!("copying the residual stream failed: {e:?}"))?;
        gpu.rmsnorm_forward(
            &mut a.h2,
            &mut a.rstd2,
            x,
            w("post_attention_layernorm.weight"),
            Rows { n, c },
            d.rms_norm_eps,
        )?;
        gpu.gemm(
            GemmShape::linear(n, i, c),
            &a.h2,
            w("mlp.gate_proj.weight"),
            &mut a.gate,
        )?;
        gpu.gemm(
            GemmShape::linear(n, i, c),
            &a.h2,
            w("mlp.up_proj.weight"),
            &mut a.up,
        )?;
        if lora {
            let (gate, up) = (at("gate_proj"), at("up_proj"));
            self.lora_forward(gpu, gate, &a.h2, &mut a.gate, &mut a.lora_u[4], n)?;
            self.lora_forward(gpu, up, &a.h2, &mut a.up, &mut a.lora_u[5], n)?;
        }
        gpu.swiglu_forward(&mut a.act, &a.gate, &a.up, n * i)?;
        gpu.gemm(
            GemmShape::linear(n, c, i).with_beta(1.0),
            &a.act,
            w("mlp.down_proj.weight"),
            x,
        )?;
        if lora {
            self.lora_forward(gpu, at("down_proj"), &a.act, x, &mut a.lora_u[6], n)?;
        }
        Ok(())
    }

    /// The final normed hidden states `[b · t, hidden]` of `b` sequences of `t` tokens.
    pub fn hidden_states(
        &self,
        gpu: &Gpu,
        tokens: &[i32],
        b: usize,
        t: usize,
    ) -> Result<CudaSlice<bf16>> {
        self.run_layers(gpu, tokens, b, t, &vec![0; b], None)
    }

    /// Runs the decoder on `tq` new tokens per batch row, row `r` continuing after `past[r]`
    /// positions. With a cache, the new keys and values are appended to it and attention reads
    /// the whole cache; without one, `past` must be all 0.
    fn run_layers(
        &self,
        gpu: &Gpu,
        tokens: &[i32],
        b: usize,
        tq: usize,
        past: &[i32],
        mut cache: Option<&mut KvCache>,
    ) -> Result<CudaSlice<bf16>> {
        let d = &self.dims;
        let s = match &cache {
            Some(c) => {
                ensure!(c.batch == b, "KV cache holds {} rows, not {b}", c.batch);
                let longest = past.iter().map(|&p| p as usize + tq).max().unwrap_or(0);
                ensure!(
                    longest <= c.capacity,
                    "KV cache of {} positions is full",
                    c.capacity
                );
                c.capacity
            }
            None => {
                ensure!(
                    past.iter().all(|&p| p == 0),
                    "continuing a sequence needs a KV cache"
                );
                tq
            }
        };
        let st = self.step(gpu, tokens, b, tq, past, s)?;
        let (n, c) = (b * tq, d.hidden);
        let mut a = Acts::new(gpu, d, st.attn, self.lora_rank(), self.attention)?;
        let mut x = gpu.zeros::<bf16>(n * c)?;
        gpu.embedding_forward(
            &mut x,
            &st.tokens,
            self.w("model.embed_tokens.weight"),
            n,
            c,
        )?;
        for l in 0..d.layers {
            self.layer_forward(gpu, l, &mut x, &mut a, &st, cache.as_deref_mut())?;
        }
        let mut rstd = gpu.zeros::<f32>(n)?;
        gpu.rmsnorm_forward(
            &mut a.h1,
            &mut rstd,
            &x,
            self.w("model.norm.weight"),
            Rows { n, c },
            d.rms_norm_eps,
        )?;
        Ok(a.h1)
    }

    /// Samples completions for every prompt row with a KV cache, all rows decoding together
    /// (one token per row per step). Rows stop at an `eos` token (kept) or
    /// `params.max_new_tokens`; the batch stops when every row has. `uniform` supplies the
    /// draws, one per row per step.
    pub fn generate(
        &self,
        gpu: &Gpu,
        prompts: &[Vec<i32>],
        params: &SamplingParams,
        eos: &[i32],
        uniform: &mut dyn FnMut() -> f32,
    ) -> Result<Vec<Completion>> {
        let max_new = params.max_new_tokens;
        let params = SampleParams::from(params);
        let b = prompts.len();
        ensure!(b > 0 && max_new > 0, "nothing to generate");
        ensure!(prompts.iter().all(|p| !p.is_empty()), "a prompt is empty");
        let (c, vocab) = (self.dims.hidden, self.dims.vocab);
        let longest = prompts.iter().map(Vec::len).max().unwrap_or(0);
        let mut cache = KvCache::new(gpu, &self.dims, b, longest + max_new)?;

        // Prefill: prompts right-padded to the longest; a padded position's keys land in the
        // cache past the row's end, where decoding overwrites them before anything reads them.
        let mut padded = Vec::with_capacity(b * longest);
        for p in prompts {
            padded.extend(p);
            padded.extend(std::iter::repeat_n(p[0], longest - p.len()));
        }
        let h = self.run_layers(gpu, &padded, b, longest, &vec![0; b], Some(&mut cache))?;
        let mut last = gpu.zeros::<bf16>(b * c)?;
        for (r, p) in prompts.iter().enumerate() {
            let row = (r * longest + p.len() - 1) * c;
            gpu.stream()
                .memcpy_dtod(
                    &h.slice(row..row + c),
                    &mut last.slice_mut(r * c..(r + 1) * c),
                )
                .map_err(|e| {
                    anyhow::anyhow!("copying a prompt's last hidden state failed: {e:?}")
                })?;
        }

        let mut logits = gpu.zeros::<bf16>(b * vocab)?;
        let mut tokens = gpu.zeros::<i32>(b)?;
        let mut logps = gpu.zeros::<f32>(b)?;
        let mut out: Vec<Completion> = (0..b).map(|_| Completion::default()).collect();
        let mut past: Vec<i32> = prompts.iter().map(|p| p.len() as i32).collect();
        let mut hidden = last;
        for step in 0..max_new {
            gpu.gemm(
                GemmShape::linear(b, vocab, c),
                &hidden,
                self.lm_head(),
                &mut logits,
            )?;
            let u: Vec<f32> = (0..b).map(|_| uniform()).collect();
            gpu.sample_rows(
                &mut tokens,
                &mut logps,
                &logits,
                &gpu.upload(&u)?,
                Rows { n: b, c: vocab },
                params,
            )?;
            let (tok, lp) = (gpu.download(&tokens)?, gpu.download(&logps)?);
            for (r, o) in out.iter_mut().enumerate() {
                if o.finished {
                    continue;
                }
                o.tokens.push(tok[r]);
                o.logps.push(lp[r]);
                o.finished = eos.contains(&tok[r]);
            }
            if step + 1 == max_new || out.iter().all(|o| o.finished) {
                break;
            }
            // Finished rows keep decoding (their tokens are dropped): the batch stays one shape.
            hidden = self.run_layers(gpu, &tok, b, 1, &past, Some(&mut cache))?;
            past.iter_mut().for_each(|p| *p += 1);
        }
        for o in &mut out {
            o.truncated = !o.finished;
        }
        Ok(out)
    }

    /// Full logits `[b · t, vocab]` (for tests at small sizes: this is what the chunked path
    /// avoids materialising).
    pub fn logits(&self, gpu: &Gpu, tokens: &[i32], b: usize, t: usize) -> Result<Vec<f32>> {
        let (n, c, vocab) = (b * t, self.dims.hidden, self.dims.vocab);
        let h = self.hidden_states(gpu, tokens, b, t)?;
        let mut logits = gpu.zeros::<bf16>(n * vocab)?;
        gpu.gemm(
            GemmShape::linear(n, vocab, c),
            &h,
            self.lm_head(),
            &mut logits,
        )?;
        Ok(gpu.download(&logits)?.iter().map(|x| x.to_f32()).collect())
    }

    /// Log-prob of each next token and the entropy at each position but the last, at
    /// `temperature`, running the lm head `chunk_rows` rows at a time.
    pub fn score(
        &self,
        gpu: &Gpu,
        tokens: &[i32],
        b: usize,
        t: usize,
        temperature: f32,
        chunk_rows: usize,
    ) -> Result<Scores> {
        ensure!(t >= 2, "scoring needs at least two tokens per sequence");
        ensure!(temperature > 0.0, "scoring temperature must be positive");
        let h = self.hidden_states(gpu, tokens, b, t)?;
        let head = self.head_scores(gpu, &h, tokens, t, 1.0 / temperature, chunk_rows)?;
        head.scores(gpu, t)
    }

    /// The lm head over final hidden states `h` (`[n, hidden]`, sequences of `t` tokens), a
    /// chunk of rows at a time: row `r` is scored on token `r + 1` of its sequence; each
    /// sequence's last row predicts nothing (its target 0 is computed and dropped).
    pub(crate) fn head_scores(
        &self,
        gpu: &Gpu,
        h: &CudaSlice<bf16>,
        tokens: &[i32],
        t: usize,
        inv_temp: f32,
        chunk_rows: usize,
    ) -> Result<HeadScores> {
        let (n, c, vocab) = (tokens.len(), self.dims.hidden, self.dims.vocab);
        let targets: Vec<i32> = (0..n)
            .map(|r| if (r + 1) % t == 0 { 0 } else { tokens[r + 1] })
            .collect();
        let targets = gpu.upload(&targets)?;
        let chunk = chunk_rows.clamp(1, n);
        let mut logits = gpu.zeros::<bf16>(chunk * vocab)?;
        let (mut logp, mut entropy, mut lse) = (gpu.zeros(n)?, gpu.zeros(n)?, gpu.zeros(n)?);
        let head = self.lm_head().slice(..);
        for r0 in (0..n).step_by(chunk) {
            let rows = chunk.min(n - r0);
            let mut out = logits.slice_mut(..rows * vocab);
            gpu.gemm(
                GemmShape::linear(rows, vocab, c),
                &h.slice(r0 * c..(r0 + rows) * c),
                &head,
                &mut out,
            )?;
            gpu.logprob_forward(
                &mut logp.slice_mut(r0..r0 + rows),
                &mut entropy.slice_mut(r0..r0 + rows),
                &mut lse.slice_mut(r0..r0 + rows),
                &out,
                &targets.slice(r0..r0 + rows),
                LogitRows {
                    rows,
                    vocab,
                    inv_temp,
                },
            )?;
        }
        Ok(HeadScores {
            logp,
            entropy,
            lse,
            targets,
            chunk,
        })
    }
}

/// The lm head's per-row results, on the GPU.
pub(crate) struct HeadScores {
    pub logp: CudaSlice<f32>,
    pub entropy: CudaSlice<f32>,
    /// Log-sum-exp of each row's scaled logits, for the backward pass.
    pub lse: CudaSlice<f32>,
    pub targets: CudaSlice<i32>,
    pub chunk: usize,
}

impl HeadScores {
    /// Host scores without each sequence's last row: `[b, t - 1]`.
    pub(crate) fn scores(&self, gpu: &Gpu, t: usize) -> Result<Scores> {
        let keep = |v: Vec<f32>| -> Vec<f32> {
            v.into_iter()
                .enumerate()
                .filter(|(r, _)| (r + 1) % t != 0)
                .map(|(_, x)| x)
                .collect()
        };
        Ok(Scores {
            logps: keep(gpu.download(&self.logp)?),
            entropies: keep(gpu.download(&self.entropy)?),
        })
    }
}

/// `dir`'s shapes and a reader of its weights by Hugging Face name (f32), both through the model
/// contract: [`ModelConfig::load`] and [`load_weights`] (`model.safetensors` or a sharded index;
/// f32, bf16 or f16 tensors).
#[allow(clippy::type_complexity)]
pub fn open_checkpoint(
    dir: &Path,
) -> Result<(ModelDims, Box<dyn FnMut(&str, usize) -> Result<Vec<f32>>>)> {
    let dims = ModelDims::from_config(ModelConfig::load(dir)?)?;
    let layout = ModelLayout::new(&dims.config).layout;
    let data = load_weights(dir, &layout)?;
    Ok((
        dims,
        Box::new(move |name: &str, _len: usize| {
            let t = layout
                .get(name)
                .ok_or_else(|| anyhow::anyhow!("the model layout has no tensor `{name}`"))?;
            Ok(data[t.range()].to_vec())
        }),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn qwen25_05b() -> ModelConfig {
        ModelConfig::parse(
            r#"{"model_type":"qwen2","vocab_size":151936,"hidden_size":896,
            "intermediate_size":4864,"num_hidden_layers":24,"num_attention_heads":14,
            "num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
            "tie_word_embeddings":true}"#,
        )
        .unwrap()
    }

    #[test]
    fn derives_the_gpu_shapes_from_the_model_contract() {
        let d = ModelDims::from_config(qwen25_05b()).unwrap();
        assert_eq!((d.head_dim, d.kv_heads, d.inv_freq.len()), (64, 2, 32));
        assert!(d.qkv_bias && d.tie_word_embeddings);
        assert_eq!(d.inv_freq, d.config.rope_inv_freq());
        // Qwen2.5-0.5B has 494,032,768 parameters (its model card says 0.49B).
        assert_eq!(d.parameters(), 494_032_768);
        assert_eq!(d.projection("o_proj"), (896, 896));
        assert_eq!(d.projection("k_proj"), (896, 128));
    }

    #[test]
    fn refuses_an_output_projection_bias_by_name() {
        let mut c = qwen25_05b();
        c.model_type = "llama".into();
        c.o_bias = true;
        let err = ModelDims::from_config(c).unwrap_err().to_string();
        assert!(
            err.contains("attention_bias") && err.contains("--device cpu"),
            "{err}"
        );
    }

    #[test]
    fn adapter_names_are_the_layouts() {
        let d = ModelDims::from_config(qwen25_05b()).unwrap();
        let lora = LoraConfig {
            rank: 4,
            alpha: 8.0,
            target_modules: vec!["q_proj".into(), "down_proj".into()],
        };
        let t = lora_tensors(&lora, &d).unwrap();
        assert_eq!(t.len(), 24 * 2 * 2);
        assert_eq!(t[0], (lora_name(0, "q_proj", 'A'), 4 * 896));
        assert_eq!(t[3], (lora_name(0, "down_proj", 'B'), 896 * 4));
        assert_eq!(lora_scale(&lora), 2.0);
    }
}
