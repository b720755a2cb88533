//! Use cases, called by web handlers, the API, the command line and jobs. They validate,
//! authorise (by role, inside the `TenantCtx` they are given), write, and audit.

pub mod accounts;
pub mod alerts;
pub mod api_tokens;
pub mod connect_links;
pub mod connections;
pub mod dashboard;
pub mod flows;
pub mod keys;
pub mod members;
pub mod runs;
pub mod seed;
pub mod support;
pub mod tenants;

use crate::config::{MasterKey, Settings};
use crate::domain::TenantCtx;
use crate::jobs::JobQueue;
use crate::store::{AuditEntry, Store};
use std::sync::Arc;

/// Everything a use case needs; one per process, cheap to clone.
#[derive(Clone)]
pub struct App {
    /// The database.
    pub store: Store,
    /// Validated settings.
    pub settings: Arc<Settings>,
    /// The job queue.
    pub queue: JobQueue,
    /// Key for signed cookies (secrets at rest use the keyring).
    pub master_key: MasterKey,
    /// Keys for secrets at rest.
    pub keyring: std::sync::Arc<crate::crypto::Keyring>,
    /// The guarded outbound HTTP client.
    pub outbound: crate::connectors::http::Outbound,
    /// The built-in sandbox SaaS, in a process that serves it (web role, sandbox on).
    pub sandbox: Option<Arc<crate::sandbox::Sandbox>>,
    /// This process, as named in the run leases it holds.
    pub process: String,
    /// Turns true when the process is shutting down: runs stop at their next page.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// How the job workers fare (readiness).
    pub workers: crate::jobs::runner::WorkerHealth,
}

/// Who did something, as written in the audit log.
#[derive(Clone, Debug)]
pub struct AuditActor {
    /// Display label, e.g. "Ada Lovelace <ada@example.com>" or "API token ci-deploy".
    pub label: String,
    /// The client address.
    pub ip: Option<String>,
}

impl App {
    /// Appends to the tenant's audit log. Failure to audit fails the request: an action
    /// that cannot be recorded must not go unnoticed.
    pub async fn audit(
        &self,
        ctx: &TenantCtx,
        actor: &AuditActor,
        action: &str,
        target: Option<String>,
        detail: Option<serde_json::Value>,
    ) -> Result<(), sea_orm::DbErr> {
        self.store
            .record_audit(
                ctx,
                &actor.label,
                AuditEntry {
                    action,
                    target,
                    detail,
                    ip: actor.ip.clone(),
                },
            )
            .await
    }
}

/// Refuses the action unless the caller may change tenant configuration.
pub fn require_write(ctx: &TenantCtx) -> Result<(), crate::error::AppError> {
    if ctx.role().can_write() {
        Ok(())
    } else {
        Err(crate::error::AppError::Forbidden)
    }
}
