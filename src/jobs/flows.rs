//! Flow jobs: executing a run, firing due schedules, and recovering runs whose worker
//! died.

use super::{Handler, run_scope, tenant_scope};
use crate::app::App;
use crate::domain::RunTrigger;
use crate::queue::{JobError, OwnAck, RunFlow};
use crate::services::alerts::evaluate as alerts;
use crate::services::flows;
use crate::store::{FinishedRun, now};
use crate::sync::engine::{self, Executed};
use crate::sync::trigger;

impl Handler for RunFlow {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        self.run_acknowledging(app, None).await
    }

    /// A run that completes marks its job done in the commit that ends it.
    async fn run_acknowledging(&self, app: &App, ack: Option<OwnAck>) -> Result<(), JobError> {
        let ctx = run_scope(self.tenant_id);
        let with_end = ack.as_ref().map(OwnAck::statement);
        // The finished run's alert rules, here rather than as a job of their own (most
        // runs are small, and a job costs several queue statements). If this fails, the
        // alert sweep evaluates the run a little later.
        let executed = engine::execute(app, &ctx, self.run_id, &alerts::Rules, with_end).await?;
        let evaluated = match executed {
            Executed::Completed(done) => {
                if let Some(ack) = ack {
                    ack.committed();
                }
                let FinishedRun { run, flow } = *done;
                alerts::evaluate_finished(app, &ctx, &run, flow).await
            }
            Executed::Done => alerts::evaluate_run(app, &ctx, self.run_id).await,
            Executed::Deferred(delay) => {
                return app
                    .queue
                    .push_after(self.clone(), delay)
                    .await
                    .map_err(|e| JobError::retryable(e.to_string()));
            }
        };
        if let Err(e) = evaluated {
            tracing::warn!(run = %self.run_id, error = %e, "alert evaluation left to the sweep");
        }
        Ok(())
    }
}

/// Starts a run for every active flow whose schedule is due. Each tick is claimed by
/// compare-and-set, and the next tick is computed from the one that was due (see
/// [`trigger::next_tick`]).
pub async fn enqueue_due(app: &App) -> anyhow::Result<usize> {
    let mut started = 0;
    for (tenant, flow, seen) in app.store.due_flows(now(), 100).await? {
        let Ok(ctx) = tenant_scope(app, tenant).await else {
            continue;
        };
        let Ok(view) = flows::load(app, &ctx, flow).await else {
            continue;
        };
        let tz = app.store.tenant(&ctx).await?.time_zone;
        let next = trigger::next_tick(&view.spec.trigger, tz, seen, now());
        if !app.store.claim_flow_tick(&ctx, flow, seen, next).await? {
            continue;
        }
        match flows::start_run(app, &ctx, flow, RunTrigger::Schedule, None).await {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(%flow, error = %e, "could not start a scheduled run"),
        }
    }
    Ok(started)
}

/// Re-enqueues unfinished runs without a live worker (the worker crashed, or the
/// enqueue after creating the run was lost).
pub async fn recover_orphans(app: &App) -> anyhow::Result<usize> {
    let orphans = app
        .store
        .orphaned_runs(engine::stale_before(app), 200)
        .await?;
    for (tenant_id, run_id) in &orphans {
        tracing::warn!(run = %run_id, "run has no live worker; re-enqueueing it");
        app.queue
            .push(RunFlow {
                tenant_id: *tenant_id,
                run_id: *run_id,
            })
            .await?;
    }
    Ok(orphans.len())
}
