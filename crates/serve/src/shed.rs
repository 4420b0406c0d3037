//! Load shedding: a fixed number of requests in flight, 503 at once past it (never a queue), and
//! a signal, carried in each request, that fires when its client has gone.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::Extensions;
use axum::middleware::{self, Next};
use axum::response::Response;
use futures::StreamExt;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;

/// Fires when a request's client stops reading the reply (it hung up) or once the reply has been
/// sent. Handlers that keep working after their client is gone (rmcp runs a tool to the end)
/// watch it to stop early.
#[derive(Debug, Clone, Default)]
pub struct ClientGone(CancellationToken);

impl ClientGone {
    /// The signal a request carries in `extensions`; one that never fires if the request did not
    /// pass through [`shed_load`].
    pub fn of(extensions: &Extensions) -> ClientGone {
        extensions.get::<ClientGone>().cloned().unwrap_or_default()
    }

    /// Resolves once the client has gone.
    pub async fn cancelled(&self) {
        self.0.cancelled().await
    }

    /// True once the client has gone.
    pub fn is_gone(&self) -> bool {
        self.0.is_cancelled()
    }
}

struct Capacity {
    slots: Arc<Semaphore>,
    busy: serde_json::Value,
}

/// Lets at most `capacity` requests to `routes` be in flight; past it, answers [`crate::busy`]
/// with `busy_body` at once. A request keeps its slot until its reply body has been sent or its
/// client has gone (a streamed reply is still being produced when the headers go out), and
/// carries a [`ClientGone`] that fires then.
pub fn shed_load(routes: Router, capacity: usize, busy_body: serde_json::Value) -> Router {
    let capacity = Arc::new(Capacity {
        slots: Arc::new(Semaphore::new(capacity.max(1))),
        busy: busy_body,
    });
    routes.layer(middleware::from_fn_with_state(capacity, admit))
}

async fn admit(
    State(capacity): State<Arc<Capacity>>,
    mut request: Request,
    next: Next,
) -> Response {
    let Ok(permit) = capacity.slots.clone().try_acquire_owned() else {
        return crate::busy(capacity.busy.clone());
    };
    let gone = CancellationToken::new();
    request.extensions_mut().insert(ClientGone(gone.clone()));
    // Fires if this future is dropped mid-request too (the connection closed before the headers).
    let fire_on_drop = gone.drop_guard();
    let (parts, body) = next.run(request).await.into_parts();
    let guarded = body.into_data_stream().map(move |chunk| {
        let _held = (&permit, &fire_on_drop);
        chunk
    });
    Response::from_parts(parts, Body::from_stream(guarded))
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;
    use std::time::Duration;

    #[tokio::test]
    async fn past_capacity_is_503_and_a_hung_up_client_frees_its_slot_and_fires() {
        let (seen_tx, mut seen_rx) = tokio::sync::mpsc::unbounded_channel::<ClientGone>();
        // Like an SSE reply: headers and a first event at once, the rest still being produced.
        let slow = get(move |request: Request| {
            let seen = seen_tx.clone();
            async move {
                let _ = seen.send(ClientGone::of(request.extensions()));
                let first = futures::stream::once(async {
                    Ok::<_, std::io::Error>(axum::body::Bytes::from_static(b"event\n"))
                });
                Body::from_stream(first.chain(futures::stream::pending()))
            }
        });
        let app = shed_load(
            Router::new().route("/slow", slow),
            1,
            serde_json::json!({"error": "busy"}),
        )
        .route("/open", get(|| async { "open" }));
        let server = crate::Server::spawn(
            crate::bind("127.0.0.1", 0).await.unwrap(),
            app,
            CancellationToken::new(),
            (),
        );
        let base = server.base_url();
        let client = reqwest::Client::new();
        let mut first = client.get(format!("{base}/slow")).send().await.unwrap();
        assert_eq!(first.chunk().await.unwrap().unwrap(), "event\n");
        let gone = seen_rx.recv().await.unwrap();
        assert!(!gone.is_gone());
        let second = client.get(format!("{base}/slow")).send().await.unwrap();
        assert_eq!(second.status(), 503);
        assert_eq!(second.headers()["retry-after"], "1");
        assert_eq!(second.text().await.unwrap(), r#"{"error":"busy"}"#);
        let open = client.get(format!("{base}/open")).send().await.unwrap();
        assert_eq!(
            open.status(),
            200,
            "routes outside the layer are not limited"
        );

        drop(first);
        tokio::time::timeout(Duration::from_secs(5), gone.cancelled())
            .await
            .expect("the signal fires when the client hangs up");
        let mut status = 0;
        for _ in 0..50 {
            status = client
                .get(format!("{base}/slow"))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16();
            if status == 200 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        assert_eq!(status, 200, "the hung-up request's slot was never released");
        drop(server);
    }
}
