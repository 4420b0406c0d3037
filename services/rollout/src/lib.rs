//! sqlrft-rollout: `sqlrft rollout`, the rollout worker of the RL loop run as services. It
//! pulls prompts from the dataset (its shard), asks an OpenAI-compatible generation server
//! (vLLM, SGLang, `sqlrft model serve`) for G completions each with the newest policy adapter
//! the trainer published there, scores each group (in process or through the reward service),
//! computes group advantages, and keeps a bounded buffer of `RolloutBatch`es tagged with the
//! policy version that sampled them. Trainers (`sqlrft train --rollouts`) pull them over gRPC;
//! the same messages are served as JSON for `curl`. Many workers can run side by side.

#![warn(missing_docs)]

pub mod bench;
mod buffer;
mod config;
mod server;
mod worker;

pub use buffer::{BadPull, MAX_WAIT_MS, RolloutBuffer};
pub use config::{RolloutArgs, RolloutServeFlags, RolloutServiceConfig};
pub use server::router;
pub use worker::Worker;

use std::sync::Arc;

use anyhow::{Context, Result};
use sqlrft_trainer::generator::GeneratorClient;
use sqlrft_trainer::hub::{resolve_dataset, resolve_model};
use sqlrft_trainer::reward::RewardFunction;
use sqlrft_trainer::seed::{CHECK_SQL_REWARD, CheckSqlReward};
use sqlrft_trainer::tokenizer::ChatTokenizer;
use sqlrft_trainer::train::build_rewards;

/// A worker running in this process: its server, whose state is the buffer, and its loop.
pub struct RunningWorker {
    /// The API server.
    pub server: sqlrft_serve::Server<Arc<RolloutBuffer>>,
    /// The loop making batches; it ends when the server's cancel token fires.
    pub task: tokio::task::JoinHandle<Result<()>>,
}

impl RunningWorker {
    /// `http://host:port` of the API.
    pub fn base_url(&self) -> String {
        self.server.base_url()
    }

    /// Stops the loop and the server.
    pub async fn shutdown(self) -> Result<()> {
        self.server.cancel_token().cancel();
        let looped = self.task.await.context("the rollout loop panicked")?;
        self.server.shutdown().await?;
        looped
    }
}

/// Loads the tokenizer, the dataset shard and the rewards, connects to the generator, binds
/// the socket (port 0 picks a free one), and starts serving and making batches.
pub async fn start(args: &RolloutArgs) -> Result<RunningWorker> {
    start_with_rewards(args, Vec::new()).await
}

/// [`start`], with in-process reward functions that config entries of `kind = "custom"` select
/// by name.
pub async fn start_with_rewards(
    args: &RolloutArgs,
    custom: Vec<Arc<dyn RewardFunction>>,
) -> Result<RunningWorker> {
    let (service, cfg) = args.resolve()?;
    let hub = args.hub.client(None)?;
    let model_dir = resolve_model(&args.model, &hub).await?;
    let model = sqlrft_model::config::ModelConfig::load(&model_dir)?;
    let tokenizer = ChatTokenizer::load(&model_dir, &model.eos_token_ids)?;
    let dataset = resolve_dataset(&args.dataset, &hub).await?;
    let (index, count) = service.shard()?;
    let prompts: Vec<_> = sqlrft_trainer::data::load_jsonl(&dataset)?
        .into_iter()
        .enumerate()
        .filter(|(i, _)| i % count == index)
        .map(|(_, p)| p)
        .collect();
    for spec in cfg.rewards.iter().filter(|r| r.kind == CHECK_SQL_REWARD) {
        CheckSqlReward::new(spec.name.clone(), spec.database.clone())?.check_prompts(&prompts)?;
    }
    let rewards = build_rewards(&cfg.rewards, &custom)?;
    let generator_config = cfg.generator.clone().context("--generator is required")?;
    let generator = GeneratorClient::connect(&generator_config).await?;
    let name = service.worker_name();
    let buffer = Arc::new(RolloutBuffer::new(&name, service.buffer));
    let worker = Worker::new(
        name,
        cfg,
        tokenizer,
        generator,
        rewards,
        prompts,
        buffer.clone(),
    )?;
    let app = router(buffer.clone(), &service);
    let server = sqlrft_serve::Server::start(&service.host, service.port, app, buffer).await?;
    let task = tokio::spawn(worker.run(server.cancel_token()));
    Ok(RunningWorker { server, task })
}

/// `sqlrft rollout`: runs until Ctrl-C or SIGTERM, then stops making batches and exits.
pub async fn serve(args: RolloutArgs) -> Result<()> {
    let running = start(&args).await?;
    let url = running.base_url();
    let name = running.server.state.status().worker;
    tracing::info!(%url, worker = %name, "rollout worker serving");
    eprintln!(
        "sqlrft rollout worker `{name}` on {url} (gRPC sqlrft.v1.Rollouts, JSON /v1/rollouts/*)"
    );
    let RunningWorker { server, task } = running;
    server
        .run_until_signal(config::url_file(&args).as_deref())
        .await?;
    task.await.context("the rollout loop panicked")?
}
