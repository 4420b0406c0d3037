use std::path::PathBuf;
use std::time::Duration;

/// Why a database could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error(
        "could not open database `{path}`: no such file; check the path (or run `sqlrft build` to make a sandbox)"
    )]
    NotFound { path: PathBuf },
    #[error("could not open database `{path}`: {message}")]
    DuckDb { path: PathBuf, message: String },
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
    #[error("Interrupted: query exceeded the {} s time limit and was cancelled", .0.as_secs_f64())]
    Timeout(Duration),
    #[error("result exceeded the {limit}-byte limit; select fewer columns or add a LIMIT")]
    TooLarge { limit: usize },
    /// Every connection is busy and the wait queue is full: try again later.
    #[error("server busy: all {0} database connections are in use; retry shortly")]
    Busy(usize),
    #[error("internal error: {0}")]
    Internal(String),
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
