//! `sqlrft mcp serve` settings: flags, `[mcp]` in sqlrft.toml, `SQLRFT_MCP_*`, and `PORT`.

use std::path::PathBuf;
use std::time::Duration;

use clap::Args;
use serde::{Deserialize, Serialize};
use sqlrft_duck::{Limits, PoolOptions, QueryLimitArgs};
use sqlrft_serve::ServeArgs;

/// Everything the server needs to run, after all configuration layers are merged.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct McpConfig {
    /// DuckDB file to serve (read-only).
    pub db: Option<PathBuf>,
    /// Serve the built-in demo database instead of `db`.
    pub demo: bool,
    /// Interface to listen on.
    pub host: String,
    /// Port to listen on (0 picks a free one).
    pub port: u16,
    /// Open read-only connections (queries run side by side up to this many).
    pub connections: usize,
    /// Requests allowed to wait for a connection before the server answers 503.
    pub max_waiting: usize,
    /// Time limit of one query; past it the query is interrupted.
    pub query_timeout_secs: f64,
    /// Rows kept in `structuredContent` (the text table always stops at 1,024).
    pub max_rows: usize,
    /// Characters of the text table before it is cut off (mcp-server-motherduck's `max_chars`).
    pub max_chars: usize,
    /// Bytes a result may take while it is read; a larger one is refused.
    pub max_result_bytes: usize,
    /// Bytes of a request body before the server answers 413.
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
            query_timeout_secs: 10.0,
            max_rows: 10_000,
            max_chars: crate::table::MAX_CHARS,
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
    /// The connection pool these settings ask for.
    pub fn pool_options(&self) -> PoolOptions {
        PoolOptions {
            connections: self.connections,
            max_waiting: self.max_waiting,
            limits: Limits {
                timeout: Duration::from_secs_f64(self.query_timeout_secs),
                max_rows: self.max_rows,
                max_bytes: self.max_result_bytes,
            },
        }
    }
}

/// Serve a DuckDB file read-only over MCP (streamable HTTP at /mcp and /mcp/).
///
/// mcp-server-motherduck's flag names work too (`--db-path`, `--read-only`, `--max-rows`,
/// `--max-chars`, `--query-timeout`), so a motherduck command line can be pointed at sqlrft by
/// changing the command.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct McpServeArgs {
    /// DuckDB file to serve, opened read-only.
    #[arg(value_name = "DB", conflicts_with_all = ["demo", "db_path"])]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub db: Option<PathBuf>,
    /// The DuckDB file, as mcp-server-motherduck names it (the same as DB).
    #[arg(long, value_name = "FILE", conflicts_with = "demo")]
    #[serde(skip)]
    pub db_path: Option<PathBuf>,
    /// Accepted for mcp-server-motherduck command lines: sqlrft always serves read-only.
    #[arg(long)]
    #[serde(skip)]
    pub read_only: bool,
    /// Serve a small built-in airline database (no file needed).
    #[arg(long)]
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub demo: bool,
    #[command(flatten)]
    #[serde(flatten)]
    /// Where to listen.
    pub serve: ServeArgs,
    #[command(flatten)]
    #[serde(flatten)]
    /// What one query may take.
    pub limits: QueryLimitArgs,
    /// Characters of a query's text table before it is cut off [default: 50000].
    #[arg(long, value_name = "CHARS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_chars: Option<usize>,
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
}

impl McpServeArgs {
    /// Merges defaults, the config file, `PORT`, `SQLRFT_MCP_*` and these flags.
    pub fn resolve(&self) -> Result<McpConfig, sqlrft_core::config::ConfigError> {
        let mut flags = self.clone();
        flags.db = flags.db.or(flags.db_path.take());
        sqlrft_core::config::load(
            "mcp",
            self.serve.config.as_deref(),
            &[("PORT", "port")],
            &flags,
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
        args: McpServeArgs,
    }

    fn parse(line: &[&str]) -> McpServeArgs {
        Cli::try_parse_from(std::iter::once("sqlrft-mcp-serve").chain(line.iter().copied()))
            .unwrap_or_else(|e| panic!("{line:?}: {e}"))
            .args
    }

    #[test]
    fn a_motherduck_command_line_means_the_same() {
        let config = parse(&[
            "--db-path",
            "data/sandbox.duckdb",
            "--read-only",
            "--max-rows",
            "1024",
            "--max-chars",
            "20000",
            "--query-timeout",
            "7",
            "--port",
            "0",
        ])
        .resolve()
        .unwrap();
        assert_eq!(config.db, Some(PathBuf::from("data/sandbox.duckdb")));
        assert_eq!(config.max_rows, 1024);
        assert_eq!(config.max_chars, 20_000);
        assert_eq!(config.query_timeout_secs, 7.0);
        assert_eq!(config.port, 0);
        assert_eq!(config.pool_options().limits.timeout, Duration::from_secs(7));
    }

    #[test]
    fn the_old_spellings_still_parse() {
        let config = parse(&["db.duckdb", "--timeout", "3", "--connections", "2"])
            .resolve()
            .unwrap();
        assert_eq!(config.db, Some(PathBuf::from("db.duckdb")));
        assert_eq!((config.query_timeout_secs, config.connections), (3.0, 2));
    }

    #[test]
    fn a_file_and_a_path_flag_conflict() {
        let err = Cli::try_parse_from(["x", "a.duckdb", "--db-path", "b.duckdb"])
            .err()
            .expect("two databases are refused");
        assert!(err.to_string().contains("--db-path"), "{err}");
    }

    #[test]
    fn token_help_suggests_the_environment_variable() {
        let mut command = <Cli as clap::CommandFactory>::command();
        let help = command.render_long_help().to_string();
        assert!(help.contains("SQLRFT_MCP_TOKEN"), "{help}");
        assert!(help.contains("--db-path"), "{help}");
    }
}
