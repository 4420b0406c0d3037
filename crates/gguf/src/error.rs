//! What can go wrong importing a GGUF file; every message names the file.

use std::path::PathBuf;

/// An import failure.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be opened or mapped.
    #[error("could not read `{path}`: {source}")]
    Read {
        /// The GGUF file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The bytes are not a well-formed GGUF file.
    #[error("`{path}` is not a valid GGUF file: {reason}")]
    Malformed {
        /// The GGUF file.
        path: PathBuf,
        /// What is wrong, and where.
        reason: String,
    },
    /// A well-formed file holding something this importer cannot convert.
    #[error("`{path}`: {what}; {supported}")]
    Unsupported {
        /// The GGUF file.
        path: PathBuf,
        /// What was found.
        what: String,
        /// What is supported instead.
        supported: String,
    },
    /// Writing the model directory failed.
    #[error(transparent)]
    Write(#[from] sqlrft_files::Error),
    /// Serializing the weights failed.
    #[error("could not write `{path}`: {reason}")]
    Output {
        /// The file being written.
        path: PathBuf,
        /// Why.
        reason: String,
    },
    /// Finding a GGUF file inside an installed Python package failed.
    #[error("{0}")]
    Locate(String),
}

/// The crate's result type.
pub type Result<T, E = Error> = std::result::Result<T, E>;
