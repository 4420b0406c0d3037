//! The official DuckDB build, measured on a benchmark's own queries in the same run: the engine's
//! real ceiling (our pool's row is our own path to DuckDB, not DuckDB).
//!
//! It runs the official Python wheel of the same DuckDB version, opened with the same lockdown
//! and thread count as [`open_read_only`](crate::open_read_only), through a small script. The
//! Python interpreter is in its figures; ours has none, so our pool should be at or above it.

use std::io::Write;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use serde_json::json;

const SCRIPT: &str = include_str!("official_duckdb.py");

/// The version of the DuckDB library linked into this binary, without the leading `v`.
pub fn engine_version() -> String {
    // SAFETY: duckdb_library_version returns a static NUL-terminated string.
    let version = unsafe { std::ffi::CStr::from_ptr(duckdb::ffi::duckdb_library_version()) };
    version
        .to_string_lossy()
        .trim_start_matches('v')
        .to_string()
}

/// Rounds a benchmark splits each workload into. Its rows take turns within a round, so a slow
/// minute on a shared machine lands on every row alike instead of on whichever row ran in it.
pub const BENCH_ROUNDS: usize = 4;

/// The indices of the requests that `round` sends, out of `total` for the row.
pub fn round_share(total: usize, round: usize) -> std::ops::Range<usize> {
    total * round / BENCH_ROUNDS..total * (round + 1) / BENCH_ROUNDS
}

/// One workload as the official wheel ran it.
#[derive(Debug, Clone)]
pub struct OfficialRun {
    /// The wheel's DuckDB version (equal to [`engine_version`]).
    pub version: String,
    /// Wall time of the measured queries.
    pub wall: Duration,
    /// Each query's latency, in completion order.
    pub latencies: Vec<Duration>,
}

/// Runs `queries` on `db` with the official wheel under `python`, from `concurrency` threads,
/// after `warmup` unmeasured queries. `Err` says why it could not be measured (a skipped row,
/// not a failed benchmark): no such Python, no `duckdb` module, or another DuckDB version.
pub fn measure_official(
    python: &Path,
    db: &Path,
    queries: &[String],
    concurrency: usize,
    warmup: usize,
) -> Result<OfficialRun, String> {
    let ours = engine_version();
    let install = format!(
        "install the official wheel of our version (`python3 -m venv .venv-duckdb && \
         .venv-duckdb/bin/pip install duckdb=={ours}`) and pass --duckdb-python \
         .venv-duckdb/bin/python (or set SQLRFT_DUCKDB_PYTHON)"
    );
    // One launch checks the wheel's version and, when it is ours, runs the queries.
    let job = json!({
        "version": ours, "db": db, "queries": queries, "concurrency": concurrency, "warmup": warmup,
    });
    let mut child = Command::new(python)
        .args(["-c", SCRIPT])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| format!("`{}` did not start ({e}); {install}", python.display()))?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(job.to_string().as_bytes())
        .map_err(|e| format!("could not send the queries to `{}`: {e}", python.display()))?;
    let output = child
        .wait_with_output()
        .map_err(|e| format!("`{}` failed: {e}", python.display()))?;
    if !output.status.success() {
        let stderr = String::from_utf8_lossy(&output.stderr);
        return Err(format!(
            "the official wheel failed on the benchmark's queries: {}",
            stderr.lines().last().unwrap_or_default().trim()
        ));
    }
    let report: serde_json::Value = serde_json::from_slice(&output.stdout)
        .map_err(|e| format!("unreadable report from the official wheel: {e}"))?;
    if report.get("missing").is_some() {
        return Err(format!(
            "`{}` has no `duckdb` module; {install}",
            python.display()
        ));
    }
    let theirs = report["version"].as_str().unwrap_or_default().to_string();
    if theirs != ours {
        return Err(format!(
            "`{}` has DuckDB {theirs}, this binary links DuckDB {ours}; {install}",
            python.display()
        ));
    }
    let latencies = report["latencies_us"]
        .as_array()
        .map(|l| {
            l.iter()
                .filter_map(serde_json::Value::as_f64)
                .map(|us| Duration::from_secs_f64(us / 1e6))
                .collect()
        })
        .unwrap_or_default();
    Ok(OfficialRun {
        version: theirs,
        wall: Duration::from_secs_f64(report["seconds"].as_f64().unwrap_or(0.0)),
        latencies,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_shares_cover_every_request_once() {
        for total in [0, 1, 5, 12, 301] {
            let mut next = 0;
            for round in 0..BENCH_ROUNDS {
                let share = round_share(total, round);
                assert_eq!(share.start, next, "{total} requests, round {round}");
                assert!(share.len() <= total.div_ceil(BENCH_ROUNDS));
                next = share.end;
            }
            assert_eq!(next, total);
        }
    }
}
