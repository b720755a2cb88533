//! The audit log: append-only, per tenant.

use super::Store;
use super::entities::audit_events;
use crate::domain::{Actor, AuditEventId, TenantCtx};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, QueryFilter, QueryOrder, QuerySelect, Set,
};

/// One thing that happened, as recorded.
pub struct AuditEntry<'a> {
    /// What happened, e.g. `member.invited`.
    pub action: &'a str,
    /// What it happened to, e.g. an e-mail or token name.
    pub target: Option<String>,
    /// Extra structured detail (never secrets).
    pub detail: Option<serde_json::Value>,
    /// Client address, when a request caused it.
    pub ip: Option<String>,
}

/// Which audit events to list.
#[derive(Clone, Debug, Default)]
pub struct AuditFilter {
    /// Actions starting with this, e.g. `support.` or `flow.`.
    pub action_prefix: Option<String>,
    /// Actors whose label contains this.
    pub actor: Option<String>,
    /// At or after.
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Before.
    pub to: Option<chrono::DateTime<chrono::Utc>>,
}

impl Store {
    /// Appends an event to the scoped tenant's audit log. `actor_label` names who acted.
    pub async fn record_audit(
        &self,
        ctx: &TenantCtx,
        actor_label: &str,
        entry: AuditEntry<'_>,
    ) -> Result<(), DbErr> {
        let actor_user = match ctx.actor() {
            Actor::User(id) => Some(*id),
            _ => None,
        };
        audit_events::ActiveModel {
            actor: Set(actor_label.to_owned()),
            actor_user_id: Set(actor_user),
            action: Set(entry.action.to_owned()),
            target: Set(entry.target),
            detail: Set(entry.detail.map(|d| d.to_string())),
            ip: Set(entry.ip),
            ..audit_events::ActiveModel::fresh(ctx)
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    /// The scoped tenant's audit events matching `filter`, newest first, before the
    /// event `before` (keyset on the time-ordered id).
    pub async fn audit_events(
        &self,
        ctx: &TenantCtx,
        filter: &AuditFilter,
        before: Option<AuditEventId>,
        limit: u64,
    ) -> Result<Vec<audit_events::Model>, DbErr> {
        let mut q =
            audit_events::Entity::find().filter(audit_events::Column::TenantId.eq(ctx.tenant_id()));
        if let Some(prefix) = filter.action_prefix.as_deref() {
            q = q.filter(audit_events::Column::Action.starts_with(prefix));
        }
        if let Some(actor) = filter.actor.as_deref() {
            q = q.filter(audit_events::Column::Actor.contains(actor));
        }
        if let Some(from) = filter.from {
            q = q.filter(audit_events::Column::CreatedAt.gte(from));
        }
        if let Some(to) = filter.to {
            q = q.filter(audit_events::Column::CreatedAt.lt(to));
        }
        if let Some(b) = before {
            q = q.filter(audit_events::Column::Id.lt(b));
        }
        q.order_by_desc(audit_events::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }
}
