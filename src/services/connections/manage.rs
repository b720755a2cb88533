//! A connection's upkeep: "Test connection", the account it uses when its grant
//! reaches several, and disconnecting.

use super::provider;
use crate::app::{App, AuditActor};
use crate::connectors::credentials::{self, config_of};
use crate::connectors::discovery;
use crate::connectors::session::{auth_server, call, url_values};
use crate::domain::{ConnectionEvent, ConnectionId, TenantCtx};
use crate::error::{AppError, AppResult};
use crate::services::require_write;
use secrecy::SecretString;

/// The result of "Test connection".
pub struct TestOutcome {
    /// Whether it worked.
    pub ok: bool,
    /// What happened, for the user.
    pub message: String,
}

/// Calls the provider's first list endpoint for one record and records the outcome.
/// Changes state (it may refresh tokens), so viewers may not.
pub async fn test(app: &App, ctx: &TenantCtx, id: ConnectionId) -> AppResult<TestOutcome> {
    require_write(ctx)?;
    let conn = super::get(app, ctx, id).await?;
    let provider = credentials::provider_of(&conn).map_err(AppError::BadRequest)?;
    let outcome = match provider.objects.first() {
        None => TestOutcome {
            ok: true,
            message: "Credentials are stored; this provider has no objects to read.".into(),
        },
        Some(object) => {
            let mut query: Vec<(String, String)> = object
                .list_params
                .iter()
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            if let Some(limit) = &object.paging(provider).limit_param {
                query.push((limit.clone(), "1".into()));
            }
            let started = std::time::Instant::now();
            match call(
                app,
                ctx,
                id,
                reqwest::Method::GET,
                &object.list_path,
                &query,
            )
            .await
            {
                Ok(f) if f.status.is_success() => TestOutcome {
                    ok: true,
                    message: format!(
                        "{} answered HTTP {} for {} in {} ms.",
                        provider.name,
                        f.status.as_u16(),
                        object.name,
                        started.elapsed().as_millis()
                    ),
                },
                Ok(f) => TestOutcome {
                    ok: false,
                    message: format!(
                        "{} answered HTTP {} for {}.",
                        provider.name,
                        f.status.as_u16(),
                        object.name
                    ),
                },
                Err(e) => TestOutcome {
                    ok: false,
                    message: e.to_string(),
                },
            }
        }
    };
    let kind = if outcome.ok {
        ConnectionEvent::TestSucceeded
    } else {
        ConnectionEvent::TestFailed
    };
    app.store
        .record_connection_event(ctx, id, kind, Some(outcome.message.clone()))
        .await?;
    Ok(outcome)
}

/// Disconnects: revokes at the provider where supported, deletes the credentials, audits.
pub async fn disconnect(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: ConnectionId,
) -> AppResult<String> {
    require_write(ctx)?;
    let conn = super::get(app, ctx, id).await?;
    let provider = provider(&conn.provider_id)?;
    let mut note = "Credentials deleted.".to_owned();
    if provider.auth.kind.is_oauth()
        && provider.auth.revoke_url.is_some()
        && let Ok(credentials) = credentials::open(app, ctx, &conn)
        && let Some(token) = credentials.refresh_token.or(credentials.access_token)
    {
        let values = url_values(app, &config_of(&conn));
        let server = auth_server(app, ctx, provider).await?;
        let target = server.target(provider, &values);
        note = match target
            .revoke(&app.outbound, &SecretString::from(token))
            .await
        {
            Ok(true) => format!(
                "Access revoked at {} and credentials deleted.",
                provider.name
            ),
            Ok(false) => format!(
                "{} did not confirm the revocation; credentials deleted.",
                provider.name
            ),
            Err(e) => format!(
                "Revoking at {} failed ({e}); credentials deleted.",
                provider.name
            ),
        };
    }
    app.store.wipe_credentials(ctx, id).await?;
    app.store
        .record_connection_event(ctx, id, ConnectionEvent::Disconnected, Some(note.clone()))
        .await?;
    app.audit(ctx, actor, "connection.disconnected", Some(conn.name), None)
        .await?;
    Ok(note)
}

/// The accounts a connection may use, when its grant reaches several (Xero
/// organisations, Jira sites): what each is called, and which one it uses now.
pub struct Choices {
    /// What a choice is called ("Xero organisation").
    pub title: String,
    /// The accounts the grant reaches.
    pub options: Vec<discovery::Choice>,
    /// The one in use, if picked.
    pub current: Option<String>,
}

/// The choices a connection offers, if its provider discovers accounts and the grant
/// reaches several.
pub fn choices(conn: &crate::store::entities::connections::Model) -> Option<Choices> {
    let spec = crate::connectors::catalogue::get(&conn.provider_id)?
        .auth
        .discovery
        .as_ref()?;
    let mut config = config_of(conn);
    let options = discovery::choices(&config);
    (!options.is_empty()).then(|| Choices {
        title: spec.title.clone(),
        options,
        current: config.remove(&spec.into),
    })
}

/// Makes the connection use one of the accounts its grant reaches.
pub async fn choose(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: ConnectionId,
    value: &str,
) -> AppResult<String> {
    require_write(ctx)?;
    let conn = super::get(app, ctx, id).await?;
    let provider = provider(&conn.provider_id)?;
    let (Some(spec), Some(choices)) = (&provider.auth.discovery, choices(&conn)) else {
        return Err(AppError::BadRequest(
            "This connection has nothing to choose.".into(),
        ));
    };
    let Some(chosen) = choices.options.iter().find(|c| c.value == value) else {
        return Err(AppError::invalid(
            "choice",
            format!("Choose one of the listed {}s.", spec.title),
        ));
    };
    let mut config = config_of(&conn);
    config.insert(spec.into.clone(), chosen.value.clone());
    let text = serde_json::to_string(&config).map_err(|e| AppError::Internal(e.into()))?;
    if !app.store.set_connection_config(ctx, id, &text).await? {
        return Err(AppError::NotFound);
    }
    app.audit(
        ctx,
        actor,
        "connection.account_chosen",
        Some(conn.name),
        Some(serde_json::json!({ "title": spec.title, "label": chosen.label })),
    )
    .await?;
    Ok(format!("{} set to {}.", spec.title, chosen.label))
}

/// What one list request of a connection's first object answers, for people checking
/// how Sluice reads an API: the request, the answer as it came (masked, cut), the
/// records it selects and where the next page would start.
pub struct Sample {
    /// The object read.
    pub object: String,
    /// The request, e.g. `GET /items`.
    pub request: String,
    /// The answer's status, when there was one.
    pub status: Option<u16>,
    /// The answer's body, pretty-printed when it is JSON.
    pub raw: String,
    /// The JSONPath that selects records.
    pub records_path: String,
    /// How many records it selected.
    pub count: usize,
    /// The first few, pretty-printed.
    pub records: Vec<String>,
    /// Where the next page starts, if the answer says there is one.
    pub next: Option<String>,
    /// Why the answer cannot be read, if it cannot.
    pub error: Option<String>,
}

/// Reads the first page of a connection's first object the way a run would.
pub async fn sample(app: &App, ctx: &TenantCtx, id: ConnectionId) -> AppResult<Sample> {
    use crate::sync::source::{Resume, Source};
    require_write(ctx)?;
    let conn = super::get(app, ctx, id).await?;
    let provider = credentials::provider_of(&conn).map_err(AppError::BadRequest)?;
    let Some(object) = provider.objects.first() else {
        return Err(AppError::BadRequest(format!(
            "{} has no objects to read.",
            provider.name
        )));
    };
    let config = config_of(&conn);
    let path = crate::connectors::catalogue::Provider::expand(&object.list_path, &config);
    let source = Source::new(id, provider, object)
        .with_connection(conn)
        .keeping_answers();
    let page_size = source.page_size(Some(SAMPLE_PAGE));
    let read = source.fetch(app, ctx, None, None, page_size).await;
    let (status, raw) = source.last_answer().unzip();
    let raw = raw
        .map(|text| {
            serde_json::from_str::<serde_json::Value>(&text)
                .ok()
                .and_then(|v| serde_json::to_string_pretty(&v).ok())
                .unwrap_or(text)
        })
        .map(|text| crate::connectors::redact::redact_text(&text))
        .unwrap_or_default();
    let mut sample = Sample {
        object: object.name.clone(),
        request: format!("{} {path}", object.list_method.as_deref().unwrap_or("GET")),
        status,
        raw,
        records_path: object.records_path.clone(),
        count: 0,
        records: Vec::new(),
        next: None,
        error: None,
    };
    match read {
        Ok(page) => {
            sample.count = page.records.len();
            sample.records = page
                .records
                .iter()
                .take(3)
                .filter_map(|r| serde_json::to_string_pretty(r).ok())
                .map(|r| crate::connectors::redact::redact_text(&r))
                .collect();
            sample.next = page.next.and_then(|next| match next {
                Resume::Cursor(c) | Resume::Url(c) => Some(c),
                Resume::Offset(n) => Some(format!("offset {n}")),
                Resume::Page(n) => Some(format!("page {n}")),
                Resume::End => None,
            });
        }
        Err(fault) => sample.error = Some(fault.message().to_owned()),
    }
    Ok(sample)
}

/// Records a test request asks for.
const SAMPLE_PAGE: u32 = 20;
