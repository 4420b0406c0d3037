//! `sqlrft publish dataset`: create the dataset repo if needed and commit the JSONL files, a
//! Parquet copy of each split where the Hub's viewer looks (`data/<split>-0000i-of-0000n.parquet`)
//! and a dataset card (README.md: configs, features, splits, how it was made, licence).
//! The Parquet files and the card are also kept locally (`--out-dir`). Rerunning updates files
//! in place; unchanged files are not re-uploaded.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;
use sqlrft_hub::{CommitFile, CommitInfo, HubArgs, RepoType, split_repo_id};

use crate::output::{DistillSummary, read_complete_lines, sidecar};
use crate::parquet::{Column, features_yaml, to_parquet};

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
    /// Local folder for the dataset card and the Parquet files, as uploaded (default:
    /// `hf-dataset/` beside the first file). Replaced as a whole on each run.
    #[arg(long, value_name = "DIR")]
    pub out_dir: Option<PathBuf>,
    #[command(flatten)]
    /// Where to publish (`--hub-*`, `HF_TOKEN`).
    pub hub: HubArgs,
}

/// Counts and columns of one file, for the card.
#[derive(Debug, Clone, PartialEq)]
struct FileStats {
    split: &'static str,
    path_in_repo: String,
    /// Where its Parquet copy goes in the repo.
    parquet_in_repo: String,
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

/// What kind of dataset the files hold, for the card's text.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum DatasetKind {
    /// `sqlrft build`'s RFT records (`messages` + `ground_truth`).
    Build,
    /// `sqlrft distill`'s chain-of-thought rows.
    Distill,
}

/// Runs `sqlrft publish dataset`.
pub async fn run_publish_dataset(args: PublishDatasetArgs) -> anyhow::Result<CommitInfo> {
    split_repo_id(&args.repo_id)?;
    let mut stats = Vec::new();
    let mut summaries = Vec::new();
    let folder = args.path_in_repo.trim_matches('/').to_string();
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
            path_in_repo: format!("{folder}/{name}"),
            parquet_in_repo: String::new(),
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
    // The viewer's naming: `<split>-<index>-of-<count>.parquet`, one per input file.
    for split in ["train", "validation", "test"] {
        let count = stats.iter().filter(|s| s.split == split).count();
        for (i, stat) in stats.iter_mut().filter(|s| s.split == split).enumerate() {
            stat.parquet_in_repo = format!("{folder}/{split}-{i:05}-of-{count:05}.parquet");
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

    let out_dir = args.out_dir.clone().unwrap_or_else(|| {
        args.files[0]
            .parent()
            .unwrap_or(Path::new("."))
            .join("hf-dataset")
    });
    let staged = sqlrft_files::Staged::dir(&out_dir)?;
    let mut schemas: Vec<Vec<Column>> = Vec::new();
    for (file, stat) in args.files.iter().zip(&stats) {
        let written = to_parquet(
            &[file.as_path()],
            &staged.path().join(&stat.parquet_in_repo),
        )
        .with_context(|| format!("could not convert `{}` to Parquet", file.display()))?;
        schemas.push(written.columns);
    }
    // One schema for every split, or `datasets` cannot load them as one dataset; otherwise
    // the card leaves the features for readers to infer.
    let features = schemas
        .windows(2)
        .all(|w| w[0] == w[1])
        .then(|| schemas.first().cloned())
        .flatten();
    if features.is_none() && schemas.len() > 1 {
        tracing::warn!(
            "the files have different fields; the dataset card lists no features and `datasets` \
             may not load the splits together"
        );
    }
    let card = dataset_card(
        &args,
        &CardFacts {
            stats: &stats,
            teacher: teacher.as_deref(),
            source: source.as_deref(),
            features: features.as_deref(),
        },
    );
    staged.write("README.md", &card)?;
    staged.commit()?;
    tracing::info!(dir = %out_dir.display(), "wrote the dataset card and Parquet files");

    let mut files = vec![CommitFile::from_path(
        "README.md",
        out_dir.join("README.md"),
    )];
    for (file, stat) in args.files.iter().zip(&stats) {
        files.push(CommitFile::from_path(stat.path_in_repo.clone(), file));
        files.push(CommitFile::from_path(
            stat.parquet_in_repo.clone(),
            out_dir.join(&stat.parquet_in_repo),
        ));
    }
    let hub = args.hub.client(None)?;
    hub.create_repo(RepoType::Dataset, &args.repo_id, args.private)
        .await
        .with_context(|| format!("could not create dataset repo `{}`", args.repo_id))?;
    let kind = dataset_kind(&stats);
    let message = args.message.clone().unwrap_or_else(|| {
        let rows = stats.iter().map(|s| s.rows).sum::<usize>();
        match kind {
            DatasetKind::Build => format!("Upload {rows} rows built with sqlrft"),
            DatasetKind::Distill => format!(
                "Upload {rows} rows distilled{} with sqlrft",
                teacher
                    .as_deref()
                    .map(|t| format!(" from {t}"))
                    .unwrap_or_default()
            ),
        }
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

fn dataset_kind(stats: &[FileStats]) -> DatasetKind {
    let build = stats
        .iter()
        .all(|s| s.columns.contains("messages") && s.columns.contains("ground_truth"))
        && !stats.is_empty();
    if build {
        DatasetKind::Build
    } else {
        DatasetKind::Distill
    }
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
        "messages" => {
            "chat: system (instructions + database schema), user (question), assistant (gold answer)"
        }
        "ground_truth" => {
            "what the gold SQL returns: `columns`, DuckDB `types`, `rows_json` (the rows as a JSON \
             list of typed cells), `ordered` (row order matters), `sql`"
        }
        "complexity" => "Spider hardness of the gold SQL: easy, medium, hard or extra",
        "tags" => "SQL features the gold SQL uses (join, aggregate, window, …)",
        "db" => "name of the database the question is about",
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

/// What the card is made from besides the flags.
struct CardFacts<'a> {
    stats: &'a [FileStats],
    teacher: Option<&'a str>,
    source: Option<&'a str>,
    /// The Parquet schema every split shares, if they do.
    features: Option<&'a [Column]>,
}

fn dataset_card(args: &PublishDatasetArgs, facts: &CardFacts) -> String {
    let stats = facts.stats;
    let kind = dataset_kind(stats);
    let total: usize = stats.iter().map(|s| s.rows).sum();
    let mut yaml = String::from("---\n");
    yaml.push_str(&format!("license: {}\n", args.license));
    yaml.push_str("language:\n- en\ntask_categories:\n- text-generation\n");
    yaml.push_str(match kind {
        DatasetKind::Build => "tags:\n- sql\n- text-to-sql\n- reinforcement-learning\n- synthetic\n- duckdb\n- sqlrft\n",
        DatasetKind::Distill => "tags:\n- sql\n- text-to-sql\n- chain-of-thought\n- distillation\n- duckdb\n- sqlrft\n",
    });
    yaml.push_str(&format!("size_categories:\n- {}\n", size_category(total)));
    let splits: Vec<&str> = ["train", "validation", "test"]
        .into_iter()
        .filter(|split| stats.iter().any(|s| s.split == *split))
        .collect();
    yaml.push_str("configs:\n- config_name: default\n  data_files:\n");
    for split in &splits {
        yaml.push_str(&format!("  - split: {split}\n    path:\n"));
        for s in stats.iter().filter(|s| s.split == *split) {
            yaml.push_str(&format!("    - {}\n", s.parquet_in_repo));
        }
    }
    yaml.push_str("dataset_info:\n");
    if let Some(features) = facts.features {
        yaml.push_str("  features:\n");
        yaml.push_str(&features_yaml(features, 2));
    }
    yaml.push_str("  splits:\n");
    for split in &splits {
        let rows: usize = stats
            .iter()
            .filter(|s| s.split == *split)
            .map(|s| s.rows)
            .sum();
        yaml.push_str(&format!("  - name: {split}\n    num_examples: {rows}\n"));
    }
    yaml.push_str("---\n\n");

    let name = args.repo_id.split('/').next_back().unwrap_or(&args.repo_id);
    let mut md = format!("# {name}\n\n");
    match kind {
        DatasetKind::Build => {
            md.push_str(
                "A text-to-SQL reinforcement fine-tuning dataset made by sqlrft `build`.\n\n\
                 ## How it was made\n\n\
                 Only the schema of the source database was read (table and column definitions \
                 from DuckDB's catalog; no production row). sqlrft generated a synthetic DuckDB \
                 sandbox with seeded rows that fit that schema, wrote gold SQL queries from a \
                 query grammar (with Spider hardness classes), ran each query twice on the \
                 sandbox and kept the deterministic, non-empty results as ground truth, and \
                 phrased a question for each query. The split is stratified by hardness.\n\n\
                 Each row is a chat in the Fireworks RFT shape `{messages, ground_truth}`. \
                 `ground_truth.rows_json` is the gold result as one JSON string (a list of rows, \
                 each a list of cells typed by `ground_truth.types`), so every field has one \
                 type in every row and pyarrow, pandas and Parquet read the files; \
                 `json.loads` gives the rows back exactly.\n\n",
            );
        }
        DatasetKind::Distill => {
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
                facts
                    .source
                    .map_or("unknown".to_string(), |s| format!("`{s}`"))
            ));
            md.push_str(&format!(
                "- **Teacher model:** {}\n",
                facts
                    .teacher
                    .map_or("unknown".to_string(), |t| format!("`{t}`"))
            ));
        }
    }
    md.push_str(&format!(
        "- **Rows:** {total}\n- **Licence:** {}\n\n",
        args.license
    ));
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
    md.push_str(
        "\nEach split is there twice: the JSONL as written (for Fireworks and other JSONL tools) \
         and a Parquet copy the dataset viewer and `load_dataset` read.\n",
    );
    md.push_str("\n## Fields\n\n| field | description |\n|---|---|\n");
    let columns: BTreeSet<&String> = stats.iter().flat_map(|s| &s.columns).collect();
    for c in columns {
        md.push_str(&format!("| `{c}` | {} |\n", field_description(c)));
    }
    md.push_str("\n## Use\n\n```python\nfrom datasets import load_dataset\n");
    md.push_str("ds = load_dataset(\"REPO\", split=\"train\")\n");
    match kind {
        DatasetKind::Build => md.push_str(
            "import json\nrows = json.loads(ds[0][\"ground_truth\"][\"rows_json\"])\n```\n",
        ),
        DatasetKind::Distill => md.push_str("ds = ds.filter(lambda r: r[\"valid\"])\n```\n"),
    }
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
            out_dir: None,
            hub: HubArgs::default(),
        }
    }

    #[test]
    fn card_has_front_matter_splits_counts_and_fields() {
        let stats = vec![
            FileStats {
                split: "train",
                path_in_repo: "data/train.jsonl".into(),
                parquet_in_repo: "data/train-00000-of-00001.parquet".into(),
                rows: 7,
                valid: 5,
                invalid: 1,
                columns: ["think", "sql", "domain"].map(String::from).into(),
            },
            FileStats {
                split: "test",
                path_in_repo: "data/test.jsonl".into(),
                parquet_in_repo: "data/test-00000-of-00001.parquet".into(),
                rows: 2,
                valid: 2,
                invalid: 0,
                columns: ["think"].map(String::from).into(),
            },
        ];
        let features = [Column {
            name: "think".into(),
            duck_type: sqlrft_core::DuckType::Varchar,
        }];
        let card = dataset_card(
            &args(),
            &CardFacts {
                stats: &stats,
                teacher: Some("llama-70b"),
                source: Some("gretelai/x"),
                features: Some(&features),
            },
        );
        assert!(card.starts_with("---\nlicense: apache-2.0\n"));
        let front = &card[..card[4..].find("---").unwrap() + 4];
        assert!(
            front.contains("- split: train\n    path:\n    - data/train-00000-of-00001.parquet"),
            "{front}"
        );
        assert!(front.contains("- split: test\n    path:\n    - data/test-00000-of-00001.parquet"));
        assert!(
            front.contains("dataset_info:\n  features:\n  - name: think\n    dtype: string\n"),
            "{front}"
        );
        assert!(
            front.contains("  splits:\n  - name: train\n    num_examples: 7\n  - name: test\n    num_examples: 2\n"),
            "{front}"
        );
        assert!(card.contains("chain-of-thought"));
        assert!(front.contains("- n<1K"));
        assert!(card.contains("`llama-70b`") && card.contains("`gretelai/x`"));
        assert!(card.contains("| train | `data/train.jsonl` | 7 | 5 | 1 | 1 |"));
        assert!(card.contains("| `think` |") && card.contains("| `domain` | subject domain"));
        assert!(card.contains("load_dataset(\"alice/sql-cot\""));
    }

    #[test]
    fn a_build_dataset_card_says_schema_only() {
        let columns: BTreeSet<String> =
            ["messages", "ground_truth", "sql"].map(String::from).into();
        let stats = vec![FileStats {
            split: "train",
            path_in_repo: "data/train.jsonl".into(),
            parquet_in_repo: "data/train-00000-of-00001.parquet".into(),
            rows: 3,
            valid: 0,
            invalid: 0,
            columns,
        }];
        let card = dataset_card(
            &args(),
            &CardFacts {
                stats: &stats,
                teacher: None,
                source: None,
                features: None,
            },
        );
        assert!(card.contains("no production row"), "{card}");
        assert!(card.contains("rows_json"), "{card}");
        assert!(!card.contains("Teacher model"), "{card}");
        assert!(!card.contains("  features:"), "{card}");
    }

    #[test]
    fn splits_come_from_file_names() {
        assert_eq!(split_of("cot_test.jsonl"), "test");
        assert_eq!(split_of("valid.jsonl"), "validation");
        assert_eq!(split_of("distill.jsonl"), "train");
    }
}
