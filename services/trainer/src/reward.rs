//! Reward functions: named scorers of a GRPO group (one prompt, G completions).
//!
//! [`RewardFunction`] is the one seam: the format rewards below implement it, so do
//! [`HttpReward`] (the reward service's batch endpoint) and
//! [`crate::execution::ExecutionReward`] (the same engine in process).

use crate::rollout::{ChatMessage, Prompt};
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::time::Duration;

/// One group to score.
#[derive(Clone, Debug)]
pub struct RewardGroup<'a> {
    pub prompt: &'a Prompt,
    /// The prompt's `ground_truth`, parsed (null when the record has none).
    pub ground_truth: &'a serde_json::Value,
    /// Decoded completion texts.
    pub completions: &'a [String],
}

/// A reward function's verdict on one completion.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct RewardScore {
    pub score: f64,
    /// False when the score could not be computed (infrastructure failure): the reward is then
    /// missing (NaN for the weighted sum), never a silent 0.
    pub is_score_valid: bool,
    /// Named sub-scores. On the wire each may be a number or a Fireworks `MetricResult`
    /// object (`{"score", "reason", "is_score_valid"}`); an invalid one reads as NaN.
    #[serde(default, deserialize_with = "metric_scores")]
    pub metrics: BTreeMap<String, f64>,
    #[serde(default)]
    pub reason: String,
}

fn metric_scores<'de, D: serde::Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, f64>, D::Error> {
    let raw: BTreeMap<String, serde_json::Value> = Deserialize::deserialize(d)?;
    Ok(raw
        .into_iter()
        .filter_map(|(name, v)| {
            let score = match &v {
                serde_json::Value::Number(n) => n.as_f64(),
                serde_json::Value::Object(o)
                    if o.get("is_score_valid") == Some(&serde_json::Value::Bool(false)) =>
                {
                    Some(f64::NAN)
                }
                serde_json::Value::Object(o) => o.get("score").and_then(|s| s.as_f64()),
                serde_json::Value::Bool(b) => Some(f64::from(u8::from(*b))),
                _ => None,
            };
            score.map(|s| (name, s))
        })
        .collect())
}

impl RewardScore {
    pub fn valid(score: f64) -> Self {
        Self {
            score,
            is_score_valid: true,
            metrics: BTreeMap::new(),
            reason: String::new(),
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

    /// Partial credit: 0.25 per well-formed, non-empty tag pair, `think` before `sql`.
    pub fn soft(name: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            check: soft_format_score,
        }
    }
}

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

/// The reward service's batch endpoint: the wire shapes live here and nowhere else.
pub mod wire {
    use super::*;

    /// `POST {url}/v1/evaluate/batch` request body.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct BatchRequest {
        pub completions: Vec<String>,
        pub ground_truth: serde_json::Value,
        pub messages: Vec<Message>,
        /// The dataset's gold SQL; the service runs it when `ground_truth` has no rows.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        pub gold_sql: Option<String>,
    }

    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct Message {
        pub role: String,
        pub content: String,
    }

    /// Response body: one result per completion.
    #[derive(Serialize, Deserialize, Debug, PartialEq)]
    pub struct BatchResponse {
        pub results: Vec<RewardScore>,
    }

    pub const BATCH_PATH: &str = "/v1/evaluate/batch";

    pub fn request(group: &RewardGroup) -> BatchRequest {
        BatchRequest {
            completions: group.completions.to_vec(),
            ground_truth: group.ground_truth.clone(),
            messages: group
                .prompt
                .messages
                .iter()
                .map(|m: &ChatMessage| Message {
                    role: m.role.clone(),
                    content: m.content.clone(),
                })
                .collect(),
            gold_sql: group.prompt.gold_sql().map(str::to_string),
        }
    }
}

/// Scores groups by POSTing them to the reward service (`sqlrft reward serve`).
pub struct HttpReward {
    name: String,
    endpoint: String,
    client: reqwest::Client,
}

impl HttpReward {
    /// `base_url` is the service root, e.g. `http://127.0.0.1:8080`.
    pub fn new(name: impl Into<String>, base_url: &str, timeout: Duration) -> Result<Self> {
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Self {
            name: name.into(),
            endpoint: format!("{}{}", base_url.trim_end_matches('/'), wire::BATCH_PATH),
            client,
        })
    }
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
            let resp = self
                .client
                .post(&self.endpoint)
                .json(&wire::request(group))
                .send()
                .await
                .with_context(|| {
                    format!(
                        "reward service `{}` is unreachable; is `sqlrft reward serve` running?",
                        self.endpoint
                    )
                })?;
            let status = resp.status();
            if !status.is_success() {
                let body = resp.text().await.unwrap_or_default();
                anyhow::bail!(
                    "reward service `{}` answered {status}: {body}",
                    self.endpoint
                );
            }
            let body: wire::BatchResponse = resp.json().await.with_context(|| {
                format!("reward service `{}` sent an unexpected body", self.endpoint)
            })?;
            if body.results.len() != group.completions.len() {
                anyhow::bail!(
                    "reward service returned {} results for {} completions",
                    body.results.len(),
                    group.completions.len()
                );
            }
            Ok(body.results)
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
    fn batch_request_has_the_reward_service_shape() {
        let prompt = Prompt {
            messages: vec![ChatMessage {
                role: "user".into(),
                content: "q".into(),
            }],
            ..Default::default()
        };
        let gt = serde_json::json!([{"n": 1}]);
        let completions = vec!["a".to_string()];
        let group = RewardGroup {
            prompt: &prompt,
            ground_truth: &gt,
            completions: &completions,
        };
        let v = serde_json::to_value(wire::request(&group)).unwrap();
        assert_eq!(
            v,
            serde_json::json!({"completions": ["a"], "ground_truth": [{"n": 1}], "messages": [{"role": "user", "content": "q"}]})
        );
        let r: wire::BatchResponse =
            serde_json::from_str(r#"{"results":[{"score":0.5,"is_score_valid":true,"metrics":{"exec":1.0},"reason":"ok"}]}"#).unwrap();
        assert_eq!(r.results[0].metrics["exec"], 1.0);
        // The reward service answers Fireworks MetricResult objects.
        let r: wire::BatchResponse = serde_json::from_str(
            r#"{"results":[{"score":1.0,"is_score_valid":true,"reason":"match","metrics":{
                "execution":{"score":1.0,"reason":"same rows","is_score_valid":true},
                "format":{"score":0.0,"reason":"","is_score_valid":false}}}]}"#,
        )
        .unwrap();
        assert_eq!(r.results[0].metrics["execution"], 1.0);
        assert!(r.results[0].metrics["format"].is_nan());
    }
}
