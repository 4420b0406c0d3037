//! The official Python MCP SDK talks to the server (initialize, sessions, typed results).

use std::path::Path;
use std::process::Command;

use crate::Fixture;
use crate::find_python::python_or_skip;

#[tokio::test]
async fn official_python_sdk_initializes_lists_and_queries() {
    let Some(python) = python_or_skip(
        &["mcp"],
        "official_python_sdk_initializes_lists_and_queries",
    ) else {
        return;
    };
    let fixture = Fixture::demo().await;
    let sql = "SELECT name, iata, altitude FROM airports WHERE altitude > 500 ORDER BY altitude";
    let pool =
        sqlrft_duck::ReadOnlyPool::open(&fixture.server.state.db, Default::default()).unwrap();
    let expected = sqlrft_mcp::structured(&pool.query(sql).await.unwrap());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_session.py");
    let url = sqlrft_mcp::mcp_url(&fixture.server);
    let mut command = Command::new(python);
    command
        .arg(script)
        .args([url.as_str(), sql, &expected.to_string()]);
    crate::find_python::assert_script_passes("the SDK session", command).await;
}
