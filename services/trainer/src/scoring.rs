//! From a round's samples to scored groups: every reward function on each group, the weighted
//! sum (TRL's nansum) and the group-relative advantages. The in-process loop and the rollout
//! workers (`sqlrft rollout`) both run this, so a batch means the same wherever it was made.

use std::sync::Arc;

use anyhow::{Result, bail};

use crate::grpo::{self, ScaleRewards};
use crate::reward::{RewardFunction, RewardGroup, RewardScore};
use crate::rollout::{Completion, Prompt, RewardScore as ProtoRewardScore, ScoredGroup};
use crate::tokenizer::ChatTokenizer;
use sqlrft_model::sampling::Sampled;

/// The chat-templated token ids of `prompt`, cut from the left to `max_len` (TRL keeps the
/// end of an over-long prompt, where the question is).
pub fn encode_prompt(
    tokenizer: &ChatTokenizer,
    prompt: &Prompt,
    max_len: usize,
) -> Result<Vec<u32>> {
    let text = tokenizer.render(&prompt.messages, true)?;
    let mut ids = tokenizer.encode(&text)?;
    if ids.len() > max_len {
        ids.drain(..ids.len() - max_len);
    }
    if ids.is_empty() {
        bail!("prompt `{}` renders to no tokens", prompt.id);
    }
    Ok(ids)
}

/// The reward functions of a run, each with its weight in the sum.
pub type WeightedRewards = [(Arc<dyn RewardFunction>, f64)];

/// Scores every group (`sampled[i]` are the completions of `prompts[i]`), then sets each
/// completion's combined reward and advantage. A reward that fails scores its completions as
/// invalid (missing from the sum, never 0).
pub async fn score_groups(
    rewards: &WeightedRewards,
    tokenizer: &ChatTokenizer,
    prompts: Vec<(Prompt, Vec<u32>)>,
    sampled: Vec<Vec<Sampled>>,
    scale: ScaleRewards,
) -> Result<Vec<ScoredGroup>> {
    let mut groups = Vec::with_capacity(prompts.len());
    for ((prompt, prompt_ids), sampled) in prompts.into_iter().zip(sampled) {
        let g = sampled.len();
        let texts: Vec<String> = sampled
            .iter()
            .map(|s| tokenizer.decode(&s.tokens))
            .collect::<Result<_>>()?;
        let ground_truth: serde_json::Value =
            serde_json::from_str(&prompt.ground_truth_json).unwrap_or(serde_json::Value::Null);
        let group = RewardGroup {
            prompt: &prompt,
            ground_truth: &ground_truth,
            completions: &texts,
        };
        let mut scores: Vec<Vec<ProtoRewardScore>> = vec![Vec::new(); g];
        for (f, _) in rewards {
            let per_completion = match f.score_group(&group).await {
                Ok(v) if v.len() == g => v,
                Ok(v) => bail!(
                    "reward `{}` returned {} scores for {g} completions",
                    f.name(),
                    v.len()
                ),
                Err(e) => {
                    tracing::warn!(reward = f.name(), error = %format!("{e:#}"), "reward scoring failed; scores count as missing");
                    vec![RewardScore::invalid(format!("{e:#}")); g]
                }
            };
            for (i, s) in per_completion.into_iter().enumerate() {
                scores[i].push(ProtoRewardScore {
                    name: f.name().to_string(),
                    valid: s.is_score_valid && s.score.is_finite(),
                    score: s.score,
                    reason: s.reason,
                    metrics: s.metrics.into_iter().collect(),
                });
            }
        }
        let completions = sampled
            .into_iter()
            .zip(texts)
            .zip(scores)
            .map(|((s, text), rewards)| Completion {
                text,
                token_ids: s.tokens,
                sampling_logprobs: s.logprobs,
                truncated: s.truncated,
                rewards,
                reward: 0.0,
                advantage: 0.0,
            })
            .collect();
        groups.push(ScoredGroup {
            prompt: Some(prompt),
            prompt_token_ids: prompt_ids,
            completions,
        });
    }
    set_advantages(&mut groups, rewards, scale);
    Ok(groups)
}

/// Sets each completion's combined reward and advantage (`scale` may use the whole batch's
/// spread, so this runs over all groups of a round at once).
fn set_advantages(groups: &mut [ScoredGroup], rewards: &WeightedRewards, scale: ScaleRewards) {
    let Some(g) = groups.first().map(|gr| gr.completions.len()) else {
        return;
    };
    let weights: Vec<f64> = rewards.iter().map(|(_, w)| *w).collect();
    let combined = grpo::combine_rewards(&per_reward(groups).1, &weights);
    let advantages = grpo::advantages(&combined, g, scale);
    for (c, (r, a)) in groups
        .iter_mut()
        .flat_map(|gr| gr.completions.iter_mut())
        .zip(combined.into_iter().zip(advantages))
    {
        (c.reward, c.advantage) = (r, a);
    }
}

/// The reward names of `groups` (in the order the completions list them) and each reward's
/// score per completion, group after group; NaN where it was invalid.
pub fn per_reward(groups: &[ScoredGroup]) -> (Vec<String>, Vec<Vec<f64>>) {
    let names: Vec<String> = groups
        .iter()
        .flat_map(|g| &g.completions)
        .next()
        .map(|c| c.rewards.iter().map(|r| r.name.clone()).collect())
        .unwrap_or_default();
    let mut values = vec![Vec::new(); names.len()];
    for c in groups.iter().flat_map(|g| &g.completions) {
        for (k, name) in names.iter().enumerate() {
            let score = c
                .rewards
                .iter()
                .find(|r| &r.name == name)
                .filter(|r| r.valid)
                .map_or(f64::NAN, |r| r.score);
            values[k].push(score);
        }
    }
    (names, values)
}

/// Whether every reward of every completion of `group` could be computed.
pub fn all_scores_valid(group: &ScoredGroup) -> bool {
    group
        .completions
        .iter()
        .flat_map(|c| &c.rewards)
        .all(|r| r.valid)
}
