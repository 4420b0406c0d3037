use std::io;
use std::path::{Path, PathBuf};

/// A file operation that failed, naming the file and what was being done to it.
#[derive(Debug, thiserror::Error)]
#[error("{action} `{}`: {source}", .path.display())]
pub struct Error {
    /// What was being done, phrased to precede the path ("could not create").
    pub action: &'static str,
    /// The file or directory it was done to.
    pub path: PathBuf,
    /// The operating system's error.
    #[source]
    pub source: io::Error,
}

impl Error {
    pub(crate) fn new(action: &'static str, path: &Path, source: io::Error) -> Self {
        Error {
            action,
            path: path.to_path_buf(),
            source,
        }
    }

    /// A closure for `map_err` that names `path`.
    pub(crate) fn at(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> Self {
        move |source| Error::new(action, path, source)
    }
}

/// Why a [`Journal`](crate::Journal) could not be read back.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// The file could not be opened, read, cut or created.
    #[error(transparent)]
    Io(#[from] Error),
    /// A complete line (one that ends in a newline, so not a torn write) is not a record of the
    /// expected type: the file was edited, or written by something else.
    #[error(
        "`{}` line {line} is not a record of the expected shape ({source}); fix or delete the file to start over",
        .path.display()
    )]
    Corrupt {
        /// The journal.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// Why the line did not parse.
        source: serde_json::Error,
    },
}
