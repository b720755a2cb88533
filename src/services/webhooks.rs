//! A flow's signed inbound webhook: its URL and secret, checking what arrives (Standard
//! Webhooks signatures, replay window, size), and storing it durably with group commit:
//! deliveries that arrive while a commit is under way wait for the next one, which
//! stores them all (and the run they start) in one transaction.

use super::require_write;
use crate::app::{App, AuditActor};
use crate::crypto::Aad;
use crate::domain::{
    FlowId, FlowStatus, RunId, RunTrigger, TenantCtx, TenantId, TriggerKind, WebhookEventId,
};
use crate::error::AppResult;
use crate::queue::RunFlow;
use crate::store::{NewWebhookEvent, WebhookArrivals, WebhookDelivery, now};
use std::collections::HashMap;
use tokio::sync::oneshot;

/// Most deliveries stored in one transaction, so that one commit stays short.
const GROUP_MAX: usize = 512;

fn aad(ctx: &TenantCtx, flow: FlowId) -> Aad {
    Aad::new("flow_webhook", ctx.tenant_id(), flow)
}

/// Creates (or replaces) the flow's webhook URL token and signing secret. The secret is
/// returned once, here; only its encryption is stored.
pub async fn rotate_secret(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: FlowId,
) -> AppResult<(String, String)> {
    require_write(ctx)?;
    let flow = super::flows::get(app, ctx, id).await?;
    use base64::Engine;
    let secret = crate::crypto::new_webhook_secret();
    let token = flow.webhook_token.clone().unwrap_or_else(|| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(rand::random::<[u8; 24]>())
    });
    let sealed = app.keyring.encrypt(secret.as_bytes(), &aad(ctx, id));
    app.store
        .set_flow_webhook(ctx, id, Some(token.clone()), Some(sealed))
        .await?;
    app.audit(
        ctx,
        actor,
        "flow.webhook_secret_rotated",
        Some(flow.name),
        None,
    )
    .await?;
    Ok((token, secret))
}

/// The public URL of a flow's webhook.
pub fn url(app: &App, token: &str) -> String {
    format!(
        "{}/hooks/{token}",
        app.settings.public_url.as_str().trim_end_matches('/')
    )
}

/// Why an inbound webhook was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum WebhookRefusal {
    /// No flow has this URL (or its webhook is off).
    #[error("unknown webhook")]
    Unknown,
    /// Missing or wrong signature headers.
    #[error("{0}")]
    BadSignature(String),
    /// The timestamp is outside the tolerance.
    #[error("the timestamp is too old or in the future")]
    Stale,
    /// This message id was accepted before.
    #[error("this message was already received")]
    Replayed,
    /// The body is larger than allowed.
    #[error("the body is too large")]
    TooLarge,
}

/// Largest accepted webhook body.
pub const WEBHOOK_MAX_BODY: usize = 256 * 1024;
/// Accepted clock difference of a webhook timestamp.
pub const WEBHOOK_TOLERANCE_SECS: i64 = 300;

/// The Standard Webhooks headers of a request.
pub struct WebhookHeaders {
    /// `webhook-id`.
    pub id: Option<String>,
    /// `webhook-timestamp` (Unix seconds).
    pub timestamp: Option<String>,
    /// `webhook-signature` (`v1,<base64>` entries separated by spaces).
    pub signature: Option<String>,
}

/// Verifies a Standard Webhooks signature: HMAC-SHA256 over `id.timestamp.body` with the
/// secret's decoded bytes, compared in constant time.
pub fn verify_signature(
    secret: &str,
    headers: &WebhookHeaders,
    body: &[u8],
    at: i64,
) -> Result<(), WebhookRefusal> {
    use base64::Engine;
    let (Some(id), Some(ts), Some(sig)) = (&headers.id, &headers.timestamp, &headers.signature)
    else {
        return Err(WebhookRefusal::BadSignature(
            "webhook-id, webhook-timestamp and webhook-signature are required".into(),
        ));
    };
    let ts_num: i64 = ts.trim().parse().map_err(|_| {
        WebhookRefusal::BadSignature("webhook-timestamp must be Unix seconds".into())
    })?;
    if (at - ts_num).abs() > WEBHOOK_TOLERANCE_SECS {
        return Err(WebhookRefusal::Stale);
    }
    let expected = crate::crypto::webhook_mac(secret, id, ts.trim(), body)
        .map_err(|_| WebhookRefusal::BadSignature("the secret is malformed".into()))?;
    let matches = sig.split_whitespace().any(|entry| {
        entry
            .strip_prefix("v1,")
            .and_then(|b64| base64::engine::general_purpose::STANDARD.decode(b64).ok())
            .is_some_and(|given| {
                use subtle::ConstantTimeEq;
                given.len() == expected.len() && bool::from(given.ct_eq(&expected))
            })
    });
    if matches {
        Ok(())
    } else {
        Err(WebhookRefusal::BadSignature("no signature matches".into()))
    }
}

/// Accepts a signed webhook for the flow behind `token`: verifies it, stores the event
/// durably (its id once), then starts (or joins) a run. Returns the event id.
pub async fn receive(
    app: &App,
    token: &str,
    headers: &WebhookHeaders,
    body: &[u8],
) -> Result<WebhookEventId, WebhookError> {
    if body.len() > WEBHOOK_MAX_BODY {
        return Err(WebhookRefusal::TooLarge.into());
    }
    let flow = app
        .store
        .flow_by_webhook_token(token)
        .await?
        .ok_or(WebhookRefusal::Unknown)?;
    let (Some(sealed), true) = (
        &flow.webhook_secret_enc,
        flow.trigger_kind == TriggerKind::Webhook,
    ) else {
        return Err(WebhookRefusal::Unknown.into());
    };
    // The token proved which tenant this is; the signature proves the sender.
    let ctx = TenantCtx::new(
        flow.tenant_id,
        crate::domain::Role::Admin,
        crate::domain::Actor::System,
    );
    let id = flow.id;
    let secret = app
        .keyring
        .decrypt(sealed, &aad(&ctx, id))
        .map_err(|e| WebhookError::Internal(anyhow::anyhow!("webhook secret of flow {id}: {e}")))?;
    let secret = String::from_utf8(secret).map_err(|e| WebhookError::Internal(e.into()))?;
    verify_signature(&secret, headers, body, now().timestamp())?;
    let event = NewWebhookEvent {
        id: WebhookEventId::new(),
        message_id: headers.id.clone().unwrap_or_default(),
        payload: String::from_utf8_lossy(body).into_owned(),
    };
    let event_id = event.id;
    // A paused flow keeps its events; nothing runs.
    let run = (flow.status == FlowStatus::Active)
        .then(|| super::flows::queued_run_row(&ctx, &flow, RunTrigger::Webhook, None));
    let (answer, answered) = oneshot::channel();
    let start = app.webhooks.push(WebhookDelivery {
        ctx,
        flow: id,
        event,
        run,
        answer,
    });
    if start {
        // A task of its own: the request that started it may be dropped (the sender hung
        // up) while others still wait for this commit.
        tokio::spawn(commit_while_waiting(app.clone()));
    }
    match answered.await {
        Ok(Ok(true)) => Ok(event_id),
        Ok(Ok(false)) => Err(WebhookRefusal::Replayed.into()),
        Ok(Err(e)) => Err(WebhookError::Internal(e)),
        // The commit task ended without answering (the process is stopping).
        Err(_) => Err(WebhookError::Internal(anyhow::anyhow!(
            "the webhook intake stopped"
        ))),
    }
}

async fn commit_while_waiting(app: App) {
    let mut committer = app.webhooks.committer();
    loop {
        let group = committer.next_group(GROUP_MAX);
        if group.is_empty() {
            return;
        }
        commit(&app, group).await;
    }
}

/// Stores a group of deliveries in one transaction, enqueues the runs it started, and
/// answers each delivery.
async fn commit(app: &App, group: Vec<WebhookDelivery>) {
    let mut by_flow: HashMap<FlowId, usize> = HashMap::new();
    let mut arrivals: Vec<WebhookArrivals> = Vec::new();
    let mut answers: Vec<Vec<oneshot::Sender<anyhow::Result<bool>>>> = Vec::new();
    for delivery in group {
        let at = *by_flow.entry(delivery.flow).or_insert_with(|| {
            arrivals.push(WebhookArrivals {
                ctx: delivery.ctx.clone(),
                flow: delivery.flow,
                events: Vec::new(),
                run: delivery.run,
            });
            answers.push(Vec::new());
            arrivals.len() - 1
        });
        arrivals[at].events.push(delivery.event);
        answers[at].push(delivery.answer);
    }
    let tenants: Vec<_> = arrivals.iter().map(|a| a.ctx.tenant_id()).collect();
    // On SQLite the new runs' jobs are stored in the events' commit; otherwise pushed
    // after it (if that push is lost, orphan recovery enqueues the runs).
    let mut in_commit = None;
    let enqueue = |runs: Vec<(TenantId, RunId)>| {
        let jobs: Vec<RunFlow> = runs
            .into_iter()
            .map(|(tenant_id, run_id)| RunFlow { tenant_id, run_id })
            .collect();
        Ok(app
            .queue
            .enqueue_statement(jobs)?
            .map(|(statement, enqueued)| {
                in_commit = Some(enqueued);
                statement
            }))
    };
    let accepted = match app.store.accept_webhook_events(arrivals, enqueue).await {
        Ok(accepted) => accepted,
        Err(e) => {
            let message = e.to_string();
            for answer in answers.into_iter().flatten() {
                let _ = answer.send(Err(anyhow::anyhow!("storing webhooks: {message}")));
            }
            return;
        }
    };
    let new_runs: Vec<RunFlow> = accepted
        .iter()
        .zip(tenants)
        .filter_map(|(acceptance, tenant_id)| match acceptance.run {
            Some((run_id, true)) => Some(RunFlow { tenant_id, run_id }),
            _ => None,
        })
        .collect();
    for (acceptance, flow_answers) in accepted.into_iter().zip(answers) {
        for (stored, answer) in acceptance.stored.into_iter().zip(flow_answers) {
            let _ = answer.send(Ok(stored));
        }
    }
    // The events and their runs are stored, so the senders were told: if this push is
    // lost (a crash right here), orphan recovery enqueues the runs.
    if let Some(enqueued) = in_commit {
        app.queue.committed(enqueued).await;
    } else if let Err(e) = app.queue.push_all(new_runs).await {
        tracing::warn!(error = %e, "runs started by webhooks wait for orphan recovery");
    }
}

/// A refused or failed webhook delivery.
#[derive(Debug, thiserror::Error)]
pub enum WebhookError {
    /// Refused: the sender gets a 4xx.
    #[error(transparent)]
    Refused(#[from] WebhookRefusal),
    /// Our failure: the sender gets a 5xx and retries.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for WebhookError {
    fn from(e: sea_orm::DbErr) -> Self {
        WebhookError::Internal(e.into())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use base64::Engine;
    use hmac::{Hmac, Mac};

    fn sign(secret_b64: &str, id: &str, ts: i64, body: &[u8]) -> String {
        let key = base64::engine::general_purpose::STANDARD
            .decode(secret_b64)
            .unwrap();
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).unwrap();
        mac.update(format!("{id}.{ts}.").as_bytes());
        mac.update(body);
        format!(
            "v1,{}",
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
        )
    }

    #[test]
    fn standard_webhook_signatures_are_checked_with_tolerance() {
        let secret_b64 = "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let secret = format!("whsec_{secret_b64}");
        let body = br#"{"type":"contact.updated"}"#;
        let headers = |ts: i64, sig: String| WebhookHeaders {
            id: Some("msg_1".into()),
            timestamp: Some(ts.to_string()),
            signature: Some(format!("v1,bm90LXRoaXMtb25l {sig}")),
        };
        let at = 1_700_000_000;
        assert_eq!(
            verify_signature(
                &secret,
                &headers(at, sign(secret_b64, "msg_1", at, body)),
                body,
                at
            ),
            Ok(())
        );
        assert_eq!(
            verify_signature(
                &secret,
                &headers(at - 301, sign(secret_b64, "msg_1", at - 301, body)),
                body,
                at
            ),
            Err(WebhookRefusal::Stale)
        );
        assert!(matches!(
            verify_signature(
                &secret,
                &headers(at, sign(secret_b64, "msg_1", at, b"{}")),
                body,
                at
            ),
            Err(WebhookRefusal::BadSignature(_))
        ));
    }
}
