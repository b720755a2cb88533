//! Connection jobs: proactive token refresh, and checking a connection.

use super::{Job, JobEnv, JobError, tenant_scope as scope};
use crate::domain::{ConnectionId, TenantId};
use crate::services::connections::{self, ConnectionError, PROACTIVE_WINDOW};
use serde::{Deserialize, Serialize};

/// How often the scheduler looks for tokens about to expire.
pub const SCAN_INTERVAL: std::time::Duration = std::time::Duration::from_secs(60);

fn job_error(e: ConnectionError) -> JobError {
    match e {
        ConnectionError::Transient(m) => JobError::retryable(m),
        ConnectionError::Internal(e) => JobError::retryable(e.to_string()),
        other => JobError::permanent(other.to_string()),
    }
}

/// Refreshes a connection's access token before it expires.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RefreshConnection {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Connection.
    pub connection_id: ConnectionId,
}

impl Job for RefreshConnection {
    const QUEUE: &'static str = "token_refresh";
    const MAX_ATTEMPTS: u32 = 5;

    async fn run(&self, env: &JobEnv) -> Result<(), JobError> {
        let ctx = scope(env, self.tenant_id).await?;
        match connections::authorized(env, &ctx, self.connection_id, PROACTIVE_WINDOW, None).await {
            Ok(_) | Err(ConnectionError::NotFound | ConnectionError::ReauthRequired(_)) => Ok(()),
            Err(e) => Err(job_error(e)),
        }
    }
}

/// Calls the provider with a connection (as "Test connection" does) and records the result.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct CheckConnection {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Connection.
    pub connection_id: ConnectionId,
}

impl Job for CheckConnection {
    const QUEUE: &'static str = "connection_checks";
    const MAX_ATTEMPTS: u32 = 3;

    async fn run(&self, env: &JobEnv) -> Result<(), JobError> {
        let ctx = scope(env, self.tenant_id).await?;
        let outcome = connections::test(env, &ctx, self.connection_id)
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
pub async fn enqueue_due_refreshes(env: &JobEnv) -> anyhow::Result<usize> {
    let window = chrono::Duration::from_std(PROACTIVE_WINDOW)?;
    let due = env
        .store
        .expiring_connections(crate::store::now() + window, 500)
        .await?;
    for (tenant_id, connection_id) in &due {
        env.queue
            .push(RefreshConnection {
                tenant_id: *tenant_id,
                connection_id: *connection_id,
            })
            .await?;
    }
    Ok(due.len())
}
