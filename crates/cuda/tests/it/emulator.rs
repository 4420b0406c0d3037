//! Every kernel source run on the CPU (emulator/shim.h) against numpy references: the kernels'
//! indexing and algorithms are checked on machines without a GPU. Needs g++ and Python with
//! numpy; without them the test says why it skipped (under CI it fails: CI installs both).

use std::path::PathBuf;
use std::process::Command;

fn python() -> PathBuf {
    if let Some(p) = std::env::var_os("SQLRFT_PYTHON").filter(|p| !p.is_empty()) {
        return p.into();
    }
    let venv = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../.venv/bin/python");
    if venv.is_file() {
        venv
    } else {
        "python3".into()
    }
}

fn missing_tool() -> Option<String> {
    let gxx = Command::new("g++").arg("--version").output();
    if !gxx.is_ok_and(|o| o.status.success()) {
        return Some("g++ not found".into());
    }
    let py = python();
    let numpy = Command::new(&py).args(["-c", "import numpy"]).output();
    if !numpy.is_ok_and(|o| o.status.success()) {
        return Some(format!("`{}` cannot import numpy", py.display()));
    }
    None
}

#[test]
fn every_kernel_matches_numpy_when_emulated_on_the_cpu() {
    if let Some(why) = missing_tool() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI needs g++ and numpy: {why}"
        );
        eprintln!("skipped every_kernel_matches_numpy_when_emulated_on_the_cpu: {why}");
        return;
    }
    let build = tempfile::tempdir().unwrap();
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("emulator/emulate.py");
    let out = Command::new(python())
        .arg(&script)
        .arg(build.path())
        .output()
        .unwrap();
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        out.status.success(),
        "emulated kernels differ from numpy:\n{log}"
    );
    assert!(log.contains("all emulated kernel checks passed"), "{log}");
}
