//! Trace propagation from a rollout round into the reward service: the service's request span is
//! collected by a subscriber on the test's thread (see `spans` for why that holds beside tests
//! running on other threads).

use crate::reward_service::reward_service;
use crate::spans::{CollectedSpans, requests_to};
use sqlrft_trainer::reward::RewardGroup;
use sqlrft_trainer::train::{TrainConfig, build_rewards};

/// A rollout worker scores each round inside its `rollout.round` span; the HTTP reward's call
/// and the reward service's handling of it must be one trace, the service's request a child of
/// the round.
#[test]
fn an_http_reward_continues_the_rounds_trace_into_the_reward_service() {
    use tracing::Instrument as _;

    let dir = tempfile::tempdir().unwrap();
    let built = tokio::runtime::Runtime::new()
        .unwrap()
        .block_on(sqlrft_builder::run_quickstart(
            &sqlrft_builder::QuickstartArgs {
                out: dir.path().join("quickstart"),
                queries: 12,
                seed: 4,
            },
        ))
        .unwrap();
    // One thread runs the reward service and the caller, so both are collected.
    let collected = CollectedSpans::on_this_thread();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    let score = runtime.block_on(async {
        let service = reward_service(&built.sandbox, None).await;
        let path = dir.path().join("rewards.toml");
        let toml = format!(
            "[[rewards]]\nname = \"service\"\nkind = \"http\"\nurl = \"{}\"\n",
            service.base_url()
        );
        std::fs::write(&path, toml).unwrap();
        let rewards = build_rewards(&TrainConfig::load(Some(&path)).unwrap().rewards, &[]).unwrap();
        let prompts = sqlrft_trainer::data::load_jsonl(&built.train).unwrap();
        let ground_truth: serde_json::Value =
            serde_json::from_str(&prompts[0].ground_truth_json).unwrap();
        let completions = vec![format!("<think>t</think><sql>{}</sql>", prompts[0].sql)];
        let group = RewardGroup {
            prompt: &prompts[0],
            ground_truth: &ground_truth,
            completions: &completions,
        };
        let scores = rewards[0]
            .0
            .score_group(&group)
            .instrument(tracing::info_span!("rollout.round"))
            .await
            .unwrap();
        service.shutdown().await.unwrap();
        scores[0].score
    });
    assert_eq!(score, 1.0, "the gold SQL scores 1");

    let spans = collected.finished();
    let round = spans
        .iter()
        .find(|s| s.name == "rollout.round")
        .unwrap_or_else(|| panic!("no round span among {spans:?}"));
    let request = *requests_to(&spans, "/v1/evaluate/batch")
        .first()
        .unwrap_or_else(|| panic!("no span for the service's batch request among {spans:?}"));
    assert_eq!(
        request.span_context.trace_id(),
        round.span_context.trace_id(),
        "one trace"
    );
    assert_eq!(
        request.parent_span_id,
        round.span_context.span_id(),
        "the service's request is the round's child"
    );
}
