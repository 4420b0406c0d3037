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

use std::sync::Arc;

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

/// A reward service running in this process; `state` is its engine.
pub type RunningServer = sqlrft_serve::Server<Arc<RewardEngine>>;

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
    let listener = sqlrft_serve::bind(&config.host, config.port).await?;
    let app = router(engine.clone(), &config);
    Ok(sqlrft_serve::Server::spawn(
        listener,
        app,
        CancellationToken::new(),
        engine,
    ))
}

/// `sqlrft reward serve`: runs until Ctrl-C or SIGTERM, then drains and exits.
pub async fn serve(args: RewardServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let server = start(config).await?;
    if let Some(file) = &args.serve.print_url_to {
        sqlrft_serve::write_url_file(file, &server.base_url())?;
    }
    let executor = server.state.executor().describe();
    tracing::info!(url = %server.base_url(), %executor, "serving rewards");
    eprintln!(
        "sqlrft reward service on {}/v1/evaluate (SQL runs on {executor})",
        server.base_url()
    );
    server.run_until_signal().await?;
    Ok(())
}
