//! Supervised fine-tuning: cross-entropy on the assistant turns of chat conversations, the
//! seed project's first stage (TRL's `SFTTrainer`, 2 epochs) before GRPO.
//!
//! The loss is TRL's with `assistant_only_loss`: the mean negative log-likelihood of every
//! token the chat template renders inside an assistant turn (its content and the end-of-turn
//! token), over all such tokens of the optimizer step; everything else the template renders
//! (system and user turns, role headers, the generation prompt) is context only. On the
//! backend this is [`Backend::forward_backward`] with `∂loss/∂logp = −1/N` on those tokens and
//! 0 elsewhere, at temperature 1: the same logp gradient GRPO uses, so no second backward.

use crate::checkpoint::{self, CheckpointState, RngState};
use crate::data::{DataCursor, RawMessage, to_messages};
use crate::rollout::ChatMessage;
use crate::tokenizer::ChatTokenizer;
use anyhow::{Context, Result, bail};
use rand::SeedableRng;
use rand::seq::SliceRandom;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sqlrft_model::backend::{Backend, Sequence, TrainableState};
use sqlrft_model::optim::{LrSchedule, OptimParams};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

/// The SFT stage's settings; defaults are TRL's `SFTConfig` (lr 2e-5, batch 8, linear decay,
/// `max_length` 1024, no packing).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SftParams {
    /// Epochs over the SFT dataset that `sqlrft train` runs before GRPO (0: none).
    /// `sqlrft train sft` runs `max(epochs, 1)`.
    pub epochs: u64,
    /// Optimizer steps to run instead of the epochs' (TRL's `max_steps`).
    pub max_steps: Option<u64>,
    /// Peak learning rate.
    pub learning_rate: f64,
    /// Conversations per optimizer step (TRL: `per_device_train_batch_size`; accumulation is
    /// the same thing here, since the loss is averaged over the step's tokens either way).
    pub batch_size: usize,
    /// Steps of linear warm-up from 0.
    pub warmup_steps: u64,
    /// AdamW's decoupled weight decay.
    pub weight_decay: f64,
    /// The learning-rate schedule after warm-up.
    pub lr_scheduler_type: LrSchedule,
    /// Conversations (or packed chunks) longer than this keep their first tokens.
    pub max_length: usize,
    /// Concatenate the epoch's conversations and cut them into `max_length` chunks (TRL's
    /// `packing_strategy = "wrapped"`: a chunk's tokens attend across conversation boundaries).
    pub packing: bool,
    /// Checkpoint every this many steps (and at the end, and on Ctrl-C / SIGTERM).
    pub save_steps: u64,
}

impl Default for SftParams {
    fn default() -> Self {
        Self {
            epochs: 0,
            max_steps: None,
            learning_rate: 2e-5,
            batch_size: 8,
            warmup_steps: 0,
            weight_decay: 0.0,
            lr_scheduler_type: LrSchedule::Linear,
            max_length: 1024,
            packing: false,
            save_steps: 500,
        }
    }
}

impl SftParams {
    /// Learning rate at `step` of `total`: linear warm-up over `warmup_steps`, then the schedule.
    pub fn lr_at(&self, step: u64, total: u64) -> f64 {
        if step < self.warmup_steps {
            return self.learning_rate * step as f64 / self.warmup_steps.max(1) as f64;
        }
        self.optim(0.0).lr_at(
            (step - self.warmup_steps) as usize,
            total.saturating_sub(self.warmup_steps) as usize,
        )
    }

    /// AdamW settings for the update: the GRPO section's betas and epsilon, this section's
    /// rate, decay and schedule.
    fn optim(&self, max_grad_norm: f64) -> OptimParams {
        OptimParams {
            learning_rate: self.learning_rate,
            weight_decay: self.weight_decay,
            lr_scheduler_type: self.lr_scheduler_type,
            warmup_ratio: 0.0,
            max_grad_norm,
            ..OptimParams::default()
        }
    }
}

/// One training sequence: token ids and, per token, whether it is a loss target.
#[derive(Clone, Debug, PartialEq)]
pub struct SftExample {
    /// Token ids.
    pub tokens: Vec<u32>,
    /// Per token, whether it is a loss target (an assistant token).
    pub targets: Vec<bool>,
}

impl SftExample {
    fn target_count(&self) -> usize {
        // The first token has nothing before it to predict it from.
        self.targets.iter().skip(1).filter(|&&t| t).count()
    }
}

#[derive(Deserialize)]
struct RawRow {
    #[serde(default)]
    messages: Option<Vec<RawMessage>>,
    #[serde(default)]
    prompt: Option<serde_json::Value>,
    #[serde(default)]
    think: Option<String>,
    #[serde(default)]
    sql: Option<String>,
    #[serde(default)]
    generation: Option<String>,
}

/// The seed's `correct_reasoning_format`: the answer re-laid as
/// `<think>\n…\n</think>\n<sql>\n…\n</sql>` from its reasoning and SQL.
pub fn seed_answer(think: &str, sql: &str) -> String {
    format!(
        "<think>\n{}\n</think>\n<sql>\n{}\n</sql>",
        crate::seed::python_strip(think),
        crate::seed::python_strip(sql)
    )
}

/// One SFT conversation from a JSONL row: `messages` with at least one assistant turn (the
/// builder's rows, any chat dataset), or a `sqlrft distill` row (`prompt` plus the teacher's
/// `think` and `sql`, or its `generation`), whose answer is laid out as the seed lays it out.
pub fn parse_row(line: &str) -> Result<Vec<ChatMessage>> {
    let row: RawRow = serde_json::from_str(line)?;
    if let Some(messages) = row.messages {
        let messages = to_messages(messages);
        if !messages.iter().any(|m| m.role == "assistant") {
            bail!("`messages` has no assistant turn to learn");
        }
        return Ok(messages);
    }
    let mut messages = match row.prompt {
        Some(serde_json::Value::String(s)) => vec![ChatMessage {
            role: "user".into(),
            content: s,
        }],
        Some(p @ serde_json::Value::Array(_)) => to_messages(serde_json::from_value(p)?),
        _ => bail!(
            "the row has neither `messages` (a conversation with assistant turns) nor `prompt` \
             (a `sqlrft distill` row)"
        ),
    };
    let answer = match (row.think, row.sql, row.generation) {
        (Some(think), Some(sql), _) if !sql.trim().is_empty() => seed_answer(&think, &sql),
        (_, _, Some(generation)) => {
            let think = generation
                .find("<think>")
                .and_then(|a| {
                    let body = &generation[a + 7..];
                    body.find("</think>").map(|b| &body[..b])
                })
                .unwrap_or("");
            match crate::seed::extract_sql(&generation) {
                Some(sql) => seed_answer(think, sql),
                None => generation.clone(),
            }
        }
        _ => bail!("a `prompt` row needs the answer: `think` and `sql`, or `generation`"),
    };
    messages.push(ChatMessage {
        role: "assistant".into(),
        content: answer,
    });
    Ok(messages)
}

/// Every conversation of a JSONL file, each error naming its line.
pub fn load_rows(path: &Path) -> Result<Vec<Vec<ChatMessage>>> {
    let text = std::fs::read_to_string(path).with_context(|| {
        format!(
            "could not read SFT dataset `{}`; write one with `sqlrft distill` (or `sqlrft build`)",
            path.display()
        )
    })?;
    let rows: Vec<Vec<ChatMessage>> = text
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| parse_row(l).with_context(|| format!("`{}` line {}", path.display(), i + 1)))
        .collect::<Result<_>>()?;
    if rows.is_empty() {
        bail!("SFT dataset `{}` has no rows", path.display());
    }
    Ok(rows)
}

/// Tokenizes a conversation with the chat template, marking the assistant turns' tokens as
/// targets. A turn's span runs from where the template's generation prompt ends to the end of
/// the rendered turn (its end-of-turn token included, trailing whitespace not), found by
/// rendering the conversation up to each turn; each piece is tokenized on its own, so a span
/// boundary never falls inside a token. `None` when truncation leaves nothing to learn.
pub fn tokenize(
    tokenizer: &ChatTokenizer,
    messages: &[ChatMessage],
    max_length: usize,
) -> Result<Option<SftExample>> {
    let full = tokenizer.render(messages, false)?;
    let mut spans = Vec::new();
    for (k, m) in messages.iter().enumerate() {
        if m.role != "assistant" {
            continue;
        }
        let before = tokenizer.render(&messages[..k], true)?;
        let through = tokenizer.render(&messages[..=k], false)?;
        let end = through.trim_end().len();
        if !full.starts_with(&before) || !full.starts_with(&through[..end]) || before.len() > end {
            bail!(
                "the chat template does not render this conversation turn by turn (rendering it \
                 up to assistant turn {k} is not a prefix of the whole), so the assistant tokens \
                 cannot be told apart; use a template that renders incrementally"
            );
        }
        spans.push(before.len()..end);
    }
    let mut tokens = Vec::new();
    let mut targets = Vec::new();
    let mut at = 0;
    let mut push = |text: &str, target: bool| -> Result<()> {
        if !text.is_empty() {
            let ids = tokenizer.encode(text)?;
            targets.extend(std::iter::repeat_n(target, ids.len()));
            tokens.extend(ids);
        }
        Ok(())
    };
    for span in spans {
        if span.start < at {
            continue;
        }
        push(&full[at..span.start], false)?;
        push(&full[span.clone()], true)?;
        at = span.end;
    }
    push(&full[at..], false)?;
    tokens.truncate(max_length);
    targets.truncate(max_length);
    let example = SftExample { tokens, targets };
    Ok((example.target_count() > 0).then_some(example))
}

/// TRL's `wrapped` packing: the examples end to end, cut into `max_length` chunks (the last
/// may be shorter); chunks with nothing to learn are dropped.
pub fn pack(examples: &[SftExample], max_length: usize) -> Vec<SftExample> {
    let tokens: Vec<u32> = examples.iter().flat_map(|e| e.tokens.clone()).collect();
    let targets: Vec<bool> = examples.iter().flat_map(|e| e.targets.clone()).collect();
    tokens
        .chunks(max_length.max(2))
        .zip(targets.chunks(max_length.max(2)))
        .map(|(t, m)| SftExample {
            tokens: t.to_vec(),
            targets: m.to_vec(),
        })
        .filter(|e| e.tokens.len() >= 2 && e.target_count() > 0)
        .collect()
}

/// `∂loss/∂logp` for the tokens after `prompt_len`: −1/`total` on targets, 0 elsewhere, where
/// `total` is the step's target count (the mean over the step's tokens).
pub fn token_weights(example: &SftExample, prompt_len: usize, total: usize) -> Vec<f32> {
    let w = -1.0 / total.max(1) as f64;
    example.targets[prompt_len..]
        .iter()
        .map(|&t| if t { w as f32 } else { 0.0 })
        .collect()
}

/// Where scoring starts: the first target (at least 1: the first token predicts nothing).
fn prompt_len_of(example: &SftExample) -> usize {
    example
        .targets
        .iter()
        .skip(1)
        .position(|&t| t)
        .map_or(1, |p| p + 1)
}

/// One optimizer step's record in `metrics.jsonl`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SftMetrics {
    /// Optimizer steps taken, this one included.
    pub step: u64,
    /// Epochs completed.
    pub epoch: u64,
    /// Learning rate used by this step.
    pub lr: f64,
    /// Mean negative log-likelihood of the step's target tokens.
    pub loss: f64,
    /// Gradient norm before clipping.
    pub grad_norm: f64,
    /// Target tokens in the step.
    pub num_tokens: usize,
    /// Wall time since the run (or resume) started.
    pub elapsed_seconds: f64,
}

/// What a run needs besides the backend and tokenizer.
pub struct SftRun<'a> {
    /// Run directory: checkpoints, `metrics.jsonl` and `loss_curve.png`.
    pub output_dir: &'a Path,
    /// The base model, as recorded in checkpoints (for `train export`).
    pub model: &'a str,
    /// The whole training config (checkpoints record it; `sft` and `seed` are read).
    pub config: &'a crate::train::TrainConfig,
    /// Epochs to run.
    pub epochs: u64,
    /// Gradient-norm clip.
    pub max_grad_norm: f64,
    /// Continue from the run directory's latest checkpoint.
    pub resume: bool,
    /// Hide the progress bar.
    pub quiet: bool,
    /// Set (by Ctrl-C or SIGTERM) to checkpoint and stop.
    pub stop: Arc<AtomicBool>,
}

/// How an SFT run ended.
#[derive(Debug, PartialEq, Eq)]
pub enum SftOutcome {
    /// Every step ran (or had run before: the checkpoint was loaded).
    Finished {
        /// Optimizer steps of the whole run.
        steps: u64,
    },
    /// Stopped by a signal after checkpointing.
    Interrupted {
        /// Where it checkpointed.
        checkpoint: PathBuf,
    },
}

/// Tokenizes every conversation (packing them when asked).
pub fn prepare(
    tokenizer: &ChatTokenizer,
    rows: &[Vec<ChatMessage>],
    params: &SftParams,
) -> Result<Vec<SftExample>> {
    let examples: Vec<SftExample> = rows
        .iter()
        .enumerate()
        .map(|(i, m)| {
            tokenize(
                tokenizer,
                m,
                if params.packing {
                    usize::MAX
                } else {
                    params.max_length
                },
            )
            .with_context(|| format!("SFT row {}", i + 1))
        })
        .filter_map(Result::transpose)
        .collect::<Result<_>>()?;
    let examples = if params.packing {
        pack(&examples, params.max_length)
    } else {
        examples
    };
    if examples.is_empty() {
        bail!(
            "no SFT row has assistant tokens within max_length = {}",
            params.max_length
        );
    }
    Ok(examples)
}

fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng = ChaCha8Rng::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

fn save<B: Backend>(backend: &B, run: &SftRun, step: u64, cursor: DataCursor) -> Result<PathBuf> {
    let state = backend.trainable_state()?;
    let meta = CheckpointState {
        step,
        cursor,
        rng: RngState::capture(&ChaCha8Rng::seed_from_u64(run.config.seed)),
        adam_t: state.adam_t,
        lora: !run.config.full_finetune,
        config: serde_json::to_value(run.config)?,
        model: run.model.to_string(),
    };
    checkpoint::save(run.output_dir, backend.trainable_layout(), &state, &meta)
}

/// Runs SFT on `backend` over `examples`, checkpointing into `run.output_dir` (resumable like
/// GRPO: `--resume` continues from the latest checkpoint; a finished run's last checkpoint is
/// loaded and nothing more is done).
pub fn run_sft<B: Backend>(
    backend: &mut B,
    examples: &[SftExample],
    run: &SftRun,
) -> Result<SftOutcome> {
    let p = &run.config.sft;
    let per_step = p.batch_size.max(1);
    let steps_per_epoch = examples.len().div_ceil(per_step) as u64;
    // As in TRL, `max_steps` wins over the epochs.
    let total = p.max_steps.unwrap_or(steps_per_epoch * run.epochs);
    let out = run.output_dir;
    std::fs::create_dir_all(out)
        .with_context(|| format!("could not create `{}`", out.display()))?;
    let metrics_path = out.join("metrics.jsonl");
    let mut step = 0;
    let mut cursor = DataCursor::default();
    match (checkpoint::latest(out)?, run.resume) {
        (Some(dir), true) => {
            let (state, meta) = checkpoint::load(&dir, backend.trainable_layout())?;
            backend.load_trainable_state(state)?;
            (step, cursor) = (meta.step, meta.cursor);
            truncate_metrics(&metrics_path, step)?;
        }
        (None, _) => {
            if metrics_path.exists() {
                std::fs::remove_file(&metrics_path)?;
            }
        }
        (Some(_), false) => bail!(
            "`{}` already holds SFT checkpoints; pass --resume to continue that run or choose another --output-dir",
            out.display()
        ),
    }
    let bar = if run.quiet {
        indicatif::ProgressBar::hidden()
    } else {
        indicatif::ProgressBar::new(total)
    };
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{spinner} SFT [{elapsed_precise}] {bar:30} {pos}/{len} steps  {msg}",
        )
        .expect("valid progress template"),
    );
    bar.set_position(step);
    let optim = p.optim(run.max_grad_norm);
    let started = Instant::now();
    let mut order = epoch_order(examples.len(), run.config.seed, cursor.epoch);
    let mut last_saved = step;
    while step < total {
        if run.stop.load(Ordering::SeqCst) {
            let checkpoint = save(backend, run, step, cursor)?;
            plot(out)?;
            bar.abandon_with_message(format!("interrupted; checkpoint {}", checkpoint.display()));
            return Ok(SftOutcome::Interrupted { checkpoint });
        }
        if cursor.position as usize >= order.len() {
            cursor = DataCursor {
                epoch: cursor.epoch + 1,
                position: 0,
            };
            order = epoch_order(examples.len(), run.config.seed, cursor.epoch);
        }
        let start = cursor.position as usize;
        let batch: Vec<&SftExample> = order[start..(start + per_step).min(order.len())]
            .iter()
            .map(|&i| &examples[i])
            .collect();
        let epoch = cursor.epoch;
        cursor.position += batch.len() as u64;
        let metrics = sft_step(backend, &batch, p.lr_at(step, total), &optim)
            .with_context(|| format!("SFT step {}", step + 1))?;
        step += 1;
        let record = SftMetrics {
            step,
            epoch,
            elapsed_seconds: started.elapsed().as_secs_f64(),
            ..metrics
        };
        append_metrics(&metrics_path, &record)?;
        bar.set_position(step);
        bar.set_message(format!("loss {:.4}", record.loss));
        if p.save_steps > 0 && step % p.save_steps == 0 {
            save(backend, run, step, cursor)?;
            last_saved = step;
        }
    }
    if last_saved != step || checkpoint::latest(out)?.is_none() {
        save(backend, run, step, cursor)?;
    }
    plot(out)?;
    bar.finish_with_message(format!("SFT done: {step} steps in {}", out.display()));
    Ok(SftOutcome::Finished { steps: step })
}

/// One optimizer step over `batch`: forward/backward of the mean target NLL, clip, AdamW.
fn sft_step<B: Backend>(
    backend: &mut B,
    batch: &[&SftExample],
    lr: f64,
    optim: &OptimParams,
) -> Result<SftMetrics> {
    let total: usize = batch.iter().map(|e| e.target_count()).sum();
    let prompt_lens: Vec<usize> = batch.iter().map(|e| prompt_len_of(e)).collect();
    let seqs: Vec<Sequence> = batch
        .iter()
        .zip(&prompt_lens)
        .map(|(e, &prompt_len)| Sequence {
            tokens: &e.tokens,
            prompt_len,
        })
        .collect();
    backend.zero_grad()?;
    let mut nll = 0.0f64;
    let mut dloss = |i: usize, scores: &sqlrft_model::backend::TokenScores| -> Vec<f32> {
        let e = batch[i];
        let weights = token_weights(e, prompt_lens[i], total);
        for (t, &w) in weights.iter().enumerate() {
            if w != 0.0 {
                nll -= scores.logps[t] as f64;
            }
        }
        weights
    };
    backend.forward_backward(&seqs, 1.0, &mut dloss)?;
    let loss = nll / total.max(1) as f64;
    let grad_norm = backend.clip_grad_norm(optim.max_grad_norm)?;
    if !loss.is_finite() || !grad_norm.is_finite() {
        bail!(
            "the loss is {loss} and the gradient norm {grad_norm} — not finite, so training \
             stopped before applying the update; lower sft.learning_rate, or resume from the last \
             checkpoint with --resume"
        );
    }
    backend.optimizer_step(lr, optim)?;
    Ok(SftMetrics {
        step: 0,
        epoch: 0,
        lr,
        loss,
        grad_norm,
        num_tokens: total,
        elapsed_seconds: 0.0,
    })
}

/// Fresh AdamW moments over the current weights: the GRPO stage after SFT starts its own
/// optimizer, as a new TRL trainer does.
pub fn reset_optimizer<B: Backend>(backend: &mut B) -> Result<()> {
    let params = backend.trainable_state()?.params;
    let n = params.len();
    backend.load_trainable_state(TrainableState {
        params,
        adam_m: vec![0.0; n],
        adam_v: vec![0.0; n],
        adam_t: 0,
    })
}

fn append_metrics(path: &Path, m: &SftMetrics) -> Result<()> {
    use std::io::Write;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .with_context(|| format!("could not open metrics file `{}`", path.display()))?;
    writeln!(f, "{}", serde_json::to_string(m)?)?;
    Ok(())
}

/// Keeps the metrics of steps `<= step` (a resumed run rewrites what came after).
fn truncate_metrics(path: &Path, step: u64) -> Result<()> {
    if !path.exists() {
        return Ok(());
    }
    let text: String = std::fs::read_to_string(path)?
        .lines()
        .filter(|l| serde_json::from_str::<SftMetrics>(l).is_ok_and(|m| m.step <= step))
        .map(|l| format!("{l}\n"))
        .collect();
    Ok(sqlrft_files::write(path, text)?)
}

/// Draws the run's `metrics.jsonl` into `loss_curve.png` beside it.
fn plot(out: &Path) -> Result<()> {
    let path = out.join("metrics.jsonl");
    if !path.exists() {
        return Ok(());
    }
    crate::metrics::plot_loss_png(&out.join("loss_curve.png"), &read_metrics(&path)?)
}

/// Reads an SFT run's `metrics.jsonl`.
pub fn read_metrics(path: &Path) -> Result<Vec<SftMetrics>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read `{}`", path.display()))?;
    Ok(text
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(tokens: &[u32], targets: &[bool]) -> SftExample {
        SftExample {
            tokens: tokens.to_vec(),
            targets: targets.to_vec(),
        }
    }

    #[test]
    fn weights_are_minus_one_over_the_steps_targets() {
        let e = ex(&[1, 2, 3, 4, 5], &[false, false, true, false, true]);
        assert_eq!(prompt_len_of(&e), 2);
        // 2 targets here, 4 in the whole step: −1/4 on each target after the prompt.
        assert_eq!(token_weights(&e, 2, 4), vec![-0.25, 0.0, -0.25]);
    }

    #[test]
    fn packing_wraps_examples_into_chunks() {
        let a = ex(&[1, 2, 3], &[false, true, true]);
        let b = ex(&[4, 5, 6, 7], &[false, false, true, true]);
        let packed = pack(&[a, b], 4);
        assert_eq!(
            packed,
            vec![
                ex(&[1, 2, 3, 4], &[false, true, true, false]),
                ex(&[5, 6, 7], &[false, true, true]),
            ]
        );
    }

    #[test]
    fn distill_rows_become_the_seeds_conversation() {
        let m = parse_row(
            r#"{"prompt":[{"role":"system","content":"s"},{"role":"user","content":"q"}],
                "think":" count rows ","sql":"SELECT 1 ","generation":"ignored"}"#,
        )
        .unwrap();
        assert_eq!(m.len(), 3);
        assert_eq!(
            m[2].content,
            "<think>\ncount rows\n</think>\n<sql>\nSELECT 1\n</sql>"
        );
        let g = parse_row(r#"{"prompt":"q","generation":"<think>a</think> <sql>SELECT 2</sql>"}"#)
            .unwrap();
        assert_eq!(
            g[1].content,
            "<think>\na\n</think>\n<sql>\nSELECT 2\n</sql>"
        );
        assert!(
            parse_row(r#"{"messages":[{"role":"user","content":"q"}]}"#)
                .unwrap_err()
                .to_string()
                .contains("assistant")
        );
    }

    #[test]
    fn warmup_then_linear_decay() {
        let p = SftParams {
            learning_rate: 1.0,
            warmup_steps: 2,
            ..SftParams::default()
        };
        let lrs: Vec<f64> = (0..6).map(|s| p.lr_at(s, 6)).collect();
        assert_eq!(lrs, vec![0.0, 0.5, 1.0, 0.75, 0.5, 0.25]);
    }
}
