//! A small DuckDB file with every kind of value the comparison cares about, and an MCP server on
//! it. The reward service's tests use this file too (by path), so both score the same data.

use std::path::PathBuf;

/// The fixture's tables: typed numbers, decimals, huge integers, dates, NULLs, booleans, text.
pub const FIXTURE_SQL: &str = "
CREATE TABLE cities (id INTEGER, name VARCHAR, country VARCHAR, population BIGINT,
    area DECIMAL(10,2), founded DATE, capital BOOLEAN, mayor VARCHAR, density DOUBLE);
INSERT INTO cities VALUES
    (1, 'Oslo', 'Norway', 709037, 454.00, DATE '1040-01-01', true, 'Anne', 1561.8),
    (2, 'Bergen', 'Norway', 289330, 465.30, DATE '1070-01-01', false, NULL, 621.8),
    (3, 'Nairobi', 'Kenya', 4397073, 696.00, DATE '1899-05-30', true, 'Johnson', 6317.6),
    (4, 'Mombasa', 'Kenya', 1208333, 219.90, DATE '1500-01-01', false, 'Abdulswamad', 5494.9),
    (5, 'Toronto', 'Canada', 2794356, 630.20, DATE '1834-03-06', false, 'Olivia', 4427.8),
    (6, 'Ottawa', 'Canada', 1017449, 2790.30, DATE '1855-01-01', true, 'Mark', 364.6);
CREATE TABLE big (n HUGEINT, label VARCHAR);
INSERT INTO big VALUES (170141183460469231731687303715884105727, 'max'), (42, 'small');
";

pub struct Fixture {
    pub _dir: tempfile::TempDir,
    pub db: PathBuf,
}

pub fn fixture() -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let db = dir.path().join("fixture.duckdb");
    let conn = sqlrft_duck::duckdb::Connection::open(&db).expect("create fixture db");
    conn.execute_batch(FIXTURE_SQL).expect("fill fixture db");
    drop(conn);
    Fixture { _dir: dir, db }
}

pub async fn mcp_server(fixture: &Fixture) -> sqlrft_mcp::RunningServer {
    sqlrft_mcp::start(sqlrft_mcp::McpConfig {
        db: Some(fixture.db.clone()),
        port: 0,
        ..sqlrft_mcp::McpConfig::default()
    })
    .await
    .expect("MCP server starts")
}
