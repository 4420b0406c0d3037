//! The reward engine: extract SQL, execute it, compare with the gold result, score. The reward
//! service calls it per request; the trainer and eval call it in process.

use std::collections::HashMap;
use std::num::NonZeroUsize;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::join_all;
use lru::LruCache;
use sqlrft_core::ResultSet;
use sqlrft_core::extract::extract_sql;
use sqlrft_core::ground_truth::GroundTruth;
use sqlrft_core::score::{Evaluation, ScoreOptions};
use sqlrft_duck::OpenError;
use sqlrft_duck::duckdb::Connection;

use crate::embedded::ExecutorSpec;
use crate::executor::{ExecError, SqlExecutor};
use crate::gold::Gold;

/// Gold SQL results an engine keeps unless told otherwise: one per prompt of a typical dataset.
pub const DEFAULT_GOLD_CACHE: usize = 4096;

/// How to build a [`RewardEngine`]: where SQL runs, and its cache and deadline.
#[derive(Debug, Clone)]
pub struct EngineOptions {
    /// Where the SQL runs.
    pub executor: ExecutorSpec,
    /// Gold SQL results remembered (keyed by database and SQL).
    pub gold_cache: usize,
    /// Time allowed for executing one query, past which the evaluation is invalid.
    pub eval_timeout: Duration,
}

impl EngineOptions {
    /// `executor` with [`DEFAULT_GOLD_CACHE`] gold results and 30 s per execution.
    pub fn new(executor: ExecutorSpec) -> Self {
        EngineOptions {
            executor,
            gold_cache: DEFAULT_GOLD_CACHE,
            eval_timeout: DEFAULT_EVAL_TIMEOUT,
        }
    }
}

const DEFAULT_EVAL_TIMEOUT: Duration = Duration::from_secs(30);

/// Scores completions against ground truths by executing their SQL on one database.
pub struct RewardEngine {
    executor: Arc<dyn SqlExecutor>,
    parser: OrderParser,
    /// Gold SQL results by (database identity, SQL); successes only, since a failure may be
    /// the infrastructure's and should be retried.
    gold_cache: Mutex<LruCache<(String, String), Arc<Gold>>>,
    /// Time allowed for one completion's execution, beyond which it is an infrastructure
    /// failure (the executor's own query timeout is shorter and scores 0).
    pub eval_timeout: Duration,
}

impl RewardEngine {
    /// An engine on `executor` keeping `gold_cache_size` gold results, 30 s per execution.
    pub fn new(executor: Arc<dyn SqlExecutor>, gold_cache_size: usize) -> Result<Self, OpenError> {
        Ok(RewardEngine {
            executor,
            parser: OrderParser::new()?,
            gold_cache: Mutex::new(LruCache::new(
                NonZeroUsize::new(gold_cache_size.max(1)).expect("at least one"),
            )),
            eval_timeout: DEFAULT_EVAL_TIMEOUT,
        })
    }

    /// Opens the executor `options` names and builds an engine on it.
    pub fn open(options: &EngineOptions) -> Result<Self, OpenError> {
        let mut engine = RewardEngine::new(options.executor.open()?, options.gold_cache)?;
        engine.eval_timeout = options.eval_timeout;
        Ok(engine)
    }

    /// Where this engine's SQL runs.
    pub fn executor(&self) -> &Arc<dyn SqlExecutor> {
        &self.executor
    }

    /// How many gold SQL results are cached now.
    pub fn cached_gold(&self) -> usize {
        self.gold_cache.lock().map_or(0, |cache| cache.len())
    }

    /// Scores one completion.
    pub async fn evaluate(
        &self,
        completion: &str,
        ground_truth: &GroundTruth,
        options: &ScoreOptions,
    ) -> Evaluation {
        self.score_group(
            std::slice::from_ref(&completion.to_string()),
            ground_truth,
            options,
        )
        .await
        .pop()
        .expect("one evaluation per completion")
    }

    /// Scores a group of completions (a GRPO group) against one ground truth: the gold result
    /// is resolved once, and identical queries in the group run once.
    pub async fn score_group(
        &self,
        completions: &[String],
        ground_truth: &GroundTruth,
        options: &ScoreOptions,
    ) -> Vec<Evaluation> {
        let gold = match self.resolve_gold(ground_truth).await {
            Ok(gold) => gold,
            Err(reason) => return vec![Evaluation::invalid(reason); completions.len()],
        };
        let extractions: Vec<_> = completions.iter().map(|c| extract_sql(c)).collect();
        let mut distinct: Vec<&str> = extractions
            .iter()
            .filter_map(|e| e.sql.as_deref())
            .collect();
        distinct.sort_unstable();
        distinct.dedup();
        let outcomes = join_all(distinct.iter().map(|sql| self.run(sql))).await;
        let by_sql: HashMap<&str, &Result<ResultSet, ExecError>> =
            distinct.iter().copied().zip(outcomes.iter()).collect();
        completions
            .iter()
            .zip(&extractions)
            .map(|(completion, extraction)| {
                let outcome = extraction.sql.as_deref().map(|sql| by_sql[sql]);
                gold.score(completion, extraction, outcome, options)
            })
            .collect()
    }

    /// Scores each completion against its own ground truth (several prompts in one call).
    pub async fn score_pairs(
        &self,
        pairs: &[(String, GroundTruth)],
        options: &ScoreOptions,
    ) -> Vec<Evaluation> {
        join_all(
            pairs
                .iter()
                .map(|(completion, truth)| self.evaluate(completion, truth, options)),
        )
        .await
    }

    async fn run(&self, sql: &str) -> Result<ResultSet, ExecError> {
        match tokio::time::timeout(self.eval_timeout, self.executor.query(sql)).await {
            Ok(result) => result,
            Err(_) => Err(ExecError::Infrastructure(format!(
                "{} did not answer within {:.1} s",
                self.executor.describe(),
                self.eval_timeout.as_secs_f64()
            ))),
        }
    }

    /// The gold rows and whether their order matters; `Err` is an infrastructure reason.
    pub async fn resolve_gold(&self, ground_truth: &GroundTruth) -> Result<Arc<Gold>, String> {
        match ground_truth {
            GroundTruth::Result {
                result,
                sql,
                ordered,
            } => {
                let ordered = match (ordered, sql) {
                    (Some(ordered), _) => *ordered,
                    (None, Some(sql)) => self.parser.orders_rows(sql).await.map_err(|e| {
                        format!("could not parse the gold SQL to see whether it orders rows: {e}")
                    })?,
                    (None, None) => false,
                };
                Ok(Arc::new(Gold {
                    result: result.clone(),
                    ordered,
                }))
            }
            GroundTruth::Sql { sql, ordered } => {
                let key = (self.executor.identity().to_string(), sql.clone());
                let cached = self
                    .gold_cache
                    .lock()
                    .ok()
                    .and_then(|mut c| c.get(&key).cloned());
                let gold = match cached {
                    Some(gold) => gold,
                    None => {
                        let result = self.run(sql).await.map_err(|err| match err {
                            ExecError::Query(failure) => {
                                format!(
                                    "the gold SQL failed, so nothing can be compared: {failure}"
                                )
                            }
                            ExecError::Infrastructure(reason) => {
                                format!("could not execute the gold SQL: {reason}")
                            }
                        })?;
                        let ordered = self.parser.orders_rows(sql).await.map_err(|e| {
                            format!(
                                "could not parse the gold SQL to see whether it orders rows: {e}"
                            )
                        })?;
                        let gold = Arc::new(Gold { result, ordered });
                        if let Ok(mut cache) = self.gold_cache.lock() {
                            cache.put(key, gold.clone());
                        }
                        gold
                    }
                };
                Ok(match ordered {
                    Some(ordered) if *ordered != gold.ordered => Arc::new(Gold {
                        result: gold.result.clone(),
                        ordered: *ordered,
                    }),
                    _ => gold,
                })
            }
        }
    }
}

/// Tells whether a query's outermost SELECT has ORDER BY, with DuckDB's own parser (on an
/// empty in-memory database: parsing needs no tables), remembering recent answers.
struct OrderParser {
    connection: Arc<Mutex<Connection>>,
    answers: Mutex<LruCache<String, bool>>,
}

impl OrderParser {
    fn new() -> Result<Self, OpenError> {
        Ok(OrderParser {
            connection: Arc::new(Mutex::new(sqlrft_duck::scratch_database()?)),
            answers: Mutex::new(LruCache::new(NonZeroUsize::new(4096).expect("non-zero"))),
        })
    }

    async fn orders_rows(&self, sql: &str) -> Result<bool, String> {
        if let Some(known) = self
            .answers
            .lock()
            .ok()
            .and_then(|mut a| a.get(sql).copied())
        {
            return Ok(known);
        }
        let connection = self.connection.clone();
        let text = sql.to_string();
        let parsed = tokio::task::spawn_blocking(move || {
            let connection = connection
                .lock()
                .map_err(|_| "the SQL parser's connection is poisoned".to_string())?;
            sqlrft_duck::parse_select(&connection, &text).map_err(|e| e.to_string())
        })
        .await
        .map_err(|e| format!("the SQL parser task failed: {e}"))??;
        let ordered = sqlrft_duck::outermost_order_by(&parsed);
        if let Ok(mut answers) = self.answers.lock() {
            answers.put(sql.to_string(), ordered);
        }
        Ok(ordered)
    }
}
