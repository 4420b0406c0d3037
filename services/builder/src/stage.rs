//! Resumability: the stage manifest (which stage finished from which inputs), and keyed progress
//! journals for stages that make many items. The durable writing itself is `sqlrft-files`.
//!
//! A stage is skipped when the manifest records it finished with the same key (a hash of its
//! options and of its inputs' keys) and its outputs still exist. A stage that makes many items
//! appends each finished item to a journal as one JSON line; after a kill, the rerun reads the
//! journal (dropping a torn last line), keeps the finished items and makes only the rest.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File};
use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use sqlrft_files::{Journal, JournalError};
use sqlrft_llm::LlmClient;

use crate::schema::Schema;

pub(crate) fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
    let text =
        fs::read_to_string(path).with_context(|| format!("could not read `{}`", path.display()))?;
    serde_json::from_str(&text).with_context(|| {
        format!(
            "`{}` is not valid JSON of the expected shape",
            path.display()
        )
    })
}

/// Reads every line of a JSONL file.
pub(crate) fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
    let file = File::open(path).with_context(|| format!("could not read `{}`", path.display()))?;
    let mut out = Vec::new();
    for (i, line) in BufReader::new(file).lines().enumerate() {
        let line = line?;
        if line.trim().is_empty() {
            continue;
        }
        out.push(serde_json::from_str(&line).with_context(|| {
            format!(
                "`{}` line {}: not valid JSON of the expected shape",
                path.display(),
                i + 1
            )
        })?);
    }
    Ok(out)
}

/// A hash of anything serialisable, for stage keys.
pub(crate) fn key_of<T: Serialize + ?Sized>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("serialisable");
    hex::encode(&Sha256::digest(&bytes)[..12])
}

/// What one finished stage produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct StageRecord {
    /// Hash of the stage's options and its inputs' keys.
    pub(crate) key: String,
    /// Files it wrote, relative to the output directory.
    pub(crate) outputs: Vec<String>,
    /// Counts for the report.
    #[serde(default)]
    pub(crate) stats: serde_json::Value,
    pub(crate) finished_at: String,
}

/// `manifest.json` in the output directory: the finished stages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub(crate) struct Manifest {
    pub(crate) stages: BTreeMap<String, StageRecord>,
}

impl Manifest {
    pub(crate) fn path(out: &Path) -> PathBuf {
        out.join("manifest.json")
    }

    pub(crate) fn load(out: &Path) -> Result<Manifest> {
        let path = Self::path(out);
        if !path.exists() {
            return Ok(Manifest::default());
        }
        read_json(&path)
    }

    /// The record of `stage` if it finished with `key` and its outputs are all still there.
    pub(crate) fn finished(&self, out: &Path, stage: &str, key: &str) -> Option<&StageRecord> {
        self.stages
            .get(stage)
            .filter(|r| r.key == key && r.outputs.iter().all(|o| out.join(o).exists()))
    }

    /// Records `stage` as finished and saves the manifest atomically.
    pub(crate) fn record(out: &Path, stage: &str, record: StageRecord) -> Result<()> {
        let mut manifest = Self::load(out)?;
        manifest.stages.insert(stage.to_string(), record);
        Ok(sqlrft_files::write_json(&Self::path(out), &manifest)?)
    }
}

pub(crate) fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// The first line of a progress journal: the stage key its items were made for.
#[derive(Serialize, Deserialize)]
struct JournalHeader {
    journal_key: String,
}

/// Opens the progress journal at `path` for stage `key`, returning the items already in it by
/// id. A journal written for another key, or one whose lines no longer read back as items, is
/// started afresh; a torn last line (a kill during a write) is dropped by [`Journal::open`].
pub(crate) fn open_journal<T: DeserializeOwned>(
    path: &Path,
    key: &str,
    id_of: impl Fn(&T) -> String,
) -> Result<(Journal, HashMap<String, T>)> {
    let resumed = match Journal::open::<serde_json::Value>(path) {
        Ok((journal, mut lines)) => {
            let header = (!lines.is_empty()).then(|| lines.remove(0));
            let ours = header
                .and_then(|h| serde_json::from_value::<JournalHeader>(h).ok())
                .is_some_and(|h| h.journal_key == key);
            let items: Option<HashMap<String, T>> = lines
                .into_iter()
                .map(|line| serde_json::from_value(line).map(|item| (id_of(&item), item)))
                .collect::<Result<_, _>>()
                .ok();
            items.filter(|_| ours).map(|items| (journal, items))
        }
        Err(JournalError::Corrupt { .. }) => None,
        Err(e) => return Err(e.into()),
    };
    if let Some(resumed) = resumed {
        return Ok(resumed);
    }
    let mut journal = Journal::create(path)?;
    journal.append(&JournalHeader {
        journal_key: key.to_string(),
    })?;
    journal.sync()?;
    Ok((journal, HashMap::new()))
}

/// What every LLM-backed stage runs with: the client it asks, the schema its prompts describe,
/// the test hook that may interrupt it, and the bar that shows how far it got.
#[derive(Clone, Copy)]
pub(crate) struct LlmRun<'a> {
    pub(crate) client: &'a LlmClient,
    pub(crate) schema: &'a Schema,
    pub(crate) fail_after: FailAfter,
    pub(crate) progress: &'a indicatif::ProgressBar,
}

impl LlmRun<'_> {
    /// One more answer came back: stops the stage here when `--fail-after` says so, else moves
    /// the bar on. `finished` counts the answers so far.
    pub(crate) fn answered(&self, finished: &mut usize) -> Result<()> {
        self.fail_after.check(*finished)?;
        *finished += 1;
        self.progress.inc(1);
        Ok(())
    }
}

/// A failed call of an LLM stage: one more in `failed`, and its error kept if it is the first
/// (the stage's report shows it).
pub(crate) fn count_failure(
    failed: &mut usize,
    first_error: &mut Option<String>,
    error: impl std::fmt::Display,
) {
    *failed += 1;
    first_error.get_or_insert_with(|| error.to_string());
}

/// A deliberate failure after `n` items, so tests can interrupt a stage midway like a kill.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct FailAfter(pub(crate) Option<usize>);

impl FailAfter {
    pub(crate) fn check(&self, done: usize) -> Result<()> {
        match self.0 {
            Some(n) if done >= n => {
                anyhow::bail!("interrupted after {n} items (test hook --fail-after)")
            }
            _ => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Serialize, Deserialize, PartialEq)]
    struct Item {
        id: String,
        n: u32,
    }

    #[test]
    fn journal_resumes_items_by_id() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let (mut journal, items) = open_journal::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert!(items.is_empty());
        for (id, n) in [("a", 1), ("b", 2)] {
            journal.append(&Item { id: id.into(), n }).unwrap();
        }
        drop(journal);
        let (mut journal, items) = open_journal::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert_eq!(items.len(), 2);
        journal
            .append(&Item {
                id: "c".into(),
                n: 3,
            })
            .unwrap();
        drop(journal);
        let (_, items) = open_journal::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items["c"].n, 3);
    }

    #[test]
    fn journal_whose_items_no_longer_read_back_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let (mut journal, _) = open_journal::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        journal.append(&serde_json::json!({"id": "a"})).unwrap();
        drop(journal);
        let (_, items) = open_journal::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert!(items.is_empty());
        assert_eq!(fs::read_to_string(&path).unwrap().lines().count(), 1);
    }

    #[test]
    fn journal_for_another_key_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let (mut journal, _) = open_journal::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        journal
            .append(&Item {
                id: "a".into(),
                n: 1,
            })
            .unwrap();
        drop(journal);
        let (_, items) = open_journal::<Item>(&path, "k2", |i| i.id.clone()).unwrap();
        assert!(items.is_empty());
    }

    #[test]
    fn manifest_skips_only_matching_stages_with_outputs() {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path();
        fs::write(out.join("a.txt"), "x").unwrap();
        Manifest::record(
            out,
            "schema",
            StageRecord {
                key: "k".into(),
                outputs: vec!["a.txt".into()],
                stats: serde_json::Value::Null,
                finished_at: now(),
            },
        )
        .unwrap();
        let manifest = Manifest::load(out).unwrap();
        assert!(manifest.finished(out, "schema", "k").is_some());
        assert!(manifest.finished(out, "schema", "other").is_none());
        fs::remove_file(out.join("a.txt")).unwrap();
        assert!(manifest.finished(out, "schema", "k").is_none());
    }
}
