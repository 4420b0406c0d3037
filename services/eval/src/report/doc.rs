//! A small document model that renders to Markdown and to one self-contained HTML page, so both
//! reports say the same thing.

use std::fmt::Write;

/// A piece of the report.
#[derive(Debug, Clone)]
pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    /// A paragraph in bold: the report's answers.
    Callout(String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    Code(String),
    /// A PNG: linked by name in Markdown, embedded in the HTML.
    Image {
        file: String,
        alt: String,
        png: Vec<u8>,
    },
    /// A collapsible section (a plain section in Markdown).
    Details {
        summary: String,
        blocks: Vec<Block>,
    },
}

/// Renders `blocks` as GitHub Markdown.
pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        markdown_block(&mut out, block);
    }
    out
}

fn markdown_block(out: &mut String, block: &Block) {
    match block {
        Block::Heading(level, text) => {
            let _ = writeln!(out, "{} {}\n", "#".repeat(*level as usize), text);
        }
        Block::Paragraph(text) => {
            let _ = writeln!(out, "{text}\n");
        }
        Block::Callout(text) => {
            let _ = writeln!(out, "**{text}**\n");
        }
        Block::Table { header, rows } => {
            let cell = |s: &String| s.replace('|', "\\|").replace('\n', " ");
            let _ = writeln!(
                out,
                "| {} |",
                header.iter().map(cell).collect::<Vec<_>>().join(" | ")
            );
            let _ = writeln!(out, "|{}", "---|".repeat(header.len()));
            for row in rows {
                let _ = writeln!(
                    out,
                    "| {} |",
                    row.iter().map(cell).collect::<Vec<_>>().join(" | ")
                );
            }
            out.push('\n');
        }
        Block::Code(text) => {
            let _ = writeln!(out, "```sql\n{}\n```\n", text.trim_end());
        }
        Block::Image { file, alt, .. } => {
            let _ = writeln!(out, "![{alt}]({file})\n");
        }
        Block::Details { summary, blocks } => {
            let _ = writeln!(out, "#### {summary}\n");
            for b in blocks {
                markdown_block(out, b);
            }
        }
    }
}

/// Renders `blocks` as one HTML page with its styles and images inline: it opens offline and
/// can be mailed as one file.
pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut body = String::new();
    for block in blocks {
        html_block(&mut body, block);
    }
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n\
         <meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n\
         <title>{}</title>\n<style>{STYLE}</style>\n</head>\n<body>\n<main>\n{body}</main>\n</body>\n</html>\n",
        escape(title)
    )
}

const STYLE: &str = "
body { font-family: -apple-system, 'Segoe UI', Helvetica, Arial, sans-serif; color: #1f2328;
       background: #fff; margin: 0; line-height: 1.5; }
main { max-width: 1100px; margin: 0 auto; padding: 24px 32px 64px; }
h1 { font-size: 1.8em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.35em; margin-top: 1.8em; border-bottom: 1px solid #eaeef2; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 8px 0 16px; font-size: .92em; }
th, td { border: 1px solid #d0d7de; padding: 5px 10px; text-align: left; vertical-align: top; }
th { background: #f6f8fa; }
tr:nth-child(even) td { background: #fbfcfd; }
td.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
pre { background: #f6f8fa; border-radius: 6px; padding: 10px 12px; overflow-x: auto;
      font-size: .88em; white-space: pre-wrap; }
code { font-family: ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
.callout { background: #ddf4ff; border-left: 4px solid #0969da; padding: 8px 14px; font-weight: 600; }
details { border: 1px solid #d0d7de; border-radius: 6px; padding: 6px 12px; margin: 8px 0; }
summary { cursor: pointer; font-weight: 600; }
img { max-width: 100%; height: auto; border: 1px solid #eaeef2; }
";

fn numeric(text: &str) -> bool {
    let t = text.trim_start_matches(['+', '-', '−', '$']);
    t.chars().next().is_some_and(|c| c.is_ascii_digit())
        && t.chars()
            .all(|c| c.is_ascii_digit() || ".,%/ ()–-pps<>".contains(c))
}

fn html_block(out: &mut String, block: &Block) {
    match block {
        Block::Heading(level, text) => {
            let _ = writeln!(out, "<h{level}>{}</h{level}>", escape(text));
        }
        Block::Paragraph(text) => {
            let _ = writeln!(out, "<p>{}</p>", escape(text));
        }
        Block::Callout(text) => {
            let _ = writeln!(out, "<p class=\"callout\">{}</p>", escape(text));
        }
        Block::Table { header, rows } => {
            out.push_str("<table>\n<thead><tr>");
            for h in header {
                let _ = write!(out, "<th>{}</th>", escape(h));
            }
            out.push_str("</tr></thead>\n<tbody>\n");
            for row in rows {
                out.push_str("<tr>");
                for cell in row {
                    if numeric(cell) {
                        let _ = write!(out, "<td class=\"num\">{}</td>", escape(cell));
                    } else if cell.contains('\n') || cell.len() > 80 {
                        let _ = write!(out, "<td><code>{}</code></td>", escape(cell));
                    } else {
                        let _ = write!(out, "<td>{}</td>", escape(cell));
                    }
                }
                out.push_str("</tr>\n");
            }
            out.push_str("</tbody>\n</table>\n");
        }
        Block::Code(text) => {
            let _ = writeln!(out, "<pre><code>{}</code></pre>", escape(text.trim_end()));
        }
        Block::Image { alt, png, .. } => {
            use base64::Engine;
            let data = base64::engine::general_purpose::STANDARD.encode(png);
            let _ = writeln!(
                out,
                "<p><img alt=\"{}\" src=\"data:image/png;base64,{data}\"></p>",
                escape(alt)
            );
        }
        Block::Details { summary, blocks } => {
            let _ = writeln!(out, "<details>\n<summary>{}</summary>", escape(summary));
            for b in blocks {
                html_block(out, b);
            }
            out.push_str("</details>\n");
        }
    }
}

/// Escapes text for HTML element content and attribute values.
pub fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<Block> {
        vec![
            Block::Heading(1, "Report".into()),
            Block::Table {
                header: vec!["model".into(), "accuracy".into()],
                rows: vec![vec!["a|b".into(), "42.2%".into()]],
            },
            Block::Code("SELECT '<x>' FROM t".into()),
            Block::Image {
                file: "accuracy.png".into(),
                alt: "accuracy".into(),
                png: vec![0x89, b'P', b'N', b'G'],
            },
        ]
    }

    #[test]
    fn markdown_escapes_table_pipes_and_links_images() {
        let md = markdown(&sample());
        assert!(md.contains("| a\\|b | 42.2% |"), "{md}");
        assert!(md.contains("![accuracy](accuracy.png)"), "{md}");
        assert!(md.contains("```sql\nSELECT '<x>' FROM t\n```"), "{md}");
    }

    #[test]
    fn html_is_escaped_and_self_contained() {
        let page = html("R & D", &sample());
        assert!(page.contains("<title>R &amp; D</title>"));
        assert!(page.contains("SELECT &#39;&lt;x&gt;&#39; FROM t"));
        assert!(
            page.contains("src=\"data:image/png;base64,iVBORw==\""),
            "{page}"
        );
        assert!(!page.contains("http://") && !page.contains("https://"));
        assert!(page.contains("<td class=\"num\">42.2%</td>"));
    }
}
