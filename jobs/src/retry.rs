//! [`RetryPolicy`]: how long a failed attempt waits before the next one.
//!
//! Exponential backoff with full jitter (the delay is uniform between zero and the
//! exponential ceiling, so a burst of failures does not retry in lockstep), capped, and never
//! shorter than a provider's `Retry-After`.

use std::time::Duration;

use rand::Rng;

use crate::config::RetryConfig;

/// Retry timing of one deployment.
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    base: Duration,
    max: Duration,
}

impl RetryPolicy {
    /// The policy configured by `LONGHAUL_RETRY_BASE_MS` and `LONGHAUL_RETRY_MAX_SECS`.
    pub fn new(config: RetryConfig) -> Self {
        Self {
            base: config.base,
            max: config.max,
        }
    }

    /// The ceiling of the delay after failed attempt number `attempt` (1-based).
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.max)
    }

    /// The delay before the attempt after `attempt`, honouring `retry_after`.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        let ceiling = self.ceiling(attempt);
        let jittered =
            Duration::from_millis(rand::rng().random_range(0..=ceiling.as_millis() as u64));
        match retry_after {
            Some(wait) => jittered.max(wait),
            None => jittered,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy() -> RetryPolicy {
        RetryPolicy::new(RetryConfig {
            base: Duration::from_secs(1),
            max: Duration::from_secs(60),
        })
    }

    #[test]
    fn the_ceiling_doubles_until_the_cap() {
        let p = policy();
        assert_eq!(p.ceiling(1), Duration::from_secs(1));
        assert_eq!(p.ceiling(3), Duration::from_secs(4));
        assert_eq!(p.ceiling(40), Duration::from_secs(60));
    }

    #[test]
    fn delays_stay_within_the_ceiling_but_honour_retry_after() {
        let p = policy();
        for _ in 0..100 {
            assert!(p.delay(3, None) <= Duration::from_secs(4));
            assert!(p.delay(1, Some(Duration::from_secs(2))) >= Duration::from_secs(2));
        }
    }
}
