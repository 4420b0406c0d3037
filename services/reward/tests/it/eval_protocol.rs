//! deploy/fireworks/test_sqlrft_reward.py, the Eval Protocol evaluator, against the running
//! service: called row by row as Fireworks calls it, and as the pytest run a user makes before
//! `eval-protocol upload` (services/reward/tests/python/eval_protocol_check.py does both).

use std::path::Path;
use std::process::Command;

use serde_json::json;
use sqlrft_core::dataset::TypedGroundTruth;
use sqlrft_reward_service::{RewardConfig, start};

use crate::find_python::python_or_skip;
use crate::support::{embedded_config, fixture};

/// The records `sqlrft build` writes: system + user prompt, the gold answer as the assistant
/// message, and the typed ground truth computed here by DuckDB.
async fn dataset(db: &Path, out: &Path) {
    let pool = sqlrft_duck::ReadOnlyPool::open(db, Default::default()).unwrap();
    let gold = [
        (
            "How many cities?",
            "SELECT COUNT(*) AS n FROM cities",
            false,
        ),
        (
            "Norwegian cities, largest first?",
            "SELECT name, population FROM cities WHERE country = 'Norway' ORDER BY population DESC",
            true,
        ),
        (
            "Mayors per country?",
            "SELECT country, COUNT(mayor) AS mayors FROM cities GROUP BY country",
            false,
        ),
    ];
    let mut lines = String::new();
    for (question, sql, ordered) in gold {
        let result = pool.query(sql).await.unwrap();
        let record = json!({
            "messages": [
                {"role": "system", "content": "Answer with DuckDB SQL in <sql></sql>."},
                {"role": "user", "content": question},
                {"role": "assistant", "content": format!("<think>gold</think><sql>{sql}</sql>")}
            ],
            "ground_truth": TypedGroundTruth::from_result_set(result, ordered, sql),
        });
        lines.push_str(&format!("{record}\n"));
    }
    std::fs::write(out, lines).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn the_eval_protocol_evaluator_scores_through_the_service() {
    // eval-protocol is in ci-requirements.txt; elsewhere: pip install -r
    // deploy/fireworks/requirements.txt and point SQLRFT_PYTHON at that interpreter.
    let Some(python) = python_or_skip(
        &["eval_protocol", "pytest", "requests"],
        "the_eval_protocol_evaluator_scores_through_the_service",
    ) else {
        return;
    };
    let fx = fixture();
    let server = start(RewardConfig {
        token: Some("ep-token".into()),
        ..embedded_config(&fx)
    })
    .await
    .unwrap();
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("train.jsonl");
    dataset(&fx.db, &data).await;
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let script = root.join("tests/python/eval_protocol_check.py");
    let deploy = root.join("../../deploy/fireworks");
    let url = server.base_url();
    let home = work.path().to_path_buf();
    let mut command = Command::new(python);
    command
        .arg(script)
        .arg(&deploy)
        .arg(&url)
        .arg(&data)
        .env("SQLRFT_REWARD_TOKEN", "ep-token")
        // eval-protocol keeps its run log under ~/.eval_protocol; LiteLLM would fetch a
        // price list from the internet on import.
        .env("HOME", &home)
        .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .env_remove("SQLRFT_REWARD_URL");
    crate::find_python::assert_script_passes("eval_protocol_check.py", command).await;
    server.shutdown().await.unwrap();
}
