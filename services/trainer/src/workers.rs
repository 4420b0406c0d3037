//! The trainer's side of rollout workers (`sqlrft train --rollouts URL,…`): pulls scored
//! batches from them over gRPC, one worker after another, so that a worker that is slow, empty
//! or gone only costs its turn. A worker hands each batch out once, so nothing is trained twice;
//! a batch lost in transit (a worker dying mid-reply) is simply not trained on.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tonic::transport::{Channel, Endpoint};

use crate::rollout::rollouts_client::RolloutsClient;
use crate::rollout::{PullRequest, RolloutBatch, WorkerStatus};

/// Largest batch message accepted: a round of 64 prompts × 16 completions × 1024 tokens with
/// their text fits with room to spare.
pub const MAX_MESSAGE_BYTES: usize = 256 * 1024 * 1024;

/// A batch taken from a worker, with what the metrics report about it.
#[derive(Debug)]
pub struct Pulled {
    /// The batch.
    pub batch: RolloutBatch,
    /// The worker's state right after the batch was taken.
    pub status: WorkerStatus,
    /// How long the trainer waited for it.
    pub waited: Duration,
}

/// The rollout workers a trainer pulls from.
pub struct RolloutWorkers {
    urls: Vec<String>,
    clients: HashMap<String, RolloutsClient<Channel>>,
    /// Where the next pull starts, so every worker gets its turn.
    next: usize,
    /// What each worker last answered, for the "waiting for rollouts" line.
    last_seen: HashMap<String, String>,
    /// `authorization` metadata for workers that require a bearer token.
    authorization: Option<tonic::metadata::MetadataValue<tonic::metadata::Ascii>>,
}

/// The variable holding the workers' bearer token: the one `sqlrft rollout` reads its own from.
pub const TOKEN_VARIABLE: &str = "SQLRFT_ROLLOUT_TOKEN";

impl RolloutWorkers {
    /// The workers at `urls` (`http://host:port`); a host name is looked up before every pull
    /// and each address it resolves to is a worker.
    pub fn new(urls: &[String]) -> Result<Self> {
        if urls.is_empty() {
            bail!("--rollouts needs at least one worker URL");
        }
        for url in urls {
            let Some(rest) = url.strip_prefix("http://") else {
                bail!(
                    "--rollouts `{url}`: expected http://host:port (the address `sqlrft rollout` \
                     prints); TLS belongs to a proxy in front of the worker"
                );
            };
            if rest.trim_end_matches('/').is_empty() {
                bail!("--rollouts `{url}`: no host");
            }
        }
        Ok(RolloutWorkers {
            urls: urls
                .iter()
                .map(|u| u.trim_end_matches('/').to_string())
                .collect(),
            clients: HashMap::new(),
            next: 0,
            last_seen: HashMap::new(),
            authorization: None,
        })
    }

    /// Sends `token` as a bearer token with every pull (workers started with `--token`).
    pub fn with_token(mut self, token: Option<&str>) -> Result<Self> {
        self.authorization = match token.filter(|t| !t.is_empty()) {
            Some(token) => Some(format!("Bearer {token}").parse().with_context(|| {
                format!("{TOKEN_VARIABLE}: the token is not a valid header value")
            })?),
            None => None,
        };
        Ok(self)
    }

    /// Every worker address: each URL's host resolved to all its addresses (a headless
    /// service's pods), or the URL as given when it does not resolve (its pull then fails and
    /// says why).
    async fn endpoints(&self) -> Vec<String> {
        let mut endpoints = Vec::new();
        for url in &self.urls {
            let authority = url.trim_start_matches("http://");
            let with_port = if authority
                .rsplit_once(':')
                .is_some_and(|(_, p)| p.parse::<u16>().is_ok())
            {
                authority.to_string()
            } else {
                format!("{authority}:80")
            };
            let addrs: Vec<std::net::SocketAddr> = match tokio::net::lookup_host(&with_port).await {
                Ok(addrs) => addrs.collect(),
                Err(_) => Vec::new(),
            };
            endpoints.extend(endpoints_of(url, &addrs));
        }
        endpoints.dedup();
        endpoints
    }

    fn client(&mut self, endpoint: &str) -> Result<RolloutsClient<Channel>> {
        if let Some(client) = self.clients.get(endpoint) {
            return Ok(client.clone());
        }
        let channel = Endpoint::from_shared(endpoint.to_string())
            .with_context(|| format!("--rollouts `{endpoint}` is not a URL"))?
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .connect_lazy();
        let client = RolloutsClient::new(channel)
            .max_decoding_message_size(MAX_MESSAGE_BYTES)
            .max_encoding_message_size(MAX_MESSAGE_BYTES);
        self.clients.insert(endpoint.to_string(), client.clone());
        Ok(client)
    }

    /// Takes the next batch sampled by a policy version in `min..=max`, asking the workers in
    /// turn until one has it. While none has, `waiting` is called after every round of asks with
    /// a line saying what each worker is doing. Returns `None` once `stop` is set.
    pub async fn pull(
        &mut self,
        min: u64,
        max: u64,
        stop: &AtomicBool,
        mut waiting: impl FnMut(&str),
    ) -> Result<Option<Pulled>> {
        let started = Instant::now();
        // First every worker is asked for a batch it has ready, so that one worker's empty
        // buffer does not hold up another's full one; then each may hold the request a while.
        let mut quick = true;
        loop {
            let endpoints = self.endpoints().await;
            // One worker is asked to hold the request up to a second; among many, each waits
            // less so that a full round stays about a second.
            let wait_ms = if quick {
                0
            } else {
                (1000 / endpoints.len() as u32).clamp(50, 1000)
            };
            let mut answered = false;
            for k in 0..endpoints.len() {
                if stop.load(Ordering::SeqCst) {
                    return Ok(None);
                }
                let endpoint = &endpoints[(self.next + k) % endpoints.len()];
                let mut client = self.client(endpoint)?;
                let mut request = tonic::Request::new(PullRequest {
                    min_policy_version: min,
                    max_policy_version: max,
                    wait_ms,
                });
                if let Some(value) = &self.authorization {
                    request
                        .metadata_mut()
                        .insert("authorization", value.clone());
                }
                let reply = tokio::time::timeout(
                    Duration::from_millis(u64::from(wait_ms) + 10_000),
                    client.pull(request),
                )
                .await;
                let seen = match reply {
                    Ok(Ok(reply)) => {
                        answered = true;
                        let reply = reply.into_inner();
                        let status = reply.status.unwrap_or_default();
                        if let Some(batch) = reply.batch {
                            self.next = (self.next + k + 1) % endpoints.len();
                            self.last_seen.insert(
                                endpoint.clone(),
                                format!("{} ({})", status.worker, status.state),
                            );
                            return Ok(Some(Pulled {
                                batch,
                                status,
                                waited: started.elapsed(),
                            }));
                        }
                        format!("{}: {}", status.worker, status.state)
                    }
                    Ok(Err(err))
                        if matches!(
                            err.code(),
                            tonic::Code::Unauthenticated | tonic::Code::PermissionDenied
                        ) =>
                    {
                        bail!(
                            "rollout worker {endpoint} refused the pull ({}): set \
                             {TOKEN_VARIABLE} to the token the workers were started with",
                            err.message()
                        )
                    }
                    Ok(Err(err)) => format!("{endpoint}: unreachable ({})", err.message()),
                    Err(_) => format!("{endpoint}: no answer within the pull timeout"),
                };
                if self.last_seen.get(endpoint) != Some(&seen) {
                    tracing::info!(worker = %endpoint, state = %seen, "rollout worker");
                    self.last_seen.insert(endpoint.clone(), seen);
                }
            }
            // Every worker failed at once (none listening, say): pause instead of spinning.
            if !answered {
                tokio::time::sleep(Duration::from_millis(500)).await;
            } else if std::mem::take(&mut quick) {
                continue;
            }
            let states: Vec<&str> = endpoints
                .iter()
                .filter_map(|e| self.last_seen.get(e).map(String::as_str))
                .collect();
            waiting(&format!(
                "waiting for rollouts (policy {min}..={max}): {}",
                states.join("; ")
            ));
        }
    }
}

/// The endpoints one worker URL stands for, given what its host resolved to: one per address
/// when it resolved to several machines (a headless service's pods), else the URL as given.
fn endpoints_of(url: &str, addrs: &[std::net::SocketAddr]) -> Vec<String> {
    // `localhost` is one machine even when it resolves to both ::1 and 127.0.0.1.
    if addrs.len() > 1 && !addrs.iter().all(|a| a.ip().is_loopback()) {
        let mut endpoints: Vec<String> = addrs.iter().map(|a| format!("http://{a}")).collect();
        endpoints.sort();
        endpoints.dedup();
        endpoints
    } else {
        vec![url.to_string()]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn worker_urls_must_be_plain_http() {
        for bad in ["rollout:50051", "https://rollout:50051", "http://"] {
            let err = RolloutWorkers::new(&[bad.to_string()]).err().unwrap();
            assert!(format!("{err:#}").contains(bad), "{err:#}");
        }
        assert!(RolloutWorkers::new(&[]).is_err());
        assert!(RolloutWorkers::new(&["http://127.0.0.1:50051/".into()]).is_ok());
    }

    #[tokio::test]
    async fn names_of_one_machine_stay_as_given() {
        let workers = RolloutWorkers::new(&[
            "http://127.0.0.1:50051".into(),
            "http://localhost:50052".into(),
            "http://no-such-host.invalid:1".into(),
        ])
        .unwrap();
        assert_eq!(
            workers.endpoints().await,
            [
                "http://127.0.0.1:50051",
                "http://localhost:50052",
                "http://no-such-host.invalid:1"
            ]
        );
    }

    #[test]
    fn a_name_of_several_machines_stands_for_each_of_them() {
        let pods: Vec<std::net::SocketAddr> = ["10.0.0.7:8080", "10.0.0.3:8080", "10.0.0.7:8080"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            endpoints_of("http://rollout:8080", &pods),
            ["http://10.0.0.3:8080", "http://10.0.0.7:8080"]
        );
        let one = &pods[..1];
        assert_eq!(
            endpoints_of("http://rollout:8080", one),
            ["http://rollout:8080"]
        );
        assert_eq!(
            endpoints_of("http://rollout:8080", &[]),
            ["http://rollout:8080"]
        );
        let loopback: Vec<std::net::SocketAddr> = ["[::1]:8080", "127.0.0.1:8080"]
            .iter()
            .map(|a| a.parse().unwrap())
            .collect();
        assert_eq!(
            endpoints_of("http://localhost:8080", &loopback),
            ["http://localhost:8080"]
        );
    }
}
