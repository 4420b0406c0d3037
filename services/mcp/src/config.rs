//! `sqlrft mcp serve` settings: flags, `[mcp]` in sqlrft.toml, `SQLRFT_MCP_*`, and `PORT`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_duck::{Limits, PoolOptions};

/// Everything the server needs to run, after all configuration layers are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// DuckDB file to serve (read-only).
    pub db: Option<PathBuf>,
    /// Serve the built-in demo database instead of `db`.
    pub demo: bool,
    pub host: String,
    pub port: u16,
    /// Open read-only connections (queries run side by side up to this many).
    pub connections: usize,
    /// Requests allowed to wait for a connection before the server answers 503.
    pub max_waiting: usize,
    pub timeout_secs: f64,
    /// Rows kept in `structuredContent` (the text table always stops at 1,024).
    pub max_rows: usize,
    pub max_result_bytes: usize,
    pub max_body_bytes: usize,
    /// Bearer token required on /mcp when set.
    pub token: Option<String>,
    /// Host header values accepted; empty = loopback names when bound to loopback, else any.
    pub allowed_hosts: Vec<String>,
    /// Browser origins accepted (`scheme://host:port`, `:*` for any port); `*` disables the check.
    pub allowed_origins: Vec<String>,
    /// Keep MCP sessions (Mcp-Session-Id) instead of answering every request statelessly.
    /// Stateless is what the RFT tutorial's client needs and what scales on Cloud Run.
    pub sessions: bool,
}

impl Default for McpConfig {
    fn default() -> Self {
        McpConfig {
            db: None,
            demo: false,
            host: "127.0.0.1".into(),
            port: 8080,
            connections: 8,
            max_waiting: 256,
            timeout_secs: 10.0,
            max_rows: 10_000,
            max_result_bytes: 16 * 1024 * 1024,
            max_body_bytes: 1024 * 1024,
            token: None,
            allowed_hosts: Vec::new(),
            allowed_origins: vec![
                "http://localhost:*".into(),
                "http://127.0.0.1:*".into(),
                "http://[::1]:*".into(),
            ],
            sessions: false,
        }
    }
}

impl McpConfig {
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            connections: self.connections,
            max_waiting: self.max_waiting,
            limits: Limits {
                timeout: Duration::from_secs_f64(self.timeout_secs),
                max_rows: self.max_rows,
                max_bytes: self.max_result_bytes,
            },
        }
    }
}

/// Serve a DuckDB file read-only over MCP (streamable HTTP at /mcp and /mcp/).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct McpServeArgs {
    /// DuckDB file to serve, opened read-only.
    #[arg(value_name = "DB", conflicts_with = "demo")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    /// Serve a small built-in airline database (no file needed).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
    /// Address to bind [default: 127.0.0.1; use 0.0.0.0 in containers].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port to bind [default: $PORT, else 8080; 0 picks a free port].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Read-only connections kept open [default: 8].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Query time limit in seconds [default: 10].
    #[arg(long = "timeout", value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub timeout_secs: Option<f64>,
    /// Rows kept in typed results [default: 10000].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
    /// Require `Authorization: Bearer TOKEN` on /mcp [env: SQLRFT_MCP_TOKEN].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Accept this Host header (repeatable), e.g. your Cloud Run hostname.
    #[arg(long = "allowed-host", value_name = "HOST")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_hosts: Vec<String>,
    /// Accept requests from this browser origin (repeatable); `*` accepts any.
    #[arg(long = "allowed-origin", value_name = "ORIGIN")]
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    /// Keep MCP sessions instead of answering statelessly.
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub sessions: bool,
    /// Write the base URL to FILE once listening (for scripts that bind --port 0).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub print_url_to: Option<PathBuf>,
    /// TOML config file with an [mcp] table [default: ./sqlrft.toml if present].
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl McpServeArgs {
    /// Merges defaults, the config file, `PORT`, `SQLRFT_MCP_*` and these flags.
    pub fn resolve(&self) -> Result<McpConfig, sqlrft_core::config::ConfigError> {
        sqlrft_core::config::load("mcp", self.config.as_deref(), &[("PORT", "port")], self)
    }
}
