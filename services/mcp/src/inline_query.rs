//! `tools/call query` answered in the HTTP request's own task.
//!
//! rmcp's stateless transport spawns a service task and a handler task for every request and
//! hands the reply back over a channel: thread hops that cost 4–8% of sequential point-query
//! throughput on a 2-core VM (ARCHITECTURE.md, "`query` answered inline"). This middleware answers
//! the one call made at volume, `query` (the tutorial's evaluator, the reward service), itself:
//! same handler ([`DuckTools::call`]), same JSON, same SSE bytes.
//!
//! It takes only requests that rmcp would surely accept and hand to that handler unchanged;
//! anything else (sessions, other methods and tools, an `Origin` header, protocol 2026-07-28 and
//! its standard headers, `_meta` beyond trace context, `Accept` with parameters, no
//! `Content-Length`) goes on to rmcp exactly as it came, so every refusal is still rmcp's.

use std::convert::Infallible;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::header::{ACCEPT, CACHE_CONTROL, CONTENT_LENGTH, CONTENT_TYPE, HOST, ORIGIN};
use axum::http::uri::Authority;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use rmcp::model::{
    CallToolRequestParams, ClientJsonRpcMessage, ClientRequest, GetMeta, JsonRpcRequest,
    ProtocolVersion, RequestId, RequestMetaObject, ServerJsonRpcMessage, ServerResult,
};
use sqlrft_serve::ClientGone;

use crate::tools::{Caller, DuckTools, supported_protocols};

const PROTOCOL_VERSION_HEADER: &str = "mcp-protocol-version";
/// The `_meta` keys the handler reads; with any other key the request goes to rmcp.
const TRACE_META_KEYS: [&str; 2] = ["traceparent", "tracestate"];

/// The tools the inline path calls and the requests it takes.
pub(crate) struct InlineQuery {
    pub tools: DuckTools,
    pub admission: Admission,
}

/// What the inline path needs to know of the transport's configuration.
pub(crate) struct Admission {
    /// The transport's Host allow-list (empty: any host).
    pub allowed_hosts: Vec<String>,
    pub max_body_bytes: usize,
}

/// The middleware in front of rmcp's stateless service on `/mcp`.
pub(crate) async fn answer(
    State(inline): State<Arc<InlineQuery>>,
    request: Request,
    next: Next,
) -> Response {
    if !inline.admission.takes(request.method(), request.headers()) {
        return next.run(request).await;
    }
    let (parts, body) = request.into_parts();
    // `takes` checked Content-Length against the limit and hyper holds the body to it.
    let bytes = match axum::body::to_bytes(body, inline.admission.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(err) => {
            return (
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("Failed to read request body: {err}"),
            )
                .into_response();
        }
    };
    let Some((id, params, meta)) = query_call(&bytes) else {
        return next
            .run(Request::from_parts(parts, Body::from(bytes)))
            .await;
    };
    let tools = inline.tools.clone();
    let gone = ClientGone::of(&parts.extensions);
    let headers = parts.headers;
    // Polled as the reply's body, after the headers have gone out, as rmcp's stream is: a client
    // sees the same timing, and one that hangs up mid-reply drops the query with the body.
    let event = async move {
        let caller = Caller {
            meta: &meta,
            headers: Some(&headers),
            gone,
        };
        let arguments = params.arguments.unwrap_or_default();
        let reply = match tools.call(&params.name, &arguments, caller).await {
            Ok(result) => {
                let mut result = ServerResult::CallToolResult(result);
                // What rmcp's handler does for peers before protocol 2026-07-28 (the only ones
                // taken here).
                result.strip_result_type_for_legacy_peer();
                ServerJsonRpcMessage::response(result, id)
            }
            Err(error) => ServerJsonRpcMessage::error(error, Some(id)),
        };
        Ok::<_, Infallible>(sse_event(&reply))
    };
    sse_reply(Body::from_stream(futures::stream::once(event)))
}

impl Admission {
    /// True when the request's method and headers are ones rmcp's stateless POST accepts without
    /// doubt and treats no differently from none (the body is checked after).
    fn takes(&self, method: &Method, headers: &HeaderMap) -> bool {
        *method == Method::POST
            && headers.get(ORIGIN).is_none()
            && self.body_fits(headers)
            && self.host_allowed(headers)
            && accepts_json_and_sse(headers)
            && is_json(headers)
            && self.legacy_protocol(headers)
    }

    fn body_fits(&self, headers: &HeaderMap) -> bool {
        single(headers, CONTENT_LENGTH.as_str())
            .and_then(|value| value.parse::<usize>().ok())
            .is_some_and(|length| length <= self.max_body_bytes)
    }

    /// rmcp's rule: an allowed entry matches the host by name, and by port when it names one.
    fn host_allowed(&self, headers: &HeaderMap) -> bool {
        let Some(host) = single(headers, HOST.as_str()).and_then(|h| h.parse::<Authority>().ok())
        else {
            return false;
        };
        if self.allowed_hosts.is_empty() {
            return true;
        }
        let name = host_name(host.host());
        self.allowed_hosts.iter().any(|allowed| {
            let allowed = allowed.trim();
            match allowed.parse::<Authority>() {
                Ok(entry) => {
                    host_name(entry.host()) == name
                        && entry
                            .port_u16()
                            .is_none_or(|port| host.port_u16() == Some(port))
                }
                Err(_) => !allowed.is_empty() && host_name(allowed) == name,
            }
        })
    }

    /// No protocol header (rmcp assumes 2025-03-26), or one this server supports that predates
    /// 2026-07-28, whose standard headers and result shape rmcp handles.
    fn legacy_protocol(&self, headers: &HeaderMap) -> bool {
        if !headers.contains_key(PROTOCOL_VERSION_HEADER) {
            return true;
        }
        let Some(version) = single(headers, PROTOCOL_VERSION_HEADER) else {
            return false;
        };
        version < ProtocolVersion::STANDARD_HEADERS.as_str()
            && supported_protocols()
                .iter()
                .any(|supported| supported.as_str() == version)
    }
}

/// The value of a header that appears exactly once, as text.
fn single<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    let mut values = headers.get_all(name).iter();
    let value = values.next()?;
    if values.next().is_some() {
        return None;
    }
    value.to_str().ok()
}

fn host_name(host: &str) -> String {
    host.trim_matches(['[', ']']).to_ascii_lowercase()
}

/// Both media types named plainly; weights and parameters are left to rmcp to judge.
fn accepts_json_and_sse(headers: &HeaderMap) -> bool {
    let Some(accept) = single(headers, ACCEPT.as_str()) else {
        return false;
    };
    if accept.contains(';') {
        return false;
    }
    let mut json = false;
    let mut sse = false;
    for media_type in accept.split(',').map(str::trim) {
        json |= media_type.eq_ignore_ascii_case("application/json");
        sse |= media_type.eq_ignore_ascii_case("text/event-stream");
    }
    json && sse
}

fn is_json(headers: &HeaderMap) -> bool {
    single(headers, CONTENT_TYPE.as_str()).is_some_and(|content_type| {
        let essence = content_type.split(';').next().unwrap_or_default();
        essence.trim().eq_ignore_ascii_case("application/json")
    })
}

/// The body as rmcp reads it, when it is one `tools/call` of `query` with nothing rmcp would act
/// on besides calling the handler.
fn query_call(body: &Bytes) -> Option<(RequestId, CallToolRequestParams, RequestMetaObject)> {
    let message = serde_json::from_slice::<ClientJsonRpcMessage>(body).ok()?;
    let ClientJsonRpcMessage::Request(JsonRpcRequest { id, request, .. }) = message else {
        return None;
    };
    // rmcp moves a request's `_meta` out of its params into the request's extensions.
    let meta = request.get_meta().clone();
    let ClientRequest::CallToolRequest(call) = request else {
        return None;
    };
    let params = call.params;
    let plain = params.name == "query"
        && params.input_responses.is_none()
        && params.request_state.is_none()
        && params.meta.is_none()
        && meta
            .0
            .0
            .keys()
            .all(|key| TRACE_META_KEYS.contains(&key.as_str()));
    plain.then_some((id, params, meta))
}

/// One SSE event, framed as rmcp frames it: `data: <json>` and a blank line.
fn sse_event(message: &ServerJsonRpcMessage) -> Bytes {
    let json = serde_json::to_string(message).unwrap_or_else(|err| {
        tracing::error!(%err, "could not serialize a query reply");
        serde_json::json!({
            "jsonrpc": "2.0", "id": null,
            "error": {"code": -32603, "message": format!("could not serialize the reply: {err}")}
        })
        .to_string()
    });
    Bytes::from(format!("data: {json}\n\n"))
}

/// A streamed reply with rmcp's SSE headers.
fn sse_reply(body: Body) -> Response {
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/event-stream"));
    headers.insert(CACHE_CONTROL, HeaderValue::from_static("no-cache"));
    headers.insert("x-accel-buffering", HeaderValue::from_static("no"));
    response
}

#[cfg(test)]
mod tests {
    use super::*;

    fn admission(allowed_hosts: &[&str]) -> Admission {
        Admission {
            allowed_hosts: allowed_hosts.iter().map(|h| h.to_string()).collect(),
            max_body_bytes: 1024,
        }
    }

    /// The headers the tutorial's evaluator (Python `requests`) sends.
    fn tutorial_headers() -> HeaderMap {
        let mut headers = HeaderMap::new();
        headers.insert(HOST, HeaderValue::from_static("127.0.0.1:8080"));
        headers.insert(
            ACCEPT,
            HeaderValue::from_static("application/json, text/event-stream"),
        );
        headers.insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
        headers.insert(CONTENT_LENGTH, HeaderValue::from_static("120"));
        headers
    }

    fn with(mut headers: HeaderMap, name: &'static str, value: &'static str) -> HeaderMap {
        headers.insert(name, HeaderValue::from_static(value));
        headers
    }

    #[test]
    fn takes_the_tutorials_request() {
        let local = admission(&["localhost", "127.0.0.1", "::1"]);
        assert!(local.takes(&Method::POST, &tutorial_headers()));
        let any_host = admission(&[]);
        assert!(any_host.takes(&Method::POST, &tutorial_headers()));
        let supported = with(tutorial_headers(), PROTOCOL_VERSION_HEADER, "2025-06-18");
        assert!(local.takes(&Method::POST, &supported));
    }

    #[test]
    fn leaves_anything_rmcp_might_treat_differently_to_rmcp() {
        let local = admission(&["localhost", "127.0.0.1:9999"]);
        let plain = admission(&["localhost", "127.0.0.1"]);
        let cases = [
            (
                "a disallowed host",
                with(tutorial_headers(), "host", "evil.example"),
            ),
            (
                "an origin",
                with(tutorial_headers(), "origin", "http://localhost:3000"),
            ),
            (
                "accept weights",
                with(
                    tutorial_headers(),
                    "accept",
                    "application/json, text/event-stream;q=1",
                ),
            ),
            (
                "accept without SSE",
                with(tutorial_headers(), "accept", "application/json"),
            ),
            (
                "a form body",
                with(tutorial_headers(), "content-type", "text/plain"),
            ),
            (
                "a body over the limit",
                with(tutorial_headers(), "content-length", "1025"),
            ),
            (
                "protocol 2026-07-28",
                with(tutorial_headers(), PROTOCOL_VERSION_HEADER, "2026-07-28"),
            ),
            (
                "an unsupported protocol",
                with(tutorial_headers(), PROTOCOL_VERSION_HEADER, "2024-11-05"),
            ),
            (
                "an unknown protocol",
                with(tutorial_headers(), PROTOCOL_VERSION_HEADER, "1999-01-01"),
            ),
        ];
        for (what, headers) in cases {
            assert!(!plain.takes(&Method::POST, &headers), "took {what}");
        }
        let mut no_length = tutorial_headers();
        no_length.remove(CONTENT_LENGTH);
        assert!(
            !plain.takes(&Method::POST, &no_length),
            "took a chunked body"
        );
        assert!(
            !plain.takes(&Method::GET, &tutorial_headers()),
            "took a GET"
        );
        // An allowed entry with a port matches only that port.
        assert!(!local.takes(&Method::POST, &tutorial_headers()));
        let right_port = with(tutorial_headers(), "host", "127.0.0.1:9999");
        assert!(local.takes(&Method::POST, &right_port));
    }

    fn body(value: serde_json::Value) -> Bytes {
        Bytes::from(value.to_string())
    }

    #[test]
    fn reads_the_tutorials_query_call() {
        let tutorial = body(serde_json::json!({
            "id": "eval-query-1", "jsonrpc": "2.0", "method": "tools/call",
            "params": {"session": {"id": "stateless-eval-session"}, "name": "query",
                       "arguments": {"query": "SELECT 1"}}
        }));
        let (id, params, _) = query_call(&tutorial).expect("the tutorial's call is taken");
        assert_eq!(id, RequestId::String("eval-query-1".into()));
        assert_eq!(params.arguments.unwrap()["query"], "SELECT 1");
        let traced = body(serde_json::json!({
            "id": 7, "jsonrpc": "2.0", "method": "tools/call",
            "params": {"name": "query", "arguments": {"query": "SELECT 1"},
                       "_meta": {"traceparent": "00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01"}}
        }));
        let (_, _, meta) = query_call(&traced).expect("a call with trace context is taken");
        assert_eq!(
            meta.get_traceparent(),
            Some("00-0af7651916cd43dd8448eb211c80319c-00f067aa0ba902b7-01")
        );
    }

    #[test]
    fn leaves_other_calls_to_rmcp() {
        let calls = [
            serde_json::json!({"id": 1, "jsonrpc": "2.0", "method": "tools/list"}),
            serde_json::json!({"id": 1, "jsonrpc": "2.0", "method": "tools/call",
                               "params": {"name": "list_tables"}}),
            serde_json::json!({"id": 1, "jsonrpc": "2.0", "method": "tools/call",
                               "params": {"name": "query", "arguments": {"query": "SELECT 1"},
                                          "_meta": {"progressToken": 3}}}),
            serde_json::json!({"jsonrpc": "2.0", "method": "notifications/initialized"}),
            serde_json::json!([{"id": 1, "jsonrpc": "2.0", "method": "tools/call",
                                "params": {"name": "query", "arguments": {"query": "SELECT 1"}}}]),
        ];
        for call in calls {
            assert!(query_call(&body(call.clone())).is_none(), "took {call}");
        }
        assert!(query_call(&Bytes::from_static(b"{not json")).is_none());
    }
}
