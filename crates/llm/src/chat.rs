//! The OpenAI chat-completions wire format: what we send and what comes back.

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::LlmError;

/// Who wrote a message.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    /// Instructions for the model.
    System,
    /// The person asking.
    User,
    /// The model.
    Assistant,
}

/// One chat message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Message {
    /// Author of the message.
    pub role: Role,
    /// Text of the message.
    pub content: String,
}

impl Message {
    /// A system message.
    pub fn system(content: impl Into<String>) -> Self {
        Message {
            role: Role::System,
            content: content.into(),
        }
    }

    /// A user message.
    pub fn user(content: impl Into<String>) -> Self {
        Message {
            role: Role::User,
            content: content.into(),
        }
    }

    /// An assistant message.
    pub fn assistant(content: impl Into<String>) -> Self {
        Message {
            role: Role::Assistant,
            content: content.into(),
        }
    }
}

/// `response_format` for JSON-schema structured output.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct JsonSchemaFormat {
    /// Schema name (letters, digits, `_`, `-`).
    pub name: String,
    /// The JSON Schema the answer must satisfy.
    pub schema: Value,
    /// Ask the provider to enforce the schema exactly.
    pub strict: bool,
}

impl JsonSchemaFormat {
    /// A format from a hand-written schema.
    pub fn new(name: impl Into<String>, schema: Value) -> Self {
        JsonSchemaFormat {
            name: name.into(),
            schema,
            strict: true,
        }
    }

    /// A format whose schema is derived from `T`.
    pub fn for_type<T: schemars::JsonSchema>(name: impl Into<String>) -> Self {
        let schema = serde_json::to_value(schemars::schema_for!(T))
            .expect("a derived JSON schema always serialises");
        JsonSchemaFormat::new(name, schema)
    }
}

/// `response_format` of a chat request.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ResponseFormat {
    /// Free text (the default).
    Text,
    /// Any JSON object.
    JsonObject,
    /// JSON matching a schema.
    JsonSchema {
        /// The schema and its name.
        json_schema: JsonSchemaFormat,
    },
}

/// A chat-completions request. Unset sampling fields fall back to the client's config.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatRequest {
    /// Model name; empty means the client's configured model.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub model: String,
    /// The conversation so far.
    pub messages: Vec<Message>,
    /// Sampling temperature.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Nucleus-sampling mass.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub top_p: Option<f32>,
    /// Completion length limit.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// Completions to sample for this prompt.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub n: Option<u32>,
    /// Sampling seed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// Stop sequences.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<Vec<String>>,
    /// Structured-output constraint.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_format: Option<ResponseFormat>,
    /// Provider-specific fields sent as they are (e.g. vLLM's `top_k`).
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

impl ChatRequest {
    /// A request with these messages and every other field unset.
    pub fn new(messages: Vec<Message>) -> Self {
        ChatRequest {
            messages,
            ..ChatRequest::default()
        }
    }

    /// Sets the number of completions.
    pub fn with_n(mut self, n: u32) -> Self {
        self.n = Some(n);
        self
    }

    /// Sets the temperature.
    pub fn with_temperature(mut self, t: f32) -> Self {
        self.temperature = Some(t);
        self
    }

    /// Sets the seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// Sets the completion length limit.
    pub fn with_max_tokens(mut self, max_tokens: u32) -> Self {
        self.max_tokens = Some(max_tokens);
        self
    }

    /// Constrains the answer to JSON matching `format`.
    pub fn with_json_schema(mut self, format: JsonSchemaFormat) -> Self {
        self.response_format = Some(ResponseFormat::JsonSchema {
            json_schema: format,
        });
        self
    }
}

/// Token counts the provider reported for one call.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct TokenUsage {
    /// Tokens in the prompt.
    #[serde(default)]
    pub prompt_tokens: u64,
    /// Tokens generated.
    #[serde(default)]
    pub completion_tokens: u64,
    /// Their sum, as reported.
    #[serde(default)]
    pub total_tokens: u64,
}

/// The assistant's reply inside a choice.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ChoiceMessage {
    /// Usually `assistant`.
    #[serde(default)]
    pub role: Option<String>,
    /// The reply text (absent for pure tool calls).
    #[serde(default)]
    pub content: Option<String>,
    /// Reasoning text some servers (vLLM with a reasoning parser, DeepSeek) return separately.
    #[serde(default, skip_serializing_if = "Option::is_none", alias = "reasoning")]
    pub reasoning_content: Option<String>,
}

/// One sampled completion.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Choice {
    /// Position among the `n` completions.
    #[serde(default)]
    pub index: u32,
    /// The reply.
    pub message: ChoiceMessage,
    /// `stop`, `length`, …
    #[serde(default)]
    pub finish_reason: Option<String>,
}

/// A chat-completions response.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ChatResponse {
    /// Provider's id for the call.
    #[serde(default)]
    pub id: String,
    /// Model that answered.
    #[serde(default)]
    pub model: String,
    /// The sampled completions.
    pub choices: Vec<Choice>,
    /// Token counts, when the provider reports them.
    #[serde(default)]
    pub usage: Option<TokenUsage>,
}

impl ChatResponse {
    /// The text of every choice, in order; a choice without text is an empty string.
    pub fn texts(&self) -> Vec<String> {
        self.choices
            .iter()
            .map(|c| c.message.content.clone().unwrap_or_default())
            .collect()
    }

    /// The text of the first choice.
    pub fn first_text(&self) -> Result<&str, LlmError> {
        self.choices
            .first()
            .and_then(|c| c.message.content.as_deref())
            .ok_or(LlmError::EmptyAnswer)
    }

    /// Deserialises choice `index`'s text as JSON into `T`.
    pub fn parse_choice<T: DeserializeOwned>(&self, index: usize) -> Result<T, LlmError> {
        let text = self
            .choices
            .get(index)
            .and_then(|c| c.message.content.as_deref())
            .ok_or(LlmError::EmptyAnswer)?;
        parse_structured(text)
    }
}

/// Parses a structured answer, tolerating a Markdown code fence some models wrap JSON in.
pub(crate) fn parse_structured<T: DeserializeOwned>(text: &str) -> Result<T, LlmError> {
    let trimmed = text.trim();
    let unfenced = trimmed
        .strip_prefix("```json")
        .or_else(|| trimmed.strip_prefix("```"))
        .and_then(|rest| rest.strip_suffix("```"))
        .unwrap_or(trimmed);
    serde_json::from_str(unfenced).map_err(|source| LlmError::MalformedAnswer {
        answer: snippet(text),
        source,
    })
}

/// The first 300 characters of a long text, for error messages.
pub(crate) fn snippet(text: &str) -> String {
    const MAX: usize = 300;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn request_omits_unset_fields_and_flattens_extras() {
        let mut r = ChatRequest::new(vec![Message::user("hi")]).with_n(2);
        r.extra.insert("top_k".into(), Value::from(5));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["n"], 2);
        assert_eq!(v["top_k"], 5);
        assert!(v.get("temperature").is_none());
        assert!(v.get("model").is_none());
        assert_eq!(v["messages"][0]["role"], "user");
    }

    #[test]
    fn json_schema_format_serialises_the_openai_shape() {
        let r = ChatRequest::new(vec![]).with_json_schema(JsonSchemaFormat::new(
            "answer",
            serde_json::json!({"type": "object"}),
        ));
        let v = serde_json::to_value(&r).unwrap();
        assert_eq!(v["response_format"]["type"], "json_schema");
        assert_eq!(v["response_format"]["json_schema"]["name"], "answer");
        assert_eq!(v["response_format"]["json_schema"]["strict"], true);
        assert_eq!(
            v["response_format"]["json_schema"]["schema"]["type"],
            "object"
        );
    }

    #[test]
    fn structured_answer_may_be_fenced() {
        let v: Value = parse_structured("```json\n{\"a\": 1}\n```").unwrap();
        assert_eq!(v["a"], 1);
    }

    #[test]
    fn malformed_structured_answer_names_the_answer() {
        let err = parse_structured::<Value>("{\"a\": ").unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("{\"a\": "), "{msg}");
        assert!(matches!(err, LlmError::MalformedAnswer { .. }));
    }

    #[test]
    fn snippet_cuts_on_char_boundaries() {
        let long = "é".repeat(400);
        let s = snippet(&long);
        assert_eq!(s.chars().count(), 301);
    }
}
