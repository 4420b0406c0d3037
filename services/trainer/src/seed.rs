//! The seed project's three GRPO rewards, by its names and with its numbers:
//! `match_format_exactly`, `match_format_approximately` and `check_sql_reward`
//! (the seed's `rewards/format_reward.py` and `rewards/sql_reward.py`), and the preset that
//! trains with them (`--rewards seed`, `configs/seed.toml`).
//!
//! Python's semantics are kept where they decide a score: `re.search` with
//! `DOTALL | MULTILINE` (so `^`/`$` match at any line break), `str.count` (non-overlapping),
//! `str.strip` (Python's whitespace set) and the seed's SQL extraction (`<sql>(.*?)</sql>`,
//! first match, stripped).

use crate::reward::{RewardFunction, RewardGroup, RewardScore};
use crate::train::RewardSpec;
use anyhow::{Result, bail};
use futures::future::BoxFuture;
use regex::Regex;
use std::path::PathBuf;
use std::sync::LazyLock;

/// The seed's reward functions and their weights (TRL's `reward_weights` default: 1 each).
pub const SEED_REWARDS: [(&str, f64); 3] = [
    (MATCH_FORMAT_EXACTLY, 1.0),
    (MATCH_FORMAT_APPROXIMATELY, 1.0),
    (CHECK_SQL_REWARD, 1.0),
];
/// The seed's strict format reward's name.
pub const MATCH_FORMAT_EXACTLY: &str = "match_format_exactly";
/// The seed's partial format reward's name.
pub const MATCH_FORMAT_APPROXIMATELY: &str = "match_format_approximately";
/// The seed's SQL reward's name.
pub const CHECK_SQL_REWARD: &str = "check_sql_reward";

/// The `[[rewards]]` of the seed preset: each function under its own name, as its own kind.
pub fn seed_reward_specs() -> Vec<RewardSpec> {
    SEED_REWARDS
        .iter()
        .map(|(name, weight)| RewardSpec {
            weight: *weight,
            ..RewardSpec::new(*name, *name)
        })
        .collect()
}

/// `^<think>\n.*?\n</think>\n<sql>\n.*?\n</sql>$` under `re.DOTALL | re.MULTILINE`. Rust's
/// `(?m)` anchors match where Python's do (start/end of the text and beside each `\n`), and
/// `(?s)` lets `.` cross lines; whether a match exists does not depend on laziness.
static EXACT_FORMAT: LazyLock<Regex> = LazyLock::new(|| {
    Regex::new(r"(?ms)^<think>\n.*?\n</think>\n<sql>\n.*?\n</sql>$").expect("valid regex")
});

/// 1.1 when the completion has the exact layout somewhere (`re.search`), else 0.
pub fn match_format_exactly(completion: &str) -> f64 {
    if EXACT_FORMAT.is_match(completion) {
        1.1
    } else {
        0.0
    }
}

/// +0.125 for each of `<think>\n`, `\n</think>\n`, `\n<sql>\n`, `\n</sql>` that appears
/// exactly once (non-overlapping count, as `str.count`), −1.0 for each that does not.
pub fn match_format_approximately(completion: &str) -> f64 {
    ["<think>\n", "\n</think>\n", "\n<sql>\n", "\n</sql>"]
        .iter()
        .map(|tag| {
            if completion.matches(tag).count() == 1 {
                0.125
            } else {
                -1.0
            }
        })
        .sum()
}

/// Python's `str.isspace`: Unicode White_Space plus the four separators `\x1c`–`\x1f`.
fn is_python_space(c: char) -> bool {
    c.is_whitespace() || ('\x1c'..='\x1f').contains(&c)
}

/// Python's `str.strip()`.
pub fn python_strip(s: &str) -> &str {
    s.trim_matches(is_python_space)
}

/// The seed's `extract_sql`: the text between the first `<sql>` and the next `</sql>`,
/// stripped; `None` when there is no such pair.
pub fn extract_sql(completion: &str) -> Option<&str> {
    let start = completion.find("<sql>")? + "<sql>".len();
    let end = start + completion[start..].find("</sql>")?;
    Some(python_strip(&completion[start..end]))
}

/// `check_sql_reward` given the extracted SQL and whether it ran: 0 without SQL; −1.5 when it
/// failed; else 1.2, plus 1.2 when it equals the answer or 0.7 when it does after stripping.
pub fn check_sql_score(pred: Option<&str>, answer: &str, runs: impl FnOnce(&str) -> bool) -> f64 {
    let Some(pred) = pred else {
        return 0.0;
    };
    if !runs(pred) {
        return -1.5;
    }
    let bonus = if pred == answer {
        1.2
    } else if python_strip(pred) == python_strip(answer) {
        0.7
    } else {
        0.0
    };
    1.2 + bonus
}

/// `check_sql_reward`: runs each completion's SQL on a fresh in-memory DuckDB built from the
/// prompt's `sql_context` (the sandbox read-only when the row has none) and compares the SQL
/// text with the row's answer (`answer`, else `sql`).
pub struct CheckSqlReward {
    name: String,
    /// Where rows without a `sql_context` run (`--sandbox`, or the entry's `database`).
    sandbox: Option<PathBuf>,
}

impl CheckSqlReward {
    /// Needs the `execution` feature (DuckDB in this process).
    pub fn new(name: impl Into<String>, sandbox: Option<PathBuf>) -> Result<Self> {
        let name = name.into();
        if !cfg!(feature = "execution") {
            bail!(
                "reward `{name}` runs SQL on a scratch DuckDB in process, but this sqlrft was \
                 built without the `execution` feature (no DuckDB)"
            );
        }
        Ok(Self { name, sandbox })
    }

    /// Checks that every prompt carries what this reward reads, naming the first that does not.
    pub fn check_prompts(&self, prompts: &[crate::rollout::Prompt]) -> Result<()> {
        for p in prompts {
            if p.gold_sql().is_none() {
                bail!(
                    "reward `{}` compares the SQL with the row's answer, but row `{}` has no \
                     `answer` or `sql` field",
                    self.name,
                    p.id
                );
            }
            if p.sql_context.trim().is_empty() && self.sandbox.is_none() {
                bail!(
                    "reward `{}` runs the SQL after the row's `sql_context` (its DDL and \
                     INSERTs), but row `{}` has none; pass --sandbox data/sandbox.duckdb to run \
                     rows without one on the sandbox `sqlrft build` wrote",
                    self.name,
                    p.id
                );
            }
        }
        Ok(())
    }
}

#[cfg(feature = "execution")]
fn sql_runs(context: &str, sandbox: Option<&std::path::Path>, sql: &str) -> Result<bool, String> {
    use sqlrft_reward::{ExecError, ItemDatabase, run_on_item_database};
    let database = match (context.trim().is_empty(), sandbox) {
        (false, _) => ItemDatabase::Context(context),
        (true, Some(path)) => ItemDatabase::Sandbox(path),
        (true, None) => return Err("the row has no sql_context and there is no sandbox".into()),
    };
    match run_on_item_database(database, sql) {
        Ok(_) => Ok(true),
        Err(ExecError::Query(_)) => Ok(false),
        Err(ExecError::Infrastructure(reason)) => Err(reason),
    }
}

#[cfg(not(feature = "execution"))]
fn sql_runs(_: &str, _: Option<&std::path::Path>, _: &str) -> Result<bool, String> {
    Err("built without the `execution` feature".into())
}

impl RewardFunction for CheckSqlReward {
    fn name(&self) -> &str {
        &self.name
    }

    fn score_group<'a>(
        &'a self,
        group: &'a RewardGroup<'a>,
    ) -> BoxFuture<'a, Result<Vec<RewardScore>>> {
        let answer = group.prompt.sql.clone();
        let context = group.prompt.sql_context.clone();
        let sandbox = self.sandbox.clone();
        let completions = group.completions.to_vec();
        Box::pin(async move {
            // DuckDB work is blocking; keep it off the async workers.
            let scores = tokio::task::spawn_blocking(move || {
                completions
                    .iter()
                    .map(|c| {
                        let mut failure = None;
                        let score = check_sql_score(extract_sql(c), &answer, |sql| {
                            sql_runs(&context, sandbox.as_deref(), sql).unwrap_or_else(|e| {
                                failure = Some(e);
                                false
                            })
                        });
                        match failure {
                            Some(reason) => RewardScore {
                                score: f64::NAN,
                                is_score_valid: false,
                                metrics: Default::default(),
                                reason: format!("could not run the SQL: {reason}"),
                            },
                            None => RewardScore::valid(score),
                        }
                    })
                    .collect()
            })
            .await?;
            Ok(scores)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const GOOD: &str = "<think>\ncount the rows\n</think>\n<sql>\nSELECT count(*) FROM t\n</sql>";

    #[test]
    fn match_format_exactly_is_a_multiline_search() {
        assert_eq!(match_format_exactly(GOOD), 1.1);
        // MULTILINE: `^` may match after any newline and `$` before one, so text around the
        // block on lines of its own still matches.
        assert_eq!(match_format_exactly(&format!("Sure.\n{GOOD}\nDone.")), 1.1);
        // ...but not text on the same line as the tags.
        assert_eq!(match_format_exactly(&format!("Sure. {GOOD}")), 0.0);
        assert_eq!(match_format_exactly(&format!("{GOOD} done")), 0.0);
        // DOTALL: the bodies may span lines; they may also be empty.
        assert_eq!(
            match_format_exactly("<think>\na\nb\n</think>\n<sql>\nSELECT 1\nFROM t\n</sql>"),
            1.1
        );
        assert_eq!(
            match_format_exactly("<think>\n\n</think>\n<sql>\n\n</sql>"),
            1.1
        );
        // The newlines are required.
        assert_eq!(
            match_format_exactly("<think>x</think><sql>SELECT 1</sql>"),
            0.0
        );
        assert_eq!(
            match_format_exactly("<think>\nx\n</think><sql>\nSELECT 1\n</sql>"),
            0.0
        );
    }

    #[test]
    fn match_format_approximately_counts_each_marker() {
        // All four markers exactly once: 4 × 0.125 = 0.5.
        assert_eq!(match_format_approximately(GOOD), 0.5);
        // No newlines around the tags: `<think>\n` etc. all absent, 4 × −1.0 = −4.0.
        assert_eq!(
            match_format_approximately("<think>x</think><sql>SELECT 1</sql>"),
            -4.0
        );
        // `<think>\n` twice → −1.0; the other three once → 3 × 0.125; total −0.625.
        assert_eq!(
            match_format_approximately("<think>\n<think>\nx\n</think>\n<sql>\nSELECT 1\n</sql>"),
            -0.625
        );
        // Only `\n</sql>` is missing (the SQL ends the line before `</sql>` without a newline):
        // 3 × 0.125 − 1.0 = −0.625.
        assert_eq!(
            match_format_approximately("<think>\nx\n</think>\n<sql>\nSELECT 1</sql>"),
            -0.625
        );
    }

    #[test]
    fn extraction_is_the_seeds() {
        assert_eq!(extract_sql(GOOD), Some("SELECT count(*) FROM t"));
        assert_eq!(extract_sql("<sql> a </sql><sql>b</sql>"), Some("a"));
        assert_eq!(extract_sql("<sql>unclosed"), None);
        assert_eq!(extract_sql("</sql>SELECT 1<sql>"), None);
        // Python strips the ASCII separators \x1c–\x1f, Rust's trim does not.
        assert_eq!(extract_sql("<sql>\x1cSELECT 1\x1f</sql>"), Some("SELECT 1"));
    }

    #[test]
    fn check_sql_score_is_the_seeds_arithmetic() {
        let runs = |_: &str| true;
        let fails = |_: &str| false;
        // No SQL extracted → 0 (and the SQL is never run).
        assert_eq!(
            check_sql_score(None, "SELECT 1", |_| panic!("not run")),
            0.0
        );
        // Runs and equals the answer: 1.2 + 1.2 = 2.4.
        assert_eq!(check_sql_score(Some("SELECT 1"), "SELECT 1", runs), 2.4);
        // Runs, equal only after stripping the answer: 1.2 + 0.7 = 1.9.
        assert_eq!(check_sql_score(Some("SELECT 1"), " SELECT 1\n", runs), 1.9);
        // Runs, different text: 1.2.
        assert_eq!(check_sql_score(Some("SELECT 2"), "SELECT 1", runs), 1.2);
        // Fails to run: −1.5, even when it equals the answer.
        assert_eq!(check_sql_score(Some("SELECT 1"), "SELECT 1", fails), -1.5);
    }

    #[cfg(feature = "execution")]
    #[tokio::test]
    async fn check_sql_reward_runs_on_the_rows_context() {
        use crate::rollout::Prompt;
        let prompt = Prompt {
            id: "1".into(),
            sql: "SELECT count(*) FROM t WHERE city = 'Oslo'".into(),
            sql_context: "CREATE TABLE t (id INT, city VARCHAR); \
                          INSERT INTO t VALUES (1, 'Oslo'), (2, 'Rome');"
                .into(),
            ..Default::default()
        };
        let completions: Vec<String> = [
            // The answer's text: valid and exact, 1.2 + 1.2 = 2.4.
            "<think>\nfilter\n</think>\n<sql>\nSELECT count(*) FROM t WHERE city = 'Oslo'\n</sql>",
            // Another query that runs: 1.2.
            "<think>\nall\n</think>\n<sql>\nSELECT count(*) FROM t\n</sql>",
            // A column that does not exist: −1.5.
            "<think>\n?\n</think>\n<sql>\nSELECT town FROM t\n</sql>",
            // No <sql> block: 0.
            "I don't know",
        ]
        .map(String::from)
        .to_vec();
        let gt = serde_json::Value::Null;
        let group = RewardGroup {
            prompt: &prompt,
            ground_truth: &gt,
            completions: &completions,
        };
        let reward = CheckSqlReward::new(CHECK_SQL_REWARD, None).unwrap();
        let scores: Vec<f64> = reward
            .score_group(&group)
            .await
            .unwrap()
            .into_iter()
            .map(|s| s.score)
            .collect();
        assert_eq!(scores, [2.4, 1.2, -1.5, 0.0]);
    }

    #[test]
    fn rows_without_what_the_reward_reads_are_named() {
        use crate::rollout::Prompt;
        let reward = CheckSqlReward {
            name: CHECK_SQL_REWARD.into(),
            sandbox: None,
        };
        let no_context = Prompt {
            id: "7".into(),
            sql: "SELECT 1".into(),
            ..Default::default()
        };
        let e = reward.check_prompts(&[no_context]).unwrap_err().to_string();
        assert!(
            e.contains("`7`") && e.contains("sql_context") && e.contains("--sandbox"),
            "{e}"
        );
        let no_answer = Prompt {
            id: "8".into(),
            sql_context: "CREATE TABLE t (a INT)".into(),
            ..Default::default()
        };
        let e = reward.check_prompts(&[no_answer]).unwrap_err().to_string();
        assert!(e.contains("`8`") && e.contains("`answer` or `sql`"), "{e}");
    }
}
