//! Alert jobs: evaluating a finished run's rules, delivering one notification, and the
//! periodic sweep for time-based rules and lost work.

use super::{Handler, tenant_scope};
use crate::app::App;
use crate::queue::{AlertSweep, DeliverNotification, EvaluateConnection, EvaluateRun, JobError};

/// Runs are evaluated by the job that executed them (`jobs::flows`); this handler serves
/// evaluation jobs queued by an earlier version.
impl Handler for EvaluateRun {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        let ctx = tenant_scope(app, self.tenant_id).await?;
        crate::services::alerts::evaluate::evaluate_run(app, &ctx, self.run_id).await?;
        Ok(())
    }
}

impl Handler for EvaluateConnection {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        let ctx = tenant_scope(app, self.tenant_id).await?;
        crate::services::alerts::evaluate::evaluate_connection(app, &ctx, self.connection_id)
            .await?;
        Ok(())
    }
}

impl Handler for DeliverNotification {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        let ctx = tenant_scope(app, self.tenant_id).await?;
        crate::services::alerts::channels::deliver(app, &ctx, self.delivery_id).await
    }
}

impl Handler for AlertSweep {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        crate::services::alerts::evaluate::sweep(app)
            .await
            .map_err(|e| JobError::retryable(e.to_string()))
    }
}
