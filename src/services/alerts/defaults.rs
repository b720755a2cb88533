//! The rules every new tenant starts with: loud failures, silent failures, stale data,
//! broken connections and auto-paused flows. Error rate, consecutive failures and slow
//! runs are there too, switched off, ready to tune.

use crate::app::App;
use crate::domain::{AlertKind, TenantCtx};
use crate::store::entities::alert_rules;
use sea_orm::{DbErr, Set};

/// (kind, threshold, window in minutes, enabled).
const DEFAULTS: &[(AlertKind, Option<f64>, Option<i32>, bool)] = &[
    (AlertKind::RunFailed, None, None, true),
    (AlertKind::SilentFailure, Some(80.0), None, true),
    (AlertKind::Freshness, None, Some(24 * 60), true),
    (AlertKind::ConnectionReauth, Some(3.0), None, true),
    (AlertKind::AutoPaused, None, None, true),
    (AlertKind::ConsecutiveFailures, Some(3.0), None, false),
    (AlertKind::ErrorRate, Some(25.0), Some(60), false),
    (AlertKind::Duration, Some(3600.0), None, false),
];

/// Notifications of one rule and subject are not repeated within this many minutes.
pub const THROTTLE_MINUTES: i32 = 60;

/// Creates the default rules for a new tenant.
pub async fn install(app: &App, ctx: &TenantCtx) -> Result<(), DbErr> {
    for (kind, threshold, window, enabled) in DEFAULTS {
        app.store
            .insert_alert_rule(alert_rules::ActiveModel {
                flow_id: Set(None),
                kind: Set(*kind),
                threshold: Set(*threshold),
                window_minutes: Set(*window),
                throttle_minutes: Set(THROTTLE_MINUTES),
                enabled: Set(*enabled),
                ..alert_rules::ActiveModel::fresh(ctx)
            })
            .await?;
    }
    Ok(())
}
