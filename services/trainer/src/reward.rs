//! Reward functions: named scorers of a GRPO group (one prompt, G completions).
//!
//! [`RewardFunction`] is the one seam: the format rewards below implement it, so do
//! [`HttpReward`] (the reward service's batch endpoint, through `sqlrft-reward`'s client) and
//! `ExecutionReward` (the same engine in process, with the `execution` feature).

use crate::rollout::Prompt;
use anyhow::Result;
use futures::future::BoxFuture;
use sqlrft_core::score::{Evaluation, ScoreOptions};
use sqlrft_reward::RewardClient;
use sqlrft_reward::wire::{BatchRequest, Message, Truths};
use std::collections::BTreeMap;
use std::time::Duration;

/// One group to score.
#[derive(Clone, Debug)]
pub struct RewardGroup<'a> {
    /// The prompt the completions answer.
    pub prompt: &'a Prompt,
    /// The prompt's `ground_truth`, parsed (null when the record has none).
    pub ground_truth: &'a serde_json::Value,
    /// Decoded completion texts.
    pub completions: &'a [String],
}

/// A reward function's verdict on one completion.
#[derive(Clone, Debug, PartialEq)]
pub struct RewardScore {
    /// The score (meaningless when `is_score_valid` is false).
    pub score: f64,
    /// False when the score could not be computed (infrastructure failure): the reward is then
    /// missing (NaN for the weighted sum), never a silent 0.
    pub is_score_valid: bool,
    /// Named sub-scores; one that could not be computed is NaN.
    pub metrics: BTreeMap<String, f64>,
    /// Why it scored as it did, for logs and reports.
    pub reason: String,
}

/// The reward engine's evaluation (in process or from the service), as the trainer keeps it.
impl From<Evaluation> for RewardScore {
    fn from(evaluation: Evaluation) -> Self {
        RewardScore {
            score: evaluation.score,
            is_score_valid: evaluation.is_score_valid,
            metrics: evaluation
                .metrics
                .into_iter()
                .map(|(name, metric)| {
                    let value = if metric.is_score_valid {
                        metric.score
                    } else {
                        f64::NAN
                    };
                    (name, value)
                })
                .collect(),
            reason: evaluation.reason,
        }
    }
}

impl RewardScore {
    /// A computed score with no sub-scores.
    pub fn valid(score: f64) -> Self {
        Self {
            score,
            is_score_valid: true,
            metrics: BTreeMap::new(),
            reason: String::new(),
        }
    }

    /// A score that could not be computed, and why.
    pub fn invalid(reason: impl Into<String>) -> Self {
        Self {
            score: f64::NAN,
            is_score_valid: false,
            metrics: BTreeMap::new(),
            reason: reason.into(),
        }
    }
}

/// A named scorer of completions, batched per group.
pub trait RewardFunction: Send + Sync {
    /// The name metrics and reward weights use.
    fn name(&self) -> &str;
    /// One score per completion, in order. An `Err` fails the whole group's scoring (it is
    /// reported as invalid scores); per-completion failures are `is_score_valid: false`.
    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, Result<Vec<RewardScore>>>;
}

/// The body of a `<tag>...</tag>` element, if present.
fn tag_body<'a>(text: &'a str, tag: &str) -> Option<&'a str> {
    let open = format!("<{tag}>");
    let close = format!("</{tag}>");
    let start = text.find(&open)? + open.len();
    let end = start + text[start..].find(&close)?;
    Some(&text[start..end])
}

/// A format check as a reward, under the name its config entry gives it.
#[derive(Clone, Debug)]
pub struct FormatReward {
    name: String,
    check: fn(&str) -> f64,
}

impl FormatReward {
    /// The seed project's answer format: `<think>…</think>` then `<sql>…</sql>`, nothing else.
    pub fn strict(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            check: strict_format_score,
        }
    }

    /// The seed project's `match_format_exactly` (see [`crate::seed`]).
    pub fn seed_exact(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            check: crate::seed::match_format_exactly,
        }
    }

    /// The seed project's `match_format_approximately` (see [`crate::seed`]).
    pub fn seed_approximate(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            check: crate::seed::match_format_approximately,
        }
    }

    /// Partial credit: 0.25 per well-formed, non-empty tag pair, `think` before `sql`.
    pub fn soft(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            check: soft_format_score,
        }
    }
}

/// 1 for a completion shaped exactly `<think>…</think><sql>…</sql>` with both parts non-empty, else 0.
pub fn strict_format_score(text: &str) -> f64 {
    let t = text.trim();
    let ok = t.starts_with("<think>")
        && tag_body(t, "think").is_some_and(|b| !b.trim().is_empty())
        && t.ends_with("</sql>")
        && t.find("</think>")
            .zip(t.find("<sql>"))
            .is_some_and(|(a, b)| a < b && t[a + 8..b].trim().is_empty())
        && tag_body(t, "sql").is_some_and(|b| !b.trim().is_empty())
        && t.matches("<sql>").count() == 1;
    if ok { 1.0 } else { 0.0 }
}

/// Partial credit for the format: a share for each well-formed, non-empty part.
pub fn soft_format_score(text: &str) -> f64 {
    let mut score = 0.0;
    let think = tag_body(text, "think").filter(|b| !b.trim().is_empty());
    let sql = tag_body(text, "sql").filter(|b| !b.trim().is_empty());
    if think.is_some() {
        score += 0.25;
    }
    if sql.is_some() {
        score += 0.25;
    }
    if let (Some(a), Some(b)) = (text.find("</think>"), text.find("<sql>"))
        && a < b
    {
        score += 0.25;
    }
    if sql.is_some() && text.matches("<sql>").count() == 1 {
        score += 0.25;
    }
    score
}

impl RewardFunction for FormatReward {
    fn name(&self) -> &str {
        &self.name
    }
    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, Result<Vec<RewardScore>>> {
        let scores = group
            .completions
            .iter()
            .map(|c| RewardScore::valid((self.check)(c)))
            .collect();
        Box::pin(async move { Ok(scores) })
    }
}

/// The reward service's batch request for a group: its completions against the prompt's
/// ground truth, with the dataset's gold SQL (the service runs it when there are no rows).
fn batch_request(group: &RewardGroup, options: Option<ScoreOptions>) -> BatchRequest {
    BatchRequest {
        completions: group.completions.to_vec(),
        truths: Truths::Shared(group.ground_truth.clone()),
        messages: group
            .prompt
            .messages
            .iter()
            .map(|m| Message {
                role: m.role.clone(),
                content: m.content.clone(),
            })
            .collect(),
        gold_sql: group.prompt.gold_sql().map(str::to_string),
        options,
    }
}

/// Scores groups by POSTing them to the reward service (`sqlrft reward serve`), or to any URL
/// that speaks its batch shape.
pub struct HttpReward {
    name: String,
    client: RewardClient,
    options: Option<ScoreOptions>,
}

impl HttpReward {
    /// `base_url` is the service root, e.g. `http://127.0.0.1:8080`.
    pub fn new(name: impl Into<String>, base_url: &str, timeout: Duration) -> Result<Self> {
        Ok(Self {
            name: name.into(),
            client: RewardClient::new(base_url, None, timeout)?,
            options: None,
        })
    }

    /// Where and how a config entry says to post: the service root (`url`, the batch path
    /// added) or a full `endpoint` used as is, an optional bearer token, and scoring options
    /// sent with each request (the service's defaults when `None`).
    pub fn configured(name: impl Into<String>, target: HttpTarget<'_>) -> Result<Self> {
        let client = match (target.url, target.endpoint) {
            (_, Some(endpoint)) => {
                RewardClient::for_endpoint(endpoint, target.token, target.timeout)?
            }
            (Some(url), None) => RewardClient::new(url, target.token, target.timeout)?,
            (None, None) => anyhow::bail!("an http reward needs a `url` or an `endpoint`"),
        };
        Ok(Self {
            name: name.into(),
            client,
            options: target.options,
        })
    }
}

/// Where an [`HttpReward`] posts, as a config entry gives it.
pub struct HttpTarget<'a> {
    /// The reward service's root; the batch path is appended.
    pub url: Option<&'a str>,
    /// A full URL that takes the batch shape, used as is (wins over `url`).
    pub endpoint: Option<&'a str>,
    /// Bearer token sent with each request.
    pub token: Option<String>,
    /// How long one request may take.
    pub timeout: Duration,
    /// Scoring options sent with the request (the reward service's `scoring`).
    pub options: Option<ScoreOptions>,
}

impl RewardFunction for HttpReward {
    fn name(&self) -> &str {
        &self.name
    }
    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, Result<Vec<RewardScore>>> {
        Box::pin(async move {
            let evaluations = self
                .client
                .score_batch(&batch_request(group, self.options))
                .await?;
            Ok(evaluations.into_iter().map(RewardScore::from).collect())
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strict_format_needs_think_then_sql_and_nothing_else() {
        assert_eq!(
            strict_format_score("<think>count rows</think>\n<sql>SELECT 1</sql>"),
            1.0
        );
        assert_eq!(
            strict_format_score("<sql>SELECT 1</sql><think>x</think>"),
            0.0
        );
        assert_eq!(
            strict_format_score("<think>x</think> junk <sql>SELECT 1</sql>"),
            0.0
        );
        assert_eq!(
            strict_format_score("<think></think><sql>SELECT 1</sql>"),
            0.0
        );
        assert_eq!(
            strict_format_score("<think>x</think><sql>SELECT 1</sql> trailing"),
            0.0
        );
    }

    #[test]
    fn soft_format_gives_partial_credit() {
        assert_eq!(soft_format_score("<sql>SELECT 1</sql>"), 0.5);
        assert_eq!(
            soft_format_score("<think>a</think><sql>SELECT 1</sql>"),
            1.0
        );
        assert_eq!(soft_format_score("nothing"), 0.0);
    }

    #[test]
    fn a_group_is_sent_with_its_prompt_and_gold_sql() {
        use crate::rollout::ChatMessage;
        let prompt = Prompt {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "q".into(),
            }],
            sql: " SELECT count(*) FROM t ".into(),
            ..Default::default()
        };
        let gt = serde_json::json!([{"n": 1}]);
        let completions = vec!["a".to_string()];
        let group = RewardGroup {
            prompt: &prompt,
            ground_truth: &gt,
            completions: &completions,
        };
        let request = batch_request(&group, None);
        assert_eq!(request.completions, completions);
        assert_eq!(request.truths, Truths::Shared(gt.clone()));
        assert_eq!(request.messages[0].content, "q");
        assert_eq!(request.gold_sql.as_deref(), Some("SELECT count(*) FROM t"));
    }

    #[test]
    fn an_invalid_metric_reads_as_nan() {
        let evaluation: Evaluation = serde_json::from_str(
            r#"{"score":1.0,"is_score_valid":true,"reason":"match","metrics":{
                "execution":{"score":1.0,"reason":"same rows","is_score_valid":true},
                "format":{"score":0.0,"reason":"","is_score_valid":false}}}"#,
        )
        .unwrap();
        let score = RewardScore::from(evaluation);
        assert_eq!(score.metrics["execution"], 1.0);
        assert!(score.metrics["format"].is_nan());
        assert_eq!(score.reason, "match");
    }
}
