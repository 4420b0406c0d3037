//! The embedded executor and the MCP executor give the same results and the same verdicts.

use std::time::Duration;

use sqlrft_core::score::FailureKind;
use sqlrft_reward::{EmbeddedExecutor, ExecError, McpExecutor, SqlExecutor};

use crate::fixture::{fixture, mcp_server};

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
