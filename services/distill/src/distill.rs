//! `sqlrft distill`: ask a teacher LLM to reason its way to each item's gold SQL, check the
//! answer by execution, and write a resumable, ready-to-train JSONL.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlrft_duck::Limits;
use sqlrft_hub::HubArgs;
use sqlrft_llm::{ChatRequest, LlmArgs, LlmClient, LlmConfig, Usage};

use crate::output::ResumableJsonl;
use crate::prompt::{student_prompt, teacher_messages};
use crate::publish::{PublishDatasetArgs, run_publish_dataset};
use crate::shard::Shard;
use crate::source::{ColumnMap, SourceItem, SourceSpec, load_rows, to_items};
use crate::validation::{Database, DropReason, Gold, Judged, check_source, judge};

/// Fields distill writes; source columns with these names are renamed (`sql` → `gold_sql`,
/// others → `source_<name>`).
const OUTPUT_FIELDS: [&str; 9] = [
    "id",
    "source_index",
    "gold_sql",
    "generation",
    "think",
    "sql",
    "valid",
    "reason",
    "prompt",
];

/// Flags of `sqlrft distill`. The teacher is set with the `--llm-*` flags every LLM-using
/// command shares (over `[llm]` in sqlrft.toml and `SQLRFT_LLM_*`); distill's former spellings
/// (`--model`, `--provider`, `--base-url`, `--batch-size`, `--timeout-secs`, …) still work.
#[derive(Debug, Clone, Args)]
#[command(
    mut_arg("llm_model", |a| a.alias("model")),
    mut_arg("llm_provider", |a| a.alias("provider")),
    mut_arg("llm_base_url", |a| a.alias("base-url")),
    mut_arg("llm_api_key_env", |a| a.alias("api-key-env")),
    mut_arg("llm_concurrency", |a| a.alias("batch-size")),
    mut_arg("llm_retries", |a| a.alias("retries")),
    mut_arg("llm_timeout", |a| a.alias("timeout-secs")),
    mut_arg("llm_temperature", |a| a.alias("temperature")),
    mut_arg("llm_max_tokens", |a| a.alias("max-tokens")),
    mut_arg("llm_seed", |a| a.alias("seed")),
    mut_arg("llm_price_input", |a| a.alias("price-input")),
    mut_arg("llm_price_output", |a| a.alias("price-output")),
)]
pub struct DistillArgs {
    /// The teacher: provider, model, endpoint, concurrency, retries, timeout, sampling (sample k
    /// uses seed + k) [distill's defaults: temperature 0.7, 4096 tokens].
    #[command(flatten)]
    pub llm: LlmArgs,
    /// TOML config file whose [llm] table sets the teacher [default: ./sqlrft.toml if present].
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,

    /// Source dataset on the Hugging Face Hub (gretelai/synthetic_text_to_sql shape).
    #[arg(long, conflicts_with = "input")]
    pub dataset_repo_id: Option<String>,
    /// Split of the Hub dataset (matched against its file names).
    #[arg(long, default_value = "train")]
    pub split: String,
    /// Git revision of the Hub dataset.
    #[arg(long, default_value = "main")]
    pub revision: String,
    /// Local source instead: a .jsonl or .parquet file (Gretel columns, or `sqlrft build` output).
    #[arg(long)]
    pub input: Option<PathBuf>,
    /// Sandbox DuckDB file to execute on, for `sqlrft build` datasets (whose context is a schema).
    #[arg(long)]
    pub sandbox: Option<PathBuf>,
    /// Use the first N source rows (0: all).
    #[arg(long, default_value_t = 100)]
    pub limit: usize,
    /// Column holding the question.
    #[arg(long, default_value = "sql_prompt")]
    pub question_column: String,
    /// Column holding the DDL + INSERTs.
    #[arg(long, default_value = "sql_context")]
    pub context_column: String,
    /// Column holding the gold SQL.
    #[arg(long, default_value = "sql")]
    pub sql_column: String,
    /// Column holding the gold SQL's explanation (optional).
    #[arg(long, default_value = "sql_explanation")]
    pub explanation_column: String,
    /// Column holding the task type (optional; non-retrieval tasks are dropped).
    #[arg(long, default_value = "sql_task_type")]
    pub task_type_column: String,

    /// Teacher samples per item; the best-matching one is kept.
    #[arg(long, default_value_t = 1)]
    pub num_generations: u32,

    /// Execute each answer's SQL on the item's database and compare with the gold result.
    #[arg(long)]
    pub validate: bool,
    /// Keep only answers whose result matches the gold result.
    #[arg(long, requires = "validate")]
    pub remove_no_valid: bool,
    /// Per-query time limit in seconds when validating.
    #[arg(long, default_value_t = 10)]
    pub query_timeout_secs: u64,

    /// Output JSONL (appended to and resumed; shards get `.shard-i-of-n` in the name).
    #[arg(long, short, default_value = "distill.jsonl")]
    pub output: PathBuf,
    /// Process only shard `i/n` of the source (default: from CLOUD_RUN_TASK_INDEX/COUNT or
    /// JOB_COMPLETION_INDEX).
    #[arg(long)]
    pub shard: Option<Shard>,
    /// Number of shards when the index comes from JOB_COMPLETION_INDEX (Kubernetes).
    #[arg(long, env = "SQLRFT_SHARD_COUNT")]
    pub shard_count: Option<usize>,

    /// Publish the output to the Hub when done.
    #[arg(long, requires = "publish_repo_id")]
    pub publish: bool,
    /// Dataset repo to publish to (`owner/name`).
    #[arg(long)]
    pub publish_repo_id: Option<String>,
    /// Create the published repo as private.
    #[arg(long)]
    pub private_repo: bool,
    /// Do not draw a progress bar.
    #[arg(long)]
    pub no_progress: bool,
    #[command(flatten)]
    /// Where to publish the dataset (`--hub-*`, `HF_TOKEN`).
    pub hub: HubArgs,
}

/// What a run did, also written next to the output as `<output>.summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillSummary {
    /// Teacher model.
    pub model: String,
    /// Teacher provider.
    pub provider: String,
    /// Source dataset or file.
    pub source: String,
    /// Shard processed, `i/n`.
    pub shard: Option<String>,
    /// Rows read from the source.
    pub source_rows: usize,
    /// Rows of the source in this shard.
    pub shard_rows: usize,
    /// Rows finished by an earlier run and skipped.
    pub resumed: usize,
    /// Rows in the output file.
    pub kept: usize,
    /// Kept rows whose answer matched the gold result.
    pub valid: usize,
    /// Kept rows whose answer did not match.
    pub invalid: usize,
    /// Rows dropped, by reason code (all runs).
    pub dropped: BTreeMap<String, usize>,
    /// Rows whose teacher calls failed in this run (retried on the next run).
    pub teacher_errors: usize,
    /// Tokens and cost of this run.
    pub usage: Usage,
    /// Output file.
    pub output: PathBuf,
    /// Wall-clock seconds of this run.
    pub elapsed_secs: f64,
}

impl std::fmt::Display for DistillSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "distilled {} with {} ({})",
            self.source, self.model, self.provider
        )?;
        if let Some(shard) = &self.shard {
            writeln!(
                f,
                "  shard {shard}: {} of {} rows",
                self.shard_rows, self.source_rows
            )?;
        }
        writeln!(
            f,
            "  kept {} rows in {} ({} valid, {} not valid, {} not validated; {} from earlier runs)",
            self.kept,
            self.output.display(),
            self.valid,
            self.invalid,
            self.kept - self.valid - self.invalid,
            self.resumed
        )?;
        for (reason, n) in &self.dropped {
            writeln!(f, "  dropped {n:>6}  {reason}")?;
        }
        if self.teacher_errors > 0 {
            writeln!(
                f,
                "  {} rows failed at the teacher and will be retried by rerunning the same command",
                self.teacher_errors
            )?;
        }
        write!(f, "  {} in {:.1} s", self.usage, self.elapsed_secs)
    }
}

/// What happened to one item.
enum Outcome {
    Kept(Map<String, Value>),
    Dropped(DropReason),
    TeacherFailed(String),
}

/// Shared by every in-flight item.
struct Run {
    client: LlmClient,
    database: Database,
    limits: Limits,
    args: DistillArgs,
}

/// A line of `<output>.dropped.jsonl`.
#[derive(Debug, Serialize, Deserialize)]
struct DroppedLine {
    id: String,
    source_index: usize,
    reason: String,
    detail: String,
}

/// `out.jsonl` → `out.<suffix>`.
pub(crate) fn sidecar(output: &Path, suffix: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.{suffix}"))
}

impl DistillArgs {
    /// The teacher's client settings: defaults < `[llm]` < `SQLRFT_LLM_*` (from `env`) < flags,
    /// with distill's own sampling defaults where none of them says.
    pub fn teacher(
        &self,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> anyhow::Result<LlmConfig> {
        let mut config = self.llm.resolve_with_env(self.config.as_deref(), env)?;
        if config.model.trim().is_empty() {
            bail!(
                "no teacher model: pass --llm-model (e.g. meta-llama/Llama-3.1-70B-Instruct), or set SQLRFT_LLM_MODEL or `model` in [llm] of sqlrft.toml"
            );
        }
        if config.max_concurrency == 0 {
            bail!("--llm-concurrency (--batch-size) must be at least 1");
        }
        config.temperature.get_or_insert(0.7);
        config.max_tokens.get_or_insert(4096);
        Ok(config)
    }
}

/// Runs `sqlrft distill`.
pub async fn run_distill(args: DistillArgs) -> anyhow::Result<DistillSummary> {
    let started = Instant::now();
    if args.num_generations == 0 {
        bail!("--num-generations must be at least 1");
    }
    let config = args.teacher(sqlrft_core::config::process_env())?;
    let spec = match (&args.dataset_repo_id, &args.input) {
        (Some(repo_id), None) => SourceSpec::Hub {
            repo_id: repo_id.clone(),
            split: args.split.clone(),
            revision: args.revision.clone(),
        },
        (None, Some(path)) => SourceSpec::File(path.clone()),
        _ => bail!("name a source: --dataset-repo-id owner/name, or --input file.jsonl|.parquet"),
    };
    let source_name = match &spec {
        SourceSpec::Hub { repo_id, split, .. } => format!("{repo_id} ({split})"),
        SourceSpec::File(p) => p.display().to_string(),
    };
    let shard = match args.shard {
        Some(s) => Some(s),
        None => Shard::from_env(|k| std::env::var(k).ok(), args.shard_count)?,
    };
    let output = shard.map_or_else(|| args.output.clone(), |s| s.output_path(&args.output));

    let batch_size = config.max_concurrency;
    let (model, provider) = (config.model.clone(), config.provider);
    let client = LlmClient::new(config).context("could not set up the teacher client")?;

    let hub_settings = args.hub.resolve(args.config.as_deref())?;
    let hub = sqlrft_hub::HubClient::new(hub_settings.config())?;
    let limit = (args.limit > 0).then_some(args.limit);
    let rows = load_rows(&spec, &hub, limit).await?;
    let build_shaped = rows.first().is_some_and(|r| r.contains_key("messages"))
        && !rows
            .first()
            .is_some_and(|r| r.contains_key(&args.question_column));
    let database = match (&args.sandbox, build_shaped) {
        (Some(path), _) => Database::Sandbox(path.clone()),
        (None, true) => bail!(
            "`{source_name}` is a `sqlrft build` dataset: pass --sandbox with the DuckDB file it was built from"
        ),
        (None, false) => Database::Context,
    };
    let columns = ColumnMap {
        question: args.question_column.clone(),
        context: args.context_column.clone(),
        sql: args.sql_column.clone(),
        explanation: args.explanation_column.clone(),
        task_type: args.task_type_column.clone(),
    };
    let source_rows = rows.len();
    let items: Vec<SourceItem> = to_items(rows, &columns)?
        .into_iter()
        .filter(|item| shard.is_none_or(|s| s.owns(item.shard_key())))
        .collect();
    let shard_rows = items.len();

    let mut kept_out = ResumableJsonl::open(&output)?;
    let mut dropped_out = ResumableJsonl::open(&sidecar(&output, "dropped.jsonl"))?;
    let todo: Vec<SourceItem> = items
        .into_iter()
        .filter(|i| !kept_out.contains(&i.id) && !dropped_out.contains(&i.id))
        .collect();
    let resumed = shard_rows - todo.len();
    tracing::info!(
        output = %output.display(), todo = todo.len(), resumed, shard = ?shard.map(|s| s.to_string()),
        "distilling"
    );

    let progress = if args.no_progress {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(todo.len() as u64)
    };
    progress.set_style(
        ProgressStyle::with_template(
            "{spinner} [{elapsed_precise}] {bar:40} {pos}/{len} ({per_sec}, eta {eta}) {msg}",
        )
        .expect("valid template"),
    );
    let run = Arc::new(Run {
        client,
        database,
        limits: Limits {
            timeout: Duration::from_secs(args.query_timeout_secs),
            ..Limits::default()
        },
        args: args.clone(),
    });
    let mut teacher_errors = 0;
    let mut outcomes = futures::stream::iter(todo)
        .map(|item| {
            let run = run.clone();
            async move {
                let outcome = distill_item(&run, &item).await;
                (item, outcome)
            }
        })
        .buffer_unordered(batch_size);
    while let Some((item, outcome)) = outcomes.next().await {
        match outcome {
            Outcome::Kept(record) => kept_out.append(&item.id, &record)?,
            Outcome::Dropped(reason) => {
                tracing::debug!(id = %item.id, %reason, "dropped");
                dropped_out.append(
                    &item.id,
                    &DroppedLine {
                        id: item.id.clone(),
                        source_index: item.index,
                        reason: reason.code.to_string(),
                        detail: reason.detail,
                    },
                )?;
            }
            Outcome::TeacherFailed(error) => {
                teacher_errors += 1;
                tracing::warn!(id = %item.id, %error, "teacher failed; the item will be retried on the next run");
            }
        }
        progress.inc(1);
        progress.set_message(format!("{} kept", kept_out.len()));
    }
    drop(outcomes);
    kept_out.sync()?;
    dropped_out.sync()?;
    progress.finish_and_clear();

    let (kept, valid, invalid) = count_kept(&output)?;
    let mut summary = DistillSummary {
        model: model.clone(),
        provider: provider.to_string(),
        source: source_name,
        shard: shard.map(|s| s.to_string()),
        source_rows,
        shard_rows,
        resumed,
        kept,
        valid,
        invalid,
        dropped: count_dropped(&sidecar(&output, "dropped.jsonl"))?,
        teacher_errors,
        usage: run.client.usage(),
        output: output.clone(),
        elapsed_secs: 0.0,
    };
    summary.elapsed_secs = started.elapsed().as_secs_f64();
    sqlrft_files::write_json(&sidecar(&output, "summary.json"), &summary)?;

    if args.publish {
        let repo_id = args
            .publish_repo_id
            .clone()
            .context("--publish needs --publish-repo-id")?;
        run_publish_dataset(PublishDatasetArgs {
            repo_id,
            private: args.private_repo,
            files: vec![output.clone()],
            path_in_repo: "data".into(),
            teacher_model: Some(model),
            source_dataset: args.dataset_repo_id.clone(),
            license: "apache-2.0".into(),
            message: None,
            out_dir: None,
            hub: hub_settings,
        })
        .await?;
    }
    Ok(summary)
}

/// Checks the item, asks the teacher, judges the answers, and keeps the best one.
async fn distill_item(run: &Run, item: &SourceItem) -> Outcome {
    let checked = {
        let (question, context, sql, task) = (
            item.question.clone(),
            item.context.clone(),
            item.gold_sql.clone(),
            item.task_type.clone(),
        );
        let (database, limits) = (run.database.clone(), run.limits.clone());
        tokio::task::spawn_blocking(move || {
            check_source(
                &question,
                &context,
                &sql,
                task.as_deref(),
                &database,
                &limits,
            )
        })
        .await
    };
    let gold: Gold = match checked {
        Ok(Ok(gold)) => gold,
        Ok(Err(reason)) => return Outcome::Dropped(reason),
        Err(join) => return Outcome::TeacherFailed(format!("validation crashed: {join}")),
    };

    let messages = teacher_messages(item);
    let calls = (0..run.args.num_generations).map(|k| {
        let mut request = ChatRequest::new(messages.clone());
        request.seed = run.client.config().seed.map(|s| s + u64::from(k));
        run.client.chat(request)
    });
    let mut generations = Vec::new();
    let mut last_error = None;
    for result in futures::future::join_all(calls).await {
        match result {
            Ok(response) => generations.extend(response.texts()),
            Err(e) => last_error = Some(e.to_string()),
        }
    }
    if generations.is_empty() {
        return Outcome::TeacherFailed(last_error.unwrap_or_else(|| "no answer".into()));
    }

    let validate = run.args.validate;
    let (context, database, limits) = (
        item.context.clone(),
        run.database.clone(),
        run.limits.clone(),
    );
    let judged = tokio::task::spawn_blocking(move || {
        generations
            .iter()
            .map(|g| judge(g, &context, &database, validate.then_some(&gold), &limits))
            .collect::<Vec<Judged>>()
    })
    .await;
    let Ok(judged) = judged else {
        return Outcome::TeacherFailed("judging crashed".into());
    };
    // The first of the best-ranked samples.
    let best = judged
        .into_iter()
        .reduce(|best, j| if j.rank > best.rank { j } else { best })
        .expect("at least one generation");
    if run.args.remove_no_valid && best.valid != Some(true) {
        return Outcome::Dropped(DropReason {
            code: "no_valid_answer",
            detail: best.reason.unwrap_or_default(),
        });
    }
    Outcome::Kept(output_record(item, best))
}

/// The output line: source columns (renamed where they clash), the answer, and the prompt.
fn output_record(item: &SourceItem, best: Judged) -> Map<String, Value> {
    let mut record = Map::new();
    record.insert("id".into(), json!(item.id));
    record.insert("source_index".into(), json!(item.index));
    for (key, value) in &item.row {
        let key = match key.as_str() {
            "sql" => "gold_sql".to_string(),
            k if OUTPUT_FIELDS.contains(&k) => format!("source_{k}"),
            k => k.to_string(),
        };
        record.insert(key, value.clone());
    }
    record.insert("gold_sql".into(), json!(item.gold_sql));
    record.insert("generation".into(), json!(best.generation));
    record.insert("think".into(), json!(best.think));
    record.insert("sql".into(), json!(best.sql));
    record.insert("valid".into(), json!(best.valid));
    record.insert("reason".into(), json!(best.reason));
    record.insert("prompt".into(), json!(student_prompt(item)));
    record
}

/// Rows, valid rows and invalid rows of an output file (complete lines only).
pub(crate) fn count_kept(path: &Path) -> anyhow::Result<(usize, usize, usize)> {
    let (mut kept, mut valid, mut invalid) = (0, 0, 0);
    for value in read_complete_lines(path)? {
        kept += 1;
        match value.get("valid").and_then(Value::as_bool) {
            Some(true) => valid += 1,
            Some(false) => invalid += 1,
            None => {}
        }
    }
    Ok((kept, valid, invalid))
}

pub(crate) fn count_dropped(path: &Path) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for value in read_complete_lines(path)? {
        let reason = value["reason"].as_str().unwrap_or("unknown").to_string();
        *counts.entry(reason).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Parsed complete lines of a JSONL file (a missing file has none; a shard still being
/// written may end in a torn line, which is left out).
pub(crate) fn read_complete_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    Ok(sqlrft_files::Journal::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sidecars_sit_beside_the_output() {
        assert_eq!(
            sidecar(Path::new("/x/cot.jsonl"), "dropped.jsonl"),
            Path::new("/x/cot.dropped.jsonl")
        );
        assert_eq!(
            sidecar(Path::new("cot.shard-00001-of-00002.jsonl"), "summary.json"),
            Path::new("cot.shard-00001-of-00002.summary.json")
        );
    }

    #[test]
    fn clashing_source_columns_are_renamed() {
        let row = json!({"sql": "SELECT 1", "id": 7, "domain": "x", "sql_prompt": "q"});
        let item = SourceItem {
            id: "00".repeat(12),
            index: 3,
            question: "q".into(),
            context: "c".into(),
            gold_sql: "SELECT 1".into(),
            explanation: None,
            task_type: None,
            row: row.as_object().unwrap().clone(),
        };
        let judged = Judged {
            generation: "g".into(),
            think: "t".into(),
            sql: "SELECT 2".into(),
            format_ok: false,
            valid: Some(false),
            reason: Some("r".into()),
            rank: 0.0,
        };
        let r = output_record(&item, judged);
        assert_eq!(r["sql"], "SELECT 2");
        assert_eq!(r["gold_sql"], "SELECT 1");
        assert_eq!(r["source_id"], 7);
        assert_eq!(r["id"], item.id.as_str());
        assert_eq!(r["domain"], "x");
        assert_eq!(r["prompt"][1]["content"], "q");
    }
}
