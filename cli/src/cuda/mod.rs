//! `sqlrft cuda …`: the tool commands a GPU machine (or CI) runs against the CUDA backend:
//! probe, compile, kernel checks, forward/backward dumps for transformers, the toy GRPO task
//! and the step benchmark.

mod bench;
mod toy;

use anyhow::{Context, Result, bail};
use bench::BenchConfig;
use clap::{Args, Subcommand};
use rand::SeedableRng;
use sqlrft_cuda::{
    Attention, CudaBackend, CudaOptions, Gpu, GpuModel, GpuTrainer, KernelCache, default_cache_dir,
    probe,
};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::params::{
    HostTensor, ModelLayout, SaveDtype, load_weights, read_tensors, serialize_tensors,
};
use std::collections::BTreeMap;
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
        /// Weights whose gradients to write (Hugging Face or PEFT names, comma-separated).
        #[arg(long, value_delimiter = ',', required = true)]
        tensors: Vec<String>,
        /// Train these LoRA adapters instead of every weight: a safetensors file of PEFT-named
        /// `lora_A` / `lora_B` tensors (as PEFT saves them); rank and targets are read from it.
        #[arg(long)]
        lora_adapter: Option<PathBuf>,
        /// The adapters' `lora_alpha` (their scale is alpha / rank).
        #[arg(long, default_value_t = 16.0)]
        lora_alpha: f32,
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
    /// Write a toy GRPO task: a tiny random Qwen2 model (`OUT/model`, BPE tokenizer trained on
    /// the prompts) and chat prompts (`OUT/prompts.jsonl`) on which a reward such as "share of
    /// lowercase letters" rises within twenty steps; scripts/gpu/grpo_check.py trains it with
    /// `sqlrft train --device cuda`.
    ToyTask {
        /// Folder to write `model/` and `prompts.jsonl` into.
        #[arg(long)]
        out: PathBuf,
        /// Number of prompts.
        #[arg(long, default_value_t = 16)]
        prompts: usize,
        /// Seed of the prompts and the model's weights.
        #[arg(long, default_value_t = 0)]
        seed: u64,
    },
    /// Time GRPO steps through the CUDA backend (batched generation, then forward/backward/AdamW
    /// of full fine-tuning or LoRA) on a model: the sqlrft side of scripts/gpu/trl_bench.py.
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
        /// Train LoRA adapters of this rank on every projection (alpha = 2 × rank) instead of
        /// every weight.
        #[arg(long)]
        lora_rank: Option<usize>,
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
                sqlrft_cuda::SOURCES.len(),
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
            let checks = sqlrft_cuda::check::run(&gpu, seed, &only)?;
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
            lora_adapter,
            lora_alpha,
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
            let (dims, mut weight) = sqlrft_cuda::model::open_checkpoint(&model)?;
            let mut trainer = match lora_adapter {
                None => GpuTrainer::upload(&gpu, dims, &mut weight)?,
                Some(path) => {
                    let adapters = read_tensors(&path)?;
                    let lora = lora_config_of(&adapters, lora_alpha)
                        .with_context(|| format!("in `{}`", path.display()))?;
                    GpuTrainer::upload_lora(&gpu, dims, &mut weight, lora, &mut |name, _| {
                        adapters.get(name).map(|(_, v)| v.clone()).with_context(|| {
                            format!("`{}` has no adapter `{name}`", path.display())
                        })
                    })?
                }
            };
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
        CudaCommand::ToyTask { out, prompts, seed } => {
            toy::write(&out, prompts, seed)?;
            println!(
                "wrote {} and {}",
                out.join("model").display(),
                out.join("prompts.jsonl").display()
            );
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
            lora_rank,
            attention,
            seed,
            out,
            device,
            cache_dir,
        } => {
            let gpu = Gpu::new(device, &cache_dir.unwrap_or_else(default_cache_dir))?;
            let config = ModelConfig::load(&model)?;
            let base = load_weights(&model, &ModelLayout::new(&config).layout)?;
            let lora = lora_rank.map(|rank| LoraConfig {
                rank,
                alpha: 2.0 * rank as f32,
                ..LoraConfig::default()
            });
            let adapters = match &lora {
                Some(cfg) => {
                    let layout = LoraLayout::new(cfg, &config)?;
                    let data = layout.init(&mut rand_chacha::ChaCha8Rng::seed_from_u64(seed));
                    Some((layout, data))
                }
                None => None,
            };
            let options = CudaOptions {
                micro_batch,
                chunk_rows: 256,
                attention,
            };
            let mut backend = CudaBackend::new(
                gpu,
                CpuModel::new(config, base, adapters),
                lora.as_ref(),
                false,
                options,
            )?;
            let cfg = BenchConfig {
                prompts,
                generations,
                prompt_tokens,
                completion_tokens: max_new,
                micro_batch,
                steps,
                peak_tflops,
                seed,
                lora_rank,
            };
            let report = bench::bench(&mut backend, &cfg)?;
            println!("{}", serde_json::to_string_pretty(&report)?);
            if let Some(path) = out {
                std::fs::write(&path, serde_json::to_vec_pretty(&report)?)
                    .with_context(|| format!("could not write `{}`", path.display()))?;
            }
        }
    }
    Ok(())
}

/// The LoRA config of PEFT-named adapter tensors: the rank from an `A` matrix's rows, the
/// targets from the projections that have one.
fn lora_config_of(adapters: &BTreeMap<String, HostTensor>, alpha: f32) -> Result<LoraConfig> {
    let mut rank = None;
    let mut targets = vec![];
    for (name, (shape, _)) in adapters {
        let Some(stem) = name.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let proj = stem.rsplit('.').next().unwrap_or_default().to_string();
        rank.get_or_insert(shape[0]);
        if !targets.contains(&proj) {
            targets.push(proj);
        }
    }
    let rank = rank.context("no `*.lora_A.weight` tensor: not a PEFT adapter file")?;
    Ok(LoraConfig {
        rank,
        alpha,
        target_modules: targets,
    })
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

/// Writes f32 tensors to a safetensors file, through the model contract's writer.
fn write_f32_tensors(
    path: &std::path::Path,
    tensors: &[(&str, Vec<usize>, &Vec<f32>)],
) -> Result<()> {
    let bytes = serialize_tensors(
        tensors
            .iter()
            .map(|(name, shape, v)| (*name, shape.as_slice(), v.as_slice())),
        SaveDtype::F32,
        None,
    )?;
    std::fs::write(path, bytes).with_context(|| format!("could not write `{}`", path.display()))
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
