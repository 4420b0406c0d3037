//! What tables a database has and what they look like, from DuckDB's catalog functions.

use duckdb::Connection;
use serde::{Deserialize, Serialize};

use crate::QueryError;

/// One user table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableInfo {
    /// The schema (namespace) that holds it, usually `main`.
    pub schema: String,
    /// The table's name as the catalog spells it.
    pub name: String,
    /// How many columns it has, so a client can judge its width before describing it.
    pub column_count: usize,
    /// DuckDB's estimate, from its catalog (not a count of rows).
    pub estimated_rows: u64,
}

/// One column of a table.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ColumnDescription {
    /// The column's name.
    pub name: String,
    #[serde(rename = "type")]
    /// DuckDB's type name (`INTEGER`, `DECIMAL(10,2)`, …); `type` on the wire.
    pub type_name: String,
    /// Whether the column admits NULL.
    pub nullable: bool,
}

/// A table's columns and exact row count.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableDescription {
    /// The schema (namespace) that holds it.
    pub schema: String,
    /// The table's name.
    pub name: String,
    /// Its columns, in declared order.
    pub columns: Vec<ColumnDescription>,
    /// An exact `count(*)`, so a client can tell an empty table from a large one.
    pub row_count: u64,
}

pub(crate) fn list_tables(conn: &Connection) -> Result<Vec<TableInfo>, QueryError> {
    let mut statement = conn.prepare(
        "SELECT schema_name, table_name, column_count, estimated_size \
         FROM duckdb_tables() WHERE NOT internal AND NOT temporary \
         ORDER BY schema_name, table_name",
    )?;
    let tables = statement
        .query_map([], |row| {
            Ok(TableInfo {
                schema: row.get(0)?,
                name: row.get(1)?,
                column_count: row.get::<_, i64>(2)? as usize,
                estimated_rows: row.get::<_, i64>(3)? as u64,
            })
        })?
        .collect::<Result<Vec<_>, _>>()?;
    Ok(tables)
}

pub(crate) fn describe_table(
    conn: &Connection,
    table: &str,
) -> Result<TableDescription, QueryError> {
    let (schema, name) = match table.split_once('.') {
        Some((schema, name)) => (Some(schema), name),
        None => (None, table),
    };
    let mut statement = conn.prepare(
        "SELECT schema_name, column_name, data_type, is_nullable FROM duckdb_columns() \
         WHERE NOT internal AND table_name = ?1 AND (?2 IS NULL OR schema_name = ?2) \
         ORDER BY schema_name, column_index",
    )?;
    let rows = statement
        .query_map(duckdb::params![name, schema], |row| {
            Ok((
                row.get::<_, String>(0)?,
                ColumnDescription {
                    name: row.get(1)?,
                    type_name: row.get(2)?,
                    nullable: row.get(3)?,
                },
            ))
        })?
        .collect::<Result<Vec<_>, _>>()?;
    let Some(schema) = rows.first().map(|(schema, _)| schema.clone()) else {
        let known: Vec<String> = list_tables(conn)?.into_iter().map(|t| t.name).collect();
        return Err(QueryError::Sql(format!(
            "Catalog Error: Table with name {table} does not exist! Known tables: {}",
            known.join(", ")
        )));
    };
    let columns = rows
        .into_iter()
        .filter(|(s, _)| *s == schema)
        .map(|(_, column)| column)
        .collect();
    let quoted = format!("{}.{}", quote_identifier(&schema), quote_identifier(name));
    let row_count: i64 = conn.query_row(&format!("SELECT count(*) FROM {quoted}"), [], |row| {
        row.get(0)
    })?;
    Ok(TableDescription {
        schema,
        name: name.to_string(),
        columns,
        row_count: row_count as u64,
    })
}

/// Double-quotes an identifier for SQL text.
pub fn quote_identifier(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}
