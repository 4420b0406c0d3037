//! sqlrft-trainer: GRPO fine-tuning of Qwen2 / Llama-3 models for SQL generation.
//!
//! It replaces the seed project's Unsloth + TRL `train` command. The maths follows TRL 1.16's
//! `GRPOTrainer` (advantages, clipped surrogate, k3 KL, the `grpo`/`bnpo`/`dr_grpo`/`dapo`
//! aggregations); the model runs on a [`backend::Backend`], of which [`backend::CpuBackend`] is
//! the plain f32 reference that faster backends are held to. Rewards come from
//! [`reward::RewardFunction`]s: format checks and SQL execution on the sandbox in process
//! (`execution::ExecutionReward`, the `execution` feature, which links DuckDB), or the reward
//! service over HTTP.

#![warn(missing_docs)]

pub mod backend;
pub mod bench;
pub mod card;
pub mod checkpoint;
pub mod cli;
pub mod config;
pub mod cpu;
pub mod data;
#[cfg(feature = "execution")]
pub mod execution;
pub mod export;
pub mod generator;
pub mod grpo;
pub mod hub;
pub mod lora;
pub mod metrics;
pub mod optim;
pub mod params;
pub mod reward;
pub mod rollout;
pub mod sampling;
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
