//! Result comparison: does a predicted result set hold the same answer as the gold one?
//!
//! The rules, each of which has a test below:
//! - Cells are typed. NULL is its own value and equals only NULL (never the string "None").
//!   Integers, decimals, HUGEINT and floats compare as numbers; booleans compare as booleans; text,
//!   dates and times compare as text after temporal normalisation (below). A number never equals
//!   text: `1` is not `"1"`.
//! - Numbers: two exact integers (integer types, or DECIMALs with a zero fraction) compare exactly,
//!   because a count that is off by one is wrong at any magnitude. Any other pair of numbers is
//!   equal when `|a - b| <= max(tolerance * max(|a|, |b|), abs_tolerance)`: the relative tolerance
//!   (default 1e-6) absorbs float rounding (`0.1 + 0.2` vs `0.3`, `2` vs `2.0`, AVG as DOUBLE vs
//!   DECIMAL), and the tiny absolute tolerance (default 1e-9) lets a result that should be 0 but
//!   carries rounding noise (`5.5e-17`) equal 0, where a relative tolerance alone never would.
//!   NaN equals NaN, and infinities equal infinities of the same sign.
//! - Temporal text is normalised: the `T` date/time separator becomes a space, trailing zeros of a
//!   fractional second go, a UTC offset is written `+00`, and a midnight time with no offset is
//!   dropped (so a DATE equals the same day as a midnight TIMESTAMP, and the tutorial's
//!   `"2024-01-02 00:00:00"` equals a typed DATE `"2024-01-02"`). This applies to any text shaped
//!   like an ISO date-time, since untyped ground truth cannot tell a date from a string.
//! - Both results have the same number of columns and rows. One column permutation applies to every
//!   row: column names and column order do not matter, but a value never moves between columns.
//! - Rows form a multiset (duplicates count). Row order matters only when asked (`ordered`, which
//!   callers set when the gold SQL's outermost query has ORDER BY).
//! - [`CompareMode::Set`] is BIRD's execution match instead: `set(pred) == set(gold)` over rows
//!   taken positionally, so duplicates and row counts do not matter but column order does.
//!
//! Cells are read through their column's DuckDB type name (see [`crate::result`]); an empty type
//! name means untyped (the tutorial's ground truth) and the cell's JSON kind decides.

use std::cmp::Ordering;
use std::fmt::Write as _;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::result::ResultSet;
use crate::types::DuckType;

/// How many partial column pairings are checked before giving up (each costs a sort of the rows).
const MAX_PAIRING_CHECKS: usize = 5_000;
/// How many row-against-row checks the tolerance fallback may spend before giving up.
const MAX_ROW_CHECKS: usize = 4_000_000;

/// Which notion of "same result" to use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompareMode {
    /// Same rows as a multiset (or sequence when ordered), under one column permutation.
    #[default]
    Exact,
    /// BIRD-style: the sets of rows are equal, columns taken in order; duplicates ignored.
    Set,
}

/// Knobs for [`compare`]. The defaults are what the reward service uses.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct CompareOptions {
    /// Relative tolerance for numbers that are not both exact integers.
    pub tolerance: f64,
    /// Absolute tolerance, for numbers near zero.
    pub abs_tolerance: f64,
    /// Row order matters (the gold SQL's outermost query orders its rows).
    pub ordered: bool,
    /// Exact multiset/sequence equality, or BIRD's set equality.
    pub mode: CompareMode,
}

impl Default for CompareOptions {
    fn default() -> Self {
        CompareOptions {
            tolerance: 1e-6,
            abs_tolerance: 1e-9,
            ordered: false,
            mode: CompareMode::Exact,
        }
    }
}

/// The verdict of [`compare`], with a reason a person can act on.
#[derive(Debug, Clone, PartialEq)]
pub struct Comparison {
    /// Whether the prediction returns the gold result.
    pub matched: bool,
    /// Why (not): a sentence a person can act on.
    pub reason: String,
    /// For a match: `mapping[g]` is the predicted column that holds gold column `g`.
    pub mapping: Option<Vec<usize>>,
    /// True when the search gave up at its cost cap; the verdict is then "no match".
    pub capped: bool,
}

impl Comparison {
    fn mismatch(reason: String) -> Self {
        Comparison {
            matched: false,
            reason,
            mapping: None,
            capped: false,
        }
    }
}

/// A cell, read through its column type, ready to compare.
#[derive(Debug, Clone)]
pub(crate) enum Cell {
    /// SQL NULL, equal only to NULL.
    Null,
    /// A BOOLEAN.
    Bool(bool),
    /// An exact integer (integer types, integral decimals, JSON integers).
    Int(i128),
    /// Any other number.
    Real(f64),
    /// Text, after temporal values are put in one canonical form.
    Text(String),
    /// LIST/ARRAY, and MAP as a list of key/value structs.
    List(Vec<Cell>),
    /// STRUCT field values in declared order (field names do not take part, like column names).
    Struct(Vec<Cell>),
}

impl Cell {
    /// Reads `value` as a cell of DuckDB type `ty`; `None` means untyped (infer from JSON).
    pub fn read(value: &Value, ty: Option<&DuckType>) -> Cell {
        let Some(ty) = ty else {
            return Cell::infer(value);
        };
        if value.is_null() {
            return Cell::Null;
        }
        match (ty, value) {
            (DuckType::Boolean, Value::Bool(b)) => Cell::Bool(*b),
            (DuckType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("true") => {
                Cell::Bool(true)
            }
            (DuckType::Boolean, Value::String(s)) if s.eq_ignore_ascii_case("false") => {
                Cell::Bool(false)
            }
            (DuckType::Float | DuckType::Double, Value::Number(n)) => {
                Cell::Real(n.as_f64().unwrap_or(f64::NAN))
            }
            (DuckType::Integer(_) | DuckType::Decimal { .. }, Value::Number(_))
            | (
                DuckType::Integer(_)
                | DuckType::Decimal { .. }
                | DuckType::Float
                | DuckType::Double,
                Value::String(_),
            ) => number_cell(value).unwrap_or_else(|| Cell::infer(value)),
            (
                DuckType::Date
                | DuckType::Time
                | DuckType::TimeTz
                | DuckType::Timestamp(_)
                | DuckType::TimestampTz,
                Value::String(s),
            ) => Cell::Text(normalize_temporal(s)),
            (DuckType::List(inner), Value::Array(items)) => {
                Cell::List(items.iter().map(|v| Cell::read(v, Some(inner))).collect())
            }
            (DuckType::Struct(fields), Value::Object(object))
                if fields.iter().all(|(name, _)| object.contains_key(name)) =>
            {
                Cell::Struct(
                    fields
                        .iter()
                        .map(|(name, ty)| Cell::read(&object[name], Some(ty)))
                        .collect(),
                )
            }
            (DuckType::Map(key, val), Value::Array(entries)) => Cell::List(
                entries
                    .iter()
                    .map(|entry| match entry {
                        Value::Object(o) => Cell::Struct(vec![
                            Cell::read(o.get("key").unwrap_or(&Value::Null), Some(key)),
                            Cell::read(o.get("value").unwrap_or(&Value::Null), Some(val)),
                        ]),
                        other => Cell::infer(other),
                    })
                    .collect(),
            ),
            (_, Value::String(s)) => Cell::Text(normalize_temporal(s)),
            _ => Cell::infer(value),
        }
    }

    /// Reads an untyped JSON value: number → number, string → text, null → NULL, bool → bool.
    pub fn infer(value: &Value) -> Cell {
        match value {
            Value::Null => Cell::Null,
            Value::Bool(b) => Cell::Bool(*b),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Cell::Int(i128::from(i)),
                (_, Some(u)) => Cell::Int(i128::from(u)),
                _ => Cell::Real(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Cell::Text(normalize_temporal(s)),
            Value::Array(items) => Cell::List(items.iter().map(Cell::infer).collect()),
            // serde_json keeps object keys sorted, so two objects with the same fields line up.
            Value::Object(object) => Cell::Struct(object.values().map(Cell::infer).collect()),
        }
    }

    fn rank(&self) -> u8 {
        match self {
            Cell::Null => 0,
            Cell::Bool(_) => 1,
            Cell::Int(_) | Cell::Real(_) => 2,
            Cell::Text(_) => 3,
            Cell::List(_) => 4,
            Cell::Struct(_) => 5,
        }
    }

    fn is_numeric(&self) -> bool {
        matches!(self, Cell::Int(_) | Cell::Real(_))
    }

    /// True when equality with this cell may need the tolerance (it is or holds an inexact number).
    fn has_real(&self) -> bool {
        match self {
            Cell::Real(_) => true,
            Cell::List(items) | Cell::Struct(items) => items.iter().any(Cell::has_real),
            _ => false,
        }
    }

    /// A total order consistent with exact equality; numbers of both kinds interleave by value.
    pub fn total_cmp(&self, other: &Cell) -> Ordering {
        match (self, other) {
            (Cell::Bool(a), Cell::Bool(b)) => a.cmp(b),
            (Cell::Int(a), Cell::Int(b)) => a.cmp(b),
            (Cell::Int(a), Cell::Real(b)) => (*a as f64).total_cmp(b).then(Ordering::Less),
            (Cell::Real(a), Cell::Int(b)) => a.total_cmp(&(*b as f64)).then(Ordering::Greater),
            (Cell::Real(a), Cell::Real(b)) => a.total_cmp(b),
            (Cell::Text(a), Cell::Text(b)) => a.cmp(b),
            (Cell::List(a), Cell::List(b)) | (Cell::Struct(a), Cell::Struct(b)) => cmp_cells(a, b),
            _ => self.rank().cmp(&other.rank()),
        }
    }

    /// Equality under the comparison rules (tolerance for numbers).
    pub fn matches(&self, other: &Cell, options: &CompareOptions) -> bool {
        match (self, other) {
            (Cell::Null, Cell::Null) => true,
            (Cell::Bool(a), Cell::Bool(b)) => a == b,
            (Cell::Int(a), Cell::Int(b)) => a == b,
            (Cell::Int(a), Cell::Real(b)) => numbers_close(*a as f64, *b, options),
            (Cell::Real(a), Cell::Int(b)) => numbers_close(*a, *b as f64, options),
            (Cell::Real(a), Cell::Real(b)) => numbers_close(*a, *b, options),
            (Cell::Text(a), Cell::Text(b)) => a == b,
            (Cell::List(a), Cell::List(b)) | (Cell::Struct(a), Cell::Struct(b)) => {
                a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches(y, options))
            }
            _ => false,
        }
    }
}

impl std::fmt::Display for Cell {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Cell::Null => f.write_str("NULL"),
            Cell::Bool(b) => write!(f, "{b}"),
            Cell::Int(i) => write!(f, "{i}"),
            Cell::Real(r) => write!(f, "{r}"),
            Cell::Text(t) => write!(f, "{t:?}"),
            Cell::List(items) | Cell::Struct(items) => {
                let (open, close) = if matches!(self, Cell::List(_)) {
                    ('[', ']')
                } else {
                    ('{', '}')
                };
                write!(f, "{open}")?;
                for (i, item) in items.iter().enumerate() {
                    if i > 0 {
                        f.write_str(", ")?;
                    }
                    write!(f, "{item}")?;
                }
                write!(f, "{close}")
            }
        }
    }
}

fn cmp_cells(a: &[Cell], b: &[Cell]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = x.total_cmp(y);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

fn numbers_close(a: f64, b: f64, options: &CompareOptions) -> bool {
    if a.is_nan() || b.is_nan() {
        return a.is_nan() && b.is_nan();
    }
    if a == b {
        return true;
    }
    if a.is_infinite() || b.is_infinite() {
        return false;
    }
    let bound = (options.tolerance * a.abs().max(b.abs())).max(options.abs_tolerance);
    (a - b).abs() <= bound
}

/// A JSON number or numeric string as a number cell: integral values exact, others as f64.
fn number_cell(value: &Value) -> Option<Cell> {
    match value {
        Value::Number(_) => Some(Cell::infer(value)),
        Value::String(s) => {
            let s = s.trim();
            match s {
                "NaN" | "nan" => return Some(Cell::Real(f64::NAN)),
                "Infinity" | "inf" => return Some(Cell::Real(f64::INFINITY)),
                "-Infinity" | "-inf" => return Some(Cell::Real(f64::NEG_INFINITY)),
                _ => {}
            }
            if let Ok(i) = s.parse::<i128>() {
                return Some(Cell::Int(i));
            }
            // A decimal string whose fraction is all zeros is an exact integer ("3.00").
            if let Some((whole, fraction)) = s.split_once('.')
                && fraction.bytes().all(|b| b == b'0')
                && let Ok(i) = whole.parse::<i128>()
            {
                return Some(Cell::Int(i));
            }
            s.parse::<f64>().ok().map(Cell::Real)
        }
        _ => None,
    }
}

/// Normalises ISO date-time text (see the module docs); any other text comes back unchanged.
pub(crate) fn normalize_temporal(text: &str) -> String {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| {
        b.get(range.clone())
            .is_some_and(|s| s.iter().all(u8::is_ascii_digit))
    };
    let is_date = b.len() >= 10 && digits(0..4) && b[4] == b'-' && digits(5..7) && b[7] == b'-';
    let is_date = is_date && digits(8..10);
    let time_start = if is_date {
        if b.len() == 10 {
            return text.to_string();
        }
        if b[10] != b'T' && b[10] != b' ' {
            return text.to_string();
        }
        11
    } else {
        0
    };
    // hh:mm:ss
    let t = time_start;
    if !(digits(t..t + 2) && b.get(t + 2) == Some(&b':') && digits(t + 3..t + 5)) {
        return text.to_string();
    }
    let mut end = t + 5;
    if b.get(end) == Some(&b':') && digits(end + 1..end + 3) {
        end += 3;
    } else if !is_date {
        return text.to_string();
    }
    let clock = &text[t..end];
    let mut fraction = "";
    if b.get(end) == Some(&b'.') {
        let start = end + 1;
        let mut stop = start;
        while stop < b.len() && b[stop].is_ascii_digit() {
            stop += 1;
        }
        if stop == start {
            return text.to_string();
        }
        fraction = text[start..stop].trim_end_matches('0');
        end = stop;
    }
    let zone = match &text[end..] {
        "" => "",
        "Z" | "+00" | "+00:00" | "+0000" | "-00" | "-00:00" => "+00",
        other => {
            let ob = other.as_bytes();
            let ok = ob.len() >= 3
                && (ob[0] == b'+' || ob[0] == b'-')
                && ob[1..].iter().all(|c| c.is_ascii_digit() || *c == b':')
                && ob.len() <= 6;
            if !ok {
                return text.to_string();
            }
            other.strip_suffix(":00").unwrap_or(other)
        }
    };
    let mut out = String::with_capacity(text.len());
    if is_date {
        out.push_str(&text[..10]);
        if clock == "00:00:00" && fraction.is_empty() && zone.is_empty() {
            return out;
        }
        out.push(' ');
    }
    out.push_str(clock);
    if !fraction.is_empty() {
        out.push('.');
        out.push_str(fraction);
    }
    out.push_str(zone);
    out
}

/// A result set read into typed cells, column-major.
struct Table {
    columns: Vec<String>,
    /// `cells[c][r]`.
    cells: Vec<Vec<Cell>>,
    rows: usize,
}

impl Table {
    fn read(result: &ResultSet) -> Table {
        let types: Vec<Option<DuckType>> = (0..result.columns.len())
            .map(|c| {
                result
                    .types
                    .get(c)
                    .filter(|t| !t.trim().is_empty())
                    .map(|t| DuckType::parse(t))
            })
            .collect();
        let mut cells: Vec<Vec<Cell>> = (0..result.columns.len())
            .map(|_| Vec::with_capacity(result.rows.len()))
            .collect();
        for row in &result.rows {
            for (c, column) in cells.iter_mut().enumerate() {
                let value = row.get(c).unwrap_or(&Value::Null);
                column.push(Cell::read(value, types[c].as_ref()));
            }
        }
        Table {
            columns: result.columns.clone(),
            cells,
            rows: result.rows.len(),
        }
    }

    fn width(&self) -> usize {
        self.cells.len()
    }

    fn has_real(&self) -> bool {
        self.cells.iter().flatten().any(Cell::has_real)
    }

    /// Row `r` with columns picked (and reordered) by `columns`.
    fn row<'a>(&'a self, r: usize, columns: &[usize]) -> Vec<&'a Cell> {
        columns.iter().map(|&c| &self.cells[c][r]).collect()
    }
}

fn row_text(row: &[&Cell]) -> String {
    let mut text = String::from("(");
    for (i, cell) in row.iter().enumerate() {
        if i > 0 {
            text.push_str(", ");
        }
        let _ = write!(text, "{cell}");
    }
    text.push(')');
    text
}

fn cmp_rows(a: &[&Cell], b: &[&Cell]) -> Ordering {
    for (x, y) in a.iter().zip(b) {
        let ord = x.total_cmp(y);
        if ord != Ordering::Equal {
            return ord;
        }
    }
    a.len().cmp(&b.len())
}

fn rows_match(a: &[&Cell], b: &[&Cell], options: &CompareOptions) -> bool {
    a.len() == b.len() && a.iter().zip(b).all(|(x, y)| x.matches(y, options))
}

/// Compares a predicted result with the gold one under `options`.
pub fn compare(pred: &ResultSet, gold: &ResultSet, options: &CompareOptions) -> Comparison {
    compare_with_cap(pred, gold, options, MAX_PAIRING_CHECKS)
}

fn compare_with_cap(
    pred: &ResultSet,
    gold: &ResultSet,
    options: &CompareOptions,
    max_checks: usize,
) -> Comparison {
    let pred_table = Table::read(pred);
    let gold_table = Table::read(gold);
    // Untyped empty ground truth (`[]`) cannot say which columns it has: only the row count counts.
    if gold_table.width() == 0 && gold_table.rows == 0 {
        return if pred_table.rows == 0 {
            Comparison {
                matched: true,
                reason: "both results are empty".into(),
                mapping: Some(Vec::new()),
                capped: false,
            }
        } else {
            Comparison::mismatch(format!("expected no rows, got {} row(s)", pred_table.rows))
        };
    }
    if pred.truncated {
        return Comparison::mismatch(format!(
            "the prediction was cut off at {} of {} rows by the row limit; expected {} rows",
            pred.rows.len(),
            pred.row_count.max(pred.rows.len()),
            gold.rows.len()
        ));
    }
    if pred_table.width() != gold_table.width() {
        return Comparison::mismatch(format!(
            "expected {} column(s) ({}), got {} ({})",
            gold_table.width(),
            gold_table.columns.join(", "),
            pred_table.width(),
            pred_table.columns.join(", ")
        ));
    }
    match options.mode {
        CompareMode::Set => compare_sets(&pred_table, &gold_table, options),
        CompareMode::Exact => {
            if pred_table.rows != gold_table.rows {
                return Comparison::mismatch(format!(
                    "expected {} row(s), got {}",
                    gold_table.rows, pred_table.rows
                ));
            }
            if options.ordered {
                compare_ordered(&pred_table, &gold_table, options, max_checks)
            } else {
                compare_unordered(&pred_table, &gold_table, options, max_checks)
            }
        }
    }
}

/// Ordered rows: a column pairing works iff every paired column matches cell by cell, so the
/// search is a bipartite matching over column-compatibility.
fn compare_ordered(
    pred: &Table,
    gold: &Table,
    options: &CompareOptions,
    max_checks: usize,
) -> Comparison {
    let compatible: Vec<Vec<usize>> = gold
        .cells
        .iter()
        .map(|g| {
            (0..pred.width())
                .filter(|&p| {
                    g.iter()
                        .zip(&pred.cells[p])
                        .all(|(x, y)| x.matches(y, options))
                })
                .collect()
        })
        .collect();
    if let Some(mapping) = perfect_matching(&compatible, pred.width()) {
        return Comparison {
            matched: true,
            reason: "same rows in the same order".into(),
            mapping: Some(mapping),
            capped: false,
        };
    }
    // Say why: same rows in another order, or a column that is simply different.
    let unordered = compare_unordered(pred, gold, options, max_checks);
    if unordered.matched {
        return Comparison::mismatch(
            "same rows but in a different order, and the gold query orders its rows (ORDER BY)"
                .into(),
        );
    }
    unordered
}

/// Unordered rows: find a column pairing under which the row multisets are equal.
fn compare_unordered(
    pred: &Table,
    gold: &Table,
    options: &CompareOptions,
    max_checks: usize,
) -> Comparison {
    fn sorted(cells: &[Cell]) -> Vec<&Cell> {
        let mut column: Vec<&Cell> = cells.iter().collect();
        column.sort_by(|a, b| a.total_cmp(b));
        column
    }
    let gold_sorted: Vec<Vec<&Cell>> = gold.cells.iter().map(|c| sorted(c)).collect();
    let pred_sorted: Vec<Vec<&Cell>> = pred.cells.iter().map(|c| sorted(c)).collect();
    // Equal value multisets are necessary for two columns to pair; for one column, sorted
    // pairwise comparison decides that even under tolerance.
    let compatible: Vec<Vec<usize>> = gold_sorted
        .iter()
        .map(|g| {
            (0..pred.width())
                .filter(|&p| rows_match(g, &pred_sorted[p], options))
                .collect()
        })
        .collect();
    if let Some(g) = compatible.iter().position(Vec::is_empty) {
        return Comparison::mismatch(format!(
            "no predicted column holds the values of gold column `{}` (e.g. {})",
            gold.columns[g],
            column_sample(&gold.cells[g], pred, options)
        ));
    }
    // Predicted columns identical cell for cell are interchangeable: trying one of them is enough.
    let twin_of: Vec<usize> = (0..pred.width())
        .map(|p| {
            (0..p)
                .find(|&q| {
                    pred.cells[p]
                        .iter()
                        .zip(&pred.cells[q])
                        .all(|(x, y)| x.matches(y, options))
                })
                .unwrap_or(p)
        })
        .collect();
    // Most constrained gold columns first.
    let mut order: Vec<usize> = (0..gold.width()).collect();
    order.sort_by_key(|&g| compatible[g].len());
    let mut search = PairingSearch {
        pred,
        gold,
        options,
        compatible: &compatible,
        twin_of: &twin_of,
        order: &order,
        mapping: vec![usize::MAX; gold.width()],
        used: vec![false; pred.width()],
        tolerance_matters: pred.has_real() || gold.has_real(),
        ambiguous: compatible.iter().any(|c| c.len() > 1),
        checks: 0,
        max_checks,
        capped: false,
    };
    if search.run(0) {
        return Comparison {
            matched: true,
            reason: "same rows (as a multiset) under a column pairing".into(),
            mapping: Some(search.mapping),
            capped: false,
        };
    }
    let (checks, capped) = (search.checks, search.capped);
    // For the reason, show a concrete row difference under some pairing of fitting columns.
    let mut reason = match perfect_matching(&compatible, pred.width()) {
        None => "no pairing of columns fits the gold columns' values".to_string(),
        Some(mapping) => {
            let all: Vec<usize> = (0..gold.width()).collect();
            match projected_rows_equal(pred, gold, &all, &mapping, options, true) {
                Err(RowDifference::Differs(text)) => format!("rows differ: {text}"),
                _ => "rows differ under every pairing of columns".to_string(),
            }
        }
    };
    if capped {
        let _ = write!(
            reason,
            "; gave up after {checks} column-pairing checks, so this may be a false mismatch"
        );
    }
    Comparison {
        matched: false,
        reason,
        mapping: None,
        capped,
    }
}

fn column_sample(cells: &[Cell], pred: &Table, options: &CompareOptions) -> String {
    // Prefer a value that no predicted column has at all.
    let missing = cells.iter().find(|cell| {
        !pred
            .cells
            .iter()
            .any(|column| column.iter().any(|p| p.matches(cell, options)))
    });
    match missing.or(cells.first()) {
        Some(cell) => cell.to_string(),
        None => "no values".into(),
    }
}

/// Backtracking over column pairings. After each assignment (from the second column on) the rows
/// projected onto the columns paired so far must already be equal as multisets, which prunes
/// wrong pairings early even when every column holds the same values.
struct PairingSearch<'a> {
    pred: &'a Table,
    gold: &'a Table,
    options: &'a CompareOptions,
    compatible: &'a [Vec<usize>],
    twin_of: &'a [usize],
    order: &'a [usize],
    mapping: Vec<usize>,
    used: Vec<bool>,
    tolerance_matters: bool,
    /// Some gold column has several candidate columns.
    ambiguous: bool,
    checks: usize,
    max_checks: usize,
    capped: bool,
}

impl PairingSearch<'_> {
    fn run(&mut self, depth: usize) -> bool {
        // With one candidate per column there is nothing to prune: check the full pairing only.
        let check = if self.ambiguous {
            depth >= 2 || (depth == 1 && self.order.len() == 1)
        } else {
            depth == self.order.len()
        };
        if check {
            if self.checks >= self.max_checks {
                self.capped = true;
                return false;
            }
            self.checks += 1;
            let gold_columns = &self.order[..depth];
            let pred_columns: Vec<usize> = gold_columns.iter().map(|&g| self.mapping[g]).collect();
            match projected_rows_equal(
                self.pred,
                self.gold,
                gold_columns,
                &pred_columns,
                self.options,
                self.tolerance_matters,
            ) {
                Ok(()) => {}
                Err(RowDifference::Capped) => {
                    self.capped = true;
                    return false;
                }
                Err(RowDifference::Differs(_)) => return false,
            }
        }
        if depth == self.order.len() {
            return true;
        }
        let g = self.order[depth];
        let mut tried_twins: Vec<usize> = Vec::new();
        for &p in &self.compatible[g] {
            if self.used[p] || tried_twins.contains(&self.twin_of[p]) {
                continue;
            }
            tried_twins.push(self.twin_of[p]);
            self.used[p] = true;
            self.mapping[g] = p;
            if self.run(depth + 1) {
                return true;
            }
            self.used[p] = false;
            self.mapping[g] = usize::MAX;
            if self.capped {
                return false;
            }
        }
        false
    }
}

enum RowDifference {
    Differs(String),
    Capped,
}

/// Are the gold rows on `gold_columns` and the predicted rows on `pred_columns` equal as
/// multisets?
fn projected_rows_equal(
    pred: &Table,
    gold: &Table,
    gold_columns: &[usize],
    pred_columns: &[usize],
    options: &CompareOptions,
    tolerance_matters: bool,
) -> Result<(), RowDifference> {
    let gold_rows: Vec<Vec<&Cell>> = (0..gold.rows).map(|r| gold.row(r, gold_columns)).collect();
    let pred_rows: Vec<Vec<&Cell>> = (0..pred.rows).map(|r| pred.row(r, pred_columns)).collect();
    multisets_equal(gold_rows, pred_rows, options, tolerance_matters)
}

fn multisets_equal(
    mut gold_rows: Vec<Vec<&Cell>>,
    mut pred_rows: Vec<Vec<&Cell>>,
    options: &CompareOptions,
    tolerance_matters: bool,
) -> Result<(), RowDifference> {
    if gold_rows.len() != pred_rows.len() {
        return Err(RowDifference::Differs(format!(
            "expected {} distinct row(s), got {}",
            gold_rows.len(),
            pred_rows.len()
        )));
    }
    gold_rows.sort_by(|a, b| cmp_rows(a, b));
    pred_rows.sort_by(|a, b| cmp_rows(a, b));
    let first_difference = gold_rows
        .iter()
        .zip(&pred_rows)
        .position(|(g, p)| !rows_match(g, p, options));
    let Some(at) = first_difference else {
        return Ok(());
    };
    let difference = || {
        RowDifference::Differs(format!(
            "expected row {} but the prediction has {}",
            row_text(&gold_rows[at]),
            row_text(&pred_rows[at])
        ))
    };
    // Without inexact numbers equality is exact, so sorted order decides. With them, values
    // within tolerance can sort differently on the two sides: fall back to a matching.
    if !tolerance_matters {
        return Err(difference());
    }
    match tolerant_matching(&gold_rows, &pred_rows, options) {
        Some(true) => Ok(()),
        Some(false) => Err(difference()),
        None => Err(RowDifference::Capped),
    }
}

/// Rows can only match when their cells without numbers are equal exactly, so group by those and
/// find a perfect matching inside each group. `None` when the cost cap was hit.
fn tolerant_matching(
    gold_rows: &[Vec<&Cell>],
    pred_rows: &[Vec<&Cell>],
    options: &CompareOptions,
) -> Option<bool> {
    fn cmp_exact_part(a: &[&Cell], b: &[&Cell]) -> Ordering {
        for (x, y) in a.iter().zip(b) {
            let ord = match (
                x.is_numeric() || x.has_real(),
                y.is_numeric() || y.has_real(),
            ) {
                (true, true) => Ordering::Equal,
                _ => x.total_cmp(y),
            };
            if ord != Ordering::Equal {
                return ord;
            }
        }
        Ordering::Equal
    }
    let mut gold: Vec<&Vec<&Cell>> = gold_rows.iter().collect();
    let mut pred: Vec<&Vec<&Cell>> = pred_rows.iter().collect();
    gold.sort_by(|a, b| cmp_exact_part(a, b));
    pred.sort_by(|a, b| cmp_exact_part(a, b));
    let mut budget = MAX_ROW_CHECKS;
    let (mut gi, mut pi) = (0, 0);
    while gi < gold.len() {
        let g_end = (gi..gold.len())
            .find(|&k| cmp_exact_part(gold[k], gold[gi]) != Ordering::Equal)
            .unwrap_or(gold.len());
        let p_end = (pi..pred.len())
            .find(|&k| cmp_exact_part(pred[k], gold[gi]) != Ordering::Equal)
            .unwrap_or(pred.len());
        if p_end - pi != g_end - gi {
            return Some(false);
        }
        let size = g_end - gi;
        let checks = size * size;
        if checks > budget {
            return None;
        }
        budget -= checks;
        let compatible: Vec<Vec<usize>> = (gi..g_end)
            .map(|g| {
                (pi..p_end)
                    .filter(|&p| rows_match(gold[g], pred[p], options))
                    .map(|p| p - pi)
                    .collect()
            })
            .collect();
        if perfect_matching(&compatible, size).is_none() {
            return Some(false);
        }
        gi = g_end;
        pi = p_end;
    }
    Some(pi == pred.len())
}

/// Kuhn's augmenting paths: a perfect matching of left nodes into `right` nodes, if one exists.
fn perfect_matching(compatible: &[Vec<usize>], right: usize) -> Option<Vec<usize>> {
    fn augment(
        left: usize,
        compatible: &[Vec<usize>],
        owner: &mut [usize],
        seen: &mut [bool],
    ) -> bool {
        for &r in &compatible[left] {
            if seen[r] {
                continue;
            }
            seen[r] = true;
            if owner[r] == usize::MAX || augment(owner[r], compatible, owner, seen) {
                owner[r] = left;
                return true;
            }
        }
        false
    }
    let mut owner = vec![usize::MAX; right];
    for left in 0..compatible.len() {
        let mut seen = vec![false; right];
        if !augment(left, compatible, &mut owner, &mut seen) {
            return None;
        }
    }
    let mut mapping = vec![usize::MAX; compatible.len()];
    for (r, &left) in owner.iter().enumerate() {
        if left != usize::MAX {
            mapping[left] = r;
        }
    }
    Some(mapping)
}

/// BIRD's `set(pred) == set(gold)`: positional columns, duplicates and row order ignored.
fn compare_sets(pred: &Table, gold: &Table, options: &CompareOptions) -> Comparison {
    let identity: Vec<usize> = (0..gold.width()).collect();
    fn distinct<'a>(
        table: &'a Table,
        columns: &[usize],
        options: &CompareOptions,
    ) -> Vec<Vec<&'a Cell>> {
        let mut rows: Vec<Vec<&Cell>> = (0..table.rows).map(|r| table.row(r, columns)).collect();
        rows.sort_by(|a, b| cmp_rows(a, b));
        rows.dedup_by(|a, b| rows_match(a, b, options));
        rows
    }
    let tolerance_matters = pred.has_real() || gold.has_real();
    match multisets_equal(
        distinct(gold, &identity, options),
        distinct(pred, &identity, options),
        options,
        tolerance_matters,
    ) {
        Ok(()) => Comparison {
            matched: true,
            reason: "same set of rows".into(),
            mapping: Some(identity),
            capped: false,
        },
        Err(RowDifference::Differs(text)) => {
            Comparison::mismatch(format!("sets of rows differ: {text}"))
        }
        Err(RowDifference::Capped) => Comparison {
            matched: false,
            reason: "gave up comparing the sets of rows at the cost cap".into(),
            mapping: None,
            capped: true,
        },
    }
}

/// F1 of the predicted cells against the gold cells, both taken as multisets of values wherever
/// they sit: the partial-credit signal for results that are close but not equal.
pub(crate) fn cell_f1(pred: &ResultSet, gold: &ResultSet, options: &CompareOptions) -> f64 {
    let pred_table = Table::read(pred);
    let gold_table = Table::read(gold);
    let mut p: Vec<&Cell> = pred_table.cells.iter().flatten().collect();
    let mut g: Vec<&Cell> = gold_table.cells.iter().flatten().collect();
    if p.is_empty() && g.is_empty() {
        return if pred_table.rows == gold_table.rows {
            1.0
        } else {
            0.0
        };
    }
    if p.is_empty() || g.is_empty() {
        return 0.0;
    }
    p.sort_by(|a, b| a.total_cmp(b));
    g.sort_by(|a, b| a.total_cmp(b));
    let (mut i, mut j, mut common) = (0, 0, 0usize);
    while i < p.len() && j < g.len() {
        if p[i].matches(g[j], options) {
            common += 1;
            i += 1;
            j += 1;
        } else if p[i].total_cmp(g[j]) == Ordering::Less {
            i += 1;
        } else {
            j += 1;
        }
    }
    if common == 0 {
        return 0.0;
    }
    let precision = common as f64 / p.len() as f64;
    let recall = common as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests;
