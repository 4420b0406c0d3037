//! The GGUF tokenizer metadata (`tokenizer.ggml.*`, `tokenizer.chat_template`) as Hugging Face
//! tokenizer files: `tokenizer.json` (byte-level BPE), `tokenizer_config.json`,
//! `special_tokens_map.json`.

use crate::error::{Error, Result};
use crate::reader::{GgufFile, Value};
use serde_json::{Map, Value as Json, json};

/// llama.cpp's token types (`tokenizer.ggml.token_type`).
const CONTROL: i64 = 3;
const USER_DEFINED: i64 = 4;
const UNKNOWN: i64 = 2;

/// Llama 3's split: numbers in groups of up to three, case-insensitive contractions.
const LLAMA3_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";
/// Qwen2's split: Llama 3's with single digits.
const QWEN2_REGEX: &str = r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+";

/// How text is split before BPE, by llama.cpp's `tokenizer.ggml.pre` name.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum PreTokenizer {
    /// GPT-2's regex, built into tokenizers' ByteLevel (`gpt-2`).
    Gpt2,
    /// Every digit alone, then GPT-2's regex (`smollm`, `starcoder`, `refact`).
    DigitsThenGpt2,
    /// Llama 3's regex (`llama-bpe`).
    Llama3,
    /// Qwen2's regex (`qwen2`, `deepseek-r1-qwen`).
    Qwen2,
}

/// llama.cpp's `tokenizer.ggml.pre` names this importer knows.
const PRE_TOKENIZERS: &[(&str, PreTokenizer)] = &[
    ("gpt-2", PreTokenizer::Gpt2),
    ("smollm", PreTokenizer::DigitsThenGpt2),
    ("starcoder", PreTokenizer::DigitsThenGpt2),
    ("refact", PreTokenizer::DigitsThenGpt2),
    ("llama-bpe", PreTokenizer::Llama3),
    ("qwen2", PreTokenizer::Qwen2),
    ("deepseek-r1-qwen", PreTokenizer::Qwen2),
];

impl PreTokenizer {
    fn parse(file: &GgufFile) -> Result<Self> {
        let name = file
            .get("tokenizer.ggml.pre")
            .and_then(Value::as_str)
            .unwrap_or("default");
        PRE_TOKENIZERS
            .iter()
            .find(|(n, _)| *n == name)
            .map(|(_, p)| *p)
            .ok_or_else(|| Error::Unsupported {
                path: file.path().to_path_buf(),
                what: format!("pre-tokenizer `{name}` (tokenizer.ggml.pre) cannot be converted"),
                supported: format!(
                    "these are: {}",
                    PRE_TOKENIZERS
                        .iter()
                        .map(|(n, _)| *n)
                        .collect::<Vec<_>>()
                        .join(", ")
                ),
            })
    }

    fn json(self) -> Json {
        let split = |pattern: &str| json!({"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": false});
        // After a Split, ByteLevel only maps bytes to its printable alphabet.
        let bytes_only = |trim_offsets: bool| json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": trim_offsets, "use_regex": false});
        let gpt2 = || json!({"type": "ByteLevel", "add_prefix_space": false, "trim_offsets": true, "use_regex": true});
        match self {
            Self::Gpt2 => gpt2(),
            Self::DigitsThenGpt2 => json!({"type": "Sequence", "pretokenizers": [
                {"type": "Digits", "individual_digits": true}, gpt2()
            ]}),
            Self::Llama3 => {
                json!({"type": "Sequence", "pretokenizers": [split(LLAMA3_REGEX), bytes_only(true)]})
            }
            Self::Qwen2 => {
                json!({"type": "Sequence", "pretokenizers": [split(QWEN2_REGEX), bytes_only(false)]})
            }
        }
    }
}

/// The tokenizer files of a model directory.
pub struct TokenizerFiles {
    /// `tokenizer.json`.
    pub tokenizer: Json,
    /// `tokenizer_config.json`.
    pub config: Json,
    /// `special_tokens_map.json`.
    pub special_tokens_map: Json,
    /// `generation_config.json`.
    pub generation_config: Json,
}

/// Builds the tokenizer files from `file`'s metadata; `model_max_length` is the context length.
pub fn tokenizer_files(file: &GgufFile, model_max_length: u64) -> Result<TokenizerFiles> {
    let unsupported = |what: String| {
        Error::Unsupported {
        path: file.path().to_path_buf(),
        what,
        supported: "GPT-2 style byte-level BPE tokenizers (tokenizer.ggml.model `gpt2`: Llama 3, SmolLM, Qwen2) are converted".into(),
    }
    };
    let malformed = |reason: String| Error::Malformed {
        path: file.path().to_path_buf(),
        reason,
    };
    match file.get("tokenizer.ggml.model").and_then(Value::as_str) {
        Some("gpt2") => {}
        Some("llama") => {
            return Err(unsupported(
                "tokenizer model `llama` (SentencePiece) cannot be converted".into(),
            ));
        }
        Some(other) => {
            return Err(unsupported(format!(
                "tokenizer model `{other}` cannot be converted"
            )));
        }
        None => {
            return Err(unsupported(
                "the file has no tokenizer (tokenizer.ggml.model)".into(),
            ));
        }
    }
    let strings = |key: &str| -> Result<Vec<&str>> {
        file.get(key)
            .and_then(Value::as_array)
            .ok_or_else(|| malformed(format!("`{key}` is missing or not an array")))?
            .iter()
            .map(|v| {
                v.as_str()
                    .ok_or_else(|| malformed(format!("`{key}` holds a non-string")))
            })
            .collect()
    };
    let tokens = strings("tokenizer.ggml.tokens")?;
    let merges = strings("tokenizer.ggml.merges")?;
    let types: Vec<i64> = match file
        .get("tokenizer.ggml.token_type")
        .and_then(Value::as_array)
    {
        Some(t) => t.iter().map(|v| v.as_f64().unwrap_or(1.0) as i64).collect(),
        None => vec![1; tokens.len()],
    };
    let pre = PreTokenizer::parse(file)?;
    let special_id = |key: &str| {
        file.get(&format!("tokenizer.ggml.{key}"))
            .and_then(Value::as_u64)
            .filter(|&id| (id as usize) < tokens.len())
    };
    let text_of = |id: Option<u64>| id.map(|i| tokens[i as usize].to_string());
    let bos = special_id("bos_token_id");
    let add_bos = file
        .get("tokenizer.ggml.add_bos_token")
        .and_then(Value::as_bool)
        .unwrap_or(false);
    let add_eos = file
        .get("tokenizer.ggml.add_eos_token")
        .and_then(Value::as_bool)
        .unwrap_or(false);

    let mut vocab = Map::new();
    for (id, t) in tokens.iter().enumerate() {
        vocab.entry(t.to_string()).or_insert(id.into());
    }
    let mut added = Vec::new();
    let mut added_decoder = Map::new();
    for (id, (t, ty)) in tokens.iter().zip(&types).enumerate() {
        if matches!(*ty, CONTROL | USER_DEFINED | UNKNOWN) {
            let special = *ty != USER_DEFINED;
            added.push(
                json!({"id": id, "content": t, "single_word": false, "lstrip": false,
                              "rstrip": false, "normalized": false, "special": special}),
            );
            added_decoder.insert(
                id.to_string(),
                json!({"content": t, "single_word": false,
                "lstrip": false, "rstrip": false, "normalized": false, "special": special}),
            );
        }
    }
    let post_processor = match (add_bos, &text_of(bos)) {
        (true, Some(b)) => json!({
            "type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": b, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": b, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {b.as_str(): {"id": b, "ids": [bos], "tokens": [b]}}
        }),
        _ => {
            json!({"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": false, "use_regex": true})
        }
    };
    let tokenizer = json!({
        "version": "1.0",
        "truncation": null,
        "padding": null,
        "added_tokens": added,
        // Qwen2's own tokenizer normalizes to NFC; the others do not normalize.
        "normalizer": if pre == PreTokenizer::Qwen2 { json!({"type": "NFC"}) } else { Json::Null },
        "pre_tokenizer": pre.json(),
        "post_processor": post_processor,
        "decoder": {"type": "ByteLevel", "add_prefix_space": true, "trim_offsets": true, "use_regex": true},
        "model": {
            "type": "BPE", "dropout": null, "unk_token": null, "continuing_subword_prefix": null,
            "end_of_word_suffix": null, "fuse_unk": false, "byte_fallback": false,
            // Llama 3 takes a whole pre-token that is in the vocabulary as is.
            "ignore_merges": pre == PreTokenizer::Llama3,
            "vocab": vocab,
            "merges": merges,
        }
    });
    // Fail here, naming the file, rather than when the trainer first loads the directory.
    tokenizer
        .to_string()
        .parse::<tokenizers::Tokenizer>()
        .map_err(|e| {
            malformed(format!(
                "its tokenizer metadata does not make a valid tokenizer.json: {e}"
            ))
        })?;

    let mut special = Map::new();
    for (key, name) in [
        ("bos_token_id", "bos_token"),
        ("eos_token_id", "eos_token"),
        ("unknown_token_id", "unk_token"),
        ("padding_token_id", "pad_token"),
    ] {
        if let Some(t) = text_of(special_id(key)) {
            special.insert(name.into(), t.into());
        }
    }
    let mut config = json!({
        "add_bos_token": add_bos,
        "add_eos_token": add_eos,
        "added_tokens_decoder": added_decoder,
        "clean_up_tokenization_spaces": false,
        "model_max_length": model_max_length,
        "tokenizer_class": "PreTrainedTokenizerFast",
    });
    for (k, v) in &special {
        config[k] = v.clone();
    }
    if let Some(template) = file.get("tokenizer.chat_template").and_then(Value::as_str) {
        config["chat_template"] = template.into();
    }
    let mut generation_config = json!({});
    for (key, name) in [
        ("bos_token_id", "bos_token_id"),
        ("eos_token_id", "eos_token_id"),
        ("padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = special_id(key) {
            generation_config[name] = id.into();
        }
    }
    Ok(TokenizerFiles {
        tokenizer,
        config,
        special_tokens_map: Json::Object(special),
        generation_config,
    })
}
