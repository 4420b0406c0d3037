//! The whole path a user takes: `sqlrft quickstart` builds a sandbox and a dataset, `sqlrft
//! train --sandbox` trains on them with the execution reward in process, and the reward
//! service over HTTP scores exactly as the in-process reward does.

use crate::tiny::{self, Family};
use sqlrft_core::score::ScoreOptions;
use sqlrft_trainer::execution::ExecutionReward;
use sqlrft_trainer::reward::{HttpReward, RewardFunction, RewardGroup};
use sqlrft_trainer::{TrainArgs, metrics};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

const RUN_TOML: &str = r#"
seed = 5
max_steps = 2
prompts_per_step = 2
max_prompt_length = 48
save_steps = 1
[lora]
rank = 2
alpha = 4.0
[grpo]
num_generations = 2
[sampling]
max_new_tokens = 6
[[rewards]]
name = "format"
kind = "format_soft"
"#;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trains_on_a_sandbox_and_dataset_that_sqlrft_built() {
    let dir = tempfile::tempdir().unwrap();
    let built = sqlrft_builder::run_quickstart(&sqlrft_builder::QuickstartArgs {
        out: dir.path().join("quickstart"),
        queries: 24,
        seed: 3,
    })
    .await
    .unwrap();
    let prompts = sqlrft_trainer::data::load_jsonl(&built.train).unwrap();
    assert!(
        prompts.len() >= 4,
        "the build kept {} prompts",
        prompts.len()
    );

    // In process and over HTTP, the dataset's own gold SQL scores 1 and a wrong answer 0.
    let in_process =
        ExecutionReward::open("execution", &built.sandbox, ScoreOptions::default()).unwrap();
    let service = crate::reward_service::reward_service(&built.sandbox, None).await;
    let over_http =
        HttpReward::new("execution", &service.base_url(), Duration::from_secs(30)).unwrap();
    for prompt in prompts.iter().take(4) {
        let ground_truth: serde_json::Value =
            serde_json::from_str(&prompt.ground_truth_json).unwrap();
        let completions = vec![
            format!("<think>from the schema</think><sql>{}</sql>", prompt.sql),
            "<think>guess</think><sql>SELECT 'no such answer' AS guess</sql>".to_string(),
            "I do not know.".to_string(),
        ];
        let group = RewardGroup {
            prompt,
            ground_truth: &ground_truth,
            completions: &completions,
        };
        let local = in_process.score_group(&group).await.unwrap();
        let remote = over_http.score_group(&group).await.unwrap();
        let scores: Vec<f64> = local.iter().map(|s| s.score).collect();
        assert_eq!(scores, [1.0, 0.0, 0.0], "prompt {}: {local:?}", prompt.id);
        assert!(local.iter().all(|s| s.is_score_valid));
        assert_eq!(
            remote.iter().map(|s| s.score).collect::<Vec<_>>(),
            scores,
            "prompt {}: the service disagrees: {remote:?}",
            prompt.id
        );
    }
    service.shutdown().await.unwrap();

    // `sqlrft train --sandbox`: every completion of every step is scored by execution.
    let model = dir.path().join("model");
    tiny::write_model(&model, Family::Qwen2, 9);
    let config = dir.path().join("run.toml");
    std::fs::write(&config, RUN_TOML).unwrap();
    let out = dir.path().join("run");
    let args = TrainArgs {
        model: model.display().to_string(),
        dataset: Some(built.train.display().to_string()),
        output_dir: out.clone(),
        config: Some(config),
        resume: false,
        max_steps: None,
        save_steps: None,
        sft_epochs: None,
        sft_dataset: None,
        sft_max_length: None,
        rollouts: vec![],
        max_staleness: None,
        round: sqlrft_trainer::RoundArgs {
            sandbox: Some(built.sandbox.clone()),
            ..Default::default()
        },
        device: None,
        quiet: true,
        hub: Default::default(),
    };
    sqlrft_trainer::cli::run_train_until(args, vec![], Arc::new(AtomicBool::new(false)))
        .await
        .unwrap();
    let steps = metrics::read_jsonl(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(steps.len(), 2);
    for step in &steps {
        let execution = &step.rewards["execution"];
        assert_eq!(
            execution.invalid_fraction, 0.0,
            "step {}: {step:?}",
            step.step
        );
        assert!(step.rewards.contains_key("format"));
        assert!(step.loss.is_finite());
    }
}

#[test]
fn an_execution_reward_without_a_usable_sandbox_is_refused_by_name() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("nowhere.duckdb");
    let spec = sqlrft_trainer::train::RewardSpec {
        database: Some(missing.clone()),
        ..sqlrft_trainer::train::RewardSpec::new("execution", "execution")
    };
    let err = sqlrft_trainer::train::build_rewards(&[spec], &[])
        .err()
        .unwrap();
    let message = format!("{err:#}");
    assert!(message.contains("nowhere.duckdb"), "{message}");
    assert!(message.contains("--sandbox"), "{message}");
    let unset = sqlrft_trainer::train::RewardSpec::new("execution", "execution");
    let err = sqlrft_trainer::train::build_rewards(&[unset], &[])
        .err()
        .unwrap();
    assert!(err.to_string().contains("needs a `database`"), "{err}");
}
