//! Writes a merged Hugging Face model directory (config, tokenizer files, safetensors) that
//! transformers and vLLM load like the base model.

use anyhow::{Context, Result};
use sqlrft_files::Staged;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::lora::{LoraConfig, LoraLayout};
use sqlrft_model::params::{ModelLayout, SaveDtype, TensorSpec, serialize_tensors};
use std::collections::HashMap;
use std::path::Path;

/// Tokenizer and generation files copied from the base model when present.
const COPIED_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "generation_config.json",
    "vocab.json",
    "merges.txt",
    "added_tokens.json",
    "chat_template.jinja",
];

/// Shards bigger than this are split, as `transformers`' `save_pretrained` does by default.
pub const DEFAULT_MAX_SHARD_BYTES: u64 = 5 * 1000 * 1000 * 1000;

/// The file `publish model` reads the training settings from for the model card.
pub const PROVENANCE_FILE: &str = "sqlrft_training.json";

/// How `export_model_dir` writes the model.
#[derive(Debug, Clone)]
pub struct ExportOptions {
    /// On-disk element type.
    pub dtype: SaveDtype,
    /// Largest weight file: above it the weights go into `model-0000i-of-0000n.safetensors`
    /// shards with a `model.safetensors.index.json`, as transformers writes them.
    pub max_shard_bytes: u64,
    /// Where the model came from (base model, step, training config), kept beside it as
    /// `sqlrft_training.json` for the model card.
    pub provenance: Option<serde_json::Value>,
}

/// Writes `weights` (laid out as [`ModelLayout`] for `config`) with the base model's tokenizer
/// files into `out`, replacing it atomically (a temp directory beside it, then rename).
pub fn export_model_dir(
    base_dir: &Path,
    config: &ModelConfig,
    weights: &[f32],
    out: &Path,
    options: &ExportOptions,
) -> Result<()> {
    let dtype = options.dtype;
    let layout = ModelLayout::new(config);
    let staged = Staged::dir(out)?;

    let mut cfg = config.raw.clone();
    if cfg.get("dtype").is_some() {
        cfg["dtype"] = dtype.torch_name().into();
    }
    cfg["torch_dtype"] = dtype.torch_name().into();
    staged.write("config.json", serde_json::to_string_pretty(&cfg)?)?;

    let shards = shard(&layout.layout.tensors, dtype, options.max_shard_bytes);
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let mut weight_map = serde_json::Map::new();
    for (i, tensors) in shards.iter().enumerate() {
        let name = if shards.len() == 1 {
            "model.safetensors".to_string()
        } else {
            format!("model-{:05}-of-{:05}.safetensors", i + 1, shards.len())
        };
        let bytes = serialize_tensors(
            tensors
                .iter()
                .map(|t| (t.name.as_str(), t.shape.as_slice(), &weights[t.range()])),
            dtype,
            Some(metadata.clone()),
        )?;
        staged.write(&name, &bytes)?;
        for t in tensors {
            weight_map.insert(t.name.clone(), name.clone().into());
        }
    }
    if shards.len() > 1 {
        let total: u64 = layout
            .layout
            .tensors
            .iter()
            .map(|t| tensor_bytes(t, dtype))
            .sum();
        let index = serde_json::json!({
            "metadata": {"total_size": total},
            "weight_map": weight_map,
        });
        staged.write(
            "model.safetensors.index.json",
            serde_json::to_string_pretty(&index)?,
        )?;
    }
    if let Some(provenance) = &options.provenance {
        staged.write(PROVENANCE_FILE, serde_json::to_string_pretty(provenance)?)?;
    }

    for f in COPIED_FILES {
        let src = base_dir.join(f);
        if src.exists() {
            let data = std::fs::read(&src)
                .with_context(|| format!("could not read `{}`", src.display()))?;
            staged.write(f, &data)?;
        }
    }
    Ok(staged.commit()?)
}

fn tensor_bytes(tensor: &TensorSpec, dtype: SaveDtype) -> u64 {
    let width = match dtype {
        SaveDtype::F32 => 4,
        SaveDtype::Bf16 | SaveDtype::F16 => 2,
    };
    tensor.len() as u64 * width
}

/// Tensors in layout order, cut into runs of at most `max_bytes` (a tensor larger than that
/// gets a shard of its own, as transformers does).
fn shard(tensors: &[TensorSpec], dtype: SaveDtype, max_bytes: u64) -> Vec<Vec<&TensorSpec>> {
    let mut shards: Vec<Vec<&TensorSpec>> = vec![Vec::new()];
    let mut size = 0u64;
    for t in tensors {
        let bytes = tensor_bytes(t, dtype);
        let current = shards.last_mut().expect("never empty");
        if !current.is_empty() && size + bytes > max_bytes {
            shards.push(vec![t]);
            size = bytes;
        } else {
            current.push(t);
            size += bytes;
        }
    }
    shards
}

/// Writes a LoRA adapter as PEFT saves one (`adapter_config.json` + `adapter_model.safetensors`),
/// which PEFT and vLLM's LoRA serving load on top of `base_model`.
pub fn export_adapter_dir(
    layout: &LoraLayout,
    data: &[f32],
    cfg: &LoraConfig,
    base_model: &str,
    out: &Path,
) -> Result<()> {
    let adapter_config = serde_json::json!({
        "peft_type": "LORA",
        "task_type": "CAUSAL_LM",
        "base_model_name_or_path": base_model,
        "r": cfg.rank,
        "lora_alpha": cfg.alpha,
        "lora_dropout": 0.0,
        "target_modules": cfg.target_modules,
        "bias": "none",
        "fan_in_fan_out": false,
        "inference_mode": true,
        "use_rslora": false,
        "use_dora": false,
        "modules_to_save": null,
    });
    sqlrft_files::write(
        &out.join("adapter_config.json"),
        serde_json::to_string_pretty(&adapter_config)?,
    )?;
    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = serialize_tensors(
        layout
            .layout
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), &data[t.range()])),
        SaveDtype::F32,
        Some(metadata),
    )?;
    Ok(sqlrft_files::write(
        &out.join("adapter_model.safetensors"),
        &bytes,
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(sizes: &[usize]) -> Vec<TensorSpec> {
        let mut layout = sqlrft_model::params::Layout::default();
        for (i, n) in sizes.iter().enumerate() {
            layout.push(format!("t{i}"), vec![*n]);
        }
        layout.tensors
    }

    #[test]
    fn shards_keep_order_and_stay_under_the_limit() {
        let ts = tensors(&[10, 10, 10, 30, 5]);
        let names = |limit| {
            shard(&ts, SaveDtype::F32, limit)
                .iter()
                .map(|s| s.iter().map(|t| t.name.as_str()).collect::<Vec<_>>())
                .collect::<Vec<_>>()
        };
        // 40, 40, 40, 120, 20 bytes.
        assert_eq!(
            names(80),
            vec![vec!["t0", "t1"], vec!["t2"], vec!["t3"], vec!["t4"]]
        );
        assert_eq!(names(u64::MAX), vec![vec!["t0", "t1", "t2", "t3", "t4"]]);
        assert_eq!(shard(&ts, SaveDtype::Bf16, 80).len(), 2);
    }
}
