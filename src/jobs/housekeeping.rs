//! Housekeeping: purges expired sessions, invitations, setup links and throttle windows,
//! applies the retention settings to run history (rollups are kept), and clears finished
//! jobs out of the queue's tables.

use super::Handler;
use crate::app::App;
use crate::queue::{Housekeeping, JobError};
use crate::store::now;
use std::time::Duration;

/// How often the scheduler enqueues housekeeping.
pub const INTERVAL: Duration = Duration::from_secs(15 * 60);

impl Handler for Housekeeping {
    async fn run(&self, app: &App) -> Result<(), JobError> {
        let idle = chrono::Duration::from_std(app.settings.session_idle)
            .map_err(|e| JobError::permanent(e.to_string()))?;
        let removed = app
            .store
            .purge_expired(now() - idle, now() - chrono::Duration::days(1))
            .await?;
        let removed = removed + app.store.purge_oauth_states().await?;
        // Webhook message ids are kept a week: far beyond the 5-minute signature window
        // that makes older replays fail anyway, and long enough to inspect deliveries.
        let removed = removed
            + app
                .store
                .purge_webhook_events(now() - chrono::Duration::days(7))
                .await?;
        let days = |d: u32| chrono::Duration::days(i64::from(d));
        let removed = removed
            + app
                .store
                .prune_history(
                    now() - days(app.settings.retention_detail_days),
                    now() - days(app.settings.retention_runs_days),
                )
                .await?;
        // Minute rollups feed short windows (error rates, the last hours); hourly ones
        // carry the long history.
        let removed = removed
            + app
                .store
                .prune_minute_rollups(now() - chrono::Duration::days(2))
                .await?;
        // Finished jobs have nothing left to tell after a day (failures live on in
        // `failed_jobs`, runs in their own tables).
        let removed = removed
            + app
                .store
                .purge_finished_jobs(now() - chrono::Duration::days(1))
                .await?;
        crate::sync::rate::forget_idle();
        tracing::info!(removed, "housekeeping purged expired rows");
        metrics::counter!("sluice_housekeeping_purged_total").increment(removed);
        Ok(())
    }
}
