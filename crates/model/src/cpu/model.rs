//! The decoder (Qwen2 / Llama) composed from the CPU layers: a full forward that keeps what the
//! backward pass needs, the backward pass, and KV-cached incremental decoding through the same
//! block code.

use super::layers::{self, AttnShape, Mat, Qkv, WeightGrads};
use crate::config::ModelConfig;
use crate::lora::{LoraLayout, LoraSlot};
use crate::params::{ModelLayout, Proj};
use rayon::prelude::*;

/// Which parameters receive gradients.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GradTarget {
    /// Gradients for every base weight (full fine-tuning); the buffer is laid out like the base.
    Base,
    /// Gradients for the LoRA matrices only; the buffer is laid out like the adapter.
    Lora,
}

/// Activations of one decoder layer over one sequence.
#[derive(Default, Clone)]
pub struct LayerActs {
    x_in: Vec<f32>,
    ln1: Vec<f32>,
    rstd1: Vec<f32>,
    q: Vec<f32>,
    k: Vec<f32>,
    v: Vec<f32>,
    att: Vec<f32>,
    y: Vec<f32>,
    x_mid: Vec<f32>,
    ln2: Vec<f32>,
    rstd2: Vec<f32>,
    gate: Vec<f32>,
    up: Vec<f32>,
    act: Vec<f32>,
    /// `A x` per adapted projection ([t, r]), for the LoRA backward.
    lora_mid: [Vec<f32>; 7],
}

/// Everything a full forward over one sequence keeps for its backward pass.
pub struct Activations {
    /// The sequence's token ids.
    pub tokens: Vec<u32>,
    /// First position whose logits were computed.
    pub logits_from: usize,
    /// `[tokens.len() - logits_from, vocab]`: row `i` predicts token `logits_from + i + 1`.
    pub logits: Vec<f32>,
    layers: Vec<LayerActs>,
    x_final: Vec<f32>,
    lnf: Vec<f32>,
    rstdf: Vec<f32>,
    adapters: bool,
}

/// A linear layer's place in the model, and whether its LoRA adapter (if any) is on.
#[derive(Clone, Copy)]
struct LinearAt {
    layer: usize,
    proj: Proj,
    adapters: bool,
}

/// What a linear layer's backward reads from its forward: the input, and `A x` under LoRA.
#[derive(Clone, Copy)]
struct LinearSaved<'a> {
    inp: &'a [f32],
    mid: &'a [f32],
}

/// The buffer a backward pass accumulates parameter gradients into, and which parameters it
/// holds.
struct GradSink<'a> {
    buf: &'a mut [f32],
    target: GradTarget,
}

/// Keys and values of the positions decoded so far, per layer.
#[derive(Clone, Debug)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    /// Positions cached so far.
    pub len: usize,
}

/// The sequences of one cached forward: sequence `i` owns the next `rows[i]` rows of the batch
/// and `caches[i]`.
struct DecodeBatch<'c, 'k> {
    caches: &'c mut [&'k mut KvCache],
    rows: &'c [usize],
}

impl KvCache {
    /// An empty cache for a model of `layers` layers.
    pub fn new(layers: usize) -> Self {
        Self {
            k: vec![Vec::new(); layers],
            v: vec![Vec::new(); layers],
            len: 0,
        }
    }
}

/// A decoder's weights on the CPU: base weights in one buffer, LoRA matrices in another.
#[derive(Clone)]
pub struct CpuModel {
    /// The architecture.
    pub config: ModelConfig,
    /// Where each base tensor sits in `base`.
    pub layout: ModelLayout,
    /// Every base weight, in `layout` order.
    pub base: Vec<f32>,
    /// The LoRA adapters' layout and weights, when training LoRA.
    pub lora: Option<(LoraLayout, Vec<f32>)>,
    inv_freq: Vec<f32>,
}

impl CpuModel {
    /// A model over `base` (laid out as `config` says) with optional adapters; panics when `base` has the wrong length.
    pub fn new(config: ModelConfig, base: Vec<f32>, lora: Option<(LoraLayout, Vec<f32>)>) -> Self {
        let layout = ModelLayout::new(&config);
        assert_eq!(
            base.len(),
            layout.layout.len,
            "weight buffer does not match the config"
        );
        let inv_freq = config.rope_inv_freq();
        Self {
            config,
            layout,
            base,
            lora,
            inv_freq,
        }
    }

    fn shape(&self) -> AttnShape {
        AttnShape {
            nh: self.config.num_attention_heads,
            nkv: self.config.num_key_value_heads,
            hd: self.config.head_dim,
        }
    }

    fn lora_slot(&self, at: LinearAt) -> Option<(&LoraLayout, &[f32], LoraSlot)> {
        let (ll, data) = self.lora.as_ref().filter(|_| at.adapters)?;
        ll.slots[at.layer][at.proj.index()].map(|s| (ll, data.as_slice(), s))
    }

    /// `out = inp Wᵀ + b (+ scale · (inp Aᵀ) Bᵀ)`.
    fn linear_forward(&self, at: LinearAt, out: &mut [f32], mid: &mut Vec<f32>, inp: &[f32]) {
        let LinearAt { layer, proj, .. } = at;
        let (c, oc) = proj.dims(&self.config);
        let slot = self.layout.layers[layer].proj[proj.index()];
        let w = &self.base[slot.w..slot.w + c * oc];
        let b = slot.b.map(|b| &self.base[b..b + oc]);
        layers::matmul_forward(out, inp, w, b, c, oc);
        if let Some((ll, data, s)) = self.lora_slot(at) {
            let (t, r) = (inp.len() / c, ll.rank);
            mid.resize(t * r, 0.0);
            layers::matmul_forward(mid, inp, &data[s.a..s.a + r * c], None, c, r);
            let b = Mat::transposed(&data[s.b..s.b + oc * r], r, oc);
            layers::gemm(out, Mat::rows(mid, t, r), b, ll.scale, true);
        }
    }

    /// Accumulates `dinp` and, for `grads.target`, the layer's parameter gradients.
    fn linear_backward(
        &self,
        at: LinearAt,
        dinp: &mut [f32],
        dout: &[f32],
        saved: LinearSaved<'_>,
        grads: &mut GradSink<'_>,
    ) {
        let LinearSaved { inp, mid } = saved;
        let (c, oc) = at.proj.dims(&self.config);
        let slot = self.layout.layers[at.layer].proj[at.proj.index()];
        let w = &self.base[slot.w..slot.w + c * oc];
        if grads.target == GradTarget::Base {
            // dw and dbias are disjoint ranges of the same buffer.
            let (dw, dbias) = match slot.b {
                Some(b) => {
                    let (lo, hi) = grads.buf.split_at_mut(b);
                    (&mut lo[slot.w..slot.w + c * oc], Some(&mut hi[..oc]))
                }
                None => (&mut grads.buf[slot.w..slot.w + c * oc], None),
            };
            let wg = WeightGrads { w: dw, bias: dbias };
            layers::matmul_backward(dinp, Some(wg), dout, inp, w, c, oc);
        } else {
            layers::matmul_backward(dinp, None, dout, inp, w, c, oc);
        }
        if let Some((ll, data, s)) = self.lora_slot(at) {
            let r = ll.rank;
            let t = inp.len() / c;
            let scaled: Vec<f32> = dout.iter().map(|g| g * ll.scale).collect();
            let mut dmid = vec![0.0; t * r];
            let (b, a) = (&data[s.b..s.b + oc * r], &data[s.a..s.a + r * c]);
            let grad_lora = grads.target == GradTarget::Lora;
            // d(mid Bᵀ): dB = scaledᵀ mid, dmid = scaled B
            let db = grad_lora.then(|| WeightGrads {
                w: &mut grads.buf[s.b..s.b + oc * r],
                bias: None,
            });
            layers::matmul_backward(&mut dmid, db, &scaled, mid, b, r, oc);
            let da = grad_lora.then(|| WeightGrads {
                w: &mut grads.buf[s.a..s.a + r * c],
                bias: None,
            });
            layers::matmul_backward(dinp, da, &dmid, inp, a, c, r);
        }
    }

    /// One decoder layer over the rows of `x` (updated in place). Without `cache` the rows are
    /// one sequence attending causally to itself; with it they are the new positions of the
    /// cache's sequences, each attending to its own cached keys and values (which receive the
    /// new ones) while every matrix product runs over all of them at once.
    fn block_forward(
        &self,
        l: usize,
        x: &mut [f32],
        positions: &[usize],
        cache: Option<&mut DecodeBatch<'_, '_>>,
        a: &mut LayerActs,
        adapters: bool,
    ) {
        let cfg = &self.config;
        let (h, t) = (cfg.hidden_size, positions.len());
        let s = self.shape();
        let (qd, kvd, ff) = (s.nh * s.hd, s.nkv * s.hd, cfg.intermediate_size);
        let slots = &self.layout.layers[l];
        let at = |proj| LinearAt {
            layer: l,
            proj,
            adapters,
        };
        let alloc = |n: usize| vec![0.0f32; n];
        a.x_in = x.to_vec();
        (a.ln1, a.rstd1) = (alloc(t * h), alloc(t));
        layers::rmsnorm_forward(
            &mut a.ln1,
            &mut a.rstd1,
            x,
            &self.base[slots.ln1..slots.ln1 + h],
            h,
            cfg.rms_norm_eps,
        );
        (a.q, a.k, a.v) = (alloc(t * qd), alloc(t * kvd), alloc(t * kvd));
        let [mq, mk, mv, mo, mg, mu, md] = &mut a.lora_mid;
        self.linear_forward(at(Proj::Q), &mut a.q, mq, &a.ln1);
        self.linear_forward(at(Proj::K), &mut a.k, mk, &a.ln1);
        self.linear_forward(at(Proj::V), &mut a.v, mv, &a.ln1);
        layers::rope_forward(&mut a.q, positions, &self.inv_freq, s.nh, s.hd);
        layers::rope_forward(&mut a.k, positions, &self.inv_freq, s.nkv, s.hd);
        a.y = alloc(t * qd);
        let qkv = Qkv {
            q: &a.q,
            k: &a.k,
            v: &a.v,
        };
        match cache {
            Some(batch) => self.cached_attention(l, &mut a.y, qkv, batch),
            None => {
                a.att = alloc(s.nh * t * t);
                layers::attention_forward(&mut a.y, &mut a.att, &a.q, &a.k, &a.v, s);
            }
        }
        let mut o = alloc(t * h);
        self.linear_forward(at(Proj::O), &mut o, mo, &a.y);
        x.iter_mut().zip(&o).for_each(|(x, o)| *x += o);
        a.x_mid = x.to_vec();
        (a.ln2, a.rstd2) = (alloc(t * h), alloc(t));
        layers::rmsnorm_forward(
            &mut a.ln2,
            &mut a.rstd2,
            x,
            &self.base[slots.ln2..slots.ln2 + h],
            h,
            cfg.rms_norm_eps,
        );
        (a.gate, a.up, a.act) = (alloc(t * ff), alloc(t * ff), alloc(t * ff));
        self.linear_forward(at(Proj::Gate), &mut a.gate, mg, &a.ln2);
        self.linear_forward(at(Proj::Up), &mut a.up, mu, &a.ln2);
        layers::swiglu_forward(&mut a.act, &a.gate, &a.up);
        let mut d = alloc(t * h);
        self.linear_forward(at(Proj::Down), &mut d, md, &a.act);
        x.iter_mut().zip(&d).for_each(|(x, d)| *x += d);
    }

    /// Attention of layer `l` for a decode batch: each sequence appends its new keys and values
    /// to its own cache and attends over that; sequences run in parallel.
    fn cached_attention(
        &self,
        l: usize,
        y: &mut [f32],
        qkv: Qkv<'_>,
        batch: &mut DecodeBatch<'_, '_>,
    ) {
        let s = self.shape();
        let (qd, kvd) = (s.nh * s.hd, s.nkv * s.hd);
        let mut jobs = Vec::with_capacity(batch.rows.len());
        let (mut y_rest, mut row) = (y, 0);
        for (cache, &n) in batch.caches.iter_mut().zip(batch.rows) {
            let (y_seq, rest) = std::mem::take(&mut y_rest).split_at_mut(n * qd);
            y_rest = rest;
            let KvCache { k, v, .. } = &mut **cache;
            k[l].extend_from_slice(&qkv.k[row * kvd..(row + n) * kvd]);
            v[l].extend_from_slice(&qkv.v[row * kvd..(row + n) * kvd]);
            jobs.push((y_seq, &qkv.q[row * qd..(row + n) * qd], &k[l], &v[l]));
            row += n;
        }
        jobs.into_par_iter().for_each(|(y, q, k, v)| {
            let mut att = vec![0.0f32; s.nh * (q.len() / qd) * (k.len() / kvd)];
            layers::attention_forward(y, &mut att, q, k, v, s);
        });
    }

    /// Accumulates into `dx` (the residual's gradient, in: after the block, out: before it).
    fn block_backward(
        &self,
        l: usize,
        dx: &mut [f32],
        a: &LayerActs,
        positions: &[usize],
        grads: &mut GradSink<'_>,
        adapters: bool,
    ) {
        let cfg = &self.config;
        let (h, t) = (cfg.hidden_size, positions.len());
        let s = self.shape();
        let (qd, kvd, ff) = (s.nh * s.hd, s.nkv * s.hd, cfg.intermediate_size);
        let slots = &self.layout.layers[l];
        let base_grads = grads.target == GradTarget::Base;
        let at = |proj| LinearAt {
            layer: l,
            proj,
            adapters,
        };
        let saved = |inp, mid| LinearSaved { inp, mid };
        let [mq, mk, mv, mo, mg, mu, md] = &a.lora_mid;
        // MLP branch: x += down(swiglu(gate(ln2(x)), up(ln2(x))))
        let mut dact = vec![0.0; t * ff];
        self.linear_backward(at(Proj::Down), &mut dact, dx, saved(&a.act, md), grads);
        let (mut dgate, mut dup) = (vec![0.0; t * ff], vec![0.0; t * ff]);
        layers::swiglu_backward(&mut dgate, &mut dup, &dact, &a.gate, &a.up);
        let mut dln2 = vec![0.0; t * h];
        self.linear_backward(at(Proj::Gate), &mut dln2, &dgate, saved(&a.ln2, mg), grads);
        self.linear_backward(at(Proj::Up), &mut dln2, &dup, saved(&a.ln2, mu), grads);
        let dw2 = base_grads.then(|| &mut grads.buf[slots.ln2..slots.ln2 + h]);
        layers::rmsnorm_backward(
            dx,
            dw2,
            &dln2,
            &a.x_mid,
            &self.base[slots.ln2..slots.ln2 + h],
            &a.rstd2,
            h,
        );
        // Attention branch: x += o(attn(rope(q(ln1 x)), rope(k(ln1 x)), v(ln1 x)))
        let mut dy = vec![0.0; t * qd];
        self.linear_backward(at(Proj::O), &mut dy, dx, saved(&a.y, mo), grads);
        let (mut dq, mut dk, mut dv) = (vec![0.0; t * qd], vec![0.0; t * kvd], vec![0.0; t * kvd]);
        let qkv = Qkv {
            q: &a.q,
            k: &a.k,
            v: &a.v,
        };
        layers::attention_backward(&mut dq, &mut dk, &mut dv, &dy, &a.att, qkv, s);
        layers::rope_backward(&mut dq, positions, &self.inv_freq, s.nh, s.hd);
        layers::rope_backward(&mut dk, positions, &self.inv_freq, s.nkv, s.hd);
        let mut dln1 = vec![0.0; t * h];
        self.linear_backward(at(Proj::Q), &mut dln1, &dq, saved(&a.ln1, mq), grads);
        self.linear_backward(at(Proj::K), &mut dln1, &dk, saved(&a.ln1, mk), grads);
        self.linear_backward(at(Proj::V), &mut dln1, &dv, saved(&a.ln1, mv), grads);
        let dw1 = base_grads.then(|| &mut grads.buf[slots.ln1..slots.ln1 + h]);
        layers::rmsnorm_backward(
            dx,
            dw1,
            &dln1,
            &a.x_in,
            &self.base[slots.ln1..slots.ln1 + h],
            &a.rstd1,
            h,
        );
    }

    fn final_norm(&self, x: &[f32], t: usize) -> (Vec<f32>, Vec<f32>) {
        let h = self.config.hidden_size;
        let (mut out, mut rstd) = (vec![0.0; t * h], vec![0.0; t]);
        let n = self.layout.norm;
        layers::rmsnorm_forward(
            &mut out,
            &mut rstd,
            x,
            &self.base[n..n + h],
            h,
            self.config.rms_norm_eps,
        );
        (out, rstd)
    }

    fn lm_head(&self, out: &mut [f32], x: &[f32]) {
        let (h, v) = (self.config.hidden_size, self.config.vocab_size);
        let w = &self.base[self.layout.lm_head..self.layout.lm_head + v * h];
        layers::matmul_forward(out, x, w, None, h, v);
    }

    /// Full forward over `tokens`, keeping activations; logits are computed for positions
    /// `logits_from..tokens.len()` only (a completion's, when scoring one).
    pub fn forward(&self, tokens: &[u32], logits_from: usize, adapters: bool) -> Activations {
        let (h, v, t) = (
            self.config.hidden_size,
            self.config.vocab_size,
            tokens.len(),
        );
        let positions: Vec<usize> = (0..t).collect();
        let mut x = vec![0.0; t * h];
        layers::embedding_forward(&mut x, tokens, &self.base[self.layout.embed..], h);
        let mut acts = vec![LayerActs::default(); self.config.num_hidden_layers];
        for (l, a) in acts.iter_mut().enumerate() {
            self.block_forward(l, &mut x, &positions, None, a, adapters);
        }
        let (lnf, rstdf) = self.final_norm(&x, t);
        let mut logits = vec![0.0; (t - logits_from) * v];
        self.lm_head(&mut logits, &lnf[logits_from * h..]);
        Activations {
            tokens: tokens.to_vec(),
            logits_from,
            logits,
            layers: acts,
            x_final: x,
            lnf,
            rstdf,
            adapters,
        }
    }

    /// Backward from `dlogits` (shaped like `acts.logits`), accumulating into `grads`.
    pub fn backward(
        &self,
        acts: &Activations,
        dlogits: &[f32],
        grads: &mut [f32],
        target: GradTarget,
    ) {
        let (h, v, t) = (
            self.config.hidden_size,
            self.config.vocab_size,
            acts.tokens.len(),
        );
        let base_grads = target == GradTarget::Base;
        let positions: Vec<usize> = (0..t).collect();
        let from = acts.logits_from;
        let head = self.layout.lm_head;
        let mut dlnf = vec![0.0; t * h];
        layers::matmul_backward(
            &mut dlnf[from * h..],
            base_grads.then(|| WeightGrads {
                w: &mut grads[head..head + v * h],
                bias: None,
            }),
            dlogits,
            &acts.lnf[from * h..],
            &self.base[head..head + v * h],
            h,
            v,
        );
        let mut dx = vec![0.0; t * h];
        let n = self.layout.norm;
        layers::rmsnorm_backward(
            &mut dx,
            base_grads.then(|| &mut grads[n..n + h]),
            &dlnf,
            &acts.x_final,
            &self.base[n..n + h],
            &acts.rstdf,
            h,
        );
        let mut sink = GradSink {
            buf: &mut *grads,
            target,
        };
        for l in (0..self.config.num_hidden_layers).rev() {
            self.block_backward(
                l,
                &mut dx,
                &acts.layers[l],
                &positions,
                &mut sink,
                acts.adapters,
            );
        }
        if base_grads {
            layers::embedding_backward(&mut grads[self.layout.embed..], &dx, &acts.tokens, h);
        }
    }

    /// Runs `tokens` through the model after the positions already in `cache`, appends their
    /// keys/values, and returns the logits of the last new position.
    pub fn forward_cached(&self, tokens: &[u32], cache: &mut KvCache, adapters: bool) -> Vec<f32> {
        self.forward_cached_batch(&[tokens], &mut [cache], adapters)
    }

    /// Runs each sequence's new `tokens[i]` after the positions in its `caches[i]`, every matrix
    /// product over all sequences' rows at once (matrix × matrix even when each sequence adds one
    /// token), appends the new keys/values, and returns the logits of each sequence's last new
    /// position: `[sequences, vocab]`.
    pub fn forward_cached_batch(
        &self,
        tokens: &[&[u32]],
        caches: &mut [&mut KvCache],
        adapters: bool,
    ) -> Vec<f32> {
        assert_eq!(tokens.len(), caches.len(), "one cache per sequence");
        assert!(
            tokens.iter().all(|t| !t.is_empty()),
            "a sequence without new tokens"
        );
        let (h, v) = (self.config.hidden_size, self.config.vocab_size);
        let rows: Vec<usize> = tokens.iter().map(|t| t.len()).collect();
        let positions: Vec<usize> = caches
            .iter()
            .zip(&rows)
            .flat_map(|(c, &n)| c.len..c.len + n)
            .collect();
        let flat = tokens.concat();
        let mut x = vec![0.0; flat.len() * h];
        layers::embedding_forward(&mut x, &flat, &self.base[self.layout.embed..], h);
        let mut a = LayerActs::default();
        let mut batch = DecodeBatch {
            caches,
            rows: &rows,
        };
        for l in 0..self.config.num_hidden_layers {
            self.block_forward(l, &mut x, &positions, Some(&mut batch), &mut a, adapters);
        }
        for (cache, &n) in batch.caches.iter_mut().zip(&rows) {
            cache.len += n;
        }
        // Only each sequence's last new position predicts its next token.
        let mut last = Vec::with_capacity(rows.len() * h);
        let mut end = 0;
        for &n in &rows {
            end += n;
            last.extend_from_slice(&x[(end - 1) * h..end * h]);
        }
        let (lnf, _) = self.final_norm(&last, rows.len());
        let mut logits = vec![0.0; rows.len() * v];
        self.lm_head(&mut logits, &lnf);
        logits
    }

    /// Length of the gradient buffer for `target`.
    pub fn grad_len(&self, target: GradTarget) -> usize {
        match target {
            GradTarget::Base => self.base.len(),
            GradTarget::Lora => self.lora.as_ref().map_or(0, |(l, _)| l.layout.len),
        }
    }

    /// The trainable buffer for `target`.
    pub fn trainable_mut(&mut self, target: GradTarget) -> &mut Vec<f32> {
        match target {
            GradTarget::Base => &mut self.base,
            GradTarget::Lora => &mut self.lora.as_mut().expect("LoRA target without adapters").1,
        }
    }

    /// The weights `target` names (what the optimizer updates).
    pub fn trainable(&self, target: GradTarget) -> &[f32] {
        match target {
            GradTarget::Base => &self.base,
            GradTarget::Lora => &self.lora.as_ref().expect("LoRA target without adapters").1,
        }
    }

    /// Base weights with the LoRA update folded in: `W + scale · B A`.
    pub fn merged_base(&self) -> Vec<f32> {
        let mut base = self.base.clone();
        let Some((ll, data)) = &self.lora else {
            return base;
        };
        for (l, slots) in ll.slots.iter().enumerate() {
            for p in Proj::ALL {
                let Some(s) = slots[p.index()] else { continue };
                let w = self.layout.layers[l].proj[p.index()].w;
                for o in 0..s.out {
                    for r in 0..ll.rank {
                        let bor = ll.scale * data[s.b + o * ll.rank + r];
                        let arow = &data[s.a + r * s.inp..s.a + (r + 1) * s.inp];
                        for (wv, av) in base[w + o * s.inp..w + (o + 1) * s.inp]
                            .iter_mut()
                            .zip(arow)
                        {
                            *wv += bor * av;
                        }
                    }
                }
            }
        }
        base
    }
}
