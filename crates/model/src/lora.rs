//! LoRA adapters: `W x + (alpha / r) · B (A x)` on chosen projections, all A and B matrices in one
//! flat buffer named as PEFT names them, so an adapter checkpoint reads like a PEFT one.

use crate::config::ModelConfig;
use crate::params::{Layout, Proj};
use anyhow::{Result, bail};
use rand::Rng;
use serde::{Deserialize, Serialize};

/// Rank, scaling and target modules, as in PEFT's `LoraConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LoraConfig {
    /// Rank `r` of the update.
    pub rank: usize,
    /// `lora_alpha`; the update is scaled by `alpha / rank`.
    pub alpha: f32,
    /// Projection names: `q_proj`, `k_proj`, `v_proj`, `o_proj`, `gate_proj`, `up_proj`, `down_proj`.
    pub target_modules: Vec<String>,
}

impl Default for LoraConfig {
    /// The seed project's Unsloth settings: r = 16, alpha = 16, every projection.
    fn default() -> Self {
        Self {
            rank: 16,
            alpha: 16.0,
            target_modules: Proj::ALL.iter().map(|p| p.module().to_string()).collect(),
        }
    }
}

/// Offsets of one adapted projection's A ([r, in]) and B ([out, r]).
#[derive(Clone, Copy, Debug)]
pub struct LoraSlot {
    /// Offset of A ([rank, inp]).
    pub a: usize,
    /// Offset of B ([out, rank]).
    pub b: usize,
    /// Input width of the adapted projection.
    pub inp: usize,
    /// Output width of the adapted projection.
    pub out: usize,
}

/// Where every adapter matrix lives in the flat LoRA buffer.
#[derive(Clone, Debug)]
pub struct LoraLayout {
    /// The adapter's tensors, PEFT-named.
    pub layout: Layout,
    /// `slots[layer][proj.index()]`.
    pub slots: Vec<[Option<LoraSlot>; 7]>,
    /// LoRA rank r.
    pub rank: usize,
    /// `alpha / r`, applied to B·A.
    pub scale: f32,
}

impl LoraLayout {
    /// The layout of `cfg`'s adapters on a model of shape `model`; errors on an unknown target module or rank 0.
    pub fn new(cfg: &LoraConfig, model: &ModelConfig) -> Result<Self> {
        if cfg.rank == 0 {
            bail!("LoRA rank must be at least 1");
        }
        let mut targets = Vec::new();
        for m in &cfg.target_modules {
            match Proj::parse(m) {
                Some(p) => targets.push(p),
                None => bail!(
                    "unknown LoRA target module `{m}`; use q_proj, k_proj, v_proj, o_proj, gate_proj, up_proj, down_proj"
                ),
            }
        }
        let mut layout = Layout::default();
        let slots = (0..model.num_hidden_layers)
            .map(|l| {
                Proj::ALL.map(|p| {
                    targets.contains(&p).then(|| {
                        let (inp, out) = p.dims(model);
                        let a = layout.push(
                            format!("base_model.model.{}.lora_A.weight", p.path(l)),
                            vec![cfg.rank, inp],
                        );
                        let b = layout.push(
                            format!("base_model.model.{}.lora_B.weight", p.path(l)),
                            vec![out, cfg.rank],
                        );
                        LoraSlot { a, b, inp, out }
                    })
                })
            })
            .collect();
        Ok(Self {
            layout,
            slots,
            rank: cfg.rank,
            scale: cfg.alpha / cfg.rank as f32,
        })
    }

    /// PEFT's initialisation: A ~ U(-1/√in, 1/√in) (Kaiming-uniform with a = √5), B = 0, so the
    /// adapted model starts equal to the base model.
    pub fn init(&self, rng: &mut impl Rng) -> Vec<f32> {
        let mut data = vec![0.0; self.layout.len];
        for slot in self.slots.iter().flatten().flatten() {
            let bound = 1.0 / (slot.inp as f32).sqrt();
            for v in &mut data[slot.a..slot.a + self.rank * slot.inp] {
                *v = rng.random_range(-bound..bound);
            }
        }
        data
    }
}
