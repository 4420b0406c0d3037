//! The Hub flags every command that downloads or publishes shares (`distill`, `publish`,
//! `train`), over `[hub]` in sqlrft.toml, the Hub's own `HF_ENDPOINT`/`HF_TOKEN`, and
//! `SQLRFT_HUB_*`.

use std::path::{Path, PathBuf};

use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_core::config::{ConfigError, load_with_env, process_env};

use crate::client::{HubClient, HubConfig, HubError};

/// Where the Hub is, who we are there, and where downloads are cached. Each flag serializes
/// only when given, so it overrides the file and the environment without resetting them.
#[derive(Debug, Clone, Default, PartialEq, Args, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HubArgs {
    /// Hub base URL [env: HF_ENDPOINT; default: https://huggingface.co].
    #[arg(long = "hub-endpoint", value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub endpoint: Option<String>,
    /// Hub access token (a write token to publish) [env: HF_TOKEN]. Prefer the environment
    /// variable: a flag's value is visible to every user in `ps`.
    #[arg(long = "hub-token", value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Download cache, shared with Python's `huggingface_hub` [env: HF_HUB_CACHE,
    /// SQLRFT_HUB_CACHE; default: $HF_HOME/hub or ~/.cache/huggingface/hub].
    #[arg(long = "hub-cache", value_name = "DIR")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cache: Option<PathBuf>,
}

/// The Hub's own variables, below `SQLRFT_HUB_*`; `HF_TOKEN` wins over the older name.
const HUB_ENV: [(&str, &str); 4] = [
    ("HF_ENDPOINT", "endpoint"),
    ("HF_HUB_CACHE", "cache"),
    ("HUGGING_FACE_HUB_TOKEN", "token"),
    ("HF_TOKEN", "token"),
];

impl HubArgs {
    /// The config-file table and environment prefix: `[hub]`, `SQLRFT_HUB_*`.
    pub const SECTION: &'static str = "hub";

    /// Merges `[hub]` of `config_file` (or `./sqlrft.toml`), `HF_ENDPOINT`/`HF_TOKEN`,
    /// `SQLRFT_HUB_*` and these flags.
    pub fn resolve(&self, config_file: Option<&Path>) -> Result<HubArgs, ConfigError> {
        self.resolve_with_env(config_file, process_env())
    }

    /// [`resolve`](Self::resolve) with the environment given (for tests).
    pub fn resolve_with_env(
        &self,
        config_file: Option<&Path>,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<HubArgs, ConfigError> {
        load_with_env(Self::SECTION, config_file, &HUB_ENV, self, env)
    }

    /// A client for the merged settings (see [`resolve`](Self::resolve)), with
    /// [`HubConfig::from_env`]'s retries and timeouts.
    pub fn client(&self, config_file: Option<&Path>) -> Result<HubClient, HubArgsError> {
        let settings = self.resolve(config_file)?;
        Ok(HubClient::new(settings.config())?)
    }

    /// These settings over [`HubConfig::from_env`]'s defaults.
    pub fn config(&self) -> HubConfig {
        let mut config = HubConfig::from_env();
        config.endpoint = self
            .endpoint
            .as_deref()
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .unwrap_or("https://huggingface.co")
            .trim_end_matches('/')
            .to_string();
        config.token = self
            .token
            .as_deref()
            .map(str::trim)
            .filter(|t| !t.is_empty())
            .map(str::to_string)
            .or_else(crate::client::token_from_file);
        if let Some(cache) = &self.cache {
            config.cache_dir = cache.clone();
        }
        config
    }
}

/// Why [`HubArgs::client`] could not make a client.
#[derive(Debug, thiserror::Error)]
pub enum HubArgsError {
    /// A `[hub]` value or `SQLRFT_HUB_*` variable is wrong.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The HTTP client could not be built.
    #[error(transparent)]
    Hub(#[from] HubError),
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlrft_core::config::env_from as env;

    #[test]
    fn file_then_hub_variables_then_sqlrft_variables_then_flags() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("sqlrft.toml");
        std::fs::write(
            &file,
            "[hub]\nendpoint = \"http://file:1\"\ncache = \"/file/cache\"\n",
        )
        .unwrap();
        let none = HubArgs::default();
        let from_file = none.resolve_with_env(Some(&file), env(&[])).unwrap();
        assert_eq!(from_file.endpoint.as_deref(), Some("http://file:1"));
        assert_eq!(from_file.token, None);

        let vars = env(&[
            ("HF_ENDPOINT", "http://hf:2"),
            ("HUGGING_FACE_HUB_TOKEN", "old"),
            ("HF_TOKEN", "hf_new"),
            ("HF_HUB_CACHE", "/hf/cache"),
            ("SQLRFT_HUB_CACHE", "/env/cache"),
        ]);
        let hf_cache = none
            .resolve_with_env(Some(&file), env(&[("HF_HUB_CACHE", "/hf/cache")]))
            .unwrap();
        assert_eq!(hf_cache.cache, Some(PathBuf::from("/hf/cache")));
        let from_env = none.resolve_with_env(Some(&file), vars.clone()).unwrap();
        assert_eq!(from_env.endpoint.as_deref(), Some("http://hf:2"));
        assert_eq!(from_env.token.as_deref(), Some("hf_new"));
        assert_eq!(from_env.cache, Some(PathBuf::from("/env/cache")));

        let flags = HubArgs {
            endpoint: Some("http://flag:3/".into()),
            ..HubArgs::default()
        };
        let merged = flags.resolve_with_env(Some(&file), vars).unwrap();
        assert_eq!(merged.config().endpoint, "http://flag:3");
        assert_eq!(merged.config().token.as_deref(), Some("hf_new"));
        assert_eq!(merged.config().cache_dir, PathBuf::from("/env/cache"));
    }

    #[test]
    fn nothing_set_is_the_public_hub_without_a_token() {
        let config = HubArgs::default()
            .resolve_with_env(None, env(&[]))
            .unwrap()
            .config();
        assert_eq!(config.endpoint, "https://huggingface.co");
        // No token given: only what `hf auth login` saved, if anything.
        assert_eq!(config.token, crate::client::token_from_file());
    }
}
