//! The OpenAI-compatible HTTP API, in the shapes vLLM answers (`/v1/completions`,
//! `/v1/chat/completions`, `/v1/models`, `/v1/load_lora_adapter`, `/v1/unload_lora_adapter`),
//! so OpenAI clients, `sqlrft eval` and rollout workers talk to it as to `vllm serve`.

use std::path::PathBuf;
use std::time::{SystemTime, UNIX_EPOCH};

use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{Value, json};
use sqlrft_model::sampling::{Sampled, SamplingParams};
use sqlrft_trainer::rollout::ChatMessage;
use tower_http::limit::RequestBodyLimitLayer;

use crate::config::ModelServerConfig;
use crate::engine::{Engine, EngineError, GenerationRequest};

#[derive(Clone)]
struct AppState {
    engine: Engine,
    model_name: String,
    max_tokens_limit: usize,
    enable_lora: bool,
}

/// The routes: the API under `/v1` (behind the bearer token and the body limit) and `/health`.
pub fn router(engine: Engine, config: &ModelServerConfig) -> Router {
    let state = AppState {
        engine,
        model_name: config.model_name(),
        max_tokens_limit: config.max_tokens_limit,
        enable_lora: config.enable_lora,
    };
    let api = Router::new()
        .route("/v1/models", get(models))
        .route("/v1/completions", post(completions))
        .route("/v1/chat/completions", post(chat_completions))
        .route("/v1/load_lora_adapter", post(load_lora_adapter))
        .route("/v1/unload_lora_adapter", post(unload_lora_adapter))
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes));
    Router::new()
        .merge(sqlrft_serve::require_bearer(
            api,
            config.token.clone(),
            "sqlrft-model",
        ))
        .route("/health", get(|| async { StatusCode::OK }))
        // What every sqlrft service answers (the containers' `sqlrft healthcheck`).
        .route("/healthz", get(|| async { StatusCode::OK }))
        .layer(sqlrft_serve::trace_context::http_trace_layer())
}

/// An error in OpenAI's shape: `{"error": {"message", "type", "param", "code"}}`.
struct ApiError {
    status: StatusCode,
    message: String,
    param: Option<&'static str>,
}

impl ApiError {
    fn invalid(message: impl Into<String>, param: &'static str) -> Self {
        ApiError {
            status: StatusCode::BAD_REQUEST,
            message: message.into(),
            param: Some(param),
        }
    }
}

impl From<EngineError> for ApiError {
    fn from(err: EngineError) -> Self {
        let status = match err {
            EngineError::Busy => StatusCode::SERVICE_UNAVAILABLE,
            EngineError::UnknownAdapter(_) => StatusCode::NOT_FOUND,
            EngineError::Failed(_) => StatusCode::INTERNAL_SERVER_ERROR,
        };
        ApiError {
            status,
            message: err.to_string(),
            param: None,
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let kind = match self.status {
            StatusCode::NOT_FOUND => "NotFoundError",
            StatusCode::SERVICE_UNAVAILABLE => "ServiceUnavailableError",
            s if s.is_server_error() => "InternalServerError",
            _ => "BadRequestError",
        };
        let body = json!({"error": {
            "message": self.message,
            "type": kind,
            "param": self.param,
            "code": self.status.as_u16(),
        }});
        let mut response = (self.status, Json(body)).into_response();
        if self.status == StatusCode::SERVICE_UNAVAILABLE {
            response
                .headers_mut()
                .insert("retry-after", axum::http::HeaderValue::from_static("1"));
        }
        response
    }
}

/// A JSON body, or a 400 that says what is wrong with it.
fn parse<T: serde::de::DeserializeOwned>(body: &[u8]) -> Result<T, ApiError> {
    serde_json::from_slice(body).map_err(|e| ApiError {
        status: StatusCode::BAD_REQUEST,
        message: format!("invalid request body: {e}"),
        param: None,
    })
}

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

async fn models(State(state): State<AppState>) -> Json<Value> {
    let created = unix_now();
    let mut data = vec![json!({
        "id": state.model_name, "object": "model", "created": created,
        "owned_by": "sqlrft", "root": state.model_name, "parent": null,
    })];
    data.extend(state.engine.adapter_names().into_iter().map(|name| {
        json!({
            "id": name, "object": "model", "created": created,
            "owned_by": "sqlrft", "root": name, "parent": state.model_name,
        })
    }));
    Json(json!({"object": "list", "data": data}))
}

/// What completions and chat completions share.
#[derive(Deserialize)]
struct Common {
    model: String,
    #[serde(default)]
    n: Option<usize>,
    #[serde(default)]
    temperature: Option<f32>,
    #[serde(default)]
    top_p: Option<f32>,
    /// vLLM's extension; 0 or -1 is off.
    #[serde(default)]
    top_k: Option<i64>,
    #[serde(default)]
    seed: Option<u64>,
    #[serde(default)]
    stream: Option<bool>,
    #[serde(default)]
    stop: Option<Stop>,
}

#[derive(Deserialize)]
#[serde(untagged)]
enum Stop {
    One(String),
    Many(Vec<String>),
}

impl Stop {
    fn strings(&self) -> Vec<String> {
        match self {
            Stop::One(s) => vec![s.clone()],
            Stop::Many(v) => v.clone(),
        }
    }
}

impl AppState {
    /// The adapter `model` names: `None` for the base model; 404 for a name nobody serves.
    fn adapter_for(&self, model: &str) -> Result<Option<String>, ApiError> {
        if model == self.model_name {
            Ok(None)
        } else if self.engine.has_adapter(model) {
            Ok(Some(model.to_string()))
        } else {
            Err(ApiError {
                status: StatusCode::NOT_FOUND,
                message: format!(
                    "The model `{model}` does not exist. Served: `{}`{}",
                    self.model_name,
                    self.engine
                        .adapter_names()
                        .iter()
                        .map(|a| format!(", `{a}`"))
                        .collect::<String>()
                ),
                param: Some("model"),
            })
        }
    }

    fn sampling(
        &self,
        common: &Common,
        max_tokens: Option<usize>,
        default_max_tokens: usize,
    ) -> Result<(SamplingParams, usize), ApiError> {
        if common.stream == Some(true) {
            return Err(ApiError::invalid(
                "streaming is not supported; send stream: false",
                "stream",
            ));
        }
        let max_new_tokens = max_tokens.unwrap_or(default_max_tokens);
        if max_new_tokens == 0 || max_new_tokens > self.max_tokens_limit {
            return Err(ApiError::invalid(
                format!(
                    "max_tokens must be between 1 and {} (the server's --max-tokens-limit), got \
                     {max_new_tokens}",
                    self.max_tokens_limit
                ),
                "max_tokens",
            ));
        }
        let temperature = common.temperature.unwrap_or(1.0);
        if !(temperature.is_finite() && temperature >= 0.0) {
            return Err(ApiError::invalid(
                "temperature must be 0 or more",
                "temperature",
            ));
        }
        let top_p = common.top_p.unwrap_or(1.0);
        if !(top_p > 0.0 && top_p <= 1.0) {
            return Err(ApiError::invalid("top_p must be in (0, 1]", "top_p"));
        }
        let n = common.n.unwrap_or(1);
        if n == 0 || n > 128 {
            return Err(ApiError::invalid("n must be between 1 and 128", "n"));
        }
        let params = SamplingParams {
            temperature,
            top_p,
            top_k: common.top_k.filter(|k| *k > 0).unwrap_or(0) as usize,
            max_new_tokens,
        };
        Ok((params, n))
    }
}

/// One finished choice's text and why it ended, after `stop` strings are applied.
fn finish(text: String, sampled: &Sampled, stop: &[String]) -> (String, &'static str) {
    let cut = stop
        .iter()
        .filter(|s| !s.is_empty())
        .filter_map(|s| text.find(s.as_str()))
        .min();
    match cut {
        Some(at) => (text[..at].to_string(), "stop"),
        None if sampled.truncated => (text, "length"),
        None => (text, "stop"),
    }
}

fn usage(prompt_tokens: usize, completion_tokens: usize) -> Value {
    json!({
        "prompt_tokens": prompt_tokens,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt_tokens + completion_tokens,
    })
}

#[derive(Deserialize)]
#[serde(untagged)]
enum PromptInput {
    Text(String),
    Texts(Vec<String>),
    Tokens(Vec<u32>),
    TokenLists(Vec<Vec<u32>>),
}

#[derive(Deserialize)]
struct CompletionRequest {
    #[serde(flatten)]
    common: Common,
    prompt: PromptInput,
    /// OpenAI's default for completions is 16 tokens.
    #[serde(default)]
    max_tokens: Option<usize>,
    /// Log-probs of the sampled tokens when set (top alternatives are not computed).
    #[serde(default)]
    logprobs: Option<u32>,
    #[serde(default)]
    echo: Option<bool>,
    /// vLLM's extension: tokens in log-probs spelled `token_id:N`.
    #[serde(default)]
    return_tokens_as_token_ids: Option<bool>,
}

async fn completions(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: CompletionRequest = parse(&body)?;
    if request.echo == Some(true) {
        return Err(ApiError::invalid("echo is not supported", "echo"));
    }
    let adapter = state.adapter_for(&request.common.model)?;
    let (params, n) = state.sampling(&request.common, request.max_tokens, 16)?;
    let tokenizer = state.engine.tokenizer();
    let prompts: Vec<Vec<u32>> = match request.prompt {
        PromptInput::Text(text) => vec![encode(tokenizer, &text)?],
        PromptInput::Texts(texts) => texts
            .iter()
            .map(|t| encode(tokenizer, t))
            .collect::<Result<_, _>>()?,
        PromptInput::Tokens(ids) => vec![ids],
        PromptInput::TokenLists(lists) => lists,
    };
    if prompts.is_empty() || prompts.iter().any(Vec::is_empty) {
        return Err(ApiError::invalid(
            "every prompt needs at least one token",
            "prompt",
        ));
    }
    let vocab = state.engine.vocab_size();
    if let Some(bad) = prompts.iter().flatten().find(|&&id| id as usize >= vocab) {
        return Err(ApiError::invalid(
            format!("token id {bad} is outside the model's vocabulary (0..{vocab})"),
            "prompt",
        ));
    }
    let answers = state
        .engine
        .generate(GenerationRequest {
            adapter,
            prompts: prompts.clone(),
            n,
            params,
            seed: request.common.seed,
        })
        .await?;
    let stop = request
        .common
        .stop
        .as_ref()
        .map(Stop::strings)
        .unwrap_or_default();
    let as_ids = request.return_tokens_as_token_ids == Some(true);
    let mut choices = Vec::new();
    let mut completion_tokens = 0;
    for answer in answers {
        for sampled in answer {
            completion_tokens += sampled.tokens.len();
            let text = decode(tokenizer, &sampled.tokens)?;
            let (text, reason) = finish(text, &sampled, &stop);
            let logprobs = match request.logprobs {
                None => Value::Null,
                Some(_) => {
                    let tokens = sampled
                        .tokens
                        .iter()
                        .map(|&id| token_label(tokenizer, id, as_ids))
                        .collect::<Result<Vec<_>, _>>()?;
                    json!({
                        "tokens": tokens,
                        "token_logprobs": sampled.logprobs,
                        "top_logprobs": null,
                        "token_ids": sampled.tokens,
                    })
                }
            };
            choices.push(json!({
                "index": choices.len(), "text": text, "logprobs": logprobs,
                "finish_reason": reason,
            }));
        }
    }
    let prompt_tokens = prompts.iter().map(Vec::len).sum();
    Ok(Json(json!({
        "id": format!("cmpl-{}", rand::random::<u64>()),
        "object": "text_completion",
        "created": unix_now(),
        "model": request.common.model,
        "choices": choices,
        "usage": usage(prompt_tokens, completion_tokens),
    })))
}

#[derive(Deserialize)]
struct WireMessage {
    role: String,
    #[serde(default)]
    content: Value,
}

#[derive(Deserialize)]
struct ChatRequest {
    #[serde(flatten)]
    common: Common,
    messages: Vec<WireMessage>,
    #[serde(default)]
    max_tokens: Option<usize>,
    #[serde(default)]
    max_completion_tokens: Option<usize>,
    #[serde(default)]
    logprobs: Option<bool>,
}

async fn chat_completions(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<Json<Value>, ApiError> {
    let request: ChatRequest = parse(&body)?;
    let adapter = state.adapter_for(&request.common.model)?;
    let (params, n) = state.sampling(
        &request.common,
        request.max_completion_tokens.or(request.max_tokens),
        state.max_tokens_limit,
    )?;
    if request.messages.is_empty() {
        return Err(ApiError::invalid("messages must not be empty", "messages"));
    }
    let messages: Vec<ChatMessage> = request
        .messages
        .into_iter()
        .map(|m| ChatMessage {
            role: m.role,
            content: match m.content {
                Value::String(s) => s,
                Value::Null => String::new(),
                // Content parts: the text parts in order.
                Value::Array(parts) => parts
                    .iter()
                    .filter_map(|p| p["text"].as_str())
                    .collect::<Vec<_>>()
                    .join(""),
                other => other.to_string(),
            },
        })
        .collect();
    let tokenizer = state.engine.tokenizer();
    let rendered = tokenizer
        .render(&messages, true)
        .map_err(|e| ApiError::invalid(format!("the chat template failed: {e:#}"), "messages"))?;
    let prompt = encode(tokenizer, &rendered)?;
    let answer = state
        .engine
        .generate(GenerationRequest {
            adapter,
            prompts: vec![prompt.clone()],
            n,
            params,
            seed: request.common.seed,
        })
        .await?
        .remove(0);
    let stop = request
        .common
        .stop
        .as_ref()
        .map(Stop::strings)
        .unwrap_or_default();
    let mut choices = Vec::new();
    let mut completion_tokens = 0;
    for sampled in answer {
        completion_tokens += sampled.tokens.len();
        let (text, reason) = finish(decode(tokenizer, &sampled.tokens)?, &sampled, &stop);
        let logprobs = match request.logprobs {
            Some(true) => {
                let content = sampled
                    .tokens
                    .iter()
                    .zip(&sampled.logprobs)
                    .map(|(&id, &logprob)| {
                        let token = token_label(tokenizer, id, false)?;
                        Ok(json!({
                            "token": token, "logprob": logprob,
                            "bytes": token.as_bytes(), "top_logprobs": [],
                        }))
                    })
                    .collect::<Result<Vec<_>, ApiError>>()?;
                json!({"content": content})
            }
            _ => Value::Null,
        };
        choices.push(json!({
            "index": choices.len(),
            "message": {"role": "assistant", "content": text},
            "logprobs": logprobs,
            "finish_reason": reason,
        }));
    }
    Ok(Json(json!({
        "id": format!("chatcmpl-{}", rand::random::<u64>()),
        "object": "chat.completion",
        "created": unix_now(),
        "model": request.common.model,
        "choices": choices,
        "usage": usage(prompt.len(), completion_tokens),
    })))
}

fn encode(
    tokenizer: &sqlrft_trainer::tokenizer::ChatTokenizer,
    text: &str,
) -> Result<Vec<u32>, ApiError> {
    tokenizer
        .encode(text)
        .map_err(|e| ApiError::invalid(format!("could not tokenize the prompt: {e:#}"), "prompt"))
}

fn decode(
    tokenizer: &sqlrft_trainer::tokenizer::ChatTokenizer,
    ids: &[u32],
) -> Result<String, ApiError> {
    tokenizer.decode(ids).map_err(|e| ApiError {
        status: StatusCode::INTERNAL_SERVER_ERROR,
        message: format!("could not decode the completion: {e:#}"),
        param: None,
    })
}

/// A sampled token as log-probs name it: its text, or `token_id:N`.
fn token_label(
    tokenizer: &sqlrft_trainer::tokenizer::ChatTokenizer,
    id: u32,
    as_id: bool,
) -> Result<String, ApiError> {
    if as_id {
        Ok(format!("token_id:{id}"))
    } else {
        decode(tokenizer, &[id])
    }
}

#[derive(Deserialize)]
struct LoadAdapter {
    lora_name: String,
    lora_path: PathBuf,
}

#[derive(Deserialize)]
struct UnloadAdapter {
    lora_name: String,
}

fn lora_enabled(state: &AppState) -> Result<(), ApiError> {
    if state.enable_lora {
        Ok(())
    } else {
        Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: "runtime LoRA loading is off: start the server with --enable-lora".into(),
            param: None,
        })
    }
}

async fn load_lora_adapter(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<String, ApiError> {
    lora_enabled(&state)?;
    let request: LoadAdapter = parse(&body)?;
    if request.lora_name.is_empty() || request.lora_name == state.model_name {
        return Err(ApiError::invalid(
            "lora_name must be a new name, not empty and not the base model's",
            "lora_name",
        ));
    }
    state
        .engine
        .load_adapter(&request.lora_name, &request.lora_path)
        .await
        .map_err(|e| ApiError::invalid(format!("{e:#}"), "lora_path"))?;
    tracing::info!(name = %request.lora_name, path = %request.lora_path.display(), "adapter loaded");
    Ok(format!(
        "Success: LoRA adapter '{}' added successfully.",
        request.lora_name
    ))
}

async fn unload_lora_adapter(
    State(state): State<AppState>,
    body: axum::body::Bytes,
) -> Result<String, ApiError> {
    lora_enabled(&state)?;
    let request: UnloadAdapter = parse(&body)?;
    match state.engine.unload_adapter(&request.lora_name).await {
        Ok(true) => Ok(format!(
            "Success: LoRA adapter '{}' removed successfully.",
            request.lora_name
        )),
        Ok(false) => Err(ApiError {
            status: StatusCode::NOT_FOUND,
            message: format!("no adapter `{}` is loaded", request.lora_name),
            param: Some("lora_name"),
        }),
        Err(e) => Err(ApiError {
            status: StatusCode::INTERNAL_SERVER_ERROR,
            message: format!("{e:#}"),
            param: None,
        }),
    }
}
