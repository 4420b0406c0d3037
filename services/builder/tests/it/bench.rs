use sqlrft_builder::{BenchArgs, QuickstartArgs, run_bench, run_quickstart};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "benchmark: run with `cargo test -p sqlrft-builder --release --test it -- --ignored bench --nocapture`"]
async fn bench_build_prints_figures() {
    let report = run_bench(&BenchArgs::default()).await.unwrap();
    println!("{report}");
    assert_eq!(report.llm_answered, report.llm_calls);
    assert!(report.truth_kept > 0);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "slow in debug builds (300 queries, 4,000 routes); the offline pipeline tests cover the same stages"]
async fn quickstart_builds_the_demo_dataset() {
    let dir = tempfile::tempdir().unwrap();
    let outcome = run_quickstart(&QuickstartArgs {
        out: dir.path().join("qs"),
        queries: 300,
        seed: 42,
    })
    .await
    .unwrap();
    println!("{outcome:?}");
    println!("{}", std::fs::read_to_string(&outcome.report).unwrap());
    assert!(outcome.train_records > 100 && outcome.test_records > 20);
    assert!(outcome.sandbox.exists() && outcome.train.exists());
}
