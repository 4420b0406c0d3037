//! Spans collected in process, as an OTLP receiver would have been sent them, so a test can
//! check how services' spans join into traces. The rollout tests include this file too.

use std::sync::{Arc, Mutex, OnceLock};

use opentelemetry::trace::TracerProvider as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, SpanData};
use tracing::subscriber::DefaultGuard;
use tracing_subscriber::layer::SubscriberExt as _;

/// The finished spans of one thread's tracing, from [`CollectedSpans::on_this_thread`] until
/// the value is dropped.
///
/// The subscriber is this thread's default, not the global one (tests in one binary run in
/// parallel): whatever is to be collected — the caller and every server it talks to — must run
/// on this thread, under a current-thread runtime.
pub(crate) struct CollectedSpans {
    finished: Arc<Mutex<Vec<SpanData>>>,
    provider: SdkTracerProvider,
    _default: DefaultGuard,
}

impl CollectedSpans {
    /// Starts collecting the spans this thread records.
    pub(crate) fn on_this_thread() -> CollectedSpans {
        keep_a_second_dispatcher();
        let finished = Arc::new(Mutex::new(Vec::new()));
        let provider = SdkTracerProvider::builder()
            .with_simple_exporter(Exporter(finished.clone()))
            .build();
        let subscriber = tracing_subscriber::registry()
            .with(tracing_opentelemetry::layer().with_tracer(provider.tracer("test")));
        CollectedSpans {
            finished,
            provider,
            _default: tracing::subscriber::set_default(subscriber),
        }
    }

    /// Every span that has ended so far.
    pub(crate) fn finished(&self) -> Vec<SpanData> {
        self.provider.force_flush().unwrap();
        self.finished.lock().unwrap().clone()
    }
}

/// Keeps a second dispatcher registered for the rest of the process. While only one is
/// registered, tracing-core caches a callsite's interest from the default subscriber of the
/// thread that meets the callsite first: a parallel test's thread, which has none, would turn
/// that callsite off for good, here too (say the reward service's request span). With two, a
/// callsite that some thread's subscriber wants is asked about again on every use.
fn keep_a_second_dispatcher() {
    static SECOND: OnceLock<tracing::Dispatch> = OnceLock::new();
    SECOND.get_or_init(|| tracing::Dispatch::new(tracing::subscriber::NoSubscriber::default()));
}

/// The spans of HTTP requests (`sqlrft_serve`'s request spans) to `path` among `spans`.
pub(crate) fn requests_to<'a>(spans: &'a [SpanData], path: &str) -> Vec<&'a SpanData> {
    spans
        .iter()
        .filter(|s| {
            s.attributes
                .iter()
                .any(|kv| kv.key.as_str() == "path" && kv.value.as_str() == path)
        })
        .collect()
}

/// Hands each finished span to the collection.
#[derive(Debug)]
struct Exporter(Arc<Mutex<Vec<SpanData>>>);

impl opentelemetry_sdk::trace::SpanExporter for Exporter {
    async fn export(&self, batch: Vec<SpanData>) -> opentelemetry_sdk::error::OTelSdkResult {
        self.0.lock().unwrap().extend(batch);
        Ok(())
    }
}
