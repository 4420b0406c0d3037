use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use serde::Deserialize;
use sqlrft_llm::simulated::{LlmStub, StubResponse};
use sqlrft_llm::{
    ChatRequest, JsonSchemaFormat, LlmClient, LlmConfig, LlmError, Message, Provider,
    TokenLimitField,
};

fn config(stub: &LlmStub) -> LlmConfig {
    let mut c = LlmConfig::new(Provider::Vllm, "stub-model");
    c.base_url = Some(stub.base_url());
    c.backoff_base = Duration::from_millis(5);
    c.backoff_max = Duration::from_secs(5);
    c.timeout = Duration::from_secs(10);
    c
}

fn ask(text: &str) -> ChatRequest {
    ChatRequest::new(vec![Message::system("be brief"), Message::user(text)])
}

/// Answers the first `failures` requests with `failure`, the rest with "ok".
fn fail_first(
    failures: usize,
    failure: StubResponse,
) -> impl Fn(&sqlrft_llm::simulated::StubRequest) -> StubResponse {
    let seen = AtomicUsize::new(0);
    move |_| {
        if seen.fetch_add(1, Ordering::SeqCst) < failures {
            failure.clone()
        } else {
            StubResponse::text("ok")
        }
    }
}

#[tokio::test]
async fn chat_sends_model_messages_and_sampling_fields() {
    let stub = LlmStub::start(|req| StubResponse::text(format!("echo {}", req.user_text())))
        .await
        .unwrap();
    let mut c = config(&stub);
    c.temperature = Some(0.3);
    c.max_tokens = Some(64);
    let client = LlmClient::with_api_key(c, Some("sk-test".into())).unwrap();
    let resp = client
        .chat(ask("hello there").with_seed(7).with_n(1))
        .await
        .unwrap();
    assert_eq!(resp.first_text().unwrap(), "echo hello there");
    let seen = stub.requests();
    assert_eq!(seen.len(), 1);
    let body = &seen[0].body;
    assert_eq!(body["model"], "stub-model");
    assert_eq!(body["messages"][0]["role"], "system");
    assert_eq!(body["messages"][1]["content"], "hello there");
    assert!((body["temperature"].as_f64().unwrap() - 0.3).abs() < 1e-6);
    assert_eq!(body["max_tokens"], 64);
    assert_eq!(body["seed"], 7);
    assert_eq!(seen[0].bearer(), Some("sk-test"));
}

#[tokio::test]
async fn n_samples_come_back_as_choices() {
    let stub = LlmStub::start(|req| {
        StubResponse::texts((0..req.n()).map(|i| format!("sample {i}")).collect())
    })
    .await
    .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let resp = client.chat(ask("q").with_n(3)).await.unwrap();
    assert_eq!(resp.texts(), vec!["sample 0", "sample 1", "sample 2"]);
}

#[derive(Debug, Deserialize, schemars::JsonSchema, PartialEq)]
struct Answer {
    think: String,
    sql: String,
}

#[tokio::test]
async fn structured_output_sends_the_schema_and_deserialises_the_answer() {
    let stub = LlmStub::start(|req| {
        // Answer only when asked for the schema, so the test fails if it is not sent.
        let rf = &req.body["response_format"];
        if rf["type"] == "json_schema"
            && rf["json_schema"]["schema"]["properties"]["sql"].is_object()
        {
            StubResponse::text(r#"{"think": "count rows", "sql": "SELECT count(*) FROM t"}"#)
        } else {
            StubResponse::text("no schema, no JSON")
        }
    })
    .await
    .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let got = client
        .chat_json::<Answer>(
            ask("how many?"),
            JsonSchemaFormat::for_type::<Answer>("answer"),
        )
        .await
        .unwrap();
    assert_eq!(got.value.sql, "SELECT count(*) FROM t");
    assert_eq!(
        stub.requests()[0].body["response_format"]["json_schema"]["name"],
        "answer"
    );
}

#[tokio::test]
async fn malformed_structured_answer_is_a_clear_error() {
    let stub = LlmStub::start(|_| StubResponse::text(r#"{"think": "oops", "sql": "#))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let err = client
        .chat_json::<Answer>(ask("q"), JsonSchemaFormat::for_type::<Answer>("answer"))
        .await
        .unwrap_err();
    assert!(matches!(err, LlmError::MalformedAnswer { .. }), "{err:?}");
    assert!(err.to_string().contains("not the requested JSON"), "{err}");
    assert!(err.to_string().contains("oops"), "{err}");
}

#[tokio::test]
async fn malformed_response_body_is_a_clear_error() {
    let stub = LlmStub::start(|_| StubResponse::raw("{\"choices\": [ {\"mess"))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let err = client.chat(ask("q")).await.unwrap_err();
    assert!(matches!(err, LlmError::Decode { .. }), "{err:?}");
    assert!(err.to_string().contains("not a chat completion"), "{err}");
    assert_eq!(stub.request_count(), 1, "a malformed body is not retried");
}

#[tokio::test]
async fn rate_limit_is_retried_after_the_servers_retry_after() {
    let stub = LlmStub::start(fail_first(1, StubResponse::rate_limited("1")))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let resp = client.chat(ask("q")).await.unwrap();
    assert_eq!(resp.first_text().unwrap(), "ok");
    let seen = stub.requests();
    assert_eq!(seen.len(), 2);
    // Backoff alone would wait at most a few ms (base 5 ms); Retry-After asked for 1 s.
    let gap = seen[1].received - seen[0].received;
    assert!(gap >= Duration::from_secs(1), "retried after {gap:?}");
    assert_eq!(client.usage().retries, 1);
}

#[tokio::test]
async fn retry_after_as_http_date_is_honoured() {
    let at = std::time::SystemTime::now() + Duration::from_secs(3);
    let date = httpdate::fmt_http_date(at);
    // HTTP dates have 1 s resolution: the retry may come once the truncated date has passed.
    let not_before = httpdate::parse_http_date(&date).unwrap();
    let stub = LlmStub::start(fail_first(1, StubResponse::rate_limited(date)))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    client.chat(ask("q")).await.unwrap();
    assert_eq!(stub.requests().len(), 2);
    // Measured against the wall clock, so a slow machine cannot make the wait look short.
    let now = std::time::SystemTime::now();
    assert!(
        now >= not_before,
        "retried {:?} before the server's Retry-After date",
        not_before.duration_since(now).unwrap_or_default()
    );
}

#[tokio::test]
async fn server_errors_are_retried_until_the_budget_is_spent() {
    let stub = LlmStub::start(|_| StubResponse::status(500, "model crashed"))
        .await
        .unwrap();
    let mut c = config(&stub);
    c.retries = 2;
    let client = LlmClient::new(c).unwrap();
    let err = client.chat(ask("q")).await.unwrap_err();
    assert_eq!(stub.request_count(), 3, "1 attempt + 2 retries");
    match &err {
        LlmError::Exhausted { attempts, last } => {
            assert_eq!(*attempts, 3);
            assert!(matches!(**last, LlmError::Status { status: 500, .. }));
        }
        other => panic!("expected Exhausted, got {other:?}"),
    }
    assert!(err.to_string().contains("model crashed"), "{err}");
    let usage = client.usage();
    assert_eq!((usage.retries, usage.failures, usage.requests), (2, 1, 0));
}

#[tokio::test]
async fn transient_server_errors_then_success() {
    let stub = LlmStub::start(fail_first(2, StubResponse::status(503, "busy")))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    assert_eq!(
        client.chat(ask("q")).await.unwrap().first_text().unwrap(),
        "ok"
    );
    assert_eq!(stub.request_count(), 3);
}

#[tokio::test]
async fn client_errors_fail_at_once_with_the_body() {
    let stub = LlmStub::start(|_| StubResponse::status(400, "max_tokens is too large"))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let err = client.chat(ask("q")).await.unwrap_err();
    assert!(
        matches!(err, LlmError::Status { status: 400, .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_tokens is too large"), "{err}");
    assert_eq!(stub.request_count(), 1);
}

#[tokio::test]
async fn timeouts_are_retried() {
    let stub = LlmStub::start(fail_first(
        1,
        StubResponse::text("too late").with_latency(Duration::from_secs(5)),
    ))
    .await
    .unwrap();
    let mut c = config(&stub);
    c.timeout = Duration::from_millis(300);
    let client = LlmClient::new(c).unwrap();
    let resp = client.chat(ask("q")).await.unwrap();
    assert_eq!(resp.first_text().unwrap(), "ok");
    assert_eq!(stub.request_count(), 2);
    assert_eq!(client.usage().retries, 1);
}

#[tokio::test]
async fn timeouts_exhausted_report_a_timeout() {
    let stub = LlmStub::start(|_| StubResponse::text("late").with_latency(Duration::from_secs(5)))
        .await
        .unwrap();
    let mut c = config(&stub);
    c.timeout = Duration::from_millis(200);
    c.retries = 1;
    let err = LlmClient::new(c).unwrap().chat(ask("q")).await.unwrap_err();
    assert!(err.to_string().contains("timed out"), "{err}");
}

#[tokio::test]
async fn connection_refused_is_retried_then_reported() {
    // A port that was free a moment ago and has no listener now.
    let port = {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        l.local_addr().unwrap().port()
    };
    let mut c = LlmConfig::new(Provider::Vllm, "m");
    c.base_url = Some(format!("http://127.0.0.1:{port}/v1"));
    c.retries = 1;
    c.backoff_base = Duration::from_millis(1);
    let client = LlmClient::new(c).unwrap();
    let err = client.chat(ask("q")).await.unwrap_err();
    match err {
        LlmError::Exhausted { attempts: 2, last } => {
            assert!(matches!(*last, LlmError::Connection { .. }), "{last:?}")
        }
        other => panic!("expected 2 failed attempts, got {other:?}"),
    }
}

#[tokio::test]
async fn concurrency_never_exceeds_the_limit() {
    let stub = LlmStub::start(|_| StubResponse::text("ok").with_latency(Duration::from_millis(40)))
        .await
        .unwrap();
    let mut c = config(&stub);
    c.max_concurrency = 4;
    let client = LlmClient::new(c).unwrap();
    let calls = (0..32).map(|i| {
        let client = client.clone();
        async move { client.chat(ask(&format!("q{i}"))).await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    assert_eq!(stub.request_count(), 32);
    let max = stub.max_in_flight();
    assert!(max <= 4, "saw {max} requests in flight with a limit of 4");
    assert!(max > 1, "calls did not overlap at all ({max})");
}

#[tokio::test]
async fn usage_is_summed_across_concurrent_calls_and_priced() {
    let stub = LlmStub::start(|req| {
        StubResponse::text("a b c").with_usage(req.user_text().len() as u64, 3)
    })
    .await
    .unwrap();
    let mut c = config(&stub);
    c.price_input_per_million = Some(1.0);
    c.price_output_per_million = Some(4.0);
    let client = LlmClient::new(c).unwrap();
    let prompts: Vec<String> = (0..25).map(|i| "x".repeat(i * 3 + 1)).collect();
    let calls = prompts.iter().map(|p| {
        let client = client.clone();
        let p = p.clone();
        async move { client.chat(ask(&p)).await }
    });
    for r in futures::future::join_all(calls).await {
        r.unwrap();
    }
    let expected_prompt: u64 = prompts.iter().map(|p| p.len() as u64).sum();
    let usage = client.usage();
    assert_eq!(usage.requests, 25);
    assert_eq!(usage.prompt_tokens, expected_prompt);
    assert_eq!(usage.completion_tokens, 25 * 3);
    let expected_cost = (expected_prompt as f64 * 1.0 + 75.0 * 4.0) / 1e6;
    assert!((usage.cost_usd.unwrap() - expected_cost).abs() < 1e-12);
}

#[tokio::test]
async fn clones_share_the_usage_meter() {
    let stub = LlmStub::start(|_| StubResponse::text("one two"))
        .await
        .unwrap();
    let client = LlmClient::new(config(&stub)).unwrap();
    let other = client.clone();
    other.chat(ask("a b c")).await.unwrap();
    let usage = client.usage();
    assert_eq!(usage.requests, 1);
    // The stub counts words: "be brief" + "a b c" = 5 prompt words, "one two" = 2.
    assert_eq!((usage.prompt_tokens, usage.completion_tokens), (5, 2));
}

#[test]
fn config_loads_from_figment_toml() {
    use figment::Figment;
    use figment::providers::{Format, Toml};
    let c: LlmConfig = Figment::new()
        .merge(Toml::string(
            r#"
            provider = "groq"
            model = "llama-3.3-70b-versatile"
            timeout = "45s"
            retries = 5
            price_input_per_million = 0.59
            "#,
        ))
        .extract()
        .unwrap();
    assert_eq!(c.provider, Provider::Groq);
    assert_eq!(c.timeout, Duration::from_secs(45));
    assert_eq!(c.retries, 5);
    assert_eq!(
        c.resolved_base_url(|_| None),
        "https://api.groq.com/openai/v1"
    );
    assert_eq!(c.max_concurrency, 16);
}

/// An environment with only these variables.
fn env_of(vars: &[(&str, String)]) -> impl Fn(&str) -> Option<String> + use<> {
    let vars: Vec<(String, String)> = vars
        .iter()
        .map(|(k, v)| (k.to_string(), v.clone()))
        .collect();
    move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
}

#[tokio::test]
async fn openai_goes_to_openai_base_url_with_max_completion_tokens() {
    let stub = LlmStub::start(|_| StubResponse::text("ok")).await.unwrap();
    let mut c = LlmConfig::new(Provider::OpenAi, "o3-mini");
    c.max_tokens = Some(77);
    let env = env_of(&[
        ("OPENAI_BASE_URL", stub.base_url()),
        ("OPENAI_API_KEY", "sk-test".to_string()),
    ]);
    let client = LlmClient::with_env(c, env).unwrap();
    client.chat(ask("hi")).await.unwrap();
    let requests = stub.requests();
    assert_eq!(requests.len(), 1, "the request went to OPENAI_BASE_URL");
    let body = &requests[0].body;
    assert_eq!(body["max_completion_tokens"], 77, "{body}");
    assert!(body.get("max_tokens").is_none(), "{body}");
    assert_eq!(requests[0].bearer(), Some("sk-test"));
}

#[tokio::test]
async fn other_providers_send_max_tokens_unless_told_otherwise() {
    let stub = LlmStub::start(|_| StubResponse::text("ok")).await.unwrap();
    let mut c = config(&stub);
    c.max_tokens = Some(55);
    LlmClient::new(c.clone())
        .unwrap()
        .chat(ask("a"))
        .await
        .unwrap();
    c.token_limit_field = Some(TokenLimitField::MaxCompletionTokens);
    LlmClient::new(c).unwrap().chat(ask("b")).await.unwrap();
    let requests = stub.requests();
    assert_eq!(requests[0].body["max_tokens"], 55);
    assert!(requests[0].body.get("max_completion_tokens").is_none());
    assert_eq!(requests[1].body["max_completion_tokens"], 55);
    assert!(requests[1].body.get("max_tokens").is_none());
}
