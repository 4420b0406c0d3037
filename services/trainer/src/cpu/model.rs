//! The decoder (Qwen2 / Llama) composed from the CPU layers: a full forward that keeps what the
//! backward pass needs, the backward pass, and KV-cached incremental decoding through the same
//! block code.

use super::layers::{self, AttnShape, Qkv, WeightGrads};
use crate::config::ModelConfig;
use crate::lora::{LoraLayout, LoraSlot};
use crate::params::{ModelLayout, Proj};

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

/// Keys and values of the positions decoded so far, per layer.
#[derive(Clone, Debug)]
pub struct KvCache {
    k: Vec<Vec<f32>>,
    v: Vec<Vec<f32>>,
    pub len: usize,
}

impl KvCache {
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
    pub config: ModelConfig,
    pub layout: ModelLayout,
    pub base: Vec<f32>,
    pub lora: Option<(LoraLayout, Vec<f32>)>,
    inv_freq: Vec<f32>,
}

impl CpuModel {
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

    fn lora_slot(
        &self,
        layer: usize,
        p: Proj,
        adapters: bool,
    ) -> Option<(&LoraLayout, &[f32], LoraSlot)> {
        let (ll, data) = self.lora.as_ref().filter(|_| adapters)?;
        ll.slots[layer][p.index()].map(|s| (ll, data.as_slice(), s))
    }

    /// `out = inp Wᵀ + b (+ scale · (inp Aᵀ) Bᵀ)`.
    fn linear_forward(
        &self,
        out: &mut [f32],
        mid: &mut Vec<f32>,
        inp: &[f32],
        layer: usize,
        p: Proj,
        adapters: bool,
    ) {
        let (c, oc) = p.dims(&self.config);
        let slot = self.layout.layers[layer].proj[p.index()];
        let w = &self.base[slot.w..slot.w + c * oc];
        let b = slot.b.map(|b| &self.base[b..b + oc]);
        layers::matmul_forward(out, inp, w, b, c, oc);
        if let Some((ll, data, s)) = self.lora_slot(layer, p, adapters) {
            let t = inp.len() / c;
            let r = ll.rank;
            mid.resize(t * r, 0.0);
            layers::matmul_forward(mid, inp, &data[s.a..s.a + r * c], None, c, r);
            let mut delta = vec![0.0; t * oc];
            layers::matmul_forward(&mut delta, mid, &data[s.b..s.b + oc * r], None, r, oc);
            out.iter_mut()
                .zip(&delta)
                .for_each(|(o, d)| *o += ll.scale * d);
        }
    }

    #[allow(clippy::too_many_arguments)]
    fn linear_backward(
        &self,
        dinp: &mut [f32],
        grads: &mut [f32],
        target: GradTarget,
        dout: &[f32],
        inp: &[f32],
        mid: &[f32],
        layer: usize,
        p: Proj,
        adapters: bool,
    ) {
        let (c, oc) = p.dims(&self.config);
        let slot = self.layout.layers[layer].proj[p.index()];
        let w = &self.base[slot.w..slot.w + c * oc];
        if target == GradTarget::Base {
            // dw and dbias are disjoint ranges of the same buffer.
            let (dw, dbias) = match slot.b {
                Some(b) => {
                    let (lo, hi) = grads.split_at_mut(b);
                    (&mut lo[slot.w..slot.w + c * oc], Some(&mut hi[..oc]))
                }
                None => (&mut grads[slot.w..slot.w + c * oc], None),
            };
            let grads = WeightGrads { w: dw, bias: dbias };
            layers::matmul_backward(dinp, Some(grads), dout, inp, w, c, oc);
        } else {
            layers::matmul_backward(dinp, None, dout, inp, w, c, oc);
        }
        if let Some((ll, data, s)) = self.lora_slot(layer, p, adapters) {
            let r = ll.rank;
            let t = inp.len() / c;
            let scaled: Vec<f32> = dout.iter().map(|g| g * ll.scale).collect();
            let mut dmid = vec![0.0; t * r];
            let (b, a) = (&data[s.b..s.b + oc * r], &data[s.a..s.a + r * c]);
            let grad_lora = target == GradTarget::Lora;
            // d(mid Bᵀ): dB = scaledᵀ mid, dmid = scaled B
            layers::matmul_backward(
                &mut dmid,
                grad_lora.then(|| WeightGrads {
                    w: &mut grads[s.b..s.b + oc * r],
                    bias: None,
                }),
                &scaled,
                mid,
                b,
                r,
                oc,
            );
            layers::matmul_backward(
                dinp,
                grad_lora.then(|| WeightGrads {
                    w: &mut grads[s.a..s.a + r * c],
                    bias: None,
                }),
                &dmid,
                inp,
                a,
                c,
                r,
            );
        }
    }

    /// One decoder layer over the new positions in `x` (updated in place). `cache`, when given,
    /// holds earlier positions' keys and values and receives the new ones.
    fn block_forward(
        &self,
        l: usize,
        x: &mut [f32],
        positions: &[usize],
        cache: Option<(&mut Vec<f32>, &mut Vec<f32>)>,
        a: &mut LayerActs,
        adapters: bool,
    ) {
        let cfg = &self.config;
        let (h, t) = (cfg.hidden_size, positions.len());
        let s = self.shape();
        let (qd, kvd, ff) = (s.nh * s.hd, s.nkv * s.hd, cfg.intermediate_size);
        let slots = &self.layout.layers[l];
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
        self.linear_forward(&mut a.q, mq, &a.ln1, l, Proj::Q, adapters);
        self.linear_forward(&mut a.k, mk, &a.ln1, l, Proj::K, adapters);
        self.linear_forward(&mut a.v, mv, &a.ln1, l, Proj::V, adapters);
        layers::rope_forward(&mut a.q, positions, &self.inv_freq, s.nh, s.hd);
        layers::rope_forward(&mut a.k, positions, &self.inv_freq, s.nkv, s.hd);
        a.y = alloc(t * qd);
        match cache {
            Some((kc, vc)) => {
                kc.extend_from_slice(&a.k);
                vc.extend_from_slice(&a.v);
                a.att = alloc(s.nh * t * (kc.len() / kvd));
                layers::attention_forward(&mut a.y, &mut a.att, &a.q, kc, vc, s);
            }
            None => {
                a.att = alloc(s.nh * t * t);
                layers::attention_forward(&mut a.y, &mut a.att, &a.q, &a.k, &a.v, s);
            }
        }
        let mut o = alloc(t * h);
        self.linear_forward(&mut o, mo, &a.y, l, Proj::O, adapters);
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
        self.linear_forward(&mut a.gate, mg, &a.ln2, l, Proj::Gate, adapters);
        self.linear_forward(&mut a.up, mu, &a.ln2, l, Proj::Up, adapters);
        layers::swiglu_forward(&mut a.act, &a.gate, &a.up);
        let mut d = alloc(t * h);
        self.linear_forward(&mut d, md, &a.act, l, Proj::Down, adapters);
        x.iter_mut().zip(&d).for_each(|(x, d)| *x += d);
    }

    /// Accumulates into `dx` (the residual's gradient, in: after the block, out: before it).
    #[allow(clippy::too_many_arguments)]
    fn block_backward(
        &self,
        l: usize,
        dx: &mut [f32],
        a: &LayerActs,
        positions: &[usize],
        grads: &mut [f32],
        target: GradTarget,
        adapters: bool,
    ) {
        let cfg = &self.config;
        let (h, t) = (cfg.hidden_size, positions.len());
        let s = self.shape();
        let (qd, kvd, ff) = (s.nh * s.hd, s.nkv * s.hd, cfg.intermediate_size);
        let slots = &self.layout.layers[l];
        let base_grads = target == GradTarget::Base;
        let [mq, mk, mv, mo, mg, mu, md] = &a.lora_mid;
        // MLP branch: x += down(swiglu(gate(ln2(x)), up(ln2(x))))
        let mut dact = vec![0.0; t * ff];
        self.linear_backward(
            &mut dact,
            grads,
            target,
            dx,
            &a.act,
            md,
            l,
            Proj::Down,
            adapters,
        );
        let (mut dgate, mut dup) = (vec![0.0; t * ff], vec![0.0; t * ff]);
        layers::swiglu_backward(&mut dgate, &mut dup, &dact, &a.gate, &a.up);
        let mut dln2 = vec![0.0; t * h];
        self.linear_backward(
            &mut dln2,
            grads,
            target,
            &dgate,
            &a.ln2,
            mg,
            l,
            Proj::Gate,
            adapters,
        );
        self.linear_backward(
            &mut dln2,
            grads,
            target,
            &dup,
            &a.ln2,
            mu,
            l,
            Proj::Up,
            adapters,
        );
        let dw2 = base_grads.then(|| &mut grads[slots.ln2..slots.ln2 + h]);
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
        self.linear_backward(&mut dy, grads, target, dx, &a.y, mo, l, Proj::O, adapters);
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
        self.linear_backward(
            &mut dln1,
            grads,
            target,
            &dq,
            &a.ln1,
            mq,
            l,
            Proj::Q,
            adapters,
        );
        self.linear_backward(
            &mut dln1,
            grads,
            target,
            &dk,
            &a.ln1,
            mk,
            l,
            Proj::K,
            adapters,
        );
        self.linear_backward(
            &mut dln1,
            grads,
            target,
            &dv,
            &a.ln1,
            mv,
            l,
            Proj::V,
            adapters,
        );
        let dw1 = base_grads.then(|| &mut grads[slots.ln1..slots.ln1 + h]);
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
        for l in (0..self.config.num_hidden_layers).rev() {
            self.block_backward(
                l,
                &mut dx,
                &acts.layers[l],
                &positions,
                grads,
                target,
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
        let (h, v, t) = (
            self.config.hidden_size,
            self.config.vocab_size,
            tokens.len(),
        );
        let positions: Vec<usize> = (cache.len..cache.len + t).collect();
        let mut x = vec![0.0; t * h];
        layers::embedding_forward(&mut x, tokens, &self.base[self.layout.embed..], h);
        let mut a = LayerActs::default();
        for l in 0..self.config.num_hidden_layers {
            self.block_forward(
                l,
                &mut x,
                &positions,
                Some((&mut cache.k[l], &mut cache.v[l])),
                &mut a,
                adapters,
            );
        }
        cache.len += t;
        let (lnf, _) = self.final_norm(&x[(t - 1) * h..], 1);
        let mut logits = vec![0.0; v];
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
