//! The ASCII table mcp-server-motherduck 0.8.1 returns: Python's tabulate 0.10 "pretty" format
//! with a names row and a DuckDB type row, capped at 1,024 rows and 50,000 characters.
//!
//! The RFT tutorial parses this text, so it is reproduced byte for byte, quirks included: every
//! cell is centred and stripped, a header is two lines (`name`, `TYPE`), and a row whose cells
//! are all empty (all NULL) prints no line at all.

use sqlrft_core::{DuckType, ResultSet};

use crate::python::python_str;

/// Rows shown before the table is cut (motherduck's `max_rows`).
pub const MAX_ROWS: usize = 1024;
/// Characters kept before the text is cut (motherduck's `max_chars`).
pub const MAX_CHARS: usize = 50_000;

/// The whole `content[0].text` of a successful `query` call.
pub fn render(result: &ResultSet) -> String {
    render_capped(result, MAX_CHARS)
}

/// [`render`] with the text cut after `max_chars` characters (motherduck's `--max-chars`).
pub fn render_capped(result: &ResultSet, max_chars: usize) -> String {
    let types: Vec<DuckType> = result.types.iter().map(|t| DuckType::parse(t)).collect();
    let headers: Vec<String> = result
        .columns
        .iter()
        .zip(&result.types)
        .map(|(name, ty)| format!("{name}\n{ty}"))
        .collect();
    let rows: Vec<Vec<String>> = result
        .rows
        .iter()
        .take(MAX_ROWS)
        .map(|row| {
            row.iter()
                .zip(&types)
                .map(|(cell, ty)| python_str(cell, ty).unwrap_or_default())
                .collect()
        })
        .collect();
    let mut text = pretty_table(&headers, &rows);
    if text.chars().count() > max_chars {
        text = text.chars().take(max_chars).collect();
        if result.row_count > MAX_ROWS {
            text.push_str("\n\n⚠️  Showing first 1024 rows.");
        }
        text.push_str(&format!(
            "\n\n⚠️  Output truncated at {} characters.",
            thousands(max_chars)
        ));
    } else if result.row_count > MAX_ROWS {
        text.push_str("\n\n⚠️  Showing first 1024 rows.");
    }
    text
}

/// `n` as Python's `f"{n:,}"` writes it (`50,000`).
fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, digit) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(digit);
    }
    out
}

/// tabulate(rows, headers, tablefmt="pretty") for string cells.
pub fn pretty_table(headers: &[String], rows: &[Vec<String>]) -> String {
    let header_cells: Vec<Vec<&str>> = headers.iter().map(|h| split_lines(h)).collect();
    let row_cells: Vec<Vec<Vec<&str>>> = rows
        .iter()
        .map(|row| row.iter().map(|cell| split_lines(cell.trim())).collect())
        .collect();

    let widths: Vec<usize> = (0..headers.len())
        .map(|col| {
            let header = header_cells[col].iter().map(|l| l.chars().count());
            let cells = row_cells
                .iter()
                .flat_map(|row| row[col].iter().map(|l| l.chars().count()));
            header.chain(cells).max().unwrap_or(0)
        })
        .collect();

    let rule = {
        let segments: Vec<String> = widths.iter().map(|w| "-".repeat(w + 2)).collect();
        format!("+{}+", segments.join("+"))
    };
    let mut lines = vec![rule.clone()];
    push_row(&mut lines, &header_cells, &widths);
    lines.push(rule.clone());
    for row in &row_cells {
        push_row(&mut lines, row, &widths);
    }
    lines.push(rule);
    lines.join("\n")
}

/// Appends the text lines of one table row; a row whose cells have no lines prints nothing.
fn push_row(lines: &mut Vec<String>, cells: &[Vec<&str>], widths: &[usize]) {
    let height = cells.iter().map(Vec::len).max().unwrap_or(0);
    for i in 0..height {
        let padded: Vec<String> = cells
            .iter()
            .zip(widths)
            .map(|(cell, &width)| {
                format!(" {} ", center(cell.get(i).copied().unwrap_or(""), width))
            })
            .collect();
        lines.push(format!("|{}|", padded.join("|")));
    }
}

/// Python's `format(s, "^{width}")`. Widths are code-point counts, as tabulate measures them
/// when `wcwidth` is not installed (it is not in mcp-server-motherduck's environment).
fn center(text: &str, width: usize) -> String {
    let fill = width.saturating_sub(text.chars().count());
    let left = fill / 2;
    format!("{}{}{}", " ".repeat(left), text, " ".repeat(fill - left))
}

/// Python's `str.splitlines()` for the separators that occur in query results.
fn split_lines(text: &str) -> Vec<&str> {
    if text.is_empty() {
        return Vec::new();
    }
    let mut lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    if text.ends_with('\n') {
        lines.pop();
    }
    lines
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn result(columns: &[&str], types: &[&str], rows: Vec<Vec<serde_json::Value>>) -> ResultSet {
        ResultSet {
            columns: columns.iter().map(|s| s.to_string()).collect(),
            types: types.iter().map(|s| s.to_string()).collect(),
            row_count: rows.len(),
            rows,
            truncated: false,
        }
    }

    /// The `text` field of a captured motherduck reply.
    fn reference_text(file: &str) -> String {
        let path = format!(
            "{}/tests/fixtures/motherduck-0.8.1/{file}",
            env!("CARGO_MANIFEST_DIR")
        );
        let capture = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
        let data = capture
            .lines()
            .find_map(|l| l.strip_prefix("data: "))
            .expect("data line");
        let reply: serde_json::Value = serde_json::from_str(data).unwrap();
        reply["result"]["content"][0]["text"]
            .as_str()
            .unwrap()
            .to_string()
    }

    #[test]
    fn matches_captured_types_reply() {
        let set = result(
            &["n", "i", "f", "s"],
            &["INTEGER", "INTEGER", "DECIMAL(3,2)", "VARCHAR"],
            vec![vec![json!(null), json!(42), json!("3.14"), json!("hello")]],
        );
        assert_eq!(render(&set), reference_text("v08_query_types.txt"));
    }

    #[test]
    fn matches_captured_mixed_reply() {
        let set = result(
            &["id", "score", "name"],
            &["INTEGER", "DECIMAL(3,2)", "VARCHAR"],
            vec![
                vec![json!(1), json!("1.50"), json!("alpha")],
                vec![json!(2), json!(null), json!(null)],
                vec![json!(3), json!("3.25"), json!("gamma")],
            ],
        );
        assert_eq!(render(&set), reference_text("v08_query_mixed.txt"));
    }

    #[test]
    fn all_null_rows_print_nothing_like_tabulate() {
        let set = result(
            &["a", "b"],
            &["INTEGER", "INTEGER"],
            vec![vec![json!(null), json!(null)]],
        );
        assert_eq!(
            render(&set),
            "+---------+---------+\n|    a    |    b    |\n| INTEGER | INTEGER |\n+---------+---------+\n+---------+---------+"
        );
    }

    #[test]
    fn cells_are_stripped_and_centred() {
        let set = result(
            &["p", "u"],
            &["VARCHAR", "VARCHAR"],
            vec![vec![json!(" padded "), json!("Ünïcode")]],
        );
        assert_eq!(
            render(&set),
            "+---------+---------+\n|    p    |    u    |\n| VARCHAR | VARCHAR |\n+---------+---------+\n| padded  | Ünïcode |\n+---------+---------+"
        );
    }

    #[test]
    fn row_cap_adds_motherduck_warning() {
        let rows: Vec<_> = (0..1025).map(|i| vec![json!(i)]).collect();
        let text = render(&result(&["r"], &["BIGINT"], rows));
        assert!(
            text.ends_with("|  1023  |\n+--------+\n\n⚠️  Showing first 1024 rows."),
            "{}",
            &text[text.len() - 80..]
        );
        assert!(!text.contains("|  1024  |"));
    }

    #[test]
    fn char_cap_cuts_at_fifty_thousand_characters() {
        let set = result(&["w"], &["VARCHAR"], vec![vec![json!("x".repeat(60_000))]]);
        let text = render(&set);
        let (table, warning) = text.split_once("\n\n⚠️").unwrap();
        assert_eq!(table.chars().count(), MAX_CHARS);
        assert_eq!(warning, "  Output truncated at 50,000 characters.");
    }

    #[test]
    fn a_chosen_char_cap_cuts_there_and_says_so() {
        let set = result(&["w"], &["VARCHAR"], vec![vec![json!("x".repeat(3_000))]]);
        let text = render_capped(&set, 1_234);
        let (table, warning) = text.split_once("\n\n⚠️").unwrap();
        assert_eq!(table.chars().count(), 1_234);
        assert_eq!(warning, "  Output truncated at 1,234 characters.");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000_000), "1,000,000");
    }

    #[test]
    fn multiline_cells_span_several_lines() {
        let text = pretty_table(
            &["a\nX".into(), "b\nY".into()],
            &[vec!["a\nbc".into(), "1".into()]],
        );
        assert_eq!(
            text,
            "+----+---+\n| a  | b |\n| X  | Y |\n+----+---+\n| a  | 1 |\n| bc |   |\n+----+---+"
        );
    }
}
