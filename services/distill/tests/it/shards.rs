use std::collections::{HashMap, HashSet};

use sqlrft_distill::{MergeArgs, Shard, run_distill, run_merge};
use sqlrft_llm::simulated::LlmStub;

use crate::*;

#[tokio::test]
async fn shards_are_disjoint_complete_and_merge_into_the_unsharded_output() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LlmStub::start(teacher(HashMap::new())).await.unwrap();

    let full = dir.path().join("full.jsonl");
    let mut flags = local_flags(&llm.base_url(), &full, dir.path());
    flags.push("--validate".into());
    run_distill(distill_args(&flags)).await.unwrap();

    let output = dir.path().join("parts/cot.jsonl");
    let n = 3;
    let mut shard_ids: Vec<HashSet<String>> = Vec::new();
    for i in 0..n {
        let mut flags = local_flags(&llm.base_url(), &output, dir.path());
        flags.extend(strings(&["--validate", "--shard", &format!("{i}/{n}")]));
        let summary = run_distill(distill_args(&flags)).await.unwrap();
        assert_eq!(summary.shard.as_deref(), Some(format!("{i}/{n}").as_str()));
        let part = Shard { index: i, count: n }.output_path(&output);
        assert_eq!(summary.output, part);
        shard_ids.push(
            read_jsonl(&part)
                .iter()
                .map(|r| r["id"].as_str().unwrap().to_string())
                .collect(),
        );
    }
    for a in 0..n {
        for b in a + 1..n {
            assert!(
                shard_ids[a].is_disjoint(&shard_ids[b]),
                "shards {a} and {b} overlap"
            );
        }
    }
    let full_rows = read_jsonl(&full);
    let union: HashSet<String> = shard_ids.iter().flatten().cloned().collect();
    let full_ids: HashSet<String> = full_rows
        .iter()
        .map(|r| r["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(union, full_ids);

    let merged = run_merge(MergeArgs {
        output: output.clone(),
        inputs: vec![],
        allow_missing: false,
    })
    .await
    .unwrap();
    assert_eq!(merged.inputs.len(), n);
    assert_eq!(merged.rows, full_rows.len());
    assert_eq!(merged.duplicates, 0);
    assert_eq!(merged.dropped, fixture_rows().len() - kept_indexes().len());
    // Same rows in the same (source) order as the unsharded run.
    let mut full_sorted = full_rows.clone();
    full_sorted.sort_by_key(|r| r["source_index"].as_u64());
    assert_eq!(read_jsonl(&output), full_sorted);
    // The merged summary counts the merged files and sums the shards' teacher usage.
    let summary: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.path().join("parts/cot.summary.json")).unwrap())
            .unwrap();
    assert_eq!(summary["kept"], full_rows.len());
    assert_eq!(summary["valid"], full_rows.len());
    assert_eq!(summary["usage"]["requests"], full_rows.len());
}

#[tokio::test]
async fn merge_refuses_when_a_shard_is_missing() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LlmStub::start(teacher(HashMap::new())).await.unwrap();
    let output = dir.path().join("cot.jsonl");
    let mut flags = local_flags(&llm.base_url(), &output, dir.path());
    flags.extend(strings(&["--shard", "1/2"]));
    run_distill(distill_args(&flags)).await.unwrap();
    let err = run_merge(MergeArgs {
        output: output.clone(),
        inputs: vec![],
        allow_missing: false,
    })
    .await
    .unwrap_err()
    .to_string();
    assert!(
        err.contains("[0]") && err.contains("--allow-missing"),
        "{err}"
    );
    let partial = run_merge(MergeArgs {
        output,
        inputs: vec![],
        allow_missing: true,
    })
    .await
    .unwrap();
    assert_eq!(partial.inputs.len(), 1);
}

#[tokio::test]
async fn merging_overlapping_inputs_writes_each_row_once() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LlmStub::start(teacher(HashMap::new())).await.unwrap();
    let a = dir.path().join("a.jsonl");
    run_distill(distill_args(&local_flags(&llm.base_url(), &a, dir.path())))
        .await
        .unwrap();
    let merged_path = dir.path().join("m.jsonl");
    let merged = run_merge(MergeArgs {
        output: merged_path.clone(),
        inputs: vec![a.clone(), a.clone()],
        allow_missing: false,
    })
    .await
    .unwrap();
    assert_eq!(merged.rows, kept_indexes().len());
    assert_eq!(merged.duplicates, kept_indexes().len());
    assert_eq!(read_jsonl(&merged_path).len(), kept_indexes().len());
}
