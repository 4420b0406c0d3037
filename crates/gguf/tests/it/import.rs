//! Whole imports of tiny Llama and Qwen2 GGUF files written here: names, shapes, q/k rows
//! back in Hugging Face order, config, tokenizer, chat template, and the refusals.

use crate::writer::{RawTensor, s, write_gguf};
use safetensors::SafeTensors;
use sqlrft_gguf::{OutputDtype, Value, import};
use std::collections::BTreeMap;
use std::path::Path;
use tokenizers::pre_tokenizers::byte_level::ByteLevel;

const HIDDEN: usize = 8;
const HEADS: usize = 2;
const KV_HEADS: usize = 1;
const HEAD_DIM: usize = 4;
const FFN: usize = 12;
const TEMPLATE: &str = "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}";

/// Specials, the byte alphabet, then merged tokens.
fn vocab() -> (Vec<String>, Vec<i32>, Vec<String>) {
    let mut tokens: Vec<String> = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
        .map(String::from)
        .to_vec();
    let mut types = vec![3; 3];
    let mut alphabet: Vec<char> = ByteLevel::alphabet().into_iter().collect();
    alphabet.sort();
    tokens.extend(alphabet.iter().map(|c| c.to_string()));
    let merges = ["S E", "L E", "SE LE", "1 2"].map(String::from).to_vec();
    tokens.extend(["SE", "LE", "SELE", "12"].map(String::from));
    types.resize(tokens.len(), 1);
    (tokens, types, merges)
}

fn values(n: usize, seed: f32) -> Vec<f32> {
    (0..n).map(|i| ((i as f32 + seed) * 0.37).sin()).collect()
}

/// llama.cpp's converter's row order for a q/k projection: within each head, Hugging Face row
/// `i * half + j` goes to row `2 j + i`.
fn permute_like_llama_cpp(hf: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let half = HEAD_DIM / 2;
    let mut out = vec![0.0; hf.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                let from = (h * HEAD_DIM + i * half + j) * cols;
                let to = (h * HEAD_DIM + 2 * j + i) * cols;
                out[to..to + cols].copy_from_slice(&hf[from..from + cols]);
            }
        }
    }
    out
}

struct Tiny {
    /// Hugging Face name → (shape, values) as the import must write them.
    expected: BTreeMap<String, (Vec<usize>, Vec<f32>)>,
}

fn write_tiny(path: &Path, arch: &str, pre: &str, tokenizer_model: &str) -> Tiny {
    let (tokens, types, merges) = vocab();
    let vocab_size = tokens.len();
    let qwen = arch == "qwen2";
    let mut expected = BTreeMap::new();
    let mut tensors = Vec::new();
    let mut add =
        |gguf: &str, hf: &str, shape: Vec<usize>, seed: f32, permute_heads: Option<usize>| {
            let v = values(shape.iter().product(), seed);
            let stored = match permute_heads {
                Some(h) => permute_like_llama_cpp(&v, h, shape.get(1).copied().unwrap_or(1)),
                None => v.clone(),
            };
            tensors.push(RawTensor::f32(gguf, &shape, &stored));
            expected.insert(hf.to_string(), (shape, v));
        };
    let permute = |h| (!qwen).then_some(h);
    add(
        "token_embd.weight",
        "model.embed_tokens.weight",
        vec![vocab_size, HIDDEN],
        1.0,
        None,
    );
    add(
        "blk.0.attn_norm.weight",
        "model.layers.0.input_layernorm.weight",
        vec![HIDDEN],
        2.0,
        None,
    );
    add(
        "blk.0.attn_q.weight",
        "model.layers.0.self_attn.q_proj.weight",
        vec![HEADS * HEAD_DIM, HIDDEN],
        3.0,
        permute(HEADS),
    );
    add(
        "blk.0.attn_k.weight",
        "model.layers.0.self_attn.k_proj.weight",
        vec![KV_HEADS * HEAD_DIM, HIDDEN],
        4.0,
        permute(KV_HEADS),
    );
    add(
        "blk.0.attn_v.weight",
        "model.layers.0.self_attn.v_proj.weight",
        vec![KV_HEADS * HEAD_DIM, HIDDEN],
        5.0,
        None,
    );
    if qwen {
        add(
            "blk.0.attn_q.bias",
            "model.layers.0.self_attn.q_proj.bias",
            vec![HEADS * HEAD_DIM],
            6.0,
            None,
        );
        add(
            "blk.0.attn_k.bias",
            "model.layers.0.self_attn.k_proj.bias",
            vec![KV_HEADS * HEAD_DIM],
            7.0,
            None,
        );
        add(
            "blk.0.attn_v.bias",
            "model.layers.0.self_attn.v_proj.bias",
            vec![KV_HEADS * HEAD_DIM],
            8.0,
            None,
        );
    }
    add(
        "blk.0.attn_output.weight",
        "model.layers.0.self_attn.o_proj.weight",
        vec![HIDDEN, HEADS * HEAD_DIM],
        9.0,
        None,
    );
    add(
        "blk.0.ffn_norm.weight",
        "model.layers.0.post_attention_layernorm.weight",
        vec![HIDDEN],
        10.0,
        None,
    );
    add(
        "blk.0.ffn_gate.weight",
        "model.layers.0.mlp.gate_proj.weight",
        vec![FFN, HIDDEN],
        11.0,
        None,
    );
    add(
        "blk.0.ffn_up.weight",
        "model.layers.0.mlp.up_proj.weight",
        vec![FFN, HIDDEN],
        12.0,
        None,
    );
    add(
        "blk.0.ffn_down.weight",
        "model.layers.0.mlp.down_proj.weight",
        vec![HIDDEN, FFN],
        13.0,
        None,
    );
    add(
        "output_norm.weight",
        "model.norm.weight",
        vec![HIDDEN],
        14.0,
        None,
    );
    if qwen {
        add(
            "output.weight",
            "lm_head.weight",
            vec![vocab_size, HIDDEN],
            15.0,
            None,
        );
    }
    let key = |k: &str| format!("{arch}.{k}");
    let keys: Vec<String> = [
        "block_count",
        "embedding_length",
        "feed_forward_length",
        "attention.head_count",
        "attention.head_count_kv",
        "attention.layer_norm_rms_epsilon",
        "rope.freq_base",
        "context_length",
    ]
    .iter()
    .map(|k| key(k))
    .collect();
    let metadata: Vec<(&str, Value)> = vec![
        ("general.architecture", s(arch)),
        (&keys[0], Value::U32(1)),
        (&keys[1], Value::U32(HIDDEN as u32)),
        (&keys[2], Value::U32(FFN as u32)),
        (&keys[3], Value::U32(HEADS as u32)),
        (&keys[4], Value::U32(KV_HEADS as u32)),
        (&keys[5], Value::F32(1e-5)),
        (&keys[6], Value::F32(100000.0)),
        (&keys[7], Value::U32(512)),
        ("tokenizer.ggml.model", s(tokenizer_model)),
        ("tokenizer.ggml.pre", s(pre)),
        (
            "tokenizer.ggml.tokens",
            Value::Array(tokens.iter().map(|t| s(t)).collect()),
        ),
        (
            "tokenizer.ggml.token_type",
            Value::Array(types.iter().map(|&t| Value::I32(t)).collect()),
        ),
        (
            "tokenizer.ggml.merges",
            Value::Array(merges.iter().map(|m| s(m)).collect()),
        ),
        ("tokenizer.ggml.bos_token_id", Value::U32(1)),
        ("tokenizer.ggml.eos_token_id", Value::U32(2)),
        ("tokenizer.ggml.padding_token_id", Value::U32(0)),
        ("tokenizer.ggml.add_bos_token", Value::Bool(false)),
        ("tokenizer.chat_template", s(TEMPLATE)),
    ];
    write_gguf(path, &metadata, &tensors);
    Tiny { expected }
}

fn read_json(path: &Path) -> serde_json::Value {
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

fn import_tiny(arch: &str, pre: &str, dtype: OutputDtype) -> (tempfile::TempDir, Tiny) {
    let dir = tempfile::tempdir().unwrap();
    let gguf = dir.path().join("tiny.gguf");
    let tiny = write_tiny(&gguf, arch, pre, "gpt2");
    let seen = std::sync::atomic::AtomicU64::new(0);
    let summary = import(&gguf, &dir.path().join("out"), dtype, &|n| {
        seen.fetch_add(n, std::sync::atomic::Ordering::Relaxed);
    })
    .unwrap();
    let total: usize = tiny
        .expected
        .values()
        .map(|(s, _)| s.iter().product::<usize>())
        .sum();
    assert_eq!(
        seen.into_inner(),
        total as u64,
        "progress counts every weight"
    );
    assert_eq!(summary.parameters, total as u64);
    assert!(summary.to_string().contains("F32"), "{summary}");
    (dir, tiny)
}

#[test]
fn a_llama_gguf_becomes_a_hugging_face_directory_with_q_and_k_unpermuted() {
    let (dir, tiny) = import_tiny("llama", "smollm", OutputDtype::F32);
    let out = dir.path().join("out");
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    let mut names: Vec<String> = st.names().into_iter().map(String::from).collect();
    names.sort();
    assert_eq!(
        names,
        tiny.expected.keys().cloned().collect::<Vec<_>>(),
        "no lm_head: tied"
    );
    for (name, (shape, want)) in &tiny.expected {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.shape(), shape.as_slice(), "{name}");
        let got: Vec<f32> = view
            .data()
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes(b.try_into().unwrap()))
            .collect();
        assert_eq!(&got, want, "{name}");
    }
    let config = read_json(&out.join("config.json"));
    for (k, v) in [
        ("model_type", serde_json::json!("llama")),
        ("architectures", serde_json::json!(["LlamaForCausalLM"])),
        ("hidden_size", HIDDEN.into()),
        ("intermediate_size", FFN.into()),
        ("num_hidden_layers", 1.into()),
        ("num_attention_heads", HEADS.into()),
        ("num_key_value_heads", KV_HEADS.into()),
        ("head_dim", HEAD_DIM.into()),
        ("rms_norm_eps", serde_json::json!(1e-5)),
        ("rope_theta", serde_json::json!(100000.0)),
        ("max_position_embeddings", 512.into()),
        ("tie_word_embeddings", true.into()),
        ("attention_bias", false.into()),
        ("bos_token_id", 1.into()),
        ("eos_token_id", 2.into()),
        ("torch_dtype", "float32".into()),
    ] {
        assert_eq!(config[k], v, "config.json {k}");
    }
    assert_eq!(config["vocab_size"], vocab().0.len());
    let generation = read_json(&out.join("generation_config.json"));
    assert_eq!(
        (
            generation["eos_token_id"].as_u64(),
            generation["bos_token_id"].as_u64()
        ),
        (Some(2), Some(1))
    );
}

#[test]
fn the_tokenizer_follows_the_gguf_vocabulary_merges_and_pre_tokenizer() {
    let (dir, _) = import_tiny("llama", "smollm", OutputDtype::F32);
    let out = dir.path().join("out");
    let tok = tokenizers::Tokenizer::from_file(out.join("tokenizer.json")).unwrap();
    let (tokens, _, _) = vocab();
    let id = |t: &str| tokens.iter().position(|x| x == t).unwrap() as u32;
    let ids = tok
        .encode("<|im_start|>SELECT 12", false)
        .unwrap()
        .get_ids()
        .to_vec();
    // SmolLM's pre-tokenizer splits digits one by one, so the merge "1 2" never applies.
    assert_eq!(
        ids,
        [1, id("SELE"), id("C"), id("T"), id("Ġ"), id("1"), id("2")]
    );
    assert_eq!(tok.decode(&ids, false).unwrap(), "<|im_start|>SELECT 12");
    assert_eq!(
        tok.decode(&ids, true).unwrap(),
        "SELECT 12",
        "control tokens are special"
    );
    let config = read_json(&out.join("tokenizer_config.json"));
    assert_eq!(config["chat_template"], TEMPLATE);
    assert_eq!(
        (config["bos_token"].as_str(), config["eos_token"].as_str()),
        (Some("<|im_start|>"), Some("<|im_end|>"))
    );
    assert_eq!(config["pad_token"], "<|endoftext|>");
    assert_eq!(config["added_tokens_decoder"]["2"]["special"], true);

    // GPT-2's own pre-tokenizer keeps digit runs together: the merge applies.
    let (dir, _) = import_tiny("qwen2", "gpt-2", OutputDtype::F32);
    let tok = tokenizers::Tokenizer::from_file(dir.path().join("out/tokenizer.json")).unwrap();
    let ids = tok.encode("12", false).unwrap().get_ids().to_vec();
    assert_eq!(ids, [id("12")]);
}

#[test]
fn a_qwen2_gguf_keeps_its_rows_and_biases_and_its_own_lm_head() {
    let (dir, tiny) = import_tiny("qwen2", "qwen2", OutputDtype::Bf16);
    let out = dir.path().join("out");
    let config = read_json(&out.join("config.json"));
    assert_eq!(config["model_type"], "qwen2");
    assert_eq!(config["tie_word_embeddings"], false);
    assert_eq!(config["torch_dtype"], "bfloat16");
    let bytes = std::fs::read(out.join("model.safetensors")).unwrap();
    let st = SafeTensors::deserialize(&bytes).unwrap();
    for name in [
        "model.layers.0.self_attn.q_proj.weight",
        "model.layers.0.self_attn.k_proj.bias",
        "lm_head.weight",
    ] {
        let view = st.tensor(name).unwrap();
        assert_eq!(view.dtype(), safetensors::Dtype::BF16);
        let got: Vec<f32> = view
            .data()
            .chunks_exact(2)
            .map(|b| half::bf16::from_le_bytes([b[0], b[1]]).to_f32())
            .collect();
        let want = &tiny.expected[name].1;
        for (g, w) in got.iter().zip(want) {
            assert!((g - w).abs() <= w.abs() / 128.0, "{name}: {g} vs {w}");
        }
    }
}

#[test]
fn unsupported_models_are_refused_naming_the_file_and_what_works() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let cases = [
        ("llama", "smollm", "llama", "SentencePiece"),
        ("gemma", "smollm", "gpt2", "`llama` and `qwen2`"),
        ("llama", "chatglm-bpe", "gpt2", "llama-bpe"),
    ];
    for (arch, pre, model, says) in cases {
        let gguf = dir.path().join(format!("{arch}-{pre}-{model}.gguf"));
        write_tiny(&gguf, arch, pre, model);
        let err = import(&gguf, &out, OutputDtype::F32, &|_| {})
            .unwrap_err()
            .to_string();
        assert!(
            err.contains(&gguf.display().to_string()) && err.contains(says),
            "{err}"
        );
        assert!(!out.exists(), "nothing is written on failure");
    }
}
