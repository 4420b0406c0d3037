//! sqlrft-trainer: GRPO fine-tuning of Qwen2 / Llama-3 models for SQL generation.
//!
//! It replaces the seed project's Unsloth + TRL `train` command. The maths follows TRL 1.16's
//! `GRPOTrainer` (advantages, clipped surrogate, k3 KL, the `grpo`/`bnpo`/`dr_grpo`/`dapo`
//! aggregations); the model runs on a `sqlrft_model::backend::Backend` on the device `--device`
//! picks ([`device`]): the f32 CPU reference or `sqlrft-cuda`'s `CudaBackend`. Rewards come from
//! [`reward::RewardFunction`]s: format checks and SQL execution on the sandbox in process
//! (`execution::ExecutionReward`, the `execution` feature, which links DuckDB), or the reward
//! service over HTTP.

#![warn(missing_docs)]

pub mod bench;
pub mod card;
pub mod checkpoint;
pub mod cli;
pub mod data;
pub mod device;
#[cfg(feature = "execution")]
pub mod execution;
pub mod export;
pub mod generator;
pub mod grpo;
pub mod hub;
pub mod metrics;
pub mod reward;
pub mod rollout;
pub mod scoring;
pub mod seed;
pub mod sft;
pub mod tokenizer;
pub mod train;
pub mod workers;

pub use cli::{
    ExportArgs, PublishModelArgs, RoundArgs, TrainAction, TrainArgs, TrainCommand,
    publish_model_dir, run_export, run_publish_model, run_train, run_train_command,
    run_train_with_rewards, stop_flag,
};
