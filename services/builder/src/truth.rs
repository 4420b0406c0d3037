//! Ground truth: every query runs on the sandbox through the hardened read-only pool, twice;
//! it is kept with its typed result only when it succeeds, returns rows, fits the row limit,
//! and both runs agree. Static checks drop LIMIT without ORDER BY and volatile functions
//! before anything runs.

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::Duration;

use anyhow::Result;
use futures::StreamExt;
use serde_json::Value;
use sqlrft_core::ResultSet;
use sqlrft_core::dataset::TypedGroundTruth;
use sqlrft_duck::{Limits, PoolOptions, QueryError, ReadOnlyPool};

use crate::records::{DropReason, QueryItem, TruthItem};
use crate::stage::FailAfter;
use sqlrft_files::Journal;

/// How ground truth is computed.
#[derive(Debug, Clone)]
pub(crate) struct TruthOptions {
    pub(crate) timeout: Duration,
    /// Results with more rows than this are dropped (too large to be a useful answer).
    pub(crate) max_rows: usize,
    /// Queries running at once.
    pub(crate) concurrency: usize,
    pub(crate) fail_after: FailAfter,
}

impl Default for TruthOptions {
    fn default() -> Self {
        TruthOptions {
            timeout: Duration::from_secs(10),
            max_rows: 1000,
            concurrency: std::thread::available_parallelism()
                .map_or(4, |n| n.get())
                .max(2),
            fail_after: FailAfter::default(),
        }
    }
}

/// Opens the sandbox with the pool that ground truth runs on.
pub(crate) fn open_pool(sandbox: &Path, options: &TruthOptions) -> Result<ReadOnlyPool> {
    ReadOnlyPool::open(
        sandbox,
        PoolOptions {
            connections: options.concurrency,
            max_waiting: usize::MAX / 2,
            limits: limits(options),
        },
    )
    .map_err(|e| anyhow::anyhow!("{e}"))
}

fn limits(options: &TruthOptions) -> Limits {
    Limits {
        timeout: options.timeout,
        max_rows: options.max_rows,
        max_bytes: 64 * 1024 * 1024,
    }
}

/// Computes the outcome of every query not already in `journal`, appending each as it
/// finishes. Returns every outcome (old and new), in the order of `queries`.
pub(crate) async fn compute(
    pool: &ReadOnlyPool,
    queries: &[QueryItem],
    journal: &mut Journal,
    done: HashMap<String, TruthItem>,
    options: &TruthOptions,
    progress: &indicatif::ProgressBar,
) -> Result<Vec<TruthItem>> {
    let mut outcomes = done;
    let todo: Vec<&QueryItem> = queries
        .iter()
        .filter(|q| !outcomes.contains_key(&q.id))
        .collect();
    progress.set_length(queries.len() as u64);
    progress.set_position((queries.len() - todo.len()) as u64);
    let limits = limits(options);
    let mut stream = futures::stream::iter(todo)
        .map(|query| {
            let limits = limits.clone();
            async move { evaluate(pool, query, &limits).await }
        })
        .buffer_unordered(options.concurrency.max(1));
    let mut finished = 0;
    while let Some(outcome) = stream.next().await {
        options.fail_after.check(finished)?;
        journal.append(&outcome)?;
        finished += 1;
        progress.inc(1);
        outcomes.insert(outcome.id().to_string(), outcome);
    }
    journal.sync()?;
    Ok(queries
        .iter()
        .filter_map(|q| outcomes.remove(&q.id))
        .collect())
}

/// Runs one query (twice) and decides whether it is kept.
pub(crate) async fn evaluate(pool: &ReadOnlyPool, query: &QueryItem, limits: &Limits) -> TruthItem {
    let drop = |reason, detail: String| TruthItem::Dropped {
        id: query.id.clone(),
        reason,
        detail,
    };
    // Static checks need the parse tree; the pool parses with DuckDB's parser.
    let shape = match pool.parse_select(&query.sql).await {
        Ok(ast) => crate::analysis::analyse(&ast),
        Err(e) => return drop(DropReason::Error, e.to_string()),
    };
    if !shape.volatile.is_empty() {
        return drop(
            DropReason::VolatileFunction,
            format!("calls {}", shape.volatile.join(", ")),
        );
    }
    if shape.limit_without_order {
        return drop(
            DropReason::LimitWithoutOrder,
            "LIMIT without ORDER BY picks arbitrary rows".into(),
        );
    }
    let first = match pool.query_with(&query.sql, limits).await {
        Ok(result) => result,
        Err(e) => return drop(reason_of(&e), e.to_string()),
    };
    if first.truncated {
        return drop(
            DropReason::TooLarge,
            format!("more than {} rows", limits.max_rows),
        );
    }
    if first.rows.is_empty() {
        return drop(DropReason::Empty, "no rows".into());
    }
    let second = match pool.query_with(&query.sql, limits).await {
        Ok(result) => result,
        Err(e) => return drop(reason_of(&e), format!("second run: {e}")),
    };
    if !same_result(&first, &second, shape.ordered) {
        return drop(
            DropReason::Nondeterministic,
            "two runs returned different results".into(),
        );
    }
    TruthItem::Kept {
        id: query.id.clone(),
        ground_truth: TypedGroundTruth::from_result_set(first, shape.ordered, query.sql.clone()),
    }
}

fn reason_of(error: &QueryError) -> DropReason {
    match error {
        QueryError::Timeout(_) => DropReason::Timeout,
        QueryError::TooLarge { .. } => DropReason::TooLarge,
        _ => DropReason::Error,
    }
}

/// Equal results: same columns and rows (as multisets unless `ordered`), floats equal within
/// a relative 1e-9 (parallel sums may differ in the last bits between runs).
pub(crate) fn same_result(a: &ResultSet, b: &ResultSet, ordered: bool) -> bool {
    if a.columns != b.columns || a.types != b.types || a.rows.len() != b.rows.len() {
        return false;
    }
    let (mut left, mut right): (Vec<&Vec<Value>>, Vec<&Vec<Value>>) =
        (a.rows.iter().collect(), b.rows.iter().collect());
    if !ordered {
        let key = |row: &&Vec<Value>| serde_json::to_string(&rounded(row)).unwrap_or_default();
        left.sort_by_key(key);
        right.sort_by_key(key);
    }
    left.iter()
        .zip(&right)
        .all(|(x, y)| x.len() == y.len() && x.iter().zip(y.iter()).all(|(p, q)| same_cell(p, q)))
}

fn rounded(row: &[Value]) -> Vec<Value> {
    row.iter()
        .map(|v| match v.as_f64() {
            Some(f) if v.is_f64() => Value::String(format!("{f:.6e}")),
            _ => v.clone(),
        })
        .collect()
}

fn same_cell(a: &Value, b: &Value) -> bool {
    match (a.as_f64(), b.as_f64()) {
        (Some(x), Some(y)) if a.is_f64() || b.is_f64() => {
            (x - y).abs() <= 1e-9 * x.abs().max(y.abs()).max(1.0)
        }
        _ => a == b,
    }
}

/// Counts of kept queries and of drops per reason.
pub(crate) fn tally(outcomes: &[TruthItem]) -> (usize, BTreeMap<DropReason, usize>) {
    let mut kept = 0;
    let mut dropped = BTreeMap::new();
    for outcome in outcomes {
        match outcome {
            TruthItem::Kept { .. } => kept += 1,
            TruthItem::Dropped { reason, .. } => *dropped.entry(*reason).or_default() += 1,
        }
    }
    (kept, dropped)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(rows: Vec<Vec<Value>>) -> ResultSet {
        ResultSet {
            columns: vec!["a".into(), "b".into()],
            types: vec!["VARCHAR".into(), "DOUBLE".into()],
            row_count: rows.len(),
            rows,
            truncated: false,
        }
    }

    #[test]
    fn unordered_results_compare_as_multisets() {
        let a = result(vec![
            vec![json!("x"), json!(1.0)],
            vec![json!("y"), json!(2.0)],
        ]);
        let b = result(vec![
            vec![json!("y"), json!(2.0)],
            vec![json!("x"), json!(1.0)],
        ]);
        assert!(same_result(&a, &b, false));
        assert!(!same_result(&a, &b, true));
    }

    #[test]
    fn float_noise_is_tolerated_but_real_differences_are_not() {
        let a = result(vec![vec![json!("x"), json!(0.1 + 0.2)]]);
        let b = result(vec![vec![json!("x"), json!(0.3)]]);
        let c = result(vec![vec![json!("x"), json!(0.31)]]);
        assert!(same_result(&a, &b, true));
        assert!(!same_result(&a, &c, true));
        let d = result(vec![vec![json!(null), json!(0.3)]]);
        assert!(!same_result(&b, &d, false));
    }
}
