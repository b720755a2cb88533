//! The job handlers: what each payload of [`crate::queue`] does when a worker runs it,
//! the workers that run them, and the scheduler that enqueues periodic work.

pub mod alerts;
pub mod connections;
pub mod flows;
pub mod housekeeping;
pub mod probe;
pub mod runner;
pub mod scheduler;

use crate::app::App;
use crate::domain::{TenantCtx, TenantId};
use crate::queue::{Job, JobError, OwnAck};
use std::future::Future;

/// What a job does. Must be idempotent: a job may run again after a crash.
pub trait Handler: Job {
    /// Does the work, with the same application state as web handlers.
    fn run(&self, app: &App) -> impl Future<Output = Result<(), JobError>> + Send;

    /// [`Handler::run`], given the job's acknowledgement to commit with the work it ends
    /// (on SQLite; see [`OwnAck`]). Most jobs leave it to their worker.
    fn run_acknowledging(
        &self,
        app: &App,
        ack: Option<OwnAck>,
    ) -> impl Future<Output = Result<(), JobError>> + Send {
        drop(ack);
        self.run(app)
    }
}

/// A job acts for its tenant with the system's authority (see [`App::system_scope`]);
/// a deleted tenant's job ends for good.
pub async fn tenant_scope(app: &App, tenant: TenantId) -> Result<TenantCtx, JobError> {
    tracing::Span::current().record("tenant", tracing::field::display(tenant));
    app.system_scope(tenant)
        .await
        .map_err(|_| JobError::permanent("tenant no longer exists"))
}

/// [`tenant_scope`] for a job about one run, without reading the tenant: the run is read
/// within this scope, and a deleted tenant's runs are deleted with it, so a missing run
/// says the same. (A one-record run makes about thirty statements; this was one.)
pub fn run_scope(tenant: TenantId) -> TenantCtx {
    tracing::Span::current().record("tenant", tracing::field::display(tenant));
    TenantCtx::new(
        tenant,
        crate::domain::Role::Admin,
        crate::domain::Actor::System,
    )
}

/// Resolves once the shutdown flag turns true (or its sender is gone).
pub async fn stopped(shutdown: &mut tokio::sync::watch::Receiver<bool>) {
    // Map the guard away at once: holding it across an await would make futures !Send.
    let _ = shutdown.wait_for(|stop| *stop).await.map(|_| ());
}
