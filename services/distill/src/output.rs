//! The distilled dataset as it is written: an append-only JSONL of rows keyed by `id`, which a
//! rerun reads back to skip the rows already there. The durability (a torn last line cut off,
//! fsyncs) is `sqlrft_files::Journal`'s.

use std::collections::HashSet;
use std::path::Path;

use serde::{Deserialize, Serialize};
use sqlrft_files::Journal;

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

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

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
