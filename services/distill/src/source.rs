//! Where distillation items come from: a Hub dataset in the gretelai/synthetic_text_to_sql
//! shape, a local JSONL/parquet file, or a dataset written by `sqlrft build`.

use std::io::BufRead;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde_json::{Map, Value};
use sha2::{Digest, Sha256};
use sqlrft_hub::{HubClient, RepoType};

/// Which source columns hold what (defaults: the Gretel names).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ColumnMap {
    /// The natural-language question.
    pub question: String,
    /// DDL and INSERTs that build the item's database.
    pub context: String,
    /// The gold SQL.
    pub sql: String,
    /// An explanation of the gold SQL (optional column).
    pub explanation: String,
    /// The task type (optional column; non-retrieval tasks are dropped).
    pub task_type: String,
}

impl Default for ColumnMap {
    fn default() -> Self {
        ColumnMap {
            question: "sql_prompt".into(),
            context: "sql_context".into(),
            sql: "sql".into(),
            explanation: "sql_explanation".into(),
            task_type: "sql_task_type".into(),
        }
    }
}

/// One source row, mapped to what distillation needs.
#[derive(Debug, Clone, PartialEq)]
pub struct SourceItem {
    /// Stable id: a hash of question, context, gold SQL and explanation.
    pub id: String,
    /// Position in the source (after `--limit`), for deterministic merge order.
    pub index: usize,
    /// The question.
    pub question: String,
    /// The database context: DDL + INSERTs (Gretel), or a schema description (build datasets).
    pub context: String,
    /// The gold SQL.
    pub gold_sql: String,
    /// Explanation of the gold SQL, when the source has one.
    pub explanation: Option<String>,
    /// Task type, when the source has one.
    pub task_type: Option<String>,
    /// The whole source row, carried into the output.
    pub row: Map<String, Value>,
}

impl SourceItem {
    /// The first 8 bytes of the id as a number, for sharding.
    pub fn shard_key(&self) -> u64 {
        let bytes = hex::decode(&self.id[..16]).expect("ids are hex");
        u64::from_be_bytes(bytes.try_into().expect("8 bytes"))
    }
}

/// The id of an item: hex of the first 12 bytes of SHA-256 over its mapped fields.
pub fn item_id(question: &str, context: &str, sql: &str, explanation: Option<&str>) -> String {
    let mut h = Sha256::new();
    for part in [question, context, sql, explanation.unwrap_or("")] {
        h.update((part.len() as u64).to_le_bytes());
        h.update(part.as_bytes());
    }
    hex::encode(&h.finalize()[..12])
}

/// Where to read from.
#[derive(Debug, Clone)]
pub enum SourceSpec {
    /// A Hub dataset repo, one split.
    Hub {
        /// `owner/name`.
        repo_id: String,
        /// Split name matched against file names (`train`, `test`).
        split: String,
        /// Git revision.
        revision: String,
    },
    /// A local `.jsonl`/`.json`/`.parquet` file.
    File(PathBuf),
}

/// Reads up to `limit` rows from the source, downloading Hub files through the cache.
pub async fn load_rows(
    spec: &SourceSpec,
    hub: &HubClient,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Map<String, Value>>> {
    let files = match spec {
        SourceSpec::File(path) => vec![path.clone()],
        SourceSpec::Hub {
            repo_id,
            split,
            revision,
        } => {
            let listing = hub
                .list_files(RepoType::Dataset, repo_id, revision)
                .await
                .with_context(|| format!("could not list dataset `{repo_id}`"))?;
            let paths: Vec<String> = listing.into_iter().map(|f| f.path).collect();
            let chosen = split_files(&paths, split);
            if chosen.is_empty() {
                bail!(
                    "dataset `{repo_id}` has no parquet/JSONL file for split `{split}`; its files are: {}. \
                     Pass --split with one of the split names in those file names",
                    paths.join(", ")
                );
            }
            let mut local = Vec::new();
            for path in chosen {
                tracing::info!(%repo_id, %path, "downloading");
                local.push(
                    hub.download(RepoType::Dataset, repo_id, revision, &path)
                        .await?,
                );
            }
            local
        }
    };
    let mut rows = Vec::new();
    for file in files {
        let want = limit.map(|l| l.saturating_sub(rows.len()));
        if want == Some(0) {
            break;
        }
        let more = tokio::task::spawn_blocking(move || read_file_rows(&file, want))
            .await
            .expect("reading rows does not panic")?;
        rows.extend(more);
    }
    Ok(rows)
}

/// Data files of `split`, sorted: parquet/JSONL files whose path has `split` as a word
/// (`train.jsonl`, `data/train-00000-of-00002.parquet`, `x_train.snappy.parquet`). A repo with a
/// single data file uses it whatever its name.
pub fn split_files(paths: &[String], split: &str) -> Vec<String> {
    let data: Vec<&String> = paths.iter().filter(|p| is_data_file(p)).collect();
    let mut chosen: Vec<String> = data
        .iter()
        .filter(|p| has_word(&p.to_ascii_lowercase(), &split.to_ascii_lowercase()))
        .map(|p| p.to_string())
        .collect();
    if chosen.is_empty() && data.len() == 1 {
        chosen.push(data[0].clone());
    }
    chosen.sort();
    chosen
}

fn is_data_file(path: &str) -> bool {
    let p = path.to_ascii_lowercase();
    p.ends_with(".parquet") || p.ends_with(".jsonl") || p.ends_with(".json")
}

fn has_word(text: &str, word: &str) -> bool {
    text.match_indices(word).any(|(at, _)| {
        let before = text[..at].chars().next_back();
        let after = text[at + word.len()..].chars().next();
        !before.is_some_and(|c| c.is_ascii_alphanumeric())
            && !after.is_some_and(|c| c.is_ascii_alphanumeric())
    })
}

/// Reads rows from a local file, by extension.
pub fn read_file_rows(
    path: &Path,
    limit: Option<usize>,
) -> anyhow::Result<Vec<Map<String, Value>>> {
    if !path.is_file() {
        bail!(
            "could not read source `{}`: no such file; pass a .jsonl or .parquet file, or --dataset-repo-id",
            path.display()
        );
    }
    let name = path.to_string_lossy().to_ascii_lowercase();
    if name.ends_with(".parquet") {
        read_parquet(path, limit)
    } else if name.ends_with(".jsonl") || name.ends_with(".json") {
        read_jsonl(path, limit)
    } else {
        bail!(
            "could not read source `{}`: unknown format; use a .jsonl or .parquet file",
            path.display()
        )
    }
}

fn read_jsonl(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Map<String, Value>>> {
    let file = std::fs::File::open(path)
        .with_context(|| format!("could not open source `{}`", path.display()))?;
    let mut rows = Vec::new();
    for (n, line) in std::io::BufReader::new(file).lines().enumerate() {
        if limit.is_some_and(|l| rows.len() >= l) {
            break;
        }
        let line = line.with_context(|| format!("could not read `{}`", path.display()))?;
        if line.trim().is_empty() {
            continue;
        }
        let value: Value = serde_json::from_str(&line)
            .with_context(|| format!("`{}` line {}: not a JSON object", path.display(), n + 1))?;
        let Value::Object(row) = value else {
            bail!("`{}` line {}: not a JSON object", path.display(), n + 1);
        };
        rows.push(row);
    }
    Ok(rows)
}

/// Reads parquet through DuckDB, one JSON object per row (`to_json` of the row struct).
fn read_parquet(path: &Path, limit: Option<usize>) -> anyhow::Result<Vec<Map<String, Value>>> {
    let conn = sqlrft_duck::duckdb::Connection::open_in_memory()
        .context("could not start DuckDB to read parquet")?;
    let limit = limit.map(|l| format!(" LIMIT {l}")).unwrap_or_default();
    let sql = format!("SELECT to_json(t)::VARCHAR FROM read_parquet(?) AS t{limit}");
    let mut stmt = conn.prepare(&sql)?;
    let texts = stmt
        .query_map([path.to_string_lossy().to_string()], |row| {
            row.get::<_, String>(0)
        })
        .with_context(|| format!("could not read parquet `{}`", path.display()))?;
    let mut rows = Vec::new();
    for text in texts {
        let text = text.with_context(|| format!("could not read parquet `{}`", path.display()))?;
        match serde_json::from_str(&text)? {
            Value::Object(row) => rows.push(row),
            other => bail!("parquet row is not an object: {other}"),
        }
    }
    Ok(rows)
}

/// Maps rows to items. Rows in the `sqlrft build` shape (`messages` + `sql`) are read as
/// question = user message, context = system message.
pub fn to_items(
    rows: Vec<Map<String, Value>>,
    columns: &ColumnMap,
) -> anyhow::Result<Vec<SourceItem>> {
    let Some(first) = rows.first() else {
        return Ok(Vec::new());
    };
    let build_shape = !first.contains_key(&columns.question) && first.contains_key("messages");
    if !build_shape {
        for required in [&columns.question, &columns.context, &columns.sql] {
            if !first.contains_key(required) {
                let mut have: Vec<&String> = first.keys().collect();
                have.sort();
                bail!(
                    "the source has no column `{required}`; its columns are {have:?}. \
                     Map columns with --question-column, --context-column and --sql-column"
                );
            }
        }
    }
    let text = |row: &Map<String, Value>, key: &str| match row.get(key) {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Null) | None => None,
        Some(other) => Some(other.to_string()),
    };
    let message = |row: &Map<String, Value>, role: &str| {
        row.get("messages")?
            .as_array()?
            .iter()
            .find(|m| m["role"] == role)?
            .get("content")?
            .as_str()
            .map(str::to_string)
    };
    Ok(rows
        .into_iter()
        .enumerate()
        .map(|(index, row)| {
            let (question, context, gold_sql) = if build_shape {
                (
                    message(&row, "user").unwrap_or_default(),
                    message(&row, "system").unwrap_or_default(),
                    text(&row, "sql").unwrap_or_default(),
                )
            } else {
                (
                    text(&row, &columns.question).unwrap_or_default(),
                    text(&row, &columns.context).unwrap_or_default(),
                    text(&row, &columns.sql).unwrap_or_default(),
                )
            };
            let explanation = text(&row, &columns.explanation).filter(|e| !e.trim().is_empty());
            let task_type = text(&row, &columns.task_type);
            SourceItem {
                id: item_id(&question, &context, &gold_sql, explanation.as_deref()),
                index,
                question,
                context,
                gold_sql,
                explanation,
                task_type,
                row,
            }
        })
        .collect())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn split_files_match_whole_words() {
        let paths: Vec<String> = [
            "README.md",
            "synthetic_text_to_sql_train.snappy.parquet",
            "synthetic_text_to_sql_test.snappy.parquet",
            "data/train-00001-of-00002.parquet",
            "data/train-00000-of-00002.parquet",
            "data/pretrain.jsonl",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(
            split_files(&paths, "train"),
            vec![
                "data/train-00000-of-00002.parquet",
                "data/train-00001-of-00002.parquet",
                "synthetic_text_to_sql_train.snappy.parquet",
            ]
        );
        assert_eq!(
            split_files(&paths, "test"),
            vec!["synthetic_text_to_sql_test.snappy.parquet"]
        );
    }

    #[test]
    fn a_single_data_file_serves_any_split() {
        let paths = vec!["README.md".to_string(), "rows.jsonl".to_string()];
        assert_eq!(split_files(&paths, "train"), vec!["rows.jsonl"]);
    }

    #[test]
    fn ids_are_stable_and_field_sensitive() {
        let a = item_id("q", "c", "SELECT 1", None);
        assert_eq!(a, item_id("q", "c", "SELECT 1", None));
        assert_eq!(a.len(), 24);
        assert_ne!(a, item_id("q", "c", "SELECT 2", None));
        // Field boundaries matter: moving text between fields changes the id.
        assert_ne!(item_id("ab", "c", "", None), item_id("a", "bc", "", None));
    }

    #[test]
    fn missing_column_names_the_flag() {
        let rows = vec![
            json!({"question": "q", "sql": "s"})
                .as_object()
                .unwrap()
                .clone(),
        ];
        let err = to_items(rows, &ColumnMap::default())
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("sql_prompt") && err.contains("--question-column"),
            "{err}"
        );
    }

    #[test]
    fn build_shaped_rows_use_their_messages() {
        let rows = vec![
            json!({"messages": [{"role": "system", "content": "schema"}, {"role": "user", "content": "how many?"}],
                   "sql": "SELECT 1", "ground_truth": []})
            .as_object()
            .unwrap()
            .clone(),
        ];
        let items = to_items(rows, &ColumnMap::default()).unwrap();
        assert_eq!(items[0].question, "how many?");
        assert_eq!(items[0].context, "schema");
        assert_eq!(items[0].gold_sql, "SELECT 1");
    }
}
