//! Background jobs on apalis, sharing the application's database pool.
//!
//! apalis's SQL storages keep no backoff (a failed job would be fetched again at once), so
//! Sluice owns the retry policy: every job is stored with one apalis attempt, and our
//! runner re-enqueues a retryable failure as a new job with `run_after` set by [`retry`].
//! Job arguments carry ids only, never data or secrets.

pub mod alerts;
pub mod connections;
pub mod flows;
pub mod housekeeping;
pub mod probe;
pub mod queue;
pub mod retry;
pub mod runner;
pub mod scheduler;

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::future::Future;
use std::time::Duration;

pub use queue::JobQueue;

/// What every job handler can use: the same application state as web handlers.
pub use crate::services::App as JobEnv;

/// A failure reported by a job.
#[derive(Debug, Clone)]
pub struct JobError {
    /// What went wrong (no secrets).
    pub message: String,
    /// Whether trying again later may succeed.
    pub retryable: bool,
    /// A delay the remote side asked for (`Retry-After`), clamped by the policy.
    pub retry_after: Option<Duration>,
}

impl JobError {
    /// A transient failure: try again after a backoff.
    pub fn retryable(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: true,
            retry_after: None,
        }
    }

    /// A failure that will not go away by retrying.
    pub fn permanent(message: impl Into<String>) -> Self {
        Self {
            message: message.into(),
            retryable: false,
            retry_after: None,
        }
    }
}

impl From<sea_orm::DbErr> for JobError {
    fn from(e: sea_orm::DbErr) -> Self {
        JobError::retryable(format!("database: {e}"))
    }
}

/// A kind of background work, with its queue and limits.
pub trait Job: Serialize + DeserializeOwned + Clone + Send + Sync + Unpin + 'static {
    /// The queue name (explicit, so renaming the type strands nothing).
    const QUEUE: &'static str;
    /// Attempts before the job is recorded as failed for good.
    const MAX_ATTEMPTS: u32 = 8;
    /// Longest a single attempt may run.
    const TIMEOUT: Duration = Duration::from_secs(600);

    /// Attempts for this particular job (defaults to [`Job::MAX_ATTEMPTS`]).
    fn max_attempts(&self) -> u32 {
        Self::MAX_ATTEMPTS
    }

    /// Does the work. Must be idempotent: a job may run again after a crash.
    fn run(&self, env: &JobEnv) -> impl Future<Output = Result<(), JobError>> + Send;
}

/// What is stored in the queue: the job and which attempt this is.
#[derive(Clone, Debug, Serialize, serde::Deserialize)]
pub struct Envelope<J> {
    /// The job's arguments (ids only).
    pub job: J,
    /// Attempts already made before this one.
    #[serde(default)]
    pub attempt: u32,
    /// When it became due (Unix microseconds), to measure how long it waited for a worker.
    #[serde(default)]
    pub due_at_us: Option<i64>,
}

/// A job acts for its tenant with the system's authority, after reloading the tenant:
/// reloading proves the tenant still exists, and a deleted tenant's job ends quietly.
pub async fn tenant_scope(
    env: &JobEnv,
    tenant: crate::domain::TenantId,
) -> Result<crate::domain::TenantCtx, JobError> {
    use crate::domain::{Actor, Role, TenantCtx};
    let ctx = TenantCtx::new(tenant, Role::Admin, Actor::System);
    env.store
        .tenant(&ctx)
        .await
        .map_err(|_| JobError::permanent("tenant no longer exists"))?;
    Ok(ctx)
}

/// Resolves once the shutdown flag turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // Map the guard away at once: holding it across an await would make futures !Send.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
