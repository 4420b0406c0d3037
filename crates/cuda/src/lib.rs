//! The GRPO trainer's CUDA backend: kernels, a Qwen2 / Llama model on the GPU, and training.
//!
//! Kernels are CUDA C sources in `kernels/` (one concern per file, bf16 activations, fp32
//! arithmetic), embedded in the binary and compiled at run time by NVRTC for the GPU's own
//! architecture ([`KernelCache`] keeps the CUBINs on disk). GEMMs go through cuBLASLt in bf16
//! with fp32 accumulation ([`Gpu::gemm`]). Nothing here needs CUDA to build: cudarc loads
//! `libcuda`, `libnvrtc` and `libcublasLt` when first used, and [`probe()`] says, without
//! panicking, whether a GPU is there.
//!
//! On top of the kernels: [`GpuModel`] (forward, chunked lm-head scoring, batched generation
//! with a KV cache) and [`GpuTrainer`] (full fine-tuning or LoRA: forward with per-layer
//! checkpoints, recomputing backward, gradient clipping, fused AdamW on fp32 masters).
//!
//! Every kernel has a plain CPU reference in [`mod@reference`], and [`check`] holds each launch
//! to it on random inputs: the same checks run as GPU tests and as `sqlrft cuda check` on a GPU
//! machine. `emulator/` runs the kernel sources on the CPU for machines without one.

#![warn(missing_docs)]

pub mod backend;
pub mod cache;
pub mod check;
pub mod device;
pub mod gemm;
pub mod kernels;
pub mod model;
pub mod nvrtc;
pub mod ops;
pub mod probe;
pub mod reference;
pub mod train;

pub use backend::{CudaBackend, CudaOptions};
pub use cache::{KernelCache, default_cache_dir};
pub use device::Gpu;
pub use gemm::GemmShape;
pub use kernels::{KernelSource, SOURCES};
pub use model::{Attention, Completion, GpuModel, KvCache, ModelDims, Scores};
pub use ops::{AdamStep, AttnDims, SampleParams};
pub use probe::{DeviceInfo, Unavailable, probe};
pub use train::{GpuTrainer, Saved, Scoring, TensorState};
