//! The MCP tools: `query` (wire-compatible with mcp-server-motherduck 0.8.1, plus typed
//! results), `list_tables` and `describe_table`.

use std::borrow::Cow;
use std::sync::Arc;
use std::time::Instant;

use axum::http::HeaderMap;
use rmcp::model::{
    CallToolRequestParams, CallToolResponse, CallToolResult, ContentBlock, Implementation,
    InitializeResult, JsonObject, ListToolsResult, MetaObject, PaginatedRequestParams,
    ProtocolVersion, ServerCapabilities, Tool, ToolAnnotations,
};
use rmcp::service::RequestContext;
use rmcp::{ErrorData as McpError, RoleServer, ServerHandler};
use serde_json::{Value as Json, json};
use sqlrft_core::ResultSet;
use sqlrft_duck::{QueryErrorKind, ReadOnlyPool};
use sqlrft_serve::ClientGone;
use tracing::Instrument;

use crate::table;

/// motherduck's exact tool description and argument description: clients key off them.
const QUERY_DESCRIPTION: &str = "Use this to execute a query on the MotherDuck or DuckDB database";
const QUERY_ARGUMENT: &str = "SQL query to execute that is a dialect of DuckDB SQL";
/// motherduck's error prefix; the tutorial's evaluator prints it in its reasons.
const QUERY_ERROR_PREFIX: &str = "Error executing tool query: ❌ Error executing query: ";

/// The oldest protocol version we accept; older clients are not supported by rmcp's transport.
const OLDEST_PROTOCOL: ProtocolVersion = ProtocolVersion::V_2025_03_26;

/// One MCP server instance over a shared connection pool (cheap to clone per request).
#[derive(Clone)]
pub struct DuckTools {
    pool: ReadOnlyPool,
    tools: Arc<Vec<Tool>>,
    max_chars: usize,
}

impl DuckTools {
    /// Tools that answer from `pool`.
    pub fn new(pool: ReadOnlyPool) -> Self {
        DuckTools {
            pool,
            tools: Arc::new(tool_list()),
            max_chars: table::MAX_CHARS,
        }
    }

    /// Cuts a query's text table after `max_chars` characters (motherduck's `--max-chars`).
    pub fn with_max_chars(mut self, max_chars: usize) -> Self {
        self.max_chars = max_chars;
        self
    }

    async fn query(&self, arguments: &JsonObject) -> CallToolResult {
        let sql = match arguments.get("query") {
            Some(Json::String(sql)) => sql,
            Some(other) => {
                return input_error(&format!("{other} is not of type 'string'"));
            }
            None => return input_error("'query' is a required property"),
        };
        match self.pool.query(sql).await {
            Ok(result) => {
                tracing::Span::current().record("rows", result.row_count);
                let mut reply = CallToolResult::success(vec![ContentBlock::text(
                    table::render_capped(&result, self.max_chars),
                )]);
                reply.structured_content = Some(structured(&result));
                reply
            }
            Err(err) => {
                let kind = err.kind().name();
                tracing::Span::current().record("outcome", kind);
                let mut reply = CallToolResult::error(vec![ContentBlock::text(format!(
                    "{QUERY_ERROR_PREFIX}{err}"
                ))]);
                let mut meta = JsonObject::new();
                meta.insert(QueryErrorKind::MCP_META_KEY.into(), kind.into());
                reply.meta = Some(MetaObject(meta));
                reply
            }
        }
    }

    async fn list_tables(&self) -> CallToolResult {
        match self.pool.list_tables().await {
            Ok(tables) => {
                let headers = [
                    "schema\nVARCHAR",
                    "name\nVARCHAR",
                    "columns\nBIGINT",
                    "estimated_rows\nBIGINT",
                ]
                .map(String::from);
                let rows: Vec<Vec<String>> = tables
                    .iter()
                    .map(|t| {
                        vec![
                            t.schema.clone(),
                            t.name.clone(),
                            t.column_count.to_string(),
                            t.estimated_rows.to_string(),
                        ]
                    })
                    .collect();
                let mut reply = CallToolResult::success(vec![ContentBlock::text(
                    table::pretty_table(&headers, &rows),
                )]);
                reply.structured_content = Some(json!({ "tables": tables }));
                reply
            }
            Err(err) => CallToolResult::error(vec![ContentBlock::text(format!(
                "Error listing tables: {err}"
            ))]),
        }
    }

    async fn describe_table(&self, arguments: &JsonObject) -> CallToolResult {
        let Some(Json::String(name)) = arguments.get("table") else {
            return CallToolResult::error(vec![ContentBlock::text(
                "Input validation error: 'table' is a required property (a table name from list_tables)",
            )]);
        };
        match self.pool.describe_table(name).await {
            Ok(description) => {
                let headers =
                    ["column\nVARCHAR", "type\nVARCHAR", "nullable\nBOOLEAN"].map(String::from);
                let rows: Vec<Vec<String>> = description
                    .columns
                    .iter()
                    .map(|c| {
                        vec![
                            c.name.clone(),
                            c.type_name.clone(),
                            if c.nullable { "True" } else { "False" }.into(),
                        ]
                    })
                    .collect();
                let text = format!(
                    "{}.{}: {} rows\n{}",
                    description.schema,
                    description.name,
                    description.row_count,
                    table::pretty_table(&headers, &rows)
                );
                let mut reply = CallToolResult::success(vec![ContentBlock::text(text)]);
                reply.structured_content = serde_json::to_value(&description).ok();
                reply
            }
            Err(err) => CallToolResult::error(vec![ContentBlock::text(format!(
                "Error describing table: {err}"
            ))]),
        }
    }

    /// Runs one tool call in its own `tool_call` span, under the caller's trace; stops the
    /// query when the client hangs up. rmcp's handler and the inline `query` path both call it.
    pub(crate) async fn call(
        &self,
        name: &str,
        arguments: &JsonObject,
        caller: Caller<'_>,
    ) -> Result<CallToolResult, McpError> {
        let span = tracing::info_span!(
            "tool_call",
            tool = %name,
            rows = tracing::field::Empty,
            outcome = tracing::field::Empty,
            duration_ms = tracing::field::Empty,
        );
        // The caller's trace: `_meta.traceparent` (SEP-414, what sqlrft's reward service sends),
        // else the HTTP `traceparent` header. rmcp runs tools outside the HTTP request's span.
        match caller.meta.get_traceparent() {
            Some(traceparent) => sqlrft_serve::trace_context::adopt_parent(
                &span,
                Some(traceparent),
                caller.meta.get_tracestate(),
            ),
            None => {
                if let Some(headers) = caller.headers {
                    sqlrft_serve::trace_context::adopt_parent_from_headers(&span, headers);
                }
            }
        }
        let started = Instant::now();
        async {
            let work = async {
                match name {
                    "query" => Ok(self.query(arguments).await),
                    "list_tables" => Ok(self.list_tables().await),
                    "describe_table" => Ok(self.describe_table(arguments).await),
                    other => Err(McpError::invalid_params(
                        format!(
                            "unknown tool `{other}`; this server has: query, list_tables, describe_table"
                        ),
                        None,
                    )),
                }
            };
            // Dropping the query future interrupts DuckDB and returns the connection to the pool.
            let result = tokio::select! {
                result = work => result?,
                () = caller.gone.cancelled() => {
                    tracing::Span::current().record("outcome", "client gone");
                    return Err(McpError::internal_error("the client hung up before the reply", None));
                }
            };
            let span = tracing::Span::current();
            span.record("duration_ms", started.elapsed().as_secs_f64() * 1e3);
            if result.is_error != Some(true) {
                span.record("outcome", "ok");
            }
            tracing::info!("tool call finished");
            Ok(result)
        }
        .instrument(span)
        .await
    }
}

/// Where a tool call came from: its trace context and the signal that its client hung up.
pub(crate) struct Caller<'a> {
    /// The request's `_meta` (SEP-414 `traceparent`/`tracestate`).
    pub meta: &'a MetaObject,
    /// The HTTP request's headers (a `traceparent` header), absent over stdio.
    pub headers: Option<&'a HeaderMap>,
    pub gone: ClientGone,
}

/// The protocol versions this server speaks: rmcp's known ones from [`OLDEST_PROTOCOL`] on.
pub(crate) fn supported_protocols() -> &'static [ProtocolVersion] {
    let known = ProtocolVersion::KNOWN_VERSIONS;
    let oldest = known
        .iter()
        .position(|v| *v == OLDEST_PROTOCOL)
        .unwrap_or(0);
    &known[oldest..]
}

fn input_error(message: &str) -> CallToolResult {
    CallToolResult::error(vec![ContentBlock::text(format!(
        "Input validation error: {message}"
    ))])
}

/// The typed result as `structuredContent` (the schema in [`result_schema`]).
pub fn structured(result: &ResultSet) -> Json {
    json!({
        "columns": result.columns,
        "types": result.types,
        "rows": result.rows,
        "row_count": result.row_count,
        "truncated": result.truncated,
    })
}

fn object(value: Json) -> Arc<JsonObject> {
    match value {
        Json::Object(map) => Arc::new(map),
        _ => unreachable!("schemas are JSON objects"),
    }
}

/// JSON Schema of `structuredContent` for `query`.
fn result_schema() -> Json {
    json!({
        "type": "object",
        "properties": {
            "columns": {"type": "array", "items": {"type": "string"}, "description": "Column names, in query order"},
            "types": {"type": "array", "items": {"type": "string"}, "description": "DuckDB type name of each column"},
            "rows": {"type": "array", "items": {"type": "array"}, "description": "Typed cells: numbers, strings, booleans, null, arrays, objects"},
            "row_count": {"type": "integer", "description": "Rows the query produced"},
            "truncated": {"type": "boolean", "description": "True when the row cap cut the result"}
        },
        "required": ["columns", "types", "rows", "row_count", "truncated"]
    })
}

fn read_only() -> ToolAnnotations {
    ToolAnnotations::from_raw(None, Some(true), Some(false), Some(true), Some(false))
}

fn tool_list() -> Vec<Tool> {
    let mut query = Tool::new(
        "query",
        QUERY_DESCRIPTION,
        object(json!({
            "type": "object",
            "properties": {"query": {"type": "string", "description": QUERY_ARGUMENT}},
            "required": ["query"]
        })),
    );
    query.output_schema = Some(object(result_schema()));
    query.annotations = Some(read_only());

    let mut list_tables = Tool::new(
        "list_tables",
        "List the tables of the database with their column counts and estimated row counts",
        object(json!({"type": "object", "properties": {}})),
    );
    list_tables.output_schema = Some(object(json!({
        "type": "object",
        "properties": {"tables": {"type": "array", "items": {"type": "object"}}},
        "required": ["tables"]
    })));
    list_tables.annotations = Some(read_only());

    let mut describe_table = Tool::new(
        "describe_table",
        "Describe one table: its columns, DuckDB types, nullability and exact row count",
        object(json!({
            "type": "object",
            "properties": {"table": {"type": "string", "description": "Table name, optionally schema-qualified"}},
            "required": ["table"]
        })),
    );
    describe_table.output_schema = Some(object(json!({
        "type": "object",
        "properties": {
            "schema": {"type": "string"},
            "name": {"type": "string"},
            "columns": {"type": "array", "items": {"type": "object"}},
            "row_count": {"type": "integer"}
        },
        "required": ["schema", "name", "columns", "row_count"]
    })));
    describe_table.annotations = Some(read_only());

    vec![query, list_tables, describe_table]
}

impl ServerHandler for DuckTools {
    fn get_info(&self) -> InitializeResult {
        InitializeResult::new(ServerCapabilities::builder().enable_tools().build())
            .with_server_info(Implementation::new("sqlrft", env!("CARGO_PKG_VERSION")))
            .with_instructions(
                "Read-only DuckDB database. Call `list_tables` and `describe_table` to learn the \
                 schema, then `query` with one DuckDB SELECT statement.",
            )
    }

    fn supported_protocol_versions(&self) -> Cow<'static, [ProtocolVersion]> {
        Cow::Borrowed(supported_protocols())
    }

    async fn list_tools(
        &self,
        _request: Option<PaginatedRequestParams>,
        _context: RequestContext<RoleServer>,
    ) -> Result<ListToolsResult, McpError> {
        Ok(ListToolsResult::with_all_items(self.tools.as_ref().clone()))
    }

    async fn call_tool(
        &self,
        request: CallToolRequestParams,
        context: RequestContext<RoleServer>,
    ) -> Result<CallToolResponse, McpError> {
        let parts = context.extensions.get::<axum::http::request::Parts>();
        let caller = Caller {
            meta: &context.meta,
            headers: parts.map(|parts| &parts.headers),
            // rmcp keeps running a handler whose client is gone; this stops the query instead.
            gone: parts
                .map(|parts| ClientGone::of(&parts.extensions))
                .unwrap_or_default(),
        };
        let arguments = request.arguments.unwrap_or_default();
        Ok(self.call(&request.name, &arguments, caller).await?.into())
    }
}
