//! The HTTP side: routes, Cloud Run habits (PORT, health, SIGTERM), auth, load shedding.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::StatusCode;
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use futures::StreamExt;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sqlrft_duck::ReadOnlyPool;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

use crate::config::McpConfig;
use crate::tools::DuckTools;

/// Builds the application: `/mcp`, `/mcp/`, `/healthz`, `/readyz`.
pub fn router(
    pool: ReadOnlyPool,
    config: &McpConfig,
    bound: SocketAddr,
    cancel: CancellationToken,
) -> Router {
    let tools = DuckTools::new(pool.clone());
    let mut transport = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(config.sessions)
        .with_allowed_hosts(allowed_hosts(config, bound))
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_sse_keep_alive(None)
        .with_cancellation_token(cancel.child_token());
    if !config.allowed_origins.iter().any(|o| o == "*") {
        transport = transport.with_allowed_origins(config.allowed_origins.clone());
    }
    let factory = move || Ok(tools.clone());
    let mcp: Router = if config.sessions {
        let service = StreamableHttpService::new(
            factory,
            Arc::new(LocalSessionManager::default()),
            transport,
        );
        Router::new()
            .route_service("/mcp", service.clone())
            .route_service("/mcp/", service)
    } else {
        let service = StreamableHttpService::new(
            factory,
            Arc::new(NeverSessionManager::default()),
            transport,
        );
        Router::new()
            .route_service("/mcp", service.clone())
            .route_service("/mcp/", service)
    };

    // Past connections + waiting room, a request would only queue: answer 503 at once instead.
    let in_flight = Arc::new(Semaphore::new(config.connections + config.max_waiting));
    let mcp = mcp.layer(middleware::from_fn_with_state(in_flight, shed_load));
    Router::new()
        .merge(sqlrft_serve::require_bearer(
            mcp,
            config.token.clone(),
            "sqlrft",
        ))
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz).with_state(pool))
        .layer(sqlrft_serve::trace_context::http_trace_layer())
}

/// Host validation defends a server on a developer's machine against DNS rebinding; a server
/// bound to a public interface (a container) is reached under names we cannot know in advance.
fn allowed_hosts(config: &McpConfig, bound: SocketAddr) -> Vec<String> {
    if !config.allowed_hosts.is_empty() {
        config.allowed_hosts.clone()
    } else if bound.ip().is_loopback() {
        vec!["localhost".into(), "127.0.0.1".into(), "::1".into()]
    } else {
        Vec::new()
    }
}

async fn healthz() -> &'static str {
    "ok"
}

async fn readyz(State(pool): State<ReadOnlyPool>) -> Response {
    match pool.query("SELECT 1").await {
        Ok(_) => (StatusCode::OK, "ready").into_response(),
        Err(err) => (StatusCode::SERVICE_UNAVAILABLE, format!("not ready: {err}")).into_response(),
    }
}

/// Cancelled when the client stops reading the reply (it hung up) or the reply has been sent.
/// rmcp keeps running a handler whose client is gone; the tool watches this to stop the query.
#[derive(Clone)]
pub(crate) struct ReplyAbandoned(pub(crate) CancellationToken);

async fn shed_load(
    State(in_flight): State<Arc<Semaphore>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = in_flight.try_acquire_owned() else {
        return sqlrft_serve::busy(serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32000, "message": "server busy: too many queries in flight; retry after 1 s"}
        }));
    };
    let abandoned = CancellationToken::new();
    request
        .extensions_mut()
        .insert(ReplyAbandoned(abandoned.clone()));
    // The reply is an SSE stream that is still being produced when the headers go out: the
    // request keeps its slot until the body has been sent or the client has gone.
    let (parts, body) = next.run(request).await.into_parts();
    let on_drop = abandoned.drop_guard();
    let guarded = body.into_data_stream().map(move |chunk| {
        let _held = (&permit, &on_drop);
        chunk
    });
    Response::from_parts(parts, Body::from_stream(guarded))
}
