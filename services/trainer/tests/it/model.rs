//! The whole decoder on tiny Qwen2 and Llama models: gradients (base and LoRA) against finite
//! differences, KV-cached decoding against the full forward, batched generation against decoding
//! one sequence at a time, loading from disk, the tokenizer.

use crate::tiny::{self, Family};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use sqlrft_model::backend::{Backend, CpuBackend, Policy, Sequence};
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::layers::token_logprob_forward;
use sqlrft_model::cpu::model::{CpuModel, KvCache};
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::params::{ModelLayout, load_weights};
use sqlrft_model::sampling::{Sampled, SamplingParams, sample_token};
use sqlrft_trainer::rollout::ChatMessage;
use sqlrft_trainer::tokenizer::ChatTokenizer;

const TEMPERATURE: f32 = 0.8;

fn config(family: Family) -> ModelConfig {
    ModelConfig::parse(&tiny::config_json(family, 40, 3).to_string()).unwrap()
}

fn tokens(n: usize, vocab: usize, seed: u64) -> Vec<u32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    (0..n).map(|_| rng.random_range(0..vocab as u32)).collect()
}

/// Σ_t c_t · logp_t over the completion of `seq`, in f64.
fn objective(
    model: &CpuModel,
    seq: &[u32],
    prompt_len: usize,
    coef: &[f32],
    adapters: bool,
) -> f64 {
    let acts = model.forward(&seq[..seq.len() - 1], prompt_len - 1, adapters);
    let (lp, _) = token_logprob_forward(
        &acts.logits,
        &seq[prompt_len..],
        TEMPERATURE,
        model.config.vocab_size,
    );
    lp.iter()
        .zip(coef)
        .map(|(a, b)| *a as f64 * *b as f64)
        .sum()
}

/// Checks a few coordinates of every named tensor of a buffer against central differences.
fn check_gradients(model: CpuModel, lora: bool) {
    let v = model.config.vocab_size;
    let seq = tokens(9, v, 11);
    let prompt_len = 4;
    let coef: Vec<f32> = vec![0.7, -1.1, 0.4, 1.3, -0.6];
    let mut backend = CpuBackend::new(model.clone(), false);
    backend
        .forward_backward(
            &[Sequence {
                tokens: &seq,
                prompt_len,
            }],
            TEMPERATURE,
            &mut |_, _| coef.clone(),
        )
        .unwrap();
    let grads = backend.grads().to_vec();
    let layout = backend.trainable_layout().clone();
    let mut rng = ChaCha8Rng::seed_from_u64(5);
    let eps = 1e-2f32;
    let mut checked = 0;
    for t in &layout.tensors {
        for k in 0..3 {
            // Embedding rows of tokens that occur carry gradient; pick those for the table.
            let idx = if t.name.contains("embed_tokens") && !model.config.tie_word_embeddings {
                t.offset
                    + seq[k] as usize * model.config.hidden_size
                    + rng.random_range(0..model.config.hidden_size)
            } else {
                t.offset + rng.random_range(0..t.len())
            };
            let eval = |delta: f32| {
                let mut m = model.clone();
                if lora {
                    m.lora.as_mut().unwrap().1[idx] += delta;
                } else {
                    m.base[idx] += delta;
                }
                objective(&m, &seq, prompt_len, &coef, true)
            };
            let numeric = (eval(eps) - eval(-eps)) / (2.0 * eps as f64);
            let analytic = grads[idx] as f64;
            assert!(
                (numeric - analytic).abs() <= 2e-3 + 3e-2 * numeric.abs(),
                "{}[{}]: numeric {numeric} vs analytic {analytic}",
                t.name,
                idx - t.offset
            );
            checked += 1;
        }
    }
    assert!(checked >= 3 * layout.tensors.len());
}

#[test]
fn qwen2_gradients_match_finite_differences() {
    let cfg = config(Family::Qwen2);
    let w = tiny::random_weights(&cfg, 1, 0.3);
    check_gradients(CpuModel::new(cfg, w, None), false);
}

#[test]
fn llama_gradients_match_finite_differences() {
    let cfg = config(Family::Llama);
    let w = tiny::random_weights(&cfg, 2, 0.3);
    check_gradients(CpuModel::new(cfg, w, None), false);
}

fn lora_model(family: Family, seed: u64) -> CpuModel {
    let cfg = config(family);
    let w = tiny::random_weights(&cfg, seed, 0.3);
    let lc = LoraConfig {
        rank: 2,
        alpha: 4.0,
        target_modules: ["q_proj", "v_proj", "o_proj", "up_proj", "down_proj"]
            .map(String::from)
            .to_vec(),
    };
    let ll = LoraLayout::new(&lc, &cfg).unwrap();
    // B starts at zero in training; random here so A's gradient is not trivially zero.
    let mut rng = ChaCha8Rng::seed_from_u64(seed + 100);
    let data: Vec<f32> = (0..ll.layout.len)
        .map(|_| rng.random_range(-0.3..0.3))
        .collect();
    CpuModel::new(cfg, w, Some((ll, data)))
}

#[test]
fn lora_gradients_match_finite_differences() {
    check_gradients(lora_model(Family::Qwen2, 3), true);
    check_gradients(lora_model(Family::Llama, 4), true);
}

#[test]
fn fresh_lora_adapter_leaves_the_model_unchanged_and_reference_ignores_it() {
    let cfg = config(Family::Qwen2);
    let w = tiny::random_weights(&cfg, 6, 0.3);
    let ll = LoraLayout::new(&LoraConfig::default(), &cfg).unwrap();
    let data = ll.init(&mut ChaCha8Rng::seed_from_u64(0));
    let plain = CpuModel::new(cfg.clone(), w.clone(), None);
    let adapted = CpuModel::new(cfg, w, Some((ll, data)));
    let seq = tokens(7, 40, 1);
    assert_eq!(
        plain.forward(&seq, 0, false).logits,
        adapted.forward(&seq, 0, true).logits
    );
    let mut trained = lora_model(Family::Qwen2, 6);
    let mut backend = CpuBackend::new(trained.clone(), false);
    let s = [Sequence {
        tokens: &seq,
        prompt_len: 2,
    }];
    let reference = backend.score(&s, 1.0, Policy::Reference).unwrap();
    trained.lora = None;
    let mut base_only = CpuBackend::new(trained, false);
    assert_eq!(
        reference,
        base_only.score(&s, 1.0, Policy::Trained).unwrap()
    );
}

#[test]
fn kv_cache_decoding_equals_the_full_forward() {
    for (family, model) in [
        (Family::Qwen2, lora_model(Family::Qwen2, 7)),
        (Family::Llama, lora_model(Family::Llama, 8)),
    ] {
        let v = model.config.vocab_size;
        let seq = tokens(12, v, 9);
        let full = model.forward(&seq, 0, true).logits;
        let mut cache = KvCache::new(model.config.num_hidden_layers);
        let mut last = model.forward_cached(&seq[..4], &mut cache, true);
        for t in 4..=seq.len() {
            let want = &full[(t - 1) * v..t * v];
            let diff = last
                .iter()
                .zip(want)
                .map(|(a, b)| (a - b).abs())
                .fold(0.0f32, f32::max);
            assert!(
                diff < 1e-5,
                "{family:?} position {}: cached logits differ by {diff}",
                t - 1
            );
            if t < seq.len() {
                last = model.forward_cached(&seq[t..t + 1], &mut cache, true);
            }
        }
        assert_eq!(cache.len, seq.len());
    }
}

/// Decodes every completion alone, one token per forward, drawing from the per-completion
/// streams the batched path documents (the `i`-th `u64` of the caller's rng seeds completion `i`).
fn generate_one_by_one(
    model: &CpuModel,
    prompts: &[Vec<u32>],
    n: usize,
    params: &SamplingParams,
    eos: &[u32],
    seed: u64,
) -> Vec<Vec<Sampled>> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut one = |prompt: &[u32]| {
        let mut stream = ChaCha8Rng::seed_from_u64(rng.next_u64());
        let mut cache = KvCache::new(model.config.num_hidden_layers);
        let mut logits = model.forward_cached(prompt, &mut cache, true);
        let mut s = Sampled {
            tokens: vec![],
            logprobs: vec![],
            truncated: true,
        };
        loop {
            let (tok, lp) = sample_token(&logits, params, &mut stream);
            s.tokens.push(tok);
            s.logprobs.push(lp);
            if eos.contains(&tok) {
                s.truncated = false;
                return s;
            }
            if s.tokens.len() == params.max_new_tokens {
                return s;
            }
            logits = model.forward_cached(&[tok], &mut cache, true);
        }
    };
    prompts
        .iter()
        .map(|p| (0..n).map(|_| one(p)).collect())
        .collect()
}

#[test]
fn batched_generation_equals_decoding_one_sequence_at_a_time() {
    for (family, seed) in [(Family::Qwen2, 21), (Family::Llama, 22)] {
        let model = lora_model(family, seed);
        let v = model.config.vocab_size;
        // Prompts of different lengths, so the batch's rows sit at different positions.
        let prompts: Vec<Vec<u32>> = [3, 7, 5]
            .iter()
            .enumerate()
            .map(|(i, &len)| tokens(len, v, 30 + i as u64))
            .collect();
        let refs: Vec<&[u32]> = prompts.iter().map(Vec::as_slice).collect();
        let greedy = SamplingParams {
            temperature: 0.0,
            max_new_tokens: 9,
            ..Default::default()
        };
        // Sampled, with an end-of-sequence id, so sequences leave the batch at different steps.
        let sampled = SamplingParams {
            temperature: 1.3,
            max_new_tokens: 14,
            ..Default::default()
        };
        let eos = [3u32, 5];
        for (params, eos) in [(&greedy, &[][..]), (&sampled, &eos[..])] {
            let mut backend = CpuBackend::new(model.clone(), false);
            let mut rng = ChaCha8Rng::seed_from_u64(99);
            let batched = backend.generate(&refs, 4, params, eos, &mut rng).unwrap();
            let alone = generate_one_by_one(&model, &prompts, 4, params, eos, 99);
            assert_eq!(batched.len(), prompts.len());
            for (b, a) in batched.iter().flatten().zip(alone.iter().flatten()) {
                assert_eq!(
                    (&b.tokens, b.truncated),
                    (&a.tokens, a.truncated),
                    "{family:?} T={}: batched and one-by-one decoding chose different tokens",
                    params.temperature
                );
                for (x, y) in b.logprobs.iter().zip(&a.logprobs) {
                    assert!((x - y).abs() < 1e-4, "{family:?}: log-prob {x} vs {y}");
                }
            }
            let lengths: Vec<usize> = batched.iter().flatten().map(|s| s.tokens.len()).collect();
            if params.temperature > 0.0 {
                assert!(
                    lengths.iter().any(|&l| l < params.max_new_tokens),
                    "no sequence stopped early ({lengths:?}): the test would not cover leaving the batch"
                );
            }
        }
    }
}

#[test]
fn loads_single_and_sharded_safetensors_from_a_model_directory() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny::write_model(dir.path(), Family::Llama, 12);
    let layout = ModelLayout::new(&cfg);
    let single = load_weights(dir.path(), &layout.layout).unwrap();
    assert_eq!(single, tiny::random_weights(&cfg, 12, 0.2));

    // Re-shard: layers 0 in one file, everything else in another, with an index.
    let sharded = tempfile::tempdir().unwrap();
    let (a, b): (Vec<_>, Vec<_>) = layout
        .layout
        .tensors
        .iter()
        .partition(|t| t.name.contains("layers.0."));
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", &a),
        ("model-00002-of-00002.safetensors", &b),
    ] {
        let bytes = sqlrft_model::params::serialize_tensors(
            part.iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice(), &single[t.range()])),
            sqlrft_model::params::SaveDtype::Bf16,
            None,
        )
        .unwrap();
        std::fs::write(sharded.path().join(file), bytes).unwrap();
        for t in part.iter() {
            map.insert(t.name.clone(), file.into());
        }
    }
    std::fs::write(
        sharded.path().join("model.safetensors.index.json"),
        serde_json::json!({"weight_map": map}).to_string(),
    )
    .unwrap();
    let loaded = load_weights(sharded.path(), &layout.layout).unwrap();
    for (x, y) in loaded.iter().zip(&single) {
        assert!(
            (x - y).abs() <= y.abs() / 128.0 + 1e-6,
            "bf16 shard value {x} too far from {y}"
        );
    }
    std::fs::remove_file(sharded.path().join("model-00002-of-00002.safetensors")).unwrap();
    let err = load_weights(sharded.path(), &layout.layout).unwrap_err();
    assert!(
        format!("{err:#}").contains("model-00002-of-00002.safetensors"),
        "{err:#}"
    );
}

#[test]
fn chat_template_renders_and_tokens_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = tiny::write_model(dir.path(), Family::Qwen2, 1);
    let tok = ChatTokenizer::load(dir.path(), &cfg.eos_token_ids).unwrap();
    let msgs = vec![
        ChatMessage {
            role: "system".into(),
            content: "Answer with SQL.".into(),
        },
        ChatMessage {
            role: "user".into(),
            content: "How many orders?".into(),
        },
    ];
    let text = tok.render(&msgs, true).unwrap();
    assert_eq!(
        text,
        "<|im_start|>system\nAnswer with SQL.<|im_end|>\n<|im_start|>user\nHow many orders?<|im_end|>\n<|im_start|>assistant\n"
    );
    let ids = tok.encode(&text).unwrap();
    let im_end = cfg.eos_token_ids[0];
    assert_eq!(
        ids.iter().filter(|&&t| t == im_end).count(),
        2,
        "special tokens are single ids"
    );
    assert!(tok.eos_ids.contains(&im_end));
    let answer = tok.encode("<think>x</think><sql>SELECT 1</sql>").unwrap();
    assert_eq!(
        tok.decode(&answer).unwrap(),
        "<think>x</think><sql>SELECT 1</sql>"
    );
}

#[test]
fn chat_templates_render_as_transformers_renders_them() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/tests/fixtures/chat_template_golden.json"
    );
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let dir = tempfile::tempdir().unwrap();
    tiny::write_tokenizer(dir.path());
    let config = serde_json::json!({
        "bos_token": golden["bos_token"], "eos_token": golden["eos_token"], "chat_template": golden["template"],
    });
    std::fs::write(dir.path().join("tokenizer_config.json"), config.to_string()).unwrap();
    let tok = ChatTokenizer::load(dir.path(), &[]).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let messages: Vec<ChatMessage> = case["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage {
                role: m["role"].as_str().unwrap().into(),
                content: m["content"].as_str().unwrap().into(),
            })
            .collect();
        let got = tok
            .render(&messages, case["add_generation_prompt"].as_bool().unwrap())
            .unwrap();
        assert_eq!(
            got,
            case["expected"].as_str().unwrap(),
            "case {}",
            case["name"]
        );
    }
    let bad = vec![ChatMessage {
        role: "tool".into(),
        content: "x".into(),
    }];
    let err = format!("{:#}", tok.render(&bad, true).unwrap_err());
    assert!(err.contains("unexpected role tool"), "{err}");
}

#[test]
fn chat_template_jinja_wins_and_a_missing_template_is_an_error_not_chatml() {
    let dir = tempfile::tempdir().unwrap();
    tiny::write_tokenizer(dir.path());
    let msgs = vec![ChatMessage {
        role: "user".into(),
        content: "hi".into(),
    }];
    std::fs::write(
        dir.path().join("chat_template.jinja"),
        "{% for m in messages %}[{{ m['role'] }}] {{ m['content'] }}{% endfor %}",
    )
    .unwrap();
    let tok = ChatTokenizer::load(dir.path(), &[]).unwrap();
    assert_eq!(tok.render(&msgs, false).unwrap(), "[user] hi");

    std::fs::remove_file(dir.path().join("chat_template.jinja")).unwrap();
    std::fs::write(
        dir.path().join("tokenizer_config.json"),
        r#"{"eos_token": "<|im_end|>"}"#,
    )
    .unwrap();
    let tok = ChatTokenizer::load(dir.path(), &[]).unwrap();
    let err = format!("{:#}", tok.render(&msgs, true).unwrap_err());
    assert!(
        err.contains("no chat template") && err.contains("chat_template.jinja"),
        "{err}"
    );
}
