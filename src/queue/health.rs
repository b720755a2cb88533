//! How this app's job workers are faring, for readiness.

use std::sync::Arc;
use std::time::{Duration, Instant};

/// How this app's job workers are faring, for readiness (one per app, not per process:
/// tests start several apps in one process).
#[derive(Clone, Default)]
pub struct WorkerHealth(Arc<std::sync::Mutex<Health>>);

#[derive(Default)]
struct Health {
    /// Whether the workers run at all.
    running: bool,
    /// Worker failures (backend errors) lately, and when the last one happened.
    recent_failures: u32,
    last_failure: Option<Instant>,
}

/// Workers count as failing for this long after a worker stopped with an error.
const FAILING_FOR: Duration = Duration::from_secs(10);

impl WorkerHealth {
    /// Why the job workers are not fit to take work; none when they are (or when this
    /// process runs no workers).
    pub fn unhealthy(&self) -> Option<String> {
        let health = self.0.lock().ok()?;
        let recent = health
            .last_failure
            .is_some_and(|at| at.elapsed() < FAILING_FOR);
        (health.running && recent).then(|| {
            format!(
                "job workers are restarting after errors ({} lately)",
                health.recent_failures
            )
        })
    }

    /// Records a worker failure and returns how long to wait before restarting it:
    /// doubling from 50 ms to 5 s while failures follow each other, so a database that
    /// refuses work (locked, disk full) is not hammered by a hot restart loop.
    pub(crate) fn failure_backoff(&self) -> Duration {
        let Ok(mut health) = self.0.lock() else {
            return Duration::from_secs(1);
        };
        if health
            .last_failure
            .is_none_or(|at| at.elapsed() > FAILING_FOR * 3)
        {
            health.recent_failures = 0;
        }
        health.recent_failures = health.recent_failures.saturating_add(1);
        health.last_failure = Some(Instant::now());
        let exponent = health.recent_failures.saturating_sub(1).min(7);
        (Duration::from_millis(50) * 2u32.pow(exponent)).min(Duration::from_secs(5))
    }

    pub(crate) fn set_running(&self, running: bool) {
        if let Ok(mut health) = self.0.lock() {
            health.running = running;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failing_workers_restart_after_growing_pauses_and_count_as_unready() {
        let health = WorkerHealth::default();
        health.set_running(true);
        let pauses: Vec<Duration> = (0..10).map(|_| health.failure_backoff()).collect();
        assert_eq!(pauses[0], Duration::from_millis(50));
        assert!(pauses.windows(2).all(|w| w[1] >= w[0]), "{pauses:?}");
        assert_eq!(pauses[9], Duration::from_secs(5), "capped");
        assert!(
            health
                .unhealthy()
                .is_some_and(|why| why.contains("restarting"))
        );
        health.set_running(false);
        assert!(
            health.unhealthy().is_none(),
            "no workers here, nothing to report"
        );
    }
}
