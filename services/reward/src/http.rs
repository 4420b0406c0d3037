//! The HTTP side: routes, auth, limits and errors. Handlers are thin: read the request, call the
//! engine, answer JSON.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde_json::{Value, json};
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_reward::RewardEngine;
use sqlrft_reward::wire::{self, BatchResponse};
use tower_http::limit::RequestBodyLimitLayer;
use tower_http::timeout::TimeoutLayer;

use crate::config::RewardConfig;
use crate::openapi;
use crate::request::{BadRequest, BatchRequest, EvaluateRequest, GroundTruths};

#[derive(Clone)]
struct AppState {
    engine: Arc<RewardEngine>,
    max_batch: usize,
}

/// The service's one error type: a request the service cannot act on.
#[derive(Debug)]
pub enum AppError {
    BadRequest(String),
}

impl From<BadRequest> for AppError {
    fn from(err: BadRequest) -> Self {
        AppError::BadRequest(err.0)
    }
}

impl IntoResponse for AppError {
    fn into_response(self) -> Response {
        match self {
            AppError::BadRequest(message) => {
                (StatusCode::BAD_REQUEST, Json(json!({ "error": message }))).into_response()
            }
        }
    }
}

/// Builds the application: `/v1/evaluate`, `/v1/evaluate/batch`, `/openapi.json`, `/healthz`,
/// `/readyz`.
pub fn router(engine: Arc<RewardEngine>, config: &RewardConfig) -> Router {
    let state = AppState {
        engine: engine.clone(),
        max_batch: config.max_batch,
    };
    // A backstop past the engine's own per-query deadline, which answers first with an
    // invalid evaluation.
    let backstop = config.eval_timeout() * 2 + Duration::from_secs(5);
    let api = Router::new()
        .route(wire::EVALUATE_PATH, post(evaluate))
        .route(wire::BATCH_PATH, post(evaluate_batch))
        .with_state(state)
        .layer(DefaultBodyLimit::max(config.max_body_bytes))
        .layer(RequestBodyLimitLayer::new(config.max_body_bytes))
        .layer(TimeoutLayer::with_status_code(
            StatusCode::GATEWAY_TIMEOUT,
            backstop,
        ));
    let api = sqlrft_serve::shed_load(
        api,
        config.max_concurrency,
        json!({"error": "server busy: too many evaluations in flight; retry after 1 s"}),
    );
    Router::new()
        .merge(sqlrft_serve::require_bearer(
            api,
            config.token.clone(),
            "sqlrft-reward",
        ))
        .route("/openapi.json", get(openapi_document))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(engine))
        .layer(sqlrft_serve::trace_context::http_trace_layer())
}

fn parse_json(body: &Bytes) -> Result<Value, AppError> {
    serde_json::from_slice(body)
        .map_err(|e| AppError::BadRequest(format!("the request body is not valid JSON: {e}")))
}

#[tracing::instrument(skip_all, fields(score, valid))]
async fn evaluate(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    let request = EvaluateRequest::parse(&parse_json(&body)?)?;
    let evaluation = state
        .engine
        .evaluate(&request.completion, &request.ground_truth, &request.options)
        .await;
    let span = tracing::Span::current();
    span.record("score", evaluation.score);
    span.record("valid", evaluation.is_score_valid);
    Ok(Json(evaluation).into_response())
}

#[tracing::instrument(skip_all, fields(completions))]
async fn evaluate_batch(State(state): State<AppState>, body: Bytes) -> Result<Response, AppError> {
    let request = BatchRequest::parse(&parse_json(&body)?, state.max_batch)?;
    tracing::Span::current().record("completions", request.completions.len());
    let results = match request.ground_truths {
        GroundTruths::Shared(truth) => {
            state
                .engine
                .score_group(&request.completions, &truth, &request.options)
                .await
        }
        GroundTruths::Each(truths) => {
            let pairs: Vec<(String, GroundTruth)> =
                request.completions.into_iter().zip(truths).collect();
            state.engine.score_pairs(&pairs, &request.options).await
        }
    };
    Ok(Json(BatchResponse { results }).into_response())
}

async fn openapi_document() -> Json<Value> {
    Json(openapi::document())
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(engine): State<Arc<RewardEngine>>) -> Response {
    match engine.executor().query("SELECT 1").await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(err) => (
            StatusCode::SERVICE_UNAVAILABLE,
            format!(
                "not ready: {} cannot run SQL: {err}",
                engine.executor().describe()
            ),
        )
            .into_response(),
    }
}
