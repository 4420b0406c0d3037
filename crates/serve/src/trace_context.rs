//! W3C trace context across services, so one evaluation is one trace: a `traceparent` that
//! arrives (HTTP header, or an MCP request's `_meta` per SEP-414) becomes the parent of the
//! span that handles it, and a call to another service carries the current span's. Without an
//! OpenTelemetry layer installed (no `OTEL_EXPORTER_OTLP_ENDPOINT`) all of this does nothing.

use std::collections::HashMap;

use axum::http::{HeaderMap, Request};
use opentelemetry::propagation::TextMapPropagator;
use opentelemetry::trace::TraceContextExt;
use opentelemetry_sdk::propagation::TraceContextPropagator;
use tower_http::classify::{ServerErrorsAsFailures, SharedClassifier};
use tower_http::trace::TraceLayer;
use tracing::Span;
use tracing_opentelemetry::OpenTelemetrySpanExt;

/// The W3C header and `_meta` key names.
const TRACEPARENT: &str = "traceparent";
const TRACESTATE: &str = "tracestate";

/// The current span's context as W3C values `(traceparent, tracestate)`, to send on a call to
/// another service; `None` when there is no sampled, exported span to continue.
pub fn current() -> Option<(String, Option<String>)> {
    let context = Span::current().context();
    if !context.span().span_context().is_valid() {
        return None;
    }
    let mut carrier = HashMap::new();
    TraceContextPropagator::new().inject_context(&context, &mut carrier);
    let traceparent = carrier.remove(TRACEPARENT)?;
    Some((
        traceparent,
        carrier.remove(TRACESTATE).filter(|s| !s.is_empty()),
    ))
}

/// Makes the remote span named by `traceparent` (and `tracestate`) the parent of `span`.
/// A missing or malformed value leaves `span` as it is.
pub fn adopt_parent(span: &Span, traceparent: Option<&str>, tracestate: Option<&str>) {
    let Some(traceparent) = traceparent else {
        return;
    };
    let mut carrier = HashMap::from([(TRACEPARENT.to_string(), traceparent.to_string())]);
    if let Some(tracestate) = tracestate {
        carrier.insert(TRACESTATE.to_string(), tracestate.to_string());
    }
    let context = TraceContextPropagator::new().extract(&carrier);
    if context.span().span_context().is_valid() {
        // Fails only when no OpenTelemetry layer is installed: then there is nothing to link.
        let _ = span.set_parent(context);
    }
}

/// [`adopt_parent`] from the `traceparent` / `tracestate` headers of a request.
pub fn adopt_parent_from_headers(span: &Span, headers: &HeaderMap) {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    adopt_parent(span, header(TRACEPARENT), header(TRACESTATE));
}

/// Makes the span of one HTTP request.
pub type MakeRequestSpan = fn(&Request<axum::body::Body>) -> Span;

/// The span every HTTP request runs in (info level, so it is exported), continuing the caller's
/// trace when the request carries a `traceparent` header.
pub fn http_trace_layer() -> TraceLayer<SharedClassifier<ServerErrorsAsFailures>, MakeRequestSpan> {
    TraceLayer::new_for_http().make_span_with(request_span as MakeRequestSpan)
}

fn request_span(request: &Request<axum::body::Body>) -> Span {
    let span = tracing::info_span!(
        "http request",
        method = %request.method(),
        path = %request.uri().path(),
    );
    adopt_parent_from_headers(&span, request.headers());
    span
}

#[cfg(test)]
mod tests {
    use std::sync::{Arc, Mutex};

    use axum::Router;
    use axum::routing::get;
    use opentelemetry::trace::{SpanId, TraceId, TracerProvider as _};
    use opentelemetry_sdk::error::OTelSdkResult;
    use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData, SpanExporter};
    use tokio_util::sync::CancellationToken;
    use tracing_subscriber::layer::SubscriberExt;

    use super::*;
    use crate::{Server, bind};

    /// An in-process span exporter: what an OTLP receiver would have been sent.
    #[derive(Debug, Clone, Default)]
    struct Collected(Arc<Mutex<Vec<SpanData>>>);

    impl SpanExporter for Collected {
        async fn export(&self, batch: Vec<SpanData>) -> OTelSdkResult {
            self.0.lock().unwrap().extend(batch);
            Ok(())
        }
    }

    fn path_of(span: &SpanData) -> Option<String> {
        span.attributes
            .iter()
            .find(|kv| kv.key.as_str() == "path")
            .map(|kv| kv.value.to_string())
    }

    // One thread: the servers' tasks see the subscriber that `set_default` installs here.
    #[tokio::test(flavor = "current_thread")]
    async fn a_call_between_two_services_is_one_trace() {
        let collected = Collected::default();
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(collected.clone())
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        let _default = tracing::subscriber::set_default(subscriber);

        let serve = |app: Router| async move {
            let app = app.layer(http_trace_layer());
            Server::spawn(
                bind("127.0.0.1", 0).await.unwrap(),
                app,
                CancellationToken::new(),
                (),
            )
        };
        let downstream = serve(Router::new().route("/leaf", get(|| async { "leaf" }))).await;
        let leaf = format!("{}/leaf", downstream.base_url());
        // The upstream handler calls downstream the way the services call each other.
        let upstream = serve(Router::new().route(
            "/root",
            get(move || async move {
                let (traceparent, _) = current().expect("a handler runs in an exported span");
                let reply = reqwest::Client::new()
                    .get(leaf)
                    .header("traceparent", traceparent)
                    .send()
                    .await
                    .unwrap();
                reply.text().await.unwrap()
            }),
        ))
        .await;
        let body = reqwest::get(format!("{}/root", upstream.base_url()))
            .await
            .unwrap()
            .text()
            .await
            .unwrap();
        assert_eq!(body, "leaf");
        upstream.shutdown().await.unwrap();
        downstream.shutdown().await.unwrap();
        provider.force_flush().unwrap();

        let spans = collected.0.lock().unwrap().clone();
        let find = |path: &str| {
            spans
                .iter()
                .find(|s| path_of(s).as_deref() == Some(path))
                .unwrap_or_else(|| panic!("no span for {path} among {spans:?}"))
        };
        let (root, leaf) = (find("/root"), find("/leaf"));
        assert_eq!(leaf.span_context.trace_id(), root.span_context.trace_id());
        assert_eq!(leaf.parent_span_id, root.span_context.span_id());
        assert_eq!(
            root.parent_span_id,
            SpanId::INVALID,
            "the root call had no caller"
        );
    }

    #[test]
    fn a_traceparent_in_meta_becomes_the_parent_and_garbage_is_ignored() {
        let provider = SdkTracerProvider::builder().build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        tracing::subscriber::with_default(subscriber, || {
            let trace = TraceId::from_hex("4bf92f3577b34da6a3ce929d0e0e4736").unwrap();
            let adopted = tracing::info_span!("tool_call");
            adopt_parent(
                &adopted,
                Some(&format!("00-{trace}-00f067aa0ba902b7-01")),
                Some("vendor=x"),
            );
            let ignored = tracing::info_span!("tool_call");
            adopt_parent(&ignored, Some("not-a-traceparent"), None);
            let trace_of = |span: &Span| span.context().span().span_context().trace_id();
            assert_eq!(trace_of(&adopted), trace);
            assert_ne!(trace_of(&ignored), trace);
            assert!(
                adopted
                    .in_scope(current)
                    .is_some_and(|(tp, ts)| tp.contains(&trace.to_string())
                        && ts.as_deref() == Some("vendor=x")),
                "the adopted trace and its tracestate travel on"
            );
        });
    }
}
