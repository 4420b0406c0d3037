//! The embedded executor and the MCP executor give the same results and the same verdicts.

use std::time::Duration;

use serde_json::json;
use sqlrft_core::score::FailureKind;
use sqlrft_reward::{EmbeddedExecutor, ExecError, McpExecutor, RewardConfig, SqlExecutor, start};

use crate::support::{chat, embedded_server, fixture, mcp_server, post};

const QUERIES: &[&str] = &[
    "SELECT * FROM cities",
    "SELECT country, COUNT(*), SUM(area), AVG(density) FROM cities GROUP BY country ORDER BY country",
    "SELECT n, label FROM big",
    "SELECT founded, capital, mayor FROM cities WHERE mayor IS NULL OR capital",
    "SELECT [1, 2] AS l, {'a': 1} AS s, DATE '2024-01-02' + INTERVAL 1 DAY AS t",
    "SELECT * FROM cities WHERE false",
];

#[tokio::test]
async fn embedded_and_mcp_return_the_same_result_sets() {
    let fx = fixture();
    let mcp = mcp_server(&fx).await;
    let embedded = EmbeddedExecutor::open(&fx.db, Default::default()).unwrap();
    let remote = McpExecutor::new(&sqlrft_mcp::mcp_url(&mcp), None, Duration::from_secs(10));
    for sql in QUERIES {
        let local = embedded.query(sql).await.unwrap();
        let through_mcp = remote.query(sql).await.unwrap();
        assert_eq!(local, through_mcp, "{sql}");
    }
}

#[tokio::test]
async fn embedded_and_mcp_sort_query_failures_alike() {
    let fx = fixture();
    let mcp = mcp_server(&fx).await;
    let embedded = EmbeddedExecutor::open(&fx.db, Default::default()).unwrap();
    let remote = McpExecutor::new(&mcp.base_url(), None, Duration::from_secs(10));
    for (sql, kind) in [
        ("SELEC 1", FailureKind::Sql),
        ("SELECT nope FROM cities", FailureKind::Sql),
        ("DROP TABLE cities", FailureKind::Refused),
        ("SELECT 1; SELECT 2", FailureKind::Refused),
    ] {
        for result in [embedded.query(sql).await, remote.query(sql).await] {
            match result {
                Err(ExecError::Query(failure)) => {
                    assert_eq!(failure.kind, kind, "{sql}: {failure}")
                }
                other => panic!("{sql}: expected a {kind:?} failure, got {other:?}"),
            }
        }
    }
}

#[tokio::test]
async fn the_service_scores_the_same_through_mcp_as_embedded() {
    let fx = fixture();
    let mcp = mcp_server(&fx).await;
    let local = embedded_server(&fx).await;
    let remote = start(RewardConfig {
        mcp_url: Some(sqlrft_mcp::mcp_url(&mcp)),
        port: 0,
        ..RewardConfig::default()
    })
    .await
    .unwrap();
    let truth = json!([{"country": "Norway", "n": 2}, {"country": "Kenya", "n": 2}, {"country": "Canada", "n": 2}]);
    for completion in [
        "SELECT country, COUNT(*) FROM cities GROUP BY country",
        "SELECT country, COUNT(*) FROM cities WHERE capital GROUP BY country",
        "SELEC nonsense",
        "DROP TABLE cities",
    ] {
        let body = json!({"messages": chat(completion), "ground_truth": truth, "partial": true});
        let (_, a) = post(&local, "/v1/evaluate", &body).await;
        let (_, b) = post(&remote, "/v1/evaluate", &body).await;
        assert_eq!(a["score"], b["score"], "{completion}: {a} vs {b}");
        assert_eq!(a["metrics"], b["metrics"], "{completion}");
        assert_eq!(b["is_score_valid"], json!(true), "{b}");
    }
    // gold_sql through MCP as well.
    let body = json!({"messages": chat("SELECT name FROM cities ORDER BY id"), "gold_sql": "SELECT name FROM cities ORDER BY id"});
    let (_, answer) = post(&remote, "/v1/evaluate", &body).await;
    assert_eq!(answer["score"], json!(1.0), "{answer}");
}

#[tokio::test]
async fn the_mcp_executor_reconnects_after_the_server_restarts() {
    let fx = fixture();
    let first = mcp_server(&fx).await;
    let addr = first.addr;
    let remote = McpExecutor::new(&sqlrft_mcp::mcp_url(&first), None, Duration::from_secs(10));
    assert!(remote.query("SELECT 1").await.is_ok());
    first.shutdown().await.unwrap();
    match remote.query("SELECT 1").await {
        Err(ExecError::Infrastructure(reason)) => assert!(reason.contains("MCP"), "{reason}"),
        other => panic!("a stopped server is an infrastructure failure, got {other:?}"),
    }
    // The same address again (the server restarted): the executor connects anew.
    let second = sqlrft_mcp::start(sqlrft_mcp::McpConfig {
        db: Some(fx.db.clone()),
        host: addr.ip().to_string(),
        port: addr.port(),
        ..sqlrft_mcp::McpConfig::default()
    })
    .await;
    let Ok(second) = second else {
        eprintln!(
            "skipping the reconnect half: port {} was taken by another process",
            addr.port()
        );
        return;
    };
    assert!(remote.query("SELECT 1").await.is_ok());
    second.shutdown().await.unwrap();
}
