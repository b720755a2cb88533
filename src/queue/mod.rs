//! The job queue: apalis's tables on the application's database, the envelope each job
//! is stored in, the retry policy, and every job's payload. Producers (services, the
//! engine, alerts) import only this; the handlers live in [`crate::jobs`].
//!
//! apalis's SQL storages keep no backoff (a failed job would be fetched again at once), so
//! Sluice owns the retry policy: every job is stored with one apalis attempt, and the
//! runner re-enqueues a retryable failure as a new job with `run_after` set by [`retry`].
//! Job arguments carry ids only, never data or secrets.

mod health;
pub mod payloads;
pub mod retry;
mod sqlite_worker;
mod storage;

pub use health::WorkerHealth;
pub use payloads::*;
pub use sqlite_worker::{
    ACKNOWLEDGE, DUE_QUEUES, FETCH_PENDING, OWN_ACK_RESULT, OwnAck, OwnAcks, SqliteJobs, watch_due,
};
pub use storage::{JobQueue, QueueBackend, migrate};

use serde::Serialize;
use serde::de::DeserializeOwned;
use std::time::Duration;

/// A kind of background work: its payload, queue and limits.
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
}

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
