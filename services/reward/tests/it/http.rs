//! The HTTP API as a client (Fireworks, the trainer) uses it.

use serde_json::{Value, json};
use sqlrft_reward_service::{RewardConfig, openapi, start};

use crate::support::{
    chat, client, embedded_config, embedded_server, fixture, guarded_server, mcp_server, post,
};

fn evaluate_body(completion: &str, ground_truth: Value) -> Value {
    json!({"messages": chat(completion), "ground_truth": ground_truth})
}

/// Per-country city counts, written from the fixture's INSERTs.
fn cities_per_country() -> Value {
    json!([{"country": "Norway", "n": 2}, {"country": "Kenya", "n": 2}, {"country": "Canada", "n": 2}])
}

#[tokio::test]
async fn a_right_answer_scores_one_against_tutorial_ground_truth() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let completion = "<think>group by country</think>\n<sql>SELECT COUNT(*) AS cities, country FROM cities GROUP BY country</sql>";
    let (status, answer) = post(
        &server,
        "/v1/evaluate",
        &evaluate_body(completion, cities_per_country()),
    )
    .await;
    assert_eq!(status, 200, "{answer}");
    assert_eq!(answer["score"], json!(1.0), "{answer}");
    assert_eq!(answer["is_score_valid"], json!(true));
    assert_eq!(answer["metrics"]["format_strict"]["score"], json!(1.0));
    assert_eq!(answer["metrics"]["result_match"]["score"], json!(1.0));
    let reason = answer["reason"].as_str().unwrap();
    assert!(
        reason.contains("<sql>"),
        "the reason says what was extracted: {reason}"
    );
}

#[tokio::test]
async fn a_wrong_answer_scores_zero_and_says_why() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let (_, answer) = post(
        &server,
        "/v1/evaluate",
        &evaluate_body(
            "SELECT country, COUNT(*) FROM cities WHERE capital GROUP BY country",
            cities_per_country(),
        ),
    )
    .await;
    assert_eq!(answer["score"], json!(0.0), "{answer}");
    assert_eq!(answer["is_score_valid"], json!(true));
    assert!(
        answer["reason"].as_str().unwrap().contains("wrong result"),
        "{answer}"
    );
}

#[tokio::test]
async fn typed_ground_truth_is_compared_by_type() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let cases = [
        // HUGEINT beyond f64 precision: exact.
        (
            "SELECT n FROM big WHERE label = 'max'",
            json!({"columns": ["n"], "types": ["HUGEINT"], "rows": [["170141183460469231731687303715884105727"]]}),
            1.0,
        ),
        (
            "SELECT n - 1 FROM big WHERE label = 'max'",
            json!({"columns": ["n"], "types": ["HUGEINT"], "rows": [["170141183460469231731687303715884105727"]]}),
            0.0,
        ),
        // The same ground truth as `sqlrft build` writes it now: the rows as one JSON string.
        (
            "SELECT n FROM big WHERE label = 'max'",
            json!({"columns": ["n"], "types": ["HUGEINT"], "ordered": false, "sql": "SELECT n FROM big WHERE label = 'max'",
                   "rows_json": "[[\"170141183460469231731687303715884105727\"]]"}),
            1.0,
        ),
        (
            "SELECT n - 1 FROM big WHERE label = 'max'",
            json!({"columns": ["n"], "types": ["HUGEINT"], "ordered": false, "sql": "SELECT n FROM big WHERE label = 'max'",
                   "rows_json": "[[\"170141183460469231731687303715884105727\"]]"}),
            0.0,
        ),
        // DECIMAL vs the tutorial's float.
        (
            "SELECT area FROM cities WHERE id = 1",
            json!([{"area": 454.0}]),
            1.0,
        ),
        // A DATE vs the tutorial's pandas timestamp text.
        (
            "SELECT founded FROM cities WHERE id = 3",
            json!([{"founded": "1899-05-30 00:00:00"}]),
            1.0,
        ),
        // NULL is not "None", and NULL matches null.
        (
            "SELECT mayor FROM cities WHERE id = 2",
            json!([{"mayor": "None"}]),
            0.0,
        ),
        (
            "SELECT mayor FROM cities WHERE id = 2",
            json!([{"mayor": null}]),
            1.0,
        ),
        // 1 is not "1".
        (
            "SELECT CAST(id AS VARCHAR) FROM cities WHERE id = 1",
            json!([{"id": 1}]),
            0.0,
        ),
        // AVG as DOUBLE against a rounded float: within tolerance.
        (
            "SELECT AVG(density) FROM cities WHERE country = 'Norway'",
            json!([{"avg": 1091.8}]),
            1.0,
        ),
    ];
    for (sql, truth, expected) in cases {
        let (status, answer) =
            post(&server, "/v1/evaluate", &evaluate_body(sql, truth.clone())).await;
        assert_eq!(status, 200, "{answer}");
        assert_eq!(
            answer["score"],
            json!(expected),
            "{sql} vs {truth}: {answer}"
        );
    }
}

#[tokio::test]
async fn gold_sql_alone_is_executed_and_decides_row_order() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let gold = "SELECT name FROM cities WHERE capital ORDER BY population DESC";
    let body = |completion: &str| json!({"messages": chat(completion), "gold_sql": gold});
    let (_, same) = post(
        &server,
        "/v1/evaluate",
        &body("SELECT name FROM cities WHERE capital ORDER BY population DESC"),
    )
    .await;
    assert_eq!(same["score"], json!(1.0), "{same}");
    let (_, unordered) = post(
        &server,
        "/v1/evaluate",
        &body("SELECT name FROM cities WHERE capital ORDER BY name"),
    )
    .await;
    assert_eq!(
        unordered["score"],
        json!(0.0),
        "the gold query orders its rows: {unordered}"
    );
    assert!(
        unordered["reason"].as_str().unwrap().contains("order"),
        "{unordered}"
    );
    // Without ORDER BY in the gold query, any order is right.
    let loose = json!({"messages": chat("SELECT name FROM cities WHERE capital ORDER BY name"),
                       "gold_sql": "SELECT name FROM cities WHERE capital"});
    let (_, answer) = post(&server, "/v1/evaluate", &loose).await;
    assert_eq!(answer["score"], json!(1.0), "{answer}");
    // ORDER BY only inside a subquery does not order the outer result.
    let inner = json!({"messages": chat("SELECT name FROM cities WHERE capital ORDER BY name DESC"),
                       "gold_sql": "SELECT name FROM (SELECT name FROM cities WHERE capital ORDER BY name)"});
    let (_, answer) = post(&server, "/v1/evaluate", &inner).await;
    assert_eq!(answer["score"], json!(1.0), "{answer}");
}

#[tokio::test]
async fn tutorial_rows_are_unordered_unless_gold_sql_or_ordered_says_so() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let rows = json!([{"name": "Nairobi"}, {"name": "Ottawa"}, {"name": "Oslo"}]);
    let reversed = "SELECT name FROM cities WHERE capital ORDER BY population ASC";
    let (_, plain) = post(
        &server,
        "/v1/evaluate",
        &evaluate_body(reversed, rows.clone()),
    )
    .await;
    assert_eq!(plain["score"], json!(1.0), "{plain}");
    let mut with_gold = evaluate_body(reversed, rows.clone());
    with_gold["gold_sql"] = json!("SELECT name FROM cities WHERE capital ORDER BY population DESC");
    let (_, ordered) = post(&server, "/v1/evaluate", &with_gold).await;
    assert_eq!(ordered["score"], json!(0.0), "{ordered}");
    let mut flagged = evaluate_body(reversed, rows);
    flagged["ordered"] = json!(true);
    let (_, ordered) = post(&server, "/v1/evaluate", &flagged).await;
    assert_eq!(ordered["score"], json!(0.0), "{ordered}");
}

#[tokio::test]
async fn partial_credit_and_format_gate_are_request_options() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let truth = json!([{"name": "Oslo"}, {"name": "Bergen"}]);
    let mut partial = evaluate_body("SELECT name FROM cities WHERE id IN (1, 3)", truth.clone());
    partial["partial"] = json!(true);
    let (_, answer) = post(&server, "/v1/evaluate", &partial).await;
    // One of two cells shared: F1 = 0.5, score 0.1 + 0.3 * 0.5.
    let score = answer["score"].as_f64().unwrap();
    assert!((score - 0.25).abs() < 1e-9, "{answer}");
    let mut gated = evaluate_body("SELECT name FROM cities WHERE country = 'Norway'", truth);
    gated["format_gate"] = json!(true);
    let (_, answer) = post(&server, "/v1/evaluate", &gated).await;
    assert_eq!(answer["score"], json!(0.0), "{answer}");
    assert_eq!(answer["metrics"]["result_match"]["score"], json!(1.0));
}

#[tokio::test]
async fn errors_and_non_select_statements_score_zero_but_stay_valid() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    for (sql, needle) in [
        ("SELEC name FROM cities", "Parser Error"),
        ("SELECT nope FROM cities", "Binder Error"),
        ("DROP TABLE cities", "Refused"),
        ("CREATE TABLE t (a INTEGER)", "Refused"),
        ("SELECT 1; SELECT 2", "Refused"),
    ] {
        let (_, answer) = post(
            &server,
            "/v1/evaluate",
            &evaluate_body(sql, json!([{"x": 1}])),
        )
        .await;
        assert_eq!(answer["score"], json!(0.0), "{sql}: {answer}");
        assert_eq!(answer["is_score_valid"], json!(true), "{sql}: {answer}");
        assert!(
            answer["reason"].as_str().unwrap().contains(needle),
            "{sql}: {answer}"
        );
    }
    // An empty completion: nothing to run.
    let (_, answer) = post(
        &server,
        "/v1/evaluate",
        &evaluate_body("", json!([{"x": 1}])),
    )
    .await;
    assert_eq!(answer["score"], json!(0.0));
    assert_eq!(answer["metrics"]["sql_extracted"]["score"], json!(0.0));
}

#[tokio::test]
async fn a_failing_gold_query_makes_the_score_invalid() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let body =
        json!({"messages": chat("SELECT 1"), "gold_sql": "SELECT missing_column FROM cities"});
    let (status, answer) = post(&server, "/v1/evaluate", &body).await;
    assert_eq!(status, 200);
    assert_eq!(answer["is_score_valid"], json!(false), "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("gold SQL"),
        "{answer}"
    );
}

#[tokio::test]
async fn an_unreachable_mcp_server_makes_the_score_invalid() {
    // A port that was free a moment ago: nothing listens there.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let server = start(RewardConfig {
        mcp_url: Some(format!("http://127.0.0.1:{port}/mcp")),
        port: 0,
        eval_timeout_secs: 5.0,
        ..RewardConfig::default()
    })
    .await
    .unwrap();
    let (status, answer) = post(
        &server,
        "/v1/evaluate",
        &evaluate_body("SELECT 1 AS x", json!([{"x": 1}])),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(answer["is_score_valid"], json!(false), "{answer}");
    assert!(
        answer["reason"].as_str().unwrap().contains("MCP"),
        "{answer}"
    );
    let ready = client()
        .get(format!("{}/readyz", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 503);
}

#[tokio::test]
async fn a_grpo_group_is_scored_in_one_call() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let completions = [
        "SELECT country, COUNT(*) FROM cities GROUP BY country",
        "<think>x</think><sql>SELECT country, COUNT(*) AS n FROM cities GROUP BY ALL</sql>",
        "SELECT country FROM cities",
        "SELEC broken",
        "SELECT country, COUNT(*) FROM cities GROUP BY country",
        "",
        "DELETE FROM cities",
        "```sql\nSELECT country, count(id) FROM cities GROUP BY 1\n```",
    ];
    let expected = [1.0, 1.0, 0.0, 0.0, 1.0, 0.0, 0.0, 1.0];
    // The trainer's shape: completions, the prompt messages, one ground truth.
    let body = json!({"completions": completions, "ground_truth": cities_per_country(),
                      "messages": [{"role": "user", "content": "How many cities per country?"}]});
    let (status, answer) = post(&server, "/v1/evaluate/batch", &body).await;
    assert_eq!(status, 200, "{answer}");
    let results = answer["results"].as_array().unwrap();
    assert_eq!(results.len(), completions.len());
    for ((result, expected), completion) in results.iter().zip(expected).zip(completions) {
        assert_eq!(result["score"], json!(expected), "{completion}: {result}");
        assert_eq!(result["is_score_valid"], json!(true));
    }
    // One ground truth each, chats instead of strings.
    let body = json!({
        "messages_list": [chat("SELECT COUNT(*) FROM cities"), chat("SELECT COUNT(*) FROM big")],
        "ground_truths": [[{"n": 6}], [{"n": 6}]]
    });
    let (_, answer) = post(&server, "/v1/evaluate/batch", &body).await;
    let scores: Vec<f64> = answer["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["score"].as_f64().unwrap())
        .collect();
    assert_eq!(scores, vec![1.0, 0.0]);
}

#[tokio::test]
async fn bad_requests_get_400_naming_the_field() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let cases = [
        (json!({"ground_truth": []}), "messages"),
        (
            json!({"messages": chat("SELECT 1"), "ground_truth": 5}),
            "ground_truth",
        ),
        (
            json!({"messages": chat("SELECT 1"), "ground_truth": [], "partial": "yes"}),
            "partial",
        ),
        (
            json!({"messages": chat("SELECT 1"), "ground_truth": [], "mode": "fuzzy"}),
            "mode",
        ),
        (json!({"messages": chat("SELECT 1")}), "ground_truth"),
    ];
    for (body, field) in cases {
        let (status, answer) = post(&server, "/v1/evaluate", &body).await;
        assert_eq!(status, 400, "{body}");
        let message = answer["error"].as_str().unwrap();
        assert!(message.contains(&format!("`{field}`")), "{body}: {message}");
    }
    let (status, answer) = post(
        &server,
        "/v1/evaluate/batch",
        &json!({"completions": "SELECT 1", "ground_truth": []}),
    )
    .await;
    assert_eq!(status, 400);
    assert!(
        answer["error"].as_str().unwrap().contains("`completions`"),
        "{answer}"
    );
    let raw = client()
        .post(format!("{}/v1/evaluate", server.base_url()))
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    assert_eq!(raw.status().as_u16(), 400);
    assert!(raw.text().await.unwrap().contains("not valid JSON"));
}

#[tokio::test]
async fn bearer_auth_guards_the_api_but_not_health() {
    let fx = fixture();
    let server = guarded_server(&fx, "s3cret").await;
    let url = format!("{}/v1/evaluate", server.base_url());
    let body = evaluate_body("SELECT 1 AS x", json!([{"x": 1}]));
    let denied = client().post(&url).json(&body).send().await.unwrap();
    assert_eq!(denied.status().as_u16(), 401);
    assert!(
        denied.headers()["www-authenticate"]
            .to_str()
            .unwrap()
            .starts_with("Bearer")
    );
    let wrong = client()
        .post(&url)
        .bearer_auth("nope")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(wrong.status().as_u16(), 401);
    let allowed = client()
        .post(&url)
        .bearer_auth("s3cret")
        .json(&body)
        .send()
        .await
        .unwrap();
    assert_eq!(allowed.status().as_u16(), 200);
    let health = client()
        .get(format!("{}/healthz", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status().as_u16(), 200);
}

#[tokio::test]
async fn bodies_over_the_limit_get_413() {
    let fx = fixture();
    let server = start(RewardConfig {
        max_body_bytes: 1024,
        ..embedded_config(&fx)
    })
    .await
    .unwrap();
    let big = evaluate_body(&format!("SELECT '{}'", "x".repeat(4096)), json!([{"x": 1}]));
    let (status, _) = post(&server, "/v1/evaluate", &big).await;
    assert_eq!(status, 413);
}

#[tokio::test]
async fn every_documented_route_answers() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let doc: Value = client()
        .get(format!("{}/openapi.json", server.base_url()))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(doc["openapi"], json!("3.1.0"));
    for (method, path) in openapi::ROUTES {
        assert!(
            doc["paths"][*path][*method].is_object(),
            "{method} {path} documented"
        );
        let url = format!("{}{path}", server.base_url());
        let response = match *method {
            "get" => client().get(&url).send().await.unwrap(),
            _ => client().post(&url).json(&json!({})).send().await.unwrap(),
        };
        let status = response.status().as_u16();
        assert!(
            status != 404 && status != 405,
            "{method} {path} answered {status}"
        );
    }
    let ready = client()
        .get(format!("{}/readyz", server.base_url()))
        .send()
        .await
        .unwrap();
    assert_eq!(ready.status().as_u16(), 200);
}

#[tokio::test]
async fn shutdown_drains_and_stops_listening() {
    let fx = fixture();
    let server = embedded_server(&fx).await;
    let url = format!("{}/healthz", server.base_url());
    assert!(
        client()
            .get(&url)
            .send()
            .await
            .unwrap()
            .status()
            .is_success()
    );
    server.shutdown().await.unwrap();
    assert!(client().get(&url).send().await.is_err());
}

#[tokio::test]
async fn the_service_scores_the_same_through_mcp_as_embedded() {
    let fx = fixture();
    let mcp = mcp_server(&fx).await;
    let local = embedded_server(&fx).await;
    let remote = start(RewardConfig {
        mcp_url: Some(sqlrft_mcp::mcp_url(&mcp)),
        port: 0,
        ..RewardConfig::default()
    })
    .await
    .unwrap();
    let truth = json!([{"country": "Norway", "n": 2}, {"country": "Kenya", "n": 2}, {"country": "Canada", "n": 2}]);
    for completion in [
        "SELECT country, COUNT(*) FROM cities GROUP BY country",
        "SELECT country, COUNT(*) FROM cities WHERE capital GROUP BY country",
        "SELEC nonsense",
        "DROP TABLE cities",
    ] {
        let body = json!({"messages": chat(completion), "ground_truth": truth, "partial": true});
        let (_, a) = post(&local, "/v1/evaluate", &body).await;
        let (_, b) = post(&remote, "/v1/evaluate", &body).await;
        assert_eq!(a["score"], b["score"], "{completion}: {a} vs {b}");
        assert_eq!(a["metrics"], b["metrics"], "{completion}");
        assert_eq!(b["is_score_valid"], json!(true), "{b}");
    }
    // gold_sql through MCP as well.
    let body = json!({"messages": chat("SELECT name FROM cities ORDER BY id"), "gold_sql": "SELECT name FROM cities ORDER BY id"});
    let (_, answer) = post(&remote, "/v1/evaluate", &body).await;
    assert_eq!(answer["score"], json!(1.0), "{answer}");
}
