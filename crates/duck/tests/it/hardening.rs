//! Everything that is not a single read-only query is refused, whatever way it is written.

use sqlrft_duck::QueryError;

use crate::{PEOPLE, TestDb};

async fn refusal(sql: &str) -> QueryError {
    let db = TestDb::new(PEOPLE);
    match db.pool().query(sql).await {
        Ok(result) => panic!("`{sql}` ran and returned {result:?}"),
        Err(err) => err,
    }
}

#[tokio::test]
async fn refuses_writes_ddl_and_session_statements() {
    for sql in [
        "CREATE TABLE x(a INTEGER)",
        "INSERT INTO people VALUES (9, 'eve', 1)",
        "UPDATE people SET name = 'x'",
        "DELETE FROM people",
        "DROP TABLE people",
        "ALTER TABLE people ADD COLUMN c INTEGER",
        "SET threads = 1",
        "RESET threads",
        "PRAGMA threads = 1",
        "INSTALL httpfs",
        "LOAD httpfs",
        "ATTACH ':memory:' AS m",
        "DETACH people",
        "USE memory",
        "CHECKPOINT",
        "VACUUM",
        "BEGIN TRANSACTION",
        "CALL pragma_version()",
        "EXPORT DATABASE '/tmp/sqlrft-export'",
        "COPY people TO '/tmp/sqlrft-escape.csv'",
        "COPY (SELECT 42) TO '/tmp/sqlrft-escape.csv'",
        "CREATE MACRO m(x) AS x",
        "CREATE SECRET s (TYPE s3)",
        // Statements DuckDB rewrites into queries while preparing them: refused as written.
        "PRAGMA show_tables",
        "pragma table_info('people')",
        "PRAGMA database_size",
        "IMPORT DATABASE '/tmp/sqlrft-import'",
        "COPY FROM DATABASE people TO memory",
        "  /* leading comment */ ; PRAGMA version",
    ] {
        let err = refusal(sql).await;
        assert!(
            matches!(err, QueryError::Refused(_)),
            "`{sql}` gave {err:?}"
        );
    }
}

#[tokio::test]
async fn refuses_more_than_one_statement() {
    for sql in [
        "SELECT 1; SELECT 2",
        "SELECT 1; DROP TABLE people",
        "SELECT 1;\n-- comment\nCOPY people TO '/tmp/x.csv'",
    ] {
        let err = refusal(sql).await;
        assert!(
            matches!(err, QueryError::Refused(_)),
            "`{sql}` gave {err:?}"
        );
    }
}

#[tokio::test]
async fn reads_no_files_even_from_a_select() {
    for sql in [
        "SELECT * FROM read_text('/etc/hostname')",
        "SELECT * FROM read_csv('/etc/passwd')",
        "SELECT * FROM read_parquet('/tmp/none.parquet')",
        "SELECT * FROM glob('/*')",
        "SELECT * FROM 'people.csv'",
    ] {
        let err = refusal(sql).await;
        assert!(
            matches!(&err, QueryError::Sql(m) if m.contains("Permission Error") || m.contains("disabled") || m.contains("Catalog Error")),
            "`{sql}` gave {err:?}"
        );
    }
}

#[tokio::test]
async fn configuration_is_locked_and_external_access_off() {
    let db = TestDb::new(PEOPLE);
    let result = db
        .pool()
        .query("SELECT current_setting('enable_external_access') AS ext, current_setting('access_mode') AS mode")
        .await
        .expect("settings are readable");
    assert_eq!(result.rows[0][0], serde_json::json!(false));
    assert_eq!(result.rows[0][1], serde_json::json!("read_only"));
}

#[tokio::test]
async fn syntax_errors_keep_duckdbs_message() {
    let err = refusal("SELEC COUNT(*) FROM people").await;
    match err {
        QueryError::Sql(message) => {
            assert!(
                message.starts_with("Parser Error: syntax error at or near \"SELEC\""),
                "{message}"
            );
            assert!(message.contains("LINE 1"), "{message}");
        }
        other => panic!("expected DuckDB's parser error, got {other:?}"),
    }
}

#[tokio::test]
async fn allows_read_only_query_forms() {
    let db = TestDb::new(PEOPLE);
    let pool = db.pool();
    for sql in [
        "SELECT 1",
        "FROM people",
        "WITH t AS (SELECT * FROM people) SELECT count(*) FROM t",
        "SELECT name FROM people UNION ALL SELECT 'x'",
        "VALUES (1, 2)",
        "  select * from people -- trailing comment\n",
        "SELECT 1;",
    ] {
        pool.query(sql)
            .await
            .unwrap_or_else(|e| panic!("`{sql}` refused: {e}"));
    }
}

#[tokio::test]
async fn times_out_by_interrupting_and_the_connection_survives() {
    time_out_then_answer().await;
}

/// A server's runtime, whose timer task fires the interrupt from another worker.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn times_out_on_a_multi_threaded_runtime_too() {
    time_out_then_answer().await;
}

async fn time_out_then_answer() {
    let db = TestDb::new(PEOPLE);
    let pool = one_connection(&db, std::time::Duration::from_millis(200));
    // Three times: the third runs from the plan the second sight prepared, and must be
    // interrupted all the same; then three texts of one shape, the last two run from it.
    let shaped = |n: usize| format!("{ENDLESS} WHERE a.range <> {n}");
    for (sight, sql) in (1..=3)
        .map(|_| ENDLESS.to_string())
        .chain((1..=3).map(shaped))
        .enumerate()
    {
        let err = pool
            .query(&sql)
            .await
            .expect_err("an endless query must not finish");
        assert!(
            matches!(err, QueryError::Timeout(_)),
            "sight {sight}: {sql}: {err:?}"
        );
    }
    // The only connection was interrupted; it must still answer the next query.
    let next = pool
        .query("SELECT 7 AS seven")
        .await
        .expect("connection reusable");
    assert_eq!(next.rows, vec![vec![serde_json::json!(7)]]);
}

#[tokio::test]
async fn refuses_to_open_a_missing_file_with_a_helpful_message() {
    let err = match sqlrft_duck::ReadOnlyPool::open(
        std::path::Path::new("/no/such.duckdb"),
        Default::default(),
    ) {
        Ok(_) => panic!("opened a missing file"),
        Err(err) => err.to_string(),
    };
    assert!(
        err.contains("/no/such.duckdb") && err.contains("no such file"),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_caller_that_stops_waiting_interrupts_its_query() {
    let db = TestDb::new(PEOPLE);
    let pool = one_connection(&db, std::time::Duration::from_secs(600));
    let slow = {
        let pool = pool.clone();
        tokio::spawn(async move { pool.query(ENDLESS).await })
    };
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    // The client went away: its query must give the only connection back long before its
    // ten-minute limit.
    slow.abort();
    let next = tokio::time::timeout(
        std::time::Duration::from_secs(60),
        pool.query("SELECT 7 AS seven"),
    )
    .await
    .expect("the abandoned query was interrupted")
    .expect("connection reusable");
    assert_eq!(next.rows, vec![vec![serde_json::json!(7)]]);
}

/// A query that would run for hours.
const ENDLESS: &str = "SELECT count(*) FROM range(100000000000) a";

/// A pool with a single connection, so a query left running would block the next one.
fn one_connection(db: &TestDb, timeout: std::time::Duration) -> sqlrft_duck::ReadOnlyPool {
    let options = sqlrft_duck::PoolOptions {
        connections: 1,
        limits: sqlrft_duck::Limits {
            timeout,
            ..Default::default()
        },
        ..Default::default()
    };
    sqlrft_duck::ReadOnlyPool::open(&db.path, options).unwrap()
}
