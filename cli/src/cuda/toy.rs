//! `sqlrft cuda toy-task`: a model and prompts small enough that a GRPO run on them shows a
//! rising reward within twenty steps, for checking `sqlrft train --device cuda` end to end on a
//! machine that has a GPU but no network (scripts/gpu/grpo_check.py scores it with a toy reward).

use anyhow::{Context, Result};
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::params::{SaveDtype, model_safetensors};
use sqlrft_trainer::bench::{random_weights, write_bpe_tokenizer};
use std::path::Path;

const WORDS: &[&str] = &[
    "orders",
    "customers",
    "Payments",
    "INVOICES",
    "airport",
    "Route",
    "airline",
    "COUNT",
    "select",
    "Where",
    "group",
    "ORDER",
    "limit",
    "Join",
    "sum",
    "AVG",
];

/// Writes `out/model` (a two-layer Qwen2 with seeded random weights and a byte-level BPE
/// trained on the prompts) and `out/prompts.jsonl` (`prompts` chat prompts).
pub fn write(out: &Path, prompts: usize, seed: u64) -> Result<()> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let texts: Vec<String> = (0..prompts)
        .map(|_| {
            let mut pick = || WORDS[rng.random_range(0..WORDS.len())];
            format!(
                "Write about {} and {} in lowercase letters.",
                pick(),
                pick()
            )
        })
        .collect();
    let model = out.join("model");
    std::fs::create_dir_all(&model)
        .with_context(|| format!("could not create `{}`", model.display()))?;
    let mut corpus = texts.clone();
    corpus.push("abcdefghijklmnopqrstuvwxyz ABCDEFGHIJKLMNOPQRSTUVWXYZ 0123456789 .,;:!?".into());
    let tokens = write_bpe_tokenizer(&model, &corpus, 320, None)?;
    // Rows past the tokenizer's ids are allowed (never in a prompt); a multiple of 64 keeps
    // every GEMM dimension aligned for cuBLASLt.
    let vocab = tokens.div_ceil(64) * 64;
    let config = serde_json::json!({
        "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab,
        "hidden_size": 64, "intermediate_size": 128, "num_hidden_layers": 2,
        "num_attention_heads": 4, "num_key_value_heads": 2, "rms_norm_eps": 1e-6,
        "rope_theta": 10000.0, "tie_word_embeddings": true, "hidden_act": "silu",
        "max_position_embeddings": 512, "eos_token_id": 2, "torch_dtype": "float32"
    })
    .to_string();
    std::fs::write(model.join("config.json"), &config)?;
    let cfg = ModelConfig::parse(&config)?;
    let weights = random_weights(&cfg, seed, 0.2);
    let bytes = model_safetensors(&cfg, &weights, SaveDtype::F32)?;
    sqlrft_files::write(&model.join("model.safetensors"), &bytes)?;
    let lines: Vec<String> = texts
        .iter()
        .map(|t| {
            serde_json::json!({
                "messages": [{"role": "user", "content": t}],
                "ground_truth": [],
            })
            .to_string()
        })
        .collect();
    sqlrft_files::write(&out.join("prompts.jsonl"), lines.join("\n") + "\n")?;
    Ok(())
}
