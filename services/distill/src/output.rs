//! Append-only JSONL that survives being killed: one line per finished item, keyed by `id`.
//!
//! On open, the ids already written are read back so a rerun skips them, and a trailing line
//! without its newline (the process died mid-write) is cut off.

use std::collections::HashSet;
use std::fs::{File, OpenOptions};
use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::{Context, bail};
use serde::Serialize;
use serde_json::Value;

/// Lines written between fsyncs; a crash loses at most these (they are redone on resume).
const SYNC_EVERY: usize = 32;

/// An append-only JSONL file of objects with an `id` field.
#[derive(Debug)]
pub struct ResumableJsonl {
    path: PathBuf,
    file: File,
    ids: HashSet<String>,
    unsynced: usize,
}

impl ResumableJsonl {
    /// Opens (or creates) `path`, reading back the ids already in it.
    pub fn open(path: &Path) -> anyhow::Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir)
                .with_context(|| format!("could not create directory `{}`", dir.display()))?;
        }
        let mut ids = HashSet::new();
        if path.exists() {
            let bytes = std::fs::read(path)
                .with_context(|| format!("could not read `{}` to resume", path.display()))?;
            let complete = bytes.iter().rposition(|b| *b == b'\n').map_or(0, |i| i + 1);
            if complete < bytes.len() {
                tracing::warn!(
                    path = %path.display(),
                    bytes = bytes.len() - complete,
                    "cutting off a partial last line (the previous run was interrupted)"
                );
                let file = OpenOptions::new().write(true).open(path)?;
                file.set_len(complete as u64)?;
                file.sync_all()?;
            }
            for (n, line) in bytes[..complete].split(|b| *b == b'\n').enumerate() {
                if line.iter().all(u8::is_ascii_whitespace) {
                    continue;
                }
                let value: Value = serde_json::from_slice(line).with_context(|| {
                    format!(
                        "`{}` line {} is not JSON; fix or delete the file to start over",
                        path.display(),
                        n + 1
                    )
                })?;
                match value.get("id").and_then(Value::as_str) {
                    Some(id) => ids.insert(id.to_string()),
                    None => bail!(
                        "`{}` line {} has no `id`; it was not written by `sqlrft distill`",
                        path.display(),
                        n + 1
                    ),
                };
            }
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .with_context(|| format!("could not open `{}` for writing", path.display()))?;
        Ok(ResumableJsonl {
            path: path.to_path_buf(),
            file,
            ids,
            unsynced: 0,
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
        &self.path
    }

    /// Appends one object (which must have a string `id`) as one line, in one write.
    pub fn append(&mut self, id: &str, record: &impl Serialize) -> anyhow::Result<()> {
        let mut line = serde_json::to_vec(record)?;
        line.push(b'\n');
        self.file
            .write_all(&line)
            .with_context(|| format!("could not write to `{}`", self.path.display()))?;
        self.ids.insert(id.to_string());
        self.unsynced += 1;
        if self.unsynced >= SYNC_EVERY {
            self.sync()?;
        }
        Ok(())
    }

    /// Flushes written lines to disk.
    pub fn sync(&mut self) -> anyhow::Result<()> {
        self.file
            .sync_data()
            .with_context(|| format!("could not sync `{}`", self.path.display()))?;
        self.unsynced = 0;
        Ok(())
    }
}

/// Writes `bytes` to `path` through a synced temp file in the same directory and a rename.
pub fn write_atomically(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let dir = path
        .parent()
        .filter(|d| !d.as_os_str().is_empty())
        .unwrap_or(Path::new("."));
    std::fs::create_dir_all(dir)
        .with_context(|| format!("could not create directory `{}`", dir.display()))?;
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    let tmp = dir.join(format!(".{name}.tmp-{}", std::process::id()));
    let mut file =
        File::create(&tmp).with_context(|| format!("could not create `{}`", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path)
        .with_context(|| format!("could not move `{}` into place", path.display()))?;
    Ok(())
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
    fn a_partial_last_line_is_cut_off() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\n{\"id\":\"b\",\"generation\":\"<thi").unwrap();
        let out = ResumableJsonl::open(&path).unwrap();
        assert_eq!(out.len(), 1);
        assert!(!out.contains("b"));
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "{\"id\":\"a\"}\n");
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.jsonl");
        std::fs::write(&path, "{\"id\":\"a\"}\nnot json\n").unwrap();
        let err = ResumableJsonl::open(&path).unwrap_err().to_string();
        assert!(err.contains("line 2"), "{err}");
    }

    #[test]
    fn atomic_write_leaves_no_temp_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.json");
        write_atomically(&path, b"{}").unwrap();
        write_atomically(&path, b"{\"a\":1}").unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"{\"a\":1}");
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
    }
}
