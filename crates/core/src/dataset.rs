//! Dataset records: one JSONL line of an RFT dataset, in the Fireworks shape
//! `{messages: [system, user, assistant], ground_truth}` plus our own fields.
//!
//! Fireworks ignores fields it does not know, so a record carries what our own services need
//! beside the chat: the gold SQL, its complexity class and feature tags, and a typed ground truth
//! `{columns, types, rows_json, ordered, sql}` whose cells follow [`crate::result`]'s encoding.
//!
//! The rows are written as one JSON string (`rows_json`), not as a nested list: a row mixes
//! strings, numbers and nulls, which Arrow (pyarrow, Parquet, older `datasets`, pandas) cannot
//! hold in one list column, and each record has its own columns. Every other field has one type
//! across all records, so any columnar reader loads the file, and nothing is lost: the string is
//! the typed cells as JSON. Older files with `rows` as a list are still read.
//! The tutorial's ground truth (a list of `{column: value}` objects) is still accepted and can be
//! written with [`RecordGroundTruth::Rows`].

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};

use crate::result::ResultSet;

/// One chat message of a record (`system`, `user` or `assistant`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    /// The message text.
    pub content: String,
}

impl ChatMessage {
    /// The schema prompt that opens a record.
    pub fn system(content: impl Into<String>) -> Self {
        Self::new("system", content)
    }
    /// The question a person asks.
    pub fn user(content: impl Into<String>) -> Self {
        Self::new("user", content)
    }
    /// The answer the model is trained to give.
    pub fn assistant(content: impl Into<String>) -> Self {
        Self::new("assistant", content)
    }
    fn new(role: &str, content: impl Into<String>) -> Self {
        Self {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// Spider's hardness classes: how hard a query is to write, from its components.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Complexity {
    /// At most one component (WHERE, GROUP BY, ORDER BY, …) and no nesting.
    Easy,
    /// A few components, still without nesting.
    Medium,
    /// Many components, or one nested query with little else.
    Hard,
    /// Anything harder: nesting together with other components.
    Extra,
}

impl Complexity {
    /// Every class, easiest first (for quotas and reports).
    pub const ALL: [Complexity; 4] = [
        Complexity::Easy,
        Complexity::Medium,
        Complexity::Hard,
        Complexity::Extra,
    ];

    /// The lowercase name used in files, flags and reports.
    pub fn name(self) -> &'static str {
        match self {
            Complexity::Easy => "easy",
            Complexity::Medium => "medium",
            Complexity::Hard => "hard",
            Complexity::Extra => "extra",
        }
    }
}

impl fmt::Display for Complexity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Complexity {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Complexity::ALL
            .into_iter()
            .find(|c| c.name().eq_ignore_ascii_case(s.trim()))
            .ok_or_else(|| {
                format!("unknown complexity `{s}`: expected easy, medium, hard or extra")
            })
    }
}

/// SQL features a query uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum QueryTag {
    /// Filters rows (WHERE).
    Filter,
    /// Reads more than one table (JOIN).
    Join,
    /// Aggregate functions (count, sum, avg, min, max, …).
    Aggregate,
    /// Groups rows (GROUP BY).
    GroupBy,
    /// Filters groups (HAVING).
    Having,
    /// A nested SELECT (IN/EXISTS/scalar subquery or derived table).
    Subquery,
    /// UNION / INTERSECT / EXCEPT.
    SetOp,
    /// A window function (OVER).
    Window,
    /// A common table expression (WITH).
    Cte,
    /// Orders the result (ORDER BY).
    OrderBy,
    /// Caps the row count (LIMIT).
    Limit,
    /// Removes duplicate rows (DISTINCT).
    Distinct,
}

impl QueryTag {
    /// Every tag, in the order reports list them.
    pub const ALL: [QueryTag; 12] = [
        QueryTag::Filter,
        QueryTag::Join,
        QueryTag::Aggregate,
        QueryTag::GroupBy,
        QueryTag::Having,
        QueryTag::Subquery,
        QueryTag::SetOp,
        QueryTag::Window,
        QueryTag::Cte,
        QueryTag::OrderBy,
        QueryTag::Limit,
        QueryTag::Distinct,
    ];

    /// The kebab-case name used in files and reports.
    pub fn name(self) -> &'static str {
        match self {
            QueryTag::Filter => "filter",
            QueryTag::Join => "join",
            QueryTag::Aggregate => "aggregate",
            QueryTag::GroupBy => "group-by",
            QueryTag::Having => "having",
            QueryTag::Subquery => "subquery",
            QueryTag::SetOp => "set-op",
            QueryTag::Window => "window",
            QueryTag::Cte => "cte",
            QueryTag::OrderBy => "order-by",
            QueryTag::Limit => "limit",
            QueryTag::Distinct => "distinct",
        }
    }
}

impl fmt::Display for QueryTag {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// What the gold SQL returned, typed: the form our reward service compares against.
///
/// Serialized as `{columns, types, rows_json, ordered, sql}` (see the module docs); reads
/// `rows` as a list too, the form datasets had before.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "TypedGroundTruthWire", into = "TypedGroundTruthWire")]
pub struct TypedGroundTruth {
    /// Column names, in the gold SQL's order.
    pub columns: Vec<String>,
    /// DuckDB type names, one per column.
    pub types: Vec<String>,
    /// The rows, as JSON values read through `types`.
    pub rows: Vec<Vec<Value>>,
    /// True when row order matters (the gold SQL's outermost query has ORDER BY).
    pub ordered: bool,
    /// The gold SQL that produced these rows.
    pub sql: String,
}

/// [`TypedGroundTruth`] as files hold it.
#[derive(Serialize, Deserialize)]
struct TypedGroundTruthWire {
    columns: Vec<String>,
    types: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rows: Option<Vec<Vec<Value>>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    rows_json: Option<String>,
    ordered: bool,
    sql: String,
}

impl From<TypedGroundTruth> for TypedGroundTruthWire {
    fn from(truth: TypedGroundTruth) -> Self {
        TypedGroundTruthWire {
            rows_json: Some(rows_json(&truth.rows)),
            rows: None,
            columns: truth.columns,
            types: truth.types,
            ordered: truth.ordered,
            sql: truth.sql,
        }
    }
}

impl TryFrom<TypedGroundTruthWire> for TypedGroundTruth {
    type Error = String;
    fn try_from(wire: TypedGroundTruthWire) -> Result<Self, String> {
        let rows = match (wire.rows, wire.rows_json) {
            (_, Some(text)) => serde_json::from_str(&text)
                .map_err(|e| format!("`ground_truth.rows_json` is not a JSON list of rows: {e}"))?,
            (Some(rows), None) => rows,
            (None, None) => {
                return Err("typed ground truth needs `rows_json` (or `rows`)".into());
            }
        };
        Ok(TypedGroundTruth {
            columns: wire.columns,
            types: wire.types,
            rows,
            ordered: wire.ordered,
            sql: wire.sql,
        })
    }
}

/// The rows as the compact JSON string a record's `ground_truth.rows_json` holds.
pub fn rows_json(rows: &[Vec<Value>]) -> String {
    serde_json::to_string(rows).expect("JSON values serialize")
}

impl TypedGroundTruth {
    /// Keeps a gold query's result with its SQL and whether its order counts.
    pub fn from_result_set(result: ResultSet, ordered: bool, sql: impl Into<String>) -> Self {
        Self {
            columns: result.columns,
            types: result.types,
            rows: result.rows,
            ordered,
            sql: sql.into(),
        }
    }

    /// The tutorial's form: one `{column: value}` object per row. Later duplicate column names
    /// overwrite earlier ones, as they do in pandas' `to_dict('records')`.
    pub fn to_row_objects(&self) -> Vec<Map<String, Value>> {
        self.rows
            .iter()
            .map(|row| {
                self.columns
                    .iter()
                    .cloned()
                    .zip(row.iter().cloned())
                    .collect()
            })
            .collect()
    }

    /// The typed result set, for comparison code that takes one.
    pub fn to_result_set(&self) -> ResultSet {
        ResultSet {
            columns: self.columns.clone(),
            types: self.types.clone(),
            rows: self.rows.clone(),
            row_count: self.rows.len(),
            truncated: false,
        }
    }
}

/// A record's `ground_truth` field as a dataset file stores it: typed (ours) or the tutorial's list
/// of row objects. Reward code reads it as a [`crate::ground_truth::GroundTruth`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordGroundTruth {
    /// Our typed form, with column types and the gold SQL.
    Typed(TypedGroundTruth),
    /// The tutorial's form: one `{column: value}` object per row.
    Rows(Vec<Map<String, Value>>),
}

/// One line of a train/test JSONL file.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetRecord {
    /// `[system, user, assistant]`: schema prompt, question, gold SQL (or its reasoning form).
    pub messages: Vec<ChatMessage>,
    /// What the gold SQL returns, for the reward to compare against.
    pub ground_truth: RecordGroundTruth,
    /// Stable id of the query the record was made from.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    /// The gold SQL.
    pub sql: String,
    /// How hard the gold SQL is, for the split's mix and the report.
    pub complexity: Complexity,
    #[serde(default)]
    /// The SQL features the gold SQL uses.
    pub tags: Vec<QueryTag>,
    /// Name of the database the record is about.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub db: Option<String>,
}

impl DatasetRecord {
    /// The user's question (the first `user` message).
    pub fn question(&self) -> Option<&str> {
        self.messages
            .iter()
            .find(|m| m.role == "user")
            .map(|m| m.content.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn typed() -> TypedGroundTruth {
        TypedGroundTruth {
            columns: vec!["name".into(), "n".into()],
            types: vec!["VARCHAR".into(), "BIGINT".into()],
            rows: vec![vec![json!("Oslo"), json!(3)], vec![Value::Null, json!(1)]],
            ordered: true,
            sql: "SELECT 1".into(),
        }
    }

    #[test]
    fn typed_ground_truth_round_trips_as_typed() {
        let truth = RecordGroundTruth::Typed(typed());
        let text = serde_json::to_string(&truth).unwrap();
        assert_eq!(
            serde_json::from_str::<RecordGroundTruth>(&text).unwrap(),
            truth
        );
    }

    #[test]
    fn typed_ground_truth_is_written_with_rows_as_one_json_string() {
        let value = serde_json::to_value(RecordGroundTruth::Typed(typed())).unwrap();
        assert_eq!(value["rows_json"], json!(r#"[["Oslo",3],[null,1]]"#));
        assert!(value.get("rows").is_none(), "{value}");
        let mut fields: Vec<&String> = value.as_object().unwrap().keys().collect();
        fields.sort();
        assert_eq!(fields, ["columns", "ordered", "rows_json", "sql", "types"]);
    }

    #[test]
    fn the_earlier_rows_list_form_still_reads_as_typed() {
        let old = json!({"columns": ["name", "n"], "types": ["VARCHAR", "BIGINT"],
                         "rows": [["Oslo", 3], [null, 1]], "ordered": true, "sql": "SELECT 1"});
        let truth: RecordGroundTruth = serde_json::from_value(old).unwrap();
        assert_eq!(truth, RecordGroundTruth::Typed(typed()));
    }

    #[test]
    fn tutorial_rows_parse_as_rows() {
        let truth: RecordGroundTruth =
            serde_json::from_value(json!([{"a": 1}, {"a": null}])).unwrap();
        match truth {
            RecordGroundTruth::Rows(rows) => assert_eq!(rows.len(), 2),
            other => panic!("expected rows, got {other:?}"),
        }
    }

    #[test]
    fn row_objects_keep_nulls_as_null() {
        let rows = typed().to_row_objects();
        assert_eq!(rows[1].get("name"), Some(&Value::Null));
        assert_eq!(rows[0].get("n"), Some(&json!(3)));
    }

    #[test]
    fn tags_and_complexity_serialise_as_names() {
        assert_eq!(
            serde_json::to_value(QueryTag::GroupBy).unwrap(),
            json!("group-by")
        );
        assert_eq!(
            serde_json::to_value(Complexity::Extra).unwrap(),
            json!("extra")
        );
        for tag in QueryTag::ALL {
            assert_eq!(serde_json::to_value(tag).unwrap(), json!(tag.name()));
        }
        assert_eq!("Hard".parse::<Complexity>().unwrap(), Complexity::Hard);
        assert!("impossible".parse::<Complexity>().is_err());
    }

    #[test]
    fn record_omits_empty_optional_fields() {
        let record = DatasetRecord {
            messages: vec![ChatMessage::user("q")],
            ground_truth: RecordGroundTruth::Typed(typed()),
            id: String::new(),
            sql: "SELECT 1".into(),
            complexity: Complexity::Easy,
            tags: vec![],
            db: None,
        };
        let value = serde_json::to_value(&record).unwrap();
        assert!(value.get("id").is_none() && value.get("db").is_none());
        assert_eq!(record.question(), Some("q"));
    }
}
