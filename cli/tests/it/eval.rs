//! `sqlrft eval` when no model answers: the report still comes out, and the exit status and
//! message say that nothing was measured, so a script does not read success.

use crate::{run_ok, sqlrft};

#[test]
fn an_eval_where_no_model_answers_fails_and_names_the_models() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(
        dir.path().join("schema.sql"),
        sqlrft_builder::DEMO_SCHEMA_DDL,
    )
    .unwrap();
    run_ok(sqlrft().current_dir(dir.path()).args([
        "build",
        "all",
        "--schema-from",
        "schema.sql",
        "--out",
        "data/",
        "--rows",
        "50",
        "--queries",
        "20",
    ]))
    .unwrap();
    // A port nothing listens on: bound, then released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let output = sqlrft()
        .current_dir(dir.path())
        .env("OPENAI_API_KEY", "unused")
        .args([
            "eval",
            "--dataset",
            "data/test.jsonl",
            "--db",
            "data/sandbox.duckdb",
            "--out",
            "eval/",
            "--model",
            &format!("down=openai:gpt-4o-mini@http://127.0.0.1:{port}/v1"),
            "--limit",
            "2",
            "--llm-retries",
            "0",
            "--quiet",
        ])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "exited 0:\n{stderr}");
    for words in ["no model answered", "`down`", "--model endpoint"] {
        assert!(stderr.contains(words), "stderr lacks `{words}`:\n{stderr}");
    }
    assert!(dir.path().join("eval/results.json").is_file());
}
