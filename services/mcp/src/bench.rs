//! `sqlrft bench mcp`: requests per second and latency through the tutorial's wire format,
//! for our server and, in the same run, a peer server (e.g. mcp-server-motherduck 0.8.1).

use std::ops::Range;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use bytes::Bytes;
use clap::Args;
use serde::Deserialize;
use serde_json::{Value, json};
use sqlrft_load::{Connection, Endpoint, Reply, first_sse_data};

use sqlrft_duck::{BENCH_ROUNDS, OfficialDuckdbArgs, PoolOptions, ReadOnlyPool, round_share};

use crate::{McpConfig, start};

/// Measure the MCP server on an OpenFlights database (see ../shared/acceptance/make_openflights_db.py).
#[derive(Debug, Clone, Args)]
pub struct McpBenchArgs {
    /// OpenFlights DuckDB file to serve with sqlrft for the run.
    #[arg(long)]
    pub db: PathBuf,
    /// Base URL (without /mcp/) of another server on the same database to measure in the same run.
    #[arg(long)]
    pub peer: Option<String>,
    /// Requests per workload for sqlrft, DuckDB alone and the official wheel (split over rounds).
    #[arg(long, default_value_t = 2000)]
    pub requests: usize,
    /// Requests per workload for the peer (a slow peer needs fewer to be measured well).
    #[arg(long, default_value_t = 300)]
    pub peer_requests: usize,
    /// Concurrent clients in the concurrent workload.
    #[arg(long, default_value_t = 32)]
    pub concurrency: usize,
    /// The official DuckDB wheel's row: the engine's ceiling on the same queries.
    #[command(flatten)]
    pub official: OfficialDuckdbArgs,
}

/// What a workload is sent to: a server over HTTP, or DuckDB through the pool directly.
#[derive(Clone)]
enum Target {
    Http(Endpoint),
    Engine(ReadOnlyPool),
}

impl Target {
    /// What one simulated client holds for a run: its own connection to a server, or the pool.
    async fn client(&self) -> anyhow::Result<Client> {
        Ok(match self {
            Target::Http(endpoint) => Client::Http(Box::new(endpoint.connect().await?)),
            Target::Engine(pool) => Client::Engine(pool.clone()),
        })
    }
}

enum Client {
    Http(Box<Connection>),
    Engine(ReadOnlyPool),
}

impl Client {
    async fn run(&mut self, query: &Query) -> anyhow::Result<()> {
        match self {
            Client::Http(connection) => {
                let reply = connection.post_json(query.body.clone()).await?;
                check_reply(&reply)
            }
            Client::Engine(pool) => pool.query(&query.sql).await.map(drop).map_err(Into::into),
        }
    }
}

/// One query of a workload, with its `tools/call` body serialised before the clock starts.
struct Query {
    sql: String,
    body: Bytes,
}

impl Query {
    fn new(sql: String) -> Self {
        let body = json!({
            "id": "eval-query-1", "jsonrpc": "2.0", "method": "tools/call",
            "params": {"session": {"id": "stateless-eval-session"}, "name": "query", "arguments": {"query": sql}}
        });
        Self {
            body: Bytes::from(body.to_string()),
            sql,
        }
    }
}

/// One workload measured on DuckDB alone, on sqlrft and (when given) on the peer.
#[derive(Debug, Clone)]
pub struct WorkloadResult {
    /// The workload's name (`point`, `mixed`, …).
    pub workload: &'static str,
    /// The same queries on the official DuckDB wheel (same version, lockdown and threads), or
    /// why that row was skipped.
    pub official: Result<Measurement, String>,
    /// The same queries on an in-process pool, with no server in the way: the floor.
    pub duckdb_alone: Measurement,
    /// Through sqlrft's MCP server over HTTP.
    pub sqlrft: Measurement,
    /// Through the peer server, when one was given to compare against.
    pub peer: Option<Measurement>,
}

/// Throughput and latency of one workload against one server.
#[derive(Debug, Clone)]
pub struct Measurement {
    /// Requests that completed.
    pub requests: usize,
    /// Completed requests per second of wall time.
    pub per_second: f64,
    /// Median latency.
    pub p50: Duration,
    /// 99th-percentile latency.
    pub p99: Duration,
}

const MIXED: &[&str] = &[
    "SELECT country, count(*) AS airports FROM airports GROUP BY country ORDER BY airports DESC, country LIMIT 10",
    "SELECT a.name, count(*) AS routes FROM routes r JOIN airlines a ON a.airline_id = r.airline_id GROUP BY a.name ORDER BY routes DESC, a.name LIMIT 10",
    "SELECT s.city, d.city, r.stops FROM routes r JOIN airports s ON s.airport_id = r.source_airport_id JOIN airports d ON d.airport_id = r.destination_airport_id WHERE s.iata = 'LHR' ORDER BY d.city LIMIT 20",
    "SELECT avg(altitude) AS mean_altitude, max(altitude) AS top FROM airports WHERE country = 'Switzerland'",
    "SELECT equipment, count(*) AS n FROM routes GROUP BY equipment HAVING count(*) > 100 ORDER BY n DESC, equipment",
];

/// Runs every workload, prints the table and the ratios, and returns what it measured.
pub async fn run_bench(args: McpBenchArgs) -> anyhow::Result<Vec<WorkloadResult>> {
    let server = start(McpConfig {
        db: Some(args.db.clone()),
        port: 0,
        ..McpConfig::default()
    })
    .await?;
    let ours = mcp_endpoint(&server.base_url())?;
    let ids = airport_ids(&ours).await?;
    let point = |i: usize| {
        format!(
            "SELECT name, city, country, iata FROM airports WHERE airport_id = {}",
            ids[i % ids.len()]
        )
    };
    let mixed = |i: usize| MIXED[i % MIXED.len()].to_string();

    // DuckDB alone, in this process, with no server in front: the most any server on this
    // engine and machine could reach, so the ratio against it shows what the server costs.
    let engine = Target::Engine(ReadOnlyPool::open(&args.db, PoolOptions::default())?);
    let ours = Target::Http(ours);
    let peer = args
        .peer
        .as_deref()
        .map(mcp_endpoint)
        .transpose()?
        .map(Target::Http);

    println!(
        "each workload in {BENCH_ROUNDS} rounds, the rows taking turns within each round\n\
         workload                     server       requests    req/s     p50 ms    p99 ms"
    );
    let mut results = Vec::new();
    for (workload, concurrency, queries) in [
        (
            "point, sequential",
            1usize,
            &point as &(dyn Fn(usize) -> String + Sync),
        ),
        ("point, concurrent", args.concurrency, &point),
        ("mixed analytical, sequential", 1, &mixed),
    ] {
        let mut official: Result<Tally, String> = Ok(Tally::default());
        let (mut duckdb_alone, mut sqlrft, mut peer_tally) =
            (Tally::default(), Tally::default(), Tally::default());
        for round in 0..BENCH_ROUNDS {
            let (ours_share, peer_share) = (
                round_share(args.requests, round),
                round_share(args.peer_requests, round),
            );
            if let Ok(tally) = &mut official {
                match measure_official(&args, concurrency, queries, ours_share.clone()).await {
                    Ok(run) => tally.add(run),
                    Err(why) => official = Err(why),
                }
            }
            duckdb_alone.add(measure(&engine, ours_share.clone(), concurrency, queries).await?);
            sqlrft.add(measure(&ours, ours_share, concurrency, queries).await?);
            if let Some(peer) = &peer {
                peer_tally.add(measure(peer, peer_share, concurrency, queries).await?);
            }
        }
        let official = official.map(Tally::measurement);
        match &official {
            Ok(measured) => print_row(workload, "duckdb wheel", measured),
            Err(why) => println!("{workload:<28} duckdb wheel: skipped, {why}"),
        }
        let duckdb_alone = duckdb_alone.measurement();
        print_row(workload, "duckdb alone", &duckdb_alone);
        let sqlrft = sqlrft.measurement();
        print_row(workload, "sqlrft", &sqlrft);
        let peer = peer.is_some().then(|| peer_tally.measurement());
        if let Some(measured) = &peer {
            print_row(workload, "peer", measured);
        }
        results.push(WorkloadResult {
            workload,
            official,
            duckdb_alone,
            sqlrft,
            peer,
        });
    }
    for result in &results {
        let (ours, alone) = (result.sqlrft.per_second, result.duckdb_alone.per_second);
        if let Ok(official) = &result.official {
            println!(
                "{}: DuckDB alone (our pool) runs at {:.0}% of the official DuckDB wheel",
                result.workload,
                alone / official.per_second * 100.0
            );
        }
        println!(
            "{}: sqlrft runs at {:.0}% of DuckDB alone",
            result.workload,
            ours / alone * 100.0
        );
        if let Some(peer) = &result.peer {
            // The official build's ratio bounds any server on DuckDB: a target against the peer
            // above it asks more than the engine itself does on this machine.
            let ceiling = match &result.official {
                Ok(official) => format!(
                    "the official DuckDB wheel alone/peer, the engine's ceiling here: {:.1}x",
                    official.per_second / peer.per_second
                ),
                Err(_) => "the official DuckDB wheel was not measured".into(),
            };
            println!(
                "{}: ratio sqlrft/peer {:.1}x (our pool alone/peer {:.1}x; {ceiling})",
                result.workload,
                ours / peer.per_second,
                alone / peer.per_second
            );
        }
    }
    server.shutdown().await?;
    Ok(results)
}

fn print_row(workload: &str, server: &str, m: &Measurement) {
    println!(
        "{workload:<28} {server:<12} {:>8} {:>8.0} {:>9.2} {:>9.2}",
        m.requests,
        m.per_second,
        m.p50.as_secs_f64() * 1e3,
        m.p99.as_secs_f64() * 1e3
    );
}

/// The `Accept` header the tutorial's MCP client sends.
const ACCEPT: &str = "application/json, text/event-stream";

/// A server's `/mcp/` endpoint, from its base URL.
fn mcp_endpoint(base: &str) -> anyhow::Result<Endpoint> {
    Endpoint::new(&format!("{}/mcp/", base.trim_end_matches('/')), ACCEPT)
}

/// The JSON-RPC reply inside an MCP server's SSE reply, or why there is none.
fn reply_data(reply: &Reply) -> anyhow::Result<&[u8]> {
    if !reply.status.is_success() {
        bail!("the server answered {}", reply.status);
    }
    first_sse_data(&reply.body).context("the server's reply has no SSE data line")
}

/// Checks a timed reply as the tutorial's client would (a tool error fails the run), reading only
/// the fields it needs.
fn check_reply(reply: &Reply) -> anyhow::Result<()> {
    #[derive(Deserialize)]
    struct Rpc {
        result: ToolResult,
    }
    #[derive(Deserialize)]
    struct ToolResult {
        #[serde(rename = "isError", default)]
        is_error: bool,
    }
    let data = reply_data(reply)?;
    let rpc: Rpc = serde_json::from_slice(data).context("the reply is not a tool result")?;
    if rpc.result.is_error {
        bail!("query failed: {}", String::from_utf8_lossy(data));
    }
    Ok(())
}

/// Sends one `query` call in the tutorial's format and returns the parsed reply.
async fn call(connection: &mut Connection, sql: &str) -> anyhow::Result<Value> {
    let reply = connection
        .post_json(Query::new(sql.to_string()).body)
        .await?;
    check_reply(&reply)?;
    Ok(serde_json::from_slice(reply_data(&reply)?)?)
}

async fn airport_ids(endpoint: &Endpoint) -> anyhow::Result<Vec<i64>> {
    let reply = call(
        &mut endpoint.connect().await?,
        "SELECT airport_id FROM airports ORDER BY airport_id LIMIT 1000",
    )
    .await
    .context("the benchmark needs the OpenFlights `airports` table (make_openflights_db.py)")?;
    let ids: Vec<i64> = reply["result"]["structuredContent"]["rows"]
        .as_array()
        .map(|rows| rows.iter().filter_map(|r| r[0].as_i64()).collect())
        .unwrap_or_default();
    if ids.is_empty() {
        bail!("the airports table is empty");
    }
    Ok(ids)
}

/// One row's measured wall time and latencies, summed over its rounds.
#[derive(Default)]
struct Tally {
    wall: Duration,
    latencies: Vec<Duration>,
}

impl Tally {
    fn add(&mut self, round: Tally) {
        self.wall += round.wall;
        self.latencies.extend(round.latencies);
    }

    fn measurement(self) -> Measurement {
        let requests = self.latencies.len();
        let per_second = requests as f64 / self.wall.as_secs_f64().max(f64::MIN_POSITIVE);
        let (p50, p99) = percentiles(self.latencies);
        Measurement {
            requests,
            per_second,
            p50,
            p99,
        }
    }
}

/// The workload's queries numbered `share` on the official DuckDB wheel, as concurrent as ours.
async fn measure_official(
    args: &McpBenchArgs,
    concurrency: usize,
    query: &(dyn Fn(usize) -> String + Sync),
    share: Range<usize>,
) -> Result<Tally, String> {
    if share.is_empty() {
        return Ok(Tally::default());
    }
    let queries: Vec<String> = share.map(query).collect();
    let (python, db) = (args.official.python.clone(), args.db.clone());
    let run = tokio::task::spawn_blocking(move || {
        sqlrft_duck::measure_official(&python, &db, &queries, concurrency, concurrency)
    })
    .await
    .map_err(|e| format!("the official wheel's task failed: {e}"))??;
    Ok(Tally {
        wall: run.wall,
        latencies: run.latencies,
    })
}

/// The median and 99th percentile of `latencies` (zero when there are none).
fn percentiles(mut latencies: Vec<Duration>) -> (Duration, Duration) {
    if latencies.is_empty() {
        return (Duration::ZERO, Duration::ZERO);
    }
    latencies.sort();
    let at = |q: f64| latencies[((latencies.len() as f64 * q) as usize).min(latencies.len() - 1)];
    (at(0.50), at(0.99))
}

/// Sends the workload's queries numbered `share` to `target` from `concurrency` clients.
async fn measure(
    target: &Target,
    share: Range<usize>,
    concurrency: usize,
    query: &(dyn Fn(usize) -> String + Sync),
) -> anyhow::Result<Tally> {
    if share.is_empty() {
        return Ok(Tally::default());
    }
    let queries: Arc<Vec<Query>> = Arc::new(share.map(|i| Query::new(query(i))).collect());
    // Every client connects and warms the server's caches before timing.
    let mut clients = Vec::with_capacity(concurrency);
    for warm_up in queries.iter().cycle().take(concurrency) {
        let mut client = target.client().await?;
        client.run(warm_up).await?;
        clients.push(client);
    }
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let started = Instant::now();
    let mut workers = Vec::new();
    for mut client in clients {
        let (queries, next) = (queries.clone(), next.clone());
        workers.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if i >= queries.len() {
                    break;
                }
                let sent = Instant::now();
                client.run(&queries[i]).await?;
                latencies.push(sent.elapsed());
            }
            anyhow::Ok(latencies)
        }));
    }
    let mut latencies = Vec::with_capacity(queries.len());
    for worker in workers {
        latencies.extend(worker.await??);
    }
    Ok(Tally {
        wall: started.elapsed(),
        latencies,
    })
}
