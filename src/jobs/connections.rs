//! Connection jobs: proactive token refresh, and checking a connection.

use super::{Handler, tenant_scope as scope};
use crate::app::App;
use crate::connectors::ConnectionError;
use crate::connectors::session::{self, PROACTIVE_WINDOW};
use crate::queue::{CheckConnection, JobError, RefreshConnection};
use crate::services::connections;

/// How often the scheduler looks for tokens about to expire.
pub const SCAN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn job_error(e: ConnectionError) -> JobError {
    match e {
        ConnectionError::Transient(m) => JobError::retryable(m),
        ConnectionError::Internal(e) => JobError::retryable(e.to_string()),
        other => JobError::permanent(other.to_string()),
    }
}

impl Handler for RefreshConnection {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        let ctx = scope(app, self.tenant_id).await?;
        match session::authorized(app, &ctx, self.connection_id, PROACTIVE_WINDOW, None).await {
            Ok(_) | Err(ConnectionError::NotFound | ConnectionError::ReauthRequired(_)) => Ok(()),
            Err(e) => Err(job_error(e)),
        }
    }
}

impl Handler for CheckConnection {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        let ctx = scope(app, self.tenant_id).await?;
        let outcome = connections::test(app, &ctx, self.connection_id)
            .await
            .map_err(|e| JobError::retryable(e.public_message()))?;
        if outcome.ok {
            Ok(())
        } else {
            Err(JobError::permanent(outcome.message))
        }
    }
}

/// Enqueues a refresh for every active connection whose token expires soon.
pub async fn enqueue_due_refreshes(app: &App) -> anyhow::Result<usize> {
    let window = chrono::Duration::from_std(PROACTIVE_WINDOW)?;
    let due = app
        .store
        .expiring_connections(crate::store::now() + window, 500)
        .await?;
    for (tenant_id, connection_id) in &due {
        app.queue
            .push(RefreshConnection {
                tenant_id: *tenant_id,
                connection_id: *connection_id,
            })
            .await?;
    }
    Ok(due.len())
}
