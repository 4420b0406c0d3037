//! The benchmark, run on demand: `cargo test -p sqlrft-reward-service --test it -- --ignored bench --nocapture`.
//! It serves the MCP demo database (OpenFlights tables) and compares with the tutorial's own
//! evaluate function when a Python with `requests` is found.

use std::path::Path;

use sqlrft_reward_service::{BenchArgs, run_bench};

#[tokio::test(flavor = "multi_thread")]
#[ignore = "a benchmark, not a test: run with --ignored"]
async fn bench_reward_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let db = sqlrft_mcp::write_demo_database(dir.path()).unwrap();
    let mcp = sqlrft_mcp::start(sqlrft_mcp::McpConfig {
        db: Some(db.clone()),
        port: 0,
        ..sqlrft_mcp::McpConfig::default()
    })
    .await
    .unwrap();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let venv = root.join(".venv/bin/python");
    let seed = root.join("../shared/seeds/000_4c080a18a0b6b01b.txt");
    let peer = (venv.exists() && seed.exists()).then_some(venv);
    if peer.is_none() {
        eprintln!("no .venv python or seed text: the tutorial evaluator is left out");
    }
    run_bench(BenchArgs {
        db,
        mcp_url: Some(sqlrft_mcp::mcp_url(&mcp)),
        peer_python: peer,
        seed,
        cases: None,
        evaluations: 4000,
        peer_evaluations: 300,
        concurrency: 16,
        official: sqlrft_duck::OfficialDuckdbArgs {
            python: std::env::var_os("SQLRFT_DUCKDB_PYTHON")
                .map_or_else(|| "python3".into(), Into::into),
        },
    })
    .await
    .unwrap();
}
