//! The contract between the GRPO loop and whatever runs the model, and its CPU reference.
//!
//! # Contract for implementors (the CPU reference here, `sqlrft-cuda`'s `CudaBackend`)
//!
//! A backend owns the model's weights, the trainable parameters' gradients and the AdamW state,
//! wherever they live (host or device memory). The loop only ever sees token ids, per-token
//! log-probs and scalars, so nothing large crosses the host/device boundary:
//!
//! * [`Backend::generate`] samples `n` completions of each prompt with the *trained* policy
//!   (adapters on), using [`crate::sampling::sample_token`]'s rules (temperature, top-k, top-p;
//!   stop at an EOS id, which is kept as the last token, or at `max_new_tokens`). Completion `j`
//!   of prompt `i` draws from its own ChaCha8 stream, seeded by the `i · n + j`-th `u64` of the
//!   caller's `rng`, so what it samples does not depend on which others decode beside it.
//! * [`Backend::score`] returns, for each sequence, `log softmax(logits / temperature)` at each
//!   completion token and the entropy of that distribution: exactly what TRL's
//!   `_get_per_token_logps_and_entropies` computes. [`Policy::Reference`] scores with the base
//!   weights (LoRA off), which is TRL's reference model when training adapters.
//! * [`Backend::forward_backward`] does the same forward for the trained policy, asks `dloss` for
//!   `∂loss/∂logp` of every completion token of that sequence, and *accumulates* the gradient of
//!   the trainable parameters. Gradients are zeroed only by [`Backend::zero_grad`], so several
//!   calls make one accumulated step.
//! * [`Backend::clip_grad_norm`] and [`Backend::optimizer_step`] apply torch's `clip_grad_norm_`
//!   and `AdamW` to the accumulated gradients.
//! * State for checkpoints comes out and goes back in as f32 host buffers
//!   ([`TrainableState`]), laid out as [`Backend::trainable_layout`] names them; a resumed run
//!   must continue bit-for-bit like an uninterrupted one on the same backend.
//!
//! A faster backend is correct when, on the same weights and sequences, its log-probs,
//! entropies and gradients match the CPU reference within its precision (bf16 on GPU).

use crate::config::ModelConfig;
use crate::cpu::layers::token_logprob_forward;
use crate::cpu::model::{CpuModel, GradTarget, KvCache};
use crate::optim::{AdamW, OptimParams, clip_grad_norm};
use crate::params::Layout;
use crate::sampling::{Sampled, SamplingParams, sample_token};
use anyhow::{Result, bail};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use rayon::prelude::*;

/// A prompt followed by a completion.
#[derive(Clone, Copy, Debug)]
pub struct Sequence<'a> {
    /// Prompt and completion token ids, back to back.
    pub tokens: &'a [u32],
    /// Tokens before the completion (at least 1).
    pub prompt_len: usize,
}

/// Per completion token: log-prob and entropy of the temperature-scaled distribution.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TokenScores {
    /// Log-probability of each completion token.
    pub logps: Vec<f32>,
    /// Entropy of the distribution each completion token was drawn from.
    pub entropies: Vec<f32>,
}

/// Which weights score a sequence.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The policy being trained.
    Trained,
    /// The frozen reference for the KL term: base weights without adapters.
    Reference,
}

/// Trainable parameters and their AdamW state, as host buffers.
#[derive(Clone, Debug, PartialEq)]
pub struct TrainableState {
    /// The trainable weights, laid out as [`Backend::trainable_layout`].
    pub params: Vec<f32>,
    /// AdamW's first moments, one per weight.
    pub adam_m: Vec<f32>,
    /// AdamW's second moments, one per weight.
    pub adam_v: Vec<f32>,
    /// Optimizer steps taken so far.
    pub adam_t: u64,
}

/// What runs the model for the GRPO loop. See the module docs for the contract.
pub trait Backend {
    /// The model's shape.
    fn config(&self) -> &ModelConfig;
    /// Samples `n` completions of each prompt with the trained policy: `[prompt][completion]`.
    fn generate(
        &mut self,
        prompts: &[&[u32]],
        n: usize,
        params: &SamplingParams,
        eos: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<Sampled>>>;
    /// Completion log-probs and entropies, no gradient.
    fn score(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        policy: Policy,
    ) -> Result<Vec<TokenScores>>;
    /// Forward with the trained policy, then backward of `Σ dloss(i, scores_i) · logp_i`,
    /// accumulated into the gradients. Returns the forward's scores.
    fn forward_backward(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        dloss: &mut dyn FnMut(usize, &TokenScores) -> Vec<f32>,
    ) -> Result<Vec<TokenScores>>;
    /// Clears the accumulated gradients.
    fn zero_grad(&mut self) -> Result<()>;
    /// Clips the accumulated gradients' global norm; returns the norm before clipping.
    fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64>;
    /// Applies one AdamW step at learning rate `lr` to the trainable weights.
    fn optimizer_step(&mut self, lr: f64, params: &OptimParams) -> Result<()>;
    /// Names and shapes of the trainable buffer (the adapter's or the whole model's).
    fn trainable_layout(&self) -> &Layout;
    /// Copies the trainable weights and optimizer state to the host.
    fn trainable_state(&self) -> Result<TrainableState>;
    /// Replaces the trainable weights and optimizer state (from a checkpoint).
    fn load_trainable_state(&mut self, state: TrainableState) -> Result<()>;
    /// Base weights with any adapter folded in, laid out as [`crate::params::ModelLayout`].
    fn merged_weights(&self) -> Result<Vec<f32>>;
}

/// A boxed backend is a backend, so the trainer can pick CPU or CUDA at run time.
impl<B: Backend + ?Sized> Backend for Box<B> {
    fn config(&self) -> &ModelConfig {
        (**self).config()
    }
    fn generate(
        &mut self,
        prompts: &[&[u32]],
        n: usize,
        params: &SamplingParams,
        eos: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<Sampled>>> {
        (**self).generate(prompts, n, params, eos, rng)
    }
    fn score(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        policy: Policy,
    ) -> Result<Vec<TokenScores>> {
        (**self).score(seqs, temperature, policy)
    }
    fn forward_backward(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        dloss: &mut dyn FnMut(usize, &TokenScores) -> Vec<f32>,
    ) -> Result<Vec<TokenScores>> {
        (**self).forward_backward(seqs, temperature, dloss)
    }
    fn zero_grad(&mut self) -> Result<()> {
        (**self).zero_grad()
    }
    fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        (**self).clip_grad_norm(max_norm)
    }
    fn optimizer_step(&mut self, lr: f64, params: &OptimParams) -> Result<()> {
        (**self).optimizer_step(lr, params)
    }
    fn trainable_layout(&self) -> &Layout {
        (**self).trainable_layout()
    }
    fn trainable_state(&self) -> Result<TrainableState> {
        (**self).trainable_state()
    }
    fn load_trainable_state(&mut self, state: TrainableState) -> Result<()> {
        (**self).load_trainable_state(state)
    }
    fn merged_weights(&self) -> Result<Vec<f32>> {
        (**self).merged_weights()
    }
}

/// The f32 CPU reference backend.
pub struct CpuBackend {
    /// The model: base weights and any LoRA adapter on them.
    pub model: CpuModel,
    target: GradTarget,
    grads: Vec<f32>,
    opt: AdamW,
    /// Frozen base weights for the KL term when the base itself is trained (full fine-tuning).
    reference: Option<CpuModel>,
}

impl CpuBackend {
    /// Trains the adapters when `model` has them, otherwise every weight. `keep_reference`
    /// keeps a frozen copy for the KL term under full fine-tuning (adapters need none).
    pub fn new(model: CpuModel, keep_reference: bool) -> Self {
        let target = if model.lora.is_some() {
            GradTarget::Lora
        } else {
            GradTarget::Base
        };
        let no_decay = match target {
            // The HF Trainer exempts biases and norm weights from weight decay.
            GradTarget::Base => model
                .layout
                .layout
                .tensors
                .iter()
                .filter(|t| t.name.ends_with(".bias") || t.name.contains("norm"))
                .map(|t| t.range())
                .collect(),
            GradTarget::Lora => vec![],
        };
        let n = model.grad_len(target);
        let reference = (keep_reference && target == GradTarget::Base).then(|| model.clone());
        Self {
            grads: vec![0.0; n],
            opt: AdamW::new(n, no_decay),
            model,
            target,
            reference,
        }
    }

    /// The accumulated gradients of the trainable buffer.
    pub fn grads(&self) -> &[f32] {
        &self.grads
    }

    fn scores_of(
        &self,
        model: &CpuModel,
        seq: &Sequence,
        temperature: f32,
        adapters: bool,
    ) -> (crate::cpu::model::Activations, TokenScores) {
        // The last token predicts nothing we score, so the forward stops before it.
        let acts = model.forward(
            &seq.tokens[..seq.tokens.len() - 1],
            seq.prompt_len - 1,
            adapters,
        );
        let targets = &seq.tokens[seq.prompt_len..];
        let (logps, entropies) =
            token_logprob_forward(&acts.logits, targets, temperature, model.config.vocab_size);
        (acts, TokenScores { logps, entropies })
    }
}

/// One completion being decoded: its cache, its own random stream, what it sampled so far.
struct Decoding {
    cache: KvCache,
    rng: ChaCha8Rng,
    sampled: Sampled,
    done: bool,
}

impl Decoding {
    /// Samples the next token from `logits`; done at an EOS id or the length limit.
    fn sample(&mut self, logits: &[f32], params: &SamplingParams, eos: &[u32]) {
        let (tok, lp) = sample_token(logits, params, &mut self.rng);
        self.sampled.tokens.push(tok);
        self.sampled.logprobs.push(lp);
        if eos.contains(&tok) {
            self.sampled.truncated = false;
            self.done = true;
        } else if self.sampled.tokens.len() >= params.max_new_tokens {
            self.done = true;
        }
    }

    fn last_token(&self) -> u32 {
        *self.sampled.tokens.last().expect("a token was sampled")
    }
}

/// Rejects sequences the model cannot run: an empty prompt, no completion to score (when
/// `scored`), or token ids outside the vocabulary.
fn check_sequence(seq: &Sequence, vocab: usize, scored: bool) -> Result<()> {
    let completion = seq.tokens.len().saturating_sub(seq.prompt_len);
    if seq.prompt_len == 0 || seq.prompt_len > seq.tokens.len() || (scored && completion == 0) {
        bail!(
            "a sequence needs a non-empty prompt{} (prompt_len {} of {} tokens)",
            if scored { " and completion" } else { "" },
            seq.prompt_len,
            seq.tokens.len()
        );
    }
    if let Some(t) = seq.tokens.iter().find(|&&t| t as usize >= vocab) {
        bail!("token id {t} is outside the model's vocabulary ({vocab})");
    }
    Ok(())
}

impl Backend for CpuBackend {
    fn config(&self) -> &ModelConfig {
        &self.model.config
    }

    fn generate(
        &mut self,
        prompts: &[&[u32]],
        n: usize,
        params: &SamplingParams,
        eos: &[u32],
        rng: &mut ChaCha8Rng,
    ) -> Result<Vec<Vec<Sampled>>> {
        let (v, layers) = (
            self.model.config.vocab_size,
            self.model.config.num_hidden_layers,
        );
        // Each prompt is prefilled once; its completions start from copies of its cache.
        let mut seqs = Vec::with_capacity(prompts.len() * n);
        let mut logits = Vec::with_capacity(prompts.len() * n * v);
        for prompt in prompts {
            let seq = Sequence {
                tokens: prompt,
                prompt_len: prompt.len(),
            };
            check_sequence(&seq, v, false)?;
            let mut prefilled = KvCache::new(layers);
            let first = self.model.forward_cached(prompt, &mut prefilled, true);
            for _ in 0..n {
                seqs.push(Decoding {
                    cache: prefilled.clone(),
                    rng: ChaCha8Rng::seed_from_u64(rng.next_u64()),
                    sampled: Sampled {
                        tokens: vec![],
                        logprobs: vec![],
                        truncated: true,
                    },
                    done: params.max_new_tokens == 0,
                });
                logits.extend_from_slice(&first);
            }
        }
        // Invariant: row r of `logits` belongs to the r-th sequence not yet done.
        loop {
            let mut active: Vec<&mut Decoding> = seqs.iter_mut().filter(|d| !d.done).collect();
            if active.is_empty() {
                break;
            }
            active
                .par_iter_mut()
                .zip(logits.par_chunks(v))
                .for_each(|(d, row)| d.sample(row, params, eos));
            let mut next: Vec<&mut Decoding> = active.into_iter().filter(|d| !d.done).collect();
            if next.is_empty() {
                break;
            }
            let tokens: Vec<[u32; 1]> = next.iter().map(|d| [d.last_token()]).collect();
            let tokens: Vec<&[u32]> = tokens.iter().map(|t| t.as_slice()).collect();
            let mut caches: Vec<&mut KvCache> = next.iter_mut().map(|d| &mut d.cache).collect();
            logits = self.model.forward_cached_batch(&tokens, &mut caches, true);
        }
        let mut sampled = seqs.into_iter().map(|d| d.sampled);
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
        let (model, adapters) = match (policy, &self.reference) {
            (Policy::Trained, _) => (&self.model, true),
            (Policy::Reference, Some(r)) => (r, false),
            (Policy::Reference, None) => (&self.model, false),
        };
        seqs.iter()
            .map(|s| {
                check_sequence(s, model.config.vocab_size, true)?;
                Ok(self.scores_of(model, s, temperature, adapters).1)
            })
            .collect()
    }

    fn forward_backward(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        dloss: &mut dyn FnMut(usize, &TokenScores) -> Vec<f32>,
    ) -> Result<Vec<TokenScores>> {
        let v = self.model.config.vocab_size;
        let mut all = Vec::with_capacity(seqs.len());
        for (i, seq) in seqs.iter().enumerate() {
            check_sequence(seq, v, true)?;
            let (acts, scores) = self.scores_of(&self.model, seq, temperature, true);
            let dlogp = dloss(i, &scores);
            if dlogp.len() != scores.logps.len() {
                bail!(
                    "dloss returned {} values for {} completion tokens",
                    dlogp.len(),
                    scores.logps.len()
                );
            }
            if dlogp.iter().all(|&g| g == 0.0) {
                // A masked-out sequence (or zero advantage without KL): nothing to propagate.
                all.push(scores);
                continue;
            }
            let targets = &seq.tokens[seq.prompt_len..];
            let mut dlogits = vec![0.0; acts.logits.len()];
            crate::cpu::layers::token_logprob_backward(
                &mut dlogits,
                &dlogp,
                &acts.logits,
                targets,
                temperature,
                v,
            );
            self.model
                .backward(&acts, &dlogits, &mut self.grads, self.target);
            all.push(scores);
        }
        Ok(all)
    }

    fn zero_grad(&mut self) -> Result<()> {
        self.grads.fill(0.0);
        Ok(())
    }

    fn clip_grad_norm(&mut self, max_norm: f64) -> Result<f64> {
        Ok(clip_grad_norm(&mut self.grads, max_norm))
    }

    fn optimizer_step(&mut self, lr: f64, params: &OptimParams) -> Result<()> {
        let target = self.target;
        let grads = std::mem::take(&mut self.grads);
        self.opt
            .step(self.model.trainable_mut(target), &grads, lr, params);
        self.grads = grads;
        Ok(())
    }

    fn trainable_layout(&self) -> &Layout {
        match self.target {
            GradTarget::Base => &self.model.layout.layout,
            GradTarget::Lora => &self.model.lora.as_ref().expect("adapters").0.layout,
        }
    }

    fn trainable_state(&self) -> Result<TrainableState> {
        Ok(TrainableState {
            params: self.model.trainable(self.target).to_vec(),
            adam_m: self.opt.m.clone(),
            adam_v: self.opt.v.clone(),
            adam_t: self.opt.t,
        })
    }

    fn load_trainable_state(&mut self, state: TrainableState) -> Result<()> {
        let n = self.grads.len();
        if state.params.len() != n || state.adam_m.len() != n || state.adam_v.len() != n {
            bail!(
                "checkpoint has {} trainable values, this model and LoRA config have {n}",
                state.params.len()
            );
        }
        *self.model.trainable_mut(self.target) = state.params;
        (self.opt.m, self.opt.v, self.opt.t) = (state.adam_m, state.adam_v, state.adam_t);
        Ok(())
    }

    fn merged_weights(&self) -> Result<Vec<f32>> {
        Ok(self.model.merged_base())
    }
}
