//! The reward library's client against the service: what the trainer and eval send is read as
//! meant, and the service's answers read back.

use std::time::Duration;

use serde_json::{Value, json};
use sqlrft_core::score::ScoreOptions;
use sqlrft_reward::wire::{BatchRequest, Message, Truths};
use sqlrft_reward::{ClientError, RewardClient};

use crate::support::{embedded_server, fixture, guarded_server};

fn batch(completions: &[&str], truths: Truths) -> BatchRequest {
    BatchRequest {
        completions: completions.iter().map(|c| c.to_string()).collect(),
        truths,
        messages: vec![Message {
            role: "user".into(),
            content: "How many cities?".into(),
        }],
        gold_sql: None,
        options: None,
    }
}

fn scores(evaluations: &[sqlrft_core::score::Evaluation]) -> Vec<f64> {
    evaluations.iter().map(|e| e.score).collect()
}

#[tokio::test]
async fn the_client_sends_groups_gold_sql_options_and_per_completion_truths() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let client = RewardClient::new(&server.base_url(), None, Duration::from_secs(30)).unwrap();

    let group = batch(
        &["SELECT COUNT(*) FROM cities", "SELECT 1", "no SQL here"],
        Truths::Shared(json!([{"n": 6}])),
    );
    let evaluations = client.score_batch(&group).await.unwrap();
    assert_eq!(scores(&evaluations), [1.0, 0.0, 0.0], "{evaluations:?}");
    assert!(evaluations.iter().all(|e| e.is_score_valid));

    // Only gold SQL (the ground truth is null), with partial credit asked for: one of the two
    // gold cells is shared, so F1 = 0.5 and the score 0.1 + 0.3 × 0.5.
    let gold_only = BatchRequest {
        gold_sql: Some("SELECT name FROM cities WHERE country = 'Norway'".into()),
        options: Some(ScoreOptions {
            partial: true,
            ..ScoreOptions::default()
        }),
        ..batch(
            &["SELECT name FROM cities WHERE id IN (1, 3)"],
            Truths::Shared(Value::Null),
        )
    };
    let evaluations = client.score_batch(&gold_only).await.unwrap();
    assert!(
        (evaluations[0].score - 0.25).abs() < 1e-9,
        "{evaluations:?}"
    );

    let each = batch(
        &["SELECT COUNT(*) FROM cities", "SELECT COUNT(*) FROM cities"],
        Truths::Each(vec![json!([{"n": 6}]), json!("SELECT COUNT(*) FROM big")]),
    );
    let evaluations = client.score_batch(&each).await.unwrap();
    assert_eq!(scores(&evaluations), [1.0, 0.0], "{evaluations:?}");
}

#[tokio::test]
async fn client_failures_name_the_endpoint_and_the_cause() {
    let fx = fixture();
    let server = guarded_server(&fx, "s3cret").await;
    let request = batch(&["SELECT 6 AS n"], Truths::Shared(json!([{"n": 6}])));
    let timeout = Duration::from_secs(30);

    let anonymous = RewardClient::new(&server.base_url(), None, timeout).unwrap();
    match anonymous.score_batch(&request).await {
        Err(err @ ClientError::Status { status, .. }) => {
            assert_eq!(status.as_u16(), 401);
            assert!(err.to_string().contains(anonymous.endpoint()), "{err}");
        }
        other => panic!("expected a 401, got {other:?}"),
    }
    let with_token = RewardClient::new(&server.base_url(), Some("s3cret".into()), timeout).unwrap();
    let evaluations = with_token.score_batch(&request).await.unwrap();
    assert_eq!(scores(&evaluations), [1.0]);

    let bad = batch(&["SELECT 1"], Truths::Shared(json!(5)));
    match with_token.score_batch(&bad).await {
        Err(err @ ClientError::Status { .. }) => {
            assert!(err.to_string().contains("ground_truth"), "{err}")
        }
        other => panic!("expected a 400 naming the field, got {other:?}"),
    }

    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let nobody = RewardClient::new(&format!("http://127.0.0.1:{port}/"), None, timeout).unwrap();
    assert_eq!(
        nobody.endpoint(),
        format!("http://127.0.0.1:{port}/v1/evaluate/batch")
    );
    match nobody.score_batch(&request).await {
        Err(err @ ClientError::Unreachable { .. }) => {
            assert!(err.to_string().contains("sqlrft reward serve"), "{err}")
        }
        other => panic!("expected an unreachable service, got {other:?}"),
    }
}
