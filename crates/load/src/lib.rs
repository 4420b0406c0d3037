//! The HTTP client of `sqlrft bench mcp` and `sqlrft bench reward`.
//!
//! The benchmarks run their client on the same machine as the servers they measure (in CI and on
//! a 2-vCPU VM, the same two CPUs), so every microsecond the client spends is taken from the
//! server. reqwest spent ~34 µs of CPU per request at 32 concurrent clients (pool look-up, URL
//! parsing, header maps, a JSON value built and serialised per call); one hyper connection per
//! simulated client with the body serialised once spends ~10 µs. Both servers of a comparison are
//! measured through the same client, as a load generator on another host would be.

use std::time::Duration;

use anyhow::{Context, bail};
use bytes::Bytes;
use http::header::{ACCEPT, CONTENT_TYPE, HOST, HeaderValue};
use http::{Method, Request, StatusCode, Uri};
use http_body_util::{BodyExt, Full};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use tokio::net::TcpStream;

/// Where requests go: a plain-HTTP URL's host, port and path, parsed once.
#[derive(Debug, Clone)]
pub struct Endpoint {
    address: String,
    host: HeaderValue,
    uri: Uri,
    accept: HeaderValue,
}

impl Endpoint {
    /// `url` is `http://HOST:PORT/PATH`; `accept` is sent as the `Accept` header of every request.
    pub fn new(url: &str, accept: &str) -> anyhow::Result<Self> {
        let parsed: Uri = url
            .parse()
            .with_context(|| format!("benchmark URL {url:?} is not a URL"))?;
        if parsed.scheme_str() != Some("http") {
            bail!(
                "benchmark URL {url:?}: only plain http:// is measured (start the server without TLS)"
            );
        }
        let authority = parsed
            .authority()
            .with_context(|| format!("benchmark URL {url:?} names no host"))?;
        let port = authority.port_u16().unwrap_or(80);
        let path = parsed.path_and_query().map_or("/", |p| p.as_str());
        Ok(Self {
            address: format!("{}:{port}", authority.host()),
            host: HeaderValue::from_str(authority.as_str())?,
            uri: path.parse()?,
            accept: HeaderValue::from_str(accept)
                .with_context(|| format!("Accept header {accept:?}"))?,
        })
    }

    /// Opens one keep-alive connection: what one simulated client holds for a whole run.
    pub async fn connect(&self) -> anyhow::Result<Connection> {
        let stream = TcpStream::connect(&self.address)
            .await
            .with_context(|| format!("connecting to {} for the benchmark", self.address))?;
        stream.set_nodelay(true)?;
        let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .with_context(|| format!("HTTP/1.1 handshake with {}", self.address))?;
        // The connection's I/O runs beside the requests; it ends when the sender is dropped.
        tokio::spawn(connection);
        Ok(Connection {
            endpoint: self.clone(),
            sender,
        })
    }
}

/// One simulated client's connection; requests on it go one at a time, as a client's would.
pub struct Connection {
    endpoint: Endpoint,
    sender: SendRequest<Full<Bytes>>,
}

/// A reply's status and whole body.
#[derive(Debug)]
pub struct Reply {
    /// The HTTP status.
    pub status: StatusCode,
    /// The body, read to its end.
    pub body: Bytes,
}

impl Connection {
    /// POSTs a JSON `body` (serialised beforehand, so repeating it costs a reference count) and
    /// reads the whole reply. A connection the server closed while idle (Python servers close
    /// keep-alive connections after a few seconds) is opened again once before sending.
    pub async fn post_json(&mut self, body: Bytes) -> anyhow::Result<Reply> {
        if self.sender.ready().await.is_err() {
            *self = self.endpoint.connect().await?;
        }
        let mut request = Request::new(Full::new(body));
        *request.method_mut() = Method::POST;
        *request.uri_mut() = self.endpoint.uri.clone();
        let headers = request.headers_mut();
        headers.insert(HOST, self.endpoint.host.clone());
        headers.insert(ACCEPT, self.endpoint.accept.clone());
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        let response = self
            .sender
            .send_request(request)
            .await
            .with_context(|| format!("POST to {}", self.endpoint.address))?;
        let status = response.status();
        let body = tokio::time::timeout(REPLY_TIMEOUT, response.into_body().collect())
            .await
            .with_context(|| {
                format!(
                    "{} sent no whole reply within {REPLY_TIMEOUT:?}",
                    self.endpoint.address
                )
            })?
            .with_context(|| format!("reading the reply from {}", self.endpoint.address))?
            .to_bytes();
        Ok(Reply { status, body })
    }
}

/// A reply body that has not ended by then belongs to a server that is stuck, not slow.
const REPLY_TIMEOUT: Duration = Duration::from_secs(120);

/// The first non-empty `data:` line of a server-sent-events body (MCP's streamable HTTP replies).
pub fn first_sse_data(body: &[u8]) -> Option<&[u8]> {
    body.split(|&b| b == b'\n')
        .filter_map(|line| line.strip_prefix(b"data:"))
        .map(|data| data.trim_ascii())
        .find(|data| !data.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    use axum::Router;
    use axum::http::HeaderMap;
    use axum::routing::post;

    /// Echoes the request's Host, Accept and body back as one SSE event.
    async fn echo_server() -> String {
        let app = Router::new().route(
            "/mcp/",
            post(|headers: HeaderMap, body: Bytes| async move {
                let header = |name| headers[name].to_str().unwrap().to_string();
                format!(
                    "event: message\ndata: {}|{}|{}\n\n",
                    header("host"),
                    header("accept"),
                    String::from_utf8_lossy(&body)
                )
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        format!("http://{address}/mcp/")
    }

    #[tokio::test]
    async fn posts_on_one_connection_with_host_and_accept() {
        let url = echo_server().await;
        let endpoint = Endpoint::new(&url, "application/json, text/event-stream").unwrap();
        let mut connection = endpoint.connect().await.unwrap();
        let authority = url.trim_start_matches("http://").trim_end_matches("/mcp/");
        for n in 0..3 {
            let body = Bytes::from(format!("{{\"n\":{n}}}"));
            let reply = connection.post_json(body).await.unwrap();
            assert_eq!(reply.status, StatusCode::OK);
            let expected = format!("{authority}|application/json, text/event-stream|{{\"n\":{n}}}");
            assert_eq!(first_sse_data(&reply.body), Some(expected.as_bytes()));
        }
    }

    #[tokio::test]
    async fn reconnects_after_the_server_closed_an_idle_connection() {
        // A server that answers one request per connection and closes it, as an idle timeout would.
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let address = listener.local_addr().unwrap();
        let app = Router::new().route("/", post(|| async { "ok" }));
        tokio::spawn(async move {
            loop {
                let (stream, _) = listener.accept().await.unwrap();
                let service = hyper_util::service::TowerToHyperService::new(app.clone());
                tokio::spawn(
                    hyper::server::conn::http1::Builder::new()
                        .keep_alive(false)
                        .serve_connection(TokioIo::new(stream), service),
                );
            }
        });
        let endpoint = Endpoint::new(&format!("http://{address}/"), "*/*").unwrap();
        let mut connection = endpoint.connect().await.unwrap();
        for _ in 0..3 {
            let reply = connection
                .post_json(Bytes::from_static(b"{}"))
                .await
                .unwrap();
            assert_eq!(&reply.body[..], b"ok");
        }
    }

    #[test]
    fn refuses_what_it_cannot_measure() {
        let https = Endpoint::new("https://example.com/mcp", "*/*").unwrap_err();
        assert!(https.to_string().contains("only plain http://"), "{https}");
        assert!(Endpoint::new("not a url at all", "*/*").is_err());
    }

    #[test]
    fn finds_the_first_data_line() {
        assert_eq!(
            first_sse_data(b"event: message\ndata:\ndata: {\"a\":1}\r\n\n"),
            Some(&b"{\"a\":1}"[..])
        );
        assert_eq!(first_sse_data(b"{\"plain\":true}"), None);
    }
}
