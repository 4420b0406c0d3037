//! `sqlrft bench reward`'s code on small counts: every row measured over the rounds, each with
//! the evaluations it was given. It serves the MCP demo database (OpenFlights tables) and adds
//! the tutorial's own evaluate function when a Python with `requests` is found. Full-size runs:
//! `sqlrft bench reward` (README, "Reward service").

use std::path::{Path, PathBuf};

use sqlrft_reward_service::{BenchArgs, run_bench};

#[tokio::test(flavor = "multi_thread")]
async fn bench_reward_measures_every_row_over_the_rounds() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mcp) = demo_mcp_server(dir.path()).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".venv/bin/python");
    let seed = root.join("../shared/seeds/000_4c080a18a0b6b01b.txt");
    let peer = (venv.exists() && seed.exists()).then_some(venv);
    if peer.is_none() {
        eprintln!("no .venv python or seed text: the tutorial evaluator's row is left out");
    }
    let with_peer = peer.is_some();
    let rows = run_bench(BenchArgs {
        db,
        mcp_url: Some(sqlrft_mcp::mcp_url(&mcp)),
        peer_python: peer,
        seed,
        cases: None,
        evaluations: 16,
        peer_evaluations: 5,
        concurrency: 2,
        official: sqlrft_duck::OfficialDuckdbArgs {
            python: std::env::var_os("SQLRFT_DUCKDB_PYTHON")
                .map_or_else(|| "python3".into(), Into::into),
        },
    })
    .await
    .unwrap();
    let evaluations = |prefix: &str| {
        rows.iter()
            .find(|row| row.name.starts_with(prefix))
            .unwrap_or_else(|| panic!("no row `{prefix}` in {rows:?}"))
            .evaluations
    };
    assert_eq!(evaluations("embedded, in process, 1 at a time"), 4);
    assert_eq!(evaluations("embedded, in process, 2 concurrent"), 16);
    assert_eq!(evaluations("HTTP /v1/evaluate, embedded"), 16);
    assert_eq!(evaluations("HTTP batch x8 (different SQL)"), 16);
    assert_eq!(evaluations("HTTP /v1/evaluate, via MCP"), 16);
    if with_peer {
        assert_eq!(evaluations("tutorial evaluate()"), 5);
    }
    if std::env::var_os("SQLRFT_DUCKDB_PYTHON").is_some() {
        assert_eq!(evaluations("official DuckDB wheel, SQL only, 1 thr."), 4);
        assert_eq!(evaluations("official DuckDB wheel, SQL only, 2 thr."), 16);
    }
    assert!(rows.iter().all(|row| row.per_second > 0.0), "{rows:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn bench_reward_names_a_missing_seed_text_and_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    let (db, mcp) = demo_mcp_server(dir.path()).await;
    let missing = dir.path().join("no-such-seed.txt");
    let error = run_bench(BenchArgs {
        db,
        mcp_url: Some(sqlrft_mcp::mcp_url(&mcp)),
        peer_python: Some("python3".into()),
        seed: missing.clone(),
        cases: None,
        evaluations: 8,
        peer_evaluations: 4,
        concurrency: 1,
        official: sqlrft_duck::OfficialDuckdbArgs {
            python: "python3".into(),
        },
    })
    .await
    .expect_err("a bench with a missing seed text must fail")
    .to_string();
    assert!(
        error.contains(&missing.display().to_string()) && error.contains("--peer-python"),
        "{error}"
    );
}

/// The MCP demo database written into `dir`, and a server for it on a free port.
async fn demo_mcp_server(dir: &Path) -> (PathBuf, sqlrft_mcp::RunningServer) {
    let db = sqlrft_mcp::write_demo_database(dir).unwrap();
    let mcp = sqlrft_mcp::start(sqlrft_mcp::McpConfig {
        db: Some(db.clone()),
        port: 0,
        ..sqlrft_mcp::McpConfig::default()
    })
    .await
    .unwrap();
    (db, mcp)
}
