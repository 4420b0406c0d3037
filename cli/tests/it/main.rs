//! Tests of the `sqlrft` binary itself, the one users run: every command line of README.md
//! (`readme`), ARCHITECTURE.md's dependency graph against cargo's (`architecture`), and what
//! only a real process shows (`distill`: a run killed mid-way resumes; `eval`: a run in which no
//! model answers exits non-zero; `mcp_stdio`: the MCP server as a host's child process;
//! `smollm2`: the seed's recipe on the real pip-packaged model; `gpu`: the one-run GPU check's
//! scripts and `--device` on a machine without a GPU).
//! The only doubles are the OpenAI-compatible LLM stub and the Hugging Face Hub stub, served
//! over real HTTP from this process; everything else is the binary, real files and real servers.

mod architecture;
mod distill;
mod eval;
mod gpu;
mod mcp_stdio;
mod readme;
mod smollm2;

// The distill service's Gretel-shaped fixture and its teacher, and the trainer's tiny seeded
// models: included from those crates' tests so both suites use one copy.
#[path = "../../../services/mcp/tests/it/find_python.rs"]
mod find_python;
#[path = "../../../services/distill/tests/it/support.rs"]
#[allow(dead_code)]
mod gretel;
#[path = "../../../services/trainer/tests/it/tiny.rs"]
#[allow(dead_code)]
mod tiny;

use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Output, Stdio};
use std::time::{Duration, Instant};

/// The `sqlrft` binary cargo built for these tests.
pub fn sqlrft() -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_sqlrft"));
    command.env("RUST_LOG", "warn").env("NO_COLOR", "1");
    command
}

/// Runs `command` to the end; `Err` (with its output) unless it exits 0.
pub fn run_ok(command: &mut Command) -> Result<Output, String> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("could not start {command:?}: {e}"))?;
    exited_ok(command, output)
}

/// `output` of `command` when it exited 0; else `Err` with the status and what it printed.
pub fn exited_ok(command: &Command, output: Output) -> Result<Output, String> {
    if output.status.success() {
        Ok(output)
    } else {
        Err(format!(
            "{command:?} exited with {}\n--- stdout\n{}\n--- stderr\n{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        ))
    }
}

/// A server run by the binary (`--port 0 --print-url-to FILE`), stopped with SIGTERM.
pub struct Server {
    child: Child,
    /// The base URL the server wrote, e.g. `http://127.0.0.1:41234`.
    pub url: String,
    log: PathBuf,
}

impl Server {
    /// Starts `command` (which must already carry `--print-url-to url_file`) and waits until
    /// the URL is written; stderr goes to `url_file` + `.log` so a failure can show it.
    pub fn start(mut command: Command, url_file: &Path) -> Result<Server, String> {
        let log = url_file.with_extension("log");
        let stderr = std::fs::File::create(&log).map_err(|e| e.to_string())?;
        let mut child = command
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|e| format!("could not start {command:?}: {e}"))?;
        let deadline = Instant::now() + Duration::from_secs(120);
        loop {
            if let Ok(url) = std::fs::read_to_string(url_file)
                && !url.trim().is_empty()
            {
                return Ok(Server {
                    child,
                    url: url.trim().trim_end_matches('/').to_string(),
                    log,
                });
            }
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "{command:?} exited with {status} before serving:\n{}",
                    std::fs::read_to_string(&log).unwrap_or_default()
                ));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("{command:?} wrote no URL in 120 s"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM (what Cloud Run and Kubernetes send), then the exit status; `Err` unless the
    /// server drained and exited 0 within 30 s.
    pub fn stop(mut self) -> Result<ExitStatus, String> {
        let pid = self.child.id().to_string();
        run_ok(Command::new("kill").args(["-TERM", &pid]))?;
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().map_err(|e| e.to_string())? {
                return if status.success() {
                    Ok(status)
                } else {
                    Err(format!(
                        "the server exited with {status} on SIGTERM:\n{}",
                        std::fs::read_to_string(&self.log).unwrap_or_default()
                    ))
                };
            }
            if Instant::now() > deadline {
                return Err("the server did not stop within 30 s of SIGTERM".into());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}
