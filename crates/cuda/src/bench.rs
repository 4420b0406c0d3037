//! One GRPO step's cost on the GPU at TRL-comparable shapes: batched generation, then the
//! update (forward + backward over every completion in micro-batches, clip, AdamW), timed
//! separately. The sqlrft side of `scripts/gpu/trl_bench.py`.

use crate::device::Gpu;
use crate::ops::SampleParams;
use crate::train::{AdamW, GpuTrainer};
use anyhow::{Result, anyhow, ensure};
use rand::{Rng, SeedableRng};
use serde::Serialize;

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
}

/// Medians over the timed steps.
#[derive(Clone, Debug, Serialize)]
pub struct BenchReport {
    /// Always `sqlrft`: tells this report from `scripts/gpu/trl_bench.py`'s.
    pub framework: &'static str,
    /// The GPU's name.
    pub gpu: String,
    /// Which attention kernels ran.
    pub attention: crate::model::Attention,
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
    /// 6·P FLOPs per trained token over the update time and the peak.
    pub mfu_update: f64,
    /// Generation and update FLOPs together over the step time and the peak.
    pub mfu_step: f64,
}

/// Runs `cfg.steps + 1` GRPO-shaped steps on `trainer` and reports the timed ones.
pub fn bench(gpu: &Gpu, trainer: &mut GpuTrainer, cfg: &BenchConfig) -> Result<BenchReport> {
    ensure!(cfg.steps > 0 && cfg.micro_batch > 0, "nothing to time");
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(cfg.seed);
    let vocab = trainer.model.dims.vocab as i32;
    let rows: Vec<Vec<i32>> = (0..cfg.prompts)
        .flat_map(|_| {
            let p: Vec<i32> = (0..cfg.prompt_tokens)
                .map(|_| rng.random_range(0..vocab))
                .collect();
            std::iter::repeat_n(p, cfg.generations)
        })
        .collect();
    let n = rows.len();
    let t = cfg.prompt_tokens + cfg.completion_tokens;
    let sample = SampleParams {
        temperature: 1.0,
        top_k: 0,
        top_p: 1.0,
    };
    let opt = AdamW {
        lr: 1e-6,
        beta1: 0.9,
        beta2: 0.999,
        eps: 1e-8,
        weight_decay: 0.0,
    };
    let mut used = 0usize;
    let mut in_use = || -> Result<()> {
        let (free, total) = gpu.context().mem_get_info().map_err(|e| anyhow!("{e:?}"))?;
        used = used.max(total - free);
        Ok(())
    };
    let (mut gen_s, mut upd_s) = (vec![], vec![]);
    for step in 0..=cfg.steps {
        gpu.synchronize()?;
        let t0 = std::time::Instant::now();
        let done =
            trainer
                .model
                .generate(gpu, &rows, sample, cfg.completion_tokens, &[], &mut || {
                    rng.random::<f32>()
                })?;
        gpu.synchronize()?;
        in_use()?;
        let t1 = std::time::Instant::now();
        // Synthetic advantages: the update's cost does not depend on their values.
        let adv: Vec<f32> = (0..n).map(|_| rng.random_range(-1.0..1.0)).collect();
        trainer.zero_grad(gpu)?;
        for r0 in (0..n).step_by(cfg.micro_batch) {
            let b = cfg.micro_batch.min(n - r0);
            let tokens: Vec<i32> = (r0..r0 + b)
                .flat_map(|r| rows[r].iter().chain(&done[r].tokens).copied())
                .collect();
            ensure!(tokens.len() == b * t, "a completion stopped early");
            let mut dlogp = vec![0f32; b * (t - 1)];
            let per_token = 1.0 / (n * cfg.completion_tokens) as f32;
            for (i, a) in adv[r0..r0 + b].iter().enumerate() {
                let start = i * (t - 1) + cfg.prompt_tokens - 1;
                dlogp[start..start + cfg.completion_tokens].fill(-a * per_token);
            }
            let (saved, _) = trainer.forward(gpu, &tokens, b, t, 1.0, 256)?;
            trainer.backward(gpu, saved, &dlogp)?;
        }
        trainer.clip_grad_norm(gpu, 1.0)?;
        trainer.optimizer_step(gpu, opt)?;
        gpu.synchronize()?;
        in_use()?;
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
    let params = trainer.model.dims.parameters();
    let p = params as f64;
    let generated = n * cfg.completion_tokens;
    let trained = (n * t) as f64;
    let peak = cfg.peak_tflops * 1e12;
    let gen_flops = 2.0 * p * trained;
    let upd_flops = 6.0 * p * trained;
    Ok(BenchReport {
        framework: "sqlrft",
        gpu: gpu.info.name.clone(),
        attention: trainer.model.attention,
        parameters: params,
        trainable_parameters: trainer.trainable().iter().map(|(_, l)| l).sum(),
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
