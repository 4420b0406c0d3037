//! Scoring answers exactly as training does: the reward engine in process on the sandbox
//! (`--db`), or the reward service's `/v1/evaluate/batch` (`--reward-url`).

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use serde::Deserialize;
use serde_json::Value;
use sqlrft_core::score::{Evaluation, ScoreOptions};
use sqlrft_reward::{EmbeddedExecutor, RewardEngine};

use crate::dataset::EvalItem;

/// Gold results worth caching: one per item of a large test set.
const GOLD_CACHE_ENTRIES: usize = 8192;

/// Where answers are scored.
pub enum Scorer {
    Embedded(RewardEngine),
    Service {
        client: reqwest::Client,
        endpoint: String,
        token: Option<String>,
    },
}

#[derive(Deserialize)]
struct BatchResponse {
    results: Vec<Evaluation>,
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
        let client = reqwest::Client::builder().timeout(timeout).build()?;
        Ok(Scorer::Service {
            client,
            endpoint: format!("{}/v1/evaluate/batch", base_url.trim_end_matches('/')),
            token,
        })
    }

    pub fn describe(&self) -> String {
        match self {
            Scorer::Embedded(engine) => engine.executor().describe(),
            Scorer::Service { endpoint, .. } => endpoint.clone(),
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
            Scorer::Service {
                client,
                endpoint,
                token,
            } => match self
                .ask_service(client, endpoint, token.as_deref(), item, completions)
                .await
            {
                Ok(results) => results,
                Err(err) => vec![Evaluation::invalid(format!("{err:#}")); completions.len()],
            },
        }
    }

    async fn ask_service(
        &self,
        client: &reqwest::Client,
        endpoint: &str,
        token: Option<&str>,
        item: &EvalItem,
        completions: &[String],
    ) -> Result<Vec<Evaluation>> {
        // The record's own fields carry the ground truth's extras (`sql`, `ordered`, …), as
        // Fireworks passes a dataset row's fields to an evaluator.
        let mut body = item.record.clone();
        body.remove("messages");
        body.insert(
            "completions".into(),
            Value::Array(completions.iter().cloned().map(Value::String).collect()),
        );
        let mut request = client.post(endpoint).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        let response = request.send().await.with_context(|| {
            format!(
                "the reward service `{endpoint}` is unreachable; is `sqlrft reward serve` running?"
            )
        })?;
        let status = response.status();
        if !status.is_success() {
            let text = response.text().await.unwrap_or_default();
            anyhow::bail!("the reward service `{endpoint}` answered {status}: {text}");
        }
        let parsed: BatchResponse = response
            .json()
            .await
            .with_context(|| format!("the reward service `{endpoint}` sent an unexpected body"))?;
        if parsed.results.len() != completions.len() {
            anyhow::bail!(
                "the reward service returned {} results for {} completions",
                parsed.results.len(),
                completions.len()
            );
        }
        Ok(parsed.results)
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
