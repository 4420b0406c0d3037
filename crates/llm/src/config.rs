//! Where the teacher lives and how hard we may lean on it.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// A hosted or self-hosted OpenAI-compatible endpoint family.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "lowercase")]
pub enum Provider {
    /// api.openai.com (or `OPENAI_BASE_URL`): the default.
    #[cfg_attr(feature = "clap", value(name = "openai"))]
    #[default]
    OpenAi,
    /// A local or self-hosted vLLM (`vllm serve`), OpenAI-compatible on port 8000.
    Vllm,
    /// Groq's OpenAI-compatible API.
    Groq,
    /// Hugging Face Inference Providers router.
    #[cfg_attr(feature = "clap", value(name = "huggingface", alias = "hf"))]
    HuggingFace,
    /// Fireworks AI.
    Fireworks,
}

impl Provider {
    /// Every provider, for help texts and exhaustive tests.
    pub const ALL: [Provider; 5] = [
        Provider::OpenAi,
        Provider::Vllm,
        Provider::Groq,
        Provider::HuggingFace,
        Provider::Fireworks,
    ];

    /// The provider's OpenAI-compatible base URL (the part before `/chat/completions`).
    pub fn default_base_url(self) -> &'static str {
        match self {
            Provider::OpenAi => "https://api.openai.com/v1",
            Provider::Vllm => "http://localhost:8000/v1",
            Provider::Groq => "https://api.groq.com/openai/v1",
            Provider::HuggingFace => "https://router.huggingface.co/v1",
            Provider::Fireworks => "https://api.fireworks.ai/inference/v1",
        }
    }

    /// Name of the environment variable that conventionally overrides the base URL, as the
    /// provider's own SDKs read it.
    pub fn base_url_env(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("OPENAI_BASE_URL"),
            _ => None,
        }
    }

    /// Which request field limits the completion's length. OpenAI's reasoning models reject
    /// `max_tokens` and every OpenAI model takes `max_completion_tokens`; the other providers'
    /// OpenAI-compatible APIs are sure to take `max_tokens`.
    pub fn default_token_limit_field(self) -> TokenLimitField {
        match self {
            Provider::OpenAi => TokenLimitField::MaxCompletionTokens,
            _ => TokenLimitField::MaxTokens,
        }
    }

    /// Name of the environment variable that conventionally holds the provider's API key.
    /// vLLM runs without a key unless started with `--api-key`.
    pub fn default_api_key_env(self) -> Option<&'static str> {
        match self {
            Provider::OpenAi => Some("OPENAI_API_KEY"),
            Provider::Vllm => None,
            Provider::Groq => Some("GROQ_API_KEY"),
            Provider::HuggingFace => Some("HF_TOKEN"),
            Provider::Fireworks => Some("FIREWORKS_API_KEY"),
        }
    }

    /// The lowercase name used on the command line and in config files.
    pub fn name(self) -> &'static str {
        match self {
            Provider::OpenAi => "openai",
            Provider::Vllm => "vllm",
            Provider::Groq => "groq",
            Provider::HuggingFace => "huggingface",
            Provider::Fireworks => "fireworks",
        }
    }
}

impl fmt::Display for Provider {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Provider {
    type Err = String;

    /// Case-insensitive, so the seed project's spellings (`vLLM`, `OpenAI`, `HuggingFace`) work.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let wanted = s.trim().to_ascii_lowercase().replace(['-', '_'], "");
        Provider::ALL
            .into_iter()
            .find(|p| p.name() == wanted || (wanted == "hf" && *p == Provider::HuggingFace))
            .ok_or_else(|| {
                let names: Vec<_> = Provider::ALL.iter().map(|p| p.name()).collect();
                format!(
                    "unknown provider `{s}`; expected one of {}",
                    names.join(", ")
                )
            })
    }
}

/// The request field that carries the completion length limit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[cfg_attr(feature = "clap", derive(clap::ValueEnum))]
#[serde(rename_all = "snake_case")]
pub enum TokenLimitField {
    /// `max_tokens`: what most OpenAI-compatible servers take.
    #[cfg_attr(feature = "clap", value(name = "max_tokens"))]
    MaxTokens,
    /// `max_completion_tokens`: what OpenAI takes (and its reasoning models require).
    #[cfg_attr(feature = "clap", value(name = "max_completion_tokens"))]
    MaxCompletionTokens,
}

/// Client settings. Every field has a default, so a config file may name only what differs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LlmConfig {
    /// Endpoint family; supplies the default base URL and API-key variable.
    pub provider: Provider,
    /// Overrides the provider's base URL (e.g. `http://gpu-box:8000/v1`).
    pub base_url: Option<String>,
    /// Model name sent with every request.
    pub model: String,
    /// Name of the environment variable holding the API key; `None` uses the provider's.
    pub api_key_env: Option<String>,
    /// Requests in flight at once.
    pub max_concurrency: usize,
    /// Retries after the first attempt on 429, 5xx, timeouts and connection errors.
    pub retries: u32,
    /// Per-request timeout.
    #[serde(with = "humantime_serde")]
    pub timeout: Duration,
    /// First backoff delay; doubles on every retry, with jitter.
    #[serde(with = "humantime_serde")]
    pub backoff_base: Duration,
    /// Longest backoff delay, and the longest `Retry-After` we honour.
    #[serde(with = "humantime_serde")]
    pub backoff_max: Duration,
    /// Default sampling temperature.
    pub temperature: Option<f32>,
    /// Default nucleus-sampling mass.
    pub top_p: Option<f32>,
    /// Default completion length limit.
    pub max_tokens: Option<u32>,
    /// The request field the limit goes in; `None` uses the provider's (see
    /// [`Provider::default_token_limit_field`]).
    pub token_limit_field: Option<TokenLimitField>,
    /// Default sampling seed (not every provider honours it).
    pub seed: Option<u64>,
    /// US dollars per million prompt tokens, for cost estimates.
    pub price_input_per_million: Option<f64>,
    /// US dollars per million completion tokens, for cost estimates.
    pub price_output_per_million: Option<f64>,
}

impl Default for LlmConfig {
    fn default() -> Self {
        LlmConfig {
            provider: Provider::default(),
            base_url: None,
            model: String::new(),
            api_key_env: None,
            max_concurrency: 16,
            retries: 3,
            // Long enough for a reasoning teacher's few thousand tokens; a hung call still ends.
            timeout: Duration::from_secs(300),
            backoff_base: Duration::from_millis(500),
            backoff_max: Duration::from_secs(60),
            temperature: None,
            top_p: None,
            max_tokens: None,
            token_limit_field: None,
            seed: None,
            price_input_per_million: None,
            price_output_per_million: None,
        }
    }
}

impl LlmConfig {
    /// Defaults for `provider` serving `model`.
    pub fn new(provider: Provider, model: impl Into<String>) -> Self {
        LlmConfig {
            provider,
            model: model.into(),
            ..LlmConfig::default()
        }
    }

    /// The base URL requests go to, without a trailing slash: `base_url`, else the provider's
    /// environment variable (`OPENAI_BASE_URL`) as `env` reads it, else the provider's default.
    pub fn resolved_base_url(&self, env: impl Fn(&str) -> Option<String>) -> String {
        let from_env = || {
            self.provider
                .base_url_env()
                .and_then(&env)
                .filter(|url| !url.trim().is_empty())
        };
        self.base_url
            .clone()
            .or_else(from_env)
            .unwrap_or_else(|| self.provider.default_base_url().to_string())
            .trim()
            .trim_end_matches('/')
            .to_string()
    }

    /// The request field the completion length limit goes in.
    pub fn resolved_token_limit_field(&self) -> TokenLimitField {
        self.token_limit_field
            .unwrap_or(self.provider.default_token_limit_field())
    }

    /// The environment variable the API key is read from, if any.
    pub fn resolved_api_key_env(&self) -> Option<String> {
        self.api_key_env
            .clone()
            .or_else(|| self.provider.default_api_key_env().map(str::to_string))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn provider_names_parse_case_insensitively() {
        assert_eq!("vLLM".parse::<Provider>(), Ok(Provider::Vllm));
        assert_eq!("OpenAI".parse::<Provider>(), Ok(Provider::OpenAi));
        assert_eq!("HuggingFace".parse::<Provider>(), Ok(Provider::HuggingFace));
        assert_eq!(
            "hugging-face".parse::<Provider>(),
            Ok(Provider::HuggingFace)
        );
        for p in Provider::ALL {
            assert_eq!(p.name().parse::<Provider>(), Ok(p));
        }
    }

    #[test]
    fn unknown_provider_error_lists_the_choices() {
        let err = "anthropicc".parse::<Provider>().unwrap_err();
        assert!(
            err.contains("anthropicc") && err.contains("fireworks"),
            "{err}"
        );
    }

    #[test]
    fn base_url_override_wins_and_loses_trailing_slash() {
        let no_env = |_: &str| None;
        let mut c = LlmConfig::new(Provider::Groq, "m");
        assert_eq!(
            c.resolved_base_url(no_env),
            "https://api.groq.com/openai/v1"
        );
        c.base_url = Some("http://127.0.0.1:9/v1/".into());
        assert_eq!(c.resolved_base_url(no_env), "http://127.0.0.1:9/v1");
    }

    #[test]
    fn openai_base_url_env_applies_to_openai_only_and_loses_to_the_config() {
        let env =
            |name: &str| (name == "OPENAI_BASE_URL").then(|| "http://proxy:1/v1/".to_string());
        let mut c = LlmConfig::new(Provider::OpenAi, "m");
        assert_eq!(c.resolved_base_url(env), "http://proxy:1/v1");
        assert_eq!(
            LlmConfig::new(Provider::Groq, "m").resolved_base_url(env),
            Provider::Groq.default_base_url()
        );
        c.base_url = Some("http://mine:2/v1".into());
        assert_eq!(c.resolved_base_url(env), "http://mine:2/v1");
    }

    #[test]
    fn openai_gets_max_completion_tokens_unless_configured() {
        let mut c = LlmConfig::new(Provider::OpenAi, "o3-mini");
        assert_eq!(
            c.resolved_token_limit_field(),
            TokenLimitField::MaxCompletionTokens
        );
        c.token_limit_field = Some(TokenLimitField::MaxTokens);
        assert_eq!(c.resolved_token_limit_field(), TokenLimitField::MaxTokens);
        assert_eq!(
            LlmConfig::new(Provider::Vllm, "m").resolved_token_limit_field(),
            TokenLimitField::MaxTokens
        );
    }

    #[test]
    fn api_key_env_defaults_per_provider() {
        assert_eq!(
            LlmConfig::new(Provider::Fireworks, "m").resolved_api_key_env(),
            Some("FIREWORKS_API_KEY".into())
        );
        assert_eq!(
            LlmConfig::new(Provider::Vllm, "m").resolved_api_key_env(),
            None
        );
        let mut c = LlmConfig::new(Provider::Vllm, "m");
        c.api_key_env = Some("MY_KEY".into());
        assert_eq!(c.resolved_api_key_env(), Some("MY_KEY".into()));
    }

    #[test]
    fn config_deserialises_with_partial_fields_and_humane_durations() {
        let c: LlmConfig = serde_json::from_str(
            r#"{"provider":"fireworks","model":"x","timeout":"30s","max_concurrency":4}"#,
        )
        .unwrap();
        assert_eq!(c.provider, Provider::Fireworks);
        assert_eq!(c.timeout, Duration::from_secs(30));
        assert_eq!(c.max_concurrency, 4);
        assert_eq!(c.retries, LlmConfig::default().retries);
    }
}
