//! DuckDB in this process: the embedded executor, and the one mapping of DuckDB's query errors
//! onto the completion-or-infrastructure split (the MCP executor reads the same kinds off the
//! wire).

use std::path::{Path, PathBuf};
use std::sync::Arc;
#[cfg(feature = "mcp")]
use std::time::Duration;

use futures::future::BoxFuture;
use sqlrft_core::ResultSet;
use sqlrft_core::score::{FailureKind, QueryFailure};
use sqlrft_duck::{OpenError, PoolOptions, QueryError, QueryErrorKind, ReadOnlyPool};

use crate::executor::{ExecError, SqlExecutor};

impl ExecError {
    /// The one mapping from DuckDB's query errors to scoring: the query's own failures
    /// (refused, SQL error, timeout, too large) score the completion; a busy or broken `runner`
    /// (named in the reason) is infrastructure.
    pub fn from_kind(kind: QueryErrorKind, message: String, runner: &str) -> ExecError {
        let kind = match kind {
            QueryErrorKind::Refused => FailureKind::Refused,
            QueryErrorKind::Sql => FailureKind::Sql,
            QueryErrorKind::Timeout => FailureKind::Timeout,
            QueryErrorKind::TooLarge => FailureKind::TooLarge,
            QueryErrorKind::Busy | QueryErrorKind::Internal => {
                return ExecError::Infrastructure(format!("{runner} failed: {message}"));
            }
        };
        ExecError::Query(QueryFailure { kind, message })
    }
}

impl From<QueryError> for ExecError {
    /// A query error of DuckDB in this process.
    fn from(err: QueryError) -> Self {
        ExecError::from_kind(err.kind(), err.to_string(), "the embedded database")
    }
}

/// Runs SQL in this process on a read-only pool over one DuckDB file.
pub struct EmbeddedExecutor {
    pool: ReadOnlyPool,
    identity: String,
}

impl EmbeddedExecutor {
    /// Opens `path` read-only with `options` (connections, limits).
    pub fn open(path: &Path, options: PoolOptions) -> Result<Self, OpenError> {
        let pool = ReadOnlyPool::open(path, options)?;
        Ok(Self::from_pool(pool))
    }

    /// Runs SQL on a pool opened elsewhere.
    pub fn from_pool(pool: ReadOnlyPool) -> Self {
        let path = pool.path();
        let canonical = std::fs::canonicalize(path).unwrap_or_else(|_| path.to_path_buf());
        // Size and modification time tell a rebuilt sandbox from the old one at the same path.
        let stamp = std::fs::metadata(path)
            .ok()
            .map(|m| {
                let modified = m
                    .modified()
                    .ok()
                    .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                    .map_or(0, |d| d.as_nanos());
                format!("{}:{modified}", m.len())
            })
            .unwrap_or_default();
        EmbeddedExecutor {
            identity: format!("duckdb:{}:{stamp}", canonical.display()),
            pool,
        }
    }

    /// The pool the SQL runs on.
    pub fn pool(&self) -> &ReadOnlyPool {
        &self.pool
    }
}

impl SqlExecutor for EmbeddedExecutor {
    fn query<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<ResultSet, ExecError>> {
        Box::pin(async move { self.pool.query(sql).await.map_err(ExecError::from) })
    }

    fn identity(&self) -> &str {
        &self.identity
    }

    fn describe(&self) -> String {
        format!("embedded DuckDB `{}`", self.pool.path().display())
    }
}

/// Where the engine's SQL runs, as a caller configures it.
#[derive(Debug, Clone)]
pub enum ExecutorSpec {
    /// In this process, read-only on a DuckDB file.
    Embedded {
        /// The DuckDB file.
        db: PathBuf,
        /// Connections and per-query limits.
        pool: PoolOptions,
    },
    /// Through an MCP server's `query` tool.
    #[cfg(feature = "mcp")]
    Mcp {
        /// The server (`http://host:port` or its `/mcp` endpoint).
        url: String,
        /// Bearer token for the server.
        token: Option<String>,
        /// Time allowed for connecting and for one call.
        timeout: Duration,
    },
}

impl ExecutorSpec {
    /// Embedded on `db` with the default pool (8 connections, 10 s per query).
    pub fn embedded(db: impl Into<PathBuf>) -> Self {
        ExecutorSpec::Embedded {
            db: db.into(),
            pool: PoolOptions::default(),
        }
    }

    /// Opens the executor; an MCP one connects on first use.
    pub fn open(&self) -> Result<Arc<dyn SqlExecutor>, OpenError> {
        Ok(match self {
            ExecutorSpec::Embedded { db, pool } => {
                Arc::new(EmbeddedExecutor::open(db, pool.clone())?)
            }
            #[cfg(feature = "mcp")]
            ExecutorSpec::Mcp {
                url,
                token,
                timeout,
            } => Arc::new(crate::mcp::McpExecutor::new(url, token.clone(), *timeout)),
        })
    }
}
