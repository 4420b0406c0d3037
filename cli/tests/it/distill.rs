//! `sqlrft distill` as a process: its help, and a run killed mid-way that resumes.

use std::collections::{HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant};

use sqlrft_llm::simulated::LlmStub;

use crate::gretel::{kept_indexes, local_flags, read_jsonl, section, strings, teacher};
use crate::{run_ok, sqlrft};

/// The flags run a distillation and `merge` joins shards: both show in the help, and
/// `merge --help` describes merge alone.
#[test]
fn distill_help_shows_the_run_flags_and_the_merge_subcommand() {
    let help = run_ok(sqlrft().args(["distill", "--help"])).unwrap();
    let help = String::from_utf8(help.stdout).unwrap();
    for part in [
        "--llm-model",
        "--dataset-repo-id",
        "--validate",
        "--shard",
        "merge",
    ] {
        assert!(
            help.contains(part),
            "`sqlrft distill --help` lacks {part}:\n{help}"
        );
    }
    let merge = run_ok(sqlrft().args(["distill", "merge", "--help"])).unwrap();
    let merge = String::from_utf8(merge.stdout).unwrap();
    assert!(merge.contains("--allow-missing"), "{merge}");
    assert!(!merge.contains("--dataset-repo-id"), "{merge}");

    let bare = sqlrft().arg("distill").output().unwrap();
    assert!(!bare.status.success());
    let stderr = String::from_utf8_lossy(&bare.stderr);
    assert!(stderr.contains("--llm-model"), "{stderr}");
}

/// Kills a real `sqlrft distill` process mid-run, leaves a half-written line behind, and
/// checks the rerun finishes the job without redoing or duplicating anything.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn resume_after_kill_redoes_nothing_and_duplicates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let answer = teacher(HashMap::new());
    let llm = LlmStub::start(move |req| answer(req).with_latency(Duration::from_millis(300)))
        .await
        .unwrap();
    let output = dir.path().join("cot.jsonl");
    let mut flags = local_flags(&llm.base_url(), &output, dir.path());
    flags.extend(strings(&["--batch-size", "1", "--validate"]));

    let mut child = sqlrft()
        .arg("distill")
        .args(&flags)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let lines = std::fs::read_to_string(&output)
            .map(|t| t.lines().count())
            .unwrap_or(0);
        if lines >= 2 {
            break;
        }
        assert!(Instant::now() < deadline, "the child wrote nothing in time");
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited early"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    child.kill().unwrap();
    child.wait().unwrap();

    let before = read_jsonl(&output);
    assert!(
        before.len() >= 2 && before.len() < kept_indexes().len(),
        "killed mid-run: {}",
        before.len()
    );
    let done_before: HashSet<String> = before
        .iter()
        .map(|r| r["sql_prompt"].as_str().unwrap().to_string())
        .collect();
    // A kill during a write leaves a line without its newline.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&output)
        .unwrap()
        .write_all(br#"{"id":"0123456789abcdef01234567","generation":"<think>half"#)
        .unwrap();

    let dropped_before = read_jsonl(&dir.path().join("cot.dropped.jsonl")).len();
    let rerun = tokio::task::spawn_blocking(move || run_ok(sqlrft().arg("distill").args(&flags)))
        .await
        .unwrap();
    rerun.unwrap();
    let after = read_jsonl(&output);
    let ids: Vec<&str> = after.iter().map(|r| r["id"].as_str().unwrap()).collect();
    let unique: HashSet<&str> = ids.iter().copied().collect();
    assert_eq!(ids.len(), unique.len(), "no duplicates");
    let mut indexes: Vec<usize> = after
        .iter()
        .map(|r| r["source_index"].as_u64().unwrap() as usize)
        .collect();
    indexes.sort();
    assert_eq!(indexes, kept_indexes(), "complete");
    assert!(after.iter().all(|r| r["valid"] == true));
    let summary: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(dir.path().join("cot.summary.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        summary["resumed"].as_u64(),
        Some((before.len() + dropped_before) as u64),
        "{summary}"
    );
    // Items finished before the kill were never asked again.
    let mut asked: HashMap<String, usize> = HashMap::new();
    for r in llm.requests() {
        *asked
            .entry(section(&r.user_text(), "Instruction"))
            .or_default() += 1;
    }
    for q in &done_before {
        assert_eq!(asked[q], 1, "{q} was asked again");
    }
}
