//! What of the GPU path runs without a GPU, through the binary: `--device cuda` refuses with the
//! reason and the fix, the one-run GPU check's GRPO step (`scripts/gpu/grpo_check.py`) trains
//! its toy task to a rising reward on the CPU, and `scripts/gpu-check.sh` records every step
//! and writes its report even when all of them fail.

use std::path::Path;
use std::process::Command;

use crate::find_python::python_or_skip;
use crate::{run_ok, sqlrft};

fn repo() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("cli/ sits in the repository root")
}

/// Whether this machine has a GPU the CUDA backend can use (then the no-GPU checks skip).
fn has_gpu() -> bool {
    sqlrft()
        .args(["cuda", "probe"])
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn device_cuda_without_a_gpu_names_the_reason_and_the_fix() {
    if has_gpu() {
        eprintln!("skipped device_cuda_without_a_gpu_names_the_reason_and_the_fix: a GPU is here");
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    run_ok(sqlrft().args(["cuda", "toy-task", "--out"]).arg(dir.path())).unwrap();
    let output = sqlrft()
        .args([
            "train",
            "--device",
            "cuda",
            "--max-steps",
            "1",
            "--quiet",
            "--model",
        ])
        .arg(dir.path().join("model"))
        .arg("--dataset")
        .arg(dir.path().join("prompts.jsonl"))
        .arg("--output-dir")
        .arg(dir.path().join("run"))
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(!output.status.success(), "trained without a GPU: {stderr}");
    assert!(
        stderr.contains("--device cuda") && stderr.contains("--device cpu"),
        "the error names the flag and the fix: {stderr}"
    );
    assert!(
        !dir.path().join("run/metrics.jsonl").exists(),
        "nothing was trained"
    );
}

#[test]
fn the_gpu_checks_grpo_step_trains_the_toy_task_to_a_rising_reward_on_the_cpu() {
    let Some(python) = python_or_skip(&["json"], "grpo_check_on_the_cpu") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("grpo.json");
    run_ok(
        Command::new(python)
            .arg(repo().join("scripts/gpu/grpo_check.py"))
            .arg("--out")
            .arg(&out)
            .args(["--device", "cpu", "--steps", "20", "--work"])
            .arg(dir.path().join("work"))
            .arg("--")
            .arg(env!("CARGO_BIN_EXE_sqlrft")),
    )
    .unwrap();
    let result: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&out).unwrap()).unwrap();
    assert_eq!(result["passed"], true, "{result:#}");
    let rewards = result["rewards"].as_array().unwrap();
    assert_eq!(rewards.len(), 20, "one reward per step: {result:#}");
    assert!(result["rise"].as_f64().unwrap() > 0.0, "{result:#}");
}

#[test]
fn gpu_check_writes_its_report_when_every_step_fails() {
    if has_gpu() {
        eprintln!("skipped gpu_check_writes_its_report_when_every_step_fails: a GPU is here");
        return;
    }
    let Some(python) = python_or_skip(&["json"], "gpu_check_report") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out");
    let status = Command::new("bash")
        .arg(repo().join("scripts/gpu-check.sh"))
        .arg("--no-bench")
        .env("OUT", &out)
        .env("WORK", dir.path().join("work"))
        .env("PYTHON", python)
        .env("SQLRFT_BIN", env!("CARGO_BIN_EXE_sqlrft"))
        .env(
            "SQLRFT_CUDA_TEST_BIN",
            dir.path().join("no-such-test-binary"),
        )
        .output()
        .unwrap();
    assert!(
        !status.status.success(),
        "without a GPU the check fails: {}",
        String::from_utf8_lossy(&status.stdout)
    );
    let report: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("gpu-check.json")).unwrap())
            .unwrap();
    let steps: Vec<(&str, &str)> = report["steps"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| (s["name"].as_str().unwrap(), s["status"].as_str().unwrap()))
        .collect();
    let names: Vec<&str> = steps.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names,
        ["device", "kernels", "tiny", "hf", "grpo", "bench"],
        "{report:#}"
    );
    for (name, status) in &steps {
        let want = if matches!(*name, "tiny" | "bench") {
            "skipped"
        } else {
            "failed"
        };
        assert_eq!(*status, want, "step {name}: {report:#}");
    }
    let md = std::fs::read_to_string(out.join("gpu-check.md")).unwrap();
    assert!(md.contains("| grpo | failed |"), "{md}");
}
