//! The scheduler loop. Safe with any number of processes: a database lease picks one
//! active scheduler, and each periodic tick is claimed by compare-and-set, so a tick runs
//! once even if two processes both believe they hold the lease; after downtime a missed
//! tick runs once, not once per missed period.

use super::{JobEnv, alerts, connections, flows, housekeeping};
use crate::store::now;
use std::time::Duration;
use tokio::sync::watch;

const LEASE: &str = "scheduler";

/// How long the scheduler's own lease lasts: no longer than a run lease, because crash
/// recovery waits for a scheduler, and a killed process may have been the scheduler.
pub fn lease_ttl(env: &JobEnv) -> Duration {
    env.settings.run_lease.min(Duration::from_secs(30))
}

/// How often the scheduler ticks (and renews its lease): every 5 s, or twice per lease
/// when that is shorter.
pub fn tick_interval(env: &JobEnv) -> Duration {
    (lease_ttl(env) / 2).min(Duration::from_secs(5))
}

/// Runs until `shutdown` turns true, then releases the lease for a quick hand-over.
pub async fn run(env: JobEnv, holder: String, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(tick_interval(&env));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = tick(&env, &holder).await {
                    tracing::warn!(error = %e, "scheduler tick failed; will retry");
                }
            }
            _ = super::stopped(&mut shutdown) => break,
        }
    }
    if let Err(e) = env.store.release_lease(LEASE, &holder).await {
        tracing::warn!(error = %e, "could not release the scheduler lease");
    }
}

/// One pass: if we hold the lease, enqueue every periodic task whose tick is due.
pub async fn tick(env: &JobEnv, holder: &str) -> anyhow::Result<()> {
    if !env.store.try_lease(LEASE, holder, lease_ttl(env)).await? {
        return Ok(());
    }
    let next = now() + chrono::Duration::from_std(housekeeping::INTERVAL)?;
    if env.store.claim_periodic("housekeeping", next).await? {
        env.queue.push(housekeeping::Housekeeping {}).await?;
    }
    let next = now() + chrono::Duration::from_std(connections::SCAN_INTERVAL)?;
    if env.store.claim_periodic("token_refresh_scan", next).await? {
        let queued = connections::enqueue_due_refreshes(env).await?;
        if queued > 0 {
            tracing::info!(queued, "proactive token refreshes enqueued");
        }
    }
    // Each flow's tick is claimed on the flow row itself, so this runs every pass.
    let started = flows::enqueue_due(env).await?;
    if started > 0 {
        tracing::info!(started, "scheduled flow runs started");
    }
    let next = now() + chrono::Duration::from_std(flows::recovery_interval(env))?;
    if env.store.claim_periodic("run_recovery", next).await? {
        flows::recover_orphans(env).await?;
    }
    let next = now() + chrono::Duration::from_std(env.settings.alert_sweep)?;
    if env.store.claim_periodic("alert_sweep", next).await? {
        env.queue.push(alerts::AlertSweep {}).await?;
    }
    Ok(())
}
