//! `sqlrft bench eval`: 1,000 items × 3 models against an OpenAI-compatible stub with 200 ms
//! latency, scored on a quickstart sandbox. Goals: ≤ 15 s wall at the default concurrency, and
//! scoring ≤ 5% of it.
//!
//! What scoring costs the wall is measured against the floor the stub sets: with `concurrency`
//! requests in flight per model, the answers alone need ⌈items / concurrency⌉ rounds of the
//! stub's latency, so whatever the run takes beyond that (scoring, HTTP, journals, the report's
//! data) is an upper bound on scoring's share. The time with any scoring in progress is printed
//! too: it also counts scoring that overlaps the wait for answers. Every answer is a distinct
//! query, so that time has a floor of its own: the official DuckDB wheel running the same
//! answers' SQL alone, measured in the same run.

use std::collections::HashMap;
use std::fmt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use clap::Args;
use sha2::{Digest, Sha256};
use sqlrft_duck::{OfficialDuckdbArgs, PoolOptions};
use sqlrft_llm::Provider;
use sqlrft_llm::simulated::{LlmStub, StubResponse};

use crate::answer::{EndpointSettings, Sampling};
use crate::dataset::Selection;
use crate::run::{EvalPlan, ScoreWith};
use crate::spec::{ModelSpec, Target};

/// `sqlrft bench eval` flags.
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// Test items (the quickstart's test set, repeated under fresh ids).
    #[arg(long, default_value_t = 1000)]
    pub items: usize,
    /// Models evaluated side by side.
    #[arg(long, default_value_t = 3)]
    pub models: usize,
    /// The stub's answer latency in milliseconds.
    #[arg(long, default_value_t = 200)]
    pub latency_ms: u64,
    /// Requests in flight per model (`sqlrft eval`'s default).
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// Keep the dataset, journals and report here (default: a temporary directory).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// The official DuckDB wheel's row: the answers' SQL alone on the engine.
    #[command(flatten)]
    pub official: OfficialDuckdbArgs,
}

/// What the benchmark measured.
#[derive(Debug, Clone)]
pub struct BenchReport {
    /// Items × models answered and scored.
    pub answers: usize,
    /// Wall time of the evaluation (the quickstart build excluded).
    pub wall: Duration,
    /// The least wall time the stub's latency allows: ⌈items / concurrency⌉ rounds of it.
    pub floor: Duration,
    /// Wall time during which scoring was in progress.
    pub scoring: Duration,
    /// The official DuckDB wheel's wall time for the answers' SQL alone, from as many threads
    /// as the scorer has connections; or why it was skipped.
    pub official: Result<Duration, String>,
    /// Requests the stub served.
    pub requests: usize,
    /// The accuracies the report found, per model, in order.
    pub accuracies: Vec<(String, f64)>,
}

impl BenchReport {
    /// Share of the wall time beyond the stub's floor: what scoring, HTTP and journals add.
    pub fn overhead_share(&self) -> f64 {
        self.wall.saturating_sub(self.floor).as_secs_f64()
            / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }

    /// Share of the wall time with scoring in progress.
    pub fn scoring_share(&self) -> f64 {
        self.scoring.as_secs_f64() / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

impl fmt::Display for BenchReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "{} answers ({} stub requests) in {:.2} s wall (goal ≤ 15 s for 3,000 at 200 ms): {:.0} answers/s",
            self.answers,
            self.requests,
            self.wall.as_secs_f64(),
            self.answers as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
        )?;
        writeln!(
            f,
            "the stub's latency alone takes {:.2} s; scoring, HTTP and journals add {:.3} s = \
             {:.2}% of the wall time (goal for scoring ≤ 5%)",
            self.floor.as_secs_f64(),
            self.wall.saturating_sub(self.floor).as_secs_f64(),
            100.0 * self.overhead_share()
        )?;
        writeln!(
            f,
            "scoring in progress (overlapping the wait for answers) {:.3} s = {:.2}% of the wall time",
            self.scoring.as_secs_f64(),
            100.0 * self.scoring_share()
        )?;
        match &self.official {
            Ok(official) => writeln!(
                f,
                "the official DuckDB wheel runs the same {} answers' SQL alone in {:.3} s = {:.2}% \
                 of the wall time: the floor of the line above on this machine",
                self.answers,
                official.as_secs_f64(),
                100.0 * official.as_secs_f64() / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
            )?,
            Err(why) => writeln!(f, "official DuckDB wheel: skipped, {why}")?,
        }
        for (name, accuracy) in &self.accuracies {
            writeln!(f, "  {name}: {:.2}% correct", 100.0 * accuracy)?;
        }
        Ok(())
    }
}

/// Share of items each bench model answers right (by a hash of the question), so the report
/// has differences to find.
const SKILL: [u64; 4] = [45, 60, 55, 70];

/// Runs the benchmark and prints its report.
pub async fn run_bench(args: &BenchArgs) -> Result<BenchReport> {
    let temp = tempfile::tempdir()?;
    let dir = args
        .out
        .clone()
        .unwrap_or_else(|| temp.path().to_path_buf());
    let report = bench(args, &dir).await?;
    print!("{report}");
    Ok(report)
}

async fn bench(args: &BenchArgs, dir: &Path) -> Result<BenchReport> {
    std::fs::create_dir_all(dir)?;
    let built = sqlrft_builder::run_quickstart(&sqlrft_builder::QuickstartArgs {
        out: dir.join("quickstart"),
        queries: 120,
        seed: 7,
    })
    .await
    .context("the benchmark's quickstart dataset")?;
    let (dataset, gold) = repeat_test_set(&built.test, &dir.join("bench-test.jsonl"), args.items)?;
    let gold = Arc::new(gold);
    let latency = Duration::from_millis(args.latency_ms);
    let stub = LlmStub::start(move |request| {
        let question = request.user_text();
        let model = request.body["model"].as_str().unwrap_or_default();
        let skill = model
            .strip_prefix("bench-")
            .and_then(|i| i.parse::<usize>().ok())
            .map_or(50, |i| SKILL[i % SKILL.len()]);
        // Each model gets its own items right, so the paired comparisons have work to do.
        let mut key = Sha256::new();
        key.update(model.as_bytes());
        key.update(question.as_bytes());
        let hash = u64::from_le_bytes(key.finalize()[..8].try_into().expect("8 bytes"));
        let roll = hash % 100;
        let sql = match gold.get(&question) {
            Some(sql) if roll < skill => sql.clone(),
            // A different wrong query per item, so no two answers share a query either.
            _ => format!("SELECT {hash} AS wrong"),
        };
        StubResponse::text(format!("<think>read the schema</think><sql>{sql}</sql>"))
            .with_latency(latency)
    })
    .await?;
    let models = (0..args.models)
        .map(|i| ModelSpec {
            name: format!("model-{i}"),
            target: Target::Endpoint {
                provider: Provider::Vllm,
                model: format!("bench-{i}"),
                base_url: Some(stub.base_url()),
                api_key_env: None,
            },
            concurrency: None,
            rps: None,
            pricing: None,
        })
        .collect();
    let plan = EvalPlan {
        dataset,
        score_with: ScoreWith::Db(built.sandbox.clone()),
        models,
        out: dir.join("eval"),
        sampling: Sampling {
            samples: 1,
            temperature: 0.0,
            max_tokens: 512,
            seed: 0,
        },
        endpoint: EndpointSettings {
            concurrency: args.concurrency,
            retries: 3,
            timeout: Duration::from_secs(60),
            backoff_base: Duration::from_millis(500),
            token_limit_field: None,
        },
        rps: None,
        selection: Selection::default(),
        fresh: true,
        progress: false,
    };
    let run = crate::run::run(&plan).await?;
    let summary = crate::report::summarize(&run, None)?;
    crate::report::write(&plan.out, &summary)?;
    let queries: Vec<String> = run
        .models
        .iter()
        .flat_map(|m| m.records.values())
        .flat_map(|r| &r.samples)
        .filter_map(|s| s.sql.clone())
        .collect();
    let (python, sandbox) = (args.official.python.clone(), built.sandbox.clone());
    let threads = PoolOptions::default().connections;
    let official = tokio::task::spawn_blocking(move || {
        sqlrft_duck::measure_official(&python, &sandbox, &queries, threads, threads)
    })
    .await?
    .map(|measured| measured.wall);
    let rounds = args.items.div_ceil(args.concurrency.max(1));
    Ok(BenchReport {
        answers: run.models.iter().map(|m| m.records.len()).sum(),
        wall: run.wall,
        floor: latency * rounds as u32,
        scoring: run.scoring_busy,
        official,
        requests: stub.request_count(),
        accuracies: summary
            .models
            .iter()
            .map(|m| (m.name.clone(), m.accuracy.map_or(0.0, |a| a.accuracy)))
            .collect(),
    })
}

/// Writes `n` distinct records made from `test`'s: record `i` asks its question with `(#i)`
/// appended and its gold SQL wrapped as `SELECT * FROM (gold) AS item_i` (same rows, other
/// text), so no two items share a prompt or a query. Returns the file and each question's
/// gold SQL.
fn repeat_test_set(
    test: &Path,
    out: &Path,
    n: usize,
) -> Result<(PathBuf, HashMap<String, String>)> {
    let set = crate::dataset::load(test)?;
    let usable: Vec<_> = set.items.iter().filter(|i| i.gold_sql.is_some()).collect();
    anyhow::ensure!(
        !usable.is_empty(),
        "the quickstart test set has no items with gold SQL"
    );
    let mut lines = String::new();
    let mut gold = HashMap::new();
    for i in 0..n {
        let item = usable[i % usable.len()];
        let gold_sql = item.gold_sql.as_deref().expect("filtered above");
        let ordered = gold_sql.to_ascii_uppercase().contains("ORDER BY");
        let sql = format!("SELECT * FROM ({gold_sql}) AS item_{i}");
        let mut record = item.record.clone();
        record.insert("id".into(), format!("bench-{i}").into());
        record.insert("sql".into(), sql.clone().into());
        // The wrapper keeps the rows; it also keeps their order, which the gold SQL decided.
        record.insert("ordered".into(), ordered.into());
        if let Some(serde_json::Value::Object(truth)) = record.get_mut("ground_truth") {
            truth.insert("sql".into(), sql.clone().into());
        }
        let mut question = String::new();
        if let Some(serde_json::Value::Array(messages)) = record.get_mut("messages") {
            for m in messages.iter_mut().filter(|m| m["role"] == "user") {
                question = format!("{} (#{i})", m["content"].as_str().unwrap_or_default());
                m["content"] = question.clone().into();
            }
        }
        lines.push_str(&serde_json::to_string(&record)?);
        lines.push('\n');
        gold.insert(question, sql);
    }
    std::fs::write(out, lines).with_context(|| format!("could not write `{}`", out.display()))?;
    Ok((out.to_path_buf(), gold))
}
