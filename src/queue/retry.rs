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

/// How a run retries one call through an outage. Waits grow from `base` but never
/// exceed `max_wait`, so a service that recovers is noticed within that; the run keeps
/// trying for `patience` after the first failure (and at least `min_attempts` times),
/// so an outage of a few minutes costs a pause, not the run.
#[derive(Clone, Copy, Debug)]
pub struct OutagePolicy {
    /// Ceiling of the first wait.
    pub base: Duration,
    /// No wait of our own choosing is longer than this.
    pub max_wait: Duration,
    /// How long a call may keep failing before the run gives up on it.
    pub patience: Duration,
    /// Tries before giving up, however quickly they failed.
    pub min_attempts: u32,
    /// A provider's `Retry-After` is honoured up to this.
    pub retry_after_cap: Duration,
}

impl OutagePolicy {
    /// The wait before try `attempt + 1`, after `attempt` tries failed over `failing_for`;
    /// none when it is time to give up. Equal jitter: half the ceiling, plus a random
    /// part of the other half, so tries spread out without collapsing to zero.
    pub fn next_wait(
        &self,
        attempt: u32,
        failing_for: Duration,
        retry_after: Option<Duration>,
    ) -> Option<Duration> {
        if attempt >= self.min_attempts && failing_for >= self.patience {
            return None;
        }
        if let Some(asked) = retry_after {
            return Some(asked.min(self.retry_after_cap));
        }
        let ceiling = RetryPolicy {
            base: self.base,
            cap: self.max_wait,
        }
        .ceiling(attempt)
        .as_millis() as u64;
        Some(Duration::from_millis(
            ceiling / 2 + rand::random_range(0..=ceiling / 2),
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OUTAGE: OutagePolicy = OutagePolicy {
        base: Duration::from_millis(500),
        max_wait: Duration::from_secs(15),
        patience: Duration::from_secs(300),
        min_attempts: 10,
        retry_after_cap: Duration::from_secs(60),
    };

    #[test]
    fn an_outage_of_a_few_minutes_is_waited_out_and_recovery_is_noticed_within_15_s() {
        for _ in 0..50 {
            let mut waited = Duration::ZERO;
            let mut attempt = 1;
            // A 90 s outage: every try before it ends fails.
            while waited < Duration::from_secs(90) {
                let wait = OUTAGE
                    .next_wait(attempt, waited, None)
                    .expect("still trying");
                assert!(wait <= Duration::from_secs(15), "waited {wait:?} in one go");
                waited += wait;
                attempt += 1;
            }
            assert!(
                waited < Duration::from_secs(90 + 15),
                "the first try after recovery comes within 15 s ({waited:?})"
            );
        }
    }

    #[test]
    fn a_call_is_given_up_after_its_patience_and_enough_tries() {
        assert!(
            OUTAGE
                .next_wait(3, Duration::from_secs(400), None)
                .is_some()
        );
        assert!(
            OUTAGE
                .next_wait(10, Duration::from_secs(299), None)
                .is_some()
        );
        assert!(
            OUTAGE
                .next_wait(10, Duration::from_secs(300), None)
                .is_none()
        );
        assert_eq!(
            OUTAGE.next_wait(2, Duration::ZERO, Some(Duration::from_secs(600))),
            Some(Duration::from_secs(60)),
            "Retry-After is honoured up to its cap"
        );
    }

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
