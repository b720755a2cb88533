//! The process state every entry point, use case and run works with: the store, the
//! settings, the job queue, the keys and the guarded outbound client. It is the seam of
//! the layering: modules above it take `&App`; the pieces it holds never import it.

use crate::config::{MasterKey, Settings};
use crate::connectors::http::Outbound;
use crate::crypto::Keyring;
use crate::domain::{Actor, Role, TenantCtx, TenantId};
use crate::queue::{JobQueue, WorkerHealth};
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
    pub keyring: Arc<Keyring>,
    /// The guarded outbound HTTP client.
    pub outbound: Outbound,
    /// This process, as named in the run leases it holds.
    pub process: String,
    /// Turns true when the process is shutting down: runs stop at their next page.
    pub stopping: tokio::sync::watch::Receiver<bool>,
    /// How the job workers fare (readiness).
    pub workers: WorkerHealth,
    /// Inbound webhooks waiting for their group commit.
    pub webhooks: crate::store::GroupCommit<crate::store::WebhookDelivery>,
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

    /// Acts for a tenant with the system's authority (jobs, sweeps), after reloading it:
    /// reloading proves the tenant still exists, so a deleted tenant's work ends quietly.
    pub async fn system_scope(&self, tenant: TenantId) -> Result<TenantCtx, sea_orm::DbErr> {
        let ctx = TenantCtx::new(tenant, Role::Admin, Actor::System);
        self.store.tenant(&ctx).await?;
        Ok(ctx)
    }
}
