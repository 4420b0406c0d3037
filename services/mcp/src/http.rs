//! The HTTP side: routes, Cloud Run habits (PORT, health, SIGTERM), Host/Origin checks, and
//! `sqlrft-serve`'s bearer token (with the OAuth protected-resource metadata the MCP
//! authorization spec asks for) and load shedding around /mcp.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::Router;
use axum::extract::State;
use axum::http::StatusCode;
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use rmcp::transport::streamable_http_server::session::local::LocalSessionManager;
use rmcp::transport::streamable_http_server::session::never::NeverSessionManager;
use rmcp::transport::streamable_http_server::{StreamableHttpServerConfig, StreamableHttpService};
use sqlrft_duck::ReadOnlyPool;
use tokio_util::sync::CancellationToken;

use crate::config::McpConfig;
use crate::inline_query::{self, Admission, InlineQuery};
use crate::tools::DuckTools;

/// Builds the application: `/mcp`, `/mcp/`, `/healthz`, `/readyz`, and with a token
/// `/.well-known/oauth-protected-resource` (also under `/mcp`).
pub fn router(
    pool: ReadOnlyPool,
    config: &McpConfig,
    bound: SocketAddr,
    cancel: CancellationToken,
) -> Router {
    let tools = DuckTools::new(pool.clone()).with_max_chars(config.max_chars);
    let hosts = allowed_hosts(config, bound);
    let mut transport = StreamableHttpServerConfig::default()
        .with_legacy_session_mode(config.sessions)
        .with_allowed_hosts(hosts.clone())
        .with_max_request_body_bytes(config.max_body_bytes)
        .with_sse_keep_alive(None)
        .with_cancellation_token(cancel.child_token());
    if !config.allowed_origins.iter().any(|o| o == "*") {
        transport = transport.with_allowed_origins(config.allowed_origins.clone());
    }
    let inline_query = Arc::new(InlineQuery {
        tools: tools.clone(),
        admission: Admission {
            allowed_hosts: hosts,
            max_body_bytes: config.max_body_bytes,
        },
    });
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
            .layer(middleware::from_fn_with_state(
                inline_query,
                inline_query::answer,
            ))
    };

    // Past connections + waiting room, a request would only queue: answer 503 at once instead.
    let mcp = sqlrft_serve::shed_load(
        mcp,
        config.connections + config.max_waiting,
        serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32000, "message": "server busy: too many queries in flight; retry after 1 s"}
        }),
    );
    Router::new()
        .merge(sqlrft_serve::require_bearer_on_resource(
            mcp,
            config.token.clone(),
            "sqlrft",
            sqlrft_serve::ProtectedResource {
                path: "/mcp",
                name: "sqlrft read-only DuckDB MCP server",
                public_url: config.public_url.clone(),
            },
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
