//! `sqlrft bench rollout`: the RL loop as services with a stub generator at a fixed latency —
//! rollout workers sample on it and score, a trainer pulls their batches over gRPC, publishes
//! each policy adapter and updates a real model. It measures what the service split costs:
//! whether the trainer ever waits while generation capacity exceeds its update rate, and how
//! much of a step the queue, the serialisation and the transport take (goal: ≤ 5%).

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use axum::extract::State;
use axum::routing::{get, post};
use axum::{Json, Router};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sqlrft_proto::v1::{ChatMessage, Prompt};
use sqlrft_trainer::generator::{GeneratorConfig, RemoteGenerator};
use sqlrft_trainer::train::{Trainer, load_cpu_backend};
use sqlrft_trainer::workers::RolloutWorkers;

use crate::{RolloutArgs, RunningWorker, start};

/// `sqlrft bench rollout` flags.
#[derive(Debug, Clone, Args)]
pub struct RolloutBenchArgs {
    /// The policy's model directory; default: a SmolLM2-135M-shaped model with random weights
    /// (what the update costs depends on the shape, not the values).
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Rollout workers, each with its own stub generator.
    #[arg(long, default_value_t = 2)]
    pub workers: usize,
    /// The stub generator's latency per request, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Prompts per step.
    #[arg(long, default_value_t = 2)]
    pub prompts: usize,
    /// Completions per prompt.
    #[arg(long, default_value_t = 4)]
    pub generations: usize,
    /// Tokens per completion.
    #[arg(long, default_value_t = 32)]
    pub completion_tokens: usize,
    /// Measured steps (one warm-up step runs first).
    #[arg(long, default_value_t = 3)]
    pub steps: usize,
    /// Batches each worker keeps ready.
    #[arg(long, default_value_t = 2)]
    pub buffer: usize,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct RolloutBenchReport {
    /// Rounds per second the workers can make together.
    pub capacity_rounds_per_second: f64,
    /// Mean wall time of a measured step (publish, pull, update).
    pub step_seconds: f64,
    /// Mean time of the update itself.
    pub update_seconds: f64,
    /// Share of the measured steps' wall time the trainer spent waiting for a batch.
    pub wait_fraction: f64,
    /// Mean time to pull a batch that was ready: queue, serialisation and transport.
    pub ready_pull_seconds: f64,
    /// Size of one batch on the wire.
    pub batch_bytes: usize,
}

impl RolloutBenchReport {
    /// Queue, serialisation and transport as a share of a step.
    pub fn overhead_fraction(&self) -> f64 {
        self.ready_pull_seconds / self.step_seconds
    }
}

/// The stub generator's state: which adapters are loaded.
#[derive(Clone)]
struct Stub {
    adapters: Arc<Mutex<BTreeSet<String>>>,
    latency: Duration,
    vocab: u32,
}

/// An OpenAI-compatible server that answers every completion after a fixed latency with random
/// token ids, and loads and unloads adapters by name.
async fn start_stub(latency: Duration, vocab: u32) -> Result<sqlrft_serve::Server<()>> {
    let stub = Stub {
        adapters: Arc::default(),
        latency,
        vocab,
    };
    let app = Router::new()
        .route("/v1/models", get(stub_models))
        .route("/v1/load_lora_adapter", post(stub_load))
        .route("/v1/unload_lora_adapter", post(stub_unload))
        .route("/v1/completions", post(stub_completions))
        .with_state(stub);
    sqlrft_serve::Server::start("127.0.0.1", 0, app, ()).await
}

async fn stub_models(State(stub): State<Stub>) -> Json<Value> {
    let mut data = vec![json!({"id": "stub", "object": "model", "parent": null})];
    for name in stub.adapters.lock().unwrap().iter() {
        data.push(json!({"id": name, "object": "model", "parent": "stub"}));
    }
    Json(json!({"object": "list", "data": data}))
}

async fn stub_load(State(stub): State<Stub>, Json(body): Json<Value>) -> &'static str {
    let name = body["lora_name"].as_str().unwrap_or_default().to_string();
    stub.adapters.lock().unwrap().insert(name);
    "ok"
}

async fn stub_unload(State(stub): State<Stub>, Json(body): Json<Value>) -> &'static str {
    let name = body["lora_name"].as_str().unwrap_or_default();
    stub.adapters.lock().unwrap().remove(name);
    "ok"
}

async fn stub_completions(State(stub): State<Stub>, Json(body): Json<Value>) -> Json<Value> {
    tokio::time::sleep(stub.latency).await;
    let prompts = body["prompt"].as_array().map_or(1, Vec::len);
    let n = body["n"].as_u64().unwrap_or(1) as usize;
    let tokens = body["max_tokens"].as_u64().unwrap_or(16) as usize;
    let mut rng = ChaCha8Rng::seed_from_u64(body["seed"].as_u64().unwrap_or(0));
    let choices: Vec<Value> = (0..prompts * n)
        .map(|index| {
            // Past the special tokens (ids 0–2 in the benchmark's tokenizers).
            let ids: Vec<String> = (0..tokens)
                .map(|_| format!("token_id:{}", rng.random_range(3..stub.vocab)))
                .collect();
            json!({"index": index, "text": "", "finish_reason": "length",
                   "logprobs": {"tokens": ids, "token_logprobs": vec![-2.0; tokens]}})
        })
        .collect();
    Json(json!({"object": "text_completion", "choices": choices}))
}

/// Prompts of the kind the trainer sees, in the dataset shape workers read.
fn prompts(n: usize) -> Vec<Prompt> {
    (0..n)
        .map(|i| Prompt {
            id: i.to_string(),
            messages: vec![ChatMessage {
                role: "user".into(),
                content: format!(
                    "Schema: CREATE TABLE orders_{i} (id INT, customer TEXT, total DOUBLE). \
                     How many orders over {i}0 dollars did each customer place?"
                ),
            }],
            ground_truth_json: "null".into(),
            ..Default::default()
        })
        .collect()
}

/// Runs the benchmark and prints its report.
pub async fn run_bench(args: &RolloutBenchArgs) -> Result<RolloutBenchReport> {
    if args.workers == 0 || args.steps == 0 || args.prompts == 0 || args.generations < 2 {
        bail!("--workers, --steps and --prompts must be at least 1 and --generations at least 2");
    }
    let dir = tempfile::tempdir()?;
    let prompts = prompts(args.prompts * 4);
    let dataset = dir.path().join("prompts.jsonl");
    let lines: Vec<String> = prompts
        .iter()
        .map(|p| json!({"id": p.id, "messages": p.messages}).to_string())
        .collect();
    std::fs::write(&dataset, lines.join("\n") + "\n")?;
    let model = match &args.model {
        Some(dir) => dir.clone(),
        None => {
            let model = dir.path().join("model");
            sqlrft_trainer::bench::write_random_smollm2(&model, &prompts)?;
            model
        }
    };
    let config = dir.path().join("sqlrft.toml");
    std::fs::write(
        &config,
        format!(
            "[train]\nprompts_per_step = {}\nmax_steps = {}\n[train.grpo]\nnum_generations = {}\n\
             [train.sampling]\nmax_new_tokens = {}\n[[train.rewards]]\nname = \"format\"\nkind = \"format\"\n",
            args.prompts,
            args.steps + 1,
            args.generations,
            args.completion_tokens
        ),
    )?;
    let (backend, tokenizer) =
        load_cpu_backend(&model, &sqlrft_trainer::train::TrainConfig::default())?;
    let vocab = tokenizer.vocab_size() as u32;
    drop((backend, tokenizer));
    let latency = Duration::from_millis(args.latency_ms);
    let stub = start_stub(latency, vocab).await?;
    let generator = format!("{}/v1", stub.base_url());

    let mut workers: Vec<RunningWorker> = Vec::new();
    for w in 0..args.workers {
        let line = [
            "rollout".to_string(),
            format!("--model={}", model.display()),
            format!("--dataset={}", dataset.display()),
            format!("--config={}", config.display()),
            format!("--generator={generator}"),
            "--generator-model=stub".into(),
            "--port=0".into(),
            format!("--name=bench-{w}"),
            format!("--shard={w}/{}", args.workers),
            format!("--buffer={}", args.buffer),
        ];
        let parsed = <BenchCli as clap::Parser>::try_parse_from(line)?;
        workers.push(start(&parsed.args).await?);
    }
    let urls: Vec<String> = workers.iter().map(RunningWorker::base_url).collect();

    let mut cfg = sqlrft_trainer::train::TrainConfig::load(Some(&config))?;
    cfg.generator = Some(GeneratorConfig {
        model: Some("stub".into()),
        ..GeneratorConfig::at(generator.clone())
    });
    let (backend, tokenizer) = load_cpu_backend(&model, &cfg)?;
    let model_config = sqlrft_model::backend::Backend::config(&backend).clone();
    let mut trainer = Trainer::new(backend, tokenizer, cfg.clone(), Vec::new(), Vec::new());
    let mut remote = RemoteGenerator::connect(
        cfg.generator.as_ref().context("generator")?,
        &cfg.lora,
        &model_config,
        dir.path(),
    )
    .await?;
    remote.retain_versions(cfg.max_staleness as usize + 1);
    trainer.use_generator(remote);
    let mut pull = RolloutWorkers::new(&urls)?;
    let stop = AtomicBool::new(false);

    let (mut measured, mut updates, mut waits) = (Duration::ZERO, Duration::ZERO, Duration::ZERO);
    for step in 0..=args.steps {
        let started = Instant::now();
        trainer.publish_policy().await?;
        let min = trainer.step.saturating_sub(cfg.max_staleness);
        let pulled = pull
            .pull(min, trainer.step, &stop, |_| {})
            .await?
            .context("the pull stopped")?;
        let pulled_at = Instant::now();
        trainer.update_from(pulled.batch, pulled_at, true)?;
        // The first step waits for the workers' first rounds and warms the model up.
        if step > 0 {
            measured += started.elapsed();
            updates += pulled_at.elapsed();
            waits += pulled.waited;
        }
    }
    // Batches that are ready when asked for: all their pull costs is the service split.
    for worker in &workers {
        while worker.server.state.status().buffered == 0 {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
    let mut ready = Duration::ZERO;
    let mut batch_bytes = 0;
    for _ in 0..args.workers {
        let started = Instant::now();
        let pulled = pull
            .pull(0, 0, &stop, |_| {})
            .await?
            .context("the pull stopped")?;
        ready += started.elapsed();
        batch_bytes = prost::Message::encoded_len(&pulled.batch);
    }
    for worker in workers {
        worker.shutdown().await?;
    }
    stub.shutdown().await?;

    let steps = args.steps as f64;
    let report = RolloutBenchReport {
        capacity_rounds_per_second: args.workers as f64 / latency.as_secs_f64().max(1e-3),
        step_seconds: measured.as_secs_f64() / steps,
        update_seconds: updates.as_secs_f64() / steps,
        // A pull of a ready batch is not waiting; what a pull took beyond that is.
        wait_fraction: (waits.as_secs_f64() - steps * ready.as_secs_f64() / args.workers as f64)
            .max(0.0)
            / measured.as_secs_f64(),
        ready_pull_seconds: ready.as_secs_f64() / args.workers as f64,
        batch_bytes,
    };
    print_report(args, &report);
    Ok(report)
}

#[derive(clap::Parser)]
struct BenchCli {
    #[command(flatten)]
    args: RolloutArgs,
}

fn print_report(args: &RolloutBenchArgs, r: &RolloutBenchReport) {
    let model = args
        .model
        .as_ref()
        .map_or("a random SmolLM2-135M-shaped model".to_string(), |m| {
            m.display().to_string()
        });
    println!(
        "sqlrft bench rollout: {} worker(s), a stub generator answering in {} ms, {} prompts × {} \
         completions × {} tokens per step, {model}, {} measured steps",
        args.workers,
        args.latency_ms,
        args.prompts,
        args.generations,
        args.completion_tokens,
        args.steps
    );
    println!(
        "  generation capacity    {:.2} rounds/s ({} worker(s) / {} ms)",
        r.capacity_rounds_per_second, args.workers, args.latency_ms
    );
    println!(
        "  update rate            {:.2} steps/s ({:.3} s per step, of which the update {:.3} s)",
        1.0 / r.step_seconds,
        r.step_seconds,
        r.update_seconds
    );
    let verdict = if r.capacity_rounds_per_second > 1.0 / r.step_seconds {
        "capacity exceeds the update rate: the goal is 0%"
    } else {
        "generation is the bottleneck here: add workers"
    };
    println!(
        "  trainer waiting        {:.1}% of the measured wall time ({verdict})",
        100.0 * r.wait_fraction
    );
    println!(
        "  queue + serialisation  {:.2} ms per batch of {:.1} KiB = {:.2}% of a step (goal ≤ 5%)",
        1e3 * r.ready_pull_seconds,
        r.batch_bytes as f64 / 1024.0,
        100.0 * r.overhead_fraction()
    );
}
