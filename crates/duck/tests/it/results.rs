//! DuckDB values become typed cells, with DuckDB's type names.

use serde_json::json;
use sqlrft_duck::{Limits, QueryError, outermost_order_by};

use crate::{PEOPLE, TestDb};

#[tokio::test]
async fn typed_cells_and_type_names() {
    let db = TestDb::new(PEOPLE);
    let result = db
        .pool()
        .query("SELECT id, name, score FROM people ORDER BY id")
        .await
        .unwrap();
    assert_eq!(result.columns, ["id", "name", "score"]);
    assert_eq!(result.types, ["INTEGER", "VARCHAR", "DECIMAL(5,2)"]);
    assert_eq!(
        result.rows,
        vec![
            vec![json!(1), json!("ada"), json!("3.50")],
            vec![json!(2), json!("bob"), json!(null)],
            vec![json!(3), json!(null), json!("1.25")],
        ]
    );
    assert_eq!(result.row_count, 3);
    assert!(!result.truncated);
}

#[tokio::test]
async fn scalar_types_cover_the_reference_set() {
    let db = TestDb::new("SELECT 1");
    let sql = "SELECT TIMESTAMP '2024-01-02 03:04:05.123' AS ts, INTERVAL 1 DAY AS iv, 'ab'::BLOB AS bl,
        '123e4567-e89b-12d3-a456-426614174000'::UUID AS u, TIME '03:04:05' AS t, ['x','y'] AS ls,
        MAP {'k': 1} AS m, TIMESTAMPTZ '2024-01-02 03:04:05+00' AS tz, -0.0::DOUBLE AS nz,
        123456789012345678901234567890::HUGEINT AS hi, DATE '2024-01-02' AS d, {'a': 1, 'b': 'x'} AS st,
        true AS b, 'nan'::DOUBLE AS nan, 2.5::FLOAT AS f";
    let result = db.pool().query(sql).await.unwrap();
    let expected_types = [
        "TIMESTAMP",
        "INTERVAL",
        "BLOB",
        "UUID",
        "TIME",
        "VARCHAR[]",
        "MAP(VARCHAR, INTEGER)",
        "TIMESTAMP WITH TIME ZONE",
        "DOUBLE",
        "HUGEINT",
        "DATE",
        "STRUCT(a INTEGER, b VARCHAR)",
        "BOOLEAN",
        "DOUBLE",
        "FLOAT",
    ];
    assert_eq!(result.types, expected_types);
    let row = &result.rows[0];
    assert_eq!(row[0], json!("2024-01-02T03:04:05.123"));
    assert_eq!(row[1], json!("P1D"));
    assert_eq!(row[2], json!("ab"));
    assert_eq!(row[3], json!("123e4567-e89b-12d3-a456-426614174000"));
    assert_eq!(row[4], json!("03:04:05"));
    assert_eq!(row[5], json!(["x", "y"]));
    assert_eq!(row[6], json!([{"key": "k", "value": 1}]));
    assert_eq!(row[7], json!("2024-01-02T03:04:05+00:00"));
    assert_eq!(row[8].as_f64().map(|f| f.is_sign_negative()), Some(true));
    assert_eq!(row[9], json!("123456789012345678901234567890"));
    assert_eq!(row[10], json!("2024-01-02"));
    assert_eq!(row[11], json!({"a": 1, "b": "x"}));
    assert_eq!(row[12], json!(true));
    assert_eq!(row[13], json!("NaN"));
    assert_eq!(row[14], json!(2.5));
}

#[tokio::test]
async fn row_limit_truncates_but_counts_every_row() {
    let db = TestDb::new("SELECT 1");
    let limits = Limits {
        max_rows: 10,
        ..Default::default()
    };
    let result = db
        .pool()
        .query_with("SELECT * FROM range(25)", &limits)
        .await
        .unwrap();
    assert_eq!(result.rows.len(), 10);
    assert_eq!(result.row_count, 25);
    assert!(result.truncated);
}

#[tokio::test]
async fn byte_limit_fails_the_query() {
    let db = TestDb::new("SELECT 1");
    let limits = Limits {
        max_bytes: 1_000,
        ..Default::default()
    };
    let err = db
        .pool()
        .query_with("SELECT repeat('x', 100) FROM range(100)", &limits)
        .await
        .unwrap_err();
    assert_eq!(err, QueryError::TooLarge { limit: 1_000 });
}

#[tokio::test]
async fn detects_order_by_only_on_the_outermost_query() {
    let db = TestDb::new(PEOPLE);
    let pool = db.pool();
    let cases = [
        ("SELECT * FROM people ORDER BY id", true),
        ("SELECT * FROM (SELECT * FROM people ORDER BY id) t", false),
        ("SELECT name FROM people UNION SELECT 'x' ORDER BY 1", true),
        (
            "WITH t AS (SELECT * FROM people ORDER BY id) SELECT * FROM t",
            false,
        ),
        ("SELECT * FROM people", false),
    ];
    for (sql, ordered) in cases {
        let ast = pool.parse_select(sql).await.unwrap();
        assert_eq!(outermost_order_by(&ast), ordered, "{sql}");
    }
}

#[tokio::test]
async fn lists_and_describes_tables() {
    let db = TestDb::new(PEOPLE);
    let pool = db.pool();
    let tables = pool.list_tables().await.unwrap();
    assert_eq!(tables.len(), 1);
    assert_eq!(tables[0].name, "people");
    assert_eq!(tables[0].column_count, 3);
    let people = pool.describe_table("people").await.unwrap();
    assert_eq!(people.row_count, 3);
    let names: Vec<_> = people
        .columns
        .iter()
        .map(|c| (c.name.as_str(), c.type_name.as_str(), c.nullable))
        .collect();
    assert_eq!(
        names,
        [
            ("id", "INTEGER", false),
            ("name", "VARCHAR", true),
            ("score", "DECIMAL(5,2)", true)
        ]
    );
    let missing = pool.describe_table("nope").await.unwrap_err().to_string();
    assert!(
        missing.contains("nope") && missing.contains("people"),
        "{missing}"
    );
}

#[tokio::test]
async fn concurrent_queries_do_not_wait_for_a_slow_one() {
    fast_queries_pass_a_slow_one().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_queries_do_not_wait_for_a_slow_one_on_a_multi_threaded_runtime() {
    fast_queries_pass_a_slow_one().await;
}

async fn fast_queries_pass_a_slow_one() {
    let db = TestDb::new(PEOPLE);
    let pool = db.pool();
    let slow_pool = pool.clone();
    let slow = tokio::spawn(async move {
        slow_pool
            .query("SELECT count(*) FROM range(3000000000)")
            .await
    });
    // While the slow query holds one connection, fast ones must complete on the others.
    for _ in 0..20 {
        pool.query("SELECT count(*) FROM people").await.unwrap();
    }
    assert!(
        !slow.is_finished(),
        "the slow query should still be running"
    );
    slow.abort();
}

#[test]
fn scratch_database_runs_ddl_but_reads_no_files() {
    let conn = sqlrft_duck::scratch_database().unwrap();
    conn.execute_batch("CREATE TABLE t(a INTEGER); INSERT INTO t VALUES (1), (2);")
        .unwrap();
    let result =
        sqlrft_duck::collect_result_set(&conn, "SELECT sum(a) AS s FROM t", &Limits::default())
            .unwrap();
    assert_eq!(result.rows, vec![vec![json!(3)]]);
    assert_eq!(result.types, ["HUGEINT"]);
    assert!(
        conn.execute_batch("SELECT * FROM read_text('/etc/hostname')")
            .is_err()
    );
}

#[tokio::test]
async fn a_free_connection_is_used_even_with_no_waiting_room() {
    let db = TestDb::new(PEOPLE);
    let options = sqlrft_duck::PoolOptions {
        connections: 1,
        max_waiting: 0,
        ..Default::default()
    };
    let pool = sqlrft_duck::ReadOnlyPool::open(&db.path, options).unwrap();
    pool.query("SELECT 1")
        .await
        .expect("the only connection is free");
}

#[tokio::test]
async fn an_untyped_null_column_is_null() {
    let db = TestDb::new("SELECT 1");
    let result = db
        .pool()
        .query("SELECT 42 AS answer, 'x' AS s, NULL AS n")
        .await
        .unwrap();
    assert_eq!(result.rows, vec![vec![json!(42), json!("x"), json!(null)]]);
    // ../shared/reference/motherduck-0.8.1/tabulate_0.10.0_edge.txt: `SELECT NULL AS only_null` is INTEGER.
    assert_eq!(result.types[2], "INTEGER");
}
