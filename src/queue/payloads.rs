//! Every job's payload: ids only (see the module docs of [`crate::queue`]), with its
//! queue and limits. The handlers are in [`crate::jobs`].

use super::Job;
use crate::domain::{ConnectionId, DeliveryId, RunId, TenantId};
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// Every queue this binary works on (for the workers and the queue-depth gauge).
pub const QUEUES: [&str; 9] = [
    Housekeeping::QUEUE,
    Probe::QUEUE,
    RefreshConnection::QUEUE,
    CheckConnection::QUEUE,
    RunFlow::QUEUE,
    EvaluateRun::QUEUE,
    EvaluateConnection::QUEUE,
    DeliverNotification::QUEUE,
    AlertSweep::QUEUE,
];

/// Executes (or resumes) one run.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RunFlow {
    /// Tenant.
    pub tenant_id: TenantId,
    /// Run.
    pub run_id: RunId,
}

impl Job for RunFlow {
    const QUEUE: &'static str = "flow_runs";
    const MAX_ATTEMPTS: u32 = 5;
    // Long syncs are fine: progress is checkpointed per page and the lease is renewed.
    const TIMEOUT: Duration = Duration::from_secs(12 * 3600);
}

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
}

/// Evaluates the tenant's reconnect alerts for a connection that needs a reconnect.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EvaluateConnection {
    /// Tenant.
    pub tenant_id: TenantId,
    /// The connection.
    pub connection_id: ConnectionId,
}

impl Job for EvaluateConnection {
    const QUEUE: &'static str = "connection_alerts";
    const TIMEOUT: Duration = Duration::from_secs(60);
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
}

/// The periodic alert sweep.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertSweep {}

impl Job for AlertSweep {
    const QUEUE: &'static str = "alert_sweeps";
    const MAX_ATTEMPTS: u32 = 1;
    const TIMEOUT: Duration = Duration::from_secs(300);
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
}

/// Purges expired rows. Idempotent: running it twice removes nothing more.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Housekeeping {}

impl Job for Housekeeping {
    const QUEUE: &'static str = "housekeeping";
    const MAX_ATTEMPTS: u32 = 3;
}

/// How the diagnostic probe behaves.
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

/// A diagnostic job: `sluice admin probe-queue` (and the tests) push one to check that
/// workers pick up jobs, retry failures with backoff, record dead jobs and survive panics.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Probe {
    /// What to do.
    pub mode: ProbeMode,
    /// Attempts before it is recorded as failed.
    pub attempts: u32,
    /// A label to find it again in `failed_jobs` or the logs.
    pub label: String,
    /// When it was pushed (Unix microseconds): a successful probe records how long it
    /// waited for a worker (see `jobs::probe::take_latencies`).
    #[serde(default)]
    pub sent_at_us: Option<i64>,
}

impl Job for Probe {
    const QUEUE: &'static str = "diagnostics";

    fn max_attempts(&self) -> u32 {
        self.attempts.clamp(1, 20)
    }
}
