//! Alerts: evaluating a tenant's rules when a run finishes and on a periodic sweep,
//! opening, deduplicating, throttling and resolving alerts, and fanning notifications out
//! to the tenant's channels as delivery jobs.
//!
//! An alert is identified by its rule and subject (a flow or a connection): the database
//! allows one unresolved alert per such key, so concurrent evaluators cannot open two.

use crate::app::App;
use crate::domain::{
    AlertId, AlertKind, ConnectionId, ConnectionStatus, FlowId, FlowStatus, RunId, RunStatus,
    RunTrigger, TenantCtx, TimeZone, TriggerKind,
};
use crate::queue::DeliverNotification;
use crate::store::entities::{alert_rules, alerts, connections, flows, runs};
use crate::store::{metrics::MINUTE, now};
use crate::sync::engine::EndJudge;
use chrono::Duration;
use futures::future::BoxFuture;
use sea_orm::{DbErr, Set};

/// Runs a volume baseline needs before a drop counts as a silent failure.
const BASELINE_MIN_RUNS: usize = 3;
/// Median volume below which a run with few records is not suspicious.
const BASELINE_MIN_RECORDS: i64 = 10;
/// Runs an error-rate window needs before its rate means anything.
const ERROR_RATE_MIN_RUNS: i64 = 3;

/// What an alert is about.
#[derive(Clone, Debug)]
pub enum Subject {
    /// A flow.
    Flow(FlowId, String),
    /// A connection.
    Connection(ConnectionId, String),
}

impl Subject {
    fn key(&self) -> String {
        match self {
            Subject::Flow(id, _) => format!("flow:{id}"),
            Subject::Connection(id, _) => format!("connection:{id}"),
        }
    }

    fn name(&self) -> &str {
        match self {
            Subject::Flow(_, n) | Subject::Connection(_, n) => n,
        }
    }
}

/// What a rule concluded about a subject.
enum Verdict {
    /// The condition holds: open (or count) an alert.
    Raise { title: String, detail: String },
    /// The condition cleared: resolve any open alert.
    Clear(String),
    /// Nothing to say (e.g. not enough history).
    Silent,
}

fn dedupe_key(rule: &alert_rules::Model, subject: &Subject) -> String {
    format!("{}:{}", rule.id, subject.key())
}

/// Evaluates the tenant's rules against a finished run. Idempotent: runs whose alerts
/// were evaluated already are skipped.
pub async fn evaluate_run(app: &App, ctx: &TenantCtx, id: RunId) -> Result<(), DbErr> {
    match app.store.run(ctx, id).await? {
        Some(run) => evaluate_finished(app, ctx, &run, None).await,
        None => Ok(()),
    }
}

/// [`evaluate_run`] for a run in hand (the one the engine just finished, with its flow as
/// the run's end left it). The rules are judged first, so that the connections and open
/// alerts they speak of are read in one query each, not one per rule.
pub async fn evaluate_finished(
    app: &App,
    ctx: &TenantCtx,
    run: &runs::Model,
    flow: Option<flows::Model>,
) -> Result<(), DbErr> {
    if run.finished_at.is_none() || run.alerts_checked {
        return Ok(());
    }
    let id = run.id;
    let flow = match flow {
        Some(_) => flow,
        None => app.store.flow(ctx, run.flow_id).await?,
    };
    let Some(flow) = flow else {
        app.store.mark_alerts_checked(ctx, id).await?;
        return Ok(());
    };
    let rules = app.store.flow_alert_rules(ctx, flow.id).await?;
    let connections = if rules.iter().any(|r| r.kind == AlertKind::ConnectionReauth) {
        app.store
            .connections_by_id(
                ctx,
                &[flow.source_connection_id, flow.destination_connection_id],
            )
            .await?
    } else {
        Vec::new()
    };
    let findings = judge(app, ctx, &rules, run, &flow, &connections).await?;
    let keys: Vec<String> = findings
        .iter()
        .filter(|f| !matches!(f.verdict, Verdict::Silent))
        .map(Finding::key)
        .collect();
    let mut open = app.store.unresolved_alerts(ctx, &keys).await?;
    for finding in findings {
        let alert = open.remove(&finding.key());
        settle(app, ctx, finding, alert).await?;
    }
    app.store.mark_alerts_checked(ctx, id).await?;
    Ok(())
}

/// Whether a run's end leaves its rules nothing to do: none raises, and none clears an
/// alert that is open. It is asked before the end is committed, of the run and its flow
/// as the end will leave them and of its connections as the run found them, so that a
/// quiet end (nearly every end) is marked checked by its own commit and costs no
/// statement afterwards. An error-rate rule counts the run among the committed ones, so
/// it can only judge the run afterwards: such ends are never quiet.
async fn quiet_end(
    app: &App,
    ctx: &TenantCtx,
    run: &runs::Model,
    flow: &flows::Model,
    connections: &[connections::Model],
) -> Result<bool, DbErr> {
    let rules = app.store.flow_alert_rules(ctx, flow.id).await?;
    if rules.iter().any(|r| r.kind == AlertKind::ErrorRate) {
        return Ok(false);
    }
    let mut clearing = Vec::new();
    for finding in judge(app, ctx, &rules, run, flow, connections).await? {
        match finding.verdict {
            Verdict::Raise { .. } => return Ok(false),
            Verdict::Clear(_) => clearing.push(finding.key()),
            Verdict::Silent => {}
        }
    }
    Ok(app
        .store
        .unresolved_alerts(ctx, &clearing)
        .await?
        .is_empty())
}

/// The engine's question before a run's end, answered by [`quiet_end`].
pub struct Rules;

impl EndJudge for Rules {
    fn quiet<'a>(
        &'a self,
        app: &'a App,
        ctx: &'a TenantCtx,
        run: &'a runs::Model,
        flow: &'a flows::Model,
        connections: &'a [connections::Model],
    ) -> BoxFuture<'a, Result<bool, DbErr>> {
        Box::pin(quiet_end(app, ctx, run, flow, connections))
    }
}

/// What `rules` conclude about a finished run: one finding per rule, and per connection
/// for connection rules.
async fn judge<'a>(
    app: &App,
    ctx: &TenantCtx,
    rules: &'a [alert_rules::Model],
    run: &runs::Model,
    flow: &flows::Model,
    connections: &[connections::Model],
) -> Result<Vec<Finding<'a>>, DbErr> {
    let mut findings = Vec::new();
    for rule in rules {
        if rule.kind == AlertKind::ConnectionReauth {
            findings.extend(connections.iter().map(|c| connection_finding(rule, c)));
        } else {
            findings.push(Finding {
                rule,
                subject: Subject::Flow(flow.id, flow.name.clone()),
                run: Some(run.id),
                verdict: judge_run(app, ctx, rule, run, flow).await?,
            });
        }
    }
    Ok(findings)
}

/// What one rule concluded about one subject.
struct Finding<'a> {
    rule: &'a alert_rules::Model,
    subject: Subject,
    /// The run that prompted it, if any.
    run: Option<RunId>,
    verdict: Verdict,
}

impl Finding<'_> {
    fn key(&self) -> String {
        dedupe_key(self.rule, &self.subject)
    }
}

async fn judge_run(
    app: &App,
    ctx: &TenantCtx,
    rule: &alert_rules::Model,
    run: &runs::Model,
    flow: &flows::Model,
) -> Result<Verdict, DbErr> {
    let status = run.status;
    let name = &flow.name;
    let recovered = || Verdict::Clear(format!("Run {} of {name} succeeded.", run.id));
    let kind = rule.kind;
    Ok(match kind {
        // Record failures count too: a run that finished without delivering everything
        // needs somebody to fix the cause and replay.
        AlertKind::RunFailed => match status {
            RunStatus::Failed => Verdict::Raise {
                title: format!("{name}: run failed"),
                detail: run
                    .error
                    .clone()
                    .unwrap_or_else(|| "The run failed.".into()),
            },
            RunStatus::PartiallyFailed => Verdict::Raise {
                title: format!("{name}: {} record(s) failed", run.records_failed),
                detail: format!(
                    "Run {} finished, but {} record(s) went to the dead letters. Fix the cause, then replay them.",
                    run.id, run.records_failed
                ),
            },
            RunStatus::Succeeded => recovered(),
            _ => Verdict::Silent,
        },
        AlertKind::ConsecutiveFailures => {
            let n = rule.threshold.unwrap_or(3.0).max(1.0) as i32;
            if status == RunStatus::Failed && flow.consecutive_failures >= n {
                Verdict::Raise {
                    title: format!("{name}: {} failed runs in a row", flow.consecutive_failures),
                    detail: run.error.clone().unwrap_or_default(),
                }
            } else if status.is_success() {
                recovered()
            } else {
                Verdict::Silent
            }
        }
        AlertKind::ErrorRate => error_rate(app, ctx, rule, flow).await?,
        // Fresh data means every record arrived: a run that lost some does not recover it.
        AlertKind::Freshness if status == RunStatus::Succeeded => recovered(),
        AlertKind::Freshness => Verdict::Silent,
        AlertKind::SilentFailure => silent_failure(app, ctx, rule, run, status, name).await?,
        AlertKind::Duration => {
            let limit_ms = (rule.threshold.unwrap_or(3600.0) * 1000.0) as i64;
            match run.duration_ms {
                Some(ms) if ms > limit_ms => Verdict::Raise {
                    title: format!("{name}: run took {:.0} s", ms as f64 / 1000.0),
                    detail: format!(
                        "Run {} took {:.1} s; the limit is {:.0} s.",
                        run.id,
                        ms as f64 / 1000.0,
                        limit_ms as f64 / 1000.0
                    ),
                },
                Some(_) => Verdict::Clear(format!("Run {} finished within the limit.", run.id)),
                None => Verdict::Silent,
            }
        }
        AlertKind::AutoPaused => auto_paused(flow),
        AlertKind::ConnectionReauth => Verdict::Silent,
    })
}

async fn error_rate(
    app: &App,
    ctx: &TenantCtx,
    rule: &alert_rules::Model,
    flow: &flows::Model,
) -> Result<Verdict, DbErr> {
    let window = rule.window_minutes.unwrap_or(60).max(1);
    let limit = rule.threshold.unwrap_or(25.0);
    let totals = app
        .store
        .rollup_totals(
            ctx,
            Some(flow.id),
            MINUTE,
            now() - Duration::minutes(i64::from(window)),
        )
        .await?;
    let Some(rate) = totals.error_rate() else {
        return Ok(Verdict::Clear("No runs in the window.".into()));
    };
    Ok(if totals.runs >= ERROR_RATE_MIN_RUNS && rate > limit {
        Verdict::Raise {
            title: format!("{}: {rate:.0} % of runs failed or lost records", flow.name),
            detail: format!(
                "{} of {} runs failed or sent records to the dead letters in the last {} (limit {limit:.0} %).",
                totals.with_errors(),
                totals.runs,
                crate::domain::alert::minutes(window)
            ),
        }
    } else if rate <= limit {
        Verdict::Clear(format!("The error rate is down to {rate:.0} %."))
    } else {
        Verdict::Silent
    })
}

async fn silent_failure(
    app: &App,
    ctx: &TenantCtx,
    rule: &alert_rules::Model,
    run: &runs::Model,
    status: RunStatus,
    name: &str,
) -> Result<Verdict, DbErr> {
    // Replays and incremental runs that legitimately find little are judged like any
    // other run of the flow: the baseline is the flow's own recent history.
    if !status.is_success() || run.trigger == RunTrigger::Replay {
        return Ok(Verdict::Silent);
    }
    let mut volumes = app
        .store
        .recent_volumes(ctx, run.flow_id, run.id, 10)
        .await?;
    if volumes.len() < BASELINE_MIN_RUNS {
        return Ok(Verdict::Silent);
    }
    volumes.sort_unstable();
    let median = volumes[volumes.len() / 2];
    if median < BASELINE_MIN_RECORDS {
        return Ok(Verdict::Silent);
    }
    let drop = rule.threshold.unwrap_or(80.0).clamp(1.0, 100.0);
    let floor = median as f64 * (1.0 - drop / 100.0);
    Ok(if run.records_read == 0 {
        Verdict::Raise {
            title: format!("{name}: run succeeded with 0 records"),
            detail: format!(
                "Run {} read nothing, where the last {} successful runs read {median} records (median). The source may have changed, or its credentials may see less than before.",
                run.id,
                volumes.len()
            ),
        }
    } else if (run.records_read as f64) < floor {
        Verdict::Raise {
            title: format!("{name}: record volume dropped"),
            detail: format!(
                "Run {} read {} records, {:.0} % below the median of {median} over the last {} successful runs.",
                run.id,
                run.records_read,
                100.0 * (1.0 - run.records_read as f64 / median as f64),
                volumes.len()
            ),
        }
    } else {
        Verdict::Clear(format!(
            "Run {} read {} records, in line with the usual {median}.",
            run.id, run.records_read
        ))
    })
}

fn auto_paused(flow: &flows::Model) -> Verdict {
    let paused = flow.status == FlowStatus::Paused;
    match &flow.paused_reason {
        Some(reason) if paused && reason.starts_with("Paused automatically") => Verdict::Raise {
            title: format!("{}: paused automatically", flow.name),
            detail: reason.clone(),
        },
        _ if !paused => Verdict::Clear(format!("{} is active again.", flow.name)),
        _ => Verdict::Silent,
    }
}

fn judge_connection(rule: &alert_rules::Model, conn: &connections::Model) -> Verdict {
    let failures = rule.threshold.unwrap_or(3.0).max(1.0) as i32;
    let why = conn.last_error.clone().unwrap_or_default();
    if conn.status == ConnectionStatus::ReauthRequired {
        Verdict::Raise {
            title: format!("{}: must be reconnected", conn.name),
            detail: format!("The provider no longer accepts this connection's credentials. {why}"),
        }
    } else if conn.refresh_failures >= failures {
        Verdict::Raise {
            title: format!("{}: token refresh keeps failing", conn.name),
            detail: format!(
                "The last {} token refreshes failed. {why}",
                conn.refresh_failures
            ),
        }
    } else if conn.status == ConnectionStatus::Active {
        Verdict::Clear(format!("{} works again.", conn.name))
    } else {
        Verdict::Silent
    }
}

fn connection_finding<'a>(rule: &'a alert_rules::Model, conn: &connections::Model) -> Finding<'a> {
    Finding {
        rule,
        subject: Subject::Connection(conn.id, conn.name.clone()),
        run: None,
        verdict: judge_connection(rule, conn),
    }
}

/// Acts on a finding: looks up its open alert, then [`settle`]s it.
async fn apply(app: &App, ctx: &TenantCtx, finding: Finding<'_>) -> Result<(), DbErr> {
    if matches!(finding.verdict, Verdict::Silent) {
        return Ok(());
    }
    let open = app.store.unresolved_alert(ctx, &finding.key()).await?;
    settle(app, ctx, finding, open).await
}

/// Acts on a finding whose open alert (if any) is `open`: raises, counts or resolves it.
async fn settle(
    app: &App,
    ctx: &TenantCtx,
    finding: Finding<'_>,
    open: Option<alerts::Model>,
) -> Result<(), DbErr> {
    let Finding {
        rule,
        subject,
        run,
        verdict,
    } = finding;
    match (verdict, open) {
        (Verdict::Raise { title, detail }, open) => {
            raise(app, ctx, rule, &subject, run, open, title, detail).await
        }
        (Verdict::Clear(why), Some(open)) => resolve(app, ctx, &open, &why).await,
        (Verdict::Clear(_) | Verdict::Silent, _) => Ok(()),
    }
}

#[allow(clippy::too_many_arguments)]
async fn raise(
    app: &App,
    ctx: &TenantCtx,
    rule: &alert_rules::Model,
    subject: &Subject,
    run: Option<RunId>,
    open: Option<alerts::Model>,
    title: String,
    mut detail: String,
) -> Result<(), DbErr> {
    let kind = rule.kind;
    let key = dedupe_key(rule, subject);
    if let Some(open) = open {
        app.store
            .bump_alert(ctx, open.id, &title, &detail, run)
            .await?;
        return app
            .store
            .add_alert_occurrence(ctx, open.id, run, &title, &detail)
            .await;
    }
    if rule.throttle_minutes > 0 {
        let since = now() - Duration::minutes(i64::from(rule.throttle_minutes));
        if let Some(recent) = app.store.recently_resolved_alert(ctx, &key, since).await? {
            // Flapping: reopen quietly rather than notify again within the throttle.
            if app
                .store
                .reopen_alert(ctx, recent.id, &title, &detail)
                .await?
            {
                app.store
                    .add_alert_occurrence(ctx, recent.id, run, &title, &detail)
                    .await?;
            }
            return Ok(());
        }
    }
    if let Subject::Connection(id, _) = subject
        && let Some(link) = reconnect_link(app, ctx, *id).await
    {
        detail.push_str(&format!(
            "\n\nSend this link to the customer to reconnect (valid 7 days, single use): {link}"
        ));
    }
    let (flow_id, connection_id) = match subject {
        Subject::Flow(id, _) => (Some(*id), None),
        Subject::Connection(id, _) => (None, Some(*id)),
    };
    let id = AlertId::new();
    let inserted = app
        .store
        .insert_alert(alerts::ActiveModel {
            id: Set(id),
            rule_id: Set(Some(rule.id)),
            kind: Set(kind),
            flow_id: Set(flow_id),
            connection_id: Set(connection_id),
            run_id: Set(run),
            subject: Set(subject.name().to_owned()),
            dedupe_key: Set(key),
            state: Set(crate::domain::AlertState::Open),
            title: Set(title.clone()),
            detail: Set(detail.clone()),
            occurrences: Set(1),
            notified: Set(false),
            acknowledged_at: Set(None),
            acknowledged_by: Set(None),
            resolved_at: Set(None),
            resolution: Set(None),
            ..alerts::ActiveModel::fresh(ctx)
        })
        .await?;
    if inserted {
        app.store
            .add_alert_occurrence(ctx, id, run, &title, &detail)
            .await?;
        tracing::info!(alert = %id, kind = kind.as_str(), "alert opened");
        metrics::counter!("sluice_alerts_opened_total", "kind" => kind.as_str()).increment(1);
        notify(app, ctx, id, "opened").await?;
        app.store.mark_alert_notified(ctx, id).await?;
    }
    Ok(())
}

/// A fresh single-use link that reconnects the connection, for connections an end
/// customer made through a connect link (members reconnect from the connection page).
async fn reconnect_link(app: &App, ctx: &TenantCtx, id: ConnectionId) -> Option<String> {
    match crate::services::connect_links::create_reconnect_link(app, ctx, id).await {
        Ok(link) => link.map(|l| l.url),
        Err(e) => {
            tracing::warn!(connection = %id, error = %e, "could not create a reconnect link");
            None
        }
    }
}

/// Resolves an alert and tells the channels that were told it opened.
pub async fn resolve(
    app: &App,
    ctx: &TenantCtx,
    alert: &alerts::Model,
    why: &str,
) -> Result<(), DbErr> {
    let id = alert.id;
    if app.store.resolve_alert(ctx, id, why).await? && alert.notified {
        tracing::info!(alert = %id, "alert resolved");
        notify(app, ctx, id, "resolved").await?;
    }
    Ok(())
}

/// Creates one delivery per enabled channel for an alert event and enqueues its job. A
/// lost job is found again by the sweep (the delivery stays pending).
async fn notify(app: &App, ctx: &TenantCtx, alert: AlertId, event: &str) -> Result<(), DbErr> {
    for channel in app.store.channels(ctx).await? {
        if !channel.enabled {
            continue;
        }
        let channel_id = channel.id;
        if let Some(delivery) = app
            .store
            .insert_delivery(ctx, alert, channel_id, event)
            .await?
            && let Err(e) = app
                .queue
                .push(DeliverNotification {
                    tenant_id: ctx.tenant_id(),
                    delivery_id: delivery,
                })
                .await
        {
            tracing::warn!(error = %e, "could not enqueue a notification; the sweep will");
        }
    }
    Ok(())
}

/// The periodic pass for time-based conditions: stale flows, unhealthy connections,
/// recovered auto-paused flows and error rates, runs whose evaluation job was lost, and
/// deliveries whose job was lost.
pub async fn sweep(app: &App) -> anyhow::Result<()> {
    let settle = now() - Duration::seconds(15);
    for (tenant, run) in app.store.unchecked_runs(settle, 500).await? {
        let Ok(ctx) = app.system_scope(tenant).await else {
            continue;
        };
        evaluate_run(app, &ctx, run).await?;
    }
    for kind in [
        AlertKind::Freshness,
        AlertKind::ConnectionReauth,
        AlertKind::AutoPaused,
        AlertKind::ErrorRate,
    ] {
        for tenant in app.store.tenants_with_rule(kind).await? {
            let Ok(ctx) = app.system_scope(tenant).await else {
                continue;
            };
            sweep_tenant(app, &ctx, kind).await?;
        }
    }
    for (tenant, delivery) in app.store.overdue_deliveries(settle, 500).await? {
        app.queue
            .push(DeliverNotification {
                tenant_id: tenant,
                delivery_id: delivery,
            })
            .await?;
    }
    Ok(())
}

async fn sweep_tenant(app: &App, ctx: &TenantCtx, kind: AlertKind) -> Result<(), DbErr> {
    let rules = app.store.alert_rules(ctx).await?;
    let rules: Vec<_> = rules
        .iter()
        .filter(|r| r.enabled && r.kind == kind)
        .collect();
    match kind {
        AlertKind::ConnectionReauth => {
            let conns = app.store.connections(ctx).await?;
            for rule in rules {
                for conn in &conns {
                    apply(app, ctx, connection_finding(rule, conn)).await?;
                }
            }
        }
        AlertKind::Freshness => {
            let flows = app.store.flows(ctx).await?;
            let tz = app.store.tenant(ctx).await?.time_zone;
            for rule in rules {
                for flow in flows
                    .iter()
                    .filter(|f| rule.flow_id.is_none() || rule.flow_id == Some(f.id))
                {
                    let finding = Finding {
                        rule,
                        subject: Subject::Flow(flow.id, flow.name.clone()),
                        run: None,
                        verdict: freshness(rule, flow, tz),
                    };
                    apply(app, ctx, finding).await?;
                }
            }
        }
        AlertKind::AutoPaused | AlertKind::ErrorRate => {
            for rule in rules {
                for alert in app
                    .store
                    .unresolved_alerts_of_kind(ctx, kind.as_str())
                    .await?
                {
                    if alert.rule_id != Some(rule.id) {
                        continue;
                    }
                    let Some(flow_id) = alert.flow_id else {
                        continue;
                    };
                    let Some(flow) = app.store.flow(ctx, flow_id).await? else {
                        resolve(app, ctx, &alert, "The flow was deleted.").await?;
                        continue;
                    };
                    let verdict = if kind == AlertKind::AutoPaused {
                        auto_paused(&flow)
                    } else {
                        error_rate(app, ctx, rule, &flow).await?
                    };
                    if let Verdict::Clear(why) = verdict {
                        resolve(app, ctx, &alert, &why).await?;
                    }
                }
            }
        }
        _ => {}
    }
    Ok(())
}

/// Whether `flow` succeeded within the rule's window; times are told in the workspace zone `tz`.
fn freshness(rule: &alert_rules::Model, flow: &flows::Model, tz: TimeZone) -> Verdict {
    let scheduled =
        flow.trigger_kind == TriggerKind::Interval || flow.trigger_kind == TriggerKind::Cron;
    if !scheduled || flow.status != FlowStatus::Active {
        return Verdict::Clear(format!("{} is not on a schedule.", flow.name));
    }
    let window = Duration::minutes(i64::from(rule.window_minutes.unwrap_or(1440).max(1)));
    let since = flow.last_success_at.unwrap_or(flow.created_at);
    if now() - since > window {
        Verdict::Raise {
            title: format!(
                "{}: no successful run for {}",
                flow.name,
                ago(now() - since)
            ),
            detail: match flow.last_success_at {
                Some(at) => format!(
                    "The last successful run finished at {}; the rule expects one every {}.",
                    tz.at(at),
                    crate::domain::alert::minutes(rule.window_minutes.unwrap_or(1440))
                ),
                None => "The flow has never run successfully.".into(),
            },
        }
    } else {
        Verdict::Clear(format!("{} ran successfully.", flow.name))
    }
}

fn ago(d: Duration) -> String {
    crate::domain::alert::minutes(i32::try_from(d.num_minutes()).unwrap_or(i32::MAX))
}

/// Evaluates a connection against the tenant's connection rules at once (called when a
/// connection needs reauthorisation, so the alert does not wait for the sweep).
pub async fn evaluate_connection(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
) -> Result<(), DbErr> {
    let Some(conn) = app.store.connection(ctx, id).await? else {
        return Ok(());
    };
    for rule in app.store.alert_rules(ctx).await? {
        if rule.enabled && rule.kind == AlertKind::ConnectionReauth {
            apply(app, ctx, connection_finding(&rule, &conn)).await?;
        }
    }
    Ok(())
}
