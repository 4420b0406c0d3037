//! The flags every `serve` command shares, one spelling for all: where to listen and who may
//! call. Each serializes only the flags given, so they override `sqlrft.toml` and
//! `SQLRFT_<SECTION>_*` without resetting what those set. (The limits on the queries a service
//! runs belong to its connection pool: `sqlrft_duck::QueryLimitArgs`.)

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
    /// Port to bind [default: $PORT, else 8080 for mcp, 8090 for reward, 8000 for model, 50051
    /// for rollout; 0 picks a free port].
    #[arg(long)]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub port: Option<u16>,
    /// Require `Authorization: Bearer TOKEN` on the API routes. Prefer the environment variable
    /// (SQLRFT_MCP_TOKEN, SQLRFT_REWARD_TOKEN, SQLRFT_MODEL_TOKEN, SQLRFT_ROLLOUT_TOKEN): a flag's
    /// value is visible to every user in `ps`.
    // Its own id: a command may also flatten the Hub flags, whose `--hub-token` is `token`.
    #[arg(long, value_name = "TOKEN", id = "serve_token")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Largest request body in bytes [default: 1 MiB for mcp, 16 MiB for reward, 4 MiB for model].
    #[arg(long, value_name = "BYTES")]
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_body_bytes: Option<usize>,
    /// Write the base URL to FILE once listening (for scripts that bind --port 0).
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub print_url_to: Option<PathBuf>,
    /// TOML config file; the service reads its table ([mcp], [reward], [model], [rollout]; a
    /// rollout worker also [train]) [default: ./sqlrft.toml if present].
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}
