//! Retrying remote calls the same way everywhere (the LLM client, the Hub client): a policy of
//! how many retries and how long to wait, exponential backoff with jitter that honours a server's
//! `Retry-After`, and the async loop that applies them. It knows nothing about HTTP clients: the
//! caller says, per failure, whether another attempt may help.

#![warn(missing_docs)]

mod backoff;

use std::fmt::Display;
use std::time::Duration;

pub use backoff::{Backoff, parse_retry_after};

/// How many times to try again, and how long to wait in between.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub retries: u32,
    /// Delays between attempts.
    pub backoff: Backoff,
}

/// One attempt's failure, as the retry loop sees it.
#[derive(Debug)]
pub enum Failure<E> {
    /// Another attempt may succeed (429, 5xx, a timeout, a broken connection).
    Transient {
        /// What went wrong.
        error: E,
        /// How long the server asked us to wait, if it said.
        retry_after: Option<Duration>,
    },
    /// Another attempt would fail the same way.
    Permanent(E),
}

/// Why [`retry`] stopped without a result.
#[derive(Debug)]
pub struct GaveUp<E> {
    /// Attempts made, the first included.
    pub attempts: u32,
    /// The last attempt's error.
    pub last: E,
}

impl<E> GaveUp<E> {
    /// The error to report: the last one alone when there was a single attempt, else what
    /// `exhausted(attempts, last)` makes of it (each client's "gave up after N attempts").
    pub fn into_error(self, exhausted: impl FnOnce(u32, E) -> E) -> E {
        if self.attempts > 1 {
            exhausted(self.attempts, self.last)
        } else {
            self.last
        }
    }
}

/// Runs `attempt` (given the attempt number, 0 for the first) until it succeeds, fails
/// permanently, or `policy.retries` retries have failed; sleeps with backoff in between and logs
/// each retry as `"{what} failed; retrying"`.
pub async fn retry<T, E, F, Fut>(
    policy: &RetryPolicy,
    what: &str,
    mut attempt: F,
) -> Result<T, GaveUp<E>>
where
    E: Display,
    F: FnMut(u32) -> Fut,
    Fut: Future<Output = Result<T, Failure<E>>>,
{
    let attempts = policy.retries.saturating_add(1);
    let mut made = 0;
    loop {
        let result = attempt(made).await;
        made += 1;
        match result {
            Ok(value) => return Ok(value),
            Err(Failure::Transient { error, retry_after }) if made < attempts => {
                let delay = policy.backoff.delay(made - 1, retry_after);
                tracing::warn!(attempt = made, ?delay, %error, "{what} failed; retrying");
                tokio::time::sleep(delay).await;
            }
            Err(Failure::Transient { error, .. } | Failure::Permanent(error)) => {
                return Err(GaveUp {
                    attempts: made,
                    last: error,
                });
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(retries: u32) -> RetryPolicy {
        RetryPolicy {
            retries,
            backoff: Backoff {
                base: Duration::from_millis(1),
                max: Duration::from_millis(5),
            },
        }
    }

    /// Fails transiently `fail_first` times, then answers the attempt number.
    async fn flaky(policy: RetryPolicy, fail_first: u32) -> (Result<u32, GaveUp<String>>, u32) {
        let mut calls = 0;
        let result = retry(&policy, "test call", |n| {
            calls += 1;
            async move {
                if n < fail_first {
                    Err(Failure::Transient {
                        error: format!("attempt {n} failed"),
                        retry_after: None,
                    })
                } else {
                    Ok(n)
                }
            }
        })
        .await;
        (result, calls)
    }

    #[test]
    fn one_attempt_reports_its_error_and_more_report_exhaustion() {
        let exhausted = |attempts, last: String| format!("gave up after {attempts}: {last}");
        let once = GaveUp {
            attempts: 1,
            last: "refused".to_string(),
        };
        assert_eq!(once.into_error(exhausted), "refused");
        let thrice = GaveUp {
            attempts: 3,
            last: "503".to_string(),
        };
        assert_eq!(thrice.into_error(exhausted), "gave up after 3: 503");
    }

    #[tokio::test]
    async fn transient_failures_are_retried_until_success() {
        let (result, calls) = flaky(policy(3), 2).await;
        assert_eq!(result.unwrap(), 2);
        assert_eq!(calls, 3);
    }

    #[tokio::test]
    async fn gives_up_after_the_last_retry_with_the_last_error() {
        let (result, calls) = flaky(policy(2), 10).await;
        let gave_up = result.unwrap_err();
        assert_eq!((gave_up.attempts, calls), (3, 3));
        assert_eq!(gave_up.last, "attempt 2 failed");
    }

    #[tokio::test]
    async fn a_permanent_failure_stops_at_once() {
        let mut calls = 0;
        let result: Result<(), _> = retry(&policy(5), "test call", |_| {
            calls += 1;
            async { Err(Failure::Permanent("bad request")) }
        })
        .await;
        assert_eq!(result.unwrap_err().attempts, 1);
        assert_eq!(calls, 1);
    }

    #[tokio::test]
    async fn the_servers_retry_after_sets_the_wait() {
        let started = std::time::Instant::now();
        let mut calls = 0;
        let result = retry(&policy(1), "test call", |n| {
            calls += 1;
            async move {
                if n == 0 {
                    Err(Failure::Transient {
                        error: "429",
                        retry_after: Some(Duration::from_millis(4)),
                    })
                } else {
                    Ok(())
                }
            }
        })
        .await;
        assert!(result.is_ok() && calls == 2);
        assert!(started.elapsed() >= Duration::from_millis(4));
    }
}
