//! AdamW (torch.optim.AdamW's update), global-norm gradient clipping, and the Hugging Face
//! Trainer's learning-rate schedules.

use serde::{Deserialize, Serialize};
use std::ops::Range;

/// Optimiser hyper-parameters; defaults are Hugging Face `TrainingArguments`' (as GRPOConfig
/// inherits them), except the learning rate, which is GRPOConfig's.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OptimParams {
    /// Peak learning rate.
    pub learning_rate: f64,
    /// AdamW's β₁.
    pub adam_beta1: f64,
    /// AdamW's β₂.
    pub adam_beta2: f64,
    /// AdamW's ε.
    pub adam_epsilon: f64,
    /// Decoupled weight decay (not applied to biases and norm weights).
    pub weight_decay: f64,
    /// Clip the global gradient norm to this; 0 disables clipping.
    pub max_grad_norm: f64,
    /// How the learning rate moves after warm-up.
    pub lr_scheduler_type: LrSchedule,
    /// Fraction of the total steps spent warming up (rounded up).
    pub warmup_ratio: f64,
}

impl Default for OptimParams {
    fn default() -> Self {
        Self {
            learning_rate: 1e-6,
            adam_beta1: 0.9,
            adam_beta2: 0.999,
            adam_epsilon: 1e-8,
            weight_decay: 0.0,
            max_grad_norm: 1.0,
            lr_scheduler_type: LrSchedule::Linear,
            warmup_ratio: 0.0,
        }
    }
}

/// Learning-rate schedule after warm-up.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LrSchedule {
    /// Down linearly to 0 at the last step.
    Linear,
    /// Down along a half cosine to 0 at the last step.
    Cosine,
    /// Held at the peak.
    Constant,
}

impl OptimParams {
    /// The learning rate of optimizer step `step` (0-based) out of `total`, as the Hugging Face
    /// scheduler gives it (the first warm-up step runs at lr 0).
    pub fn lr_at(&self, step: usize, total: usize) -> f64 {
        let warmup = (total as f64 * self.warmup_ratio).ceil() as usize;
        let factor = if step < warmup {
            step as f64 / warmup.max(1) as f64
        } else {
            let progress = (step - warmup) as f64 / (total.saturating_sub(warmup)).max(1) as f64;
            match self.lr_scheduler_type {
                LrSchedule::Constant => 1.0,
                LrSchedule::Linear => (1.0 - progress).max(0.0),
                LrSchedule::Cosine => 0.5 * (1.0 + (std::f64::consts::PI * progress).cos()),
            }
        };
        self.learning_rate * factor
    }
}

/// AdamW moments for one flat parameter buffer.
#[derive(Clone, Debug, PartialEq)]
pub struct AdamW {
    /// First moments.
    pub m: Vec<f32>,
    /// Second moments.
    pub v: Vec<f32>,
    /// Updates applied so far.
    pub t: u64,
    /// Ranges exempt from weight decay (biases and norm weights, as the HF Trainer exempts them).
    pub no_decay: Vec<Range<usize>>,
}

impl AdamW {
    /// Zeroed moments for a buffer of `len` weights; `no_decay` ranges skip weight decay.
    pub fn new(len: usize, no_decay: Vec<Range<usize>>) -> Self {
        Self {
            m: vec![0.0; len],
            v: vec![0.0; len],
            t: 0,
            no_decay,
        }
    }

    /// One update of `params` with `grads` at learning rate `lr`.
    pub fn step(&mut self, params: &mut [f32], grads: &[f32], lr: f64, p: &OptimParams) {
        self.t += 1;
        let (b1, b2) = (p.adam_beta1, p.adam_beta2);
        let bc1 = 1.0 - b1.powi(self.t as i32);
        let bc2_sqrt = (1.0 - b2.powi(self.t as i32)).sqrt();
        let step_size = (lr / bc1) as f32;
        let decay = (1.0 - lr * p.weight_decay) as f32;
        let (b1, b2, eps) = (b1 as f32, b2 as f32, p.adam_epsilon as f32);
        let bc2_sqrt = bc2_sqrt as f32;
        let mut exempt = vec![false; params.len()];
        for r in &self.no_decay {
            exempt[r.clone()].fill(true);
        }
        for i in 0..params.len() {
            if !exempt[i] {
                params[i] *= decay;
            }
            let g = grads[i];
            self.m[i] = b1 * self.m[i] + (1.0 - b1) * g;
            self.v[i] = b2 * self.v[i] + (1.0 - b2) * g * g;
            let denom = self.v[i].sqrt() / bc2_sqrt + eps;
            params[i] -= step_size * self.m[i] / denom;
        }
    }
}

/// L2 norm of all gradients, accumulated in f64.
pub fn grad_norm(grads: &[f32]) -> f64 {
    grads
        .iter()
        .map(|&g| g as f64 * g as f64)
        .sum::<f64>()
        .sqrt()
}

/// Scales `grads` so their norm is at most `max_norm` (torch's `clip_grad_norm_`); returns the
/// norm before clipping.
pub fn clip_grad_norm(grads: &mut [f32], max_norm: f64) -> f64 {
    let norm = grad_norm(grads);
    if max_norm > 0.0 {
        let coef = max_norm / (norm + 1e-6);
        if coef < 1.0 {
            grads.iter_mut().for_each(|g| *g *= coef as f32);
        }
    }
    norm
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_adamw_step_moves_each_weight_by_lr() {
        let p = OptimParams {
            learning_rate: 0.1,
            weight_decay: 0.0,
            ..Default::default()
        };
        let mut opt = AdamW::new(2, vec![]);
        let mut w = vec![1.0f32, -1.0];
        opt.step(&mut w, &[0.5, -2.0], 0.1, &p);
        assert!(
            (w[0] - 0.9).abs() < 1e-6 && (w[1] + 0.9).abs() < 1e-6,
            "{w:?}"
        );
    }

    #[test]
    fn weight_decay_skips_exempt_ranges() {
        let p = OptimParams {
            weight_decay: 0.5,
            ..Default::default()
        };
        let exempt = std::iter::once(1..2).collect();
        let mut opt = AdamW::new(2, exempt);
        let mut w = vec![1.0f32, 1.0];
        opt.step(&mut w, &[0.0, 0.0], 0.1, &p);
        assert_eq!(w, vec![0.95, 1.0]);
    }

    #[test]
    fn warmup_then_cosine_matches_the_hf_schedule() {
        let p = OptimParams {
            learning_rate: 1.0,
            warmup_ratio: 0.1,
            lr_scheduler_type: LrSchedule::Cosine,
            ..Default::default()
        };
        assert_eq!(p.lr_at(0, 100), 0.0);
        assert!((p.lr_at(5, 100) - 0.5).abs() < 1e-12);
        assert!((p.lr_at(10, 100) - 1.0).abs() < 1e-12);
        assert!((p.lr_at(55, 100) - 0.5).abs() < 1e-12);
    }

    #[test]
    fn clipping_bounds_the_norm() {
        let mut g = vec![3.0f32, 4.0];
        assert!((clip_grad_norm(&mut g, 1.0) - 5.0).abs() < 1e-9);
        assert!((grad_norm(&g) - 1.0).abs() < 1e-5);
    }
}
