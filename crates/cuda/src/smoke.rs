//! A GRPO run small enough to finish in seconds whose reward must rise: generation with the KV
//! cache, scoring, backward and AdamW all on the GPU, on a tiny random model and a reward the
//! model can learn (the share of completion tokens equal to one chosen id). It checks that the
//! pieces train together, not that GRPO matches TRL: that is the trainer's job (its CPU
//! reference is held to TRL).

use crate::device::Gpu;
use crate::model::{Attention, ModelDims};
use crate::ops::SampleParams;
use crate::train::{AdamW, GpuTrainer};
use anyhow::{Result, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;

/// The run's shape and what came out of it.
#[derive(Clone, Debug, Serialize)]
pub struct SmokeRun {
    /// GRPO steps run.
    pub steps: usize,
    /// Prompts per step (random token ids), each sampled `generations` times.
    pub prompts: usize,
    /// Completions per prompt: the group its advantages are normalised within.
    pub generations: usize,
    /// Tokens generated per completion.
    pub completion_tokens: usize,
    /// The token id whose share of a completion is its reward.
    pub target_token: i32,
    /// Mean reward of each step's completions.
    pub rewards: Vec<f64>,
    /// Each step's gradient norm, before clipping.
    pub grad_norms: Vec<f64>,
    /// Mean reward of the last quarter of steps minus that of the first quarter.
    pub rise: f64,
}

fn tiny() -> ModelDims {
    ModelDims {
        vocab: 64,
        hidden: 64,
        intermediate: 128,
        layers: 2,
        heads: 4,
        kv_heads: 2,
        head_dim: 16,
        rms_norm_eps: 1e-6,
        qkv_bias: true,
        tie_word_embeddings: true,
        inv_freq: (0..8)
            .map(|i| 1.0 / 10000f32.powf(i as f32 / 8.0))
            .collect(),
    }
}

/// Group-normalised advantages, TRL's default: `(r - mean) / (std + 1e-4)` within each group.
fn advantages(rewards: &[f64], group: usize) -> Vec<f64> {
    rewards
        .chunks(group)
        .flat_map(|g| {
            let mean = g.iter().sum::<f64>() / g.len() as f64;
            // torch.std is the sample standard deviation.
            let var =
                g.iter().map(|r| (r - mean).powi(2)).sum::<f64>() / (g.len() - 1).max(1) as f64;
            let std = var.sqrt();
            g.iter()
                .map(move |r| (r - mean) / (std + 1e-4))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// Runs `steps` GRPO steps; `rise` says whether the reward went up.
pub fn grpo_smoke(gpu: &Gpu, steps: usize, seed: u64, attention: Attention) -> Result<SmokeRun> {
    ensure!(steps > 0, "a GRPO smoke run needs at least one step");
    let (prompts, generations, prompt_len, completion) = (8usize, 8usize, 8usize, 16usize);
    let target = 5i32;
    let d = tiny();
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut trainer = GpuTrainer::upload(gpu, d.clone(), &mut |name, len| {
        let norm = name.contains("norm");
        Ok((0..len)
            .map(|_| {
                if norm {
                    1.0
                } else {
                    rng.random_range(-0.1..0.1)
                }
            })
            .collect())
    })?;
    trainer.model.attention = attention;
    let opt = AdamW {
        lr: 3e-3,
        beta1: 0.9,
        beta2: 0.99,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let sample = SampleParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
    };
    let (mut rewards_curve, mut norms) = (vec![], vec![]);
    for _ in 0..steps {
        let rows: Vec<Vec<i32>> = (0..prompts)
            .flat_map(|_| {
                let p: Vec<i32> = (0..prompt_len)
                    .map(|_| rng.random_range(0..d.vocab as i32))
                    .collect();
                std::iter::repeat_n(p, generations)
            })
            .collect();
        let done = trainer
            .model
            .generate(gpu, &rows, sample, completion, &[], &mut || {
                rng.random::<f32>()
            })?;
        let rewards: Vec<f64> = done
            .iter()
            .map(|c| {
                c.tokens.iter().filter(|&&t| t == target).count() as f64 / c.tokens.len() as f64
            })
            .collect();
        rewards_curve.push(rewards.iter().sum::<f64>() / rewards.len() as f64);
        let adv = advantages(&rewards, generations);

        // On-policy, one iteration: the ratio is 1, so the loss -Σ A·logp / tokens has
        // ∂/∂logp = -A / tokens at every completion token (TRL's token-level normalisation).
        let t = prompt_len + completion;
        let tokens: Vec<i32> = rows
            .iter()
            .zip(&done)
            .flat_map(|(p, c)| p.iter().chain(&c.tokens).copied())
            .collect();
        let total = (rows.len() * completion) as f64;
        let mut dlogp = vec![0f32; rows.len() * (t - 1)];
        for (r, a) in adv.iter().enumerate() {
            for j in 0..completion {
                dlogp[r * (t - 1) + prompt_len - 1 + j] = (-a / total) as f32;
            }
        }
        trainer.zero_grad(gpu)?;
        let (saved, _) = trainer.forward(gpu, &tokens, rows.len(), t, 1.0, 256)?;
        trainer.backward(gpu, saved, &dlogp)?;
        norms.push(trainer.clip_grad_norm(gpu, 1.0)?);
        trainer.optimizer_step(gpu, opt)?;
    }
    let q = (steps / 4).max(1);
    let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
    let rise = mean(&rewards_curve[steps - q..]) - mean(&rewards_curve[..q]);
    Ok(SmokeRun {
        steps,
        prompts,
        generations,
        completion_tokens: completion,
        target_token: target,
        rewards: rewards_curve,
        grad_norms: norms,
        rise,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_are_normalised_within_each_group() {
        let a = advantages(&[0.0, 1.0, 1.0, 2.0, 2.0, 2.0], 3);
        // Group 1: mean 2/3, sample std 0.577.
        assert!((a[0] + 0.6667 / 0.57745).abs() < 1e-3, "{a:?}");
        // A group with equal rewards has zero advantage everywhere.
        assert_eq!(&a[3..], &[0.0, 0.0, 0.0]);
    }
}
