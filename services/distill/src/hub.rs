//! Where the Hugging Face Hub is and who we are there, as flags shared by distill and publish.

use std::path::PathBuf;

use clap::Args;
use sqlrft_hub::{HubClient, HubConfig};

/// Hub connection flags (each also read from its environment variable).
#[derive(Debug, Clone, Args)]
pub struct HubArgs {
    /// Hub base URL.
    #[arg(
        long = "hub-endpoint",
        env = "HF_ENDPOINT",
        default_value = "https://huggingface.co"
    )]
    pub endpoint: String,
    /// Hub access token (a write token to publish).
    #[arg(long = "hub-token", env = "HF_TOKEN", hide_env_values = true)]
    pub token: Option<String>,
    /// Download cache (default: `$HF_HOME/sqlrft` or `~/.cache/sqlrft/hub`).
    #[arg(long = "hub-cache", env = "SQLRFT_HUB_CACHE")]
    pub cache: Option<PathBuf>,
}

impl Default for HubArgs {
    fn default() -> Self {
        HubArgs {
            endpoint: "https://huggingface.co".into(),
            token: None,
            cache: None,
        }
    }
}

impl HubArgs {
    /// A client for these settings.
    pub fn client(&self) -> anyhow::Result<HubClient> {
        let mut config = HubConfig::from_env();
        config.endpoint = self.endpoint.trim_end_matches('/').to_string();
        config.token = self.token.clone().filter(|t| !t.trim().is_empty());
        if let Some(cache) = &self.cache {
            config.cache_dir = cache.clone();
        }
        Ok(HubClient::new(config)?)
    }
}
