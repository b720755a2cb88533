//! A diagnostic job: `sluice admin probe-queue` (and the tests) push one to check that
//! workers pick up jobs, retry failures with backoff, record dead jobs and survive panics.

use super::{Job, JobEnv, JobError};
use serde::{Deserialize, Serialize};

/// How the probe behaves.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum ProbeMode {
    /// Succeeds at once.
    Succeed,
    /// Fails (retryably) on every attempt.
    Fail,
    /// Panics on every attempt.
    Panic,
}

/// A diagnostic job.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    /// What to do.
    pub mode: ProbeMode,
    /// Attempts before it is recorded as failed.
    pub attempts: u32,
    /// A label to find it again in `failed_jobs` or the logs.
    pub label: String,
    /// When it was pushed (Unix microseconds): a successful probe records how long it
    /// waited for a worker (see [`take_latencies`]).
    #[serde(default)]
    pub sent_at_us: Option<i64>,
}

fn latencies() -> &'static std::sync::Mutex<Vec<f64>> {
    static SAMPLES: std::sync::OnceLock<std::sync::Mutex<Vec<f64>>> = std::sync::OnceLock::new();
    SAMPLES.get_or_init(Default::default)
}

/// Enqueue→start latencies (seconds) of the probes this process ran since the last call.
pub fn take_latencies() -> Vec<f64> {
    latencies()
        .lock()
        .map(|mut v| std::mem::take(&mut *v))
        .unwrap_or_default()
}

impl Job for Probe {
    const QUEUE: &'static str = "diagnostics";

    fn max_attempts(&self) -> u32 {
        self.attempts.clamp(1, 20)
    }

    async fn run(&self, _env: &JobEnv) -> Result<(), JobError> {
        match self.mode {
            ProbeMode::Succeed => {
                if let Some(sent) = self.sent_at_us
                    && let Ok(mut samples) = latencies().lock()
                    && samples.len() < 1_000_000
                {
                    samples
                        .push((chrono::Utc::now().timestamp_micros() - sent).max(0) as f64 / 1e6);
                }
                tracing::info!(label = %self.label, "probe job ran");
                Ok(())
            }
            ProbeMode::Fail => Err(JobError::retryable(format!(
                "probe {} failed on purpose",
                self.label
            ))),
            ProbeMode::Panic => panic!("probe {} panicked on purpose", self.label),
        }
    }
}
