//! The worker's API on one port: gRPC (`sqlrft.v1.Rollouts`, what trainers use) and the same
//! messages as JSON for `curl` (`POST /v1/rollouts/pull`, `GET /v1/rollouts/status`), behind
//! the bearer token when one is set, plus `/healthz`.

use std::sync::Arc;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::json;
use sqlrft_proto::v1::rollouts_server::{Rollouts, RolloutsServer};
use sqlrft_proto::v1::{PullReply, PullRequest, StatusRequest, WorkerStatus};
use tonic::service::interceptor::InterceptedService;
use tower_http::limit::RequestBodyLimitLayer;

use crate::buffer::{BadPull, RolloutBuffer};
use crate::config::RolloutServiceConfig;

/// Largest message on the gRPC side: a batch of long completions is large.
pub const MAX_MESSAGE_BYTES: usize = sqlrft_trainer::workers::MAX_MESSAGE_BYTES;

/// The routes: the API (gRPC and JSON) behind the token and `/healthz`.
pub fn router(buffer: Arc<RolloutBuffer>, config: &RolloutServiceConfig) -> Router {
    let grpc = RolloutsServer::new(GrpcRollouts {
        buffer: buffer.clone(),
    })
    .max_encoding_message_size(MAX_MESSAGE_BYTES)
    .max_decoding_message_size(config.max_body_bytes);
    // gRPC clients read a refusal from the grpc-status trailer, not from an HTTP 401 body.
    let expected = config.token.as_ref().map(|t| format!("Bearer {t}"));
    let grpc = InterceptedService::new(grpc, move |request: tonic::Request<()>| {
        let Some(expected) = &expected else {
            return Ok(request);
        };
        match request.metadata().get("authorization") {
            Some(given) if given.as_bytes() == expected.as_bytes() => Ok(request),
            _ => Err(tonic::Status::unauthenticated(
                "this rollout worker requires `authorization: Bearer <token>`",
            )),
        }
    });
    let json = Router::new()
        .route("/v1/rollouts/pull", post(pull_json))
        .route("/v1/rollouts/status", get(status_json))
        .with_state(buffer)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes));
    Router::new()
        .merge(sqlrft_serve::require_bearer(
            json,
            config.token.clone(),
            "sqlrft-rollout",
        ))
        .merge(tonic::service::Routes::new(grpc).into_axum_router())
        .route("/healthz", get(|| async { "ok" }))
        .layer(sqlrft_serve::trace_context::http_trace_layer())
}

struct GrpcRollouts {
    buffer: Arc<RolloutBuffer>,
}

#[tonic::async_trait]
impl Rollouts for GrpcRollouts {
    async fn pull(
        &self,
        request: tonic::Request<PullRequest>,
    ) -> Result<tonic::Response<PullReply>, tonic::Status> {
        match self.buffer.pull(request.get_ref()).await {
            Ok(reply) => Ok(tonic::Response::new(reply)),
            Err(BadPull(why)) => Err(tonic::Status::invalid_argument(why)),
        }
    }

    async fn status(
        &self,
        _: tonic::Request<StatusRequest>,
    ) -> Result<tonic::Response<WorkerStatus>, tonic::Status> {
        Ok(tonic::Response::new(self.buffer.status()))
    }
}

fn bad_request(message: String) -> Response {
    (StatusCode::BAD_REQUEST, Json(json!({"error": message}))).into_response()
}

async fn pull_json(State(buffer): State<Arc<RolloutBuffer>>, body: Bytes) -> Response {
    // An empty body is the default request: any batch, no waiting.
    let request: PullRequest = if body.iter().all(u8::is_ascii_whitespace) {
        PullRequest::default()
    } else {
        match serde_json::from_slice(&body) {
            Ok(request) => request,
            Err(err) => {
                return bad_request(format!(
                    "the body is not a pull request ({err}); send JSON such as \
                     {{\"min_policy_version\": 0, \"max_policy_version\": 0, \"wait_ms\": 1000}}"
                ));
            }
        }
    };
    match buffer.pull(&request).await {
        Ok(reply) => Json(reply).into_response(),
        Err(BadPull(why)) => bad_request(why),
    }
}

async fn status_json(State(buffer): State<Arc<RolloutBuffer>>) -> Json<WorkerStatus> {
    Json(buffer.status())
}
