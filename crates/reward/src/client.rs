//! A client of the reward service's batch endpoint (`sqlrft reward serve`): what the trainer's
//! HTTP reward and eval's `--reward-url` send, without DuckDB in the calling process.

use std::time::Duration;

use sqlrft_core::score::Evaluation;

use crate::wire::{BATCH_PATH, BatchRequest, BatchResponse};

/// Why a batch got no evaluations. Each message names the endpoint.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// The HTTP client could not be built (TLS backend).
    #[error("could not build an HTTP client: {0}")]
    Build(#[source] reqwest::Error),
    /// Nothing answered, or the answer did not arrive in time.
    #[error("reward service `{endpoint}` is unreachable; is `sqlrft reward serve` running?")]
    Unreachable {
        /// The URL posted to.
        endpoint: String,
        /// What the HTTP client saw.
        #[source]
        source: reqwest::Error,
    },
    /// The service answered with an error status (400 names the bad field, 401 a missing token).
    #[error("reward service `{endpoint}` answered {status}: {body}")]
    Status {
        /// The URL posted to.
        endpoint: String,
        /// The HTTP status.
        status: reqwest::StatusCode,
        /// The answer's body, usually `{"error": ...}`.
        body: String,
    },
    /// The answer is not `{results: [...]}` with one evaluation per completion.
    #[error("reward service `{endpoint}` sent an unexpected body: {detail}")]
    Body {
        /// The URL posted to.
        endpoint: String,
        /// What was wrong with it.
        detail: String,
    },
}

/// Posts batches to one reward service.
#[derive(Debug, Clone)]
pub struct RewardClient {
    endpoint: String,
    token: Option<String>,
    http: reqwest::Client,
}

impl RewardClient {
    /// A client of the service at `base_url` (e.g. `http://127.0.0.1:8090`), sending `token` as
    /// a bearer token when set; a request past `timeout` is [`ClientError::Unreachable`].
    pub fn new(
        base_url: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        Self::for_endpoint(
            &format!("{}{BATCH_PATH}", base_url.trim_end_matches('/')),
            token,
            timeout,
        )
    }

    /// A client of any URL that speaks the batch endpoint's shape (a [`BatchRequest`] in, a
    /// [`BatchResponse`] out), posted to as given.
    pub fn for_endpoint(
        endpoint: &str,
        token: Option<String>,
        timeout: Duration,
    ) -> Result<Self, ClientError> {
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .tcp_nodelay(true)
            .build()
            .map_err(ClientError::Build)?;
        Ok(RewardClient {
            endpoint: endpoint.to_string(),
            token,
            http,
        })
    }

    /// The URL batches go to.
    pub fn endpoint(&self) -> &str {
        &self.endpoint
    }

    /// Scores a batch: one evaluation per completion, in order.
    pub async fn score_batch(
        &self,
        request: &BatchRequest,
    ) -> Result<Vec<Evaluation>, ClientError> {
        let unreachable = |source| ClientError::Unreachable {
            endpoint: self.endpoint.clone(),
            source,
        };
        let mut post = self.http.post(&self.endpoint).json(request);
        if let Some(token) = &self.token {
            post = post.bearer_auth(token);
        }
        // One trace from the caller (a rollout worker's round) through the service to MCP.
        if let Some((traceparent, tracestate)) = sqlrft_serve::trace_context::current() {
            post = post.header("traceparent", traceparent);
            if let Some(tracestate) = tracestate {
                post = post.header("tracestate", tracestate);
            }
        }
        let response = post.send().await.map_err(unreachable)?;
        let status = response.status();
        if !status.is_success() {
            return Err(ClientError::Status {
                endpoint: self.endpoint.clone(),
                status,
                body: response.text().await.unwrap_or_default(),
            });
        }
        let bytes = response.bytes().await.map_err(unreachable)?;
        let body: BatchResponse =
            serde_json::from_slice(&bytes).map_err(|e| ClientError::Body {
                endpoint: self.endpoint.clone(),
                detail: e.to_string(),
            })?;
        if body.results.len() != request.completions.len() {
            return Err(ClientError::Body {
                endpoint: self.endpoint.clone(),
                detail: format!(
                    "{} results for {} completions",
                    body.results.len(),
                    request.completions.len()
                ),
            });
        }
        Ok(body.results)
    }
}
