//! Reading a schema from DuckDB's catalog: a DuckDB file opened read-only, a DDL file run in a
//! scratch in-memory database, or another database DuckDB can attach read-only (SQLite,
//! Postgres). Only catalog functions are queried — `duckdb_tables()`, `duckdb_columns()`,
//! `duckdb_constraints()` — never a user table, so no data row is read.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};
use serde_json::Value;
use sqlrft_duck::duckdb::Connection;

use crate::schema::{Column, ForeignKey, KeyOrigin, Schema, Table};

/// Where a schema comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum SchemaSource {
    /// A DuckDB database file.
    DuckDb(PathBuf),
    /// A file of CREATE TABLE statements.
    Ddl(PathBuf),
    /// DDL text built into the binary (the quickstart's demo schema).
    DdlText { name: String, text: String },
    /// A SQLite file, attached read-only through DuckDB's sqlite extension.
    Sqlite(PathBuf),
    /// A Postgres connection string, attached read-only through DuckDB's postgres extension.
    Postgres(String),
}

impl SchemaSource {
    /// Recognises a source from what the user typed: `postgres://…`/`postgresql://…`,
    /// `*.sql`/`*.ddl` (DDL), `*.sqlite`/`*.sqlite3`/`*.db3` (SQLite), anything else a DuckDB file.
    pub(crate) fn detect(spec: &str) -> SchemaSource {
        let lower = spec.to_ascii_lowercase();
        if lower.starts_with("postgres://") || lower.starts_with("postgresql://") {
            return SchemaSource::Postgres(spec.to_string());
        }
        // `postgres:dbname=x host=y`: a libpq key=value string.
        if let Some(rest) = spec.strip_prefix("postgres:") {
            return SchemaSource::Postgres(rest.to_string());
        }
        let path = PathBuf::from(spec);
        match path
            .extension()
            .and_then(|e| e.to_str())
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            Some("sql" | "ddl") => SchemaSource::Ddl(path),
            Some("sqlite" | "sqlite3" | "db3") => SchemaSource::Sqlite(path),
            _ => SchemaSource::DuckDb(path),
        }
    }

    /// A short description for the report (never a password).
    pub(crate) fn describe(&self) -> String {
        match self {
            SchemaSource::DuckDb(p) => format!("duckdb:{}", p.display()),
            SchemaSource::Ddl(p) => format!("ddl:{}", p.display()),
            SchemaSource::DdlText { name, .. } => format!("ddl:{name} (built in)"),
            SchemaSource::Sqlite(p) => format!("sqlite:{}", p.display()),
            SchemaSource::Postgres(uri) => {
                let redacted = match (uri.find("://"), uri.rfind('@')) {
                    (Some(scheme), Some(at)) if at > scheme => {
                        format!("{}://…{}", &uri[..scheme], &uri[at..])
                    }
                    _ => uri.clone(),
                };
                format!("postgres:{redacted}")
            }
        }
    }

    /// A default schema name: the file stem.
    pub(crate) fn default_name(&self) -> String {
        match self {
            SchemaSource::DuckDb(p) | SchemaSource::Ddl(p) | SchemaSource::Sqlite(p) => p
                .file_stem()
                .map(|s| s.to_string_lossy().to_string())
                .unwrap_or_else(|| "db".into()),
            SchemaSource::DdlText { name, .. } => name.clone(),
            SchemaSource::Postgres(_) => "postgres".into(),
        }
    }
}

/// Reads the schema of `source` (catalog only) and names it `name`.
pub(crate) fn read_schema(source: &SchemaSource, name: &str) -> Result<Schema> {
    let (conn, database) = match source {
        SchemaSource::DuckDb(path) => {
            let conn = sqlrft_duck::open_read_only(path).map_err(|e| anyhow::anyhow!("{e}"))?;
            let database: String = conn.query_row("SELECT current_database()", [], |r| r.get(0))?;
            (conn, database)
        }
        SchemaSource::Ddl(path) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("could not read DDL file `{}`", path.display()))?;
            (
                ddl_database(&text, &path.display().to_string())?,
                "memory".to_string(),
            )
        }
        SchemaSource::DdlText { name, text } => (ddl_database(text, name)?, "memory".to_string()),
        SchemaSource::Sqlite(path) => {
            if !path.is_file() {
                bail!(
                    "could not open SQLite database `{}`: no such file",
                    path.display()
                );
            }
            (
                attach(
                    &format!(
                        "'{}' AS source_db (TYPE sqlite, READ_ONLY)",
                        escape(&path.display().to_string())
                    ),
                    "sqlite",
                    &source.describe(),
                )?,
                "source_db".into(),
            )
        }
        SchemaSource::Postgres(uri) => (
            attach(
                &format!("'{}' AS source_db (TYPE postgres, READ_ONLY)", escape(uri)),
                "postgres",
                &source.describe(),
            )?,
            "source_db".into(),
        ),
    };
    let mut schema = catalog_schema(&conn, &database)
        .with_context(|| format!("could not read the catalog of {}", source.describe()))?;
    schema.name = name.to_string();
    schema.source = source.describe();
    if schema.tables.is_empty() {
        bail!(
            "{} has no tables; point --schema-from at a database or DDL file with CREATE TABLE statements",
            source.describe()
        );
    }
    Ok(schema)
}

fn escape(text: &str) -> String {
    text.replace('\'', "''")
}

/// Runs DDL in a scratch in-memory database: DuckDB's parser and binder are the authority on
/// what the statements mean, so the schema is read back from its catalog like any other.
fn ddl_database(ddl: &str, name: &str) -> Result<Connection> {
    let conn = sqlrft_duck::scratch_database().map_err(|e| anyhow::anyhow!("{e}"))?;
    conn.execute_batch(ddl).map_err(|e| {
        anyhow::anyhow!(
            "could not run the DDL in `{name}`: {e}; it must be CREATE TABLE statements DuckDB understands (Postgres-style DDL mostly works)"
        )
    })?;
    Ok(conn)
}

fn attach(attach_clause: &str, extension: &str, describe: &str) -> Result<Connection> {
    let conn = Connection::open_in_memory()?;
    conn.execute_batch(&format!("LOAD {extension};")).map_err(|e| {
        anyhow::anyhow!(
            "could not read {describe}: DuckDB's {extension} extension is not available ({e}); run `INSTALL {extension}` once with network access, or export the schema as DDL and pass the .sql file"
        )
    })?;
    conn.execute_batch(&format!("ATTACH {attach_clause};"))
        .map_err(|e| anyhow::anyhow!("could not attach {describe} read-only: {e}"))?;
    Ok(conn)
}

/// The user tables, columns and key constraints of `database`, from catalog functions only.
pub(crate) fn catalog_schema(conn: &Connection, database: &str) -> Result<Schema> {
    let mut tables: Vec<Table> = Vec::new();
    {
        let mut statement = conn.prepare(
            "SELECT table_name FROM duckdb_tables() \
             WHERE database_name = ?1 AND NOT internal AND NOT temporary \
             ORDER BY schema_name, table_name",
        )?;
        let names = statement.query_map([database], |r| r.get::<_, String>(0))?;
        for name in names {
            tables.push(Table {
                name: name?,
                columns: vec![],
                primary_key: vec![],
                primary_key_origin: None,
                foreign_keys: vec![],
            });
        }
    }
    {
        let mut statement = conn.prepare(
            "SELECT table_name, column_name, data_type, is_nullable FROM duckdb_columns() \
             WHERE database_name = ?1 AND NOT internal ORDER BY table_oid, column_index",
        )?;
        let rows = statement.query_map([database], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, bool>(3)?,
            ))
        })?;
        for row in rows {
            let (table, name, data_type, nullable) = row?;
            if let Some(t) = tables.iter_mut().find(|t| t.name == table) {
                t.columns.push(Column {
                    name,
                    data_type,
                    nullable,
                });
            }
        }
    }
    {
        let mut statement = conn.prepare(
            "SELECT table_name, constraint_type, to_json(constraint_column_names)::VARCHAR, \
                    referenced_table, to_json(referenced_column_names)::VARCHAR \
             FROM duckdb_constraints() \
             WHERE database_name = ?1 AND constraint_type IN ('PRIMARY KEY', 'FOREIGN KEY') \
             ORDER BY table_oid, constraint_index",
        )?;
        let rows = statement.query_map([database], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, Option<String>>(2)?,
                r.get::<_, Option<String>>(3)?,
                r.get::<_, Option<String>>(4)?,
            ))
        })?;
        let names = |json: Option<String>| -> Vec<String> {
            json.and_then(|j| serde_json::from_str::<Value>(&j).ok())
                .and_then(|v| v.as_array().cloned())
                .unwrap_or_default()
                .into_iter()
                .filter_map(|v| v.as_str().map(str::to_string))
                .collect()
        };
        for row in rows {
            let (table, kind, columns, referenced_table, referenced_columns) = row?;
            let Some(t) = tables.iter_mut().find(|t| t.name == table) else {
                continue;
            };
            let columns = names(columns);
            match kind.as_str() {
                "PRIMARY KEY" => {
                    t.primary_key = columns;
                    t.primary_key_origin = Some(KeyOrigin::Declared);
                }
                "FOREIGN KEY" => {
                    let Some(referenced_table) = referenced_table else {
                        continue;
                    };
                    let fk = ForeignKey {
                        columns,
                        references_table: referenced_table,
                        references_columns: names(referenced_columns),
                        origin: KeyOrigin::Declared,
                    };
                    // DuckDB lists a foreign key on both ends; keep the referencing side once.
                    if !fk.references_columns.is_empty() && !t.foreign_keys.contains(&fk) {
                        t.foreign_keys.push(fk);
                    }
                }
                _ => {}
            }
        }
    }
    Ok(Schema {
        name: database.to_string(),
        source: String::new(),
        tables,
    })
}
