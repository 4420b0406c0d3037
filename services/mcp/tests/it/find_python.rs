//! Finding the Python that has a package the test drives (the MCP SDK, eval-protocol).
//! Included by path into the `sqlrft` binary's and the reward service's tests too.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The Python that can `import` every one of `modules`: $SQLRFT_PYTHON, the repo's .venv, or
/// python3; `Err` says what was looked for.
pub fn python_with(modules: &[&str]) -> Result<PathBuf, String> {
    let repo = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .find(|dir| dir.join("Cargo.lock").is_file())
        .map(Path::to_path_buf)
        .unwrap_or_default();
    let candidates = [
        std::env::var_os("SQLRFT_PYTHON").map(PathBuf::from),
        Some(repo.join(".venv/bin/python")),
        Some(PathBuf::from("python3")),
    ];
    let import = format!("import {}", modules.join(", "));
    let mut tried = Vec::new();
    for python in candidates.into_iter().flatten() {
        let output = Command::new(&python)
            .args(["-c", &import])
            // LiteLLM (under eval_protocol) fetches a price list on import and, when that fails
            // offline, logs from a retry thread that imports LiteLLM's modules while this import
            // is still running them: a circular-import error some of the time.
            .env("LITELLM_LOCAL_MODEL_COST_MAP", "True")
            .output();
        match output {
            Ok(o) if o.status.success() => return Ok(python),
            Ok(o) => {
                let stderr = String::from_utf8_lossy(&o.stderr);
                let last = stderr.lines().last().unwrap_or("").trim().to_string();
                tried.push(format!("{}: {last}", python.display()));
            }
            Err(e) => tried.push(format!("{}: {e}", python.display())),
        }
    }
    Err(format!(
        "no Python with `{}` found (set SQLRFT_PYTHON, or run .ci/run once to create .venv from \
         ci-requirements.txt); tried {}",
        modules.join("`, `"),
        tried.join("; ")
    ))
}

/// [`python_with`] for a test: `None` (after printing why `test` skipped) where the packages
/// are missing, except under CI, whose .venv must have them (ci-requirements.txt).
pub fn python_or_skip(modules: &[&str], test: &str) -> Option<PathBuf> {
    match python_with(modules) {
        Ok(python) => Some(python),
        Err(why) if std::env::var_os("CI").is_some() => panic!("{test}: {why}"),
        Err(why) => {
            eprintln!("SKIPPED {test}: {why}");
            None
        }
    }
}

/// Runs one of our Python check scripts off the async runtime and asserts that it exited 0
/// and printed its "N passed, 0 failed" summary; `what` names it in the failure. Returns stdout.
pub async fn assert_script_passes(what: &str, mut command: Command) -> String {
    let output = tokio::task::spawn_blocking(move || command.output())
        .await
        .expect("the Python check's thread finished")
        .unwrap_or_else(|e| panic!("{what}: Python did not start: {e}"));
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert!(
        output.status.success() && stdout.contains(" passed, 0 failed"),
        "{what} failed:\n{stdout}\n{stderr}"
    );
    stdout
}
