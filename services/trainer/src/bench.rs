//! `sqlrft bench train`: GRPO steps of SmolLM2-135M on the CPU, timed by phase (generation,
//! rewards, update), against TRL's `GRPOTrainer` on the same model, prompts, shapes and threads,
//! measured in the same run. Goals (issue 12): sqlrft ≥ 2× TRL's step throughput, and the update
//! at ≥ 30% of what the GEMM crate reaches on a plain matrix product of the model's main shape.

use crate::data::load_jsonl;
use crate::rollout::Prompt;
use crate::train::{RoundTimings, TrainConfig, Trainer, build_rewards, load_cpu_backend};
use anyhow::{Context, Result, bail};
use clap::Args;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::layers::{Mat, gemm};
use sqlrft_model::params::{ModelLayout, SaveDtype, model_safetensors};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};
use tokenizers::models::TrainerWrapper;
use tokenizers::models::bpe::{BPE, BpeTrainerBuilder};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::{AddedToken, Tokenizer};

/// TRL's side of the benchmark, run with `--python`.
const PEER_SCRIPT: &str = include_str!("../../../scripts/reference/trl_grpo_cpu_bench.py");

/// SmolLM2-135M-Instruct's `config.json` (Llama architecture): the shape the benchmark runs
/// when no `--model` is given. Speed does not depend on the weights' values.
const SMOLLM2_135M_CONFIG: &str = r#"{
  "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": 49152,
  "hidden_size": 576, "intermediate_size": 1536, "num_hidden_layers": 30,
  "num_attention_heads": 9, "num_key_value_heads": 3, "head_dim": 64, "rms_norm_eps": 1e-5,
  "rope_theta": 100000.0, "tie_word_embeddings": true, "attention_bias": false, "mlp_bias": false,
  "hidden_act": "silu", "max_position_embeddings": 8192, "initializer_range": 0.02,
  "bos_token_id": 1, "eos_token_id": 2, "pad_token_id": 2, "torch_dtype": "bfloat16"
}"#;

/// ChatML, the template SmolLM2-Instruct and Qwen2 use.
pub const CHATML_TEMPLATE: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";

/// `sqlrft bench train` flags.
#[derive(Debug, Clone, Args)]
pub struct TrainBenchArgs {
    /// A Hugging Face model directory (e.g. from `sqlrft model import-gguf`); default: a
    /// SmolLM2-135M-shaped model with random weights and a byte-level BPE trained on the prompts.
    #[arg(long)]
    pub model: Option<PathBuf>,
    /// Prompts from this dataset JSONL (`sqlrft build` / `sqlrft quickstart` output); default:
    /// a quickstart dataset built for the benchmark.
    #[arg(long)]
    pub dataset: Option<PathBuf>,
    /// Prompts per step (the dataset's first ones).
    #[arg(long, default_value_t = 4)]
    pub prompts: usize,
    /// Completions per prompt (GRPO's group size).
    #[arg(long, default_value_t = 8)]
    pub generations: usize,
    /// New tokens per completion at most.
    #[arg(long, default_value_t = 128)]
    pub max_new_tokens: usize,
    /// Measured steps, after the warm-up steps.
    #[arg(long, default_value_t = 1)]
    pub steps: usize,
    /// Steps run first and not measured (allocations, page faults, thread pools).
    #[arg(long, default_value_t = 1)]
    pub warmup: usize,
    /// Threads for both sides (default: every core).
    #[arg(long)]
    pub threads: Option<usize>,
    /// Python with torch, transformers, trl and peft for the TRL peer.
    #[arg(long, env = "SQLRFT_PYTHON", default_value = "python3")]
    pub python: PathBuf,
    /// Skip the TRL peer.
    #[arg(long)]
    pub no_peer: bool,
    /// Keep the dataset and model directory here (default: a temporary directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
}

/// One side's measured steps, averaged.
#[derive(Debug, Clone, Default)]
pub struct SideReport {
    /// Which side: `sqlrft` or the peer's name.
    pub name: String,
    /// Where a step's time went, averaged over the measured steps.
    pub timings: RoundTimings,
    /// Completion tokens per step.
    pub completion_tokens: f64,
    /// Prompt tokens per step (each prompt counted once).
    pub prompt_tokens: f64,
}

impl SideReport {
    fn step(&self) -> Duration {
        self.timings.generation + self.timings.rewards + self.timings.update
    }
    /// Completion tokens per second of whole-step time.
    pub fn step_throughput(&self) -> f64 {
        self.completion_tokens / self.step().as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct TrainBenchReport {
    /// The model directory benchmarked.
    pub model: String,
    /// Threads the CPU kernels used.
    pub threads: usize,
    /// The CPU's model name.
    pub cpu: String,
    /// Prompts × generations × new tokens, as printed.
    pub shape: String,
    /// sqlrft's side.
    pub sqlrft: SideReport,
    /// Matrix-product FLOPs of one step's generation and update, from the shapes run.
    pub generation_flops: f64,
    /// Matrix-product FLOPs of one step's update (forward and backward).
    pub update_flops: f64,
    /// The GEMM crate on a plain product of the model's main shape, `(m, k, n)`, GFLOP/s.
    pub gemm_shape: (usize, usize, usize),
    /// What that plain product reached, in GFLOP/s.
    pub gemm_gflops: f64,
    /// TRL's side, or why it was skipped.
    pub peer: std::result::Result<SideReport, String>,
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

impl TrainBenchReport {
    /// GFLOP/s of the update's matrix products.
    pub fn update_gflops(&self) -> f64 {
        self.update_flops / secs(self.sqlrft.timings.update).max(f64::MIN_POSITIVE) / 1e9
    }
    /// GFLOP/s of generation's matrix products.
    pub fn generation_gflops(&self) -> f64 {
        self.generation_flops / secs(self.sqlrft.timings.generation).max(f64::MIN_POSITIVE) / 1e9
    }
    /// sqlrft's step throughput over TRL's, when TRL ran.
    pub fn ratio(&self) -> Option<f64> {
        self.peer
            .as_ref()
            .ok()
            .map(|p| self.sqlrft.step_throughput() / p.step_throughput().max(f64::MIN_POSITIVE))
    }
}

impl std::fmt::Display for TrainBenchReport {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "sqlrft bench train: {} | {} | {} threads, both sides",
            self.model, self.cpu, self.threads
        )?;
        writeln!(f, "{}", self.shape)?;
        writeln!(
            f,
            "build: a dev build runs the trainer and its GEMM crate at opt-level 3 (workspace \
             Cargo.toml profile overrides), so these figures hold for dev and release builds alike"
        )?;
        writeln!(
            f,
            "| side | generation s | rewards s | update s | step s | completion tokens | generation tok/s | step tok/s |"
        )?;
        writeln!(f, "|---|---:|---:|---:|---:|---:|---:|---:|")?;
        let mut row = |s: &SideReport| {
            writeln!(
                f,
                "| {} | {:.2} | {:.3} | {:.2} | {:.2} | {:.0} | {:.1} | {:.1} |",
                s.name,
                secs(s.timings.generation),
                secs(s.timings.rewards),
                secs(s.timings.update),
                secs(s.step()),
                s.completion_tokens,
                s.completion_tokens / secs(s.timings.generation).max(f64::MIN_POSITIVE),
                s.step_throughput()
            )
        };
        row(&self.sqlrft)?;
        if let Ok(p) = &self.peer {
            row(p)?;
        }
        let (m, k, n) = self.gemm_shape;
        writeln!(
            f,
            "matrix products (attention and LoRA's rank-r products not counted): generation {:.1} GFLOP/s, update {:.1} GFLOP/s",
            self.generation_gflops(),
            self.update_gflops()
        )?;
        writeln!(
            f,
            "gemm crate alone on [{m}x{k}]·[{k}x{n}]: {:.1} GFLOP/s; the update reaches {:.0}% of it (goal ≥ 30%)",
            self.gemm_gflops,
            100.0 * self.update_gflops() / self.gemm_gflops.max(f64::MIN_POSITIVE)
        )?;
        match (&self.peer, self.ratio()) {
            (Ok(_), Some(r)) => writeln!(
                f,
                "sqlrft step throughput = {r:.2}x TRL GRPOTrainer's (goal ≥ 2x)"
            ),
            (Err(why), _) => writeln!(f, "TRL peer skipped: {why}"),
            _ => Ok(()),
        }
    }
}

/// Runs the benchmark and prints its report.
pub async fn run_bench(args: &TrainBenchArgs) -> Result<TrainBenchReport> {
    if args.prompts == 0 || args.generations < 2 || args.max_new_tokens == 0 || args.steps == 0 {
        bail!(
            "--prompts, --steps and --max-new-tokens must be at least 1, --generations at least 2"
        );
    }
    let threads = args.threads.unwrap_or_else(|| {
        std::thread::available_parallelism()
            .map(|n| n.get())
            .unwrap_or(1)
    });
    if rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build_global()
        .is_err()
        && rayon::current_num_threads() != threads
    {
        bail!(
            "rayon's thread pool already runs {} threads; --threads {threads} cannot apply",
            rayon::current_num_threads()
        );
    }
    let temp = tempfile::tempdir()?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    std::fs::create_dir_all(&dir)?;
    let all = match &args.dataset {
        Some(path) => load_jsonl(path)?,
        None => load_jsonl(&quickstart_dataset(&dir).await?)?,
    };
    if all.is_empty() {
        bail!("the benchmark's dataset has no prompts");
    }
    let prompts: Vec<Prompt> = all.iter().cycle().take(args.prompts).cloned().collect();
    let (model_dir, model_name) = match &args.model {
        Some(m) => (m.clone(), m.display().to_string()),
        None => {
            let m = dir.join("smollm2-135m-random");
            write_random_smollm2(&m, &all)?;
            (
                m,
                "SmolLM2-135M shape, random weights, BPE trained on the prompts (no --model)"
                    .to_string(),
            )
        }
    };
    let mut cfg = TrainConfig {
        max_steps: (args.warmup + args.steps) as u64,
        prompts_per_step: args.prompts,
        max_prompt_length: 4096,
        save_steps: u64::MAX,
        ..TrainConfig::default()
    };
    cfg.grpo.num_generations = args.generations;
    cfg.sampling.max_new_tokens = args.max_new_tokens;
    cfg.validate()?;
    let lora = (cfg.lora.rank, cfg.lora.alpha);
    let (backend, tokenizer) = load_cpu_backend(&model_dir, &cfg)?;
    let mc = backend.model.config.clone();
    let rewards = build_rewards(&cfg.rewards, &[])?;
    let mut trainer = Trainer::new(backend, tokenizer, cfg, prompts.clone(), rewards);
    let mut measured = SideReport {
        name: "sqlrft (CPU f32)".into(),
        ..Default::default()
    };
    let (mut gen_flops, mut upd_flops, mut rows) = (0.0, 0.0, 0usize);
    let progress = indicatif::ProgressBar::new((args.warmup + args.steps) as u64)
        .with_message("GRPO steps (warm-up first)");
    for step in 0..args.warmup + args.steps {
        trainer.train_round().await?;
        progress.inc(1);
        if step < args.warmup {
            continue;
        }
        let batch = trainer
            .last_rollout
            .as_ref()
            .context("a round without rollouts")?;
        let t = trainer.timings;
        measured.timings.generation += t.generation;
        measured.timings.rewards += t.rewards;
        measured.timings.update += t.update;
        for group in &batch.groups {
            let p = group.prompt_token_ids.len();
            measured.prompt_tokens += p as f64;
            gen_flops += Flops::of(&mc).prefill(p);
            for c in &group.completions {
                let l = c.token_ids.len();
                measured.completion_tokens += l as f64;
                gen_flops += Flops::of(&mc).decode(l);
                upd_flops += Flops::of(&mc).lora_update(p, l);
                rows += p + l;
            }
        }
    }
    progress.finish_and_clear();
    let n = args.steps as u32;
    measured.timings = RoundTimings {
        generation: measured.timings.generation / n,
        rewards: measured.timings.rewards / n,
        update: measured.timings.update / n,
    };
    measured.completion_tokens /= n as f64;
    measured.prompt_tokens /= n as f64;
    let completions = args.prompts * args.generations;
    let mean_seq = rows / (completions * args.steps).max(1);
    let gemm_shape = (mean_seq.max(1), mc.hidden_size, mc.intermediate_size);
    let gemm_gflops = gemm_throughput(gemm_shape);
    let peer = if args.no_peer {
        Err("--no-peer".to_string())
    } else {
        run_peer(args, &model_dir, &dir, &prompts, threads, lora)
    };
    let report = TrainBenchReport {
        model: model_name,
        threads,
        cpu: cpu_name(),
        shape: format!(
            "{} prompts x {} completions x ≤{} new tokens per step; {:.0} prompt tokens per step; \
             LoRA r={} alpha={} on every projection; {} warm-up step(s) excluded, mean of {} measured",
            args.prompts,
            args.generations,
            args.max_new_tokens,
            measured.prompt_tokens,
            lora.0,
            lora.1,
            args.warmup,
            args.steps
        ),
        sqlrft: measured,
        generation_flops: gen_flops / args.steps as f64,
        update_flops: upd_flops / args.steps as f64,
        gemm_shape,
        gemm_gflops,
        peer,
    };
    print!("{report}");
    Ok(report)
}

/// Builds the quickstart's dataset (what `sqlrft quickstart` makes) and returns its train split.
#[cfg(feature = "execution")]
async fn quickstart_dataset(dir: &Path) -> Result<PathBuf> {
    let built = sqlrft_builder::run_quickstart(&sqlrft_builder::QuickstartArgs {
        out: dir.join("quickstart"),
        queries: 30,
        seed: 7,
    })
    .await
    .context("the benchmark's quickstart dataset")?;
    Ok(built.train)
}

#[cfg(not(feature = "execution"))]
async fn quickstart_dataset(_dir: &Path) -> Result<PathBuf> {
    bail!(
        "this sqlrft was built without the `execution` feature (no DuckDB), so the benchmark \
         cannot build its quickstart dataset; pass --dataset with a built dataset's train.jsonl"
    )
}

/// Matrix-product FLOPs of a decoder (attention scores and LoRA's small products left out).
struct Flops {
    /// Per position through every layer's projections.
    stack: f64,
    /// Per position through the lm head.
    head: f64,
}

impl Flops {
    fn of(c: &ModelConfig) -> Self {
        let (h, ff) = (c.hidden_size, c.intermediate_size);
        let (qd, kvd) = (
            c.num_attention_heads * c.head_dim,
            c.num_key_value_heads * c.head_dim,
        );
        let per_layer = h * qd + 2 * h * kvd + qd * h + 3 * h * ff;
        Self {
            stack: 2.0 * (c.num_hidden_layers * per_layer) as f64,
            head: 2.0 * (h * c.vocab_size) as f64,
        }
    }
    /// A prompt of `p` tokens, once per prompt, with the first token's logits.
    fn prefill(&self, p: usize) -> f64 {
        p as f64 * self.stack + self.head
    }
    /// The decode steps after the first token of an `l`-token completion.
    fn decode(&self, l: usize) -> f64 {
        l.saturating_sub(1) as f64 * (self.stack + self.head)
    }
    /// Forward over `p + l - 1` positions (logits for the completion's `l`), then the backward's
    /// input gradients through the same products; LoRA needs no base-weight gradients.
    fn lora_update(&self, p: usize, l: usize) -> f64 {
        2.0 * ((p + l - 1) as f64 * self.stack + l as f64 * self.head)
    }
}

/// GFLOP/s of the GEMM crate on `[m, k] · [k, n]`, as the trainer calls it, over about a second.
fn gemm_throughput((m, k, n): (usize, usize, usize)) -> f64 {
    let mut rng = ChaCha8Rng::seed_from_u64(3);
    let a: Vec<f32> = (0..m * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let b: Vec<f32> = (0..n * k).map(|_| rng.random_range(-1.0..1.0)).collect();
    let mut c = vec![0.0f32; m * n];
    let run = |c: &mut [f32]| {
        gemm(
            c,
            Mat::rows(&a, m, k),
            Mat::transposed(&b, k, n),
            1.0,
            false,
        )
    };
    run(&mut c);
    let started = Instant::now();
    let mut reps = 0u32;
    while reps < 3 || started.elapsed() < Duration::from_secs(1) {
        run(&mut c);
        reps += 1;
    }
    2.0 * (m * k * n) as f64 * reps as f64 / started.elapsed().as_secs_f64() / 1e9
}

fn cpu_name() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|n| n.trim().to_string())
        })
        .unwrap_or_else(|| std::env::consts::ARCH.to_string())
}

/// Runs TRL's GRPOTrainer through the reference script; `Err` says why it did not run.
fn run_peer(
    args: &TrainBenchArgs,
    model_dir: &Path,
    dir: &Path,
    prompts: &[Prompt],
    threads: usize,
    (rank, alpha): (usize, f32),
) -> std::result::Result<SideReport, String> {
    let probe = Command::new(&args.python)
        .args(["-c", "import torch, transformers, trl, peft, datasets"])
        .output();
    match probe {
        Err(e) => return Err(format!("`{}` did not start: {e}", args.python.display())),
        Ok(o) if !o.status.success() => {
            let err = String::from_utf8_lossy(&o.stderr);
            return Err(format!(
                "`{}` lacks torch/transformers/trl/peft/datasets ({}); pass --python with them \
                 (or set SQLRFT_PYTHON)",
                args.python.display(),
                err.lines().last().unwrap_or_default().trim()
            ));
        }
        Ok(_) => {}
    }
    let script = dir.join("trl_grpo_cpu_bench.py");
    let prompt_file = dir.join("trl-prompts.jsonl");
    let lines: Vec<String> = prompts
        .iter()
        .map(|p| {
            let messages: Vec<serde_json::Value> = p
                .messages
                .iter()
                .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
                .collect();
            serde_json::json!({ "prompt": messages }).to_string()
        })
        .collect();
    std::fs::write(&script, PEER_SCRIPT)
        .and_then(|_| std::fs::write(&prompt_file, lines.join("\n") + "\n"))
        .map_err(|e| format!("writing the peer's files in {}: {e}", dir.display()))?;
    let numbers = [
        ("--num-generations", args.generations.to_string()),
        ("--max-new-tokens", args.max_new_tokens.to_string()),
        ("--steps", args.steps.to_string()),
        ("--warmup", args.warmup.to_string()),
        ("--threads", threads.to_string()),
        ("--lora-r", rank.to_string()),
        ("--lora-alpha", alpha.to_string()),
    ];
    let output = Command::new(&args.python)
        .arg(&script)
        .arg("--model")
        .arg(model_dir)
        .arg("--prompts")
        .arg(&prompt_file)
        .args(
            numbers
                .iter()
                .flat_map(|(flag, value)| [*flag, value.as_str()]),
        )
        .arg("--output-dir")
        .arg(dir.join("trl-output"))
        .env("OMP_NUM_THREADS", threads.to_string())
        .env("MKL_NUM_THREADS", threads.to_string())
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("the TRL script did not start: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the TRL script failed ({}); its output ends: {}",
            output.status,
            stdout.lines().rev().take(5).collect::<Vec<_>>().join(" | ")
        ));
    }
    let json = stdout
        .lines()
        .rev()
        .find(|l| l.trim_start().starts_with('{'))
        .ok_or("the TRL script printed no JSON result")?;
    let v: serde_json::Value =
        serde_json::from_str(json).map_err(|e| format!("the TRL script's result: {e}"))?;
    let num = |k: &str| v[k].as_f64().ok_or(format!("the TRL result lacks `{k}`"));
    Ok(SideReport {
        name: format!(
            "TRL {} GRPOTrainer (torch {}, CPU f32)",
            v["trl"].as_str().unwrap_or("?"),
            v["torch"].as_str().unwrap_or("?")
        ),
        timings: RoundTimings {
            generation: Duration::from_secs_f64(num("generation_s")?),
            rewards: Duration::from_secs_f64(num("rewards_s")?),
            update: Duration::from_secs_f64(num("update_s")?),
        },
        completion_tokens: num("completion_tokens")?,
        prompt_tokens: num("prompt_tokens")?,
    })
}

/// Writes a model directory with SmolLM2-135M's config, seeded random bf16 weights and a
/// byte-level BPE tokenizer trained on `prompts` (ChatML template, SmolLM2's special tokens).
pub fn write_random_smollm2(dir: &Path, prompts: &[Prompt]) -> Result<()> {
    std::fs::create_dir_all(dir)?;
    let corpus: Vec<String> = prompts
        .iter()
        .flat_map(|p| p.messages.iter().map(|m| m.content.clone()))
        .collect();
    // Tokens of at most 6 bytes keep prompts near a real tokenizer's ~4 bytes per token.
    write_bpe_tokenizer(dir, &corpus, 8192, Some(6))?;
    std::fs::write(dir.join("config.json"), SMOLLM2_135M_CONFIG)?;
    let cfg = ModelConfig::parse(SMOLLM2_135M_CONFIG)?;
    let weights = random_weights(&cfg, 135, 0.05);
    let bytes = model_safetensors(&cfg, &weights, SaveDtype::Bf16)?;
    sqlrft_files::write(&dir.join("model.safetensors"), &bytes)?;
    Ok(())
}

/// Seeded weights for `cfg`: norms near 1, everything else uniform in ±`scale`.
pub fn random_weights(cfg: &ModelConfig, seed: u64, scale: f32) -> Vec<f32> {
    let layout = ModelLayout::new(cfg);
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut w = vec![0.0f32; layout.layout.len];
    for t in &layout.layout.tensors {
        let is_norm = t.name.contains("norm");
        for v in &mut w[t.range()] {
            *v = if is_norm {
                1.0 + rng.random_range(-0.1..0.1)
            } else {
                rng.random_range(-scale..scale)
            };
        }
    }
    w
}

/// Trains a byte-level BPE on `corpus` and writes `tokenizer.json` and a ChatML
/// `tokenizer_config.json` (`<|endoftext|>`, `<|im_start|>`, `<|im_end|>` are ids 0, 1, 2, as in
/// SmolLM2); returns the vocabulary size.
pub fn write_bpe_tokenizer(
    dir: &Path,
    corpus: &[String],
    vocab_size: usize,
    max_token_length: Option<usize>,
) -> Result<usize> {
    let specials: Vec<AddedToken> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .iter()
        .map(|t| AddedToken::from(*t, true))
        .collect();
    let mut trainer = TrainerWrapper::BpeTrainer(
        BpeTrainerBuilder::new()
            .vocab_size(vocab_size)
            .min_frequency(1)
            .max_token_length(max_token_length)
            .show_progress(false)
            .special_tokens(specials.clone())
            .initial_alphabet(ByteLevel::alphabet().into_iter().collect())
            .build(),
    );
    let mut tok = Tokenizer::new(BPE::default());
    tok.with_pre_tokenizer(Some(ByteLevel::new(false, true, true)));
    tok.with_decoder(Some(ByteLevel::default()));
    tok.train(&mut trainer, corpus.iter().cycle().take(corpus.len() * 3))
        .map_err(|e| anyhow::anyhow!("training the tokenizer: {e}"))?;
    tok.add_special_tokens(specials)
        .map_err(|e| anyhow::anyhow!("adding special tokens: {e}"))?;
    tok.save(dir.join("tokenizer.json"), false)
        .map_err(|e| anyhow::anyhow!("writing tokenizer.json: {e}"))?;
    let config = serde_json::json!({
        "bos_token": null,
        "eos_token": "<|im_end|>",
        "pad_token": "<|endoftext|>",
        "chat_template": CHATML_TEMPLATE,
    });
    std::fs::write(
        dir.join("tokenizer_config.json"),
        serde_json::to_string_pretty(&config)?,
    )?;
    Ok(tok.get_vocab_size(true))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flops_count_every_projection_of_smollm2() {
        let c = ModelConfig::parse(SMOLLM2_135M_CONFIG).unwrap();
        let f = Flops::of(&c);
        // 30 layers × (576·576·2 + 576·192·2 + 576·1536·3) weights, tied head 49152·576.
        let per_layer = 2 * 576 * 576 + 2 * 576 * 192 + 3 * 576 * 1536;
        assert_eq!(f.stack, 2.0 * 30.0 * per_layer as f64);
        assert_eq!(f.head, 2.0 * 49152.0 * 576.0);
        assert_eq!(f.lora_update(10, 5), 2.0 * (14.0 * f.stack + 5.0 * f.head));
    }
}
