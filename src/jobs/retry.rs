//! The retry policy: capped exponential backoff with full jitter, or the server's
//! `Retry-After` clamped to the cap.

use std::time::Duration;

/// Backoff settings.
#[derive(Clone, Copy, Debug)]
pub struct RetryPolicy {
    /// Delay ceiling for the first retry.
    pub base: Duration,
    /// No delay is longer than this.
    pub cap: Duration,
}

impl RetryPolicy {
    /// The ceiling before jitter for retry number `attempt` (1 = first retry):
    /// `min(cap, base * 2^(attempt-1))`.
    pub fn ceiling(&self, attempt: u32) -> Duration {
        let factor = 2u32.saturating_pow(attempt.saturating_sub(1).min(30));
        self.base.saturating_mul(factor).min(self.cap)
    }

    /// The delay before retry number `attempt`. Full jitter (uniform in `[0, ceiling]`)
    /// spreads retries of many failing jobs so they do not hit a recovering service together.
    /// A server-requested delay wins, clamped to the cap.
    pub fn delay(&self, attempt: u32, retry_after: Option<Duration>) -> Duration {
        if let Some(requested) = retry_after {
            return requested.min(self.cap);
        }
        let ceiling = self.ceiling(attempt).as_millis() as u64;
        Duration::from_millis(rand::random_range(0..=ceiling))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const POLICY: RetryPolicy = RetryPolicy {
        base: Duration::from_secs(2),
        cap: Duration::from_secs(60),
    };

    #[test]
    fn ceilings_grow_exponentially_up_to_the_cap() {
        let ceilings: Vec<u64> = (1..=7).map(|a| POLICY.ceiling(a).as_secs()).collect();
        assert_eq!(ceilings, vec![2, 4, 8, 16, 32, 60, 60]);
        assert_eq!(POLICY.ceiling(10_000), Duration::from_secs(60));
    }

    #[test]
    fn delays_are_jittered_within_the_ceiling() {
        let delays: Vec<Duration> = (0..200).map(|_| POLICY.delay(4, None)).collect();
        assert!(delays.iter().all(|d| *d <= Duration::from_secs(16)));
        let distinct: std::collections::HashSet<_> = delays.iter().collect();
        assert!(
            distinct.len() > 50,
            "full jitter must spread delays, got {}",
            distinct.len()
        );
        assert!(delays.iter().any(|d| *d < Duration::from_secs(8)));
        assert!(delays.iter().any(|d| *d > Duration::from_secs(8)));
    }

    #[test]
    fn retry_after_is_honoured_but_clamped() {
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(7))),
            Duration::from_secs(7)
        );
        assert_eq!(
            POLICY.delay(1, Some(Duration::from_secs(3600))),
            Duration::from_secs(60)
        );
    }
}
