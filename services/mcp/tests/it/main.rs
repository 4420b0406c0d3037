//! The MCP server, started on 127.0.0.1:0 and called over real HTTP the way its clients call it.

mod bench;
mod find_python;
mod hosts;
mod inline_query;
mod limits;
mod python_sdk;
mod tabulate_parity;
mod tutorial_wire;

use std::path::{Path, PathBuf};

use serde_json::{Value, json};
use sqlrft_mcp::{McpConfig, RunningServer};

/// A started server over a database made from `setup_sql`, with the directory that holds it.
pub struct Fixture {
    pub server: RunningServer,
    pub _dir: tempfile::TempDir,
}

impl Fixture {
    pub async fn start(setup_sql: &str, configure: impl FnOnce(&mut McpConfig)) -> Fixture {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("fixture.duckdb");
        let conn = sqlrft_duck::duckdb::Connection::open(&db).unwrap();
        conn.execute_batch(setup_sql).unwrap();
        drop(conn);
        let mut config = McpConfig {
            db: Some(db),
            port: 0,
            ..McpConfig::default()
        };
        configure(&mut config);
        let server = sqlrft_mcp::start(config).await.expect("server starts");
        Fixture { server, _dir: dir }
    }

    pub async fn demo() -> Fixture {
        Fixture::start(sqlrft_mcp::DEMO_SQL, |_| {}).await
    }
}

/// POSTs one JSON-RPC message exactly as the RFT tutorial's evaluator does.
pub async fn tutorial_post(base_url: &str, body: &Value) -> reqwest::Response {
    reqwest::Client::new()
        .post(format!("{base_url}/mcp/"))
        .header("Content-Type", "application/json")
        .header("Accept", "application/json, text/event-stream")
        .json(body)
        .send()
        .await
        .expect("request sent")
}

/// The JSON of the first non-empty `data:` line of an SSE body (how the tutorial reads it).
pub fn first_data(body: &str) -> Value {
    let line = body
        .lines()
        .filter_map(|l| l.strip_prefix("data:"))
        .map(str::trim)
        .find(|l| !l.is_empty())
        .unwrap_or_else(|| panic!("no data line in {body:?}"));
    serde_json::from_str(line).unwrap()
}

pub fn tool_call(id: &str, name: &str, arguments: Value) -> Value {
    json!({
        "id": id, "jsonrpc": "2.0", "method": "tools/call",
        "params": {"session": {"id": "stateless-eval-session"}, "name": name, "arguments": arguments}
    })
}

/// A captured mcp-server-motherduck 0.8.1 exchange (tests/fixtures, copied from ../shared/reference).
pub fn reference(file: &str) -> String {
    let path = reference_dir().join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

pub fn reference_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/fixtures/motherduck-0.8.1")
}
