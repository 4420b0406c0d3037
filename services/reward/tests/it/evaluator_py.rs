//! deploy/fireworks/evaluator.py against the running service, as Fireworks would call it.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{Value, json};
use sqlrft_reward_service::{RewardConfig, start};

use crate::support::{chat, embedded_config, fixture};

/// The project venv's Python if it has `requests`, else a system python3 that has it.
fn python_with_requests() -> Option<PathBuf> {
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let candidates = [root.join(".venv/bin/python"), PathBuf::from("python3")];
    candidates.into_iter().find(|python| {
        Command::new(python)
            .args(["-c", "import requests"])
            .output()
            .is_ok_and(|o| o.status.success())
    })
}

/// Calls `evaluate(messages, ground_truth, **kwargs)` from evaluator.py in a Python process.
fn run_evaluator(
    python: &Path,
    url: &str,
    token: &str,
    messages: &Value,
    ground_truth: &Value,
    kwargs: &Value,
) -> Value {
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/fireworks");
    let script = "import json, sys\nimport evaluator\nargs = json.loads(sys.stdin.read())\n\
                  print(json.dumps(evaluator.evaluate(args['messages'], args['ground_truth'], **args['kwargs'])))";
    let mut child = Command::new(python)
        .args(["-c", script])
        .current_dir(&deploy)
        .env("SQLRFT_REWARD_URL", url)
        .env("SQLRFT_REWARD_TOKEN", token)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("python starts");
    use std::io::Write;
    let input = json!({"messages": messages, "ground_truth": ground_truth, "kwargs": kwargs});
    child
        .stdin
        .take()
        .unwrap()
        .write_all(input.to_string().as_bytes())
        .unwrap();
    let output = child.wait_with_output().unwrap();
    assert!(
        output.status.success(),
        "evaluator.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).expect("evaluator.py prints JSON")
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fireworks_evaluator_returns_the_service_answer() {
    let Some(python) = python_with_requests() else {
        eprintln!(
            "skipping: no Python with `requests` (create /work/main/.venv with `pip install requests`)"
        );
        return;
    };
    let fx = fixture();
    let server = start(RewardConfig {
        token: Some("tok".into()),
        ..embedded_config(&fx)
    })
    .await
    .unwrap();
    let url = server.base_url();
    let truth = json!([{"n": 6}]);
    let python2 = python.clone();
    let (right, wrong_partial, no_token, bad_request) = tokio::task::spawn_blocking(move || {
        let right = run_evaluator(
            &python2,
            &url,
            "tok",
            &chat("SELECT COUNT(*) FROM cities"),
            &truth,
            &json!({}),
        );
        let wrong_partial = run_evaluator(
            &python2,
            &url,
            "tok",
            &chat("SELECT COUNT(*) + 1 FROM cities"),
            &truth,
            &json!({"partial": true}),
        );
        let no_token = run_evaluator(&python2, &url, "", &chat("SELECT 1"), &truth, &json!({}));
        let bad_request = run_evaluator(
            &python2,
            &url,
            "tok",
            &chat("SELECT 1"),
            &json!(7),
            &json!({}),
        );
        (right, wrong_partial, no_token, bad_request)
    })
    .await
    .unwrap();
    assert_eq!(right["score"], json!(1.0), "{right}");
    assert_eq!(right["is_score_valid"], json!(true));
    assert_eq!(
        right["metrics"]["result_match"]["score"],
        json!(1.0),
        "{right}"
    );
    // kwargs reach the service: partial credit for a wrong result that runs.
    assert!(
        (wrong_partial["score"].as_f64().unwrap() - 0.1).abs() < 1e-9,
        "{wrong_partial}"
    );
    assert_eq!(no_token["is_score_valid"], json!(false), "{no_token}");
    assert!(
        no_token["reason"].as_str().unwrap().contains("401"),
        "{no_token}"
    );
    assert_eq!(bad_request["is_score_valid"], json!(false));
    assert!(
        bad_request["reason"]
            .as_str()
            .unwrap()
            .contains("ground_truth"),
        "{bad_request}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_fireworks_evaluator_marks_an_unreachable_service_invalid() {
    let Some(python) = python_with_requests() else {
        eprintln!(
            "skipping: no Python with `requests` (create /work/main/.venv with `pip install requests`)"
        );
        return;
    };
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let answer = tokio::task::spawn_blocking(move || {
        run_evaluator(
            &python,
            &url,
            "",
            &chat("SELECT 1"),
            &json!([{"x": 1}]),
            &json!({}),
        )
    })
    .await
    .unwrap();
    assert_eq!(answer["is_score_valid"], json!(false), "{answer}");
    assert_eq!(answer["score"], json!(0.0));
    assert!(
        answer["reason"]
            .as_str()
            .unwrap()
            .contains("could not reach"),
        "{answer}"
    );
}

/// No silent 127.0.0.1: without SQLRFT_REWARD_URL (or an edited REWARD_SERVICE_URL) the shim
/// refuses to score and says what to set, both as a command and imported.
#[test]
fn the_fireworks_evaluator_refuses_to_guess_the_service_url() {
    let Some(python) = python_with_requests() else {
        eprintln!(
            "skipping: no Python with `requests` (create /work/main/.venv with `pip install requests`)"
        );
        return;
    };
    let deploy = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../deploy/fireworks");
    let messages = chat("SELECT 1").to_string();
    let command = Command::new(&python)
        .args(["evaluator.py", &messages, "[{\"x\": 1}]"])
        .current_dir(&deploy)
        .env_remove("SQLRFT_REWARD_URL")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&command.stderr);
    assert!(!command.status.success(), "scored without a URL: {stderr}");
    assert!(
        stderr.contains("SQLRFT_REWARD_URL is not set") && stderr.contains("REWARD_SERVICE_URL"),
        "{stderr}"
    );
    // Imported (as Fireworks does), each call raises the same error; `not-a-url` is refused too.
    let script = "import evaluator\n\
                  for url in ('', 'not-a-url'):\n    \
                      evaluator.REWARD_SERVICE_URL = url\n    \
                      try:\n        evaluator.evaluate([], None); print('scored')\n    \
                      except evaluator.MissingServiceUrl as e: print('refused:', e)";
    let imported = Command::new(&python)
        .args(["-c", script])
        .current_dir(&deploy)
        .env_remove("SQLRFT_REWARD_URL")
        .env("PYTHONDONTWRITEBYTECODE", "1")
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&imported.stdout);
    assert_eq!(
        stdout.matches("refused:").count(),
        2,
        "{stdout}{}",
        String::from_utf8_lossy(&imported.stderr)
    );
    assert!(
        stdout.contains("'not-a-url' is not an http(s) URL"),
        "{stdout}"
    );
}
