//! `sqlrft eval`: execution accuracy of several models on a test set, and a report that says
//! whether tuning helped, where, and whether the difference is significant.
//!
//! - Models are OpenAI-compatible endpoints (through `sqlrft-llm`: bounded concurrency, retries
//!   honouring `Retry-After`, token accounting) or local Hugging Face directories run greedily
//!   by the trainer's model code ([`spec`] has the `--model NAME=SPEC` forms).
//! - Answers are scored exactly as training scores them: the reward engine in process on the
//!   sandbox, or the reward service over HTTP.
//! - Every finished item is appended to a per-model JSONL journal, so a killed run resumes and
//!   never asks a finished item again.
//! - The report (`report.md`, a self-contained `report.html`, `results.json`, `accuracy.png`)
//!   has Wilson intervals, per-class and per-tag accuracy, outcome rates, McNemar's exact test
//!   for every pair of models, latency/tokens/cost and the items where the models disagree.

#![warn(missing_docs)]

mod answer;
pub mod bench;
mod cli;
mod dataset;
mod rate;
pub mod report;
mod run;
mod scorer;
pub mod spec;
pub mod stats;
mod verdict;

pub use answer::{AskFailure, EndpointSettings, LocalModel, Sampling};
pub use bench::{BenchArgs, BenchReport, run_bench};
pub use cli::{EvalArgs, EvalOutcome, run_eval, three_lines};
pub use dataset::{EvalItem, Selection};
pub use run::{EvalPlan, EvalRun, ModelRun, ScoreWith, journal_path, run};
pub use spec::{ModelSpec, Target};
pub use verdict::{ItemRecord, Outcome, SampleRecord};
