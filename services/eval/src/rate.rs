//! A request-rate limit: evenly spaced start times, shared by every task of one model.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Hands out start times at most `rps` per second.
#[derive(Debug)]
pub struct RateLimiter {
    interval: Duration,
    next: Mutex<Option<Instant>>,
}

impl RateLimiter {
    /// `None` or a non-positive rate: no limit.
    pub fn new(rps: Option<f64>) -> RateLimiter {
        let interval = rps
            .filter(|r| r.is_finite() && *r > 0.0)
            .map_or(Duration::ZERO, |r| Duration::from_secs_f64(1.0 / r));
        RateLimiter {
            interval,
            next: Mutex::new(None),
        }
    }

    /// Waits for `n` slots (one per request about to be sent).
    pub async fn acquire(&self, n: u32) {
        if self.interval.is_zero() || n == 0 {
            return;
        }
        let at = {
            let Ok(mut next) = self.next.lock() else {
                return;
            };
            let now = Instant::now();
            let at = next.map_or(now, |t| t.max(now));
            *next = Some(at + self.interval * n);
            at
        };
        tokio::time::sleep_until(at).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn starts_are_spaced_by_the_rate() {
        let limiter = std::sync::Arc::new(RateLimiter::new(Some(50.0)));
        let started = std::time::Instant::now();
        let tasks: Vec<_> = (0..6)
            .map(|_| {
                let l = limiter.clone();
                tokio::spawn(async move { l.acquire(1).await })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        // Six starts at 20 ms spacing: the last one at 100 ms.
        let took = started.elapsed();
        assert!(took >= Duration::from_millis(95), "{took:?}");
        assert!(took < Duration::from_millis(400), "{took:?}");
    }

    #[tokio::test]
    async fn no_rate_means_no_wait() {
        let limiter = RateLimiter::new(None);
        let started = std::time::Instant::now();
        for _ in 0..1000 {
            limiter.acquire(1).await;
        }
        assert!(started.elapsed() < Duration::from_millis(50));
    }
}
