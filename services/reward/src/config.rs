//! `sqlrft reward serve` settings: flags, `[reward]` in sqlrft.toml, `SQLRFT_REWARD_*`, `PORT`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_duck::{Limits, PoolOptions, QueryLimitArgs};
use sqlrft_serve::ServeArgs;

/// Everything the service needs to run, after all configuration layers are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct RewardConfig {
    /// DuckDB file to execute SQL on, in process (read-only).
    pub db: Option<PathBuf>,
    /// MCP endpoint to execute SQL through instead (`http://host:port/mcp`).
    pub mcp_url: Option<String>,
    /// Bearer token for the MCP server.
    pub mcp_token: Option<String>,
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Bearer token required on /v1/* when set.
    pub token: Option<String>,
    /// Read-only connections for the embedded database.
    pub connections: usize,
    /// Time limit of one query in the embedded database (a timeout scores 0).
    pub query_timeout_secs: f64,
    /// Time allowed for executing one query through the executor, MCP included; past it the
    /// evaluation is invalid (infrastructure failure), never a silent 0.
    pub eval_timeout_secs: f64,
    /// Rows kept from a query; a larger prediction is cut off and cannot match.
    pub max_rows: usize,
    /// Bytes a query's result may take; a larger prediction scores as too large.
    pub max_result_bytes: usize,
    /// Bytes of a request body before the server answers 413.
    pub max_body_bytes: usize,
    /// Requests evaluated at once; more get 503 with Retry-After.
    pub max_concurrency: usize,
    /// Completions in one batch request.
    pub max_batch: usize,
    /// Gold SQL results remembered (keyed by database and SQL).
    pub gold_cache: usize,
}

impl Default for RewardConfig {
    fn default() -> Self {
        RewardConfig {
            db: None,
            mcp_url: None,
            mcp_token: None,
            host: "127.0.0.1".into(),
            port: 8090,
            token: None,
            connections: 8,
            query_timeout_secs: 10.0,
            eval_timeout_secs: 30.0,
            max_rows: 10_000,
            max_result_bytes: 16 * 1024 * 1024,
            max_body_bytes: 16 * 1024 * 1024,
            max_concurrency: 256,
            max_batch: 1024,
            gold_cache: 4096,
        }
    }
}

impl RewardConfig {
    /// The embedded database's connection pool these settings ask for.
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            connections: self.connections,
            max_waiting: self.max_concurrency.max(1) * 8,
            limits: Limits {
                timeout: Duration::from_secs_f64(self.query_timeout_secs),
                max_rows: self.max_rows,
                max_bytes: self.max_result_bytes,
            },
        }
    }

    /// How long one execution may take before the evaluation is marked invalid.
    pub fn eval_timeout(&self) -> Duration {
        Duration::from_secs_f64(self.eval_timeout_secs)
    }

    /// Checks the settings hang together; the error names the flag to fix.
    pub fn validate(&self) -> anyhow::Result<()> {
        match (&self.db, &self.mcp_url) {
            (Some(_), Some(_)) => anyhow::bail!(
                "both --db and --mcp-url are set; execute SQL either in process (--db FILE) or through an MCP server (--mcp-url URL)"
            ),
            (None, None) => anyhow::bail!(
                "nowhere to execute SQL: pass --db data/sandbox.duckdb (in process) or --mcp-url http://host:port/mcp (through `sqlrft mcp serve`)"
            ),
            _ => {}
        }
        for (name, value) in [
            ("--query-timeout", self.query_timeout_secs),
            ("--eval-timeout", self.eval_timeout_secs),
        ] {
            if !(value.is_finite() && value > 0.0) {
                anyhow::bail!("{name} must be a positive number of seconds, got {value}");
            }
        }
        Ok(())
    }
}

/// Score SQL completions by executing them (Fireworks evaluator API + GRPO batches).
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct RewardServeArgs {
    /// DuckDB file to execute SQL on, in this process (read-only).
    #[arg(long, value_name = "FILE", conflicts_with = "mcp_url")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    /// Execute SQL through this MCP server instead (e.g. http://127.0.0.1:8080/mcp).
    #[arg(long, value_name = "URL")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_url: Option<String>,
    /// Bearer token for the MCP server; prefer SQLRFT_REWARD_MCP_TOKEN (a flag shows in `ps`).
    #[arg(long, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mcp_token: Option<String>,
    #[command(flatten)]
    #[serde(flatten)]
    /// Where to listen.
    pub serve: ServeArgs,
    /// Time allowed to get an answer from the executor, in seconds; past it the evaluation is
    /// marked invalid [default: 30].
    #[arg(long = "eval-timeout", value_name = "SECONDS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub eval_timeout_secs: Option<f64>,
    /// What one query may take in the embedded database.
    #[command(flatten)]
    #[serde(flatten)]
    pub limits: QueryLimitArgs,
    /// Requests evaluated at once; more get 503 [default: 256].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_concurrency: Option<usize>,
    /// Completions accepted in one batch request [default: 1024].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_batch: Option<usize>,
}

impl RewardServeArgs {
    /// Merges defaults, the config file, `PORT`, `SQLRFT_REWARD_*` and these flags.
    pub fn resolve(&self) -> anyhow::Result<RewardConfig> {
        sqlrft_core::config::load_service(
            "reward",
            self.serve.config.as_deref(),
            self,
            RewardConfig::validate,
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
        args: RewardServeArgs,
    }

    #[test]
    fn the_shared_serving_flags_reach_the_config() {
        let args = Cli::try_parse_from([
            "x",
            "--db",
            "s.duckdb",
            "--port",
            "0",
            "--query-timeout",
            "4",
            "--max-rows",
            "7",
            "--max-body-bytes",
            "2048",
            "--connections",
            "3",
        ])
        .unwrap()
        .args;
        let config = args.resolve().unwrap();
        assert_eq!(config.port, 0);
        assert_eq!(config.query_timeout_secs, 4.0);
        assert_eq!((config.max_rows, config.max_body_bytes), (7, 2048));
        assert_eq!(config.pool_options().connections, 3);
        assert_eq!(
            config.max_concurrency,
            RewardConfig::default().max_concurrency
        );
    }
}
