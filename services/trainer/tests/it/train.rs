//! The GRPO loop end to end on tiny models: learning a toy task, exact resume, kill + resume
//! through the CLI entry point, export round-trip, and failing rewards counted as missing.

use crate::tiny::{self, Family};
use futures::future::BoxFuture;
use sqlrft_model::backend::{Backend, Sequence};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::lora::LoraConfig;
use sqlrft_model::params::{ModelLayout, load_weights};
use sqlrft_trainer::metrics::{self, StepMetrics};
use sqlrft_trainer::reward::{RewardFunction, RewardGroup, RewardScore};
use sqlrft_trainer::train::{RewardSpec, TrainConfig, Trainer, build_rewards, load_cpu_backend};
use sqlrft_trainer::{ExportArgs, TrainArgs, run_export};
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Toy task: the share of lowercase ASCII letters in the completion text.
struct Lowercase {
    calls: AtomicUsize,
    /// Set `stop` once this many groups have been scored (simulates Ctrl-C mid-run).
    stop_after: Option<(usize, Arc<AtomicBool>)>,
}

impl Lowercase {
    fn new() -> Self {
        Self {
            calls: AtomicUsize::new(0),
            stop_after: None,
        }
    }
}

impl RewardFunction for Lowercase {
    fn name(&self) -> &str {
        "lowercase"
    }
    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, anyhow::Result<Vec<RewardScore>>> {
        let n = self.calls.fetch_add(1, Ordering::SeqCst) + 1;
        if let Some((after, flag)) = &self.stop_after
            && n >= *after
        {
            flag.store(true, Ordering::SeqCst);
        }
        let scores = group
            .completions
            .iter()
            .map(|c| {
                let total = c.chars().count().max(1) as f64;
                RewardScore::valid(
                    c.chars().filter(|ch| ch.is_ascii_lowercase()).count() as f64 / total,
                )
            })
            .collect();
        Box::pin(async move { Ok(scores) })
    }
}

fn toy_config(max_steps: u64) -> TrainConfig {
    let mut cfg = TrainConfig {
        seed: 7,
        max_steps,
        prompts_per_step: 2,
        gradient_accumulation_steps: 2,
        max_prompt_length: 64,
        save_steps: 2,
        lora: LoraConfig {
            rank: 4,
            alpha: 8.0,
            ..LoraConfig::default()
        },
        rewards: vec![RewardSpec {
            timeout_seconds: 1.0,
            ..RewardSpec::new("lowercase", "custom")
        }],
        ..TrainConfig::default()
    };
    cfg.grpo.num_generations = 4;
    cfg.optim.learning_rate = 2e-2;
    cfg.optim.lr_scheduler_type = sqlrft_model::optim::LrSchedule::Constant;
    cfg.sampling.max_new_tokens = 6;
    cfg
}

fn setup(family: Family) -> (tempfile::TempDir, std::path::PathBuf, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny::write_model(&model, family, 21);
    let data = dir.path().join("train.jsonl");
    tiny::write_dataset(&data, 5);
    (dir, model, data)
}

fn trainer(
    model: &Path,
    data: &Path,
    cfg: &TrainConfig,
    reward: Arc<dyn RewardFunction>,
) -> Trainer<sqlrft_model::backend::CpuBackend> {
    let (backend, tok) = load_cpu_backend(model, cfg).unwrap();
    let prompts = sqlrft_trainer::data::load_jsonl(data).unwrap();
    let rewards = build_rewards(&cfg.rewards, &[reward]).unwrap();
    Trainer::new(backend, tok, cfg.clone(), prompts, rewards)
}

fn run_rounds<B: Backend>(t: &mut Trainer<B>, rounds: usize) -> Vec<StepMetrics> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    (0..rounds)
        .flat_map(|_| rt.block_on(t.train_round()).unwrap())
        .collect()
}

#[test]
fn reward_rises_on_a_toy_task() {
    let (_dir, model, data) = setup(Family::Qwen2);
    // Full fine-tuning moves the tiny model fast enough for a debug-build test (LoRA does too,
    // over more steps than CI can afford here).
    let mut cfg = toy_config(25);
    cfg.full_finetune = true;
    cfg.optim.learning_rate = 0.05;
    cfg.optim.max_grad_norm = 0.0;
    let mut t = trainer(&model, &data, &cfg, Arc::new(Lowercase::new()));
    let m = run_rounds(&mut t, 25);
    let mean = |s: &[StepMetrics]| s.iter().map(|m| m.reward).sum::<f64>() / s.len() as f64;
    let (first, last) = (mean(&m[..5]), mean(&m[m.len() - 5..]));
    assert!(
        m.iter()
            .all(|x| x.loss.is_finite() && x.grad_norm.is_finite())
    );
    assert!(
        last > first + 0.3,
        "reward did not rise: first 5 steps {first:.3}, last 5 steps {last:.3}"
    );
    assert!(
        m.last().unwrap().entropy < m[0].entropy,
        "the policy should sharpen"
    );
    let rollout = t.last_rollout.as_ref().unwrap();
    assert_eq!(rollout.groups.len(), 2);
    let c = &rollout.groups[0].completions[0];
    assert_eq!(c.token_ids.len(), c.sampling_logprobs.len());
    assert_eq!(c.rewards[0].name, "lowercase");
}

#[test]
fn resumed_run_continues_exactly() {
    for family in [Family::Qwen2, Family::Llama] {
        let (dir, model, data) = setup(family);
        let mut cfg = toy_config(4);
        cfg.grpo.num_iterations = 2; // exercises old log-probs and clipping
        cfg.grpo.beta = 0.05; // and the reference policy
        let straight = run_rounds(
            &mut trainer(&model, &data, &cfg, Arc::new(Lowercase::new())),
            2,
        );

        let mut first = trainer(&model, &data, &cfg, Arc::new(Lowercase::new()));
        let before = run_rounds(&mut first, 1);
        let ckpt = first.save_checkpoint(dir.path(), "model").unwrap();
        drop(first);
        let mut resumed = trainer(&model, &data, &cfg, Arc::new(Lowercase::new()));
        resumed.restore(&ckpt).unwrap();
        assert_eq!(resumed.step, 2);
        let after = run_rounds(&mut resumed, 1);
        let losses = |m: &[StepMetrics]| {
            m.iter()
                .map(|x| (x.step, x.loss, x.reward, x.kl))
                .collect::<Vec<_>>()
        };
        assert_eq!(losses(&straight[..2]), losses(&before), "{family:?}");
        assert_eq!(
            losses(&straight[2..]),
            losses(&after),
            "{family:?}: resumed steps differ from the uninterrupted run"
        );
    }
}

fn args(model: &Path, data: &Path, out: &Path, config: &Path, resume: bool) -> TrainArgs {
    TrainArgs {
        model: model.display().to_string(),
        dataset: Some(data.display().to_string()),
        output_dir: out.to_path_buf(),
        config: Some(config.to_path_buf()),
        resume,
        max_steps: None,
        save_steps: None,
        sft_epochs: None,
        sft_dataset: None,
        sft_max_length: None,
        rollouts: vec![],
        max_staleness: None,
        round: Default::default(),
        device: None,
        quiet: true,
        hub: Default::default(),
    }
}

const TOY_TOML: &str = r#"
seed = 7
max_steps = 6
prompts_per_step = 2
gradient_accumulation_steps = 2
max_prompt_length = 64
save_steps = 2
[lora]
rank = 4
alpha = 8.0
target_modules = ["q_proj", "v_proj", "gate_proj"]
[grpo]
num_generations = 4
[optim]
learning_rate = 0.02
warmup_ratio = 0.2
lr_scheduler_type = "cosine"
[sampling]
max_new_tokens = 6
temperature = 0.9
[[rewards]]
name = "lowercase"
kind = "custom"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_resumes_through_the_cli_and_exports_a_loadable_model() {
    let (dir, model, data) = setup(Family::Llama);
    let config = dir.path().join("toy.toml");
    std::fs::write(&config, TOY_TOML).unwrap();
    let straight_dir = dir.path().join("straight");
    // --resume on a directory with no checkpoint starts the run (a restarted container passes
    // the same flags as its first start).
    sqlrft_trainer::cli::run_train_until(
        args(&model, &data, &straight_dir, &config, true),
        vec![Arc::new(Lowercase::new())],
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    let straight = metrics::read_jsonl(&straight_dir.join("metrics.jsonl")).unwrap();
    assert_eq!(straight.len(), 6);
    assert!(straight_dir.join("training_curve.png").exists());

    // Interrupted after the 3rd group is scored (step 2), then resumed.
    let run = dir.path().join("run");
    let stop = Arc::new(AtomicBool::new(false));
    let killer = Lowercase {
        calls: AtomicUsize::new(0),
        stop_after: Some((3, stop.clone())),
    };
    sqlrft_trainer::cli::run_train_until(
        args(&model, &data, &run, &config, false),
        vec![Arc::new(killer)],
        stop,
    )
    .await
    .unwrap();
    let partial = metrics::read_jsonl(&run.join("metrics.jsonl")).unwrap();
    assert_eq!(partial.len(), 2, "stopped after the round in progress");
    let again = sqlrft_trainer::cli::run_train_until(
        args(&model, &data, &run, &config, false),
        vec![Arc::new(Lowercase::new())],
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap_err();
    assert!(format!("{again:#}").contains("--resume"), "{again:#}");
    sqlrft_trainer::cli::run_train_until(
        args(&model, &data, &run, &config, true),
        vec![Arc::new(Lowercase::new())],
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap();
    let resumed = metrics::read_jsonl(&run.join("metrics.jsonl")).unwrap();
    let key = |m: &[StepMetrics]| {
        m.iter()
            .map(|x| (x.step, x.loss, x.reward, x.lr))
            .collect::<Vec<_>>()
    };
    assert_eq!(key(&resumed), key(&straight));

    // Export the final checkpoint and reload it as a plain model.
    let export = dir.path().join("export");
    run_export(ExportArgs {
        output_dir: run.clone(),
        checkpoint: None,
        model: None,
        out: export.clone(),
        dtype: None,
        adapter: false,
        max_shard_bytes: sqlrft_trainer::export::DEFAULT_MAX_SHARD_BYTES,
        hub: Default::default(),
    })
    .await
    .unwrap();
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "tokenizer_config.json",
    ] {
        assert!(export.join(f).exists(), "export lacks {f}");
    }
    let cfg = ModelConfig::load(&export).unwrap();
    assert_eq!(cfg.torch_dtype.as_deref(), Some("float32"));
    let reloaded = CpuModel::new(
        cfg.clone(),
        load_weights(&export, &ModelLayout::new(&cfg).layout).unwrap(),
        None,
    );

    let train_cfg = TrainConfig::load(Some(&config)).unwrap();
    let (mut backend, _) = load_cpu_backend(&model, &train_cfg).unwrap();
    let latest = sqlrft_trainer::checkpoint::latest(&run).unwrap().unwrap();
    let (state, _) = sqlrft_trainer::checkpoint::load(&latest, backend.trainable_layout()).unwrap();
    backend.load_trainable_state(state).unwrap();
    let merged = CpuModel::new(
        backend.config().clone(),
        backend.merged_weights().unwrap(),
        None,
    );
    let seq: Vec<u32> = (0..10).map(|i| (i * 17 % cfg.vocab_size) as u32).collect();
    let want = merged.forward(&seq, 0, false).logits;
    assert_eq!(
        reloaded.forward(&seq, 0, false).logits,
        want,
        "reloaded export gives different logits"
    );

    // The same checkpoint exported with a tiny shard limit: shards + index, the same model.
    let sharded = dir.path().join("export-sharded");
    run_export(ExportArgs {
        output_dir: run.clone(),
        checkpoint: None,
        model: None,
        out: sharded.clone(),
        dtype: None,
        adapter: false,
        max_shard_bytes: 4096,
        hub: Default::default(),
    })
    .await
    .unwrap();
    assert!(!sharded.join("model.safetensors").exists());
    let index: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sharded.join("model.safetensors.index.json")).unwrap(),
    )
    .unwrap();
    let shard_files: std::collections::BTreeSet<&str> = index["weight_map"]
        .as_object()
        .unwrap()
        .values()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(shard_files.len() > 1, "{index}");
    for f in &shard_files {
        assert!(f.starts_with("model-") && f.contains("-of-"), "{f}");
        let held = index["weight_map"]
            .as_object()
            .unwrap()
            .values()
            .filter(|v| v == f)
            .count();
        // Only a tensor alone in its shard may exceed the limit (plus the JSON header).
        let size = std::fs::metadata(sharded.join(f)).unwrap().len();
        assert!(
            held == 1 || size <= 4096 + 4096,
            "{f}: {held} tensors, {size} bytes"
        );
    }
    let from_shards = CpuModel::new(
        cfg.clone(),
        load_weights(&sharded, &ModelLayout::new(&cfg).layout).unwrap(),
        None,
    );
    assert_eq!(from_shards.forward(&seq, 0, false).logits, want);
    let provenance: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(sharded.join("sqlrft_training.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(provenance["base_model"], model.display().to_string());
    let adapted = backend.model.forward(&seq, 0, true).logits;
    let diff = adapted
        .iter()
        .zip(&want)
        .map(|(a, b)| (a - b).abs())
        .fold(0.0f32, f32::max);
    assert!(
        diff < 1e-4,
        "merged weights differ from base + adapter by {diff}"
    );
    assert!(
        backend
            .model
            .lora
            .as_ref()
            .unwrap()
            .1
            .iter()
            .any(|&x| x != 0.0)
    );
}

#[test]
fn failing_reward_service_counts_as_missing_not_zero() {
    let (_dir, model, data) = setup(Family::Qwen2);
    // A port nothing listens on: bind, note it, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = toy_config(1);
    cfg.rewards.push(RewardSpec {
        url: Some(format!("http://127.0.0.1:{port}")),
        timeout_seconds: 5.0,
        ..RewardSpec::new("execution", "http")
    });
    let mut t = trainer(&model, &data, &cfg, Arc::new(Lowercase::new()));
    let m = run_rounds(&mut t, 1);
    assert_eq!(m[0].rewards["execution"].invalid_fraction, 1.0);
    assert_eq!(m[0].rewards["lowercase"].invalid_fraction, 0.0);
    let c = &t.last_rollout.as_ref().unwrap().groups[0].completions[0];
    let exec = c.rewards.iter().find(|r| r.name == "execution").unwrap();
    assert!(
        !exec.valid && exec.reason.contains("unreachable"),
        "{exec:?}"
    );
    // The weighted reward is the valid part only (TRL's nansum).
    let lower = c.rewards.iter().find(|r| r.name == "lowercase").unwrap();
    assert_eq!(c.reward, lower.score);
}

#[test]
fn scoring_rejects_out_of_vocabulary_tokens() {
    let (_dir, model, _) = setup(Family::Qwen2);
    let (mut backend, _) = load_cpu_backend(&model, &toy_config(1)).unwrap();
    let bad = [1u32, 2, 100_000];
    let err = backend
        .score(
            &[Sequence {
                tokens: &bad,
                prompt_len: 1,
            }],
            1.0,
            sqlrft_model::backend::Policy::Trained,
        )
        .unwrap_err();
    assert!(err.to_string().contains("outside the model's vocabulary"));
}

#[test]
fn non_finite_loss_stops_before_updating_with_a_clear_message() {
    let (_dir, model, data) = setup(Family::Qwen2);
    let mc = ModelConfig::load(&model).unwrap();
    let layout = ModelLayout::new(&mc);
    let mut w = load_weights(&model, &layout.layout).unwrap();
    w[layout.norm] = f32::NAN;
    tiny::write_weights(&model, &mc, &w, sqlrft_model::params::SaveDtype::F32);
    let mut t = trainer(&model, &data, &toy_config(3), Arc::new(Lowercase::new()));
    let before = t.backend.trainable_state().unwrap();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let err = format!("{:#}", rt.block_on(t.train_round()).unwrap_err());
    assert!(
        err.contains("not finite") && err.contains("--resume"),
        "{err}"
    );
    assert_eq!(t.step, 0);
    assert_eq!(
        t.backend.trainable_state().unwrap(),
        before,
        "no update was applied"
    );
}

#[test]
fn registered_rewards_join_the_config_with_weight_one() {
    let cfg = TrainConfig::default(); // only the `format` reward
    let rewards = build_rewards(&cfg.rewards, &[Arc::new(Lowercase::new())]).unwrap();
    let names: Vec<(&str, f64)> = rewards.iter().map(|(f, w)| (f.name(), *w)).collect();
    assert_eq!(names, [("format", 1.0), ("lowercase", 1.0)]);
    let missing = vec![RewardSpec::new("execution", "custom")];
    let err = build_rewards(&missing, &[]).err().unwrap().to_string();
    assert!(err.contains("execution"), "{err}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_checkpoints_the_run_before_it_exits() {
    let (dir, model, data) = setup(Family::Qwen2);
    let config = dir.path().join("toy.toml");
    std::fs::write(
        &config,
        TOY_TOML
            .replace("max_steps = 6", "max_steps = 40")
            .replace("save_steps = 2", "save_steps = 1000"),
    )
    .unwrap();
    let run = dir.path().join("run");
    let task = tokio::spawn(sqlrft_trainer::run_train_with_rewards(
        args(&model, &data, &run, &config, false),
        vec![Arc::new(Lowercase::new())],
    ));
    let metrics_path = run.join("metrics.jsonl");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    while metrics::read_jsonl(&metrics_path).map_or(0, |m| m.len()) == 0 {
        assert!(
            std::time::Instant::now() < deadline,
            "no training step within 120 s"
        );
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    let status = std::process::Command::new("kill")
        .args(["-TERM", &std::process::id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    task.await.unwrap().unwrap();
    let done = metrics::read_jsonl(&metrics_path).unwrap();
    let last = done.last().unwrap().step;
    assert!(last < 40, "the run was not interrupted");
    let ckpt = sqlrft_trainer::checkpoint::latest(&run)
        .unwrap()
        .expect("a checkpoint written on SIGTERM");
    assert!(
        ckpt.ends_with(format!("step-{last:06}")),
        "{}",
        ckpt.display()
    );

    let mut resume = args(&model, &data, &run, &config, true);
    resume.max_steps = Some(last + 1);
    sqlrft_trainer::run_train_with_rewards(resume, vec![Arc::new(Lowercase::new())])
        .await
        .unwrap();
    let steps: Vec<u64> = metrics::read_jsonl(&metrics_path)
        .unwrap()
        .iter()
        .map(|m| m.step)
        .collect();
    assert_eq!(steps, (1..=last + 1).collect::<Vec<_>>());
}

#[test]
fn truncated_completions_are_masked_out_when_asked() {
    let (_dir, model, data) = setup(Family::Qwen2);
    let mut cfg = toy_config(2);
    cfg.grpo.mask_truncated_completions = true;
    let mut t = trainer(&model, &data, &cfg, Arc::new(Lowercase::new()));
    t.tokenizer.eos_ids.clear(); // nothing ends a completion: every one is truncated
    let before = t.backend.trainable_state().unwrap();
    let m = run_rounds(&mut t, 1);
    assert_eq!(m[0].truncated_fraction, 1.0);
    assert_eq!(
        (m[0].loss, m[0].grad_norm),
        (0.0, 0.0),
        "masked completions contribute nothing"
    );
    assert_eq!(t.backend.trainable_state().unwrap().params, before.params);

    // Without masking the same situation trains.
    let mut t = trainer(&model, &data, &toy_config(2), Arc::new(Lowercase::new()));
    t.tokenizer.eos_ids.clear();
    let m = run_rounds(&mut t, 1);
    assert!(m[0].grad_norm > 0.0);
}

#[test]
fn accumulated_micro_batches_equal_one_batch_under_dapo() {
    let (_dir, model, _) = setup(Family::Llama);
    let cfg = toy_config(1);
    let seqs: Vec<Vec<u32>> = (0..4)
        .map(|i| (0..9).map(|j| ((i * 31 + j * 7) % 300) as u32).collect())
        .collect();
    let s: Vec<Sequence> = seqs
        .iter()
        .map(|t| Sequence {
            tokens: t,
            prompt_len: 3 + (t[0] as usize % 3),
        })
        .collect();
    let coef = |i: usize, sc: &sqlrft_model::backend::TokenScores| -> Vec<f32> {
        sc.logps.iter().map(|_| 0.1 * (i as f32 + 1.0)).collect()
    };
    let (mut one, _) = load_cpu_backend(&model, &cfg).unwrap();
    one.forward_backward(&s, 0.7, &mut |i, sc| coef(i, sc))
        .unwrap();
    let (mut two, _) = load_cpu_backend(&model, &cfg).unwrap();
    two.forward_backward(&s[..2], 0.7, &mut |i, sc| coef(i, sc))
        .unwrap();
    two.forward_backward(&s[2..], 0.7, &mut |i, sc| coef(i + 2, sc))
        .unwrap();
    assert!(one.grads().iter().any(|&g| g != 0.0));
    for (a, b) in one.grads().iter().zip(two.grads()) {
        assert!((a - b).abs() <= 1e-6 * (1.0 + a.abs()), "{a} vs {b}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_generator_that_is_down_stops_the_run_naming_its_url() {
    let (dir, model, data) = setup(Family::Llama);
    let config = dir.path().join("toy.toml");
    std::fs::write(&config, TOY_TOML).unwrap();
    // A port nobody listens on any more.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}/v1");
    let mut args = args(&model, &data, &dir.path().join("run"), &config, false);
    args.round.generator = Some(url.clone());
    let err = sqlrft_trainer::cli::run_train_until(
        args,
        vec![Arc::new(Lowercase::new())],
        Arc::new(AtomicBool::new(false)),
    )
    .await
    .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains(&format!("--generator {url}")), "{message}");
    assert!(
        !dir.path().join("run/metrics.jsonl").exists(),
        "nothing was trained"
    );
}

/// One backend call, as the recording backend saw it.
#[derive(Clone, Debug, PartialEq)]
enum Call {
    Generate { prompts: usize, n: usize },
    Score(sqlrft_model::backend::Policy, usize),
    ForwardBackward(usize),
    ZeroGrad,
    Clip,
    Step,
}

/// A backend that records the loop's calls and passes them to the CPU reference: the GRPO
/// step's control flow, as any backend (the CUDA one included) sees it.
struct Recording {
    inner: sqlrft_model::backend::CpuBackend,
    calls: Vec<Call>,
}

impl Backend for Recording {
    fn config(&self) -> &ModelConfig {
        self.inner.config()
    }
    fn generate(
        &mut self,
        prompts: &[&[u32]],
        n: usize,
        params: &sqlrft_model::sampling::SamplingParams,
        eos: &[u32],
        rng: &mut rand_chacha::ChaCha8Rng,
    ) -> anyhow::Result<Vec<Vec<sqlrft_model::sampling::Sampled>>> {
        self.calls.push(Call::Generate {
            prompts: prompts.len(),
            n,
        });
        self.inner.generate(prompts, n, params, eos, rng)
    }
    fn score(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        policy: sqlrft_model::backend::Policy,
    ) -> anyhow::Result<Vec<sqlrft_model::backend::TokenScores>> {
        self.calls.push(Call::Score(policy, seqs.len()));
        self.inner.score(seqs, temperature, policy)
    }
    fn forward_backward(
        &mut self,
        seqs: &[Sequence],
        temperature: f32,
        dloss: &mut dyn FnMut(usize, &sqlrft_model::backend::TokenScores) -> Vec<f32>,
    ) -> anyhow::Result<Vec<sqlrft_model::backend::TokenScores>> {
        self.calls.push(Call::ForwardBackward(seqs.len()));
        self.inner.forward_backward(seqs, temperature, dloss)
    }
    fn zero_grad(&mut self) -> anyhow::Result<()> {
        self.calls.push(Call::ZeroGrad);
        self.inner.zero_grad()
    }
    fn clip_grad_norm(&mut self, max_norm: f64) -> anyhow::Result<f64> {
        self.calls.push(Call::Clip);
        self.inner.clip_grad_norm(max_norm)
    }
    fn optimizer_step(
        &mut self,
        lr: f64,
        params: &sqlrft_model::optim::OptimParams,
    ) -> anyhow::Result<()> {
        self.calls.push(Call::Step);
        self.inner.optimizer_step(lr, params)
    }
    fn trainable_layout(&self) -> &sqlrft_model::params::Layout {
        self.inner.trainable_layout()
    }
    fn trainable_state(&self) -> anyhow::Result<sqlrft_model::backend::TrainableState> {
        self.inner.trainable_state()
    }
    fn load_trainable_state(
        &mut self,
        state: sqlrft_model::backend::TrainableState,
    ) -> anyhow::Result<()> {
        self.inner.load_trainable_state(state)
    }
    fn merged_weights(&self) -> anyhow::Result<Vec<f32>> {
        self.inner.merged_weights()
    }
}

#[test]
fn one_round_drives_the_backend_in_grpo_order() {
    use sqlrft_model::backend::Policy;
    let (_dir, model, data) = setup(Family::Qwen2);
    let mut cfg = toy_config(10);
    // Two optimizer steps per round over the same completions, with the KL term: every kind of
    // call a backend must serve.
    cfg.grpo.num_iterations = 2;
    cfg.grpo.beta = 0.04;
    let t = trainer(&model, &data, &cfg, Arc::new(Lowercase::new()));
    let mut t = Trainer::new(
        Recording {
            inner: t.backend,
            calls: vec![],
        },
        t.tokenizer,
        cfg.clone(),
        sqlrft_trainer::data::load_jsonl(&data).unwrap(),
        build_rewards(&cfg.rewards, &[Arc::new(Lowercase::new())]).unwrap(),
    );
    let steps = run_rounds(&mut t, 1);
    assert_eq!(steps.len(), 2, "num_iterations steps per round");
    let completions = cfg.prompts_per_step * cfg.grpo.num_generations;
    let micro = completions / cfg.gradient_accumulation_steps;
    let update = [
        Call::ZeroGrad,
        Call::ForwardBackward(micro),
        Call::ForwardBackward(micro),
        Call::Clip,
        Call::Step,
    ];
    let mut want = vec![
        Call::Generate {
            prompts: cfg.prompts_per_step,
            n: cfg.grpo.num_generations,
        },
        // The sampling policy's log-probs for the ratio, then the reference's for the KL.
        Call::Score(Policy::Trained, completions),
        Call::Score(Policy::Reference, completions),
    ];
    want.extend(update.clone());
    want.extend(update);
    assert_eq!(t.backend.calls, want);
}
