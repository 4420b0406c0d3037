//! `sqlrft distill merge`: join the shard outputs of n workers into one file.

use std::collections::{BTreeMap, HashSet};
use std::path::PathBuf;

use anyhow::{Context, bail};
use clap::Args;
use serde_json::Value;

use crate::output::{DistillSummary, count_dropped, count_kept, read_complete_lines, sidecar};
use crate::shard::Shard;

/// Flags of `sqlrft distill merge`.
#[derive(Debug, Clone, Args)]
pub struct MergeArgs {
    /// The merged file; with no INPUTS, the shards of this name (`<stem>.shard-i-of-n.jsonl`
    /// beside it) are merged.
    #[arg(long, short)]
    pub output: PathBuf,
    /// Shard outputs to merge (default: discovered from --output).
    pub inputs: Vec<PathBuf>,
    /// Merge even when some of the n shards are missing.
    #[arg(long)]
    pub allow_missing: bool,
}

/// What a merge did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MergeSummary {
    /// Files merged.
    pub inputs: Vec<PathBuf>,
    /// Rows written.
    pub rows: usize,
    /// Rows seen in more than one input and written once.
    pub duplicates: usize,
    /// Dropped-row records merged into `<output>.dropped.jsonl`.
    pub dropped: usize,
}

/// Runs `sqlrft distill merge`.
pub async fn run_merge(args: MergeArgs) -> anyhow::Result<MergeSummary> {
    tokio::task::spawn_blocking(move || merge(&args))
        .await
        .context("merge crashed")?
}

fn discover(args: &MergeArgs) -> anyhow::Result<Vec<PathBuf>> {
    if !args.inputs.is_empty() {
        return Ok(args.inputs.clone());
    }
    let dir = args
        .output
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .map_or_else(|| PathBuf::from("."), PathBuf::from);
    let mut found: BTreeMap<usize, (Shard, PathBuf)> = BTreeMap::new();
    for entry in
        std::fs::read_dir(&dir).with_context(|| format!("could not list `{}`", dir.display()))?
    {
        let path = entry?.path();
        let candidate = dir.join(path.file_name().unwrap_or_default());
        let output = dir.join(args.output.file_name().unwrap_or_default());
        if let Some(shard) = Shard::of_path(&output, &candidate) {
            found.insert(shard.index, (shard, path));
        }
    }
    let Some((first, _)) = found.values().next() else {
        bail!(
            "no shard files for `{}` (expected names like `{}`); pass the files to merge",
            args.output.display(),
            Shard { index: 0, count: 2 }
                .output_path(&args.output)
                .display()
        );
    };
    let count = first.count;
    if found.values().any(|(s, _)| s.count != count) {
        bail!(
            "shard files of `{}` come from runs with different shard counts",
            args.output.display()
        );
    }
    let missing: Vec<usize> = (0..count).filter(|i| !found.contains_key(i)).collect();
    if !missing.is_empty() && !args.allow_missing {
        bail!(
            "shards {missing:?} of {count} are missing for `{}`; rerun them, or pass --allow-missing",
            args.output.display()
        );
    }
    Ok(found.into_values().map(|(_, p)| p).collect())
}

fn merge(args: &MergeArgs) -> anyhow::Result<MergeSummary> {
    let inputs = discover(args)?;
    let mut rows: Vec<(u64, String, Value)> = Vec::new();
    let mut seen = HashSet::new();
    let mut duplicates = 0;
    for input in &inputs {
        if !input.is_file() {
            bail!("could not merge `{}`: no such file", input.display());
        }
        for value in read_complete_lines(input)? {
            let id = value["id"]
                .as_str()
                .with_context(|| format!("`{}` has a row without `id`", input.display()))?
                .to_string();
            if !seen.insert(id.clone()) {
                duplicates += 1;
                continue;
            }
            let index = value["source_index"].as_u64().unwrap_or(u64::MAX);
            rows.push((index, id, value));
        }
    }
    // Source order, so a merge of shards equals an unsharded run.
    rows.sort_by(|a, b| (a.0, &a.1).cmp(&(b.0, &b.1)));
    let mut text = Vec::new();
    for (_, _, value) in &rows {
        serde_json::to_writer(&mut text, value)?;
        text.push(b'\n');
    }
    sqlrft_files::write(&args.output, &text)?;

    let mut dropped_text = Vec::new();
    let mut dropped = 0;
    let mut dropped_seen = HashSet::new();
    for input in &inputs {
        for value in read_complete_lines(&sidecar(input, "dropped.jsonl"))? {
            if dropped_seen.insert(value["id"].as_str().unwrap_or_default().to_string()) {
                serde_json::to_writer(&mut dropped_text, &value)?;
                dropped_text.push(b'\n');
                dropped += 1;
            }
        }
    }
    sqlrft_files::write(&sidecar(&args.output, "dropped.jsonl"), &dropped_text)?;
    merge_summaries(&inputs, &args.output)?;
    Ok(MergeSummary {
        inputs,
        rows: rows.len(),
        duplicates,
        dropped,
    })
}

/// Writes `<output>.summary.json` from the shards' summaries (so the dataset card names the
/// teacher and source), with counts taken from the merged files.
fn merge_summaries(inputs: &[PathBuf], output: &std::path::Path) -> anyhow::Result<()> {
    let parts: Vec<DistillSummary> = inputs
        .iter()
        .filter_map(|i| std::fs::read_to_string(sidecar(i, "summary.json")).ok())
        .filter_map(|t| serde_json::from_str(&t).ok())
        .collect();
    let Some(first) = parts.first() else {
        return Ok(());
    };
    let (kept, valid, invalid) = count_kept(output)?;
    let mut usage = sqlrft_llm::Usage::default();
    for p in &parts {
        usage.requests += p.usage.requests;
        usage.retries += p.usage.retries;
        usage.failures += p.usage.failures;
        usage.prompt_tokens += p.usage.prompt_tokens;
        usage.completion_tokens += p.usage.completion_tokens;
        usage.cost_usd = match (usage.cost_usd, p.usage.cost_usd) {
            (None, None) => None,
            (a, b) => Some(a.unwrap_or(0.0) + b.unwrap_or(0.0)),
        };
    }
    let merged = DistillSummary {
        model: first.model.clone(),
        provider: first.provider.clone(),
        source: first.source.clone(),
        shard: None,
        source_rows: first.source_rows,
        shard_rows: parts.iter().map(|p| p.shard_rows).sum(),
        resumed: parts.iter().map(|p| p.resumed).sum(),
        kept,
        valid,
        invalid,
        dropped: count_dropped(&sidecar(output, "dropped.jsonl"))?,
        teacher_errors: parts.iter().map(|p| p.teacher_errors).sum(),
        usage,
        output: output.to_path_buf(),
        elapsed_secs: parts.iter().map(|p| p.elapsed_secs).fold(0.0, f64::max),
    };
    Ok(sqlrft_files::write_json(
        &sidecar(output, "summary.json"),
        &merged,
    )?)
}
