use std::collections::HashSet;

use serde_json::Value;
use sqlrft_core::config::Layered;

use crate::support::{build_all, read_jsonl, small_demo_args};

/// The ids in a progress journal (skipping its header line).
fn journal_ids(path: &std::path::Path) -> Vec<String> {
    read_jsonl(path)
        .into_iter()
        .skip(1)
        .map(|v| v["id"].as_str().unwrap().to_string())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_ground_truth_resumes_without_loss_or_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    // Interrupt ground truth after 7 queries, as a kill would.
    let err = build_all(small_demo_args(&out, &["--fail-after", "7"]))
        .await
        .unwrap_err();
    assert!(
        format!("{err:#}").contains("interrupted after 7"),
        "{err:#}"
    );
    assert!(
        !out.join("truth.jsonl").exists(),
        "a half-done stage must not leave its output"
    );
    let journal = out.join("progress").join("truth.jsonl");
    let before = journal_ids(&journal);
    assert_eq!(before.len(), 7);

    build_all(small_demo_args(&out, &[])).await.unwrap();
    assert!(
        !journal.exists(),
        "the journal is removed once the stage is done"
    );
    let truth = read_jsonl(&out.join("truth.jsonl"));
    let queries = read_jsonl(&out.join("queries.jsonl"));
    let ids: Vec<&str> = truth.iter().map(|t| t["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "duplicated outcomes");
    assert_eq!(ids.len(), queries.len(), "lost outcomes");
    for id in &before {
        assert!(unique.contains(id.as_str()));
    }

    // Identical to a build that was never interrupted.
    let clean = dir.path().join("clean");
    build_all(small_demo_args(&clean, &[])).await.unwrap();
    // Cells may differ in a float's last bits between runs (parallel sums): compare outcomes.
    let key = |v: &Value| format!("{}|{}|{}", v["id"], v["status"], v["reason"]);
    let mut a: Vec<String> = truth.iter().map(key).collect();
    let mut b: Vec<String> = read_jsonl(&clean.join("truth.jsonl"))
        .iter()
        .map(key)
        .collect();
    a.sort();
    b.sort();
    assert_eq!(a, b);
    let ids = |path: std::path::PathBuf| -> Vec<String> {
        read_jsonl(&path)
            .iter()
            .map(|r| r["id"].to_string())
            .collect()
    };
    assert_eq!(ids(out.join("train.jsonl")), ids(clean.join("train.jsonl")));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_torn_journal_line_is_dropped_on_resume() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let _ = build_all(small_demo_args(&out, &["--fail-after", "4"]))
        .await
        .unwrap_err();
    let journal = out.join("progress").join("truth.jsonl");
    // A kill in the middle of writing a line.
    let mut text = std::fs::read_to_string(&journal).unwrap();
    text.push_str("{\"status\":\"kept\",\"id\":\"q-torn");
    std::fs::write(&journal, text).unwrap();
    build_all(small_demo_args(&out, &[])).await.unwrap();
    let truth = read_jsonl(&out.join("truth.jsonl"));
    assert!(truth.iter().all(|t| t["id"] != "q-torn"));
    assert_eq!(truth.len(), read_jsonl(&out.join("queries.jsonl")).len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn missing_upstream_stage_names_the_command_to_run() {
    let dir = tempfile::tempdir().unwrap();
    let args = sqlrft_builder::BuildTruthArgs {
        common: Layered::new(sqlrft_builder::CommonArgs::new(dir.path())),
        truth: Layered::new(sqlrft_builder::TruthOpts {
            query_timeout: 1.0,
            max_result_rows: 10,
            query_concurrency: None,
        }),
    };
    let err = sqlrft_builder::run_build(sqlrft_builder::BuildCommand::Truth(args))
        .await
        .unwrap_err();
    let message = format!("{err:#}");
    assert!(message.contains("sqlrft build queries"), "{message}");
}
