//! Integration tests of the DuckDB layer on real database files.

mod hardening;
mod official;
mod results;

use std::path::PathBuf;

use sqlrft_duck::duckdb::Connection;
use sqlrft_duck::{PoolOptions, ReadOnlyPool};

/// A database file made by the test, kept alive with its directory.
pub struct TestDb {
    pub dir: tempfile::TempDir,
    pub path: PathBuf,
}

impl TestDb {
    pub fn new(setup_sql: &str) -> TestDb {
        let dir = tempfile::tempdir().expect("temp dir");
        let path = dir.path().join("test.duckdb");
        let conn = Connection::open(&path).expect("create database");
        conn.execute_batch(setup_sql).expect("setup SQL");
        drop(conn);
        TestDb { dir, path }
    }

    pub fn pool(&self) -> ReadOnlyPool {
        ReadOnlyPool::open(&self.path, PoolOptions::default()).expect("open pool")
    }
}

pub const PEOPLE: &str =
    "CREATE TABLE people(id INTEGER PRIMARY KEY, name VARCHAR, score DECIMAL(5,2));
    INSERT INTO people VALUES (1, 'ada', 3.50), (2, 'bob', NULL), (3, NULL, 1.25);";
