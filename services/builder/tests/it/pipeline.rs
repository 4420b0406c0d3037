use std::collections::{BTreeSet, HashSet};

use serde_json::Value;
use sqlrft_core::dataset::{DatasetRecord, RecordGroundTruth};

use crate::support::{build_all, read_jsonl, run_on, scalar, small_demo_args};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn offline_build_gives_records_whose_truth_is_what_their_sql_returns() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    build_all(small_demo_args(&out, &["--format", "plain,reasoning"]))
        .await
        .unwrap();

    // The sandbox respects keys: every child row points at an existing parent.
    let sandbox = out.join("sandbox.duckdb");
    let conn = sqlrft_duck::open_read_only(&sandbox).unwrap();
    assert_eq!(scalar(&conn, "SELECT count(*) FROM routes"), 300);
    assert_eq!(scalar(&conn, "SELECT count(*) FROM countries"), 15);
    for (child, column, parent, key) in [
        ("routes", "airline_id", "airlines", "airline_id"),
        ("routes", "source_airport_id", "airports", "airport_id"),
        ("airports", "country_code", "countries", "country_code"),
    ] {
        let dangling = scalar(
            &conn,
            &format!(
                "SELECT count(*) FROM {child} c WHERE c.{column} IS NOT NULL AND NOT EXISTS (SELECT 1 FROM {parent} p WHERE p.{key} = c.{column})"
            ),
        );
        assert_eq!(dangling, 0, "{child}.{column}");
    }
    assert_eq!(
        scalar(
            &conn,
            "SELECT count(*) - count(DISTINCT airport_id) FROM airports"
        ),
        0
    );

    let train: Vec<DatasetRecord> = read_jsonl(&out.join("train.jsonl"))
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    let test: Vec<DatasetRecord> = read_jsonl(&out.join("test.jsonl"))
        .into_iter()
        .map(|v| serde_json::from_value(v).unwrap())
        .collect();
    assert!(
        train.len() >= 20 && !test.is_empty(),
        "train {} test {}",
        train.len(),
        test.len()
    );
    let ids: HashSet<&str> = train.iter().chain(&test).map(|r| r.id.as_str()).collect();
    assert_eq!(
        ids.len(),
        train.len() + test.len(),
        "a record appears twice"
    );

    let mut classes = BTreeSet::new();
    for record in train.iter().chain(&test) {
        classes.insert(record.complexity);
        assert_eq!(
            record
                .messages
                .iter()
                .map(|m| m.role.as_str())
                .collect::<Vec<_>>(),
            ["system", "user", "assistant"]
        );
        assert!(
            record.messages[0].content.contains("CREATE TABLE")
                || record.messages[0].content.contains("| route_id |")
        );
        assert_eq!(record.messages[2].content, record.sql);
        assert!(!record.messages[1].content.trim().is_empty());
        let RecordGroundTruth::Typed(truth) = &record.ground_truth else {
            panic!("typed ground truth expected")
        };
        // Independently: run the SQL on the sandbox and compare.
        let fresh = run_on(&sandbox, &record.sql);
        assert_eq!(truth.columns, fresh.columns, "{}", record.sql);
        assert_eq!(truth.types, fresh.types, "{}", record.sql);
        assert!(!truth.rows.is_empty());
        let ordered = record
            .sql
            .to_uppercase()
            .rsplit_once(") ")
            .map_or(record.sql.to_uppercase(), |(_, tail)| tail.to_string())
            .contains("ORDER BY");
        assert_eq!(truth.ordered, ordered, "{}", record.sql);
        if truth.ordered {
            // Parallel float sums may differ in the last bits between runs.
            let close = |a: &Value, b: &Value| match (a.as_f64(), b.as_f64()) {
                (Some(x), Some(y)) => (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0),
                _ => a == b,
            };
            assert_eq!(truth.rows.len(), fresh.rows.len(), "{}", record.sql);
            for (x, y) in truth.rows.iter().zip(&fresh.rows) {
                assert!(
                    x.iter().zip(y).all(|(a, b)| close(a, b)),
                    "{}: {x:?} vs {y:?}",
                    record.sql
                );
            }
        } else if truth.types.iter().all(|t| t != "DOUBLE" && t != "FLOAT") {
            let mut a: Vec<String> = truth
                .rows
                .iter()
                .map(|r| Value::Array(r.clone()).to_string())
                .collect();
            let mut b: Vec<String> = fresh
                .rows
                .iter()
                .map(|r| Value::Array(r.clone()).to_string())
                .collect();
            a.sort();
            b.sort();
            assert_eq!(a, b, "{}", record.sql);
        }
    }
    assert!(classes.len() >= 3, "complexity classes: {classes:?}");

    // The reasoning variant holds the same records with <think>/<sql> answers.
    let reasoning = read_jsonl(&out.join("train.reasoning.jsonl"));
    assert_eq!(reasoning.len(), train.len());
    let answer = reasoning[0]["messages"][2]["content"].as_str().unwrap();
    assert!(
        answer.starts_with("<think>") && answer.contains("<sql>"),
        "{answer}"
    );

    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    for section in [
        "## Schema",
        "## Sandbox",
        "## Queries",
        "## Ground truth",
        "## Questions",
        "## Dataset",
        "| hard |",
    ] {
        assert!(
            report.contains(section),
            "report lacks {section}:\n{report}"
        );
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rerun_skips_every_stage_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    build_all(small_demo_args(&out, &[])).await.unwrap();
    let before: Vec<(String, Vec<u8>)> = [
        "schema.json",
        "queries.jsonl",
        "truth.jsonl",
        "questions.jsonl",
        "train.jsonl",
        "test.jsonl",
    ]
    .iter()
    .map(|f| (f.to_string(), std::fs::read(out.join(f)).unwrap()))
    .collect();
    let outcomes = sqlrft_builder::run_build(sqlrft_builder::BuildCommand::All(small_demo_args(
        &out,
        &[],
    )))
    .await
    .unwrap();
    assert!(
        outcomes.iter().all(|o| o.skipped),
        "{:?}",
        outcomes
            .iter()
            .map(|o| (o.stage, o.skipped))
            .collect::<Vec<_>>()
    );
    for (name, bytes) in before {
        assert_eq!(
            std::fs::read(out.join(&name)).unwrap(),
            bytes,
            "{name} changed"
        );
    }
    // Another split seed redoes only the dataset stage.
    let outcomes = sqlrft_builder::run_build(sqlrft_builder::BuildCommand::All(small_demo_args(
        &out,
        &["--test-fraction", "0.3"],
    )))
    .await
    .unwrap();
    let redone: Vec<&str> = outcomes
        .iter()
        .filter(|o| !o.skipped)
        .map(|o| o.stage)
        .collect();
    assert_eq!(redone, ["dataset"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn same_seed_same_dataset_in_another_directory() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    build_all(small_demo_args(&a, &[])).await.unwrap();
    build_all(small_demo_args(&b, &[])).await.unwrap();
    assert_eq!(
        std::fs::read(a.join("queries.jsonl")).unwrap(),
        std::fs::read(b.join("queries.jsonl")).unwrap()
    );
    // Same records in the same split (cells may differ in a float's last bits: parallel sums).
    let ids = |path: std::path::PathBuf| -> Vec<String> {
        read_jsonl(&path)
            .iter()
            .map(|r| format!("{}|{}", r["id"], r["messages"][1]["content"]))
            .collect()
    };
    for name in ["train.jsonl", "test.jsonl"] {
        assert_eq!(ids(a.join(name)), ids(b.join(name)), "{name}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tutorial_ground_truth_format_is_a_list_of_row_objects() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("data");
    build_all(small_demo_args(
        &out,
        &["--ground-truth-format", "tutorial"],
    ))
    .await
    .unwrap();
    for record in read_jsonl(&out.join("train.jsonl")) {
        let rows = record["ground_truth"].as_array().expect("a list of rows");
        assert!(rows.iter().all(Value::is_object));
        assert!(record["sql"].is_string() && record["complexity"].is_string());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn openflights_shaped_production_db_builds_with_inferred_joins() {
    // The tutorial's production schema (pandas types, no declared keys), a few real rows.
    let dir = tempfile::tempdir().unwrap();
    let prod = dir.path().join("prod_openflights.duckdb");
    {
        let conn = sqlrft_duck::duckdb::Connection::open(&prod).unwrap();
        conn.execute_batch(sqlrft_builder::OPENFLIGHTS_DDL).unwrap();
        conn.execute_batch(
            "INSERT INTO airports VALUES (1, 'Goroka Airport', 'Goroka', 'Papua New Guinea', 'GKA', 'AYGA', -6.08, 145.39, 5282, 10, 'U', 'Pacific/Port_Moresby', 'airport', 'OurAirports');
             INSERT INTO routes VALUES ('2B', 410, 'AER', 2965, 'KZN', 2990, NULL, 0, 'CR2');",
        )
        .unwrap();
    }
    let out = dir.path().join("data");
    let args = crate::support::all_args(&[
        "--schema-from",
        prod.to_str().unwrap(),
        "--out",
        out.to_str().unwrap(),
        "--rows",
        "60",
        "--table-rows",
        "routes=400",
        "--queries",
        "80",
    ]);
    build_all(args).await.unwrap();
    let queries = read_jsonl(&out.join("queries.jsonl"));
    let joins = queries
        .iter()
        .filter(|q| q["tags"].as_array().unwrap().iter().any(|t| t == "join"))
        .count();
    assert!(joins > 0, "no join query generated from inferred keys");
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(report.contains("inferred from names"), "{report}");
    // Not a single production value made it into the dataset.
    let train = std::fs::read_to_string(out.join("train.jsonl")).unwrap();
    assert!(!train.contains("Goroka Airport") && !train.contains("AYGA"));
}
