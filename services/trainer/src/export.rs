//! Writes a merged Hugging Face model directory (config, tokenizer files, safetensors) that
//! transformers and vLLM load like the base model.

use crate::config::ModelConfig;
use crate::lora::{LoraConfig, LoraLayout};
use crate::params::{ModelLayout, SaveDtype, serialize_tensors};
use anyhow::{Context, Result};
use sqlrft_files::Staged;
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

/// Writes `weights` (laid out as [`ModelLayout`] for `config`) with the base model's tokenizer
/// files into `out`, replacing it atomically (a temp directory beside it, then rename).
pub fn export_model_dir(
    base_dir: &Path,
    config: &ModelConfig,
    weights: &[f32],
    out: &Path,
    dtype: SaveDtype,
) -> Result<()> {
    let layout = ModelLayout::new(config);
    let staged = Staged::dir(out)?;

    let mut cfg = config.raw.clone();
    if cfg.get("dtype").is_some() {
        cfg["dtype"] = dtype.torch_name().into();
    }
    cfg["torch_dtype"] = dtype.torch_name().into();
    staged.write("config.json", serde_json::to_string_pretty(&cfg)?)?;

    let metadata = HashMap::from([("format".to_string(), "pt".to_string())]);
    let bytes = serialize_tensors(
        layout
            .layout
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), &weights[t.range()])),
        dtype,
        Some(metadata),
    )?;
    staged.write("model.safetensors", &bytes)?;

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
