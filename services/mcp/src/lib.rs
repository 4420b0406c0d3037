//! `sqlrft mcp serve`: a read-only DuckDB MCP server over streamable HTTP or stdio.
//!
//! Wire-compatible with mcp-server-motherduck 0.8.1 as the Fireworks RFT tutorial calls it
//! (stateless POST to `/mcp/`, SSE reply, the tabulate "pretty" text table), plus typed
//! `structuredContent`, `list_tables`/`describe_table`, a locked-down database, limits on by
//! default, bearer auth with OAuth protected-resource metadata, health endpoints and graceful
//! shutdown for Cloud Run. Over stdio (how desktop MCP hosts start a local server) the same tools
//! answer from the same locked-down pool with the same limits.

#![warn(missing_docs)]

pub mod bench;
mod config;
mod demo;
mod http;
mod inline_query;
pub mod python;
mod stdio;
pub mod table;
mod tools;

use std::path::PathBuf;

use anyhow::Context;
use sqlrft_duck::ReadOnlyPool;
use tokio_util::sync::CancellationToken;

pub use config::{McpConfig, McpServeArgs, Transport};
pub use demo::{DEMO_SQL, write_demo_database};
pub use http::router;
pub use tools::structured;

/// An MCP server running in this process.
pub type RunningServer = sqlrft_serve::Server<Serving>;

/// What an MCP server in this process serves.
pub struct Serving {
    /// The database file being served (the demo's temporary file under `--demo`).
    pub db: PathBuf,
    /// Keeps the `--demo` database alive while it is served.
    _demo_dir: Option<tempfile::TempDir>,
}

/// The MCP endpoint of a server, as MCP hosts and SDKs want it (the base URL is what the
/// tutorial's `MCP_SERVER_URL` wants).
pub fn mcp_url(server: &RunningServer) -> String {
    format!("{}/mcp", server.base_url())
}

/// The database a server serves, opened read-only; holds the `--demo` file's directory.
struct Opened {
    pool: ReadOnlyPool,
    db: PathBuf,
    demo_dir: Option<tempfile::TempDir>,
}

fn open_database(config: &McpConfig) -> anyhow::Result<Opened> {
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
    Ok(Opened { pool, db, demo_dir })
}

/// Opens the database, binds the socket and starts serving over HTTP in the background.
pub async fn start(config: McpConfig) -> anyhow::Result<RunningServer> {
    let Opened { pool, db, demo_dir } = open_database(&config)?;
    let listener = sqlrft_serve::bind(&config.host, config.port).await?;
    let addr = listener.local_addr()?;
    let cancel = CancellationToken::new();
    let app = router(pool, &config, addr, cancel.clone());
    let serving = Serving {
        db,
        _demo_dir: demo_dir,
    };
    Ok(sqlrft_serve::Server::spawn(listener, app, cancel, serving))
}

/// `sqlrft mcp serve`: runs until Ctrl-C or SIGTERM (over stdio also until the host closes
/// stdin), then drains and exits.
pub async fn serve(args: McpServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    if config.transport == Transport::Stdio {
        return stdio::serve(&config).await;
    }
    let server = start(config).await?;
    let url = mcp_url(&server);
    tracing::info!(%url, db = %server.state.db.display(), "serving read-only MCP");
    eprintln!(
        "sqlrft MCP server on {url} (database {})",
        server.state.db.display()
    );
    eprintln!(
        "tutorial evaluator: MCP_SERVER_URL = \"{}\"",
        server.base_url()
    );
    server
        .run_until_signal(args.serve.print_url_to.as_deref())
        .await?;
    Ok(())
}
