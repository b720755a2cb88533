//! Alert rules, alerts, notification channels and deliveries.

use super::entities::{
    alert_occurrences, alert_rules, alerts, notification_channels, notification_deliveries,
};
use super::{Store, now};
use crate::domain::{
    AlertId, AlertKind, AlertRuleId, AlertState, ChannelId, DeliveryId, DeliveryState, FlowId,
    RunId, TenantCtx, TenantId,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, DbErr, EntityTrait, PaginatorTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, SqlErr,
};
use std::collections::HashMap;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

/// Which alerts a list shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AlertFilter {
    /// Open and acknowledged.
    Active,
    /// One state.
    State(AlertState),
    /// Everything.
    All,
}

/// Each workspace's enabled alert rules, as last read: every run's end is judged by them,
/// and they rarely change. A change through this process's store drops the workspace's
/// entry at once; a change another process makes (a separate `sluice worker`) is seen
/// here within [`RuleCache::KEPT_FOR`].
#[derive(Debug, Default)]
pub(super) struct RuleCache(Mutex<HashMap<TenantId, KeptRules>>);

/// A workspace's enabled rules and when they were read.
type KeptRules = (Instant, Arc<[alert_rules::Model]>);

impl RuleCache {
    const KEPT_FOR: Duration = Duration::from_secs(10);
    /// Workspaces kept at most (the cache is emptied when full).
    const WORKSPACES: usize = 1024;

    fn entries(&self) -> MutexGuard<'_, HashMap<TenantId, KeptRules>> {
        self.0
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn get(&self, tenant: TenantId) -> Option<Arc<[alert_rules::Model]>> {
        self.entries()
            .get(&tenant)
            .filter(|(read, _)| read.elapsed() < Self::KEPT_FOR)
            .map(|(_, rules)| rules.clone())
    }

    fn keep(&self, tenant: TenantId, rules: Vec<alert_rules::Model>) -> Arc<[alert_rules::Model]> {
        let rules: Arc<[alert_rules::Model]> = rules.into();
        let mut entries = self.entries();
        if entries.len() >= Self::WORKSPACES {
            entries.clear();
        }
        entries.insert(tenant, (Instant::now(), rules.clone()));
        rules
    }

    fn forget(&self, tenant: TenantId) {
        self.entries().remove(&tenant);
    }
}

impl Store {
    // ---- Rules ------------------------------------------------------------------------

    /// The tenant's rules, tenant-wide first.
    pub async fn alert_rules(&self, ctx: &TenantCtx) -> Result<Vec<alert_rules::Model>, DbErr> {
        alert_rules::Entity::find()
            .filter(alert_rules::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_asc(alert_rules::Column::FlowId)
            .order_by_asc(alert_rules::Column::Id)
            .all(&self.db)
            .await
    }

    /// The enabled rules that apply to `flow`'s runs (tenant-wide ones and the flow's own):
    /// what a finished run is judged by. Read through [`RuleCache`].
    pub async fn flow_alert_rules(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
    ) -> Result<Vec<alert_rules::Model>, DbErr> {
        let tenant = ctx.tenant_id();
        let enabled = match self.rules.get(tenant) {
            Some(rules) => rules,
            None => {
                let read = alert_rules::Entity::find()
                    .filter(alert_rules::Column::TenantId.eq(tenant))
                    .filter(alert_rules::Column::Enabled.eq(true))
                    .order_by_asc(alert_rules::Column::FlowId)
                    .order_by_asc(alert_rules::Column::Id)
                    .all(&self.db)
                    .await?;
                self.rules.keep(tenant, read)
            }
        };
        Ok(enabled
            .iter()
            .filter(|r| r.flow_id.is_none_or(|f| f == flow))
            .cloned()
            .collect())
    }

    /// One rule.
    pub async fn alert_rule(
        &self,
        ctx: &TenantCtx,
        id: AlertRuleId,
    ) -> Result<Option<alert_rules::Model>, DbErr> {
        alert_rules::Entity::find()
            .filter(alert_rules::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alert_rules::Column::Id.eq(id))
            .one(&self.db)
            .await
    }

    /// Inserts a rule (the caller fills in the tenant from its scope).
    pub async fn insert_alert_rule(
        &self,
        rule: alert_rules::ActiveModel,
    ) -> Result<alert_rules::Model, DbErr> {
        let rule = rule.insert(&self.db).await?;
        self.rules.forget(rule.tenant_id);
        Ok(rule)
    }

    /// Changes a rule's settings.
    pub async fn update_alert_rule(
        &self,
        ctx: &TenantCtx,
        id: AlertRuleId,
        threshold: Option<f64>,
        window_minutes: Option<i32>,
        throttle_minutes: i32,
        enabled: bool,
    ) -> Result<bool, DbErr> {
        let done = alert_rules::Entity::update_many()
            .col_expr(alert_rules::Column::Threshold, Expr::value(threshold))
            .col_expr(
                alert_rules::Column::WindowMinutes,
                Expr::value(window_minutes),
            )
            .col_expr(
                alert_rules::Column::ThrottleMinutes,
                Expr::value(throttle_minutes),
            )
            .col_expr(alert_rules::Column::Enabled, Expr::value(enabled))
            .col_expr(alert_rules::Column::UpdatedAt, Expr::value(now()))
            .filter(alert_rules::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alert_rules::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        self.rules.forget(ctx.tenant_id());
        Ok(done.rows_affected == 1)
    }

    /// Deletes a rule (its alerts stay, unlinked).
    pub async fn delete_alert_rule(&self, ctx: &TenantCtx, id: AlertRuleId) -> Result<bool, DbErr> {
        let done = alert_rules::Entity::delete_many()
            .filter(alert_rules::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alert_rules::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        self.rules.forget(ctx.tenant_id());
        Ok(done.rows_affected == 1)
    }

    /// Tenants with an enabled rule of `kind`, for the periodic sweep.
    pub async fn tenants_with_rule(&self, kind: AlertKind) -> Result<Vec<TenantId>, DbErr> {
        alert_rules::Entity::find()
            .select_only()
            .column(alert_rules::Column::TenantId)
            .distinct()
            .filter(alert_rules::Column::Kind.eq(kind))
            .filter(alert_rules::Column::Enabled.eq(true))
            .into_tuple()
            .all(&self.db)
            .await
    }

    // ---- Alerts -----------------------------------------------------------------------

    /// The unresolved alert with this dedupe key, if any.
    pub async fn unresolved_alert(
        &self,
        ctx: &TenantCtx,
        dedupe_key: &str,
    ) -> Result<Option<alerts::Model>, DbErr> {
        alerts::Entity::find()
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::DedupeKey.eq(dedupe_key))
            .filter(alerts::Column::State.ne(AlertState::Resolved))
            .one(&self.db)
            .await
    }

    /// The unresolved alerts among these dedupe keys, by key (one query for a run's
    /// findings).
    pub async fn unresolved_alerts(
        &self,
        ctx: &TenantCtx,
        dedupe_keys: &[String],
    ) -> Result<std::collections::HashMap<String, alerts::Model>, DbErr> {
        if dedupe_keys.is_empty() {
            return Ok(Default::default());
        }
        Ok(alerts::Entity::find()
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::DedupeKey.is_in(dedupe_keys.iter().map(String::as_str)))
            .filter(alerts::Column::State.ne(AlertState::Resolved))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|a| (a.dedupe_key.clone(), a))
            .collect())
    }

    /// The latest alert with this dedupe key resolved after `since` (for throttling).
    pub async fn recently_resolved_alert(
        &self,
        ctx: &TenantCtx,
        dedupe_key: &str,
        since: DateTime<Utc>,
    ) -> Result<Option<alerts::Model>, DbErr> {
        alerts::Entity::find()
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::DedupeKey.eq(dedupe_key))
            .filter(alerts::Column::State.eq(AlertState::Resolved))
            .filter(alerts::Column::ResolvedAt.gt(since))
            .order_by_desc(alerts::Column::ResolvedAt)
            .one(&self.db)
            .await
    }

    /// Inserts an alert. `Ok(false)` when an unresolved alert with its dedupe key exists
    /// (another evaluator won the race).
    pub async fn insert_alert(&self, alert: alerts::ActiveModel) -> Result<bool, DbErr> {
        match alert.insert(&self.db).await {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Records what fired an alert (each firing, the first included), newest last.
    pub async fn add_alert_occurrence(
        &self,
        ctx: &TenantCtx,
        alert: AlertId,
        run: Option<RunId>,
        title: &str,
        detail: &str,
    ) -> Result<(), DbErr> {
        alert_occurrences::ActiveModel {
            alert_id: Set(alert),
            run_id: Set(run),
            title: Set(title.to_owned()),
            detail: Set(detail.to_owned()),
            ..alert_occurrences::ActiveModel::fresh(ctx)
        }
        .insert(&self.db)
        .await?;
        Ok(())
    }

    /// What fired an alert, newest first.
    pub async fn alert_occurrences(
        &self,
        ctx: &TenantCtx,
        alert: AlertId,
        limit: u64,
    ) -> Result<Vec<alert_occurrences::Model>, DbErr> {
        alert_occurrences::Entity::find()
            .filter(alert_occurrences::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alert_occurrences::Column::AlertId.eq(alert))
            .order_by_desc(alert_occurrences::Column::SeenAt)
            .order_by_desc(alert_occurrences::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Counts another occurrence of an unresolved alert, whose title and detail become
    /// the latest cause's.
    pub async fn bump_alert(
        &self,
        ctx: &TenantCtx,
        id: AlertId,
        title: &str,
        detail: &str,
        run: Option<RunId>,
    ) -> Result<(), DbErr> {
        let mut q = alerts::Entity::update_many()
            .col_expr(
                alerts::Column::Occurrences,
                Expr::col(alerts::Column::Occurrences).add(1),
            )
            .col_expr(alerts::Column::Title, Expr::value(title))
            .col_expr(alerts::Column::Detail, Expr::value(detail))
            .col_expr(alerts::Column::LastSeenAt, Expr::value(now()));
        if run.is_some() {
            q = q.col_expr(alerts::Column::RunId, Expr::value(run));
        }
        q.filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Reopens a recently resolved alert (a flapping condition, throttled): no new
    /// notification. `Ok(false)` if an unresolved one appeared meanwhile.
    pub async fn reopen_alert(
        &self,
        ctx: &TenantCtx,
        id: AlertId,
        title: &str,
        detail: &str,
    ) -> Result<bool, DbErr> {
        let q = alerts::Entity::update_many()
            .col_expr(
                alerts::Column::State,
                Expr::value(AlertState::Open.as_str()),
            )
            .col_expr(
                alerts::Column::Occurrences,
                Expr::col(alerts::Column::Occurrences).add(1),
            )
            .col_expr(alerts::Column::Title, Expr::value(title))
            .col_expr(alerts::Column::Detail, Expr::value(detail))
            .col_expr(alerts::Column::LastSeenAt, Expr::value(now()))
            .col_expr(
                alerts::Column::ResolvedAt,
                Expr::value(Option::<DateTime<Utc>>::None),
            )
            .col_expr(
                alerts::Column::Resolution,
                Expr::value(Option::<String>::None),
            )
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Id.eq(id))
            .filter(alerts::Column::State.eq(AlertState::Resolved));
        match q.exec(&self.db).await {
            Ok(done) => Ok(done.rows_affected == 1),
            Err(e) if matches!(e.sql_err(), Some(SqlErr::UniqueConstraintViolation(_))) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Resolves an unresolved alert; true if this call resolved it.
    pub async fn resolve_alert(
        &self,
        ctx: &TenantCtx,
        id: AlertId,
        resolution: &str,
    ) -> Result<bool, DbErr> {
        let done = alerts::Entity::update_many()
            .col_expr(
                alerts::Column::State,
                Expr::value(AlertState::Resolved.as_str()),
            )
            .col_expr(alerts::Column::ResolvedAt, Expr::value(now()))
            .col_expr(alerts::Column::Resolution, Expr::value(resolution))
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Id.eq(id))
            .filter(alerts::Column::State.ne(AlertState::Resolved))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Acknowledges an open alert; true if this call did.
    pub async fn acknowledge_alert(
        &self,
        ctx: &TenantCtx,
        id: AlertId,
        by: &str,
    ) -> Result<bool, DbErr> {
        let done = alerts::Entity::update_many()
            .col_expr(
                alerts::Column::State,
                Expr::value(AlertState::Acknowledged.as_str()),
            )
            .col_expr(alerts::Column::AcknowledgedAt, Expr::value(now()))
            .col_expr(alerts::Column::AcknowledgedBy, Expr::value(by))
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Id.eq(id))
            .filter(alerts::Column::State.eq(AlertState::Open))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Marks an alert as notified.
    pub async fn mark_alert_notified(&self, ctx: &TenantCtx, id: AlertId) -> Result<(), DbErr> {
        alerts::Entity::update_many()
            .col_expr(alerts::Column::Notified, Expr::value(true))
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// One alert.
    pub async fn alert(
        &self,
        ctx: &TenantCtx,
        id: AlertId,
    ) -> Result<Option<alerts::Model>, DbErr> {
        alerts::Entity::find()
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Id.eq(id))
            .one(&self.db)
            .await
    }

    /// Alerts, newest first, before `before` (keyset on the time-ordered id).
    pub async fn alerts(
        &self,
        ctx: &TenantCtx,
        filter: AlertFilter,
        before: Option<AlertId>,
        limit: u64,
    ) -> Result<Vec<alerts::Model>, DbErr> {
        let mut q = alerts::Entity::find().filter(alerts::Column::TenantId.eq(ctx.tenant_id()));
        q = match filter {
            AlertFilter::Active => q.filter(alerts::Column::State.ne(AlertState::Resolved)),
            AlertFilter::State(s) => q.filter(alerts::Column::State.eq(s.as_str())),
            AlertFilter::All => q,
        };
        if let Some(b) = before {
            q = q.filter(alerts::Column::Id.lt(b));
        }
        q.order_by_desc(alerts::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Number of unresolved alerts.
    pub async fn count_active_alerts(&self, ctx: &TenantCtx) -> Result<u64, DbErr> {
        alerts::Entity::find()
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::State.ne(AlertState::Resolved))
            .count(&self.db)
            .await
    }

    /// Unresolved alerts of a kind (the sweep re-checks them).
    pub async fn unresolved_alerts_of_kind(
        &self,
        ctx: &TenantCtx,
        kind: &str,
    ) -> Result<Vec<alerts::Model>, DbErr> {
        alerts::Entity::find()
            .filter(alerts::Column::TenantId.eq(ctx.tenant_id()))
            .filter(alerts::Column::Kind.eq(kind))
            .filter(alerts::Column::State.ne(AlertState::Resolved))
            .all(&self.db)
            .await
    }

    // ---- Channels ---------------------------------------------------------------------

    /// The tenant's notification channels.
    pub async fn channels(
        &self,
        ctx: &TenantCtx,
    ) -> Result<Vec<notification_channels::Model>, DbErr> {
        notification_channels::Entity::find()
            .filter(notification_channels::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_asc(notification_channels::Column::Name)
            .all(&self.db)
            .await
    }

    /// One channel.
    pub async fn channel(
        &self,
        ctx: &TenantCtx,
        id: ChannelId,
    ) -> Result<Option<notification_channels::Model>, DbErr> {
        notification_channels::Entity::find()
            .filter(notification_channels::Column::TenantId.eq(ctx.tenant_id()))
            .filter(notification_channels::Column::Id.eq(id))
            .one(&self.db)
            .await
    }

    /// Inserts a channel.
    pub async fn insert_channel(
        &self,
        channel: notification_channels::ActiveModel,
    ) -> Result<notification_channels::Model, DbErr> {
        channel.insert(&self.db).await
    }

    /// Enables a channel again, or disables it with a reason.
    pub async fn set_channel_enabled(
        &self,
        ctx: &TenantCtx,
        id: ChannelId,
        enabled: bool,
        reason: Option<String>,
    ) -> Result<bool, DbErr> {
        let done = notification_channels::Entity::update_many()
            .col_expr(notification_channels::Column::Enabled, Expr::value(enabled))
            .col_expr(
                notification_channels::Column::DisabledReason,
                Expr::value(reason),
            )
            .col_expr(notification_channels::Column::UpdatedAt, Expr::value(now()))
            .filter(notification_channels::Column::TenantId.eq(ctx.tenant_id()))
            .filter(notification_channels::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Deletes a channel with its delivery history.
    pub async fn delete_channel(&self, ctx: &TenantCtx, id: ChannelId) -> Result<bool, DbErr> {
        let done = notification_channels::Entity::delete_many()
            .filter(notification_channels::Column::TenantId.eq(ctx.tenant_id()))
            .filter(notification_channels::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    // ---- Deliveries -------------------------------------------------------------------

    /// Creates the delivery of an alert event to a channel, once: `None` if it exists.
    pub async fn insert_delivery(
        &self,
        ctx: &TenantCtx,
        alert: AlertId,
        channel: ChannelId,
        event: &str,
    ) -> Result<Option<DeliveryId>, DbErr> {
        let id = DeliveryId::new();
        let inserted =
            notification_deliveries::Entity::insert(notification_deliveries::ActiveModel {
                id: Set(id),
                alert_id: Set(alert),
                channel_id: Set(channel),
                event: Set(event.to_owned()),
                state: Set(DeliveryState::Pending),
                attempts: Set(0),
                last_status: Set(None),
                last_error: Set(None),
                next_attempt_at: Set(Some(now())),
                delivered_at: Set(None),
                ..notification_deliveries::ActiveModel::fresh(ctx)
            })
            .on_conflict(
                OnConflict::columns([
                    notification_deliveries::Column::TenantId,
                    notification_deliveries::Column::AlertId,
                    notification_deliveries::Column::ChannelId,
                    notification_deliveries::Column::Event,
                ])
                .do_nothing()
                .to_owned(),
            )
            .exec_without_returning(&self.db)
            .await?;
        Ok((inserted == 1).then_some(id))
    }

    /// One delivery.
    pub async fn delivery(
        &self,
        ctx: &TenantCtx,
        id: DeliveryId,
    ) -> Result<Option<notification_deliveries::Model>, DbErr> {
        notification_deliveries::Entity::find()
            .filter(notification_deliveries::Column::TenantId.eq(ctx.tenant_id()))
            .filter(notification_deliveries::Column::Id.eq(id))
            .one(&self.db)
            .await
    }

    /// Takes the next attempt of a pending delivery (compare-and-set on its attempt count
    /// and due time), holding it for `lease` so the sweep does not enqueue it twice.
    pub async fn claim_delivery(
        &self,
        ctx: &TenantCtx,
        id: DeliveryId,
        attempts_seen: i32,
        lease: std::time::Duration,
    ) -> Result<bool, DbErr> {
        let at = now();
        let done = notification_deliveries::Entity::update_many()
            .col_expr(
                notification_deliveries::Column::NextAttemptAt,
                Expr::value(at + chrono::Duration::from_std(lease).unwrap_or_default()),
            )
            .filter(notification_deliveries::Column::TenantId.eq(ctx.tenant_id()))
            .filter(notification_deliveries::Column::Id.eq(id))
            .filter(notification_deliveries::Column::State.eq(DeliveryState::Pending))
            .filter(notification_deliveries::Column::Attempts.eq(attempts_seen))
            .filter(notification_deliveries::Column::NextAttemptAt.lte(at))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Records an attempt: its outcome, and when to try next (pending) or none.
    #[allow(clippy::too_many_arguments)]
    pub async fn record_delivery_attempt(
        &self,
        ctx: &TenantCtx,
        id: DeliveryId,
        state: DeliveryState,
        status: Option<i32>,
        error: Option<String>,
        next_attempt_at: Option<DateTime<Utc>>,
    ) -> Result<(), DbErr> {
        let mut q = notification_deliveries::Entity::update_many()
            .col_expr(
                notification_deliveries::Column::Attempts,
                Expr::col(notification_deliveries::Column::Attempts).add(1),
            )
            .col_expr(
                notification_deliveries::Column::State,
                Expr::value(state.as_str()),
            )
            .col_expr(
                notification_deliveries::Column::LastStatus,
                Expr::value(status),
            )
            .col_expr(
                notification_deliveries::Column::LastError,
                Expr::value(error),
            )
            .col_expr(
                notification_deliveries::Column::NextAttemptAt,
                Expr::value(next_attempt_at),
            );
        if state == DeliveryState::Delivered {
            q = q.col_expr(
                notification_deliveries::Column::DeliveredAt,
                Expr::value(now()),
            );
        }
        q.filter(notification_deliveries::Column::TenantId.eq(ctx.tenant_id()))
            .filter(notification_deliveries::Column::Id.eq(id))
            .filter(notification_deliveries::Column::State.eq(DeliveryState::Pending))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// Deliveries, newest first, before `before`; optionally of one alert.
    pub async fn deliveries(
        &self,
        ctx: &TenantCtx,
        alert: Option<AlertId>,
        before: Option<DeliveryId>,
        limit: u64,
    ) -> Result<Vec<notification_deliveries::Model>, DbErr> {
        let mut q = notification_deliveries::Entity::find()
            .filter(notification_deliveries::Column::TenantId.eq(ctx.tenant_id()));
        if let Some(a) = alert {
            q = q.filter(notification_deliveries::Column::AlertId.eq(a));
        }
        if let Some(b) = before {
            q = q.filter(notification_deliveries::Column::Id.lt(b));
        }
        q.order_by_desc(notification_deliveries::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Pending deliveries, across tenants, overdue by the given time (their job was
    /// lost): the sweep enqueues them again.
    pub async fn overdue_deliveries(
        &self,
        due_before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(TenantId, DeliveryId)>, DbErr> {
        Ok(notification_deliveries::Entity::find()
            .filter(notification_deliveries::Column::State.eq(DeliveryState::Pending))
            .filter(notification_deliveries::Column::NextAttemptAt.lt(due_before))
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|d| (d.tenant_id, d.id))
            .collect())
    }
}
