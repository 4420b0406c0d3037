//! The RFT tutorial's client: POST /mcp/ without initialize, SSE reply, ASCII table text.

use serde_json::json;

use crate::{Fixture, first_data, reference, tool_call, tutorial_post};

/// The reply JSON of a captured exchange.
fn captured_reply(file: &str) -> serde_json::Value {
    first_data(&reference(file))
}

#[tokio::test]
async fn query_without_initialize_answers_sse_with_motherduck_table() {
    let fixture = Fixture::demo().await;
    let base = fixture.server.base_url();
    let call = tool_call(
        "eval-query-1",
        "query",
        json!({"query": "SELECT NULL::INTEGER AS n, 42 AS i, 3.14 AS f, 'hello' AS s"}),
    );
    let response = tutorial_post(&base, &call).await;
    assert_eq!(response.status(), 200);
    assert_eq!(response.headers()["content-type"], "text/event-stream");
    let reply = first_data(&response.text().await.unwrap());
    let expected = captured_reply("v08_query_types.txt");
    assert_eq!(reply["id"], expected["id"]);
    assert_eq!(reply["result"]["content"], expected["result"]["content"]);
    assert_eq!(reply["result"]["isError"], false);
}

#[tokio::test]
async fn mixed_nulls_match_the_capture() {
    let fixture = Fixture::demo().await;
    let sql = "SELECT * FROM (VALUES (1, 1.50, 'alpha'), (2, NULL, NULL), (3, 3.25, 'gamma')) t(id, score, name)";
    let response = tutorial_post(
        &fixture.server.base_url(),
        &tool_call("eval-query-1", "query", json!({"query": sql})),
    )
    .await;
    let reply = first_data(&response.text().await.unwrap());
    assert_eq!(
        reply["result"]["content"],
        captured_reply("v08_query_mixed.txt")["result"]["content"]
    );
}

#[tokio::test]
async fn typed_structured_content_rides_along() {
    let fixture = Fixture::demo().await;
    let sql =
        "SELECT country, count(*) AS n FROM airlines GROUP BY country ORDER BY country LIMIT 2";
    let response = tutorial_post(
        &fixture.server.base_url(),
        &tool_call("q", "query", json!({"query": sql})),
    )
    .await;
    let reply = first_data(&response.text().await.unwrap());
    let structured = &reply["result"]["structuredContent"];
    assert_eq!(structured["columns"], json!(["country", "n"]));
    assert_eq!(structured["types"], json!(["VARCHAR", "BIGINT"]));
    assert_eq!(structured["rows"], json!([["Canada", 1], ["Chile", 1]]));
    assert_eq!(structured["row_count"], 2);
    assert_eq!(structured["truncated"], false);
}

#[tokio::test]
async fn query_errors_use_motherducks_prefix_and_duckdbs_message() {
    let fixture = Fixture::demo().await;
    let response = tutorial_post(
        &fixture.server.base_url(),
        &tool_call(
            "eval-query-1",
            "query",
            json!({"query": "SELECT * FROM no_such_table"}),
        ),
    )
    .await;
    let reply = first_data(&response.text().await.unwrap());
    let captured = captured_reply("v08_query_error.txt");
    assert_eq!(reply["result"]["isError"], true);
    assert_eq!(reply["result"]["_meta"]["sqlrft/error_kind"], "sql_error");
    let text = reply["result"]["content"][0]["text"].as_str().unwrap();
    let captured_text = captured["result"]["content"][0]["text"].as_str().unwrap();
    // DuckDB's suggestion list differs between versions; the prefix and the error itself do not.
    let common = "Error executing tool query: ❌ Error executing query: Catalog Error: Table with name no_such_table does not exist!";
    assert!(
        captured_text.starts_with(common),
        "capture changed: {captured_text}"
    );
    assert!(text.starts_with(common), "{text}");
}

#[tokio::test]
async fn writes_are_refused_as_tool_errors() {
    let fixture = Fixture::demo().await;
    for sql in [
        "CREATE TABLE t(a INTEGER)",
        "COPY airlines TO '/tmp/x.csv'",
        "SET threads=1; SELECT 1",
    ] {
        let response = tutorial_post(
            &fixture.server.base_url(),
            &tool_call("w", "query", json!({"query": sql})),
        )
        .await;
        let reply = first_data(&response.text().await.unwrap());
        assert_eq!(reply["result"]["isError"], true, "{sql}: {reply}");
        assert_eq!(
            reply["result"]["_meta"]["sqlrft/error_kind"], "refused",
            "{sql}"
        );
        let text = reply["result"]["content"][0]["text"].as_str().unwrap();
        assert!(
            text.starts_with("Error executing tool query: ❌ Error executing query: Refused"),
            "{text}"
        );
    }
}

#[tokio::test]
async fn tools_list_keeps_motherducks_query_tool() {
    let fixture = Fixture::demo().await;
    let list = json!({"id": 1, "jsonrpc": "2.0", "method": "tools/list", "params": {"session": {"id": "x"}}});
    let reply = first_data(
        &tutorial_post(&fixture.server.base_url(), &list)
            .await
            .text()
            .await
            .unwrap(),
    );
    let captured = captured_reply("v08_tools_list.txt");
    let ours = reply["result"]["tools"].as_array().unwrap();
    let theirs = &captured["result"]["tools"][0];
    let query = ours
        .iter()
        .find(|t| t["name"] == "query")
        .expect("query tool");
    assert_eq!(query["description"], theirs["description"]);
    assert_eq!(query["inputSchema"], theirs["inputSchema"]);
    assert!(query["outputSchema"].is_object());
    let names: Vec<_> = ours.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["query", "list_tables", "describe_table"]);
}

#[tokio::test]
async fn missing_argument_matches_motherducks_validation_error() {
    let fixture = Fixture::demo().await;
    let response = tutorial_post(
        &fixture.server.base_url(),
        &tool_call("6", "query", json!({})),
    )
    .await;
    let reply = first_data(&response.text().await.unwrap());
    let captured = first_data(
        reference("v08_protocol_edges.txt")
            .split("### POST /mcp/ missing arguments.query")
            .nth(1)
            .unwrap(),
    );
    assert_eq!(reply["result"]["content"], captured["result"]["content"]);
    assert_eq!(reply["result"]["isError"], true);
}

#[tokio::test]
async fn unknown_tool_is_a_protocol_error_naming_the_tools() {
    let fixture = Fixture::demo().await;
    let response = tutorial_post(
        &fixture.server.base_url(),
        &tool_call("5", "query_everything", json!({})),
    )
    .await;
    let reply = first_data(&response.text().await.unwrap());
    let message = reply["error"]["message"].as_str().expect("JSON-RPC error");
    assert!(
        message.contains("query_everything") && message.contains("list_tables"),
        "{message}"
    );
}

#[tokio::test]
async fn path_without_trailing_slash_also_serves() {
    let fixture = Fixture::demo().await;
    let response = reqwest::Client::new()
        .post(sqlrft_mcp::mcp_url(&fixture.server))
        .header("Accept", "application/json, text/event-stream")
        .json(&tool_call(
            "1",
            "query",
            json!({"query": "SELECT 1 AS one"}),
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), 200);
    let reply = first_data(&response.text().await.unwrap());
    assert_eq!(reply["result"]["structuredContent"]["rows"], json!([[1]]));
}

#[tokio::test]
async fn notifications_get_202_and_get_is_405_when_stateless() {
    let fixture = Fixture::demo().await;
    let base = fixture.server.base_url();
    let note = json!({"jsonrpc": "2.0", "method": "notifications/initialized"});
    assert_eq!(tutorial_post(&base, &note).await.status(), 202);
    let get = reqwest::Client::new()
        .get(format!("{base}/mcp/"))
        .header("Accept", "text/event-stream")
        .send()
        .await
        .unwrap();
    assert_eq!(get.status(), 405);
}

#[tokio::test]
async fn initialize_negotiates_each_supported_protocol_version() {
    let fixture = Fixture::demo().await;
    for version in ["2025-03-26", "2025-06-18", "2025-11-25"] {
        let init = json!({
            "jsonrpc": "2.0", "id": 0, "method": "initialize",
            "params": {"protocolVersion": version, "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}
        });
        let reply = first_data(
            &tutorial_post(&fixture.server.base_url(), &init)
                .await
                .text()
                .await
                .unwrap(),
        );
        assert_eq!(reply["result"]["protocolVersion"], version, "{reply}");
        assert_eq!(reply["result"]["serverInfo"]["name"], "sqlrft");
    }
}

#[tokio::test]
async fn list_and_describe_tables() {
    let fixture = Fixture::demo().await;
    let base = fixture.server.base_url();
    let reply = first_data(
        &tutorial_post(&base, &tool_call("1", "list_tables", json!({})))
            .await
            .text()
            .await
            .unwrap(),
    );
    let tables = reply["result"]["structuredContent"]["tables"]
        .as_array()
        .unwrap();
    let names: Vec<_> = tables.iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        ["airlines", "airports", "countries", "planes", "routes"]
    );
    let reply = first_data(
        &tutorial_post(
            &base,
            &tool_call("2", "describe_table", json!({"table": "airlines"})),
        )
        .await
        .text()
        .await
        .unwrap(),
    );
    let description = &reply["result"]["structuredContent"];
    assert_eq!(description["row_count"], 5);
    assert_eq!(
        description["columns"][0],
        json!({"name": "airline_id", "type": "BIGINT", "nullable": false})
    );
}
