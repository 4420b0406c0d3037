//! Append-only JSONL journals: one line per finished item, written and flushed as it finishes,
//! so a killed run loses at most the items in flight and never asks a finished one again.
//!
//! On open, a torn last line (the process died mid-write) is cut off, so the next append starts
//! on a line of its own. When an item appears twice, the later line wins.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use anyhow::{Context, Result};
use serde::Serialize;
use serde::de::DeserializeOwned;

/// An open journal.
pub struct Journal {
    path: PathBuf,
    file: Mutex<File>,
}

impl Journal {
    /// Opens (or creates) `path` and returns it with the entries already in it, in file order.
    pub fn open<T: DeserializeOwned>(path: &Path) -> Result<(Journal, Vec<T>)> {
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .with_context(|| format!("could not create `{}`", parent.display()))?;
        }
        let mut file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .with_context(|| format!("could not open the journal `{}`", path.display()))?;
        let mut entries = Vec::new();
        let mut good_len = 0u64;
        {
            let mut reader = BufReader::new(&mut file);
            let mut line = String::new();
            loop {
                line.clear();
                let read = reader
                    .read_line(&mut line)
                    .with_context(|| format!("could not read `{}`", path.display()))?;
                if read == 0 || !line.ends_with('\n') {
                    break;
                }
                match serde_json::from_str(line.trim_end()) {
                    Ok(entry) => {
                        entries.push(entry);
                        good_len += read as u64;
                    }
                    // A complete line that does not parse was not written by us whole; stop
                    // here and drop the rest rather than guess.
                    Err(err) => {
                        tracing::warn!(journal = %path.display(), error = %err, "dropping an unreadable journal tail");
                        break;
                    }
                }
            }
        }
        if file.metadata()?.len() != good_len {
            file.set_len(good_len)
                .with_context(|| format!("could not repair `{}`", path.display()))?;
        }
        file.seek(SeekFrom::End(0))?;
        Ok((
            Journal {
                path: path.to_path_buf(),
                file: Mutex::new(file),
            },
            entries,
        ))
    }

    /// Appends one entry as one line and hands it to the kernel before returning.
    pub fn append<T: Serialize>(&self, entry: &T) -> Result<()> {
        let mut line = serde_json::to_string(entry)?;
        line.push('\n');
        let mut file = self
            .file
            .lock()
            .map_err(|_| anyhow::anyhow!("the journal lock is poisoned"))?;
        // One write call per line: a kill can tear only the last line, which `open` repairs.
        file.write_all(line.as_bytes())
            .and_then(|()| file.flush())
            .with_context(|| format!("could not append to `{}`", self.path.display()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde::Deserialize;

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    struct Entry {
        id: u32,
    }

    #[test]
    fn entries_survive_reopening() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j/model.jsonl");
        let (journal, old) = Journal::open::<Entry>(&path).unwrap();
        assert!(old.is_empty());
        journal.append(&Entry { id: 1 }).unwrap();
        journal.append(&Entry { id: 2 }).unwrap();
        drop(journal);
        let (_, back) = Journal::open::<Entry>(&path).unwrap();
        assert_eq!(back, vec![Entry { id: 1 }, Entry { id: 2 }]);
    }

    #[test]
    fn a_torn_last_line_is_cut_off_and_appends_stay_whole() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("m.jsonl");
        std::fs::write(&path, "{\"id\":1}\n{\"id\":2}\n{\"id\":").unwrap();
        let (journal, back) = Journal::open::<Entry>(&path).unwrap();
        assert_eq!(back, vec![Entry { id: 1 }, Entry { id: 2 }]);
        journal.append(&Entry { id: 3 }).unwrap();
        drop(journal);
        assert_eq!(
            std::fs::read_to_string(&path).unwrap(),
            "{\"id\":1}\n{\"id\":2}\n{\"id\":3}\n"
        );
    }
}
