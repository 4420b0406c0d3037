//! The GRPO loop: pull prompts, sample G completions each, score them, turn rewards into
//! advantages, and take `num_iterations` optimizer steps on the batch; checkpoint as it goes.

use crate::checkpoint::{self, CheckpointState, RngState};
use crate::data::{DataCursor, PromptStream};
use crate::device::{Device, DynBackend, open_backend};
#[cfg(feature = "execution")]
use crate::execution::ExecutionReward;
use crate::generator::{GeneratorConfig, RemoteGenerator};
use crate::grpo::{self, Aggregation, GrpoParams, TokenInput};
use crate::metrics::{RewardStats, StepMetrics};
use crate::reward::{FormatReward, HttpReward, HttpTarget, RewardFunction};
use crate::rollout::{Prompt, RolloutBatch};
use crate::scoring::{encode_prompt, per_reward, score_groups};
use crate::seed::{self, CheckSqlReward};
use crate::sft::SftParams;
use crate::tokenizer::ChatTokenizer;
use anyhow::{Context, Result, bail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sqlrft_core::score::ScoreOptions;
use sqlrft_model::backend::{Backend, CpuBackend, Policy, Sequence, TokenScores};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::optim::OptimParams;
use sqlrft_model::params::{ModelLayout, load_weights};
use sqlrft_model::sampling::SamplingParams;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// One reward in the weighted sum.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RewardSpec {
    /// Name in metrics; also selects a reward function supplied by the caller (`kind = "custom"`).
    pub name: String,
    /// Multiplier in the weighted sum (TRL's `reward_weights`).
    #[serde(default = "one")]
    pub weight: f64,
    /// `format` (strict `<think>…</think><sql>…</sql>`), `format_soft` (partial credit),
    /// `execution` (run the SQL on the sandbox `database` in process and compare results),
    /// `http` (the reward service at `url`, or any `endpoint` taking its batch shape), the seed
    /// project's `match_format_exactly`, `match_format_approximately` and `check_sql_reward`
    /// (see [`crate::seed`]), or `custom` (registered in process by name).
    pub kind: String,
    /// The reward service's root URL (`http`; the batch path is appended).
    #[serde(default)]
    pub url: Option<String>,
    /// A full URL posted to as is, for any service that takes the batch shape (`http`).
    #[serde(default)]
    pub endpoint: Option<String>,
    /// The environment variable holding a bearer token for an `http` reward (never the token
    /// itself: config files get committed).
    #[serde(default)]
    pub token_env: Option<String>,
    /// HTTP timeout per group, seconds.
    #[serde(default = "default_timeout")]
    pub timeout_seconds: f64,
    /// The sandbox DuckDB file of an `execution` reward; for `check_sql_reward`, where rows
    /// without a `sql_context` run.
    #[serde(default)]
    pub database: Option<PathBuf>,
    /// How an `execution` or `http` reward scores (`partial`, `format_gate`, `tolerance`,
    /// `mode`), as the reward service's request options (an `http` reward sends them only when
    /// the entry has a `[rewards.scoring]` table).
    #[serde(default)]
    pub scoring: Option<ScoreOptions>,
}

impl RewardSpec {
    /// A reward of `kind` named `name`, weight 1, other settings at their defaults.
    pub fn new(name: impl Into<String>, kind: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            weight: 1.0,
            kind: kind.into(),
            url: None,
            endpoint: None,
            token_env: None,
            timeout_seconds: default_timeout(),
            database: None,
            scoring: None,
        }
    }
}

fn one() -> f64 {
    1.0
}
fn default_timeout() -> f64 {
    120.0
}

/// Everything that shapes a run. Defaults are TRL 1.16's GRPOConfig; `configs/seed.toml` holds
/// the seed project's Unsloth settings.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Seeds data order, sampling and LoRA initialisation.
    pub seed: u64,
    /// Optimizer steps in the run (the lr schedule spans these).
    pub max_steps: u64,
    /// Prompts per generation round; the round yields `prompts_per_step · num_generations`
    /// completions (TRL: `per_device_train_batch_size · steps_per_generation`).
    pub prompts_per_step: usize,
    /// Micro-batches the round's completions are split into per optimizer step.
    pub gradient_accumulation_steps: usize,
    /// Prompts longer than this keep their last tokens (TRL truncates on the left).
    pub max_prompt_length: usize,
    /// Checkpoint every this many steps (and at the end, and on Ctrl-C / SIGTERM).
    pub save_steps: u64,
    /// Train every weight instead of a LoRA adapter.
    pub full_finetune: bool,
    /// The adapters trained unless `full_finetune`.
    pub lora: LoraConfig,
    /// GRPO's loss settings (TRL's `GRPOConfig` names).
    pub grpo: GrpoParams,
    /// AdamW and the learning-rate schedule.
    pub optim: OptimParams,
    /// How completions are sampled.
    pub sampling: SamplingParams,
    /// The weighted rewards.
    pub rewards: Vec<RewardSpec>,
    /// The supervised stage `sqlrft train sft` runs, and `sqlrft train` before GRPO when
    /// `sft.epochs` (or `--sft-epochs`) is above 0.
    pub sft: SftParams,
    /// Sample on an OpenAI-compatible server (vLLM, `sqlrft model serve`) instead of in this
    /// process (`[train.generator]`, `--generator URL`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub generator: Option<GeneratorConfig>,
    /// Pull scored batches from these rollout workers (`sqlrft rollout`) instead of sampling and
    /// scoring in this process (`--rollouts URL,…`); a name that resolves to several addresses
    /// (a Kubernetes headless service) stands for all of them. Needs `generator`: the trainer
    /// publishes each policy version there for the workers.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub rollouts: Vec<String>,
    /// Batches sampled by a policy more than this many optimizer steps older than the trainer's
    /// are dropped (`--max-staleness`); 0 trains on-policy only.
    pub max_staleness: u64,
    /// Where the model runs (`--device`): `auto` (the GPU when there is one), `cpu` or `cuda`.
    pub device: Device,
}

impl Default for TrainConfig {
    fn default() -> Self {
        Self {
            seed: 42,
            max_steps: 500,
            prompts_per_step: 1,
            gradient_accumulation_steps: 1,
            max_prompt_length: 512,
            save_steps: 50,
            full_finetune: false,
            lora: LoraConfig::default(),
            grpo: GrpoParams::default(),
            optim: OptimParams::default(),
            sampling: SamplingParams::default(),
            rewards: vec![RewardSpec::new("format", "format")],
            sft: SftParams::default(),
            generator: None,
            rollouts: Vec::new(),
            max_staleness: 1,
            device: Device::Auto,
        }
    }
}

/// The top-level keys of the training settings (those an environment variable can set).
fn top_level_keys() -> Vec<String> {
    match serde_json::to_value(TrainConfig::default()) {
        Ok(serde_json::Value::Object(fields)) => fields.keys().cloned().collect(),
        _ => Vec::new(),
    }
}

/// The table of `sqlrft.toml` that holds the training settings, and the middle of their variables'
/// names (`SQLRFT_TRAIN_MAX_STEPS`).
pub const TRAIN_SECTION: &str = "train";

impl TrainConfig {
    /// The training settings, later layers winning: TRL 1.16's defaults, the `[train]` table of
    /// `config_file` (else of `./sqlrft.toml`) or, for a file without one, the whole file (a
    /// standalone training config such as `configs/seed.toml`), then `SQLRFT_TRAIN_<KEY>` for the
    /// top-level keys. The command's flags are applied over this by the caller.
    pub fn load(config_file: Option<&Path>) -> Result<Self> {
        Self::load_with_env(config_file, sqlrft_core::config::process_env())
    }

    /// [`load`](Self::load) with the environment given (for tests).
    pub fn load_with_env(
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self> {
        // Only variables naming a top-level setting are ours: docker-compose.yml interpolates
        // SQLRFT_TRAIN_MODEL into --model itself, and such a variable must not be an unknown key.
        let keys = top_level_keys();
        let prefix = format!("SQLRFT_{}_", TRAIN_SECTION.to_ascii_uppercase());
        let env = env.into_iter().filter(|(name, _)| {
            name.strip_prefix(&prefix)
                .is_some_and(|key| keys.contains(&key.to_ascii_lowercase()))
        });
        let cfg: Self = sqlrft_core::config::load_table_or_file(TRAIN_SECTION, config_file, env)
            .map_err(|err| {
                anyhow::anyhow!(
                    "{err}\n(training settings go in the [train] table of sqlrft.toml, or at the \
                     top level of a file of their own such as services/trainer/configs/seed.toml)"
                )
            })?;
        cfg.validate()?;
        Ok(cfg)
    }

    /// Rejects settings that cannot run, naming the setting.
    pub fn validate(&self) -> Result<()> {
        let completions = self.prompts_per_step * self.grpo.num_generations;
        if self.grpo.num_generations < 2 {
            bail!(
                "grpo.num_generations must be at least 2 (advantages compare completions of one prompt)"
            );
        }
        if self.gradient_accumulation_steps == 0
            || !completions.is_multiple_of(self.gradient_accumulation_steps)
        {
            bail!(
                "prompts_per_step · num_generations ({completions}) must be divisible by gradient_accumulation_steps ({})",
                self.gradient_accumulation_steps
            );
        }
        if self.sampling.max_new_tokens == 0
            || self.grpo.num_iterations == 0
            || self.prompts_per_step == 0
        {
            bail!(
                "sampling.max_new_tokens, grpo.num_iterations and prompts_per_step must be at least 1"
            );
        }
        if self.rewards.is_empty() {
            bail!("at least one [[rewards]] entry is needed");
        }
        if self.generator.is_some() && self.full_finetune {
            bail!(
                "a generator server receives the policy as a LoRA adapter: --generator needs \
                 full_finetune = false"
            );
        }
        if !self.rollouts.is_empty() && self.generator.is_none() {
            bail!(
                "--rollouts needs --generator URL: the trainer publishes each policy version on \
                 the generation server the rollout workers sample from"
            );
        }
        Ok(())
    }
}

/// The `execution` reward: the completion's SQL runs on the sandbox in this process.
#[cfg(feature = "execution")]
fn execution_reward(
    name: &str,
    database: &Path,
    scoring: ScoreOptions,
) -> Result<Arc<dyn RewardFunction>> {
    Ok(Arc::new(ExecutionReward::open(name, database, scoring)?))
}

/// Without DuckDB linked in, the sandbox cannot be opened here; the service can score instead.
#[cfg(not(feature = "execution"))]
fn execution_reward(
    name: &str,
    database: &Path,
    _scoring: ScoreOptions,
) -> Result<Arc<dyn RewardFunction>> {
    bail!(
        "reward `{name}` runs SQL on `{}` in process, but this sqlrft was built without the \
         `execution` feature (no DuckDB); serve the sandbox with `sqlrft reward serve --db {}` \
         and pass --reward-url instead of --sandbox",
        database.display(),
        database.display()
    )
}

/// Builds the reward functions a config names; `custom` ones come from `registry` by name, and
/// a registered function the config does not mention joins with weight 1.
pub fn build_rewards(
    specs: &[RewardSpec],
    registry: &[Arc<dyn RewardFunction>],
) -> Result<Vec<(Arc<dyn RewardFunction>, f64)>> {
    specs
        .iter()
        .map(|s| {
            let f: Arc<dyn RewardFunction> = match s.kind.as_str() {
                "format" => Arc::new(FormatReward::strict(&s.name)),
                "format_soft" => Arc::new(FormatReward::soft(&s.name)),
                "http" => {
                    if s.url.is_none() && s.endpoint.is_none() {
                        bail!(
                            "reward `{}` of kind http needs a `url` (the reward service's root) \
                             or an `endpoint` (a full URL taking its batch shape)",
                            s.name
                        );
                    }
                    let token = match &s.token_env {
                        Some(var) => Some(std::env::var(var).with_context(|| {
                            format!(
                                "reward `{}` reads its bearer token from ${var}, which is not set",
                                s.name
                            )
                        })?),
                        None => None,
                    };
                    Arc::new(HttpReward::configured(
                        s.name.clone(),
                        HttpTarget {
                            url: s.url.as_deref(),
                            endpoint: s.endpoint.as_deref(),
                            token,
                            timeout: Duration::from_secs_f64(s.timeout_seconds),
                            options: s.scoring,
                        },
                    )?)
                }
                seed::MATCH_FORMAT_EXACTLY => Arc::new(FormatReward::seed_exact(&s.name)),
                seed::MATCH_FORMAT_APPROXIMATELY => {
                    Arc::new(FormatReward::seed_approximate(&s.name))
                }
                seed::CHECK_SQL_REWARD => {
                    Arc::new(CheckSqlReward::new(s.name.clone(), s.database.clone())?)
                }
                "execution" => {
                    let database = s.database.as_deref().with_context(|| {
                        format!(
                            "reward `{}` of kind execution needs a `database` (the sandbox DuckDB \
                             file `sqlrft build` wrote); or pass --sandbox",
                            s.name
                        )
                    })?;
                    execution_reward(&s.name, database, s.scoring.unwrap_or_default())?
                }
                "custom" => registry
                    .iter()
                    .find(|r| r.name() == s.name)
                    .cloned()
                    .with_context(|| {
                        format!(
                            "reward `{}` is `custom` but no such reward function is registered",
                            s.name
                        )
                    })?,
                other => {
                    bail!(
                        "reward kind `{other}` is unknown (format, format_soft, execution, http, \
                         match_format_exactly, match_format_approximately, check_sql_reward, custom)"
                    )
                }
            };
            Ok((f, s.weight))
        })
        .chain(
            registry
                .iter()
                .filter(|r| !specs.iter().any(|s| s.name == r.name()))
                .map(|r| Ok((r.clone(), 1.0))),
        )
        .collect()
}

/// A Hugging Face model directory (`config.json`, safetensors weights, `tokenizer.json`: what
/// `sqlrft train export` and `sqlrft model import-gguf` write) as a CPU model without adapters,
/// and its tokenizer.
pub fn load_model_dir(model_dir: &Path) -> Result<(CpuModel, ChatTokenizer)> {
    if !model_dir.is_dir() {
        bail!(
            "`{}` is not a directory; a model is a Hugging Face model directory (config.json, \
             *.safetensors, tokenizer.json), e.g. from `sqlrft train export` or `sqlrft model \
             import-gguf`",
            model_dir.display()
        );
    }
    let mc = ModelConfig::load(model_dir)?;
    let layout = ModelLayout::new(&mc);
    let base = load_weights(model_dir, &layout.layout)?;
    let tokenizer = ChatTokenizer::load(model_dir, &mc.eos_token_ids)?;
    if tokenizer.vocab_size() > mc.vocab_size {
        bail!(
            "`{}`: the tokenizer has {} tokens but config.json's vocab_size is {}",
            model_dir.display(),
            tokenizer.vocab_size(),
            mc.vocab_size
        );
    }
    Ok((CpuModel::new(mc, base, None), tokenizer))
}

/// A model directory as the run trains it: base weights plus fresh LoRA adapters (seeded)
/// unless the config trains every weight; and whether the KL term needs frozen base weights.
fn model_for_run(model_dir: &Path, cfg: &TrainConfig) -> Result<(CpuModel, ChatTokenizer, bool)> {
    let (
        CpuModel {
            config: mc, base, ..
        },
        tokenizer,
    ) = load_model_dir(model_dir)?;
    let lora = if cfg.full_finetune {
        None
    } else {
        let ll = LoraLayout::new(&cfg.lora, &mc)?;
        let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed.wrapping_add(0x10a));
        let data = ll.init(&mut rng);
        Some((ll, data))
    };
    let keep_reference = cfg.full_finetune && cfg.grpo.beta != 0.0;
    Ok((CpuModel::new(mc, base, lora), tokenizer, keep_reference))
}

/// Loads a model directory into the CPU backend (what export and merging read checkpoints
/// with, whatever device trained them).
pub fn load_cpu_backend(
    model_dir: &Path,
    cfg: &TrainConfig,
) -> Result<(CpuBackend, ChatTokenizer)> {
    let (model, tokenizer, keep_reference) = model_for_run(model_dir, cfg)?;
    Ok((CpuBackend::new(model, keep_reference), tokenizer))
}

/// Loads a model directory onto `cfg.device` (see [`crate::device`]).
pub fn load_backend(model_dir: &Path, cfg: &TrainConfig) -> Result<(DynBackend, ChatTokenizer)> {
    let (model, tokenizer, keep_reference) = model_for_run(model_dir, cfg)?;
    let lora = (!cfg.full_finetune).then_some(&cfg.lora);
    Ok((
        open_backend(cfg.device, model, lora, keep_reference)?,
        tokenizer,
    ))
}

/// One completion ready for the loss.
struct Rollout {
    tokens: Vec<u32>,
    prompt_len: usize,
    advantage: f64,
    /// Whether the completion's tokens count (false when masked as truncated).
    mask: bool,
    /// The generator server's log-probs of the completion tokens, when its sampling is to be
    /// importance-corrected.
    sampling_logps: Option<Vec<f32>>,
}

impl Rollout {
    fn completion_len(&self) -> usize {
        self.tokens.len() - self.prompt_len
    }
    fn counted(&self) -> usize {
        if self.mask { self.completion_len() } else { 0 }
    }
}

/// A GRPO run over one backend.
pub struct Trainer<B: Backend> {
    /// The model being trained.
    pub backend: B,
    /// The model's chat template and vocabulary.
    pub tokenizer: ChatTokenizer,
    /// The run's settings.
    pub cfg: TrainConfig,
    rewards: Vec<(Arc<dyn RewardFunction>, f64)>,
    /// Where completions are sampled when not by `backend`.
    generator: Option<RemoteGenerator>,
    data: PromptStream,
    rng: ChaCha8Rng,
    /// Optimizer steps taken.
    pub step: u64,
    started: Instant,
    /// The last generation round, in the rollout contract's types.
    pub last_rollout: Option<RolloutBatch>,
    /// Where the last round's time went.
    pub timings: RoundTimings,
}

/// Wall time of one round's phases.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RoundTimings {
    /// Sampling every completion of the round.
    pub generation: Duration,
    /// Scoring them with every reward function.
    pub rewards: Duration,
    /// Advantages, log-probs, forward/backward passes and optimizer steps.
    pub update: Duration,
}

impl<B: Backend> Trainer<B> {
    /// A run over `prompts` from step 0, its rewards weighted as given.
    pub fn new(
        backend: B,
        tokenizer: ChatTokenizer,
        cfg: TrainConfig,
        prompts: Vec<Prompt>,
        rewards: Vec<(Arc<dyn RewardFunction>, f64)>,
    ) -> Self {
        let data = PromptStream::new(prompts, cfg.seed, DataCursor::default());
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed);
        Self {
            backend,
            tokenizer,
            cfg,
            rewards,
            generator: None,
            data,
            rng,
            step: 0,
            started: Instant::now(),
            last_rollout: None,
            timings: RoundTimings::default(),
        }
    }

    /// Samples every later round on `generator` instead of with the backend.
    pub fn use_generator(&mut self, generator: RemoteGenerator) {
        self.generator = Some(generator);
    }

    /// Checkpoints into `output_dir` (see [`crate::checkpoint`]).
    pub fn save_checkpoint(&self, output_dir: &Path, model: &str) -> Result<PathBuf> {
        let state = self.backend.trainable_state()?;
        let meta = CheckpointState {
            step: self.step,
            cursor: self.data.cursor,
            rng: RngState::capture(&self.rng),
            adam_t: state.adam_t,
            lora: !self.cfg.full_finetune,
            config: serde_json::to_value(&self.cfg)?,
            model: model.to_string(),
        };
        checkpoint::save(output_dir, self.backend.trainable_layout(), &state, &meta)
    }

    /// Continues from a checkpoint directory.
    pub fn restore(&mut self, dir: &Path) -> Result<()> {
        let (state, meta) = checkpoint::load(dir, self.backend.trainable_layout())?;
        if meta.lora == self.cfg.full_finetune {
            bail!(
                "checkpoint `{}` was made with full_finetune = {}, this run has {}",
                dir.display(),
                !meta.lora,
                self.cfg.full_finetune
            );
        }
        // A resumed run continues exactly only under the same settings; the step budget and
        // checkpoint interval may change.
        if let Ok(mut saved) = serde_json::from_value::<TrainConfig>(meta.config.clone()) {
            (saved.max_steps, saved.save_steps) = (self.cfg.max_steps, self.cfg.save_steps);
            if saved != self.cfg {
                tracing::warn!(checkpoint = %dir.display(), "resuming with a training config that differs from the checkpoint's; the run will not match an uninterrupted one");
            }
        }
        self.backend.load_trainable_state(state)?;
        self.step = meta.step;
        self.rng = meta.rng.restore()?;
        self.data.seek(meta.cursor);
        Ok(())
    }

    /// Samples and scores one generation round of this process's own prompts.
    async fn rollout(&mut self) -> Result<RolloutBatch> {
        let g = self.cfg.grpo.num_generations;
        let batch = self.data.next_batch(self.cfg.prompts_per_step);
        let prompt_ids: Vec<Vec<u32>> = batch
            .prompts
            .iter()
            .map(|p| encode_prompt(&self.tokenizer, p, self.cfg.max_prompt_length))
            .collect::<Result<_>>()?;
        // Every completion of the round decodes together.
        let started = Instant::now();
        let id_refs: Vec<&[u32]> = prompt_ids.iter().map(Vec::as_slice).collect();
        let eos = self.tokenizer.eos_ids.clone();
        let sampled = match &mut self.generator {
            None => self
                .backend
                .generate(&id_refs, g, &self.cfg.sampling, &eos, &mut self.rng)?,
            Some(remote) => {
                remote
                    .sync_policy(self.step, &self.backend.trainable_state()?.params)
                    .await?;
                let seed = self.rng.next_u64();
                remote
                    .generate(&prompt_ids, g, &self.cfg.sampling, seed)
                    .await?
            }
        };
        self.timings.generation = started.elapsed();
        let generated_tokens = sampled
            .iter()
            .flatten()
            .map(|s| s.tokens.len() as u64)
            .sum();
        let started = Instant::now();
        let prompts = batch.prompts.into_iter().zip(prompt_ids).collect();
        let groups = score_groups(
            &self.rewards,
            &self.tokenizer,
            prompts,
            sampled,
            self.cfg.grpo.scale_rewards,
        )
        .await?;
        self.timings.rewards = started.elapsed();
        Ok(RolloutBatch {
            policy_version: self.step,
            groups,
            temperature: self.cfg.sampling.temperature,
            generated_tokens,
            generation_seconds: self.timings.generation.as_secs_f64(),
            epoch: batch.epoch,
            ..Default::default()
        })
    }

    /// One generation round followed by `num_iterations` optimizer steps; returns each step's
    /// metrics. Stops with an error, before updating, on a non-finite loss or gradient.
    pub async fn train_round(&mut self) -> Result<Vec<StepMetrics>> {
        let started = Instant::now();
        let batch = self.rollout().await?;
        let sampled_elsewhere = self.generator.is_some();
        self.update_from(batch, started, sampled_elsewhere)
    }

    /// `num_iterations` optimizer steps on one scored batch, made here or by a rollout worker
    /// (`sampled_elsewhere`: by another engine, whose log-probs are then importance-corrected
    /// when `vllm_importance_sampling_correction` is on). `started` is when the round began,
    /// for its throughput. Stops with an error, before updating, on a non-finite loss or
    /// gradient.
    pub fn update_from(
        &mut self,
        batch: RolloutBatch,
        started: Instant,
        sampled_elsewhere: bool,
    ) -> Result<Vec<StepMetrics>> {
        let round_start = started;
        let p: GrpoParams = self.cfg.grpo.clone();
        if batch.groups.is_empty() {
            bail!("rollout batch `{}` has no groups to train on", batch.id);
        }
        if (batch.temperature - self.cfg.sampling.temperature).abs() > 1e-6 {
            bail!(
                "rollout batch `{}` of worker `{}` was sampled at temperature {}, but this \
                 trainer scores at {}: give the workers and the trainer the same [train] settings",
                batch.id,
                batch.worker,
                batch.temperature,
                self.cfg.sampling.temperature
            );
        }
        let epoch = batch.epoch;
        let (reward_names, per_reward) = per_reward(&batch.groups);
        let correct_sampling = sampled_elsewhere && p.vllm_importance_sampling_correction;
        let update_started = Instant::now();
        let rewards: Vec<f64> = batch
            .groups
            .iter()
            .flat_map(|gr| gr.completions.iter().map(|c| c.reward))
            .collect();
        let mut rollouts = Vec::new();
        for group in &batch.groups {
            for c in &group.completions {
                let mut tokens = group.prompt_token_ids.clone();
                tokens.extend_from_slice(&c.token_ids);
                rollouts.push(Rollout {
                    tokens,
                    prompt_len: group.prompt_token_ids.len(),
                    advantage: c.advantage,
                    mask: !(p.mask_truncated_completions && c.truncated),
                    sampling_logps: correct_sampling.then(|| c.sampling_logprobs.clone()),
                });
            }
        }
        let seqs: Vec<Sequence> = rollouts
            .iter()
            .map(|r| Sequence {
                tokens: &r.tokens,
                prompt_len: r.prompt_len,
            })
            .collect();
        // Greedy sampling (temperature 0) scores with the plain softmax.
        let temperature = if self.cfg.sampling.temperature > 0.0 {
            self.cfg.sampling.temperature
        } else {
            1.0
        };
        // Log-probs under the sampling policy (only differ from the current ones after the first
        // update) and under the reference policy (only needed for the KL term).
        let old_logps = if p.num_iterations > 1 {
            Some(self.backend.score(&seqs, temperature, Policy::Trained)?)
        } else {
            None
        };
        let ref_logps = if p.beta != 0.0 {
            Some(self.backend.score(&seqs, temperature, Policy::Reference)?)
        } else {
            None
        };
        let num_items: usize = rollouts.iter().map(Rollout::counted).sum();
        let generated: usize = rollouts.iter().map(Rollout::completion_len).sum();
        // A worker's batch may be short of groups it could not score: the micro-batches then
        // shrink, and the last may be smaller.
        let micro = rollouts
            .len()
            .div_ceil(self.cfg.gradient_accumulation_steps)
            .max(1);
        let accum = rollouts.len().div_ceil(micro);
        let mut out = Vec::new();
        for _ in 0..p.num_iterations {
            if self.step >= self.cfg.max_steps {
                break;
            }
            self.backend.zero_grad()?;
            let mut tally = Tally::default();
            for (mb, chunk) in rollouts.chunks(micro).enumerate() {
                let agg = Aggregation {
                    loss_type: p.loss_type,
                    sequences: chunk.len(),
                    tokens: chunk.iter().map(Rollout::counted).sum(),
                    grad_accum: accum,
                    max_completion_length: self.cfg.sampling.max_new_tokens,
                    num_items_in_batch: num_items,
                };
                let mb_seqs = &seqs[mb * micro..mb * micro + chunk.len()];
                let mut dloss = |i: usize, scores: &TokenScores| -> Vec<f32> {
                    let j = mb * micro + i;
                    let old = old_logps.as_ref().map(|o| o[j].logps.as_slice());
                    let reference = ref_logps.as_ref().map(|o| o[j].logps.as_slice());
                    tally.add(&chunk[i], scores, old, reference, &agg, &p)
                };
                self.backend
                    .forward_backward(mb_seqs, temperature, &mut dloss)?;
            }
            let grad_norm = self.backend.clip_grad_norm(self.cfg.optim.max_grad_norm)?;
            if !tally.loss.is_finite() || !grad_norm.is_finite() {
                bail!(
                    "step {}: the loss is {} and the gradient norm {} — not finite, so training stopped before applying the update. \
                     Lower optim.learning_rate or check the rewards; resume from the last checkpoint with --resume",
                    self.step + 1,
                    tally.loss,
                    grad_norm
                );
            }
            let lr = self
                .cfg
                .optim
                .lr_at(self.step as usize, self.cfg.max_steps as usize);
            self.backend.optimizer_step(lr, &self.cfg.optim)?;
            self.step += 1;
            out.push(self.step_metrics(
                &tally,
                lr,
                grad_norm,
                epoch,
                ScoredRound {
                    batch: &batch,
                    reward_names: &reward_names,
                    per_reward: &per_reward,
                    rewards: &rewards,
                    generated,
                    started: round_start,
                },
            ));
        }
        self.timings.update = update_started.elapsed();
        self.last_rollout = Some(batch);
        Ok(out)
    }

    fn step_metrics(
        &self,
        t: &Tally,
        lr: f64,
        grad_norm: f64,
        epoch: u64,
        round: ScoredRound<'_>,
    ) -> StepMetrics {
        let ScoredRound {
            batch,
            reward_names,
            per_reward,
            rewards,
            generated,
            started: round_start,
        } = round;
        let g = batch.groups[0].completions.len().max(1);
        let (reward, reward_std) = grpo::nan_mean_std(rewards);
        let named: BTreeMap<String, RewardStats> = reward_names
            .iter()
            .zip(per_reward)
            .map(|(name, vals)| {
                let (mean, std) = grpo::nan_mean_std(vals);
                let invalid =
                    vals.iter().filter(|v| v.is_nan()).count() as f64 / vals.len().max(1) as f64;
                (
                    name.clone(),
                    RewardStats {
                        mean,
                        std: if std.is_nan() { 0.0 } else { std },
                        invalid_fraction: invalid,
                    },
                )
            })
            .collect();
        let mut sub: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in batch
            .groups
            .iter()
            .flat_map(|gr| &gr.completions)
            .flat_map(|c| &c.rewards)
        {
            for (k, v) in &r.metrics {
                sub.entry(format!("{}/{k}", r.name)).or_default().push(*v);
            }
        }
        let reward_metrics = sub
            .into_iter()
            .map(|(k, v)| (k, grpo::nan_mean_std(&v).0))
            .collect();
        let lens: Vec<f64> = batch
            .groups
            .iter()
            .flat_map(|gr| gr.completions.iter().map(|c| c.token_ids.len() as f64))
            .collect();
        let truncated = batch
            .groups
            .iter()
            .flat_map(|gr| &gr.completions)
            .filter(|c| c.truncated)
            .count();
        let zero_std = rewards
            .chunks(g)
            .filter(|grp| grpo::nan_mean_std(grp).1.abs() < 1e-8)
            .count();
        let tokens = t.tokens.max(1) as f64;
        let secs = round_start.elapsed().as_secs_f64();
        StepMetrics {
            step: self.step,
            epoch,
            lr,
            loss: t.loss,
            reward,
            reward_std: if reward_std.is_nan() { 0.0 } else { reward_std },
            rewards: named,
            reward_metrics,
            kl: t.kl / tokens,
            clip_ratio_low: t.clip_low as f64 / tokens,
            clip_ratio_high: t.clip_high as f64 / tokens,
            clip_ratio_region: (t.clip_low + t.clip_high) as f64 / tokens,
            entropy: t.entropy / tokens,
            completion_length_mean: lens.iter().sum::<f64>() / lens.len().max(1) as f64,
            completion_length_max: lens.iter().copied().fold(0.0, f64::max),
            truncated_fraction: truncated as f64 / lens.len().max(1) as f64,
            frac_reward_zero_std: zero_std as f64 / (rewards.len() / g).max(1) as f64,
            grad_norm,
            tokens_per_second: generated as f64 / secs.max(1e-9),
            elapsed_seconds: self.started.elapsed().as_secs_f64(),
            sampling_logp_difference: (t.sampled_tokens > 0)
                .then(|| t.sampling_logp_difference / t.sampled_tokens as f64),
            importance_sampling_ratio: (t.sampled_tokens > 0)
                .then(|| t.importance_weight / t.sampled_tokens as f64),
            rollout: None,
        }
    }

    /// Publishes the current policy on the generator server, if sampling happens there (with
    /// rollout workers, before each pull: they sample with the newest version they find).
    pub async fn publish_policy(&mut self) -> Result<()> {
        if let Some(remote) = &mut self.generator {
            remote
                .sync_policy(self.step, &self.backend.trainable_state()?.params)
                .await?;
        }
        Ok(())
    }

    /// Where the prompt stream stands.
    pub fn cursor(&self) -> DataCursor {
        self.data.cursor
    }
}

/// One round's rollouts as scored, with what its throughput is measured by.
#[derive(Clone, Copy)]
struct ScoredRound<'a> {
    batch: &'a RolloutBatch,
    /// The rewards' names, in the order of `per_reward`.
    reward_names: &'a [String],
    /// Each reward function's value per completion (NaN where it could not score).
    per_reward: &'a [Vec<f64>],
    /// The combined reward of every completion, group after group.
    rewards: &'a [f64],
    /// Completion tokens generated this round.
    generated: usize,
    started: Instant,
}

/// Loss and metric sums over one optimizer step's tokens.
#[derive(Default)]
struct Tally {
    loss: f64,
    kl: f64,
    entropy: f64,
    clip_low: usize,
    clip_high: usize,
    tokens: usize,
    /// Over tokens another engine sampled: |trainer − sampler| log-prob, and the weights used.
    sampling_logp_difference: f64,
    importance_weight: f64,
    sampled_tokens: usize,
}

impl Tally {
    /// Adds one sequence's token losses and returns `∂loss/∂logp` per completion token.
    /// `old` and `reference` are that sequence's sampling-policy and reference log-probs.
    fn add(
        &mut self,
        r: &Rollout,
        scores: &TokenScores,
        old: Option<&[f32]>,
        reference: Option<&[f32]>,
        agg: &Aggregation,
        p: &GrpoParams,
    ) -> Vec<f32> {
        if !r.mask {
            return vec![0.0; scores.logps.len()];
        }
        let w = agg.token_weight(r.counted());
        scores
            .logps
            .iter()
            .enumerate()
            .map(|(t, &lp)| {
                let old_logp = old.map_or(lp as f64, |o| o[t] as f64);
                let sampling_weight = match r.sampling_logps.as_ref().and_then(|s| s.get(t)) {
                    Some(&sampled) => {
                        let weight = grpo::importance_weight(
                            old_logp,
                            sampled as f64,
                            p.vllm_importance_sampling_cap,
                        );
                        self.sampling_logp_difference += (old_logp - sampled as f64).abs();
                        self.importance_weight += weight;
                        self.sampled_tokens += 1;
                        weight
                    }
                    None => 1.0,
                };
                let x = TokenInput {
                    logp: lp as f64,
                    old_logp,
                    ref_logp: reference.map_or(0.0, |o| o[t] as f64),
                    advantage: r.advantage,
                    sampling_weight,
                };
                let tl = grpo::token_loss(x, p);
                self.loss += w * tl.loss;
                self.kl += tl.kl;
                self.entropy += scores.entropies[t] as f64;
                self.clip_low += tl.clipped_low as usize;
                self.clip_high += tl.clipped_high as usize;
                self.tokens += 1;
                (w * tl.dloss_dlogp) as f32
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_config_file_gives_the_seed_projects_settings() {
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("configs/seed.toml");
        let c = TrainConfig::load(Some(&path)).unwrap();
        // The seed's config.yaml, environment.py defaults and trainer_control.py arguments.
        assert_eq!((c.seed, c.max_steps, c.save_steps), (3407, 300, 200));
        assert_eq!(
            (c.lora.rank, c.lora.alpha, c.grpo.num_generations),
            (16, 16.0, 4)
        );
        // 12 completions per device batch × 2 accumulation steps / 4 generations = 6 prompts.
        assert_eq!((c.prompts_per_step, c.gradient_accumulation_steps), (6, 2));
        assert_eq!(
            (
                c.optim.learning_rate,
                c.optim.adam_beta2,
                c.optim.weight_decay
            ),
            (1e-4, 0.95, 0.01)
        );
        assert_eq!(
            (
                c.optim.warmup_ratio,
                c.optim.lr_scheduler_type,
                c.optim.max_grad_norm
            ),
            (0.03, sqlrft_model::optim::LrSchedule::Cosine, 1.0)
        );
        assert_eq!(
            (
                c.sampling.temperature,
                c.sampling.max_new_tokens,
                c.max_prompt_length
            ),
            (0.7, 1024, 1024)
        );
        assert_eq!(
            (
                c.sft.epochs,
                c.sft.learning_rate,
                c.sft.batch_size,
                c.sft.warmup_steps
            ),
            (2, 2e-5, 8, 5)
        );
        assert_eq!(
            c.rewards
                .iter()
                .map(|r| (r.kind.as_str(), r.weight))
                .collect::<Vec<_>>(),
            [
                ("match_format_exactly", 1.0),
                ("match_format_approximately", 1.0),
                ("check_sql_reward", 1.0)
            ],
            "the file's rewards replace the default list"
        );
        assert_eq!(
            c.rewards,
            seed::seed_reward_specs(),
            "the file and --rewards seed agree"
        );
        // TRL 0.17.0's defaults, which the seed ran with.
        assert_eq!(
            (c.grpo.loss_type, c.grpo.beta, c.grpo.epsilon),
            (crate::grpo::LossType::Bnpo, 0.04, 0.2)
        );
    }

    #[test]
    fn the_readme_rewards_example_is_a_valid_config() {
        let readme =
            std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../../README.md"))
                .unwrap();
        let start = readme.find("```toml\n").expect("README has a toml block") + 8;
        let block = &readme[start..start + readme[start..].find("```").unwrap()];
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("rewards.toml");
        std::fs::write(&path, block).unwrap();
        let c = TrainConfig::load(Some(&path)).unwrap();
        let judge = &c.rewards[2];
        assert_eq!(
            (judge.kind.as_str(), judge.endpoint.as_deref(), judge.weight),
            ("http", Some("http://127.0.0.1:9000/score"), 0.25)
        );
        assert!(judge.scoring.is_some_and(|s| s.partial));
        // The built-in entries build as written (the http one needs its token variable).
        build_rewards(&c.rewards[1..2], &[]).unwrap();
    }

    #[test]
    fn defaults_are_trl_grpo_config() {
        let c = TrainConfig::default();
        assert_eq!(
            (
                c.grpo.num_generations,
                c.sampling.max_new_tokens,
                c.optim.learning_rate
            ),
            (8, 512, 1e-6)
        );
        assert_eq!(
            (
                c.optim.adam_beta2,
                c.optim.max_grad_norm,
                c.optim.lr_scheduler_type
            ),
            (0.999, 1.0, sqlrft_model::optim::LrSchedule::Linear)
        );
        assert_eq!(
            (
                c.grpo.scale_rewards,
                c.grpo.num_iterations,
                c.grpo.mask_truncated_completions
            ),
            (crate::grpo::ScaleRewards::Group, 1, false)
        );
    }

    #[test]
    fn the_train_table_of_sqlrft_toml_then_the_environment() {
        use sqlrft_core::config::env_from;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sqlrft.toml");
        std::fs::write(
            &file,
            "[mcp]\nport = 1\n[train]\nmax_steps = 7\nseed = 5\n[train.grpo]\nbeta = 0.5\n",
        )
        .unwrap();
        let from_file = TrainConfig::load_with_env(Some(&file), env_from(&[])).unwrap();
        assert_eq!((from_file.max_steps, from_file.seed), (7, 5));
        assert_eq!(from_file.grpo.beta, 0.5);
        assert_eq!(
            from_file.sampling,
            TrainConfig::default().sampling,
            "what the table leaves out keeps its default"
        );

        // compose's own SQLRFT_TRAIN_MODEL is not a setting and must not be refused as one.
        let env = env_from(&[
            ("SQLRFT_TRAIN_MAX_STEPS", "9"),
            ("SQLRFT_TRAIN_MODEL", "Qwen/Qwen2.5-0.5B-Instruct"),
        ]);
        let from_env = TrainConfig::load_with_env(Some(&file), env).unwrap();
        assert_eq!((from_env.max_steps, from_env.seed), (9, 5));

        let bad = env_from(&[("SQLRFT_TRAIN_SEED", "many")]);
        let err = format!(
            "{:#}",
            TrainConfig::load_with_env(Some(&file), bad).unwrap_err()
        );
        assert!(
            err.contains("`train`") && err.contains("SQLRFT_TRAIN_"),
            "{err}"
        );

        // A sqlrft.toml without [train] given to --config is read as a settings file of its
        // own, and its other tables are named as the mistake.
        std::fs::write(&file, "[mcp]\nport = 1\n").unwrap();
        let err = format!(
            "{:#}",
            TrainConfig::load_with_env(Some(&file), env_from(&[])).unwrap_err()
        );
        assert!(err.contains("mcp") && err.contains("[train]"), "{err}");
    }

    #[test]
    fn bad_configs_are_rejected_with_the_field_named() {
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("bad.toml");
        std::fs::write(&p, "[grpo]\nnum_generations = 1\n").unwrap();
        assert!(
            format!("{:#}", TrainConfig::load(Some(&p)).unwrap_err()).contains("num_generations")
        );
        std::fs::write(&p, "[optim]\nlearning_rat = 1.0\n").unwrap();
        assert!(format!("{:#}", TrainConfig::load(Some(&p)).unwrap_err()).contains("learning_rat"));
        assert!(
            TrainConfig::load(Some(&dir.path().join("missing.toml")))
                .unwrap_err()
                .to_string()
                .contains("does not exist")
        );
    }
}
