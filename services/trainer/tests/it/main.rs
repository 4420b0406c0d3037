//! Integration tests of sqlrft-trainer: one test binary, modules by subject.
mod gguf_reference;
mod golden;
mod hub;
mod model;
// In-process execution scoring (and the quickstart sandbox it reads) needs DuckDB.
#[cfg(feature = "execution")]
mod pipeline;
mod reference;
#[cfg(feature = "execution")]
mod reward_service;
#[cfg(feature = "execution")]
mod rewards;
mod sft;
#[cfg(feature = "execution")]
mod spans;
mod tiny;
#[cfg(feature = "execution")]
mod trace;
mod train;
