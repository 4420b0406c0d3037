//! Ground truth as a reward request carries it, in any of the three accepted forms:
//!
//! 1. our typed form, what the builder writes: `{"columns", "types", "rows_json", "ordered",
//!    "sql"}` with the rows as one JSON string (Arrow-friendly, see [`crate::dataset`]), or the
//!    earlier `{"columns", "types", "rows", …}` with the rows as a list;
//! 2. the tutorial's form, a list of row objects `[{"col": value, …}, …]` (also wrapped as the
//!    tutorial's `{"query": sql, "result": [...]}`). Untyped unless the request also carries
//!    `columns` and `types` (our dataset records do); unordered unless the request carries
//!    `gold_sql` (then the gold SQL decides) or `ordered: true`;
//! 3. gold SQL alone: `ground_truth` is the SQL string, or is absent and `gold_sql` is given; the
//!    caller executes it.
//!
//! The request's other fields (Fireworks passes a dataset row's extra fields as kwargs) may add
//! `gold_sql` (or our dataset's `sql`), `ordered`, `columns` and `types`.

use std::collections::BTreeSet;

use serde_json::{Map, Value};

use crate::result::ResultSet;

/// What the completion's result is compared against.
#[derive(Debug, Clone, PartialEq)]
pub enum GroundTruth {
    /// The expected rows are known.
    Result {
        /// The expected rows.
        result: ResultSet,
        /// The gold SQL, when known: it decides whether row order matters.
        sql: Option<String>,
        /// Explicit row-order flag; `None` leaves it to `sql` (unordered without it).
        ordered: Option<bool>,
    },
    /// Only the gold SQL is known: execute it for the expected rows.
    Sql {
        /// The gold SQL to execute.
        sql: String,
        /// Explicit row-order flag; `None` reads it from `sql`.
        ordered: Option<bool>,
    },
}

/// A ground truth that cannot be read; `field` names the request field at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("`{field}`: {message}")]
pub struct GroundTruthError {
    /// The request field at fault (e.g. `ground_truth`).
    pub field: String,
    /// What is wrong with it and how to fix it.
    pub message: String,
}

fn error(field: impl Into<String>, message: impl Into<String>) -> GroundTruthError {
    GroundTruthError {
        field: field.into(),
        message: message.into(),
    }
}

fn kind(value: &Value) -> &'static str {
    match value {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "a list",
        Value::Object(_) => "an object",
    }
}

impl GroundTruth {
    /// Reads the ground truth from a request's `ground_truth` and its other fields.
    pub fn parse(
        ground_truth: Option<&Value>,
        extra: &Map<String, Value>,
    ) -> Result<GroundTruth, GroundTruthError> {
        let gold_sql = extra_sql(extra)?;
        let ordered = match extra.get("ordered") {
            None | Some(Value::Null) => None,
            Some(Value::Bool(b)) => Some(*b),
            Some(other) => {
                return Err(error(
                    "ordered",
                    format!("expected true or false, got {}", kind(other)),
                ));
            }
        };
        match ground_truth {
            None | Some(Value::Null) => match gold_sql {
                Some(sql) => Ok(GroundTruth::Sql { sql, ordered }),
                None => Err(error(
                    "ground_truth",
                    "missing; send the expected rows (a list of row objects or \
                     {columns, types, rows_json}) or the gold SQL in `gold_sql`",
                )),
            },
            // Some pipelines store the rows as a JSON-encoded string.
            Some(Value::String(text))
                if text.trim_start().starts_with(['[', '{'])
                    && serde_json::from_str::<Value>(text).is_ok() =>
            {
                let decoded: Value = serde_json::from_str(text).expect("checked above");
                GroundTruth::parse(Some(&decoded), extra)
            }
            Some(Value::String(sql)) if !sql.trim().is_empty() => Ok(GroundTruth::Sql {
                sql: sql.trim().to_string(),
                ordered,
            }),
            Some(Value::String(_)) => Err(error("ground_truth", "is an empty string")),
            Some(Value::Array(records)) => {
                let result = from_records(records, "ground_truth", extra)?;
                Ok(GroundTruth::Result {
                    result,
                    sql: gold_sql,
                    ordered,
                })
            }
            Some(Value::Object(object)) if object.contains_key("rows_json") => {
                let rows = match &object["rows_json"] {
                    Value::String(text) => serde_json::from_str::<Value>(text).map_err(|e| {
                        error(
                            "ground_truth.rows_json",
                            format!("is not JSON ({e}); expected a JSON list of rows"),
                        )
                    })?,
                    other => {
                        return Err(error(
                            "ground_truth.rows_json",
                            format!(
                                "expected a JSON string of a list of rows, got {}",
                                kind(other)
                            ),
                        ));
                    }
                };
                let mut object = object.clone();
                object.remove("rows_json");
                object.insert("rows".into(), rows);
                typed(&object, gold_sql, ordered)
            }
            Some(Value::Object(object)) if object.contains_key("rows") => {
                typed(object, gold_sql, ordered)
            }
            Some(Value::Object(object)) if object.contains_key("result") => {
                let Value::Array(records) = &object["result"] else {
                    return Err(error(
                        "ground_truth.result",
                        format!(
                            "expected a list of row objects, got {}",
                            kind(&object["result"])
                        ),
                    ));
                };
                let result = from_records(records, "ground_truth.result", extra)?;
                let sql = match object.get("query") {
                    Some(Value::String(q)) => Some(q.clone()),
                    _ => gold_sql,
                };
                Ok(GroundTruth::Result {
                    result,
                    sql,
                    ordered,
                })
            }
            Some(other) => Err(error(
                "ground_truth",
                format!(
                    "expected a list of row objects, {{columns, types, rows}} or a SQL string, got {}",
                    kind(other)
                ),
            )),
        }
    }

    /// The gold SQL, when known.
    pub fn sql(&self) -> Option<&str> {
        match self {
            GroundTruth::Result { sql, .. } => sql.as_deref(),
            GroundTruth::Sql { sql, .. } => Some(sql),
        }
    }

    /// The explicit row-order flag, when given.
    pub fn ordered(&self) -> Option<bool> {
        match self {
            GroundTruth::Result { ordered, .. } | GroundTruth::Sql { ordered, .. } => *ordered,
        }
    }
}

fn extra_sql(extra: &Map<String, Value>) -> Result<Option<String>, GroundTruthError> {
    for field in ["gold_sql", "sql"] {
        match extra.get(field) {
            None | Some(Value::Null) => {}
            Some(Value::String(s)) if !s.trim().is_empty() => return Ok(Some(s.trim().into())),
            Some(other) => {
                return Err(error(
                    field,
                    format!("expected a non-empty SQL string, got {}", kind(other)),
                ));
            }
        }
    }
    Ok(None)
}

fn strings(value: &Value, field: &str) -> Result<Vec<String>, GroundTruthError> {
    let Value::Array(items) = value else {
        return Err(error(
            field,
            format!("expected a list of strings, got {}", kind(value)),
        ));
    };
    items
        .iter()
        .enumerate()
        .map(|(i, item)| match item {
            Value::String(s) => Ok(s.clone()),
            other => Err(error(
                format!("{field}[{i}]"),
                format!("expected a string, got {}", kind(other)),
            )),
        })
        .collect()
}

fn typed(
    object: &Map<String, Value>,
    gold_sql: Option<String>,
    ordered: Option<bool>,
) -> Result<GroundTruth, GroundTruthError> {
    let columns = match object.get("columns") {
        Some(value) => strings(value, "ground_truth.columns")?,
        None => {
            return Err(error(
                "ground_truth.columns",
                "missing (typed ground truth needs column names)",
            ));
        }
    };
    let types = match object.get("types") {
        Some(value) => strings(value, "ground_truth.types")?,
        None => vec![String::new(); columns.len()],
    };
    if types.len() != columns.len() {
        return Err(error(
            "ground_truth.types",
            format!("has {} types for {} columns", types.len(), columns.len()),
        ));
    }
    let Value::Array(raw_rows) = &object["rows"] else {
        return Err(error(
            "ground_truth.rows",
            format!("expected a list of rows, got {}", kind(&object["rows"])),
        ));
    };
    let mut rows = Vec::with_capacity(raw_rows.len());
    for (i, row) in raw_rows.iter().enumerate() {
        match row {
            Value::Array(cells) if cells.len() == columns.len() => rows.push(cells.clone()),
            Value::Array(cells) => {
                return Err(error(
                    format!("ground_truth.rows[{i}]"),
                    format!("has {} cells for {} columns", cells.len(), columns.len()),
                ));
            }
            other => {
                return Err(error(
                    format!("ground_truth.rows[{i}]"),
                    format!("expected a list of cells, got {}", kind(other)),
                ));
            }
        }
    }
    let own_ordered = match object.get("ordered") {
        None | Some(Value::Null) => None,
        Some(Value::Bool(b)) => Some(*b),
        Some(other) => {
            return Err(error(
                "ground_truth.ordered",
                format!("expected true or false, got {}", kind(other)),
            ));
        }
    };
    let sql = match object.get("sql") {
        None | Some(Value::Null) => gold_sql,
        Some(Value::String(s)) => Some(s.clone()),
        Some(other) => {
            return Err(error(
                "ground_truth.sql",
                format!("expected a SQL string, got {}", kind(other)),
            ));
        }
    };
    let truncated = matches!(object.get("truncated"), Some(Value::Bool(true)));
    Ok(GroundTruth::Result {
        result: ResultSet {
            columns,
            types,
            row_count: rows.len(),
            rows,
            truncated,
        },
        sql,
        // The request's own flag wins over the one stored with the rows.
        ordered: ordered.or(own_ordered),
    })
}

/// The tutorial's row objects as a result set, typed by the request's `columns`/`types` if sent.
fn from_records(
    records: &[Value],
    field: &str,
    extra: &Map<String, Value>,
) -> Result<ResultSet, GroundTruthError> {
    let mut columns: Vec<String> = Vec::new();
    let mut rows = Vec::with_capacity(records.len());
    for (i, record) in records.iter().enumerate() {
        let Value::Object(object) = record else {
            return Err(error(
                format!("{field}[{i}]"),
                format!("expected an object of column values, got {}", kind(record)),
            ));
        };
        if i == 0 {
            columns = object.keys().cloned().collect();
        } else if object.len() != columns.len() || !columns.iter().all(|c| object.contains_key(c)) {
            return Err(error(
                format!("{field}[{i}]"),
                format!(
                    "has columns {:?} but the first row has {:?}",
                    object.keys().collect::<Vec<_>>(),
                    columns
                ),
            ));
        }
        rows.push(columns.iter().map(|c| object[c].clone()).collect());
    }
    let types = record_types(&columns, extra)?;
    Ok(ResultSet {
        columns,
        types,
        row_count: rows.len(),
        rows,
        truncated: false,
    })
}

/// Types for the record columns from the request's `columns` + `types`, else untyped (empty).
fn record_types(
    columns: &[String],
    extra: &Map<String, Value>,
) -> Result<Vec<String>, GroundTruthError> {
    let untyped = vec![String::new(); columns.len()];
    let (Some(names), Some(types)) = (extra.get("columns"), extra.get("types")) else {
        return Ok(untyped);
    };
    let names = strings(names, "columns")?;
    let types = strings(types, "types")?;
    if names.len() != types.len() {
        return Err(error(
            "types",
            format!("has {} types for {} columns", types.len(), names.len()),
        ));
    }
    let distinct: BTreeSet<&String> = names.iter().collect();
    if distinct.len() != names.len() {
        // Row objects cannot hold two columns of one name; the types cannot be placed.
        return Ok(untyped);
    }
    if columns.is_empty() {
        return Ok(untyped);
    }
    let known: BTreeSet<&String> = columns.iter().collect();
    if distinct != known {
        return Err(error(
            "columns",
            format!(
                "names {:?} do not match the ground truth's row keys {:?}",
                names, columns
            ),
        ));
    }
    Ok(columns
        .iter()
        .map(|c| {
            let at = names.iter().position(|n| n == c).expect("checked above");
            types[at].clone()
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn extra(value: Value) -> Map<String, Value> {
        value.as_object().cloned().unwrap_or_default()
    }

    #[test]
    fn reads_the_typed_form() {
        let gt = json!({"columns": ["n"], "types": ["BIGINT"], "rows": [[3]], "ordered": true,
                        "sql": "SELECT COUNT(*) AS n FROM t"});
        let parsed = GroundTruth::parse(Some(&gt), &Map::new()).unwrap();
        let GroundTruth::Result {
            result,
            sql,
            ordered,
        } = parsed
        else {
            panic!("rows expected")
        };
        assert_eq!(result.columns, vec!["n"]);
        assert_eq!(result.types, vec!["BIGINT"]);
        assert_eq!(result.rows, vec![vec![json!(3)]]);
        assert_eq!(sql.as_deref(), Some("SELECT COUNT(*) AS n FROM t"));
        assert_eq!(ordered, Some(true));
    }

    #[test]
    fn reads_the_typed_form_with_rows_as_a_json_string() {
        let gt = json!({"columns": ["c", "n"], "types": ["VARCHAR", "BIGINT"],
                        "rows_json": "[[\"Delta\", 3], [null, 1]]", "ordered": false,
                        "sql": "SELECT c, n FROM t"});
        let GroundTruth::Result {
            result,
            sql,
            ordered,
        } = GroundTruth::parse(Some(&gt), &Map::new()).unwrap()
        else {
            panic!("rows expected")
        };
        assert_eq!(
            result.rows,
            vec![vec![json!("Delta"), json!(3)], vec![Value::Null, json!(1)]]
        );
        assert_eq!(result.types, vec!["VARCHAR", "BIGINT"]);
        assert_eq!(sql.as_deref(), Some("SELECT c, n FROM t"));
        assert_eq!(ordered, Some(false));
        for (bad, what) in [(json!(3), "a number"), (json!("[[1"), "is not JSON")] {
            let gt = json!({"columns": ["n"], "types": ["BIGINT"], "rows_json": bad});
            let err = GroundTruth::parse(Some(&gt), &Map::new()).unwrap_err();
            assert_eq!(err.field, "ground_truth.rows_json");
            assert!(err.message.contains(what), "{err}");
        }
    }

    #[test]
    fn the_dataset_record_form_parses_to_the_same_rows_as_the_earlier_form() {
        let truth = crate::dataset::TypedGroundTruth {
            columns: vec!["a".into()],
            types: vec!["DOUBLE".into()],
            rows: vec![vec![json!(1.5)], vec![json!("NaN")]],
            ordered: true,
            sql: "SELECT a FROM t ORDER BY a".into(),
        };
        let written = serde_json::to_value(&truth).unwrap();
        let mut earlier = written.clone();
        let earlier_object = earlier.as_object_mut().unwrap();
        earlier_object.remove("rows_json");
        earlier_object.insert("rows".into(), json!(truth.rows));
        let new = GroundTruth::parse(Some(&written), &Map::new()).unwrap();
        assert_eq!(
            new,
            GroundTruth::parse(Some(&earlier), &Map::new()).unwrap()
        );
        let GroundTruth::Result { result, .. } = new else {
            panic!("rows expected")
        };
        assert_eq!(result.rows, truth.rows);
    }

    #[test]
    fn reads_the_tutorial_records_untyped_and_unordered() {
        let gt = json!([{"country": "US", "c": 10}, {"country": "DE", "c": 4}]);
        let parsed = GroundTruth::parse(Some(&gt), &Map::new()).unwrap();
        assert_eq!(parsed.ordered(), None);
        assert_eq!(parsed.sql(), None);
        let GroundTruth::Result { result, .. } = parsed else {
            panic!("rows expected")
        };
        assert_eq!(result.types, vec!["", ""]);
        let c = result.columns.iter().position(|n| n == "c").unwrap();
        assert_eq!(result.rows[1][c], json!(4));
    }

    #[test]
    fn tutorial_records_take_types_gold_sql_and_order_from_the_request() {
        let gt = json!([{"d": "2024-01-02", "n": 1}]);
        let parsed = GroundTruth::parse(
            Some(&gt),
            &extra(json!({"columns": ["n", "d"], "types": ["INTEGER", "DATE"],
                          "gold_sql": "SELECT 1", "ordered": false})),
        )
        .unwrap();
        assert_eq!(parsed.sql(), Some("SELECT 1"));
        assert_eq!(parsed.ordered(), Some(false));
        let GroundTruth::Result { result, .. } = parsed else {
            panic!("rows expected")
        };
        let d = result.columns.iter().position(|n| n == "d").unwrap();
        assert_eq!(result.types[d], "DATE");
    }

    #[test]
    fn the_tutorial_wrapper_object_is_accepted() {
        let gt = json!({"query": "SELECT 1 AS x", "result": [{"x": 1}]});
        let parsed = GroundTruth::parse(Some(&gt), &Map::new()).unwrap();
        assert_eq!(parsed.sql(), Some("SELECT 1 AS x"));
    }

    #[test]
    fn gold_sql_alone_is_a_ground_truth() {
        let parsed = GroundTruth::parse(None, &extra(json!({"gold_sql": " SELECT 2 "}))).unwrap();
        assert_eq!(
            parsed,
            GroundTruth::Sql {
                sql: "SELECT 2".into(),
                ordered: None
            }
        );
        let as_string = GroundTruth::parse(Some(&json!("SELECT 3")), &Map::new()).unwrap();
        assert_eq!(as_string.sql(), Some("SELECT 3"));
        let dataset_field = GroundTruth::parse(None, &extra(json!({"sql": "SELECT 4"}))).unwrap();
        assert_eq!(dataset_field.sql(), Some("SELECT 4"));
    }

    #[test]
    fn rows_encoded_as_a_json_string_are_decoded() {
        let encoded = json!("[{\"x\": 1}]");
        let parsed = GroundTruth::parse(Some(&encoded), &Map::new()).unwrap();
        let GroundTruth::Result { result, .. } = parsed else {
            panic!("rows expected")
        };
        assert_eq!(result.rows, vec![vec![json!(1)]]);
    }

    #[test]
    fn errors_name_the_field() {
        let cases = [
            (None, json!({}), "ground_truth"),
            (Some(json!(5)), json!({}), "ground_truth"),
            (Some(json!([{"a": 1}, 7])), json!({}), "ground_truth[1]"),
            (
                Some(json!([{"a": 1}, {"b": 1}])),
                json!({}),
                "ground_truth[1]",
            ),
            (
                Some(json!({"columns": ["a"], "rows": [[1, 2]]})),
                json!({}),
                "ground_truth.rows[0]",
            ),
            (
                Some(json!({"columns": ["a"], "types": [], "rows": []})),
                json!({}),
                "ground_truth.types",
            ),
            (Some(json!({"rows": []})), json!({}), "ground_truth.columns"),
            (Some(json!([])), json!({"ordered": "yes"}), "ordered"),
            (Some(json!([])), json!({"gold_sql": 3}), "gold_sql"),
            (
                Some(json!([{"a": 1}])),
                json!({"columns": ["b"], "types": ["INTEGER"]}),
                "columns",
            ),
        ];
        for (gt, kwargs, field) in cases {
            let err = GroundTruth::parse(gt.as_ref(), &extra(kwargs.clone())).unwrap_err();
            assert_eq!(err.field, field, "{gt:?} {kwargs}");
            assert!(err.to_string().starts_with(&format!("`{field}`")), "{err}");
        }
    }

    #[test]
    fn the_request_order_flag_overrides_the_stored_one() {
        let gt = json!({"columns": ["a"], "types": ["INTEGER"], "rows": [], "ordered": true});
        let parsed = GroundTruth::parse(Some(&gt), &extra(json!({"ordered": false}))).unwrap();
        assert_eq!(parsed.ordered(), Some(false));
    }
}
