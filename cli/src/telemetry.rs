//! Logging and tracing for every subcommand: logs on stderr (`RUST_LOG`), human-readable or, with
//! `SQLRFT_LOG_FORMAT=json`, one JSON object per line in the shape Cloud Logging reads (severity,
//! message, trace and span ids); and OpenTelemetry OTLP export of the same spans when
//! `OTEL_EXPORTER_OTLP_ENDPOINT` is set, over gRPC or HTTP/protobuf as
//! `OTEL_EXPORTER_OTLP_PROTOCOL` says (`grpc`, the default, or `http/protobuf`).

use opentelemetry::trace::{TraceContextExt, TracerProvider as _};
use opentelemetry_sdk::trace::SdkTracerProvider;
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::{EnvFilter, Layer, Registry};

/// Flushes exported spans when dropped (at the end of `main`).
pub struct Telemetry {
    provider: Option<SdkTracerProvider>,
}

impl Drop for Telemetry {
    fn drop(&mut self) {
        if let Some(provider) = self.provider.take() {
            let _ = provider.shutdown();
        }
    }
}

/// Reads a variable, treating empty as unset (compose and Cloud Run pass `KEY=` for "unset").
fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

/// What is logged when `RUST_LOG` is unset: sqlrft's own progress and every warning.
pub const DEFAULT_LOGS: &str = "warn,sqlrft=info";
/// For commands whose output is a report on stdout (benchmarks): warnings only, so per-request
/// lines from the servers they start do not bury it.
pub const QUIET_LOGS: &str = "warn";

/// Installs the global subscriber, logging what `RUST_LOG` says or else `default_logs`.
/// Export failures are reported, never fatal.
pub fn init(default_logs: &str) -> Telemetry {
    let json = match env("SQLRFT_LOG_FORMAT").as_deref() {
        None | Some("text") => false,
        Some("json") => true,
        Some(other) => {
            eprintln!("warning: SQLRFT_LOG_FORMAT={other:?} is not `text` or `json`; using text");
            false
        }
    };
    let provider = match env("OTEL_EXPORTER_OTLP_ENDPOINT") {
        Some(endpoint) => match otlp_provider() {
            Ok(provider) => Some(provider),
            Err(err) => {
                eprintln!("warning: the OTLP exporter to {endpoint} failed to start: {err}");
                None
            }
        },
        // JSON logs carry trace ids even without export: spans get ids, nothing is sent.
        None if json => Some(SdkTracerProvider::builder().build()),
        None => None,
    };
    let (layer, provider) = layers(json, provider, default_logs, std::io::stderr);
    let _ = tracing_subscriber::registry().with(layer).try_init();
    Telemetry { provider }
}

type BoxedLayer = Box<dyn Layer<Registry> + Send + Sync>;

/// The log layer (text or Cloud Logging JSON, to `writer`) and, with a provider, the
/// OpenTelemetry layer, as one layer over the registry.
fn layers<W>(
    json: bool,
    provider: Option<SdkTracerProvider>,
    default_logs: &str,
    writer: W,
) -> (BoxedLayer, Option<SdkTracerProvider>)
where
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + Send + Sync + 'static,
{
    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new(default_logs));
    let logs: BoxedLayer = if json {
        CloudLogging::new(writer).with_filter(filter).boxed()
    } else {
        tracing_subscriber::fmt::layer()
            .with_writer(writer)
            .with_target(false)
            .with_filter(filter)
            .boxed()
    };
    let Some(provider) = provider else {
        return (logs, None);
    };
    // The OpenTelemetry layer first, so a span has its ids before a log line inside it is
    // written. (`and_then`, not a Vec of layers: a Vec does not pass the dispatcher on, and
    // the JSON layer needs it to read those ids.)
    let otel = tracing_opentelemetry::layer()
        .with_tracer(provider.tracer("sqlrft"))
        .with_filter(EnvFilter::new("info"));
    (otel.and_then(logs).boxed(), Some(provider))
}

fn otlp_provider() -> anyhow::Result<SdkTracerProvider> {
    use opentelemetry_otlp::WithExportConfig;
    let protocol = env("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        .or_else(|| env("OTEL_EXPORTER_OTLP_PROTOCOL"))
        .unwrap_or_else(|| "grpc".into());
    let exporter = match protocol.as_str() {
        "grpc" => opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .build()?,
        "http/protobuf" => opentelemetry_otlp::SpanExporter::builder()
            .with_http()
            .with_protocol(opentelemetry_otlp::Protocol::HttpBinary)
            .build()?,
        other => anyhow::bail!(
            "OTEL_EXPORTER_OTLP_PROTOCOL={other:?} is not supported; use `grpc` or `http/protobuf`"
        ),
    };
    let service = env("OTEL_SERVICE_NAME").unwrap_or_else(|| "sqlrft".into());
    // W3C trace context is what the services send each other (sqlrft_serve::trace_context);
    // the global propagator is for any library that asks for one.
    opentelemetry::global::set_text_map_propagator(
        opentelemetry_sdk::propagation::TraceContextPropagator::new(),
    );
    Ok(SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(service)
                .build(),
        )
        .build())
}

/// One JSON object per event in the structured-logging shape Cloud Logging (and most log
/// collectors) understand: `severity`, `message`, `time`, the event's fields, and the trace as
/// `logging.googleapis.com/trace` (`projects/$GOOGLE_CLOUD_PROJECT/traces/ID` when the project
/// is known, else the bare id) and `logging.googleapis.com/spanId`.
///
/// A layer rather than a fmt `FormatEvent`: the span's OpenTelemetry ids are read through the
/// dispatcher, which a formatter cannot reach (`Span::current()` is empty inside a subscriber).
struct CloudLogging<W> {
    writer: W,
    dispatch: std::sync::OnceLock<tracing::dispatcher::WeakDispatch>,
}

impl<W> CloudLogging<W> {
    fn new(writer: W) -> Self {
        CloudLogging {
            writer,
            dispatch: std::sync::OnceLock::new(),
        }
    }

    /// The OpenTelemetry span context of `span`, when an OpenTelemetry layer is installed.
    fn span_context(&self, span: &tracing::span::Id) -> Option<opentelemetry::trace::SpanContext> {
        let dispatch = self.dispatch.get()?.upgrade()?;
        let context = tracing_opentelemetry::get_otel_context(span, &dispatch)?;
        let span_context = context.span().span_context().clone();
        span_context.is_valid().then_some(span_context)
    }
}

impl<S, W> Layer<S> for CloudLogging<W>
where
    S: Subscriber + for<'a> LookupSpan<'a>,
    W: for<'w> tracing_subscriber::fmt::MakeWriter<'w> + 'static,
{
    fn on_register_dispatch(&self, subscriber: &tracing::Dispatch) {
        let _ = self.dispatch.set(subscriber.downgrade());
    }

    fn on_event(&self, event: &Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut entry = serde_json::Map::new();
        let severity = match *event.metadata().level() {
            tracing::Level::ERROR => "ERROR",
            tracing::Level::WARN => "WARNING",
            tracing::Level::INFO => "INFO",
            tracing::Level::DEBUG | tracing::Level::TRACE => "DEBUG",
        };
        entry.insert("severity".into(), severity.into());
        entry.insert(
            "time".into(),
            chrono::Utc::now()
                .to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
                .into(),
        );
        let mut fields = JsonFields(serde_json::Map::new());
        event.record(&mut fields);
        entry.insert(
            "message".into(),
            fields.0.remove("message").unwrap_or_default(),
        );
        entry.extend(fields.0);
        entry.insert("target".into(), event.metadata().target().into());
        let span = ctx.event_span(event).map(|span| (span.id(), span.name()));
        if let Some((id, name)) = span {
            entry.insert("span".into(), name.into());
            if let Some(span_context) = self.span_context(&id) {
                let trace_id = span_context.trace_id().to_string();
                let trace = match env("GOOGLE_CLOUD_PROJECT") {
                    Some(project) => format!("projects/{project}/traces/{trace_id}"),
                    None => trace_id,
                };
                entry.insert("logging.googleapis.com/trace".into(), trace.into());
                entry.insert(
                    "logging.googleapis.com/spanId".into(),
                    span_context.span_id().to_string().into(),
                );
                entry.insert(
                    "logging.googleapis.com/trace_sampled".into(),
                    span_context.is_sampled().into(),
                );
            }
        }
        let mut line = serde_json::Value::Object(entry).to_string();
        line.push('\n');
        // A log line that cannot be written has nowhere to be reported.
        let _ = std::io::Write::write_all(&mut self.writer.make_writer(), line.as_bytes());
    }
}

/// Collects an event's fields as JSON values (numbers and booleans stay typed).
struct JsonFields(serde_json::Map<String, serde_json::Value>);

impl tracing::field::Visit for JsonFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), format!("{value:?}").into());
    }
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_f64(&mut self, field: &tracing::field::Field, value: f64) {
        self.0.insert(field.name().into(), value.into());
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), value.into());
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::{Arc, Mutex};

    /// Log lines written by the fmt layer, shared with the test.
    #[derive(Clone, Default)]
    struct Captured(Arc<Mutex<Vec<u8>>>);

    impl std::io::Write for Captured {
        fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
            self.0.lock().unwrap().extend_from_slice(buf);
            Ok(buf.len())
        }
        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    #[test]
    fn json_logs_carry_severity_message_fields_and_the_spans_trace_id() {
        let captured = Captured::default();
        let writer = captured.clone();
        let (layer, _provider) = layers(
            true,
            Some(SdkTracerProvider::builder().build()),
            DEFAULT_LOGS,
            move || writer.clone(),
        );
        let subscriber = tracing_subscriber::registry().with(layer);
        let trace_id = tracing::subscriber::with_default(subscriber, || {
            use tracing_opentelemetry::OpenTelemetrySpanExt;
            let span = tracing::info_span!("evaluate");
            let _entered = span.enter();
            tracing::warn!(rows = 3, ok = true, "gold query slow");
            span.context().span().span_context().trace_id().to_string()
        });
        let text = String::from_utf8(captured.0.lock().unwrap().clone()).unwrap();
        let line: serde_json::Value = serde_json::from_str(text.lines().next().unwrap()).unwrap();
        assert_eq!(line["severity"], "WARNING", "{line}");
        assert_eq!(line["message"], "gold query slow", "{line}");
        assert_eq!(line["rows"], 3, "{line}");
        assert_eq!(line["ok"], true, "{line}");
        assert_eq!(line["span"], "evaluate", "{line}");
        assert_ne!(trace_id, "00000000000000000000000000000000");
        let trace = line["logging.googleapis.com/trace"].as_str().unwrap();
        assert!(trace.ends_with(&trace_id), "{trace} vs {trace_id}");
        assert_eq!(
            line["logging.googleapis.com/spanId"]
                .as_str()
                .unwrap()
                .len(),
            16
        );
    }
}
