//! Flows and their immutable versions, scheduling clocks and webhook lookups.

use super::entities::{dead_letters, flow_versions, flows, runs, webhook_events};
use super::{Store, now};
use crate::domain::{
    ConnectionId, DeadLetterState, FlowId, FlowStatus, FlowVersionId, RunId, TenantCtx, TenantId,
    TriggerKind, WebhookEventId,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict, Query};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, Condition, ConnectionTrait, DbErr, EntityTrait, FromQueryResult,
    JoinType, QueryFilter, QueryOrder, QuerySelect, QueryTrait, Set, SqliteTransactionMode,
    Statement, TransactionOptions, TransactionTrait,
};

/// What a run starts from (see [`Store::flow_to_run`]).
pub struct FlowToRun {
    /// The flow.
    pub flow: flows::Model,
    /// The version run.
    pub version_id: FlowVersionId,
    /// Its spec, as stored.
    pub spec: String,
    /// Whether the flow has open dead letters.
    pub open_dead_letters: bool,
}

/// One flow's share of a group commit of inbound webhooks.
pub struct WebhookArrivals {
    /// The flow's tenant.
    pub ctx: TenantCtx,
    /// The flow.
    pub flow: FlowId,
    /// The events, in arrival order.
    pub events: Vec<NewWebhookEvent>,
    /// The run to queue when none is queued yet; `None` when the flow is paused (its
    /// events are kept, nothing runs).
    pub run: Option<runs::ActiveModel>,
}

/// An inbound webhook event to store.
pub struct NewWebhookEvent {
    /// Its id, chosen by the caller.
    pub id: WebhookEventId,
    /// The sender's `webhook-id`, accepted once per flow.
    pub message_id: String,
    /// The body as received.
    pub payload: String,
}

/// A verified inbound webhook waiting for its group commit.
pub struct WebhookDelivery {
    /// The flow's tenant.
    pub ctx: TenantCtx,
    /// The flow.
    pub flow: FlowId,
    /// The event.
    pub event: NewWebhookEvent,
    /// The run to queue when none is queued yet (see [`WebhookArrivals::run`]).
    pub run: Option<runs::ActiveModel>,
    /// Told whether the event was stored (false: its message id was seen before).
    pub answer: tokio::sync::oneshot::Sender<anyhow::Result<bool>>,
}

/// What a group commit did for one flow.
pub struct WebhookAcceptance {
    /// Per event, in order: false when its message id was seen before.
    pub stored: Vec<bool>,
    /// The run the stored events joined, and whether it is new (to be enqueued).
    pub run: Option<(RunId, bool)>,
}

/// A new flow with its first version.
pub struct NewFlow {
    /// The flow row.
    pub flow: flows::ActiveModel,
    /// Version 1.
    pub version: flow_versions::ActiveModel,
}

/// Fields of the flow row that follow the current version.
pub struct FlowHead {
    /// Name.
    pub name: String,
    /// Trigger kind.
    pub trigger_kind: TriggerKind,
    /// Next scheduled run (none for manual and webhook triggers).
    pub next_run_at: Option<DateTime<Utc>>,
    /// Source connection.
    pub source: ConnectionId,
    /// Destination connection.
    pub destination: ConnectionId,
}

impl Store {
    /// Inserts a flow and its first version together.
    pub async fn insert_flow(&self, new: NewFlow) -> Result<(), DbErr> {
        let txn = self.db.begin().await?;
        new.flow.insert(&txn).await?;
        new.version.insert(&txn).await?;
        txn.commit().await
    }

    /// Appends a version and points the flow at it, if the flow is still at
    /// `expected_version` (two editors cannot silently overwrite each other).
    pub async fn append_flow_version(
        &self,
        ctx: &TenantCtx,
        id: FlowId,
        expected_version: i64,
        version: flow_versions::ActiveModel,
        head: FlowHead,
    ) -> Result<bool, DbErr> {
        let txn = self.db.begin().await?;
        let version = version.insert(&txn).await?;
        let moved = flows::Entity::update_many()
            .col_expr(flows::Column::CurrentVersionId, Expr::value(version.id))
            .col_expr(flows::Column::Version, Expr::value(version.number))
            .col_expr(flows::Column::Name, Expr::value(head.name))
            .col_expr(flows::Column::TriggerKind, Expr::value(head.trigger_kind))
            .col_expr(flows::Column::NextRunAt, Expr::value(head.next_run_at))
            .col_expr(flows::Column::SourceConnectionId, Expr::value(head.source))
            .col_expr(
                flows::Column::DestinationConnectionId,
                Expr::value(head.destination),
            )
            .col_expr(flows::Column::UpdatedAt, Expr::value(now()))
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .filter(flows::Column::Version.eq(expected_version))
            .exec(&txn)
            .await?;
        if moved.rows_affected != 1 {
            txn.rollback().await?;
            return Ok(false);
        }
        txn.commit().await?;
        Ok(true)
    }

    /// One flow of the tenant.
    pub async fn flow(&self, ctx: &TenantCtx, id: FlowId) -> Result<Option<flows::Model>, DbErr> {
        flows::Entity::find()
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .one(&self.db)
            .await
    }

    /// The tenant's flows by name.
    pub async fn flows(&self, ctx: &TenantCtx) -> Result<Vec<flows::Model>, DbErr> {
        flows::Entity::find()
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .order_by_asc(flows::Column::Name)
            .all(&self.db)
            .await
    }

    /// Whether another flow of the tenant already has this name.
    pub async fn flow_name_taken(
        &self,
        ctx: &TenantCtx,
        name: &str,
        except: Option<FlowId>,
    ) -> Result<bool, DbErr> {
        let mut q = flows::Entity::find()
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Name.eq(name));
        if let Some(id) = except {
            q = q.filter(flows::Column::Id.ne(id));
        }
        Ok(q.one(&self.db).await?.is_some())
    }

    /// What a run of a flow's version starts from, read in one query: the flow, the
    /// version, and whether the flow has open dead letters (a run that delivers a record
    /// closes its letter). `None` when the flow or the version is gone.
    pub async fn flow_to_run(
        &self,
        ctx: &TenantCtx,
        id: FlowId,
        number: i64,
    ) -> Result<Option<FlowToRun>, DbErr> {
        let open_letters = Query::select()
            .expr(Expr::val(1))
            .from(dead_letters::Entity)
            .and_where(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .and_where(dead_letters::Column::FlowId.eq(id))
            .and_where(dead_letters::Column::State.eq(DeadLetterState::Open.as_str()))
            .to_owned();
        let versions = flows::Entity::belongs_to(flow_versions::Entity)
            .from(flows::Column::Id)
            .to(flow_versions::Column::FlowId)
            .into();
        let select = flows::Entity::find()
            .join(JoinType::InnerJoin, versions)
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .filter(flow_versions::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flow_versions::Column::Number.eq(number))
            .column_as(flow_versions::Column::Id, "version_id")
            .column_as(flow_versions::Column::Spec, "version_spec")
            .column_as(Expr::exists(open_letters), "open_letters");
        // By key: one row at most, and no `LIMIT` parameter (see `by_key`).
        let Some(row) = self
            .db
            .query_all_raw(select.build(self.backend()))
            .await?
            .into_iter()
            .next()
        else {
            return Ok(None);
        };
        Ok(Some(FlowToRun {
            flow: flows::Model::from_query_result(&row, "")?,
            version_id: row.try_get("", "version_id")?,
            spec: row.try_get("", "version_spec")?,
            open_dead_letters: row.try_get("", "open_letters")?,
        }))
    }

    /// One version of a flow by number.
    pub async fn flow_version(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        number: i64,
    ) -> Result<Option<flow_versions::Model>, DbErr> {
        flow_versions::Entity::find()
            .filter(flow_versions::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flow_versions::Column::FlowId.eq(flow))
            .filter(flow_versions::Column::Number.eq(number))
            .one(&self.db)
            .await
    }

    /// A flow's versions, newest first.
    pub async fn flow_versions(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
    ) -> Result<Vec<flow_versions::Model>, DbErr> {
        flow_versions::Entity::find()
            .filter(flow_versions::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flow_versions::Column::FlowId.eq(flow))
            .order_by_desc(flow_versions::Column::Number)
            .all(&self.db)
            .await
    }

    /// Sets a flow active or paused (with the reason shown on its page).
    pub async fn set_flow_status(
        &self,
        ctx: &TenantCtx,
        id: FlowId,
        status: FlowStatus,
        reason: Option<String>,
        next_run_at: Option<DateTime<Utc>>,
    ) -> Result<bool, DbErr> {
        let mut update = flows::Entity::update_many()
            .col_expr(flows::Column::Status, Expr::value(status.as_str()))
            .col_expr(flows::Column::PausedReason, Expr::value(reason))
            .col_expr(flows::Column::NextRunAt, Expr::value(next_run_at))
            .col_expr(flows::Column::UpdatedAt, Expr::value(now()));
        if status == FlowStatus::Active {
            update = update.col_expr(flows::Column::ConsecutiveFailures, Expr::value(0));
        }
        let done = update
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Pauses every active flow reading from or writing to a connection. Returns their ids.
    pub async fn pause_flows_of_connection(
        &self,
        ctx: &TenantCtx,
        connection: ConnectionId,
        reason: &str,
    ) -> Result<Vec<FlowId>, DbErr> {
        let affected: Vec<FlowId> = flows::Entity::find()
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Status.eq(FlowStatus::Active))
            .filter(
                Condition::any()
                    .add(flows::Column::SourceConnectionId.eq(connection))
                    .add(flows::Column::DestinationConnectionId.eq(connection)),
            )
            .all(&self.db)
            .await?
            .into_iter()
            .map(|f| f.id)
            .collect();
        for id in &affected {
            self.set_flow_status(ctx, *id, FlowStatus::Paused, Some(reason.to_owned()), None)
                .await?;
        }
        Ok(affected)
    }

    /// Deletes a flow with its versions, runs, dead letters and ledger.
    pub async fn delete_flow(&self, ctx: &TenantCtx, id: FlowId) -> Result<bool, DbErr> {
        let done = flows::Entity::delete_many()
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Counts a failed run in its flow's failure streak (a run that went through its
    /// records ends the streak, see `finish_run`). Returns the new streak.
    pub async fn extend_failure_streak(&self, ctx: &TenantCtx, id: FlowId) -> Result<i32, DbErr> {
        flows::Entity::update_many()
            .col_expr(
                flows::Column::ConsecutiveFailures,
                Expr::col(flows::Column::ConsecutiveFailures).add(1),
            )
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .exec(&self.db)
            .await?;
        Ok(self
            .flow(ctx, id)
            .await?
            .map(|f| f.consecutive_failures)
            .unwrap_or(0))
    }

    /// Stores a flow's webhook token and encrypted signing secret.
    pub async fn set_flow_webhook(
        &self,
        ctx: &TenantCtx,
        id: FlowId,
        token: Option<String>,
        secret_enc: Option<String>,
    ) -> Result<(), DbErr> {
        flows::Entity::update_many()
            .col_expr(flows::Column::WebhookToken, Expr::value(token))
            .col_expr(flows::Column::WebhookSecretEnc, Expr::value(secret_enc))
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    // ---- Across tenants: the scheduler and the webhook endpoint -------------------------

    /// Active flows whose next run is due, oldest first (the scheduler claims each).
    pub async fn due_flows(
        &self,
        at: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(TenantId, FlowId, DateTime<Utc>)>, DbErr> {
        Ok(flows::Entity::find()
            .filter(flows::Column::NextRunAt.lte(at))
            .filter(flows::Column::Status.eq(FlowStatus::Active))
            .order_by_asc(flows::Column::NextRunAt)
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .filter_map(|f| f.next_run_at.map(|at| (f.tenant_id, f.id, at)))
            .collect())
    }

    /// Moves a flow's clock from `seen` to `next`, only if nobody else did: the claim
    /// that makes a tick run once across schedulers.
    pub async fn claim_flow_tick(
        &self,
        ctx: &TenantCtx,
        id: FlowId,
        seen: DateTime<Utc>,
        next: Option<DateTime<Utc>>,
    ) -> Result<bool, DbErr> {
        let done = flows::Entity::update_many()
            .col_expr(flows::Column::NextRunAt, Expr::value(next))
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(id))
            .filter(flows::Column::NextRunAt.eq(seen))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// The flow owning a webhook token (the URL is the only credential besides the
    /// signature, so this lookup is across tenants).
    pub async fn flow_by_webhook_token(&self, token: &str) -> Result<Option<flows::Model>, DbErr> {
        // Tokens are unique: by key.
        super::by_key(
            flows::Entity::find().filter(flows::Column::WebhookToken.eq(token)),
            &self.db,
        )
        .await
    }

    /// Stores inbound webhook events in one transaction (a group commit), flow by flow:
    /// each event once per message id, and, for a flow that takes webhooks and stored any,
    /// the queued run they join (`run` is inserted when none is queued yet). `enqueue`
    /// gives the statement, if any, that enqueues the new runs (tenant, run) in the same
    /// transaction.
    pub async fn accept_webhook_events(
        &self,
        arrivals: Vec<WebhookArrivals>,
        enqueue: impl FnOnce(Vec<(TenantId, RunId)>) -> anyhow::Result<Option<Statement>>,
    ) -> Result<Vec<WebhookAcceptance>, DbErr> {
        // It reads (the queued run) before it writes: on SQLite such a transaction must take
        // the write lock at its start, or a writer committing in between fails it at once
        // ("database is locked") instead of making it wait its turn.
        let txn = self
            .db
            .begin_with_options(TransactionOptions {
                sqlite_transaction_mode: Some(SqliteTransactionMode::Immediate),
                ..TransactionOptions::default()
            })
            .await?;
        let mut accepted = Vec::with_capacity(arrivals.len());
        let tenants: Vec<TenantId> = arrivals.iter().map(|a| a.ctx.tenant_id()).collect();
        for arrival in arrivals {
            // The run the events start or join, known before they are stored so that each
            // is stored with it. A new run is stored only if an event is new.
            let (run_id, new_run) = match arrival.run {
                Some(row) => {
                    match super::runs::queued_run_on(&txn, &arrival.ctx, arrival.flow).await? {
                        Some(queued) => (Some(queued.id), None),
                        None => (row.id.clone().take(), Some(row)),
                    }
                }
                None => (None, None),
            };
            let mut stored = Vec::with_capacity(arrival.events.len());
            for event in arrival.events {
                let row = webhook_events::ActiveModel {
                    id: Set(event.id),
                    flow_id: Set(arrival.flow),
                    message_id: Set(event.message_id),
                    payload: Set(event.payload),
                    run_id: Set(run_id),
                    ..webhook_events::ActiveModel::fresh(&arrival.ctx)
                };
                let inserted = webhook_events::Entity::insert(row)
                    .on_conflict(
                        OnConflict::columns([
                            webhook_events::Column::TenantId,
                            webhook_events::Column::FlowId,
                            webhook_events::Column::MessageId,
                        ])
                        .do_nothing()
                        .to_owned(),
                    )
                    .exec_without_returning(&txn)
                    .await?;
                stored.push(inserted == 1);
            }
            let run = match new_run {
                _ if !stored.contains(&true) => None,
                Some(row) => {
                    // Its id is known: reading the row back would decode every column.
                    runs::Entity::insert(row)
                        .exec_without_returning(&txn)
                        .await?;
                    run_id.map(|id| (id, true))
                }
                None => run_id.map(|id| (id, false)),
            };
            accepted.push(WebhookAcceptance { stored, run });
        }
        let started: Vec<(TenantId, RunId)> = tenants
            .into_iter()
            .zip(&accepted)
            .filter_map(|(tenant, a)| match a.run {
                Some((run, true)) => Some((tenant, run)),
                _ => None,
            })
            .collect();
        if let Some(jobs) = enqueue(started).map_err(|e| DbErr::Custom(format!("{e:#}")))? {
            txn.execute_raw(jobs).await?;
        }
        txn.commit().await?;
        Ok(accepted)
    }

    /// Recent webhook events of a flow.
    pub async fn webhook_events(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        limit: u64,
    ) -> Result<Vec<webhook_events::Model>, DbErr> {
        webhook_events::Entity::find()
            .filter(webhook_events::Column::TenantId.eq(ctx.tenant_id()))
            .filter(webhook_events::Column::FlowId.eq(flow))
            .order_by_desc(webhook_events::Column::ReceivedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Forgets webhook message ids older than the replay window.
    pub async fn purge_webhook_events(&self, before: DateTime<Utc>) -> Result<u64, DbErr> {
        super::retention::delete_in_batches::<webhook_events::Entity, _>(
            &self.db,
            webhook_events::Column::Id,
            sea_orm::Condition::all().add(webhook_events::Column::ReceivedAt.lt(before)),
        )
        .await
    }
}
