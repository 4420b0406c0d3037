//! GRPO's maths as TRL 1.16's `GRPOTrainer` defines it: rewards → group-relative advantages,
//! the clipped token-level surrogate with a k3 KL penalty, and the four loss aggregations.
//!
//! Everything here is per token and closed-form, so the trainer can run the model one sequence
//! at a time: the loss is `Σ_i Σ_t w_it · ℓ(logp_it)` with weights `w_it` fixed before the
//! forward pass, and `∂loss/∂logp_it = w_it · ℓ'(logp_it)`.

use serde::{Deserialize, Serialize};

/// How per-token losses are aggregated (TRL's `loss_type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum LossType {
    /// Mean over each sequence's tokens, then over sequences (DeepSeekMath).
    Grpo,
    /// Sum over the micro-batch's tokens / their count.
    Bnpo,
    /// Sum over tokens / (sequences · max_completion_length) (Dr. GRPO).
    #[value(name = "dr_grpo")]
    DrGrpo,
    /// Sum over tokens / the whole generation batch's token count (DAPO; TRL's default).
    Dapo,
}

/// How advantages are scaled (TRL's `scale_rewards`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ScaleRewards {
    /// Divide by the group's standard deviation.
    Group,
    /// Divide by the whole batch's standard deviation.
    Batch,
    /// Do not scale (Dr. GRPO).
    None,
}

/// The GRPO hyper-parameters; defaults are TRL 1.16's `GRPOConfig`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GrpoParams {
    /// Completions sampled per prompt (G).
    pub num_generations: usize,
    /// KL coefficient; 0 skips the reference policy entirely.
    pub beta: f64,
    /// Lower clip range: ratios below 1 - epsilon are clipped.
    pub epsilon: f64,
    /// Upper clip range; `None` means `epsilon`.
    pub epsilon_high: Option<f64>,
    /// How per-token losses are averaged into the step's loss.
    pub loss_type: LossType,
    /// How rewards are scaled into advantages.
    pub scale_rewards: ScaleRewards,
    /// Optimisation passes over each generation batch (μ).
    pub num_iterations: usize,
    /// Drop completions that hit the length limit from the loss.
    pub mask_truncated_completions: bool,
    /// When a generator server sampled the completions (`--generator`), weight each token's
    /// surrogate loss by the truncated importance ratio between the trainer's and the server's
    /// log-probs, correcting for the two engines' numerical mismatch.
    pub vllm_importance_sampling_correction: bool,
    /// The ratio's cap.
    pub vllm_importance_sampling_cap: f64,
}

impl Default for GrpoParams {
    fn default() -> Self {
        Self {
            num_generations: 8,
            beta: 0.0,
            epsilon: 0.2,
            epsilon_high: None,
            loss_type: LossType::Dapo,
            scale_rewards: ScaleRewards::Group,
            num_iterations: 1,
            mask_truncated_completions: false,
            vllm_importance_sampling_correction: true,
            vllm_importance_sampling_cap: 2.0,
        }
    }
}

impl GrpoParams {
    /// The upper clip range in force.
    pub fn epsilon_high(&self) -> f64 {
        self.epsilon_high.unwrap_or(self.epsilon)
    }
}

/// Weighted sum of the named rewards per completion, as TRL's `nansum`: a missing (NaN) reward
/// counts as 0, but a completion every reward function failed on is itself NaN (unscorable).
/// `per_reward[k][i]` is reward function `k`'s score for completion `i`.
pub fn combine_rewards(per_reward: &[Vec<f64>], weights: &[f64]) -> Vec<f64> {
    let n = per_reward.first().map_or(0, Vec::len);
    (0..n)
        .map(|i| {
            if per_reward.iter().all(|r| r[i].is_nan()) {
                return f64::NAN;
            }
            per_reward
                .iter()
                .zip(weights)
                .map(|(r, w)| r[i] * w)
                .filter(|v| !v.is_nan())
                .sum()
        })
        .collect()
}

/// Mean and unbiased (n - 1) standard deviation of the non-NaN values, as TRL's `nanmean` and
/// `nanstd` compute them.
pub fn nan_mean_std(v: &[f64]) -> (f64, f64) {
    let vals: Vec<f64> = v.iter().copied().filter(|x| !x.is_nan()).collect();
    let n = vals.len() as f64;
    let mean = vals.iter().sum::<f64>() / n;
    let var = vals.iter().map(|x| (x - mean) * (x - mean)).sum::<f64>() / (n - 1.0);
    (mean, var.sqrt())
}

/// Group-relative advantages: `r - mean_group`, divided by `std + 1e-4` unless scaling is off.
/// Completions are grouped `g` at a time, in order; NaN (unscorable) rewards are left out of the
/// statistics and get advantage 0.
pub fn advantages(rewards: &[f64], g: usize, scale: ScaleRewards) -> Vec<f64> {
    let batch_std = nan_mean_std(rewards).1;
    rewards
        .chunks(g)
        .flat_map(|group| {
            let (mean, std) = nan_mean_std(group);
            let std = if scale == ScaleRewards::Batch {
                batch_std
            } else {
                std
            };
            group.iter().map(move |r| {
                let a = match scale {
                    ScaleRewards::None => r - mean,
                    _ => (r - mean) / (std + 1e-4),
                };
                if a.is_nan() { 0.0 } else { a }
            })
        })
        .collect()
}

/// The inputs of one completion token's loss.
#[derive(Clone, Copy, Debug)]
pub struct TokenInput {
    /// Log-prob of the token under the policy being updated.
    pub logp: f64,
    /// Log-prob under the policy that sampled (equals `logp` on the first iteration).
    pub old_logp: f64,
    /// Log-prob under the reference policy; used only when `beta != 0`.
    pub ref_logp: f64,
    /// The completion's advantage.
    pub advantage: f64,
    /// Weight of the surrogate term (not the KL term): the truncated importance ratio of
    /// [`importance_weight`] for completions another engine sampled, else 1.
    pub sampling_weight: f64,
}

/// `min(exp(old_logp - sampling_logp), cap)`: how much more likely the trainer finds a token
/// than the engine that sampled it, capped so a few tokens cannot dominate (TRL's truncated
/// importance sampling for vLLM).
pub fn importance_weight(old_logp: f64, sampling_logp: f64, cap: f64) -> f64 {
    let ratio = (old_logp - sampling_logp).exp();
    if ratio.is_nan() { 1.0 } else { ratio.min(cap) }
}

/// One token's loss, its derivative with respect to `logp`, and what the metrics report.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct TokenLoss {
    /// The token's loss before aggregation.
    pub loss: f64,
    /// d loss / d logp (the aggregation weight applied by the caller).
    pub dloss_dlogp: f64,
    /// The token's k3 KL estimate to the reference.
    pub kl: f64,
    /// The ratio fell below 1 - ε with a negative advantage (the clip is active).
    pub clipped_low: bool,
    /// The ratio rose above 1 + ε_high with a positive advantage.
    pub clipped_high: bool,
}

/// `-min(ρ A, clip(ρ, 1-ε, 1+ε_high) A) + β k3(ref, logp)` with `ρ = exp(logp - old_logp)`.
///
/// At a tie of the two surrogate terms the gradient is split in half between them, as
/// `torch.min`'s backward does.
pub fn token_loss(x: TokenInput, p: &GrpoParams) -> TokenLoss {
    let (lo, hi) = (1.0 - p.epsilon, 1.0 + p.epsilon_high());
    let ratio = (x.logp - x.old_logp).exp();
    let clamped = ratio.clamp(lo, hi);
    let (l1, l2) = (ratio * x.advantage, clamped * x.advantage);
    let d1 = ratio * x.advantage;
    let d2 = if (lo..=hi).contains(&ratio) {
        ratio * x.advantage
    } else {
        0.0
    };
    let dmin = if l1 < l2 {
        d1
    } else if l2 < l1 {
        d2
    } else {
        0.5 * (d1 + d2)
    };
    let mut out = TokenLoss {
        loss: -l1.min(l2) * x.sampling_weight,
        dloss_dlogp: -dmin * x.sampling_weight,
        clipped_low: ratio < lo && x.advantage < 0.0,
        clipped_high: ratio > hi && x.advantage > 0.0,
        ..Default::default()
    };
    if p.beta != 0.0 {
        let delta = x.ref_logp - x.logp;
        out.kl = delta.exp() - delta - 1.0;
        out.loss += p.beta * out.kl;
        out.dloss_dlogp += p.beta * (1.0 - delta.exp());
    }
    out
}

/// What fixes the per-token weights of one micro-batch's loss.
#[derive(Clone, Copy, Debug)]
pub struct Aggregation {
    /// The aggregation rule.
    pub loss_type: LossType,
    /// Sequences in the micro-batch.
    pub sequences: usize,
    /// Unmasked completion tokens in the micro-batch.
    pub tokens: usize,
    /// Micro-batches accumulated per optimizer step.
    pub grad_accum: usize,
    /// `max_completion_length` (Dr. GRPO's constant normaliser).
    pub max_completion_length: usize,
    /// Unmasked completion tokens in the whole generation batch (DAPO's normaliser).
    pub num_items_in_batch: usize,
}

impl Aggregation {
    /// Weight of each unmasked token of a sequence with `seq_tokens` unmasked tokens.
    pub fn token_weight(&self, seq_tokens: usize) -> f64 {
        let accum = self.grad_accum as f64;
        match self.loss_type {
            LossType::Grpo => 1.0 / (seq_tokens.max(1) as f64 * self.sequences as f64 * accum),
            LossType::Bnpo => 1.0 / (self.tokens.max(1) as f64 * accum),
            LossType::DrGrpo => {
                1.0 / ((self.sequences * self.max_completion_length) as f64 * accum)
            }
            LossType::Dapo => 1.0 / self.num_items_in_batch.max(1) as f64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn advantages_are_zero_mean_per_group_and_scaled_by_unbiased_std() {
        let a = advantages(&[1.0, 0.0, 1.0, 0.0, 2.0, 2.0], 2, ScaleRewards::Group);
        let std = (0.5f64).sqrt();
        assert!((a[0] - 0.5 / (std + 1e-4)).abs() < 1e-12);
        assert!((a[1] + 0.5 / (std + 1e-4)).abs() < 1e-12);
        assert_eq!(
            &a[4..],
            &[0.0, 0.0],
            "a group with equal rewards has no signal"
        );
    }

    #[test]
    fn missing_rewards_count_as_zero_unless_all_are_missing() {
        let r = combine_rewards(
            &[vec![1.0, f64::NAN, f64::NAN], vec![0.5, 0.5, f64::NAN]],
            &[1.0, 2.0],
        );
        assert_eq!(r[..2], [2.0, 1.0]);
        assert!(r[2].is_nan());
    }

    #[test]
    fn on_policy_gradient_is_minus_advantage() {
        let p = GrpoParams::default();
        let t = token_loss(
            TokenInput {
                logp: -1.3,
                old_logp: -1.3,
                ref_logp: 0.0,
                advantage: 0.7,
                sampling_weight: 1.0,
            },
            &p,
        );
        assert!((t.loss + 0.7).abs() < 1e-12 && (t.dloss_dlogp + 0.7).abs() < 1e-12);
    }

    #[test]
    fn clipped_tokens_have_no_surrogate_gradient() {
        let p = GrpoParams::default();
        let t = token_loss(
            TokenInput {
                logp: 0.5,
                old_logp: 0.0,
                ref_logp: 0.0,
                advantage: 1.0,
                sampling_weight: 1.0,
            },
            &p,
        );
        assert!(t.clipped_high && t.dloss_dlogp == 0.0);
    }

    #[test]
    fn kl_gradient_matches_finite_difference() {
        let p = GrpoParams {
            beta: 0.3,
            ..Default::default()
        };
        let x = TokenInput {
            logp: -0.9,
            old_logp: -1.0,
            ref_logp: -1.4,
            advantage: -0.4,
            sampling_weight: 0.6,
        };
        let h = 1e-6;
        let f = |lp: f64| token_loss(TokenInput { logp: lp, ..x }, &p).loss;
        let numeric = (f(x.logp + h) - f(x.logp - h)) / (2.0 * h);
        assert!((numeric - token_loss(x, &p).dloss_dlogp).abs() < 1e-7);
    }

    #[test]
    fn the_sampling_weight_scales_the_surrogate_and_not_the_kl() {
        let p = GrpoParams {
            beta: 0.3,
            ..Default::default()
        };
        let x = TokenInput {
            logp: -0.9,
            old_logp: -0.95,
            ref_logp: -1.4,
            advantage: 0.8,
            sampling_weight: 1.0,
        };
        let full = token_loss(x, &p);
        let half = token_loss(
            TokenInput {
                sampling_weight: 0.5,
                ..x
            },
            &p,
        );
        let kl_part = p.beta * full.kl;
        assert!(((full.loss - kl_part) * 0.5 - (half.loss - kl_part)).abs() < 1e-12);
        assert_eq!(full.kl, half.kl);
    }

    #[test]
    fn importance_weights_are_the_ratio_up_to_the_cap() {
        assert!((importance_weight(-1.0, -1.5, 2.0) - 0.5f64.exp()).abs() < 1e-12);
        assert!((importance_weight(-2.0, -1.0, 2.0) - (-1.0f64).exp()).abs() < 1e-12);
        assert_eq!(importance_weight(0.0, -5.0, 2.0), 2.0);
        assert_eq!(importance_weight(0.0, f64::NAN, 2.0), 1.0);
    }
}
