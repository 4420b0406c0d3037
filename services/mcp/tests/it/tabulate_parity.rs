//! Our table renderer against Python's tabulate 0.10 itself, on random tables.

use std::process::Command;

use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde_json::{Value, json};

use crate::find_python::python_or_skip;

const PIECES: &[&str] = &[
    "",
    " ",
    "a",
    "42",
    "-0.0",
    "3.14",
    "hello world",
    " padded ",
    "Ünïcode",
    "中文",
    "x\ny",
    "None",
    "True",
    "['x', 'y']",
    "2024-01-02 03:04:05",
    "tab\there",
    "  lead",
    "trail  ",
    "ÿ",
    "é中",
];

fn random_cell(rng: &mut StdRng) -> Value {
    if rng.random_bool(0.15) {
        return Value::Null;
    }
    let parts = rng.random_range(1..=3);
    let text: String = (0..parts)
        .map(|_| PIECES[rng.random_range(0..PIECES.len())])
        .collect();
    Value::String(text.replace('\t', " "))
}

#[test]
fn pretty_tables_match_python_tabulate_byte_for_byte() {
    let Some(python) = python_or_skip(
        &["tabulate"],
        "pretty_tables_match_python_tabulate_byte_for_byte",
    ) else {
        return;
    };
    let mut rng = StdRng::seed_from_u64(7);
    let mut tables = Vec::new();
    for _ in 0..300 {
        let columns = rng.random_range(1..=4);
        let headers: Vec<String> = (0..columns)
            .map(|c| {
                format!(
                    "{}\n{}",
                    ["id", "name", "Ünï", "a long column name"][c % 4],
                    ["INTEGER", "VARCHAR", "DECIMAL(3,2)", "X"][rng.random_range(0..4)]
                )
            })
            .collect();
        let rows: Vec<Vec<Value>> = (0..rng.random_range(0..6))
            .map(|_| (0..columns).map(|_| random_cell(&mut rng)).collect())
            .collect();
        tables.push(json!({"headers": headers, "rows": rows}));
    }
    let dir = tempfile::tempdir().unwrap();
    let input = dir.path().join("tables.json");
    std::fs::write(&input, serde_json::to_string(&tables).unwrap()).unwrap();
    let script =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/python/tabulate_tables.py");
    let output = Command::new(python)
        .arg(script)
        .arg(&input)
        .output()
        .unwrap();
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    let expected: Vec<String> = serde_json::from_slice(&output.stdout).unwrap();
    for (table, expected) in tables.iter().zip(expected) {
        let headers: Vec<String> = table["headers"]
            .as_array()
            .unwrap()
            .iter()
            .map(|h| h.as_str().unwrap().to_string())
            .collect();
        let rows: Vec<Vec<String>> = table["rows"]
            .as_array()
            .unwrap()
            .iter()
            .map(|row| {
                row.as_array()
                    .unwrap()
                    .iter()
                    .map(|c| c.as_str().unwrap_or("").to_string())
                    .collect()
            })
            .collect();
        let ours = sqlrft_mcp::table::pretty_table(&headers, &rows);
        assert_eq!(ours, expected, "table {table}");
    }
}
