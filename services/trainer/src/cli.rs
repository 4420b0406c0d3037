//! Entry points the `sqlrft` binary calls: `sqlrft train`, `sqlrft train export` and
//! `sqlrft publish model`, each a clap `Args` struct and a `run_*` function.

use crate::card::{CardInputs, write_model_card};
use crate::checkpoint;
use crate::device::Device;
use crate::export::{ExportOptions, export_adapter_dir, export_model_dir};
use crate::generator::{GeneratorConfig, RemoteGenerator};
use crate::hub::{resolve_dataset, resolve_model};
use crate::metrics::{self, RolloutMetrics, StepMetrics};
use crate::reward::RewardFunction;
use crate::seed::{CHECK_SQL_REWARD, CheckSqlReward, seed_reward_specs};
use crate::sft::{SftOutcome, SftRun};
use crate::train::{
    RewardSpec, TrainConfig, Trainer, build_rewards, load_backend, load_cpu_backend,
};
use crate::workers::{Pulled, RolloutWorkers};
use anyhow::{Context, Result, bail};
use sqlrft_model::backend::Backend;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::params::SaveDtype;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

/// `sqlrft train`: GRPO fine-tuning on a dataset built by `sqlrft build` / `sqlrft distill`.
#[derive(clap::Args, Debug, Clone)]
pub struct TrainArgs {
    /// Base model: a Hugging Face model directory or a Hub repo id (downloaded with HF_TOKEN).
    #[arg(long)]
    pub model: String,
    /// Prompts: a dataset JSONL, or a Hub dataset `owner/name[:file.jsonl]` (with --rollouts the
    /// workers read the prompts, and this only feeds --sft-epochs).
    #[arg(long, required_unless_present = "rollouts")]
    pub dataset: Option<String>,
    /// Run directory: checkpoints, metrics.jsonl, training_curve.png.
    #[arg(long, default_value = "runs/train")]
    pub output_dir: PathBuf,
    /// Training settings: the [train] table of this TOML file, or the whole file when it has
    /// none (a standalone config such as services/trainer/configs/seed.toml) [default: [train]
    /// of ./sqlrft.toml if present; unset settings are TRL 1.16's GRPOConfig defaults].
    /// SQLRFT_TRAIN_<KEY> variables override the file, flags override both.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Continue from the run directory's latest checkpoint; a directory without one starts the
    /// run, so a restarted container or Job can pass the same flags as its first start.
    #[arg(long)]
    pub resume: bool,
    /// Override `max_steps`.
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Override `save_steps`.
    #[arg(long)]
    pub save_steps: Option<u64>,
    /// Pull scored batches from these rollout workers (`sqlrft rollout`) instead of sampling and
    /// scoring here: their URLs, comma-separated; a host name that resolves to several
    /// addresses (a Kubernetes headless service) stands for each. Needs --generator, where each
    /// policy version is published for the workers.
    #[arg(long, value_name = "URL,…", value_delimiter = ',')]
    pub rollouts: Vec<String>,
    /// With --rollouts: drop batches sampled by a policy more than N optimizer steps behind
    /// (`max_staleness`, default 1; 0 is on-policy only).
    #[arg(long, value_name = "N")]
    pub max_staleness: Option<u64>,
    /// How rounds are sampled and scored.
    #[command(flatten)]
    pub round: RoundArgs,
    /// Run this many SFT epochs on --sft-dataset first, then GRPO from the tuned weights (the
    /// seed runs 2); overrides `sft.epochs`.
    #[arg(long)]
    pub sft_epochs: Option<u64>,
    /// Conversations for the SFT stage: a `{messages}` or `sqlrft distill` JSONL, or a Hub
    /// dataset (default: --dataset, whose rows carry the answers).
    #[arg(long)]
    pub sft_dataset: Option<String>,
    /// Token limit per SFT sequence; overrides `sft.max_length` (TRL's SFTConfig `max_length`).
    #[arg(long)]
    pub sft_max_length: Option<usize>,
    /// Where the model runs: auto (the GPU when a CUDA driver and device are found, else the
    /// CPU), cpu, or cuda (fails without a GPU); overrides `device`.
    #[arg(long, value_enum)]
    pub device: Option<Device>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Where base models and Hub datasets are downloaded from.
    #[command(flatten)]
    pub hub: sqlrft_hub::HubArgs,
}

/// How a generation round is sampled and scored: the flags `sqlrft train` and `sqlrft
/// rollout` share, over the training settings file.
#[derive(clap::Args, Debug, Clone, Default)]
pub struct RoundArgs {
    /// Override `seed`.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Score completions by running their SQL on this sandbox DuckDB file in process: the
    /// config's `execution` reward runs here (one with weight 1 is added if there is none).
    #[arg(long, conflicts_with = "reward_url")]
    pub sandbox: Option<PathBuf>,
    /// Score completions with the reward service at this URL instead (`sqlrft reward serve`):
    /// the config's `execution` reward calls it (one with weight 1 is added if there is none).
    #[arg(long, env = "SQLRFT_REWARD_URL")]
    pub reward_url: Option<String>,
    /// Sample completions on this OpenAI-compatible server instead of in this process: its
    /// `/v1` base URL (vLLM with --enable-lora, or `sqlrft model serve DIR --enable-lora`). The
    /// trainer writes each policy adapter under `<output-dir>/policy-adapters` and loads it there
    /// before sampling with it; rollout workers sample with the newest one it lists
    /// (`[train.generator]` sets more).
    #[arg(long, value_name = "URL")]
    pub generator: Option<String>,
    /// The base model's name on the --generator server (default: the first base model its
    /// /v1/models lists).
    #[arg(long, value_name = "NAME", requires = "generator")]
    pub generator_model: Option<String>,
    /// Reward set: `execution` (result comparison on the sandbox, the default, with --sandbox or
    /// --reward-url) or `seed` (the seed project's match_format_exactly,
    /// match_format_approximately and check_sql_reward, weight 1 each). Replaces the config's
    /// [[rewards]].
    #[arg(long, value_enum)]
    pub rewards: Option<RewardPreset>,
    /// TRL's most-set GRPOConfig options; each wins over the config file.
    #[command(flatten)]
    pub trl: TrlFlags,
}

/// A named set of rewards (`--rewards`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum RewardPreset {
    /// Our execution reward: the completion's result against the ground truth.
    Execution,
    /// The seed project's three rewards.
    Seed,
}

/// TRL-named flags over the TOML config (`GRPOConfig` / `LoraConfig` names with dashes).
#[derive(clap::Args, Debug, Clone, Default)]
pub struct TrlFlags {
    /// Completions per prompt (`grpo.num_generations`).
    #[arg(long)]
    pub num_generations: Option<usize>,
    /// KL coefficient (`grpo.beta`).
    #[arg(long)]
    pub beta: Option<f64>,
    /// Clip range (`grpo.epsilon`).
    #[arg(long)]
    pub epsilon: Option<f64>,
    /// Loss aggregation (`grpo.loss_type`).
    #[arg(long, value_enum)]
    pub loss_type: Option<crate::grpo::LossType>,
    /// Advantage scaling (`grpo.scale_rewards`).
    #[arg(long, value_enum)]
    pub scale_rewards: Option<crate::grpo::ScaleRewards>,
    /// Peak learning rate (`optim.learning_rate`).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// LoRA rank (`lora.rank`).
    #[arg(long)]
    pub lora_r: Option<usize>,
    /// LoRA alpha (`lora.alpha`).
    #[arg(long)]
    pub lora_alpha: Option<f32>,
    /// New tokens per completion (`sampling.max_new_tokens`).
    #[arg(long)]
    pub max_completion_length: Option<usize>,
    /// Sampling temperature (`sampling.temperature`).
    #[arg(long)]
    pub temperature: Option<f32>,
}

impl TrlFlags {
    /// Writes each given flag over `cfg`.
    pub fn apply(&self, cfg: &mut TrainConfig) {
        fn set<T: Clone>(field: &mut T, flag: &Option<T>) {
            if let Some(v) = flag {
                *field = v.clone();
            }
        }
        set(&mut cfg.grpo.num_generations, &self.num_generations);
        set(&mut cfg.grpo.beta, &self.beta);
        set(&mut cfg.grpo.epsilon, &self.epsilon);
        set(&mut cfg.grpo.loss_type, &self.loss_type);
        set(&mut cfg.grpo.scale_rewards, &self.scale_rewards);
        set(&mut cfg.optim.learning_rate, &self.learning_rate);
        set(&mut cfg.lora.rank, &self.lora_r);
        set(&mut cfg.lora.alpha, &self.lora_alpha);
        set(
            &mut cfg.sampling.max_new_tokens,
            &self.max_completion_length,
        );
        set(&mut cfg.sampling.temperature, &self.temperature);
    }
}

/// Whether a reward entry runs the completion's SQL (and so needs a database or service).
fn runs_sql(spec: &RewardSpec) -> bool {
    matches!(spec.kind.as_str(), "execution" | CHECK_SQL_REWARD) || spec.name == "execution"
}

impl TrainArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut cfg = TrainConfig::load(self.config.as_deref())?;
        if let Some(v) = self.max_steps {
            cfg.max_steps = v;
        }
        if let Some(v) = self.save_steps {
            cfg.save_steps = v;
        }
        if let Some(v) = self.sft_epochs {
            cfg.sft.epochs = v;
        }
        if let Some(v) = self.sft_max_length {
            cfg.sft.max_length = v;
        }
        if !self.rollouts.is_empty() {
            cfg.rollouts = self.rollouts.clone();
        }
        if let Some(v) = self.max_staleness {
            cfg.max_staleness = v;
        }
        if let Some(v) = self.device {
            cfg.device = v;
        }
        self.round.apply(&mut cfg)?;
        cfg.validate()?;
        Ok(cfg)
    }
}

impl RoundArgs {
    /// Writes the given flags over `cfg` (the caller validates the result).
    pub fn apply(&self, cfg: &mut TrainConfig) -> Result<()> {
        if let Some(v) = self.seed {
            cfg.seed = v;
        }
        self.trl.apply(cfg);
        if let Some(url) = &self.generator {
            let generator = cfg
                .generator
                .get_or_insert_with(|| GeneratorConfig::at(url.clone()));
            generator.url = url.clone();
        }
        if let (Some(name), Some(generator)) = (&self.generator_model, cfg.generator.as_mut()) {
            generator.model = Some(name.clone());
        }
        match self.rewards {
            Some(RewardPreset::Seed) => cfg.rewards = seed_reward_specs(),
            Some(RewardPreset::Execution) => {
                cfg.rewards = vec![RewardSpec::new("execution", "execution")]
            }
            None => {}
        }
        // The sandbox is also where check_sql_reward runs rows that carry no sql_context.
        if let Some(database) = &self.sandbox {
            for spec in cfg.rewards.iter_mut() {
                if spec.kind == CHECK_SQL_REWARD && spec.database.is_none() {
                    spec.database = Some(database.clone());
                }
            }
        }
        // The flags say where the `execution` reward runs its SQL, over what the config says.
        let executor = match (&self.sandbox, &self.reward_url) {
            (Some(database), _) => Some(RewardSpec {
                database: Some(database.clone()),
                ..RewardSpec::new("execution", "execution")
            }),
            (None, Some(url)) => Some(RewardSpec {
                url: Some(url.clone()),
                ..RewardSpec::new("execution", "http")
            }),
            (None, None) => None,
        };
        if let Some(executor) = executor {
            let runs_sql_already = cfg.rewards.iter().any(runs_sql);
            let names = cfg
                .rewards
                .iter()
                .map(|r| r.name.as_str())
                .collect::<Vec<_>>()
                .join(", ");
            match cfg.rewards.iter_mut().find(|r| r.name == "execution") {
                Some(configured) => {
                    configured.kind = executor.kind;
                    configured.database = executor.database;
                    configured.url = executor.url;
                }
                // The seed's rewards run SQL themselves; the sandbox serves them.
                None if runs_sql_already && executor.kind == "execution" => {}
                None if runs_sql_already => bail!(
                    "--reward-url: the rewards ({names}) have no `execution` entry to send to \
                     the service; add one, or use --rewards execution"
                ),
                None => cfg.rewards.push(executor),
            }
        }
        Ok(())
    }
}

/// A flag that Ctrl-C or SIGTERM sets, so the loop can checkpoint before exiting. The handlers
/// are installed before this returns (a signal right after is not lost); a second Ctrl-C while
/// the checkpoint is written still only sets the flag. Needs a tokio runtime.
pub fn stop_flag() -> Result<Arc<AtomicBool>> {
    let flag = Arc::new(AtomicBool::new(false));
    let f = flag.clone();
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let mut term =
            signal(SignalKind::terminate()).context("could not install the SIGTERM handler")?;
        let mut int =
            signal(SignalKind::interrupt()).context("could not install the Ctrl-C handler")?;
        tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = int.recv() => {}
                }
                tracing::warn!("stop requested: finishing this round and checkpointing");
                f.store(true, Ordering::SeqCst);
            }
        });
    }
    #[cfg(not(unix))]
    tokio::spawn(async move {
        while tokio::signal::ctrl_c().await.is_ok() {
            f.store(true, Ordering::SeqCst);
        }
    });
    Ok(flag)
}

/// Runs `sqlrft train` with the built-in reward kinds only.
pub async fn run_train(args: TrainArgs) -> Result<()> {
    run_train_with_rewards(args, vec![]).await
}

/// Runs `sqlrft train`; `custom` supplies in-process reward functions that config entries of
/// `kind = "custom"` select by name (e.g. the execution reward against the sandbox DuckDB).
pub async fn run_train_with_rewards(
    args: TrainArgs,
    custom: Vec<Arc<dyn RewardFunction>>,
) -> Result<()> {
    run_train_until(args, custom, stop_flag()?).await
}

/// `run_train_with_rewards` with an explicit stop flag (tests set it to interrupt a run).
pub async fn run_train_until(
    args: TrainArgs,
    custom: Vec<Arc<dyn RewardFunction>>,
    stop: Arc<AtomicBool>,
) -> Result<()> {
    let cfg = args.config()?;
    let hub = args.hub.client(None)?;
    let model_dir = resolve_model(&args.model, &hub).await?;
    let dataset = match &args.dataset {
        Some(dataset) => Some(resolve_dataset(dataset, &hub).await?),
        None => None,
    };
    // With rollout workers the prompts and the scoring are theirs.
    let pulls_rollouts = !cfg.rollouts.is_empty();
    let (prompts, rewards) = match &dataset {
        Some(dataset) if !pulls_rollouts => {
            let prompts = crate::data::load_jsonl(dataset)?;
            for spec in cfg.rewards.iter().filter(|r| r.kind == CHECK_SQL_REWARD) {
                CheckSqlReward::new(spec.name.clone(), spec.database.clone())?
                    .check_prompts(&prompts)?;
            }
            (prompts, build_rewards(&cfg.rewards, &custom)?)
        }
        _ => (Vec::new(), Vec::new()),
    };
    let (mut backend, tokenizer) = load_backend(&model_dir, &cfg)?;
    let out = &args.output_dir;
    std::fs::create_dir_all(out)
        .with_context(|| format!("could not create run directory `{}`", out.display()))?;
    let existing = checkpoint::latest(out)?;
    // The seed's recipe: SFT epochs first (in `<run>/sft`, resumable), then GRPO from there.
    // A GRPO checkpoint holds everything, so once one exists the SFT stage is over.
    if cfg.sft.epochs > 0 && existing.is_none() {
        let sft_data = match (&args.sft_dataset, &dataset) {
            (Some(d), _) => resolve_dataset(d, &hub).await?,
            (None, Some(dataset)) => dataset.clone(),
            (None, None) => bail!("--sft-epochs needs --sft-dataset (or --dataset) to train on"),
        };
        let rows = crate::sft::load_rows(&sft_data)?;
        let examples = crate::sft::prepare(&tokenizer, &rows, &cfg.sft)?;
        let sft_dir = out.join("sft");
        let outcome = crate::sft::run_sft(
            &mut backend,
            &examples,
            &SftRun {
                output_dir: &sft_dir,
                model: &args.model,
                config: &cfg,
                epochs: cfg.sft.epochs,
                max_grad_norm: cfg.optim.max_grad_norm,
                resume: args.resume,
                quiet: args.quiet,
                stop: stop.clone(),
            },
        )?;
        if let SftOutcome::Interrupted { .. } = outcome {
            return Ok(());
        }
        crate::sft::reset_optimizer(&mut backend)?;
    }
    let mut trainer = Trainer::new(backend, tokenizer, cfg.clone(), prompts, rewards);
    let metrics_path = out.join("metrics.jsonl");
    match (&existing, args.resume) {
        (Some(dir), true) => {
            trainer.restore(dir)?;
            metrics::truncate_jsonl(&metrics_path, trainer.step)?;
            tracing::info!(checkpoint = %dir.display(), step = trainer.step, "resumed");
        }
        // As SFT does: a restarted container or Job passes the same flags as its first start.
        (None, true) => {
            tracing::info!(output_dir = %out.display(), "--resume: no checkpoint yet, starting the run");
            if metrics_path.exists() && cfg.sft.epochs == 0 {
                std::fs::remove_file(&metrics_path)?;
            }
        }
        (Some(_), false) => bail!(
            "`{}` already holds checkpoints; pass --resume to continue that run or choose another --output-dir",
            out.display()
        ),
        (None, false) => {
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path)?;
            }
        }
    }
    let bar = if args.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(cfg.max_steps)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .expect("valid progress template"),
    );
    if let Some(generator) = &cfg.generator {
        let model = trainer.backend.config().clone();
        let mut remote = RemoteGenerator::connect(generator, &cfg.lora, &model, out).await?;
        // Rollout workers may still sample with any version the trainer would accept a batch of;
        // in process, only the trainer samples, with the newest.
        if pulls_rollouts {
            remote.retain_versions(cfg.max_staleness as usize + 1);
        }
        trainer.use_generator(remote);
    }
    let mut workers = if pulls_rollouts {
        let token = std::env::var(crate::workers::TOKEN_VARIABLE).ok();
        Some(RolloutWorkers::new(&cfg.rollouts)?.with_token(token.as_deref())?)
    } else {
        None
    };
    bar.set_position(trainer.step);
    let mut last_saved = trainer.step;
    while trainer.step < cfg.max_steps {
        // A round is long CPU/GPU work without await points; yielding here lets the signal
        // listener (and anything else on this runtime) run between rounds.
        tokio::task::yield_now().await;
        if stop.load(Ordering::SeqCst) {
            let dir = trainer.save_checkpoint(out, &args.model)?;
            bar.abandon_with_message(format!("interrupted; checkpoint {}", dir.display()));
            plot(out)?;
            return Ok(());
        }
        let before = trainer.step;
        let steps = match &mut workers {
            None => trainer.train_round().await?,
            Some(workers) => {
                trainer.publish_policy().await?;
                let min = trainer.step.saturating_sub(cfg.max_staleness);
                let waiting = |line: &str| bar.set_message(line.to_string());
                let Some(pulled) = workers.pull(min, trainer.step, &stop, waiting).await? else {
                    continue;
                };
                train_on_pulled(&mut trainer, pulled)?
            }
        };
        for m in &steps {
            metrics::append_jsonl(&metrics_path, m)?;
            bar.set_position(m.step);
            bar.set_message(format!(
                "reward {:.3}  loss {:.4}  kl {:.4}",
                m.reward, m.loss, m.kl
            ));
        }
        let crossed_save =
            cfg.save_steps > 0 && trainer.step / cfg.save_steps > before / cfg.save_steps;
        if crossed_save {
            let dir = trainer.save_checkpoint(out, &args.model)?;
            tracing::info!(step = trainer.step, checkpoint = %dir.display(), "checkpoint saved");
            last_saved = trainer.step;
            plot(out)?;
        }
    }
    if last_saved != trainer.step {
        trainer.save_checkpoint(out, &args.model)?;
    }
    plot(out)?;
    bar.finish_with_message(format!(
        "done: {} steps, run in {}",
        trainer.step,
        out.display()
    ));
    Ok(())
}

/// One update on a batch a rollout worker made, with where it came from in the metrics.
fn train_on_pulled<B: Backend>(
    trainer: &mut Trainer<B>,
    pulled: Pulled,
) -> Result<Vec<StepMetrics>> {
    let Pulled {
        batch,
        status,
        waited,
    } = pulled;
    let rollout = RolloutMetrics {
        batch: batch.id.clone(),
        worker: batch.worker.clone(),
        policy_lag: trainer.step.saturating_sub(batch.policy_version),
        buffer_depth: status.buffered,
        wait_seconds: waited.as_secs_f64(),
        generation_tokens_per_second: batch.generated_tokens as f64
            / batch.generation_seconds.max(1e-9),
        dropped_invalid_groups: batch.dropped_invalid_groups,
        dropped_stale_batches: status.batches_dropped_stale,
    };
    let mut steps = trainer.update_from(batch, std::time::Instant::now(), true)?;
    for step in &mut steps {
        // The round's sampling happened on the worker: its rate is the one to report.
        step.tokens_per_second = rollout.generation_tokens_per_second;
        step.rollout = Some(rollout.clone());
    }
    Ok(steps)
}

fn plot(out: &Path) -> Result<()> {
    let path = out.join("metrics.jsonl");
    if !path.exists() {
        return Ok(());
    }
    metrics::plot_png(
        &out.join("training_curve.png"),
        &metrics::read_jsonl(&path)?,
    )
}

/// `sqlrft train export`: merge a checkpoint's adapter into the base and write a Hugging Face
/// model directory.
#[derive(clap::Args, Debug, Clone)]
pub struct ExportArgs {
    /// Run directory whose latest checkpoint to export.
    #[arg(long, default_value = "runs/train", conflicts_with = "checkpoint")]
    pub output_dir: PathBuf,
    /// A specific checkpoint directory (`<run>/checkpoints/step-000100`).
    #[arg(long)]
    pub checkpoint: Option<PathBuf>,
    /// Base model (defaults to the one the run was trained from).
    #[arg(long)]
    pub model: Option<String>,
    /// Where to write the model directory (or, with --adapter, the adapter directory).
    #[arg(long)]
    pub out: PathBuf,
    /// Weight dtype on disk (defaults to the base model's `torch_dtype`).
    #[arg(long, value_enum)]
    pub dtype: Option<SaveDtype>,
    /// Write the LoRA adapter alone, in PEFT's format, instead of a merged model.
    #[arg(long)]
    pub adapter: bool,
    /// Largest weight file in bytes; a bigger model is written as safetensors shards with
    /// `model.safetensors.index.json`, as transformers saves it.
    #[arg(long, default_value_t = crate::export::DEFAULT_MAX_SHARD_BYTES, value_name = "BYTES")]
    pub max_shard_bytes: u64,
    /// Where the base model is downloaded from.
    #[command(flatten)]
    pub hub: sqlrft_hub::HubArgs,
}

/// Runs `sqlrft train export`.
pub async fn run_export(args: ExportArgs) -> Result<()> {
    let ckpt = match &args.checkpoint {
        Some(c) => c.clone(),
        None => checkpoint::latest(&args.output_dir)?.with_context(|| {
            format!(
                "`{}` has no checkpoint; train first or pass --checkpoint",
                args.output_dir.display()
            )
        })?,
    };
    let state_text = std::fs::read_to_string(ckpt.join("state.json")).with_context(|| {
        format!(
            "`{}` is not a checkpoint directory (no state.json)",
            ckpt.display()
        )
    })?;
    let meta: checkpoint::CheckpointState = serde_json::from_str(&state_text)?;
    let cfg: TrainConfig = serde_json::from_value(meta.config.clone())
        .context("checkpoint's training config does not parse")?;
    let model = args.model.clone().unwrap_or(meta.model.clone());
    let model_dir = resolve_model(&model, &args.hub.client(None)?).await?;
    let (mut backend, _) = load_cpu_backend(&model_dir, &cfg)?;
    let (state, _) = checkpoint::load(&ckpt, backend.trainable_layout())?;
    backend.load_trainable_state(state)?;
    if args.adapter {
        let (layout, data) = backend.model.lora.as_ref().with_context(|| {
            format!(
                "checkpoint `{}` trained every weight: it has no adapter; export without --adapter",
                ckpt.display()
            )
        })?;
        export_adapter_dir(layout, data, &cfg.lora, &model, &args.out)?;
        eprintln!(
            "exported the step {} adapter of `{}` to {}",
            meta.step,
            model,
            args.out.display()
        );
        return Ok(());
    }
    let mc: &ModelConfig = backend.config();
    let dtype = args
        .dtype
        .unwrap_or_else(|| SaveDtype::from_torch(mc.torch_dtype.as_deref()));
    let options = ExportOptions {
        dtype,
        max_shard_bytes: args.max_shard_bytes,
        provenance: Some(serde_json::json!({
            "base_model": model,
            "step": meta.step,
            "lora": meta.lora,
            "training": meta.config,
        })),
    };
    export_model_dir(
        &model_dir,
        mc,
        &backend.merged_weights()?,
        &args.out,
        &options,
    )?;
    eprintln!(
        "exported step {} of `{}` to {}",
        meta.step,
        model,
        args.out.display()
    );
    Ok(())
}

/// `sqlrft publish model`: upload an exported model directory to the Hugging Face Hub.
#[derive(clap::Args, Debug, Clone)]
pub struct PublishModelArgs {
    /// Model directory written by `sqlrft train export`.
    #[arg(long)]
    pub dir: PathBuf,
    /// Target repo, `owner/name`.
    #[arg(long)]
    pub repo_id: String,
    /// Create the repo as private.
    #[arg(long)]
    pub private: bool,
    /// Training dataset named in the model card (a Hub dataset id links the two).
    #[arg(long)]
    pub dataset: Option<String>,
    /// `sqlrft eval`'s JSON report (`results.json`): its accuracies go into the model card.
    #[arg(long, value_name = "FILE")]
    pub eval_report: Option<PathBuf>,
    /// Licence in the model card's metadata.
    #[arg(long, default_value = "apache-2.0")]
    pub license: String,
    /// Where the model is uploaded (`--hub-*`, `[hub]`).
    #[command(flatten)]
    pub hub: sqlrft_hub::HubArgs,
}

/// Checks that `dir` is a complete model directory (one weight file or a sharded index)
/// before an upload.
pub fn check_model_dir(dir: &Path) -> Result<()> {
    let weights = if dir.join("model.safetensors.index.json").exists() {
        "model.safetensors.index.json"
    } else {
        "model.safetensors"
    };
    for f in ["config.json", "tokenizer.json", weights] {
        if !dir.join(f).exists() {
            bail!(
                "`{}` lacks {f}; write it with `sqlrft train export --out {}` first",
                dir.display(),
                dir.display()
            );
        }
    }
    ModelConfig::load(dir)?;
    Ok(())
}

/// Runs `sqlrft publish model` (the Hub from `--hub-*`, `[hub]`, `HF_ENDPOINT` and `HF_TOKEN`).
pub async fn run_publish_model(args: PublishModelArgs) -> Result<()> {
    let client = args.hub.client(None)?;
    let card = CardInputs {
        dataset: args.dataset.clone(),
        eval_report: args.eval_report.clone(),
        license: args.license.clone(),
    };
    let info = publish_model_dir(&client, &args.dir, &args.repo_id, args.private, &card).await?;
    match info.commit_oid {
        Some(oid) => eprintln!(
            "published {} file(s) of `{}` to `{}` (commit {oid})",
            info.committed.len(),
            args.dir.display(),
            args.repo_id
        ),
        None => eprintln!(
            "`{}` already holds this model; nothing to publish",
            args.repo_id
        ),
    }
    Ok(())
}

/// Checks `dir` is a complete model directory, writes its model card (README.md, unless the
/// user wrote one), then uploads it to `repo_id` (created if needed) in one commit.
pub async fn publish_model_dir(
    client: &sqlrft_hub::HubClient,
    dir: &Path,
    repo_id: &str,
    private: bool,
    card: &CardInputs,
) -> Result<sqlrft_hub::CommitInfo> {
    check_model_dir(dir)?;
    write_model_card(dir, repo_id, card)?;
    let message = format!(
        "Upload {} trained with sqlrft GRPO",
        dir.file_name().and_then(|n| n.to_str()).unwrap_or("model")
    );
    sqlrft_hub::publish_model_dir(client, repo_id, dir, private, &message)
        .await
        .with_context(|| format!("could not publish `{}` to `{repo_id}`", dir.display()))
}

/// Fine-tune a model with GRPO on SQL prompts, or export a checkpoint (`sqlrft train export`).
///
/// Flags run training; a subcommand does something else. clap's derive cannot say this for
/// flags that flatten other flag structs (an `Option<TrainArgs>` never becomes `Some` once
/// `TrainArgs` flattens `HubArgs`), so the parsing is written out below.
#[derive(Debug, Clone)]
pub struct TrainCommand {
    /// The subcommand, when one was given.
    pub action: Option<TrainAction>,
    /// Otherwise the training flags.
    pub train: Option<TrainArgs>,
}

impl clap::FromArgMatches for TrainCommand {
    fn from_arg_matches(matches: &clap::ArgMatches) -> Result<Self, clap::Error> {
        Self::from_arg_matches_mut(&mut matches.clone())
    }

    fn from_arg_matches_mut(matches: &mut clap::ArgMatches) -> Result<Self, clap::Error> {
        if matches.subcommand_name().is_some() {
            Ok(TrainCommand {
                action: Some(TrainAction::from_arg_matches_mut(matches)?),
                train: None,
            })
        } else {
            Ok(TrainCommand {
                action: None,
                train: Some(TrainArgs::from_arg_matches_mut(matches)?),
            })
        }
    }

    fn update_from_arg_matches(&mut self, matches: &clap::ArgMatches) -> Result<(), clap::Error> {
        *self = Self::from_arg_matches(matches)?;
        Ok(())
    }
}

impl clap::Args for TrainCommand {
    fn augment_args(command: clap::Command) -> clap::Command {
        use clap::Subcommand;
        TrainAction::augment_subcommands(TrainArgs::augment_args(command))
            .args_conflicts_with_subcommands(true)
            .subcommand_negates_reqs(true)
    }

    fn augment_args_for_update(command: clap::Command) -> clap::Command {
        Self::augment_args(command)
    }
}

/// `sqlrft train sft`: supervised fine-tuning on conversations (loss on assistant tokens).
#[derive(clap::Args, Debug, Clone)]
pub struct SftArgs {
    /// Base model: a Hugging Face model directory or a Hub repo id.
    #[arg(long)]
    pub model: String,
    /// Conversations: a `{messages}` JSONL, a `sqlrft distill` output, or a Hub dataset
    /// `owner/name[:file.jsonl]`.
    #[arg(long)]
    pub dataset: String,
    /// Run directory: checkpoints and metrics.jsonl (export with `sqlrft train export`).
    #[arg(long, default_value = "runs/sft")]
    pub output_dir: PathBuf,
    /// Training settings as for `sqlrft train --config` ([train] of the file, or the whole
    /// file); its `sft` and `lora` tables apply [default: [train] of ./sqlrft.toml if present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// Epochs (overrides `sft.epochs`; at least 1 runs).
    #[arg(long)]
    pub epochs: Option<u64>,
    /// Stop after this many steps (overrides `sft.max_steps`).
    #[arg(long)]
    pub max_steps: Option<u64>,
    /// Peak learning rate (overrides `sft.learning_rate`).
    #[arg(long)]
    pub learning_rate: Option<f64>,
    /// Conversations per step (overrides `sft.batch_size`).
    #[arg(long)]
    pub batch_size: Option<usize>,
    /// Token limit per sequence (overrides `sft.max_length`).
    #[arg(long)]
    pub max_length: Option<usize>,
    /// Pack conversations end to end into max-length chunks.
    #[arg(long)]
    pub packing: bool,
    /// Train every weight instead of a LoRA adapter.
    #[arg(long)]
    pub full: bool,
    /// LoRA rank (overrides `lora.rank`).
    #[arg(long)]
    pub lora_r: Option<usize>,
    /// LoRA alpha (overrides `lora.alpha`).
    #[arg(long)]
    pub lora_alpha: Option<f32>,
    /// Continue from the run directory's latest checkpoint.
    #[arg(long)]
    pub resume: bool,
    /// Where the model runs: auto (the GPU when a CUDA driver and device are found, else the
    /// CPU), cpu, or cuda (fails without a GPU); overrides `device`.
    #[arg(long, value_enum)]
    pub device: Option<Device>,
    /// Hide the progress bar.
    #[arg(long)]
    pub quiet: bool,
    /// Where base models and Hub datasets are downloaded from.
    #[command(flatten)]
    pub hub: sqlrft_hub::HubArgs,
}

impl SftArgs {
    fn config(&self) -> Result<TrainConfig> {
        let mut cfg = TrainConfig::load(self.config.as_deref())?;
        let sft = &mut cfg.sft;
        sft.epochs = self.epochs.unwrap_or(sft.epochs).max(1);
        sft.max_steps = self.max_steps.or(sft.max_steps);
        sft.learning_rate = self.learning_rate.unwrap_or(sft.learning_rate);
        sft.batch_size = self.batch_size.unwrap_or(sft.batch_size);
        sft.max_length = self.max_length.unwrap_or(sft.max_length);
        sft.packing |= self.packing;
        cfg.full_finetune |= self.full;
        cfg.lora.rank = self.lora_r.unwrap_or(cfg.lora.rank);
        cfg.lora.alpha = self.lora_alpha.unwrap_or(cfg.lora.alpha);
        cfg.device = self.device.unwrap_or(cfg.device);
        if cfg.sft.batch_size == 0 || cfg.sft.max_length < 2 {
            bail!("sft.batch_size must be at least 1 and sft.max_length at least 2");
        }
        Ok(cfg)
    }
}

/// Runs `sqlrft train sft` until done or until `stop` is set (then it checkpoints).
pub async fn run_sft_until(args: SftArgs, stop: Arc<AtomicBool>) -> Result<()> {
    let cfg = args.config()?;
    let hub = args.hub.client(None)?;
    let model_dir = resolve_model(&args.model, &hub).await?;
    let dataset = resolve_dataset(&args.dataset, &hub).await?;
    let rows = crate::sft::load_rows(&dataset)?;
    let (mut backend, tokenizer) = load_backend(&model_dir, &cfg)?;
    let examples = crate::sft::prepare(&tokenizer, &rows, &cfg.sft)?;
    let run = SftRun {
        output_dir: &args.output_dir,
        model: &args.model,
        config: &cfg,
        epochs: cfg.sft.epochs,
        max_grad_norm: cfg.optim.max_grad_norm,
        resume: args.resume,
        quiet: args.quiet,
        stop,
    };
    let outcome = crate::sft::run_sft(&mut backend, &examples, &run)?;
    if let SftOutcome::Finished { steps } = outcome {
        eprintln!(
            "SFT done: {steps} steps in {}; `sqlrft train export --output-dir {}` writes the model",
            args.output_dir.display(),
            args.output_dir.display()
        );
    }
    Ok(())
}

/// Subcommands of `sqlrft train`.
#[derive(clap::Subcommand, Debug, Clone)]
pub enum TrainAction {
    /// Supervised fine-tuning on conversations (loss on the assistant turns only), LoRA or
    /// full; export the result with `sqlrft train export`.
    Sft(SftArgs),
    /// Merge a checkpoint into its base model (or write its adapter) as a Hugging Face model
    /// directory.
    Export(ExportArgs),
}

/// Runs `sqlrft train` or `sqlrft train export`; `custom` as in [`run_train_with_rewards`].
pub async fn run_train_command(
    cmd: TrainCommand,
    custom: Vec<Arc<dyn RewardFunction>>,
) -> Result<()> {
    match (cmd.action, cmd.train) {
        (Some(TrainAction::Export(args)), _) => run_export(args).await,
        (Some(TrainAction::Sft(args)), _) => run_sft_until(args, stop_flag()?).await,
        (None, Some(args)) => run_train_with_rewards(args, custom).await,
        (None, None) => {
            bail!("`sqlrft train` needs --model and --dataset (or the `export` subcommand)")
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(subcommand)]
        cmd: Top,
    }

    #[derive(clap::Subcommand)]
    enum Top {
        Train(TrainCommand),
    }

    fn parse(args: &[&str]) -> Result<TrainCommand, clap::Error> {
        Cli::try_parse_from(["sqlrft", "train"].iter().chain(args)).map(|c| match c.cmd {
            Top::Train(t) => t,
        })
    }

    const EXECUTION_TOML: &str = "[[rewards]]\nname = \"execution\"\nkind = \"execution\"\nweight = 2.0\n\n[[rewards]]\nname = \"format\"\nkind = \"format\"\n";

    #[test]
    fn sandbox_and_reward_url_say_where_the_configured_execution_reward_runs() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("run.toml");
        std::fs::write(&path, EXECUTION_TOML).unwrap();
        let config = path.to_str().unwrap();
        let common = ["--model", "m", "--dataset", "d.jsonl", "--config", config];
        let with = |extra: &[&str]| {
            let args: Vec<&str> = common.iter().chain(extra).copied().collect();
            parse(&args).unwrap().train.unwrap().config()
        };
        let execution = |cfg: &TrainConfig| {
            cfg.rewards
                .iter()
                .find(|r| r.name == "execution")
                .cloned()
                .unwrap()
        };

        let local = with(&["--sandbox", "data/sandbox.duckdb"]).unwrap();
        let spec = execution(&local);
        assert_eq!(spec.kind, "execution");
        assert_eq!(
            spec.database.as_deref(),
            Some(Path::new("data/sandbox.duckdb"))
        );
        assert_eq!(spec.weight, 2.0, "the configured weight stays");
        assert_eq!(local.rewards.len(), 2);

        let remote = with(&["--reward-url", "http://127.0.0.1:8090"]).unwrap();
        let spec = execution(&remote);
        assert_eq!(
            (spec.kind.as_str(), spec.url.as_deref()),
            ("http", Some("http://127.0.0.1:8090"))
        );
        assert_eq!(spec.database, None);

        let both: Vec<&str> = common
            .iter()
            .chain(&["--sandbox", "a", "--reward-url", "b"])
            .copied()
            .collect();
        let err = parse(&both).err().unwrap().to_string();
        assert!(err.contains("cannot be used with"), "{err}");
    }

    #[test]
    fn the_seed_preset_runs_its_sql_on_the_sandbox_and_adds_no_execution_reward() {
        let base = ["--model", "m", "--dataset", "d.jsonl", "--rewards", "seed"];
        let args: Vec<&str> = base
            .iter()
            .chain(&["--sandbox", "s.duckdb"])
            .copied()
            .collect();
        let cfg = parse(&args).unwrap().train.unwrap().config().unwrap();
        let kinds: Vec<&str> = cfg.rewards.iter().map(|r| r.kind.as_str()).collect();
        assert_eq!(
            kinds,
            [
                "match_format_exactly",
                "match_format_approximately",
                "check_sql_reward"
            ]
        );
        assert_eq!(
            cfg.rewards[2].database.as_deref(),
            Some(Path::new("s.duckdb"))
        );
        let args: Vec<&str> = base
            .iter()
            .chain(&["--reward-url", "http://x"])
            .copied()
            .collect();
        let err = parse(&args).unwrap().train.unwrap().config().unwrap_err();
        assert!(err.to_string().contains("--rewards execution"), "{err}");
        // Without a preset or config, --sandbox adds our execution reward (the default).
        let plain = parse(&["--model", "m", "--dataset", "d", "--sandbox", "s.duckdb"])
            .unwrap()
            .train
            .unwrap()
            .config()
            .unwrap();
        assert!(plain.rewards.iter().any(|r| r.kind == "execution"));
    }

    #[test]
    fn trl_flags_win_over_the_config_file() {
        let seed = concat!(env!("CARGO_MANIFEST_DIR"), "/configs/seed.toml");
        let from_file = TrainConfig::load(Some(Path::new(seed))).unwrap();
        let args = [
            "--model",
            "m",
            "--dataset",
            "d.jsonl",
            "--config",
            seed,
            "--num-generations",
            "8",
            "--beta",
            "0.0",
            "--epsilon",
            "0.3",
            "--loss-type",
            "dr_grpo",
            "--scale-rewards",
            "none",
            "--learning-rate",
            "3e-6",
            "--max-steps",
            "7",
            "--lora-r",
            "8",
            "--lora-alpha",
            "32",
            "--max-completion-length",
            "64",
            "--temperature",
            "0.9",
            "--sft-epochs",
            "1",
        ];
        let cfg = parse(&args).unwrap().train.unwrap().config().unwrap();
        // Each flag differs from the file's value, and wins.
        assert_ne!(from_file.grpo.num_generations, 8);
        assert_eq!(
            (cfg.grpo.num_generations, cfg.grpo.beta, cfg.grpo.epsilon),
            (8, 0.0, 0.3)
        );
        assert_eq!(
            (cfg.grpo.loss_type, cfg.grpo.scale_rewards),
            (
                crate::grpo::LossType::DrGrpo,
                crate::grpo::ScaleRewards::None
            )
        );
        assert_eq!((cfg.optim.learning_rate, cfg.max_steps), (3e-6, 7));
        assert_eq!((cfg.lora.rank, cfg.lora.alpha), (8, 32.0));
        assert_eq!(
            (
                cfg.sampling.max_new_tokens,
                cfg.sampling.temperature,
                cfg.sft.epochs
            ),
            (64, 0.9, 1)
        );
        // What no flag touched stays as the file says.
        assert_eq!(cfg.optim.adam_beta2, from_file.optim.adam_beta2);
        assert_eq!(cfg.rewards, from_file.rewards);
    }

    #[test]
    fn train_sft_parses_with_its_own_flags() {
        let t = parse(&[
            "sft",
            "--model",
            "m",
            "--dataset",
            "d.jsonl",
            "--packing",
            "--epochs",
            "3",
            "--max-length",
            "64",
        ])
        .unwrap();
        match t.action {
            Some(TrainAction::Sft(a)) => {
                let cfg = a.config().unwrap();
                assert!(cfg.sft.packing);
                assert_eq!((cfg.sft.epochs, cfg.sft.max_length), (3, 64));
            }
            other => panic!("sft was not parsed: {other:?}"),
        }
    }

    #[test]
    fn train_and_train_export_both_parse() {
        let t = parse(&["--model", "m", "--dataset", "d.jsonl", "--resume"]).unwrap();
        let args = t.train.unwrap();
        assert!(t.action.is_none() && args.resume && args.model == "m");
        let e = parse(&["export", "--out", "merged", "--adapter"]).unwrap();
        match e.action {
            Some(TrainAction::Export(x)) => assert!(x.adapter && x.out == Path::new("merged")),
            other => panic!("export was not parsed: {other:?}"),
        }
        assert!(
            parse(&["--dataset", "d.jsonl"]).is_err(),
            "--model is required for training"
        );
    }

    #[test]
    #[ignore = "prints the help text for a person to read"]
    fn show_help() {
        for a in [
            &["--help"][..],
            &["export", "--help"][..],
            &["sft", "--help"][..],
        ] {
            println!("{}", parse(a).unwrap_err());
        }
    }
}
