//! Running one dataset item's SQL on a database of its own: a fresh in-memory DuckDB built
//! from the item's `sql_context` (DDL and INSERTs), or its sandbox file read-only. This is the
//! seed project's "does the SQL run?" check (its `validate_sql_query`), which rewards and
//! distillation ask for without linking DuckDB themselves.

use std::path::Path;

use sqlrft_core::ResultSet;
use sqlrft_core::score::{FailureKind, QueryFailure};
use sqlrft_duck::Limits;

use crate::executor::ExecError;

/// The database an item's SQL runs on.
#[derive(Debug, Clone, Copy)]
pub enum ItemDatabase<'a> {
    /// A fresh in-memory database, the item's `sql_context` applied first.
    Context(&'a str),
    /// A sandbox DuckDB file (`sqlrft build`'s), opened read-only.
    Sandbox(&'a Path),
}

/// Runs `sql` on `database` within the default limits (10 s, 10 000 rows kept) and reads every
/// row. The statement is not restricted to a SELECT: on a scratch database anything that runs
/// counts, as in the seed project; the database is locked down (no file, network or extension
/// access) and thrown away afterwards, and a sandbox is read-only.
///
/// A `sql_context` statement that fails is reported as the query's failure (the seed counts the
/// item's SQL invalid then too); a database that cannot be opened is infrastructure.
pub fn run_on_item_database(database: ItemDatabase<'_>, sql: &str) -> Result<ResultSet, ExecError> {
    let limits = Limits::default();
    let connection = match database {
        ItemDatabase::Context(context) => {
            let connection = sqlrft_duck::scratch_database().map_err(|e| {
                ExecError::Infrastructure(format!("could not open a scratch database: {e}"))
            })?;
            // The seed splits the context on every `;` and runs each non-empty piece.
            for (n, statement) in context
                .split(';')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .enumerate()
            {
                connection.execute_batch(statement).map_err(|e| {
                    ExecError::Query(QueryFailure {
                        kind: FailureKind::Sql,
                        message: format!(
                            "sql_context statement {} failed: {}",
                            n + 1,
                            sqlrft_duck::QueryError::from(e)
                        ),
                    })
                })?;
            }
            connection
        }
        ItemDatabase::Sandbox(path) => sqlrft_duck::open_read_only(path)
            .map_err(|e| ExecError::Infrastructure(format!("could not open the sandbox: {e}")))?,
    };
    sqlrft_duck::collect_result_set(&connection, sql, &limits).map_err(ExecError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "CREATE TABLE t (id INT, city VARCHAR); \
        INSERT INTO t VALUES (1, 'Oslo'), (2, 'Rome');";

    #[test]
    fn sql_runs_after_the_context() {
        let rows =
            run_on_item_database(ItemDatabase::Context(CONTEXT), "SELECT count(*) FROM t").unwrap();
        assert_eq!(rows.rows, vec![vec![serde_json::json!(2)]]);
    }

    #[test]
    fn a_wrong_query_or_context_is_the_query_failure() {
        let wrong = run_on_item_database(ItemDatabase::Context(CONTEXT), "SELECT nope FROM t");
        assert!(matches!(wrong, Err(ExecError::Query(_))), "{wrong:?}");
        let broken = run_on_item_database(ItemDatabase::Context("CREATE TABL t"), "SELECT 1");
        match broken {
            Err(ExecError::Query(f)) => assert!(f.message.contains("statement 1"), "{f}"),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_scratch_database_reads_no_files() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("x.csv");
        std::fs::write(&csv, "a\n1\n").unwrap();
        let read = run_on_item_database(
            ItemDatabase::Context(""),
            &format!("SELECT * FROM read_csv('{}')", csv.display()),
        );
        assert!(matches!(read, Err(ExecError::Query(_))), "{read:?}");
    }

    #[test]
    fn a_missing_sandbox_is_infrastructure() {
        let r = run_on_item_database(
            ItemDatabase::Sandbox(Path::new("/no/such.duckdb")),
            "SELECT 1",
        );
        assert!(matches!(r, Err(ExecError::Infrastructure(_))), "{r:?}");
    }
}
