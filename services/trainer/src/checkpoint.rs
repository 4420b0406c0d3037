//! Training checkpoints: trainable weights (the adapter, PEFT-named, or the whole model), AdamW
//! moments, the sampling RNG, the step and the data cursor — everything a resumed run needs to
//! continue exactly as an uninterrupted one.
//!
//! `{output_dir}/checkpoints/step-000042/` holds `trainable.safetensors`, `optimizer.safetensors`
//! and `state.json`; `{output_dir}/checkpoints/latest` names the newest. A checkpoint directory is
//! written under a temporary name, fsynced and renamed, so a crash never leaves a half one.

use crate::data::DataCursor;
use anyhow::{Context, Result, bail};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use sqlrft_model::backend::TrainableState;
use sqlrft_model::params::{Layout, SaveDtype, read_tensors, serialize_tensors};
use std::path::{Path, PathBuf};

/// A ChaCha RNG's exact position.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct RngState {
    /// The 32-byte seed, hex.
    pub seed: String,
    /// The ChaCha stream number.
    pub stream: u64,
    /// u128 as a decimal string (JSON numbers are not that wide).
    pub word_pos: String,
}

impl RngState {
    /// The position `rng` has reached.
    pub fn capture(rng: &ChaCha8Rng) -> Self {
        Self {
            seed: hex_encode(&rng.get_seed()),
            stream: rng.get_stream(),
            word_pos: rng.get_word_pos().to_string(),
        }
    }

    /// An RNG at exactly this position.
    pub fn restore(&self) -> Result<ChaCha8Rng> {
        use rand::SeedableRng;
        let bytes = hex_decode(&self.seed)?;
        let seed: [u8; 32] = bytes
            .try_into()
            .map_err(|_| anyhow::anyhow!("RNG seed must be 32 bytes"))?;
        let mut rng = ChaCha8Rng::from_seed(seed);
        rng.set_stream(self.stream);
        rng.set_word_pos(self.word_pos.parse().context("bad RNG word position")?);
        Ok(rng)
    }
}

fn hex_encode(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

fn hex_decode(s: &str) -> Result<Vec<u8>> {
    (0..s.len())
        .step_by(2)
        .map(|i| {
            u8::from_str_radix(s.get(i..i + 2).unwrap_or("zz"), 16).context("bad hex in RNG seed")
        })
        .collect()
}

/// `state.json`: the scalars of a checkpoint.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct CheckpointState {
    /// Optimizer steps taken.
    pub step: u64,
    /// Where the prompt stream stands.
    pub cursor: DataCursor,
    /// The sampling RNG's position.
    pub rng: RngState,
    /// AdamW's step counter (its bias correction).
    pub adam_t: u64,
    /// Whether the trainable buffer is a LoRA adapter.
    pub lora: bool,
    /// The training config the run used.
    pub config: serde_json::Value,
    /// The base model (directory or Hub repo id) the run started from.
    pub model: String,
}

/// Directory of the checkpoint at `step`.
pub fn step_dir(output_dir: &Path, step: u64) -> PathBuf {
    output_dir
        .join("checkpoints")
        .join(format!("step-{step:06}"))
}

/// Writes a checkpoint atomically and points `latest` at it.
pub fn save(
    output_dir: &Path,
    layout: &Layout,
    state: &TrainableState,
    meta: &CheckpointState,
) -> Result<PathBuf> {
    let final_dir = step_dir(output_dir, meta.step);
    let parent = final_dir.parent().expect("checkpoint dir has a parent");
    let staged = sqlrft_files::Staged::dir(&final_dir)?;
    let named = |data: &'_ [f32]| -> Vec<(String, Vec<usize>, Vec<f32>)> {
        layout
            .tensors
            .iter()
            .map(|t| (t.name.clone(), t.shape.clone(), data[t.range()].to_vec()))
            .collect()
    };
    let params = named(&state.params);
    let bytes = serialize_tensors(
        params
            .iter()
            .map(|(n, s, d)| (n.as_str(), s.as_slice(), d.as_slice())),
        SaveDtype::F32,
        None,
    )?;
    staged.write("trainable.safetensors", &bytes)?;
    let shape = [state.adam_m.len()];
    let bytes = serialize_tensors(
        [
            ("adam_m", &shape[..], &state.adam_m[..]),
            ("adam_v", &shape[..], &state.adam_v[..]),
        ],
        SaveDtype::F32,
        None,
    )?;
    staged.write("optimizer.safetensors", &bytes)?;
    staged.write("state.json", serde_json::to_string_pretty(meta)?)?;
    staged.commit()?;
    sqlrft_files::write(
        &parent.join("latest"),
        final_dir
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default()
            .as_bytes(),
    )?;
    Ok(final_dir)
}

/// The newest checkpoint of a run, if any.
pub fn latest(output_dir: &Path) -> Result<Option<PathBuf>> {
    let pointer = output_dir.join("checkpoints").join("latest");
    match std::fs::read_to_string(&pointer) {
        Ok(name) => Ok(Some(output_dir.join("checkpoints").join(name.trim()))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("could not read `{}`", pointer.display())),
    }
}

/// Reads a checkpoint directory back.
pub fn load(dir: &Path, layout: &Layout) -> Result<(TrainableState, CheckpointState)> {
    let state_path = dir.join("state.json");
    let meta: CheckpointState = serde_json::from_str(
        &std::fs::read_to_string(&state_path)
            .with_context(|| format!("`{}` is not a checkpoint (no state.json)", dir.display()))?,
    )
    .with_context(|| format!("invalid `{}`", state_path.display()))?;
    let tensors = read_tensors(&dir.join("trainable.safetensors"))?;
    let mut params = vec![0.0; layout.len];
    for t in &layout.tensors {
        let (shape, data) = tensors.get(&t.name).with_context(|| {
            format!(
                "checkpoint `{}` lacks `{}`: was it made with another model or LoRA config?",
                dir.display(),
                t.name
            )
        })?;
        if shape != &t.shape {
            bail!(
                "checkpoint tensor `{}` has shape {shape:?}, expected {:?}",
                t.name,
                t.shape
            );
        }
        params[t.range()].copy_from_slice(data);
    }
    let mut opt = read_tensors(&dir.join("optimizer.safetensors"))?;
    let mut take = |n: &str| {
        opt.remove(n)
            .map(|(_, d)| d)
            .with_context(|| format!("checkpoint optimizer state lacks `{n}`"))
    };
    let (adam_m, adam_v) = (take("adam_m")?, take("adam_v")?);
    Ok((
        TrainableState {
            params,
            adam_m,
            adam_v,
            adam_t: meta.adam_t,
        },
        meta,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use rand::{Rng, SeedableRng};

    #[test]
    fn rng_state_round_trips_mid_stream() {
        let mut rng = ChaCha8Rng::seed_from_u64(9);
        let _: u64 = rng.random();
        let mut restored = RngState::capture(&rng).restore().unwrap();
        assert_eq!(rng.random::<u64>(), restored.random::<u64>());
    }

    #[test]
    fn checkpoint_round_trips_and_updates_latest() {
        let dir = tempfile::tempdir().unwrap();
        let mut layout = Layout::default();
        layout.push("a".into(), vec![2]);
        layout.push("b".into(), vec![1]);
        let state = TrainableState {
            params: vec![1.0, 2.0, 3.0],
            adam_m: vec![0.1; 3],
            adam_v: vec![0.2; 3],
            adam_t: 4,
        };
        let meta = CheckpointState {
            step: 4,
            cursor: DataCursor {
                epoch: 1,
                position: 2,
            },
            rng: RngState::capture(&rand_chacha::ChaCha8Rng::seed_from_u64(1)),
            adam_t: 4,
            lora: true,
            config: serde_json::json!({"seed": 1}),
            model: "m".into(),
        };
        let saved = save(dir.path(), &layout, &state, &meta).unwrap();
        assert_eq!(latest(dir.path()).unwrap(), Some(saved.clone()));
        let (s2, m2) = load(&saved, &layout).unwrap();
        assert_eq!((s2, m2), (state, meta));
    }
}
