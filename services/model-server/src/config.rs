//! `sqlrft model serve` settings: flags, `[model]` of sqlrft.toml, `SQLRFT_MODEL_*`, `PORT`.

use std::path::PathBuf;

use anyhow::{Result, bail};
use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_serve::ServeArgs;

/// Everything the server needs, after every configuration layer is merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ModelServerConfig {
    /// The model directory served.
    pub dir: PathBuf,
    /// The id clients name in `model` (default: the directory as given, as vLLM does).
    pub served_model_name: Option<String>,
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Bearer token required on /v1/* when set.
    pub token: Option<String>,
    /// Bytes of a request body before the server answers 413.
    pub max_body_bytes: usize,
    /// Prompts decoded together in one batch (requests that arrive together share it).
    pub max_batch_prompts: usize,
    /// Requests waiting for the model; more get 503 with Retry-After.
    pub max_queue: usize,
    /// Largest `max_tokens` a request may ask for (also the default of chat requests).
    pub max_tokens_limit: usize,
    /// Whether `/v1/load_lora_adapter` and `/v1/unload_lora_adapter` are served: loading an
    /// adapter reads files from the server's disk, so it is off unless asked for (vLLM's
    /// `VLLM_ALLOW_RUNTIME_LORA_UPDATING`).
    pub enable_lora: bool,
    /// Adapters to load at start, `NAME=DIR` (a PEFT adapter directory).
    pub lora: Vec<String>,
}

impl Default for ModelServerConfig {
    fn default() -> Self {
        ModelServerConfig {
            dir: PathBuf::new(),
            served_model_name: None,
            host: "127.0.0.1".into(),
            // vLLM's port, so clients written for `vllm serve` find it.
            port: 8000,
            token: None,
            max_body_bytes: 4 * 1024 * 1024,
            max_batch_prompts: 32,
            max_queue: 256,
            max_tokens_limit: 2048,
            enable_lora: false,
            lora: Vec::new(),
        }
    }
}

impl ModelServerConfig {
    /// The id clients use for the base model.
    pub fn model_name(&self) -> String {
        self.served_model_name
            .clone()
            .unwrap_or_else(|| self.dir.display().to_string())
    }

    /// The adapters to load at start, as (name, directory); the error names the bad entry.
    pub fn startup_adapters(&self) -> Result<Vec<(String, PathBuf)>> {
        self.lora
            .iter()
            .map(|entry| match entry.split_once('=') {
                Some((name, dir)) if !name.is_empty() && !dir.is_empty() => {
                    Ok((name.to_string(), PathBuf::from(dir)))
                }
                _ => bail!(
                    "--lora `{entry}`: expected NAME=DIR, a name for the adapter and its PEFT \
                     directory (from `sqlrft train export --adapter`)"
                ),
            })
            .collect()
    }

    /// Checks the settings hang together; the error names the flag to fix.
    pub fn validate(&self) -> Result<()> {
        if self.dir.as_os_str().is_empty() {
            bail!("no model directory: pass it as `sqlrft model serve DIR`");
        }
        for (flag, value) in [
            ("--max-batch-prompts", self.max_batch_prompts),
            ("--max-queue", self.max_queue),
            ("--max-tokens-limit", self.max_tokens_limit),
        ] {
            if value == 0 {
                bail!("{flag} must be at least 1");
            }
        }
        self.startup_adapters().map(drop)
    }
}

/// Serve a model directory through the OpenAI-compatible API vLLM speaks.
#[derive(Debug, Clone, Default, Args, Serialize)]
#[command(after_help = "Examples:\n  \
sqlrft model serve models/smollm2 --port 8000\n  \
sqlrft model serve models/base --enable-lora --lora sql=runs/adapter   (LoRA, hot reload)\n\n\
Endpoints: /v1/completions, /v1/chat/completions, /v1/models, /v1/load_lora_adapter, \
/v1/unload_lora_adapter, /health. Requests that arrive together decode as one batch.")]
pub struct ModelServeArgs {
    /// A Hugging Face model directory (config.json, *.safetensors, tokenizer.json), e.g. from
    /// `sqlrft train export` or `sqlrft model import-gguf`, or a Hub repo id (downloaded with
    /// HF_TOKEN; HF_ENDPOINT and [hub] of sqlrft.toml say from where).
    #[arg(value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub dir: Option<PathBuf>,
    /// The id clients name in `model` [default: DIR as given].
    #[arg(long, value_name = "NAME")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub served_model_name: Option<String>,
    /// Where to listen.
    #[command(flatten)]
    #[serde(flatten)]
    pub serve: ServeArgs,
    /// Prompts decoded together in one batch [default: 32].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch_prompts: Option<usize>,
    /// Requests waiting for the model before the server answers 503 [default: 256].
    #[arg(long, value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_queue: Option<usize>,
    /// Largest `max_tokens` a request may ask for; also chat's default [default: 2048].
    #[arg(long, value_name = "TOKENS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens_limit: Option<usize>,
    /// Serve /v1/load_lora_adapter and /v1/unload_lora_adapter (they read adapter files from
    /// this machine's disk).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub enable_lora: bool,
    /// Load this PEFT adapter at start as NAME=DIR (repeatable); requests name it in `model`.
    #[arg(long, value_name = "NAME=DIR")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub lora: Vec<String>,
}

impl ModelServeArgs {
    /// Merges defaults, `[model]` of the config file, `PORT`, `SQLRFT_MODEL_*` and these flags.
    pub fn resolve(&self) -> Result<ModelServerConfig> {
        sqlrft_core::config::load_service(
            "model",
            self.serve.config.as_deref(),
            self,
            ModelServerConfig::validate,
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ModelServeArgs,
    }

    fn resolve(line: &[&str]) -> Result<ModelServerConfig> {
        Cli::try_parse_from(std::iter::once("x").chain(line.iter().copied()))?
            .args
            .resolve()
    }

    #[test]
    fn flags_reach_the_config_over_the_defaults() {
        let config = resolve(&[
            "models/m",
            "--port",
            "0",
            "--max-batch-prompts",
            "4",
            "--enable-lora",
            "--lora",
            "a=runs/a",
            "--lora",
            "b=runs/b",
        ])
        .unwrap();
        assert_eq!((config.port, config.max_batch_prompts), (0, 4));
        assert!(config.enable_lora);
        assert_eq!(config.model_name(), "models/m");
        assert_eq!(
            config.startup_adapters().unwrap(),
            [
                ("a".to_string(), PathBuf::from("runs/a")),
                ("b".to_string(), PathBuf::from("runs/b"))
            ]
        );
        assert_eq!(
            config.max_queue,
            ModelServerConfig::default().max_queue,
            "what no layer sets keeps its default"
        );
    }

    #[test]
    fn bad_settings_name_the_flag() {
        for (line, says) in [
            (vec!["m", "--lora", "no-equals-sign"], "NAME=DIR"),
            (vec!["m", "--max-queue", "0"], "--max-queue"),
            (vec![], "sqlrft model serve DIR"),
        ] {
            let err = format!("{:#}", resolve(&line).unwrap_err());
            assert!(err.contains(says), "{line:?}: {err}");
        }
    }
}
