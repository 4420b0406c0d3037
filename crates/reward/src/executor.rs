//! Where SQL runs: embedded against a DuckDB file (`embedded`), or through an MCP server's
//! `query` tool (`mcp`).
//!
//! Both hand back the same typed [`ResultSet`] (the MCP server sends it as `structuredContent`),
//! so a completion scores the same either way. Failures are split in two: the query's own
//! failure (syntax error, timeout, refused statement: the completion's fault, score 0) and an
//! infrastructure failure (server down, busy, unreadable reply: the score would mean nothing).

use futures::future::BoxFuture;
use sqlrft_core::ResultSet;
use sqlrft_core::score::QueryFailure;

/// Why a query gave no result.
#[derive(Debug, Clone, PartialEq)]
pub enum ExecError {
    /// The query itself failed: the completion's fault.
    Query(QueryFailure),
    /// The executor failed: the score would say nothing about the completion.
    Infrastructure(String),
}

impl std::fmt::Display for ExecError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ExecError::Query(failure) => write!(f, "{failure}"),
            ExecError::Infrastructure(message) => f.write_str(message),
        }
    }
}

/// Runs one read-only SQL query and returns its typed result.
pub trait SqlExecutor: Send + Sync {
    /// Runs `sql`; a failure says whose fault it was.
    fn query<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<ResultSet, ExecError>>;
    /// Names the database for cache keys: another file, a rebuilt file or another server differ.
    fn identity(&self) -> &str;
    /// A sentence for logs and readiness: what runs the SQL.
    fn describe(&self) -> String;
}
