//! The diagnostic job: see [`Probe`].

use super::Handler;
use crate::app::App;
use crate::queue::{JobError, Probe, ProbeMode};

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

impl Handler for Probe {
    async fn run(&self, _app: &App) -> Result<(), JobError> {
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
