//! sqlrft-gguf: imports a GGUF model (llama.cpp's format) as a Hugging Face model directory that
//! the trainer, eval and transformers load.
//!
//! - [`GgufFile`] memory-maps a GGUF v2/v3 file and reads its header, metadata (every value type,
//!   arrays included) and tensor infos.
//! - [`GgmlType`] decodes F32, F16, BF16, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0 and the K-quants Q2_K to
//!   Q6_K to f32.
//! - [`plan`] maps the `llama` and `qwen2` architectures' tensor names and hyper-parameters to
//!   Hugging Face's, undoing llama.cpp's rotary row permutation of Llama's q/k projections.
//! - [`tokenizer_files`] turns the GPT-2 style BPE vocabulary, merges, token types, special ids
//!   and chat template into `tokenizer.json` and `tokenizer_config.json`.
//! - [`import`] writes the directory atomically through `sqlrft-files`, decoding one tensor at
//!   a time into `model.safetensors`.

#![warn(missing_docs)]

mod cli;
mod error;
mod import;
mod model;
mod quant;
mod reader;
mod tokenizer;

pub use cli::{ImportGgufArgs, locate_in_pip_package, run_import_gguf};
pub use error::{Error, Result};
pub use import::{OutputDtype, Summary, import, import_file, parameter_count};
pub use model::{Architecture, ModelPlan, PlannedTensor, plan, unpermute_rows};
pub use quant::GgmlType;
pub use reader::{GgufFile, TensorInfo, Value};
pub use tokenizer::{TokenizerFiles, tokenizer_files};
