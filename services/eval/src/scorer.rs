//! Scoring answers exactly as training does: the reward engine in process on the sandbox
//! (`--db`), or the reward service's `/v1/evaluate/batch` (`--reward-url`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde_json::Value;
use sqlrft_core::score::{Evaluation, ScoreOptions};
use sqlrft_reward::wire::{BatchRequest, Truths};
use sqlrft_reward::{EmbeddedExecutor, RewardClient, RewardEngine};

use crate::dataset::EvalItem;

/// Gold results worth caching: one per item of a large test set.
const GOLD_CACHE_ENTRIES: usize = 8192;

/// Where answers are scored.
pub enum Scorer {
    Embedded(RewardEngine),
    Service(RewardClient),
}

impl Scorer {
    /// The reward engine on `db`, opened read-only with the reward service's defaults.
    pub fn embedded(db: &Path) -> Result<Scorer> {
        let executor = EmbeddedExecutor::open(db, Default::default()).with_context(|| {
            format!(
                "could not open the sandbox `{}`; pass the sandbox.duckdb that `sqlrft build` wrote",
                db.display()
            )
        })?;
        Ok(Scorer::Embedded(RewardEngine::new(
            Arc::new(executor),
            GOLD_CACHE_ENTRIES,
        )?))
    }

    /// The reward service at `base_url` (its root, e.g. `http://127.0.0.1:8090`).
    pub fn service(base_url: &str, token: Option<String>, timeout: Duration) -> Result<Scorer> {
        Ok(Scorer::Service(RewardClient::new(
            base_url, token, timeout,
        )?))
    }

    pub fn describe(&self) -> String {
        match self {
            Scorer::Embedded(engine) => engine.executor().describe(),
            Scorer::Service(client) => client.endpoint().to_string(),
        }
    }

    /// Scores every completion of `item`. A scoring failure is an invalid evaluation (the
    /// infrastructure failed, not the model), never a 0.
    pub async fn score(&self, item: &EvalItem, completions: &[String]) -> Vec<Evaluation> {
        match self {
            Scorer::Embedded(engine) => {
                engine
                    .score_group(completions, &item.ground_truth, &ScoreOptions::default())
                    .await
            }
            Scorer::Service(client) => {
                let request = BatchRequest {
                    completions: completions.to_vec(),
                    truths: Truths::Shared(
                        item.record
                            .get("ground_truth")
                            .cloned()
                            .unwrap_or(Value::Null),
                    ),
                    messages: Vec::new(),
                    gold_sql: item.gold_sql.clone(),
                    options: None,
                };
                match client.score_batch(&request).await {
                    Ok(results) => results,
                    Err(err) => vec![Evaluation::invalid(err.to_string()); completions.len()],
                }
            }
        }
    }
}

/// Wall time during which at least one scoring was in progress: the share of a run that
/// scoring occupies, however many run side by side.
#[derive(Debug, Default)]
pub struct BusyClock {
    state: Mutex<BusyState>,
}

#[derive(Debug, Default)]
struct BusyState {
    active: usize,
    since: Option<Instant>,
    busy: Duration,
}

/// Marks scoring in progress until dropped.
pub struct Busy<'a>(&'a BusyClock);

impl BusyClock {
    pub fn enter(&self) -> Busy<'_> {
        if let Ok(mut s) = self.state.lock() {
            if s.active == 0 {
                s.since = Some(Instant::now());
            }
            s.active += 1;
        }
        Busy(self)
    }

    /// Busy time so far.
    pub fn busy(&self) -> Duration {
        self.state.lock().map_or(Duration::ZERO, |s| {
            s.busy
                + s.since
                    .filter(|_| s.active > 0)
                    .map_or(Duration::ZERO, |t| t.elapsed())
        })
    }
}

impl Drop for Busy<'_> {
    fn drop(&mut self) {
        if let Ok(mut s) = self.0.state.lock() {
            s.active -= 1;
            if s.active == 0
                && let Some(since) = s.since.take()
            {
                s.busy += since.elapsed();
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn overlapping_scorings_count_once() {
        let clock = BusyClock::default();
        {
            let _a = clock.enter();
            let _b = clock.enter();
            std::thread::sleep(Duration::from_millis(30));
        }
        std::thread::sleep(Duration::from_millis(30));
        let busy = clock.busy();
        assert!(busy >= Duration::from_millis(30), "{busy:?}");
        assert!(busy < Duration::from_millis(55), "{busy:?}");
    }
}
