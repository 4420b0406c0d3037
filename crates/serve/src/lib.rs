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

    /// Runs until Ctrl-C or SIGTERM, then drains: what a binary's `serve` does last.
    pub async fn run_until_signal(self) -> std::io::Result<()> {
        let cancel = self.cancel_token();
        tokio::spawn(async move {
            shutdown_signal().await;
            tracing::info!("shutdown signal received; draining");
            cancel.cancel();
        });
        self.wait().await
    }
}

/// Writes `url` to `file` atomically, for scripts that bind port 0 and wait for the file.
pub fn write_url_file(file: &Path, url: &str) -> anyhow::Result<()> {
    sqlrft_files::write(file, url)
        .with_context(|| format!("could not write the server URL to `{}`", file.display()))
}

/// Resolves on Ctrl-C or SIGTERM (what Cloud Run and Kubernetes send).
pub async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
        Ok(mut term) => {
            tokio::select! {
                _ = ctrl_c => {}
                _ = term.recv() => {}
            }
        }
        Err(err) => {
            tracing::warn!(%err, "no SIGTERM handler; only Ctrl-C stops the server");
            let _ = ctrl_c.await;
        }
    }
    #[cfg(not(unix))]
    let _ = ctrl_c.await;
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
}
