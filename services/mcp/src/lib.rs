//! `sqlrft mcp serve`: a read-only DuckDB MCP server over streamable HTTP.
//!
//! Wire-compatible with mcp-server-motherduck 0.8.1 as the Fireworks RFT tutorial calls it
//! (stateless POST to `/mcp/`, SSE reply, the tabulate "pretty" text table), plus typed
//! `structuredContent`, `list_tables`/`describe_table`, a locked-down database, limits on by
//! default, bearer auth, health endpoints and graceful shutdown for Cloud Run.

pub mod bench;
mod config;
mod demo;
mod http;
pub mod python;
pub mod table;
mod tools;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::Context;
use axum::serve::ListenerExt;
use sqlrft_duck::ReadOnlyPool;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use config::{McpConfig, McpServeArgs};
pub use demo::{DEMO_SQL, write_demo_database};
pub use http::router;
pub use tools::{DuckTools, structured};

/// A server running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub db: PathBuf,
    cancel: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
    _demo_dir: Option<tempfile::TempDir>,
}

impl RunningServer {
    /// Base URL without `/mcp`, as the tutorial's `MCP_SERVER_URL` wants it.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// The MCP endpoint, as MCP hosts and SDKs want it.
    pub fn mcp_url(&self) -> String {
        format!("http://{}/mcp", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.cancel.cancel();
        self.task.await.unwrap_or(Ok(()))
    }

    /// Waits until the server stops (after [`RunningServer::cancel_token`] fires).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }
}

/// Opens the database, binds the socket and starts serving in the background.
pub async fn start(config: McpConfig) -> anyhow::Result<RunningServer> {
    let (db, demo_dir) = match (&config.db, config.demo) {
        (_, true) => {
            let dir = tempfile::tempdir()
                .context("could not create a directory for the demo database")?;
            let path =
                write_demo_database(dir.path()).context("could not write the demo database")?;
            (path, Some(dir))
        }
        (Some(db), false) => (db.clone(), None),
        (None, false) => anyhow::bail!(
            "no database to serve: pass a DuckDB file (`sqlrft mcp serve data/sandbox.duckdb`) or `--demo`"
        ),
    };
    let pool = ReadOnlyPool::open(&db, config.pool_options())?;
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .with_context(|| {
            format!(
                "could not listen on {}:{}; is the port in use? pick another with --port",
                config.host, config.port
            )
        })?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let app = router(pool, &config, addr, cancel.clone());
    let stop = cancel.clone();
    // Without TCP_NODELAY a keep-alive client waits ~20 ms per reply (Nagle + delayed ACK).
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!("could not set TCP_NODELAY: {err}");
        }
    });
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    Ok(RunningServer {
        addr,
        db,
        cancel,
        task,
        _demo_dir: demo_dir,
    })
}

/// `sqlrft mcp serve`: runs until Ctrl-C or SIGTERM, then drains and exits.
pub async fn serve(args: McpServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let server = start(config).await?;
    if let Some(file) = &args.print_url_to {
        let partial = file.with_extension("partial");
        std::fs::write(&partial, server.base_url())
            .and_then(|()| std::fs::rename(&partial, file))
            .with_context(|| format!("could not write the server URL to `{}`", file.display()))?;
    }
    tracing::info!(url = %server.mcp_url(), db = %server.db.display(), "serving read-only MCP");
    eprintln!(
        "sqlrft MCP server on {} (database {})",
        server.mcp_url(),
        server.db.display()
    );
    eprintln!(
        "tutorial evaluator: MCP_SERVER_URL = \"{}\"",
        server.base_url()
    );
    let cancel = server.cancel_token();
    tokio::spawn(async move {
        shutdown_signal().await;
        tracing::info!("shutdown signal received; draining");
        cancel.cancel();
    });
    server.wait().await?;
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM (what Cloud Run and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = ctrl_c => {}
            _ = term.recv() => {}
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
