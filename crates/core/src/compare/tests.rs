use proptest::prelude::*;
use serde_json::{Value, json};

use super::*;

fn typed(columns: &[(&str, &str)], rows: Value) -> ResultSet {
    let rows: Vec<Vec<Value>> = serde_json::from_value(rows).expect("rows are arrays");
    ResultSet {
        columns: columns.iter().map(|(name, _)| name.to_string()).collect(),
        types: columns.iter().map(|(_, ty)| ty.to_string()).collect(),
        row_count: rows.len(),
        rows,
        truncated: false,
    }
}

/// The tutorial's ground truth: row objects with no types.
fn untyped(records: Value) -> ResultSet {
    let records = records.as_array().expect("a list of row objects").clone();
    let columns: Vec<String> = records
        .first()
        .and_then(Value::as_object)
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let rows: Vec<Vec<Value>> = records
        .iter()
        .map(|r| columns.iter().map(|c| r[c].clone()).collect())
        .collect();
    ResultSet {
        types: vec![String::new(); columns.len()],
        columns,
        row_count: rows.len(),
        rows,
        truncated: false,
    }
}

fn matched(pred: &ResultSet, gold: &ResultSet) -> bool {
    compare(pred, gold, &CompareOptions::default()).matched
}

fn matched_ordered(pred: &ResultSet, gold: &ResultSet) -> bool {
    let options = CompareOptions {
        ordered: true,
        ..CompareOptions::default()
    };
    compare(pred, gold, &options).matched
}

/// The tutorial's section-12 comparison, transcribed: Python `str()` of every value (floats with
/// an integral value as ints), sorted inside each row, rows sorted.
fn tutorial_equal(pred: &ResultSet, gold: &ResultSet) -> bool {
    fn python_str(value: &Value) -> String {
        match value {
            Value::Null => "None".into(),
            Value::Bool(true) => "True".into(),
            Value::Bool(false) => "False".into(),
            Value::Number(n) => match n.as_i64() {
                Some(i) => i.to_string(),
                None => {
                    let f = n.as_f64().unwrap();
                    if f.fract() == 0.0 && f.is_finite() {
                        format!("{}", f as i64)
                    } else {
                        format!("{f}")
                    }
                }
            },
            Value::String(s) => s.clone(),
            other => other.to_string(),
        }
    }
    let normal = |r: &ResultSet| {
        let mut rows: Vec<Vec<String>> = r
            .rows
            .iter()
            .map(|row| {
                let mut values: Vec<String> = row.iter().map(python_str).collect();
                values.sort();
                values
            })
            .collect();
        rows.sort();
        rows
    };
    normal(pred) == normal(gold)
}

// --- The tutorial's comparison passes wrong answers and fails right ones -------------------------

#[test]
fn values_swapped_between_columns_in_some_rows_do_not_match() {
    let gold = untyped(json!([{"a": 1, "b": 2}, {"a": 3, "b": 4}]));
    let pred = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[2, 1], [3, 4]]),
    );
    assert!(tutorial_equal(&pred, &gold), "the tutorial passes it");
    assert!(!matched(&pred, &gold));
}

#[test]
fn null_is_not_the_string_none() {
    let gold = untyped(json!([{"x": null}]));
    let pred = typed(&[("x", "VARCHAR")], json!([["None"]]));
    assert!(tutorial_equal(&pred, &gold), "the tutorial passes it");
    assert!(!matched(&pred, &gold));
    assert!(matched(&typed(&[("x", "VARCHAR")], json!([[null]])), &gold));
}

#[test]
fn a_number_is_not_its_text() {
    let gold = untyped(json!([{"x": 1}]));
    let pred = typed(&[("x", "VARCHAR")], json!([["1"]]));
    assert!(tutorial_equal(&pred, &gold), "the tutorial passes it");
    assert!(!matched(&pred, &gold));
    assert!(!matched(&gold, &pred), "in both directions");
}

#[test]
fn an_integer_equals_the_same_decimal_or_float() {
    let gold = untyped(json!([{"x": 2}]));
    let decimal = typed(&[("x", "DECIMAL(10,2)")], json!([["2.00"]]));
    assert!(!tutorial_equal(&decimal, &gold), "the tutorial fails it");
    assert!(matched(&decimal, &gold));
    assert!(matched(&typed(&[("x", "DOUBLE")], json!([[2.0]])), &gold));
}

#[test]
fn float_rounding_is_within_tolerance() {
    let gold = untyped(json!([{"x": 0.3}]));
    let pred = typed(&[("x", "DOUBLE")], json!([[0.1_f64 + 0.2_f64]]));
    assert!(!tutorial_equal(&pred, &gold), "the tutorial fails it");
    assert!(matched(&pred, &gold));
}

// --- Typed cells ---------------------------------------------------------------------------------

#[test]
fn numbers_outside_the_tolerance_differ() {
    let gold = typed(&[("x", "DOUBLE")], json!([[1.0]]));
    assert!(!matched(
        &typed(&[("x", "DOUBLE")], json!([[1.001]])),
        &gold
    ));
    assert!(matched(
        &typed(&[("x", "DOUBLE")], json!([[1.0000001]])),
        &gold
    ));
}

#[test]
fn tolerance_is_configurable() {
    let gold = typed(&[("x", "DOUBLE")], json!([[100.0]]));
    let pred = typed(&[("x", "DOUBLE")], json!([[100.5]]));
    assert!(!matched(&pred, &gold));
    let loose = CompareOptions {
        tolerance: 0.01,
        ..CompareOptions::default()
    };
    assert!(compare(&pred, &gold, &loose).matched);
}

#[test]
fn exact_integers_compare_exactly_at_any_magnitude() {
    let gold = typed(&[("n", "BIGINT")], json!([[10_000_000_000_i64]]));
    let pred = typed(&[("n", "BIGINT")], json!([[10_000_000_001_i64]]));
    assert!(!matched(&pred, &gold), "a count off by one is wrong");
    let huge = typed(
        &[("n", "HUGEINT")],
        json!([["170141183460469231731687303715884105727"]]),
    );
    let huge_minus_one = typed(
        &[("n", "HUGEINT")],
        json!([["170141183460469231731687303715884105726"]]),
    );
    assert!(matched(&huge, &huge));
    assert!(!matched(&huge_minus_one, &huge));
}

#[test]
fn hugeint_and_decimal_strings_compare_as_numbers_with_floats() {
    let huge = typed(&[("s", "HUGEINT")], json!([["123456789012345678901234"]]));
    let double = typed(&[("s", "DOUBLE")], json!([[1.234_567_890_123_456_8e23]]));
    assert!(matched(&double, &huge));
    let decimal = typed(&[("p", "DECIMAL(3,2)")], json!([["2.71"]]));
    assert!(matched(
        &typed(&[("p", "DOUBLE")], json!([[2.71]])),
        &decimal
    ));
    assert!(!matched(
        &typed(&[("p", "DOUBLE")], json!([[2.72]])),
        &decimal
    ));
    // Text that looks like a number is still text when its column says so.
    assert!(!matched(
        &typed(&[("p", "VARCHAR")], json!([["2.71"]])),
        &decimal
    ));
}

#[test]
fn values_near_zero_use_the_absolute_tolerance() {
    let gold = typed(&[("x", "DOUBLE")], json!([[0.0]]));
    let noise = 0.1_f64 + 0.2 - 0.3;
    assert!(noise != 0.0);
    assert!(matched(&typed(&[("x", "DOUBLE")], json!([[noise]])), &gold));
    assert!(!matched(&typed(&[("x", "DOUBLE")], json!([[1e-6]])), &gold));
}

#[test]
fn nan_and_infinities_equal_themselves_only() {
    let nan = typed(&[("x", "DOUBLE")], json!([["NaN"]]));
    let inf = typed(&[("x", "DOUBLE")], json!([["Infinity"]]));
    let neg = typed(&[("x", "DOUBLE")], json!([["-Infinity"]]));
    assert!(matched(&nan, &nan));
    assert!(matched(&inf, &inf));
    assert!(!matched(&inf, &neg));
    assert!(!matched(&nan, &typed(&[("x", "DOUBLE")], json!([[0.0]]))));
    assert!(!matched(&nan, &typed(&[("x", "DOUBLE")], json!([[null]]))));
}

#[test]
fn booleans_compare_as_booleans() {
    let gold = typed(&[("b", "BOOLEAN")], json!([[true]]));
    assert!(matched(&untyped(json!([{"b": true}])), &gold));
    assert!(!matched(
        &typed(&[("b", "BOOLEAN")], json!([[false]])),
        &gold
    ));
    assert!(!matched(&typed(&[("b", "INTEGER")], json!([[1]])), &gold));
    assert!(!matched(
        &typed(&[("b", "VARCHAR")], json!([["true"]])),
        &gold
    ));
}

#[test]
fn dates_match_iso_text_with_either_separator() {
    let gold = typed(&[("d", "DATE")], json!([["2024-01-02"]]));
    for text in [
        "2024-01-02",
        "2024-01-02 00:00:00",
        "2024-01-02T00:00:00",
        "2024-01-02T00:00:00.000000",
    ] {
        assert!(matched(&untyped(json!([{ "d": text }])), &gold), "{text}");
    }
    assert!(!matched(&untyped(json!([{"d": "2024-01-03"}])), &gold));
    assert!(!matched(
        &untyped(json!([{"d": "2024-01-02 00:00:01"}])),
        &gold
    ));
}

#[test]
fn timestamps_normalise_separator_fraction_and_utc_offset() {
    let gold = typed(
        &[("t", "TIMESTAMP")],
        json!([["2024-01-02T03:04:05.500000"]]),
    );
    assert!(matched(
        &untyped(json!([{"t": "2024-01-02 03:04:05.5"}])),
        &gold
    ));
    assert!(!matched(
        &untyped(json!([{"t": "2024-01-02 03:04:05"}])),
        &gold
    ));
    let tz = typed(
        &[("t", "TIMESTAMPTZ")],
        json!([["2024-01-02T03:04:05+00:00"]]),
    );
    assert!(matched(
        &untyped(json!([{"t": "2024-01-02 03:04:05Z"}])),
        &tz
    ));
    assert!(matched(
        &untyped(json!([{"t": "2024-01-02T03:04:05+00"}])),
        &tz
    ));
    assert!(!matched(
        &untyped(json!([{"t": "2024-01-02T03:04:05+01:00"}])),
        &tz
    ));
}

#[test]
fn normalize_temporal_leaves_other_text_alone() {
    for text in [
        "hello",
        "2024-01",
        "2024-01-02x",
        "12:3",
        "",
        "2024-01-02 10:00 meeting",
    ] {
        assert_eq!(normalize_temporal(text), text);
    }
    assert_eq!(normalize_temporal("10:20:30.100"), "10:20:30.1");
    assert_eq!(
        normalize_temporal("2024-01-02T10:20:30+05:30"),
        "2024-01-02 10:20:30+05:30"
    );
    assert_eq!(
        normalize_temporal("2024-01-02T10:20:30-02:00"),
        "2024-01-02 10:20:30-02"
    );
}

#[test]
fn text_compares_as_itself() {
    let gold = typed(&[("s", "VARCHAR")], json!([["Goroka"]]));
    assert!(matched(&untyped(json!([{"s": "Goroka"}])), &gold));
    assert!(!matched(
        &typed(&[("s", "VARCHAR")], json!([["goroka"]])),
        &gold
    ));
    assert!(!matched(
        &typed(&[("s", "VARCHAR")], json!([["Goroka "]])),
        &gold
    ));
}

#[test]
fn nested_values_compare_structurally_with_tolerance() {
    let gold = typed(&[("l", "DOUBLE[]")], json!([[[1.0, 0.3]]]));
    let pred = typed(&[("l", "DOUBLE[]")], json!([[[1.0, 0.1_f64 + 0.2]]]));
    assert!(matched(&pred, &gold));
    assert!(!matched(
        &typed(&[("l", "DOUBLE[]")], json!([[[0.3, 1.0]]])),
        &gold
    ));
    let st = typed(
        &[("s", "STRUCT(a INTEGER, b VARCHAR)")],
        json!([[{"a": 1, "b": "x"}]]),
    );
    let renamed = typed(
        &[("s", "STRUCT(b VARCHAR, a INTEGER)")],
        json!([[{"a": 1, "b": "x"}]]),
    );
    assert!(matched(&st, &st));
    assert!(!matched(&renamed, &st), "struct fields are positional");
    let map = typed(
        &[("m", "MAP(VARCHAR, INTEGER)")],
        json!([[[{"key": "k", "value": 1}]]]),
    );
    assert!(matched(&map, &map));
    let other = typed(
        &[("m", "MAP(VARCHAR, INTEGER)")],
        json!([[[{"key": "k", "value": 2}]]]),
    );
    assert!(!matched(&other, &map));
}

// --- Shape, columns and rows ---------------------------------------------------------------------

#[test]
fn row_and_column_counts_must_agree() {
    let gold = typed(&[("a", "INTEGER")], json!([[1], [2]]));
    let fewer = compare(
        &typed(&[("a", "INTEGER")], json!([[1]])),
        &gold,
        &CompareOptions::default(),
    );
    assert!(!fewer.matched);
    assert!(
        fewer.reason.contains("expected 2 row(s), got 1"),
        "{}",
        fewer.reason
    );
    let wider = compare(
        &typed(
            &[("a", "INTEGER"), ("b", "INTEGER")],
            json!([[1, 1], [2, 2]]),
        ),
        &gold,
        &CompareOptions::default(),
    );
    assert!(!wider.matched);
    assert!(
        wider.reason.contains("expected 1 column(s)"),
        "{}",
        wider.reason
    );
}

#[test]
fn column_names_and_order_do_not_matter() {
    let gold = typed(
        &[("country", "VARCHAR"), ("c", "BIGINT")],
        json!([["US", 10], ["DE", 4]]),
    );
    let pred = typed(
        &[("count_star()", "BIGINT"), ("land", "VARCHAR")],
        json!([[10, "US"], [4, "DE"]]),
    );
    let verdict = compare(&pred, &gold, &CompareOptions::default());
    assert!(verdict.matched, "{}", verdict.reason);
    assert_eq!(verdict.mapping, Some(vec![1, 0]));
}

#[test]
fn one_permutation_applies_to_all_rows() {
    // Every column's values exist on the other side, but no single pairing makes all rows agree.
    let gold = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 2], [2, 1], [3, 3]]),
    );
    let pred = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 2], [1, 2], [3, 3]]),
    );
    let verdict = compare(&pred, &gold, &CompareOptions::default());
    assert!(!verdict.matched);
    let swapped = typed(
        &[("b", "INTEGER"), ("a", "INTEGER")],
        json!([[2, 1], [1, 2], [3, 3]]),
    );
    assert!(matched(&swapped, &gold));
}

#[test]
fn columns_with_equal_value_sets_are_told_apart_by_rows() {
    let gold = typed(
        &[("x", "INTEGER"), ("y", "INTEGER"), ("z", "INTEGER")],
        json!([[1, 2, 3], [2, 3, 1], [3, 1, 2]]),
    );
    // The same rows with columns rotated: only one pairing (z, x, y) works.
    let rotated = typed(
        &[("z", "INTEGER"), ("x", "INTEGER"), ("y", "INTEGER")],
        json!([[3, 1, 2], [1, 2, 3], [2, 3, 1]]),
    );
    let verdict = compare(&rotated, &gold, &CompareOptions::default());
    assert!(verdict.matched, "{}", verdict.reason);
    // The pairing it reports really maps the prediction's rows onto the gold rows.
    let mapping = verdict.mapping.expect("a mapping");
    let mut mapped: Vec<Vec<Value>> = rotated
        .rows
        .iter()
        .map(|row| mapping.iter().map(|&p| row[p].clone()).collect())
        .collect();
    let mut expected = gold.rows.clone();
    let key = |r: &Vec<Value>| serde_json::to_string(r).unwrap();
    mapped.sort_by_key(key);
    expected.sort_by_key(key);
    assert_eq!(mapped, expected);
    // Same value set in every column, but one column's cells trade rows: no pairing works.
    let traded = typed(
        &[("x", "INTEGER"), ("y", "INTEGER"), ("z", "INTEGER")],
        json!([[1, 2, 1], [2, 3, 3], [3, 1, 2]]),
    );
    assert!(!matched(&traded, &gold));
}

#[test]
fn identical_columns_are_interchangeable() {
    let gold = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 1], [2, 2]]),
    );
    assert!(matched(&gold, &gold));
    let other = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 2], [2, 1]]),
    );
    assert!(!matched(&other, &gold));
}

#[test]
fn rows_are_a_multiset_where_duplicates_count() {
    let gold = typed(&[("a", "INTEGER")], json!([[1], [1], [2]]));
    assert!(matched(
        &typed(&[("a", "INTEGER")], json!([[2], [1], [1]])),
        &gold
    ));
    assert!(!matched(
        &typed(&[("a", "INTEGER")], json!([[1], [2], [2]])),
        &gold
    ));
    assert!(!matched(
        &typed(&[("a", "INTEGER")], json!([[1], [2]])),
        &gold
    ));
}

#[test]
fn row_order_matters_only_when_ordered() {
    let gold = typed(
        &[("a", "VARCHAR"), ("n", "INTEGER")],
        json!([["x", 1], ["y", 2]]),
    );
    let reversed = typed(
        &[("a", "VARCHAR"), ("n", "INTEGER")],
        json!([["y", 2], ["x", 1]]),
    );
    assert!(matched(&reversed, &gold));
    assert!(!matched_ordered(&reversed, &gold));
    let verdict = compare(
        &reversed,
        &gold,
        &CompareOptions {
            ordered: true,
            ..CompareOptions::default()
        },
    );
    assert!(
        verdict.reason.contains("different order"),
        "{}",
        verdict.reason
    );
    // Column permutation still applies when ordered.
    let permuted = typed(
        &[("n", "INTEGER"), ("a", "VARCHAR")],
        json!([[1, "x"], [2, "y"]]),
    );
    assert!(matched_ordered(&permuted, &gold));
}

#[test]
fn ordered_comparison_pairs_columns_that_match_cell_by_cell() {
    // Columns a and b hold the same values but in different rows; ordered pairing must notice.
    let gold = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 2], [2, 1]]),
    );
    let pred = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[2, 1], [1, 2]]),
    );
    assert!(matched_ordered(&pred, &gold), "b,a pairing keeps the order");
    let bad = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[2, 2], [1, 1]]),
    );
    assert!(!matched_ordered(&bad, &gold));
}

#[test]
fn tolerance_matches_rows_that_sort_differently_on_each_side() {
    // 1.0 and 1.0000001 are equal within tolerance, so these are the same rows; sorting the two
    // sides pairs them up wrongly, which the fallback matching repairs.
    let gold = typed(
        &[("x", "DOUBLE"), ("s", "VARCHAR")],
        json!([[1.0, "a"], [1.000_000_1, "b"]]),
    );
    let pred = typed(
        &[("x", "DOUBLE"), ("s", "VARCHAR")],
        json!([[1.000_000_1, "a"], [1.0, "b"]]),
    );
    assert!(matched(&pred, &gold));
    let wrong = typed(
        &[("x", "DOUBLE"), ("s", "VARCHAR")],
        json!([[1.000_000_1, "a"], [1.0, "c"]]),
    );
    assert!(!matched(&wrong, &gold));
}

#[test]
fn empty_results() {
    let gold = typed(&[("a", "INTEGER")], json!([]));
    assert!(matched(&typed(&[("x", "VARCHAR")], json!([])), &gold));
    assert!(!matched(&typed(&[("a", "INTEGER")], json!([[1]])), &gold));
    // The tutorial's `[]` has no columns: any empty result matches it.
    let unknown = untyped(json!([]));
    assert!(matched(
        &typed(&[("a", "INTEGER"), ("b", "INTEGER")], json!([])),
        &unknown
    ));
    assert!(!matched(
        &typed(&[("a", "INTEGER")], json!([[1]])),
        &unknown
    ));
}

#[test]
fn a_truncated_prediction_never_matches() {
    let gold = typed(&[("a", "INTEGER")], json!([[1], [2]]));
    let mut pred = typed(&[("a", "INTEGER")], json!([[1], [2]]));
    pred.truncated = true;
    pred.row_count = 5;
    let verdict = compare(&pred, &gold, &CompareOptions::default());
    assert!(!verdict.matched);
    assert!(verdict.reason.contains("row limit"), "{}", verdict.reason);
}

#[test]
fn mismatch_reasons_name_the_difference() {
    let gold = typed(&[("name", "VARCHAR")], json!([["Goroka"]]));
    let verdict = compare(
        &typed(&[("name", "VARCHAR")], json!([["Madang"]])),
        &gold,
        &CompareOptions::default(),
    );
    assert!(verdict.reason.contains("`name`"), "{}", verdict.reason);
    assert!(verdict.reason.contains("Goroka"), "{}", verdict.reason);
}

/// Nine columns of a cyclic Latin square (`(r + c) mod 9`) and its reflection (`(r - c) mod 9`):
/// every column holds the same values, and only the reflected pairing `c -> -c` matches.
fn latin_squares() -> (ResultSet, ResultSet) {
    let width = 9;
    let names: Vec<(String, &str)> = (0..width).map(|c| (format!("c{c}"), "INTEGER")).collect();
    let columns: Vec<(&str, &str)> = names.iter().map(|(n, t)| (n.as_str(), *t)).collect();
    let square = |sign: i64| {
        let rows: Vec<Value> = (0..width)
            .map(|r| {
                Value::Array(
                    (0..width)
                        .map(|c| json!((r + sign * c).rem_euclid(width)))
                        .collect(),
                )
            })
            .collect();
        typed(&columns, Value::Array(rows))
    };
    (square(1), square(-1))
}

#[test]
fn pairing_search_finds_the_one_pairing_among_many_lookalike_columns() {
    let (gold, reflected) = latin_squares();
    let verdict = compare(&reflected, &gold, &CompareOptions::default());
    assert!(verdict.matched, "{}", verdict.reason);
    let mapping = verdict.mapping.unwrap();
    for (g, &p) in mapping.iter().enumerate() {
        assert_eq!(p, (9 - g) % 9, "gold column {g}");
    }
}

#[test]
fn pairing_search_gives_up_at_its_cap_and_says_so() {
    let (gold, reflected) = latin_squares();
    let verdict = compare_with_cap(&reflected, &gold, &CompareOptions::default(), 3);
    assert!(!verdict.matched);
    assert!(verdict.capped);
    assert!(verdict.reason.contains("gave up"), "{}", verdict.reason);
}

#[test]
fn set_mode_is_bird_style() {
    let set = CompareOptions {
        mode: CompareMode::Set,
        ..CompareOptions::default()
    };
    let gold = typed(
        &[("a", "INTEGER"), ("b", "VARCHAR")],
        json!([[1, "x"], [2, "y"]]),
    );
    let dup = typed(
        &[("a", "INTEGER"), ("b", "VARCHAR")],
        json!([[2, "y"], [1, "x"], [1, "x"]]),
    );
    assert!(compare(&dup, &gold, &set).matched, "duplicates ignored");
    assert!(!matched(&dup, &gold), "exact mode counts duplicates");
    let swapped = typed(
        &[("b", "VARCHAR"), ("a", "INTEGER")],
        json!([["x", 1], ["y", 2]]),
    );
    assert!(
        !compare(&swapped, &gold, &set).matched,
        "BIRD compares columns in order"
    );
    let missing = typed(&[("a", "INTEGER"), ("b", "VARCHAR")], json!([[1, "x"]]));
    assert!(!compare(&missing, &gold, &set).matched);
}

#[test]
fn cell_f1_counts_shared_values() {
    let options = CompareOptions::default();
    let gold = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 2], [3, 4]]),
    );
    assert_eq!(cell_f1(&gold, &gold, &options), 1.0);
    let half = typed(
        &[("a", "INTEGER"), ("b", "INTEGER")],
        json!([[1, 2], [7, 8]]),
    );
    assert!((cell_f1(&half, &gold, &options) - 0.5).abs() < 1e-12);
    // Precision 2/2, recall 2/4: F1 = 2/3.
    let narrow = typed(&[("a", "INTEGER")], json!([[1], [3]]));
    assert!((cell_f1(&narrow, &gold, &options) - 2.0 / 3.0).abs() < 1e-12);
    let none = typed(&[("a", "VARCHAR")], json!([["1"]]));
    assert_eq!(cell_f1(&none, &gold, &options), 0.0);
}

// --- Properties ----------------------------------------------------------------------------------

const TYPES: [&str; 6] = [
    "INTEGER",
    "DOUBLE",
    "VARCHAR",
    "BOOLEAN",
    "DATE",
    "DECIMAL(10,2)",
];

fn cell_for(ty: &str) -> BoxedStrategy<Value> {
    let value = match ty {
        "INTEGER" => (-3i64..4).prop_map(|i| json!(i)).boxed(),
        "DOUBLE" => (-3i32..4).prop_map(|i| json!(f64::from(i) / 4.0)).boxed(),
        "VARCHAR" => prop::sample::select(vec!["a", "b", "None", "1", ""])
            .prop_map(|s| json!(s))
            .boxed(),
        "BOOLEAN" => any::<bool>().prop_map(|b| json!(b)).boxed(),
        "DATE" => (1u32..4)
            .prop_map(|d| json!(format!("2024-01-0{d}")))
            .boxed(),
        _ => (-300i32..300)
            .prop_map(|c| json!(format!("{}.{:02}", c / 100, (c % 100).abs())))
            .boxed(),
    };
    prop_oneof![1 => Just(Value::Null), 6 => value].boxed()
}

fn result_set() -> impl Strategy<Value = ResultSet> {
    (
        prop::collection::vec(prop::sample::select(TYPES.to_vec()), 1..5),
        0usize..10,
    )
        .prop_flat_map(|(types, rows)| {
            let row = types.iter().map(|t| cell_for(t)).collect::<Vec<_>>();
            prop::collection::vec(row, rows).prop_map(move |rows| ResultSet {
                columns: (0..types.len()).map(|c| format!("c{c}")).collect(),
                types: types.iter().map(|t| t.to_string()).collect(),
                row_count: rows.len(),
                rows,
                truncated: false,
            })
        })
}

fn permuted(result: &ResultSet, columns: &[usize], rows: &[usize]) -> ResultSet {
    ResultSet {
        columns: columns.iter().map(|&c| format!("renamed{c}")).collect(),
        types: columns.iter().map(|&c| result.types[c].clone()).collect(),
        rows: rows
            .iter()
            .map(|&r| columns.iter().map(|&c| result.rows[r][c].clone()).collect())
            .collect(),
        row_count: rows.len(),
        truncated: false,
    }
}

fn shuffled(n: usize) -> impl Strategy<Value = Vec<usize>> {
    Just((0..n).collect::<Vec<_>>()).prop_shuffle()
}

fn with_permutations() -> impl Strategy<Value = (ResultSet, Vec<usize>, Vec<usize>)> {
    result_set().prop_flat_map(|r| {
        let (w, n) = (r.columns.len(), r.rows.len());
        (Just(r), shuffled(w), shuffled(n))
    })
}

/// A value of the column's type that the generators never produce.
fn fresh_value(ty: &str) -> Option<Value> {
    match ty {
        "INTEGER" => Some(json!(1_000_003)),
        "DOUBLE" => Some(json!(12345.678)),
        "VARCHAR" => Some(json!("fresh")),
        "DATE" => Some(json!("2999-12-31")),
        "DECIMAL(10,2)" => Some(json!("9999.99")),
        _ => None,
    }
}

proptest! {
    #[test]
    fn a_result_matches_itself(r in result_set()) {
        prop_assert!(matched(&r, &r));
        prop_assert!(matched_ordered(&r, &r));
    }

    #[test]
    fn shuffling_columns_and_rows_keeps_a_match((r, cols, rows) in with_permutations()) {
        let p = permuted(&r, &cols, &rows);
        let verdict = compare(&p, &r, &CompareOptions::default());
        prop_assert!(verdict.matched, "{}", verdict.reason);
        // Reordering columns only keeps an ordered match too.
        let identity: Vec<usize> = (0..r.rows.len()).collect();
        prop_assert!(matched_ordered(&permuted(&r, &cols, &identity), &r));
    }

    #[test]
    fn changing_one_cell_to_a_new_value_breaks_the_match(
        (r, cols, rows) in with_permutations(),
        pick in any::<prop::sample::Index>(),
    ) {
        let candidates: Vec<(usize, usize)> = (0..r.rows.len())
            .flat_map(|row| (0..r.columns.len()).map(move |col| (row, col)))
            .filter(|&(_, col)| fresh_value(&r.types[col]).is_some())
            .collect();
        prop_assume!(!candidates.is_empty());
        let (row, col) = candidates[pick.index(candidates.len())];
        let mut changed = r.clone();
        changed.rows[row][col] = fresh_value(&r.types[col]).unwrap();
        let p = permuted(&changed, &cols, &rows);
        prop_assert!(!matched(&p, &r));
        prop_assert!(!matched(&r, &p));
        prop_assert!(cell_f1(&p, &r, &CompareOptions::default()) < 1.0);
    }

    #[test]
    fn comparison_is_symmetric(a in result_set(), b in result_set()) {
        prop_assert_eq!(matched(&a, &b), matched(&b, &a));
        prop_assert_eq!(matched_ordered(&a, &b), matched_ordered(&b, &a));
    }

    #[test]
    fn ordered_comparison_implies_unordered(a in result_set(), (b, cols, rows) in with_permutations()) {
        let p = permuted(&b, &cols, &rows);
        if matched_ordered(&p, &b) {
            prop_assert!(matched(&p, &b));
        }
        if matched_ordered(&a, &b) {
            prop_assert!(matched(&a, &b));
        }
    }

    #[test]
    fn floats_perturbed_within_tolerance_still_match(
        values in prop::collection::vec(-1e6f64..1e6, 1..20),
        factor in -0.5f64..0.5,
    ) {
        let gold = typed(&[("x", "DOUBLE")], json!(values.iter().map(|v| vec![*v]).collect::<Vec<_>>()));
        let pred = typed(
            &[("x", "DOUBLE")],
            json!(values.iter().rev().map(|v| vec![v * (1.0 + factor * 1e-6)]).collect::<Vec<_>>()),
        );
        prop_assert!(matched(&pred, &gold));
    }

    #[test]
    fn cell_f1_is_a_fraction_and_one_for_a_permutation((r, cols, rows) in with_permutations(), b in result_set()) {
        let options = CompareOptions::default();
        let f1 = cell_f1(&permuted(&r, &cols, &rows), &r, &options);
        prop_assert!((f1 - 1.0).abs() < 1e-12 || r.rows.is_empty());
        let other = cell_f1(&b, &r, &options);
        prop_assert!((0.0..=1.0).contains(&other));
    }

    #[test]
    fn normalize_temporal_is_idempotent(text in "[0-9T :.+Z-]{0,30}") {
        let once = normalize_temporal(&text);
        prop_assert_eq!(normalize_temporal(&once), once.clone());
    }
}
