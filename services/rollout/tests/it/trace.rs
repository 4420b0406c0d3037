//! One trace per round: a worker scores each round inside its `rollout.round` span, and the
//! reward service's handling of the worker's scoring calls continues that span.

use super::*;
use crate::spans::{CollectedSpans, requests_to};

/// Every batch the reward service scores for a running worker is a request in a round's trace,
/// a child of the round's span.
#[test]
fn the_reward_service_scores_each_batch_as_a_child_of_the_workers_round() {
    // The servers, the worker and the trainer all run on this thread, so all are collected.
    let collected = CollectedSpans::on_this_thread();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let stack = Stack::start().await;
        let w0 = stack.worker("w0", "0/1", &[]).await;
        // The trainer publishes policy 0 (the worker waits for one), and its step takes a
        // batch whose round went through the reward service.
        let out = stack.dir.path().join("run");
        train(stack.trainer_args(&[w0.base_url()], &out, 1)).await;
        w0.shutdown().await.unwrap();
        stack.shutdown().await;
    });

    let spans = collected.finished();
    let rounds: Vec<_> = spans.iter().filter(|s| s.name == "rollout.round").collect();
    let requests = requests_to(&spans, "/v1/evaluate/batch");
    assert!(!requests.is_empty(), "the reward service scored nothing");
    for request in requests {
        let round = rounds
            .iter()
            .find(|r| r.span_context.span_id() == request.parent_span_id)
            .unwrap_or_else(|| {
                let ids: Vec<_> = rounds
                    .iter()
                    .map(|r| format!("{}/{}", r.span_context.trace_id(), r.span_context.span_id()))
                    .collect();
                panic!(
                    "a batch request (trace {}, parent {}) is not a child of a round \
                     (rounds as trace/span: {ids:?})",
                    request.span_context.trace_id(),
                    request.parent_span_id
                )
            });
        assert_eq!(
            request.span_context.trace_id(),
            round.span_context.trace_id(),
            "one trace"
        );
    }
}
