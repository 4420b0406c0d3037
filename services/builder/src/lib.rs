//! The dataset builder: schema in, synthetic sandbox and RFT dataset out.
//!
//! Stages, each a `sqlrft build` subcommand, each resumable and writing atomically:
//! schema (catalog only, never a data row) → sandbox (seeded generator or LLM) → queries
//! (grammar with a complexity taxonomy, or LLM) → ground truth (run twice on the sandbox) →
//! questions (templates or LLM) → dataset (stratified train/test JSONL in the Fireworks RFT
//! format). It works offline by default and uses an LLM when one is configured.

pub mod analysis;
pub mod bench;
pub mod catalog;
pub mod cli;
pub mod fingerprint;
pub mod grammar;
pub mod llm_queries;
pub mod llm_rows;
pub mod pipeline;
pub mod queries;
pub mod questions;
pub mod records;
pub mod report;
pub mod sandbox;
pub mod schema;
pub mod stage;
pub mod synthetic;
pub mod truth;
mod vocabulary;

pub use bench::{BenchArgs, BenchReport, run_bench};
pub use cli::{
    BuildAllArgs, BuildCommand, DEMO_SCHEMA_DDL, QuickstartArgs, QuickstartOutcome, run_all,
    run_build, run_quickstart,
};
pub use schema::Schema;
