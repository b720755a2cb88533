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
}

impl Job for Probe {
    const QUEUE: &'static str = "diagnostics";

    fn max_attempts(&self) -> u32 {
        self.attempts.clamp(1, 20)
    }

    async fn run(&self, _env: &JobEnv) -> Result<(), JobError> {
        match self.mode {
            ProbeMode::Succeed => {
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
