//! A simulated OpenAI-compatible chat-completions endpoint, on real HTTP at 127.0.0.1:0.
//!
//! Not a test double hidden in the product: the benchmarks the binary ships (`sqlrft bench
//! build`, `sqlrft bench eval`) need a provider with a known latency to measure sqlrft against,
//! and this is it; tests reuse it as the one stand-in for paid endpoints. A closure decides
//! every answer, so a caller can script successes, 429s with `Retry-After`, 500s, slow answers
//! and malformed bodies. It records every request it saw and the largest number of requests it
//! was serving at once.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use sqlrft_llm::simulated::{LlmStub, StubResponse};
//! let stub = LlmStub::start(|req| StubResponse::text(format!("echo: {}", req.user_text()))).await?;
//! let base_url = stub.base_url(); // http://127.0.0.1:PORT/v1
//! # Ok(()) }
//! ```

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use axum::serve::ListenerExt;
use serde_json::{Value, json};

use crate::chat::{Message, Role, TokenUsage};

/// A request the stub received.
#[derive(Debug, Clone)]
pub struct StubRequest {
    /// 0-based arrival order across all requests.
    pub seq: usize,
    /// Request headers.
    pub headers: HeaderMap,
    /// The JSON body (`Null` when it was not JSON).
    pub body: Value,
    /// When it arrived.
    pub received: std::time::Instant,
}

impl StubRequest {
    /// The `messages` of the body (messages that do not parse are skipped).
    pub fn messages(&self) -> Vec<Message> {
        self.body["messages"]
            .as_array()
            .map(|ms| {
                ms.iter()
                    .filter_map(|m| serde_json::from_value(m.clone()).ok())
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The content of the last user message, or "".
    pub fn user_text(&self) -> String {
        self.messages()
            .into_iter()
            .rev()
            .find(|m| m.role == Role::User)
            .map(|m| m.content)
            .unwrap_or_default()
    }

    /// The content of the system message, or "".
    pub fn system_text(&self) -> String {
        self.messages()
            .into_iter()
            .find(|m| m.role == Role::System)
            .map(|m| m.content)
            .unwrap_or_default()
    }

    /// The `n` asked for (1 when absent).
    pub fn n(&self) -> u32 {
        self.body["n"].as_u64().unwrap_or(1) as u32
    }

    /// The bearer token sent, if any.
    pub fn bearer(&self) -> Option<&str> {
        self.headers
            .get(header::AUTHORIZATION)?
            .to_str()
            .ok()?
            .strip_prefix("Bearer ")
    }

    /// Whitespace-separated words over all message contents: the stub's "prompt tokens".
    pub fn prompt_words(&self) -> u64 {
        self.messages().iter().map(|m| word_count(&m.content)).sum()
    }
}

/// Whitespace-separated words: the stub's token count.
pub fn word_count(text: &str) -> u64 {
    text.split_whitespace().count() as u64
}

/// What the stub sends back.
#[derive(Debug, Clone)]
pub enum StubReply {
    /// A chat completion with one choice per text. Without `usage`, the stub reports word
    /// counts (prompt: all messages; completion: all texts).
    Completion {
        /// One text per choice.
        texts: Vec<String>,
        /// Reported token counts.
        usage: Option<TokenUsage>,
    },
    /// An error status with an OpenAI-style error body.
    Error {
        /// HTTP status.
        status: u16,
        /// Error message.
        message: String,
        /// `Retry-After` header value.
        retry_after: Option<String>,
    },
    /// Any body, sent as it is with status 200 (for malformed-JSON tests).
    Raw(String),
}

/// A reply and how long to wait before sending it.
#[derive(Debug, Clone)]
pub struct StubResponse {
    /// What to send.
    pub reply: StubReply,
    /// Delay before sending.
    pub latency: Duration,
}

impl StubResponse {
    /// A completion with one choice.
    pub fn text(text: impl Into<String>) -> Self {
        StubResponse::texts(vec![text.into()])
    }

    /// A completion with one choice per text.
    pub fn texts(texts: Vec<String>) -> Self {
        StubResponse {
            reply: StubReply::Completion { texts, usage: None },
            latency: Duration::ZERO,
        }
    }

    /// An error status with a JSON error body.
    pub fn status(status: u16, message: impl Into<String>) -> Self {
        StubResponse {
            reply: StubReply::Error {
                status,
                message: message.into(),
                retry_after: None,
            },
            latency: Duration::ZERO,
        }
    }

    /// A 429 with `Retry-After: {retry_after}` (seconds or an HTTP date).
    pub fn rate_limited(retry_after: impl Into<String>) -> Self {
        StubResponse {
            reply: StubReply::Error {
                status: 429,
                message: "rate limit reached".into(),
                retry_after: Some(retry_after.into()),
            },
            latency: Duration::ZERO,
        }
    }

    /// A 200 whose body is `body`, verbatim.
    pub fn raw(body: impl Into<String>) -> Self {
        StubResponse {
            reply: StubReply::Raw(body.into()),
            latency: Duration::ZERO,
        }
    }

    /// Reports these token counts instead of word counts.
    pub fn with_usage(mut self, prompt_tokens: u64, completion_tokens: u64) -> Self {
        if let StubReply::Completion { usage, .. } = &mut self.reply {
            *usage = Some(TokenUsage {
                prompt_tokens,
                completion_tokens,
                total_tokens: prompt_tokens + completion_tokens,
            });
        }
        self
    }

    /// Waits `latency` before answering.
    pub fn with_latency(mut self, latency: Duration) -> Self {
        self.latency = latency;
        self
    }
}

type Handler = dyn Fn(&StubRequest) -> StubResponse + Send + Sync;

struct StubState {
    handler: Box<Handler>,
    seq: AtomicUsize,
    in_flight: AtomicUsize,
    max_in_flight: AtomicUsize,
    requests: Mutex<Vec<StubRequest>>,
}

/// A running stub; it stops when dropped.
pub struct LlmStub {
    addr: std::net::SocketAddr,
    state: Arc<StubState>,
    server: tokio::task::JoinHandle<()>,
}

impl LlmStub {
    /// Starts a stub on 127.0.0.1 at a free port; `handler` answers every chat request.
    pub async fn start<F>(handler: F) -> std::io::Result<LlmStub>
    where
        F: Fn(&StubRequest) -> StubResponse + Send + Sync + 'static,
    {
        let state = Arc::new(StubState {
            handler: Box::new(handler),
            seq: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            max_in_flight: AtomicUsize::new(0),
            requests: Mutex::new(Vec::new()),
        });
        let app = Router::new()
            .route("/v1/chat/completions", post(chat))
            .route("/chat/completions", post(chat))
            .with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
        let addr = listener.local_addr()?;
        // Without TCP_NODELAY a keep-alive client waits ~40 ms per request on delayed ACKs.
        let listener = listener.tap_io(|tcp| {
            let _ = tcp.set_nodelay(true);
        });
        let server = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Ok(LlmStub {
            addr,
            state,
            server,
        })
    }

    /// `http://127.0.0.1:PORT/v1`, the base URL to configure a client with.
    pub fn base_url(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    /// Every request received so far, in arrival order.
    pub fn requests(&self) -> Vec<StubRequest> {
        let mut all = self.state.requests.lock().expect("stub lock").clone();
        all.sort_by_key(|r| r.seq);
        all
    }

    /// Number of requests received so far.
    pub fn request_count(&self) -> usize {
        self.state.seq.load(Ordering::SeqCst)
    }

    /// The most requests the stub was serving at the same moment.
    pub fn max_in_flight(&self) -> usize {
        self.state.max_in_flight.load(Ordering::SeqCst)
    }
}

impl Drop for LlmStub {
    fn drop(&mut self) {
        self.server.abort();
    }
}

/// Decrements the in-flight count even when the client hangs up mid-answer.
struct InFlight<'a>(&'a AtomicUsize);

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

async fn chat(State(state): State<Arc<StubState>>, headers: HeaderMap, body: Bytes) -> Response {
    let now = state.in_flight.fetch_add(1, Ordering::SeqCst) + 1;
    let _guard = InFlight(&state.in_flight);
    state.max_in_flight.fetch_max(now, Ordering::SeqCst);
    let request = StubRequest {
        seq: state.seq.fetch_add(1, Ordering::SeqCst),
        headers,
        body: serde_json::from_slice(&body).unwrap_or(Value::Null),
        received: std::time::Instant::now(),
    };
    state
        .requests
        .lock()
        .expect("stub lock")
        .push(request.clone());
    let response = (state.handler)(&request);
    if !response.latency.is_zero() {
        tokio::time::sleep(response.latency).await;
    }
    match response.reply {
        StubReply::Completion { texts, usage } => {
            let usage = usage.unwrap_or_else(|| {
                let prompt_tokens = request.prompt_words();
                let completion_tokens = texts.iter().map(|t| word_count(t)).sum();
                TokenUsage {
                    prompt_tokens,
                    completion_tokens,
                    total_tokens: prompt_tokens + completion_tokens,
                }
            });
            let choices: Vec<Value> = texts
                .iter()
                .enumerate()
                .map(|(i, t)| {
                    json!({
                        "index": i,
                        "message": {"role": "assistant", "content": t},
                        "finish_reason": "stop",
                    })
                })
                .collect();
            let body = json!({
                "id": format!("chatcmpl-stub-{}", request.seq),
                "object": "chat.completion",
                "created": 0,
                "model": request.body["model"],
                "choices": choices,
                "usage": usage,
            });
            axum::Json(body).into_response()
        }
        StubReply::Error {
            status,
            message,
            retry_after,
        } => {
            let status = StatusCode::from_u16(status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
            let body = axum::Json(json!({"error": {"message": message, "type": "stub_error"}}));
            match retry_after {
                Some(ra) => (status, [(header::RETRY_AFTER, ra)], body).into_response(),
                None => (status, body).into_response(),
            }
        }
        StubReply::Raw(body) => (
            StatusCode::OK,
            [(header::CONTENT_TYPE, "application/json")],
            body,
        )
            .into_response(),
    }
}
