//! The report of a run in `--out DIR`: `report.md`, a self-contained `report.html`,
//! `results.json` and `accuracy.png`. It opens with the tutorial's three-line table and answers
//! "did tuning help, where, and is it significant".

mod doc;
mod plot;
mod summary;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use doc::Block;
pub use summary::{
    Accuracy, DatasetInfo, Disagreement, DisagreementAnswer, ModelSummary, Pair, Slice, Status,
    Summary, format_p, p_phrase, summarize,
};

use crate::verdict::Outcome;

/// Items shown in the "disagree" section of the Markdown and HTML reports (all are in
/// `results.json`).
const SHOWN_DISAGREEMENTS: usize = 100;

/// Where a written report is.
#[derive(Debug, Clone)]
pub struct ReportFiles {
    /// `report.md`.
    pub markdown: PathBuf,
    /// `report.html`, self-contained.
    pub html: PathBuf,
    /// `results.json`.
    pub json: PathBuf,
    /// `accuracy.png`.
    pub png: PathBuf,
}

/// Writes the four report files into `out`, each atomically.
pub fn write(out: &Path, summary: &Summary) -> Result<ReportFiles> {
    std::fs::create_dir_all(out)
        .with_context(|| format!("could not create `{}`", out.display()))?;
    let files = ReportFiles {
        markdown: out.join("report.md"),
        html: out.join("report.html"),
        json: out.join("results.json"),
        png: out.join("accuracy.png"),
    };
    let tmp_png = out.join(".accuracy.tmp.png");
    plot::accuracy_png(summary, &tmp_png)?;
    let png = std::fs::read(&tmp_png)
        .with_context(|| format!("could not read `{}`", tmp_png.display()))?;
    std::fs::rename(&tmp_png, &files.png)
        .with_context(|| format!("could not write `{}`", files.png.display()))?;
    let blocks = blocks(summary, png);
    write_atomic(&files.markdown, doc::markdown(&blocks).as_bytes())?;
    write_atomic(&files.html, doc::html(&title(summary), &blocks).as_bytes())?;
    write_atomic(
        &files.json,
        serde_json::to_string_pretty(summary)?.as_bytes(),
    )?;
    Ok(files)
}

/// Writes `bytes` to a temporary file beside `path`, then renames it over `path`.
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("file");
    let tmp = path.with_file_name(format!(".{name}.tmp-{}", std::process::id()));
    std::fs::write(&tmp, bytes).with_context(|| format!("could not write `{}`", tmp.display()))?;
    std::fs::rename(&tmp, path).with_context(|| format!("could not write `{}`", path.display()))
}

fn title(summary: &Summary) -> String {
    format!(
        "Evaluation of {} on {}",
        summary
            .models
            .iter()
            .map(|m| m.name.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        summary.dataset.path
    )
}

fn pct(v: f64) -> String {
    format!("{:.2}%", 100.0 * v)
}

fn rate(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{:.1}%", 100.0 * v))
}

fn secs(v: Option<f64>) -> String {
    v.map_or("–".into(), |v| format!("{v:.2} s"))
}

fn accuracy_cell(a: Option<Accuracy>) -> String {
    a.map_or("–".into(), |a| {
        format!("{:.1}% ({}/{})", 100.0 * a.accuracy, a.correct, a.total)
    })
}

fn status_note(m: &ModelSummary) -> String {
    match m.status {
        Status::Complete => "complete".into(),
        Status::Partial => format!(
            "partial: {} not answered, {} not scored",
            m.not_answered, m.not_scored
        ),
        Status::Unreachable => "UNREACHABLE: no answers".into(),
    }
}

/// The report's content, top to bottom.
fn blocks(s: &Summary, png: Vec<u8>) -> Vec<Block> {
    let mut b = vec![Block::Heading(1, title(s))];
    let k = s.sampling.samples;
    let metric = if k > 1 {
        format!(
            "pass@{k} (any of {k} samples at temperature {} correct)",
            s.sampling.temperature
        )
    } else {
        "execution accuracy (the SQL's result matches the gold result)".to_string()
    };
    b.push(Block::Paragraph(format!(
        "{} of {} items in {} (sha256 {}…), scored by {}; metric: {metric}; max {} tokens per answer.",
        s.dataset.evaluated,
        s.dataset.items_in_file,
        s.dataset.path,
        &s.dataset.sha256[..12.min(s.dataset.sha256.len())],
        s.scorer,
        s.sampling.max_tokens,
    )));

    // The tutorial's table.
    let rows = s
        .models
        .iter()
        .map(|m| match m.accuracy {
            Some(a) => vec![
                m.name.clone(),
                format!("{}/{}", a.correct, a.total),
                pct(a.accuracy),
                match (m.name == s.base, m.lift_pp) {
                    (true, _) => "base".into(),
                    (false, Some(l)) => format!("{l:+.2} pp"),
                    (false, None) => "–".into(),
                },
            ],
            None => vec![m.name.clone(), "–".into(), "unreachable".into(), "–".into()],
        })
        .collect();
    b.push(Block::Table {
        header: vec![
            "model".into(),
            "correct/total".into(),
            "accuracy".into(),
            format!("lift over {}", s.base),
        ],
        rows,
    });
    for line in answers(s) {
        b.push(Block::Callout(line));
    }

    b.push(Block::Heading(
        2,
        "Accuracy with 95% Wilson intervals".into(),
    ));
    b.push(Block::Image {
        file: "accuracy.png".into(),
        alt: "execution accuracy per model and complexity class".into(),
        png,
    });
    let mut header = vec![
        "model".into(),
        "endpoint".into(),
        "status".into(),
        "accuracy".into(),
        "95% CI".into(),
    ];
    if k > 1 {
        header.push("pass@1".into());
    }
    header.extend(
        [
            "format-valid",
            "SQL error",
            "timeout",
            "no SQL",
            "wrong result",
        ]
        .map(String::from),
    );
    let rows = s
        .models
        .iter()
        .map(|m| {
            let answered: u64 = m.outcomes.values().sum();
            let share = |o: Outcome| {
                rate(
                    (answered > 0)
                        .then(|| m.outcomes.get(&o).copied().unwrap_or(0) as f64 / answered as f64),
                )
            };
            let mut row = vec![
                m.name.clone(),
                m.spec.clone(),
                status_note(m),
                m.accuracy.map_or("–".into(), |a| pct(a.accuracy)),
                m.accuracy.map_or("–".into(), |a| {
                    format!("{:.1}–{:.1}%", 100.0 * a.ci_low, 100.0 * a.ci_high)
                }),
            ];
            if k > 1 {
                row.push(rate(m.pass_at_1));
            }
            row.extend([
                rate(m.format_valid_rate),
                rate(m.sql_error_rate),
                rate(m.timeout_rate),
                share(Outcome::NoSql),
                share(Outcome::WrongResult),
            ]);
            row
        })
        .collect();
    b.push(Block::Table { header, rows });
    b.push(Block::Paragraph(
        "Rates are over answered items (first sample). Format-valid means exactly \
         <think>…</think><sql>…</sql>; a SQL error includes statements the sandbox refuses."
            .into(),
    ));
    for m in s.models.iter().filter(|m| m.error.is_some()) {
        b.push(Block::Paragraph(format!(
            "{}: {}",
            m.name,
            m.error.as_deref().unwrap_or_default()
        )));
    }

    let names: Vec<String> = s.models.iter().map(|m| m.name.clone()).collect();
    for (heading, slices) in [
        ("By complexity class", &s.by_complexity),
        ("By SQL feature (tag)", &s.by_tag),
    ] {
        if slices.is_empty() {
            continue;
        }
        b.push(Block::Heading(2, heading.into()));
        let mut header = vec!["group".to_string(), "items".to_string()];
        header.extend(names.iter().cloned());
        let rows = slices
            .iter()
            .map(|slice| {
                let mut row = vec![slice.name.clone(), slice.items.to_string()];
                row.extend(
                    names
                        .iter()
                        .map(|n| accuracy_cell(slice.models.get(n).copied().flatten())),
                );
                row
            })
            .collect();
        b.push(Block::Table { header, rows });
    }

    if !s.pairs.is_empty() {
        b.push(Block::Heading(
            2,
            "Paired comparisons (same items, McNemar exact test)".into(),
        ));
        let rows = s
            .pairs
            .iter()
            .map(|p| {
                vec![
                    format!("{} vs {}", p.a, p.b),
                    p.items.to_string(),
                    p.both_right.to_string(),
                    p.a_only.to_string(),
                    p.b_only.to_string(),
                    p.both_wrong.to_string(),
                    format_p(p.p_value),
                    p.verdict(),
                ]
            })
            .collect();
        b.push(Block::Table {
            header: [
                "A vs B",
                "items",
                "both right",
                "only A right",
                "only B right",
                "both wrong",
                "p",
                "verdict",
            ]
            .map(String::from)
            .to_vec(),
            rows,
        });
        b.push(Block::Paragraph(
            "Only items both models answered count. The p-value is the chance of a split at least \
             this uneven among the items where exactly one model is right, if both were equally good."
                .into(),
        ));
    }

    b.push(Block::Heading(2, "Latency, tokens and cost".into()));
    let rows = s
        .models
        .iter()
        .map(|m| {
            vec![
                m.name.clone(),
                secs(m.latency_p50_s),
                secs(m.latency_p95_s),
                m.prompt_tokens.to_string(),
                m.completion_tokens.to_string(),
                m.cost_usd.map_or("–".into(), |c| format!("${c:.4}")),
                m.retries.map_or("–".into(), |r| r.to_string()),
                m.resumed.to_string(),
            ]
        })
        .collect();
    b.push(Block::Table {
        header: [
            "model",
            "latency p50",
            "latency p95",
            "prompt tokens",
            "completion tokens",
            "cost",
            "retries",
            "resumed items",
        ]
        .map(String::from)
        .to_vec(),
        rows,
    });
    b.push(Block::Paragraph(format!(
        "Wall time {:.1} s, of which scoring was in progress {:.1} s. Cost needs price=IN/OUT in the model's spec.",
        s.wall_seconds, s.scoring_seconds
    )));

    b.push(Block::Heading(
        2,
        format!(
            "Items where the models disagree ({})",
            s.disagreements.len()
        ),
    ));
    if s.disagreements.len() > SHOWN_DISAGREEMENTS {
        b.push(Block::Paragraph(format!(
            "The first {SHOWN_DISAGREEMENTS} are shown; results.json has all of them."
        )));
    }
    for d in s.disagreements.iter().take(SHOWN_DISAGREEMENTS) {
        let right: Vec<&str> = d
            .answers
            .iter()
            .filter(|(_, a)| a.correct)
            .map(|(n, _)| n.as_str())
            .collect();
        let mut inner = vec![Block::Paragraph(d.question.clone())];
        if let Some(sql) = &d.gold_sql {
            inner.push(Block::Paragraph("Gold SQL:".into()));
            inner.push(Block::Code(sql.clone()));
        }
        inner.push(Block::Table {
            header: ["model", "verdict", "SQL", "why"]
                .map(String::from)
                .to_vec(),
            rows: d
                .answers
                .iter()
                .map(|(name, a)| {
                    vec![
                        name.clone(),
                        a.outcome.label().into(),
                        a.sql.clone().unwrap_or_else(|| "(none)".into()),
                        a.reason.clone(),
                    ]
                })
                .collect(),
        });
        b.push(Block::Details {
            summary: format!(
                "{}{} — right: {} — {}",
                d.item,
                d.complexity
                    .as_deref()
                    .map(|c| format!(" ({c})"))
                    .unwrap_or_default(),
                right.join(", "),
                shorten(&d.question, 90)
            ),
            blocks: inner,
        });
    }
    b
}

/// The first `max` characters of `text` on one line, with an ellipsis when cut.
fn shorten(text: &str, max: usize) -> String {
    let line = text.split_whitespace().collect::<Vec<_>>().join(" ");
    match line.char_indices().nth(max) {
        Some((cut, _)) => format!("{}…", &line[..cut]),
        None => line,
    }
}

/// The sentences at the top: each model against the base, and where it differs most.
fn answers(s: &Summary) -> Vec<String> {
    let mut out = Vec::new();
    for m in s.models.iter().filter(|m| m.status == Status::Unreachable) {
        out.push(format!(
            "{} could not be reached, so it has no accuracy (not 0%): {}",
            m.name,
            m.error.as_deref().unwrap_or("no answer")
        ));
    }
    for p in s.pairs.iter().filter(|p| p.a == s.base || p.b == s.base) {
        let (other, won, lost) = if p.a == s.base {
            (&p.b, p.b_only, p.a_only)
        } else {
            (&p.a, p.a_only, p.b_only)
        };
        let lift = s
            .models
            .iter()
            .find(|m| &m.name == other)
            .and_then(|m| m.lift_pp);
        let Some(lift) = lift else { continue };
        let significance = if p.significant {
            "significant at 5%"
        } else {
            "not significant at 5%"
        };
        let mut line = format!(
            "{other} vs {}: {lift:+.2} pp; right on {won} items {} missed, wrong on {lost} it got \
             (McNemar {}, {significance})",
            s.base,
            s.base,
            p_phrase(p.p_value)
        );
        if let Some((class, delta)) = biggest_gap(s, other) {
            line.push_str(&format!("; largest change in {class} ({delta:+.1} pp)"));
        }
        line.push('.');
        out.push(line);
    }
    out
}

/// The complexity class where `model` differs most from the base.
fn biggest_gap(s: &Summary, model: &str) -> Option<(String, f64)> {
    s.by_complexity
        .iter()
        .filter_map(|slice| {
            let a = slice.models.get(model).copied().flatten()?;
            let b = slice.models.get(&s.base).copied().flatten()?;
            Some((slice.name.clone(), 100.0 * (a.accuracy - b.accuracy)))
        })
        .max_by(|x, y| x.1.abs().total_cmp(&y.1.abs()))
}
