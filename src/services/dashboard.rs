//! The tenant dashboard: totals, time series, flow and connection health, read from the
//! metric rollups so it stays fast however many runs there are.

use crate::app::App;
use crate::domain::{ConnectionStatus, FlowId, RunStatus, TenantCtx};
use crate::error::AppResult;
use crate::store::entities::{alerts, connections, flows};
use crate::store::metrics::{HOUR, bucket_of};
use crate::store::{AlertFilter, Bucket, Totals, now};
use chrono::{DateTime, Duration, Utc};
use std::collections::HashMap;

/// The period charts cover.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Period {
    /// The last 24 hours, hour by hour.
    Day,
    /// The last 7 days, in 6-hour steps.
    Week,
}

impl Period {
    /// From a query value (`24h` or `7d`); the day by default.
    pub fn parse(raw: Option<&str>) -> Self {
        match raw {
            Some("7d") => Period::Week,
            _ => Period::Day,
        }
    }

    /// Query value.
    pub fn as_str(self) -> &'static str {
        match self {
            Period::Day => "24h",
            Period::Week => "7d",
        }
    }

    fn span(self) -> Duration {
        match self {
            Period::Day => Duration::hours(24),
            Period::Week => Duration::days(7),
        }
    }

    /// Seconds per chart step.
    fn step(self) -> i64 {
        match self {
            Period::Day => 3600,
            Period::Week => 6 * 3600,
        }
    }
}

/// A flow's row in the health table.
pub struct FlowHealthRow {
    /// The flow.
    pub flow: flows::Model,
    /// Status of its last run.
    pub last_status: Option<RunStatus>,
    /// Time since its last successful run.
    pub since_success: Option<Duration>,
    /// Runs in the last 24 hours.
    pub runs_day: i64,
    /// Records written in the last 24 hours.
    pub written_day: i64,
    /// Failed runs in % over 7 days.
    pub error_rate_week: Option<f64>,
    /// Error rate today against yesterday: "up", "down" or "steady".
    pub trend: &'static str,
}

/// Health of a connection.
pub struct ConnectionHealthRow {
    /// The connection.
    pub conn: connections::Model,
    /// active, expiring, refresh_failing, reauth_required or disconnected.
    pub health: &'static str,
    /// What to show.
    pub label: &'static str,
}

/// Everything on the dashboard.
pub struct Dashboard {
    /// Last 24 hours.
    pub day: Totals,
    /// Last 7 days.
    pub week: Totals,
    /// Unresolved alerts.
    pub active_alerts: u64,
    /// The latest unresolved alerts.
    pub alerts: Vec<alerts::Model>,
    /// Chart period.
    pub period: Period,
    /// One bucket per chart step, oldest first (empty steps included).
    pub series: Vec<Bucket>,
    /// Flows, worst first.
    pub flows: Vec<FlowHealthRow>,
    /// Connections, worst first.
    pub connections: Vec<ConnectionHealthRow>,
}

/// Loads the dashboard: five independent reads, run concurrently; every figure and chart
/// comes from the week's hourly rollups, fetched once.
pub async fn load(app: &App, ctx: &TenantCtx, period: Period) -> AppResult<Dashboard> {
    let at = now();
    let (rows, flow_rows, connection_rows, active_alerts, alerts) = tokio::try_join!(
        app.store.rollup_rows(ctx, HOUR, at - Duration::days(7)),
        app.store.flows(ctx),
        app.store.connections(ctx),
        app.store.count_active_alerts(ctx),
        app.store.alerts(ctx, AlertFilter::Active, None, 5),
    )?;
    let day_start = bucket_of(at - Duration::hours(23), HOUR);
    let yesterday_start = bucket_of(at - Duration::hours(47), HOUR);
    let mut day = Totals::default();
    let mut week = Totals::default();
    let mut hourly: HashMap<i64, Totals> = HashMap::new();
    let mut today: HashMap<FlowId, Totals> = HashMap::new();
    let mut yesterday: HashMap<FlowId, Totals> = HashMap::new();
    let mut weekly: HashMap<FlowId, Totals> = HashMap::new();
    let series_start = bucket_of(at - period.span(), HOUR);
    for (bucket, flow, t) in &rows {
        week.add(t);
        weekly.entry(*flow).or_default().add(t);
        if *bucket >= day_start {
            day.add(t);
            today.entry(*flow).or_default().add(t);
        } else if *bucket >= yesterday_start {
            yesterday.entry(*flow).or_default().add(t);
        }
        if *bucket >= series_start {
            hourly.entry(*bucket).or_default().add(t);
        }
    }
    let series = steps(
        period,
        at,
        hourly
            .into_iter()
            .map(|(start, totals)| Bucket { start, totals })
            .collect(),
    );
    let mut flows: Vec<FlowHealthRow> = flow_rows
        .into_iter()
        .map(|flow| {
            let id = flow.id;
            let t = today.get(&id).copied().unwrap_or_default();
            let y = yesterday.get(&id).copied().unwrap_or_default();
            let trend = match (t.error_rate(), y.error_rate()) {
                (Some(a), Some(b)) if a > b + 5.0 => "up",
                (Some(a), Some(b)) if a + 5.0 < b => "down",
                _ => "steady",
            };
            FlowHealthRow {
                last_status: flow.last_run_status,
                since_success: flow.last_success_at.map(|s| at - s),
                runs_day: t.runs,
                written_day: t.records_written,
                error_rate_week: weekly.get(&id).and_then(Totals::error_rate),
                trend,
                flow,
            }
        })
        .collect();
    flows.sort_by_key(|f| {
        (
            std::cmp::Reverse(matches!(f.last_status, Some(RunStatus::Failed))),
            f.flow.name.to_lowercase(),
        )
    });
    let mut connections: Vec<ConnectionHealthRow> = connection_rows
        .into_iter()
        .map(|conn| {
            let (health, label) = connection_health(&conn, at);
            ConnectionHealthRow {
                conn,
                health,
                label,
            }
        })
        .collect();
    connections.sort_by_key(|c| (c.health == "active", c.conn.name.to_lowercase()));
    Ok(Dashboard {
        day,
        week,
        active_alerts,
        alerts,
        period,
        series,
        flows,
        connections,
    })
}

/// How a connection is doing, worst condition first.
pub fn connection_health(
    conn: &connections::Model,
    at: DateTime<Utc>,
) -> (&'static str, &'static str) {
    if conn.status == ConnectionStatus::ReauthRequired {
        ("reauth_required", "Reconnect needed")
    } else if conn.status == ConnectionStatus::Disconnected {
        ("disconnected", "Disconnected")
    } else if conn.refresh_failures > 0 {
        ("refresh_failing", "Token refresh failing")
    } else if conn.access_expires_at.is_some_and(|e| e < at) {
        // Tokens are refreshed ahead of expiry, so an expired one is about to fail.
        ("expiring", "Token expired, refresh pending")
    } else {
        ("active", "Active")
    }
}

/// Regroups hourly buckets into the period's steps, filling empty steps with zeros so
/// the chart's time axis is even.
fn steps(period: Period, at: DateTime<Utc>, hourly: Vec<Bucket>) -> Vec<Bucket> {
    let step = period.step();
    let last = bucket_of(at, i32::try_from(step).unwrap_or(HOUR));
    let count = period.span().num_seconds() / step;
    let first = last - (count - 1) * step;
    let mut out: Vec<Bucket> = (0..count)
        .map(|i| Bucket {
            start: first + i * step,
            totals: Totals::default(),
        })
        .collect();
    for b in hourly {
        let i = (b.start - first).div_euclid(step);
        if let Some(slot) = usize::try_from(i).ok().and_then(|i| out.get_mut(i)) {
            slot.totals.add(&b.totals);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hourly_buckets_are_regrouped_into_even_steps_with_empty_ones_filled() {
        let at = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let hour = bucket_of(at, HOUR);
        let bucket = |start, runs| Bucket {
            start,
            totals: Totals {
                runs,
                ..Totals::default()
            },
        };
        let day = steps(
            Period::Day,
            at,
            vec![bucket(hour - 3600, 2), bucket(hour, 5)],
        );
        assert_eq!(day.len(), 24);
        assert_eq!(day[23].start, hour);
        assert_eq!((day[22].totals.runs, day[23].totals.runs), (2, 5));
        assert_eq!(day.iter().map(|b| b.totals.runs).sum::<i64>(), 7);
        let week = steps(
            Period::Week,
            at,
            vec![bucket(hour - 3600, 2), bucket(hour, 5)],
        );
        assert_eq!(week.len(), 28);
        assert_eq!(week.iter().map(|b| b.totals.runs).sum::<i64>(), 7);
    }
}
