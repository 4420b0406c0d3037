//! `sqlrft bench mcp` end to end on the demo database, with a second sqlrft server as the peer:
//! every workload is measured on DuckDB alone, on sqlrft and on the peer, over real HTTP.
//! Few requests: this checks the benchmark works, not how fast anything is.

use sqlrft_mcp::bench::{McpBenchArgs, run_bench};
use sqlrft_mcp::{McpConfig, start, write_demo_database};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_measures_every_workload_on_duckdb_ours_and_the_peer() {
    let dir = tempfile::tempdir().unwrap();
    let db = write_demo_database(dir.path()).unwrap();
    let peer = start(McpConfig {
        db: Some(db.clone()),
        port: 0,
        ..McpConfig::default()
    })
    .await
    .unwrap();

    let results = run_bench(McpBenchArgs {
        db,
        peer: Some(peer.base_url()),
        requests: 12,
        peer_requests: 5,
        concurrency: 3,
        official: sqlrft_duck::OfficialDuckdbArgs {
            python: official_python(),
        },
    })
    .await
    .unwrap();

    let workloads: Vec<&str> = results.iter().map(|r| r.workload).collect();
    assert_eq!(
        workloads,
        [
            "point, sequential",
            "point, concurrent",
            "mixed analytical, sequential"
        ]
    );
    for result in &results {
        match (&result.official, std::env::var_os("SQLRFT_DUCKDB_PYTHON")) {
            (Ok(official), _) => assert_eq!(official.requests, 12, "{}", result.workload),
            // CI installs the wheel and names it: there the row must be measured.
            (Err(why), Some(_)) => {
                panic!("{}: the official row was skipped: {why}", result.workload)
            }
            (Err(why), None) => eprintln!(
                "SKIPPED the official-wheel row of {}: {why}",
                result.workload
            ),
        }
        let peer = result.peer.as_ref().expect("the peer was measured");
        for (measured, requests) in [(&result.duckdb_alone, 12), (&result.sqlrft, 12), (peer, 5)] {
            assert_eq!(measured.requests, requests, "{}", result.workload);
            assert!(measured.per_second > 0.0, "{}", result.workload);
            assert!(measured.p50 <= measured.p99, "{}", result.workload);
        }
    }
    peer.shutdown().await.unwrap();
}

/// The official wheel's Python: `$SQLRFT_DUCKDB_PYTHON`, else whatever `python3` has.
fn official_python() -> std::path::PathBuf {
    std::env::var_os("SQLRFT_DUCKDB_PYTHON").map_or_else(|| "python3".into(), Into::into)
}
