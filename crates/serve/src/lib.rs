//! What every sqlrft HTTP service does the same way, so `sqlrft mcp serve` and `sqlrft reward
//! serve` behave alike on Cloud Run: bind with a clear error, TCP_NODELAY, drain on SIGTERM,
//! a bearer token on the API routes (with RFC 9728 metadata for an OAuth protected resource),
//! 503 + `Retry-After` instead of a queue (with a signal that the client went away), and one
//! spelling of the flags they share.

#![warn(missing_docs)]

mod args;
mod bearer;
mod shed;

pub use args::ServeArgs;
pub use bearer::{
    PROTECTED_RESOURCE_METADATA_PATH, ProtectedResource, require_bearer, require_bearer_on_resource,
};
pub use shed::{ClientGone, shed_load};

pub mod trace_context;

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::serve::ListenerExt;
use axum::{Json, Router};
use tokio::net::TcpListener;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

/// Binds `host:port`; port 0 picks a free one.
pub async fn bind(host: &str, port: u16) -> anyhow::Result<TcpListener> {
    TcpListener::bind((host, port)).await.with_context(|| {
        format!("could not listen on {host}:{port}; is the port in use? pick another with --port")
    })
}

/// A service running in this process, with `state` beside it (what its callers need to see).
pub struct Server<T> {
    /// The address it listens on (the real port when asked for port 0).
    pub addr: SocketAddr,
    /// What the service shares with its handlers, kept for the caller (tests read it).
    pub state: T,
    cancel: CancellationToken,
    task: JoinHandle<std::io::Result<()>>,
}

impl<T> Server<T> {
    /// Binds `host:port` (port 0 picks a free one) and serves `app` there in the background
    /// until [`Server::shutdown`] or a signal.
    pub async fn start(host: &str, port: u16, app: Router, state: T) -> anyhow::Result<Self> {
        let listener = bind(host, port).await?;
        Ok(Self::spawn(listener, app, CancellationToken::new(), state))
    }

    /// Serves `app` on `listener` in the background until `cancel` fires, then lets in-flight
    /// requests finish.
    pub fn spawn(listener: TcpListener, app: Router, cancel: CancellationToken, state: T) -> Self {
        let addr = listener
            .local_addr()
            .expect("a bound TCP listener has an address");
        // Without TCP_NODELAY a keep-alive client waits ~40 ms per reply (Nagle + delayed ACK).
        let listener = listener.tap_io(|tcp| {
            if let Err(err) = tcp.set_nodelay(true) {
                tracing::warn!(%err, "could not set TCP_NODELAY");
            }
        });
        let stop = cancel.clone();
        let task = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move { stop.cancelled().await })
                .await
        });
        Server {
            addr,
            state,
            cancel,
            task,
        }
    }

    /// `http://host:port`, no trailing slash.
    pub fn base_url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Stops accepting requests, lets in-flight ones finish, and waits.
    pub async fn shutdown(self) -> std::io::Result<()> {
        self.cancel.cancel();
        self.wait().await
    }

    /// Waits until the server stops (after [`Server::cancel_token`] fires).
    pub async fn wait(self) -> std::io::Result<()> {
        self.task.await.unwrap_or(Ok(()))
    }

    /// A token that stops the server when cancelled; hand it to whatever should be able to.
    pub fn cancel_token(&self) -> CancellationToken {
        self.cancel.clone()
    }

    /// Runs until Ctrl-C or SIGTERM, then drains: what a binary's `serve` does last. The
    /// handlers are in place before `url_file` is written, so a script that waits for the file
    /// and then sends SIGTERM gets a drained exit, never the default kill.
    pub async fn run_until_signal(self, url_file: Option<&Path>) -> anyhow::Result<()> {
        let signal = shutdown_signal();
        if let Some(file) = url_file {
            write_url_file(file, &self.base_url())?;
        }
        let cancel = self.cancel_token();
        tokio::spawn(async move {
            signal.await;
            tracing::info!("shutdown signal received; draining");
            cancel.cancel();
        });
        Ok(self.wait().await?)
    }
}

/// Writes `url` to `file` atomically, for scripts that bind port 0 and wait for the file.
fn write_url_file(file: &Path, url: &str) -> anyhow::Result<()> {
    sqlrft_files::write(file, url)
        .with_context(|| format!("could not write the server URL to `{}`", file.display()))
}

/// A future that resolves on Ctrl-C or SIGTERM (what Cloud Run and Kubernetes send). The
/// handlers are installed when this is called, not when the future is first polled, so a
/// signal that arrives before the caller awaits is not lost to the default action (exit).
pub fn shutdown_signal() -> impl Future<Output = ()> + Send + 'static {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        let handlers = signal(SignalKind::terminate())
            .and_then(|term| Ok((term, signal(SignalKind::interrupt())?)));
        async move {
            match handlers {
                Ok((mut term, mut interrupt)) => {
                    tokio::select! {
                        _ = term.recv() => {}
                        _ = interrupt.recv() => {}
                    }
                }
                Err(err) => {
                    tracing::warn!(%err, "no SIGTERM handler; only Ctrl-C stops the server");
                    let _ = tokio::signal::ctrl_c().await;
                }
            }
        }
    }
    #[cfg(not(unix))]
    async {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// 503 with `Retry-After: 1` and `body` as JSON: the answer to a request past capacity.
pub fn busy(body: serde_json::Value) -> Response {
    let mut response = (StatusCode::SERVICE_UNAVAILABLE, Json(body)).into_response();
    response
        .headers_mut()
        .insert(header::RETRY_AFTER, HeaderValue::from_static("1"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_url_file_appears_whole() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("url");
        write_url_file(&file, "http://127.0.0.1:1").unwrap();
        assert_eq!(
            std::fs::read_to_string(&file).unwrap(),
            "http://127.0.0.1:1"
        );
        assert_eq!(std::fs::read_dir(dir.path()).unwrap().count(), 1);
        // A directory that cannot be made: its parent is a file.
        let blocked = file.join("url");
        let err = write_url_file(&blocked, "x").unwrap_err().to_string();
        assert!(err.contains(&*blocked.to_string_lossy()), "{err}");
    }

    /// A SIGTERM sent after `shutdown_signal()` returns but before anything awaits it must be
    /// caught; were the handler installed on first poll, the default action would kill this
    /// test binary.
    #[cfg(unix)]
    #[tokio::test]
    async fn a_sigterm_before_the_first_poll_is_caught() {
        let signal = shutdown_signal();
        let pid = std::process::id().to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(sent.success());
        tokio::time::timeout(std::time::Duration::from_secs(10), signal)
            .await
            .expect("the SIGTERM sent before the first poll was lost");
    }
}
