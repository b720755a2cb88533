//! Flow jobs: executing a run, firing due schedules, and recovering runs whose worker
//! died.

use super::{Job, JobEnv, JobError, tenant_scope};
use crate::domain::{RunId, RunTrigger, TenantId};
use crate::services::flows;
use crate::store::now;
use crate::sync::engine::{self, Executed};
use crate::sync::trigger;
use serde::{Deserialize, Serialize};
use std::time::Duration;

/// How often the scheduler looks for runs nobody is working on: every tick, so a run
/// whose worker died is taken over within one lease and one tick (at most 5 s).
pub fn recovery_interval(env: &JobEnv) -> Duration {
    super::scheduler::tick_interval(env)
}

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

    async fn run(&self, env: &JobEnv) -> Result<(), JobError> {
        let ctx = tenant_scope(env, self.tenant_id).await?;
        match engine::execute(env, &ctx, self.run_id).await? {
            Executed::Done => Ok(()),
            Executed::Deferred(delay) => env
                .queue
                .push_after(self.clone(), delay)
                .await
                .map_err(|e| JobError::retryable(e.to_string())),
        }
    }
}

/// Starts a run for every active flow whose schedule is due. Each tick is claimed by
/// compare-and-set, and the next tick is computed from the one that was due (see
/// [`trigger::next_tick`]).
pub async fn enqueue_due(env: &JobEnv) -> anyhow::Result<usize> {
    let mut started = 0;
    for (tenant, flow, seen) in env.store.due_flows(now(), 100).await? {
        let Ok(ctx) = tenant_scope(env, tenant).await else {
            continue;
        };
        let Ok(view) = flows::load(env, &ctx, flow).await else {
            continue;
        };
        let tz = env.store.tenant(&ctx).await?.time_zone;
        let next = trigger::next_tick(&view.spec.trigger, &tz, seen, now());
        if !env.store.claim_flow_tick(&ctx, flow, seen, next).await? {
            continue;
        }
        match flows::start_run(env, &ctx, flow, RunTrigger::Schedule, None).await {
            Ok(_) => started += 1,
            Err(e) => tracing::warn!(%flow, error = %e, "could not start a scheduled run"),
        }
    }
    Ok(started)
}

/// Re-enqueues unfinished runs without a live worker (the worker crashed, or the
/// enqueue after creating the run was lost).
pub async fn recover_orphans(env: &JobEnv) -> anyhow::Result<usize> {
    let orphans = env
        .store
        .orphaned_runs(engine::stale_before(env), 200)
        .await?;
    for (tenant_id, run_id) in &orphans {
        tracing::warn!(run = %run_id, "run has no live worker; re-enqueueing it");
        env.queue
            .push(RunFlow {
                tenant_id: *tenant_id,
                run_id: *run_id,
            })
            .await?;
    }
    Ok(orphans.len())
}
