//! Parameters in one contiguous f32 buffer, addressed by Hugging Face tensor names, and their
//! safetensors I/O (single file or sharded with an index; f32, bf16 or f16 on disk).

use crate::config::ModelConfig;
use anyhow::{Context, Result, bail};
use safetensors::{Dtype, SafeTensors, tensor::TensorView};
use std::collections::{BTreeMap, HashMap};
use std::ops::Range;
use std::path::Path;

/// Where one named tensor lives inside a flat buffer.
#[derive(Clone, Debug)]
pub struct TensorSpec {
    /// Hugging Face tensor name.
    pub name: String,
    /// Dimensions, outermost first.
    pub shape: Vec<usize>,
    /// Where the tensor starts in the buffer.
    pub offset: usize,
}

impl TensorSpec {
    /// Elements in the tensor.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }
    /// Whether the tensor has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
    /// The tensor's elements in the buffer.
    pub fn range(&self) -> Range<usize> {
        self.offset..self.offset + self.len()
    }
}

/// An ordered list of named tensors packed back to back.
#[derive(Clone, Debug, Default)]
pub struct Layout {
    /// The tensors in buffer order.
    pub tensors: Vec<TensorSpec>,
    /// Elements in the whole buffer.
    pub len: usize,
    index: HashMap<String, usize>,
}

impl Layout {
    /// Appends a tensor and returns its offset.
    pub fn push(&mut self, name: String, shape: Vec<usize>) -> usize {
        let offset = self.len;
        self.index.insert(name.clone(), self.tensors.len());
        let spec = TensorSpec {
            name,
            shape,
            offset,
        };
        self.len += spec.len();
        self.tensors.push(spec);
        offset
    }

    /// The tensor called `name`.
    pub fn get(&self, name: &str) -> Option<&TensorSpec> {
        self.index.get(name).map(|&i| &self.tensors[i])
    }
}

/// The seven linear projections of a decoder layer, by their Hugging Face module names.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Proj {
    /// `q_proj`.
    Q,
    /// `k_proj`.
    K,
    /// `v_proj`.
    V,
    /// `o_proj`.
    O,
    /// `gate_proj`.
    Gate,
    /// `up_proj`.
    Up,
    /// `down_proj`.
    Down,
}

impl Proj {
    /// Every projection, in index order.
    pub const ALL: [Proj; 7] = [
        Proj::Q,
        Proj::K,
        Proj::V,
        Proj::O,
        Proj::Gate,
        Proj::Up,
        Proj::Down,
    ];

    /// `q_proj`, `gate_proj`, ... as in `target_modules`.
    pub fn module(self) -> &'static str {
        match self {
            Proj::Q => "q_proj",
            Proj::K => "k_proj",
            Proj::V => "v_proj",
            Proj::O => "o_proj",
            Proj::Gate => "gate_proj",
            Proj::Up => "up_proj",
            Proj::Down => "down_proj",
        }
    }

    fn parent(self) -> &'static str {
        match self {
            Proj::Q | Proj::K | Proj::V | Proj::O => "self_attn",
            _ => "mlp",
        }
    }

    /// `model.layers.{l}.self_attn.q_proj`.
    pub fn path(self, layer: usize) -> String {
        format!("model.layers.{layer}.{}.{}", self.parent(), self.module())
    }

    /// (in, out) features.
    pub fn dims(self, c: &ModelConfig) -> (usize, usize) {
        let (h, hd) = (c.hidden_size, c.head_dim);
        match self {
            Proj::Q => (h, c.num_attention_heads * hd),
            Proj::K | Proj::V => (h, c.num_key_value_heads * hd),
            Proj::O => (c.num_attention_heads * hd, h),
            Proj::Gate | Proj::Up => (h, c.intermediate_size),
            Proj::Down => (c.intermediate_size, h),
        }
    }

    /// Position in [`Proj::ALL`] (and in per-layer slot arrays).
    pub fn index(self) -> usize {
        self as usize
    }

    /// The projection with Hugging Face module name `name` (`q_proj`, ...).
    pub fn parse(name: &str) -> Option<Proj> {
        Proj::ALL.into_iter().find(|p| p.module() == name)
    }
}

/// A weight and optional bias offset.
#[derive(Clone, Copy, Debug)]
pub struct LinearSlot {
    /// Offset of the weight.
    pub w: usize,
    /// Offset of the bias, when the projection has one.
    pub b: Option<usize>,
}

/// Offsets of one decoder layer's tensors.
#[derive(Clone, Debug)]
pub struct LayerSlots {
    /// Offset of the RMSNorm weight before attention.
    pub ln1: usize,
    /// Offset of the RMSNorm weight before the MLP.
    pub ln2: usize,
    /// The projections, indexed by [`Proj::index`].
    pub proj: [LinearSlot; 7],
}

/// The base model's tensors: Hugging Face names, one flat buffer.
#[derive(Clone, Debug)]
pub struct ModelLayout {
    /// Every tensor, Hugging Face-named.
    pub layout: Layout,
    /// Offset of the token embeddings.
    pub embed: usize,
    /// Each decoder layer's offsets.
    pub layers: Vec<LayerSlots>,
    /// Offset of the final RMSNorm weight.
    pub norm: usize,
    /// Equals `embed` when embeddings are tied.
    pub lm_head: usize,
}

impl ModelLayout {
    /// The layout of a model of shape `c`.
    pub fn new(c: &ModelConfig) -> Self {
        let mut l = Layout::default();
        let h = c.hidden_size;
        let embed = l.push("model.embed_tokens.weight".into(), vec![c.vocab_size, h]);
        let layers = (0..c.num_hidden_layers)
            .map(|i| {
                let ln1 = l.push(format!("model.layers.{i}.input_layernorm.weight"), vec![h]);
                let proj = Proj::ALL.map(|p| {
                    let (inp, out) = p.dims(c);
                    let w = l.push(format!("{}.weight", p.path(i)), vec![out, inp]);
                    let has_bias = match p {
                        Proj::Q | Proj::K | Proj::V => c.qkv_bias,
                        Proj::O => c.o_bias,
                        _ => false,
                    };
                    let b = has_bias.then(|| l.push(format!("{}.bias", p.path(i)), vec![out]));
                    LinearSlot { w, b }
                });
                let ln2 = l.push(
                    format!("model.layers.{i}.post_attention_layernorm.weight"),
                    vec![h],
                );
                LayerSlots { ln1, ln2, proj }
            })
            .collect();
        let norm = l.push("model.norm.weight".into(), vec![h]);
        let lm_head = if c.tie_word_embeddings {
            embed
        } else {
            l.push("lm_head.weight".into(), vec![c.vocab_size, h])
        };
        Self {
            layout: l,
            embed,
            layers,
            norm,
            lm_head,
        }
    }
}

/// Reads every tensor of `layout` from `dir`'s `model.safetensors` (or its sharded index) into
/// one f32 buffer.
pub fn load_weights(dir: &Path, layout: &Layout) -> Result<Vec<f32>> {
    let index_path = dir.join("model.safetensors.index.json");
    let files: Vec<String> = if index_path.exists() {
        let index: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&index_path)?)
            .with_context(|| format!("invalid `{}`", index_path.display()))?;
        let map = index["weight_map"]
            .as_object()
            .with_context(|| format!("`{}` has no weight_map", index_path.display()))?;
        let mut files: Vec<String> = map
            .values()
            .filter_map(|v| v.as_str().map(String::from))
            .collect();
        files.sort();
        files.dedup();
        files
    } else {
        vec!["model.safetensors".into()]
    };
    let mut data = vec![0.0f32; layout.len];
    let mut seen = vec![false; layout.tensors.len()];
    for file in &files {
        let path = dir.join(file);
        let f = std::fs::File::open(&path).with_context(|| {
            format!(
                "could not open weights `{}`; the model directory needs model.safetensors",
                path.display()
            )
        })?;
        // SAFETY: the file is opened read-only and not modified while mapped.
        let mmap = unsafe { memmap2::Mmap::map(&f)? };
        let st = SafeTensors::deserialize(&mmap)
            .with_context(|| format!("`{}` is not a safetensors file", path.display()))?;
        for (i, spec) in layout.tensors.iter().enumerate() {
            let Ok(view) = st.tensor(&spec.name) else {
                continue;
            };
            if view.shape() != spec.shape.as_slice() {
                bail!(
                    "tensor `{}` in `{}` has shape {:?}, config.json implies {:?}",
                    spec.name,
                    path.display(),
                    view.shape(),
                    spec.shape
                );
            }
            to_f32(view.dtype(), view.data(), &mut data[spec.range()])
                .with_context(|| format!("tensor `{}`", spec.name))?;
            seen[i] = true;
        }
    }
    if let Some(i) = seen.iter().position(|s| !s) {
        bail!(
            "tensor `{}` is missing from the weights in `{}`",
            layout.tensors[i].name,
            dir.display()
        );
    }
    Ok(data)
}

fn to_f32(dtype: Dtype, bytes: &[u8], out: &mut [f32]) -> Result<()> {
    match dtype {
        Dtype::F32 => out
            .iter_mut()
            .zip(bytes.chunks_exact(4))
            .for_each(|(o, b)| *o = f32::from_le_bytes([b[0], b[1], b[2], b[3]])),
        Dtype::BF16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, b)| *o = half::bf16::from_le_bytes([b[0], b[1]]).to_f32()),
        Dtype::F16 => out
            .iter_mut()
            .zip(bytes.chunks_exact(2))
            .for_each(|(o, b)| *o = half::f16::from_le_bytes([b[0], b[1]]).to_f32()),
        other => bail!("dtype {other:?} is not supported (f32, bf16, f16)"),
    }
    Ok(())
}

/// On-disk element type of written weights.
#[derive(
    Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum SaveDtype {
    /// 32-bit floats.
    F32,
    /// bfloat16.
    Bf16,
    /// 16-bit IEEE floats.
    F16,
}

impl SaveDtype {
    /// The dtype matching a config's `torch_dtype`, f32 when unknown.
    pub fn from_torch(name: Option<&str>) -> Self {
        match name {
            Some("bfloat16") => Self::Bf16,
            Some("float16") => Self::F16,
            _ => Self::F32,
        }
    }
    /// The name transformers' `torch_dtype` uses.
    pub fn torch_name(self) -> &'static str {
        match self {
            Self::F32 => "float32",
            Self::Bf16 => "bfloat16",
            Self::F16 => "float16",
        }
    }
}

/// Every weight of a model of shape `config` (`weights` laid out as [`ModelLayout`]) as the
/// bytes of one `model.safetensors` file.
pub fn model_safetensors(
    config: &ModelConfig,
    weights: &[f32],
    dtype: SaveDtype,
) -> Result<Vec<u8>> {
    let layout = ModelLayout::new(config).layout;
    serialize_tensors(
        layout
            .tensors
            .iter()
            .map(|t| (t.name.as_str(), t.shape.as_slice(), &weights[t.range()])),
        dtype,
        None,
    )
}

/// Serialises named slices of `data` to safetensors bytes.
pub fn serialize_tensors<'a>(
    tensors: impl IntoIterator<Item = (&'a str, &'a [usize], &'a [f32])>,
    dtype: SaveDtype,
    metadata: Option<HashMap<String, String>>,
) -> Result<Vec<u8>> {
    let encoded: Vec<(&str, &[usize], Vec<u8>)> = tensors
        .into_iter()
        .map(|(name, shape, vals)| {
            let bytes = match dtype {
                SaveDtype::F32 => vals.iter().flat_map(|v| v.to_le_bytes()).collect(),
                SaveDtype::Bf16 => vals
                    .iter()
                    .flat_map(|v| half::bf16::from_f32(*v).to_le_bytes())
                    .collect(),
                SaveDtype::F16 => vals
                    .iter()
                    .flat_map(|v| half::f16::from_f32(*v).to_le_bytes())
                    .collect(),
            };
            (name, shape, bytes)
        })
        .collect();
    let st_dtype = match dtype {
        SaveDtype::F32 => Dtype::F32,
        SaveDtype::Bf16 => Dtype::BF16,
        SaveDtype::F16 => Dtype::F16,
    };
    let views: BTreeMap<String, TensorView> = encoded
        .iter()
        .map(|(n, s, b)| Ok((n.to_string(), TensorView::new(st_dtype, s.to_vec(), b)?)))
        .collect::<Result<_>>()?;
    Ok(safetensors::serialize(&views, metadata)?)
}

/// A tensor read back from disk: shape and f32 values.
pub type HostTensor = (Vec<usize>, Vec<f32>);

/// Reads every tensor of a safetensors file as f32, by name.
pub fn read_tensors(path: &Path) -> Result<BTreeMap<String, HostTensor>> {
    let bytes =
        std::fs::read(path).with_context(|| format!("could not read `{}`", path.display()))?;
    let st = SafeTensors::deserialize(&bytes)
        .with_context(|| format!("`{}` is not a safetensors file", path.display()))?;
    st.tensors()
        .into_iter()
        .map(|(name, view)| {
            let mut out = vec![0.0; view.shape().iter().product()];
            to_f32(view.dtype(), view.data(), &mut out)?;
            Ok((name, (view.shape().to_vec(), out)))
        })
        .collect()
}
