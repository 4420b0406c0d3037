//! Only a single query may run: DuckDB's own parser decides what a statement is.
//!
//! `json_serialize_sql` (DuckDB's json extension) serialises SELECT statements only and fails
//! for every other statement type, so it is both the gate and the parse tree callers use
//! (ORDER BY detection, question templates). A text-level check would be fooled by comments,
//! quoting and dialect corners; the engine's parser is not.

use serde_json::Value as Json;

use crate::QueryError;

const NOT_A_QUERY: &str = "Only SELECT statements";

/// Parses `sql` with DuckDB's parser and returns its AST if it is exactly one SELECT statement.
///
/// Syntax errors come back as [`QueryError::Sql`] with DuckDB's own message (as if the query
/// had run); anything that parses but is not a single query is [`QueryError::Refused`].
pub fn parse_select(conn: &duckdb::Connection, sql: &str) -> Result<Json, QueryError> {
    let serialized: String = conn
        .prepare_cached("SELECT json_serialize_sql(?::VARCHAR)")?
        .query_row([sql], |row| row.get(0))?;
    let ast: Json = serde_json::from_str(&serialized).map_err(|e| {
        QueryError::Internal(format!("DuckDB returned an unreadable parse tree: {e}"))
    })?;
    if ast["error"].as_bool() == Some(true) {
        let message = ast["error_message"]
            .as_str()
            .unwrap_or("unknown parser error");
        if message.contains(NOT_A_QUERY) {
            return Err(refused());
        }
        // A parse error: nothing in the text can run, so asking DuckDB to prepare it is safe
        // and yields its complete message (with the LINE/caret context users expect).
        return match conn.prepare(sql) {
            Err(err) => Err(err.into()),
            Ok(_) => Err(QueryError::Sql(message.to_string())),
        };
    }
    let count = ast["statements"].as_array().map_or(0, Vec::len);
    match count {
        1 => Ok(ast),
        0 => Err(QueryError::Refused(
            "Refused: the query is empty; send one SELECT statement".into(),
        )),
        n => Err(QueryError::Refused(format!(
            "Refused: {n} statements sent; this server runs exactly one read-only SELECT per call"
        ))),
    }
}

fn refused() -> QueryError {
    QueryError::Refused(
        "Refused: this database is read-only and runs only single SELECT queries \
         (no COPY, ATTACH, INSTALL/LOAD, SET/PRAGMA, EXPORT, DDL or DML)"
            .into(),
    )
}

/// True when the outermost query of a parsed statement (from [`parse_select`]) has ORDER BY.
pub fn outermost_order_by(ast: &Json) -> bool {
    ast["statements"][0]["node"]["modifiers"]
        .as_array()
        .is_some_and(|modifiers| {
            modifiers
                .iter()
                .any(|m| m["type"].as_str() == Some("ORDER_MODIFIER"))
        })
}
