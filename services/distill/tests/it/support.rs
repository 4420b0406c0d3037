//! The Gretel-shaped fixture and a teacher for it, shared with the `sqlrft` binary's tests
//! (cli/tests/it includes this file), which drive `sqlrft distill` as a real process.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde_json::Value;
use sqlrft_llm::simulated::{StubRequest, StubResponse};

pub const TOKEN: &str = "hf_test_write_token";

pub fn fixture() -> PathBuf {
    // Found from the including package's directory (services/distill or cli).
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .map(|dir| dir.join("services/distill/tests/it/fixtures/gretel_sample.jsonl"))
        .find(|path| path.exists())
        .expect("services/distill/tests/it/fixtures/gretel_sample.jsonl in the workspace")
}

/// Fixture rows, in file order.
pub fn fixture_rows() -> Vec<Value> {
    std::fs::read_to_string(fixture())
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Why fixture row `id` must be dropped before reaching the teacher (see fixtures/README.md).
pub fn expected_drop(fixture_id: i64) -> Option<&'static str> {
    match fixture_id {
        6 | 11 => Some("non_retrieval_task"),
        7 => Some("gold_not_select"),
        8 => Some("gold_failed"),
        9 => Some("context_failed"),
        _ => None,
    }
}

/// Source indexes of rows that survive the source checks.
pub fn kept_indexes() -> Vec<usize> {
    fixture_rows()
        .iter()
        .enumerate()
        .filter(|(_, r)| expected_drop(r["id"].as_i64().unwrap()).is_none())
        .map(|(i, _)| i)
        .collect()
}

/// The text of a `## Heading` section of the teacher's user message.
pub fn section(user: &str, heading: &str) -> String {
    let start = user
        .find(&format!("## {heading}\n"))
        .expect("section present")
        + heading.len()
        + 4;
    let rest = &user[start..];
    rest[..rest.find("\n## ").unwrap_or(rest.len())]
        .trim()
        .to_string()
}

/// A teacher that reasons briefly and answers with the objective SQL, unless `overrides` has
/// an answer for the question.
pub fn teacher(
    overrides: HashMap<String, String>,
) -> impl Fn(&StubRequest) -> StubResponse + Send + Sync + 'static {
    move |req| {
        let user = req.user_text();
        let question = section(&user, "Instruction");
        match overrides.get(&question) {
            Some(answer) => StubResponse::text(answer.clone()),
            None => StubResponse::text(format!(
                "<think>\nThe question asks: {question}. The schema has what we need.\n</think>\n<sql>\n{}\n</sql>",
                section(&user, "Objective")
            )),
        }
    }
}

/// A teacher whose answers depend on how often each question was asked (1-based count).
pub fn counting_teacher(
    answer: impl Fn(&str, &str, usize) -> String + Send + Sync + 'static,
) -> impl Fn(&StubRequest) -> StubResponse + Send + Sync + 'static {
    let seen: Mutex<HashMap<String, usize>> = Mutex::default();
    move |req| {
        let user = req.user_text();
        let question = section(&user, "Instruction");
        let n = {
            let mut seen = seen.lock().unwrap();
            let n = seen.entry(question.clone()).or_insert(0);
            *n += 1;
            *n
        };
        StubResponse::text(answer(&question, &section(&user, "Objective"), n))
    }
}

/// Flags for a local-fixture run against `teacher_url`, writing `output`.
pub fn local_flags(teacher_url: &str, output: &Path, cache: &Path) -> Vec<String> {
    [
        "--model",
        "teacher-70b",
        "--provider",
        "vLLM",
        "--base-url",
        teacher_url,
        "--input",
        fixture().to_str().unwrap(),
        "--output",
        output.to_str().unwrap(),
        "--hub-cache",
        cache.to_str().unwrap(),
        "--hub-endpoint",
        "http://127.0.0.1:9",
        "--no-progress",
    ]
    .map(String::from)
    .to_vec()
}

pub fn strings(flags: &[&str]) -> Vec<String> {
    flags.iter().map(|s| s.to_string()).collect()
}

/// Parsed lines of a JSONL file.
pub fn read_jsonl(path: &Path) -> Vec<Value> {
    match std::fs::read_to_string(path) {
        Ok(text) => text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect(),
        Err(_) => Vec::new(),
    }
}
