//! Models behind an OpenAI-compatible stub with scripted answers: right, wrong, malformed,
//! failing SQL, slow, 429 and 500.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlrft_eval::report::{Status, summarize};
use sqlrft_eval::stats::{Z95, mcnemar_exact, wilson};
use sqlrft_eval::{Outcome, ScoreWith};
use sqlrft_llm::simulated::{LlmStub, StubRequest, StubResponse};

use crate::support::{Fixture, answer, closed_port, endpoint, fixture, plan, reward_service};

/// What the "mixed" model does with item `i`.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Script {
    Wrong,
    Malformed,
    BadSql,
    SlowRight,
}

fn mixed_script(i: usize) -> Script {
    [
        Script::Wrong,
        Script::Malformed,
        Script::BadSql,
        Script::SlowRight,
    ][i % 4]
}

/// oracle: always right; mixed: by `mixed_script`; flaky: 429, then 500, then right.
fn scripted_stub(fixture: &'static Fixture) -> impl Fn(&StubRequest) -> StubResponse + Send + Sync {
    let attempts: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    move |request| {
        let question = request.user_text();
        let Some(index) = fixture.items.iter().position(|i| i.question == question) else {
            return StubResponse::status(400, format!("unknown question {question}"));
        };
        let gold = &fixture.items[index].gold_sql;
        match request.body["model"].as_str().unwrap_or_default() {
            "oracle" => StubResponse::text(answer(gold)),
            "mixed" => match mixed_script(index) {
                Script::Wrong => StubResponse::text(answer("SELECT 'no such answer' AS wrong")),
                Script::Malformed => StubResponse::text("<think>I would count the rows and then"),
                Script::BadSql => StubResponse::text(answer("SELECT nope FROM no_such_table")),
                Script::SlowRight => {
                    StubResponse::text(answer(gold)).with_latency(Duration::from_millis(150))
                }
            },
            "flaky" => {
                let mut attempts = attempts.lock().unwrap();
                let n = attempts.entry(question).or_default();
                *n += 1;
                match *n {
                    // Item 0 asks for a 1 s pause, which the client must honour.
                    1 => StubResponse::rate_limited(if index == 0 { "1" } else { "0" }),
                    2 => StubResponse::status(500, "internal error"),
                    _ => StubResponse::text(answer(gold)),
                }
            }
            other => StubResponse::status(404, format!("no model {other}")),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn scripted_models_get_exact_accuracies_intervals_and_mcnemar_counts() {
    let fixture = fixture();
    let stub = LlmStub::start(scripted_stub(fixture)).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let url = stub.base_url();
    let plan = plan(
        out.path(),
        vec![
            endpoint("oracle", "oracle", &url),
            endpoint("mixed", "mixed", &url),
            endpoint("flaky", "flaky", &url),
        ],
    );
    let run = sqlrft_eval::run(&plan).await.unwrap();
    let summary = summarize(&run, None).unwrap();
    let n = fixture.items.len() as u64;
    let count = |s: Script| {
        (0..fixture.items.len())
            .filter(|&i| mixed_script(i) == s)
            .count() as u64
    };

    let oracle = &summary.models[0];
    let mixed = &summary.models[1];
    let flaky = &summary.models[2];
    assert_eq!(oracle.accuracy.unwrap().correct, n);
    assert_eq!(
        flaky.accuracy.unwrap().correct,
        n,
        "retries turn 429 and 500 into answers"
    );
    let acc = mixed.accuracy.unwrap();
    assert_eq!((acc.correct, acc.total), (count(Script::SlowRight), n));
    assert_eq!((acc.ci_low, acc.ci_high), wilson(acc.correct, n, Z95));
    assert_eq!(mixed.outcomes[&Outcome::WrongResult], count(Script::Wrong));
    assert_eq!(mixed.outcomes[&Outcome::NoSql], count(Script::Malformed));
    assert_eq!(mixed.outcomes[&Outcome::SqlError], count(Script::BadSql));
    assert_eq!(
        mixed.format_valid_rate.unwrap(),
        (n - count(Script::Malformed)) as f64 / n as f64
    );
    assert_eq!(mixed.lift_pp.unwrap(), 100.0 * (acc.accuracy - 1.0));
    assert!(oracle.status == Status::Complete && mixed.status == Status::Complete);
    assert_eq!(flaky.retries, Some(2 * n), "one 429 and one 500 per item");

    let pair = &summary.pairs[0];
    assert_eq!((pair.a.as_str(), pair.b.as_str()), ("oracle", "mixed"));
    assert_eq!(pair.items, n);
    assert_eq!(pair.both_right, count(Script::SlowRight));
    assert_eq!(pair.a_only, n - count(Script::SlowRight));
    assert_eq!((pair.b_only, pair.both_wrong), (0, 0));
    assert_eq!(pair.p_value, mcnemar_exact(pair.a_only, 0));
    assert_eq!(
        summary.pairs[1].a_only + summary.pairs[1].b_only,
        0,
        "oracle vs flaky agree"
    );
    assert_eq!(
        summary.disagreements.len() as u64,
        n - count(Script::SlowRight)
    );

    // Each oracle and mixed item was asked once; the flaky one three times, item 0's retry
    // after the 1 s its 429 asked for.
    let requests = stub.requests();
    let mut asked: HashMap<(String, String), Vec<std::time::Instant>> = HashMap::new();
    for r in &requests {
        asked
            .entry((r.body["model"].as_str().unwrap().to_string(), r.user_text()))
            .or_default()
            .push(r.received);
    }
    for ((model, _), times) in &asked {
        let expected = if model == "flaky" { 3 } else { 1 };
        assert_eq!(times.len(), expected, "{model}");
    }
    let first = &asked[&("flaky".to_string(), fixture.items[0].question.clone())];
    assert!(
        first[1] - first[0] >= Duration::from_millis(950),
        "{:?}",
        first[1] - first[0]
    );

    // The report files exist and open with the tutorial's table.
    let files = sqlrft_eval::report::write(out.path(), &summary).unwrap();
    let md = std::fs::read_to_string(&files.markdown).unwrap();
    let table = md.lines().find(|l| l.starts_with("| mixed |")).unwrap();
    assert!(
        table.contains(&format!("{}/{}", acc.correct, n)) && table.contains("pp"),
        "{table}"
    );
    let html = std::fs::read_to_string(&files.html).unwrap();
    assert!(html.contains("data:image/png;base64,"));
    assert!(!html.contains("<script") && !html.contains("<link") && !html.contains("src=\"http"));
    let png = std::fs::read(&files.png).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&files.json).unwrap()).unwrap();
    assert_eq!(json["models"][1]["accuracy"]["correct"], acc.correct);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_endpoint_is_reported_as_down_not_as_zero_accuracy() {
    let fixture = fixture();
    let stub = LlmStub::start(scripted_stub(fixture)).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let down_url = format!("http://127.0.0.1:{}/v1", closed_port());
    let mut plan = plan(
        out.path(),
        vec![
            endpoint("oracle", "oracle", &stub.base_url()),
            endpoint("down", "down", &down_url),
        ],
    );
    plan.endpoint.retries = 1;
    let run = sqlrft_eval::run(&plan).await.unwrap();
    let summary = summarize(&run, None).unwrap();
    let down = &summary.models[1];
    assert_eq!(down.status, Status::Unreachable);
    assert!(down.accuracy.is_none() && down.lift_pp.is_none());
    assert_eq!(down.not_answered, fixture.items.len());
    assert!(
        down.error.as_deref().unwrap().contains("could not reach"),
        "{down:?}"
    );
    assert_eq!(summary.pairs[0].items, 0);
    let lines = sqlrft_eval::three_lines(&summary);
    let down_line = lines.lines().nth(1).unwrap();
    assert!(
        down_line.contains("unreachable") && !down_line.contains('%'),
        "{lines}"
    );
    let files = sqlrft_eval::report::write(out.path(), &summary).unwrap();
    let md = std::fs::read_to_string(files.markdown).unwrap();
    assert!(md.contains("down could not be reached"), "{md}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_reward_service_scores_like_the_engine_in_process() {
    let fixture = fixture();
    let stub = LlmStub::start(scripted_stub(fixture)).await.unwrap();
    let service = reward_service().await;
    let models = vec![endpoint("mixed", "mixed", &stub.base_url())];
    let (a, b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let in_process = sqlrft_eval::run(&plan(a.path(), models.clone()))
        .await
        .unwrap();
    let mut over_http = plan(b.path(), models);
    over_http.score_with = ScoreWith::Service {
        url: service.base_url(),
        token: None,
    };
    let over_http = sqlrft_eval::run(&over_http).await.unwrap();
    let outcomes = |run: &sqlrft_eval::EvalRun| {
        run.models[0]
            .records
            .iter()
            .map(|(id, r)| (id.clone(), r.samples[0].outcome, r.samples[0].score))
            .collect::<Vec<_>>()
    };
    assert_eq!(outcomes(&in_process), outcomes(&over_http));
    assert!(outcomes(&over_http).iter().any(|o| o.1 == Outcome::Correct));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stratified_limit_asks_only_the_subset() {
    let fixture = fixture();
    let stub = LlmStub::start(scripted_stub(fixture)).await.unwrap();
    let out = tempfile::tempdir().unwrap();
    let mut plan = plan(
        out.path(),
        vec![endpoint("oracle", "oracle", &stub.base_url())],
    );
    plan.selection = sqlrft_eval::Selection {
        limit: Some(5),
        stratify: true,
        seed: 3,
    };
    let run = sqlrft_eval::run(&plan).await.unwrap();
    assert_eq!(run.items.len(), 5);
    assert_eq!(stub.request_count(), 5);
    assert_eq!(run.models[0].records.len(), 5);
}
