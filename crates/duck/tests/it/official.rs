//! The official-wheel row: measured when its Python has our DuckDB version, skipped with a
//! reason that says what to install otherwise.

use std::path::Path;

use sqlrft_duck::{engine_version, measure_official};

use crate::TestDb;

#[test]
fn a_missing_python_is_a_skip_reason_naming_it_and_the_fix() {
    let db = TestDb::new("CREATE TABLE t AS SELECT 1 AS x");
    let missing = Path::new("/nonexistent/python3");
    let why = measure_official(missing, &db.path, &["SELECT x FROM t".into()], 1, 0).unwrap_err();
    assert!(why.contains("/nonexistent/python3"), "{why}");
    assert!(
        why.contains(&format!("pip install duckdb=={}", engine_version())),
        "{why}"
    );
}

#[test]
fn the_official_wheel_runs_every_query_from_every_thread() {
    let Some(python) = std::env::var_os("SQLRFT_DUCKDB_PYTHON") else {
        eprintln!(
            "SKIPPED: set SQLRFT_DUCKDB_PYTHON to a Python with duckdb=={} (.ci/run does)",
            engine_version()
        );
        return;
    };
    let db = TestDb::new("CREATE TABLE t AS SELECT range AS x FROM range(100)");
    let queries: Vec<String> = (0..40)
        .map(|i| format!("SELECT x FROM t WHERE x = {i}"))
        .collect();
    let run = measure_official(Path::new(&python), &db.path, &queries, 3, 2).unwrap();
    assert_eq!(run.version, engine_version());
    assert_eq!(run.latencies.len(), queries.len());
    assert!(run.wall > std::time::Duration::ZERO);
}

#[test]
fn the_official_wheel_refuses_writes_like_our_pool() {
    let Some(python) = std::env::var_os("SQLRFT_DUCKDB_PYTHON") else {
        eprintln!("SKIPPED: set SQLRFT_DUCKDB_PYTHON (see the test above)");
        return;
    };
    // Its lockdown is ours: a write on the read-only file fails the run.
    let db = TestDb::new("CREATE TABLE t AS SELECT 1 AS x");
    let why = measure_official(
        Path::new(&python),
        &db.path,
        &["CREATE TABLE u (x INT)".into()],
        1,
        0,
    )
    .unwrap_err();
    assert!(
        why.contains("read-only") || why.contains("read only"),
        "{why}"
    );
}

#[test]
fn a_python_without_duckdb_is_a_skip_reason_naming_it_and_the_fix() {
    let python = Path::new("/usr/bin/python3");
    let has_duckdb = std::process::Command::new(python)
        .args(["-c", "import duckdb"])
        .status()
        .map(|status| status.success());
    if !matches!(has_duckdb, Ok(false)) {
        eprintln!(
            "SKIPPED: needs a {} without a `duckdb` module",
            python.display()
        );
        return;
    }
    let db = TestDb::new("CREATE TABLE t AS SELECT 1 AS x");
    let why = measure_official(python, &db.path, &["SELECT x FROM t".into()], 1, 0).unwrap_err();
    assert!(why.contains("no `duckdb` module"), "{why}");
    assert!(why.contains(&python.display().to_string()), "{why}");
}

#[test]
fn a_wheel_of_another_version_is_a_skip_reason_naming_both_versions() {
    // .ci/run's SQLRFT_PYTHON keeps the tutorial's DuckDB 1.4.3.
    let Some(python) = std::env::var_os("SQLRFT_PYTHON") else {
        eprintln!("SKIPPED: set SQLRFT_PYTHON to the tutorial's Python (.ci/run does)");
        return;
    };
    let theirs = std::process::Command::new(&python)
        .args(["-c", "import duckdb; print(duckdb.__version__)"])
        .output()
        .map(|out| String::from_utf8_lossy(&out.stdout).trim().to_string())
        .unwrap_or_default();
    if theirs.is_empty() || theirs == engine_version() {
        eprintln!("SKIPPED: SQLRFT_PYTHON has no DuckDB of another version than ours");
        return;
    }
    let db = TestDb::new("CREATE TABLE t AS SELECT 1 AS x");
    let queries = ["SELECT x FROM t".to_string()];
    let why = measure_official(Path::new(&python), &db.path, &queries, 1, 0).unwrap_err();
    assert!(why.contains(&format!("has DuckDB {theirs}")), "{why}");
    assert!(why.contains(&engine_version()), "{why}");
}
