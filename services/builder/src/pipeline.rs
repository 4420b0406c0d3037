//! The build pipeline: one function per stage, each skipped when the manifest says it already
//! finished from the same inputs, each writing its outputs atomically, and the clap argument
//! groups the `sqlrft build …` subcommands are made of.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::Args;
use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::json;
use sqlrft_core::config::Section;
use sqlrft_core::dataset::Complexity;
use sqlrft_files::{write_json, write_jsonl};
use sqlrft_llm::{LlmClient, LlmConfig};

use crate::catalog::{SchemaSource, read_schema};
use crate::grammar::{Generator, Profiles};
use crate::queries::{Acceptor, Mix};
use crate::records::{
    GroundTruthFormat, Origin, PromptFormat, QueryItem, QuestionItem, TruthItem, record, split,
};
use crate::schema::Schema;
use crate::stage::{
    FailAfter, LlmRun, Manifest, StageRecord, key_of, now, open_journal, read_json, read_jsonl,
};
use crate::synthetic::{RowPlan, generate};
use crate::{report, sandbox, truth};

/// Options every stage takes. Like every group of `sqlrft build` flags, each also reads
/// `[build]` of sqlrft.toml and `SQLRFT_BUILD_<FLAG>` when not typed (the `build` subcommands
/// parse them as [`sqlrft_core::config::Layered`] groups).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct CommonArgs {
    /// Output directory: schema.json, sandbox.duckdb, queries, ground truth, train/test JSONL,
    /// report.md.
    #[arg(long, short, default_value = "data")]
    pub out: PathBuf,
    /// Seed for every random choice (rows, queries, styles, split).
    #[arg(long, default_value_t = 42)]
    pub seed: u64,
    /// Redo the stage even if it already finished from the same inputs.
    #[arg(long)]
    pub force: bool,
    /// Test hook: fail after this many items of an item-by-item stage, as a kill would.
    #[arg(long, hide = true)]
    pub fail_after: Option<usize>,
    /// TOML config file: its [build] table (and [llm] for --llm) sets what no flag does
    /// [default: ./sqlrft.toml if present].
    #[arg(long, value_name = "FILE")]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl CommonArgs {
    /// The defaults, writing into `out`.
    pub fn new(out: impl Into<PathBuf>) -> Self {
        CommonArgs {
            out: out.into(),
            seed: 42,
            force: false,
            fail_after: None,
            config: None,
        }
    }
}

impl Section for CommonArgs {
    const SECTION: &'static str = BUILD_SECTION;

    fn keep_unlayered(&mut self, typed: &Self) {
        self.config.clone_from(&typed.config);
    }
}

/// The table of sqlrft.toml and the environment prefix of every `sqlrft build` flag group.
const BUILD_SECTION: &str = "build";

/// Flag groups with nothing outside `[build]`.
macro_rules! build_section {
    ($($group:ty),*) => {
        $(impl Section for $group {
            const SECTION: &'static str = BUILD_SECTION;
        })*
    };
}

build_section!(
    SchemaOpts,
    SandboxOpts,
    QueryOpts,
    TruthOpts,
    QuestionOpts,
    DatasetOpts
);

/// Where the schema comes from.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SchemaOpts {
    /// A DuckDB file, a DDL file (.sql), a SQLite file (.sqlite) or a postgres:// URL. Only the
    /// catalog is read, never a data row.
    #[arg(long = "schema-from", visible_alias = "from", value_name = "DB|DDL")]
    pub schema_from: String,
    /// Name for the database in the dataset (default: the file name).
    #[arg(long)]
    pub db_name: Option<String>,
    /// Do not guess keys from column names (`airline_id` → `airlines.airline_id`).
    #[arg(long)]
    pub no_infer_keys: bool,
}

/// How big the sandbox is.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct SandboxOpts {
    /// Rows per table.
    #[arg(long, default_value_t = 1000)]
    pub rows: usize,
    /// Rows for one table, overriding --rows (repeatable): `--table-rows routes=20000`.
    #[arg(long = "table-rows", value_name = "TABLE=N", value_parser = parse_table_rows)]
    pub table_rows: Vec<(String, usize)>,
    /// Rows the LLM is asked for per call (with --llm).
    #[arg(long, default_value_t = 10)]
    pub rows_per_call: usize,
}

fn parse_table_rows(text: &str) -> Result<(String, usize), String> {
    let (table, rows) = text
        .split_once('=')
        .ok_or_else(|| format!("`{text}`: expected TABLE=ROWS, e.g. routes=20000"))?;
    let rows = rows
        .trim()
        .parse()
        .map_err(|_| format!("`{text}`: ROWS must be a whole number"))?;
    Ok((table.trim().to_string(), rows))
}

/// How many queries, of which complexity.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct QueryOpts {
    /// Queries to generate (some are dropped at the ground-truth stage).
    #[arg(id = "queries", long = "queries", default_value_t = 1000)]
    #[serde(rename = "queries")]
    pub count: usize,
    /// Share of each Spider hardness class, in percent.
    #[arg(long, default_value_t = Mix::default())]
    pub mix: Mix,
    /// Queries the LLM is asked for per call (with --llm).
    #[arg(long, default_value_t = 30)]
    pub queries_per_call: usize,
}

/// How ground truth is computed.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct TruthOpts {
    /// Seconds before a query is cancelled and dropped.
    #[arg(long, default_value_t = 10.0)]
    pub query_timeout: f64,
    /// Results with more rows are dropped.
    #[arg(long, default_value_t = 1000)]
    pub max_result_rows: usize,
    /// Queries running at once (default: one per CPU core).
    #[arg(long)]
    pub query_concurrency: Option<usize>,
}

/// Question styles (with --llm).
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct QuestionOpts {
    /// Styles the LLM writes questions in, one chosen per question.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "formal,colloquial,imperative,concise,analyst,curious"
    )]
    pub styles: Vec<String>,
}

/// How the dataset is written.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
pub struct DatasetOpts {
    /// Fraction of each complexity class held out for test.
    #[arg(long, default_value_t = 0.2)]
    pub test_fraction: f64,
    /// `typed`: {columns, types, rows_json, ordered, sql}; `tutorial`: a list of row objects.
    #[arg(long, value_enum, default_value_t = GroundTruthFormat::Typed)]
    pub ground_truth_format: GroundTruthFormat,
    /// Prompt variants to write: `plain` (train.jsonl) and/or `reasoning`
    /// (<think>/<sql>, train.reasoning.jsonl).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "plain")]
    pub format: Vec<PromptFormat>,
}

/// Stages an LLM can do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum LlmStage {
    /// Synthetic rows.
    #[serde(alias = "sandbox")]
    Sandbox,
    /// The query set.
    #[serde(alias = "queries")]
    Queries,
    /// Natural-language questions.
    #[serde(alias = "questions")]
    Questions,
}

/// The OpenAI-compatible endpoint for `--llm` (OpenAI, vLLM, Groq, Hugging Face, Fireworks):
/// the `--llm-*` flags every LLM-using command shares, over `[llm]` in sqlrft.toml and
/// `SQLRFT_LLM_*`.
#[derive(Debug, Clone, Args, Serialize, Deserialize)]
// Its own group id: it flattens `sqlrft_llm::LlmArgs`, whose group is named `LlmArgs` too.
#[group(id = "BuildLlmArgs")]
pub struct LlmArgs {
    /// Use an LLM (the default is offline: seeded generator, grammar, templates).
    #[arg(long)]
    pub llm: bool,
    /// With `build all --llm`: the stages that use it.
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "sandbox,queries,questions"
    )]
    pub llm_stages: Vec<LlmStage>,
    /// The client: provider, model, endpoint, concurrency, retries, timeout (`[llm]`).
    #[command(flatten)]
    #[serde(skip)]
    pub client: sqlrft_llm::LlmArgs,
    /// The config file whose [llm] table sets the client: `--config` of [`CommonArgs`].
    #[arg(skip)]
    #[serde(skip)]
    pub config: Option<PathBuf>,
}

impl Section for LlmArgs {
    const SECTION: &'static str = BUILD_SECTION;

    fn keep_unlayered(&mut self, typed: &Self) {
        self.client.clone_from(&typed.client);
        self.config.clone_from(&typed.config);
    }
}

impl Default for LlmArgs {
    fn default() -> Self {
        LlmArgs {
            llm: false,
            llm_stages: vec![LlmStage::Sandbox, LlmStage::Queries, LlmStage::Questions],
            client: sqlrft_llm::LlmArgs::default(),
            config: None,
        }
    }
}

impl LlmArgs {
    /// The client for `stage`, or `None` when the stage runs offline.
    pub fn client_for(&self, stage: LlmStage) -> Result<Option<LlmClient>> {
        let Some(config) = self.config_for(stage)? else {
            return Ok(None);
        };
        let client = LlmClient::new(config)
            .map_err(|e| anyhow::anyhow!("could not set up the LLM client: {e}"))?;
        Ok(Some(client))
    }

    /// The client settings for `stage` (defaults < `[llm]` < `SQLRFT_LLM_*` < flags), or `None`
    /// when the stage runs offline.
    pub fn config_for(&self, stage: LlmStage) -> Result<Option<LlmConfig>> {
        self.config_with_env(stage, sqlrft_core::config::process_env())
    }

    pub(crate) fn config_with_env(
        &self,
        stage: LlmStage,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Option<LlmConfig>> {
        if !self.llm || !self.llm_stages.contains(&stage) {
            return Ok(None);
        }
        let config = self.client.resolve_with_env(self.config.as_deref(), env)?;
        if config.model.trim().is_empty() {
            bail!(
                "--llm needs a model: pass --llm-model (or set SQLRFT_LLM_MODEL, or `model` in [llm] of sqlrft.toml)"
            );
        }
        Ok(Some(config))
    }

    /// What identifies the model for stage keys (changing the model redoes the stage).
    fn identity(&self, stage: LlmStage) -> Result<serde_json::Value> {
        Ok(match self.config_for(stage)? {
            None => json!(null),
            Some(config) => json!({
                "provider": config.provider.name(),
                "base_url": config.base_url,
                "model": config.model,
            }),
        })
    }
}

/// What a stage did.
#[derive(Debug, Clone)]
pub struct StageOutcome {
    /// The stage's name (`schema`, `sandbox`, …).
    pub stage: &'static str,
    /// Whether it was already done from the same inputs.
    pub skipped: bool,
    /// What it counted (also in `manifest.json`).
    pub stats: serde_json::Value,
    /// Wall time (zero when skipped).
    pub elapsed: Duration,
}

/// Files of an output directory.
pub(crate) struct Layout {
    pub(crate) out: PathBuf,
}

impl Layout {
    pub(crate) fn new(out: &Path) -> Self {
        Layout {
            out: out.to_path_buf(),
        }
    }
    pub(crate) fn schema(&self) -> PathBuf {
        self.out.join("schema.json")
    }
    pub(crate) fn sandbox(&self) -> PathBuf {
        self.out.join("sandbox.duckdb")
    }
    pub(crate) fn profiles(&self) -> PathBuf {
        self.out.join("profiles.json")
    }
    pub(crate) fn queries(&self) -> PathBuf {
        self.out.join("queries.jsonl")
    }
    pub(crate) fn truth(&self) -> PathBuf {
        self.out.join("truth.jsonl")
    }
    pub(crate) fn questions(&self) -> PathBuf {
        self.out.join("questions.jsonl")
    }
    pub(crate) fn report(&self) -> PathBuf {
        self.out.join("report.md")
    }
    pub(crate) fn progress(&self, stage: &str) -> PathBuf {
        self.out.join("progress").join(format!("{stage}.jsonl"))
    }
}

fn upstream(out: &Path, stage: &str, needed_by: &str) -> Result<StageRecord> {
    Manifest::load(out)?.stages.get(stage).cloned().with_context(|| {
        format!(
            "`{}` has no finished {stage} stage, which {needed_by} needs; run `sqlrft build {stage} --out {}` first (or `sqlrft build all`)",
            out.display(),
            out.display()
        )
    })
}

fn skip_if_done(
    common: &CommonArgs,
    stage: &'static str,
    key: &str,
) -> Result<Option<StageOutcome>> {
    if common.force {
        return Ok(None);
    }
    let manifest = Manifest::load(&common.out)?;
    Ok(manifest.finished(&common.out, stage, key).map(|r| {
        tracing::info!(
            stage,
            "already done with the same inputs; skipping (use --force to redo)"
        );
        StageOutcome {
            stage,
            skipped: true,
            stats: r.stats.clone(),
            elapsed: Duration::ZERO,
        }
    }))
}

fn finish(
    common: &CommonArgs,
    stage: &'static str,
    key: String,
    outputs: &[&str],
    stats: serde_json::Value,
    started: Instant,
) -> Result<StageOutcome> {
    Manifest::record(
        &common.out,
        stage,
        StageRecord {
            key,
            outputs: outputs.iter().map(|s| s.to_string()).collect(),
            stats: stats.clone(),
            finished_at: now(),
        },
    )?;
    report::write(&common.out)?;
    Ok(StageOutcome {
        stage,
        skipped: false,
        stats,
        elapsed: started.elapsed(),
    })
}

fn progress_bar(label: &str) -> indicatif::ProgressBar {
    let bar = indicatif::ProgressBar::new(0);
    bar.set_style(
        indicatif::ProgressStyle::with_template(
            "{prefix:>10} [{bar:30}] {pos}/{len} {elapsed_precise} eta {eta}",
        )
        .expect("template")
        .progress_chars("=> "),
    );
    bar.set_prefix(label.to_string());
    bar
}

fn file_identity(path: &Path) -> serde_json::Value {
    match std::fs::metadata(path) {
        Ok(m) => json!({
            "len": m.len(),
            "modified": m.modified().ok().and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok()).map(|d| d.as_secs()),
        }),
        Err(_) => json!(null),
    }
}

// ---- stages --------------------------------------------------------------------------------

/// Stage 1: schema.json from the source's catalog.
pub fn schema_stage(common: &CommonArgs, opts: &SchemaOpts) -> Result<StageOutcome> {
    schema_stage_from(
        common,
        &SchemaSource::detect(&opts.schema_from),
        opts.db_name.as_deref(),
        !opts.no_infer_keys,
    )
}

pub(crate) fn schema_stage_from(
    common: &CommonArgs,
    source: &SchemaSource,
    name: Option<&str>,
    infer: bool,
) -> Result<StageOutcome> {
    const STAGE: &str = "schema";
    let identity = match source {
        SchemaSource::Ddl(p) => std::fs::read_to_string(p)
            .map(|text| json!(key_of(&text)))
            .unwrap_or(json!(null)),
        SchemaSource::DuckDb(p) | SchemaSource::Sqlite(p) => file_identity(p),
        SchemaSource::DdlText { text, .. } => json!(key_of(text)),
        SchemaSource::Postgres(_) => json!(now()),
    };
    let key = key_of(&json!([STAGE, source.describe(), identity, name, infer]));
    if let Some(done) = skip_if_done(common, STAGE, &key)? {
        return Ok(done);
    }
    let started = Instant::now();
    std::fs::create_dir_all(&common.out).with_context(|| {
        format!(
            "could not create output directory `{}`",
            common.out.display()
        )
    })?;
    let name = name
        .map(str::to_string)
        .unwrap_or_else(|| source.default_name());
    let mut schema = read_schema(source, &name)?;
    if infer {
        schema.infer_keys();
    }
    schema
        .validate()
        .map_err(|e| anyhow::anyhow!("the schema of {} is unusable: {e}", source.describe()))?;
    let layout = Layout::new(&common.out);
    write_json(&layout.schema(), &schema)?;
    let count_keys = |declared: bool| {
        schema
            .tables
            .iter()
            .flat_map(|t| &t.foreign_keys)
            .filter(|fk| (fk.origin == crate::schema::KeyOrigin::Declared) == declared)
            .count()
    };
    let stats = json!({
        "source": schema.source,
        "tables": schema.tables.len(),
        "columns": schema.tables.iter().map(|t| t.columns.len()).sum::<usize>(),
        "foreign_keys_declared": count_keys(true),
        "foreign_keys_inferred": count_keys(false),
        "primary_keys_inferred": schema.tables.iter().filter(|t| t.primary_key_origin == Some(crate::schema::KeyOrigin::Inferred)).count(),
    });
    finish(common, STAGE, key, &["schema.json"], stats, started)
}

/// Stage 2: sandbox.duckdb with generated rows.
pub(crate) async fn sandbox_stage(
    common: &CommonArgs,
    opts: &SandboxOpts,
    llm: &LlmArgs,
) -> Result<StageOutcome> {
    const STAGE: &str = "sandbox";
    let schema_record = upstream(&common.out, "schema", "the sandbox")?;
    let key = key_of(&json!([
        STAGE,
        schema_record.key,
        opts.rows,
        opts.table_rows,
        common.seed,
        llm.identity(LlmStage::Sandbox)?,
        opts.rows_per_call
    ]));
    if let Some(done) = skip_if_done(common, STAGE, &key)? {
        return Ok(done);
    }
    let started = Instant::now();
    let layout = Layout::new(&common.out);
    let schema: Schema = read_json(&layout.schema())?;
    let plan = RowPlan {
        default_rows: opts.rows,
        per_table: opts.table_rows.iter().cloned().collect(),
    };
    for table in plan.per_table.keys() {
        if schema.table(table).is_none() {
            bail!(
                "--table-rows names `{table}`, which is not a table of the schema ({})",
                table_names(&schema)
            );
        }
    }
    let mut tables = generate(&schema, &plan, common.seed);
    let mut stats = json!({"generator": "seeded"});
    if let Some(client) = llm.client_for(LlmStage::Sandbox)? {
        stats["generator"] = json!("llm");
        let journal_path = layout.progress(STAGE);
        let llm_stats = crate::llm_rows::fill(
            LlmRun {
                client: &client,
                schema: &schema,
                fail_after: FailAfter(common.fail_after),
                progress: &progress_bar("sandbox"),
            },
            &mut tables,
            opts.rows_per_call.max(1),
            common.seed,
            &journal_path,
            &key,
        )
        .await?;
        stats["llm"] = serde_json::to_value(&llm_stats)?;
        stats["llm_usage"] = serde_json::to_value(client.usage())?;
    }
    sandbox::write_sandbox(&schema, &tables, &layout.sandbox())?;
    let profiles = sandbox::profile(&layout.sandbox(), &schema)?;
    write_json(&layout.profiles(), &profiles)?;
    let _ = std::fs::remove_file(layout.progress(STAGE));
    stats["rows"] = json!(profiles.row_counts);
    finish(
        common,
        STAGE,
        key,
        &["sandbox.duckdb", "profiles.json"],
        stats,
        started,
    )
}

fn table_names(schema: &Schema) -> String {
    schema
        .tables
        .iter()
        .map(|t| t.name.as_str())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Stage 3: queries.jsonl.
pub(crate) async fn queries_stage(
    common: &CommonArgs,
    opts: &QueryOpts,
    llm: &LlmArgs,
) -> Result<StageOutcome> {
    const STAGE: &str = "queries";
    let sandbox_record = upstream(&common.out, "sandbox", "query generation")?;
    let key = key_of(&json!([
        STAGE,
        sandbox_record.key,
        opts.count,
        opts.mix.to_string(),
        common.seed,
        llm.identity(LlmStage::Queries)?,
        opts.queries_per_call
    ]));
    if let Some(done) = skip_if_done(common, STAGE, &key)? {
        return Ok(done);
    }
    let started = Instant::now();
    let layout = Layout::new(&common.out);
    let schema: Schema = read_json(&layout.schema())?;
    let profiles: Profiles = read_json(&layout.profiles())?;
    let conn =
        sqlrft_duck::open_read_only(&layout.sandbox()).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut acceptor = Acceptor::new(&conn, opts.count, &opts.mix);
    let mut extra = json!({});
    if let Some(client) = llm.client_for(LlmStage::Queries)? {
        let llm_stats = crate::llm_queries::generate(
            LlmRun {
                client: &client,
                schema: &schema,
                fail_after: FailAfter(common.fail_after),
                progress: &progress_bar("queries"),
            },
            &mut acceptor,
            opts.count,
            opts.queries_per_call.max(1),
            &layout.progress(STAGE),
            &key,
        )
        .await?;
        extra["llm"] = serde_json::to_value(&llm_stats)?;
        extra["llm_usage"] = serde_json::to_value(client.usage())?;
    } else {
        grammar_queries(&schema, &profiles, &mut acceptor, opts.count, common.seed);
    }
    if acceptor.accepted.is_empty() {
        bail!(
            "no usable query was generated for {}; {}",
            schema.name,
            acceptor
                .stats
                .invalid_examples
                .first()
                .map(|(sql, e)| format!("e.g. `{sql}`: {e}"))
                .unwrap_or_else(|| "does the sandbox have rows?".into())
        );
    }
    write_jsonl(&layout.queries(), &acceptor.accepted)?;
    let _ = std::fs::remove_file(layout.progress(STAGE));
    let mut stats = serde_json::to_value(&acceptor.stats)?;
    if let (Some(stats), Some(extra)) = (stats.as_object_mut(), extra.as_object()) {
        stats.extend(extra.clone());
    }
    finish(common, STAGE, key, &["queries.jsonl"], stats, started)
}

/// Fills `acceptor` from the grammar: first within quotas, then (if some class cannot be
/// filled from this schema) topping up with any class.
pub(crate) fn grammar_queries(
    schema: &Schema,
    profiles: &Profiles,
    acceptor: &mut Acceptor,
    count: usize,
    seed: u64,
) {
    let mut generator = Generator::new(
        schema,
        profiles,
        ChaCha8Rng::seed_from_u64(seed ^ 0x9e37_79b9),
    );
    let max_attempts = count.max(10) * 60;
    let mut attempts = 0;
    while !acceptor.quotas_met() && attempts < max_attempts {
        attempts += 1;
        if let Some(c) = generator.next_candidate() {
            acceptor.offer(&c.sql, Origin::Grammar, Some(c.family), Some(&c.question));
        }
    }
    acceptor.overflow = true;
    attempts = 0;
    while !acceptor.full() && attempts < max_attempts / 2 {
        attempts += 1;
        if let Some(c) = generator.next_candidate() {
            acceptor.offer(&c.sql, Origin::Grammar, Some(c.family), Some(&c.question));
        }
    }
}

/// Stage 4: truth.jsonl (kept and dropped queries, with reasons).
pub(crate) async fn truth_stage(common: &CommonArgs, opts: &TruthOpts) -> Result<StageOutcome> {
    const STAGE: &str = "truth";
    let queries_record = upstream(&common.out, "queries", "ground truth")?;
    let key = key_of(&json!([
        STAGE,
        queries_record.key,
        opts.query_timeout,
        opts.max_result_rows
    ]));
    if let Some(done) = skip_if_done(common, STAGE, &key)? {
        return Ok(done);
    }
    let started = Instant::now();
    let layout = Layout::new(&common.out);
    let queries: Vec<QueryItem> = read_jsonl(&layout.queries())?;
    let options = truth::TruthOptions {
        timeout: Duration::from_secs_f64(opts.query_timeout.max(0.01)),
        max_rows: opts.max_result_rows,
        concurrency: opts
            .query_concurrency
            .unwrap_or_else(|| truth::TruthOptions::default().concurrency),
        fail_after: FailAfter(common.fail_after),
    };
    let pool = truth::open_pool(&layout.sandbox(), &options)?;
    let (mut journal, done) =
        open_journal::<TruthItem>(&layout.progress(STAGE), &key, |t| t.id().to_string())?;
    let outcomes = truth::compute(
        &pool,
        &queries,
        &mut journal,
        done,
        &options,
        &progress_bar("truth"),
    )
    .await?;
    write_jsonl(&layout.truth(), &outcomes)?;
    journal.remove()?;
    let (kept, dropped) = truth::tally(&outcomes);
    let by_id: HashMap<&str, &QueryItem> = queries.iter().map(|q| (q.id.as_str(), q)).collect();
    let mut kept_per_class: BTreeMap<Complexity, usize> = BTreeMap::new();
    for outcome in &outcomes {
        if let TruthItem::Kept { id, .. } = outcome
            && let Some(q) = by_id.get(id.as_str())
        {
            *kept_per_class.entry(q.complexity).or_default() += 1;
        }
    }
    let examples: BTreeMap<String, String> = outcomes
        .iter()
        .filter_map(|o| match o {
            TruthItem::Dropped { reason, detail, id } => {
                Some((reason.name().to_string(), format!("{id}: {detail}")))
            }
            _ => None,
        })
        .collect();
    let stats = json!({
        "queries": queries.len(),
        "kept": kept,
        "dropped": dropped.iter().map(|(r, n)| (r.name().to_string(), *n)).collect::<BTreeMap<_, _>>(),
        "kept_per_class": kept_per_class,
        "drop_examples": examples,
        "seconds": started.elapsed().as_secs_f64(),
    });
    if kept == 0 {
        bail!(
            "every query was dropped at the ground-truth stage ({}); see {}",
            json!(stats["dropped"]),
            layout.truth().display()
        );
    }
    finish(common, STAGE, key, &["truth.jsonl"], stats, started)
}

/// Stage 5: questions.jsonl, one per kept query.
pub(crate) async fn questions_stage(
    common: &CommonArgs,
    opts: &QuestionOpts,
    llm: &LlmArgs,
) -> Result<StageOutcome> {
    const STAGE: &str = "questions";
    let truth_record = upstream(&common.out, "truth", "question writing")?;
    let key = key_of(&json!([
        STAGE,
        truth_record.key,
        opts.styles,
        common.seed,
        llm.identity(LlmStage::Questions)?
    ]));
    if let Some(done) = skip_if_done(common, STAGE, &key)? {
        return Ok(done);
    }
    let started = Instant::now();
    let layout = Layout::new(&common.out);
    let schema: Schema = read_json(&layout.schema())?;
    let kept = kept_queries(&layout)?;
    let mut stats = json!({});
    let questions: Vec<QuestionItem> = match llm.client_for(LlmStage::Questions)? {
        Some(client) => {
            let (mut journal, done) =
                open_journal::<QuestionItem>(&layout.progress(STAGE), &key, |q| q.id.clone())?;
            let (answers, llm_stats) = crate::questions::ask_llm(
                LlmRun {
                    client: &client,
                    schema: &schema,
                    fail_after: FailAfter(common.fail_after),
                    progress: &progress_bar("questions"),
                },
                &kept,
                &opts.styles,
                common.seed,
                &mut journal,
                done,
            )
            .await?;
            if answers.is_empty() && !kept.is_empty() {
                bail!(
                    "the LLM answered none of {} question requests: {}",
                    kept.len(),
                    llm_stats.first_error.clone().unwrap_or_default()
                );
            }
            stats["llm"] = serde_json::to_value(&llm_stats)?;
            stats["llm_usage"] = serde_json::to_value(client.usage())?;
            journal.remove()?;
            // A failed LLM call falls back to the template question where there is one.
            kept.iter()
                .filter_map(|q| {
                    answers
                        .get(&q.id)
                        .cloned()
                        .or_else(|| crate::questions::template_question(q))
                })
                .collect()
        }
        None => kept
            .iter()
            .filter_map(crate::questions::template_question)
            .collect(),
    };
    let without = kept.len() - questions.len();
    let mut styles: BTreeMap<String, usize> = BTreeMap::new();
    for q in &questions {
        *styles.entry(q.style.clone()).or_default() += 1;
    }
    stats["questions"] = json!(questions.len());
    stats["without_question"] = json!(without);
    stats["styles"] = json!(styles);
    if without > 0 {
        stats["hint"] = json!(
            "queries without a template question (LLM-generated queries) need `--llm` at the questions stage"
        );
    }
    write_jsonl(&layout.questions(), &questions)?;
    finish(common, STAGE, key, &["questions.jsonl"], stats, started)
}

fn kept_queries(layout: &Layout) -> Result<Vec<QueryItem>> {
    let truths: Vec<TruthItem> = read_jsonl(&layout.truth())?;
    let kept: std::collections::HashSet<String> = truths
        .iter()
        .filter(|t| matches!(t, TruthItem::Kept { .. }))
        .map(|t| t.id().to_string())
        .collect();
    Ok(read_jsonl::<QueryItem>(&layout.queries())?
        .into_iter()
        .filter(|q| kept.contains(&q.id))
        .collect())
}

/// Stage 6: the seeded, stratified train/test split as RFT JSONL.
pub(crate) fn dataset_stage(common: &CommonArgs, opts: &DatasetOpts) -> Result<StageOutcome> {
    const STAGE: &str = "dataset";
    let questions_record = upstream(&common.out, "questions", "the dataset")?;
    if !(0.0..1.0).contains(&opts.test_fraction) {
        bail!(
            "--test-fraction must be at least 0 and below 1, not {}",
            opts.test_fraction
        );
    }
    let mut formats = opts.format.clone();
    formats.sort();
    formats.dedup();
    if formats.is_empty() {
        formats.push(PromptFormat::Plain);
    }
    let key = key_of(&json!([
        STAGE,
        questions_record.key,
        opts.test_fraction,
        common.seed,
        opts.ground_truth_format,
        formats
    ]));
    if let Some(done) = skip_if_done(common, STAGE, &key)? {
        return Ok(done);
    }
    let started = Instant::now();
    let layout = Layout::new(&common.out);
    let schema: Schema = read_json(&layout.schema())?;
    let queries: HashMap<String, QueryItem> = read_jsonl::<QueryItem>(&layout.queries())?
        .into_iter()
        .map(|q| (q.id.clone(), q))
        .collect();
    let truths: HashMap<String, sqlrft_core::dataset::TypedGroundTruth> =
        read_jsonl::<TruthItem>(&layout.truth())?
            .into_iter()
            .filter_map(|t| match t {
                TruthItem::Kept { id, ground_truth } => Some((id, ground_truth)),
                TruthItem::Dropped { .. } => None,
            })
            .collect();
    let questions: Vec<QuestionItem> = read_jsonl(&layout.questions())?;
    let usable: Vec<(
        &QuestionItem,
        &QueryItem,
        &sqlrft_core::dataset::TypedGroundTruth,
    )> = questions
        .iter()
        .filter_map(|q| Some((q, queries.get(&q.id)?, truths.get(&q.id)?)))
        .collect();
    let (train_ids, test_ids) = split(
        usable
            .iter()
            .map(|(q, query, _)| (q.id.clone(), query.complexity))
            .collect(),
        opts.test_fraction,
        common.seed,
    );
    let by_id: HashMap<
        &str,
        &(
            &QuestionItem,
            &QueryItem,
            &sqlrft_core::dataset::TypedGroundTruth,
        ),
    > = usable.iter().map(|u| (u.0.id.as_str(), u)).collect();
    let mut outputs = Vec::new();
    for format in &formats {
        let (train_name, test_name) = format.file_names();
        for (name, ids) in [(train_name, &train_ids), (test_name, &test_ids)] {
            let records = ids.iter().filter_map(|id| by_id.get(id.as_str())).map(
                |(question, query, truth)| {
                    record(
                        &schema,
                        query,
                        truth,
                        &question.question,
                        opts.ground_truth_format,
                        *format,
                    )
                },
            );
            write_jsonl(&common.out.join(name), records)?;
            outputs.push(name);
        }
    }
    let per_class = |ids: &[String]| {
        let mut counts: BTreeMap<Complexity, usize> = BTreeMap::new();
        for id in ids {
            if let Some(u) = by_id.get(id.as_str()) {
                *counts.entry(u.1.complexity).or_default() += 1;
            }
        }
        counts
    };
    let mut tags: BTreeMap<String, usize> = BTreeMap::new();
    for u in &usable {
        for t in &u.1.tags {
            *tags.entry(t.name().to_string()).or_default() += 1;
        }
    }
    let stats = json!({
        "train": train_ids.len(),
        "test": test_ids.len(),
        "train_per_class": per_class(&train_ids),
        "test_per_class": per_class(&test_ids),
        "tags": tags,
        "files": outputs,
        "ground_truth_format": opts.ground_truth_format,
    });
    finish(common, STAGE, key, &outputs, stats, started)
}
