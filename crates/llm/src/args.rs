//! The flags of every command that asks an LLM (`build --llm`, `distill`, `eval`): one spelling
//! for all, over the `[llm]` table of sqlrft.toml and `SQLRFT_LLM_*` environment variables.

use std::path::Path;
use std::time::Duration;

use clap::Args;
use serde::{Serialize, Serializer};
use sqlrft_core::config::{ConfigError, load_with_env};

use crate::config::{LlmConfig, Provider, TokenLimitField};

/// LLM client flags. Each serializes only when given, so it overrides the config file and the
/// environment without resetting what they set; unset everywhere, [`LlmConfig::default`] holds.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize)]
pub struct LlmArgs {
    /// OpenAI-compatible endpoint family, case-insensitive [default: openai].
    #[arg(
        id = "llm_provider",
        long = "llm-provider",
        value_enum,
        ignore_case = true,
        value_name = "PROVIDER"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<Provider>,
    /// Model, as the provider names it (e.g. gpt-4o-mini, meta-llama/Llama-3.1-70B-Instruct).
    #[arg(id = "llm_model", long = "llm-model", value_name = "MODEL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// Base URL in place of the provider's, e.g. http://gpu-box:8000/v1 [default for openai:
    /// $OPENAI_BASE_URL].
    #[arg(id = "llm_base_url", long = "llm-base-url", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub base_url: Option<String>,
    /// Environment variable holding the API key [default: the provider's, e.g. OPENAI_API_KEY].
    #[arg(id = "llm_api_key_env", long = "llm-api-key-env", value_name = "VAR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub api_key_env: Option<String>,
    /// Requests in flight at once [default: 16].
    #[arg(id = "llm_concurrency", long = "llm-concurrency", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// Retries on 429, 5xx, timeouts and connection errors [default: 3].
    #[arg(id = "llm_retries", long = "llm-retries", value_name = "N")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retries: Option<u32>,
    /// Seconds before one request is abandoned [default: 300].
    #[arg(id = "llm_timeout", long = "llm-timeout", value_name = "SECONDS", value_parser = positive_seconds)]
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "seconds_as_duration"
    )]
    pub timeout: Option<f64>,
    /// Sampling temperature [default: the command's, else the server's].
    #[arg(id = "llm_temperature", long = "llm-temperature", value_name = "T")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub temperature: Option<f32>,
    /// Longest completion, in tokens [default: the command's, else the server's].
    #[arg(id = "llm_max_tokens", long = "llm-max-tokens", value_name = "TOKENS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_tokens: Option<u32>,
    /// The request field the length limit goes in [default: max_completion_tokens for openai,
    /// whose reasoning models reject max_tokens; max_tokens for the others].
    #[arg(
        id = "llm_token_limit_field",
        long = "llm-token-limit-field",
        value_enum,
        value_name = "FIELD"
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token_limit_field: Option<TokenLimitField>,
    /// Sampling seed (not every provider honours it).
    #[arg(id = "llm_seed", long = "llm-seed", value_name = "SEED")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seed: Option<u64>,
    /// US dollars per million prompt tokens, for the cost estimate.
    #[arg(id = "llm_price_input", long = "llm-price-input", value_name = "USD")]
    #[serde(
        rename = "price_input_per_million",
        skip_serializing_if = "Option::is_none"
    )]
    pub price_input: Option<f64>,
    /// US dollars per million completion tokens, for the cost estimate.
    #[arg(id = "llm_price_output", long = "llm-price-output", value_name = "USD")]
    #[serde(
        rename = "price_output_per_million",
        skip_serializing_if = "Option::is_none"
    )]
    pub price_output: Option<f64>,
}

impl LlmArgs {
    /// The config-file table and environment prefix these flags layer over: `[llm]`,
    /// `SQLRFT_LLM_*`.
    pub const SECTION: &'static str = "llm";

    /// Merges [`LlmConfig::default`], `[llm]` of `config_file` (or `./sqlrft.toml`),
    /// `SQLRFT_LLM_*` and these flags.
    pub fn resolve(&self, config_file: Option<&Path>) -> Result<LlmConfig, ConfigError> {
        sqlrft_core::config::load(Self::SECTION, config_file, &[], self)
    }

    /// [`resolve`](Self::resolve) with the environment given (for tests).
    pub fn resolve_with_env(
        &self,
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<LlmConfig, ConfigError> {
        load_with_env(Self::SECTION, config_file, &[], self, env)
    }
}

fn positive_seconds(value: &str) -> Result<f64, String> {
    match value.trim().parse::<f64>() {
        Ok(secs) if secs.is_finite() && secs > 0.0 => Ok(secs),
        _ => Err(format!(
            "`{value}` is not a positive number of seconds (e.g. 300)"
        )),
    }
}

/// `LlmConfig::timeout` is a humantime duration (`"300s"`) in files and the environment.
fn seconds_as_duration<S: Serializer>(
    secs: &Option<f64>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    match secs {
        Some(secs) => {
            let duration = Duration::try_from_secs_f64(*secs).map_err(serde::ser::Error::custom)?;
            humantime_serde::serialize(&duration, serializer)
        }
        None => serializer.serialize_none(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use clap::Parser;
    use sqlrft_core::config::env_from as env;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        llm: LlmArgs,
    }

    fn parse(line: &[&str]) -> LlmArgs {
        Cli::try_parse_from(std::iter::once("x").chain(line.iter().copied()))
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .llm
    }

    #[test]
    fn file_then_env_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sqlrft.toml");
        std::fs::write(
            &file,
            "[llm]\nprovider = \"groq\"\nmodel = \"from-file\"\ntimeout = \"30s\"\nretries = 7\n",
        )
        .unwrap();
        let from_file = parse(&[]).resolve_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(
            (from_file.provider, from_file.model.as_str()),
            (Provider::Groq, "from-file")
        );
        assert_eq!(
            (from_file.timeout, from_file.retries),
            (Duration::from_secs(30), 7)
        );

        let vars = env(&[
            ("SQLRFT_LLM_MODEL", "from-env"),
            ("SQLRFT_LLM_TIMEOUT", "45s"),
        ]);
        let from_env = parse(&[])
            .resolve_with_env(Some(&file), vars.clone())
            .unwrap();
        assert_eq!(from_env.model, "from-env");
        assert_eq!(from_env.timeout, Duration::from_secs(45));
        assert_eq!(from_env.retries, 7);

        let flags = parse(&["--llm-model", "from-flag", "--llm-timeout", "1.5"]);
        let from_flags = flags.resolve_with_env(Some(&file), vars).unwrap();
        assert_eq!(from_flags.model, "from-flag");
        assert_eq!(from_flags.timeout, Duration::from_millis(1500));
        assert_eq!(from_flags.provider, Provider::Groq);
    }

    #[test]
    fn nothing_set_means_the_one_default() {
        let config = parse(&[]).resolve_with_env(None, env(&[])).unwrap();
        assert_eq!(config, LlmConfig::default());
        assert_eq!(config.provider, Provider::OpenAi);
        assert_eq!(config.timeout, Duration::from_secs(300));
    }

    #[test]
    fn bad_values_name_the_flag_or_the_key() {
        let err = Cli::try_parse_from(["x", "--llm-timeout", "0"])
            .err()
            .unwrap()
            .to_string();
        assert!(err.contains("--llm-timeout"), "{err}");
        let err = parse(&[])
            .resolve_with_env(None, env(&[("SQLRFT_LLM_PROVIDR", "groq")]))
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("providr") && err.contains("SQLRFT_LLM_"),
            "{err}"
        );
    }
}
