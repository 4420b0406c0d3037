//! The reward library: scores SQL completions by executing them and comparing the typed result
//! with the gold result — the reward for reinforcement fine-tuning. The reward service
//! (`sqlrft reward serve`) is HTTP around it; the trainer, distill and eval call it in process.
//!
//! - [`RewardEngine`] extracts a completion's SQL, runs it through a [`SqlExecutor`], and scores
//!   it against a ground truth; gold SQL results are cached per database.
//! - SQL runs embedded on a DuckDB file ([`EmbeddedExecutor`]) or through an MCP server's `query`
//!   tool with typed `structuredContent` ([`McpExecutor`]); results and verdicts are the same.
//! - [`Gold`] is the one "gold rows, and does their order matter?"; [`Gold::score`] is the one
//!   way an attempt becomes an evaluation, and [`ExecError`] the one split of failures into the
//!   completion's (score 0) and the infrastructure's (no score).
//! - [`run_on_item_database`] runs one dataset item's SQL on a scratch database built from its
//!   `sql_context` (or its sandbox): the seed project's validity check.
//! - [`wire`] holds the reward service's JSON contract; [`RewardClient`] speaks it.
//!
//! The comparison and the reward maths live in `sqlrft-core` (`compare`, `score`). This crate
//! never serves HTTP, reads flags or configuration files, or writes to a database.
//!
//! Features: `embedded` (DuckDB in process: the engine, the embedded executor, the error
//! mapping), `mcp` (the MCP executor), `http-client` ([`RewardClient`], no DuckDB). All are on
//! by default; a crate that must not link DuckDB asks for `http-client` alone.

#![warn(missing_docs)]

#[cfg(feature = "http-client")]
mod client;
#[cfg(feature = "embedded")]
mod context;
#[cfg(feature = "embedded")]
mod embedded;
#[cfg(feature = "embedded")]
mod engine;
mod executor;
mod gold;
#[cfg(feature = "mcp")]
mod mcp;
pub mod wire;

#[cfg(feature = "http-client")]
pub use client::{ClientError, RewardClient};
#[cfg(feature = "embedded")]
pub use context::{ItemDatabase, run_on_item_database};
#[cfg(feature = "embedded")]
pub use embedded::{EmbeddedExecutor, ExecutorSpec};
#[cfg(feature = "embedded")]
pub use engine::{DEFAULT_GOLD_CACHE, EngineOptions, RewardEngine};
pub use executor::{ExecError, SqlExecutor};
pub use gold::Gold;
#[cfg(feature = "mcp")]
pub use mcp::{McpExecutor, mcp_endpoint};
