//! Our CPU logits against transformers' on random-weight models built from the real
//! Qwen2.5-0.5B and Llama-3.2-1B configs (scripts/hf_reference.py). Runs when a Python with
//! torch and transformers is found (`SQLRFT_PYTHON`, else the workspace `.venv`, else `python3`);
//! otherwise it prints why it skipped.

use crate::tiny::{self, Family};
use sqlrft_model::backend::Backend;
use sqlrft_model::config::ModelConfig;
use sqlrft_model::cpu::model::CpuModel;
use sqlrft_model::params::{ModelLayout, load_weights};
use std::path::PathBuf;
use std::process::Command;

fn python() -> Result<PathBuf, String> {
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    let candidates: Vec<PathBuf> = std::env::var_os("SQLRFT_PYTHON")
        .map(PathBuf::from)
        .into_iter()
        .chain([venv, PathBuf::from("python3")])
        .collect();
    for py in &candidates {
        let ok = Command::new(py)
            .args(["-c", "import torch, transformers"])
            .output()
            .is_ok_and(|o| o.status.success());
        if ok {
            return Ok(py.clone());
        }
    }
    Err(format!(
        "no Python with torch and transformers among {candidates:?}"
    ))
}

fn python_or_skip(test: &str) -> Option<PathBuf> {
    match python() {
        Ok(p) => Some(p),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}; set SQLRFT_PYTHON to run it");
            None
        }
    }
}

fn max_relative_difference(got: &[f32], want: &[Vec<f32>]) -> f32 {
    let v = want[0].len();
    let mut worst = 0.0f32;
    for (t, row) in want.iter().enumerate() {
        for (j, w) in row.iter().enumerate() {
            worst = worst.max((got[t * v + j] - w).abs() / (1.0 + w.abs()));
        }
    }
    worst
}

#[test]
fn logits_match_transformers_on_real_configs() {
    let Some(py) = python_or_skip("logits_match_transformers_on_real_configs") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/hf_reference.py");
    let out = Command::new(&py)
        .arg(script)
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "hf_reference.py failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    for name in ["qwen2.5-0.5b-2layers", "llama-3.2-1b-1layer"] {
        let d = dir.path().join(name);
        let reference: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(d.join("reference.json")).unwrap())
                .unwrap();
        let cfg = ModelConfig::load(&d).unwrap();
        let inv_freq: Vec<f64> = serde_json::from_value(reference["inv_freq"].clone()).unwrap();
        for (i, (ours, theirs)) in cfg.rope_inv_freq().iter().zip(&inv_freq).enumerate() {
            assert!(
                (*ours as f64 - theirs).abs() <= 1e-6 * theirs.abs(),
                "{name} inv_freq[{i}]: {ours} vs {theirs}"
            );
        }
        let weights = load_weights(&d, &ModelLayout::new(&cfg).layout).unwrap();
        let model = CpuModel::new(cfg, weights, None);
        let ids: Vec<u32> = serde_json::from_value(reference["ids"].clone()).unwrap();
        let want: Vec<Vec<f32>> = serde_json::from_value(reference["logits"].clone()).unwrap();
        let got = model.forward(&ids, 0, false).logits;
        let worst = max_relative_difference(&got, &want);
        assert!(
            worst < 1e-4,
            "{name}: logits differ from transformers by up to {worst}"
        );
        eprintln!("{name}: max relative logit difference vs transformers {worst:.2e}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transformers_loads_an_exported_lora_merge() {
    let Some(py) = python_or_skip("transformers_loads_an_exported_lora_merge") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    tiny::write_model(&model, Family::Llama, 31);
    // An adapter with non-zero B, checkpointed like a run would, then exported.
    let cfg = sqlrft_trainer::train::TrainConfig::default();
    let (mut backend, _) = sqlrft_trainer::train::load_cpu_backend(&model, &cfg).unwrap();
    let mut state = backend.trainable_state().unwrap();
    state
        .params
        .iter_mut()
        .enumerate()
        .for_each(|(i, p)| *p = ((i % 13) as f32 - 6.0) * 0.01);
    backend.load_trainable_state(state.clone()).unwrap();
    let meta = sqlrft_trainer::checkpoint::CheckpointState {
        step: 1,
        cursor: Default::default(),
        rng: sqlrft_trainer::checkpoint::RngState::capture(
            &<rand_chacha::ChaCha8Rng as rand::SeedableRng>::seed_from_u64(0),
        ),
        adam_t: 0,
        lora: true,
        config: serde_json::to_value(&cfg).unwrap(),
        model: model.display().to_string(),
    };
    let run = dir.path().join("run");
    sqlrft_trainer::checkpoint::save(&run, backend.trainable_layout(), &state, &meta).unwrap();
    let export = dir.path().join("export");
    sqlrft_trainer::run_export(sqlrft_trainer::ExportArgs {
        output_dir: run,
        checkpoint: None,
        model: None,
        out: export.clone(),
        dtype: None,
        adapter: false,
        max_shard_bytes: sqlrft_trainer::export::DEFAULT_MAX_SHARD_BYTES,
        hub: Default::default(),
    })
    .await
    .unwrap();
    let ids: Vec<u32> = vec![5, 17, 42, 8, 99, 3];
    let logits_of =
        |model_dir: &std::path::Path, adapter: Option<&std::path::Path>| -> Vec<Vec<f32>> {
            let mut cmd = Command::new(&py);
            cmd.arg(concat!(env!("CARGO_MANIFEST_DIR"), "/scripts/hf_logits.py"))
                .arg(model_dir)
                .arg(serde_json::to_string(&ids).unwrap());
            cmd.args(adapter);
            let out = cmd.output().unwrap();
            assert!(
                out.status.success(),
                "transformers could not load the export: {}",
                String::from_utf8_lossy(&out.stderr)
            );
            serde_json::from_slice(&out.stdout).unwrap()
        };
    let got = backend.model.forward(&ids, 0, true).logits;
    let worst = max_relative_difference(&got, &logits_of(&export, None));
    assert!(
        worst < 1e-4,
        "transformers' logits of the merged export differ from base + adapter by {worst}"
    );

    let peft_ok = Command::new(&py)
        .args(["-c", "import peft"])
        .output()
        .is_ok_and(|o| o.status.success());
    if !peft_ok {
        eprintln!("SKIPPED the PEFT adapter check: peft is not installed");
        return;
    }
    let adapter = dir.path().join("adapter");
    sqlrft_trainer::run_export(sqlrft_trainer::ExportArgs {
        output_dir: dir.path().join("run"),
        checkpoint: None,
        model: None,
        out: adapter.clone(),
        dtype: None,
        adapter: true,
        max_shard_bytes: sqlrft_trainer::export::DEFAULT_MAX_SHARD_BYTES,
        hub: Default::default(),
    })
    .await
    .unwrap();
    let worst = max_relative_difference(&got, &logits_of(&model, Some(&adapter)));
    assert!(
        worst < 1e-4,
        "PEFT's logits with the exported adapter differ from ours by {worst}"
    );
}
