//! Tiny Hugging Face model directories made by the tests: seeded random weights under the real
//! tensor names, a byte-level BPE tokenizer trained in memory, a ChatML chat template.

use sqlrft_model::config::ModelConfig;
use sqlrft_model::params::{SaveDtype, model_safetensors};
use std::path::Path;
use tokenizers::Tokenizer;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Family {
    Qwen2,
    Llama,
}

const CORPUS: &[&str] = &[
    "SELECT count(*) FROM orders WHERE status = 'open';",
    "SELECT name, sum(amount) FROM payments GROUP BY name ORDER BY 2 DESC;",
    "<think>count the rows of the table</think><sql>SELECT 1</sql>",
    "How many customers placed an order last month?",
    "a quick brown fox jumps over the lazy dog",
    "abcdefghijklm nopqrstuvwxyz ABCDEFGHIJKLM NOPQRSTUVWXYZ 0123456789",
    "You are an expert in writing optimized SQL queries.",
];

/// Trains a byte-level BPE in memory and writes `tokenizer.json`; returns the vocab size.
pub fn write_tokenizer(dir: &Path) -> usize {
    let corpus: Vec<String> = CORPUS.iter().map(|s| s.to_string()).collect();
    sqlrft_trainer::bench::write_bpe_tokenizer(dir, &corpus, 320, None).unwrap()
}

/// `config.json` text of a tiny model of `family` over `vocab` tokens.
pub fn config_json(family: Family, vocab: usize, eos: u32) -> serde_json::Value {
    match family {
        Family::Qwen2 => serde_json::json!({
            "architectures": ["Qwen2ForCausalLM"], "model_type": "qwen2", "vocab_size": vocab,
            "hidden_size": 32, "intermediate_size": 48, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 2, "rms_norm_eps": 1e-6, "rope_theta": 1000000.0, "tie_word_embeddings": true,
            "hidden_act": "silu", "max_position_embeddings": 512, "eos_token_id": eos, "torch_dtype": "float32"
        }),
        Family::Llama => serde_json::json!({
            "architectures": ["LlamaForCausalLM"], "model_type": "llama", "vocab_size": vocab,
            "hidden_size": 24, "intermediate_size": 40, "num_hidden_layers": 2, "num_attention_heads": 4,
            "num_key_value_heads": 1, "head_dim": 6, "rms_norm_eps": 1e-5, "rope_theta": 500000.0,
            "rope_scaling": {"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 64},
            "tie_word_embeddings": false, "attention_bias": false, "mlp_bias": false, "hidden_act": "silu",
            "max_position_embeddings": 512, "eos_token_id": [eos], "torch_dtype": "float32"
        }),
    }
}

/// Seeded weights for `cfg`: norms near 1, everything else uniform in ±`scale`.
pub fn random_weights(cfg: &ModelConfig, seed: u64, scale: f32) -> Vec<f32> {
    sqlrft_trainer::bench::random_weights(cfg, seed, scale)
}

/// Writes a complete tiny model directory; returns its config.
pub fn write_model(dir: &Path, family: Family, seed: u64) -> ModelConfig {
    std::fs::create_dir_all(dir).unwrap();
    let vocab = write_tokenizer(dir);
    let tok = Tokenizer::from_file(dir.join("tokenizer.json")).unwrap();
    let eos = tok.token_to_id("<|im_end|>").unwrap();
    let cfg_text = config_json(family, vocab, eos).to_string();
    std::fs::write(dir.join("config.json"), &cfg_text).unwrap();
    let cfg = ModelConfig::parse(&cfg_text).unwrap();
    let weights = random_weights(&cfg, seed, 0.2);
    write_weights(dir, &cfg, &weights, SaveDtype::F32);
    cfg
}

pub fn write_weights(dir: &Path, cfg: &ModelConfig, weights: &[f32], dtype: SaveDtype) {
    let bytes = model_safetensors(cfg, weights, dtype).unwrap();
    std::fs::write(dir.join("model.safetensors"), bytes).unwrap();
}

/// A dataset JSONL in the builder's Fireworks RFT shape.
pub fn write_dataset(path: &Path, n: usize) {
    let lines: Vec<String> = (0..n)
        .map(|i| {
            serde_json::json!({
                "messages": [
                    {"role": "system", "content": "Answer with SQL."},
                    {"role": "user", "content": format!("How many orders have id {i}?")},
                    {"role": "assistant", "content": format!("<think>filter</think><sql>SELECT count(*) FROM orders WHERE id = {i}</sql>")}
                ],
                "ground_truth": [{"count": 1}],
                "sql": format!("SELECT count(*) FROM orders WHERE id = {i}")
            })
            .to_string()
        })
        .collect();
    std::fs::write(path, lines.join("\n") + "\n").unwrap();
}
