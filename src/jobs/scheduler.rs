//! The scheduler loop. Safe with any number of processes: a database lease picks one
//! active scheduler, and each periodic tick is claimed by compare-and-set, so a tick runs
//! once even if two processes both believe they hold the lease; after downtime a missed
//! tick runs once, not once per missed period.

use super::{connections, flows, housekeeping};
use crate::app::App;
use crate::queue::{AlertSweep, Housekeeping};
use crate::store::now;
use std::time::Duration;
use tokio::sync::watch;

const LEASE: &str = "scheduler";

/// How long the scheduler's own lease lasts: no longer than a run lease, because crash
/// recovery waits for a scheduler, and a killed process may have been the scheduler.
pub fn lease_ttl(app: &App) -> Duration {
    app.settings.run_lease.min(Duration::from_secs(30))
}

/// How often the scheduler ticks (and renews its lease): every 5 s, or twice per lease
/// when that is shorter.
pub fn tick_interval(app: &App) -> Duration {
    (lease_ttl(app) / 2).min(Duration::from_secs(5))
}

/// Runs until `shutdown` turns true, then releases the lease for a quick hand-over.
pub async fn run(app: App, holder: String, mut shutdown: watch::Receiver<bool>) {
    let mut ticker = tokio::time::interval(tick_interval(&app));
    loop {
        tokio::select! {
            _ = ticker.tick() => {
                if let Err(e) = tick(&app, &holder).await {
                    tracing::warn!(error = %e, "scheduler tick failed; will retry");
                }
            }
            _ = super::stopped(&mut shutdown) => break,
        }
    }
    if let Err(e) = app.store.release_lease(LEASE, &holder).await {
        tracing::warn!(error = %e, "could not release the scheduler lease");
    }
}

/// How often the scheduler looks for runs nobody is working on: every tick, so a run
/// whose worker died is taken over within one lease and one tick (at most 5 s).
pub fn recovery_interval(app: &App) -> Duration {
    tick_interval(app)
}

/// One pass: if we hold the lease, enqueue every periodic task whose tick is due.
pub async fn tick(app: &App, holder: &str) -> anyhow::Result<()> {
    if !app.store.try_lease(LEASE, holder, lease_ttl(app)).await? {
        return Ok(());
    }
    let next = now() + chrono::Duration::from_std(housekeeping::INTERVAL)?;
    if app.store.claim_periodic("housekeeping", next).await? {
        app.queue.push(Housekeeping {}).await?;
    }
    let next = now() + chrono::Duration::from_std(connections::SCAN_INTERVAL)?;
    if app.store.claim_periodic("token_refresh_scan", next).await? {
        let queued = connections::enqueue_due_refreshes(app).await?;
        if queued > 0 {
            tracing::info!(queued, "proactive token refreshes enqueued");
        }
    }
    // Each flow's tick is claimed on the flow row itself, so this runs every pass.
    let started = flows::enqueue_due(app).await?;
    if started > 0 {
        tracing::info!(started, "scheduled flow runs started");
    }
    let next = now() + chrono::Duration::from_std(recovery_interval(app))?;
    if app.store.claim_periodic("run_recovery", next).await? {
        flows::recover_orphans(app).await?;
    }
    let next = now() + chrono::Duration::from_std(app.settings.alert_sweep)?;
    if app.store.claim_periodic("alert_sweep", next).await? {
        app.queue.push(AlertSweep {}).await?;
    }
    Ok(())
}
