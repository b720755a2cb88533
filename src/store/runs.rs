//! Runs (with their lease, checkpoints and counts), the step log, the record ledger and
//! the dead letters. A page of work commits in one transaction, guarded by the run's
//! lease, so a crashed or superseded worker can never commit twice.

use super::entities::{dead_letters, flows, run_events, runs};
use super::sql::Marks;
use super::{Store, now};
use crate::domain::RecordFault;
use crate::domain::{
    DeadLetterId, DeadLetterState, ErrorClass, FlowId, RunId, RunStatus, RunTrigger, TenantCtx,
    TenantId,
};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::{Expr, ExprTrait, OnConflict};
use sea_orm::{
    ActiveModelTrait, ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, PaginatorTrait,
    QueryFilter, QueryOrder, QuerySelect, Set, Statement, TransactionTrait, Value,
};
use std::collections::HashMap;

/// What a ledger row says about a record key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LedgerEntry {
    /// Digest of the mapped record last delivered.
    pub content_hash: Vec<u8>,
    /// The id the destination gave it (create mode).
    pub dest_id: Option<String>,
}

/// A record that failed, for the dead letters.
pub struct Failure {
    /// Source record key.
    pub record_key: String,
    /// The source record (JSON).
    pub payload: String,
    /// Why it failed.
    pub error_class: RecordFault,
    /// What went wrong.
    pub error: String,
}

/// The effects of one committed page.
#[derive(Default)]
pub struct PageCommit {
    /// Resume point after this page (none: the source is exhausted).
    pub cursor: Option<String>,
    /// Highest last-modified value seen so far.
    pub watermark: Option<String>,
    /// Counts to add.
    pub read: i64,
    /// Written.
    pub written: i64,
    /// Unchanged (same content as already delivered).
    pub unchanged: i64,
    /// Filtered out.
    pub filtered: i64,
    /// Failed (dead letters).
    pub failed: i64,
    /// Source total when the provider reports it.
    pub total: Option<i64>,
    /// Ledger rows to upsert: key digest → entry.
    pub ledger: Vec<(Vec<u8>, LedgerEntry)>,
    /// New or repeated failures.
    pub failures: Vec<Failure>,
    /// Record keys whose open dead letters are now delivered.
    pub delivered: Vec<String>,
    /// The run-log line for this page, written in the same transaction.
    pub log: Option<RunLine>,
    /// Earlier run-log lines that waited for this commit (see [`RunLine`]).
    pub earlier: Vec<RunLine>,
}

impl PageCommit {
    /// The page's change to its run (counts, checkpoint, heartbeat), for the caller to
    /// guard by the lease, and the rows it writes beside it.
    fn split(self) -> (sea_orm::UpdateMany<runs::Entity>, PageRows) {
        let add = |column: runs::Column, n: i64| (column, Expr::col(column).add(n));
        let mut update = runs::Entity::update_many()
            .col_expr(runs::Column::Cursor, Expr::value(self.cursor))
            .col_expr(runs::Column::Pages, Expr::col(runs::Column::Pages).add(1))
            .col_expr(runs::Column::HeartbeatAt, Expr::value(now()));
        for (column, value) in [
            add(runs::Column::RecordsRead, self.read),
            add(runs::Column::RecordsWritten, self.written),
            add(runs::Column::RecordsUnchanged, self.unchanged),
            add(runs::Column::RecordsFiltered, self.filtered),
            add(runs::Column::RecordsFailed, self.failed),
        ] {
            update = update.col_expr(column, value);
        }
        if self.watermark.is_some() {
            update = update.col_expr(runs::Column::Watermark, Expr::value(self.watermark));
        }
        if self.total.is_some() {
            update = update.col_expr(runs::Column::RecordsTotal, Expr::value(self.total));
        }
        let rows = PageRows {
            ledger: self.ledger,
            failures: self.failures,
            delivered: self.delivered,
            log: self.log,
            earlier: self.earlier,
        };
        (update, rows)
    }

    /// Adds the page's counts to `run`'s, as committing the page will.
    pub fn add_counts_to(&self, run: &mut runs::Model) {
        run.records_read += self.read;
        run.records_written += self.written;
        run.records_unchanged += self.unchanged;
        run.records_filtered += self.filtered;
        run.records_failed += self.failed;
    }

    /// Whether the destination refused any of the page's records.
    pub fn destination_refused(&self) -> bool {
        self.failures
            .iter()
            .any(|f| f.error_class == RecordFault::Rejected)
    }
}

/// The rows a page commit writes beside its run's update.
struct PageRows {
    ledger: Vec<(Vec<u8>, LedgerEntry)>,
    failures: Vec<Failure>,
    delivered: Vec<String>,
    log: Option<RunLine>,
    earlier: Vec<RunLine>,
}

impl PageRows {
    /// Writes the ledger rows, the run-log lines (then `later` ones, in one statement)
    /// and the dead letters, inside the page's transaction.
    async fn write<C: ConnectionTrait>(
        self,
        txn: &C,
        ctx: &TenantCtx,
        flow: FlowId,
        run: RunId,
        later: Vec<RunLine>,
    ) -> Result<(), DbErr> {
        upsert_ledger(txn, ctx.tenant_id(), flow, &self.ledger).await?;
        let mut lines = self.earlier;
        lines.extend(self.log);
        lines.extend(later);
        insert_run_lines(txn, ctx, run, lines).await?;
        let at = now();
        for f in self.failures {
            dead_letters::Entity::insert(dead_letters::ActiveModel {
                flow_id: Set(flow),
                run_id: Set(run),
                first_run_id: Set(Some(run)),
                record_key: Set(f.record_key),
                payload: Set(f.payload),
                error_class: Set(f.error_class),
                error: Set(f.error),
                attempts: Set(1),
                state: Set(DeadLetterState::Open),
                created_at: Set(at),
                updated_at: Set(at),
                ..dead_letters::ActiveModel::fresh(ctx)
            })
            .on_conflict(
                OnConflict::columns([
                    dead_letters::Column::TenantId,
                    dead_letters::Column::FlowId,
                    dead_letters::Column::RecordKey,
                ])
                .update_columns([
                    dead_letters::Column::RunId,
                    dead_letters::Column::Payload,
                    dead_letters::Column::ErrorClass,
                    dead_letters::Column::Error,
                    dead_letters::Column::State,
                    dead_letters::Column::UpdatedAt,
                ])
                .value(
                    dead_letters::Column::Attempts,
                    Expr::col((dead_letters::Entity, dead_letters::Column::Attempts)).add(1),
                )
                .to_owned(),
            )
            .exec_without_returning(txn)
            .await?;
        }
        for chunk in self.delivered.chunks(500) {
            dead_letters::Entity::update_many()
                .col_expr(
                    dead_letters::Column::State,
                    Expr::value(DeadLetterState::Replayed.as_str()),
                )
                .col_expr(dead_letters::Column::UpdatedAt, Expr::value(at))
                .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
                .filter(dead_letters::Column::FlowId.eq(flow))
                .filter(dead_letters::Column::State.eq(DeadLetterState::Open))
                .filter(dead_letters::Column::RecordKey.is_in(chunk.iter().cloned()))
                .exec(txn)
                .await?;
        }
        Ok(())
    }
}

/// A run-log line written with the next commit of its run rather than on its own: one
/// transaction fewer per line, and the line says when it was said.
#[derive(Clone, Debug)]
pub struct RunLine {
    /// When it was said.
    pub at: DateTime<Utc>,
    /// `info`, `warn` or `error`.
    pub level: &'static str,
    /// The line.
    pub message: String,
    /// What it is about, in detail (a page's exchanges).
    pub detail: Option<serde_json::Value>,
}

/// Writes held run-log lines in their order (the ids are made here, in that order).
async fn insert_run_lines<C: ConnectionTrait>(
    db: &C,
    ctx: &TenantCtx,
    run: RunId,
    lines: Vec<RunLine>,
) -> Result<(), DbErr> {
    if lines.is_empty() {
        return Ok(());
    }
    let rows = lines.into_iter().map(|line| run_events::ActiveModel {
        run_id: Set(run),
        at: Set(line.at),
        level: Set(line.level.to_owned()),
        message: Set(line.message),
        detail: Set(line.detail.map(|d| d.to_string())),
        ..run_events::ActiveModel::fresh(ctx)
    });
    run_events::Entity::insert_many(rows)
        .exec_without_returning(db)
        .await?;
    Ok(())
}

/// Which runs a history page shows.
#[derive(Clone, Debug, Default)]
pub struct RunFilter {
    /// One flow.
    pub flow: Option<FlowId>,
    /// One status.
    pub status: Option<RunStatus>,
    /// One trigger.
    pub trigger: Option<RunTrigger>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

/// Which failed runs the support console shows (across tenants).
#[derive(Clone, Debug, Default)]
pub struct FailureFilter {
    /// One tenant.
    pub tenant: Option<TenantId>,
    /// One flow.
    pub flow: Option<FlowId>,
    /// The provider at fault.
    pub provider: Option<String>,
    /// One class.
    pub class: Option<ErrorClass>,
    /// Created at or after.
    pub from: Option<DateTime<Utc>>,
    /// Created before.
    pub to: Option<DateTime<Utc>>,
}

/// The smallest time-ordered (v7) id created at `at`: run ids sort by creation time, so
/// time ranges become id ranges and use the same indexes as keyset pagination.
pub fn id_floor(at: DateTime<Utc>) -> uuid::Uuid {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes = [0u8; 16];
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    uuid::Uuid::from_bytes(bytes)
}

fn time_range<Q: QueryFilter>(
    mut q: Q,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
) -> Q {
    if let Some(from) = from {
        q = q.filter(runs::Column::Id.gte(id_floor(from)));
    }
    if let Some(to) = to {
        q = q.filter(runs::Column::Id.lt(id_floor(to)));
    }
    q
}

/// A run executing with a live heartbeat (see [`Store::running_runs`]).
#[derive(Clone, Copy, Debug)]
pub struct RunningRun {
    /// The run.
    pub id: RunId,
    /// Its flow.
    pub flow: FlowId,
    /// What started it.
    pub trigger: RunTrigger,
    /// Whether a worker holds its lease (a queued run waiting for capacity has none).
    pub leased: bool,
}

/// A run as its end was committed, and its flow as that commit left it (none if the flow
/// was deleted meanwhile).
pub struct FinishedRun {
    pub run: runs::Model,
    pub flow: Option<flows::Model>,
}

/// How a run ended.
#[derive(Clone, Debug)]
pub struct RunEnd {
    /// Final status.
    pub status: RunStatus,
    /// What went wrong, for failed runs.
    pub error: Option<String>,
    /// Why it failed, for search (also set for partial failures).
    pub class: Option<ErrorClass>,
    /// The provider at fault, when one is.
    pub provider: Option<String>,
    /// Whether the run went through all its records (succeeded, or some records failed):
    /// then the flow's failure streak ends, and its watermark moves to `watermark`.
    pub completed: bool,
    /// The flow's new watermark (incremental flows).
    pub watermark: Option<String>,
    /// Run-log lines written with the end (the last says how it ended).
    pub lines: Vec<RunLine>,
    /// When it ended.
    pub at: DateTime<Utc>,
    /// Whether its alert rules were judged before the end and found nothing to do: the
    /// end's commit then marks it checked.
    pub alerts_checked: bool,
    /// A statement committed with the end, if it commits (the acknowledgement of the
    /// queued job that ran the run).
    pub also: Option<Statement>,
}

impl RunEnd {
    /// An end with nothing to explain.
    pub fn plain(status: RunStatus) -> Self {
        Self {
            status,
            error: None,
            class: None,
            provider: None,
            completed: false,
            watermark: None,
            lines: Vec::new(),
            at: now(),
            alerts_checked: false,
            also: None,
        }
    }

    /// The end of a run that went through all its records.
    pub fn completed(status: RunStatus, watermark: Option<String>) -> Self {
        Self {
            completed: true,
            watermark,
            ..Self::plain(status)
        }
    }

    /// `run` as this end's commit leaves it (what the alert rules judge before it).
    pub fn applied_to(&self, run: &runs::Model) -> runs::Model {
        runs::Model {
            status: self.status,
            error: self.error.clone(),
            error_class: self.class,
            error_provider: self.provider.clone(),
            finished_at: Some(self.at),
            duration_ms: Some(self.duration_ms(run)),
            lease_holder: None,
            alerts_checked: self.alerts_checked,
            ..run.clone()
        }
    }

    /// How long `run` took, from its start (or creation) to this end.
    fn duration_ms(&self, run: &runs::Model) -> i64 {
        let start = run.started_at.unwrap_or(run.created_at);
        Ord::max((self.at - start).num_milliseconds(), 0)
    }
}

/// Counts of a run.
pub fn counts_of(run: &runs::Model) -> [i64; 5] {
    [
        run.records_read,
        run.records_written,
        run.records_unchanged,
        run.records_filtered,
        run.records_failed,
    ]
}

impl Store {
    /// Inserts a queued run.
    pub async fn insert_run(&self, run: runs::ActiveModel) -> Result<runs::Model, DbErr> {
        run.insert(&self.db).await
    }

    /// One run of the tenant.
    pub async fn run(&self, ctx: &TenantCtx, id: RunId) -> Result<Option<runs::Model>, DbErr> {
        super::by_key(
            runs::Entity::find()
                .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
                .filter(runs::Column::Id.eq(id)),
            &self.db,
        )
        .await
    }

    /// A flow's runs, newest first, before `before` (keyset pagination on the time-ordered
    /// id).
    pub async fn runs(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        before: Option<RunId>,
        limit: u64,
    ) -> Result<Vec<runs::Model>, DbErr> {
        let mut q = runs::Entity::find()
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::FlowId.eq(flow));
        if let Some(b) = before {
            q = q.filter(runs::Column::Id.lt(b));
        }
        q.order_by_desc(runs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// The tenant's runs matching `filter`, newest first, before `before`.
    pub async fn run_history(
        &self,
        ctx: &TenantCtx,
        filter: &RunFilter,
        before: Option<RunId>,
        limit: u64,
    ) -> Result<Vec<runs::Model>, DbErr> {
        let mut q = runs::Entity::find().filter(runs::Column::TenantId.eq(ctx.tenant_id()));
        if let Some(f) = filter.flow {
            q = q.filter(runs::Column::FlowId.eq(f));
        }
        if let Some(s) = filter.status {
            q = q.filter(runs::Column::Status.eq(s.as_str()));
        }
        if let Some(t) = filter.trigger {
            q = q.filter(runs::Column::Trigger.eq(t.as_str()));
        }
        q = time_range(q, filter.from, filter.to);
        if let Some(b) = before {
            q = q.filter(runs::Column::Id.lt(b));
        }
        q.order_by_desc(runs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Retention: deletes run logs, settled dead letters and notification deliveries older
    /// than `detail_before`, and finished runs (with their logs) older than
    /// `runs_before`, with resolved alerts as old. Rollups are kept. Returns rows removed.
    pub async fn prune_history(
        &self,
        detail_before: DateTime<Utc>,
        runs_before: DateTime<Utc>,
    ) -> Result<u64, DbErr> {
        use super::entities::{alerts, notification_deliveries};
        use super::retention::delete_in_batches;
        use sea_orm::Condition;
        let mut removed = delete_in_batches::<run_events::Entity, _>(
            &self.db,
            run_events::Column::Id,
            Condition::all().add(run_events::Column::At.lt(detail_before)),
        )
        .await?;
        removed += delete_in_batches::<dead_letters::Entity, _>(
            &self.db,
            dead_letters::Column::Id,
            Condition::all()
                .add(dead_letters::Column::State.ne(DeadLetterState::Open))
                .add(dead_letters::Column::UpdatedAt.lt(detail_before)),
        )
        .await?;
        removed += delete_in_batches::<notification_deliveries::Entity, _>(
            &self.db,
            notification_deliveries::Column::Id,
            Condition::all()
                .add(notification_deliveries::Column::State.ne("pending"))
                .add(notification_deliveries::Column::CreatedAt.lt(detail_before)),
        )
        .await?;
        removed += delete_in_batches::<runs::Entity, _>(
            &self.db,
            runs::Column::Id,
            Condition::all().add(runs::Column::FinishedAt.lt(runs_before)),
        )
        .await?;
        removed += delete_in_batches::<alerts::Entity, _>(
            &self.db,
            alerts::Column::Id,
            Condition::all()
                .add(alerts::Column::State.eq("resolved"))
                .add(alerts::Column::ResolvedAt.lt(runs_before)),
        )
        .await?;
        Ok(removed)
    }

    /// Inserts finished runs in one statement (seeding).
    pub async fn insert_runs_bulk(&self, rows: Vec<runs::Model>) -> Result<(), DbErr> {
        if rows.is_empty() {
            return Ok(());
        }
        runs::Entity::insert_many(rows.into_iter().map(runs::ActiveModel::from))
            .exec_without_returning(&self.db)
            .await?;
        Ok(())
    }

    /// Notes a run as its flow's last (seeding; live runs do this as they finish).
    pub async fn note_last_run(&self, ctx: &TenantCtx, run: &runs::Model) -> Result<(), DbErr> {
        // The last success is the last run that delivered everything.
        let success = run.status == RunStatus::Succeeded;
        let mut q = flows::Entity::update_many()
            .col_expr(flows::Column::LastRunId, Expr::value(run.id))
            .col_expr(flows::Column::LastRunStatus, Expr::value(run.status))
            .col_expr(flows::Column::LastRunAt, Expr::value(run.finished_at));
        if success {
            q = q.col_expr(flows::Column::LastSuccessAt, Expr::value(run.finished_at));
        }
        q.filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(run.flow_id))
            .exec(&self.db)
            .await?;
        Ok(())
    }

    /// A run of any tenant, for support staff (who then act in its tenant's scope).
    pub async fn run_of_any_tenant(&self, id: RunId) -> Result<Option<runs::Model>, DbErr> {
        runs::Entity::find_by_id(id).one(&self.db).await
    }

    /// Failed and partially failed runs across tenants, newest first (support console).
    pub async fn failed_runs(
        &self,
        filter: &FailureFilter,
        before: Option<RunId>,
        limit: u64,
    ) -> Result<Vec<runs::Model>, DbErr> {
        let mut q = runs::Entity::find().filter(runs::Column::ErrorClass.is_not_null());
        if let Some(t) = filter.tenant {
            q = q.filter(runs::Column::TenantId.eq(t));
        }
        if let Some(f) = filter.flow {
            q = q.filter(runs::Column::FlowId.eq(f));
        }
        if let Some(p) = &filter.provider {
            q = q.filter(runs::Column::ErrorProvider.eq(p.as_str()));
        }
        if let Some(c) = filter.class {
            q = q.filter(runs::Column::ErrorClass.eq(c.as_str()));
        }
        q = time_range(q, filter.from, filter.to);
        if let Some(b) = before {
            q = q.filter(runs::Column::Id.lt(b));
        }
        q.order_by_desc(runs::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// The flow's queued run (not a replay), which a new request to run can join: it has
    /// not read anything yet, so it will see whatever prompted the request.
    pub async fn queued_run(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
    ) -> Result<Option<runs::Model>, DbErr> {
        queued_run_on(&self.db, ctx, flow).await
    }

    /// One run of the tenant, and the tenant's runs executing with a heartbeat after
    /// `fresh_after`, in one read: a worker about to execute the run checks them for the
    /// tenant's concurrency cap and for a run of the same flow already going.
    pub async fn run_and_running(
        &self,
        ctx: &TenantCtx,
        id: RunId,
        fresh_after: DateTime<Utc>,
    ) -> Result<(Option<runs::Model>, Vec<RunningRun>), DbErr> {
        use sea_orm::Condition;
        let executing = || {
            Condition::all()
                .add(runs::Column::Status.eq(RunStatus::Running))
                .add(runs::Column::HeartbeatAt.gt(fresh_after))
        };
        let rows = runs::Entity::find()
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(
                Condition::any()
                    .add(runs::Column::Id.eq(id))
                    .add(executing()),
            )
            .all(&self.db)
            .await?;
        let mut run = None;
        let mut running = Vec::new();
        for row in rows {
            if row.status == RunStatus::Running
                && row.heartbeat_at.is_some_and(|at| at > fresh_after)
            {
                running.push(RunningRun {
                    id: row.id,
                    flow: row.flow_id,
                    trigger: row.trigger,
                    leased: row.lease_holder.is_some(),
                });
            }
            if row.id == id {
                run = Some(row);
            }
        }
        Ok((run, running))
    }

    /// Takes the run's lease at `at`: it must be unfinished and either free, ours, or
    /// abandoned (no heartbeat since `stale_before`). Marks it running, started at `at`
    /// unless it started before.
    pub async fn claim_run(
        &self,
        ctx: &TenantCtx,
        id: RunId,
        holder: &str,
        stale_before: DateTime<Utc>,
        at: DateTime<Utc>,
    ) -> Result<bool, DbErr> {
        let done = runs::Entity::update_many()
            .col_expr(
                runs::Column::Status,
                Expr::value(RunStatus::Running.as_str()),
            )
            .col_expr(runs::Column::LeaseHolder, Expr::value(holder))
            .col_expr(runs::Column::HeartbeatAt, Expr::value(at))
            .col_expr(
                runs::Column::StartedAt,
                Expr::col(runs::Column::StartedAt).if_null(at),
            )
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(
                runs::Column::Status
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .filter(
                runs::Column::LeaseHolder
                    .is_null()
                    .or(runs::Column::LeaseHolder.eq(holder))
                    .or(runs::Column::HeartbeatAt.lt(stale_before)),
            )
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Keeps a queued run visibly alive while it waits for capacity, so orphan recovery
    /// leaves it alone.
    pub async fn touch_queued_run(&self, ctx: &TenantCtx, id: RunId) -> Result<(), DbErr> {
        runs::Entity::update_many()
            .col_expr(runs::Column::HeartbeatAt, Expr::value(now()))
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(runs::Column::Status.eq(RunStatus::Queued))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Renews the lease. False when another worker took the run over (or it ended).
    pub async fn heartbeat_run(
        &self,
        ctx: &TenantCtx,
        id: RunId,
        holder: &str,
    ) -> Result<bool, DbErr> {
        let done = runs::Entity::update_many()
            .col_expr(runs::Column::HeartbeatAt, Expr::value(now()))
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(runs::Column::LeaseHolder.eq(holder))
            .filter(runs::Column::Status.eq(RunStatus::Running))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Gives up the run's lease (at shutdown), so another worker may take it at once.
    pub async fn release_run(
        &self,
        ctx: &TenantCtx,
        id: RunId,
        holder: &str,
    ) -> Result<bool, DbErr> {
        let done = release_lease_update()
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(runs::Column::LeaseHolder.eq(holder))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Expires the lease of every unfinished run one process holds (its holders start
    /// with `process`), across tenants: what a shutdown could not stop at a page boundary.
    pub async fn release_runs_of_process(
        &self,
        process: &str,
    ) -> Result<Vec<(TenantId, RunId)>, DbErr> {
        let held: Vec<(TenantId, RunId)> = runs::Entity::find()
            .filter(runs::Column::LeaseHolder.starts_with(process))
            .filter(runs::Column::Status.eq(RunStatus::Running))
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.tenant_id, r.id))
            .collect();
        // Expired rather than cleared: the holder stays named, so the next execution
        // knows the last one stopped mid-page and rechecks what it may have written.
        runs::Entity::update_many()
            .col_expr(
                runs::Column::HeartbeatAt,
                Expr::value(DateTime::<Utc>::UNIX_EPOCH),
            )
            .filter(runs::Column::LeaseHolder.starts_with(process))
            .filter(runs::Column::Status.eq(RunStatus::Running))
            .exec(&self.db)
            .await?;
        Ok(held)
    }

    /// Commits one page: counts, checkpoint, ledger and dead letters, atomically and only
    /// while `holder` still holds the run. Returns the run as committed, or `None` (and
    /// nothing written) if it was not held.
    pub async fn commit_page(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        run: RunId,
        holder: &str,
        page: PageCommit,
    ) -> Result<Option<runs::Model>, DbErr> {
        let txn = self.db.begin().await?;
        let (update, rows) = page.split();
        let Some(committed) = update
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(run))
            .filter(runs::Column::LeaseHolder.eq(holder))
            .filter(runs::Column::Status.eq(RunStatus::Running))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next()
        else {
            txn.rollback().await?;
            return Ok(None);
        };
        rows.write(&txn, ctx, flow, run, Vec::new()).await?;
        txn.commit().await?;
        Ok(Some(committed))
    }

    /// Ends a run (only by its lease holder, or by anyone when `holder` is none, for runs
    /// that never started). In the same transaction it adds the run to the metric rollups
    /// and notes it as its flow's last run, so dashboards never count a run twice or miss
    /// one. Returns the finished run, or `None` if it was not ours to finish.
    pub async fn finish_run(
        &self,
        ctx: &TenantCtx,
        id: RunId,
        holder: Option<&str>,
        end: RunEnd,
    ) -> Result<Option<runs::Model>, DbErr> {
        // Read before the transaction: on SQLite a transaction that reads first and then
        // writes can fail at once with "database is locked" when another writer commits
        // in between; one that writes first waits its turn.
        let Some(run) = self.run(ctx, id).await? else {
            return Ok(None);
        };
        Ok(self
            .finish_run_as_read(ctx, &run, holder, end, None)
            .await?
            .map(|finished| finished.run))
    }

    /// [`Store::finish_run`] for a run its caller has just read (its start gives the
    /// duration), read outside any transaction. With `last_page`, that page is committed
    /// in the same transaction and the same update of the run (it must then be held by
    /// `holder`): a one-page run ends in one commit.
    pub async fn finish_run_as_read(
        &self,
        ctx: &TenantCtx,
        run: &runs::Model,
        holder: Option<&str>,
        end: RunEnd,
        last_page: Option<PageCommit>,
    ) -> Result<Option<FinishedRun>, DbErr> {
        let id = run.id;
        let txn = self.db.begin().await?;
        let at = end.at;
        let duration_ms = end.duration_ms(run);
        let (update, page_rows) = match last_page {
            Some(page) => {
                let (update, rows) = page.split();
                (update, Some(rows))
            }
            None => (runs::Entity::update_many(), None),
        };
        let mut q = update
            .col_expr(runs::Column::Status, Expr::value(end.status.as_str()))
            .col_expr(runs::Column::Error, Expr::value(end.error.clone()))
            .col_expr(
                runs::Column::ErrorClass,
                Expr::value(end.class.map(|c| c.as_str())),
            )
            .col_expr(
                runs::Column::ErrorProvider,
                Expr::value(end.provider.clone()),
            )
            .col_expr(runs::Column::FinishedAt, Expr::value(at))
            .col_expr(runs::Column::DurationMs, Expr::value(duration_ms))
            .col_expr(
                runs::Column::LeaseHolder,
                Expr::value(Option::<String>::None),
            )
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(
                runs::Column::Status
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            );
        if end.alerts_checked {
            q = q.col_expr(runs::Column::AlertsChecked, Expr::value(true));
        }
        if let Some(h) = holder {
            q = q.filter(runs::Column::LeaseHolder.eq(h));
        }
        let Some(run) = q.exec_with_returning(&txn).await?.into_iter().next() else {
            txn.rollback().await?;
            return Ok(None);
        };
        super::metrics::add_to_rollups(&txn, &run).await?;
        match page_rows {
            Some(rows) => rows.write(&txn, ctx, run.flow_id, id, end.lines).await?,
            None => insert_run_lines(&txn, ctx, id, end.lines).await?,
        }
        let mut flow = flows::Entity::update_many()
            .col_expr(flows::Column::LastRunId, Expr::value(run.id))
            .col_expr(flows::Column::LastRunStatus, Expr::value(run.status))
            .col_expr(flows::Column::LastRunAt, Expr::value(at));
        if end.status == RunStatus::Succeeded {
            flow = flow.col_expr(flows::Column::LastSuccessAt, Expr::value(at));
        }
        if end.completed {
            flow = flow.col_expr(flows::Column::ConsecutiveFailures, Expr::value(0));
            if let Some(watermark) = end.watermark {
                flow = flow.col_expr(flows::Column::Watermark, Expr::value(watermark));
            }
        }
        let flow = flow
            .filter(flows::Column::TenantId.eq(ctx.tenant_id()))
            .filter(flows::Column::Id.eq(run.flow_id))
            .exec_with_returning(&txn)
            .await?
            .into_iter()
            .next();
        if let Some(also) = end.also {
            txn.execute_raw(also).await?;
        }
        txn.commit().await?;
        Ok(Some(FinishedRun { run, flow }))
    }

    /// Marks a finished run's alerts as evaluated; false if another evaluator did first.
    pub async fn mark_alerts_checked(&self, ctx: &TenantCtx, id: RunId) -> Result<bool, DbErr> {
        let done = runs::Entity::update_many()
            .col_expr(runs::Column::AlertsChecked, Expr::value(true))
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(runs::Column::AlertsChecked.eq(false))
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Finished runs, across tenants, whose alerts were never evaluated (their job was
    /// lost): the alert sweep evaluates them.
    pub async fn unchecked_runs(
        &self,
        finished_before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(TenantId, RunId)>, DbErr> {
        Ok(runs::Entity::find()
            .filter(runs::Column::AlertsChecked.eq(false))
            .filter(runs::Column::FinishedAt.is_not_null())
            .filter(runs::Column::FinishedAt.lt(finished_before))
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.tenant_id, r.id))
            .collect())
    }

    /// The flow's last successful runs before `before`, newest first (the run inspector's
    /// comparison).
    pub async fn recent_successes(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        before: RunId,
        limit: u64,
    ) -> Result<Vec<runs::Model>, DbErr> {
        recent_successes(ctx, flow, before, limit)
            .all(&self.db)
            .await
    }

    /// Records read by the flow's last successful runs before `before`, newest first (the
    /// volume baseline of silent-failure alerts: one column, not ten whole runs).
    pub async fn recent_volumes(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        before: RunId,
        limit: u64,
    ) -> Result<Vec<i64>, DbErr> {
        recent_successes(ctx, flow, before, limit)
            .select_only()
            .column(runs::Column::RecordsRead)
            .into_tuple()
            .all(&self.db)
            .await
    }

    /// Asks a run to stop at its next page boundary.
    pub async fn request_cancel(&self, ctx: &TenantCtx, id: RunId) -> Result<bool, DbErr> {
        let done = runs::Entity::update_many()
            .col_expr(runs::Column::CancelRequested, Expr::value(true))
            .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
            .filter(runs::Column::Id.eq(id))
            .filter(
                runs::Column::Status
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .exec(&self.db)
            .await?;
        Ok(done.rows_affected == 1)
    }

    /// Unfinished runs nobody is working on (no heartbeat since `stale_before`), across
    /// tenants: orphan recovery re-enqueues them.
    pub async fn orphaned_runs(
        &self,
        stale_before: DateTime<Utc>,
        limit: u64,
    ) -> Result<Vec<(TenantId, RunId)>, DbErr> {
        Ok(runs::Entity::find()
            .filter(
                runs::Column::Status
                    .is_in([RunStatus::Queued.as_str(), RunStatus::Running.as_str()]),
            )
            .filter(
                runs::Column::HeartbeatAt
                    .lt(stale_before)
                    .or(runs::Column::HeartbeatAt
                        .is_null()
                        .and(runs::Column::CreatedAt.lt(stale_before))),
            )
            .limit(limit)
            .all(&self.db)
            .await?
            .into_iter()
            .map(|r| (r.tenant_id, r.id))
            .collect())
    }

    /// Appends a step to a run's log.
    pub async fn log_run_event(
        &self,
        ctx: &TenantCtx,
        run: RunId,
        level: &str,
        message: &str,
        detail: Option<serde_json::Value>,
    ) -> Result<(), DbErr> {
        run_events::ActiveModel {
            run_id: Set(run),
            level: Set(level.to_owned()),
            message: Set(message.to_owned()),
            detail: Set(detail.map(|d| d.to_string())),
            ..run_events::ActiveModel::fresh(ctx)
        }
        .insert(&self.db)
        .await
        .map(|_| ())
    }

    /// A run's latest log line.
    pub async fn latest_run_event(
        &self,
        ctx: &TenantCtx,
        run: RunId,
    ) -> Result<Option<run_events::Model>, DbErr> {
        run_events::Entity::find()
            .filter(run_events::Column::TenantId.eq(ctx.tenant_id()))
            .filter(run_events::Column::RunId.eq(run))
            .order_by_desc(run_events::Column::Id)
            .one(&self.db)
            .await
    }

    /// A run's log, oldest first.
    pub async fn run_events(
        &self,
        ctx: &TenantCtx,
        run: RunId,
        limit: u64,
    ) -> Result<Vec<run_events::Model>, DbErr> {
        run_events::Entity::find()
            .filter(run_events::Column::TenantId.eq(ctx.tenant_id()))
            .filter(run_events::Column::RunId.eq(run))
            .order_by_asc(run_events::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    // ---- Ledger -----------------------------------------------------------------------

    /// Ledger entries for these key digests.
    pub async fn ledger_entries(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        keys: &[Vec<u8>],
    ) -> Result<HashMap<Vec<u8>, LedgerEntry>, DbErr> {
        let mut out = HashMap::with_capacity(keys.len());
        for chunk in keys.chunks(500) {
            if chunk.is_empty() {
                continue;
            }
            let mut marks = Marks::new(self.backend());
            let mut values: Vec<Value> = vec![ctx.tenant_id().into(), flow.into()];
            values.extend(chunk.iter().map(|k| Value::from(k.clone())));
            let sql = format!(
                "SELECT key_hash, content_hash, dest_id FROM record_ledger \
                 WHERE tenant_id = {} AND flow_id = {} AND key_hash IN ({})",
                marks.one(),
                marks.one(),
                marks.list(chunk.len())
            );
            let rows = self
                .db
                .query_all_raw(Statement::from_sql_and_values(self.backend(), sql, values))
                .await?;
            for row in rows {
                let key: Vec<u8> = row.try_get("", "key_hash")?;
                out.insert(
                    key,
                    LedgerEntry {
                        content_hash: row.try_get("", "content_hash")?,
                        dest_id: row.try_get("", "dest_id")?,
                    },
                );
            }
        }
        Ok(out)
    }

    /// Number of ledger rows of a flow (records ever delivered).
    pub async fn ledger_size(&self, ctx: &TenantCtx, flow: FlowId) -> Result<i64, DbErr> {
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(
                self.backend(),
                "SELECT COUNT(*) AS n FROM record_ledger WHERE tenant_id = $1 AND flow_id = $2",
                [ctx.tenant_id().into(), flow.into()],
            ))
            .await?;
        Ok(row
            .map(|r| r.try_get::<i64>("", "n"))
            .transpose()?
            .unwrap_or(0))
    }

    // ---- Dead letters -----------------------------------------------------------------

    /// The dead letters of a run's records (any state), oldest first: those it failed
    /// first, and those it failed again.
    pub async fn dead_letters_of_run(
        &self,
        ctx: &TenantCtx,
        run: RunId,
        limit: u64,
    ) -> Result<Vec<dead_letters::Model>, DbErr> {
        dead_letters::Entity::find()
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(of_run(run))
            .order_by_asc(dead_letters::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Whether the destination refused any record of a run (rather than the flow's own
    /// mapping, filter or validation): only then is the destination at fault.
    pub async fn destination_refused_records(
        &self,
        ctx: &TenantCtx,
        run: RunId,
    ) -> Result<bool, DbErr> {
        Ok(dead_letters::Entity::find()
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(dead_letters::Column::RunId.eq(run))
            .filter(dead_letters::Column::ErrorClass.eq(RecordFault::Rejected.as_str()))
            .count(&self.db)
            .await?
            > 0)
    }

    /// A flow's dead letters in a state (newest first), optionally of one run and of
    /// one error class.
    #[allow(clippy::too_many_arguments)]
    pub async fn dead_letters(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        state: Option<DeadLetterState>,
        run: Option<RunId>,
        class: Option<RecordFault>,
        offset: u64,
        limit: u64,
    ) -> Result<Vec<dead_letters::Model>, DbErr> {
        let mut q = dead_letters::Entity::find()
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(dead_letters::Column::FlowId.eq(flow));
        if let Some(s) = state {
            q = q.filter(dead_letters::Column::State.eq(s.as_str()));
        }
        if let Some(r) = run {
            q = q.filter(of_run(r));
        }
        if let Some(c) = class {
            q = q.filter(dead_letters::Column::ErrorClass.eq(c.as_str()));
        }
        q.order_by_desc(dead_letters::Column::UpdatedAt)
            .order_by_desc(dead_letters::Column::Id)
            .offset(offset)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Id, error class and message of a flow's dead letters in a state (optionally of
    /// one run), oldest first, at most `limit`: what grouping by error reads.
    pub async fn dead_letter_errors(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        state: DeadLetterState,
        run: Option<RunId>,
        limit: u64,
    ) -> Result<Vec<(DeadLetterId, String, String)>, DbErr> {
        let mut q = dead_letters::Entity::find()
            .select_only()
            .column(dead_letters::Column::Id)
            .column(dead_letters::Column::ErrorClass)
            .column(dead_letters::Column::Error)
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(dead_letters::Column::FlowId.eq(flow))
            .filter(dead_letters::Column::State.eq(state.as_str()));
        if let Some(r) = run {
            q = q.filter(of_run(r));
        }
        q.order_by_asc(dead_letters::Column::Id)
            .limit(limit)
            .into_tuple()
            .all(&self.db)
            .await
    }

    /// Counts a flow's dead letters in a state.
    pub async fn count_dead_letters(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        state: DeadLetterState,
    ) -> Result<u64, DbErr> {
        dead_letters::Entity::find()
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(dead_letters::Column::FlowId.eq(flow))
            .filter(dead_letters::Column::State.eq(state.as_str()))
            .count(&self.db)
            .await
    }

    /// Open dead letters of a flow, selected by id (all open ones when `ids` is none),
    /// in id order after `after`: the pages of a replay run.
    pub async fn open_dead_letters(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        ids: Option<&[DeadLetterId]>,
        after: Option<DeadLetterId>,
        limit: u64,
    ) -> Result<Vec<dead_letters::Model>, DbErr> {
        let mut q = dead_letters::Entity::find()
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(dead_letters::Column::FlowId.eq(flow))
            .filter(dead_letters::Column::State.eq(DeadLetterState::Open));
        if let Some(ids) = ids {
            q = q.filter(dead_letters::Column::Id.is_in(ids.iter().copied()));
        }
        if let Some(after) = after {
            q = q.filter(dead_letters::Column::Id.gt(after));
        }
        q.order_by_asc(dead_letters::Column::Id)
            .limit(limit)
            .all(&self.db)
            .await
    }

    /// Marks open dead letters discarded. Returns how many.
    pub async fn discard_dead_letters(
        &self,
        ctx: &TenantCtx,
        flow: FlowId,
        ids: Option<&[DeadLetterId]>,
    ) -> Result<u64, DbErr> {
        let mut q = dead_letters::Entity::update_many()
            .col_expr(
                dead_letters::Column::State,
                Expr::value(DeadLetterState::Discarded.as_str()),
            )
            .col_expr(dead_letters::Column::UpdatedAt, Expr::value(now()))
            .filter(dead_letters::Column::TenantId.eq(ctx.tenant_id()))
            .filter(dead_letters::Column::FlowId.eq(flow))
            .filter(dead_letters::Column::State.eq(DeadLetterState::Open));
        if let Some(ids) = ids {
            q = q.filter(dead_letters::Column::Id.is_in(ids.iter().copied()));
        }
        Ok(q.exec(&self.db).await?.rows_affected)
    }
}

/// Upserts ledger rows with one multi-row statement per chunk.
async fn upsert_ledger<C: ConnectionTrait>(
    db: &C,
    tenant: TenantId,
    flow: FlowId,
    rows: &[(Vec<u8>, LedgerEntry)],
) -> Result<(), DbErr> {
    // Five values per row; stay well below every backend's parameter limit.
    // In key order, the rows of one statement reach the index's pages in one sweep.
    let mut sorted: Vec<&(Vec<u8>, LedgerEntry)> = rows.iter().collect();
    sorted.sort_unstable_by(|a, b| a.0.cmp(&b.0));
    for chunk in sorted.chunks(1000) {
        let mut marks = Marks::new(db.get_database_backend());
        let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
        let mut tuples = Vec::with_capacity(chunk.len());
        for (key, entry) in chunk.iter().map(|r| (&r.0, &r.1)) {
            tuples.push(marks.row(5));
            values.push(tenant.into());
            values.push(flow.into());
            values.push(key.clone().into());
            values.push(entry.content_hash.clone().into());
            values.push(entry.dest_id.clone().into());
        }
        let sql = format!(
            "INSERT INTO record_ledger (tenant_id, flow_id, key_hash, content_hash, dest_id) \
             VALUES {} ON CONFLICT (tenant_id, flow_id, key_hash) DO UPDATE SET \
             content_hash = excluded.content_hash, \
             dest_id = COALESCE(excluded.dest_id, record_ledger.dest_id)",
            tuples.join(",")
        );
        let backend: DbBackend = db.get_database_backend();
        db.execute_raw(Statement::from_sql_and_values(backend, sql, values))
            .await?;
    }
    Ok(())
}

/// An update that clears a run's lease holder and heartbeat (filters added by the caller).
fn release_lease_update() -> sea_orm::UpdateMany<runs::Entity> {
    runs::Entity::update_many()
        .col_expr(
            runs::Column::LeaseHolder,
            Expr::value(Option::<String>::None),
        )
        .col_expr(
            runs::Column::HeartbeatAt,
            Expr::value(Option::<DateTime<Utc>>::None),
        )
}

/// Dead letters of a run: records it failed first, or failed again.
fn of_run(run: RunId) -> sea_orm::Condition {
    sea_orm::Condition::any()
        .add(dead_letters::Column::RunId.eq(run))
        .add(dead_letters::Column::FirstRunId.eq(run))
}

/// The flow's successful runs before `before` (replays aside), newest first.
fn recent_successes(
    ctx: &TenantCtx,
    flow: FlowId,
    before: RunId,
    limit: u64,
) -> sea_orm::Select<runs::Entity> {
    runs::Entity::find()
        .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
        .filter(runs::Column::FlowId.eq(flow))
        .filter(runs::Column::Id.lt(before))
        .filter(runs::Column::Status.eq(RunStatus::Succeeded))
        .filter(runs::Column::Trigger.ne(RunTrigger::Replay))
        .order_by_desc(runs::Column::Id)
        .limit(limit)
}

/// The flow's queued run (not a replay), read through `conn` (the pool or a transaction).
pub(super) async fn queued_run_on<C: sea_orm::ConnectionTrait>(
    conn: &C,
    ctx: &TenantCtx,
    flow: FlowId,
) -> Result<Option<runs::Model>, DbErr> {
    runs::Entity::find()
        .filter(runs::Column::TenantId.eq(ctx.tenant_id()))
        .filter(runs::Column::FlowId.eq(flow))
        .filter(runs::Column::Status.eq(RunStatus::Queued))
        .filter(runs::Column::Trigger.ne(RunTrigger::Replay))
        // Not `.one()` (see `by_key`): a flow has one queued run, rarely two for a moment.
        .all(conn)
        .await
        .map(|runs| runs.into_iter().next())
}
