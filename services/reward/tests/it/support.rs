//! The reward library's fixture database, and the service on it as a client sees it.

use serde_json::{Value, json};
use sqlrft_reward_service::{RewardConfig, RunningServer, start};

#[path = "../../../../crates/reward/tests/it/fixture.rs"]
mod fixture;
pub use fixture::{Fixture, fixture, mcp_server};

pub fn embedded_config(fixture: &Fixture) -> RewardConfig {
    RewardConfig {
        db: Some(fixture.db.clone()),
        port: 0,
        ..RewardConfig::default()
    }
}

pub async fn embedded_server(fixture: &Fixture) -> RunningServer {
    start(embedded_config(fixture))
        .await
        .expect("reward service starts")
}

/// The service on the fixture, answering only callers that send `Authorization: Bearer TOKEN`.
pub async fn guarded_server(fixture: &Fixture, token: &str) -> RunningServer {
    start(RewardConfig {
        token: Some(token.into()),
        ..embedded_config(fixture)
    })
    .await
    .expect("reward service starts")
}

pub fn client() -> reqwest::Client {
    reqwest::Client::new()
}

/// A chat whose last assistant message is `completion`.
pub fn chat(completion: &str) -> Value {
    json!([{"role": "system", "content": "Write DuckDB SQL."},
           {"role": "user", "content": "question"},
           {"role": "assistant", "content": completion}])
}

pub async fn post(server: &RunningServer, path: &str, body: &Value) -> (u16, Value) {
    let response = client()
        .post(format!("{}{path}", server.base_url()))
        .json(body)
        .send()
        .await
        .expect("request sent");
    let status = response.status().as_u16();
    let text = response.text().await.expect("body");
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}
