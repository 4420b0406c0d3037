//! The dataset builder: schema in, synthetic sandbox and RFT dataset out.
//!
//! Stages, each a `sqlrft build` subcommand, each resumable and writing atomically:
//! schema (catalog only, never a data row) → sandbox (seeded generator or LLM) → queries
//! (grammar with a complexity taxonomy, or LLM) → ground truth (run twice on the sandbox) →
//! questions (templates or LLM) → dataset (stratified train/test JSONL in the Fireworks RFT
//! format). It works offline by default and uses an LLM when one is configured.
//!
//! The public surface is what the `sqlrft` binary and the crates that build a dataset for their
//! own tests need: the `build`/`quickstart` flags and entry points, the flag groups, the schema
//! model and the benchmark; everything else is `pub(crate)`.

#![warn(missing_docs)]

mod analysis;
mod bench;
mod catalog;
mod cli;
mod fingerprint;
mod grammar;
mod llm_queries;
mod llm_rows;
mod pipeline;
mod queries;
mod questions;
mod records;
mod report;
mod sandbox;
mod schema;
mod stage;
mod synthetic;
mod truth;
mod vocabulary;

pub use bench::{BenchArgs, BenchReport, OPENFLIGHTS_DDL, run_bench};
pub use cli::{
    BuildAllArgs, BuildCommand, BuildDatasetArgs, BuildQueriesArgs, BuildQuestionsArgs,
    BuildSandboxArgs, BuildSchemaArgs, BuildTruthArgs, DEMO_SCHEMA_DDL, QuickstartArgs,
    QuickstartOutcome, run_all, run_build, run_quickstart,
};
pub use pipeline::{
    CommonArgs, DatasetOpts, LlmArgs, LlmStage, QueryOpts, QuestionOpts, SandboxOpts, SchemaOpts,
    StageOutcome, TruthOpts, schema_stage,
};
pub use queries::Mix;
pub use records::{GroundTruthFormat, PromptFormat};
pub use schema::{Column, ForeignKey, KeyOrigin, Schema, Table};
