//! The typed result set every service speaks: what a query returned, with DuckDB's type names.
//!
//! Cells are JSON values interpreted through their column's DuckDB type name:
//! - NULL is `null` (never the string "None" or "NULL");
//! - BOOLEAN is a JSON bool;
//! - integers are JSON numbers while exactly representable in an f64 (|n| <= 2^53), otherwise
//!   decimal strings (BIGINT/HUGEINT/UBIGINT/UHUGEINT);
//! - DECIMAL(p,s) is a decimal string with exactly `s` fractional digits ("3.14"), because a JSON
//!   number would lose exactness;
//! - FLOAT/DOUBLE are JSON numbers, except NaN/Infinity which are the strings "NaN", "Infinity",
//!   "-Infinity";
//! - DATE/TIME/TIMESTAMP are ISO 8601 strings, INTERVAL an ISO 8601 duration string, UUID its
//!   canonical text, BLOB a string of its bytes with non-printable bytes as `\xNN`;
//! - LIST/ARRAY are JSON arrays, STRUCT a JSON object, MAP an array of `{"key":…,"value":…}`.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Rows and columns returned by one query, with the DuckDB type name of every column.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ResultSet {
    /// Column names, in the order the query produced them.
    pub columns: Vec<String>,
    /// DuckDB type names (`INTEGER`, `DECIMAL(3,2)`, `VARCHAR[]`, …), one per column.
    pub types: Vec<String>,
    /// Typed cells, one inner vector per row, in the order the query returned them.
    pub rows: Vec<Vec<Value>>,
    /// Total rows the query produced (may exceed `rows.len()` when `truncated`).
    #[serde(default)]
    pub row_count: usize,
    /// True when a row or byte limit cut the result short.
    #[serde(default)]
    pub truncated: bool,
}
