//! The worker's loop: take the next prompts, sample G completions each with the newest policy
//! the generation server holds, score the groups, and buffer the batch for trainers. Failures
//! (the generator or the reward service down or slow) back off and show in the status; the
//! prompts of a failed round are tried again, and a group whose reward could not be computed
//! is left out and counted, never trained on.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_proto::v1::{Prompt, PromptBatch, RolloutBatch};
use sqlrft_trainer::data::{DataCursor, PromptStream};
use sqlrft_trainer::generator::{GeneratorClient, adapter_name};
use sqlrft_trainer::reward::RewardFunction;
use sqlrft_trainer::scoring::{all_scores_valid, encode_prompt, score_groups};
use sqlrft_trainer::tokenizer::ChatTokenizer;
use sqlrft_trainer::train::TrainConfig;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::buffer::RolloutBuffer;

/// Waits after failures grow from this…
const FIRST_BACKOFF: Duration = Duration::from_millis(250);
/// …to at most this.
const MAX_BACKOFF: Duration = Duration::from_secs(10);
/// How often a worker looks for the trainer's first policy adapter.
const POLICY_POLL: Duration = Duration::from_millis(200);
/// How often a worker with a full buffer looks for a newer policy (which makes some stale).
const STALE_CHECK: Duration = Duration::from_millis(500);

/// Everything one worker needs to make batches.
pub struct Worker {
    /// The worker's name, in every batch it makes.
    pub name: String,
    /// The round settings (shared with the trainer).
    pub cfg: TrainConfig,
    /// The policy's chat template and vocabulary.
    pub tokenizer: ChatTokenizer,
    /// Where completions are sampled.
    pub generator: GeneratorClient,
    /// The weighted reward functions.
    pub rewards: Vec<(Arc<dyn RewardFunction>, f64)>,
    /// Where the batches go.
    pub buffer: Arc<RolloutBuffer>,
    data: PromptStream,
    rng: ChaCha8Rng,
    /// Prompts of a round that failed, to try again.
    pending: Option<PromptBatch>,
    sequence: u64,
}

/// Why a round made no batch.
enum RoundError {
    /// The generator server failed; try again after a pause.
    Generator(anyhow::Error),
    /// Every group had a reward that could not be computed.
    AllInvalid(String),
    /// A bug or bad data: the worker stops.
    Fatal(anyhow::Error),
}

impl Worker {
    /// A worker over `prompts` (this worker's shard of the dataset).
    pub fn new(
        name: String,
        cfg: TrainConfig,
        tokenizer: ChatTokenizer,
        generator: GeneratorClient,
        rewards: Vec<(Arc<dyn RewardFunction>, f64)>,
        prompts: Vec<Prompt>,
        buffer: Arc<RolloutBuffer>,
    ) -> Result<Self> {
        if prompts.is_empty() {
            bail!("this worker's shard of the dataset has no prompts; use fewer shards");
        }
        // Workers of one run share the seed; their names keep their sampling apart.
        let salt = name
            .bytes()
            .fold(0u64, |h, b| h.rotate_left(5) ^ u64::from(b));
        let data = PromptStream::new(prompts, cfg.seed, DataCursor::default());
        let rng = ChaCha8Rng::seed_from_u64(cfg.seed ^ salt);
        Ok(Worker {
            name,
            cfg,
            tokenizer,
            generator,
            rewards,
            buffer,
            data,
            rng,
            pending: None,
            sequence: 0,
        })
    }

    /// Makes batches until `cancel` fires; returns an error only for what retrying cannot fix.
    pub async fn run(mut self, cancel: CancellationToken) -> Result<()> {
        let mut backoff = FIRST_BACKOFF;
        // `back_off` returns early when cancelled, so every pass checks first.
        while !cancel.is_cancelled() {
            let versions = match self.generator.policies().await {
                Ok(versions) => versions,
                Err(err) => {
                    self.back_off(
                        &format!("generator unavailable: {err:#}"),
                        &mut backoff,
                        &cancel,
                    )
                    .await;
                    continue;
                }
            };
            let Some(&version) = versions.last() else {
                self.buffer.set_state(
                    "waiting for a policy adapter (sqlrft-policy-step-N) on the generator",
                    None,
                );
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = tokio::time::sleep(POLICY_POLL) => {}
                }
                continue;
            };
            // A newer policy may have made buffered batches stale: their room is for fresh ones.
            self.buffer
                .drop_older_than(version.saturating_sub(self.cfg.max_staleness));
            if !self.buffer.has_room() {
                // Full: look again for a newer policy now and then, while a trainer pulls.
                tokio::select! {
                    _ = cancel.cancelled() => return Ok(()),
                    _ = self.buffer.wait_for_room() => {}
                    _ = tokio::time::sleep(STALE_CHECK) => {}
                }
                continue;
            }
            self.buffer.set_state("generating", Some(version));
            let span =
                tracing::info_span!("rollout.round", worker = %self.name, policy_version = version);
            let failure = match self.round(version).instrument(span).await {
                Ok(()) => None,
                Err(RoundError::Generator(err)) => Some(format!("generator failed: {err:#}")),
                Err(RoundError::AllInvalid(reason)) => {
                    Some(format!("no group could be scored: {reason}"))
                }
                Err(RoundError::Fatal(err)) => {
                    self.buffer.set_state(format!("stopped: {err:#}"), None);
                    return Err(err);
                }
            };
            match failure {
                None => backoff = FIRST_BACKOFF,
                Some(error) => self.back_off(&error, &mut backoff, &cancel).await,
            }
        }
        Ok(())
    }

    /// Shows `error` in the status and waits `backoff` (or until cancelled), doubling it.
    async fn back_off(&self, error: &str, backoff: &mut Duration, cancel: &CancellationToken) {
        tracing::warn!(worker = %self.name, %error, backoff_s = backoff.as_secs_f64(), "rollout round failed");
        self.buffer.record_failure(error, *backoff);
        tokio::select! {
            _ = cancel.cancelled() => {}
            _ = tokio::time::sleep(*backoff) => {}
        }
        *backoff = (*backoff * 2).min(MAX_BACKOFF);
    }

    /// Samples and scores one round with policy `version` and buffers it.
    async fn round(&mut self, version: u64) -> Result<(), RoundError> {
        let prompts = match self.pending.take() {
            Some(batch) => batch,
            None => self.data.next_batch(self.cfg.prompts_per_step),
        };
        let prompt_ids: Vec<Vec<u32>> = prompts
            .prompts
            .iter()
            .map(|p| encode_prompt(&self.tokenizer, p, self.cfg.max_prompt_length))
            .collect::<Result<_>>()
            .map_err(RoundError::Fatal)?;
        let started = Instant::now();
        let seed = self.rng.next_u64();
        let sampled = match self
            .generator
            .generate(
                &adapter_name(version),
                &prompt_ids,
                self.cfg.grpo.num_generations,
                &self.cfg.sampling,
                seed,
            )
            .await
        {
            Ok(sampled) => sampled,
            Err(err) => {
                self.pending = Some(prompts);
                return Err(RoundError::Generator(err));
            }
        };
        let generation_seconds = started.elapsed().as_secs_f64();
        let generated_tokens: u64 = sampled
            .iter()
            .flatten()
            .map(|s| s.tokens.len() as u64)
            .sum();
        let epoch = prompts.epoch;
        let keep = prompts.clone();
        let round = prompts.prompts.into_iter().zip(prompt_ids).collect();
        let groups = score_groups(
            &self.rewards,
            &self.tokenizer,
            round,
            sampled,
            self.cfg.grpo.scale_rewards,
        )
        .await
        .map_err(RoundError::Fatal)?;
        let total = groups.len();
        let (valid, invalid): (Vec<_>, Vec<_>) = groups.into_iter().partition(all_scores_valid);
        if valid.is_empty() {
            self.buffer.record_invalid_groups(total as u32);
            self.pending = Some(keep);
            let reason = invalid
                .iter()
                .flat_map(|g| &g.completions)
                .flat_map(|c| &c.rewards)
                .find(|r| !r.valid)
                .map(|r| format!("reward `{}`: {}", r.name, r.reason))
                .unwrap_or_default();
            return Err(RoundError::AllInvalid(reason));
        }
        let dropped = (total - valid.len()) as u32;
        if dropped > 0 {
            self.buffer.record_invalid_groups(dropped);
        }
        self.sequence += 1;
        let batch = RolloutBatch {
            policy_version: version,
            groups: valid,
            id: format!("{}/{}", self.name, self.sequence),
            worker: self.name.clone(),
            temperature: self.cfg.sampling.temperature,
            generated_tokens,
            generation_seconds,
            dropped_invalid_groups: dropped,
            epoch,
        };
        let rate = generated_tokens as f64 / generation_seconds.max(1e-9);
        self.buffer.push(batch, rate);
        Ok(())
    }
}
