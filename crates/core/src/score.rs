//! Reward maths: from an extracted query, its execution outcome and the gold result to a score and
//! named metrics. Pure functions; executing SQL is the caller's job.
//!
//! - `score` is 1.0 for a matching result. Otherwise 0, or with `partial: true`
//!   `0.1 (it ran) + 0.3 × cell-F1`. SQL errors, timeouts and refused (non-SELECT) statements
//!   score 0. With `format_gate: true` a completion that does not follow
//!   `<think>…</think><sql>…</sql>` scores 0 whatever its result.
//! - Every part is a named metric (see the `*` constants) so a user can weight them.
//! - An [`Evaluation`] with `is_score_valid: false` means the score says nothing about the
//!   completion (infrastructure failed); callers must not train on it.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::compare::{CompareMode, CompareOptions, cell_f1, compare};
use crate::extract::{Extraction, FormatCheck};
use crate::result::ResultSet;

/// 1 when the completion follows `<think>…</think><sql>…</sql>` exactly.
pub const FORMAT_STRICT: &str = "format_strict";
/// Share of the format checks that pass (0 to 1 in quarters).
pub const FORMAT_APPROX: &str = "format_approx";
/// 1 when SQL was found in the completion.
pub const SQL_EXTRACTED: &str = "sql_extracted";
/// 1 when the SQL ran without error.
pub const EXECUTES: &str = "executes";
/// 1 when the result matches the gold result.
pub const RESULT_MATCH: &str = "result_match";
/// F1 of the result's cells against the gold cells.
pub const CELL_F1: &str = "cell_f1";
/// `0.1 × executes + 0.3 × cell_f1` (1 on a match): the partial-credit score.
pub const PARTIAL_CREDIT: &str = "partial_credit";

/// What a request may tune about scoring.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct ScoreOptions {
    /// Give partial credit (0.1 for running, up to 0.3 more by cell-F1) to wrong results.
    pub partial: bool,
    /// Score 0 unless the completion follows `<think>…</think><sql>…</sql>`.
    pub format_gate: bool,
    /// Relative tolerance for numbers (see [`crate::compare`]).
    pub tolerance: f64,
    /// Absolute tolerance for numbers near zero.
    pub abs_tolerance: f64,
    /// `exact` (default) or BIRD-style `set` comparison.
    pub mode: CompareMode,
}

impl Default for ScoreOptions {
    fn default() -> Self {
        let compare = CompareOptions::default();
        ScoreOptions {
            partial: false,
            format_gate: false,
            tolerance: compare.tolerance,
            abs_tolerance: compare.abs_tolerance,
            mode: compare.mode,
        }
    }
}

impl ScoreOptions {
    /// Comparison options for a gold result whose row order does (or does not) matter.
    pub fn compare_options(&self, ordered: bool) -> CompareOptions {
        CompareOptions {
            tolerance: self.tolerance,
            abs_tolerance: self.abs_tolerance,
            ordered,
            mode: self.mode,
        }
    }

    /// Checks the numbers are usable; the error names the field.
    pub fn validate(&self) -> Result<(), String> {
        for (name, value) in [
            ("tolerance", self.tolerance),
            ("abs_tolerance", self.abs_tolerance),
        ] {
            if !(value.is_finite() && value >= 0.0) {
                return Err(format!(
                    "`{name}` must be a non-negative number, got {value}"
                ));
            }
        }
        Ok(())
    }
}

/// Why a query produced no rows. Every kind scores 0; none makes the score invalid.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureKind {
    /// DuckDB rejected or failed the query (syntax, binder, runtime error).
    Sql,
    /// The query ran past its time limit.
    Timeout,
    /// Not a single read-only SELECT (DDL, DML, several statements, …).
    Refused,
    /// The result was larger than the byte limit.
    TooLarge,
}

/// A query that failed, and DuckDB's (or the gate's) message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct QueryFailure {
    /// Which way it failed, so rewards can treat timeouts apart from errors.
    pub kind: FailureKind,
    /// The message as DuckDB (or the gate) gave it.
    pub message: String,
}

impl std::fmt::Display for QueryFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self.kind {
            FailureKind::Sql => "the query failed",
            FailureKind::Timeout => "the query timed out",
            FailureKind::Refused => "the statement was refused",
            FailureKind::TooLarge => "the result was too large",
        };
        write!(f, "{what}: {}", self.message)
    }
}

/// One named part of an evaluation, in the Fireworks `MetricResult` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricResult {
    /// The part's score, in [0, 1].
    pub score: f64,
    /// Why it scored so.
    pub reason: String,
    /// False when the part could not be judged (e.g. nothing ran).
    pub is_score_valid: bool,
}

/// The answer for one completion, in the Fireworks `EvaluateResult` shape.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Evaluation {
    /// The combined score the trainer optimises.
    pub score: f64,
    /// A sentence saying what decided the score.
    pub reason: String,
    /// False when the completion could not be judged (e.g. the gold SQL failed).
    pub is_score_valid: bool,
    #[serde(default)]
    /// The named parts (`result_match`, `cell_f1`, …) the score was made of.
    pub metrics: BTreeMap<String, MetricResult>,
}

impl Evaluation {
    /// An evaluation whose score means nothing: the infrastructure failed, not the completion.
    pub fn invalid(reason: impl Into<String>) -> Evaluation {
        Evaluation {
            score: 0.0,
            reason: reason.into(),
            is_score_valid: false,
            metrics: BTreeMap::new(),
        }
    }

    fn metric(&mut self, name: &str, score: f64, reason: impl Into<String>) {
        self.metrics.insert(
            name.to_string(),
            MetricResult {
                score,
                reason: reason.into(),
                is_score_valid: true,
            },
        );
    }
}

/// Everything known about one completion once its SQL has (or has not) been executed.
#[derive(Debug, Clone, Copy)]
pub struct Attempt<'a> {
    /// The SQL taken from the completion, if any.
    pub extraction: &'a Extraction,
    /// How well the completion kept to the answer format.
    pub format: &'a FormatCheck,
    /// `None` when no SQL was extracted, so nothing ran.
    pub outcome: Option<&'a Result<ResultSet, QueryFailure>>,
}

/// Scores one attempt against the gold result.
pub fn score(
    attempt: Attempt<'_>,
    gold: &ResultSet,
    ordered: bool,
    options: &ScoreOptions,
) -> Evaluation {
    if gold.truncated {
        return Evaluation::invalid(format!(
            "the gold result was cut off at {} rows by the row limit, so it cannot be compared; \
             raise the reward service's row limit",
            gold.rows.len()
        ));
    }
    let Attempt {
        extraction,
        format,
        outcome,
    } = attempt;
    let mut evaluation = Evaluation {
        score: 0.0,
        reason: String::new(),
        is_score_valid: true,
        metrics: BTreeMap::new(),
    };
    evaluation.metric(
        FORMAT_STRICT,
        f64::from(u8::from(format.strict)),
        &format.reason,
    );
    evaluation.metric(FORMAT_APPROX, format.approx, &format.reason);
    evaluation.metric(
        SQL_EXTRACTED,
        f64::from(u8::from(extraction.sql.is_some())),
        &extraction.note,
    );

    let (result_reason, executes, matched, f1) = match outcome {
        None => (String::from("nothing to run"), false, false, 0.0),
        Some(Err(failure)) => (failure.to_string(), false, false, 0.0),
        Some(Ok(rows)) => {
            let comparison = compare(rows, gold, &options.compare_options(ordered));
            if comparison.matched {
                (
                    format!("result matches ({})", comparison.reason),
                    true,
                    true,
                    1.0,
                )
            } else {
                let f1 = cell_f1(rows, gold, &options.compare_options(ordered));
                (
                    format!("wrong result: {}", comparison.reason),
                    true,
                    false,
                    f1,
                )
            }
        }
    };
    let partial_credit = if matched {
        1.0
    } else {
        0.1 * f64::from(u8::from(executes)) + 0.3 * f1
    };
    evaluation.metric(
        EXECUTES,
        f64::from(u8::from(executes)),
        if executes {
            "the query ran"
        } else {
            &result_reason
        },
    );
    evaluation.metric(RESULT_MATCH, f64::from(u8::from(matched)), &result_reason);
    evaluation.metric(CELL_F1, f1, "F1 of predicted cells against gold cells");
    evaluation.metric(
        PARTIAL_CREDIT,
        partial_credit,
        "0.1 if it runs + 0.3 × cell_f1; 1 on a match",
    );

    let gated = options.format_gate && !format.strict;
    evaluation.score = if gated {
        0.0
    } else if matched {
        1.0
    } else if options.partial {
        partial_credit
    } else {
        0.0
    };
    evaluation.reason = if gated {
        format!(
            "format gate: {} (score 0); {}; {}",
            format.reason, extraction.note, result_reason
        )
    } else if extraction.sql.is_none() {
        extraction.note.clone()
    } else {
        format!("{}; {}", extraction.note, result_reason)
    };
    evaluation
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::extract::{check_format, extract_sql};

    fn rows(values: serde_json::Value) -> ResultSet {
        let rows: Vec<Vec<serde_json::Value>> = serde_json::from_value(values).unwrap();
        ResultSet {
            columns: vec!["a".into(), "b".into()],
            types: vec!["INTEGER".into(), "VARCHAR".into()],
            row_count: rows.len(),
            rows,
            truncated: false,
        }
    }

    fn run(
        completion: &str,
        outcome: Option<Result<ResultSet, QueryFailure>>,
        gold: &ResultSet,
        options: &ScoreOptions,
    ) -> Evaluation {
        let extraction = extract_sql(completion);
        let format = check_format(completion);
        score(
            Attempt {
                extraction: &extraction,
                format: &format,
                outcome: outcome.as_ref(),
            },
            gold,
            false,
            options,
        )
    }

    const GOOD: &str = "<think>easy</think><sql>SELECT a, b FROM t</sql>";

    #[test]
    fn a_matching_result_scores_one() {
        let gold = rows(json!([[1, "x"], [2, "y"]]));
        let e = run(
            GOOD,
            Some(Ok(rows(json!([[2, "y"], [1, "x"]])))),
            &gold,
            &ScoreOptions::default(),
        );
        assert_eq!(e.score, 1.0);
        assert!(e.is_score_valid);
        assert_eq!(e.metrics[RESULT_MATCH].score, 1.0);
        assert_eq!(e.metrics[CELL_F1].score, 1.0);
        assert!(e.reason.contains("result matches"), "{}", e.reason);
    }

    #[test]
    fn a_wrong_result_scores_zero_unless_partial() {
        let gold = rows(json!([[1, "x"], [2, "y"]]));
        let half = rows(json!([[1, "x"], [3, "z"]]));
        let strict = run(
            GOOD,
            Some(Ok(half.clone())),
            &gold,
            &ScoreOptions::default(),
        );
        assert_eq!(strict.score, 0.0);
        assert!(strict.reason.contains("wrong result"), "{}", strict.reason);
        let partial = ScoreOptions {
            partial: true,
            ..ScoreOptions::default()
        };
        let e = run(GOOD, Some(Ok(half)), &gold, &partial);
        // Two of four cells shared: F1 = 0.5, so 0.1 + 0.3 × 0.5.
        assert!((e.metrics[CELL_F1].score - 0.5).abs() < 1e-12);
        assert!((e.score - 0.25).abs() < 1e-12, "{}", e.score);
        assert_eq!(e.metrics[EXECUTES].score, 1.0);
    }

    #[test]
    fn partial_credit_never_reaches_a_match() {
        let gold = rows(json!([[1, "x"]]));
        let partial = ScoreOptions {
            partial: true,
            ..ScoreOptions::default()
        };
        // Same cells, wrong column pairing is impossible here, so use an extra row: F1 < 1.
        let e = run(
            GOOD,
            Some(Ok(rows(json!([[1, "x"], [1, "x"]])))),
            &gold,
            &partial,
        );
        assert!(e.score < 0.4 + 1e-12 && e.score > 0.1, "{}", e.score);
    }

    #[test]
    fn errors_timeouts_and_refusals_score_zero_even_with_partial_credit() {
        let gold = rows(json!([[1, "x"]]));
        let partial = ScoreOptions {
            partial: true,
            ..ScoreOptions::default()
        };
        for kind in [
            FailureKind::Sql,
            FailureKind::Timeout,
            FailureKind::Refused,
            FailureKind::TooLarge,
        ] {
            let failure = QueryFailure {
                kind,
                message: "boom".into(),
            };
            let e = run(GOOD, Some(Err(failure)), &gold, &partial);
            assert_eq!(e.score, 0.0, "{kind:?}");
            assert!(e.is_score_valid, "a failing query is the model's fault");
            assert_eq!(e.metrics[EXECUTES].score, 0.0);
            assert!(e.reason.contains("boom"), "{}", e.reason);
        }
    }

    #[test]
    fn no_sql_scores_zero_and_says_why() {
        let gold = rows(json!([[1, "x"]]));
        let e = run("<think>I wonder", None, &gold, &ScoreOptions::default());
        assert_eq!(e.score, 0.0);
        assert!(e.is_score_valid);
        assert_eq!(e.metrics[SQL_EXTRACTED].score, 0.0);
        assert!(e.reason.contains("cut off"), "{}", e.reason);
    }

    #[test]
    fn the_format_gate_zeroes_a_right_answer_in_the_wrong_format() {
        let gold = rows(json!([[1, "x"]]));
        let gate = ScoreOptions {
            format_gate: true,
            ..ScoreOptions::default()
        };
        let bare = run("SELECT a, b FROM t", Some(Ok(gold.clone())), &gold, &gate);
        assert_eq!(bare.score, 0.0);
        assert_eq!(
            bare.metrics[RESULT_MATCH].score, 1.0,
            "the match is still reported"
        );
        assert!(bare.reason.starts_with("format gate"), "{}", bare.reason);
        let formatted = run(GOOD, Some(Ok(gold.clone())), &gold, &gate);
        assert_eq!(formatted.score, 1.0);
        let ungated = run(
            "SELECT a, b FROM t",
            Some(Ok(gold.clone())),
            &gold,
            &ScoreOptions::default(),
        );
        assert_eq!(ungated.score, 1.0);
        assert_eq!(ungated.metrics[FORMAT_STRICT].score, 0.0);
    }

    #[test]
    fn every_part_is_a_named_metric() {
        let gold = rows(json!([[1, "x"]]));
        let e = run(
            GOOD,
            Some(Ok(gold.clone())),
            &gold,
            &ScoreOptions::default(),
        );
        for name in [
            FORMAT_STRICT,
            FORMAT_APPROX,
            SQL_EXTRACTED,
            EXECUTES,
            RESULT_MATCH,
            CELL_F1,
            PARTIAL_CREDIT,
        ] {
            assert!(e.metrics.contains_key(name), "{name}");
        }
        let wire = serde_json::to_value(&e).unwrap();
        assert_eq!(wire["metrics"]["format_strict"]["score"], json!(1.0));
        assert_eq!(wire["is_score_valid"], json!(true));
    }

    #[test]
    fn a_truncated_gold_result_makes_the_score_invalid() {
        let mut gold = rows(json!([[1, "x"]]));
        gold.truncated = true;
        let e = run(
            GOOD,
            Some(Ok(rows(json!([[1, "x"]])))),
            &gold,
            &ScoreOptions::default(),
        );
        assert!(!e.is_score_valid);
        assert!(e.reason.contains("row limit"), "{}", e.reason);
    }

    #[test]
    fn options_validate_their_numbers() {
        assert!(ScoreOptions::default().validate().is_ok());
        let bad = ScoreOptions {
            tolerance: -1.0,
            ..ScoreOptions::default()
        };
        assert!(bad.validate().unwrap_err().contains("`tolerance`"));
        let parsed: ScoreOptions =
            serde_json::from_value(json!({"partial": true, "mode": "set"})).unwrap();
        assert!(parsed.partial);
        assert_eq!(parsed.mode, CompareMode::Set);
        assert_eq!(parsed.tolerance, 1e-6);
    }
}
