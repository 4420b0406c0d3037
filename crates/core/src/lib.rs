//! Types every sqlrft service shares: typed result sets, result comparison, SQL extraction
//! from completions, reward scoring, dataset records and layered configuration.
//!
//! This crate does no I/O of its own beyond reading a config file: no DuckDB, no HTTP, no
//! async runtime, no telemetry (the `sqlrft` binary installs that).

#![warn(missing_docs)]

pub mod compare;
pub mod config;
pub mod dataset;
pub mod extract;
pub mod ground_truth;
pub mod result;
pub mod score;
pub mod types;

pub use result::ResultSet;
pub use types::DuckType;
