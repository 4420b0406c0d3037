//! The built-in demo database `--demo` serves: a few rows of an airline schema.

use std::path::{Path, PathBuf};

/// DDL and rows of the demo database (an OpenFlights-like schema, rows written by hand).
pub const DEMO_SQL: &str = include_str!("demo.sql");

/// Writes the demo database into `dir` (replacing any earlier copy) and returns its path.
pub fn write_demo_database(dir: &Path) -> Result<PathBuf, sqlrft_duck::duckdb::Error> {
    let path = dir.join("sqlrft-demo.duckdb");
    let _ = std::fs::remove_file(&path);
    let conn = sqlrft_duck::duckdb::Connection::open(&path)?;
    conn.execute_batch(DEMO_SQL)?;
    Ok(path)
}
