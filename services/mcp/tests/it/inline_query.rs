//! `query` calls are answered inline (in the request's own task), other requests by rmcp: the two must
//! put the same bytes on the wire. An allowed `Origin` header sends a request to rmcp (the inline
//! path leaves Origin checks to it) without changing what rmcp answers, so each call goes once
//! each way and the replies are compared whole.

use serde_json::{Value, json};

use crate::{Fixture, tool_call};

/// Allowed by the default configuration (`http://localhost:*`).
const ALLOWED_ORIGIN: &str = "http://localhost:5173";

struct Reply {
    status: u16,
    headers: Vec<(String, Option<String>)>,
    body: String,
}

async fn post(base: &str, body: &Value, extra: &[(&str, &str)]) -> Reply {
    let mut request = reqwest::Client::new()
        .post(format!("{base}/mcp/"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .json(body);
    for (name, value) in extra {
        request = request.header(*name, *value);
    }
    let response = request.send().await.expect("request sent");
    let headers = [
        "content-type",
        "cache-control",
        "x-accel-buffering",
        "transfer-encoding",
        "content-length",
    ]
    .map(|name| {
        let value = response.headers().get(name);
        (
            name.to_string(),
            value.map(|v| v.to_str().unwrap().to_string()),
        )
    })
    .to_vec();
    Reply {
        status: response.status().as_u16(),
        headers,
        body: response.text().await.unwrap(),
    }
}

#[tokio::test]
async fn inline_query_replies_match_rmcps_byte_for_byte() {
    let fixture = Fixture::start(sqlrft_mcp::DEMO_SQL, |config| config.max_rows = 3).await;
    let base = fixture.server.base_url();
    let traced = json!({
        "id": 7, "jsonrpc": "2.0", "method": "tools/call",
        "params": {"name": "query", "arguments": {"query": "SELECT 42 AS answer"},
                   "_meta": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}}
    });
    let query = |id: &str, sql: &str| tool_call(id, "query", json!({ "query": sql }));
    let calls = [
        query(
            "eval-query-1",
            "SELECT NULL::INTEGER AS n, 42 AS i, 3.14 AS f, 'héllo ✓' AS s",
        ),
        query("rows", "SELECT * FROM airlines ORDER BY 1"),
        query("syntax", "SELEC 1"),
        query("write", "CREATE TABLE t AS SELECT 1"),
        query("file", "SELECT * FROM read_csv('/etc/passwd')"),
        tool_call("not-a-string", "query", json!({"query": 5})),
        tool_call("missing", "query", json!({})),
        traced,
    ];
    for call in &calls {
        for protocol in [None, Some("2025-06-18")] {
            let mut headers = Vec::new();
            if let Some(version) = protocol {
                headers.push(("MCP-Protocol-Version", version));
            }
            let inline = post(&base, call, &headers).await;
            headers.push(("Origin", ALLOWED_ORIGIN));
            let rmcp = post(&base, call, &headers).await;
            let what = format!("{call} with protocol {protocol:?}");
            assert_eq!(inline.status, 200, "{what}: {}", inline.body);
            assert_eq!(inline.status, rmcp.status, "{what}");
            assert_eq!(inline.headers, rmcp.headers, "{what}");
            assert_eq!(inline.body, rmcp.body, "{what}");
        }
    }
}
