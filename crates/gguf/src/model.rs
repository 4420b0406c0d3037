//! From GGUF's llama.cpp names and metadata to a Hugging Face `config.json` and tensor names,
//! for the `llama` and `qwen2` architectures.

use crate::error::{Error, Result};
use crate::reader::{GgufFile, TensorInfo, Value};
use serde_json::json;

/// A decoder family this importer converts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Architecture {
    /// Llama 2/3, SmolLM, TinyLlama …: Q/K rows stored permuted by llama.cpp's converter.
    Llama,
    /// Qwen2 / Qwen2.5: q/k/v biases, no permutation.
    Qwen2,
}

impl Architecture {
    fn parse(file: &GgufFile) -> Result<Self> {
        match file.get("general.architecture").and_then(Value::as_str) {
            Some("llama") => Ok(Self::Llama),
            Some("qwen2") => Ok(Self::Qwen2),
            other => Err(Error::Unsupported {
                path: file.path().to_path_buf(),
                what: match other {
                    Some(a) => format!("architecture `{a}` cannot be imported"),
                    None => "general.architecture is missing".into(),
                },
                supported: "the `llama` and `qwen2` architectures are (Llama 2/3, SmolLM, Qwen2/2.5 and their fine-tunes)".into(),
            }),
        }
    }

    /// The metadata key prefix (`llama.block_count`).
    pub fn key(self) -> &'static str {
        match self {
            Self::Llama => "llama",
            Self::Qwen2 => "qwen2",
        }
    }
}

/// One output tensor: where it comes from and how it is reshaped.
#[derive(Clone, Debug)]
pub struct PlannedTensor {
    /// The Hugging Face name (`model.layers.0.self_attn.q_proj.weight`).
    pub name: String,
    /// The GGUF tensor it is decoded from.
    pub source: TensorInfo,
    /// Row-major shape.
    pub shape: Vec<usize>,
    /// Undo llama.cpp's rotary row interleaving with this many heads (llama's q/k).
    pub unpermute_heads: Option<usize>,
}

/// What an import writes for the model itself.
#[derive(Clone, Debug)]
pub struct ModelPlan {
    /// The decoder family.
    pub architecture: Architecture,
    /// `config.json` without `torch_dtype` (the writer adds it).
    pub config: serde_json::Value,
    /// Every tensor, in GGUF order.
    pub tensors: Vec<PlannedTensor>,
}

/// Reads `file`'s hyper-parameters and maps its tensors; fails on anything it would get wrong.
pub fn plan(file: &GgufFile) -> Result<ModelPlan> {
    let arch = Architecture::parse(file)?;
    let meta = Metadata { file, arch };
    let layers = meta.count("block_count")?;
    let hidden = meta.count("embedding_length")?;
    let heads = meta.count("attention.head_count")?;
    let kv_heads = meta
        .optional_count("attention.head_count_kv")?
        .unwrap_or(heads);
    let head_dim = meta
        .optional_count("attention.key_length")?
        .unwrap_or(hidden / heads.max(1));
    let unsupported = |what: String, supported: &str| Error::Unsupported {
        path: file.path().to_path_buf(),
        what,
        supported: supported.into(),
    };
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) || !head_dim.is_multiple_of(2)
    {
        return Err(meta.malformed(format!(
            "{heads} attention heads, {kv_heads} key/value heads and head size {head_dim} do not fit together"
        )));
    }
    if file.tensor("rope_freqs.weight").is_some() {
        return Err(unsupported(
            "the model carries `rope_freqs.weight` (Llama 3.1-style rotary scaling)".into(),
            "models without rotary scaling, or with linear scaling, are imported",
        ));
    }
    let rope_scaling = match meta.get("rope.scaling.type").and_then(Value::as_str) {
        None | Some("none") => serde_json::Value::Null,
        Some("linear") => {
            let factor = meta
                .get("rope.scaling.factor")
                .and_then(Value::as_f64)
                .unwrap_or(1.0);
            json!({"rope_type": "linear", "type": "linear", "factor": factor})
        }
        Some(other) => {
            return Err(unsupported(
                format!("rotary scaling `{other}`"),
                "models without rotary scaling, or with linear scaling, are imported",
            ));
        }
    };
    let embed = file
        .tensor("token_embd.weight")
        .ok_or_else(|| meta.malformed("it has no `token_embd.weight` tensor".into()))?;
    let vocab_size = *embed.shape().first().unwrap_or(&0);
    let tied = file.tensor("output.weight").is_none();
    let mut qkv_bias = false;
    let mut tensors = Vec::with_capacity(file.tensors.len());
    for t in &file.tensors {
        let name = hf_name(&t.name).ok_or_else(|| {
            unsupported(
                format!("tensor `{}` has no Hugging Face counterpart in a {} model", t.name, arch.key()),
                "token_embd, output_norm, output and blk.N.{attn_norm,attn_q,attn_k,attn_v,attn_output,ffn_norm,ffn_gate,ffn_up,ffn_down} are mapped",
            )
        })?;
        qkv_bias |= name.ends_with("q_proj.bias");
        let shape = t.shape();
        let unpermute_heads = match arch {
            Architecture::Llama if name.contains("q_proj") => Some(heads),
            Architecture::Llama if name.contains("k_proj") => Some(kv_heads),
            _ => None,
        };
        if let Some(h) = unpermute_heads
            && shape[0] != h * head_dim
        {
            return Err(meta.malformed(format!(
                "tensor `{}` has {} rows, not {h} heads × {head_dim}",
                t.name, shape[0]
            )));
        }
        tensors.push(PlannedTensor {
            name,
            source: t.clone(),
            shape,
            unpermute_heads,
        });
    }
    let mut config = json!({
        "architectures": [match arch {
            Architecture::Llama => "LlamaForCausalLM",
            Architecture::Qwen2 => "Qwen2ForCausalLM",
        }],
        "model_type": arch.key(),
        "vocab_size": vocab_size,
        "hidden_size": hidden,
        "intermediate_size": meta.count("feed_forward_length")?,
        "num_hidden_layers": layers,
        "num_attention_heads": heads,
        "num_key_value_heads": kv_heads,
        "head_dim": head_dim,
        "hidden_act": "silu",
        "rms_norm_eps": f32_decimal(meta.get("attention.layer_norm_rms_epsilon"), 1e-6),
        "rope_theta": f32_decimal(meta.get("rope.freq_base"), 10000.0),
        "rope_scaling": rope_scaling,
        "max_position_embeddings": meta.optional_count("context_length")?.unwrap_or(2048),
        "tie_word_embeddings": tied,
        "use_cache": true,
        "attention_dropout": 0.0,
        "initializer_range": 0.02,
    });
    match arch {
        Architecture::Llama => {
            config["attention_bias"] = qkv_bias.into();
            config["mlp_bias"] = false.into();
            config["pretraining_tp"] = 1.into();
        }
        Architecture::Qwen2 => {
            config["use_sliding_window"] = false.into();
            config["max_window_layers"] = layers.into();
        }
    }
    for (key, hf) in [
        ("bos_token_id", "bos_token_id"),
        ("eos_token_id", "eos_token_id"),
        ("padding_token_id", "pad_token_id"),
    ] {
        if let Some(id) = file
            .get(&format!("tokenizer.ggml.{key}"))
            .and_then(Value::as_u64)
        {
            config[hf] = id.into();
        }
    }
    Ok(ModelPlan {
        architecture: arch,
        config,
        tensors,
    })
}

/// GGUF stores these as f32; written back as that f32's shortest decimal (1e-05, not the
/// 9.999999747378752e-06 its f64 widening prints), which parses back to the same f32.
fn f32_decimal(value: Option<&Value>, default: f64) -> f64 {
    match value.and_then(Value::as_f64) {
        Some(v) => (v as f32).to_string().parse().unwrap_or(v),
        None => default,
    }
}

/// `blk.3.attn_q.weight` → `model.layers.3.self_attn.q_proj.weight`.
fn hf_name(gguf: &str) -> Option<String> {
    let top = match gguf {
        "token_embd.weight" => Some("model.embed_tokens.weight"),
        "output_norm.weight" => Some("model.norm.weight"),
        "output.weight" => Some("lm_head.weight"),
        _ => None,
    };
    if let Some(name) = top {
        return Some(name.into());
    }
    let rest = gguf.strip_prefix("blk.")?;
    let (layer, rest) = rest.split_once('.')?;
    let layer: usize = layer.parse().ok()?;
    let (module, suffix) = rest.rsplit_once('.')?;
    if suffix != "weight" && suffix != "bias" {
        return None;
    }
    let module = match module {
        "attn_norm" => "input_layernorm",
        "ffn_norm" => "post_attention_layernorm",
        "attn_q" => "self_attn.q_proj",
        "attn_k" => "self_attn.k_proj",
        "attn_v" => "self_attn.v_proj",
        "attn_output" => "self_attn.o_proj",
        "ffn_gate" => "mlp.gate_proj",
        "ffn_up" => "mlp.up_proj",
        "ffn_down" => "mlp.down_proj",
        _ => return None,
    };
    Some(format!("model.layers.{layer}.{module}.{suffix}"))
}

/// llama.cpp's converter reorders each head's rows of q/k from Hugging Face's halves layout
/// (all first halves of the rotary pairs, then all second halves) to interleaved pairs; this
/// puts them back: Hugging Face row `i * half + j` of a head is GGUF row `2 * j + i`. Works on
/// weights (`cols` = input features) and biases (`cols` = 1) alike.
pub fn unpermute_rows(data: &[f32], heads: usize, cols: usize) -> Vec<f32> {
    let rows = data.len() / cols;
    let head_dim = rows / heads;
    let half = head_dim / 2;
    let mut out = vec![0.0; data.len()];
    for h in 0..heads {
        for i in 0..2 {
            for j in 0..half {
                let hf = h * head_dim + i * half + j;
                let gguf = h * head_dim + 2 * j + i;
                out[hf * cols..(hf + 1) * cols]
                    .copy_from_slice(&data[gguf * cols..(gguf + 1) * cols]);
            }
        }
    }
    out
}

/// Metadata under the architecture's prefix.
struct Metadata<'a> {
    file: &'a GgufFile,
    arch: Architecture,
}

impl Metadata<'_> {
    fn get(&self, key: &str) -> Option<&Value> {
        self.file.get(&format!("{}.{key}", self.arch.key()))
    }

    fn malformed(&self, reason: String) -> Error {
        Error::Malformed {
            path: self.file.path().to_path_buf(),
            reason,
        }
    }

    fn optional_count(&self, key: &str) -> Result<Option<usize>> {
        match self.get(key) {
            None => Ok(None),
            Some(v) => v
                .as_u64()
                .map(|n| Some(n as usize))
                .ok_or_else(|| Error::Unsupported {
                    path: self.file.path().to_path_buf(),
                    what: format!("{}.{key} is {v:?}, not one number", self.arch.key()),
                    supported: "models with the same value for every layer are imported".into(),
                }),
        }
    }

    fn count(&self, key: &str) -> Result<usize> {
        self.optional_count(key)?.ok_or_else(|| {
            self.malformed(format!("metadata `{}.{key}` is missing", self.arch.key()))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hugging_face() {
        assert_eq!(
            hf_name("token_embd.weight").unwrap(),
            "model.embed_tokens.weight"
        );
        assert_eq!(hf_name("output.weight").unwrap(), "lm_head.weight");
        assert_eq!(
            hf_name("blk.12.attn_q.bias").unwrap(),
            "model.layers.12.self_attn.q_proj.bias"
        );
        assert_eq!(
            hf_name("blk.0.ffn_norm.weight").unwrap(),
            "model.layers.0.post_attention_layernorm.weight"
        );
        assert_eq!(hf_name("blk.x.attn_q.weight"), None);
        assert_eq!(hf_name("rope_freqs.weight"), None);
    }

    #[test]
    fn unpermute_restores_halves_from_interleaved_pairs() {
        // Two heads of size 4 (pairs (a0,b0),(a1,b1)), 1 column. llama.cpp stores a head as
        // a0 b0 a1 b1; Hugging Face as a0 a1 b0 b1.
        let gguf = [0., 10., 1., 11., 100., 110., 101., 111.];
        assert_eq!(
            unpermute_rows(&gguf, 2, 1),
            [0., 1., 10., 11., 100., 101., 110., 111.]
        );
        // Whole rows move, columns stay together.
        let gguf = [1., 2., 3., 4., 5., 6., 7., 8.];
        assert_eq!(
            unpermute_rows(&gguf, 1, 2),
            [1., 2., 5., 6., 3., 4., 7., 8.]
        );
    }
}
