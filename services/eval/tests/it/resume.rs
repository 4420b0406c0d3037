//! A run killed with SIGKILL continues where it stopped, and no finished item is asked again.
//!
//! The run to kill is this test binary started again as a child process (running
//! `resume_child` below), so the kill is a real SIGKILL of a real process mid-run.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlrft_llm::simulated::{LlmStub, StubResponse};

use crate::support::{answer, endpoint, fixture, plan, plan_on};

const CHILD_ENV: &str = "SQLRFT_EVAL_RESUME_CHILD";

/// Items the stub answers at once before the kill; the rest hang until the kill.
const FAST: usize = 5;

/// Runs only as the child of the test below (it reads its plan from `CHILD_ENV`).
#[test]
fn resume_child() {
    let Ok(spec) = std::env::var(CHILD_ENV) else {
        eprintln!(
            "skipped: runs only as the child process of `killed_run_resumes_without_asking_finished_items_again`"
        );
        return;
    };
    let spec: serde_json::Value = serde_json::from_str(&spec).unwrap();
    let path = |key: &str| Path::new(spec[key].as_str().unwrap()).to_path_buf();
    let plan = plan_on(
        &path("dataset"),
        &path("sandbox"),
        &path("out"),
        vec![endpoint("m", "m", spec["url"].as_str().unwrap())],
    );
    let runtime = tokio::runtime::Runtime::new().unwrap();
    runtime.block_on(sqlrft_eval::run(&plan)).unwrap();
}

fn journal_lines(path: &Path) -> usize {
    std::fs::read_to_string(path)
        .map(|t| t.lines().count())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_run_resumes_without_asking_finished_items_again() {
    let fixture = fixture();
    let fast_questions: Vec<String> = fixture.items[..FAST]
        .iter()
        .map(|i| i.question.clone())
        .collect();
    let hang = Arc::new(AtomicBool::new(true));
    let stub = {
        let hang = hang.clone();
        LlmStub::start(move |request| {
            let question = request.user_text();
            let gold = fixture.item(&question).map_or("SELECT 1", |i| &i.gold_sql);
            let response = StubResponse::text(answer(gold));
            if hang.load(Ordering::SeqCst) && !fast_questions.contains(&question) {
                response.with_latency(Duration::from_secs(600))
            } else {
                response
            }
        })
        .await
        .unwrap()
    };
    let out = tempfile::tempdir().unwrap();
    let journal = sqlrft_eval::journal_path(out.path(), "m");

    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "resume::resume_child",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(
            CHILD_ENV,
            serde_json::json!({
                "out": out.path(),
                "url": stub.base_url(),
                "dataset": fixture.test,
                "sandbox": fixture.sandbox,
            })
            .to_string(),
        )
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(120);
    while journal_lines(&journal) < FAST {
        assert!(
            Instant::now() < deadline,
            "the child journaled only {} items",
            journal_lines(&journal)
        );
        assert!(
            child.try_wait().unwrap().is_none(),
            "the child exited before the kill"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // `Child::kill` is SIGKILL on Unix: no destructor, no flush, no goodbye.
    child.kill().unwrap();
    child.wait().unwrap();
    let before_kill = stub.request_count();
    assert_eq!(
        journal_lines(&journal),
        FAST,
        "only the fast items finished"
    );

    hang.store(false, Ordering::SeqCst);
    let run = sqlrft_eval::run(&plan(
        out.path(),
        vec![endpoint("m", "m", &stub.base_url())],
    ))
    .await
    .unwrap();
    let model = &run.models[0];
    assert_eq!(model.resumed, FAST);
    assert_eq!(model.records.len(), fixture.items.len());
    assert!(model.records.values().all(|r| r.correct()));

    let mut asked: HashMap<String, usize> = HashMap::new();
    for r in stub.requests() {
        *asked.entry(r.user_text()).or_default() += 1;
    }
    for item in &fixture.items[..FAST] {
        assert_eq!(
            asked[&item.question], 1,
            "finished item {} was asked again",
            item.id
        );
    }
    // Items in flight at the kill were asked again (their answers never came); the rest once.
    let in_flight = before_kill - FAST;
    assert_eq!(
        stub.request_count(),
        before_kill + fixture.items.len() - FAST,
        "{in_flight} were in flight at the kill"
    );
}
