//! The chat client: bounded concurrency, retries, structured output and usage accounting.

use std::error::Error as _;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde::de::DeserializeOwned;
use tokio::sync::Semaphore;

use sqlrft_retry::{Backoff, Failure, RetryPolicy, parse_retry_after};

use crate::chat::{ChatRequest, ChatResponse, JsonSchemaFormat, snippet};
use crate::config::{LlmConfig, TokenLimitField};
use crate::usage::{Pricing, Usage, UsageMeter};

/// Why a chat call failed.
#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    /// The configured API-key variable is unset.
    #[error(
        "no API key for provider {provider}: set the environment variable `{env}` \
         (or name another one with `api_key_env`)"
    )]
    MissingApiKey {
        /// Variable that was looked up.
        env: String,
        /// Provider it was looked up for.
        provider: String,
    },
    /// The configuration cannot work (e.g. no model).
    #[error("invalid LLM configuration: {0}")]
    Config(String),
    /// The server answered with an error status.
    #[error("{url} answered HTTP {status}: {body}")]
    Status {
        /// Request URL.
        url: String,
        /// HTTP status code.
        status: u16,
        /// Response body (shortened).
        body: String,
        /// The server's `Retry-After`, if it sent one.
        retry_after: Option<Duration>,
    },
    /// No complete answer within the per-request timeout.
    #[error("request to {url} timed out after {after:?}")]
    Timeout {
        /// Request URL.
        url: String,
        /// The configured timeout.
        after: Duration,
    },
    /// The server could not be reached or the connection broke.
    #[error("could not reach {url}: {message}")]
    Connection {
        /// Request URL.
        url: String,
        /// The transport error and its causes.
        message: String,
    },
    /// A 2xx body that is not the JSON the call expects (a chat completion, for `chat`).
    #[error("{url} returned a body that is not {expected} ({source}): {body}")]
    Decode {
        /// What the body should have been.
        expected: &'static str,
        /// Request URL.
        url: String,
        /// Response body (shortened).
        body: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The model's text is not the JSON the structured-output request asked for.
    #[error("the model's answer is not the requested JSON ({source}): {answer}")]
    MalformedAnswer {
        /// The answer text (shortened).
        answer: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The response had no choice with text.
    #[error("the model returned no answer text")]
    EmptyAnswer,
    /// Every attempt failed with a retryable error.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last attempt's error.
        last: Box<LlmError>,
    },
}

impl LlmError {
    /// True for failures another attempt may fix: 408, 429, 5xx, timeouts, connection errors.
    pub fn is_retryable(&self) -> bool {
        match self {
            LlmError::Status { status, .. } => *status == 408 || *status == 429 || *status >= 500,
            LlmError::Timeout { .. } | LlmError::Connection { .. } => true,
            _ => false,
        }
    }

    /// How the retry loop should treat this error.
    fn into_failure(self) -> Failure<LlmError> {
        if !self.is_retryable() {
            return Failure::Permanent(self);
        }
        let retry_after = match &self {
            LlmError::Status { retry_after, .. } => *retry_after,
            _ => None,
        };
        Failure::Transient {
            error: self,
            retry_after,
        }
    }
}

/// A structured answer and the response it came from.
#[derive(Debug, Clone)]
pub struct Structured<T> {
    /// The first choice, deserialised.
    pub value: T,
    /// The whole response (other choices, usage).
    pub response: ChatResponse,
}

/// An OpenAI-compatible chat client. Cloning is cheap and clones share the concurrency
/// limit and the usage totals.
#[derive(Clone)]
pub struct LlmClient {
    inner: Arc<Inner>,
}

struct Inner {
    http: reqwest::Client,
    config: LlmConfig,
    /// Everything before `/chat/completions`, without a trailing slash.
    base_url: String,
    api_key: Option<String>,
    permits: Semaphore,
    meter: UsageMeter,
    retry: RetryPolicy,
}

impl std::fmt::Debug for LlmClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LlmClient")
            .field("base_url", &self.inner.base_url)
            .field("model", &self.inner.config.model)
            .finish_non_exhaustive()
    }
}

impl LlmClient {
    /// A client for `config`, reading the API key (and, for OpenAI, `OPENAI_BASE_URL`) from the
    /// process environment.
    pub fn new(config: LlmConfig) -> Result<Self, LlmError> {
        Self::with_env(config, |name| std::env::var(name).ok())
    }

    /// A client for `config`, reading the API key and base-URL variables through `env`.
    pub fn with_env(
        config: LlmConfig,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<Self, LlmError> {
        let api_key = match config.resolved_api_key_env() {
            Some(name) => match env(&name) {
                Some(key) if !key.trim().is_empty() => Some(key.trim().to_string()),
                _ => {
                    return Err(LlmError::MissingApiKey {
                        env: name,
                        provider: config.provider.to_string(),
                    });
                }
            },
            None => None,
        };
        let base_url = config.resolved_base_url(env);
        Self::build(config, api_key, base_url)
    }

    /// A client for `config` with an explicit key (`None`: send no `Authorization`).
    pub fn with_api_key(config: LlmConfig, api_key: Option<String>) -> Result<Self, LlmError> {
        let base_url = config.resolved_base_url(|name| std::env::var(name).ok());
        Self::build(config, api_key, base_url)
    }

    fn build(
        config: LlmConfig,
        api_key: Option<String>,
        base_url: String,
    ) -> Result<Self, LlmError> {
        if config.max_concurrency == 0 {
            return Err(LlmError::Config(
                "max_concurrency must be at least 1".into(),
            ));
        }
        let http = reqwest::Client::builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout.min(Duration::from_secs(30)))
            .build()
            .map_err(|e| LlmError::Config(format!("could not build the HTTP client: {e}")))?;
        Ok(LlmClient {
            inner: Arc::new(Inner {
                http,
                base_url: base_url.trim_end_matches('/').to_string(),
                api_key,
                permits: Semaphore::new(config.max_concurrency),
                meter: UsageMeter::default(),
                retry: RetryPolicy {
                    retries: config.retries,
                    backoff: Backoff {
                        base: config.backoff_base,
                        max: config.backoff_max,
                    },
                },
                config,
            }),
        })
    }

    /// The configuration the client was built from.
    pub fn config(&self) -> &LlmConfig {
        &self.inner.config
    }

    /// Token and request totals so far, priced when the config has prices.
    pub fn usage(&self) -> Usage {
        let c = &self.inner.config;
        let pricing = match (c.price_input_per_million, c.price_output_per_million) {
            (None, None) => None,
            (i, o) => Some(Pricing {
                input_per_million: i.unwrap_or(0.0),
                output_per_million: o.unwrap_or(0.0),
            }),
        };
        self.inner.meter.snapshot(pricing)
    }

    /// Sends a chat request, retrying retryable failures with backoff.
    pub async fn chat(&self, request: ChatRequest) -> Result<ChatResponse, LlmError> {
        let body = self.complete_request(request)?;
        let url = self.url("/chat/completions");
        let body = serde_json::to_value(&body)
            .map_err(|e| LlmError::Config(format!("the chat request does not serialise: {e}")))?;
        let text = self.exchange(&url, Some(&body)).await?;
        let response: ChatResponse = decode(&url, &text, "a chat completion")?;
        let usage = response.usage.unwrap_or_default();
        self.inner
            .meter
            .record_success(usage.prompt_tokens, usage.completion_tokens);
        Ok(response)
    }

    /// Posts `body` to `path` under the base URL (`/completions`, vLLM's
    /// `/load_lora_adapter`, ...) with the same key, concurrency limit and retries as
    /// [`LlmClient::chat`]; answers the reply's text, which need not be JSON.
    pub async fn post(&self, path: &str, body: &serde_json::Value) -> Result<String, LlmError> {
        let text = self.exchange(&self.url(path), Some(body)).await?;
        self.inner.meter.record_success(0, 0);
        Ok(text)
    }

    /// GETs `path` under the base URL (`/models`) with the key and retries of every call.
    pub async fn get_json<T: DeserializeOwned>(&self, path: &str) -> Result<T, LlmError> {
        let url = self.url(path);
        let text = self.exchange(&url, None).await?;
        decode(&url, &text, std::any::type_name::<T>())
    }

    /// [`LlmClient::post`] for a JSON reply; its `usage`, when there is one, is counted as a
    /// chat's is.
    pub async fn post_json<T: DeserializeOwned>(
        &self,
        path: &str,
        body: &serde_json::Value,
    ) -> Result<T, LlmError> {
        let url = self.url(path);
        let text = self.exchange(&url, Some(body)).await?;
        let value: serde_json::Value = decode(&url, &text, "JSON")?;
        let tokens = |key: &str| value["usage"][key].as_u64().unwrap_or(0);
        self.inner
            .meter
            .record_success(tokens("prompt_tokens"), tokens("completion_tokens"));
        serde_json::from_value(value).map_err(|source| LlmError::Decode {
            url,
            expected: std::any::type_name::<T>(),
            body: snippet(&text),
            source,
        })
    }

    fn url(&self, path: &str) -> String {
        format!("{}/{}", self.inner.base_url, path.trim_start_matches('/'))
    }

    /// One call with retries (a POST of `body`, or a GET without one): the body of the 2xx
    /// answer, or the last error.
    async fn exchange(
        &self,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, LlmError> {
        let inner = &self.inner;
        let result = sqlrft_retry::retry(&inner.retry, "LLM call", |attempt| {
            if attempt > 0 {
                inner.meter.record_retry();
            }
            async move {
                // The permit is held for one HTTP exchange only, never across a backoff sleep,
                // so a waiting retry does not starve other calls.
                let _permit = inner
                    .permits
                    .acquire()
                    .await
                    .expect("the semaphore is never closed");
                self.send_once(url, body)
                    .await
                    .map_err(LlmError::into_failure)
            }
        })
        .await;
        result.map_err(|gave_up| {
            inner.meter.record_failure();
            gave_up.into_error(|attempts, last| LlmError::Exhausted {
                attempts,
                last: Box::new(last),
            })
        })
    }

    /// Sends `request` constrained to `format` and deserialises the first choice into `T`.
    pub async fn chat_json<T: DeserializeOwned>(
        &self,
        request: ChatRequest,
        format: JsonSchemaFormat,
    ) -> Result<Structured<T>, LlmError> {
        let response = self.chat(request.with_json_schema(format)).await?;
        let value = response.parse_choice(0)?;
        Ok(Structured { value, response })
    }

    /// Fills what the request left unset from the config.
    fn complete_request(&self, mut request: ChatRequest) -> Result<ChatRequest, LlmError> {
        let c = &self.inner.config;
        if request.model.is_empty() {
            if c.model.is_empty() {
                return Err(LlmError::Config(
                    "no model given: set `model` in the config (or pass --model)".into(),
                ));
            }
            request.model = c.model.clone();
        }
        request.temperature = request.temperature.or(c.temperature);
        request.top_p = request.top_p.or(c.top_p);
        request.max_tokens = request.max_tokens.or(c.max_tokens);
        request.seed = request.seed.or(c.seed);
        if c.resolved_token_limit_field() == TokenLimitField::MaxCompletionTokens
            && let Some(limit) = request.max_tokens.take()
        {
            request
                .extra
                .insert("max_completion_tokens".into(), limit.into());
        }
        Ok(request)
    }

    async fn send_once(
        &self,
        url: &str,
        body: Option<&serde_json::Value>,
    ) -> Result<String, LlmError> {
        let inner = &self.inner;
        let mut builder = match body {
            Some(body) => inner.http.post(url).json(body),
            None => inner.http.get(url),
        };
        if let Some(key) = &inner.api_key {
            builder = builder.bearer_auth(key);
        }
        let response = builder
            .send()
            .await
            .map_err(|e| self.transport_error(url, e))?;
        let status = response.status();
        let retry_after = response
            .headers()
            .get(reqwest::header::RETRY_AFTER)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| parse_retry_after(v, SystemTime::now()));
        let text = response
            .text()
            .await
            .map_err(|e| self.transport_error(url, e))?;
        if !status.is_success() {
            return Err(LlmError::Status {
                url: url.to_string(),
                status: status.as_u16(),
                body: snippet(&text),
                retry_after,
            });
        }
        Ok(text)
    }

    fn transport_error(&self, url: &str, err: reqwest::Error) -> LlmError {
        let url = url.to_string();
        if err.is_timeout() {
            return LlmError::Timeout {
                url,
                after: self.inner.config.timeout,
            };
        }
        // reqwest's own message is terse ("error sending request"); the cause chain says why.
        let mut message = err.to_string();
        let mut source = err.source();
        while let Some(cause) = source {
            message.push_str(": ");
            message.push_str(&cause.to_string());
            source = cause.source();
        }
        LlmError::Connection { url, message }
    }
}

/// `text` as `T`, or a decode error that says what was expected.
fn decode<T: DeserializeOwned>(
    url: &str,
    text: &str,
    expected: &'static str,
) -> Result<T, LlmError> {
    serde_json::from_str(text).map_err(|source| LlmError::Decode {
        url: url.to_string(),
        expected,
        body: snippet(text),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::Provider;

    #[test]
    fn missing_api_key_names_the_variable() {
        let mut c = LlmConfig::new(Provider::OpenAi, "gpt");
        c.api_key_env = Some("SQLRFT_TEST_SURELY_UNSET_KEY".into());
        let err = LlmClient::new(c).unwrap_err();
        assert!(
            err.to_string().contains("SQLRFT_TEST_SURELY_UNSET_KEY"),
            "{err}"
        );
    }

    #[test]
    fn request_defaults_come_from_the_config_unless_set() {
        let mut c = LlmConfig::new(Provider::Vllm, "m1");
        c.temperature = Some(0.7);
        c.seed = Some(9);
        c.max_tokens = Some(64);
        let client = LlmClient::new(c.clone()).unwrap();
        let r = client
            .complete_request(ChatRequest::new(vec![]).with_temperature(0.1))
            .unwrap();
        assert_eq!(r.model, "m1");
        assert_eq!(r.temperature, Some(0.1));
        assert_eq!(r.seed, Some(9));
        assert_eq!(r.max_tokens, Some(64));
        c.token_limit_field = Some(TokenLimitField::MaxCompletionTokens);
        let moved = LlmClient::new(c)
            .unwrap()
            .complete_request(ChatRequest::new(vec![]))
            .unwrap();
        assert_eq!(moved.max_tokens, None);
        assert_eq!(moved.extra["max_completion_tokens"], 64);
    }

    #[test]
    fn no_model_is_a_config_error() {
        let client = LlmClient::with_api_key(LlmConfig::default(), None).unwrap();
        let err = client
            .complete_request(ChatRequest::new(vec![]))
            .unwrap_err();
        assert!(err.to_string().contains("--model"), "{err}");
    }

    #[test]
    fn retryable_statuses() {
        let status = |s| LlmError::Status {
            url: String::new(),
            status: s,
            body: String::new(),
            retry_after: None,
        };
        assert!(status(429).is_retryable());
        assert!(status(503).is_retryable());
        assert!(!status(400).is_retryable());
        assert!(!status(401).is_retryable());
        assert!(!LlmError::EmptyAnswer.is_retryable());
    }
}
