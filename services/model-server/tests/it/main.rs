//! `sqlrft model serve`'s API over real HTTP on 127.0.0.1, against a tiny seeded model: every
//! answer is checked against the same model run directly through the trainer's backend.

#[path = "../../../trainer/tests/it/tiny.rs"]
#[allow(dead_code)]
mod tiny;

use std::path::Path;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde_json::{Value, json};
use sqlrft_model::backend::{Backend, CpuBackend};
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::sampling::{Sampled, SamplingParams};
use sqlrft_model_server::{ModelServerConfig, RunningServer, read_adapter_dir, start};
use sqlrft_trainer::export::export_adapter_dir;
use sqlrft_trainer::rollout::ChatMessage;
use sqlrft_trainer::train::load_model_dir;

const NAME: &str = "tiny";

async fn serve(dir: &Path, enable_lora: bool) -> RunningServer {
    start(ModelServerConfig {
        dir: dir.to_path_buf(),
        served_model_name: Some(NAME.into()),
        port: 0,
        enable_lora,
        ..ModelServerConfig::default()
    })
    .await
    .unwrap()
}

async fn post(server: &RunningServer, path: &str, body: Value) -> (u16, Value) {
    let response = reqwest::Client::new()
        .post(format!("{}{path}", server.base_url()))
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = response.status().as_u16();
    let text = response.text().await.unwrap();
    (
        status,
        serde_json::from_str(&text).unwrap_or(Value::String(text)),
    )
}

/// Greedy completions of `prompt` straight from the backend, with `adapter` on the model.
fn direct_greedy(
    dir: &Path,
    prompt: &[u32],
    max_new_tokens: usize,
    adapter: Option<(LoraLayout, Vec<f32>)>,
) -> Sampled {
    let (mut model, tokenizer) = load_model_dir(dir).unwrap();
    model.lora = adapter;
    let params = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens,
    };
    CpuBackend::new(model, false)
        .generate(
            &[prompt],
            1,
            &params,
            &tokenizer.eos_ids,
            &mut ChaCha8Rng::seed_from_u64(0),
        )
        .unwrap()
        .remove(0)
        .remove(0)
}

fn token_ids(choice: &Value) -> Vec<u32> {
    choice["logprobs"]["token_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|t| t.as_u64().unwrap() as u32)
        .collect()
}

fn close(a: &[f32], b: &Value) -> bool {
    let b: Vec<f64> = b
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_f64().unwrap())
        .collect();
    a.len() == b.len() && a.iter().zip(&b).all(|(x, y)| (*x as f64 - y).abs() < 1e-5)
}

#[tokio::test]
async fn completions_and_chat_answer_as_the_model_does() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(dir.path(), tiny::Family::Qwen2, 3);
    let server = serve(dir.path(), false).await;
    let (_, tokenizer) = load_model_dir(dir.path()).unwrap();

    let models = reqwest::get(format!("{}/v1/models", server.base_url()))
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap();
    assert_eq!(models["data"][0]["id"], NAME, "{models}");

    let text = "SELECT count(*) FROM";
    let prompt = tokenizer.encode(text).unwrap();
    let want = direct_greedy(dir.path(), &prompt, 6, None);
    let (status, body) = post(
        &server,
        "/v1/completions",
        json!({"model": NAME, "prompt": text, "max_tokens": 6, "temperature": 0, "logprobs": 1}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let choice = &body["choices"][0];
    assert_eq!(token_ids(choice), want.tokens);
    assert!(
        close(&want.logprobs, &choice["logprobs"]["token_logprobs"]),
        "{body}"
    );
    assert_eq!(choice["text"], tokenizer.decode(&want.tokens).unwrap());
    let reason = if want.truncated { "length" } else { "stop" };
    assert_eq!(choice["finish_reason"], reason);
    assert_eq!(body["usage"]["prompt_tokens"], prompt.len());
    assert_eq!(body["usage"]["completion_tokens"], want.tokens.len());

    // Token-id prompts, several at once, with ids in the log-probs as vLLM spells them.
    let (status, body) = post(
        &server,
        "/v1/completions",
        json!({"model": NAME, "prompt": [prompt.clone(), prompt.clone()], "max_tokens": 6,
               "temperature": 0, "logprobs": 0, "return_tokens_as_token_ids": true}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["choices"].as_array().unwrap().len(), 2);
    for choice in body["choices"].as_array().unwrap() {
        assert_eq!(token_ids(choice), want.tokens);
        let first = format!("token_id:{}", want.tokens[0]);
        assert_eq!(choice["logprobs"]["tokens"][0], first.as_str());
    }

    let messages = [ChatMessage {
        role: "user".into(),
        content: "How many customers placed an order?".into(),
    }];
    let rendered = tokenizer
        .encode(&tokenizer.render(&messages, true).unwrap())
        .unwrap();
    let want = direct_greedy(dir.path(), &rendered, 5, None);
    let (status, body) = post(
        &server,
        "/v1/chat/completions",
        json!({"model": NAME, "messages": [{"role": "user", "content": messages[0].content}],
               "max_completion_tokens": 5, "temperature": 0}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(
        body["choices"][0]["message"]["content"],
        tokenizer.decode(&want.tokens).unwrap()
    );
    assert_eq!(body["usage"]["prompt_tokens"], rendered.len());
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn a_seed_makes_sampling_repeatable_and_concurrent_requests_all_answer() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(dir.path(), tiny::Family::Llama, 4);
    let server = serve(dir.path(), false).await;
    let request = |seed: u64| {
        json!({"model": NAME, "prompt": "SELECT", "max_tokens": 8, "temperature": 1.0,
               "n": 3, "seed": seed, "logprobs": 1})
    };
    let ids = |body: &Value| -> Vec<Vec<u32>> {
        body["choices"]
            .as_array()
            .unwrap()
            .iter()
            .map(token_ids)
            .collect()
    };
    let (_, first) = post(&server, "/v1/completions", request(7)).await;
    let (_, again) = post(&server, "/v1/completions", request(7)).await;
    assert_eq!(ids(&first).len(), 3);
    assert_eq!(
        ids(&first),
        ids(&again),
        "the same seed gives the same completions"
    );

    // Many at once: each answers, and greedy answers do not depend on what they share a batch with.
    let alone = post(
        &server,
        "/v1/completions",
        json!({"model": NAME, "prompt": "How many", "max_tokens": 5, "temperature": 0, "logprobs": 1}),
    )
    .await
    .1;
    let together = futures_join(&server, 12).await;
    for body in &together {
        assert_eq!(ids(body), ids(&alone), "{body}");
    }
    server.shutdown().await.unwrap();
}

async fn futures_join(server: &RunningServer, count: usize) -> Vec<Value> {
    let mut tasks = Vec::new();
    for _ in 0..count {
        let url = format!("{}/v1/completions", server.base_url());
        tasks.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .json(
                    &json!({"model": NAME, "prompt": "How many", "max_tokens": 5,
                              "temperature": 0, "logprobs": 1}),
                )
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }));
    }
    let mut out = Vec::new();
    for task in tasks {
        out.push(task.await.unwrap());
    }
    out
}

#[tokio::test]
async fn a_lora_adapter_loads_answers_and_unloads() {
    let dir = tempfile::tempdir().unwrap();
    let config = tiny::write_model(&dir.path().join("base"), tiny::Family::Qwen2, 5);
    let lora = LoraConfig {
        rank: 4,
        alpha: 8.0,
        target_modules: vec!["q_proj".into(), "v_proj".into(), "down_proj".into()],
    };
    let layout = LoraLayout::new(&lora, &config).unwrap();
    // A fresh adapter's B is zero (no change); random B makes the adapter visible.
    let weights = tiny::random_weights(&config, 11, 0.5)[..layout.layout.len].to_vec();
    let adapter_dir = dir.path().join("adapter");
    std::fs::create_dir_all(&adapter_dir).unwrap();
    export_adapter_dir(&layout, &weights, &lora, "base", &adapter_dir).unwrap();
    let (read_layout, read_weights) = read_adapter_dir(&adapter_dir, &config).unwrap();
    assert_eq!(read_weights, weights, "the adapter reads back as written");

    let base = dir.path().join("base");
    let server = serve(&base, true).await;
    let (_, tokenizer) = load_model_dir(&base).unwrap();
    let prompt = tokenizer.encode("SELECT name FROM").unwrap();
    let ask = |model: &str| json!({"model": model, "prompt": prompt.clone(), "max_tokens": 6, "temperature": 0, "logprobs": 1});

    let (status, body) = post(
        &server,
        "/v1/load_lora_adapter",
        json!({"lora_name": "sql", "lora_path": adapter_dir}),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    let (status, tuned) = post(&server, "/v1/completions", ask("sql")).await;
    assert_eq!(status, 200, "{tuned}");
    let want = direct_greedy(&base, &prompt, 6, Some((read_layout, read_weights)));
    assert_eq!(token_ids(&tuned["choices"][0]), want.tokens);
    assert!(close(
        &want.logprobs,
        &tuned["choices"][0]["logprobs"]["token_logprobs"]
    ));
    let (_, plain) = post(&server, "/v1/completions", ask(NAME)).await;
    let base_want = direct_greedy(&base, &prompt, 6, None);
    assert_eq!(token_ids(&plain["choices"][0]), base_want.tokens);
    assert!(
        !close(
            &want.logprobs,
            &plain["choices"][0]["logprobs"]["token_logprobs"]
        ),
        "the adapter changes the log-probs"
    );

    let (status, _) = post(
        &server,
        "/v1/unload_lora_adapter",
        json!({"lora_name": "sql"}),
    )
    .await;
    assert_eq!(status, 200);
    let (status, body) = post(&server, "/v1/completions", ask("sql")).await;
    assert_eq!(status, 404, "{body}");
    server.shutdown().await.unwrap();
}

#[tokio::test]
async fn bad_requests_get_openai_shaped_errors_naming_the_fix() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_model(dir.path(), tiny::Family::Qwen2, 6);
    let server = serve(dir.path(), false).await;
    let cases = [
        (
            json!({"model": "gpt-4", "prompt": "x"}),
            404,
            "does not exist",
        ),
        (
            json!({"model": NAME, "prompt": "x", "stream": true}),
            400,
            "streaming",
        ),
        (
            json!({"model": NAME, "prompt": "x", "max_tokens": 0}),
            400,
            "max_tokens",
        ),
        (
            json!({"model": NAME, "prompt": "x", "max_tokens": 1_000_000}),
            400,
            "--max-tokens-limit",
        ),
        (json!({"model": NAME, "prompt": []}), 400, "prompt"),
        (
            json!({"model": NAME, "prompt": [[999_999]]}),
            400,
            "vocabulary",
        ),
        (json!({"prompt": "x"}), 400, "model"),
    ];
    for (body, status, says) in cases {
        let (got, answer) = post(&server, "/v1/completions", body.clone()).await;
        let message = answer["error"]["message"].as_str().unwrap_or_default();
        assert_eq!(got, status, "{body} -> {answer}");
        assert!(message.contains(says), "{body} -> {message}");
    }
    let (status, answer) = post(
        &server,
        "/v1/load_lora_adapter",
        json!({"lora_name": "a", "lora_path": "/etc"}),
    )
    .await;
    assert_eq!(status, 404, "{answer}");
    assert!(
        answer["error"]["message"]
            .as_str()
            .unwrap()
            .contains("--enable-lora")
    );
    // The server still answers after all of that.
    let (status, _) = post(
        &server,
        "/v1/completions",
        json!({"model": NAME, "prompt": "x"}),
    )
    .await;
    assert_eq!(status, 200);
    server.shutdown().await.unwrap();
}

/// The trainer's `--generator` client against this server: each policy version it syncs is the
/// only adapter served, and its completions are that policy's own greedy tokens.
#[tokio::test]
async fn the_trainers_remote_generator_samples_the_synced_policy() {
    use sqlrft_trainer::generator::{GeneratorConfig, RemoteGenerator, adapter_name};
    let dir = tempfile::tempdir().unwrap();
    let base = dir.path().join("base");
    let config = tiny::write_model(&base, tiny::Family::Llama, 9);
    let server = serve(&base, true).await;
    let lora = LoraConfig {
        rank: 2,
        alpha: 4.0,
        target_modules: vec!["q_proj".into(), "o_proj".into()],
    };
    let layout = LoraLayout::new(&lora, &config).unwrap();
    let mut generator = RemoteGenerator::connect(
        &GeneratorConfig::at(format!("{}/v1", server.base_url())),
        &lora,
        &config,
        &dir.path().join("run"),
    )
    .await
    .unwrap();
    let (_, tokenizer) = load_model_dir(&base).unwrap();
    let prompts = vec![
        tokenizer.encode("SELECT count(*)").unwrap(),
        tokenizer.encode("FROM flights").unwrap(),
    ];
    let greedy = SamplingParams {
        temperature: 0.0,
        top_p: 1.0,
        top_k: 0,
        max_new_tokens: 5,
    };
    for (step, seed) in [(3, 21), (4, 22)] {
        let weights = tiny::random_weights(&config, seed, 0.5)[..layout.layout.len].to_vec();
        generator.sync_policy(step, &weights).await.unwrap();
        let models = reqwest::get(format!("{}/v1/models", server.base_url()))
            .await
            .unwrap()
            .json::<Value>()
            .await
            .unwrap();
        let served: Vec<&str> = models["data"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|m| !m["parent"].is_null())
            .map(|m| m["id"].as_str().unwrap())
            .collect();
        assert_eq!(
            served,
            [adapter_name(step)],
            "only the newest policy is loaded"
        );
        let groups = generator.generate(&prompts, 2, &greedy, 1).await.unwrap();
        assert_eq!(groups.len(), 2);
        for (prompt, group) in prompts.iter().zip(&groups) {
            let want = direct_greedy(&base, prompt, 5, Some((layout.clone(), weights.clone())));
            for sampled in group {
                assert_eq!(sampled.tokens, want.tokens);
                assert_eq!(sampled.truncated, want.truncated);
            }
        }
    }
    server.shutdown().await.unwrap();
}
