//! The sandbox database: the schema's tables created in a fresh DuckDB file and filled with
//! generated rows through DuckDB's Appender, then column profiles read back for the query
//! generator.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{Context, Result};
use sqlrft_duck::duckdb::types::{ToSql, ToSqlOutput, Value as DuckValue};
use sqlrft_duck::duckdb::{Connection, appender_params_from_iter};
use sqlrft_duck::{Limits, collect_result_set, quote_identifier};
use sqlrft_files::Staged;

use crate::grammar::{ColumnProfile, Profiles};
use crate::schema::{KeyOrigin, Schema};
use crate::synthetic::{Cell, GeneratedTable};

impl ToSql for Cell {
    fn to_sql(&self) -> sqlrft_duck::duckdb::Result<ToSqlOutput<'_>> {
        Ok(ToSqlOutput::Owned(match self {
            Cell::Null => DuckValue::Null,
            Cell::Bool(b) => DuckValue::Boolean(*b),
            Cell::Int(i) => DuckValue::BigInt(*i),
            Cell::Float(f) => DuckValue::Double(*f),
            Cell::Text(s) => DuckValue::Text(s.clone()),
        }))
    }
}

/// CREATE TABLE statements for the sandbox: the schema's columns, types, NOT NULLs, primary
/// keys and declared foreign keys (inferred keys are not enforced: production does not).
pub(crate) fn create_tables_sql(schema: &Schema) -> String {
    let mut sql = String::new();
    for table in schema.tables_parents_first() {
        let mut parts: Vec<String> = table
            .columns
            .iter()
            .map(|c| {
                format!(
                    "{} {}{}",
                    quote_identifier(&c.name),
                    c.data_type,
                    if c.nullable { "" } else { " NOT NULL" }
                )
            })
            .collect();
        if !table.primary_key.is_empty() && table.primary_key_origin == Some(KeyOrigin::Declared) {
            parts.push(format!("PRIMARY KEY ({})", quoted_list(&table.primary_key)));
        }
        for fk in &table.foreign_keys {
            if fk.origin == KeyOrigin::Declared
                && !fk.references_table.eq_ignore_ascii_case(&table.name)
            {
                parts.push(format!(
                    "FOREIGN KEY ({}) REFERENCES {} ({})",
                    quoted_list(&fk.columns),
                    quote_identifier(&fk.references_table),
                    quoted_list(&fk.references_columns)
                ));
            }
        }
        sql.push_str(&format!(
            "CREATE TABLE {} (\n    {}\n);\n",
            quote_identifier(&table.name),
            parts.join(",\n    ")
        ));
    }
    sql
}

fn quoted_list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| quote_identifier(n))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Writes a complete sandbox at `path`: built under a temporary name, checkpointed, then
/// renamed, so `path` is either absent, the previous sandbox, or the finished new one.
pub(crate) fn write_sandbox(schema: &Schema, tables: &[GeneratedTable], path: &Path) -> Result<()> {
    let staged = Staged::file(path)?;
    let tmp = staged.path();
    {
        let conn = Connection::open(tmp)
            .with_context(|| format!("could not create sandbox `{}`", tmp.display()))?;
        conn.execute_batch(&create_tables_sql(schema))
            .context("could not create the sandbox tables from schema.json")?;
        for table in schema.tables_parents_first() {
            let Some(generated) = tables.iter().find(|t| t.name == table.name) else {
                continue;
            };
            let mut appender = conn
                .appender(&table.name)
                .with_context(|| format!("could not open an appender on `{}`", table.name))?;
            for row in &generated.rows {
                appender
                    .append_row(appender_params_from_iter(row.iter()))
                    .with_context(|| {
                        format!("could not append a row to `{}`: {row:?}", table.name)
                    })?;
            }
            appender
                .flush()
                .with_context(|| format!("could not write rows of `{}`", table.name))?;
        }
        conn.execute_batch("CHECKPOINT;")?;
    }
    // The old database's write-ahead log must not outlive it next to the new one.
    remove_database(path);
    Ok(staged.commit()?)
}

/// Removes a DuckDB file and its write-ahead log, if present.
pub(crate) fn remove_database(path: &Path) {
    let _ = std::fs::remove_file(path);
    let mut wal = path.as_os_str().to_owned();
    wal.push(".wal");
    let _ = std::fs::remove_file(Path::new(&wal));
}

/// Profiles every column of the sandbox: distinct and NULL counts, most frequent values,
/// minimum and maximum. Only scalar columns are profiled.
pub(crate) fn profile(sandbox: &Path, schema: &Schema) -> Result<Profiles> {
    let conn = sqlrft_duck::open_read_only(sandbox).map_err(|e| anyhow::anyhow!("{e}"))?;
    let limits = Limits {
        timeout: std::time::Duration::from_secs(60),
        max_rows: 100,
        max_bytes: 1 << 20,
    };
    let mut profiles = Profiles::default();
    for table in &schema.tables {
        let t = quote_identifier(&table.name);
        let count: i64 = conn.query_row(&format!("SELECT count(*) FROM {t}"), [], |r| r.get(0))?;
        profiles.row_counts.insert(table.name.clone(), count as u64);
        let mut columns = BTreeMap::new();
        for column in &table.columns {
            let ty = column.duck_type();
            let scalar = !matches!(
                ty,
                sqlrft_core::DuckType::List(_)
                    | sqlrft_core::DuckType::Struct(_)
                    | sqlrft_core::DuckType::Map(..)
                    | sqlrft_core::DuckType::Blob
            );
            if !scalar {
                continue;
            }
            let c = quote_identifier(&column.name);
            let stats = collect_result_set(
                &conn,
                &format!("SELECT count(DISTINCT {c}) AS d, count(*) - count({c}) AS n, min({c}) AS lo, max({c}) AS hi FROM {t}"),
                &limits,
            )
            .map_err(|e| anyhow::anyhow!("could not profile `{}.{}`: {e}", table.name, column.name))?;
            let top = collect_result_set(
                &conn,
                &format!("SELECT {c} FROM {t} WHERE {c} IS NOT NULL GROUP BY {c} ORDER BY count(*) DESC, {c} LIMIT 20"),
                &limits,
            )
            .map_err(|e| anyhow::anyhow!("could not profile `{}.{}`: {e}", table.name, column.name))?;
            let row = stats.rows.first().cloned().unwrap_or_default();
            let number = |i: usize| {
                row.get(i)
                    .and_then(|v| {
                        v.as_u64()
                            .or_else(|| v.as_str().and_then(|s| s.parse().ok()))
                    })
                    .unwrap_or(0)
            };
            columns.insert(
                column.name.clone(),
                ColumnProfile {
                    distinct_count: number(0),
                    null_count: number(1),
                    top_values: top
                        .rows
                        .into_iter()
                        .filter_map(|r| r.into_iter().next())
                        .collect(),
                    min: row.get(2).cloned().filter(|v| !v.is_null()),
                    max: row.get(3).cloned().filter(|v| !v.is_null()),
                },
            );
        }
        profiles.columns.insert(table.name.clone(), columns);
    }
    Ok(profiles)
}
