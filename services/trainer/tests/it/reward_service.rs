//! The reward service for tests that score through it (pipeline, rewards, trace).

/// The reward service on `sandbox`, on 127.0.0.1 with a port of its own, asking for `token`.
pub(crate) async fn reward_service(
    sandbox: &std::path::Path,
    token: Option<&str>,
) -> sqlrft_reward_service::RunningServer {
    sqlrft_reward_service::start(sqlrft_reward_service::RewardConfig {
        db: Some(sandbox.to_path_buf()),
        port: 0,
        token: token.map(str::to_string),
        ..Default::default()
    })
    .await
    .unwrap()
}
