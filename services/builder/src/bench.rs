//! `sqlrft bench build`: ground truth for 1,000 queries on an OpenFlights-sized sandbox, and
//! 1,000 LLM calls against a stub with 200 ms latency, compared with the tutorial's cost model
//! (sequential calls plus `sleep(1)` each — computed, not run).

use std::collections::BTreeMap;
use std::fmt;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use clap::Args;
use serde_json::json;
use sqlrft_core::dataset::Complexity;
use sqlrft_llm::simulated::{LlmStub, StubResponse};
use sqlrft_llm::{LlmClient, LlmConfig, Provider};

use crate::catalog::{SchemaSource, read_schema};
use crate::pipeline::grammar_queries;
use crate::queries::{Acceptor, Mix};
use crate::records::{Origin, QueryItem, TruthItem};
use crate::stage::{FailAfter, LlmRun, open_journal};
use crate::synthetic::{RowPlan, generate};
use crate::{questions, sandbox, truth};

/// The OpenFlights tables as the tutorial's pandas load types them (no declared keys).
pub const OPENFLIGHTS_DDL: &str = include_str!("demo/openflights.sql");

/// `sqlrft bench build` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Queries to compute ground truth for.
    #[arg(long, default_value_t = 1000)]
    pub queries: usize,
    /// LLM calls against the stub.
    #[arg(long, default_value_t = 1000)]
    pub llm_calls: usize,
    /// The stub's latency per call, in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub llm_latency_ms: u64,
    /// LLM requests in flight (the builder's default).
    #[arg(long, default_value_t = 16)]
    pub llm_concurrency: usize,
    /// Scale of the sandbox relative to OpenFlights (1.0: 67,663 routes, 7,698 airports, …).
    #[arg(long, default_value_t = 1.0)]
    pub scale: f64,
    /// Work directory (default: a temporary directory, removed afterwards).
    #[arg(long)]
    pub dir: Option<PathBuf>,
}

impl Default for BenchArgs {
    fn default() -> Self {
        BenchArgs {
            queries: 1000,
            llm_calls: 1000,
            llm_latency_ms: 200,
            llm_concurrency: 16,
            scale: 1.0,
            dir: None,
        }
    }
}

/// Measured figures.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Rows generated per sandbox table.
    pub sandbox_rows: BTreeMap<String, usize>,
    /// Wall time of the sandbox stage.
    pub sandbox_seconds: f64,
    /// Queries whose ground truth was computed.
    pub truth_queries: usize,
    /// Of those, the ones kept (ran twice, same result, within the caps).
    pub truth_kept: usize,
    /// Wall time of the ground-truth stage.
    pub truth_seconds: f64,
    /// Kept queries per complexity class.
    pub truth_per_class: BTreeMap<Complexity, usize>,
    /// LLM calls made against the simulated endpoint.
    pub llm_calls: usize,
    /// Of those, the ones answered.
    pub llm_answered: usize,
    /// Wall time of the LLM calls.
    pub llm_seconds: f64,
    /// The simulated endpoint's latency per call.
    pub llm_latency: Duration,
    /// Requests allowed in flight.
    pub llm_concurrency: usize,
    /// Requests the endpoint saw in flight at once, at most.
    pub llm_max_in_flight: usize,
}

impl BenchReport {
    /// The tutorial's loop: one call at a time, then `time.sleep(1)`.
    pub(crate) fn tutorial_llm_seconds(&self) -> f64 {
        self.llm_calls as f64 * (self.llm_latency.as_secs_f64() + 1.0)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let rows: Vec<String> = self
            .sandbox_rows
            .iter()
            .map(|(t, n)| format!("{t} {n}"))
            .collect();
        writeln!(
            f,
            "sandbox: {} ({:.1} s to generate and write)",
            rows.join(", "),
            self.sandbox_seconds
        )?;
        writeln!(
            f,
            "ground truth: {} queries run twice in {:.2} s ({:.0} queries/s), {} kept; per class {:?}",
            self.truth_queries,
            self.truth_seconds,
            self.truth_queries as f64 / self.truth_seconds.max(1e-9),
            self.truth_kept,
            self.truth_per_class
        )?;
        writeln!(
            f,
            "LLM: {} calls at {} ms latency, concurrency {}: {:.2} s ({} answered, at most {} in flight)",
            self.llm_calls,
            self.llm_latency.as_millis(),
            self.llm_concurrency,
            self.llm_seconds,
            self.llm_answered,
            self.llm_max_in_flight
        )?;
        write!(
            f,
            "tutorial cost model (sequential + sleep(1)): {:.0} s for the same calls — {:.0}x slower",
            self.tutorial_llm_seconds(),
            self.tutorial_llm_seconds() / self.llm_seconds.max(1e-9)
        )
    }
}

/// Runs the benchmark.
pub async fn run_bench(args: &BenchArgs) -> Result<BenchReport> {
    let temp;
    let dir = match &args.dir {
        Some(dir) => {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create `{}`", dir.display()))?;
            dir.clone()
        }
        None => {
            temp = tempfile_dir()?;
            temp.path().to_path_buf()
        }
    };

    // An OpenFlights-sized sandbox.
    let started = Instant::now();
    let mut schema = read_schema(
        &SchemaSource::DdlText {
            name: "openflights".into(),
            text: OPENFLIGHTS_DDL.into(),
        },
        "openflights",
    )?;
    schema.infer_keys();
    let scaled = |n: f64| ((n * args.scale).round() as usize).max(10);
    let plan = RowPlan {
        default_rows: scaled(1000.0),
        per_table: [
            ("airports".to_string(), scaled(7698.0)),
            ("airlines".to_string(), scaled(6162.0)),
            ("routes".to_string(), scaled(67663.0)),
            ("countries".to_string(), scaled(261.0)),
            ("planes".to_string(), scaled(246.0)),
        ]
        .into(),
    };
    let tables = generate(&schema, &plan, 7);
    let sandbox_path = dir.join("bench-sandbox.duckdb");
    sandbox::write_sandbox(&schema, &tables, &sandbox_path)?;
    let profiles = sandbox::profile(&sandbox_path, &schema)?;
    let sandbox_seconds = started.elapsed().as_secs_f64();

    // 1,000 grammar queries, then their ground truth.
    let conn = sqlrft_duck::open_read_only(&sandbox_path).map_err(|e| anyhow::anyhow!("{e}"))?;
    let mut acceptor = Acceptor::new(&conn, args.queries, &Mix::default());
    grammar_queries(&schema, &profiles, &mut acceptor, args.queries, 7);
    let queries = acceptor.accepted;
    drop(conn);
    let options = truth::TruthOptions::default();
    let pool = truth::open_pool(&sandbox_path, &options)?;
    let (mut journal, done) =
        open_journal::<TruthItem>(&dir.join("bench-truth.jsonl"), "bench", |t| {
            t.id().to_string()
        })?;
    let hidden = indicatif::ProgressBar::hidden();
    let started = Instant::now();
    let outcomes = truth::compute(&pool, &queries, &mut journal, done, &options, &hidden).await?;
    let truth_seconds = started.elapsed().as_secs_f64();
    journal.remove()?;
    let (kept, _) = truth::tally(&outcomes);
    let mut truth_per_class = BTreeMap::new();
    for q in &queries {
        *truth_per_class.entry(q.complexity).or_default() += 1;
    }

    // 1,000 LLM calls through the question stage's code path.
    let latency = Duration::from_millis(args.llm_latency_ms);
    let stub = LlmStub::start(move |request| {
        let words = request.user_text().split_whitespace().count();
        StubResponse::text(
            json!({"question": format!("Which rows answer this ({words} words)?")}).to_string(),
        )
        .with_latency(latency)
    })
    .await?;
    let mut config = LlmConfig::new(Provider::Vllm, "stub");
    config.base_url = Some(stub.base_url());
    config.max_concurrency = args.llm_concurrency.max(1);
    let client = LlmClient::with_api_key(config, None).map_err(|e| anyhow::anyhow!("{e}"))?;
    let items: Vec<QueryItem> = (0..args.llm_calls)
        .map(|i| {
            let base = &queries[i % queries.len().max(1)];
            QueryItem {
                id: format!("bench{i}"),
                origin: Origin::Grammar,
                ..base.clone()
            }
        })
        .collect();
    let (mut journal, done) = open_journal(
        &dir.join("bench-questions.jsonl"),
        "bench",
        |q: &crate::records::QuestionItem| q.id.clone(),
    )?;
    let styles = vec!["formal".to_string()];
    let started = Instant::now();
    let (answers, _) = questions::ask_llm(
        LlmRun {
            client: &client,
            schema: &schema,
            fail_after: FailAfter(None),
            progress: &hidden,
        },
        &items,
        &styles,
        1,
        &mut journal,
        done,
    )
    .await?;
    let llm_seconds = started.elapsed().as_secs_f64();
    journal.remove()?;

    Ok(BenchReport {
        sandbox_rows: tables
            .iter()
            .map(|t| (t.name.clone(), t.rows.len()))
            .collect(),
        sandbox_seconds,
        truth_queries: queries.len(),
        truth_kept: kept,
        truth_seconds,
        truth_per_class,
        llm_calls: items.len(),
        llm_answered: answers.len(),
        llm_seconds,
        llm_latency: latency,
        llm_concurrency: args.llm_concurrency,
        llm_max_in_flight: stub.max_in_flight(),
    })
}

fn tempfile_dir() -> Result<TempDir> {
    let path = std::env::temp_dir().join(format!("sqlrft-bench-{}", std::process::id()));
    std::fs::create_dir_all(&path)?;
    Ok(TempDir(path))
}

/// A directory removed when dropped.
struct TempDir(PathBuf);

impl TempDir {
    fn path(&self) -> &std::path::Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}
