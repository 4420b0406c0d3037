use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use clap::{Args, Command, FromArgMatches};
use serde_json::{Value, json};
use sqlrft_builder::BuildCommand;
use sqlrft_builder::{BuildQuestionsArgs, BuildSandboxArgs};
use sqlrft_llm::simulated::{LlmStub, StubRequest, StubResponse};

use crate::support::{build_all, read_jsonl, scalar, small_demo_args};

fn parse<T: Args + FromArgMatches>(args: &[String]) -> T {
    let matches = T::augment_args(
        Command::new("t")
            .no_binary_name(true)
            .args_override_self(true),
    )
    .try_get_matches_from(args)
    .unwrap();
    T::from_arg_matches(&matches).unwrap()
}

fn llm_flags(stub: &LlmStub) -> Vec<String> {
    [
        "--llm",
        "--llm-provider",
        "vllm",
        "--llm-base-url",
        &stub.base_url(),
        "--llm-model",
        "stub-model",
        "--llm-retries",
        "0",
        "--llm-concurrency",
        "4",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn schema_name(request: &StubRequest) -> String {
    request.body["response_format"]["json_schema"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_string()
}

/// Answers like a cooperative model, from the structured-output schema it was sent.
fn answer(request: &StubRequest) -> StubResponse {
    let name = schema_name(request);
    let body = if name == "Question" {
        let sql = request.user_text();
        json!({"question": format!("stub question #{} ({} chars of prompt)", request.seq, sql.len())})
    } else if name == "SqlQueryBatch" {
        json!({"queries": [
            "SELECT name FROM airports ORDER BY name, airport_id",
            "select name  from airports order by name, airport_id;",
            "SELECT name FROM airports LIMIT 5",
            "SELECT random() AS r FROM airports ORDER BY r",
            "DELETE FROM airports",
            "SELECT nope FROM airports",
            "SELECT name FROM airports WHERE altitude > 100000000 ORDER BY name",
            "SELECT count(*) AS n FROM routes r JOIN airlines a ON r.airline_id = a.airline_id WHERE a.active",
            "SELECT country_code, count(*) AS n FROM airports GROUP BY country_code ORDER BY n DESC, country_code",
            "WITH x AS (SELECT airline_id, count(*) AS n FROM routes GROUP BY airline_id) SELECT a.name, x.n FROM x JOIN airlines a USING (airline_id) ORDER BY x.n DESC, a.name"
        ]})
    } else {
        rows_for(request)
    };
    StubResponse::text(body.to_string())
}

/// Rows for a `<table>Rows` request, with one bad foreign key and one repeated row per chunk.
fn rows_for(request: &StubRequest) -> Value {
    let schema = &request.body["response_format"]["json_schema"]["schema"];
    let properties = schema["properties"]["rows"]["items"]["properties"]
        .as_object()
        .cloned()
        .unwrap_or_default();
    let prompt = request.user_text();
    let wanted: usize = prompt
        .split("Generate ")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .and_then(|n| n.parse().ok())
        .unwrap_or(1);
    let mut rows = Vec::new();
    for i in 0..wanted {
        let mut row = serde_json::Map::new();
        for (column, property) in &properties {
            let ty = property["type"]
                .as_str()
                .or_else(|| property["type"][0].as_str())
                .unwrap_or("string");
            let value = if let Some(choices) = property["enum"].as_array() {
                if i == 0 {
                    json!(987654)
                } else {
                    choices[(request.seq + i) % choices.len()].clone()
                }
            } else {
                match ty {
                    "integer" => json!(request.seq * 100 + i),
                    "number" => json!(i as f64 * 1.5),
                    "boolean" => json!(i % 2 == 0),
                    _ if property["description"]
                        .as_str()
                        .is_some_and(|d| d.contains("YYYY-MM-DD")) =>
                    {
                        json!(format!("2024-03-{:02}", 1 + i % 28))
                    }
                    _ => json!(format!("{column}-{}-{i}", request.seq)),
                }
            };
            row.insert(column.clone(), value);
        }
        rows.push(Value::Object(row));
    }
    if rows.len() >= 3 {
        rows[2] = rows[1].clone();
    }
    json!({"rows": rows})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_sandbox_rows_are_deduplicated_and_keys_repaired() {
    let stub = LlmStub::start(|r| answer(r).with_latency(Duration::from_millis(20)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    // The schema stage offline, then the sandbox with the LLM.
    build_all(small_demo_args(&out, &[])).await.unwrap();
    let mut args: Vec<String> = [
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "12",
        "--table-rows",
        "routes=30",
        "--rows-per-call",
        "5",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args.extend(llm_flags(&stub));
    let outcomes =
        sqlrft_builder::run_build(BuildCommand::Sandbox(parse::<BuildSandboxArgs>(&args)))
            .await
            .unwrap();
    let stats = &outcomes[0].stats;
    assert_eq!(stats["generator"], "llm");
    assert!(
        stats["llm"]["repaired_foreign_keys"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stats["llm"]["duplicate_rows"].as_u64().unwrap() > 0,
        "{stats}"
    );
    assert!(
        stub.max_in_flight() > 1,
        "chunks were not requested concurrently"
    );

    let conn = sqlrft_duck::open_read_only(&out.join("sandbox.duckdb")).unwrap();
    assert_eq!(scalar(&conn, "SELECT count(*) FROM routes"), 30);
    assert_eq!(scalar(&conn, "SELECT count(*) FROM airlines"), 12);
    assert!(
        scalar(
            &conn,
            "SELECT count(*) FROM airlines WHERE name LIKE 'name-%'"
        ) > 0,
        "model rows were not used"
    );
    let dangling = scalar(
        &conn,
        "SELECT count(*) FROM routes r WHERE NOT EXISTS (SELECT 1 FROM airlines a WHERE a.airline_id = r.airline_id)",
    );
    assert_eq!(dangling, 0);
    // The JSON schema sent was built from the table: foreign keys are enums of parent keys.
    let request = stub
        .requests()
        .into_iter()
        .find(|r| schema_name(r) == "routesRows")
        .unwrap();
    let props = &request.body["response_format"]["json_schema"]["schema"]["properties"]["rows"]["items"]
        ["properties"];
    assert_eq!(props["airline_id"]["enum"].as_array().unwrap().len(), 12);
    assert!(props.get("route_id").is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_queries_are_validated_deduplicated_and_filtered() {
    let stub = LlmStub::start(answer).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let mut extra = llm_flags(&stub);
    extra.extend(
        [
            "--llm-stages",
            "queries,questions",
            "--queries",
            "10",
            "--queries-per-call",
            "10",
        ]
        .iter()
        .map(|s| s.to_string()),
    );
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    build_all(small_demo_args(&out, &refs)).await.unwrap();

    let queries = read_jsonl(&out.join("queries.jsonl"));
    let sqls: Vec<&str> = queries.iter().map(|q| q["sql"].as_str().unwrap()).collect();
    assert!(
        !sqls
            .iter()
            .any(|s| s.contains("DELETE") || s.contains("nope")),
        "{sqls:?}"
    );
    assert_eq!(
        sqls.iter()
            .filter(|s| s
                .to_lowercase()
                .starts_with("select name from airports order by"))
            .count(),
        1,
        "duplicate kept"
    );
    assert!(queries.iter().all(|q| q["origin"] == "llm"));

    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let truth = &manifest["stages"]["truth"]["stats"];
    assert_eq!(truth["dropped"]["limit-without-order"], 1, "{truth}");
    assert_eq!(truth["dropped"]["volatile-function"], 1, "{truth}");
    assert_eq!(truth["dropped"]["empty"], 1, "{truth}");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("limit-without-order") && report.contains("volatile-function"),
        "{report}"
    );

    // Questions came from the model, in several styles, for every kept query.
    let questions = read_jsonl(&out.join("questions.jsonl"));
    assert_eq!(questions.len() as u64, truth["kept"].as_u64().unwrap());
    assert!(
        questions
            .iter()
            .all(|q| q["question"].as_str().unwrap().starts_with("stub question"))
    );
    let prompt = stub
        .requests()
        .into_iter()
        .find(|r| schema_name(r) == "Question")
        .unwrap()
        .user_text();
    assert!(
        prompt.contains("**SQL Query:**") && prompt.contains("| airport_id |"),
        "{prompt}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn llm_failures_fall_back_to_templates_and_total_failure_is_an_error() {
    let calls = Arc::new(AtomicUsize::new(0));
    let counter = calls.clone();
    let stub = LlmStub::start(move |r| {
        counter.fetch_add(1, Ordering::SeqCst);
        if r.seq % 3 == 0 {
            StubResponse::status(500, "overloaded")
        } else {
            answer(r)
        }
    })
    .await
    .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    let mut extra = llm_flags(&stub);
    extra.extend(["--llm-stages", "questions"].iter().map(|s| s.to_string()));
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    build_all(small_demo_args(&out, &refs)).await.unwrap();
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    let stats = &manifest["stages"]["questions"]["stats"];
    assert!(stats["llm"]["failed"].as_u64().unwrap() > 0, "{stats}");
    assert!(
        stats["llm"]["first_error"]
            .as_str()
            .unwrap()
            .contains("500"),
        "{stats}"
    );
    let questions = read_jsonl(&out.join("questions.jsonl"));
    assert_eq!(
        questions.len() as u64,
        manifest["stages"]["truth"]["stats"]["kept"]
            .as_u64()
            .unwrap()
    );
    assert!(
        questions.iter().any(|q| q["style"] == "template")
            && questions.iter().any(|q| q["style"] != "template")
    );

    // A model that never answers: the stage fails and says why.
    let dead = LlmStub::start(|_| StubResponse::status(503, "down"))
        .await
        .unwrap();
    let out2 = dir.path().join("dead");
    let mut extra = llm_flags(&dead);
    extra.extend(["--llm-stages", "questions"].iter().map(|s| s.to_string()));
    let refs: Vec<&str> = extra.iter().map(String::as_str).collect();
    let err = build_all(small_demo_args(&out2, &refs)).await.unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("answered none") && message.contains("503"),
        "{message}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_llm_question_stage_resumes_without_asking_twice() {
    let stub = LlmStub::start(|r| answer(r).with_latency(Duration::from_millis(10)))
        .await
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    build_all(small_demo_args(&out, &[])).await.unwrap();
    let kept = read_jsonl(&out.join("truth.jsonl"))
        .iter()
        .filter(|t| t["status"] == "kept")
        .count();

    let mut args: Vec<String> = ["--out", out.to_str().unwrap(), "--fail-after", "5"]
        .iter()
        .map(|s| s.to_string())
        .collect();
    args.extend(llm_flags(&stub));
    let err =
        sqlrft_builder::run_build(BuildCommand::Questions(parse::<BuildQuestionsArgs>(&args)))
            .await
            .unwrap_err();
    assert!(format!("{err:#}").contains("interrupted"), "{err:#}");
    let asked_before = stub.request_count();

    args.truncate(2);
    args.extend(llm_flags(&stub));
    sqlrft_builder::run_build(BuildCommand::Questions(parse::<BuildQuestionsArgs>(&args)))
        .await
        .unwrap();
    let questions = read_jsonl(&out.join("questions.jsonl"));
    assert_eq!(questions.len(), kept);
    let ids: std::collections::HashSet<&str> = questions
        .iter()
        .map(|q| q["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), kept);
    // The 5 journaled answers were not asked again; at most the in-flight ones were.
    let asked_after = stub.request_count() - asked_before;
    assert!(
        asked_after <= kept - 5,
        "asked {asked_after} of {kept} again"
    );
    assert!(questions.iter().all(|q| q["style"] != "template"));
}
