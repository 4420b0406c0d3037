//! The gold side of a comparison, and how one attempt at it is scored.

use sqlrft_core::ResultSet;
use sqlrft_core::extract::{Extraction, check_format};
use sqlrft_core::score::{Attempt, Evaluation, QueryFailure, ScoreOptions, score};

use crate::executor::ExecError;

/// The gold side of a comparison: its rows and whether their order matters.
#[derive(Debug, Clone, PartialEq)]
pub struct Gold {
    /// What the gold SQL returned (or the ground truth's rows).
    pub result: ResultSet,
    /// Whether row order matters: the gold SQL's outermost query has ORDER BY, or the ground
    /// truth says so.
    pub ordered: bool,
}

impl Gold {
    /// Scores one completion: `extraction` is its SQL (from
    /// [`extract_sql`](sqlrft_core::extract::extract_sql)) and `outcome` what running that SQL
    /// gave (`None` when there was no SQL). An infrastructure failure makes the evaluation
    /// invalid rather than 0: it says nothing about the completion.
    pub fn score(
        &self,
        completion: &str,
        extraction: &Extraction,
        outcome: Option<&Result<ResultSet, ExecError>>,
        options: &ScoreOptions,
    ) -> Evaluation {
        let outcome: Option<Result<ResultSet, QueryFailure>> = match outcome {
            None => None,
            Some(Ok(rows)) => Some(Ok(rows.clone())),
            Some(Err(ExecError::Query(failure))) => Some(Err(failure.clone())),
            Some(Err(ExecError::Infrastructure(reason))) => {
                return Evaluation::invalid(format!(
                    "{}; could not execute it: {reason}",
                    extraction.note
                ));
            }
        };
        let format = check_format(completion);
        let attempt = Attempt {
            extraction,
            format: &format,
            outcome: outcome.as_ref(),
        };
        score(attempt, &self.result, self.ordered, options)
    }
}

#[cfg(feature = "embedded")]
impl Gold {
    /// Runs gold SQL on `connection` within `limits`: its rows, and whether its outermost query
    /// orders them. The SQL must be one SELECT (DuckDB's parser decides:
    /// [`QueryErrorKind::Refused`](sqlrft_duck::QueryErrorKind::Refused) otherwise).
    pub fn run(
        connection: &sqlrft_duck::duckdb::Connection,
        sql: &str,
        limits: &sqlrft_duck::Limits,
    ) -> Result<Gold, sqlrft_duck::QueryError> {
        let ast = sqlrft_duck::parse_select(connection, sql)?;
        Ok(Gold {
            result: sqlrft_duck::collect_result_set(connection, sql, limits)?,
            ordered: sqlrft_duck::outermost_order_by(&ast),
        })
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;
    use sqlrft_core::extract::extract_sql;
    use sqlrft_core::score::FailureKind;

    use super::*;

    fn gold() -> Gold {
        Gold {
            result: ResultSet {
                columns: vec!["n".into()],
                types: vec!["BIGINT".into()],
                rows: vec![vec![json!(6)]],
                row_count: 1,
                truncated: false,
            },
            ordered: false,
        }
    }

    #[test]
    fn an_infrastructure_failure_is_invalid_and_a_query_failure_scores_zero() {
        let completion = "SELECT COUNT(*) FROM cities";
        let extraction = extract_sql(completion);
        let options = ScoreOptions::default();
        let down = Err(ExecError::Infrastructure("the MCP server is down".into()));
        let evaluation = gold().score(completion, &extraction, Some(&down), &options);
        assert!(!evaluation.is_score_valid);
        assert!(
            evaluation.reason.contains("the MCP server is down"),
            "{evaluation:?}"
        );
        let failed = Err(ExecError::Query(QueryFailure {
            kind: FailureKind::Sql,
            message: "Binder Error: no table cities".into(),
        }));
        let evaluation = gold().score(completion, &extraction, Some(&failed), &options);
        assert!(evaluation.is_score_valid);
        assert_eq!(evaluation.score, 0.0);
        let ran = Ok(gold().result);
        let evaluation = gold().score(completion, &extraction, Some(&ran), &options);
        assert_eq!((evaluation.score, evaluation.is_score_valid), (1.0, true));
    }
}
