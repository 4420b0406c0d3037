//! An append-only JSON Lines file that survives a kill at any byte.

use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write};
use std::path::{Path, PathBuf};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::atomic::{parent, sync_dir};
use crate::{Error, JournalError};

/// An append-only JSON Lines file of finished items.
///
/// A record is serialised to one line and written with one `write_all`, so after a kill the
/// file holds whole records and at most one torn line at the end; [`Journal::open`] reads the
/// whole ones back and cuts the torn one off, and appends continue on a clean line. Without
/// [`Journal::sync`] a record survives a killed process (it is in the page cache) but not a power
/// cut; [`Journal::sync_every`] bounds what a power cut can take.
#[derive(Debug)]
pub struct Journal {
    file: File,
    path: PathBuf,
    sync_every: usize,
    unsynced: usize,
}

impl Journal {
    /// Opens (or creates, with missing parent directories) the journal at `path` and returns
    /// the records of its complete lines, in order. A torn last line is cut off; a complete line
    /// that is not a `T` is an error (blank lines are skipped).
    pub fn open<T: DeserializeOwned>(path: &Path) -> Result<(Journal, Vec<T>), JournalError> {
        let dir = parent(path)?;
        fs::create_dir_all(dir).map_err(Error::at("could not create the directory", dir))?;
        let existed = path.exists();
        let file = OpenOptions::new()
            .read(true)
            .append(true)
            .create(true)
            .open(path)
            .map_err(Error::at("could not open", path))?;
        if !existed {
            sync_dir(dir)?;
        }
        let (records, complete) = read_records(&file, path)?;
        let len = file
            .metadata()
            .map_err(Error::at("could not read", path))?
            .len();
        if complete < len {
            tracing::warn!(
                path = %path.display(),
                bytes = len - complete,
                "cutting off a partial last line (the previous run was interrupted)"
            );
            file.set_len(complete)
                .and_then(|()| file.sync_all())
                .map_err(Error::at("could not cut the partial last line of", path))?;
        }
        Ok((Self::from_file(file, path), records))
    }

    /// Starts the journal at `path` afresh, empty, whatever was there before.
    pub fn create(path: &Path) -> Result<Journal, Error> {
        let dir = parent(path)?;
        fs::create_dir_all(dir).map_err(Error::at("could not create the directory", dir))?;
        let file = OpenOptions::new()
            .append(true)
            .create(true)
            .open(path)
            .map_err(Error::at("could not create", path))?;
        file.set_len(0)
            .and_then(|()| file.sync_all())
            .map_err(Error::at("could not empty", path))?;
        sync_dir(dir)?;
        Ok(Self::from_file(file, path))
    }

    /// Reads the records of the complete lines at `path` without changing the file (another
    /// process may still be appending). A missing file has none.
    pub fn read<T: DeserializeOwned>(path: &Path) -> Result<Vec<T>, JournalError> {
        match File::open(path) {
            Ok(file) => Ok(read_records(&file, path)?.0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(Vec::new()),
            Err(e) => Err(Error::new("could not open", path, e).into()),
        }
    }

    fn from_file(file: File, path: &Path) -> Journal {
        Journal {
            file,
            path: path.to_path_buf(),
            sync_every: 0,
            unsynced: 0,
        }
    }

    /// Syncs after every `lines` appends (0, the default, syncs only on [`Journal::sync`]).
    pub fn sync_every(mut self, lines: usize) -> Journal {
        self.sync_every = lines;
        self
    }

    /// The journal's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one record as one line, in one write.
    pub fn append<T: Serialize + ?Sized>(&mut self, record: &T) -> Result<(), Error> {
        let mut line = serde_json::to_vec(record)
            .map_err(|e| Error::new("could not serialise a record for", &self.path, e.into()))?;
        // Compact JSON never holds a raw newline, but a `RawValue` could; it would read back as
        // two broken lines.
        if line.contains(&b'\n') {
            return Err(Error::new(
                "could not append to",
                &self.path,
                io::Error::new(
                    io::ErrorKind::InvalidInput,
                    "the record serialises to more than one line",
                ),
            ));
        }
        line.push(b'\n');
        self.file
            .write_all(&line)
            .map_err(Error::at("could not append to", &self.path))?;
        self.unsynced += 1;
        if self.sync_every > 0 && self.unsynced >= self.sync_every {
            self.sync()?;
        }
        Ok(())
    }

    /// Makes the appended records survive a power cut.
    pub fn sync(&mut self) -> Result<(), Error> {
        self.file
            .sync_data()
            .map_err(Error::at("could not sync", &self.path))?;
        self.unsynced = 0;
        Ok(())
    }

    /// Deletes the journal (its job is done); a journal already gone is fine.
    pub fn remove(self) -> Result<(), Error> {
        drop(self.file);
        match fs::remove_file(&self.path) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => {
                Err(Error::new("could not remove", &self.path, e))
            }
            _ => Ok(()),
        }
    }
}

/// The records of the complete lines of `file`, and the length of those lines in bytes.
fn read_records<T: DeserializeOwned>(
    file: &File,
    path: &Path,
) -> Result<(Vec<T>, u64), JournalError> {
    let mut reader = BufReader::new(file);
    let mut records = Vec::new();
    let mut complete = 0u64;
    let mut line = Vec::new();
    for number in 1.. {
        line.clear();
        let read = reader
            .read_until(b'\n', &mut line)
            .map_err(Error::at("could not read", path))?;
        if read == 0 || line.last() != Some(&b'\n') {
            break;
        }
        if !line.iter().all(u8::is_ascii_whitespace) {
            let record = serde_json::from_slice(&line).map_err(|source| JournalError::Corrupt {
                path: path.to_path_buf(),
                line: number,
                source,
            })?;
            records.push(record);
        }
        complete += read as u64;
    }
    Ok((records, complete))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::{Value, json};

    #[test]
    fn records_come_back_in_order_and_appends_continue() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("progress/j.jsonl");
        let (mut journal, records) = Journal::open::<Value>(&path).unwrap();
        assert!(records.is_empty());
        journal.append(&json!({"id": "a"})).unwrap();
        journal.append(&json!({"id": "b"})).unwrap();
        drop(journal);
        let (mut journal, records) = Journal::open::<Value>(&path).unwrap();
        assert_eq!(records, [json!({"id": "a"}), json!({"id": "b"})]);
        journal.append(&json!({"id": "c"})).unwrap();
        journal.sync().unwrap();
        assert_eq!(Journal::read::<Value>(&path).unwrap().len(), 3);
    }

    #[test]
    fn a_corrupt_complete_line_is_an_error_naming_the_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        fs::write(&path, "{\"id\":\"a\"}\n\nnot json\n").unwrap();
        let err = Journal::open::<Value>(&path).unwrap_err();
        assert!(
            matches!(err, JournalError::Corrupt { line: 3, .. }),
            "{err}"
        );
        assert!(err.to_string().contains("j.jsonl` line 3"), "{err}");
    }

    #[test]
    fn reading_leaves_a_torn_line_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        fs::write(&path, "1\n2\n3").unwrap();
        assert_eq!(Journal::read::<u32>(&path).unwrap(), [1, 2]);
        assert_eq!(fs::read_to_string(&path).unwrap(), "1\n2\n3");
        assert!(
            Journal::read::<u32>(&dir.path().join("none"))
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn create_starts_afresh_and_remove_deletes() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("j.jsonl");
        fs::write(&path, "1\n2\n").unwrap();
        let mut journal = Journal::create(&path).unwrap();
        journal.append(&7).unwrap();
        drop(journal);
        let (journal, records) = Journal::open::<u32>(&path).unwrap();
        assert_eq!(records, [7]);
        journal.remove().unwrap();
        assert!(!path.exists());
    }
}
