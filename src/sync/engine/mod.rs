//! The run loop. A run pages through its source (or, for a replay, through the chosen
//! dead letters), maps, validates and filters each record, skips records whose content
//! the ledger says was already delivered, writes the rest in batches, and commits each
//! page — counts, checkpoint, ledger rows and dead letters — in one transaction guarded
//! by the run's lease. A worker that dies mid-page leaves the page uncommitted; whoever
//! takes the run over resumes from the checkpoint, and the idempotency keys on the writes
//! keep the destination from seeing a record twice.

mod lifecycle;
mod pipeline;
mod plan;
mod retry;
mod staging;

use super::Fault;
use crate::app::App;
use crate::domain::{FlowId, RunId, RunStatus, RunTrigger, TenantCtx};
use crate::queue::JobError;
use crate::store::entities::{connections, flows, runs};
use crate::store::{FinishedRun, RunEnd, RunLine, now};
use futures::future::BoxFuture;
use sea_orm::{DbErr, Statement};
use std::time::Duration;
use tracing::Instrument;

use pipeline::Pipeline;

/// Why a run stopped early.
enum Stop {
    /// A failure that ends the run.
    Fault(Fault),
    /// Another worker holds the run now (we were presumed dead): leave it alone.
    LostLease,
    /// Cancelled on request.
    Cancelled,
    /// The process is shutting down: the run stops at a page boundary and is handed back.
    Handover,
    /// Storage failed: the job retries, and the run resumes from its checkpoint.
    Db(DbErr),
}

impl From<DbErr> for Stop {
    fn from(e: DbErr) -> Self {
        Stop::Db(e)
    }
}

impl From<Fault> for Stop {
    fn from(f: Fault) -> Self {
        Stop::Fault(f)
    }
}

/// Runs whose lease holder has not been heard from since this instant are taken over.
pub fn stale_before(app: &App) -> chrono::DateTime<chrono::Utc> {
    now() - chrono::Duration::from_std(app.settings.run_lease).unwrap_or_default()
}

/// Renews the run's lease every quarter lease for as long as the execution lives.
/// Returns only when the execution must stop: another worker holds the run, or the lease
/// went unrenewed for so long that a call started now could outlive it (the outbound
/// timeout is at most three quarters of the lease, checked at start-up).
async fn keep_lease(app: &App, ctx: &TenantCtx, id: RunId, holder: &str) -> Stop {
    let every = app.settings.run_lease / 4;
    let give_up_after = app
        .settings
        .run_lease
        .saturating_sub(app.settings.outbound_timeout);
    let mut renewed = tokio::time::Instant::now();
    loop {
        tokio::time::sleep(every).await;
        match app.store.heartbeat_run(ctx, id, holder).await {
            Ok(true) => renewed = tokio::time::Instant::now(),
            Ok(false) => return Stop::LostLease,
            Err(e) if renewed.elapsed() + every > give_up_after => {
                tracing::warn!(run = %id, error = %e, "the run lease could not be renewed; stopping the run");
                return Stop::Db(e);
            }
            Err(e) => {
                tracing::warn!(run = %id, error = %e, "the run lease could not be renewed; will retry");
            }
        }
    }
}

/// How long a handed-back run waits in the queue (see [`hand_back`]).
const HANDOVER_DELAY: Duration = Duration::from_secs(2);

/// Releases runs this process holds and queues them again, so another worker (or this
/// one, restarted) resumes them from their checkpoint without waiting for the lease.
pub async fn hand_back(
    app: &App,
    runs: &[(crate::domain::TenantId, RunId)],
    held: Option<(&TenantCtx, &str)>,
) {
    if let Some((ctx, holder)) = held
        && let Some((_, id)) = runs.first()
        && let Err(e) = app.store.release_run(ctx, *id, holder).await
    {
        tracing::warn!(run = %id, error = %e, "could not release the run lease; it lapses instead");
        return;
    }
    for (tenant_id, run_id) in runs {
        let job = crate::queue::RunFlow {
            tenant_id: *tenant_id,
            run_id: *run_id,
        };
        // Not at once: a job pushed now wakes this process's own workers, which may
        // fetch it just before they stop and leave it locked to a worker that is gone
        // (found again only when the lease lapses). Due a moment later, the next
        // worker takes it.
        match app.queue.push_after(job, HANDOVER_DELAY).await {
            Ok(()) => tracing::info!(run = %run_id, "run handed back at shutdown"),
            Err(e) => {
                tracing::warn!(run = %run_id, error = %e, "run released; recovery will queue it")
            }
        }
    }
}

/// What [`execute`] decided.
pub enum Executed {
    /// The run ended or is somebody else's.
    Done,
    /// This execution completed the run, which (with its flow) now reads as this.
    Completed(Box<FinishedRun>),
    /// Not now (the tenant is at its concurrency cap, or this process is stopping): try
    /// again after this delay.
    Deferred(Duration),
}

/// Asked before a completed run's end is committed whether its alert rules have anything
/// to say about it: when they have not (nearly always), the end's own commit marks the
/// run checked. The rules are judged a layer up (`services::alerts`), hence the question.
pub trait EndJudge: Sync {
    /// Whether the rules are quiet about `run` (as its end will leave it), its `flow` (as
    /// the end will leave it) and its `connections` (as the run found them).
    fn quiet<'a>(
        &'a self,
        app: &'a App,
        ctx: &'a TenantCtx,
        run: &'a runs::Model,
        flow: &'a flows::Model,
        connections: &'a [connections::Model],
    ) -> BoxFuture<'a, Result<bool, DbErr>>;
}

/// Executes (or resumes) a run. Safe to call twice: the lease admits one worker.
/// `with_end` is committed with the run's end if this execution completes it
/// ([`Executed::Completed`]): the caller's own record of having run it.
pub async fn execute(
    app: &App,
    ctx: &TenantCtx,
    id: RunId,
    judge: &dyn EndJudge,
    with_end: Option<Statement>,
) -> Result<Executed, JobError> {
    // Every line logged while executing the run can be found by tenant, flow and run.
    let span = tracing::info_span!(
        "run",
        tenant = %ctx.tenant_id(),
        flow = tracing::field::Empty,
        run = %id
    );
    execute_in_span(app, ctx, id, judge, with_end)
        .instrument(span)
        .await
}

async fn execute_in_span(
    app: &App,
    ctx: &TenantCtx,
    id: RunId,
    judge: &dyn EndJudge,
    with_end: Option<Statement>,
) -> Result<Executed, JobError> {
    let (run, running) = app
        .store
        .run_and_running(ctx, id, stale_before(app))
        .await?;
    let Some(run) = run else {
        return Ok(Executed::Done);
    };
    tracing::Span::current().record("flow", tracing::field::display(run.flow_id));
    if run.status.is_finished() {
        return Ok(Executed::Done);
    }
    let ours_or_free =
        run.lease_holder.is_none() || run.heartbeat_at.is_none_or(|at| at < stale_before(app));
    if !ours_or_free {
        return Ok(Executed::Done);
    }
    if *app.stopping.borrow() {
        // Fetched while this process drains for a shutdown: leave it to another worker
        // (or to this one, restarted).
        return Ok(Executed::Deferred(Duration::from_secs(1)));
    }
    if run.cancel_requested {
        app.store
            .finish_run(ctx, id, None, RunEnd::plain(RunStatus::Cancelled))
            .await?;
        return Ok(Executed::Done);
    }
    let follows_a_live_run = run.trigger != RunTrigger::Replay
        && running.iter().any(|other| {
            other.flow == run.flow_id && other.id != id && other.trigger != RunTrigger::Replay
        });
    let leased = running.iter().filter(|other| other.leased).count();
    if follows_a_live_run || leased >= app.settings.tenant_concurrency as usize {
        app.store.touch_queued_run(ctx, id).await?;
        return Ok(Executed::Deferred(Duration::from_secs(2)));
    }
    // Named after the process, so a shutdown can release what it could not stop.
    let holder = format!("{}/{}", app.process, uuid::Uuid::now_v7());
    let claimed_at = now();
    if !app
        .store
        .claim_run(ctx, id, &holder, stale_before(app), claimed_at)
        .await?
    {
        return Ok(Executed::Done);
    }
    // A holder still named means the last execution did not hand the run back: it died,
    // lost its lease or was cut mid-page.
    let interrupted = run.lease_holder.is_some();
    // The run as the claim left it (a one-page run ends without reading it again).
    let run = runs::Model {
        status: RunStatus::Running,
        lease_holder: Some(holder.clone()),
        heartbeat_at: Some(claimed_at),
        started_at: run.started_at.or(Some(claimed_at)),
        ..run
    };
    let mut runner = Runner {
        app,
        ctx,
        judge,
        with_end,
        interrupted,
        run,
        holder: holder.clone(),
        providers: None,
        held: std::sync::Mutex::new(Vec::new()),
    };
    // The lease is renewed beside the run, not by it: a call that stalls for longer than
    // the lease must not make this worker look dead while it is still waiting. A database
    // that stops taking writes (a full disk, a failover) pauses the run instead of ending
    // it; it resumes from its checkpoint once writes are accepted again.
    let outcome = loop {
        let attempt = tokio::select! {
            outcome = runner.drive() => outcome,
            stop = keep_lease(app, ctx, id, &holder) => Err(stop),
        };
        match attempt {
            Err(Stop::Db(e)) => match runner.wait_for_database(&e).await {
                Ok(()) => continue,
                Err(stop) => break Err(stop),
            },
            other => break other,
        }
    };
    match outcome {
        Ok(run) => Ok(Executed::Completed(Box::new(run))),
        Err(Stop::LostLease) => Ok(Executed::Done),
        Err(Stop::Handover) => {
            runner
                .log(
                    "info",
                    &format!(
                        "Handed back at shutdown after page {}; the next worker resumes from here.",
                        runner.run.pages
                    ),
                    None,
                )
                .await;
            hand_back(app, &[(ctx.tenant_id(), id)], Some((ctx, &holder))).await;
            Ok(Executed::Done)
        }
        Err(Stop::Cancelled) => {
            runner.log("warn", "Cancelled on request.", None).await;
            app.store
                .finish_run(
                    ctx,
                    id,
                    Some(&runner.holder),
                    RunEnd::plain(RunStatus::Cancelled),
                )
                .await?;
            Ok(Executed::Done)
        }
        Err(Stop::Fault(fault)) => {
            runner.fail(&fault).await?;
            Ok(Executed::Done)
        }
        Err(Stop::Db(e)) => Err(JobError::retryable(format!("database: {e}"))),
    }
}

/// One execution of a run, holding its lease.
struct Runner<'a> {
    app: &'a App,
    ctx: &'a TenantCtx,
    judge: &'a dyn EndJudge,
    /// Committed with the run's end (see [`execute`]).
    with_end: Option<Statement>,
    run: runs::Model,
    holder: String,
    /// Whether an earlier execution may have written pages past the checkpoint.
    interrupted: bool,
    /// Source and destination provider ids, once known (failures name the one at fault).
    providers: Option<(&'static str, &'static str)>,
    /// Run-log lines waiting for the run's next commit (see [`Runner::hold`]).
    held: std::sync::Mutex<Vec<RunLine>>,
}

impl Runner<'_> {
    fn id(&self) -> RunId {
        self.run.id
    }

    fn flow_id(&self) -> FlowId {
        self.run.flow_id
    }

    /// Loads what the run works from, announces it, pages through it, and finishes.
    async fn drive(&mut self) -> Result<FinishedRun, Stop> {
        let plan = self.prepare().await?;
        self.announce(&plan);
        let paged = Pipeline::new(self, &plan).run().await?;
        self.finish(&plan, paged).await
    }
}
