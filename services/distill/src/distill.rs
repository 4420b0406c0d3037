//! `sqlrft distill`: ask a teacher LLM to reason its way to each item's gold SQL, check the
//! answer by execution, and write a resumable, ready-to-train JSONL.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::Args;
use futures::StreamExt;
use indicatif::{ProgressBar, ProgressStyle};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use sqlrft_core::config::Section;
use sqlrft_duck::Limits;
use sqlrft_hub::HubArgs;
use sqlrft_llm::{ChatRequest, LlmArgs, LlmClient, LlmConfig};

use crate::output::{DistillSummary, ResumableJsonl, count_dropped, count_kept, sidecar};
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

/// Flags of `sqlrft distill`, over `[distill]` in sqlrft.toml and `SQLRFT_DISTILL_<FLAG>` (the
/// `sqlrft` binary parses them as a [`sqlrft_core::config::Layered`]). The teacher is set with
/// the `--llm-*` flags every LLM-using command shares (over `[llm]` and `SQLRFT_LLM_*`);
/// distill's former spellings (`--model`, `--provider`, `--base-url`, `--batch-size`,
/// `--timeout-secs`, …) still work.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
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
    #[serde(skip)]
    pub llm: LlmArgs,
    /// TOML config file: its [distill], [llm] (the teacher) and [hub] tables set what no flag
    /// does [default: ./sqlrft.toml if present].
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
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
    #[serde(skip)]
    /// Where to publish the dataset (`--hub-*`, `HF_TOKEN`).
    pub hub: HubArgs,
}

impl Section for DistillArgs {
    const SECTION: &'static str = "distill";

    fn keep_unlayered(&mut self, typed: &Self) {
        self.llm.clone_from(&typed.llm);
        self.config.clone_from(&typed.config);
        self.hub.clone_from(&typed.hub);
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(clap::Parser)]
    struct Cli {
        #[command(flatten)]
        distill: sqlrft_core::config::Layered<DistillArgs>,
    }

    /// `[distill]` beside the teacher's `[llm]`, as a user would write them.
    const CONFIG: &str = r#"
[distill]
limit = 7
num_generations = 2
shard = "1/4"

[llm]
model = "teacher"
"#;

    #[test]
    fn distill_reads_its_table_under_the_environment_and_the_typed_flags() {
        use clap::Parser;
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("team.toml");
        std::fs::write(&file, CONFIG).unwrap();
        let config = file.to_str().unwrap();
        let parse = |extra: &[&str]| {
            let line = ["distill", "--input", "in.jsonl", "--config", config];
            Cli::try_parse_from(line.iter().chain(extra))
                .unwrap()
                .distill
        };
        let vars = sqlrft_core::config::env_from;
        let from_file = parse(&[]).resolve_with_env(Some(&file), vars(&[])).unwrap();
        assert_eq!((from_file.limit, from_file.num_generations), (7, 2));
        assert_eq!(from_file.shard, Some(Shard { index: 1, count: 4 }));
        assert_eq!(
            from_file.split, "train",
            "clap's default where nothing says"
        );
        assert_eq!(from_file.config.as_deref(), Some(file.as_path()));
        assert_eq!(
            from_file.teacher(vars(&[])).unwrap().model,
            "teacher",
            "the teacher still reads [llm]"
        );

        let env = vars(&[
            ("SQLRFT_DISTILL_LIMIT", "9"),
            ("SQLRFT_DISTILL_VALIDATE", "true"),
        ]);
        let from_env = parse(&[])
            .resolve_with_env(Some(&file), env.clone())
            .unwrap();
        assert_eq!((from_env.limit, from_env.num_generations), (9, 2));
        assert!(from_env.validate);

        let flags = parse(&["--limit", "100", "--shard", "0/2", "--llm-model", "flag"])
            .resolve_with_env(Some(&file), env)
            .unwrap();
        assert_eq!((flags.limit, flags.num_generations), (100, 2));
        assert_eq!(flags.shard, Some(Shard { index: 0, count: 2 }));
        assert_eq!(flags.llm.model.as_deref(), Some("flag"));
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
