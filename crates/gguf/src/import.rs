//! A GGUF file in, a Hugging Face model directory out, written atomically.

use crate::error::{Error, Result};
use crate::model::{self, Architecture, PlannedTensor};
use crate::reader::GgufFile;
use crate::tokenizer;
use safetensors::Dtype;
use safetensors::tensor::View;
use sqlrft_files::Staged;
use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Element type of the written `model.safetensors`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, clap::ValueEnum)]
pub enum OutputDtype {
    /// Exactly the dequantized values (the trainer computes in f32).
    #[default]
    F32,
    /// Half the size; rounds each dequantized value to bfloat16.
    Bf16,
    /// Half the size; rounds each dequantized value to IEEE half.
    F16,
}

impl OutputDtype {
    fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }
}

/// What [`import`] wrote.
#[derive(Clone, Debug)]
pub struct Summary {
    /// The model directory.
    pub out: PathBuf,
    /// The decoder family.
    pub architecture: Architecture,
    /// Number of parameters written.
    pub parameters: u64,
    /// Tensors written.
    pub tensors: usize,
    /// How many source tensors had each GGUF type.
    pub source_types: BTreeMap<String, usize>,
    /// Layers.
    pub layers: u64,
    /// Vocabulary size.
    pub vocab_size: u64,
    /// The output element type.
    pub dtype: OutputDtype,
    /// Whether the GGUF file carried a chat template.
    pub chat_template: bool,
}

impl std::fmt::Display for Summary {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let types: Vec<String> = self
            .source_types
            .iter()
            .map(|(t, n)| format!("{n} {t}"))
            .collect();
        write!(
            f,
            "imported a {} model into `{}`: {:.1} M parameters in {} tensors (from {}), {} layers, vocabulary {}, {} weights, {}",
            self.architecture.key(),
            self.out.display(),
            self.parameters as f64 / 1e6,
            self.tensors,
            types.join(", "),
            self.layers,
            self.vocab_size,
            self.dtype.torch_name(),
            if self.chat_template {
                "chat template included"
            } else {
                "no chat template"
            }
        )
    }
}

/// Reads `gguf` and writes `out` (replacing it atomically): `config.json`, `model.safetensors`,
/// `tokenizer.json`, `tokenizer_config.json`, `special_tokens_map.json`,
/// `generation_config.json`. `progress` is called with the element count of each tensor as it is
/// decoded (the total is [`parameter_count`]).
pub fn import(
    gguf: &Path,
    out: &Path,
    dtype: OutputDtype,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Summary> {
    let file = GgufFile::open(gguf)?;
    import_file(&file, out, dtype, progress)
}

/// The number of elements of every tensor in `file` (for a progress bar's length).
pub fn parameter_count(file: &GgufFile) -> u64 {
    file.tensors.iter().map(|t| t.elements()).sum()
}

/// [`import`] for a file already open.
pub fn import_file(
    file: &GgufFile,
    out: &Path,
    dtype: OutputDtype,
    progress: &(dyn Fn(u64) + Sync),
) -> Result<Summary> {
    let plan = model::plan(file)?;
    let max_len = plan.config["max_position_embeddings"]
        .as_u64()
        .unwrap_or(2048);
    let tok = tokenizer::tokenizer_files(file, max_len)?;
    let mut config = plan.config.clone();
    config["torch_dtype"] = dtype.torch_name().into();

    let staged = Staged::dir(out)?;
    let json =
        |v: &serde_json::Value| serde_json::to_string_pretty(v).expect("JSON values serialize");
    staged.write("config.json", json(&config))?;
    staged.write("tokenizer.json", tok.tokenizer.to_string())?;
    staged.write("tokenizer_config.json", json(&tok.config))?;
    staged.write("special_tokens_map.json", json(&tok.special_tokens_map))?;
    staged.write("generation_config.json", json(&tok.generation_config))?;

    let weights_path = staged.path().join("model.safetensors");
    let views = plan.tensors.iter().map(|t| {
        (
            t.name.clone(),
            Decoded {
                file,
                tensor: t,
                dtype,
                progress,
            },
        )
    });
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    safetensors::serialize_to_file(views, Some(metadata), &weights_path).map_err(|e| {
        Error::Output {
            path: out.join("model.safetensors"),
            reason: e.to_string(),
        }
    })?;
    staged.commit()?;

    let mut source_types = BTreeMap::new();
    for t in &plan.tensors {
        *source_types
            .entry(format!("{:?}", t.source.ggml_type))
            .or_insert(0) += 1;
    }
    Ok(Summary {
        out: out.to_path_buf(),
        architecture: plan.architecture,
        parameters: plan.tensors.iter().map(|t| t.source.elements()).sum(),
        tensors: plan.tensors.len(),
        source_types,
        layers: config["num_hidden_layers"].as_u64().unwrap_or(0),
        vocab_size: config["vocab_size"].as_u64().unwrap_or(0),
        dtype,
        chat_template: tok.config.get("chat_template").is_some(),
    })
}

/// One output tensor, decoded only when safetensors writes it, so at most one tensor's f32
/// values are in memory at a time.
struct Decoded<'a> {
    file: &'a GgufFile,
    tensor: &'a PlannedTensor,
    dtype: OutputDtype,
    progress: &'a (dyn Fn(u64) + Sync),
}

impl View for Decoded<'_> {
    fn dtype(&self) -> Dtype {
        match self.dtype {
            OutputDtype::F32 => Dtype::F32,
            OutputDtype::Bf16 => Dtype::BF16,
            OutputDtype::F16 => Dtype::F16,
        }
    }

    fn shape(&self) -> &[usize] {
        &self.tensor.shape
    }

    fn data(&self) -> Cow<'_, [u8]> {
        // `GgufFile::open` checked every tensor's bounds and block size, so this cannot fail.
        let mut values = self
            .file
            .dequantize(&self.tensor.source)
            .expect("tensor bounds were checked when the file was opened");
        if let Some(heads) = self.tensor.unpermute_heads {
            let cols = self.tensor.shape.get(1).copied().unwrap_or(1);
            values = model::unpermute_rows(&values, heads, cols);
        }
        (self.progress)(values.len() as u64);
        Cow::Owned(match self.dtype {
            OutputDtype::F32 => values.iter().flat_map(|v| v.to_le_bytes()).collect(),
            OutputDtype::Bf16 => values
                .iter()
                .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                .collect(),
            OutputDtype::F16 => values
                .iter()
                .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                .collect(),
        })
    }

    fn data_len(&self) -> usize {
        self.tensor.shape.iter().product::<usize>() * self.dtype().bitsize() / 8
    }
}
