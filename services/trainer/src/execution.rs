//! The execution reward in process: the completion's SQL runs read-only on the sandbox DuckDB
//! and its result is compared with the prompt's ground truth by the reward service's own engine,
//! so a trainer without a reward service scores exactly as one with it would.

use crate::reward::{RewardFunction, RewardGroup, RewardScore};
use anyhow::{Context, Result};
use futures::future::BoxFuture;
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_core::score::ScoreOptions;
use sqlrft_reward::{DEFAULT_GOLD_CACHE, EmbeddedExecutor, RewardEngine};
use std::path::Path;
use std::sync::Arc;

/// The execution reward in process: each completion's SQL runs on the sandbox DuckDB through the reward library, exactly as the reward service scores it.
pub struct ExecutionReward {
    name: String,
    engine: RewardEngine,
    options: ScoreOptions,
}

impl ExecutionReward {
    /// Opens `database` read-only (the same hardened pool the MCP server uses).
    pub fn open(name: impl Into<String>, database: &Path, options: ScoreOptions) -> Result<Self> {
        let name = name.into();
        options
            .validate()
            .map_err(|e| anyhow::anyhow!("reward `{name}`: {e}"))?;
        let executor = EmbeddedExecutor::open(database, Default::default()).with_context(|| {
            format!(
                "reward `{name}` cannot open its sandbox `{}`; pass the `sandbox.duckdb` that \
                 `sqlrft build` wrote (--sandbox or `database` in the reward's config entry)",
                database.display()
            )
        })?;
        Ok(Self {
            name,
            engine: RewardEngine::new(Arc::new(executor), DEFAULT_GOLD_CACHE)?,
            options,
        })
    }
}

impl RewardFunction for ExecutionReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, Result<Vec<RewardScore>>> {
        Box::pin(async move {
            // Datasets from `sqlrft distill` carry only the gold SQL, beside the messages.
            let mut extra = serde_json::Map::new();
            if let Some(sql) = group.prompt.gold_sql() {
                extra.insert("gold_sql".into(), sql.into());
            }
            let truth = GroundTruth::parse(Some(group.ground_truth), &extra).map_err(|e| {
                anyhow::anyhow!(
                    "prompt `{}` has an unusable ground truth: {e}",
                    group.prompt.id
                )
            })?;
            let evaluations = self
                .engine
                .score_group(group.completions, &truth, &self.options)
                .await;
            Ok(evaluations.into_iter().map(RewardScore::from).collect())
        })
    }
}
