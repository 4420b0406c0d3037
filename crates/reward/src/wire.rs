//! The reward service's JSON contract, as its clients write it and its answers read.
//!
//! The service reads requests leniently (the Fireworks evaluator shape, chats or strings, extra
//! fields ignored); these are the shapes sqlrft's own clients send, and the one answer shape.

use serde::{Deserialize, Serialize};
use sqlrft_core::score::{Evaluation, ScoreOptions};

/// Scores one completion: the Fireworks evaluator shape `{messages, ground_truth, ...kwargs}`.
pub const EVALUATE_PATH: &str = "/v1/evaluate";
/// Scores many completions in one call.
pub const BATCH_PATH: &str = "/v1/evaluate/batch";

/// One chat message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Message {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The text.
    pub content: String,
}

/// What the completions of a batch are compared with.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub enum Truths {
    /// One ground truth for every completion (a GRPO group).
    #[serde(rename = "ground_truth")]
    Shared(serde_json::Value),
    /// One ground truth per completion, in order.
    #[serde(rename = "ground_truths")]
    Each(Vec<serde_json::Value>),
}

/// `POST /v1/evaluate/batch` body.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct BatchRequest {
    /// The completions to score, as text.
    pub completions: Vec<String>,
    /// A ground truth in any form the service reads: typed `{columns, types, rows_json,
    /// ordered, sql}` (or `rows` as a list), a list of row objects, or gold SQL; `null` when
    /// only `gold_sql` is known.
    #[serde(flatten)]
    pub truths: Truths,
    /// The prompt the completions answer (the service ignores it; logs and traces keep it).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub messages: Vec<Message>,
    /// Gold SQL: run when the ground truth has no rows, else it decides whether order matters.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gold_sql: Option<String>,
    /// Scoring options; the service's defaults when absent.
    #[serde(flatten, skip_serializing_if = "Option::is_none")]
    pub options: Option<ScoreOptions>,
}

/// `POST /v1/evaluate/batch` answer: one evaluation per completion, in order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchResponse {
    /// The evaluations.
    pub results: Vec<Evaluation>,
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlrft_core::compare::CompareMode;

    use super::*;

    #[test]
    fn a_group_request_has_the_service_field_names() {
        let request = BatchRequest {
            completions: vec!["a".into()],
            truths: Truths::Shared(json!([{"n": 1}])),
            messages: vec![Message {
                role: "user".into(),
                content: "q".into(),
            }],
            gold_sql: None,
            options: None,
        };
        assert_eq!(
            serde_json::to_value(&request).unwrap(),
            json!({"completions": ["a"], "ground_truth": [{"n": 1}],
                   "messages": [{"role": "user", "content": "q"}]})
        );
    }

    #[test]
    fn options_and_per_completion_truths_are_top_level_fields() {
        let request = BatchRequest {
            completions: vec!["a".into(), "b".into()],
            truths: Truths::Each(vec![json!("SELECT 1"), json!("SELECT 2")]),
            messages: vec![],
            gold_sql: Some("SELECT 1".into()),
            options: Some(ScoreOptions {
                partial: true,
                mode: CompareMode::Set,
                ..ScoreOptions::default()
            }),
        };
        let body = serde_json::to_value(&request).unwrap();
        assert_eq!(body["ground_truths"], json!(["SELECT 1", "SELECT 2"]));
        assert_eq!(body["gold_sql"], json!("SELECT 1"));
        assert_eq!(body["partial"], json!(true));
        assert_eq!(body["mode"], json!("set"));
        assert!(body.get("messages").is_none() && body.get("options").is_none());
    }
}
