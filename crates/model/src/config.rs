//! A Hugging Face `config.json` for the decoder families we train: `qwen2` and `llama`.

use anyhow::{Context, Result, bail};
use serde::Deserialize;
use std::path::Path;

/// The architecture fields of `config.json` that the model needs. The full JSON is kept in
/// `raw` so an export writes back everything we did not interpret.
#[derive(Clone, Debug)]
pub struct ModelConfig {
    /// `qwen2` or `llama`.
    pub model_type: String,
    /// Tokens in the vocabulary.
    pub vocab_size: usize,
    /// Width of the residual stream.
    pub hidden_size: usize,
    /// Width of the MLP's hidden layer.
    pub intermediate_size: usize,
    /// Decoder layers.
    pub num_hidden_layers: usize,
    /// Query heads per layer.
    pub num_attention_heads: usize,
    /// Key/value heads per layer (fewer than query heads under grouped-query attention).
    pub num_key_value_heads: usize,
    /// Width of one attention head.
    pub head_dim: usize,
    /// Epsilon of every RMSNorm.
    pub rms_norm_eps: f32,
    /// RoPE base frequency.
    pub rope_theta: f64,
    /// How RoPE frequencies are rescaled, if at all.
    pub rope_scaling: Option<RopeScaling>,
    /// Whether the output projection reuses the embedding matrix.
    pub tie_word_embeddings: bool,
    /// Bias on q/k/v projections (always on for qwen2; llama's `attention_bias`).
    pub qkv_bias: bool,
    /// Bias on the output projection (llama's `attention_bias`).
    pub o_bias: bool,
    /// Token ids that end a generation (from `eos_token_id`, number or list).
    pub eos_token_ids: Vec<u32>,
    /// `torch_dtype` / `dtype` as written (`bfloat16`, `float32`, ...).
    pub torch_dtype: Option<String>,
    /// The whole `config.json`, for writing back what we did not interpret.
    pub raw: serde_json::Value,
}

/// `rope_scaling` variants that change the rotary frequencies.
#[derive(Clone, Debug, PartialEq)]
pub enum RopeScaling {
    /// Llama 3.1's frequency-dependent scaling.
    Llama3 {
        /// How much longer the context is than in pre-training.
        factor: f64,
        /// Wavelength ratio below which frequencies are scaled fully.
        low_freq_factor: f64,
        /// Wavelength ratio above which frequencies are left alone.
        high_freq_factor: f64,
        /// The context length the model was pre-trained with.
        original_max_position_embeddings: f64,
    },
    /// Positions divided by `factor`.
    Linear {
        /// The divisor.
        factor: f64,
    },
}

#[derive(Deserialize)]
struct RawConfig {
    model_type: String,
    vocab_size: usize,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    rms_norm_eps: f64,
    #[serde(default)]
    rope_theta: Option<f64>,
    #[serde(default)]
    rope_scaling: Option<serde_json::Value>,
    /// transformers 5 writes `rope_theta` and the scaling together here.
    #[serde(default)]
    rope_parameters: Option<serde_json::Value>,
    #[serde(default)]
    tie_word_embeddings: bool,
    #[serde(default)]
    attention_bias: Option<bool>,
    #[serde(default)]
    mlp_bias: Option<bool>,
    #[serde(default)]
    eos_token_id: Option<serde_json::Value>,
    #[serde(default)]
    torch_dtype: Option<String>,
    #[serde(default)]
    dtype: Option<String>,
    #[serde(default)]
    hidden_act: Option<String>,
}

impl ModelConfig {
    /// Reads `dir/config.json`.
    pub fn load(dir: &Path) -> Result<Self> {
        let path = dir.join("config.json");
        let text = std::fs::read_to_string(&path).with_context(|| {
            format!(
                "could not read model config `{}`; is `{}` a Hugging Face model directory?",
                path.display(),
                dir.display()
            )
        })?;
        Self::parse(&text).with_context(|| format!("invalid model config `{}`", path.display()))
    }

    /// Parses the text of a `config.json`.
    pub fn parse(text: &str) -> Result<Self> {
        let value: serde_json::Value = serde_json::from_str(text)?;
        let raw: RawConfig = serde_json::from_value(value.clone())?;
        let qkv_bias = match raw.model_type.as_str() {
            "qwen2" => true,
            "llama" => raw.attention_bias.unwrap_or(false),
            other => bail!(
                "model_type `{other}` is not supported; sqlrft trains `qwen2` and `llama` models"
            ),
        };
        if raw.mlp_bias == Some(true) {
            bail!("mlp_bias = true is not supported");
        }
        if let Some(act) = &raw.hidden_act
            && act != "silu"
        {
            bail!("hidden_act `{act}` is not supported (only silu)");
        }
        let head_dim = raw
            .head_dim
            .unwrap_or(raw.hidden_size / raw.num_attention_heads);
        let nkv = raw.num_key_value_heads.unwrap_or(raw.num_attention_heads);
        if !raw.num_attention_heads.is_multiple_of(nkv) || !head_dim.is_multiple_of(2) {
            bail!(
                "num_attention_heads must be a multiple of num_key_value_heads and head_dim even"
            );
        }
        let o_bias = raw.model_type == "llama" && qkv_bias;
        let eos_token_ids = match &raw.eos_token_id {
            None | Some(serde_json::Value::Null) => vec![],
            Some(serde_json::Value::Array(ids)) => ids
                .iter()
                .filter_map(|v| v.as_u64())
                .map(|v| v as u32)
                .collect(),
            Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
        };
        let rope_params = raw.rope_parameters.as_ref().filter(|v| v.is_object());
        let rope_theta = raw
            .rope_theta
            .or_else(|| rope_params.and_then(|p| p["rope_theta"].as_f64()))
            .unwrap_or(10000.0);
        Ok(Self {
            rope_scaling: parse_rope_scaling(
                raw.rope_scaling
                    .as_ref()
                    .filter(|v| !v.is_null())
                    .or(rope_params),
            )?,
            model_type: raw.model_type,
            vocab_size: raw.vocab_size,
            hidden_size: raw.hidden_size,
            intermediate_size: raw.intermediate_size,
            num_hidden_layers: raw.num_hidden_layers,
            num_attention_heads: raw.num_attention_heads,
            num_key_value_heads: nkv,
            head_dim,
            rms_norm_eps: raw.rms_norm_eps as f32,
            rope_theta,
            tie_word_embeddings: raw.tie_word_embeddings,
            qkv_bias,
            o_bias,
            eos_token_ids,
            torch_dtype: raw.torch_dtype.or(raw.dtype),
            raw: value,
        })
    }

    /// Rotary inverse frequencies, one per pair of head dimensions, as transformers computes them.
    pub fn rope_inv_freq(&self) -> Vec<f32> {
        let hd = self.head_dim;
        (0..hd / 2)
            .map(|i| {
                let f = 1.0 / self.rope_theta.powf((2 * i) as f64 / hd as f64);
                let f = f as f32 as f64;
                let f = match &self.rope_scaling {
                    None => f,
                    Some(RopeScaling::Linear { factor }) => f / factor,
                    Some(RopeScaling::Llama3 {
                        factor,
                        low_freq_factor,
                        high_freq_factor,
                        original_max_position_embeddings: old,
                    }) => {
                        let (factor, low_freq_factor, high_freq_factor, old) =
                            (*factor, *low_freq_factor, *high_freq_factor, *old);
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        let (low_wl, high_wl) = (old / low_freq_factor, old / high_freq_factor);
                        if wavelen < high_wl {
                            f
                        } else if wavelen > low_wl {
                            f / factor
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    }
                };
                f as f32
            })
            .collect()
    }
}

fn parse_rope_scaling(v: Option<&serde_json::Value>) -> Result<Option<RopeScaling>> {
    let Some(v) = v.filter(|v| !v.is_null()) else {
        return Ok(None);
    };
    let kind = v
        .get("rope_type")
        .or_else(|| v.get("type"))
        .and_then(|t| t.as_str())
        .unwrap_or("default");
    let num = |k: &str| {
        v.get(k)
            .and_then(|x| x.as_f64())
            .with_context(|| format!("rope_scaling.{k} is missing"))
    };
    Ok(match kind {
        "default" => None,
        "linear" => Some(RopeScaling::Linear {
            factor: num("factor")?,
        }),
        "llama3" => Some(RopeScaling::Llama3 {
            factor: num("factor")?,
            low_freq_factor: num("low_freq_factor")?,
            high_freq_factor: num("high_freq_factor")?,
            original_max_position_embeddings: num("original_max_position_embeddings")?,
        }),
        other => bail!("rope_scaling type `{other}` is not supported (default, linear, llama3)"),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qwen2_has_qkv_bias_and_gqa() {
        let c = ModelConfig::parse(
            r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
            "num_attention_heads":4,"num_key_value_heads":2,"rms_norm_eps":1e-6,"rope_theta":1000000.0,
            "tie_word_embeddings":true,"eos_token_id":7,"torch_dtype":"bfloat16"}"#,
        )
        .unwrap();
        assert!(c.qkv_bias && !c.o_bias && c.tie_word_embeddings);
        assert_eq!(
            (c.head_dim, c.num_key_value_heads, c.eos_token_ids.clone()),
            (2, 2, vec![7])
        );
    }

    #[test]
    fn llama3_rope_scaling_scales_only_low_frequencies() {
        let c = ModelConfig::parse(
            r#"{"model_type":"llama","vocab_size":10,"hidden_size":256,"intermediate_size":16,"num_hidden_layers":1,
            "num_attention_heads":2,"rms_norm_eps":1e-5,"rope_theta":500000.0,"eos_token_id":[1,2],
            "rope_scaling":{"rope_type":"llama3","factor":8.0,"low_freq_factor":1.0,"high_freq_factor":4.0,
            "original_max_position_embeddings":8192}}"#,
        )
        .unwrap();
        let mut plain = c.clone();
        plain.rope_scaling = None;
        let (scaled, base) = (c.rope_inv_freq(), plain.rope_inv_freq());
        assert_eq!(scaled[0], base[0], "highest frequency is untouched");
        let last = base.len() - 1;
        assert!(
            (scaled[last] - base[last] / 8.0).abs() <= 1e-12 + base[last] * 1e-6,
            "lowest frequency divided by factor"
        );
        assert_eq!(c.eos_token_ids, vec![1, 2]);
    }

    #[test]
    fn transformers5_rope_parameters_are_read() {
        let c = ModelConfig::parse(
            r#"{"model_type":"llama","vocab_size":10,"hidden_size":256,"intermediate_size":16,"num_hidden_layers":1,
            "num_attention_heads":2,"rms_norm_eps":1e-5,"dtype":"float32",
            "rope_parameters":{"rope_type":"llama3","rope_theta":500000.0,"factor":32.0,"low_freq_factor":1.0,
            "high_freq_factor":4.0,"original_max_position_embeddings":8192}}"#,
        )
        .unwrap();
        assert_eq!(c.rope_theta, 500000.0);
        assert!(matches!(
            c.rope_scaling,
            Some(RopeScaling::Llama3 { factor: 32.0, .. })
        ));
        assert_eq!(c.torch_dtype.as_deref(), Some("float32"));
        let plain = ModelConfig::parse(
            r#"{"model_type":"qwen2","vocab_size":10,"hidden_size":8,"intermediate_size":16,"num_hidden_layers":1,
            "num_attention_heads":2,"rms_norm_eps":1e-6,"rope_parameters":{"rope_type":"default","rope_theta":1000000.0}}"#,
        )
        .unwrap();
        assert_eq!((plain.rope_theta, plain.rope_scaling), (1000000.0, None));
    }

    #[test]
    fn unknown_model_type_is_a_clear_error() {
        let e = ModelConfig::parse(
            r#"{"model_type":"gpt2","vocab_size":1,"hidden_size":2,"intermediate_size":2,"num_hidden_layers":1,"num_attention_heads":1,"rms_norm_eps":1e-5}"#,
        )
        .unwrap_err();
        assert!(e.to_string().contains("gpt2"));
    }
}
