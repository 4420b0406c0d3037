//! Token sampling from logits: temperature, then top-k, then top-p (the order transformers'
//! `generate` applies its logits warpers in), and the stop rules of a generation.

use crate::cpu::layers::scaled_softmax;
use rand::Rng;
use serde::{Deserialize, Serialize};

/// How completions are sampled.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SamplingParams {
    /// Softmax temperature; 0 means greedy.
    pub temperature: f32,
    /// Nucleus sampling mass; 1 keeps every token.
    pub top_p: f32,
    /// Keep only the k most likely tokens; 0 keeps every token.
    pub top_k: usize,
    /// Stop after this many completion tokens (TRL's `max_completion_length`).
    pub max_new_tokens: usize,
}

impl Default for SamplingParams {
    /// TRL 1.16's GRPOConfig defaults.
    fn default() -> Self {
        Self {
            temperature: 1.0,
            top_p: 1.0,
            top_k: 0,
            max_new_tokens: 512,
        }
    }
}

/// One sampled completion.
#[derive(Clone, Debug, PartialEq)]
pub struct Sampled {
    /// The sampled token ids, end-of-sequence token included when one was drawn.
    pub tokens: Vec<u32>,
    /// `log softmax(logits / temperature)[token]` per token (before top-k / top-p truncation,
    /// which is what the trainer's forward pass recomputes).
    pub logprobs: Vec<f32>,
    /// Hit `max_new_tokens` without an end-of-sequence token.
    pub truncated: bool,
}

/// Draws one token from `logits`; returns it and its log-probability under `logits / temperature`.
pub fn sample_token(logits: &[f32], p: &SamplingParams, rng: &mut impl Rng) -> (u32, f32) {
    let temperature = if p.temperature > 0.0 {
        p.temperature
    } else {
        1.0
    };
    let (lse, probs) = scaled_softmax(logits, temperature);
    let logprob = |t: usize| logits[t] / temperature - lse;
    if p.temperature <= 0.0 {
        let best = argmax(logits);
        return (best as u32, logprob(best));
    }
    if p.top_k == 0 && p.top_p >= 1.0 {
        // Every token stays in: draw by the cumulative sum in vocabulary order, no sort needed.
        let i = draw(&probs, 0..probs.len(), rng);
        return (i as u32, logprob(i));
    }
    // Descending probability; the kept set is everything at or above a threshold, so tokens
    // tied with the last one kept stay in (transformers' warpers do the same, and so does the
    // CUDA sampling kernel), and the draw walks the kept tokens in vocabulary order: the same
    // uniform draw picks the same token on every backend.
    let by_prob = |a: &usize, b: &usize| probs[*b].total_cmp(&probs[*a]).then(a.cmp(b));
    let mut order: Vec<usize> = (0..probs.len()).collect();
    if p.top_k > 0 && p.top_k < order.len() {
        // Partition out the k most likely first, so only those k are sorted.
        order.select_nth_unstable_by(p.top_k - 1, by_prob);
        let threshold = probs[order[p.top_k - 1]];
        order.retain(|&i| probs[i] >= threshold);
    }
    order.sort_unstable_by(by_prob);
    if p.top_p < 1.0 {
        let kept_mass: f32 = order.iter().map(|&i| probs[i]).sum();
        let mut cum = 0.0;
        let mut threshold = 0.0;
        for &i in &order {
            // The smallest prefix whose mass reaches top_p (at least one token).
            cum += probs[i];
            threshold = probs[i];
            if cum >= p.top_p * kept_mass {
                break;
            }
        }
        order.retain(|&i| probs[i] >= threshold);
    }
    order.sort_unstable();
    let i = draw(&probs, order.iter().copied(), rng);
    (i as u32, logprob(i))
}

/// Draws one of `kept` in proportion to its probability (renormalised over `kept`).
fn draw(probs: &[f32], kept: impl Iterator<Item = usize> + Clone, rng: &mut impl Rng) -> usize {
    let total: f32 = kept.clone().map(|i| probs[i]).sum();
    let mut u = rng.random::<f32>() * total;
    let mut last = None;
    for i in kept {
        u -= probs[i];
        if u <= 0.0 {
            return i;
        }
        last = Some(i);
    }
    last.expect("at least one token kept")
}

fn argmax(v: &[f32]) -> usize {
    v.iter()
        .enumerate()
        .fold(0, |best, (i, &x)| if x > v[best] { i } else { best })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::SeedableRng;
    use rand_chacha::ChaCha8Rng;

    #[test]
    fn greedy_picks_the_largest_logit() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let p = SamplingParams {
            temperature: 0.0,
            ..Default::default()
        };
        assert_eq!(sample_token(&[0.1, 2.0, -1.0], &p, &mut rng).0, 1);
    }

    #[test]
    fn top_k_one_is_greedy_and_top_p_keeps_the_nucleus() {
        let mut rng = ChaCha8Rng::seed_from_u64(0);
        let logits = [0.0, 3.0, 2.9, -5.0];
        let k1 = SamplingParams {
            top_k: 1,
            ..Default::default()
        };
        let p = SamplingParams {
            top_p: 0.5,
            ..Default::default()
        };
        for _ in 0..50 {
            assert_eq!(sample_token(&logits, &k1, &mut rng).0, 1);
            assert_eq!(
                sample_token(&logits, &p, &mut rng).0,
                1,
                "token 1 alone holds > 50% of the mass"
            );
        }
    }

    #[test]
    fn tokens_tied_at_the_cut_stay_in_and_the_draw_walks_vocabulary_order() {
        // Tokens 0 and 2 tie for second place: top-2 keeps both, as transformers' warper does.
        let logits = [1.0f32, 3.0, 1.0, -4.0];
        let p = SamplingParams {
            top_k: 2,
            ..Default::default()
        };
        let mut rng = ChaCha8Rng::seed_from_u64(2);
        let mut seen = [0usize; 4];
        for _ in 0..2000 {
            seen[sample_token(&logits, &p, &mut rng).0 as usize] += 1;
        }
        assert!(seen[0] > 0 && seen[2] > 0 && seen[3] == 0, "{seen:?}");
        // The draw walks the kept tokens in vocabulary order: replaying the rng's next f32
        // through the kept set {0, 1, 2} in id order gives the token it picks.
        let (_, probs) = scaled_softmax(&logits, 1.0);
        let total: f32 = probs[..3].iter().sum();
        for _ in 0..200 {
            let u = rng.clone().random::<f32>() * total;
            let want = if u <= probs[0] {
                0
            } else if u <= probs[0] + probs[1] {
                1
            } else {
                2
            };
            assert_eq!(sample_token(&logits, &p, &mut rng).0, want, "u {u}");
        }
    }

    #[test]
    fn sampling_frequencies_follow_the_tempered_distribution() {
        let mut rng = ChaCha8Rng::seed_from_u64(1);
        let logits = [0.0f32, 1.0, 2.0];
        let p = SamplingParams {
            temperature: 0.7,
            ..Default::default()
        };
        let (_, probs) = scaled_softmax(&logits, 0.7);
        let n = 20000;
        let mut counts = [0usize; 3];
        for _ in 0..n {
            let (t, lp) = sample_token(&logits, &p, &mut rng);
            assert!((lp.exp() - probs[t as usize]).abs() < 1e-6);
            counts[t as usize] += 1;
        }
        for i in 0..3 {
            let f = counts[i] as f32 / n as f32;
            assert!(
                (f - probs[i]).abs() < 0.02,
                "token {i}: frequency {f} vs probability {}",
                probs[i]
            );
        }
    }
}
