//! Rewards as a config file declares them: HTTP rewards against a real reward service on
//! 127.0.0.1:0 (its root, or a full endpoint URL, with a bearer token from the environment and
//! scoring options), and the seed's recipe (`--rewards seed`, `--sft-epochs`) end to end on rows
//! in the seed's own shape.

use crate::reward_service::reward_service;
use crate::tiny::{self, Family};
use sqlrft_core::score::ScoreOptions;
use sqlrft_trainer::execution::ExecutionReward;
use sqlrft_trainer::reward::{RewardFunction, RewardGroup};
use sqlrft_trainer::train::{TrainConfig, build_rewards};
use sqlrft_trainer::{TrainArgs, cli::RewardPreset, metrics, sft};
use std::sync::Arc;
use std::sync::atomic::AtomicBool;

const TOKEN_VAR: &str = "SQLRFT_TEST_REWARD_TOKEN_7f3a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn http_rewards_from_a_config_file_score_through_a_real_reward_service() {
    let dir = tempfile::tempdir().unwrap();
    let built = sqlrft_builder::run_quickstart(&sqlrft_builder::QuickstartArgs {
        out: dir.path().join("quickstart"),
        queries: 12,
        seed: 4,
    })
    .await
    .unwrap();
    let service = reward_service(&built.sandbox, Some("s3cret")).await;
    // SAFETY: the variable's name is this test's own; no other thread reads or writes it.
    unsafe { std::env::set_var(TOKEN_VAR, "s3cret") };
    let base = service.base_url();
    let toml = format!(
        r#"
[[rewards]]
name = "service"
kind = "http"
url = "{base}"
token_env = "{TOKEN_VAR}"
weight = 1.0

[[rewards]]
name = "any_endpoint"
kind = "http"
endpoint = "{base}/v1/evaluate/batch"
token_env = "{TOKEN_VAR}"
weight = 0.5
[rewards.scoring]
partial = true

[[rewards]]
name = "no_token"
kind = "http"
url = "{base}"
"#
    );
    let path = dir.path().join("rewards.toml");
    std::fs::write(&path, toml).unwrap();
    let cfg = TrainConfig::load(Some(&path)).unwrap();
    let rewards = build_rewards(&cfg.rewards, &[]).unwrap();
    assert_eq!(
        rewards
            .iter()
            .map(|(f, w)| (f.name(), *w))
            .collect::<Vec<_>>(),
        [("service", 1.0), ("any_endpoint", 0.5), ("no_token", 1.0)]
    );
    let in_process =
        ExecutionReward::open("execution", &built.sandbox, ScoreOptions::default()).unwrap();
    let prompts = sqlrft_trainer::data::load_jsonl(&built.train).unwrap();
    let prompt = &prompts[0];
    let ground_truth: serde_json::Value = serde_json::from_str(&prompt.ground_truth_json).unwrap();
    let completions = vec![
        format!("<think>from the schema</think><sql>{}</sql>", prompt.sql),
        "<think>guess</think><sql>SELECT 'no such answer' AS guess</sql>".to_string(),
    ];
    let group = RewardGroup {
        prompt,
        ground_truth: &ground_truth,
        completions: &completions,
    };
    let scores = |v: Vec<sqlrft_trainer::reward::RewardScore>| -> Vec<f64> {
        v.into_iter().map(|s| s.score).collect()
    };
    let local = scores(in_process.score_group(&group).await.unwrap());
    assert_eq!(local, [1.0, 0.0]);
    let service_scores = scores(rewards[0].0.score_group(&group).await.unwrap());
    assert_eq!(
        service_scores, local,
        "the service root scores as the engine in process"
    );
    // The endpoint entry sends `partial = true`: the wrong query still runs, so it earns credit.
    let partial = scores(rewards[1].0.score_group(&group).await.unwrap());
    assert_eq!(partial[0], 1.0);
    assert!(partial[1] > 0.0, "{partial:?}");
    // Without the token the service refuses, and the error says so.
    let refused = rewards[2].0.score_group(&group).await.unwrap_err();
    assert!(format!("{refused:#}").contains("401"), "{refused:#}");
    service.shutdown().await.unwrap();

    // A token variable that is not set is named.
    let mut spec = cfg.rewards[0].clone();
    spec.token_env = Some("SQLRFT_TEST_UNSET_VARIABLE_1b9c".into());
    let err = build_rewards(&[spec], &[]).err().unwrap();
    assert!(
        err.to_string().contains("SQLRFT_TEST_UNSET_VARIABLE_1b9c"),
        "{err}"
    );
}

/// Rows in the seed's shape: a prompt, the item's DDL/INSERTs as `sql_context`, the teacher's
/// reasoning and SQL (the SFT answer and check_sql_reward's answer).
fn write_seed_rows(path: &std::path::Path) {
    let context = "CREATE TABLE orders (id INT, status VARCHAR); \
                   INSERT INTO orders VALUES (1, 'open'), (2, 'closed');";
    let rows: Vec<String> = (0..4)
        .map(|i| {
            serde_json::json!({
                "id": format!("r{i}"),
                "prompt": [
                    {"role": "system", "content": "You are an expert in writing optimized SQL queries."},
                    {"role": "user", "content": format!("How many orders have id {i}?")}
                ],
                "sql_context": context,
                "think": "count the rows",
                "sql": format!("SELECT count(*) FROM orders WHERE id = {i}"),
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, rows.join("\n") + "\n").unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_seed_recipe_runs_sft_epochs_then_grpo_with_the_seed_rewards() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny::write_model(&model, Family::Llama, 6);
    let data = dir.path().join("seed.jsonl");
    write_seed_rows(&data);
    let config = dir.path().join("run.toml");
    std::fs::write(
        &config,
        "max_prompt_length = 64\nsave_steps = 1\n[lora]\nrank = 2\nalpha = 4.0\n\
         [sft]\nbatch_size = 2\nlearning_rate = 0.01\n[sampling]\nmax_new_tokens = 6\n",
    )
    .unwrap();
    let out = dir.path().join("run");
    let args = TrainArgs {
        model: model.display().to_string(),
        dataset: Some(data.display().to_string()),
        output_dir: out.clone(),
        config: Some(config),
        resume: false,
        max_steps: Some(2),
        save_steps: None,
        sft_epochs: Some(2),
        sft_dataset: None,
        sft_max_length: None,
        rollouts: vec![],
        max_staleness: None,
        round: sqlrft_trainer::RoundArgs {
            rewards: Some(RewardPreset::Seed),
            trl: sqlrft_trainer::cli::TrlFlags {
                num_generations: Some(2),
                ..Default::default()
            },
            ..Default::default()
        },
        device: None,
        quiet: true,
        hub: Default::default(),
    };
    sqlrft_trainer::cli::run_train_until(args, vec![], Arc::new(AtomicBool::new(false)))
        .await
        .unwrap();
    // 4 rows, 2 per step, 2 epochs: 4 SFT steps, then 2 GRPO steps.
    let sft_steps = sft::read_metrics(&out.join("sft/metrics.jsonl")).unwrap();
    assert_eq!(sft_steps.len(), 4);
    assert!(
        sft_steps
            .iter()
            .all(|m| m.loss.is_finite() && m.num_tokens > 0)
    );
    let grpo = metrics::read_jsonl(&out.join("metrics.jsonl")).unwrap();
    assert_eq!(grpo.len(), 2);
    for step in &grpo {
        for name in [
            "match_format_exactly",
            "match_format_approximately",
            "check_sql_reward",
        ] {
            let r = &step.rewards[name];
            assert_eq!(
                r.invalid_fraction, 0.0,
                "{name} at step {}: {r:?}",
                step.step
            );
        }
        // Four markers at +0.125 or −1.0 each.
        let approx = step.rewards["match_format_approximately"].mean;
        assert!((-4.0..=0.5).contains(&approx), "{approx}");
    }
}
