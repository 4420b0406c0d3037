//! `sqlrft cuda …`: the commands a GPU machine (or CI) runs against this crate.

use crate::bench::BenchConfig;
use crate::cache::{KernelCache, default_cache_dir};
use crate::device::Gpu;
use crate::model::{Attention, GpuModel};
use crate::probe::probe;
use crate::train::GpuTrainer;
use anyhow::{Context, Result, bail};
use clap::{Args, Subcommand};
use std::path::PathBuf;

/// Inspect the GPU, compile the kernels, and check them against the CPU reference.
#[derive(Debug, Args)]
pub struct CudaArgs {
    /// The command to run.
    #[command(subcommand)]
    pub command: CudaCommand,
}

/// The `sqlrft cuda` commands.
#[derive(Debug, Subcommand)]
pub enum CudaCommand {
    /// Print the GPU's name, architecture and memory as JSON, or why there is none.
    Probe {
        /// GPU index.
        #[arg(long, default_value_t = 0)]
        device: usize,
    },
    /// Compile every kernel with NVRTC into the kernel cache (no GPU needed).
    Compile {
        /// Target architecture, e.g. sm_90 for H100 / H200.
        #[arg(long, default_value = "sm_90")]
        arch: String,
        /// Kernel cache folder [default: $SQLRFT_KERNEL_CACHE or ~/.cache/sqlrft/kernels].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Run every kernel against its CPU reference on random inputs; exit 1 if any differs.
    Check {
        /// GPU index.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Seed of the random inputs.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Only these check groups (comma-separated: embedding, rmsnorm, rope, residual,
        /// swiglu, attention, flash_attention, logprob, optimizer, cast, kv_cache, sampling, gemm).
        #[arg(long, value_delimiter = ',')]
        only: Vec<String>,
        /// Write the results as JSON here too.
        #[arg(long)]
        out: Option<PathBuf>,
        /// Kernel cache folder [default: $SQLRFT_KERNEL_CACHE or ~/.cache/sqlrft/kernels].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Run a Hugging Face model (config.json + *.safetensors) on token ids and write its
    /// logits and next-token log-probs as safetensors (for comparison with transformers).
    Forward {
        /// Model folder.
        #[arg(long)]
        model: PathBuf,
        /// JSON file holding a list of equally long token-id lists.
        #[arg(long)]
        tokens: PathBuf,
        /// Output file: `logits` [b, t, vocab], `logps` and `entropies` [b, t - 1], all f32.
        #[arg(long)]
        out: PathBuf,
        /// Temperature of the log-probs.
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        /// Rows per lm-head chunk when scoring.
        #[arg(long, default_value_t = 64)]
        chunk_rows: usize,
        /// Attention kernels: materialised probabilities or flash-style.
        #[arg(long, value_enum, default_value_t = Attention::Materialised)]
        attention: Attention,
        /// GPU index.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Kernel cache folder [default: $SQLRFT_KERNEL_CACHE or ~/.cache/sqlrft/kernels].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Gradients of `Σ dlogp · logp` with respect to chosen weights (full fine-tuning), for
    /// comparison with PyTorch.
    Grads {
        /// Model folder.
        #[arg(long)]
        model: PathBuf,
        /// JSON file holding a list of equally long token-id lists.
        #[arg(long)]
        tokens: PathBuf,
        /// JSON file holding, per sequence, one upstream gradient per scored position (t - 1).
        #[arg(long)]
        dlogp: PathBuf,
        /// Weights whose gradients to write (Hugging Face names, comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        tensors: Vec<String>,
        /// Output safetensors file: one flat f32 tensor per name, plus `logps`.
        #[arg(long)]
        out: PathBuf,
        /// Temperature of the log-probs.
        #[arg(long, default_value_t = 1.0)]
        temperature: f32,
        /// Attention kernels: materialised probabilities or flash-style.
        #[arg(long, value_enum, default_value_t = Attention::Materialised)]
        attention: Attention,
        /// GPU index.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Kernel cache folder [default: $SQLRFT_KERNEL_CACHE or ~/.cache/sqlrft/kernels].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// A short GRPO run on a tiny random model (generation, scoring, backward and AdamW on the
    /// GPU); exit 1 unless the reward rises by at least --min-rise.
    GrpoSmoke {
        /// GRPO steps to run.
        #[arg(long, default_value_t = 40)]
        steps: usize,
        /// Seed of the model's random weights, the prompts and the sampling.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Required rise of the mean reward (last quarter of steps minus first quarter).
        #[arg(long, default_value_t = 0.02)]
        min_rise: f64,
        /// Attention kernels: materialised probabilities or flash-style.
        #[arg(long, value_enum, default_value_t = Attention::Materialised)]
        attention: Attention,
        /// Write the reward curve as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// GPU index.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Kernel cache folder [default: $SQLRFT_KERNEL_CACHE or ~/.cache/sqlrft/kernels].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
    /// Time GRPO steps (generation, then forward/backward/AdamW of full fine-tuning) on a
    /// model: the sqlrft side of scripts/gpu/trl_bench.py.
    Bench {
        /// Model folder.
        #[arg(long)]
        model: PathBuf,
        /// Prompts per step (random token ids), each sampled --generations times.
        #[arg(long, default_value_t = 16)]
        prompts: usize,
        /// Completions per prompt.
        #[arg(long, default_value_t = 8)]
        generations: usize,
        /// Tokens per prompt.
        #[arg(long, default_value_t = 64)]
        prompt_tokens: usize,
        /// Completion tokens (no end-of-sequence stop: every row generates this many).
        #[arg(long, default_value_t = 256)]
        max_new: usize,
        /// Rows per forward/backward micro-batch of the update (TRL's per-device batch).
        #[arg(long, default_value_t = 32)]
        micro_batch: usize,
        /// Timed repetitions after one warm-up; the median is reported.
        #[arg(long, default_value_t = 3)]
        steps: usize,
        /// Dense bf16 peak of the GPU in TFLOP/s, for model FLOPs utilisation.
        #[arg(long, default_value_t = 989.0)]
        peak_tflops: f64,
        /// Attention kernels: materialised probabilities or flash-style.
        #[arg(long, value_enum, default_value_t = Attention::Materialised)]
        attention: Attention,
        /// Seed of the prompts, the sampling draws and the synthetic advantages.
        #[arg(long, default_value_t = 0)]
        seed: u64,
        /// Write the results as JSON here.
        #[arg(long)]
        out: Option<PathBuf>,
        /// GPU index.
        #[arg(long, default_value_t = 0)]
        device: usize,
        /// Kernel cache folder [default: $SQLRFT_KERNEL_CACHE or ~/.cache/sqlrft/kernels].
        #[arg(long)]
        cache_dir: Option<PathBuf>,
    },
}

/// Runs one `sqlrft cuda` command.
pub fn run(args: CudaArgs) -> Result<()> {
    match args.command {
        CudaCommand::Probe { device } => {
            let info = probe(device)?;
            println!("{}", serde_json::to_string_pretty(&info)?);
        }
        CudaCommand::Compile { arch, cache_dir } => {
            let dir = cache_dir.unwrap_or_else(default_cache_dir);
            let cache = KernelCache::new(&dir, &arch)?;
            let compiled = cache.warm()?;
            println!(
                "{} kernel sources ready for {arch} in {} ({compiled} compiled now)",
                crate::SOURCES.len(),
                dir.display()
            );
        }
        CudaCommand::Check {
            device,
            seed,
            only,
            out,
            cache_dir,
        } => {
            let gpu = Gpu::new(device, &cache_dir.unwrap_or_else(default_cache_dir))?;
            let checks = crate::check::run(&gpu, seed, &only)?;
            println!("{:<32} {:>11} {:>9}  shape", "kernel", "rel_err", "tol");
            for c in &checks {
                println!(
                    "{:<32} {:>11.3e} {:>9.1e}  {}{}",
                    c.kernel,
                    c.rel_err,
                    c.tolerance,
                    c.shape,
                    if c.passed { "" } else { "  FAILED" }
                );
                if let Some(e) = &c.error {
                    println!("    {e}");
                }
            }
            if let Some(path) = out {
                let report =
                    serde_json::json!({ "device": gpu.info, "seed": seed, "checks": checks });
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("could not write `{}`", path.display()))?;
            }
            let failed = checks.iter().filter(|c| !c.passed).count();
            if failed > 0 {
                bail!(
                    "{failed} of {} kernel checks failed on {}",
                    checks.len(),
                    gpu.info.name
                );
            }
            println!(
                "all {} kernel checks passed on {}",
                checks.len(),
                gpu.info.name
            );
        }
        CudaCommand::Forward {
            model,
            tokens,
            out,
            temperature,
            chunk_rows,
            attention,
            device,
            cache_dir,
        } => {
            let (seqs, t) = read_sequences(&tokens)?;
            let gpu = Gpu::new(device, &cache_dir.unwrap_or_else(default_cache_dir))?;
            let mut m = GpuModel::load(&gpu, &model)?;
            m.attention = attention;
            let flat: Vec<i32> = seqs.concat();
            let b = seqs.len();
            let logits = m.logits(&gpu, &flat, b, t)?;
            let scores = m.score(&gpu, &flat, b, t, temperature, chunk_rows)?;
            write_f32_tensors(
                &out,
                &[
                    ("logits", vec![b, t, m.dims.vocab], &logits),
                    ("logps", vec![b, t - 1], &scores.logps),
                    ("entropies", vec![b, t - 1], &scores.entropies),
                ],
            )?;
            println!(
                "wrote {} ({b} x {t} tokens, vocab {})",
                out.display(),
                m.dims.vocab
            );
        }
        CudaCommand::Grads {
            model,
            tokens,
            dlogp,
            tensors,
            out,
            temperature,
            attention,
            device,
            cache_dir,
        } => {
            let (seqs, t) = read_sequences(&tokens)?;
            let text = std::fs::read_to_string(&dlogp)
                .with_context(|| format!("could not read `{}`", dlogp.display()))?;
            let upstream: Vec<Vec<f32>> = serde_json::from_str(&text).with_context(|| {
                format!("`{}` is not a JSON list of float lists", dlogp.display())
            })?;
            if upstream.len() != seqs.len() || upstream.iter().any(|u| u.len() != t - 1) {
                bail!(
                    "`{}` must hold {} lists of {} values",
                    dlogp.display(),
                    seqs.len(),
                    t - 1
                );
            }
            let gpu = Gpu::new(device, &cache_dir.unwrap_or_else(default_cache_dir))?;
            let (dims, mut weight) = crate::model::open_checkpoint(&model)?;
            let mut trainer = GpuTrainer::upload(&gpu, dims, &mut weight)?;
            trainer.model.attention = attention;
            let (saved, scores) =
                trainer.forward(&gpu, &seqs.concat(), seqs.len(), t, temperature, 64)?;
            trainer.backward(&gpu, saved, &upstream.concat())?;
            let mut grads = vec![];
            for name in &tensors {
                grads.push((name.as_str(), trainer.grad_host(&gpu, name)?));
            }
            let mut out_tensors: Vec<(&str, Vec<usize>, &Vec<f32>)> =
                grads.iter().map(|(n, g)| (*n, vec![g.len()], g)).collect();
            out_tensors.push(("logps", vec![seqs.len(), t - 1], &scores.logps));
            write_f32_tensors(&out, &out_tensors)?;
            println!("wrote {} ({} gradients)", out.display(), grads.len());
        }
        CudaCommand::GrpoSmoke {
            steps,
            seed,
            min_rise,
            attention,
            out,
            device,
            cache_dir,
        } => {
            let gpu = Gpu::new(device, &cache_dir.unwrap_or_else(default_cache_dir))?;
            let run = crate::smoke::grpo_smoke(&gpu, steps, seed, attention)?;
            for (i, (r, n)) in run.rewards.iter().zip(&run.grad_norms).enumerate() {
                println!("step {:>3}  reward {r:.4}  grad_norm {n:.4}", i + 1);
            }
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&run)?)
                    .with_context(|| format!("could not write `{}`", path.display()))?;
            }
            if run.rise.is_nan() || run.rise < min_rise {
                bail!("the reward rose by {:.4}, less than {min_rise}", run.rise);
            }
            println!("reward rose by {:.4} over {steps} steps", run.rise);
        }
        CudaCommand::Bench {
            model,
            prompts,
            generations,
            prompt_tokens,
            max_new,
            micro_batch,
            steps,
            peak_tflops,
            attention,
            seed,
            out,
            device,
            cache_dir,
        } => {
            let gpu = Gpu::new(device, &cache_dir.unwrap_or_else(default_cache_dir))?;
            let (dims, mut weight) = crate::model::open_checkpoint(&model)?;
            let mut trainer = GpuTrainer::upload(&gpu, dims, &mut weight)?;
            trainer.model.attention = attention;
            let cfg = BenchConfig {
                prompts,
                generations,
                prompt_tokens,
                completion_tokens: max_new,
                micro_batch,
                steps,
                peak_tflops,
                seed,
            };
            let report = crate::bench::bench(&gpu, &mut trainer, &cfg)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("could not write `{}`", path.display()))?;
            }
        }
    }
    Ok(())
}

/// Equally long token-id sequences (at least 2 tokens) from a JSON file; returns them and
/// their length.
fn read_sequences(path: &std::path::Path) -> Result<(Vec<Vec<i32>>, usize)> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("could not read token ids `{}`", path.display()))?;
    let seqs: Vec<Vec<i32>> = serde_json::from_str(&text)
        .with_context(|| format!("`{}` is not a JSON list of token-id lists", path.display()))?;
    let t = seqs.first().map_or(0, Vec::len);
    if seqs.is_empty() || t < 2 || seqs.iter().any(|s| s.len() != t) {
        bail!(
            "`{}` must hold equally long sequences of at least 2 tokens",
            path.display()
        );
    }
    Ok((seqs, t))
}

/// Writes f32 tensors to a safetensors file.
fn write_f32_tensors(
    path: &std::path::Path,
    tensors: &[(&str, Vec<usize>, &Vec<f32>)],
) -> Result<()> {
    let bytes: Vec<Vec<u8>> = tensors
        .iter()
        .map(|(_, _, v)| v.iter().flat_map(|x| x.to_le_bytes()).collect())
        .collect();
    let views = tensors
        .iter()
        .zip(&bytes)
        .map(|((name, shape, _), b)| {
            safetensors::tensor::TensorView::new(safetensors::Dtype::F32, shape.clone(), b)
                .map(|v| (name.to_string(), v))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let data = safetensors::serialize(views, None)?;
    std::fs::write(path, data).with_context(|| format!("could not write `{}`", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn file(text: &str) -> tempfile::NamedTempFile {
        let mut f = tempfile::NamedTempFile::new().unwrap();
        std::io::Write::write_all(&mut f, text.as_bytes()).unwrap();
        f
    }

    #[test]
    fn reads_equally_long_token_sequences() {
        let f = file("[[1, 2, 3], [4, 5, 6]]");
        assert_eq!(
            read_sequences(f.path()).unwrap(),
            (vec![vec![1, 2, 3], vec![4, 5, 6]], 3)
        );
    }

    #[test]
    fn rejects_ragged_short_or_malformed_token_files_by_name() {
        for bad in ["[[1, 2], [3]]", "[[1]]", "[]", "{\"ids\": [1, 2]}"] {
            let f = file(bad);
            let err = format!("{:#}", read_sequences(f.path()).unwrap_err());
            assert!(
                err.contains(&f.path().display().to_string()),
                "{bad}: {err}"
            );
        }
        let err = read_sequences(std::path::Path::new("/nonexistent/ids.json")).unwrap_err();
        assert!(err.to_string().contains("/nonexistent/ids.json"), "{err}");
    }
}
