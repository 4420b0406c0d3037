use std::path::Path;

use clap::{Args, Command, FromArgMatches};
use serde_json::Value;
use sqlrft_builder::{BuildAllArgs, BuildCommand};
use sqlrft_duck::duckdb::Connection;

/// Parses `sqlrft build all` arguments the way the binary would.
pub fn all_args(args: &[&str]) -> BuildAllArgs {
    let command = BuildAllArgs::augment_args(
        Command::new("all")
            .no_binary_name(true)
            .args_override_self(true),
    );
    let matches = command.try_get_matches_from(args).expect("arguments parse");
    BuildAllArgs::from_arg_matches(&matches).expect("arguments convert")
}

/// A small build of the demo schema: few rows and queries, so debug builds stay fast.
pub fn small_demo_args(out: &Path, extra: &[&str]) -> BuildAllArgs {
    let ddl = out.parent().unwrap().join("demo.sql");
    std::fs::write(&ddl, sqlrft_builder::DEMO_SCHEMA_DDL).unwrap();
    let mut args = vec![
        "--schema-from",
        ddl.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "40",
        "--table-rows",
        "routes=300",
        "--table-rows",
        "countries=15",
        "--queries",
        "60",
    ]
    .into_iter()
    .map(str::to_string)
    .collect::<Vec<_>>();
    args.extend(extra.iter().map(|s| s.to_string()));
    let refs: Vec<&str> = args.iter().map(String::as_str).collect();
    all_args(&refs)
}

pub async fn build_all(args: BuildAllArgs) -> anyhow::Result<()> {
    sqlrft_builder::run_build(BuildCommand::All(args))
        .await
        .map(|_| ())
}

pub fn read_jsonl(path: &Path) -> Vec<Value> {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("{}: {e}", path.display()))
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(|l| serde_json::from_str(l).unwrap())
        .collect()
}

/// Runs `sql` on a DuckDB file directly (not through the builder) and returns typed rows.
pub fn run_on(path: &Path, sql: &str) -> sqlrft_core::ResultSet {
    let conn = sqlrft_duck::open_read_only(path).unwrap();
    sqlrft_duck::collect_result_set(&conn, sql, &sqlrft_duck::Limits::default()).unwrap()
}

pub fn scalar(conn: &Connection, sql: &str) -> i64 {
    conn.query_row(sql, [], |r| r.get(0)).unwrap()
}
