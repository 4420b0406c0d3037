//! An OpenAI-compatible endpoint that answers a test set's questions with their gold SQL for a
//! chosen share of them (by a hash of the question) and wrong SQL otherwise: for trying
//! `sqlrft eval` without an API key or a GPU.
//!
//! ```text
//! cargo run -p sqlrft-eval --example scripted_endpoint -- data/test.jsonl base=42 rft=58
//! sqlrft eval --dataset data/test.jsonl --db data/sandbox.duckdb \
//!   --model base=vllm:base@http://127.0.0.1:PORT/v1 --model rft=vllm:rft@http://127.0.0.1:PORT/v1
//! ```

use std::collections::HashMap;

use sha2::{Digest, Sha256};
use sqlrft_llm::simulated::{LlmStub, StubResponse};

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let dataset = args
        .next()
        .ok_or_else(|| anyhow::anyhow!("usage: scripted_endpoint TEST.jsonl [MODEL=PERCENT]..."))?;
    let skills: HashMap<String, u64> = args
        .map(|a| {
            let (model, pct) = a
                .split_once('=')
                .ok_or_else(|| anyhow::anyhow!("`{a}` is not MODEL=PERCENT"))?;
            Ok((model.to_string(), pct.parse()?))
        })
        .collect::<anyhow::Result<_>>()?;
    let mut gold = HashMap::new();
    for line in std::fs::read_to_string(&dataset)?.lines() {
        let record: serde_json::Value = serde_json::from_str(line)?;
        let question = record["messages"]
            .as_array()
            .and_then(|ms| ms.iter().rev().find(|m| m["role"] == "user"))
            .and_then(|m| m["content"].as_str())
            .unwrap_or_default()
            .to_string();
        if let Some(sql) = record["sql"].as_str() {
            gold.insert(question, sql.to_string());
        }
    }
    let stub = LlmStub::start(move |request| {
        let question = request.user_text();
        let model = request.body["model"].as_str().unwrap_or_default();
        let skill = skills.get(model).copied().unwrap_or(50);
        let mut key = Sha256::new();
        key.update(model.as_bytes());
        key.update(question.as_bytes());
        let roll = u64::from_le_bytes(key.finalize()[..8].try_into().expect("8 bytes")) % 100;
        let sql = match gold.get(&question) {
            Some(sql) if roll < skill => sql.clone(),
            _ => "SELECT 'a wrong answer' AS wrong".to_string(),
        };
        StubResponse::text(format!("<think>read the schema</think><sql>{sql}</sql>"))
    })
    .await?;
    println!("{}", stub.base_url());
    tokio::signal::ctrl_c().await?;
    Ok(())
}
