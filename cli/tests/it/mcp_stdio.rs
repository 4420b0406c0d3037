//! `sqlrft mcp serve --transport stdio` as MCP hosts run it: a child process speaking JSON-RPC
//! on its stdin and stdout. Driven by rmcp's client (tools, a query, a refused write, the row,
//! byte and time limits), by raw lines (stdout carries nothing but JSON-RPC), and by the
//! official Python SDK with the command lines README.md's host configs give.

use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult};
use rmcp::service::{RoleClient, RunningService};
use serde_json::{Value, json};

use crate::find_python::python_or_skip;
use crate::sqlrft;

/// A query whose typed result both transports must give alike.
const SQL: &str = "SELECT name, iata, altitude FROM airports ORDER BY altitude DESC, iata LIMIT 4";

/// The demo database in a fresh directory.
fn demo_db() -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlrft_mcp::write_demo_database(dir.path()).unwrap();
    (dir, db)
}

fn call(name: &str, arguments: Value) -> CallToolRequestParams {
    let mut call = CallToolRequestParams::new(name.to_string());
    call.arguments = arguments.as_object().cloned();
    call
}

async fn query(client: &RunningService<RoleClient, ()>, sql: &str) -> CallToolResult {
    client
        .call_tool(call("query", json!({ "query": sql })))
        .await
        .unwrap_or_else(|e| panic!("{sql}: {e}"))
}

fn error_kind(result: &CallToolResult) -> Option<String> {
    let meta = result.meta.as_ref()?;
    Some(meta.0.get("sqlrft/error_kind")?.as_str()?.to_string())
}

/// `sql`'s structuredContent from the same database served over HTTP (in this process).
async fn over_http(db: &Path, sql: &str) -> Value {
    let server = sqlrft_mcp::start(sqlrft_mcp::McpConfig {
        db: Some(db.to_path_buf()),
        port: 0,
        ..Default::default()
    })
    .await
    .unwrap();
    let transport =
        rmcp::transport::StreamableHttpClientTransport::from_uri(sqlrft_mcp::mcp_url(&server));
    let client = ().serve(transport).await.unwrap();
    let structured = query(&client, sql).await.structured_content.unwrap();
    client.cancel().await.unwrap();
    server.shutdown().await.unwrap();
    structured
}

#[tokio::test(flavor = "multi_thread")]
async fn stdio_serves_the_same_tool_with_the_same_limits() {
    let (_dir, db) = demo_db();
    let mut child = tokio::process::Command::from(sqlrft())
        .args(["mcp", "serve", "--transport", "stdio", "--db-path"])
        .arg(&db)
        // 3 s: short for the endless query below, long for the others on a loaded debug build.
        .args(["--read-only", "--max-rows", "5", "--query-timeout", "3"])
        .env("SQLRFT_MCP_MAX_RESULT_BYTES", "4096")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let (stdin, stdout) = (child.stdin.take().unwrap(), child.stdout.take().unwrap());
    let mut stderr = child.stderr.take().unwrap();
    let client = ().serve((stdout, stdin)).await.expect("rmcp client initializes");

    let tools = client.list_all_tools().await.unwrap();
    let mut names: Vec<&str> = tools.iter().map(|t| t.name.as_ref()).collect();
    names.sort();
    assert_eq!(names, ["describe_table", "list_tables", "query"]);
    assert!(
        tools
            .iter()
            .any(|t| t.name == "query" && t.output_schema.is_some())
    );

    let answer = query(&client, SQL).await;
    assert_eq!(answer.is_error, Some(false), "{answer:?}");
    assert_eq!(
        answer.structured_content.unwrap(),
        over_http(&db, SQL).await
    );

    let refused = query(&client, "DROP TABLE airlines").await;
    assert_eq!(refused.is_error, Some(true));
    assert_eq!(
        error_kind(&refused).as_deref(),
        Some("refused"),
        "{refused:?}"
    );

    let capped = query(&client, "SELECT * FROM range(12)").await;
    let capped = capped.structured_content.unwrap();
    assert_eq!(capped["rows"].as_array().unwrap().len(), 5, "{capped}");
    assert_eq!(
        (&capped["row_count"], &capped["truncated"]),
        (&json!(12), &json!(true))
    );

    let too_large = query(&client, "SELECT repeat('x', 2000) AS s FROM range(5)").await;
    assert_eq!(too_large.is_error, Some(true));
    assert_eq!(
        error_kind(&too_large).as_deref(),
        Some("too_large"),
        "{too_large:?}"
    );

    let slow = query(&client, "SELECT count(*) FROM range(100000000000)").await;
    assert_eq!(error_kind(&slow).as_deref(), Some("timeout"), "{slow:?}");

    // A host closes stdin to stop the server: it exits 0, its notices on stderr.
    client.cancel().await.unwrap();
    let status = tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .expect("the server exits once stdin closes")
        .unwrap();
    let mut log = String::new();
    tokio::io::AsyncReadExt::read_to_string(&mut stderr, &mut log)
        .await
        .unwrap();
    assert!(status.success(), "exited with {status}:\n{log}");
    assert!(log.contains("MCP server on stdio"), "{log}");
}

/// Raw JSON-RPC lines in, with debug logging on: every line out is a JSON-RPC message, and the
/// logs went to stderr.
#[test]
fn stdout_carries_only_json_rpc() {
    let (_dir, db) = demo_db();
    let mut child = sqlrft()
        .args(["mcp", "serve", "--transport", "stdio"])
        .arg(&db)
        .env("RUST_LOG", "debug")
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let requests = [
        json!({"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
            "protocolVersion": "2025-06-18", "capabilities": {},
            "clientInfo": {"name": "raw-lines", "version": "0"}}}),
        json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
        json!({"jsonrpc": "2.0", "id": 2, "method": "tools/list"}),
        json!({"jsonrpc": "2.0", "id": 3, "method": "tools/call",
               "params": {"name": "query", "arguments": {"query": "SELECT 7 AS seven"}}}),
        json!({"jsonrpc": "2.0", "id": 4, "method": "tools/call",
               "params": {"name": "query", "arguments": {"query": "COPY airlines TO 'out.csv'"}}}),
    ];
    let mut stdin = child.stdin.take().unwrap();
    for request in &requests {
        writeln!(stdin, "{request}").unwrap();
    }
    stdin.flush().unwrap();
    let (lines_tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if lines_tx.send(line).is_err() {
                break;
            }
        }
    });
    let mut replies = Vec::new();
    while replies.len() < 4 {
        let line = lines
            .recv_timeout(Duration::from_secs(60))
            .expect("four replies within 60 s");
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
        if message.get("id").is_some() {
            replies.push(message);
        }
    }
    drop(stdin);
    let status = child.wait().unwrap();
    // Whatever came after the replies must be JSON-RPC too.
    for line in lines.try_iter() {
        let message: Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("stdout line is not JSON ({e}): {line:?}"));
        assert_eq!(message["jsonrpc"], "2.0", "{line}");
    }
    let mut log = String::new();
    child
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    assert!(status.success(), "{status}\n{log}");
    assert!(
        log.contains("DEBUG"),
        "debug logs went somewhere other than stderr:\n{log}"
    );
    let reply = |id: i64| replies.iter().find(|r| r["id"] == id).unwrap();
    assert_eq!(reply(1)["result"]["serverInfo"]["name"], "sqlrft");
    assert_eq!(reply(2)["result"]["tools"].as_array().unwrap().len(), 3);
    assert_eq!(
        reply(3)["result"]["structuredContent"]["rows"],
        json!([[7]])
    );
    assert_eq!(reply(4)["result"]["isError"], true, "{}", reply(4));
}

/// Flags that shape only the HTTP server would be silently ignored over stdio: refused, named.
#[test]
fn http_only_flags_and_impossible_limits_are_refused_by_name() {
    let refused = |args: &[&str], wanted: &[&str]| {
        let output = sqlrft()
            .args(["mcp", "serve", "--demo"])
            .args(args)
            .stdin(Stdio::null())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(!output.status.success(), "{args:?} was accepted:\n{stderr}");
        for want in wanted {
            assert!(stderr.contains(want), "{args:?}: no `{want}` in\n{stderr}");
        }
    };
    refused(
        &["--transport", "stdio", "--port", "9000", "--token", "t"],
        &[
            "--port, --token only apply to `--transport http`",
            "Drop them",
        ],
    );
    refused(
        &["--transport", "stdio", "--allowed-host", "example.com"],
        &[
            "--allowed-host only applies to `--transport http`",
            "Drop it",
        ],
    );
    // motherduck's "no limit"; sqlrft always has one.
    refused(
        &["--query-timeout", "-1"],
        &["-1 s is not a positive number", "--query-timeout 10"],
    );
    // motherduck's legacy SSE transport is not served.
    refused(
        &["--transport", "sse"],
        &["possible values", "stdio", "http"],
    );
}

/// README.md's host configs (```json blocks with `mcpServers`), run by the official Python SDK's
/// stdio client exactly as written, with the database path put in; and each mcp-server-motherduck
/// config there has its sqlrft twin whose args differ only in the command.
#[tokio::test(flavor = "multi_thread")]
async fn the_readme_host_configs_run_under_the_python_sdk() {
    let configs = readme_host_configs();
    let sqlrft_args: Vec<Vec<String>> = configs
        .iter()
        .filter(|(command, _)| command == "sqlrft")
        .map(|(_, args)| args.clone())
        .collect();
    assert!(
        !sqlrft_args.is_empty(),
        "README.md shows no sqlrft host config"
    );
    for (command, args) in &configs {
        if command == "uvx" && args.first().map(String::as_str) == Some("mcp-server-motherduck") {
            let twin: Vec<String> = ["mcp", "serve"]
                .iter()
                .map(|s| s.to_string())
                .chain(args[1..].iter().cloned())
                .collect();
            assert!(
                sqlrft_args.contains(&twin),
                "no sqlrft config is the motherduck one {args:?} with the command changed"
            );
        }
    }
    let Some(python) = python_or_skip(&["mcp"], "the_readme_host_configs_run_under_the_python_sdk")
    else {
        return;
    };
    let (_dir, db) = demo_db();
    let expected = json!({"sql": SQL, "structured": over_http(&db, SQL).await}).to_string();
    let script = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../services/mcp/tests/python/sdk_stdio_session.py");
    for args in sqlrft_args {
        let args: Vec<String> = args
            .iter()
            .map(|a| a.replace(README_DB, &db.display().to_string()))
            .collect();
        let mut command = Command::new(&python);
        command
            .arg(&script)
            .arg(&expected)
            .arg(env!("CARGO_BIN_EXE_sqlrft"))
            .args(&args)
            .env("RUST_LOG", "warn");
        crate::find_python::assert_script_passes("the SDK's stdio session", command).await;
    }
}

/// The database path README.md's host configs use.
const README_DB: &str = "/absolute/path/to/data/sandbox.duckdb";

/// `(command, args)` of every server in README.md's ```json blocks that have `mcpServers`.
fn readme_host_configs() -> Vec<(String, Vec<String>)> {
    let readme =
        std::fs::read_to_string(Path::new(env!("CARGO_MANIFEST_DIR")).join("../README.md"))
            .unwrap();
    let mut configs = Vec::new();
    let mut block: Option<String> = None;
    for line in readme.lines() {
        match (&mut block, line.trim()) {
            (None, "```json") => block = Some(String::new()),
            (Some(text), "```") => {
                let value: Value = serde_json::from_str(text).unwrap_or_else(|e| {
                    panic!("a README json block does not parse ({e}):\n{text}")
                });
                for server in value["mcpServers"]
                    .as_object()
                    .into_iter()
                    .flat_map(|s| s.values())
                {
                    let args = server["args"].as_array().into_iter().flatten();
                    configs.push((
                        server["command"].as_str().unwrap_or_default().to_string(),
                        args.filter_map(|a| a.as_str().map(String::from)).collect(),
                    ));
                }
                block = None;
            }
            (Some(text), _) => {
                text.push_str(line);
                text.push('\n');
            }
            (None, _) => {}
        }
    }
    configs
}

/// A benchmark's report is its stdout: with `RUST_LOG` unset, the servers it starts log no
/// per-request lines over it (only warnings reach stderr).
#[test]
fn a_benchmark_logs_only_warnings_by_default() {
    let (_dir, db) = demo_db();
    let output = sqlrft()
        .env_remove("RUST_LOG")
        .args([
            "bench",
            "mcp",
            "--requests",
            "6",
            "--concurrency",
            "2",
            "--db",
        ])
        .arg(&db)
        .stdin(Stdio::null())
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr),
    );
    assert!(output.status.success(), "{stdout}\n{stderr}");
    assert!(stdout.contains("sqlrft runs at"), "{stdout}");
    assert!(!stderr.contains("INFO"), "{stderr}");
}
