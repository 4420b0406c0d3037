//! The model contract's [`Backend`] on the GPU: what `sqlrft train --device cuda` runs.
//!
//! The trainer loads a model once, as the CPU reference's [`CpuModel`] (config, layout and
//! weights through `sqlrft-model`), and [`CudaBackend::new`] uploads it. The GRPO loop then drives
//! this backend exactly as it drives [`sqlrft_model::backend::CpuBackend`]: token ids in,
//! log-probs and scalars out. The host-side planning (padding sequences into rectangular
//! micro-batches, reading completion scores back out, per-completion random streams, the flat
//! trainable state) is plain code below, tested without a GPU.

use crate::device::Gpu;
use crate::model::{Attention, GpuModel, ModelDims};
use crate::train::{GpuTrainer, Scoring, TensorState};
use anyhow::{Result, bail, ensure};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_model::backend::{Backend, Policy, Sequence, TokenScores, TrainableState};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::{CpuModel, GradTarget};
use sqlrft_model::lora::LoraConfig;
use sqlrft_model::optim::OptimParams;
use sqlrft_model::params::Layout;
use sqlrft_model::sampling::{Sampled, SamplingParams};

/// How the GPU backend batches its passes.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct CudaOptions {
    /// Sequences per forward/backward pass (padded to the longest of them).
    pub micro_batch: usize,
    /// Rows of logits the lm head materialises at once.
    pub chunk_rows: usize,
    /// Which attention kernels run.
    pub attention: Attention,
}

impl Default for CudaOptions {
    fn default() -> Self {
        Self {
            micro_batch: 8,
            chunk_rows: 1024,
            attention: Attention::Flash,
        }
    }
}

/// The GPU implementation of [`Backend`].
pub struct CudaBackend {
    gpu: Gpu,
    trainer: GpuTrainer,
    /// The host copy of the model as loaded: base weights (frozen under LoRA) and the layouts
    /// the trainable state is exchanged in.
    host: CpuModel,
    target: GradTarget,
    /// Frozen base weights for the KL term under full fine-tuning.
    reference: Option<GpuModel>,
    options: CudaOptions,
}

impl CudaBackend {
    /// Uploads `model` to `gpu`. Trains its adapters when it has them (`lora` must then be the
    /// config they were laid out from), otherwise every weight; `keep_reference` keeps a frozen
    /// copy of the base for the KL term under full fine-tuning, as the CPU backend does.
    pub fn new(
        gpu: Gpu,
        model: CpuModel,
        lora: Option<&LoraConfig>,
        keep_reference: bool,
        options: CudaOptions,
    ) -> Result<Self> {
        ensure!(
            options.micro_batch > 0 && options.chunk_rows > 0,
            "micro_batch and chunk_rows must be at least 1"
        );
        let dims = ModelDims::from_config(model.config.clone())?;
        let base = |name: &str, _len: usize| -> Result<Vec<f32>> {
            tensor(&model.layout.layout, &model.base, name)
        };
        let (target, mut trainer) = match (&model.lora, lora) {
            (Some((layout, adapters)), Some(cfg)) => {
                ensure!(
                    layout.rank == cfg.rank,
                    "the adapters have rank {}, the LoRA config says {}",
                    layout.rank,
                    cfg.rank
                );
                let trainer = GpuTrainer::upload_lora(
                    &gpu,
                    dims.clone(),
                    &mut base.clone(),
                    cfg.clone(),
                    &mut |name, _| tensor(&layout.layout, adapters, name),
                )?;
                (GradTarget::Lora, trainer)
            }
            (None, None) => (
                GradTarget::Base,
                GpuTrainer::upload(&gpu, dims.clone(), &mut base.clone())?,
            ),
            _ => bail!("the model's adapters and the LoRA config must come together"),
        };
        trainer.model.attention = options.attention;
        let reference = if keep_reference && target == GradTarget::Base {
            let mut r = GpuModel::upload(&gpu, dims, &mut base.clone())?;
            r.attention = options.attention;
            Some(r)
        } else {
            None
        };
        Ok(Self {
            gpu,
            trainer,
            host: model,
            target,
            reference,
            options,
        })
    }

    /// The GPU this backend runs on.
    pub fn gpu(&self) -> &Gpu {
        &self.gpu
    }

    /// The accumulated gradients, laid out as [`Backend::trainable_layout`] (what
    /// `CpuBackend::grads` returns, for holding one to the other).
    pub fn grads(&self) -> Result<Vec<f32>> {
        let layout = self.trainable_layout();
        let mut out = Vec::with_capacity(layout.len);
        for t in &layout.tensors {
            out.extend(self.trainer.grad_host(&self.gpu, &t.name)?);
        }
        Ok(out)
    }

    fn check(&self, seqs: &[Sequence]) -> Result<()> {
        let vocab = self.host.config.vocab_size;
        for s in seqs {
            ensure!(
                s.prompt_len > 0 && s.prompt_len < s.tokens.len(),
                "a scored sequence needs a non-empty prompt and completion (prompt_len {} of {} tokens)",
                s.prompt_len,
                s.tokens.len()
            );
            if let Some(t) = s.tokens.iter().find(|&&t| t as usize >= vocab) {
                bail!("token id {t} is outside the model's vocabulary ({vocab})");
            }
        }
        Ok(())
    }
}

/// One tensor of a flat buffer laid out as `layout`.
fn tensor(layout: &Layout, data: &[f32], name: &str) -> Result<Vec<f32>> {
    let t = layout
        .get(name)
        .ok_or_else(|| anyhow::anyhow!("the model layout has no tensor `{name}`"))?;
    Ok(data[t.range()].to_vec())
}

/// A rectangular batch of consecutive sequences, right-padded to the longest (causal attention
/// never lets a real position see the padding after it).
#[derive(Clone, Debug, PartialEq)]
pub struct PaddedBatch {
    /// Index of the first sequence.
    pub first: usize,
    /// Sequences in the batch.
    pub rows: usize,
    /// Tokens per row.
    pub t: usize,
    /// `rows × t` token ids.
    pub tokens: Vec<i32>,
}

/// Splits `seqs` into batches of at most `micro_batch` consecutive sequences.
pub fn plan_batches(seqs: &[Sequence], micro_batch: usize) -> Vec<PaddedBatch> {
    seqs.chunks(micro_batch.max(1))
        .enumerate()
        .map(|(k, chunk)| {
            let t = chunk.iter().map(|s| s.tokens.len()).max().unwrap_or(0);
            let mut tokens = Vec::with_capacity(chunk.len() * t);
            for s in chunk {
                tokens.extend(s.tokens.iter().map(|&x| x as i32));
                // Any in-vocabulary id will do: nothing real attends to or scores it.
                tokens.extend(std::iter::repeat_n(s.tokens[0] as i32, t - s.tokens.len()));
            }
            PaddedBatch {
                first: k * micro_batch.max(1),
                rows: chunk.len(),
                t,
                tokens,
            }
        })
        .collect()
}

/// The completion part of row `row`'s scores: the pass scores position `p` on token `p + 1`,
/// `t - 1` values per row, so completion token `j` is at `prompt_len - 1 + j`.
pub fn completion_range(seq: &Sequence, row: usize, t: usize) -> std::ops::Range<usize> {
    let start = row * (t - 1) + seq.prompt_len - 1;
    start..start + (seq.tokens.len() - seq.prompt_len)
}

/// Per-sequence scores out of a batch's `[rows, t - 1]` log-probs and entropies.
pub fn split_scores(
    seqs: &[Sequence],
    batch: &PaddedBatch,
    logps: &[f32],
    entropies: &[f32],
) -> Vec<TokenScores> {
    (0..batch.rows)
        .map(|r| {
            let range = completion_range(&seqs[batch.first + r], r, batch.t);
            TokenScores {
                logps: logps[range.clone()].to_vec(),
                entropies: entropies[range].to_vec(),
            }
        })
        .collect()
}

/// One uniform draw per row per decoding step, row `r` from its own stream: completion `j` of
/// prompt `i` (row `i · n + j`) is seeded by the `(i · n + j)`-th `u64` of the caller's rng, as
/// the contract requires.
pub struct RowStreams {
    streams: Vec<ChaCha8Rng>,
    next: usize,
}

impl RowStreams {
    /// `rows` streams seeded from `rng`.
    pub fn new(rows: usize, rng: &mut ChaCha8Rng) -> Self {
        Self {
            streams: (0..rows)
                .map(|_| ChaCha8Rng::seed_from_u64(rng.next_u64()))
                .collect(),
            next: 0,
        }
    }

    /// The next row's draw; rows take turns in order.
    pub fn draw(&mut self) -> f32 {
        let r = self.next;
        self.next = (r + 1) % self.streams.len();
        self.streams[r].random::<f32>()
    }
}

/// Concatenates per-tensor states in `layout` order into the contract's flat state.
pub fn flatten_state(
    layout: &Layout,
    mut read: impl FnMut(&str) -> Result<TensorState>,
    adam_t: u64,
) -> Result<TrainableState> {
    let mut out = TrainableState {
        params: Vec::with_capacity(layout.len),
        adam_m: Vec::with_capacity(layout.len),
        adam_v: Vec::with_capacity(layout.len),
        adam_t,
    };
    for t in &layout.tensors {
        let s = read(&t.name)?;
        ensure!(
            s.master.len() == t.len(),
            "tensor `{}` has {} values on the GPU, the layout says {}",
            t.name,
            s.master.len(),
            t.len()
        );
        out.params.extend(s.master);
        out.adam_m.extend(s.m);
        out.adam_v.extend(s.v);
    }
    Ok(out)
}

/// Splits the contract's flat state into per-tensor states, in `layout` order.
pub fn split_state(layout: &Layout, state: &TrainableState) -> Result<Vec<(String, TensorState)>> {
    let n = layout.len;
    ensure!(
        state.params.len() == n && state.adam_m.len() == n && state.adam_v.len() == n,
        "checkpoint has {} trainable values, this model and LoRA config have {n}",
        state.params.len()
    );
    Ok(layout
        .tensors
        .iter()
        .map(|t| {
            let r = t.range();
            (
                t.name.clone(),
                TensorState {
                    master: state.params[r.clone()].to_vec(),
                    m: state.adam_m[r.clone()].to_vec(),
                    v: state.adam_v[r].to_vec(),
                },
            )
        })
        .collect())
}

impl Backend for CudaBackend {
    fn config(&self) -> &ModelConfig {
        &self.host.config
    }

    fn generate(
        &mut self,
        prompts: &[&[u32]],
        n: usize,
        params: &SamplingParams,
        eos: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<Sampled>>> {
        let vocab = self.host.config.vocab_size;
        for p in prompts {
            ensure!(!p.is_empty(), "a prompt is empty");
            if let Some(t) = p.iter().find(|&&t| t as usize >= vocab) {
                bail!("token id {t} is outside the model's vocabulary ({vocab})");
            }
        }
        let mut streams = RowStreams::new(prompts.len() * n, rng);
        if prompts.is_empty() || n == 0 || params.max_new_tokens == 0 {
            return Ok(prompts
                .iter()
                .map(|_| {
                    (0..n)
                        .map(|_| Sampled {
                            tokens: vec![],
                            logprobs: vec![],
                            truncated: true,
                        })
                        .collect()
                })
                .collect());
        }
        let rows: Vec<Vec<i32>> = prompts
            .iter()
            .flat_map(|p| std::iter::repeat_n(p.iter().map(|&t| t as i32).collect(), n))
            .collect();
        let eos: Vec<i32> = eos.iter().map(|&t| t as i32).collect();
        let done = self
            .trainer
            .model
            .generate(&self.gpu, &rows, params, &eos, &mut || streams.draw())?;
        let mut sampled = done.into_iter().map(|c| Sampled {
            tokens: c.tokens.into_iter().map(|t| t as u32).collect(),
            logprobs: c.logps,
            truncated: c.truncated,
        });
        Ok((0..prompts.len())
            .map(|_| sampled.by_ref().take(n).collect())
            .collect())
    }

    fn score(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        policy: Policy,
    ) -> Result<Vec<TokenScores>> {
        self.check(seqs)?;
        let mut all = Vec::with_capacity(seqs.len());
        for batch in plan_batches(seqs, self.options.micro_batch) {
            let scores = match (policy, &self.reference) {
                (Policy::Reference, Some(r)) => r.score(
                    &self.gpu,
                    &batch.tokens,
                    batch.rows,
                    batch.t,
                    temperature,
                    self.options.chunk_rows,
                )?,
                _ => {
                    let scoring = Scoring {
                        temperature,
                        chunk_rows: self.options.chunk_rows,
                        adapters: policy == Policy::Trained,
                    };
                    self.trainer
                        .forward_with(&self.gpu, &batch.tokens, batch.rows, batch.t, scoring)?
                        .1
                }
            };
            all.extend(split_scores(seqs, &batch, &scores.logps, &scores.entropies));
        }
        Ok(all)
    }

    fn forward_backward(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        dloss: &mut dyn FnMut(usize, &TokenScores) -> Vec<f32>,
    ) -> Result<Vec<TokenScores>> {
        self.check(seqs)?;
        let mut all = Vec::with_capacity(seqs.len());
        for batch in plan_batches(seqs, self.options.micro_batch) {
            let (saved, scores) = self.trainer.forward(
                &self.gpu,
                &batch.tokens,
                batch.rows,
                batch.t,
                temperature,
                self.options.chunk_rows,
            )?;
            let per_seq = split_scores(seqs, &batch, &scores.logps, &scores.entropies);
            let mut dlogp = vec![0.0f32; batch.rows * (batch.t - 1)];
            for (r, s) in per_seq.iter().enumerate() {
                let i = batch.first + r;
                let g = dloss(i, s);
                ensure!(
                    g.len() == s.logps.len(),
                    "dloss returned {} values for {} completion tokens",
                    g.len(),
                    s.logps.len()
                );
                dlogp[completion_range(&seqs[i], r, batch.t)].copy_from_slice(&g);
            }
            // A batch with nothing to propagate (masked out, zero advantage, no KL) skips the
            // backward, as the CPU reference does per sequence.
            if dlogp.iter().any(|&g| g != 0.0) {
                self.trainer.backward(&self.gpu, saved, &dlogp)?;
            }
            all.extend(per_seq);
        }
        Ok(all)
    }

    fn zero_grad(&mut self) -> Result<()> {
        self.trainer.zero_grad(&self.gpu)
    }

    fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        self.trainer.clip_grad_norm(&self.gpu, max_norm)
    }

    fn optimizer_step(&mut self, lr: f64, params: &OptimParams) -> Result<()> {
        self.trainer.optimizer_step(&self.gpu, lr, params)
    }

    fn trainable_layout(&self) -> &Layout {
        match self.target {
            GradTarget::Base => &self.host.layout.layout,
            GradTarget::Lora => &self.host.lora.as_ref().expect("adapters").0.layout,
        }
    }

    fn trainable_state(&self) -> Result<TrainableState> {
        flatten_state(
            self.trainable_layout(),
            |name| self.trainer.read_state(&self.gpu, name),
            self.trainer.step,
        )
    }

    fn load_trainable_state(&mut self, state: TrainableState) -> Result<()> {
        for (name, s) in split_state(self.trainable_layout(), &state)? {
            self.trainer.write_state(&self.gpu, &name, &s)?;
        }
        self.trainer.step = state.adam_t;
        Ok(())
    }

    fn merged_weights(&self) -> Result<Vec<f32>> {
        let state = self.trainable_state()?;
        let mut host = self.host.clone();
        *host.trainable_mut(self.target) = state.params;
        Ok(host.merged_base())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlrft_model::params::Layout;

    fn seq(tokens: &[u32], prompt_len: usize) -> Sequence<'_> {
        Sequence { tokens, prompt_len }
    }

    #[test]
    fn batches_pad_to_their_longest_and_keep_order() {
        let (a, b, c) = ([1, 2, 3], [4, 5, 6, 7, 8], [9, 10]);
        let seqs = [seq(&a, 1), seq(&b, 2), seq(&c, 1)];
        let plan = plan_batches(&seqs, 2);
        assert_eq!(plan.len(), 2);
        assert_eq!((plan[0].first, plan[0].rows, plan[0].t), (0, 2, 5));
        assert_eq!(plan[0].tokens, vec![1, 2, 3, 1, 1, 4, 5, 6, 7, 8]);
        assert_eq!((plan[1].first, plan[1].rows, plan[1].t), (2, 1, 2));
        assert_eq!(plan[1].tokens, vec![9, 10]);
    }

    #[test]
    fn completion_scores_come_from_their_rows_positions() {
        let (a, b) = ([1, 2, 3], [4, 5, 6, 7, 8]);
        let seqs = [seq(&a, 1), seq(&b, 3)];
        let plan = plan_batches(&seqs, 8);
        let t = plan[0].t;
        // Each value names its own (row, position) so a wrong offset shows.
        let logps: Vec<f32> = (0..2 * (t - 1)).map(|i| i as f32).collect();
        let ent: Vec<f32> = logps.iter().map(|x| -x).collect();
        let s = split_scores(&seqs, &plan[0], &logps, &ent);
        // Row 0: prompt 1 token, completion [2, 3] scored at positions 0 and 1.
        assert_eq!(s[0].logps, vec![0.0, 1.0]);
        // Row 1: prompt 3 tokens, completion [7, 8] scored at positions 2 and 3 of row 1.
        assert_eq!(s[1].logps, vec![(t - 1 + 2) as f32, (t - 1 + 3) as f32]);
        assert_eq!(s[1].entropies, vec![-((t + 1) as f32), -((t + 2) as f32)]);
    }

    #[test]
    fn each_row_draws_from_its_own_stream() {
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        let mut streams = RowStreams::new(3, &mut rng);
        let draws: Vec<f32> = (0..6).map(|_| streams.draw()).collect();
        // Row 1's stream alone, seeded by the caller's second u64.
        let mut rng = ChaCha8Rng::seed_from_u64(7);
        rng.next_u64();
        let mut row1 = ChaCha8Rng::seed_from_u64(rng.next_u64());
        assert_eq!(draws[1], row1.random::<f32>());
        assert_eq!(draws[4], row1.random::<f32>());
        assert_ne!(draws[0], draws[1]);
    }

    #[test]
    fn trainable_state_round_trips_through_the_layout() {
        let mut layout = Layout::default();
        layout.push("a".into(), vec![2]);
        layout.push("b".into(), vec![3]);
        let state = TrainableState {
            params: vec![1.0, 2.0, 3.0, 4.0, 5.0],
            adam_m: vec![0.1, 0.2, 0.3, 0.4, 0.5],
            adam_v: vec![9.0, 8.0, 7.0, 6.0, 5.0],
            adam_t: 4,
        };
        let parts = split_state(&layout, &state).unwrap();
        assert_eq!(parts[1].0, "b");
        assert_eq!(parts[1].1.master, vec![3.0, 4.0, 5.0]);
        let back = flatten_state(
            &layout,
            |name| Ok(parts.iter().find(|(n, _)| n == name).unwrap().1.clone()),
            4,
        )
        .unwrap();
        assert_eq!(back, state);
        let short = TrainableState {
            params: vec![1.0],
            ..state
        };
        let err = split_state(&layout, &short).unwrap_err().to_string();
        assert!(
            err.contains("1 trainable values") && err.contains('5'),
            "{err}"
        );
    }
}
