//! Delivering alert notifications: e-mail over SMTP, webhooks signed per the Standard
//! Webhooks specification, and Slack-compatible incoming webhooks. Each delivery is a
//! job; a failed attempt is retried with backoff (or after the receiver's
//! `Retry-After`), keeping the same message id so receivers can deduplicate.

use crate::app::App;
use crate::connectors::http::{OutboundError, Purpose};
use crate::crypto::Aad;
use crate::domain::{ChannelId, ChannelKind, DeliveryId, DeliveryState, TenantCtx};
use crate::queue::retry::RetryPolicy;
use crate::queue::{DeliverNotification, JobError};
use crate::store::entities::{alerts, notification_channels, notification_deliveries};
use crate::store::now;
use serde_json::json;
use std::time::Duration;

/// Attempts per delivery before it is given up.
pub const MAX_ATTEMPTS: i32 = 8;
/// How long an attempt holds its delivery before the sweep may assume its job was lost.
const ATTEMPT_LEASE: Duration = Duration::from_secs(120);

/// Why an attempt did not deliver.
#[derive(Debug)]
pub enum SendError {
    /// Try again later (after the receiver's `Retry-After`, if it sent one).
    Retry {
        /// HTTP status, when there was an answer.
        status: Option<u16>,
        /// What happened.
        message: String,
        /// Delay the receiver asked for.
        retry_after: Option<Duration>,
    },
    /// The endpoint is gone for good (410): the channel is disabled.
    Gone(String),
    /// Retrying will not help (bad address, refused destination, no SMTP server).
    Fatal(String),
}

/// The encryption context of a channel's signing secret.
pub fn secret_aad(ctx: &TenantCtx, channel: ChannelId) -> Aad {
    Aad::new("channel_secret", ctx.tenant_id(), channel)
}

/// Runs one attempt of a delivery and records its outcome.
pub async fn deliver(app: &App, ctx: &TenantCtx, id: DeliveryId) -> Result<(), JobError> {
    let Some(delivery) = app.store.delivery(ctx, id).await? else {
        return Ok(());
    };
    if delivery.state != DeliveryState::Pending {
        return Ok(());
    }
    // The queue may start a delayed job a little early (it keeps whole seconds): wait
    // out the rest rather than lose the attempt.
    if let Some(due) = delivery.next_attempt_at
        && let Ok(early) = (due - now()).to_std()
        && !early.is_zero()
        && delivery.attempts > 0
        && early < ATTEMPT_LEASE
    {
        return app
            .queue
            .push_after(
                DeliverNotification {
                    tenant_id: ctx.tenant_id(),
                    delivery_id: id,
                },
                early + Duration::from_millis(50),
            )
            .await
            .map_err(|e| JobError::retryable(e.to_string()));
    }
    if !app
        .store
        .claim_delivery(ctx, id, delivery.attempts, ATTEMPT_LEASE)
        .await?
    {
        // Another worker holds this attempt.
        return Ok(());
    }
    let alert = app.store.alert(ctx, delivery.alert_id).await?;
    let channel = app.store.channel(ctx, delivery.channel_id).await?;
    let result = match (&alert, &channel) {
        (Some(alert), Some(channel)) if channel.enabled => {
            send(app, ctx, channel, alert, &delivery).await
        }
        (_, Some(channel)) if !channel.enabled => Err(SendError::Fatal(format!(
            "the channel is disabled{}",
            channel
                .disabled_reason
                .as_deref()
                .map(|r| format!(": {r}"))
                .unwrap_or_default()
        ))),
        _ => Err(SendError::Fatal("the alert or channel was deleted".into())),
    };
    let kind = channel
        .as_ref()
        .map_or("unknown", |c| match c.kind.as_str() {
            "email" => "email",
            "webhook" => "webhook",
            "slack" => "slack",
            _ => "unknown",
        });
    let attempt = delivery.attempts + 1;
    let (outcome, state, status, error, next) = match result {
        Ok(status) => (
            "delivered",
            DeliveryState::Delivered,
            status.map(i32::from),
            None,
            None,
        ),
        Err(SendError::Gone(message)) => {
            if let Some(c) = &channel {
                app.store
                    .set_channel_enabled(
                        ctx,
                        c.id,
                        false,
                        Some(format!("The endpoint answered 410 Gone: {message}")),
                    )
                    .await?;
                tracing::warn!(channel = %c.id, "notification endpoint is gone; channel disabled");
            }
            (
                "gone",
                DeliveryState::Failed,
                Some(410),
                Some(message),
                None,
            )
        }
        Err(SendError::Fatal(message)) => {
            ("failed", DeliveryState::Failed, None, Some(message), None)
        }
        Err(SendError::Retry {
            status,
            message,
            retry_after,
        }) if attempt < MAX_ATTEMPTS => {
            let policy = RetryPolicy {
                base: app.settings.job_retry_base,
                cap: app.settings.job_retry_cap,
            };
            let delay = policy.delay(u32::try_from(attempt).unwrap_or(1), retry_after);
            (
                "retrying",
                DeliveryState::Pending,
                status.map(i32::from),
                Some(message),
                Some(delay),
            )
        }
        Err(SendError::Retry {
            status, message, ..
        }) => (
            "failed",
            DeliveryState::Failed,
            status.map(i32::from),
            Some(message),
            None,
        ),
    };
    metrics::counter!("sluice_alert_deliveries_total", "tenant" => crate::telemetry::tenant_label(ctx.tenant_id()), "channel" => kind, "outcome" => outcome)
        .increment(1);
    let next_at = next.map(|d| now() + chrono::Duration::from_std(d).unwrap_or_default());
    app.store
        .record_delivery_attempt(ctx, id, state, status, error, next_at)
        .await?;
    if let Some(delay) = next {
        app.queue
            .push_after(
                DeliverNotification {
                    tenant_id: ctx.tenant_id(),
                    delivery_id: id,
                },
                delay,
            )
            .await
            .map_err(|e| JobError::retryable(e.to_string()))?;
    }
    Ok(())
}

/// The public link to an alert.
fn alert_url(app: &App, alert: &alerts::Model) -> String {
    app.settings.url_for(&format!("/alerts/{}", alert.id))
}

/// The event name receivers see: `alert.opened` or `alert.resolved`.
fn event_type(delivery: &notification_deliveries::Model) -> String {
    format!("alert.{}", delivery.event)
}

/// The JSON body of webhook notifications.
pub fn webhook_payload(
    app: &App,
    alert: &alerts::Model,
    delivery: &notification_deliveries::Model,
) -> serde_json::Value {
    json!({
        "type": event_type(delivery),
        "timestamp": now().to_rfc3339(),
        "data": {
            "id": alert.id,
            "kind": alert.kind,
            "state": alert.state,
            "title": alert.title,
            "detail": alert.detail,
            "subject": alert.subject,
            "flow_id": alert.flow_id,
            "connection_id": alert.connection_id,
            "run_id": alert.run_id,
            "occurrences": alert.occurrences,
            "opened_at": alert.opened_at.to_rfc3339(),
            "resolved_at": alert.resolved_at.map(|t| t.to_rfc3339()),
            "url": alert_url(app, alert),
        }
    })
}

fn headline(alert: &alerts::Model, delivery: &notification_deliveries::Model) -> String {
    if delivery.event == "resolved" {
        format!("Resolved: {}", alert.title)
    } else {
        alert.title.clone()
    }
}

async fn send(
    app: &App,
    ctx: &TenantCtx,
    channel: &notification_channels::Model,
    alert: &alerts::Model,
    delivery: &notification_deliveries::Model,
) -> Result<Option<u16>, SendError> {
    match channel.kind {
        ChannelKind::Email => send_email(app, channel, alert, delivery)
            .await
            .map(|()| None),
        ChannelKind::Webhook => {
            let sealed = channel
                .secret_enc
                .as_deref()
                .ok_or_else(|| SendError::Fatal("the channel has no signing secret".into()))?;
            let secret = app
                .keyring
                .decrypt(sealed, &secret_aad(ctx, channel.id))
                .map_err(|e| SendError::Fatal(format!("the signing secret cannot be read: {e}")))?;
            let secret = String::from_utf8(secret)
                .map_err(|_| SendError::Fatal("the signing secret is malformed".into()))?;
            let body = serde_json::to_vec(&webhook_payload(app, alert, delivery))
                .map_err(|e| SendError::Fatal(e.to_string()))?;
            // The delivery id is the message id, so a retry carries the same one.
            let msg_id = format!("msg_{}", delivery.id.uuid().simple());
            let ts = now().timestamp();
            let signature = crate::crypto::webhook_signature(&secret, &msg_id, ts, &body)
                .map_err(|e| SendError::Fatal(e.to_string()))?;
            post(
                app,
                &channel.target,
                body,
                &[
                    ("webhook-id", msg_id),
                    ("webhook-timestamp", ts.to_string()),
                    ("webhook-signature", signature),
                ],
            )
            .await
            .map(Some)
        }
        ChannelKind::Slack => {
            let text = slack_text(app, alert, delivery);
            let body = serde_json::to_vec(&json!({ "text": text }))
                .map_err(|e| SendError::Fatal(e.to_string()))?;
            post(app, &channel.target, body, &[]).await.map(Some)
        }
    }
}

/// The Slack message: the only link in it is ours. Flow names, provider errors and
/// everything else in an alert come from users or providers, and in Slack's mrkdwn
/// `<…>` is a link or a mention (`<!channel>`), so their text is escaped.
fn slack_text(
    app: &App,
    alert: &alerts::Model,
    delivery: &notification_deliveries::Model,
) -> String {
    format!(
        "*{}*\n{}\n<{}|Open in Sluice>",
        slack_escape(&headline(alert, delivery)),
        slack_escape(&alert.detail),
        slack_escape(&alert_url(app, alert))
    )
}

/// Escapes text for Slack mrkdwn: `&`, `<` and `>` are its only control characters
/// (Slack formatting reference, "Escaping text").
fn slack_escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            c => out.push(c),
        }
    }
    out
}

async fn post(
    app: &App,
    url: &str,
    body: Vec<u8>,
    headers: &[(&str, String)],
) -> Result<u16, SendError> {
    let refused = |e: OutboundError| match e {
        OutboundError::Forbidden(_) | OutboundError::InvalidUrl(_) => {
            SendError::Fatal(format!("the endpoint is not allowed: {e}"))
        }
        other => SendError::Retry {
            status: None,
            message: other.to_string(),
            retry_after: None,
        },
    };
    let client = app
        .outbound
        .client_for(url, Purpose::Notification)
        .map_err(refused)?;
    let mut request = client
        .post(url)
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .body(body);
    for (name, value) in headers {
        request = request.header(*name, value);
    }
    let request = request
        .build()
        .map_err(|e| SendError::Fatal(e.to_string()))?;
    let answer = app
        .outbound
        .send(request, Purpose::Notification)
        .await
        .map_err(refused)?;
    let status = answer.status.as_u16();
    if answer.status.is_success() {
        return Ok(status);
    }
    let excerpt = String::from_utf8_lossy(&answer.body[..answer.body.len().min(200)])
        .trim()
        .to_owned();
    if status == 410 {
        return Err(SendError::Gone(excerpt));
    }
    // Redirects are not followed: a signed payload goes only where it was configured.
    Err(SendError::Retry {
        status: Some(status),
        message: format!("HTTP {status} {excerpt}").trim().to_owned(),
        retry_after: answer.retry_after(),
    })
}

async fn send_email(
    app: &App,
    channel: &notification_channels::Model,
    alert: &alerts::Model,
    delivery: &notification_deliveries::Model,
) -> Result<(), SendError> {
    use lettre::message::{Mailbox, header::ContentType};
    use lettre::{AsyncSmtpTransport, AsyncTransport, Message, Tokio1Executor};
    let url =
        app.settings.smtp_url.as_deref().ok_or_else(|| {
            SendError::Fatal("no SMTP server is configured (SLUICE_SMTP_URL)".into())
        })?;
    let from: Mailbox = app
        .settings
        .smtp_from
        .parse()
        .map_err(|e| SendError::Fatal(format!("SLUICE_SMTP_FROM: {e}")))?;
    let to: Mailbox = channel
        .target
        .parse()
        .map_err(|e| SendError::Fatal(format!("the address is invalid: {e}")))?;
    let body = format!(
        "{}\n\n{}\n\nOpen in Sluice: {}\n",
        headline(alert, delivery),
        alert.detail,
        alert_url(app, alert)
    );
    let message = Message::builder()
        .from(from)
        .to(to)
        .subject(format!("[Sluice] {}", headline(alert, delivery)))
        .header(ContentType::TEXT_PLAIN)
        .body(body)
        .map_err(|e| SendError::Fatal(e.to_string()))?;
    let transport = AsyncSmtpTransport::<Tokio1Executor>::from_url(url)
        .map_err(|e| SendError::Fatal(format!("SLUICE_SMTP_URL: {e}")))?
        .timeout(Some(Duration::from_secs(30)))
        .build();
    match transport.send(message).await {
        Ok(_) => Ok(()),
        Err(e) if e.is_permanent() => {
            Err(SendError::Fatal(format!("the SMTP server refused: {e}")))
        }
        Err(e) => Err(SendError::Retry {
            status: None,
            message: format!("SMTP: {e}"),
            retry_after: None,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::slack_escape;

    #[test]
    fn slack_text_cannot_open_links_or_mentions() {
        assert_eq!(
            slack_escape("<!channel> & <https://x.example|y>"),
            "&lt;!channel&gt; &amp; &lt;https://x.example|y&gt;"
        );
        assert_eq!(
            slack_escape("&amp;"),
            "&amp;amp;",
            "escaped once more, shown as typed"
        );
    }
}
