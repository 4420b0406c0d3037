//! `sqlrft bench reward`: evaluations per second for the tutorial's test-set shape (one
//! completion, one ground truth) embedded, over HTTP, through MCP, and in batches of 8, with the
//! tutorial's own `evaluate` function (run by Python against the same MCP server) in the same run.

use std::ops::Range;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use futures::future::BoxFuture;
use serde::de::IgnoredAny;
use serde_json::{Map, Value, json};
use sqlrft_core::ResultSet;
use sqlrft_core::compare::{CompareOptions, compare};
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_core::score::ScoreOptions;
use sqlrft_core::types::DuckType;
use sqlrft_duck::{BENCH_ROUNDS, round_share};
use sqlrft_load::Endpoint;
use sqlrft_reward::RewardEngine;

use crate::{RewardConfig, build_engine, start_with_engine};

/// The seed text holding the tutorial, from the repository root.
const TUTORIAL_SEED: &str = "../shared/seeds/000_4c080a18a0b6b01b.txt";

/// Measure the reward service on an OpenFlights database (../shared/acceptance/make_openflights_db.py).
#[derive(Debug, Clone, Args)]
pub struct BenchArgs {
    /// DuckDB file to evaluate against (the OpenFlights database for the built-in cases).
    #[arg(long, value_name = "FILE")]
    pub db: PathBuf,
    /// MCP endpoint serving the same database: adds the via-MCP measurement and is what the
    /// tutorial's evaluator calls.
    #[arg(long, value_name = "URL")]
    pub mcp_url: Option<String>,
    /// Python (with `requests`) to run the tutorial's evaluate function against --mcp-url.
    #[arg(long, value_name = "PYTHON", requires = "mcp_url")]
    pub peer_python: Option<PathBuf>,
    /// The seed text holding the tutorial (section 12 is exec'd, as the acceptance script does).
    #[arg(
        long,
        value_name = "FILE",
        default_value = TUTORIAL_SEED
    )]
    pub seed: PathBuf,
    /// JSON list of {"gold": SQL, "candidate": SQL} for another database.
    #[arg(long, value_name = "FILE")]
    pub cases: Option<PathBuf>,
    /// Evaluations per measurement.
    #[arg(long, default_value_t = 4000)]
    pub evaluations: usize,
    /// Evaluations for the tutorial's evaluator (slower, so fewer).
    #[arg(long, default_value_t = 300)]
    pub peer_evaluations: usize,
    /// Concurrent clients (the tutorial's evaluator gets as many Python threads).
    #[arg(long, default_value_t = 16)]
    pub concurrency: usize,
    /// The official DuckDB wheel's rows: the candidates' SQL alone on the engine, its ceiling.
    #[command(flatten)]
    pub official: sqlrft_duck::OfficialDuckdbArgs,
}

/// The built-in cases fit the OpenFlights database (the tutorial's acceptance cases).
const CASES: &[(&str, &str)] = &[
    (
        "SELECT COUNT(*) FROM airlines",
        "SELECT COUNT(*) AS n FROM airlines",
    ),
    (
        "SELECT country, COUNT(*) AS c FROM airlines GROUP BY country ORDER BY c DESC, country LIMIT 5",
        "SELECT country, COUNT(*) FROM airlines GROUP BY 1 ORDER BY 2 DESC, 1 LIMIT 5",
    ),
    (
        "SELECT name FROM airports WHERE city = 'Goroka'",
        "SELECT name FROM airports WHERE city = 'Madang'",
    ),
    (
        "SELECT MAX(altitude) FROM airports",
        "SELECT MIN(altitude) FROM airports",
    ),
    (
        "SELECT iso_code FROM countries WHERE name = 'Germany'",
        "SELECT iso_code FROM countries WHERE name LIKE 'Germany'",
    ),
    (
        "SELECT COUNT(*) FROM routes WHERE stops = 0",
        "SELECT COUNT(*) FROM routes WHERE stops > 0",
    ),
];

struct Case {
    gold_sql: String,
    candidate: String,
    /// The tutorial's form: a list of row objects.
    records: Value,
    gold: ResultSet,
    predicted: Option<ResultSet>,
}

/// One measured workload.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// The workload's name.
    pub name: String,
    /// Completions scored.
    pub evaluations: usize,
    /// Completions scored per second of wall time.
    pub per_second: f64,
}

/// A row's evaluations and wall time, summed over its rounds.
#[derive(Debug, Default, Clone, Copy)]
struct Tally {
    evaluations: usize,
    wall: Duration,
}

impl Tally {
    fn add(&mut self, round: Tally) {
        self.evaluations += round.evaluations;
        self.wall += round.wall;
    }

    fn per_second(&self) -> f64 {
        self.evaluations as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE)
    }
}

/// Measures the requests numbered `share` of a row.
type Runner = Box<dyn Fn(Range<usize>) -> BoxFuture<'static, anyhow::Result<Tally>> + Send + Sync>;

/// One line of the table: `requests` in all, split over the rounds.
struct Row {
    name: String,
    requests: usize,
    run: Runner,
    /// Rows that may be unable to run (the official wheel absent) are skipped with the reason
    /// instead of failing the benchmark.
    skippable: bool,
    tally: Result<Tally, String>,
}

impl Row {
    fn new(name: impl Into<String>, requests: usize, run: Runner) -> Row {
        Row {
            name: name.into(),
            requests,
            run,
            skippable: false,
            tally: Ok(Tally::default()),
        }
    }

    fn skippable(mut self) -> Row {
        self.skippable = true;
        self
    }

    async fn measure_round(&mut self, round: usize) -> anyhow::Result<()> {
        let Ok(tally) = &mut self.tally else {
            return Ok(());
        };
        let share = round_share(self.requests, round);
        if share.is_empty() {
            return Ok(());
        }
        match (self.run)(share).await {
            Ok(measured) => tally.add(measured),
            Err(why) if self.skippable => self.tally = Err(format!("{why:#}")),
            Err(err) => return Err(err),
        }
        Ok(())
    }
}

/// Runs the jobs numbered `share` on one worker per client in `clients` (a connection, or `()`
/// in process), `per_job` evaluations each; a job takes its worker's client and gives it back.
async fn measure<C, F, Fut>(
    share: Range<usize>,
    clients: Vec<C>,
    per_job: usize,
    job: F,
) -> anyhow::Result<Tally>
where
    C: Send + 'static,
    F: Fn(C, usize) -> Fut + Send + Sync + 'static,
    Fut: std::future::Future<Output = anyhow::Result<C>> + Send + 'static,
{
    let job = Arc::new(job);
    let next = Arc::new(AtomicUsize::new(share.start));
    let end = share.end;
    let started = Instant::now();
    let workers: Vec<_> = clients
        .into_iter()
        .map(|mut client| {
            let (job, next) = (job.clone(), next.clone());
            tokio::spawn(async move {
                loop {
                    let i = next.fetch_add(1, Ordering::Relaxed);
                    if i >= end {
                        return anyhow::Ok(());
                    }
                    client = job(client, i).await?;
                }
            })
        })
        .collect();
    for worker in workers {
        worker.await??;
    }
    Ok(Tally {
        evaluations: share.len() * per_job,
        wall: started.elapsed(),
    })
}

/// A typed result as the tutorial's ground truth: row objects, numbers as JSON numbers.
fn records(result: &ResultSet) -> Value {
    let numeric: Vec<bool> = result
        .types
        .iter()
        .map(|t| DuckType::parse(t).is_numeric())
        .collect();
    Value::Array(
        result
            .rows
            .iter()
            .map(|row| {
                let object: Map<String, Value> = result
                    .columns
                    .iter()
                    .zip(row)
                    .zip(&numeric)
                    .map(|((name, cell), numeric)| {
                        let cell = match cell {
                            Value::String(s) if *numeric => {
                                s.parse::<f64>().map_or(cell.clone(), |f| json!(f))
                            }
                            other => other.clone(),
                        };
                        (name.clone(), cell)
                    })
                    .collect();
                Value::Object(object)
            })
            .collect(),
    )
}

async fn load_cases(engine: &RewardEngine, file: Option<&Path>) -> anyhow::Result<Vec<Case>> {
    let pairs: Vec<(String, String)> = match file {
        Some(file) => {
            let text = std::fs::read_to_string(file)
                .with_context(|| format!("could not read cases `{}`", file.display()))?;
            let list: Vec<Value> = serde_json::from_str(&text).with_context(|| {
                format!(
                    "`{}` is not a JSON list of {{gold, candidate}}",
                    file.display()
                )
            })?;
            list.iter()
                .map(|c| match (c["gold"].as_str(), c["candidate"].as_str()) {
                    (Some(g), Some(p)) => Ok((g.to_string(), p.to_string())),
                    _ => bail!(
                        "every case in `{}` needs string `gold` and `candidate`",
                        file.display()
                    ),
                })
                .collect::<anyhow::Result<_>>()?
        }
        None => CASES
            .iter()
            .map(|(g, p)| (g.to_string(), p.to_string()))
            .collect(),
    };
    let mut cases = Vec::new();
    for (gold_sql, candidate) in pairs {
        let gold = engine
            .executor()
            .query(&gold_sql)
            .await
            .map_err(|e| anyhow::anyhow!("gold SQL `{gold_sql}` failed: {e}; does --db hold the OpenFlights data (or pass --cases)?"))?;
        let predicted = engine.executor().query(&candidate).await.ok();
        cases.push(Case {
            gold_sql,
            candidate,
            records: records(&gold),
            gold,
            predicted,
        });
    }
    Ok(cases)
}

/// `sqlrft bench reward`: prints the table and the ratios, and returns what it measured (rows
/// that could not run are left out, their reason printed).
pub async fn run_bench(args: BenchArgs) -> anyhow::Result<Vec<Measurement>> {
    let config = RewardConfig {
        db: Some(args.db.clone()),
        port: 0,
        ..RewardConfig::default()
    };
    let engine = Arc::new(build_engine(&config)?);
    let cases = Arc::new(load_cases(&engine, args.cases.as_deref()).await?);
    let server = start_with_engine(config, engine.clone()).await?;
    let (n, c) = (args.evaluations, args.concurrency);
    let truths: Arc<Vec<GroundTruth>> = Arc::new(
        cases
            .iter()
            .map(|case| GroundTruth::parse(Some(&case.records), &Map::new()))
            .collect::<Result<_, _>>()?,
    );

    // Embedded, in process: what the trainer gets.
    let mut rows = vec![
        Row::new(
            "embedded, in process, 1 at a time",
            n / 4,
            embedded(&engine, &cases, &truths, 1),
        ),
        Row::new(
            format!("embedded, in process, {c} concurrent"),
            n,
            embedded(&engine, &cases, &truths, c),
        ),
    ];
    // The official wheel on the same candidates' SQL (an evaluation runs exactly that query).
    for (total, concurrency) in [(n / 4, 1), (n, c)] {
        rows.push(
            Row::new(
                format!("official DuckDB wheel, SQL only, {concurrency} thr."),
                total,
                official(&args, &cases, concurrency),
            )
            .skippable(),
        );
    }

    // HTTP, one evaluation per request, tutorial-shaped bodies.
    let bodies: Arc<Vec<Value>> = Arc::new(
        cases
            .iter()
            .map(|case| {
                json!({"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": case.candidate}],
                       "ground_truth": case.records})
            })
            .collect(),
    );
    let evaluate_url = format!("{}/v1/evaluate", server.base_url());
    rows.push(Row::new(
        format!("HTTP /v1/evaluate, embedded, {c} concurrent"),
        n,
        posts(evaluate_url, &bodies, c, 1),
    ));

    // HTTP batches of 8 completions (a GRPO group) against one ground truth: eight different
    // queries, and the same query eight times (a converged group; the service runs it once).
    let batch_url = format!("{}/v1/evaluate/batch", server.base_url());
    let mut texts: Vec<&str> = Vec::new();
    for text in cases
        .iter()
        .flat_map(|c| [c.candidate.as_str(), c.gold_sql.as_str()])
    {
        if !texts.contains(&text) {
            texts.push(text);
        }
    }
    for (label, distinct) in [("different SQL", true), ("1 SQL x8", false)] {
        let batches: Arc<Vec<Value>> = Arc::new(
            (0..cases.len())
                .map(|k| {
                    let group: Vec<&str> = (0..8)
                        .map(|j| match distinct {
                            true => texts[(k + j) % texts.len()],
                            false => cases[k].candidate.as_str(),
                        })
                        .collect();
                    json!({"completions": group, "ground_truth": cases[k].records})
                })
                .collect(),
        );
        rows.push(Row::new(
            format!("HTTP batch x8 ({label}), {c} conc."),
            n / 8,
            posts(batch_url.clone(), &batches, c, 8),
        ));
    }

    // Through MCP.
    let mcp_server = match &args.mcp_url {
        Some(mcp_url) => {
            let mcp_config = RewardConfig {
                mcp_url: Some(mcp_url.clone()),
                port: 0,
                ..RewardConfig::default()
            };
            let mcp_server = crate::start(mcp_config).await?;
            let url = format!("{}/v1/evaluate", mcp_server.base_url());
            rows.push(Row::new(
                format!("HTTP /v1/evaluate, via MCP, {c} concurrent"),
                n,
                posts(url, &bodies, c, 1),
            ));
            Some(mcp_server)
        }
        None => None,
    };

    // The tutorial's own evaluate function, last: the ratios are against it.
    let peer_row = match (&args.peer_python, &args.mcp_url) {
        (Some(python), Some(mcp_url)) => {
            rows.push(Row::new(
                format!("tutorial evaluate(), via MCP, {c} threads"),
                args.peer_evaluations,
                tutorial(python, mcp_url, &args, &cases)?,
            ));
            Some(rows.len() - 1)
        }
        _ => None,
    };

    println!("each row in {BENCH_ROUNDS} rounds, the rows taking turns within each round");
    for round in 0..BENCH_ROUNDS {
        for row in &mut rows {
            row.measure_round(round).await?;
        }
    }
    if let Some(mcp_server) = mcp_server {
        mcp_server.shutdown().await?;
    }

    println!("{:<44} {:>8} {:>12}", "workload", "evals", "evals/s");
    let mut results = Vec::new();
    for row in &rows {
        match &row.tally {
            Ok(tally) => {
                println!(
                    "{:<44} {:>8} {:>12.0}",
                    row.name,
                    tally.evaluations,
                    tally.per_second()
                );
                results.push(Measurement {
                    name: row.name.clone(),
                    evaluations: tally.evaluations,
                    per_second: tally.per_second(),
                });
            }
            Err(why) => println!("{}: skipped, {why}", row.name),
        }
    }
    let per_second = |k: usize| rows[k].tally.as_ref().ok().map(Tally::per_second);
    // Rows 0 and 1 are embedded, 2 and 3 the official wheel at the same concurrency.
    for (label, ours, wheel) in [("1 at a time", 0, 2), ("concurrent", 1, 3)] {
        if let (Some(ours), Some(wheel)) = (per_second(ours), per_second(wheel)) {
            println!(
                "  embedded ({label}) runs at {:.0}% of the official wheel running its SQL alone",
                ours / wheel * 100.0
            );
        }
    }

    // The comparison's share of one evaluation.
    if let Some(sequential) = per_second(0) {
        let rounds = 2000;
        let started = Instant::now();
        let mut matched = 0;
        for i in 0..rounds {
            let case = &cases[i % cases.len()];
            if let Some(predicted) = &case.predicted {
                matched +=
                    usize::from(compare(predicted, &case.gold, &CompareOptions::default()).matched);
            }
        }
        std::hint::black_box(matched);
        let per_compare = started.elapsed().as_secs_f64() / rounds as f64;
        println!(
            "comparison: {:.1}% of one sequential embedded evaluation",
            per_compare * sequential * 100.0
        );
    }

    if let Some(peer) = peer_row.and_then(per_second) {
        for row in rows.iter().take(rows.len() - 1) {
            if let Ok(tally) = &row.tally {
                println!(
                    "  {:<42} {:>8.1}x the tutorial's evaluator",
                    row.name,
                    tally.per_second() / peer
                );
            }
        }
    }
    server.shutdown().await?;
    Ok(results)
}

/// Scores the cases in process, `concurrency` at a time.
fn embedded(
    engine: &Arc<RewardEngine>,
    cases: &Arc<Vec<Case>>,
    truths: &Arc<Vec<GroundTruth>>,
    concurrency: usize,
) -> Runner {
    let (engine, cases, truths) = (engine.clone(), cases.clone(), truths.clone());
    Box::new(move |share| {
        let (engine, cases, truths) = (engine.clone(), cases.clone(), truths.clone());
        let workers = vec![(); concurrency.max(1)];
        Box::pin(measure(share, workers, 1, move |(), i| {
            let (engine, cases, truths) = (engine.clone(), cases.clone(), truths.clone());
            async move {
                let k = i % cases.len();
                engine
                    .evaluate(&cases[k].candidate, &truths[k], &ScoreOptions::default())
                    .await;
                Ok(())
            }
        }))
    })
}

/// Runs the candidates' SQL alone on the official wheel from `concurrency` threads.
fn official(args: &BenchArgs, cases: &Arc<Vec<Case>>, concurrency: usize) -> Runner {
    let (python, db, cases) = (args.official.python.clone(), args.db.clone(), cases.clone());
    Box::new(move |share| {
        let queries: Vec<String> = share
            .map(|i| cases[i % cases.len()].candidate.clone())
            .collect();
        let (python, db) = (python.clone(), db.clone());
        Box::pin(async move {
            let run = tokio::task::spawn_blocking(move || {
                sqlrft_duck::measure_official(&python, &db, &queries, concurrency, concurrency)
            })
            .await?
            .map_err(anyhow::Error::msg)?;
            Ok(Tally {
                evaluations: run.latencies.len(),
                wall: run.wall,
            })
        })
    })
}

/// POSTs `bodies` in turn to `url` from `concurrency` clients, each on its own keep-alive
/// connection, `per_request` evaluations each.
fn posts(url: String, bodies: &[Value], concurrency: usize, per_request: usize) -> Runner {
    let bodies: Arc<Vec<Bytes>> = Arc::new(
        bodies
            .iter()
            .map(|body| Bytes::from(body.to_string()))
            .collect(),
    );
    Box::new(move |share| {
        Box::pin(post_workload(
            url.clone(),
            bodies.clone(),
            share,
            concurrency,
            per_request,
        ))
    })
}

async fn post_workload(
    url: String,
    bodies: Arc<Vec<Bytes>>,
    share: Range<usize>,
    concurrency: usize,
    per_request: usize,
) -> anyhow::Result<Tally> {
    let endpoint = Endpoint::new(&url, "application/json")?;
    let mut connections = Vec::with_capacity(concurrency);
    for _ in 0..concurrency.max(1) {
        connections.push(endpoint.connect().await?);
    }
    measure(share, connections, per_request, move |mut connection, i| {
        let (bodies, url) = (bodies.clone(), url.clone());
        async move {
            let reply = connection
                .post_json(bodies[i % bodies.len()].clone())
                .await?;
            if !reply.status.is_success() {
                bail!("{url} answered {}", reply.status);
            }
            serde_json::from_slice::<IgnoredAny>(&reply.body)
                .with_context(|| format!("{url} answered with something not JSON"))?;
            Ok(connection)
        }
    })
    .await
}

/// bench/tutorial_peer.py, inside the binary: an installed `sqlrft` has no source tree to read
/// it from.
const TUTORIAL_PEER: &str = include_str!("../bench/tutorial_peer.py");

/// Runs bench/tutorial_peer.py: the tutorial's evaluate function against the MCP server, as
/// many evaluations as the round's share.
fn tutorial(
    python: &Path,
    mcp_url: &str,
    args: &BenchArgs,
    cases: &[Case],
) -> anyhow::Result<Runner> {
    if !args.seed.is_file() {
        bail!(
            "--seed {}: no such file; the tutorial's evaluate function is read from the seed \
             text ({TUTORIAL_SEED} from the repository root); pass its path, or leave out \
             --peer-python to skip the tutorial's row",
            args.seed.display()
        );
    }
    let dir = Arc::new(tempfile::tempdir()?);
    let cases_file = dir.path().join("cases.json");
    let list: Vec<Value> = cases
        .iter()
        .map(|c| json!({"candidate": c.candidate, "ground_truth": c.records}))
        .collect();
    std::fs::write(&cases_file, serde_json::to_vec(&list)?)?;
    let base = sqlrft_reward::mcp_endpoint(mcp_url);
    let base = base.trim_end_matches("/mcp").to_string();
    let (python, seed, threads) = (
        python.to_path_buf(),
        args.seed.clone(),
        args.concurrency.to_string(),
    );
    Ok(Box::new(move |share| {
        let mut command = tokio::process::Command::new(&python);
        command
            .arg("-c")
            .arg(TUTORIAL_PEER)
            .arg(&base)
            .arg(&seed)
            .arg(&cases_file)
            .arg(share.len().to_string())
            .arg(&threads);
        let (python, dir) = (python.clone(), dir.clone());
        Box::pin(async move {
            let output = command
                .output()
                .await
                .with_context(|| format!("could not run `{}`", python.display()))?;
            drop(dir);
            if !output.status.success() {
                bail!(
                    "the tutorial evaluator failed: {}",
                    String::from_utf8_lossy(&output.stderr)
                );
            }
            let report: Value = serde_json::from_slice(&output.stdout).with_context(|| {
                format!(
                    "unreadable output from the peer: {}",
                    String::from_utf8_lossy(&output.stdout)
                )
            })?;
            match (report["evaluations"].as_u64(), report["seconds"].as_f64()) {
                (Some(evaluations), Some(seconds)) => Ok(Tally {
                    evaluations: evaluations as usize,
                    wall: Duration::from_secs_f64(seconds),
                }),
                _ => bail!("the peer's report lacks evaluations and seconds: {report}"),
            }
        })
    }))
}
