//! The distilled dataset as it is written and read back: an append-only JSONL of rows keyed by
//! `id`, which a rerun reads back to skip the rows already there, its sidecars
//! (`<output>.dropped.jsonl`, `<output>.summary.json`) and the summary of a run. Distill writes
//! these; merge and publish read them. The durability (a torn last line cut off, fsyncs) is
//! `sqlrft_files::Journal`'s.

use std::collections::{BTreeMap, HashSet};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sqlrft_files::Journal;
use sqlrft_llm::Usage;

/// Rows written between fsyncs; a power cut loses at most these (they are redone on resume).
const SYNC_EVERY: usize = 32;

/// An append-only JSONL file of objects with an `id` field.
#[derive(Debug)]
pub struct ResumableJsonl {
    journal: Journal,
    ids: HashSet<String>,
}

/// All a rerun needs of a written row.
#[derive(Deserialize)]
struct Written {
    id: String,
}

impl ResumableJsonl {
    /// Opens (or creates) `path`, reading back the ids already in it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        let (journal, rows) = Journal::open::<Written>(path)?;
        Ok(ResumableJsonl {
            journal: journal.sync_every(SYNC_EVERY),
            ids: rows.into_iter().map(|row| row.id).collect(),
        })
    }

    /// True when a line with this id is already in the file.
    pub fn contains(&self, id: &str) -> bool {
        self.ids.contains(id)
    }

    /// Number of lines.
    pub fn len(&self) -> usize {
        self.ids.len()
    }

    /// True when the file has no lines.
    pub fn is_empty(&self) -> bool {
        self.ids.is_empty()
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        self.journal.path()
    }

    /// Appends one object (which must have a string `id`) as one line, in one write.
    pub fn append(&mut self, id: &str, record: &impl Serialize) -> anyhow::Result<()> {
        self.journal.append(record)?;
        self.ids.insert(id.to_string());
        Ok(())
    }

    /// Flushes written lines to disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        Ok(self.journal.sync()?)
    }
}

/// What a run did, also written next to the output as `<output>.summary.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DistillSummary {
    /// Teacher model.
    pub model: String,
    /// Teacher provider.
    pub provider: String,
    /// Source dataset or file.
    pub source: String,
    /// Shard processed, `i/n`.
    pub shard: Option<String>,
    /// Rows read from the source.
    pub source_rows: usize,
    /// Rows of the source in this shard.
    pub shard_rows: usize,
    /// Rows finished by an earlier run and skipped.
    pub resumed: usize,
    /// Rows in the output file.
    pub kept: usize,
    /// Kept rows whose answer matched the gold result.
    pub valid: usize,
    /// Kept rows whose answer did not match.
    pub invalid: usize,
    /// Rows dropped, by reason code (all runs).
    pub dropped: BTreeMap<String, usize>,
    /// Rows whose teacher calls failed in this run (retried on the next run).
    pub teacher_errors: usize,
    /// Tokens and cost of this run.
    pub usage: Usage,
    /// Output file.
    pub output: PathBuf,
    /// Wall-clock seconds of this run.
    pub elapsed_secs: f64,
}

impl std::fmt::Display for DistillSummary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "distilled {} with {} ({})",
            self.source, self.model, self.provider
        )?;
        if let Some(shard) = &self.shard {
            writeln!(
                f,
                "  shard {shard}: {} of {} rows",
                self.shard_rows, self.source_rows
            )?;
        }
        writeln!(
            f,
            "  kept {} rows in {} ({} valid, {} not valid, {} not validated; {} from earlier runs)",
            self.kept,
            self.output.display(),
            self.valid,
            self.invalid,
            self.kept - self.valid - self.invalid,
            self.resumed
        )?;
        for (reason, n) in &self.dropped {
            writeln!(f, "  dropped {n:>6}  {reason}")?;
        }
        if self.teacher_errors > 0 {
            writeln!(
                f,
                "  {} rows failed at the teacher and will be retried by rerunning the same command",
                self.teacher_errors
            )?;
        }
        write!(f, "  {} in {:.1} s", self.usage, self.elapsed_secs)
    }
}

/// `out.jsonl` → `out.<suffix>`.
pub(crate) fn sidecar(output: &Path, suffix: &str) -> PathBuf {
    let stem = output
        .file_stem()
        .map(|s| s.to_string_lossy().to_string())
        .unwrap_or_default();
    output.with_file_name(format!("{stem}.{suffix}"))
}

/// Rows, valid rows and invalid rows of an output file (complete lines only).
pub(crate) fn count_kept(path: &Path) -> anyhow::Result<(usize, usize, usize)> {
    let (mut kept, mut valid, mut invalid) = (0, 0, 0);
    for value in read_complete_lines(path)? {
        kept += 1;
        match value.get("valid").and_then(Value::as_bool) {
            Some(true) => valid += 1,
            Some(false) => invalid += 1,
            None => {}
        }
    }
    Ok((kept, valid, invalid))
}

/// Dropped rows per reason code in a `<output>.dropped.jsonl`.
pub(crate) fn count_dropped(path: &Path) -> anyhow::Result<BTreeMap<String, usize>> {
    let mut counts = BTreeMap::new();
    for value in read_complete_lines(path)? {
        let reason = value["reason"].as_str().unwrap_or("unknown").to_string();
        *counts.entry(reason).or_insert(0) += 1;
    }
    Ok(counts)
}

/// Parsed complete lines of a JSONL file (a missing file has none; a shard still being
/// written may end in a torn line, which is left out).
pub(crate) fn read_complete_lines(path: &Path) -> anyhow::Result<Vec<Value>> {
    Ok(sqlrft_files::Journal::read(path)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn sidecars_sit_beside_the_output() {
        assert_eq!(
            sidecar(Path::new("/x/cot.jsonl"), "dropped.jsonl"),
            Path::new("/x/cot.dropped.jsonl")
        );
        assert_eq!(
            sidecar(Path::new("cot.shard-00001-of-00002.jsonl"), "summary.json"),
            Path::new("cot.shard-00001-of-00002.summary.json")
        );
    }

    #[test]
    fn reopening_reads_back_ids_and_appends() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        let mut out = ResumableJsonl::open(&path).unwrap();
        out.append("a", &json!({"id": "a", "x": 1})).unwrap();
        out.append("b", &json!({"id": "b", "x": 2})).unwrap();
        drop(out);
        let mut again = ResumableJsonl::open(&path).unwrap();
        assert!(again.contains("a") && again.contains("b") && !again.contains("c"));
        again.append("c", &json!({"id": "c"})).unwrap();
        drop(again);
        assert_eq!(std::fs::read_to_string(&path).unwrap().lines().count(), 3);
    }

    #[test]
    fn a_row_without_an_id_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"x\":1}\n").unwrap();
        let err = ResumableJsonl::open(&path).unwrap_err().to_string();
        assert!(err.contains("line 2") && err.contains("`id`"), "{err}");
    }
}
