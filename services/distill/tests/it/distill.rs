use std::collections::{BTreeMap, HashMap};

use axum::http::Method;
use sqlrft_distill::{STUDENT_INSTRUCTIONS, run_distill};
use sqlrft_hub::RepoType;
use sqlrft_hub::stub::HubStub;
use sqlrft_llm::simulated::{LlmStub, StubResponse, word_count};

use crate::*;

const SOURCE_REPO: &str = "gretelai/synthetic_text_to_sql";

/// The fixture converted to parquet by DuckDB, as the real dataset is stored.
fn fixture_parquet(dir: &std::path::Path) -> Vec<u8> {
    let out = dir.join("train.parquet");
    let conn = sqlrft_duck::duckdb::Connection::open_in_memory().unwrap();
    conn.execute_batch(&format!(
        "COPY (SELECT * FROM read_json_auto('{}')) TO '{}' (FORMAT parquet)",
        fixture().display(),
        out.display()
    ))
    .unwrap();
    std::fs::read(out).unwrap()
}

fn question_of(row: usize) -> String {
    fixture_rows()[row]["sql_prompt"]
        .as_str()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn seed_example_end_to_end_on_the_fixture() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubStub::start(Some(TOKEN)).await.unwrap();
    hub.add_file(
        RepoType::Dataset,
        SOURCE_REPO,
        "synthetic_text_to_sql_train.snappy.parquet",
        &fixture_parquet(dir.path()),
        false,
    );
    hub.add_file(
        RepoType::Dataset,
        SOURCE_REPO,
        "README.md",
        b"# card",
        false,
    );
    // Row 0: an equivalent rewrite (valid by result, not by text). Row 3: a wrong query.
    // Row 4: no <sql> block at all.
    let rewrite = "<think>count Oslo departures</think>\n<sql>SELECT SUM(CASE WHEN origin = 'Oslo' THEN 1 ELSE 0 END) AS departures FROM flights</sql>";
    let overrides = HashMap::from([
        (question_of(0), rewrite.to_string()),
        (
            question_of(3),
            "<think>average</think><sql>SELECT AVG(score) FROM scores</sql>".to_string(),
        ),
        (question_of(4), "<think>I am not sure.</think>".to_string()),
    ]);
    let llm = LlmStub::start(teacher(overrides)).await.unwrap();
    let output = dir.path().join("out/distill.jsonl");
    let args = distill_args(&strings(&[
        "--model",
        "meta-llama/Llama-3.1-70B",
        "--dataset-repo-id",
        SOURCE_REPO,
        "--limit",
        "25000",
        "--batch-size",
        "64",
        "--provider",
        "vLLM",
        "--validate",
        "--publish",
        "--publish-repo-id",
        "alice/sql-distill",
        "--private-repo",
        "--base-url",
        &llm.base_url(),
        "--output",
        output.to_str().unwrap(),
        "--hub-endpoint",
        &hub.endpoint(),
        "--hub-token",
        TOKEN,
        "--hub-cache",
        dir.path().join("cache").to_str().unwrap(),
        "--no-progress",
    ]));
    let summary = run_distill(args).await.unwrap();

    let rows = fixture_rows();
    let kept = kept_indexes();
    // Only items that pass the source checks reach the teacher.
    assert_eq!(llm.request_count(), kept.len());
    assert_eq!(summary.source_rows, rows.len());
    assert_eq!(summary.kept, kept.len());
    assert_eq!(summary.invalid, 2);
    assert_eq!(summary.valid, kept.len() - 2);
    let mut expected_dropped = BTreeMap::new();
    for r in &rows {
        if let Some(code) = expected_drop(r["id"].as_i64().unwrap()) {
            *expected_dropped.entry(code.to_string()).or_insert(0) += 1;
        }
    }
    assert_eq!(summary.dropped, expected_dropped);

    let out = read_jsonl(&output);
    let indexes: Vec<usize> = {
        let mut v: Vec<usize> = out
            .iter()
            .map(|r| r["source_index"].as_u64().unwrap() as usize)
            .collect();
        v.sort();
        v
    };
    assert_eq!(indexes, kept);
    for r in &out {
        let i = r["source_index"].as_u64().unwrap() as usize;
        let src = &rows[i];
        assert_eq!(
            r["source_id"], src["id"],
            "the source's own id column is kept"
        );
        assert_eq!(r["gold_sql"], src["sql"]);
        assert_eq!(r["sql_prompt"], src["sql_prompt"]);
        assert_eq!(r["domain"], src["domain"]);
        let prompt = r["prompt"].as_array().unwrap();
        let system = prompt[0]["content"].as_str().unwrap();
        assert!(system.starts_with(STUDENT_INSTRUCTIONS));
        assert!(system.contains(src["sql_context"].as_str().unwrap()));
        assert_eq!(prompt[1]["content"], src["sql_prompt"]);
        let expect_valid = i != 3 && i != 4;
        assert_eq!(r["valid"], expect_valid, "row {i}: {}", r["reason"]);
        if expect_valid {
            assert!(!r["think"].as_str().unwrap().is_empty());
        }
    }
    let row = |i: usize| out.iter().find(|r| r["source_index"] == i).unwrap();
    assert!(
        row(0)["sql"].as_str().unwrap().contains("CASE WHEN"),
        "kept the rewrite"
    );
    assert!(
        row(3)["reason"].as_str().unwrap().contains("wrong result"),
        "{}",
        row(3)["reason"]
    );
    assert_eq!(row(4)["sql"], "");

    // Dropped rows are recorded with their reasons.
    let dropped = read_jsonl(&dir.path().join("out/distill.dropped.jsonl"));
    assert_eq!(dropped.len(), rows.len() - kept.len());
    for d in &dropped {
        let i = d["source_index"].as_u64().unwrap() as usize;
        assert_eq!(
            Some(d["reason"].as_str().unwrap()),
            expected_drop(rows[i]["id"].as_i64().unwrap())
        );
        assert!(!d["detail"].as_str().unwrap().is_empty());
    }

    // Token accounting: the stub reports whitespace words.
    let requests = llm.requests();
    let prompt_words: u64 = requests.iter().map(|r| r.prompt_words()).sum();
    let answer_words: u64 = out
        .iter()
        .map(|r| word_count(r["generation"].as_str().unwrap()))
        .sum();
    assert_eq!(summary.usage.prompt_tokens, prompt_words);
    assert_eq!(summary.usage.completion_tokens, answer_words);

    // Published: the exact output file plus a card, in a private dataset repo.
    assert_eq!(
        hub.repo_private(RepoType::Dataset, "alice/sql-distill"),
        Some(true)
    );
    assert_eq!(
        hub.file(RepoType::Dataset, "alice/sql-distill", "data/distill.jsonl")
            .unwrap(),
        std::fs::read(&output).unwrap()
    );
    let card = String::from_utf8(
        hub.file(RepoType::Dataset, "alice/sql-distill", "README.md")
            .unwrap(),
    )
    .unwrap();
    assert!(card.starts_with("---\n"));
    assert!(card.contains("meta-llama/Llama-3.1-70B"));
    assert!(card.contains(SOURCE_REPO));
    assert!(
        card.contains(&format!("| {} | {} | 2 | 0 |", kept.len(), kept.len() - 2)),
        "{card}"
    );
    assert!(card.contains("| `think` |"));

    // The source parquet was downloaded once; a rerun reads the cache and does nothing new.
    let gets = hub.count(Method::GET, "/resolve/");
    let again = run_distill(distill_args(&strings(&[
        "--model",
        "meta-llama/Llama-3.1-70B",
        "--dataset-repo-id",
        SOURCE_REPO,
        "--limit",
        "25000",
        "--provider",
        "vLLM",
        "--validate",
        "--base-url",
        &llm.base_url(),
        "--output",
        output.to_str().unwrap(),
        "--hub-endpoint",
        &hub.endpoint(),
        "--hub-token",
        TOKEN,
        "--hub-cache",
        dir.path().join("cache").to_str().unwrap(),
        "--no-progress",
    ])))
    .await
    .unwrap();
    assert_eq!(hub.count(Method::GET, "/resolve/"), gets);
    assert_eq!(again.resumed, rows.len());
    assert_eq!(llm.request_count(), kept.len(), "nothing is asked twice");
    assert_eq!(read_jsonl(&output).len(), kept.len());
}

#[tokio::test]
async fn remove_no_valid_drops_invalid_answers_with_reasons() {
    let dir = tempfile::tempdir().unwrap();
    let overrides = HashMap::from([
        (
            question_of(3),
            "<think>x</think><sql>SELECT AVG(score) FROM scores</sql>".to_string(),
        ),
        (question_of(4), "<think>I am not sure.</think>".to_string()),
        (
            question_of(9),
            "<think>x</think><sql>DROP TABLE players</sql>".to_string(),
        ),
    ]);
    let llm = LlmStub::start(teacher(overrides)).await.unwrap();
    let output = dir.path().join("d.jsonl");
    let mut flags = local_flags(&llm.base_url(), &output, dir.path());
    flags.extend(strings(&["--validate", "--remove-no-valid"]));
    let summary = run_distill(distill_args(&flags)).await.unwrap();
    let out = read_jsonl(&output);
    assert_eq!(out.len(), kept_indexes().len() - 3);
    assert!(out.iter().all(|r| r["valid"] == true));
    assert_eq!(summary.dropped.get("no_valid_answer"), Some(&3));
    let dropped = read_jsonl(&dir.path().join("d.dropped.jsonl"));
    let detail = |i: usize| {
        dropped
            .iter()
            .find(|d| d["source_index"] == i)
            .map(|d| {
                (
                    d["reason"].as_str().unwrap().to_string(),
                    d["detail"].as_str().unwrap().to_string(),
                )
            })
            .unwrap()
    };
    assert_eq!(detail(3).0, "no_valid_answer");
    assert!(detail(3).1.contains("wrong result"), "{}", detail(3).1);
    assert!(detail(9).1.contains("refused"), "{}", detail(9).1);
    assert!(!detail(4).1.is_empty());
}

#[tokio::test]
async fn best_of_n_keeps_the_matching_sample() {
    let dir = tempfile::tempdir().unwrap();
    // For every question only the second answer is right.
    let llm = LlmStub::start(counting_teacher(|_, objective, n| {
        let sql = if n == 2 {
            objective.to_string()
        } else {
            "SELECT 1 AS wrong".to_string()
        };
        format!("<think>attempt {n}</think><sql>{sql}</sql>")
    }))
    .await
    .unwrap();
    let output = dir.path().join("best.jsonl");
    let mut flags = local_flags(&llm.base_url(), &output, dir.path());
    flags.extend(strings(&[
        "--validate",
        "--num-generations",
        "3",
        "--limit",
        "1",
        "--seed",
        "7",
    ]));
    let summary = run_distill(distill_args(&flags)).await.unwrap();
    assert_eq!(llm.request_count(), 3);
    let seeds: Vec<u64> = {
        let mut s: Vec<u64> = llm
            .requests()
            .iter()
            .map(|r| r.body["seed"].as_u64().unwrap())
            .collect();
        s.sort();
        s
    };
    assert_eq!(seeds, vec![7, 8, 9]);
    let out = read_jsonl(&output);
    assert_eq!(out.len(), 1);
    assert_eq!(out[0]["valid"], true);
    assert_eq!(out[0]["think"], "attempt 2");
    assert_eq!(summary.valid, 1);
}

#[tokio::test]
async fn teacher_rate_limits_and_server_errors_are_retried() {
    let dir = tempfile::tempdir().unwrap();
    let hub = HubStub::start(None).await.unwrap();
    hub.add_file(
        RepoType::Dataset,
        SOURCE_REPO,
        "data/train.jsonl",
        &std::fs::read(fixture()).unwrap(),
        false,
    );
    hub.rate_limit_next("/tree/", "0", 1);
    hub.fail_next("/resolve/", 503, 2);
    let seen = std::sync::atomic::AtomicUsize::new(0);
    let base = teacher(HashMap::new());
    let llm =
        LlmStub::start(
            move |req| match seen.fetch_add(1, std::sync::atomic::Ordering::SeqCst) {
                0 => StubResponse::rate_limited("0"),
                1 => StubResponse::status(500, "overloaded"),
                2 => StubResponse::status(502, "bad gateway"),
                _ => base(req),
            },
        )
        .await
        .unwrap();
    let output = dir.path().join("r.jsonl");
    let args = distill_args(&strings(&[
        "--model",
        "m",
        "--provider",
        "vllm",
        "--dataset-repo-id",
        SOURCE_REPO,
        "--base-url",
        &llm.base_url(),
        "--batch-size",
        "1",
        "--retries",
        "3",
        "--output",
        output.to_str().unwrap(),
        "--hub-endpoint",
        &hub.endpoint(),
        "--hub-cache",
        dir.path().to_str().unwrap(),
        "--no-progress",
        "--validate",
    ]));
    let summary = run_distill(args).await.unwrap();
    assert_eq!(summary.kept, kept_indexes().len());
    assert_eq!(summary.valid, kept_indexes().len());
    assert_eq!(summary.teacher_errors, 0);
    assert_eq!(summary.usage.retries, 3);
    assert_eq!(hub.count(Method::GET, "/tree/"), 2);
}

#[tokio::test]
async fn teacher_outage_leaves_items_for_the_next_run() {
    let dir = tempfile::tempdir().unwrap();
    let down = LlmStub::start(|_| StubResponse::status(503, "down"))
        .await
        .unwrap();
    let output = dir.path().join("o.jsonl");
    let mut flags = local_flags(&down.base_url(), &output, dir.path());
    flags.extend(strings(&["--retries", "0"]));
    assert_eq!(flags.iter().filter(|f| *f == "--retries").count(), 1);
    let first = run_distill(distill_args(&flags)).await.unwrap();
    assert_eq!(first.kept, 0);
    assert_eq!(first.teacher_errors, kept_indexes().len());
    assert!(first.to_string().contains("will be retried"), "{first}");

    let up = LlmStub::start(teacher(HashMap::new())).await.unwrap();
    let second = run_distill(distill_args(&local_flags(
        &up.base_url(),
        &output,
        dir.path(),
    )))
    .await
    .unwrap();
    assert_eq!(second.kept, kept_indexes().len());
    assert_eq!(up.request_count(), kept_indexes().len());
    // Source-level drops were recorded once, not again on the rerun.
    let dropped = read_jsonl(&dir.path().join("o.dropped.jsonl"));
    assert_eq!(dropped.len(), fixture_rows().len() - kept_indexes().len());
}

#[tokio::test]
async fn build_datasets_need_a_sandbox() {
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("train.jsonl");
    std::fs::write(
        &input,
        r#"{"messages":[{"role":"system","content":"schema"},{"role":"user","content":"q"}],"sql":"SELECT 1","ground_truth":[]}"#,
    )
    .unwrap();
    let llm = LlmStub::start(teacher(HashMap::new())).await.unwrap();
    let mut flags = local_flags(&llm.base_url(), &dir.path().join("o.jsonl"), dir.path());
    let at = flags.iter().position(|f| f == "--input").unwrap();
    flags[at + 1] = input.to_str().unwrap().to_string();
    let err = run_distill(distill_args(&flags))
        .await
        .unwrap_err()
        .to_string();
    assert!(err.contains("--sandbox"), "{err}");
}

#[tokio::test]
async fn missing_input_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let llm = LlmStub::start(teacher(HashMap::new())).await.unwrap();
    let mut flags = local_flags(&llm.base_url(), &dir.path().join("o.jsonl"), dir.path());
    let at = flags.iter().position(|f| f == "--input").unwrap();
    flags[at + 1] = "/nonexistent/rows.jsonl".into();
    let err = format!("{:#}", run_distill(distill_args(&flags)).await.unwrap_err());
    assert!(
        err.contains("/nonexistent/rows.jsonl") && err.contains("no such file"),
        "{err}"
    );
}

#[test]
fn teacher_settings_come_from_the_file_then_the_environment_then_the_flags() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("sqlrft.toml");
    std::fs::write(
        &file,
        "[llm]\nprovider = \"groq\"\nmodel = \"file-model\"\ntimeout = \"20s\"\nmax_concurrency = 3\n",
    )
    .unwrap();
    let base = ["--input", "items.jsonl", "--config", file.to_str().unwrap()];
    let env = sqlrft_core::config::env_from;

    let from_file = distill_args(&strings(&base)).teacher(env(&[])).unwrap();
    assert_eq!(from_file.provider, sqlrft_llm::Provider::Groq);
    assert_eq!(from_file.model, "file-model");
    assert_eq!(from_file.timeout, std::time::Duration::from_secs(20));
    assert_eq!(from_file.max_concurrency, 3);
    assert_eq!(
        (from_file.temperature, from_file.max_tokens),
        (Some(0.7), Some(4096)),
        "distill's own sampling defaults fill what nothing set"
    );

    let vars = [
        ("SQLRFT_LLM_MODEL", "env-model"),
        ("SQLRFT_LLM_TEMPERATURE", "0.2"),
    ];
    let from_env = distill_args(&strings(&base)).teacher(env(&vars)).unwrap();
    assert_eq!(from_env.model, "env-model");
    assert_eq!(from_env.temperature, Some(0.2));
    assert_eq!(from_env.max_concurrency, 3);

    let mut line = base.to_vec();
    line.extend([
        "--model",
        "flag-model",
        "--llm-temperature",
        "0.9",
        "--batch-size",
        "5",
    ]);
    let from_flags = distill_args(&strings(&line)).teacher(env(&vars)).unwrap();
    assert_eq!(from_flags.model, "flag-model");
    assert_eq!(from_flags.temperature, Some(0.9));
    assert_eq!(from_flags.max_concurrency, 5);
    assert_eq!(from_flags.provider, sqlrft_llm::Provider::Groq);
}

#[test]
fn no_teacher_model_anywhere_is_a_clear_error() {
    let err = distill_args(&strings(&["--input", "items.jsonl"]))
        .teacher(Vec::new())
        .unwrap_err()
        .to_string();
    assert!(err.contains("--llm-model"), "{err}");
}
