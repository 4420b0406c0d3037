//! The RL loop as services on loopback: `sqlrft model serve` (a tiny seeded model) generates,
//! rollout workers score through the reward service (which runs the SQL through the MCP
//! server), and the trainer pulls their batches over gRPC, publishing each policy as an
//! adapter. Real servers on 127.0.0.1, real HTTP and gRPC.

#[path = "../../../trainer/tests/it/spans.rs"]
mod spans;
#[path = "../../../trainer/tests/it/tiny.rs"]
#[allow(dead_code)]
mod tiny;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::Result;
use clap::Parser;
use futures::future::BoxFuture;
use serde_json::{Value, json};
use sqlrft_rollout::{RolloutArgs, RunningWorker, start_with_rewards};
use sqlrft_trainer::generator::adapter_name;
use sqlrft_trainer::metrics::{self, StepMetrics};
use sqlrft_trainer::reward::{RewardFunction, RewardGroup, RewardScore};
use sqlrft_trainer::workers::RolloutWorkers;
use sqlrft_trainer::{RoundArgs, TrainArgs};

mod failures;
mod trace;

/// A reward that differs between random completions, so a tiny random model gets advantages
/// that are not all zero and its adapter moves.
struct LengthReward;

impl RewardFunction for LengthReward {
    fn name(&self) -> &str {
        "length"
    }
    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, Result<Vec<RewardScore>>> {
        Box::pin(async move {
            Ok(group
                .completions
                .iter()
                .map(|c| RewardScore::valid(c.chars().count() as f64 / 10.0))
                .collect())
        })
    }
}

/// The run's settings, shared by the workers and the trainer as a user would share one file.
const RUN_TOML: &str = r#"
[train]
seed = 11
prompts_per_step = 2
max_prompt_length = 48
save_steps = 1
[train.lora]
rank = 2
alpha = 8.0
[train.optim]
learning_rate = 0.05
[train.grpo]
num_generations = 4
[train.sampling]
max_new_tokens = 6
[[train.rewards]]
name = "execution"
kind = "http"
[[train.rewards]]
name = "length"
kind = "custom"
"#;

/// Everything the loop needs except the workers and the trainer.
struct Stack {
    dir: tempfile::TempDir,
    model: PathBuf,
    dataset: PathBuf,
    config: PathBuf,
    mcp: sqlrft_mcp::RunningServer,
    reward: sqlrft_reward_service::RunningServer,
    generator: sqlrft_model_server::RunningServer,
}

impl Stack {
    async fn start() -> Stack {
        let dir = tempfile::tempdir().unwrap();
        let built = sqlrft_builder::run_quickstart(&sqlrft_builder::QuickstartArgs {
            out: dir.path().join("quickstart"),
            queries: 24,
            seed: 3,
        })
        .await
        .unwrap();
        let mcp = sqlrft_mcp::start(sqlrft_mcp::McpConfig {
            db: Some(built.sandbox.clone()),
            port: 0,
            ..Default::default()
        })
        .await
        .unwrap();
        let reward = sqlrft_reward_service::start(sqlrft_reward_service::RewardConfig {
            mcp_url: Some(format!("{}/mcp", mcp.base_url())),
            port: 0,
            ..Default::default()
        })
        .await
        .unwrap();
        let model = dir.path().join("model");
        tiny::write_model(&model, tiny::Family::Qwen2, 7);
        let generator = sqlrft_model_server::start(sqlrft_model_server::ModelServerConfig {
            dir: model.clone(),
            served_model_name: Some("tiny".into()),
            port: 0,
            enable_lora: true,
            ..Default::default()
        })
        .await
        .unwrap();
        let config = dir.path().join("sqlrft.toml");
        std::fs::write(&config, RUN_TOML).unwrap();
        Stack {
            model,
            dataset: built.train,
            config,
            mcp,
            reward,
            generator,
            dir,
        }
    }

    fn generator_url(&self) -> String {
        format!("{}/v1", self.generator.base_url())
    }

    /// `sqlrft rollout` with these extra flags, in this process.
    async fn worker(&self, name: &str, shard: &str, extra: &[&str]) -> RunningWorker {
        let args = self.worker_args(name, shard, extra);
        start_with_rewards(&args, vec![Arc::new(LengthReward)])
            .await
            .unwrap()
    }

    fn worker_args(&self, name: &str, shard: &str, extra: &[&str]) -> RolloutArgs {
        #[derive(Parser)]
        struct Cli {
            #[command(flatten)]
            args: RolloutArgs,
        }
        let generator = self.generator_url();
        let reward = self.reward.base_url();
        let mut flags = vec![
            ("--model", self.model.to_str().unwrap()),
            ("--dataset", self.dataset.to_str().unwrap()),
            ("--config", self.config.to_str().unwrap()),
            ("--generator", &generator),
            ("--reward-url", &reward),
            ("--port", "0"),
            ("--name", name),
            ("--shard", shard),
        ];
        // `extra` flags replace the defaults of the same name.
        for pair in extra.chunks(2) {
            flags.retain(|(flag, _)| *flag != pair[0]);
            flags.push((pair[0], pair[1]));
        }
        let line = flags.into_iter().flat_map(|(flag, value)| [flag, value]);
        Cli::try_parse_from(std::iter::once("rollout").chain(line))
            .unwrap()
            .args
    }

    /// `sqlrft train --rollouts …` until `max_steps`, into `out`.
    fn trainer_args(&self, workers: &[String], out: &Path, max_steps: u64) -> TrainArgs {
        TrainArgs {
            model: self.model.display().to_string(),
            dataset: None,
            output_dir: out.to_path_buf(),
            config: Some(self.config.clone()),
            resume: false,
            max_steps: Some(max_steps),
            save_steps: None,
            rollouts: workers.to_vec(),
            max_staleness: Some(1),
            round: RoundArgs {
                generator: Some(self.generator_url()),
                ..Default::default()
            },
            sft_epochs: None,
            sft_dataset: None,
            sft_max_length: None,
            device: None,
            quiet: true,
            hub: Default::default(),
        }
    }

    async fn shutdown(self) {
        self.generator.shutdown().await.unwrap();
        self.reward.shutdown().await.unwrap();
        self.mcp.shutdown().await.unwrap();
    }
}

async fn train(args: TrainArgs) -> Vec<StepMetrics> {
    let out = args.output_dir.clone();
    tokio::time::timeout(
        Duration::from_secs(300),
        sqlrft_trainer::cli::run_train_until(args, vec![], Arc::new(AtomicBool::new(false))),
    )
    .await
    .expect("the trainer finished in time")
    .unwrap();
    metrics::read_jsonl(&out.join("metrics.jsonl")).unwrap()
}

/// Greedy log-probs of a fixed prompt under `model` on the generator.
async fn greedy_logprobs(stack: &Stack, model: &str) -> Vec<f64> {
    let reply: Value = reqwest::Client::new()
        .post(format!("{}/completions", stack.generator_url()))
        .json(
            &json!({"model": model, "prompt": [[5, 9, 14, 3]], "max_tokens": 6,
                      "temperature": 0, "logprobs": 0}),
        )
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    reply["choices"][0]["logprobs"]["token_logprobs"]
        .as_array()
        .unwrap_or_else(|| panic!("no log-probs from `{model}`: {reply}"))
        .iter()
        .map(|v| v.as_f64().unwrap())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn two_workers_feed_a_trainer_that_publishes_each_policy_to_the_generator() {
    let stack = Stack::start().await;
    let w0 = stack.worker("w0", "0/2", &[]).await;
    let w1 = stack.worker("w1", "1/2", &[]).await;
    let urls = vec![w0.base_url(), w1.base_url()];
    let out = stack.dir.path().join("run");
    let base = greedy_logprobs(&stack, "tiny").await;

    let steps = train(stack.trainer_args(&urls, &out, 3)).await;

    assert_eq!(steps.iter().map(|s| s.step).collect::<Vec<_>>(), [1, 2, 3]);
    let mut batches = Vec::new();
    for step in &steps {
        let rollout = step.rollout.as_ref().expect("rollout metrics");
        assert!(
            ["w0", "w1"].contains(&rollout.worker.as_str()),
            "{rollout:?}"
        );
        assert!(rollout.policy_lag <= 1, "stale batch trained: {rollout:?}");
        assert!(rollout.generation_tokens_per_second > 0.0);
        batches.push(rollout.batch.clone());
        // Scored through the reward service and the MCP server: valid, never missing.
        assert_eq!(step.rewards["execution"].invalid_fraction, 0.0, "{step:?}");
        // The generator runs the trainer's own CPU code: on-policy batches agree to float noise
        // (an older policy's differ by as much as the update moved it).
        if rollout.policy_lag == 0 {
            assert!(
                step.sampling_logp_difference.is_some_and(|d| d < 1e-3),
                "{step:?}"
            );
        }
    }
    batches.sort();
    batches.dedup();
    assert_eq!(batches.len(), 3, "a batch was trained twice: {steps:?}");

    // The generator holds the last policy the trainer published (before its last pull), equal
    // to that step's checkpoint, and it answers differently from the base model.
    let policy = adapter_name(2);
    let served = sqlrft_model::params::read_tensors(&out.join(format!(
        "policy-adapters/{policy}/adapter_model.safetensors"
    )))
    .unwrap();
    let trained = sqlrft_model::params::read_tensors(
        &out.join("checkpoints/step-000002/trainable.safetensors"),
    )
    .unwrap();
    assert!(
        served == trained,
        "the served adapter is not the checkpoint's"
    );
    let tuned = greedy_logprobs(&stack, &policy).await;
    assert_ne!(base, tuned, "the policy adapter did not change the answers");

    for worker in [w0, w1] {
        let status = worker.server.state.status();
        assert_eq!(status.groups_dropped_invalid, 0, "{status:?}");
        worker.shutdown().await.unwrap();
    }
    stack.shutdown().await;
}

/// Waits until `path` (a metrics file) has `steps` lines.
async fn wait_for_steps(path: &Path, steps: usize) {
    for _ in 0..600 {
        let lines = std::fs::read_to_string(path)
            .map(|s| s.lines().count())
            .unwrap_or(0);
        if lines >= steps {
            return;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("`{}` never reached {steps} steps", path.display());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn when_a_worker_dies_the_trainer_goes_on_with_the_other() {
    let stack = Stack::start().await;
    let w0 = stack.worker("w0", "0/2", &[]).await;
    let w1 = stack.worker("w1", "1/2", &[]).await;
    let urls = vec![w0.base_url(), w1.base_url()];
    let out = stack.dir.path().join("run");
    let trainer = tokio::spawn(train(stack.trainer_args(&urls, &out, 4)));
    wait_for_steps(&out.join("metrics.jsonl"), 1).await;
    w1.shutdown().await.unwrap();
    let steps = trainer.await.unwrap();
    assert_eq!(steps.len(), 4);
    let mut batches: Vec<String> = steps
        .iter()
        .map(|s| s.rollout.as_ref().unwrap().batch.clone())
        .collect();
    // The last steps can only have come from the worker that is left.
    assert_eq!(steps[3].rollout.as_ref().unwrap().worker, "w0");
    batches.sort();
    batches.dedup();
    assert_eq!(batches.len(), 4, "a batch was trained twice: {steps:?}");
    w0.shutdown().await.unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_restarted_trainer_continues_from_its_checkpoint_and_drops_newer_batches() {
    let stack = Stack::start().await;
    let w0 = stack.worker("w0", "0/1", &["--buffer", "3"]).await;
    let urls = vec![w0.base_url()];
    let out = stack.dir.path().join("run");
    let first = train(stack.trainer_args(&urls, &out, 3)).await;
    assert_eq!(first.len(), 3);
    // The trainer published policy 2 before its last pull; the worker then fills its buffer
    // with batches of it. Resumed from the step-1 checkpoint, the trainer must not use them.
    for _ in 0..600 {
        let status = w0.server.state.status();
        if status.policy_version == 2 && status.buffered == status.capacity {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // As if the trainer had died after step 1's checkpoint.
    for step in [2, 3] {
        std::fs::remove_dir_all(out.join(format!("checkpoints/step-{step:06}"))).unwrap();
    }
    std::fs::write(out.join("checkpoints/latest"), "step-000001").unwrap();
    let mut args = stack.trainer_args(&urls, &out, 3);
    args.resume = true;
    let resumed = train(args).await;
    assert_eq!(
        resumed.iter().map(|s| s.step).collect::<Vec<_>>(),
        [1, 2, 3],
        "metrics continue from the checkpoint"
    );
    for step in &resumed[1..] {
        let rollout = step.rollout.as_ref().unwrap();
        assert!(rollout.policy_lag <= 1, "{rollout:?}");
    }
    let status = w0.server.state.status();
    assert!(
        status.batches_dropped_stale > 0,
        "batches of the abandoned policy 2 were not dropped: {status:?}"
    );
    w0.shutdown().await.unwrap();
    stack.shutdown().await;
}

/// Pulls from `workers` for `for_how_long`, then stops; returns the waiting lines.
async fn waiting_lines(workers: &[String], for_how_long: Duration) -> Vec<String> {
    let mut pull = RolloutWorkers::new(workers).unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    let stopper = stop.clone();
    tokio::spawn(async move {
        tokio::time::sleep(for_how_long).await;
        stopper.store(true, Ordering::SeqCst);
    });
    let mut lines = Vec::new();
    let pulled = pull
        .pull(0, 0, &stop, |line| lines.push(line.to_string()))
        .await
        .unwrap();
    assert!(
        pulled.is_none(),
        "a batch arrived from a worker that cannot make one"
    );
    lines
}
