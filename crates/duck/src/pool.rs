//! A pool of read-only connections to one DuckDB file, so queries run side by side.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use duckdb::Connection;
use sqlrft_core::ResultSet;
use tokio::sync::Semaphore;

use crate::catalog::{self, TableDescription, TableInfo};
use crate::{Limits, OpenError, QueryError, gate, open_read_only};

/// How many connections to keep open, how many callers may wait for one, and the default
/// limits each query runs under.
#[derive(Debug, Clone)]
pub struct PoolOptions {
    /// How many read-only connections to open: the number of queries that run at once.
    pub connections: usize,
    /// How many callers may wait for a connection before [`QueryError::Busy`] answers.
    pub max_waiting: usize,
    /// The limits a query runs under unless the caller gives its own.
    pub limits: Limits,
}

impl Default for PoolOptions {
    fn default() -> Self {
        PoolOptions {
            connections: 8,
            max_waiting: 256,
            limits: Limits::default(),
        }
    }
}

/// Hardened read-only connections to one database file, opened once and reused.
///
/// Every connection is opened read-only with external access, extension loading and
/// configuration changes disabled; every statement passes [`gate::parse_select`] first.
#[derive(Clone)]
pub struct ReadOnlyPool {
    inner: Arc<Inner>,
}

struct Inner {
    path: PathBuf,
    idle: Mutex<Vec<Connection>>,
    permits: Arc<Semaphore>,
    waiting: AtomicUsize,
    options: PoolOptions,
}

impl ReadOnlyPool {
    /// Opens `options.connections` connections to the database at `path`.
    pub fn open(path: &Path, options: PoolOptions) -> Result<Self, OpenError> {
        let first = open_read_only(path)?;
        let size = options.connections.max(1);
        let mut idle = Vec::with_capacity(size);
        for _ in 1..size {
            idle.push(first.try_clone().map_err(|err| OpenError::DuckDb {
                path: path.to_path_buf(),
                message: crate::error::duckdb_message(&err),
            })?);
        }
        idle.push(first);
        Ok(ReadOnlyPool {
            inner: Arc::new(Inner {
                path: path.to_path_buf(),
                idle: Mutex::new(idle),
                permits: Arc::new(Semaphore::new(size)),
                waiting: AtomicUsize::new(0),
                options,
            }),
        })
    }

    /// The database file this pool reads.
    pub fn path(&self) -> &Path {
        &self.inner.path
    }

    /// The limits queries run under unless told otherwise.
    pub fn limits(&self) -> &Limits {
        &self.inner.options.limits
    }

    /// Runs one read-only SELECT under the pool's default limits.
    pub async fn query(&self, sql: &str) -> Result<ResultSet, QueryError> {
        let limits = self.inner.options.limits.clone();
        self.query_with(sql, &limits).await
    }

    /// Runs one read-only SELECT under `limits`.
    pub async fn query_with(&self, sql: &str, limits: &Limits) -> Result<ResultSet, QueryError> {
        let sql = sql.to_string();
        let run_limits = limits.clone();
        self.with_connection(limits, move |conn| {
            gate::parse_select(conn, &sql)?;
            crate::cells::run_query(conn, &sql, &run_limits)
        })
        .await
    }

    /// Parses `sql` with DuckDB's parser; the AST if it is a single SELECT.
    pub async fn parse_select(&self, sql: &str) -> Result<serde_json::Value, QueryError> {
        let sql = sql.to_string();
        let limits = self.inner.options.limits.clone();
        self.with_connection(&limits, move |conn| gate::parse_select(conn, &sql))
            .await
    }

    /// The user tables of the database, with column counts and estimated sizes.
    pub async fn list_tables(&self) -> Result<Vec<TableInfo>, QueryError> {
        let limits = self.inner.options.limits.clone();
        self.with_connection(&limits, catalog::list_tables).await
    }

    /// Columns, types, nullability and row count of one table.
    pub async fn describe_table(&self, table: &str) -> Result<TableDescription, QueryError> {
        let table = table.to_string();
        let limits = self.inner.options.limits.clone();
        self.with_connection(&limits, move |conn| catalog::describe_table(conn, &table))
            .await
    }

    /// Borrows a connection for blocking work, interrupting it when `limits.timeout` passes or
    /// when the caller stops waiting (a client that disconnects must not leave a query running).
    async fn with_connection<T, F>(&self, limits: &Limits, work: F) -> Result<T, QueryError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, QueryError> + Send + 'static,
    {
        let inner = &self.inner;
        let permit = match inner.permits.clone().try_acquire_owned() {
            Ok(permit) => permit,
            Err(_) => {
                // Every connection is busy: wait, unless the waiting room is full too.
                if inner.waiting.fetch_add(1, Ordering::SeqCst) >= inner.options.max_waiting {
                    inner.waiting.fetch_sub(1, Ordering::SeqCst);
                    return Err(QueryError::Busy(inner.options.connections));
                }
                let permit = inner.permits.clone().acquire_owned().await;
                inner.waiting.fetch_sub(1, Ordering::SeqCst);
                permit.map_err(|_| QueryError::Internal("connection pool closed".into()))?
            }
        };
        let conn = inner
            .idle
            .lock()
            .map_err(|_| QueryError::Internal("connection pool poisoned".into()))?
            .pop()
            .ok_or_else(|| QueryError::Internal("no idle connection under a permit".into()))?;
        let mut interrupt = InterruptOnDrop(Some(conn.interrupt_handle()));
        let returned_to = self.inner.clone();
        let mut task = tokio::task::spawn_blocking(move || {
            let result = work(&conn);
            // The connection goes back from this thread, so it is returned even if nobody
            // is waiting for the result any more.
            if let Ok(mut idle) = returned_to.idle.lock() {
                idle.push(conn);
            }
            drop(permit);
            result
        });
        let (result, timed_out) = tokio::select! {
            joined = &mut task => (joined.map_err(|e| QueryError::Internal(e.to_string()))?, false),
            _ = tokio::time::sleep(limits.timeout) => {
                interrupt.fire();
                (task.await.map_err(|e| QueryError::Internal(e.to_string()))?, true)
            }
        };
        interrupt.disarm();
        match result {
            Err(QueryError::Sql(_)) if timed_out => Err(QueryError::Timeout(limits.timeout)),
            other => other,
        }
    }
}

/// Interrupts a running query when dropped before it is disarmed.
struct InterruptOnDrop(Option<Arc<duckdb::InterruptHandle>>);

impl InterruptOnDrop {
    fn fire(&mut self) {
        if let Some(handle) = self.0.take() {
            handle.interrupt();
        }
    }

    fn disarm(&mut self) {
        self.0 = None;
    }
}

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        self.fire();
    }
}
