//! Throughput of the client at its default concurrency against a stub with fixed latency.
//!
//! `cargo run -p sqlrft-llm --example simulated_throughput -- [calls] [latency_ms]`
//! (defaults: 1000 calls, 200 ms). With 16 requests in flight the floor is
//! calls / 16 × latency (12.5 s for the defaults).

use std::time::{Duration, Instant};

use sqlrft_llm::simulated::{LlmStub, StubResponse};
use sqlrft_llm::{ChatRequest, LlmClient, LlmConfig, Message, Provider};

#[tokio::main]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    let mut args = std::env::args().skip(1);
    let calls: usize = args.next().map(|a| a.parse()).transpose()?.unwrap_or(1000);
    let latency = Duration::from_millis(args.next().map(|a| a.parse()).transpose()?.unwrap_or(200));
    let stub = LlmStub::start(move |_| StubResponse::text("ok").with_latency(latency)).await?;
    let mut config = LlmConfig::new(Provider::Vllm, "stub");
    config.base_url = Some(stub.base_url());
    let client = LlmClient::new(config)?;
    let started = Instant::now();
    let tasks: Vec<_> = (0..calls)
        .map(|i| {
            let client = client.clone();
            tokio::spawn(async move {
                client
                    .chat(ChatRequest::new(vec![Message::user(format!("q{i}"))]))
                    .await
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    let elapsed = started.elapsed();
    let floor = latency.mul_f64((calls as f64 / client.config().max_concurrency as f64).ceil());
    println!(
        "{calls} calls, {latency:?} latency, concurrency {}: {elapsed:.2?} (floor {floor:.2?}); max in flight {}",
        client.config().max_concurrency,
        stub.max_in_flight()
    );
    Ok(())
}
