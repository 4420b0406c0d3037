//! The HTTP client, its configuration, errors and the retry loop every request goes through.

use std::error::Error as _;
use std::path::PathBuf;
use std::time::{Duration, SystemTime};

use reqwest::{RequestBuilder, Response, StatusCode};
use sqlrft_retry::{Backoff, Failure, RetryPolicy, parse_retry_after};

/// Model or dataset repository.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RepoType {
    /// A model repository (`/{repo}`).
    Model,
    /// A dataset repository (`/datasets/{repo}`).
    Dataset,
}

impl RepoType {
    /// The plural used in API paths: `models`, `datasets`.
    pub fn api_segment(self) -> &'static str {
        match self {
            RepoType::Model => "models",
            RepoType::Dataset => "datasets",
        }
    }

    /// The prefix of web and git URLs: `""` for models, `"datasets/"` for datasets.
    pub fn url_prefix(self) -> &'static str {
        match self {
            RepoType::Model => "",
            RepoType::Dataset => "datasets/",
        }
    }

    /// The value of `type` in a create-repo request.
    pub fn name(self) -> &'static str {
        match self {
            RepoType::Model => "model",
            RepoType::Dataset => "dataset",
        }
    }
}

/// Why a Hub call failed.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    /// A repo id that is not `owner/name`.
    #[error("invalid repo id `{0}`: expected `owner/name` (e.g. `alice/sql-cot`)")]
    InvalidRepoId(String),
    /// The Hub answered an error status.
    #[error("{what}: {url} answered HTTP {status}{hint}: {body}")]
    Status {
        /// What we were doing.
        what: String,
        /// Request URL.
        url: String,
        /// HTTP status.
        status: u16,
        /// Response body (shortened).
        body: String,
        /// A hint on what to do, led by "; ".
        hint: &'static str,
    },
    /// Offline (`HF_HUB_OFFLINE`) and the file is not in the cache.
    #[error(
        "`{path}` of {kind} `{repo_id}` at `{revision}` is not in the cache `{cache}` and \
         HF_HUB_OFFLINE is set: run once with network access (or unset HF_HUB_OFFLINE), \
         or point HF_HUB_CACHE at a cache that has it"
    )]
    NotCached {
        /// `model` or `dataset`.
        kind: &'static str,
        /// The repo.
        repo_id: String,
        /// The revision asked for.
        revision: String,
        /// The file in the repo.
        path: String,
        /// The cache root searched.
        cache: PathBuf,
    },
    /// The Hub could not be reached.
    #[error("{what}: could not reach {url}: {message}")]
    Transport {
        /// What we were doing.
        what: String,
        /// Request URL.
        url: String,
        /// The transport error and its causes.
        message: String,
    },
    /// The Hub answered something we cannot use.
    #[error("{what}: unexpected answer from the Hub: {message}")]
    Protocol {
        /// What we were doing.
        what: String,
        /// What was wrong.
        message: String,
    },
    /// A local file could not be read or written.
    #[error("{action} `{path}`: {source}")]
    Io {
        /// What we tried.
        action: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Every attempt failed with a retryable error.
    #[error("gave up after {attempts} attempts; last error: {last}")]
    Exhausted {
        /// Attempts made.
        attempts: u32,
        /// The last error.
        last: Box<HubError>,
    },
}

impl HubError {
    /// True for 429, 5xx and transport failures.
    pub fn is_retryable(&self) -> bool {
        match self {
            HubError::Status { status, .. } => *status == 429 || *status >= 500,
            HubError::Transport { .. } => true,
            _ => false,
        }
    }

    /// The HTTP status behind this error, if any (looking through `Exhausted`).
    pub fn status(&self) -> Option<u16> {
        match self {
            HubError::Status { status, .. } => Some(*status),
            HubError::Exhausted { last, .. } => last.status(),
            _ => None,
        }
    }

    pub(crate) fn io(
        action: &'static str,
        path: impl Into<PathBuf>,
        source: std::io::Error,
    ) -> Self {
        HubError::Io {
            action,
            path: path.into(),
            source,
        }
    }

    pub(crate) fn protocol(what: &str, message: impl Into<String>) -> Self {
        HubError::Protocol {
            what: what.to_string(),
            message: message.into(),
        }
    }
}

/// Where the Hub is, who we are, and where downloads are cached.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Base URL, e.g. `https://huggingface.co`.
    pub endpoint: String,
    /// Access token (`HF_TOKEN`).
    pub token: Option<String>,
    /// Download cache root, in `huggingface_hub`'s layout (`models--owner--name/…`).
    pub cache_dir: PathBuf,
    /// No network: downloads come from the cache or fail (`HF_HUB_OFFLINE`).
    pub offline: bool,
    /// Retries after the first attempt on 429/5xx/transport errors, and the delays between them.
    pub retry: RetryPolicy,
    /// Timeout of small API calls (not of downloads and uploads, which may take long).
    pub api_timeout: Duration,
}

impl HubConfig {
    /// `HF_ENDPOINT` (default `https://huggingface.co`), `HF_TOKEN` (else the token file
    /// `hf auth login` writes), `HF_HUB_OFFLINE`, and the cache Python's `huggingface_hub`
    /// uses: `HF_HUB_CACHE`, else `$HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub fn from_env() -> Self {
        let endpoint = std::env::var("HF_ENDPOINT")
            .ok()
            .filter(|e| !e.trim().is_empty())
            .unwrap_or_else(|| "https://huggingface.co".to_string());
        let token = std::env::var("HF_TOKEN")
            .or_else(|_| std::env::var("HUGGING_FACE_HUB_TOKEN"))
            .ok()
            .map(|t| t.trim().to_string())
            .filter(|t| !t.is_empty())
            .or_else(token_from_file);
        HubConfig {
            endpoint: endpoint.trim_end_matches('/').to_string(),
            token,
            cache_dir: default_cache_dir(),
            offline: std::env::var("HF_HUB_OFFLINE").is_ok_and(|v| is_truthy(&v)),
            retry: RetryPolicy {
                retries: 5,
                backoff: Backoff {
                    base: Duration::from_millis(500),
                    max: Duration::from_secs(60),
                },
            },
            api_timeout: Duration::from_secs(60),
        }
    }

    /// A config for `endpoint` with `token`, caching under `cache_dir`.
    pub fn new(endpoint: impl Into<String>, token: Option<String>, cache_dir: PathBuf) -> Self {
        HubConfig {
            endpoint: endpoint.into().trim_end_matches('/').to_string(),
            token,
            cache_dir,
            ..HubConfig::from_env()
        }
    }
}

/// `huggingface_hub`'s truthy values of a boolean variable.
fn is_truthy(value: &str) -> bool {
    matches!(
        value.trim().to_ascii_lowercase().as_str(),
        "1" | "on" | "yes" | "true"
    )
}

/// `$HF_HOME`, else `~/.cache/huggingface`: where the Python tools keep their cache and token.
fn hf_home() -> PathBuf {
    if let Some(home) = std::env::var_os("HF_HOME").filter(|h| !h.is_empty()) {
        return PathBuf::from(home);
    }
    let cache = std::env::var_os("XDG_CACHE_HOME")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            std::env::var_os("HOME")
                .map(PathBuf::from)
                .unwrap_or_else(std::env::temp_dir)
                .join(".cache")
        });
    cache.join("huggingface")
}

/// `HF_HUB_CACHE`, else `$HF_HOME/hub`: one cache shared with `huggingface_hub`, so a model
/// downloaded by either is found by the other.
pub(crate) fn default_cache_dir() -> PathBuf {
    std::env::var_os("HF_HUB_CACHE")
        .filter(|h| !h.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| hf_home().join("hub"))
}

/// The token `hf auth login` saved: `HF_TOKEN_PATH`, else `$HF_HOME/token`.
pub(crate) fn token_from_file() -> Option<String> {
    let path = std::env::var_os("HF_TOKEN_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
        .unwrap_or_else(|| hf_home().join("token"));
    let token = std::fs::read_to_string(path).ok()?;
    let token = token.trim();
    (!token.is_empty()).then(|| token.to_string())
}

/// A Hugging Face Hub client over its HTTP API.
#[derive(Debug, Clone)]
pub struct HubClient {
    pub(crate) http: reqwest::Client,
    /// For HEAD requests, which must see the Hub's redirect rather than follow it.
    pub(crate) head_http: reqwest::Client,
    pub(crate) config: HubConfig,
}

impl HubClient {
    /// A client for `config`.
    pub fn new(config: HubConfig) -> Result<Self, HubError> {
        let builder = || {
            reqwest::Client::builder()
                .connect_timeout(Duration::from_secs(30))
                .user_agent(concat!("sqlrft-hub/", env!("CARGO_PKG_VERSION")))
        };
        let built = |b: reqwest::ClientBuilder| {
            b.build()
                .map_err(|e| HubError::protocol("building the HTTP client", e.to_string()))
        };
        Ok(HubClient {
            http: built(builder())?,
            head_http: built(
                builder()
                    .redirect(reqwest::redirect::Policy::none())
                    .timeout(config.api_timeout),
            )?,
            config,
        })
    }

    /// A client configured from the environment (see [`HubConfig::from_env`]).
    pub fn from_env() -> Result<Self, HubError> {
        HubClient::new(HubConfig::from_env())
    }

    /// The configuration.
    pub fn config(&self) -> &HubConfig {
        &self.config
    }

    /// `{endpoint}{path}`.
    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{}", self.config.endpoint, path)
    }

    /// Adds the bearer token when we have one.
    pub(crate) fn authed(&self, builder: RequestBuilder) -> RequestBuilder {
        match &self.config.token {
            Some(token) => builder.bearer_auth(token),
            None => builder,
        }
    }

    /// Sends the request `make` builds, retrying 429/5xx/transport errors with backoff
    /// (honouring `Retry-After`). Returns any other response, success or not.
    pub(crate) async fn send(
        &self,
        what: &str,
        make: impl Fn() -> Result<RequestBuilder, HubError>,
    ) -> Result<Response, HubError> {
        let make = &make;
        let result = sqlrft_retry::retry(&self.config.retry, "Hub request", |_| async move {
            // Execute with the client that built the request (HEADs use one without redirects).
            let (http, request) = make().map_err(Failure::Permanent)?.build_split();
            let request =
                request.map_err(|e| Failure::Permanent(HubError::protocol(what, e.to_string())))?;
            let url = request.url().to_string();
            match http.execute(request).await {
                Ok(response) if is_retryable_status(response.status()) => {
                    let retry_after = response
                        .headers()
                        .get(reqwest::header::RETRY_AFTER)
                        .and_then(|v| v.to_str().ok())
                        .and_then(|v| parse_retry_after(v, SystemTime::now()));
                    Err(Failure::Transient {
                        error: status_error(what, response).await,
                        retry_after,
                    })
                }
                Ok(response) => Ok(response),
                Err(e) => Err(Failure::Transient {
                    error: transport_error(what, &url, e),
                    retry_after: None,
                }),
            }
        })
        .await;
        result.map_err(|gave_up| {
            gave_up.into_error(|attempts, last| HubError::Exhausted {
                attempts,
                last: Box::new(last),
            })
        })
    }

    /// Like [`send`](Self::send), then turns any non-2xx status into an error.
    pub(crate) async fn send_ok(
        &self,
        what: &str,
        make: impl Fn() -> Result<RequestBuilder, HubError>,
    ) -> Result<Response, HubError> {
        let response = self.send(what, make).await?;
        if response.status().is_success() {
            Ok(response)
        } else {
            Err(status_error(what, response).await)
        }
    }

    /// Sends, checks the status and parses a JSON answer.
    pub(crate) async fn send_json<T: serde::de::DeserializeOwned>(
        &self,
        what: &str,
        make: impl Fn() -> Result<RequestBuilder, HubError>,
    ) -> Result<T, HubError> {
        let response = self.send_ok(what, make).await?;
        let url = response.url().to_string();
        let text = response
            .text()
            .await
            .map_err(|e| transport_error(what, &url, e))?;
        serde_json::from_str(&text)
            .map_err(|e| HubError::protocol(what, format!("{e} in {}", shorten(&text))))
    }
}

fn is_retryable_status(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

/// Reads the body of an error response into a [`HubError::Status`].
pub(crate) async fn status_error(what: &str, response: Response) -> HubError {
    let status = response.status().as_u16();
    let url = response.url().to_string();
    let body = response.text().await.unwrap_or_default();
    let hint = match status {
        401 => "; set HF_TOKEN (or run `hf auth login`) with a token that can read this repo",
        403 => "; the token in HF_TOKEN lacks permission (a write token is needed to publish)",
        404 => "; check the repo id, the revision and the file path",
        _ => "",
    };
    HubError::Status {
        what: what.to_string(),
        url,
        status,
        body: shorten(&body),
        hint,
    }
}

pub(crate) fn transport_error(what: &str, url: &str, err: reqwest::Error) -> HubError {
    let mut message = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        message.push_str(": ");
        message.push_str(&cause.to_string());
        source = cause.source();
    }
    HubError::Transport {
        what: what.to_string(),
        url: url.to_string(),
        message,
    }
}

pub(crate) fn shorten(text: &str) -> String {
    const MAX: usize = 500;
    match text.char_indices().nth(MAX) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text.to_string(),
    }
}

/// Checks `owner/name` and returns the two parts.
pub fn split_repo_id(repo_id: &str) -> Result<(&str, &str), HubError> {
    let valid = |s: &str| {
        !s.is_empty()
            && s.chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
            && !s.starts_with('.')
    };
    match repo_id.split_once('/') {
        Some((owner, name)) if valid(owner) && valid(name) => Ok((owner, name)),
        _ => Err(HubError::InvalidRepoId(repo_id.to_string())),
    }
}

/// Percent-encodes one path segment (a revision like `refs/convert/parquet` becomes one).
pub(crate) fn encode_segment(segment: &str) -> String {
    let mut out = String::with_capacity(segment.len());
    for b in segment.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// Percent-encodes a file path, keeping its `/` separators.
pub(crate) fn encode_path(path: &str) -> String {
    path.split('/')
        .map(encode_segment)
        .collect::<Vec<_>>()
        .join("/")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids_need_owner_and_name() {
        assert_eq!(split_repo_id("a/b-c.d").unwrap(), ("a", "b-c.d"));
        for bad in ["abc", "/x", "x/", "a/b/c", "a b/c", "a/.git"] {
            let err = split_repo_id(bad).unwrap_err();
            assert!(err.to_string().contains("owner/name"), "{bad}: {err}");
        }
    }

    #[test]
    fn revisions_and_paths_are_encoded() {
        assert_eq!(
            encode_segment("refs/convert/parquet"),
            "refs%2Fconvert%2Fparquet"
        );
        assert_eq!(
            encode_path("data/train 1.parquet"),
            "data/train%201.parquet"
        );
    }

    #[test]
    fn offline_takes_huggingface_hubs_truthy_values() {
        for yes in ["1", "ON", "yes", "True"] {
            assert!(is_truthy(yes), "{yes}");
        }
        for no in ["0", "", "off", "no"] {
            assert!(!is_truthy(no), "{no}");
        }
    }

    #[test]
    fn unauthorised_errors_say_to_set_the_token() {
        let e = HubError::Status {
            what: "listing".into(),
            url: "u".into(),
            status: 401,
            body: "no".into(),
            hint: "; set HF_TOKEN (or run `hf auth login`) with a token that can read this repo",
        };
        assert!(e.to_string().contains("HF_TOKEN"));
    }
}
