//! `report.md`: what every finished stage produced — counts per stage, per complexity class
//! and per drop reason — rewritten after each stage from the manifest.

use std::fmt::Write as _;
use std::path::Path;

use anyhow::Result;
use serde_json::Value;

use crate::stage::Manifest;

const STAGES: &[&str] = &[
    "schema",
    "sandbox",
    "queries",
    "truth",
    "questions",
    "dataset",
];

/// Renders the report for the output directory `out`.
pub(crate) fn render(out: &Path) -> Result<String> {
    let manifest = Manifest::load(out)?;
    let mut md = String::new();
    writeln!(md, "# sqlrft build report\n")?;
    writeln!(md, "Output directory: `{}`\n", out.display())?;
    writeln!(md, "| stage | status | finished |\n|---|---|---|")?;
    for stage in STAGES {
        match manifest.stages.get(*stage) {
            Some(r) => writeln!(md, "| {stage} | done | {} |", r.finished_at)?,
            None => writeln!(md, "| {stage} | not run | |")?,
        }
    }
    let stats = |stage: &str| manifest.stages.get(stage).map(|r| &r.stats);

    if let Some(s) = stats("schema") {
        writeln!(md, "\n## Schema\n")?;
        writeln!(
            md,
            "From `{}`: {} tables, {} columns; foreign keys: {} declared, {} inferred from names; {} primary keys inferred. Only the catalog was read.",
            text(&s["source"]),
            s["tables"],
            s["columns"],
            s["foreign_keys_declared"],
            s["foreign_keys_inferred"],
            s["primary_keys_inferred"]
        )?;
    }
    if let Some(s) = stats("sandbox") {
        writeln!(md, "\n## Sandbox\n")?;
        writeln!(md, "Generator: {}.\n", text(&s["generator"]))?;
        table(&mut md, ("table", "rows"), &s["rows"])?;
        if let Some(llm) = s.get("llm") {
            writeln!(md, "\nLLM: {}", compact(llm))?;
        }
    }
    if let Some(s) = stats("queries") {
        writeln!(md, "\n## Queries\n")?;
        writeln!(
            md,
            "{} candidates: {} accepted, {} duplicates (literals masked), {} invalid, {} over their class quota.\n",
            s["candidates"], s["accepted"], s["duplicates"], s["invalid"], s["over_quota"]
        )?;
        writeln!(md, "| class | quota | accepted |\n|---|---|---|")?;
        for class in ["easy", "medium", "hard", "extra"] {
            writeln!(
                md,
                "| {class} | {} | {} |",
                number(&s["quotas"][class]),
                number(&s["per_class"][class])
            )?;
        }
        if s["per_family"].as_object().is_some_and(|f| !f.is_empty()) {
            writeln!(md)?;
            table(&mut md, ("grammar family", "queries"), &s["per_family"])?;
        }
        if let Some(examples) = s["invalid_examples"].as_array().filter(|e| !e.is_empty()) {
            writeln!(md, "\nInvalid examples:\n")?;
            for e in examples {
                writeln!(md, "- `{}`: {}", text(&e[0]), text(&e[1]))?;
            }
        }
        if let Some(llm) = s.get("llm") {
            writeln!(md, "\nLLM: {}", compact(llm))?;
        }
    }
    if let Some(s) = stats("truth") {
        writeln!(md, "\n## Ground truth\n")?;
        writeln!(
            md,
            "{} queries run twice on the sandbox: {} kept.\n",
            s["queries"], s["kept"]
        )?;
        if s["dropped"].as_object().is_some_and(|d| !d.is_empty()) {
            table(&mut md, ("drop reason", "queries"), &s["dropped"])?;
            writeln!(md)?;
        } else {
            writeln!(md, "No query was dropped.\n")?;
        }
        table(&mut md, ("kept per class", "queries"), &s["kept_per_class"])?;
        if let Some(examples) = s["drop_examples"].as_object().filter(|e| !e.is_empty()) {
            writeln!(md, "\nOne example per drop reason:\n")?;
            for (reason, example) in examples {
                writeln!(md, "- {reason}: {}", text(example))?;
            }
        }
    }
    if let Some(s) = stats("questions") {
        writeln!(md, "\n## Questions\n")?;
        writeln!(
            md,
            "{} questions; {} kept queries without one.\n",
            s["questions"], s["without_question"]
        )?;
        table(&mut md, ("style", "questions"), &s["styles"])?;
        if let Some(llm) = s.get("llm") {
            writeln!(md, "\nLLM: {}", compact(llm))?;
        }
        if let Some(hint) = s.get("hint") {
            writeln!(md, "\nNote: {}", text(hint))?;
        }
    }
    if let Some(s) = stats("dataset") {
        writeln!(md, "\n## Dataset\n")?;
        writeln!(
            md,
            "{} train and {} test records (ground truth: {}); files: {}.\n",
            s["train"],
            s["test"],
            text(&s["ground_truth_format"]),
            compact(&s["files"])
        )?;
        writeln!(md, "| class | train | test |\n|---|---|---|")?;
        for class in ["easy", "medium", "hard", "extra"] {
            writeln!(
                md,
                "| {class} | {} | {} |",
                number(&s["train_per_class"][class]),
                number(&s["test_per_class"][class])
            )?;
        }
        writeln!(md)?;
        table(&mut md, ("tag", "records"), &s["tags"])?;
    }
    Ok(md)
}

/// Writes `report.md` atomically.
pub(crate) fn write(out: &Path) -> Result<()> {
    Ok(sqlrft_files::write(&out.join("report.md"), render(out)?)?)
}

fn table(md: &mut String, header: (&str, &str), object: &Value) -> Result<()> {
    writeln!(md, "| {} | {} |\n|---|---|", header.0, header.1)?;
    if let Some(map) = object.as_object() {
        for (k, v) in map {
            writeln!(md, "| {k} | {} |", number(v))?;
        }
    }
    Ok(())
}

fn number(v: &Value) -> String {
    if v.is_null() {
        "0".into()
    } else {
        v.to_string()
    }
}

fn text(v: &Value) -> String {
    v.as_str()
        .map(str::to_string)
        .unwrap_or_else(|| v.to_string())
}

fn compact(v: &Value) -> String {
    v.to_string()
}
