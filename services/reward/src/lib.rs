//! `sqlrft reward serve`: scores SQL completions by executing them and comparing the typed
//! result with the ground truth — the reward for reinforcement fine-tuning.
//!
//! - HTTP: `POST /v1/evaluate` takes the Fireworks evaluator shape `{messages, ground_truth,
//!   ...kwargs}` and answers `{score, reason, is_score_valid, metrics}`; `POST
//!   /v1/evaluate/batch` scores a GRPO group in one call; `/openapi.json` documents both.
//! - In process: [`RewardEngine::score_group`] for the trainer.
//! - SQL runs embedded on a DuckDB file ([`EmbeddedExecutor`]) or through the MCP server's
//!   `query` tool with typed `structuredContent` ([`McpExecutor`]); results are the same.
//! - The comparison and the reward maths live in `sqlrft-core` (`compare`, `score`).

pub mod bench;
mod config;
mod engine;
mod executor;
mod http;
pub mod openapi;
mod request;

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

pub use bench::{BenchArgs, run_bench};
pub use config::{RewardConfig, RewardServeArgs};
pub use engine::{Gold, RewardEngine};
pub use executor::{EmbeddedExecutor, ExecError, McpExecutor, SqlExecutor, mcp_endpoint};
pub use http::router;
pub use request::{BadRequest, BatchRequest, EvaluateRequest, GroundTruths};

/// Builds the engine the configuration asks for (embedded `db` or `mcp_url`).
pub fn build_engine(config: &RewardConfig) -> anyhow::Result<RewardEngine> {
    config.validate()?;
    let executor: Arc<dyn SqlExecutor> = match (&config.db, &config.mcp_url) {
        (Some(db), _) => Arc::new(EmbeddedExecutor::open(db, config.pool_options())?),
        (None, Some(url)) => Arc::new(McpExecutor::new(
            url,
            config.mcp_token.clone(),
            config.eval_timeout(),
        )),
        (None, None) => unreachable!("validate() requires one executor"),
    };
    let mut engine = RewardEngine::new(executor, config.gold_cache)?;
    engine.eval_timeout = config.eval_timeout();
    Ok(engine)
}

/// A reward service running in this process.
pub struct RunningServer {
    pub addr: SocketAddr,
    pub engine: Arc<RewardEngine>,
    cancel: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl RunningServer {
    /// `http://host:port`, the base of every route.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.cancel.cancel();
        self.task.await.unwrap_or(Ok(()))
    }

    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Waits until the server stops.
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }
}

/// Builds the engine, binds the socket (port 0 picks a free one) and serves in the background.
pub async fn start(config: RewardConfig) -> anyhow::Result<RunningServer> {
    let engine = Arc::new(build_engine(&config)?);
    start_with_engine(config, engine).await
}

/// Serves an engine built elsewhere (tests and benchmarks share one).
pub async fn start_with_engine(
    config: RewardConfig,
    engine: Arc<RewardEngine>,
) -> anyhow::Result<RunningServer> {
    let listener = tokio::net::TcpListener::bind((config.host.as_str(), config.port))
        .await
        .with_context(|| {
            format!(
                "could not listen on {}:{}; is the port in use? pick another with --port",
                config.host, config.port
            )
        })?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY a keep-alive client waits ~40 ms on delayed ACKs per request.
    let listener = listener.tap_io(|tcp| {
        if let Err(err) = tcp.set_nodelay(true) {
            tracing::warn!(%err, "could not set TCP_NODELAY");
        }
    });
    let cancel = CancellationToken::new();
    let app = router(engine.clone(), &config);
    let stop = cancel.clone();
    let task = tokio::spawn(async move {
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.cancelled().await })
            .await
    });
    Ok(RunningServer {
        addr,
        engine,
        cancel,
        task,
    })
}

/// `sqlrft reward serve`: runs until Ctrl-C or SIGTERM, then drains and exits.
pub async fn serve(args: RewardServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let server = start(config).await?;
    if let Some(file) = &args.print_url_to {
        let partial = file.with_extension("partial");
        std::fs::write(&partial, server.base_url())
            .and_then(|()| std::fs::rename(&partial, file))
            .with_context(|| format!("could not write the server URL to `{}`", file.display()))?;
    }
    let executor = server.engine.executor().describe();
    tracing::info!(url = %server.base_url(), %executor, "serving rewards");
    eprintln!(
        "sqlrft reward service on {}/v1/evaluate (SQL runs on {executor})",
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
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = ctrl_c => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = ctrl_c.await;
            }
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
}
