//! The flags every `serve` command shares, one spelling for all: where to listen, who may call,
//! and the limits on the queries it runs. Each serializes only the flags given, so they override
//! `sqlrft.toml` and `SQLRFT_<SECTION>_*` without resetting what those set.

use std::path::PathBuf;

use clap::Args;
use serde::Serialize;

/// Where a service listens and who may call it.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct ServeArgs {
    /// Address to bind [default: 127.0.0.1; use 0.0.0.0 in containers].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Port to bind [default: $PORT, else 8080 for mcp and 8090 for reward; 0 picks a free port].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Require `Authorization: Bearer TOKEN` on the API routes. Prefer the environment variable
    /// (SQLRFT_MCP_TOKEN, SQLRFT_REWARD_TOKEN): a flag's value is visible to every user in `ps`.
    #[arg(long, value_name = "TOKEN")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Largest request body in bytes [default: 1 MiB for mcp, 16 MiB for reward].
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Write the base URL to FILE once listening (for scripts that bind --port 0).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub print_url_to: Option<PathBuf>,
    /// TOML config file; the service reads its table ([mcp], [reward]) [default: ./sqlrft.toml
    /// if present].
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

/// The limits on SQL a service runs in its read-only DuckDB connections.
#[derive(Debug, Clone, Default, Args, Serialize)]
pub struct QueryLimitArgs {
    /// Read-only connections kept open; queries run side by side up to this many [default: 8].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub connections: Option<usize>,
    /// Time limit of one query in seconds; the query is interrupted [default: 10].
    // Negative numbers parse so that motherduck's `--query-timeout -1` (no limit) gets the
    // services' own explanation instead of clap's "unexpected argument '-1'".
    #[arg(
        long = "query-timeout",
        alias = "timeout",
        value_name = "SECONDS",
        allow_negative_numbers = true
    )]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub query_timeout_secs: Option<f64>,
    /// Rows kept from a query's result; the rest is cut off [default: 10000].
    #[arg(long, value_name = "ROWS")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_rows: Option<usize>,
}
