//! Prepared statements for the texts one connection runs more than once.
//!
//! Parsing, binding and planning are a fifth to a quarter of a short query's time in DuckDB,
//! and the workloads this crate serves repeat their texts: a reward service scores the same
//! candidate SQL for every rollout that wrote it, a benchmark or a dashboard sends the same
//! queries again. A text seen a second time is prepared once, and from then on runs from its
//! plan. The first sight runs as a plain query: preparing costs DuckDB 2.0 a second statement
//! lifecycle (`PREPARE`, then `EXECUTE`), which a text seen only once would pay for nothing.
//!
//! The database is opened read-only, so a plan never goes stale; DuckDB would rebind one
//! itself if its catalog changed. A volatile function (`random()`, `now()`) is evaluated on
//! every execution, as in a plain query, never folded into the plan.

use std::ffi::CStr;
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::ptr;

use duckdb::ffi;
use lru::LruCache;

/// Prepared statements kept per connection.
const KEPT: NonZeroUsize = NonZeroUsize::new(32).expect("non-zero");
/// Texts remembered as seen once, by hash, per connection.
const REMEMBERED: NonZeroUsize = NonZeroUsize::new(256).expect("non-zero");
/// Longer texts are never kept: the cache should not hold megabytes of SQL.
const LONGEST_KEPT: usize = 16 * 1024;

/// How to run a text this time.
pub(crate) enum Plan<'a> {
    /// From its prepared statement.
    Prepared(&'a PreparedQuery),
    /// As a plain query (first sight, too long, or a text DuckDB would not prepare as one
    /// parameterless SELECT, whose plain run gives the error or the refusal it always did).
    Plain,
}

/// One connection's prepared statements, most recently used kept.
pub(crate) struct Repeats {
    hasher: RandomState,
    seen_once: LruCache<u64, ()>,
    /// `None`: the text was tried and is not worth preparing; it runs plain.
    prepared: LruCache<Box<str>, Option<PreparedQuery>>,
}

impl Repeats {
    pub(crate) fn new() -> Self {
        Repeats {
            hasher: RandomState::new(),
            seen_once: LruCache::new(REMEMBERED),
            prepared: LruCache::new(KEPT),
        }
    }

    /// How to run `sql` (`text` is the same, NUL-terminated) on `connection`, preparing it now
    /// if this is its second sight.
    pub(crate) fn plan(
        &mut self,
        connection: ffi::duckdb_connection,
        sql: &str,
        text: &CStr,
    ) -> Plan<'_> {
        if sql.len() > LONGEST_KEPT {
            return Plan::Plain;
        }
        if !self.prepared.contains(sql) {
            let hash = self.hasher.hash_one(sql);
            if self.seen_once.put(hash, ()).is_none() {
                return Plan::Plain;
            }
            self.seen_once.pop(&hash);
            let statement = PreparedQuery::prepare(connection, text);
            self.prepared.put(sql.into(), statement);
        }
        match self.prepared.get(sql) {
            Some(Some(statement)) => Plan::Prepared(statement),
            _ => Plan::Plain,
        }
    }

    /// Whether `sql` runs from a prepared statement now.
    #[cfg(test)]
    pub(crate) fn is_prepared(&self, sql: &str) -> bool {
        self.prepared.peek(sql).is_some_and(Option::is_some)
    }

    /// Destroys every prepared statement (before the connection closes).
    pub(crate) fn clear(&mut self) {
        self.prepared.clear();
    }
}

/// A prepared parameterless SELECT, destroyed on drop.
pub(crate) struct PreparedQuery(ffi::duckdb_prepared_statement);

// SAFETY: a prepared statement is used by one thread at a time (its connection's), under the
// mutex that holds its cache.
unsafe impl Send for PreparedQuery {}

impl PreparedQuery {
    /// `text` prepared on `connection` when it is one SELECT without parameters.
    fn prepare(connection: ffi::duckdb_connection, text: &CStr) -> Option<Self> {
        let mut handle: ffi::duckdb_prepared_statement = ptr::null_mut();
        // SAFETY: an open connection and NUL-terminated text. DuckDB allocates the handle even
        // when preparing fails, so it is owned (and destroyed) from here on either way.
        let state = unsafe { ffi::duckdb_prepare(connection, text.as_ptr(), &mut handle) };
        let statement = PreparedQuery(handle);
        if state != ffi::DuckDBSuccess || handle.is_null() {
            return None;
        }
        // SAFETY: a successfully prepared statement.
        let (parameters, kind) = unsafe {
            (
                ffi::duckdb_nparams(handle),
                ffi::duckdb_prepared_statement_type(handle),
            )
        };
        (parameters == 0 && kind == ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT)
            .then_some(statement)
    }

    /// Executes the statement into `result` (which must be empty).
    pub(crate) fn execute(&self, result: &mut ffi::duckdb_result) -> ffi::duckdb_state {
        // SAFETY: a prepared statement of a live connection; the caller owns `result`.
        unsafe { ffi::duckdb_execute_prepared(self.0, result) }
    }
}

impl Drop for PreparedQuery {
    fn drop(&mut self) {
        if !self.0.is_null() {
            // SAFETY: allocated by duckdb_prepare and destroyed once, here.
            unsafe { ffi::duckdb_destroy_prepare(&mut self.0) }
        }
    }
}
