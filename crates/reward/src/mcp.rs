//! Executing SQL through an MCP server's `query` tool, reading the typed `structuredContent`.
//!
//! sqlrft's MCP server names a failed query's kind in the reply's `_meta`; other servers
//! (mcp-server-motherduck) only write text, which is then sorted by its wording.

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use rmcp::RoleClient;
use rmcp::ServiceExt;
use rmcp::model::{CallToolRequestParams, CallToolResult, ClientConfig, RequestParamsMeta};
use rmcp::service::{RunningService, ServiceError};
use rmcp::transport::StreamableHttpClientTransport;
use rmcp::transport::streamable_http_client::StreamableHttpClientTransportConfig;
use sqlrft_core::ResultSet;
use sqlrft_duck::QueryErrorKind;

use crate::executor::{ExecError, SqlExecutor};

type McpClient = RunningService<RoleClient, ClientConfig>;

/// Runs SQL through an MCP server's `query` tool, reading the typed `structuredContent`.
pub struct McpExecutor {
    url: String,
    token: Option<String>,
    timeout: Duration,
    identity: String,
    /// One initialised client shared by all requests; replaced when its transport dies.
    client: tokio::sync::Mutex<Option<Arc<McpClient>>>,
}

/// The MCP server's prefix on query errors (motherduck's wording).
const MCP_ERROR_PREFIX: &str = "Error executing tool query: ❌ Error executing query: ";

impl McpExecutor {
    /// A client for the MCP endpoint `url` (e.g. `http://127.0.0.1:8080/mcp`). It connects on
    /// first use and reconnects after the server goes away.
    pub fn new(url: &str, token: Option<String>, timeout: Duration) -> Self {
        let url = mcp_endpoint(url);
        McpExecutor {
            identity: format!("mcp:{url}"),
            url,
            token,
            timeout,
            client: tokio::sync::Mutex::new(None),
        }
    }

    async fn client(&self) -> Result<Arc<McpClient>, ExecError> {
        let mut slot = self.client.lock().await;
        if let Some(client) = slot.as_ref().filter(|c| !c.is_transport_closed()) {
            return Ok(client.clone());
        }
        let http = reqwest::Client::builder()
            .tcp_nodelay(true)
            .build()
            .map_err(|e| {
                ExecError::Infrastructure(format!("could not build an HTTP client: {e}"))
            })?;
        let mut config = StreamableHttpClientTransportConfig::with_uri(self.url.as_str())
            .max_concurrent_requests(256);
        if let Some(token) = &self.token {
            config = config.auth_header(token.clone());
        }
        let transport = StreamableHttpClientTransport::with_client(http, config);
        let connect = ClientConfig::default().serve(transport);
        let client = match tokio::time::timeout(self.timeout, connect).await {
            Ok(Ok(client)) => Arc::new(client),
            Ok(Err(err)) => {
                return Err(ExecError::Infrastructure(format!(
                    "could not connect to the MCP server at {}: {err}",
                    self.url
                )));
            }
            Err(_) => {
                return Err(ExecError::Infrastructure(format!(
                    "the MCP server at {} did not answer initialize within {:.1} s",
                    self.url,
                    self.timeout.as_secs_f64()
                )));
            }
        };
        *slot = Some(client.clone());
        Ok(client)
    }

    async fn call(&self, sql: &str) -> Result<CallToolResult, ExecError> {
        let mut arguments = serde_json::Map::new();
        arguments.insert("query".into(), serde_json::Value::String(sql.to_string()));
        // One retry on a fresh connection: the server may have restarted since the last call.
        for attempt in 0..2 {
            let client = self.client().await?;
            let params = with_trace_context(
                CallToolRequestParams::new("query").with_arguments(arguments.clone()),
            );
            match tokio::time::timeout(self.timeout, client.call_tool(params)).await {
                Ok(Ok(result)) => return Ok(result),
                Ok(Err(err)) if attempt == 0 && is_connection_error(&err) => {
                    self.client.lock().await.take();
                }
                Ok(Err(err)) => {
                    return Err(ExecError::Infrastructure(format!(
                        "the MCP server at {} failed: {err}",
                        self.url
                    )));
                }
                Err(_) => {
                    return Err(ExecError::Infrastructure(format!(
                        "no answer from the MCP server at {} within {:.1} s",
                        self.url,
                        self.timeout.as_secs_f64()
                    )));
                }
            }
        }
        unreachable!("the loop returns on its second attempt")
    }
}

/// Carries the current span's W3C trace context in the call's `_meta` (SEP-414): the MCP client
/// is shared, so a per-call HTTP header is not an option; the MCP server reads either.
fn with_trace_context(mut params: CallToolRequestParams) -> CallToolRequestParams {
    if let Some((traceparent, tracestate)) = sqlrft_serve::trace_context::current() {
        params.set_traceparent(&traceparent);
        if let Some(tracestate) = tracestate {
            params.set_tracestate(&tracestate);
        }
    }
    params
}

fn is_connection_error(err: &ServiceError) -> bool {
    matches!(
        err,
        ServiceError::TransportClosed | ServiceError::TransportSend(_)
    )
}

/// `http://host:port` and `http://host:port/mcp/` both mean the `/mcp` endpoint.
pub fn mcp_endpoint(url: &str) -> String {
    let trimmed = url.trim().trim_end_matches('/');
    if trimmed.ends_with("/mcp") {
        trimmed.to_string()
    } else {
        format!("{trimmed}/mcp")
    }
}

/// Reads the `query` tool's reply: typed rows, or the query's error sorted by its kind.
fn read_reply(reply: CallToolResult) -> Result<ResultSet, ExecError> {
    let text: String = reply
        .content
        .iter()
        .filter_map(|block| block.as_text().map(|t| t.text.as_str()))
        .collect::<Vec<_>>()
        .join("\n");
    if reply.is_error == Some(true) {
        // sqlrft's server names the kind; other servers (mcp-server-motherduck) only write text.
        let named = reply
            .meta
            .as_ref()
            .and_then(|meta| meta.0.get(QueryErrorKind::MCP_META_KEY))
            .and_then(|kind| kind.as_str())
            .and_then(QueryErrorKind::from_name);
        return Err(match named {
            Some(kind) => {
                ExecError::from_kind(kind, strip_wrapper(&text).to_string(), "the MCP server")
            }
            None => classify_tool_error(&text),
        });
    }
    let Some(structured) = reply.structured_content else {
        return Err(ExecError::Infrastructure(
            "the MCP server's `query` reply has no structuredContent (typed rows); \
             use sqlrft's MCP server or run the reward service embedded with --db"
                .into(),
        ));
    };
    serde_json::from_value(structured).map_err(|e| {
        ExecError::Infrastructure(format!(
            "the MCP server's structuredContent is not a typed result set: {e}"
        ))
    })
}

/// The query's own message, without the tool's "Error executing …" wrapper.
fn strip_wrapper(text: &str) -> &str {
    text.strip_prefix(MCP_ERROR_PREFIX).unwrap_or(text).trim()
}

/// Sorts a tool error that names no kind by its text (the messages the duck crate writes).
fn classify_tool_error(text: &str) -> ExecError {
    let message = strip_wrapper(text);
    if text.starts_with("Input validation error") {
        return ExecError::Infrastructure(format!(
            "the MCP server rejected the tool call: {message}"
        ));
    }
    let kind = if message.starts_with("Refused") {
        QueryErrorKind::Refused
    } else if message.starts_with("Interrupted") {
        QueryErrorKind::Timeout
    } else if message.starts_with("result exceeded") {
        QueryErrorKind::TooLarge
    } else if message.starts_with("server busy") {
        QueryErrorKind::Busy
    } else if message.starts_with("internal error") {
        QueryErrorKind::Internal
    } else {
        QueryErrorKind::Sql
    };
    ExecError::from_kind(kind, message.to_string(), "the MCP server")
}

impl SqlExecutor for McpExecutor {
    fn query<'a>(&'a self, sql: &'a str) -> BoxFuture<'a, Result<ResultSet, ExecError>> {
        Box::pin(async move { read_reply(self.call(sql).await?) })
    }

    fn identity(&self) -> &str {
        &self.identity
    }

    fn describe(&self) -> String {
        format!("MCP server {}", self.url)
    }
}

#[cfg(test)]
mod tests {
    use sqlrft_core::score::FailureKind;

    use super::*;

    #[test]
    fn mcp_urls_end_in_one_mcp_segment() {
        assert_eq!(mcp_endpoint("http://h:1"), "http://h:1/mcp");
        assert_eq!(mcp_endpoint("http://h:1/"), "http://h:1/mcp");
        assert_eq!(mcp_endpoint("http://h:1/mcp/"), "http://h:1/mcp");
        assert_eq!(mcp_endpoint("http://h:1/mcp"), "http://h:1/mcp");
    }

    #[test]
    fn a_named_kind_wins_over_the_text() {
        let reply = |kind: &str| {
            let mut reply = CallToolResult::error(vec![rmcp::model::ContentBlock::text(format!(
                "{MCP_ERROR_PREFIX}the query was cancelled"
            ))]);
            let mut meta = rmcp::model::JsonObject::new();
            meta.insert(QueryErrorKind::MCP_META_KEY.into(), kind.into());
            reply.meta = Some(rmcp::model::MetaObject(meta));
            reply
        };
        let Err(ExecError::Query(failure)) = read_reply(reply("timeout")) else {
            panic!("a query failure")
        };
        assert_eq!(failure.kind, FailureKind::Timeout);
        assert_eq!(failure.message, "the query was cancelled");
        assert!(matches!(
            read_reply(reply("busy")),
            Err(ExecError::Infrastructure(_))
        ));
        // A kind this client does not know: the text decides (a DuckDB error here).
        let Err(ExecError::Query(failure)) = read_reply(reply("from_the_future")) else {
            panic!("a query failure")
        };
        assert_eq!(failure.kind, FailureKind::Sql);
    }

    #[test]
    fn tool_errors_sort_into_query_failures_and_infrastructure() {
        let kind = |text: &str| match classify_tool_error(text) {
            ExecError::Query(f) => Some(f.kind),
            ExecError::Infrastructure(_) => None,
        };
        assert_eq!(
            kind(&format!(
                "{MCP_ERROR_PREFIX}Parser Error: syntax error at or near \"SELEC\""
            )),
            Some(FailureKind::Sql)
        );
        assert_eq!(
            kind(&format!(
                "{MCP_ERROR_PREFIX}Refused: this database is read-only"
            )),
            Some(FailureKind::Refused)
        );
        assert_eq!(
            kind(&format!(
                "{MCP_ERROR_PREFIX}Interrupted: query exceeded the 10 s time limit"
            )),
            Some(FailureKind::Timeout)
        );
        assert_eq!(
            kind(&format!(
                "{MCP_ERROR_PREFIX}result exceeded the 5-byte limit"
            )),
            Some(FailureKind::TooLarge)
        );
        assert_eq!(kind(&format!("{MCP_ERROR_PREFIX}server busy: all 8")), None);
        assert_eq!(
            kind("Input validation error: 'query' is a required property"),
            None
        );
        // The message kept for the reason is DuckDB's own, without the wrapper.
        let ExecError::Query(failure) =
            classify_tool_error(&format!("{MCP_ERROR_PREFIX}Binder Error: x"))
        else {
            panic!("a query failure")
        };
        assert_eq!(failure.message, "Binder Error: x");
    }
}
