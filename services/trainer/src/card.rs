//! The model card `sqlrft publish model` writes as the repo's README.md: Hub metadata (base
//! model, dataset, licence, tags), how the model was trained (from the `sqlrft_training.json`
//! that `train export` leaves beside the weights), and, given `sqlrft eval`'s `results.json`,
//! the evaluation figures.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde_json::Value;

use crate::export::PROVENANCE_FILE;

/// Marks a README.md as ours, so a rerun replaces it but a card the user wrote is kept.
const MARKER: &str = "<!-- written by sqlrft publish model -->";

/// What the card says beyond what the model directory records.
#[derive(Debug, Clone, Default)]
pub struct CardInputs {
    /// The training dataset (a Hub dataset id or a path), for `datasets:` and the text.
    pub dataset: Option<String>,
    /// `sqlrft eval`'s JSON report (`results.json`).
    pub eval_report: Option<PathBuf>,
    /// Licence id for the metadata.
    pub license: String,
}

/// Writes `dir/README.md` unless the user wrote one (a README.md without our marker).
/// Returns whether the card was written.
pub fn write_model_card(dir: &Path, repo_id: &str, inputs: &CardInputs) -> Result<bool> {
    let path = dir.join("README.md");
    if let Ok(existing) = std::fs::read_to_string(&path)
        && !existing.contains(MARKER)
    {
        tracing::info!(path = %path.display(), "keeping the README.md already in the model directory");
        return Ok(false);
    }
    let card = model_card(dir, repo_id, inputs)?;
    sqlrft_files::write(&path, card)?;
    Ok(true)
}

/// The card's Markdown with YAML front matter.
pub fn model_card(dir: &Path, repo_id: &str, inputs: &CardInputs) -> Result<String> {
    let provenance: Value = match std::fs::read_to_string(dir.join(PROVENANCE_FILE)) {
        Ok(text) => serde_json::from_str(&text)
            .with_context(|| format!("`{}` is not JSON", dir.join(PROVENANCE_FILE).display()))?,
        Err(_) => Value::Null,
    };
    let report: Option<Value> = match &inputs.eval_report {
        Some(path) => Some(
            serde_json::from_str(&std::fs::read_to_string(path).with_context(|| {
                format!(
                    "could not read the eval report `{}`; pass the results.json `sqlrft eval` wrote",
                    path.display()
                )
            })?)
            .with_context(|| format!("eval report `{}` is not JSON", path.display()))?,
        ),
        None => None,
    };
    let base = provenance["base_model"].as_str();
    let training = &provenance["training"];

    let mut yaml = format!(
        "---\nlicense: {}\nlibrary_name: transformers\npipeline_tag: text-generation\n",
        inputs.license
    );
    // The Hub links `base_model` and `datasets` only when they are repo ids, not local paths.
    if let Some(base) = base.filter(|b| is_repo_id(b)) {
        yaml.push_str(&format!("base_model: {base}\n"));
    }
    if let Some(dataset) = inputs.dataset.as_deref().filter(|d| is_repo_id(d)) {
        yaml.push_str(&format!("datasets:\n- {dataset}\n"));
    }
    yaml.push_str("tags:\n- sqlrft\n- text-to-sql\n- grpo\n- duckdb\n---\n");

    let name = repo_id.rsplit('/').next().unwrap_or(repo_id);
    let mut md = format!("{MARKER}\n\n# {name}\n\n");
    md.push_str(&format!(
        "A text-to-SQL model fine-tuned with GRPO (reinforcement learning from execution \
         rewards) with sqlrft, from {}.\n\n",
        base.map_or("its base model".to_string(), |b| format!("`{b}`"))
    ));
    md.push_str("## Training\n\n| setting | value |\n|---|---|\n");
    let mut row = |k: &str, v: String| md.push_str(&format!("| {k} | {v} |\n"));
    row(
        "base model",
        base.map_or("unknown".into(), |b| format!("`{b}`")),
    );
    row(
        "dataset",
        inputs
            .dataset
            .as_deref()
            .map_or("not given (`--dataset`)".into(), |d| format!("`{d}`")),
    );
    row("reward", rewards(&training["rewards"]));
    if let Some(step) = provenance["step"].as_u64() {
        row("optimizer steps", step.to_string());
    }
    if !training.is_null() {
        row(
            "weights trained",
            if provenance["lora"].as_bool() == Some(true) {
                format!(
                    "LoRA (rank {}, alpha {}), merged into the base",
                    training["lora"]["rank"], training["lora"]["alpha"]
                )
            } else {
                "every weight".into()
            },
        );
        for (label, value) in [
            ("learning rate", &training["optim"]["learning_rate"]),
            (
                "generations per prompt",
                &training["grpo"]["num_generations"],
            ),
            ("prompts per step", &training["prompts_per_step"]),
            ("KL coefficient (beta)", &training["grpo"]["beta"]),
            ("loss", &training["grpo"]["loss_type"]),
            ("seed", &training["seed"]),
        ] {
            if !value.is_null() {
                row(label, plain(value));
            }
        }
    }
    md.push('\n');
    if let Some(report) = &report {
        md.push_str(&evaluation(report));
    }
    md.push_str(&format!(
        "## Use\n\n```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n\
         tok = AutoTokenizer.from_pretrained(\"{repo_id}\")\n\
         model = AutoModelForCausalLM.from_pretrained(\"{repo_id}\")\n```\n\n\
         The model answers with its reasoning in `<think>…</think>` and the query in \
         `<sql>…</sql>`; the system prompt carries the database schema.\n"
    ));
    Ok(yaml + &md)
}

fn is_repo_id(s: &str) -> bool {
    let parts: Vec<&str> = s.split('/').collect();
    parts.len() == 2
        && parts.iter().all(|p| {
            !p.is_empty()
                && !p.starts_with('.')
                && p.chars()
                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        })
        && !Path::new(s).exists()
}

fn plain(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

/// `execution (weight 1), format (weight 0.2)`.
fn rewards(specs: &Value) -> String {
    let Some(specs) = specs.as_array().filter(|s| !s.is_empty()) else {
        return "unknown".into();
    };
    specs
        .iter()
        .map(|s| {
            format!(
                "{} `{}` (weight {})",
                plain(&s["kind"]),
                plain(&s["name"]),
                plain(&s["weight"])
            )
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The evaluation section: one row per model of the report.
fn evaluation(report: &Value) -> String {
    let mut md = String::from("## Evaluation\n\n");
    let dataset = &report["dataset"];
    md.push_str(&format!(
        "Execution accuracy on {} items of `{}` (scored by {}; 95% Wilson intervals), from \
         `sqlrft eval`.\n\n",
        plain(&dataset["evaluated"]),
        plain(&dataset["path"]),
        report["scorer"].as_str().unwrap_or("the reward engine")
    ));
    md.push_str("| model | accuracy | 95% CI | correct / scored | lift vs base |\n");
    md.push_str("|---|---:|---:|---:|---:|\n");
    for model in report["models"].as_array().into_iter().flatten() {
        let name = plain(&model["name"]);
        let accuracy = &model["accuracy"];
        let (acc, ci, count) = match accuracy["accuracy"].as_f64() {
            Some(a) => (
                format!("{:.1}%", a * 100.0),
                format!(
                    "{:.1}–{:.1}%",
                    accuracy["ci_low"].as_f64().unwrap_or(f64::NAN) * 100.0,
                    accuracy["ci_high"].as_f64().unwrap_or(f64::NAN) * 100.0
                ),
                format!(
                    "{} / {}",
                    plain(&accuracy["correct"]),
                    plain(&accuracy["total"])
                ),
            ),
            // No accuracy is not 0%: the model gave no answers.
            None => ("no answers".into(), "–".into(), "–".into()),
        };
        let lift = model["lift_pp"]
            .as_f64()
            .map_or("–".into(), |l| format!("{l:+.1} pp"));
        md.push_str(&format!("| {name} | {acc} | {ci} | {count} | {lift} |\n"));
    }
    md.push('\n');
    md
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn card_names_base_dataset_reward_settings_and_eval_figures() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join(PROVENANCE_FILE),
            json!({"base_model": "Qwen/Qwen2.5-0.5B-Instruct", "step": 40, "lora": true,
                   "training": {"seed": 7, "prompts_per_step": 4,
                                "lora": {"rank": 16, "alpha": 32.0},
                                "optim": {"learning_rate": 1e-5},
                                "grpo": {"num_generations": 8, "beta": 0.04, "loss_type": "dapo"},
                                "rewards": [{"name": "exec", "kind": "execution", "weight": 1.0}]}})
            .to_string(),
        )
        .unwrap();
        let report = dir.path().join("results.json");
        std::fs::write(
            &report,
            json!({"dataset": {"path": "data/test.jsonl", "evaluated": 50}, "scorer": "embedded",
                   "models": [
                     {"name": "base", "accuracy": {"correct": 20, "total": 50, "accuracy": 0.4,
                                                   "ci_low": 0.28, "ci_high": 0.54}, "lift_pp": null},
                     {"name": "tuned", "accuracy": {"correct": 31, "total": 50, "accuracy": 0.62,
                                                    "ci_low": 0.48, "ci_high": 0.74}, "lift_pp": 22.0},
                     {"name": "down", "accuracy": null}]})
            .to_string(),
        )
        .unwrap();
        let inputs = CardInputs {
            dataset: Some("you/sql-rft".into()),
            eval_report: Some(report),
            license: "apache-2.0".into(),
        };
        let card = model_card(dir.path(), "you/qwen-sql", &inputs).unwrap();
        let front = card.split("---").nth(1).unwrap();
        assert!(
            front.contains("base_model: Qwen/Qwen2.5-0.5B-Instruct\n"),
            "{card}"
        );
        assert!(front.contains("datasets:\n- you/sql-rft\n"), "{card}");
        assert!(front.contains("license: apache-2.0\n"), "{card}");
        assert!(
            card.contains("| reward | execution `exec` (weight 1.0) |"),
            "{card}"
        );
        assert!(card.contains("| optimizer steps | 40 |"), "{card}");
        assert!(card.contains("LoRA (rank 16, alpha 32.0)"), "{card}");
        assert!(card.contains("| generations per prompt | 8 |"), "{card}");
        assert!(
            card.contains("| tuned | 62.0% | 48.0–74.0% | 31 / 50 | +22.0 pp |"),
            "{card}"
        );
        assert!(card.contains("| down | no answers |"), "{card}");
        assert!(card.contains("on 50 items of `data/test.jsonl`"), "{card}");
    }

    #[test]
    fn a_users_readme_is_kept_and_ours_is_replaced() {
        let dir = tempfile::tempdir().unwrap();
        let inputs = CardInputs {
            license: "mit".into(),
            ..CardInputs::default()
        };
        assert!(write_model_card(dir.path(), "a/b", &inputs).unwrap());
        assert!(write_model_card(dir.path(), "a/b", &inputs).unwrap());
        std::fs::write(dir.path().join("README.md"), "# mine\n").unwrap();
        assert!(!write_model_card(dir.path(), "a/b", &inputs).unwrap());
        assert_eq!(
            std::fs::read_to_string(dir.path().join("README.md")).unwrap(),
            "# mine\n"
        );
        let missing = CardInputs {
            eval_report: Some(dir.path().join("nope.json")),
            ..inputs
        };
        let err = model_card(dir.path(), "a/b", &missing).unwrap_err();
        assert!(format!("{err:#}").contains("results.json"), "{err:#}");
    }
}
