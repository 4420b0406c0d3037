//! Chain-of-thought distillation for text-to-SQL, and publishing datasets to the Hub.
//!
//! `sqlrft distill` reads a dataset in the gretelai/synthetic_text_to_sql shape (from the Hub,
//! a local JSONL/parquet file, or `sqlrft build` output), keeps the retrieval items whose gold
//! SQL is one SELECT that runs on their context in DuckDB, asks a teacher LLM (any
//! OpenAI-compatible API) to reason its way to that SQL in `<think>…</think><sql>…</sql>`,
//! optionally checks each answer by executing it and comparing results the way the reward
//! service does, and appends ready-to-train rows to a resumable JSONL. `--shard i/n` splits the
//! work between job workers; `sqlrft distill merge` joins their outputs.
//! `sqlrft publish dataset` uploads the result with a dataset card.

#![warn(missing_docs)]

mod distill;
mod merge;
mod output;
mod parquet;
mod prompt;
mod publish;
mod shard;
mod source;
mod validation;

pub use distill::{DistillArgs, run_distill};
pub use merge::{MergeArgs, MergeSummary, run_merge};
pub use output::{DistillSummary, ResumableJsonl};
pub use prompt::{STUDENT_INSTRUCTIONS, student_prompt, teacher_messages};
pub use publish::{PublishDatasetArgs, run_publish_dataset};
pub use shard::Shard;
pub use source::{ColumnMap, SourceItem, item_id};
pub use validation::{Database, DropReason, Gold, Judged, check_source, judge};
