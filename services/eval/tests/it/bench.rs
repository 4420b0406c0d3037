//! `sqlrft bench eval`, small and untimed: it runs end to end and measures what it says.

use sqlrft_eval::BenchArgs;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_benchmark_runs_small() {
    let out = tempfile::tempdir().unwrap();
    let report = sqlrft_eval::run_bench(&BenchArgs {
        items: 40,
        models: 3,
        latency_ms: 5,
        concurrency: 8,
        out: Some(out.path().to_path_buf()),
        official: sqlrft_duck::OfficialDuckdbArgs {
            python: std::env::var_os("SQLRFT_DUCKDB_PYTHON")
                .map_or_else(|| "python3".into(), Into::into),
        },
    })
    .await
    .unwrap();
    assert_eq!(report.answers, 120);
    assert_eq!(report.requests, 120);
    assert!(report.scoring > std::time::Duration::ZERO);
    assert!(report.scoring_share() > 0.0 && report.scoring_share() <= 1.0);
    let accuracies: Vec<f64> = report.accuracies.iter().map(|a| a.1).collect();
    assert!(
        accuracies.iter().all(|a| (0.0..=1.0).contains(a)),
        "{accuracies:?}"
    );
    assert!(out.path().join("eval/report.html").exists());
    // 40 items, 8 in flight per model, 5 ms each: five rounds.
    assert_eq!(report.floor, std::time::Duration::from_millis(25));
    assert!(report.wall >= report.floor, "{report}");
    assert!((0.0..1.0).contains(&report.overhead_share()), "{report}");
    assert!(report.to_string().contains("goal for scoring ≤ 5%"));
    match (&report.official, std::env::var_os("SQLRFT_DUCKDB_PYTHON")) {
        (Ok(official), _) => assert!(*official > std::time::Duration::ZERO),
        // CI installs the wheel and names it: there the row must be measured.
        (Err(why), Some(_)) => panic!("the official row was skipped: {why}"),
        (Err(why), None) => eprintln!("SKIPPED the official-wheel row: {why}"),
    }
}
