//! Prepared statements for the texts one connection runs more than once.
//!
//! Parsing is a fifth to a quarter of a short query's time in DuckDB 2.0 (its PEG parser), and
//! the workloads this crate serves repeat their texts: a reward service scores the same
//! candidate SQL for every rollout that wrote it, a benchmark or a dashboard sends the same
//! queries again. A text seen a second time is prepared once, and from then on runs from its
//! plan. The first sight runs as a plain query: preparing costs DuckDB 2.0 a second statement
//! lifecycle (`PREPARE`, then `EXECUTE`), which a text seen only once would pay for nothing.
//!
//! Texts that differ only in the literals they compare against share a shape
//! ([`crate::shapes`]): from a shape's second sight its template is prepared once, and every
//! text of that shape runs from it with its own values bound; only texts without a usable
//! template get plans of their own. DuckDB 2.0 binds and optimises a prepared statement that
//! reads a table again on every run (`always_require_rebind`, set in `optimizer.cpp`: its
//! optimisers may build the database's state into a plan), so what a plan saves is the parse,
//! and a text's own plan would save no more than its template does.
//!
//! The database is opened read-only, so a plan never goes stale; DuckDB would rebind one
//! itself if its catalog changed. A volatile function (`random()`, `now()`) is evaluated on
//! every execution, as in a plain query, never folded into the plan.

use std::ffi::{CStr, CString, c_char};
use std::hash::{BuildHasher, RandomState};
use std::num::NonZeroUsize;
use std::ptr;

use duckdb::ffi;
use lru::LruCache;

use crate::shapes::{Literal, shape_of};

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
    /// From its shape's prepared template, once these values are bound to it.
    Shaped(&'a PreparedQuery, Vec<Literal>),
    /// As a plain query (first sight, too long, or a text DuckDB would not prepare as one
    /// parameterless SELECT, whose plain run gives the error or the refusal it always did).
    Plain,
}

/// One connection's prepared statements, most recently used kept.
pub(crate) struct Repeats {
    sightings: Sightings,
    /// `None`: the text was tried and is not worth preparing; it runs plain.
    prepared: LruCache<Box<str>, Option<PreparedQuery>>,
    /// By template; `None`: DuckDB would not take the template as the shape's query.
    templates: LruCache<Box<str>, Option<PreparedQuery>>,
}

/// Texts and templates seen once, by hash.
struct Sightings {
    hasher: RandomState,
    seen_once: LruCache<u64, ()>,
}

impl Sightings {
    /// True when `key` was seen before; remembers it as seen otherwise.
    fn seen_before(&mut self, key: &str) -> bool {
        let hash = self.hasher.hash_one(key);
        if self.seen_once.put(hash, ()).is_none() {
            return false;
        }
        self.seen_once.pop(&hash);
        true
    }
}

/// `key`'s statement in `cache`, prepared with `prepare` on the key's second sight. A statement
/// DuckDB would not take is kept as `None`, so it is not tried again while it stays cached.
fn prepared_on_second_sight<'c>(
    cache: &'c mut LruCache<Box<str>, Option<PreparedQuery>>,
    sightings: &mut Sightings,
    key: &str,
    prepare: impl FnOnce() -> Option<PreparedQuery>,
) -> Option<&'c PreparedQuery> {
    if cache.get(key).is_none() && sightings.seen_before(key) {
        cache.put(key.into(), prepare());
    }
    cache.peek(key).and_then(Option::as_ref)
}

impl Repeats {
    pub(crate) fn new() -> Self {
        Repeats {
            sightings: Sightings {
                hasher: RandomState::new(),
                seen_once: LruCache::new(REMEMBERED),
            },
            prepared: LruCache::new(KEPT),
            templates: LruCache::new(KEPT),
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
        // The shape's template first: DuckDB 2.0 re-binds a prepared statement that reads a
        // table on every run anyway, so a text's own plan would run no faster than the
        // template, and preparing it would cost a whole extra statement for each text seen
        // twice (most of them, when many values recur, are dropped from the cache unused).
        if let Some(shape) = shape_of(sql) {
            let parameters = shape.literals.len();
            let template = prepared_on_second_sight(
                &mut self.templates,
                &mut self.sightings,
                &shape.template,
                || {
                    CString::new(shape.template.as_str())
                        .ok()
                        .and_then(|template| {
                            PreparedQuery::prepare(connection, &template, parameters)
                        })
                },
            );
            if let Some(statement) = template {
                return Plan::Shaped(statement, shape.literals);
            }
        }
        match prepared_on_second_sight(&mut self.prepared, &mut self.sightings, sql, || {
            PreparedQuery::prepare(connection, text, 0)
        }) {
            Some(statement) => Plan::Prepared(statement),
            None => Plan::Plain,
        }
    }

    /// Whether `sql` runs from a prepared statement now.
    #[cfg(test)]
    pub(crate) fn is_prepared(&self, sql: &str) -> bool {
        self.prepared.peek(sql).is_some_and(Option::is_some)
    }

    /// Whether texts of `sql`'s shape run from a prepared template now.
    #[cfg(test)]
    pub(crate) fn is_shaped(&self, sql: &str) -> bool {
        shape_of(sql).is_some_and(|shape| {
            self.templates
                .peek(shape.template.as_str())
                .is_some_and(Option::is_some)
        })
    }

    /// Destroys every prepared statement (before the connection closes).
    pub(crate) fn clear(&mut self) {
        self.prepared.clear();
        self.templates.clear();
    }
}

/// A prepared SELECT, destroyed on drop.
pub(crate) struct PreparedQuery(ffi::duckdb_prepared_statement);

// SAFETY: a prepared statement is used by one thread at a time (its connection's), under the
// mutex that holds its cache.
unsafe impl Send for PreparedQuery {}

impl PreparedQuery {
    /// `text` prepared on `connection` when it is one SELECT with exactly `parameters`
    /// parameters and, if it has any, no result column named after one (a name holding `$`).
    fn prepare(connection: ffi::duckdb_connection, text: &CStr, parameters: usize) -> Option<Self> {
        let mut handle: ffi::duckdb_prepared_statement = ptr::null_mut();
        // SAFETY: an open connection and NUL-terminated text. DuckDB allocates the handle even
        // when preparing fails, so it is owned (and destroyed) from here on either way.
        let state = unsafe { ffi::duckdb_prepare(connection, text.as_ptr(), &mut handle) };
        let statement = PreparedQuery(handle);
        if state != ffi::DuckDBSuccess || handle.is_null() {
            return None;
        }
        // SAFETY: a successfully prepared statement.
        let (found, kind) = unsafe {
            (
                ffi::duckdb_nparams(handle),
                ffi::duckdb_prepared_statement_type(handle),
            )
        };
        let one_select = found as usize == parameters
            && kind == ffi::duckdb_statement_type_DUCKDB_STATEMENT_TYPE_SELECT;
        (one_select && (parameters == 0 || !statement.names_a_parameter())).then_some(statement)
    }

    /// True when a result column's name holds a `$`, as one derived from a parameter does.
    fn names_a_parameter(&self) -> bool {
        // SAFETY: a successfully prepared statement; each name is DuckDB's copy, freed here.
        unsafe {
            (0..ffi::duckdb_prepared_statement_column_count(self.0)).any(|column| {
                let name = ffi::duckdb_prepared_statement_column_name(self.0, column);
                if name.is_null() {
                    return true;
                }
                let dollar = CStr::from_ptr(name).to_bytes().contains(&b'$');
                ffi::duckdb_free(name as *mut std::ffi::c_void);
                dollar
            })
        }
    }

    /// Binds `literals` to `$1`, `$2`, … as the constants DuckDB makes of them in a text: an
    /// integer as INTEGER when it fits, else BIGINT; a string as VARCHAR. False if any failed.
    pub(crate) fn bind(&self, literals: &[Literal]) -> bool {
        literals.iter().zip(1u64..).all(|(literal, index)| {
            // SAFETY: a prepared statement of a live connection; the string's bytes and length
            // are valid for the call, which copies them.
            let state = unsafe {
                match literal {
                    Literal::Integer(value) => match i32::try_from(*value) {
                        Ok(value) => ffi::duckdb_bind_int32(self.0, index, value),
                        Err(_) => ffi::duckdb_bind_int64(self.0, index, *value),
                    },
                    Literal::Text(value) => ffi::duckdb_bind_varchar_length(
                        self.0,
                        index,
                        value.as_ptr().cast::<c_char>(),
                        value.len() as u64,
                    ),
                }
            };
            state == ffi::DuckDBSuccess
        })
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
