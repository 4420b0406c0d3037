//! What a worker and a trainer do when a part of the loop is down, and what every new
//! endpoint says to bad input.

use super::*;
use sqlrft_proto::v1::PullRequest;
use sqlrft_proto::v1::rollouts_client::RolloutsClient;

/// A loopback port nothing listens on.
fn closed_port() -> u16 {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    listener.local_addr().unwrap().port()
}

async fn status_json(worker: &RunningWorker) -> Value {
    reqwest::get(format!("{}/v1/rollouts/status", worker.base_url()))
        .await
        .unwrap()
        .json()
        .await
        .unwrap()
}

/// Polls the worker's JSON status until `ready` holds (or panics after 30 s).
async fn status_until(worker: &RunningWorker, ready: impl Fn(&Value) -> bool) -> Value {
    for _ in 0..300 {
        let status = status_json(worker).await;
        if ready(&status) {
            return status;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the worker never got there: {}", status_json(worker).await);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_reward_service_that_is_down_drops_the_groups_and_the_worker_backs_off() {
    let stack = Stack::start().await;
    let down = format!("http://127.0.0.1:{}", closed_port());
    let w0 = stack.worker("w0", "0/1", &["--reward-url", &down]).await;
    // The trainer publishes policy 0; the worker samples, cannot score, and backs off.
    let out = stack.dir.path().join("run");
    let trainer = tokio::spawn(train(stack.trainer_args(&[w0.base_url()], &out, 1)));
    let status = status_until(&w0, |s| s["failures"].as_u64() >= Some(2)).await;
    let state = status["state"].as_str().unwrap();
    assert!(state.starts_with("backing off"), "{status}");
    assert!(state.contains("no group could be scored"), "{status}");
    assert!(
        status["groups_dropped_invalid"].as_u64() >= Some(2),
        "{status}"
    );
    assert_eq!(status["batches_produced"], 0, "{status}");
    // Nothing invalid reached the trainer: it is still waiting for its first batch.
    assert!(!trainer.is_finished());
    trainer.abort();
    w0.shutdown().await.unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_generator_that_is_down_shows_in_the_worker_and_the_trainer_waits_saying_so() {
    let stack = Stack::start().await;
    let down = format!("http://127.0.0.1:{}/v1", closed_port());
    let w0 = stack
        .worker(
            "w0",
            "0/1",
            &["--generator", &down, "--generator-model", "tiny"],
        )
        .await;
    let status = status_until(&w0, |s| s["failures"].as_u64() >= Some(1)).await;
    assert!(
        status["state"]
            .as_str()
            .unwrap()
            .contains("generator unavailable"),
        "{status}"
    );
    let lines = waiting_lines(&[w0.base_url()], Duration::from_millis(2500)).await;
    let last = lines.last().expect("the trainer said it was waiting");
    assert!(last.starts_with("waiting for rollouts"), "{last}");
    assert!(last.contains("w0: backing off"), "{last}");
    w0.shutdown().await.unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_that_is_gone_is_named_while_the_trainer_waits() {
    let gone = format!("http://127.0.0.1:{}", closed_port());
    let lines = waiting_lines(std::slice::from_ref(&gone), Duration::from_millis(1500)).await;
    let last = lines.last().expect("the trainer said it was waiting");
    assert!(last.contains(&format!("{gone}: unreachable")), "{last}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn bad_pulls_get_a_clear_error_over_json_and_grpc() {
    let stack = Stack::start().await;
    let w0 = stack
        .worker("w0", "0/1", &["--max-body-bytes", "1024"])
        .await;
    let url = format!("{}/v1/rollouts/pull", w0.base_url());
    let client = reqwest::Client::new();
    for (body, says) in [
        ("{not json".to_string(), "not a pull request"),
        (
            r#"{"min_policy_version": "three"}"#.to_string(),
            "not a pull request",
        ),
        (
            r#"{"min_policy_version": 5, "max_policy_version": 2}"#.to_string(),
            "min_policy_version 5",
        ),
        (r#"{"wait_ms": 999999}"#.to_string(), "wait_ms"),
    ] {
        let response = client.post(&url).body(body.clone()).send().await.unwrap();
        assert_eq!(response.status().as_u16(), 400, "{body}");
        let error: Value = response.json().await.unwrap();
        assert!(
            error["error"].as_str().unwrap().contains(says),
            "{body}: {error}"
        );
    }
    let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(4096));
    let response = client.post(&url).body(huge).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 413);
    // An empty body asks for any batch without waiting.
    let response = client.post(&url).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);

    let mut grpc = RolloutsClient::connect(w0.base_url()).await.unwrap();
    let err = grpc
        .pull(PullRequest {
            min_policy_version: 5,
            max_policy_version: 2,
            wait_ms: 0,
        })
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);
    assert!(err.message().contains("min_policy_version 5"), "{err:?}");
    w0.shutdown().await.unwrap();
    stack.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_worker_with_a_token_answers_only_trainers_that_send_it() {
    let stack = Stack::start().await;
    let w0 = stack.worker("w0", "0/1", &["--token", "s3cret"]).await;
    let status = format!("{}/v1/rollouts/status", w0.base_url());
    let client = reqwest::Client::new();
    let anonymous = client.get(&status).send().await.unwrap();
    assert_eq!(anonymous.status().as_u16(), 401);
    let with_token = client
        .get(&status)
        .bearer_auth("s3cret")
        .send()
        .await
        .unwrap();
    assert_eq!(with_token.status().as_u16(), 200);
    let urls = [w0.base_url()];
    let mut lines = Vec::new();
    let refused = tokio::time::timeout(
        Duration::from_secs(20),
        RolloutWorkers::new(&urls)
            .unwrap()
            .pull(0, 0, &AtomicBool::new(false), |line| {
                lines.push(line.to_string())
            }),
    )
    .await;
    let err = match refused {
        Ok(Err(err)) => err,
        other => panic!("a pull without the token did not fail: {other:?} {lines:?}"),
    };
    assert!(
        format!("{err:#}").contains("SQLRFT_ROLLOUT_TOKEN"),
        "{err:#}"
    );
    // With the token the worker answers (no batch yet: no policy was published).
    let stop = AtomicBool::new(false);
    lines.clear();
    let mut pull = RolloutWorkers::new(&urls)
        .unwrap()
        .with_token(Some("s3cret"))
        .unwrap();
    pull.pull(0, 0, &stop, |line| {
        lines.push(line.to_string());
        stop.store(true, Ordering::SeqCst);
    })
    .await
    .unwrap();
    assert!(
        lines[0].contains("w0: waiting for a policy adapter"),
        "{lines:?}"
    );
    w0.shutdown().await.unwrap();
    stack.shutdown().await;
}
