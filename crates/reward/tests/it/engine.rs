//! The in-process API the trainer, distill and eval call.

use std::sync::Arc;

use serde_json::{Map, json};
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_core::score::ScoreOptions;
use sqlrft_reward::{EmbeddedExecutor, EngineOptions, ExecutorSpec, RewardEngine};

use crate::fixture::fixture;

#[tokio::test]
async fn score_group_answers_each_completion_in_order() {
    let fx = fixture();
    let engine = RewardEngine::open(&EngineOptions::new(ExecutorSpec::embedded(&fx.db))).unwrap();
    let truth = GroundTruth::parse(Some(&json!([{"n": 6}])), &Map::new()).unwrap();
    let completions: Vec<String> = [
        "SELECT COUNT(*) FROM cities",
        "SELECT COUNT(*) FROM big",
        "SELECT COUNT(*) FROM cities",
        "SELECT COUNT(id) AS n FROM cities",
    ]
    .map(String::from)
    .to_vec();
    let evaluations = engine
        .score_group(&completions, &truth, &ScoreOptions::default())
        .await;
    let scores: Vec<f64> = evaluations.iter().map(|e| e.score).collect();
    assert_eq!(scores, vec![1.0, 0.0, 1.0, 1.0]);
    assert_eq!(
        evaluations[0], evaluations[2],
        "identical completions score identically"
    );
}

#[tokio::test]
async fn gold_sql_results_are_cached_per_database_and_bounded() {
    let fx = fixture();
    let executor = Arc::new(EmbeddedExecutor::open(&fx.db, Default::default()).unwrap());
    let engine = RewardEngine::new(executor, 2).unwrap();
    let gold = |sql: &str| GroundTruth::Sql {
        sql: sql.into(),
        ordered: None,
    };
    let options = ScoreOptions::default();
    let first = engine
        .evaluate(
            "SELECT COUNT(*) FROM cities",
            &gold("SELECT COUNT(*) FROM cities"),
            &options,
        )
        .await;
    assert_eq!(first.score, 1.0);
    assert_eq!(engine.cached_gold(), 1);
    engine
        .evaluate("SELECT 1", &gold("SELECT COUNT(*) FROM cities"), &options)
        .await;
    assert_eq!(
        engine.cached_gold(),
        1,
        "the same gold SQL is not stored twice"
    );
    engine
        .evaluate("SELECT 1", &gold("SELECT COUNT(*) FROM big"), &options)
        .await;
    engine
        .evaluate("SELECT 1", &gold("SELECT 2"), &options)
        .await;
    assert_eq!(engine.cached_gold(), 2, "the cache keeps its bound");
    // A failing gold query is not cached (it may be a passing infrastructure failure).
    let failed = engine
        .evaluate("SELECT 1", &gold("SELECT nope FROM cities"), &options)
        .await;
    assert!(!failed.is_score_valid);
    assert_eq!(engine.cached_gold(), 2);
}
