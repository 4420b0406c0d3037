use std::time::Duration;

/// Bounds on one query. All are on by default: an unbounded query can take a server down.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Limits {
    /// Wall-clock time before the query is interrupted.
    pub timeout: Duration,
    /// Rows kept in the result; further rows are counted, not kept, and `truncated` is set.
    pub max_rows: usize,
    /// Approximate bytes of kept cells (their JSON size); past it the query fails.
    pub max_bytes: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            timeout: Duration::from_secs(10),
            max_rows: 10_000,
            max_bytes: 16 * 1024 * 1024,
        }
    }
}
