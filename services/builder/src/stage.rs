//! Resumability: atomic file writes, the stage manifest (which stage finished from which
//! inputs), and append-only progress journals for stages that make many items.
//!
//! A stage is skipped when the manifest records it finished with the same key (a hash of its
//! options and of its inputs' keys) and its outputs still exist. A stage that makes many items
//! appends each finished item to a journal as one JSON line; after a kill, the rerun reads the
//! journal (dropping a torn last line), keeps the finished items and makes only the rest.

use std::collections::{BTreeMap, HashMap};
use std::fs::{self, File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

/// Writes `bytes` to `path` so that readers see the old file or the new one, never a part:
/// a temporary file in the same directory, fsync, rename, fsync of the directory.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<()> {
    let tmp = temp_path(path);
    {
        let mut file =
            File::create(&tmp).with_context(|| format!("could not create `{}`", tmp.display()))?;
        file.write_all(bytes)
            .and_then(|_| file.sync_all())
            .with_context(|| format!("could not write `{}`", tmp.display()))?;
    }
    commit(&tmp, path)
}

/// Writes a JSONL file atomically, one line per item.
pub fn write_jsonl_atomic<T: Serialize>(
    path: &Path,
    items: impl IntoIterator<Item = T>,
) -> Result<()> {
    let mut bytes = Vec::new();
    for item in items {
        serde_json::to_writer(&mut bytes, &item)?;
        bytes.push(b'\n');
    }
    write_atomic(path, &bytes)
}

pub fn write_json_atomic<T: Serialize>(path: &Path, value: &T) -> Result<()> {
    let mut bytes = serde_json::to_vec_pretty(value)?;
    bytes.push(b'\n');
    write_atomic(path, &bytes)
}

/// The temporary name a file is built under before [`commit`] renames it into place.
pub fn temp_path(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.tmp-{}", std::process::id()))
}

/// Renames a finished temporary file into place and makes the rename durable.
pub fn commit(tmp: &Path, path: &Path) -> Result<()> {
    fs::rename(tmp, path).with_context(|| {
        format!(
            "could not move `{}` into place as `{}`",
            tmp.display(),
            path.display()
        )
    })?;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty())
        && let Ok(dir) = File::open(dir)
    {
        let _ = dir.sync_all();
    }
    Ok(())
}

pub fn read_json<T: DeserializeOwned>(path: &Path) -> Result<T> {
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
pub fn read_jsonl<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>> {
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
pub fn key_of<T: Serialize + ?Sized>(value: &T) -> String {
    let bytes = serde_json::to_vec(value).expect("serialisable");
    hex::encode(&Sha256::digest(&bytes)[..12])
}

/// What one finished stage produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageRecord {
    /// Hash of the stage's options and its inputs' keys.
    pub key: String,
    /// Files it wrote, relative to the output directory.
    pub outputs: Vec<String>,
    /// Counts for the report.
    #[serde(default)]
    pub stats: serde_json::Value,
    pub finished_at: String,
}

/// `manifest.json` in the output directory: the finished stages.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    pub stages: BTreeMap<String, StageRecord>,
}

impl Manifest {
    pub fn path(out: &Path) -> PathBuf {
        out.join("manifest.json")
    }

    pub fn load(out: &Path) -> Result<Manifest> {
        let path = Self::path(out);
        if !path.exists() {
            return Ok(Manifest::default());
        }
        read_json(&path)
    }

    /// The record of `stage` if it finished with `key` and its outputs are all still there.
    pub fn finished(&self, out: &Path, stage: &str, key: &str) -> Option<&StageRecord> {
        self.stages
            .get(stage)
            .filter(|r| r.key == key && r.outputs.iter().all(|o| out.join(o).exists()))
    }

    /// Records `stage` as finished and saves the manifest atomically.
    pub fn record(out: &Path, stage: &str, record: StageRecord) -> Result<()> {
        let mut manifest = Self::load(out)?;
        manifest.stages.insert(stage.to_string(), record);
        write_json_atomic(&Self::path(out), &manifest)
    }
}

pub fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
}

/// An append-only JSONL journal of finished items, tied to one stage key.
pub struct Journal {
    file: File,
    path: PathBuf,
}

#[derive(Serialize, Deserialize)]
struct JournalHeader {
    journal_key: String,
}

impl Journal {
    /// Opens the journal at `path` for `key`, returning the items already in it by id. A
    /// journal written for another key is started afresh; a torn last line (a kill during a
    /// write) is dropped.
    pub fn open<T: DeserializeOwned>(
        path: &Path,
        key: &str,
        id_of: impl Fn(&T) -> String,
    ) -> Result<(Journal, HashMap<String, T>)> {
        let mut items = HashMap::new();
        let mut valid_len = 0u64;
        let mut reuse = false;
        if let Ok(file) = File::open(path) {
            let mut reader = BufReader::new(file);
            let mut first = true;
            let mut line = String::new();
            loop {
                line.clear();
                let read = reader.read_line(&mut line)?;
                if read == 0 || !line.ends_with('\n') {
                    break;
                }
                if first {
                    first = false;
                    match serde_json::from_str::<JournalHeader>(&line) {
                        Ok(header) if header.journal_key == key => reuse = true,
                        _ => break,
                    }
                } else {
                    match serde_json::from_str::<T>(&line) {
                        Ok(item) => {
                            items.insert(id_of(&item), item);
                        }
                        Err(_) => break,
                    }
                }
                valid_len += read as u64;
            }
        }
        if !reuse {
            items.clear();
            if let Some(dir) = path.parent() {
                fs::create_dir_all(dir)?;
            }
            let mut file = File::create(path)
                .with_context(|| format!("could not create `{}`", path.display()))?;
            let mut header = serde_json::to_vec(&JournalHeader {
                journal_key: key.to_string(),
            })?;
            header.push(b'\n');
            file.write_all(&header)?;
            file.sync_all()?;
        } else {
            // Cut a torn or unreadable tail so new lines start on a clean line.
            let file = OpenOptions::new().write(true).open(path)?;
            file.set_len(valid_len)?;
        }
        let file = OpenOptions::new()
            .append(true)
            .open(path)
            .with_context(|| format!("could not open `{}` for appending", path.display()))?;
        Ok((
            Journal {
                file,
                path: path.to_path_buf(),
            },
            items,
        ))
    }

    /// Appends one finished item as a single write of one line.
    pub fn append<T: Serialize>(&mut self, item: &T) -> Result<()> {
        let mut line = serde_json::to_vec(item)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("could not append to `{}`", self.path.display()))
    }

    /// Makes appended lines durable.
    pub fn sync(&mut self) -> Result<()> {
        self.file
            .sync_data()
            .context("could not sync the progress journal")
    }

    pub fn remove(self) -> Result<()> {
        drop(self.file);
        fs::remove_file(&self.path).or_else(|e| {
            if e.kind() == std::io::ErrorKind::NotFound {
                Ok(())
            } else {
                Err(e)
            }
        })?;
        Ok(())
    }
}

/// A deliberate failure after `n` items, so tests can interrupt a stage midway like a kill.
#[derive(Debug, Clone, Copy, Default)]
pub struct FailAfter(pub Option<usize>);

impl FailAfter {
    pub fn check(&self, done: usize) -> Result<()> {
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
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_json_atomic(&path, &serde_json::json!({"a": 1})).unwrap();
        write_json_atomic(&path, &serde_json::json!({"a": 2})).unwrap();
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names.len(), 1, "{names:?}");
        assert_eq!(read_json::<serde_json::Value>(&path).unwrap()["a"], 2);
    }

    #[test]
    fn journal_resumes_and_drops_a_torn_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let (mut journal, items) = Journal::open::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert!(items.is_empty());
        journal
            .append(&Item {
                id: "a".into(),
                n: 1,
            })
            .unwrap();
        journal
            .append(&Item {
                id: "b".into(),
                n: 2,
            })
            .unwrap();
        drop(journal);
        // A kill in the middle of a write.
        let mut file = OpenOptions::new().append(true).open(&path).unwrap();
        file.write_all(b"{\"id\":\"c\",\"n\"").unwrap();
        drop(file);

        let (mut journal, items) = Journal::open::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert_eq!(items.len(), 2);
        journal
            .append(&Item {
                id: "c".into(),
                n: 3,
            })
            .unwrap();
        drop(journal);
        let (_, items) = Journal::open::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        assert_eq!(items.len(), 3);
        assert_eq!(items["c"].n, 3);
    }

    #[test]
    fn journal_for_another_key_starts_fresh() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress.jsonl");
        let (mut journal, _) = Journal::open::<Item>(&path, "k1", |i| i.id.clone()).unwrap();
        journal
            .append(&Item {
                id: "a".into(),
                n: 1,
            })
            .unwrap();
        drop(journal);
        let (_, items) = Journal::open::<Item>(&path, "k2", |i| i.id.clone()).unwrap();
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
