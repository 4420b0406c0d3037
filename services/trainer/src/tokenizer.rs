//! A model directory's `tokenizer.json` plus its chat template (`chat_template.jinja`, else
//! `tokenizer_config.json`'s `chat_template`), rendered with minijinja the way transformers'
//! `apply_chat_template` renders it with jinja2.

use crate::rollout::ChatMessage;
use anyhow::{Context, Result, anyhow};
use std::path::Path;

/// Tokenizer, chat template and the end-of-sequence ids that stop a generation.
pub struct ChatTokenizer {
    tokenizer: tokenizers::Tokenizer,
    template: Option<String>,
    /// Where the template came from, or where none was found (for the error when rendering).
    template_source: String,
    bos_token: Option<String>,
    eos_token: Option<String>,
    /// Ids that end a completion: the tokenizer's EOS plus `config.json` / `generation_config.json`'s.
    pub eos_ids: Vec<u32>,
}

fn token_text(v: &serde_json::Value) -> Option<String> {
    match v {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Object(o) => o.get("content").and_then(|c| c.as_str()).map(String::from),
        _ => None,
    }
}

fn ids_of(v: &serde_json::Value) -> Vec<u32> {
    match v {
        serde_json::Value::Array(a) => a
            .iter()
            .filter_map(|x| x.as_u64())
            .map(|x| x as u32)
            .collect(),
        v => v.as_u64().map(|x| vec![x as u32]).unwrap_or_default(),
    }
}

/// The chat template of a model directory: `chat_template.jinja` (transformers ≥ 4.43 writes it)
/// wins over `tokenizer_config.json`'s `chat_template` (a string, or a list of named templates
/// of which "default" is used). Returns the template and a description of where it came from.
fn chat_template(
    dir: &Path,
    cfg_path: &Path,
    cfg: &serde_json::Value,
) -> Result<(Option<String>, String)> {
    let jinja = dir.join("chat_template.jinja");
    if jinja.exists() {
        let text = std::fs::read_to_string(&jinja)
            .with_context(|| format!("could not read `{}`", jinja.display()))?;
        let source = format!("`{}`", jinja.display());
        tracing::info!(template = %source, "chat template");
        return Ok((Some(text), source));
    }
    let template = match &cfg["chat_template"] {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Array(list) => list
            .iter()
            .find(|t| t["name"] == "default")
            .and_then(|t| t["template"].as_str())
            .map(String::from),
        _ => None,
    };
    match template {
        Some(t) => {
            let source = format!("`chat_template` of `{}`", cfg_path.display());
            tracing::info!(template = %source, "chat template");
            Ok((Some(t), source))
        }
        None => {
            let source = format!(
                "neither `{}` nor a `chat_template` in `{}`",
                jinja.display(),
                cfg_path.display()
            );
            tracing::warn!("no chat template: {source}");
            Ok((None, source))
        }
    }
}

impl ChatTokenizer {
    /// Loads `dir/tokenizer.json`, `dir/tokenizer_config.json` and (if present)
    /// `dir/generation_config.json`; `extra_eos` adds `config.json`'s EOS ids.
    pub fn load(dir: &Path, extra_eos: &[u32]) -> Result<Self> {
        let tok_path = dir.join("tokenizer.json");
        let tokenizer = tokenizers::Tokenizer::from_file(&tok_path)
            .map_err(|e| anyhow!("could not load tokenizer `{}`: {e}", tok_path.display()))?;
        let cfg_path = dir.join("tokenizer_config.json");
        let cfg: serde_json::Value = match std::fs::read_to_string(&cfg_path) {
            Ok(t) => serde_json::from_str(&t)
                .with_context(|| format!("invalid `{}`", cfg_path.display()))?,
            Err(_) => serde_json::Value::Null,
        };
        let (template, template_source) = chat_template(dir, &cfg_path, &cfg)?;
        let bos_token = token_text(&cfg["bos_token"]);
        let eos_token = token_text(&cfg["eos_token"]);
        let mut eos_ids: Vec<u32> = extra_eos.to_vec();
        if let Some(id) = eos_token.as_deref().and_then(|t| tokenizer.token_to_id(t)) {
            eos_ids.push(id);
        }
        if let Ok(t) = std::fs::read_to_string(dir.join("generation_config.json")) {
            let gen_cfg: serde_json::Value =
                serde_json::from_str(&t).context("invalid generation_config.json")?;
            eos_ids.extend(ids_of(&gen_cfg["eos_token_id"]));
        }
        eos_ids.sort_unstable();
        eos_ids.dedup();
        Ok(Self {
            tokenizer,
            template,
            template_source,
            bos_token,
            eos_token,
            eos_ids,
        })
    }

    /// Tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.tokenizer.get_vocab_size(true)
    }

    /// Renders `messages` with the chat template (`add_generation_prompt` opens the assistant
    /// turn). A model without a chat template is an error: guessing a format would train on
    /// text the model was never taught.
    pub fn render(&self, messages: &[ChatMessage], add_generation_prompt: bool) -> Result<String> {
        let msgs: Vec<serde_json::Value> = messages
            .iter()
            .map(|m| serde_json::json!({"role": m.role, "content": m.content}))
            .collect();
        let Some(template) = &self.template else {
            return Err(anyhow!(
                "the model has no chat template ({}); add `chat_template.jinja` or a \
                 `chat_template` entry in tokenizer_config.json",
                self.template_source
            ));
        };
        let mut env = minijinja::Environment::new();
        // transformers renders with jinja2's trim_blocks and lstrip_blocks on.
        env.set_syntax(
            minijinja::syntax::SyntaxConfig::builder()
                .trim_blocks(true)
                .lstrip_blocks(true)
                .build()?,
        );
        minijinja_contrib::add_to_environment(&mut env);
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.add_function(
            "raise_exception",
            |msg: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    msg,
                ))
            },
        );
        env.add_function("strftime_now", |fmt: String| {
            chrono::Utc::now().format(&fmt).to_string()
        });
        env.add_template("chat", template)
            .context("the chat template does not parse")?;
        let ctx = minijinja::context! {
            messages => minijinja::Value::from(minijinja::value::Serde(msgs)),
            add_generation_prompt => add_generation_prompt,
            bos_token => self.bos_token.clone().unwrap_or_default(),
            eos_token => self.eos_token.clone().unwrap_or_default(),
        };
        env.get_template("chat")?
            .render(ctx)
            .context("rendering the chat template failed")
    }

    /// Token ids of already-templated text (special tokens in the text are matched, none added).
    pub fn encode(&self, text: &str) -> Result<Vec<u32>> {
        let enc = self
            .tokenizer
            .encode(text, false)
            .map_err(|e| anyhow!("tokenization failed: {e}"))?;
        Ok(enc.get_ids().to_vec())
    }

    /// Text of `ids`, dropping special tokens (the EOS that ended a completion).
    pub fn decode(&self, ids: &[u32]) -> Result<String> {
        self.tokenizer
            .decode(ids, true)
            .map_err(|e| anyhow!("detokenization failed: {e}"))
    }
}
