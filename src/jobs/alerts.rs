//! Alert jobs: evaluating a finished run's rules, delivering one notification, and the
//! periodic sweep for time-based rules and lost work.

use super::{Job, JobEnv, JobError, tenant_scope};
use crate::domain::{DeliveryId, RunId, TenantId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Evaluates the tenant's alert rules against a finished run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvaluateRun {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The finished run.
    pub run_id: RunId,
}

impl Job for EvaluateRun {
    const QUEUE: &'static str = "alert_evaluations";
    const TIMEOUT: Duration = Duration::from_secs(60);

    async fn run(&self, env: &JobEnv) -> Result<(), JobError> {
        let ctx = tenant_scope(env, self.tenant_id).await?;
        crate::alerts::evaluate_run(env, &ctx, self.run_id).await?;
        Ok(())
    }
}

/// Sends one notification (one alert event to one channel); it retries itself.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct DeliverNotification {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The delivery.
    pub delivery_id: DeliveryId,
}

impl Job for DeliverNotification {
    const QUEUE: &'static str = "alert_deliveries";
    const TIMEOUT: Duration = Duration::from_secs(90);

    async fn run(&self, env: &JobEnv) -> Result<(), JobError> {
        let ctx = tenant_scope(env, self.tenant_id).await?;
        crate::alerts::channels::deliver(env, &ctx, self.delivery_id).await
    }
}

/// The periodic alert sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertSweep {}

impl Job for AlertSweep {
    const QUEUE: &'static str = "alert_sweeps";
    const MAX_ATTEMPTS: u32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(300);

    async fn run(&self, env: &JobEnv) -> Result<(), JobError> {
        crate::alerts::sweep(env)
            .await
            .map_err(|e| JobError::retryable(e.to_string()))
    }
}
