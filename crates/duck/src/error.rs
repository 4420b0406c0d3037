use std::path::PathBuf;
use std::time::Duration;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    /// The file does not exist (DuckDB would otherwise create an empty one).
    #[error(
        "could not open database `{path}`: no such file; check the path (or run `sqlrft build` to make a sandbox)"
    )]
    NotFound {
        /// The path that was asked for.
        path: PathBuf,
    },
    /// DuckDB refused to open it (not a database, locked, wrong version, …).
    #[error("could not open database `{path}`: {message}")]
    DuckDb {
        /// The path that was asked for.
        path: PathBuf,
        /// DuckDB's reason, unchanged.
        message: String,
    },
}

/// Why a query produced no result set.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum QueryError {
    /// The statement is not a single read-only query; the message says what was refused.
    #[error("{0}")]
    Refused(String),
    /// DuckDB's own error, unchanged (callers show it verbatim, as the tutorial's server does).
    #[error("{0}")]
    Sql(String),
    /// The query ran past its time limit and was interrupted.
    #[error("Interrupted: query exceeded the {} s time limit and was cancelled", .0.as_secs_f64())]
    Timeout(Duration),
    /// The result grew past the byte limit while being read.
    #[error("result exceeded the {limit}-byte limit; select fewer columns or add a LIMIT")]
    TooLarge {
        /// The byte limit the result ran over.
        limit: usize,
    },
    /// Every connection is busy and the wait queue is full: try again later.
    #[error("server busy: all {0} database connections are in use; retry shortly")]
    Busy(usize),
    /// Something failed that the caller could not have caused; the message says what.
    #[error("internal error: {0}")]
    Internal(String),
}

/// The kind of a [`QueryError`], with a stable name for logs and for clients on the other side
/// of a wire (the MCP server sends it in a tool error's `_meta`), so nobody parses messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QueryErrorKind {
    /// See [`QueryError::Refused`].
    Refused,
    /// See [`QueryError::Sql`].
    Sql,
    /// See [`QueryError::Timeout`].
    Timeout,
    /// See [`QueryError::TooLarge`].
    TooLarge,
    /// See [`QueryError::Busy`].
    Busy,
    /// See [`QueryError::Internal`].
    Internal,
}

impl QueryErrorKind {
    /// The `_meta` key of an MCP tool error that holds the kind's name.
    pub const MCP_META_KEY: &'static str = "sqlrft/error_kind";

    const ALL: [QueryErrorKind; 6] = [
        QueryErrorKind::Refused,
        QueryErrorKind::Sql,
        QueryErrorKind::Timeout,
        QueryErrorKind::TooLarge,
        QueryErrorKind::Busy,
        QueryErrorKind::Internal,
    ];

    /// The stable wire name (`refused`, `sql_error`, `timeout`, …).
    pub fn name(self) -> &'static str {
        match self {
            QueryErrorKind::Refused => "refused",
            QueryErrorKind::Sql => "sql_error",
            QueryErrorKind::Timeout => "timeout",
            QueryErrorKind::TooLarge => "too_large",
            QueryErrorKind::Busy => "busy",
            QueryErrorKind::Internal => "internal",
        }
    }

    /// The kind [`name`](Self::name) gave, if it is one.
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|kind| kind.name() == name)
    }
}

impl QueryError {
    /// Which kind of failure this is, for metrics and for the wire.
    pub fn kind(&self) -> QueryErrorKind {
        match self {
            QueryError::Refused(_) => QueryErrorKind::Refused,
            QueryError::Sql(_) => QueryErrorKind::Sql,
            QueryError::Timeout(_) => QueryErrorKind::Timeout,
            QueryError::TooLarge { .. } => QueryErrorKind::TooLarge,
            QueryError::Busy(_) => QueryErrorKind::Busy,
            QueryError::Internal(_) => QueryErrorKind::Internal,
        }
    }
}

impl From<duckdb::Error> for QueryError {
    fn from(err: duckdb::Error) -> Self {
        QueryError::Sql(duckdb_message(&err))
    }
}

/// DuckDB's error text without the Rust wrapper's decoration.
pub(crate) fn duckdb_message(err: &duckdb::Error) -> String {
    match err {
        duckdb::Error::DuckDBFailure(_, Some(message)) => message.clone(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_kind_name_reads_back_as_that_kind() {
        for kind in QueryErrorKind::ALL {
            assert_eq!(QueryErrorKind::from_name(kind.name()), Some(kind));
        }
        assert_eq!(QueryErrorKind::from_name("Refused"), None);
    }
}
