//! Executing SQL for distillation: is a source item usable (its gold SQL is one SELECT that
//! runs on its context), and does a teacher's answer return the gold result?
//!
//! Every check runs in a fresh in-memory DuckDB built from the item's `sql_context`
//! (hardened: no file, network or extension access), or on a read-only sandbox file for
//! datasets made by `sqlrft build`. The gold result, the sorting of query failures and the
//! judging are the reward library's ([`Gold`], [`ExecError`]), so "valid" means what a reward
//! of 1 means.

use std::fmt;
use std::path::PathBuf;

use sqlrft_core::ResultSet;
use sqlrft_core::extract::{check_format, extract_sql};
use sqlrft_core::score::{FORMAT_STRICT, RESULT_MATCH, ScoreOptions};
use sqlrft_duck::duckdb::Connection;
use sqlrft_duck::{Limits, QueryError, QueryErrorKind};
use sqlrft_reward::ExecError;
pub use sqlrft_reward::Gold;

/// The database an item's SQL runs on.
#[derive(Debug, Clone)]
pub enum Database {
    /// A fresh in-memory database built from the item's context (DDL + INSERTs).
    Context,
    /// A read-only sandbox file (for `sqlrft build` datasets, whose context is a schema text).
    Sandbox(PathBuf),
}

/// Why a source item cannot be distilled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DropReason {
    /// Short stable code, used for counting (`gold_not_select`, …).
    pub code: &'static str,
    /// Details a person can act on.
    pub detail: String,
}

impl DropReason {
    fn new(code: &'static str, detail: impl Into<String>) -> Self {
        DropReason {
            code,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for DropReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.code, self.detail)
    }
}

/// Task types that change data rather than read it (Gretel's `sql_task_type`).
fn is_retrieval_task(task_type: &str) -> bool {
    let t = task_type.to_ascii_lowercase();
    !["manipulation", "definition", "administration"]
        .iter()
        .any(|w| t.contains(w))
}

/// Opens the item's database: a scratch database with the context applied, or the sandbox.
fn open(context: &str, database: &Database) -> Result<Connection, DropReason> {
    match database {
        Database::Context => {
            let conn = sqlrft_duck::scratch_database()
                .map_err(|e| DropReason::new("internal_error", e.to_string()))?;
            conn.execute_batch(context)
                .map_err(|e| DropReason::new("context_failed", QueryError::from(e).to_string()))?;
            Ok(conn)
        }
        Database::Sandbox(path) => sqlrft_duck::open_read_only(path)
            .map_err(|e| DropReason::new("internal_error", e.to_string())),
    }
}

/// Checks a source item: a retrieval task whose gold SQL is a single SELECT that runs on its
/// context. Returns the gold result.
pub fn check_source(
    question: &str,
    context: &str,
    gold_sql: &str,
    task_type: Option<&str>,
    database: &Database,
    limits: &Limits,
) -> Result<Gold, DropReason> {
    if question.trim().is_empty() || gold_sql.trim().is_empty() {
        return Err(DropReason::new(
            "missing_fields",
            "the question or the gold SQL is empty",
        ));
    }
    if let Some(task) = task_type
        && !is_retrieval_task(task)
    {
        return Err(DropReason::new(
            "non_retrieval_task",
            format!("task type `{task}` changes data; only retrieval tasks are distilled"),
        ));
    }
    let conn = open(context, database)?;
    let gold = Gold::run(&conn, gold_sql, limits).map_err(|e| match e.kind() {
        QueryErrorKind::Refused => DropReason::new("gold_not_select", e.to_string()),
        _ => DropReason::new("gold_failed", e.to_string()),
    })?;
    if gold.result.truncated {
        return Err(DropReason::new(
            "gold_too_large",
            format!("the gold result has more than {} rows", limits.max_rows),
        ));
    }
    Ok(gold)
}

/// A teacher answer, parsed and (when validated) judged.
#[derive(Debug, Clone, PartialEq)]
pub struct Judged {
    /// The full answer text.
    pub generation: String,
    /// The reasoning between `<think>` and `</think>` (empty when absent).
    pub think: String,
    /// The extracted SQL (empty when none was found).
    pub sql: String,
    /// Whether the answer follows `<think>…</think><sql>…</sql>`.
    pub format_ok: bool,
    /// Result match against the gold result; `None` when not validated.
    pub valid: Option<bool>,
    /// Why it is (in)valid; `None` when not validated.
    pub reason: Option<String>,
    /// Ranking score: 1 for a match, partial credit otherwise.
    pub rank: f64,
}

/// The reasoning between the first `<think>` and the following `</think>`.
pub fn think_of(generation: &str) -> String {
    let lower = generation.to_ascii_lowercase();
    match (lower.find("<think>"), lower.find("</think>")) {
        (Some(a), Some(b)) if a < b => generation[a + "<think>".len()..b].trim().to_string(),
        _ => String::new(),
    }
}

/// Parses a teacher answer; with `gold`, executes its SQL and compares with the gold result.
pub fn judge(
    generation: &str,
    context: &str,
    database: &Database,
    gold: Option<&Gold>,
    limits: &Limits,
) -> Judged {
    let extraction = extract_sql(generation);
    let format = check_format(generation);
    let mut judged = Judged {
        generation: generation.to_string(),
        think: think_of(generation),
        sql: extraction.sql.clone().unwrap_or_default(),
        format_ok: format.strict,
        valid: None,
        reason: None,
        rank: f64::from(u8::from(format.strict)),
    };
    let Some(gold) = gold else {
        return judged;
    };
    let outcome = extraction
        .sql
        .as_deref()
        .map(|sql| run_candidate(sql, context, database, limits));
    let options = ScoreOptions {
        partial: true,
        ..ScoreOptions::default()
    };
    let evaluation = gold.score(generation, &extraction, outcome.as_ref(), &options);
    let metric = |name: &str| evaluation.metrics.get(name).map_or(0.0, |m| m.score);
    let matched = metric(RESULT_MATCH) == 1.0;
    judged.valid = Some(matched);
    judged.reason = Some(evaluation.reason.clone());
    // A match first, then partial credit; the format breaks ties.
    judged.rank = evaluation.score * 2.0 + metric(FORMAT_STRICT) * 0.5;
    judged
}

/// Runs a candidate query on a fresh copy of the item's database. A database that cannot be
/// made is the infrastructure's failure, not the answer's.
fn run_candidate(
    sql: &str,
    context: &str,
    database: &Database,
    limits: &Limits,
) -> Result<ResultSet, ExecError> {
    let conn = open(context, database)
        .map_err(|d| ExecError::Infrastructure(format!("could not open the database: {d}")))?;
    sqlrft_duck::parse_select(&conn, sql)
        .and_then(|_| sqlrft_duck::collect_result_set(&conn, sql, limits))
        .map_err(ExecError::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    const CONTEXT: &str = "CREATE TABLE t (id INT, city VARCHAR); \
        INSERT INTO t VALUES (1, 'Oslo'), (2, 'Rome'), (3, 'Oslo');";

    fn gold(sql: &str) -> Gold {
        check_source(
            "q",
            CONTEXT,
            sql,
            None,
            &Database::Context,
            &Limits::default(),
        )
        .unwrap()
    }

    #[test]
    fn gold_select_runs_and_records_order() {
        let g = gold("SELECT city, count(*) AS n FROM t GROUP BY city ORDER BY n DESC");
        assert!(g.ordered);
        assert_eq!(g.result.rows.len(), 2);
        assert!(!gold("SELECT count(*) FROM t").ordered);
    }

    #[test]
    fn non_select_gold_is_dropped() {
        let err = check_source(
            "q",
            CONTEXT,
            "DELETE FROM t WHERE id = 1",
            None,
            &Database::Context,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, "gold_not_select");
    }

    #[test]
    fn broken_context_and_gold_are_dropped_with_duckdb_messages() {
        let err = check_source(
            "q",
            "CREATE TABLE t (id INT; INSERT",
            "SELECT 1",
            None,
            &Database::Context,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, "context_failed");
        let err = check_source(
            "q",
            CONTEXT,
            "SELECT nope FROM t",
            None,
            &Database::Context,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, "gold_failed");
        assert!(err.detail.contains("nope"), "{err}");
    }

    #[test]
    fn data_manipulation_tasks_are_dropped() {
        let err = check_source(
            "q",
            CONTEXT,
            "SELECT 1",
            Some("data manipulation"),
            &Database::Context,
            &Limits::default(),
        )
        .unwrap_err();
        assert_eq!(err.code, "non_retrieval_task");
        assert!(
            check_source(
                "q",
                CONTEXT,
                "SELECT 1",
                Some("analytics and reporting"),
                &Database::Context,
                &Limits::default()
            )
            .is_ok()
        );
    }

    #[test]
    fn an_equivalent_query_is_valid_a_wrong_one_is_not() {
        let g = gold("SELECT count(*) FROM t WHERE city = 'Oslo'");
        let ok = judge(
            "<think>count Oslo rows</think><sql>SELECT sum(CASE WHEN city='Oslo' THEN 1 ELSE 0 END) AS c FROM t</sql>",
            CONTEXT,
            &Database::Context,
            Some(&g),
            &Limits::default(),
        );
        assert_eq!(ok.valid, Some(true), "{:?}", ok.reason);
        assert_eq!(ok.think, "count Oslo rows");
        let wrong = judge(
            "<think>x</think><sql>SELECT count(*) FROM t</sql>",
            CONTEXT,
            &Database::Context,
            Some(&g),
            &Limits::default(),
        );
        assert_eq!(wrong.valid, Some(false));
        assert!(ok.rank > wrong.rank);
    }

    #[test]
    fn answers_that_write_are_refused_not_run() {
        let g = gold("SELECT count(*) FROM t");
        let j = judge(
            "<think>x</think><sql>DROP TABLE t</sql>",
            CONTEXT,
            &Database::Context,
            Some(&g),
            &Limits::default(),
        );
        assert_eq!(j.valid, Some(false));
        assert!(j.reason.unwrap().contains("refused"));
    }

    #[test]
    fn unvalidated_answers_are_parsed_only() {
        let j = judge(
            "<think>a</think>\n<sql>SELECT 1</sql>",
            CONTEXT,
            &Database::Context,
            None,
            &Limits::default(),
        );
        assert_eq!(
            (j.valid, j.sql.as_str(), j.format_ok),
            (None, "SELECT 1", true)
        );
    }
}
