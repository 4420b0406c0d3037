//! `sqlrft publish dataset`: create the dataset repo if needed and commit the files with a
//! dataset card. Rerunning updates files in place; unchanged files are not re-uploaded.

use std::collections::BTreeSet;
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use sqlrft_hub::{CommitFile, CommitInfo, HubArgs, RepoType, split_repo_id};

use crate::output::{DistillSummary, read_complete_lines, sidecar};

/// Flags of `sqlrft publish dataset`.
#[derive(Debug, Clone, Args)]
pub struct PublishDatasetArgs {
    /// Dataset repo to publish to (`owner/name`); created if missing.
    #[arg(long)]
    pub repo_id: String,
    /// Create the repo as private (an existing repo keeps its visibility).
    #[arg(long)]
    pub private: bool,
    /// JSONL files to upload (split from the name: `*test*` → test, `*valid*` → validation,
    /// else train).
    #[arg(required = true)]
    pub files: Vec<PathBuf>,
    /// Folder in the repo the files go to.
    #[arg(long, default_value = "data")]
    pub path_in_repo: String,
    /// Teacher model named in the card (default: from `<file>.summary.json`).
    #[arg(long)]
    pub teacher_model: Option<String>,
    /// Source dataset named in the card (default: from `<file>.summary.json`).
    #[arg(long)]
    pub source_dataset: Option<String>,
    /// License in the card's metadata.
    #[arg(long, default_value = "apache-2.0")]
    pub license: String,
    /// Commit message.
    #[arg(long)]
    pub message: Option<String>,
    #[command(flatten)]
    /// Where to publish (`--hub-*`, `HF_TOKEN`).
    pub hub: HubArgs,
}

/// Counts and columns of one file, for the card.
#[derive(Debug, Clone, PartialEq)]
struct FileStats {
    split: &'static str,
    path_in_repo: String,
    rows: usize,
    valid: usize,
    invalid: usize,
    columns: BTreeSet<String>,
}

fn split_of(name: &str) -> &'static str {
    let n = name.to_ascii_lowercase();
    if n.contains("test") {
        "test"
    } else if n.contains("valid") || n.contains("dev") {
        "validation"
    } else {
        "train"
    }
}

/// Runs `sqlrft publish dataset`.
pub async fn run_publish_dataset(args: PublishDatasetArgs) -> anyhow::Result<CommitInfo> {
    split_repo_id(&args.repo_id)?;
    let mut stats = Vec::new();
    let mut summaries = Vec::new();
    for file in &args.files {
        if !file.is_file() {
            bail!("could not publish `{}`: no such file", file.display());
        }
        let name = file
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        let (mut rows, mut valid, mut invalid) = (0, 0, 0);
        let mut columns = BTreeSet::new();
        for value in read_complete_lines(file)? {
            rows += 1;
            match value.get("valid").and_then(Value::as_bool) {
                Some(true) => valid += 1,
                Some(false) => invalid += 1,
                None => {}
            }
            if let Value::Object(map) = value {
                columns.extend(map.into_iter().map(|(k, _)| k));
            }
        }
        stats.push(FileStats {
            split: split_of(&name),
            path_in_repo: format!("{}/{name}", args.path_in_repo.trim_matches('/')),
            rows,
            valid,
            invalid,
            columns,
        });
        if let Ok(text) = std::fs::read_to_string(sidecar(file, "summary.json"))
            && let Ok(summary) = serde_json::from_str::<DistillSummary>(&text)
        {
            summaries.push(summary);
        }
    }
    let teacher = args
        .teacher_model
        .clone()
        .or_else(|| summaries.first().map(|s| s.model.clone()));
    let source = args
        .source_dataset
        .clone()
        .or_else(|| summaries.first().map(|s| s.source.clone()));
    let card = dataset_card(&args, &stats, teacher.as_deref(), source.as_deref());

    let mut files = vec![CommitFile::from_bytes("README.md", card.into_bytes())];
    for (file, stat) in args.files.iter().zip(&stats) {
        files.push(CommitFile::from_path(stat.path_in_repo.clone(), file));
    }
    let hub = args.hub.client(None)?;
    hub.create_repo(RepoType::Dataset, &args.repo_id, args.private)
        .await
        .with_context(|| format!("could not create dataset repo `{}`", args.repo_id))?;
    let message = args.message.clone().unwrap_or_else(|| {
        format!(
            "Upload {} rows distilled{} with sqlrft",
            stats.iter().map(|s| s.rows).sum::<usize>(),
            teacher
                .as_deref()
                .map(|t| format!(" from {t}"))
                .unwrap_or_default()
        )
    });
    let info = hub
        .commit(RepoType::Dataset, &args.repo_id, "main", &message, &files)
        .await
        .with_context(|| format!("could not publish to `{}`", args.repo_id))?;
    match &info.commit_url {
        Some(url) => tracing::info!(%url, committed = ?info.committed, "published"),
        None => tracing::info!(repo = %args.repo_id, "already up to date; nothing committed"),
    }
    Ok(info)
}

/// What each known field means, for the card's field table.
fn field_description(name: &str) -> &'static str {
    match name {
        "id" => "stable id of the source row (hash of question, context, gold SQL, explanation)",
        "source_index" => "position of the row in the source",
        "sql_prompt" => "the natural-language question",
        "sql_context" => "DDL and INSERT statements that build the row's database",
        "gold_sql" => "the source dataset's SQL answer",
        "sql_explanation" => "the source dataset's explanation of the gold SQL",
        "sql_complexity" | "sql_complexity_description" => "complexity class from the source",
        "sql_task_type" | "sql_task_type_description" => "task type from the source",
        "domain" | "domain_description" => "subject domain from the source",
        "generation" => "the teacher's full answer",
        "think" => "the teacher's reasoning, between <think> and </think>",
        "sql" => "the teacher's SQL, between <sql> and </sql>",
        "valid" => {
            "true when the teacher's SQL returns the gold SQL's result in DuckDB (null: not validated)"
        }
        "reason" => "why the answer is (in)valid",
        "prompt" => {
            "ready-to-train chat prompt: system (format instructions + context) and user (question)"
        }
        _ => "from the source dataset",
    }
}

fn size_category(rows: usize) -> &'static str {
    match rows {
        0..1_000 => "n<1K",
        1_000..10_000 => "1K<n<10K",
        10_000..100_000 => "10K<n<100K",
        100_000..1_000_000 => "100K<n<1M",
        _ => "n>1M",
    }
}

fn dataset_card(
    args: &PublishDatasetArgs,
    stats: &[FileStats],
    teacher: Option<&str>,
    source: Option<&str>,
) -> String {
    let total: usize = stats.iter().map(|s| s.rows).sum();
    let mut yaml = String::from("---\n");
    yaml.push_str(&format!("license: {}\n", args.license));
    yaml.push_str("language:\n- en\ntask_categories:\n- text-generation\n");
    yaml.push_str(
        "tags:\n- sql\n- text-to-sql\n- chain-of-thought\n- distillation\n- duckdb\n- sqlrft\n",
    );
    yaml.push_str(&format!("size_categories:\n- {}\n", size_category(total)));
    yaml.push_str("configs:\n- config_name: default\n  data_files:\n");
    let splits: BTreeSet<&str> = stats.iter().map(|s| s.split).collect();
    for split in &splits {
        yaml.push_str(&format!("  - split: {split}\n    path:\n"));
        for s in stats.iter().filter(|s| s.split == *split) {
            yaml.push_str(&format!("    - {}\n", s.path_in_repo));
        }
    }
    yaml.push_str("---\n\n");

    let name = args.repo_id.split('/').next_back().unwrap_or(&args.repo_id);
    let mut md = format!("# {name}\n\n");
    md.push_str(
        "Text-to-SQL examples with chain-of-thought reasoning distilled from a teacher model by \
         sqlrft `distill`. The teacher saw each question, its database \
         context and the gold SQL, and wrote its reasoning in `<think>…</think>` followed by a \
         query in `<sql>…</sql>`. With validation, each answer's query was executed in a fresh \
         DuckDB database built from the row's context and its result compared with the gold \
         query's result (typed cells, numeric tolerance, row order only when the gold query \
         orders).\n\n",
    );
    md.push_str(&format!(
        "- **Source dataset:** {}\n",
        source.map_or("unknown".to_string(), |s| format!("`{s}`"))
    ));
    md.push_str(&format!(
        "- **Teacher model:** {}\n",
        teacher.map_or("unknown".to_string(), |t| format!("`{t}`"))
    ));
    md.push_str(&format!("- **Rows:** {total}\n\n"));
    md.push_str("| split | file | rows | valid | not valid | not validated |\n|---|---|---:|---:|---:|---:|\n");
    for s in stats {
        md.push_str(&format!(
            "| {} | `{}` | {} | {} | {} | {} |\n",
            s.split,
            s.path_in_repo,
            s.rows,
            s.valid,
            s.invalid,
            s.rows - s.valid - s.invalid
        ));
    }
    md.push_str("\n## Fields\n\n| field | description |\n|---|---|\n");
    let columns: BTreeSet<&String> = stats.iter().flat_map(|s| &s.columns).collect();
    for c in columns {
        md.push_str(&format!("| `{c}` | {} |\n", field_description(c)));
    }
    md.push_str(
        "\n## Use\n\n```python\nfrom datasets import load_dataset\n\
         ds = load_dataset(\"REPO\", split=\"train\")\nds = ds.filter(lambda r: r[\"valid\"])\n```\n",
    );
    yaml + &md.replace("REPO", &args.repo_id)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args() -> PublishDatasetArgs {
        PublishDatasetArgs {
            repo_id: "alice/sql-cot".into(),
            private: false,
            files: vec![],
            path_in_repo: "data".into(),
            teacher_model: None,
            source_dataset: None,
            license: "apache-2.0".into(),
            message: None,
            hub: HubArgs::default(),
        }
    }

    #[test]
    fn card_has_front_matter_splits_counts_and_fields() {
        let stats = vec![
            FileStats {
                split: "train",
                path_in_repo: "data/train.jsonl".into(),
                rows: 7,
                valid: 5,
                invalid: 1,
                columns: ["think", "sql", "domain"].map(String::from).into(),
            },
            FileStats {
                split: "test",
                path_in_repo: "data/test.jsonl".into(),
                rows: 2,
                valid: 2,
                invalid: 0,
                columns: ["think"].map(String::from).into(),
            },
        ];
        let card = dataset_card(&args(), &stats, Some("llama-70b"), Some("gretelai/x"));
        assert!(card.starts_with("---\nlicense: apache-2.0\n"));
        let front = &card[..card[4..].find("---").unwrap() + 4];
        assert!(front.contains("- split: train\n    path:\n    - data/train.jsonl"));
        assert!(front.contains("- split: test\n    path:\n    - data/test.jsonl"));
        assert!(front.contains("- n<1K"));
        assert!(card.contains("`llama-70b`") && card.contains("`gretelai/x`"));
        assert!(card.contains("| train | `data/train.jsonl` | 7 | 5 | 1 | 1 |"));
        assert!(card.contains("| `think` |") && card.contains("| `domain` | subject domain"));
        assert!(card.contains("load_dataset(\"alice/sql-cot\""));
    }

    #[test]
    fn splits_come_from_file_names() {
        assert_eq!(split_of("cot_test.jsonl"), "test");
        assert_eq!(split_of("valid.jsonl"), "validation");
        assert_eq!(split_of("distill.jsonl"), "train");
    }
}
