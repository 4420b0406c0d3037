//! What happened to one answer, read off the reward engine's evaluation, and the journal line
//! that records one item's answers.

use serde::{Deserialize, Serialize};
use sqlrft_core::extract::extract_sql;
use sqlrft_core::score::{
    EXECUTES, Evaluation, FORMAT_STRICT, FailureKind, QueryFailure, RESULT_MATCH, SQL_EXTRACTED,
};

/// The fate of one answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// The result matches the gold result.
    Correct,
    /// The SQL ran and returned other rows.
    WrongResult,
    /// DuckDB rejected the SQL, or it was not a single read-only SELECT.
    SqlError,
    /// The SQL ran past the time limit.
    Timeout,
    /// No SQL could be found in the answer.
    NoSql,
    /// Scoring itself failed (sandbox or reward service); says nothing about the model.
    Unscored,
}

impl Outcome {
    /// Every outcome, best first.
    pub const ALL: [Outcome; 6] = [
        Outcome::Correct,
        Outcome::WrongResult,
        Outcome::SqlError,
        Outcome::Timeout,
        Outcome::NoSql,
        Outcome::Unscored,
    ];

    /// A short name for reports.
    pub fn label(self) -> &'static str {
        match self {
            Outcome::Correct => "correct",
            Outcome::WrongResult => "wrong result",
            Outcome::SqlError => "SQL error",
            Outcome::Timeout => "timeout",
            Outcome::NoSql => "no SQL",
            Outcome::Unscored => "not scored",
        }
    }
}

/// One answer of a model to an item, as scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    /// The answer's text.
    pub completion: String,
    /// The SQL the reward engine's extraction finds in it.
    pub sql: Option<String>,
    /// What happened to it.
    pub outcome: Outcome,
    /// The reward engine's score.
    pub score: f64,
    /// Follows `<think>…</think><sql>…</sql>` exactly.
    pub format_valid: bool,
    /// The reward engine's reason for the score.
    pub reason: String,
}

impl SampleRecord {
    /// Reads the evaluation of `completion`.
    pub fn new(completion: String, evaluation: &Evaluation) -> SampleRecord {
        let metric = |name: &str| evaluation.metrics.get(name);
        let on = |name: &str| metric(name).is_some_and(|m| m.score >= 1.0);
        let outcome = if !evaluation.is_score_valid {
            Outcome::Unscored
        } else if on(RESULT_MATCH) {
            Outcome::Correct
        } else if !on(SQL_EXTRACTED) {
            Outcome::NoSql
        } else if on(EXECUTES) {
            Outcome::WrongResult
        } else if metric(EXECUTES).is_some_and(|m| m.reason.starts_with(&timeout_prefix())) {
            Outcome::Timeout
        } else {
            Outcome::SqlError
        };
        SampleRecord {
            sql: extract_sql(&completion).sql,
            completion,
            outcome,
            score: evaluation.score,
            format_valid: on(FORMAT_STRICT),
            reason: evaluation.reason.clone(),
        }
    }
}

/// How `sqlrft-core` words a timeout at the start of the `executes` metric's reason.
fn timeout_prefix() -> String {
    let text = QueryFailure {
        kind: FailureKind::Timeout,
        message: String::new(),
    }
    .to_string();
    text.trim_end_matches([' ', ':']).to_string()
}

/// One journal line: a model's answers to one item, scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ItemRecord {
    /// The item's id.
    pub item: String,
    /// One entry per sample, in sampling order.
    pub samples: Vec<SampleRecord>,
    /// Prompt tokens the answers cost.
    pub prompt_tokens: u64,
    /// Completion tokens the answers cost.
    pub completion_tokens: u64,
    /// Seconds per request.
    pub latencies: Vec<f64>,
}

impl ItemRecord {
    /// The item counts as solved when any sample is correct (pass@k; with one sample, plain
    /// execution accuracy).
    pub fn correct(&self) -> bool {
        self.samples.iter().any(|s| s.outcome == Outcome::Correct)
    }

    /// Whether every sample was scored; otherwise a rerun scores it again (without asking).
    pub fn scored(&self) -> bool {
        self.samples.iter().all(|s| s.outcome != Outcome::Unscored)
    }

    /// The first sample: what the report shows and what the rates count.
    pub fn first(&self) -> Option<&SampleRecord> {
        self.samples.first()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use sqlrft_core::ResultSet;
    use sqlrft_core::extract::check_format;
    use sqlrft_core::score::{Attempt, ScoreOptions, score};

    fn gold() -> ResultSet {
        ResultSet {
            columns: vec!["n".into()],
            types: vec!["BIGINT".into()],
            rows: vec![vec![serde_json::json!(5)]],
            row_count: 1,
            truncated: false,
        }
    }

    fn record(completion: &str, outcome: Option<Result<ResultSet, QueryFailure>>) -> SampleRecord {
        let extraction = extract_sql(completion);
        let format = check_format(completion);
        let evaluation = score(
            Attempt {
                extraction: &extraction,
                format: &format,
                outcome: outcome.as_ref(),
            },
            &gold(),
            false,
            &ScoreOptions::default(),
        );
        SampleRecord::new(completion.to_string(), &evaluation)
    }

    #[test]
    fn outcomes_follow_the_reward_engines_metrics() {
        let good = "<think>count</think><sql>SELECT 5 AS n</sql>";
        let r = record(good, Some(Ok(gold())));
        assert_eq!(r.outcome, Outcome::Correct);
        assert!(r.format_valid);
        assert_eq!(r.sql.as_deref(), Some("SELECT 5 AS n"));
        let mut other = gold();
        other.rows = vec![vec![serde_json::json!(6)]];
        assert_eq!(record(good, Some(Ok(other))).outcome, Outcome::WrongResult);
        let failure = |kind| {
            Some(Err(QueryFailure {
                kind,
                message: "boom".into(),
            }))
        };
        assert_eq!(
            record(good, failure(FailureKind::Timeout)).outcome,
            Outcome::Timeout
        );
        assert_eq!(
            record(good, failure(FailureKind::Sql)).outcome,
            Outcome::SqlError
        );
        assert_eq!(
            record(good, failure(FailureKind::Refused)).outcome,
            Outcome::SqlError
        );
        let cut = record("<think>I will count", None);
        assert_eq!(cut.outcome, Outcome::NoSql);
        assert!(!cut.format_valid);
        let invalid = SampleRecord::new("x".into(), &Evaluation::invalid("sandbox gone"));
        assert_eq!(invalid.outcome, Outcome::Unscored);
    }
}
