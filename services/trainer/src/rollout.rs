//! The rollout contract (`proto/sqlrft/v1/rollout.proto`, crate `sqlrft-proto`). The trainer
//! uses these types even when prompts, sampling and scoring all run in one process.
pub use sqlrft_proto::v1::*;
