//! `sqlrft reward serve`: the reward library ([`sqlrft_reward`]) over HTTP — scores SQL
//! completions by executing them and comparing the typed result with the ground truth.
//!
//! - `POST /v1/evaluate` takes the Fireworks evaluator shape `{messages, ground_truth,
//!   ...kwargs}` and answers `{score, reason, is_score_valid, metrics}`; `POST
//!   /v1/evaluate/batch` scores a GRPO group in one call; `/openapi.json` documents both.
//! - Settings come from flags, `[reward]` in sqlrft.toml and `SQLRFT_REWARD_*`
//!   ([`RewardServeArgs`] → [`RewardConfig`]); [`bench`] measures the service against the
//!   tutorial's evaluator.
//! - Scoring, executors and the gold cache are the library's; this crate reads requests and
//!   writes answers.

#![warn(missing_docs)]

pub mod bench;
mod config;
mod http;
pub mod openapi;
mod request;

use std::sync::Arc;

use sqlrft_reward::{EngineOptions, ExecutorSpec, RewardEngine};

pub use bench::{BenchArgs, Measurement, run_bench};
pub use config::{RewardConfig, RewardServeArgs};
pub use http::router;

/// Builds the engine the configuration asks for (embedded `db` or `mcp_url`).
pub fn build_engine(config: &RewardConfig) -> anyhow::Result<RewardEngine> {
    config.validate()?;
    let executor = match (&config.db, &config.mcp_url) {
        (Some(db), _) => ExecutorSpec::Embedded {
            db: db.clone(),
            pool: config.pool_options(),
        },
        (None, Some(url)) => ExecutorSpec::Mcp {
            url: url.clone(),
            token: config.mcp_token.clone(),
            timeout: config.eval_timeout(),
        },
        (None, None) => unreachable!("validate() requires one executor"),
    };
    Ok(RewardEngine::open(&EngineOptions {
        executor,
        gold_cache: config.gold_cache,
        eval_timeout: config.eval_timeout(),
    })?)
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
    let app = router(engine.clone(), &config);
    sqlrft_serve::Server::start(&config.host, config.port, app, engine).await
}

/// `sqlrft reward serve`: runs until Ctrl-C or SIGTERM, then drains and exits.
pub async fn serve(args: RewardServeArgs) -> anyhow::Result<()> {
    let config = args.resolve()?;
    let server = start(config).await?;
    let executor = server.state.executor().describe();
    tracing::info!(url = %server.base_url(), %executor, "serving rewards");
    eprintln!(
        "sqlrft reward service on {}/v1/evaluate (SQL runs on {executor})",
        server.base_url()
    );
    server
        .run_until_signal(args.serve.print_url_to.as_deref())
        .await?;
    Ok(())
}
