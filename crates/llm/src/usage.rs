//! Token and cost accounting shared by every request a client makes.

use std::fmt;
use std::sync::atomic::{AtomicU64, Ordering};

use serde::{Deserialize, Serialize};

/// Running totals, updated lock-free from concurrent requests.
#[derive(Debug, Default)]
pub struct UsageMeter {
    requests: AtomicU64,
    retries: AtomicU64,
    failures: AtomicU64,
    prompt_tokens: AtomicU64,
    completion_tokens: AtomicU64,
}

impl UsageMeter {
    /// Counts one successful call and the tokens its `usage` reported.
    pub fn record_success(&self, prompt_tokens: u64, completion_tokens: u64) {
        self.requests.fetch_add(1, Ordering::Relaxed);
        self.prompt_tokens
            .fetch_add(prompt_tokens, Ordering::Relaxed);
        self.completion_tokens
            .fetch_add(completion_tokens, Ordering::Relaxed);
    }

    /// Counts one attempt that will be retried.
    pub fn record_retry(&self) {
        self.retries.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts one call that failed for good.
    pub fn record_failure(&self) {
        self.failures.fetch_add(1, Ordering::Relaxed);
    }

    /// The totals so far, priced with `pricing` when given.
    pub fn snapshot(&self, pricing: Option<Pricing>) -> Usage {
        let prompt_tokens = self.prompt_tokens.load(Ordering::Relaxed);
        let completion_tokens = self.completion_tokens.load(Ordering::Relaxed);
        Usage {
            requests: self.requests.load(Ordering::Relaxed),
            retries: self.retries.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
            prompt_tokens,
            completion_tokens,
            cost_usd: pricing.map(|p| p.cost(prompt_tokens, completion_tokens)),
        }
    }
}

/// Prices in US dollars per million tokens.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Pricing {
    /// Dollars per million prompt (input) tokens.
    pub input_per_million: f64,
    /// Dollars per million completion (output) tokens.
    pub output_per_million: f64,
}

impl Pricing {
    /// Estimated dollars for the given token counts.
    pub fn cost(&self, prompt_tokens: u64, completion_tokens: u64) -> f64 {
        (prompt_tokens as f64 * self.input_per_million
            + completion_tokens as f64 * self.output_per_million)
            / 1_000_000.0
    }
}

/// A point-in-time copy of a client's totals, for reports and summaries.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Usage {
    /// Calls that returned an answer.
    pub requests: u64,
    /// Attempts that failed and were retried.
    pub retries: u64,
    /// Calls that failed after all retries, or at once on a non-retryable error.
    pub failures: u64,
    /// Sum of `usage.prompt_tokens` over successful calls.
    pub prompt_tokens: u64,
    /// Sum of `usage.completion_tokens` over successful calls.
    pub completion_tokens: u64,
    /// Estimated cost, when prices were configured.
    pub cost_usd: Option<f64>,
}

impl Usage {
    /// Prompt plus completion tokens.
    pub fn total_tokens(&self) -> u64 {
        self.prompt_tokens + self.completion_tokens
    }
}

impl fmt::Display for Usage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests ({} retries, {} failed), {} prompt + {} completion = {} tokens",
            self.requests,
            self.retries,
            self.failures,
            self.prompt_tokens,
            self.completion_tokens,
            self.total_tokens()
        )?;
        if let Some(cost) = self.cost_usd {
            write!(f, ", est. ${cost:.4}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cost_is_priced_per_million_tokens() {
        let p = Pricing {
            input_per_million: 2.0,
            output_per_million: 8.0,
        };
        let meter = UsageMeter::default();
        meter.record_success(500_000, 0);
        meter.record_success(250_000, 125_000);
        let u = meter.snapshot(Some(p));
        assert_eq!(u.prompt_tokens, 750_000);
        assert_eq!(u.completion_tokens, 125_000);
        let expected = 0.75 * 2.0 + 0.125 * 8.0;
        assert!((u.cost_usd.unwrap() - expected).abs() < 1e-9);
        assert!(u.to_string().contains("est. $2.5000"), "{u}");
    }

    #[test]
    fn no_pricing_means_no_cost() {
        let meter = UsageMeter::default();
        meter.record_success(1, 2);
        let u = meter.snapshot(None);
        assert_eq!(u.cost_usd, None);
        assert!(!u.to_string().contains('$'));
    }
}
