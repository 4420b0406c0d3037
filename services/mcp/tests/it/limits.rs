//! Limits are on by default: time, rows, request size, and overload answered with 503.

use std::time::Duration;

use serde_json::json;

use crate::{Fixture, first_data, tool_call, tutorial_post};

/// A `query` call that runs until it is interrupted.
fn endless_query(id: &str) -> serde_json::Value {
    tool_call(
        id,
        "query",
        json!({"query": "SELECT count(*) FROM range(100000000000)"}),
    )
}

/// A server with one connection and no waiting room: one running query makes it busy.
async fn one_slot(timeout_secs: f64) -> Fixture {
    Fixture::start("SELECT 1", |c| {
        c.connections = 1;
        c.max_waiting = 0;
        c.query_timeout_secs = timeout_secs;
    })
    .await
}

#[tokio::test]
async fn slow_queries_are_interrupted_with_a_clear_error() {
    let fixture = Fixture::start("SELECT 1", |c| c.query_timeout_secs = 0.3).await;
    let call = endless_query("t");
    let reply = first_data(
        &tutorial_post(&fixture.server.base_url(), &call)
            .await
            .text()
            .await
            .unwrap(),
    );
    assert_eq!(reply["result"]["isError"], true);
    assert_eq!(reply["result"]["_meta"]["sqlrft/error_kind"], "timeout");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    assert!(text.contains("time limit"), "{text}");
}

#[tokio::test]
async fn row_cap_marks_structured_results_truncated() {
    let fixture = Fixture::start("SELECT 1", |c| c.max_rows = 5).await;
    let call = tool_call("r", "query", json!({"query": "SELECT * FROM range(12)"}));
    let reply = first_data(
        &tutorial_post(&fixture.server.base_url(), &call)
            .await
            .text()
            .await
            .unwrap(),
    );
    let structured = &reply["result"]["structuredContent"];
    assert_eq!(structured["rows"].as_array().unwrap().len(), 5);
    assert_eq!(structured["row_count"], 12);
    assert_eq!(structured["truncated"], true);
}

#[tokio::test]
async fn oversized_requests_get_413() {
    let fixture = Fixture::start("SELECT 1", |c| c.max_body_bytes = 1_000).await;
    let big = "x".repeat(5_000);
    let call = tool_call("b", "query", json!({"query": format!("SELECT '{big}'")}));
    assert_eq!(
        tutorial_post(&fixture.server.base_url(), &call)
            .await
            .status(),
        413
    );
}

#[tokio::test]
async fn overload_is_answered_with_503_and_retry_after() {
    let fixture = one_slot(5.0).await;
    let base = fixture.server.base_url();
    let slow_base = base.clone();
    let slow = tokio::spawn(async move {
        let call = endless_query("s");
        // Read the whole reply: a client that hangs up gives its slot back.
        let reply = tutorial_post(&slow_base, &call).await;
        let status = reply.status();
        reply.text().await.ok();
        status
    });
    assert!(
        wait_for_readyz(&base, 503).await,
        "the slow query never took the only connection"
    );
    let response = tutorial_post(
        &base,
        &tool_call("f", "query", json!({"query": "SELECT 1"})),
    )
    .await;
    let status = response.status();
    let retry_after = response.headers().get("retry-after").cloned();
    let body = response.text().await.unwrap();
    assert_eq!(
        status, 503,
        "a second request while the only slot is busy: {body}"
    );
    assert_eq!(retry_after.unwrap(), "1");
    assert!(body.contains("server busy"), "{body}");
    slow.abort();
}

#[tokio::test]
async fn a_client_that_hangs_up_stops_its_query() {
    let fixture = one_slot(600.0).await;
    let base = fixture.server.base_url();
    let call = endless_query("h");
    // The headers arrive while the query runs; dropping the reply unread hangs up.
    let reply = tutorial_post(&base, &call).await;
    assert!(
        wait_for_readyz(&base, 503).await,
        "the slow query never took the only connection"
    );
    drop(reply);
    assert!(
        wait_for_readyz(&base, 200).await,
        "the query of a client that hung up still holds the connection (time limit is 600 s)"
    );
}

/// `/readyz` needs a database connection too: with one connection and no waiting room, it reports
/// 503 while a query holds it and 200 once it is free. Polls for up to 5 s.
async fn wait_for_readyz(base: &str, status: u16) -> bool {
    for _ in 0..200 {
        tokio::time::sleep(Duration::from_millis(25)).await;
        let ready = reqwest::get(format!("{base}/readyz")).await.unwrap();
        if ready.status() == status {
            return true;
        }
    }
    false
}
