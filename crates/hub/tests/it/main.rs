//! Integration tests of the Hub client against the in-memory Hub stub over real HTTP.

mod download;
mod upload;

use std::time::Duration;

use sqlrft_hub::stub::HubStub;
use sqlrft_hub::{HubClient, HubConfig};
use sqlrft_retry::{Backoff, RetryPolicy};

pub const TOKEN: &str = "hf_test_token";

/// A client for `stub` with a fresh cache and short backoff.
pub fn client(stub: &HubStub, token: Option<&str>, cache: &std::path::Path) -> HubClient {
    let mut config = HubConfig::new(
        stub.endpoint(),
        token.map(str::to_string),
        cache.to_path_buf(),
    );
    config.retry = RetryPolicy {
        retries: 3,
        backoff: Backoff {
            base: Duration::from_millis(5),
            max: Duration::from_secs(5),
        },
    };
    HubClient::new(config).unwrap()
}
