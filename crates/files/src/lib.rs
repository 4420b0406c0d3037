//! Durable files: how every sqlrft job writes to disk so that a kill at any moment (SIGKILL, OOM,
//! a pre-empted node) leaves either the old content or the new one, never a part, and so a long
//! job resumes from what it had finished.
//!
//! - [`write`], [`write_json`], [`write_jsonl`] and [`AtomicFile`] replace one file: the bytes go
//!   to a temporary file in the same directory, which is fsynced, renamed over the target, and
//!   the directory fsynced, so the rename itself survives a power cut.
//! - [`Staged`] does the same for a whole directory (a checkpoint, an exported model) or for a
//!   file that another library creates itself (a DuckDB database).
//! - [`Journal`] is an append-only JSON Lines file of finished items. Each record is one line
//!   written in one call; on open, every complete line is read back and a torn last line (the
//!   process died mid-write) is cut off, so a kill at any byte loses at most the record being
//!   written.
//!
//! The crate is synchronous: async callers run the slow step ([`AtomicFile::commit`], which
//! fsyncs) on their runtime's blocking pool.

#![warn(missing_docs)]

mod atomic;
mod error;
mod journal;
mod staged;

pub use atomic::{AtomicFile, write, write_json, write_jsonl};
pub use error::{Error, JournalError};
pub use journal::Journal;
pub use staged::Staged;

#[cfg(test)]
mod tests {
    use std::path::Path;

    /// The sorted names in `dir`: what the atomic writes must leave behind, and nothing else.
    pub(crate) fn names_in(dir: &Path) -> Vec<String> {
        let mut names: Vec<_> = std::fs::read_dir(dir)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    }
}
