//! SQL extraction from a model's completion, and the `<think>…</think><sql>…</sql>` format check.
//!
//! Where the SQL is, in order of preference:
//! 1. the last complete `<sql>…</sql>` block (the distillation format; a fence inside it is peeled);
//! 2. otherwise, with any `<think>…</think>` removed, the last ```` ```sql ```` fence (or the last
//!    plain ```` ``` ```` fence when none is marked sql);
//! 3. otherwise the bare text.
//!
//! A `<sql>` with no `</sql>`, or a `<think>` with no `</think>`, means the completion was cut off:
//! nothing is extracted, rather than executing reasoning text as SQL.

use serde::{Deserialize, Serialize};

/// Where the SQL was found.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SqlSource {
    /// Inside `<sql>…</sql>`.
    SqlTag,
    /// Inside a ```` ```sql ```` fence.
    Fence,
    /// The whole completion (after any reasoning), with no tag or fence.
    Bare,
}

/// The SQL found in a completion (if any) and a sentence saying where from, or why none.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extraction {
    /// The statement, when one was found.
    pub sql: Option<String>,
    /// Where it was found, when it was.
    pub source: Option<SqlSource>,
    /// Where the SQL came from, or why none was taken.
    pub note: String,
}

impl Extraction {
    fn found(sql: &str, source: SqlSource, note: String) -> Extraction {
        let sql = sql.trim();
        if sql.is_empty() {
            return Extraction::none(format!("{note}, but it is empty"));
        }
        Extraction {
            sql: Some(sql.to_string()),
            source: Some(source),
            note,
        }
    }

    fn none(note: String) -> Extraction {
        Extraction {
            sql: None,
            source: None,
            note,
        }
    }
}

/// Finds the SQL in `completion` (see the module docs for the rules).
pub fn extract_sql(completion: &str) -> Extraction {
    if let Some(open) = rfind_tag(completion, "<sql>") {
        let body = &completion[open + "<sql>".len()..];
        return match find_tag(body, "</sql>") {
            Some(close) => {
                let inner = &body[..close];
                match fenced(inner) {
                    Some(code) => {
                        Extraction::found(code, SqlSource::SqlTag, "SQL from <sql>…</sql>".into())
                    }
                    None => {
                        Extraction::found(inner, SqlSource::SqlTag, "SQL from <sql>…</sql>".into())
                    }
                }
            }
            None => Extraction::none(
                "found <sql> without </sql> (the completion was probably cut off)".into(),
            ),
        };
    }
    let text = match strip_think(completion) {
        Ok(text) => text,
        Err(note) => return Extraction::none(note),
    };
    if let Some(code) = fenced(&text) {
        return Extraction::found(code, SqlSource::Fence, "SQL from a ```sql fence".into());
    }
    if text.trim().is_empty() {
        return Extraction::none("the completion has no SQL (it is empty)".into());
    }
    Extraction::found(
        &text,
        SqlSource::Bare,
        "SQL from the bare completion (no <sql> tag or ``` fence)".into(),
    )
}

/// The completion without its `<think>…</think>` blocks; an unclosed block is an error.
fn strip_think(completion: &str) -> Result<String, String> {
    let mut rest = completion;
    let mut out = String::with_capacity(completion.len());
    while let Some(open) = find_tag(rest, "<think>") {
        out.push_str(&rest[..open]);
        let body = &rest[open + "<think>".len()..];
        match find_tag(body, "</think>") {
            Some(close) => rest = &body[close + "</think>".len()..],
            None => {
                return Err(
                    "found <think> without </think> (the completion was probably cut off)".into(),
                );
            }
        }
    }
    out.push_str(rest);
    // A stray closing tag (the template opened <think> in the prompt) ends the reasoning too.
    if let Some(close) = rfind_tag(&out, "</think>") {
        out = out[close + "</think>".len()..].to_string();
    }
    Ok(out)
}

/// The body of the last fence marked as SQL, else of the last plain fence. An unterminated
/// final fence runs to the end of the text.
fn fenced(text: &str) -> Option<&str> {
    let mut fences: Vec<(bool, &str)> = Vec::new();
    let mut rest = text;
    while let Some(open) = rest.find("```") {
        let after = &rest[open + 3..];
        let line_end = after.find('\n').unwrap_or(after.len());
        let info = after[..line_end].trim().to_ascii_lowercase();
        let body_start = (line_end + 1).min(after.len());
        let is_language = !info.is_empty()
            && info
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '+'));
        let is_sql = is_language
            && matches!(
                info.as_str(),
                "sql" | "duckdb" | "postgresql" | "postgres" | "sqlite" | "mysql"
            );
        // Text on the fence line that is not a language name is the start of the body.
        let body = if info.is_empty() || is_language {
            &after[body_start..]
        } else {
            after
        };
        match body.find("```") {
            Some(close) => {
                fences.push((is_sql, &body[..close]));
                rest = &body[close + 3..];
            }
            None => {
                fences.push((is_sql, body));
                break;
            }
        }
    }
    fences
        .iter()
        .rev()
        .find(|(is_sql, _)| *is_sql)
        .or(fences.last())
        .map(|(_, body)| *body)
}

fn find_tag(text: &str, tag: &str) -> Option<usize> {
    text.to_ascii_lowercase().find(tag)
}

fn rfind_tag(text: &str, tag: &str) -> Option<usize> {
    text.to_ascii_lowercase().rfind(tag)
}

/// How well a completion follows `<think>…</think><sql>…</sql>`.
#[derive(Debug, Clone, PartialEq)]
pub struct FormatCheck {
    /// Exactly one non-empty think block, then exactly one non-empty sql block, nothing else.
    pub strict: bool,
    /// The share of the four checks below that pass (0, 0.25, …, 1): the soft format signal.
    pub approx: f64,
    /// What failed, or that the format is right.
    pub reason: String,
}

/// Checks the distillation format: one `<think>` block, one `<sql>` block after it, nothing
/// outside them.
pub fn check_format(completion: &str) -> FormatCheck {
    let lower = completion.to_ascii_lowercase();
    let count = |tag: &str| lower.matches(tag).count();
    let one_think = count("<think>") == 1 && count("</think>") == 1;
    let one_sql = count("<sql>") == 1 && count("</sql>") == 1;
    let positions = (
        lower.find("<think>"),
        lower.find("</think>"),
        lower.find("<sql>"),
        lower.find("</sql>"),
    );
    let in_order =
        matches!(positions, (Some(a), Some(b), Some(c), Some(d)) if a < b && b <= c && c < d);
    let (think_body, sql_body) = match positions {
        (Some(a), Some(b), Some(c), Some(d)) if in_order => (
            completion[a + "<think>".len()..b].trim(),
            completion[c + "<sql>".len()..d].trim(),
        ),
        _ => ("", ""),
    };
    let nothing_outside = in_order
        && match positions {
            (Some(a), Some(b), Some(c), Some(d)) => {
                completion[..a].trim().is_empty()
                    && completion[b + "</think>".len()..c].trim().is_empty()
                    && completion[d + "</sql>".len()..].trim().is_empty()
            }
            _ => false,
        };
    let checks = [
        (one_think, "one <think>…</think> block"),
        (one_sql, "one <sql>…</sql> block"),
        (in_order, "the think block before the sql block"),
        (nothing_outside, "no text outside the two blocks"),
    ];
    let passed = checks.iter().filter(|(ok, _)| *ok).count();
    let strict = passed == checks.len() && !think_body.is_empty() && !sql_body.is_empty();
    let missing: Vec<&str> = checks
        .iter()
        .filter(|(ok, _)| !ok)
        .map(|(_, what)| *what)
        .collect();
    let reason = if strict {
        "follows <think>…</think><sql>…</sql>".to_string()
    } else if missing.is_empty() {
        "a <think> or <sql> block is empty".to_string()
    } else {
        format!("format wants {}", missing.join(", "))
    };
    FormatCheck {
        strict,
        approx: passed as f64 / checks.len() as f64,
        reason,
    }
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;

    #[test]
    fn takes_sql_from_the_sql_tag() {
        let e = extract_sql("<think>count rows</think>\n<sql>SELECT COUNT(*) FROM t</sql>");
        assert_eq!(e.sql.as_deref(), Some("SELECT COUNT(*) FROM t"));
        assert_eq!(e.source, Some(SqlSource::SqlTag));
        assert!(e.note.contains("<sql>"));
    }

    #[test]
    fn takes_the_last_sql_tag_and_peels_a_fence_inside_it() {
        let e =
            extract_sql("<sql>SELECT 1</sql> on second thought <sql>```sql\nSELECT 2\n```</sql>");
        assert_eq!(e.sql.as_deref(), Some("SELECT 2"));
    }

    #[test]
    fn sql_tags_are_case_insensitive() {
        let e = extract_sql("<SQL>SELECT 3</SQL>");
        assert_eq!(e.sql.as_deref(), Some("SELECT 3"));
    }

    #[test]
    fn an_unclosed_sql_tag_extracts_nothing() {
        let e = extract_sql("<think>x</think><sql>SELECT name FROM airp");
        assert_eq!(e.sql, None);
        assert!(e.note.contains("cut off"), "{}", e.note);
    }

    #[test]
    fn takes_sql_from_the_last_sql_fence() {
        let text = "Try this:\n```sql\nSELECT 1\n```\nor better:\n```sql\nSELECT 2;\n```\nDone.";
        let e = extract_sql(text);
        assert_eq!(e.sql.as_deref(), Some("SELECT 2;"));
        assert_eq!(e.source, Some(SqlSource::Fence));
    }

    #[test]
    fn prefers_a_fence_marked_sql_over_a_plain_one() {
        let text = "```sql\nSELECT 1\n```\nOutput:\n```\n| 1 |\n```";
        assert_eq!(extract_sql(text).sql.as_deref(), Some("SELECT 1"));
        let plain = "Here:\n```\nSELECT 5\n```";
        assert_eq!(extract_sql(plain).sql.as_deref(), Some("SELECT 5"));
        let one_line = "```SELECT 6```";
        assert_eq!(extract_sql(one_line).sql.as_deref(), Some("SELECT 6"));
    }

    #[test]
    fn an_unterminated_fence_runs_to_the_end() {
        let e = extract_sql("```sql\nSELECT 7 FROM t");
        assert_eq!(e.sql.as_deref(), Some("SELECT 7 FROM t"));
    }

    #[test]
    fn think_blocks_are_not_sql() {
        let e = extract_sql("<think>```sql\nSELECT wrong\n```</think>\nSELECT right");
        assert_eq!(e.sql.as_deref(), Some("SELECT right"));
        assert_eq!(e.source, Some(SqlSource::Bare));
        let cut = extract_sql("<think>I should SELECT");
        assert_eq!(cut.sql, None);
        assert!(cut.note.contains("</think>"), "{}", cut.note);
        // A reasoning model whose template opened <think> in the prompt only closes it.
        let open_in_prompt = extract_sql("the table is t</think>\nSELECT 1");
        assert_eq!(open_in_prompt.sql.as_deref(), Some("SELECT 1"));
    }

    #[test]
    fn bare_text_is_the_sql() {
        let e = extract_sql("  SELECT COUNT(*) FROM airlines \n");
        assert_eq!(e.sql.as_deref(), Some("SELECT COUNT(*) FROM airlines"));
        assert_eq!(e.source, Some(SqlSource::Bare));
        assert!(e.note.contains("bare"));
    }

    #[test]
    fn empty_completions_extract_nothing_and_say_so() {
        for text in [
            "",
            "   \n",
            "<sql>  </sql>",
            "<think>hm</think>",
            "```sql\n```",
        ] {
            let e = extract_sql(text);
            assert_eq!(e.sql, None, "{text:?}");
            assert!(e.note.contains("empty"), "{text:?}: {}", e.note);
        }
    }

    #[test]
    fn the_strict_format_is_think_then_sql_and_nothing_else() {
        let good = check_format("<think>\ncount rows\n</think>\n<sql>\nSELECT 1\n</sql>\n");
        assert!(good.strict, "{}", good.reason);
        assert_eq!(good.approx, 1.0);
        for bad in [
            "SELECT 1",
            "<sql>SELECT 1</sql>",
            "<think>x</think>",
            "<sql>SELECT 1</sql><think>x</think>",
            "Sure! <think>x</think><sql>SELECT 1</sql>",
            "<think>x</think><sql>SELECT 1</sql> Hope this helps",
            "<think>x</think><think>y</think><sql>SELECT 1</sql>",
            "<think></think><sql>SELECT 1</sql>",
            "<think>x</think><sql> </sql>",
        ] {
            assert!(!check_format(bad).strict, "{bad}");
        }
    }

    #[test]
    fn the_approximate_format_gives_credit_per_check() {
        assert_eq!(check_format("SELECT 1").approx, 0.0);
        // One sql block only: 1 of 4.
        assert_eq!(check_format("<sql>SELECT 1</sql>").approx, 0.25);
        // Both blocks in order but chatter after them: 3 of 4.
        let chatty = check_format("<think>x</think><sql>SELECT 1</sql> done");
        assert_eq!(chatty.approx, 0.75);
        assert!(chatty.reason.contains("outside"), "{}", chatty.reason);
    }

    proptest! {
        #[test]
        fn sql_wrapped_in_the_format_comes_back(
            think in "[a-zA-Z ,.]{0,40}",
            sql in "SELECT [a-z0-9_, ()*]{1,40}",
        ) {
            let completion = format!("<think>{think}</think>\n<sql>\n{sql}\n</sql>");
            let e = extract_sql(&completion);
            prop_assert_eq!(e.sql.as_deref(), Some(sql.trim()));
            let fenced = format!("Here you go:\n```sql\n{sql}\n```\n");
            let from_fence = extract_sql(&fenced);
            prop_assert_eq!(from_fence.sql.as_deref(), Some(sql.trim()));
        }

        #[test]
        fn extraction_and_format_checks_never_panic(text in "(<sql>|</sql>|<think>|</think>|```|sql|\n|[a-z ]{0,5}){0,12}") {
            let e = extract_sql(&text);
            prop_assert!(e.sql.is_some() || !e.note.is_empty());
            let f = check_format(&text);
            prop_assert!((0.0..=1.0).contains(&f.approx));
        }
    }
}
