//! JSONL → Parquet for published datasets, through the DuckDB this crate already links (its
//! `json` and `parquet` extensions are compiled in, so this costs no extra build), and the
//! Hugging Face `features` of the result for the dataset card.

use std::path::Path;

use anyhow::{Context, Result};
use sqlrft_core::types::{DuckType, IntegerKind};
use sqlrft_duck::duckdb::Connection;

/// One column of a written Parquet file: its name and DuckDB type.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Column {
    pub name: String,
    pub duck_type: DuckType,
}

/// What `to_parquet` wrote.
#[derive(Debug, Clone)]
pub(crate) struct ParquetFile {
    pub columns: Vec<Column>,
}

fn quote_literal(s: &str) -> String {
    format!("'{}'", s.replace('\'', "''"))
}

fn quote_identifier(s: &str) -> String {
    format!("\"{}\"", s.replace('"', "\"\""))
}

/// Writes the JSONL files `inputs` (one split) as one Parquet file `out` (zstd). Types are
/// inferred from every row (not a sample), so a field's type is the same in every row group;
/// a field DuckDB can only type as JSON (mixed kinds) is written as its JSON text.
pub(crate) fn to_parquet(inputs: &[&Path], out: &Path) -> Result<ParquetFile> {
    let conn = Connection::open_in_memory().context("could not start DuckDB to write Parquet")?;
    // One thread: the same input gives the same bytes, so a rerun uploads nothing new.
    conn.execute_batch("SET threads = 1; SET preserve_insertion_order = true;")?;
    let list = inputs
        .iter()
        .map(|p| quote_literal(&p.to_string_lossy()))
        .collect::<Vec<_>>()
        .join(", ");
    let source = format!(
        "read_json([{list}], format = 'newline_delimited', sample_size = -1, \
         maximum_object_size = 268435456, union_by_name = true)"
    );
    let described = describe(&conn, &format!("SELECT * FROM {source}"))
        .with_context(|| format!("could not read {list} as JSON lines"))?;
    let select = described
        .iter()
        .map(|(name, ty)| {
            let q = quote_identifier(name);
            if ty.contains("JSON") {
                format!("CAST({q} AS VARCHAR) AS {q}")
            } else {
                q
            }
        })
        .collect::<Vec<_>>()
        .join(", ");
    let query = format!("SELECT {select} FROM {source}");
    let columns = describe(&conn, &query)?
        .into_iter()
        .map(|(name, ty)| Column {
            duck_type: DuckType::parse(&ty),
            name,
        })
        .collect();
    if let Some(dir) = out.parent() {
        std::fs::create_dir_all(dir)
            .with_context(|| format!("could not create `{}`", dir.display()))?;
    }
    conn.execute(
        &format!(
            "COPY ({query}) TO {} (FORMAT parquet, COMPRESSION zstd)",
            quote_literal(&out.to_string_lossy())
        ),
        [],
    )
    .with_context(|| format!("could not write `{}`", out.display()))?;
    Ok(ParquetFile { columns })
}

fn describe(conn: &Connection, query: &str) -> Result<Vec<(String, String)>> {
    let mut stmt = conn.prepare(&format!("DESCRIBE {query}"))?;
    let rows = stmt.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    Ok(rows.collect::<Result<_, _>>()?)
}

/// The `dataset_info.features` YAML of `columns` (two-space indent, starting at `indent`), in
/// the form `datasets` writes: `dtype` for scalars, `list` for a list of structs (chat
/// messages), `sequence` for other lists, `struct` for structs.
pub(crate) fn features_yaml(columns: &[Column], indent: usize) -> String {
    let mut out = String::new();
    for c in columns {
        named_feature(&mut out, &c.name, &c.duck_type, indent);
    }
    out
}

fn named_feature(out: &mut String, name: &str, ty: &DuckType, indent: usize) {
    let pad = " ".repeat(indent);
    out.push_str(&format!("{pad}- name: {}\n", yaml_string(name)));
    feature_body(out, ty, indent + 2);
}

fn feature_body(out: &mut String, ty: &DuckType, indent: usize) {
    let pad = " ".repeat(indent);
    match ty {
        DuckType::Struct(fields) => {
            out.push_str(&format!("{pad}struct:\n"));
            for (name, ty) in fields {
                named_feature(out, name, ty, indent);
            }
        }
        DuckType::List(inner) => match inner.as_ref() {
            DuckType::Struct(fields) => {
                out.push_str(&format!("{pad}list:\n"));
                for (name, ty) in fields {
                    named_feature(out, name, ty, indent);
                }
            }
            DuckType::List(_) | DuckType::Map(..) => {
                out.push_str(&format!("{pad}sequence:\n"));
                feature_body(out, inner, indent + 2);
            }
            scalar => out.push_str(&format!("{pad}sequence: {}\n", dtype(scalar))),
        },
        scalar => out.push_str(&format!("{pad}dtype: {}\n", dtype(scalar))),
    }
}

/// The Arrow/`datasets` dtype DuckDB's Parquet writer gives a scalar type.
fn dtype(ty: &DuckType) -> &'static str {
    match ty {
        DuckType::Boolean => "bool",
        DuckType::Integer(kind) => match kind {
            IntegerKind::TinyInt => "int8",
            IntegerKind::SmallInt => "int16",
            IntegerKind::Int => "int32",
            IntegerKind::BigInt => "int64",
            IntegerKind::UTinyInt => "uint8",
            IntegerKind::USmallInt => "uint16",
            IntegerKind::UInt => "uint32",
            IntegerKind::UBigInt => "uint64",
            // Wider than Parquet's integers: DuckDB writes them as doubles.
            IntegerKind::HugeInt | IntegerKind::UHugeInt => "float64",
        },
        DuckType::Float => "float32",
        DuckType::Double => "float64",
        DuckType::Date => "date32",
        DuckType::Blob => "binary",
        _ => "string",
    }
}

/// A YAML scalar for a field name: bare when that is unambiguous, else double-quoted.
fn yaml_string(s: &str) -> String {
    if !s.is_empty()
        && s.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.'))
        && !s.starts_with(['-', '.'])
    {
        s.to_string()
    } else {
        serde_json::to_string(s).expect("a string serializes")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn features_follow_datasets_yaml() {
        let columns = vec![
            Column {
                name: "messages".into(),
                duck_type: DuckType::parse("STRUCT(\"role\" VARCHAR, content VARCHAR)[]"),
            },
            Column {
                name: "ground_truth".into(),
                duck_type: DuckType::parse(
                    "STRUCT(\"columns\" VARCHAR[], rows_json VARCHAR, ordered BOOLEAN)",
                ),
            },
            Column {
                name: "valid".into(),
                duck_type: DuckType::parse("BOOLEAN"),
            },
            Column {
                name: "source_index".into(),
                duck_type: DuckType::parse("BIGINT"),
            },
        ];
        assert_eq!(
            features_yaml(&columns, 2),
            "  - name: messages\n    list:\n    - name: role\n      dtype: string\n    \
             - name: content\n      dtype: string\n\
             \x20 - name: ground_truth\n    struct:\n    - name: columns\n      sequence: string\n    \
             - name: rows_json\n      dtype: string\n    - name: ordered\n      dtype: bool\n\
             \x20 - name: valid\n    dtype: bool\n\
             \x20 - name: source_index\n    dtype: int64\n"
        );
    }

    #[test]
    fn odd_field_names_are_quoted() {
        assert_eq!(yaml_string("sql_prompt"), "sql_prompt");
        assert_eq!(yaml_string("a: b"), "\"a: b\"");
        assert_eq!(yaml_string("-x"), "\"-x\"");
    }
}
