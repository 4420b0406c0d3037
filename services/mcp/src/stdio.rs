//! `sqlrft mcp serve --transport stdio`: the MCP host starts sqlrft and speaks JSON-RPC over its
//! stdin and stdout, one message per line. stdout carries nothing else; logs and notices go to
//! stderr (where hosts collect them).

use anyhow::Context;
use rmcp::transport::async_rw::AsyncRwTransport;
use rmcp::{RoleServer, ServiceExt};

use crate::config::McpConfig;
use crate::tools::DuckTools;
use crate::{Opened, open_database};

/// Serves the tools on stdin/stdout until the host closes stdin, or Ctrl-C / SIGTERM.
pub(crate) async fn serve(config: &McpConfig) -> anyhow::Result<()> {
    let Opened { pool, db, demo_dir } = open_database(config)?;
    let tools = DuckTools::new(pool).with_max_chars(config.max_chars);
    // The non-blocking pipe driver where the host gave us pipes (every host does); a terminal
    // or a file falls back to the blocking handles.
    let (read, write) = rmcp::transport::stdio_pipes();
    // The HTTP server's request-body cap, applied to each message line (a longer one is
    // dropped, logged, and the session goes on).
    let transport = AsyncRwTransport::<RoleServer, _, _>::new(read, write)
        .with_max_line_length(config.max_body_bytes);
    if config.token.is_some() {
        // Set in the environment or sqlrft.toml for an HTTP server; the flag itself is refused.
        tracing::warn!(
            "the bearer token (SQLRFT_MCP_TOKEN or [mcp] token) is not used over stdio: \
             the host that started this process is the only client"
        );
    }
    tracing::info!(db = %db.display(), "serving read-only MCP over stdio");
    eprintln!(
        "sqlrft MCP server on stdio (database {}); waiting for the host's initialize",
        db.display()
    );
    let running = tools
        .serve(transport)
        .await
        .context("the MCP host on stdin did not initialize a session")?;
    let stop = running.cancellation_token();
    let shutdown = sqlrft_serve::shutdown_signal();
    let signal = tokio::spawn(async move {
        shutdown.await;
        tracing::info!("shutdown signal received; closing the stdio session");
        stop.cancel();
    });
    let reason = running
        .waiting()
        .await
        .context("the stdio session ended abnormally")?;
    signal.abort();
    tracing::info!(?reason, "stdio session closed");
    drop(demo_dir);
    Ok(())
}
