//! The worker's bounded buffer of scored batches, and what it reports about itself. Each batch
//! is handed out once; batches a trainer would not train on (sampled by a policy older than it
//! accepts, or newer than it has, after it restarted from a checkpoint) are dropped as it asks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use sqlrft_proto::v1::{PullReply, PullRequest, RolloutBatch, WorkerStatus};
use tokio::sync::Notify;

/// The longest a pull may wait for a batch, so that a trainer's request never hangs on a worker.
pub const MAX_WAIT_MS: u32 = 30_000;

/// A pull request that cannot be answered, and why.
#[derive(Debug, PartialEq)]
pub struct BadPull(pub String);

/// Scored batches waiting for a trainer.
pub struct RolloutBuffer {
    inner: Mutex<Inner>,
    changed: Notify,
}

struct Inner {
    batches: VecDeque<RolloutBatch>,
    status: WorkerStatus,
}

impl RolloutBuffer {
    /// An empty buffer that holds up to `capacity` batches (at least one), for the worker `name`.
    pub fn new(name: &str, capacity: usize) -> Self {
        let capacity = capacity.max(1);
        RolloutBuffer {
            inner: Mutex::new(Inner {
                batches: VecDeque::with_capacity(capacity),
                status: WorkerStatus {
                    worker: name.to_string(),
                    state: "starting".into(),
                    capacity: capacity as u32,
                    ..Default::default()
                },
            }),
            changed: Notify::new(),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        // A panic while holding the lock leaves plain data behind; keep serving it.
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The worker's state as a trainer (or `curl`) sees it.
    pub fn status(&self) -> WorkerStatus {
        self.lock().status.clone()
    }

    /// Updates what the worker says it is doing (`policy`: the newest policy version seen).
    pub fn set_state(&self, state: impl Into<String>, policy: Option<u64>) {
        let mut inner = self.lock();
        inner.status.state = state.into();
        if let Some(version) = policy {
            inner.status.policy_version = version;
        }
    }

    /// Counts a failed round and shows why, with how long the worker backs off.
    pub fn record_failure(&self, error: &str, backoff: Duration) {
        let mut inner = self.lock();
        inner.status.failures += 1;
        inner.status.last_error = error.to_string();
        inner.status.state = format!("backing off {:.1}s: {error}", backoff.as_secs_f64());
    }

    /// Counts groups a round left out for invalid rewards.
    pub fn record_invalid_groups(&self, groups: u32) {
        self.lock().status.groups_dropped_invalid += u64::from(groups);
    }

    /// Whether one more batch fits; when not, the state says the buffer is full.
    pub fn has_room(&self) -> bool {
        let mut inner = self.lock();
        let room = inner.batches.len() < inner.status.capacity as usize;
        if !room {
            inner.status.state = "buffer full: waiting for a trainer to pull".into();
        }
        room
    }

    /// Waits until there is room for one more batch.
    pub async fn wait_for_room(&self) {
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.has_room() {
                return;
            }
            notified.await;
        }
    }

    /// Adds a batch (the caller waited for room; a full buffer drops its oldest batch, counted
    /// as stale).
    pub fn push(&self, batch: RolloutBatch, tokens_per_second: f64) {
        let mut inner = self.lock();
        if inner.batches.len() >= inner.status.capacity as usize {
            inner.batches.pop_front();
            inner.status.batches_dropped_stale += 1;
        }
        inner.batches.push_back(batch);
        inner.status.batches_produced += 1;
        inner.status.generation_tokens_per_second = tokens_per_second;
        inner.status.buffered = inner.batches.len() as u32;
        drop(inner);
        self.changed.notify_waiters();
    }

    /// Drops the batches sampled by a policy older than `min`: no trainer that has published a
    /// newer one than `min + max_staleness` takes them, and their room is better used for fresh
    /// batches.
    pub fn drop_older_than(&self, min: u64) {
        let mut inner = self.lock();
        let before = inner.batches.len();
        inner.batches.retain(|b| b.policy_version >= min);
        let dropped = before - inner.batches.len();
        if dropped > 0 {
            inner.status.batches_dropped_stale += dropped as u64;
            inner.status.buffered = inner.batches.len() as u32;
            drop(inner);
            self.changed.notify_waiters();
        }
    }

    /// Answers a trainer's pull: the oldest batch within the request's policy window, waiting up
    /// to its `wait_ms` for one.
    pub async fn pull(&self, request: &PullRequest) -> Result<PullReply, BadPull> {
        let max = match request.max_policy_version {
            0 => u64::MAX,
            max => max,
        };
        if request.min_policy_version > max {
            return Err(BadPull(format!(
                "min_policy_version {} is above max_policy_version {}; ask for the window of \
                 versions the trainer accepts (max 0: no upper bound)",
                request.min_policy_version, request.max_policy_version
            )));
        }
        if request.wait_ms > MAX_WAIT_MS {
            return Err(BadPull(format!(
                "wait_ms {} is above the limit of {MAX_WAIT_MS}; poll again instead",
                request.wait_ms
            )));
        }
        let deadline = Instant::now() + Duration::from_millis(u64::from(request.wait_ms));
        loop {
            let notified = self.changed.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if let Some(reply) = self.take(request.min_policy_version, max) {
                return Ok(reply);
            }
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() || tokio::time::timeout(left, notified).await.is_err() {
                return Ok(PullReply {
                    batch: None,
                    status: Some(self.status()),
                });
            }
        }
    }

    /// Drops the batches outside `min..=max` and takes the oldest one left, if any.
    fn take(&self, min: u64, max: u64) -> Option<PullReply> {
        let mut inner = self.lock();
        let before = inner.batches.len();
        inner
            .batches
            .retain(|b| (min..=max).contains(&b.policy_version));
        let dropped = before - inner.batches.len();
        inner.status.batches_dropped_stale += dropped as u64;
        let batch = inner.batches.pop_front();
        if batch.is_some() {
            inner.status.batches_served += 1;
        }
        inner.status.buffered = inner.batches.len() as u32;
        let status = inner.status.clone();
        drop(inner);
        if dropped > 0 || batch.is_some() {
            self.changed.notify_waiters();
        }
        batch.map(|batch| PullReply {
            batch: Some(batch),
            status: Some(status),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(version: u64, id: &str) -> RolloutBatch {
        RolloutBatch {
            policy_version: version,
            id: id.into(),
            ..Default::default()
        }
    }

    fn pull(min: u64, max: u64) -> PullRequest {
        PullRequest {
            min_policy_version: min,
            max_policy_version: max,
            wait_ms: 0,
        }
    }

    #[tokio::test]
    async fn each_batch_is_handed_out_once_oldest_first() {
        let buffer = RolloutBuffer::new("w", 4);
        buffer.push(batch(0, "a"), 1.0);
        buffer.push(batch(0, "b"), 1.0);
        let first = buffer.pull(&pull(0, 0)).await.unwrap();
        assert_eq!(first.batch.unwrap().id, "a");
        assert_eq!(first.status.unwrap().buffered, 1);
        let second = buffer.pull(&pull(0, 0)).await.unwrap();
        assert_eq!(second.batch.unwrap().id, "b");
        let none = buffer.pull(&pull(0, 0)).await.unwrap();
        assert!(none.batch.is_none());
        let status = buffer.status();
        assert_eq!((status.batches_produced, status.batches_served), (2, 2));
    }

    #[tokio::test]
    async fn batches_outside_the_window_are_dropped_and_counted() {
        let buffer = RolloutBuffer::new("w", 8);
        // Older than the trainer accepts, accepted twice, and newer than a restarted trainer has.
        for (version, id) in [(1, "old"), (3, "ok1"), (4, "ok2"), (9, "future")] {
            buffer.push(batch(version, id), 1.0);
        }
        let reply = buffer.pull(&pull(3, 4)).await.unwrap();
        assert_eq!(reply.batch.unwrap().id, "ok1");
        let status = reply.status.unwrap();
        assert_eq!((status.batches_dropped_stale, status.buffered), (2, 1));
        assert_eq!(
            buffer.pull(&pull(3, 4)).await.unwrap().batch.unwrap().id,
            "ok2"
        );
    }

    #[tokio::test]
    async fn batches_a_newer_policy_makes_stale_are_dropped_before_anyone_asks() {
        let buffer = RolloutBuffer::new("w", 4);
        for (version, id) in [(3, "old"), (4, "ok"), (5, "new")] {
            buffer.push(batch(version, id), 1.0);
        }
        buffer.drop_older_than(4);
        let status = buffer.status();
        assert_eq!((status.buffered, status.batches_dropped_stale), (2, 1));
        assert_eq!(
            buffer.pull(&pull(0, 0)).await.unwrap().batch.unwrap().id,
            "ok"
        );
    }

    #[tokio::test]
    async fn a_pull_waits_for_the_next_batch() {
        let buffer = std::sync::Arc::new(RolloutBuffer::new("w", 2));
        let producer = buffer.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(50)).await;
            producer.push(batch(2, "late"), 1.0);
        });
        let request = PullRequest {
            min_policy_version: 2,
            max_policy_version: 2,
            wait_ms: 5_000,
        };
        let reply = buffer.pull(&request).await.unwrap();
        assert_eq!(reply.batch.unwrap().id, "late");
    }

    #[tokio::test]
    async fn a_full_buffer_makes_the_producer_wait_until_a_pull() {
        let buffer = std::sync::Arc::new(RolloutBuffer::new("w", 1));
        buffer.push(batch(0, "a"), 1.0);
        let waiting = {
            let buffer = buffer.clone();
            tokio::spawn(async move { buffer.wait_for_room().await })
        };
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert!(!waiting.is_finished());
        assert!(buffer.status().state.starts_with("buffer full"));
        buffer.pull(&pull(0, 0)).await.unwrap();
        tokio::time::timeout(Duration::from_secs(5), waiting)
            .await
            .expect("room after the pull")
            .unwrap();
    }

    #[tokio::test]
    async fn bad_windows_and_waits_are_refused_with_the_fix() {
        let buffer = RolloutBuffer::new("w", 1);
        let err = buffer.pull(&pull(5, 2)).await.unwrap_err();
        assert!(err.0.contains("min_policy_version 5"), "{err:?}");
        let err = buffer
            .pull(&PullRequest {
                wait_ms: MAX_WAIT_MS + 1,
                ..Default::default()
            })
            .await
            .unwrap_err();
        assert!(err.0.contains("wait_ms"), "{err:?}");
    }
}
