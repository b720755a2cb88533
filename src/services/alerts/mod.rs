//! Alert use cases: acknowledging and resolving alerts, editing rules, and managing the
//! channels notifications go to.

pub mod channels;
pub mod defaults;
pub mod evaluate;

use super::require_write;
use crate::app::{App, AuditActor};
use crate::domain::{
    AlertId, AlertKind, AlertRuleId, AlertState, ChannelId, ChannelKind, FieldErrors, FlowId,
    TenantCtx, text,
};
use crate::error::{AppError, AppResult};
use crate::services::alerts::channels::secret_aad;
use crate::store::entities::{alert_rules, alerts, notification_channels};
use sea_orm::Set;

/// A rule as entered in a form or the API (text fields, validated here).
#[derive(Clone, Debug, Default)]
pub struct RuleInput {
    /// Rule kind (`run_failed`, …).
    pub kind: String,
    /// A flow id, or empty for every flow.
    pub flow_id: String,
    /// Threshold, for kinds that have one.
    pub threshold: String,
    /// Window in minutes, for kinds that have one.
    pub window_minutes: String,
    /// Minutes within which a flapping alert does not notify again.
    pub throttle_minutes: String,
    /// Whether the rule is on.
    pub enabled: bool,
}

/// Settings of a rule, validated.
struct RuleSettings {
    kind: AlertKind,
    flow: Option<FlowId>,
    threshold: Option<f64>,
    window: Option<i32>,
    throttle: i32,
}

fn number(raw: &str, min: f64, max: f64, what: &str) -> Result<f64, String> {
    raw.trim()
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && (min..=max).contains(v))
        .ok_or(format!("Enter {what} from {min} to {max}."))
}

async fn validate_rule(app: &App, ctx: &TenantCtx, input: &RuleInput) -> AppResult<RuleSettings> {
    let mut errors = FieldErrors::new();
    let kind = errors.check(
        "kind",
        input
            .kind
            .parse::<AlertKind>()
            .map_err(|_| "Choose what the rule watches for.".to_owned()),
    );
    let flow = match input.flow_id.trim() {
        "" => None,
        raw => {
            let id = raw.parse::<FlowId>().ok();
            let found = match id {
                Some(id) => app.store.flow(ctx, id).await?.is_some(),
                None => false,
            };
            if !found {
                errors.add("flow_id", "Choose one of your flows, or all flows.");
            }
            id
        }
    };
    let threshold = match kind.map(|k| (k, k.threshold_label())) {
        Some((k, Some(label))) => {
            let (min, max) = match k {
                AlertKind::Duration => (1.0, 86_400.0),
                _ => (1.0, 100.0),
            };
            errors.check("threshold", number(&input.threshold, min, max, label))
        }
        _ => None,
    };
    let window = match kind {
        Some(k) if k.uses_window() => errors
            .check(
                "window_minutes",
                number(&input.window_minutes, 5.0, 43_200.0, "a window in minutes"),
            )
            .map(|w| w as i32),
        _ => None,
    };
    let throttle = match input.throttle_minutes.trim() {
        "" => Some(crate::services::alerts::defaults::THROTTLE_MINUTES),
        raw => errors
            .check("throttle_minutes", number(raw, 0.0, 10_080.0, "minutes"))
            .map(|t| t as i32),
    };
    if kind.is_some_and(AlertKind::about_connections) && flow.is_some() {
        errors.add(
            "flow_id",
            "Connection rules apply to all connections; choose all flows.",
        );
    }
    let (kind, throttle) = errors.into_result(|| Some((kind?, throttle?)))?;
    Ok(RuleSettings {
        kind,
        flow,
        threshold,
        window,
        throttle,
    })
}

/// Adds a rule.
pub async fn create_rule(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    input: &RuleInput,
) -> AppResult<AlertRuleId> {
    require_write(ctx)?;
    let s = validate_rule(app, ctx, input).await?;
    let id = app
        .store
        .insert_alert_rule(alert_rules::ActiveModel {
            flow_id: Set(s.flow),
            kind: Set(s.kind),
            threshold: Set(s.threshold),
            window_minutes: Set(s.window),
            throttle_minutes: Set(s.throttle),
            enabled: Set(input.enabled),
            ..alert_rules::ActiveModel::fresh(ctx)
        })
        .await?
        .id;
    app.audit(
        ctx,
        actor,
        "alert_rule.created",
        Some(s.kind.label().into()),
        Some(serde_json::json!({ "rule": id, "flow": s.flow })),
    )
    .await?;
    Ok(id)
}

/// Changes a rule's threshold, window, throttle and switch (its kind and flow stay).
pub async fn update_rule(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: AlertRuleId,
    input: &RuleInput,
) -> AppResult<()> {
    require_write(ctx)?;
    let rule = rule(app, ctx, id).await?;
    let input = RuleInput {
        kind: rule.kind.to_string(),
        flow_id: rule.flow_id.map(|f| f.to_string()).unwrap_or_default(),
        ..input.clone()
    };
    let s = validate_rule(app, ctx, &input).await?;
    app.store
        .update_alert_rule(ctx, id, s.threshold, s.window, s.throttle, input.enabled)
        .await?;
    app.audit(
        ctx,
        actor,
        "alert_rule.updated",
        Some(s.kind.label().into()),
        Some(serde_json::json!({ "rule": id, "enabled": input.enabled })),
    )
    .await?;
    Ok(())
}

/// Deletes a rule; its alerts stay in the history.
pub async fn delete_rule(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: AlertRuleId,
) -> AppResult<()> {
    require_write(ctx)?;
    let rule = rule(app, ctx, id).await?;
    app.store.delete_alert_rule(ctx, id).await?;
    app.audit(
        ctx,
        actor,
        "alert_rule.deleted",
        Some(rule.kind.to_string()),
        Some(serde_json::json!({ "rule": id })),
    )
    .await?;
    Ok(())
}

/// Acknowledges an open alert: someone is on it.
pub async fn acknowledge(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: AlertId,
) -> AppResult<alerts::Model> {
    require_write(ctx)?;
    let alert = get(app, ctx, id).await?;
    if alert.state != AlertState::Open {
        return Err(AppError::Conflict(format!(
            "This alert is already {}.",
            alert.state
        )));
    }
    app.store.acknowledge_alert(ctx, id, &actor.label).await?;
    app.audit(
        ctx,
        actor,
        "alert.acknowledged",
        Some(alert.title.clone()),
        None,
    )
    .await?;
    get(app, ctx, id).await
}

/// Resolves an alert by hand (it reopens if the condition persists).
pub async fn resolve(app: &App, ctx: &TenantCtx, actor: &AuditActor, id: AlertId) -> AppResult<()> {
    require_write(ctx)?;
    let alert = get(app, ctx, id).await?;
    if alert.state == AlertState::Resolved {
        return Ok(());
    }
    crate::services::alerts::evaluate::resolve(
        app,
        ctx,
        &alert,
        &format!("Resolved by {}.", actor.label),
    )
    .await?;
    app.audit(ctx, actor, "alert.resolved", Some(alert.title), None)
        .await?;
    Ok(())
}

/// A channel as entered.
#[derive(Clone, Debug, Default)]
pub struct ChannelInput {
    /// email, webhook or slack.
    pub kind: String,
    /// Display name.
    pub name: String,
    /// The address or URL.
    pub target: String,
}

/// A created channel, with its signing secret (webhooks), shown once.
pub struct CreatedChannel {
    /// Id.
    pub id: ChannelId,
    /// `whsec_…`, for signed webhooks only.
    pub secret: Option<String>,
}

/// Adds a channel. Webhook URLs are checked against the outbound guard now, so a
/// channel pointing at an internal address is refused at once, not at the first alert.
pub async fn create_channel(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    input: &ChannelInput,
) -> AppResult<CreatedChannel> {
    require_write(ctx)?;
    let mut errors = FieldErrors::new();
    let kind = errors.check(
        "kind",
        input
            .kind
            .parse::<ChannelKind>()
            .map_err(|_| "Choose e-mail, signed webhook or Slack.".to_owned()),
    );
    let name = errors.check("name", text::parse_display_name(&input.name, "name", 80));
    let target = input.target.trim().to_owned();
    match kind {
        Some(ChannelKind::Email) => {
            if target.parse::<lettre::message::Mailbox>().is_err() {
                errors.add("target", "Enter an e-mail address.");
            } else if app.settings.smtp_url.is_none() {
                errors.add(
                    "target",
                    "E-mail needs an SMTP server: set SLUICE_SMTP_URL, then add this channel.",
                );
            }
        }
        Some(ChannelKind::Webhook | ChannelKind::Slack) => {
            if target.len() > 2000 {
                errors.add("target", "The URL is too long.");
            } else if let Err(e) = app.outbound.check_destination(&target).await {
                errors.add("target", format!("This URL cannot be used: {e}."));
            }
        }
        None => {}
    }
    let (kind, name) = errors.into_result(|| Some((kind?, name?)))?;
    let id = ChannelId::new();
    let secret = (kind == ChannelKind::Webhook).then(crate::crypto::new_webhook_secret);
    let sealed = secret
        .as_ref()
        .map(|s| app.keyring.encrypt(s.as_bytes(), &secret_aad(ctx, id)));
    app.store
        .insert_channel(notification_channels::ActiveModel {
            id: Set(id),
            kind: Set(kind),
            name: Set(name.clone()),
            target: Set(target),
            secret_enc: Set(sealed),
            enabled: Set(true),
            disabled_reason: Set(None),
            ..notification_channels::ActiveModel::fresh(ctx)
        })
        .await?;
    app.audit(
        ctx,
        actor,
        "channel.created",
        Some(name),
        Some(serde_json::json!({ "kind": kind.as_str() })),
    )
    .await?;
    Ok(CreatedChannel { id, secret })
}

/// Turns a channel on or off (turning on clears why it was disabled).
pub async fn set_channel_enabled(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: ChannelId,
    enabled: bool,
) -> AppResult<()> {
    require_write(ctx)?;
    let channel = channel(app, ctx, id).await?;
    let reason = (!enabled).then(|| format!("Turned off by {}.", actor.label));
    app.store
        .set_channel_enabled(ctx, id, enabled, reason)
        .await?;
    let action = if enabled {
        "channel.enabled"
    } else {
        "channel.disabled"
    };
    app.audit(ctx, actor, action, Some(channel.name), None)
        .await?;
    Ok(())
}

/// Deletes a channel with its delivery history.
pub async fn delete_channel(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: ChannelId,
) -> AppResult<()> {
    require_write(ctx)?;
    let channel = channel(app, ctx, id).await?;
    app.store.delete_channel(ctx, id).await?;
    app.audit(ctx, actor, "channel.deleted", Some(channel.name), None)
        .await?;
    Ok(())
}

/// The tenant's alerts matching `filter`, newest first, from before `before`.
pub async fn list(
    app: &App,
    ctx: &TenantCtx,
    filter: crate::store::AlertFilter,
    before: Option<AlertId>,
    limit: u64,
) -> AppResult<Vec<alerts::Model>> {
    Ok(app.store.alerts(ctx, filter, before, limit).await?)
}

/// An alert, or 404.
pub async fn get(app: &App, ctx: &TenantCtx, id: AlertId) -> AppResult<alerts::Model> {
    app.store.alert(ctx, id).await?.ok_or(AppError::NotFound)
}

/// What fired an alert each time, newest first (at most `limit`).
pub async fn occurrences(
    app: &App,
    ctx: &TenantCtx,
    id: AlertId,
    limit: u64,
) -> AppResult<Vec<crate::services::records::AlertOccurrence>> {
    Ok(app.store.alert_occurrences(ctx, id, limit).await?)
}

/// Notification deliveries (of one alert, or all), newest first.
pub async fn deliveries(
    app: &App,
    ctx: &TenantCtx,
    alert: Option<AlertId>,
    before: Option<crate::domain::DeliveryId>,
    limit: u64,
) -> AppResult<Vec<crate::store::entities::notification_deliveries::Model>> {
    Ok(app.store.deliveries(ctx, alert, before, limit).await?)
}

/// The tenant's notification channels.
pub async fn channels(app: &App, ctx: &TenantCtx) -> AppResult<Vec<notification_channels::Model>> {
    Ok(app.store.channels(ctx).await?)
}

/// An alert rule, or 404.
pub async fn rule(app: &App, ctx: &TenantCtx, id: AlertRuleId) -> AppResult<alert_rules::Model> {
    app.store
        .alert_rule(ctx, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// A notification channel, or 404.
pub async fn channel(
    app: &App,
    ctx: &TenantCtx,
    id: ChannelId,
) -> AppResult<notification_channels::Model> {
    app.store.channel(ctx, id).await?.ok_or(AppError::NotFound)
}

/// The tenant's alert rules.
pub async fn rules(app: &App, ctx: &TenantCtx) -> AppResult<Vec<alert_rules::Model>> {
    Ok(app.store.alert_rules(ctx).await?)
}
