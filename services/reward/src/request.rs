//! Reading request bodies: the Fireworks evaluator shape `{messages, ground_truth, ...kwargs}`
//! and the batch shape. Unknown fields are ignored (Fireworks passes a dataset row's extra
//! fields along); known fields of the wrong type are a 400 that names the field.

use serde_json::{Map, Value};
use sqlrft_core::compare::CompareMode;
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_core::score::ScoreOptions;

/// A request that cannot be read; the message names the field.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BadRequest(pub String);

impl std::fmt::Display for BadRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

fn bad(field: &str, message: impl std::fmt::Display) -> BadRequest {
    BadRequest(format!("`{field}`: {message}"))
}

/// One completion to score.
#[derive(Debug, Clone)]
pub struct EvaluateRequest {
    pub completion: String,
    pub ground_truth: GroundTruth,
    pub options: ScoreOptions,
}

/// Many completions: one ground truth for all (a GRPO group), or one each.
#[derive(Debug, Clone)]
pub struct BatchRequest {
    pub completions: Vec<String>,
    pub ground_truths: GroundTruths,
    pub options: ScoreOptions,
}

#[derive(Debug, Clone)]
pub enum GroundTruths {
    Shared(GroundTruth),
    Each(Vec<GroundTruth>),
}

fn object(body: &Value) -> Result<&Map<String, Value>, BadRequest> {
    body.as_object().ok_or_else(|| {
        BadRequest(
            "the request body must be a JSON object like {\"messages\": [...], \"ground_truth\": ...}"
                .into(),
        )
    })
}

impl EvaluateRequest {
    pub fn parse(body: &Value) -> Result<Self, BadRequest> {
        let fields = object(body)?;
        let messages = fields.get("messages").ok_or_else(|| {
            bad(
                "messages",
                "missing; send the chat with the model's completion as the last assistant message",
            )
        })?;
        let completion = completion_of(messages, "messages")?;
        let ground_truth = GroundTruth::parse(fields.get("ground_truth"), fields)
            .map_err(|e| BadRequest(e.to_string()))?;
        Ok(EvaluateRequest {
            completion,
            ground_truth,
            options: options(fields)?,
        })
    }
}

impl BatchRequest {
    pub fn parse(body: &Value, max_batch: usize) -> Result<Self, BadRequest> {
        let fields = object(body)?;
        let completions: Vec<String> = match (
            fields.get("completions"),
            fields.get("messages_list"),
        ) {
            (Some(Value::Array(items)), None) => items
                .iter()
                .enumerate()
                .map(|(i, item)| match item {
                    Value::String(s) => Ok(s.clone()),
                    other => Err(bad(
                        &format!("completions[{i}]"),
                        format!("expected a string, got {other}"),
                    )),
                })
                .collect::<Result<_, _>>()?,
            (None, Some(Value::Array(chats))) => chats
                .iter()
                .enumerate()
                .map(|(i, chat)| completion_of(chat, &format!("messages_list[{i}]")))
                .collect::<Result<_, _>>()?,
            (Some(_), Some(_)) => {
                return Err(bad(
                    "completions",
                    "send either `completions` or `messages_list`, not both",
                ));
            }
            (Some(_), None) => return Err(bad("completions", "expected a list of strings")),
            (None, Some(_)) => return Err(bad("messages_list", "expected a list of chats")),
            (None, None) => {
                return Err(bad(
                    "completions",
                    "missing; send `completions` (list of strings) or `messages_list` (list of chats)",
                ));
            }
        };
        if completions.len() > max_batch {
            return Err(bad(
                "completions",
                format!(
                    "{} completions exceed the batch limit of {max_batch}; split the batch",
                    completions.len()
                ),
            ));
        }
        let ground_truths = match (
            fields.get("ground_truths"),
            fields.contains_key("ground_truth"),
        ) {
            (Some(_), true) => {
                return Err(bad(
                    "ground_truths",
                    "send either `ground_truth` (shared) or `ground_truths` (one each), not both",
                ));
            }
            (Some(Value::Array(items)), false) => {
                if items.len() != completions.len() {
                    return Err(bad(
                        "ground_truths",
                        format!(
                            "has {} entries for {} completions",
                            items.len(),
                            completions.len()
                        ),
                    ));
                }
                GroundTruths::Each(
                    items
                        .iter()
                        .enumerate()
                        .map(|(i, item)| {
                            GroundTruth::parse(Some(item), fields).map_err(|e| {
                                BadRequest(e.to_string().replacen(
                                    "`ground_truth",
                                    &format!("`ground_truths[{i}]"),
                                    1,
                                ))
                            })
                        })
                        .collect::<Result<_, _>>()?,
                )
            }
            (Some(_), false) => {
                return Err(bad("ground_truths", "expected a list, one per completion"));
            }
            (None, _) => GroundTruths::Shared(
                GroundTruth::parse(fields.get("ground_truth"), fields)
                    .map_err(|e| BadRequest(e.to_string()))?,
            ),
        };
        Ok(BatchRequest {
            completions,
            ground_truths,
            options: options(fields)?,
        })
    }
}

/// The text of the last assistant message of a chat.
fn completion_of(messages: &Value, field: &str) -> Result<String, BadRequest> {
    let Value::Array(messages) = messages else {
        return Err(bad(field, "expected a list of {role, content} messages"));
    };
    let (index, last) = messages
        .iter()
        .enumerate()
        .rev()
        .find(|(_, m)| m.get("role").and_then(Value::as_str) == Some("assistant"))
        .ok_or_else(|| bad(field, "has no assistant message; the model's completion must be the last assistant message"))?;
    match last.get("content") {
        None | Some(Value::Null) => Ok(String::new()),
        Some(Value::String(text)) => Ok(text.clone()),
        // OpenAI content parts: [{"type": "text", "text": "..."}]
        Some(Value::Array(parts)) => Ok(parts
            .iter()
            .filter_map(|p| p.get("text").and_then(Value::as_str))
            .collect::<Vec<_>>()
            .join("")),
        Some(other) => Err(bad(
            &format!("{field}[{index}].content"),
            format!("expected a string, got {other}"),
        )),
    }
}

fn flag(fields: &Map<String, Value>, name: &str) -> Result<Option<bool>, BadRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(other) => Err(bad(name, format!("expected true or false, got {other}"))),
    }
}

fn number(fields: &Map<String, Value>, name: &str) -> Result<Option<f64>, BadRequest> {
    match fields.get(name) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::Number(n)) => match n.as_f64() {
            Some(v) if v.is_finite() && v >= 0.0 => Ok(Some(v)),
            _ => Err(bad(
                name,
                format!("expected a non-negative number, got {n}"),
            )),
        },
        Some(other) => Err(bad(name, format!("expected a number, got {other}"))),
    }
}

/// Scoring options from the request's top-level fields.
fn options(fields: &Map<String, Value>) -> Result<ScoreOptions, BadRequest> {
    let mut options = ScoreOptions::default();
    if let Some(partial) = flag(fields, "partial")? {
        options.partial = partial;
    }
    if let Some(gate) = flag(fields, "format_gate")? {
        options.format_gate = gate;
    }
    if let Some(tolerance) = number(fields, "tolerance")? {
        options.tolerance = tolerance;
    }
    if let Some(tolerance) = number(fields, "abs_tolerance")? {
        options.abs_tolerance = tolerance;
    }
    match fields.get("mode") {
        None | Some(Value::Null) => {}
        Some(Value::String(mode)) if mode == "exact" => options.mode = CompareMode::Exact,
        Some(Value::String(mode)) if mode == "set" => options.mode = CompareMode::Set,
        Some(other) => {
            return Err(bad(
                "mode",
                format!("expected \"exact\" or \"set\", got {other}"),
            ));
        }
    }
    Ok(options)
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn reads_the_fireworks_shape() {
        let body = json!({
            "messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "SELECT 1"}],
            "ground_truth": [{"x": 1}],
            "partial": true, "tolerance": 0.01, "mode": "set", "some_dataset_field": 7
        });
        let request = EvaluateRequest::parse(&body).unwrap();
        assert_eq!(request.completion, "SELECT 1");
        assert!(request.options.partial);
        assert_eq!(request.options.tolerance, 0.01);
        assert_eq!(request.options.mode, CompareMode::Set);
    }

    #[test]
    fn the_completion_is_the_last_assistant_message() {
        let chat = json!([
            {"role": "assistant", "content": "old"},
            {"role": "user", "content": "q"},
            {"role": "assistant", "content": [{"type": "text", "text": "SELECT "}, {"type": "text", "text": "2"}]},
            {"role": "tool", "content": "ignored"}
        ]);
        assert_eq!(completion_of(&chat, "messages").unwrap(), "SELECT 2");
        let err =
            completion_of(&json!([{"role": "user", "content": "q"}]), "messages").unwrap_err();
        assert!(err.0.starts_with("`messages`"), "{err}");
    }

    #[test]
    fn bad_fields_are_named() {
        let base = json!({"messages": [{"role": "assistant", "content": "x"}], "ground_truth": []});
        for (field, value) in [
            ("partial", json!("yes")),
            ("format_gate", json!(1)),
            ("tolerance", json!(-1)),
            ("mode", json!("fuzzy")),
            ("ordered", json!("no")),
            ("ground_truth", json!(3)),
            ("messages", json!("hello")),
        ] {
            let mut body = base.clone();
            body[field] = value;
            let err = EvaluateRequest::parse(&body).unwrap_err();
            assert!(err.0.starts_with(&format!("`{field}`")), "{field}: {err}");
        }
        let err = EvaluateRequest::parse(&json!([1])).unwrap_err();
        assert!(err.0.contains("JSON object"), "{err}");
    }

    #[test]
    fn reads_batch_shapes() {
        let group = json!({"completions": ["SELECT 1", "SELECT 2"], "ground_truth": [{"x": 1}],
                           "messages": [{"role": "user", "content": "prompt"}]});
        let request = BatchRequest::parse(&group, 64).unwrap();
        assert_eq!(request.completions.len(), 2);
        assert!(matches!(request.ground_truths, GroundTruths::Shared(_)));
        let each = json!({"messages_list": [[{"role": "assistant", "content": "SELECT 1"}]],
                          "ground_truths": [[{"x": 1}]]});
        let request = BatchRequest::parse(&each, 64).unwrap();
        assert_eq!(request.completions, vec!["SELECT 1"]);
        assert!(matches!(request.ground_truths, GroundTruths::Each(ref v) if v.len() == 1));
    }

    #[test]
    fn bad_batches_are_named() {
        let cases = [
            (json!({"ground_truth": []}), "completions"),
            (
                json!({"completions": ["a", 1], "ground_truth": []}),
                "completions[1]",
            ),
            (
                json!({"completions": ["a"], "ground_truths": [[], []]}),
                "ground_truths",
            ),
            (
                json!({"completions": ["a"], "ground_truths": [5]}),
                "ground_truths[0]",
            ),
            (
                json!({"completions": ["a", "b", "c"], "ground_truth": []}),
                "completions",
            ),
            (
                json!({"messages_list": [[{"role": "user"}]], "ground_truth": []}),
                "messages_list[0]",
            ),
        ];
        for (body, field) in cases {
            let err = BatchRequest::parse(&body, 2).unwrap_err();
            assert!(err.0.starts_with(&format!("`{field}`")), "{body}: {err}");
        }
    }
}
