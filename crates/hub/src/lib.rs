//! A Hugging Face Hub client over the Hub's HTTP API (no Python, no `hf-hub` crate):
//! list and download repo files into a disk cache, create repos, and commit files, with
//! large files going through Git LFS as the Hub expects. Retries 429/5xx with backoff.
//!
//! Configured from `HF_ENDPOINT` (default `https://huggingface.co`) and `HF_TOKEN`.
//! With the `stub` feature, [`stub`] serves an in-memory Hub on 127.0.0.1 for tests.

#![warn(missing_docs)]

#[cfg(feature = "clap")]
mod args;
mod client;
mod download;
#[cfg(feature = "stub")]
pub mod stub;
mod upload;

#[cfg(feature = "clap")]
pub use args::{HubArgs, HubArgsError};
pub use client::{HubClient, HubConfig, HubError, RepoType, split_repo_id};
pub use download::{LfsPointer, RepoEntry};
pub use upload::{CommitFile, CommitInfo, FileSource, publish_model_dir};
