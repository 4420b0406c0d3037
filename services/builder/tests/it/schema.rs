use serde_json::Value;
use sqlrft_builder::{CommonArgs, SchemaOpts, schema_stage};
use sqlrft_builder::{KeyOrigin, Schema};
use sqlrft_duck::duckdb::Connection;

const SECRET: &str = "SECRET-PRODUCTION-VALUE-7f3a";

fn production_db(path: &std::path::Path) {
    let conn = Connection::open(path).unwrap();
    conn.execute_batch(&format!(
        "CREATE TABLE customers (customer_id INTEGER PRIMARY KEY, name VARCHAR NOT NULL, email VARCHAR);
         CREATE TABLE orders (order_id INTEGER PRIMARY KEY,
                              customer_id INTEGER NOT NULL REFERENCES customers (customer_id),
                              total DECIMAL(10, 2), placed DATE);
         CREATE TABLE notes (note_id INTEGER, order_id INTEGER, body VARCHAR);
         INSERT INTO customers VALUES (1, '{SECRET}', '{SECRET}@example.com');
         INSERT INTO orders VALUES (10, 1, 12.50, DATE '2024-01-02');
         INSERT INTO notes SELECT range, 10, '{SECRET}' FROM range(1000);"
    ))
    .unwrap();
}

fn read_schema(out: &std::path::Path) -> Schema {
    serde_json::from_str(&std::fs::read_to_string(out.join("schema.json")).unwrap()).unwrap()
}

#[test]
fn schema_from_duckdb_has_keys_and_no_data() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("prod.duckdb");
    production_db(&db);
    let out = dir.path().join("data");
    let outcome = schema_stage(
        &CommonArgs::new(&out),
        &SchemaOpts {
            schema_from: db.display().to_string(),
            db_name: None,
            no_infer_keys: false,
        },
    )
    .unwrap();
    assert!(!outcome.skipped);
    let schema = read_schema(&out);
    assert_eq!(schema.name, "prod");
    let names: Vec<&str> = schema.tables.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["customers", "notes", "orders"]);
    let orders = schema.table("orders").unwrap();
    assert_eq!(orders.primary_key, ["order_id"]);
    assert_eq!(orders.primary_key_origin, Some(KeyOrigin::Declared));
    let fk = orders.foreign_key_of("customer_id").unwrap();
    assert_eq!(
        (fk.references_table.as_str(), fk.origin),
        ("customers", KeyOrigin::Declared)
    );
    assert_eq!(orders.column("total").unwrap().data_type, "DECIMAL(10,2)");
    assert!(!orders.column("customer_id").unwrap().nullable);
    // Undeclared keys are inferred from names and say so.
    let notes = schema.table("notes").unwrap();
    assert_eq!(notes.primary_key_origin, Some(KeyOrigin::Inferred));
    assert_eq!(
        notes.foreign_key_of("order_id").unwrap().origin,
        KeyOrigin::Inferred
    );

    // Nothing the builder wrote holds a data value.
    for entry in std::fs::read_dir(&out).unwrap() {
        let path = entry.unwrap().path();
        if path.is_file() {
            let text = std::fs::read_to_string(&path).unwrap();
            assert!(
                !text.contains(SECRET),
                "{} holds a production value",
                path.display()
            );
        }
    }
    // The production file was opened read-only: it is unchanged and still openable for writing.
    let conn = Connection::open(&db).unwrap();
    let n: i64 = conn
        .query_row("SELECT count(*) FROM notes", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 1000);
}

#[test]
fn rerunning_the_schema_stage_skips_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("prod.duckdb");
    production_db(&db);
    let out = dir.path().join("data");
    let opts = SchemaOpts {
        schema_from: db.display().to_string(),
        db_name: Some("shop".into()),
        no_infer_keys: true,
    };
    schema_stage(&CommonArgs::new(&out), &opts).unwrap();
    let again = schema_stage(&CommonArgs::new(&out), &opts).unwrap();
    assert!(again.skipped);
    let schema = read_schema(&out);
    assert_eq!(schema.name, "shop");
    assert!(
        schema.table("notes").unwrap().foreign_keys.is_empty(),
        "--no-infer-keys"
    );
}

#[test]
fn ddl_file_schema_and_bad_ddl_error() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = dir.path().join("airline.sql");
    std::fs::write(&ddl, sqlrft_builder::DEMO_SCHEMA_DDL).unwrap();
    let out = dir.path().join("data");
    let opts = |from: &std::path::Path| SchemaOpts {
        schema_from: from.display().to_string(),
        db_name: None,
        no_infer_keys: false,
    };
    schema_stage(&CommonArgs::new(&out), &opts(&ddl)).unwrap();
    let schema = read_schema(&out);
    let routes = schema.table("routes").unwrap();
    let targets: Vec<String> = routes
        .foreign_keys
        .iter()
        .map(|fk| format!("{}:{:?}", fk.references_table, fk.origin))
        .collect();
    assert_eq!(
        targets
            .iter()
            .filter(|t| t.starts_with("airports:Declared"))
            .count(),
        2,
        "{targets:?}"
    );

    let bad = dir.path().join("bad.sql");
    std::fs::write(&bad, "CREATE TABLE t (a INTEGR, b);").unwrap();
    let err = schema_stage(&CommonArgs::new(dir.path().join("bad")), &opts(&bad)).unwrap_err();
    let message = format!("{err:#}");
    assert!(
        message.contains("bad.sql") && message.contains("DDL"),
        "{message}"
    );

    let missing = dir.path().join("nope.duckdb");
    let err = schema_stage(
        &CommonArgs::new(dir.path().join("missing")),
        &opts(&missing),
    )
    .unwrap_err();
    assert!(format!("{err:#}").contains("nope.duckdb"), "{err:#}");
}

#[test]
fn report_names_the_schema_source() {
    let dir = tempfile::tempdir().unwrap();
    let ddl = dir.path().join("airline.sql");
    std::fs::write(&ddl, sqlrft_builder::DEMO_SCHEMA_DDL).unwrap();
    let out = dir.path().join("data");
    schema_stage(
        &CommonArgs::new(&out),
        &SchemaOpts {
            schema_from: ddl.display().to_string(),
            db_name: None,
            no_infer_keys: false,
        },
    )
    .unwrap();
    let report = std::fs::read_to_string(out.join("report.md")).unwrap();
    assert!(
        report.contains("## Schema") && report.contains("5 tables"),
        "{report}"
    );
    let manifest: Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("manifest.json")).unwrap()).unwrap();
    assert_eq!(
        manifest["stages"]["schema"]["stats"]["foreign_keys_declared"],
        6
    );
}
