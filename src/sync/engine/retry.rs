//! Retrying one call of a run through an outage, within the run.

use super::{Runner, Stop};
use crate::queue::retry::OutagePolicy;
use crate::sync::{Fault, Phase};
use std::time::Duration;

/// Tries per page read or batch write, at least, before the run fails.
const CALL_ATTEMPTS: u32 = 10;
/// Backoff for retried calls within a run (the ceiling doubles per attempt).
const CALL_BACKOFF: Duration = Duration::from_millis(500);
/// Longest wait of our own choosing between tries: how late a recovery may be noticed.
const CALL_MAX_WAIT: Duration = Duration::from_secs(15);

impl Runner<'_> {
    /// Calls `call` until it succeeds, backing off between attempts (or waiting what the
    /// provider's `Retry-After` asks, clamped).
    pub(super) async fn retrying<T, F: Future<Output = Result<T, Fault>>>(
        &self,
        phase: Phase,
        what: &str,
        mut call: impl FnMut() -> F,
    ) -> Result<T, Stop> {
        let policy = OutagePolicy {
            base: CALL_BACKOFF,
            max_wait: CALL_MAX_WAIT,
            patience: self.app.settings.call_patience,
            min_attempts: CALL_ATTEMPTS,
            retry_after_cap: self.app.settings.retry_after_cap,
        };
        let mut attempt = 1;
        let mut first_failure: Option<tokio::time::Instant> = None;
        loop {
            let outcome = call().await.map_err(|fault| fault.during(phase));
            let failing_for = first_failure.map_or(Duration::ZERO, |at| at.elapsed());
            match outcome {
                Ok(v) => return Ok(v),
                Err(fault) if fault.is_retryable() => {
                    let (message, retry_after) = (&fault.message, fault.retry_after);
                    first_failure.get_or_insert_with(tokio::time::Instant::now);
                    let Some(delay) = policy.next_wait(attempt, failing_for, retry_after) else {
                        // Still retryable in kind (and with its status), so the run is
                        // filed as unavailable or rate limited rather than as a refusal.
                        return Err(Stop::Fault(Fault {
                            message: format!(
                                "{what} kept failing for {} s ({attempt} tries); last error: {message}",
                                failing_for.as_secs()
                            ),
                            retry_after: None,
                            ..fault
                        }));
                    };
                    let why = match retry_after {
                        Some(asked) if asked > self.app.settings.retry_after_cap => format!(
                            "Retry-After asked {} s, clamped to {} s",
                            asked.as_secs(),
                            delay.as_secs()
                        ),
                        Some(asked) => format!("Retry-After: {} s", asked.as_secs()),
                        None => "backoff with jitter".into(),
                    };
                    self.log(
                        "warn",
                        &format!(
                            "{what} failed (try {attempt}): {message}. Retrying in {:.1} s ({why}).",
                            delay.as_secs_f64()
                        ),
                        None,
                    )
                    .await;
                    // The lease is kept alive meanwhile by `keep_lease`.
                    tokio::time::sleep(delay).await;
                    attempt += 1;
                }
                Err(other) => return Err(Stop::Fault(other)),
            }
        }
    }
}
