//! The model contract every sqlrft backend shares: one definition of a Qwen2 / Llama decoder
//! (`config.json` parsing incl. transformers 5's `rope_parameters`, rope scaling, attention
//! biases, tied embeddings), its weight layout and safetensors loading, LoRA adapters, AdamW,
//! sampling parameters and the [`backend::Backend`] trait the GRPO loop drives.
//!
//! [`backend::CpuBackend`] is the f32 CPU reference: the trainer runs it on machines without a
//! GPU, and the CUDA backend (`sqlrft-cuda`) is held to it in its tests.

#![warn(missing_docs)]

pub mod backend;
pub mod config;
pub mod cpu;
pub mod lora;
pub mod optim;
pub mod params;
pub mod sampling;
