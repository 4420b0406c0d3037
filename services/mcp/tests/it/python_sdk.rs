//! The official Python MCP SDK talks to the server (initialize, sessions, typed results).

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::Fixture;

/// The Python that has the `mcp` SDK: $SQLRFT_PYTHON, the repo's .venv, or python3.
pub fn python_with(module: &str) -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [
        std::env::var_os("SQLRFT_PYTHON").map(PathBuf::from),
        Some(repo.join(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    for python in candidates.into_iter().flatten() {
        let ok = Command::new(&python)
            .args(["-c", &format!("import {module}")])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(python);
        }
    }
    Err(format!(
        "no Python with `{module}` found (set SQLRFT_PYTHON, or run .ci/run once to create .venv)"
    ))
}

#[tokio::test]
async fn official_python_sdk_initializes_lists_and_queries() {
    let python = match python_with("mcp") {
        Ok(python) => python,
        Err(why) => {
            if std::env::var_os("CI").is_some() {
                panic!("{why}");
            }
            eprintln!("SKIPPED official_python_sdk_initializes_lists_and_queries: {why}");
            return;
        }
    };
    let fixture = Fixture::demo().await;
    let sql = "SELECT name, iata, altitude FROM airports WHERE altitude > 500 ORDER BY altitude";
    let pool =
        sqlrft_duck::ReadOnlyPool::open(&fixture.server.state.db, Default::default()).unwrap();
    let expected = sqlrft_mcp::structured(&pool.query(sql).await.unwrap());
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_session.py");
    let url = sqlrft_mcp::mcp_url(&fixture.server);
    let output = tokio::task::spawn_blocking(move || {
        Command::new(python)
            .arg(script)
            .args([url.as_str(), sql, &expected.to_string()])
            .output()
            .expect("python runs")
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&output.stdout);
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success(),
        "SDK session failed:\n{stdout}\n{stderr}"
    );
    assert!(stdout.contains(" passed, 0 failed"), "{stdout}");
}
