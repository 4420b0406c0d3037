//! One GRPO step's cost on the GPU at TRL-comparable shapes, through the same `Backend` calls
//! `sqlrft train --device cuda` makes: batched generation, then the update (forward + backward
//! over every completion in micro-batches, clip, AdamW), timed separately. Full fine-tuning or
//! LoRA. The sqlrft side of `scripts/gpu/trl_bench.py`.

use anyhow::{Result, anyhow, ensure};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Serialize;
use sqlrft_cuda::CudaBackend;
use sqlrft_model::backend::{Backend, Sequence, TokenScores};
use sqlrft_model::optim::OptimParams;
use sqlrft_model::sampling::SamplingParams;

/// The shapes of one benchmarked step.
#[derive(Clone, Debug, Serialize)]
pub struct BenchConfig {
    /// Prompts per step (random token ids), each sampled `generations` times.
    pub prompts: usize,
    /// Completions sampled per prompt (GRPO's group size).
    pub generations: usize,
    /// Tokens per prompt.
    pub prompt_tokens: usize,
    /// Completion tokens: every row generates this many (no end-of-sequence stop).
    pub completion_tokens: usize,
    /// Rows per forward/backward micro-batch (TRL: per_device_train_batch_size).
    pub micro_batch: usize,
    /// Timed steps after one warm-up step; medians are reported.
    pub steps: usize,
    /// Dense bf16 peak of the GPU in TFLOP/s.
    pub peak_tflops: f64,
    /// Seed of the prompts, the sampling draws and the synthetic advantages.
    pub seed: u64,
    /// LoRA rank, or `None` for full fine-tuning.
    pub lora_rank: Option<usize>,
}

/// Medians over the timed steps.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Always `sqlrft`: tells this report from `scripts/gpu/trl_bench.py`'s.
    pub framework: &'static str,
    /// `full` or `lora`.
    pub mode: &'static str,
    /// The GPU's name.
    pub gpu: String,
    /// Model parameters (a tied lm head counted once).
    pub parameters: usize,
    /// Parameters the optimizer updates.
    pub trainable_parameters: usize,
    /// The shapes benchmarked.
    pub config: BenchConfig,
    /// `generation_seconds + update_seconds`.
    pub step_seconds: f64,
    /// Median wall time of batched generation, in seconds.
    pub generation_seconds: f64,
    /// Median wall time of the update (forward, backward, clip, AdamW), in seconds.
    pub update_seconds: f64,
    /// `prompts · generations · completion_tokens`.
    pub completion_tokens_per_step: usize,
    /// Completion tokens generated per second.
    pub generation_tokens_per_second: f64,
    /// Tokens trained on (prompt and completion) per second.
    pub update_tokens_per_second: f64,
    /// Largest device memory in use seen after a phase (the driver's view, this process and
    /// any other), not a true peak.
    pub device_memory_in_use_gib_max_seen: f64,
    /// 2·P FLOPs per prompt or generated token over the generation time and the peak.
    pub mfu_generation: f64,
    /// Update FLOPs over the update time and the peak: 6·P per trained token under full
    /// fine-tuning, 4·P under LoRA (no weight gradients of the frozen base).
    pub mfu_update: f64,
    /// Generation and update FLOPs together over the step time and the peak.
    pub mfu_step: f64,
}

/// Runs `cfg.steps + 1` GRPO-shaped steps on `backend` and reports the timed ones.
pub fn bench(backend: &mut CudaBackend, cfg: &BenchConfig) -> Result<BenchReport> {
    ensure!(cfg.steps > 0 && cfg.micro_batch > 0, "nothing to time");
    let mut rng = ChaCha8Rng::seed_from_u64(cfg.seed);
    let vocab = backend.config().vocab_size as u32;
    let prompts: Vec<Vec<u32>> = (0..cfg.prompts)
        .map(|_| {
            (0..cfg.prompt_tokens)
                .map(|_| rng.random_range(0..vocab))
                .collect()
        })
        .collect();
    let prompt_refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
    let n = cfg.prompts * cfg.generations;
    let t = cfg.prompt_tokens + cfg.completion_tokens;
    let sample = SamplingParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
        max_new_tokens: cfg.completion_tokens,
    };
    // TRL's GRPOConfig defaults: the learning rate and AdamW's settings.
    let opt = OptimParams::default();
    let mut used = 0usize;
    let mut in_use = |backend: &CudaBackend| -> Result<()> {
        let gpu = backend.gpu();
        gpu.synchronize()?;
        let (free, total) = gpu.context().mem_get_info().map_err(|e| anyhow!("{e:?}"))?;
        used = used.max(total - free);
        Ok(())
    };
    let (mut gen_s, mut upd_s) = (vec![], vec![]);
    for step in 0..=cfg.steps {
        backend.gpu().synchronize()?;
        let t0 = std::time::Instant::now();
        let done = backend.generate(&prompt_refs, cfg.generations, &sample, &[], &mut rng)?;
        in_use(backend)?;
        let t1 = std::time::Instant::now();
        let owned: Vec<Vec<u32>> = prompts
            .iter()
            .zip(&done)
            .flat_map(|(p, group)| {
                group
                    .iter()
                    .map(move |s| p.iter().chain(&s.tokens).copied().collect())
            })
            .collect();
        ensure!(
            owned.iter().all(|s| s.len() == t),
            "a completion stopped early"
        );
        let seqs: Vec<Sequence> = owned
            .iter()
            .map(|tokens| Sequence {
                tokens,
                prompt_len: cfg.prompt_tokens,
            })
            .collect();
        // Synthetic advantages: the update's cost does not depend on their values.
        let adv: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        let per_token = 1.0 / (n * cfg.completion_tokens) as f32;
        let mut dloss = |i: usize, s: &TokenScores| vec![-adv[i] * per_token; s.logps.len()];
        backend.zero_grad()?;
        backend.forward_backward(&seqs, 1.0, &mut dloss)?;
        backend.clip_grad_norm(1.0)?;
        backend.optimizer_step(opt.learning_rate, &opt)?;
        in_use(backend)?;
        if step > 0 {
            gen_s.push((t1 - t0).as_secs_f64());
            upd_s.push(t1.elapsed().as_secs_f64());
        }
    }
    let median = |mut v: Vec<f64>| {
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (gen_secs, upd_secs) = (median(gen_s), median(upd_s));
    let params = sqlrft_model::params::ModelLayout::new(backend.config())
        .layout
        .len;
    let p = params as f64;
    let generated = n * cfg.completion_tokens;
    let trained = (n * t) as f64;
    let peak = cfg.peak_tflops * 1e12;
    let gen_flops = 2.0 * p * trained;
    let upd_flops = if cfg.lora_rank.is_some() { 4.0 } else { 6.0 } * p * trained;
    Ok(BenchReport {
        framework: "sqlrft",
        mode: if cfg.lora_rank.is_some() {
            "lora"
        } else {
            "full"
        },
        gpu: backend.gpu().info.name.clone(),
        parameters: params,
        trainable_parameters: backend.trainable_layout().len,
        config: cfg.clone(),
        step_seconds: gen_secs + upd_secs,
        generation_seconds: gen_secs,
        update_seconds: upd_secs,
        completion_tokens_per_step: generated,
        generation_tokens_per_second: generated as f64 / gen_secs,
        update_tokens_per_second: trained / upd_secs,
        device_memory_in_use_gib_max_seen: used as f64 / (1u64 << 30) as f64,
        mfu_generation: gen_flops / gen_secs / peak,
        mfu_update: upd_flops / upd_secs / peak,
        mfu_step: (gen_flops + upd_flops) / (gen_secs + upd_secs) / peak,
    })
}
