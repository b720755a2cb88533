//! Connect links: single-use, expiring, revocable links a tenant sends an end customer, who
//! connects their own account without a Sluice login.

use super::connections::{self, Begin, Binding, ConnectRequest};
use super::require_write;
use crate::app::{App, AuditActor};
use crate::auth::tokens;
use crate::domain::{Actor, ConnectLinkId, FieldErrors, Role, TenantCtx, text};
use crate::error::{AppError, AppResult};
use crate::store::entities::connect_links;
use crate::store::now;
use sea_orm::Set;
use std::collections::HashMap;

/// Longest a link may stay valid.
pub const MAX_TTL_HOURS: i64 = 24 * 30;

/// A created link: its id and the only copy of its URL.
pub struct CreatedLink {
    /// Id.
    pub id: ConnectLinkId,
    /// The URL to send to the customer.
    pub url: String,
    /// When it stops working.
    pub expires_at: chrono::DateTime<chrono::Utc>,
}

/// Creates a link for an end customer to connect `provider_id`.
pub async fn create(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    provider_id: &str,
    customer_ref: &str,
    ttl_hours: &str,
) -> AppResult<CreatedLink> {
    require_write(ctx)?;
    let mut errors = FieldErrors::new();
    let provider = errors.check(
        "provider",
        connections::provider(provider_id).map_err(|_| "Choose a provider.".to_owned()),
    );
    let customer = errors.check(
        "customer_ref",
        text::parse_display_name(customer_ref, "customer reference", 120),
    );
    let ttl = errors.check(
        "ttl_hours",
        match ttl_hours.trim() {
            "" => Ok(72),
            t => t
                .parse::<i64>()
                .ok()
                .filter(|h| (1..=MAX_TTL_HOURS).contains(h))
                .ok_or(format!("Enter 1 to {MAX_TTL_HOURS} hours.")),
        },
    );
    let (provider, customer, ttl) = errors.into_result(|| Some((provider?, customer?, ttl?)))?;
    if provider.needs_oauth_app() && app.store.oauth_app(ctx, &provider.id).await?.is_none() {
        return Err(AppError::invalid(
            "provider",
            format!(
                "Add an OAuth app for {} first (Settings → OAuth apps).",
                provider.name
            ),
        ));
    }
    let link = insert_link(
        app,
        ctx,
        &provider.id,
        &customer,
        chrono::Duration::hours(ttl),
        None,
    )
    .await?;
    app.audit(
        ctx,
        actor,
        "connect_link.created",
        Some(customer),
        Some(serde_json::json!({ "provider": provider.id })),
    )
    .await?;
    Ok(link)
}

/// Stores a new link and returns it with the only copy of its URL.
async fn insert_link(
    app: &App,
    ctx: &TenantCtx,
    provider_id: &str,
    customer: &str,
    ttl: chrono::Duration,
    reconnects: Option<crate::domain::ConnectionId>,
) -> AppResult<CreatedLink> {
    let secret = tokens::random_secret();
    let id = ConnectLinkId::new();
    let expires_at = now() + ttl;
    app.store
        .insert_connect_link(
            ctx,
            connect_links::ActiveModel {
                id: Set(id),
                provider_id: Set(provider_id.to_owned()),
                token_digest: Set(tokens::digest(&secret)),
                customer_ref: Set(customer.to_owned()),
                created_by: Set(ctx.user_id()),
                expires_at: Set(expires_at),
                used_at: Set(None),
                revoked_at: Set(None),
                connection_id: Set(None),
                outcome: Set(None),
                outcome_detail: Set(None),
                reconnects_connection_id: Set(reconnects),
                ..connect_links::ActiveModel::fresh(ctx)
            },
        )
        .await?;
    Ok(CreatedLink {
        id,
        url: app.settings.url_for(&format!("/connect/{secret}")),
        expires_at,
    })
}

/// A fresh link that reconnects a connection an end customer made through a connect
/// link (for reauth alerts); `None` for connections made by members, who reconnect from
/// the connection page. Valid for 7 days, single use.
pub async fn create_reconnect_link(
    app: &App,
    ctx: &TenantCtx,
    connection: crate::domain::ConnectionId,
) -> AppResult<Option<CreatedLink>> {
    let Some(conn) = app.store.connection(ctx, connection).await? else {
        return Ok(None);
    };
    let Some(customer) = conn.customer_ref.clone() else {
        return Ok(None);
    };
    let link = insert_link(
        app,
        ctx,
        &conn.provider_id,
        &customer,
        chrono::Duration::days(7),
        Some(connection),
    )
    .await?;
    app.audit(
        ctx,
        &AuditActor {
            label: "Sluice alerts".into(),
            ip: None,
        },
        "connect_link.created",
        Some(customer),
        Some(serde_json::json!({ "provider": conn.provider_id, "reconnects": conn.id })),
    )
    .await?;
    Ok(Some(link))
}

/// Revokes an unused link.
pub async fn revoke(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: ConnectLinkId,
) -> AppResult<()> {
    require_write(ctx)?;
    if !app.store.revoke_connect_link(ctx, id).await? {
        return Err(AppError::NotFound);
    }
    app.audit(
        ctx,
        actor,
        "connect_link.revoked",
        Some(id.to_string()),
        None,
    )
    .await?;
    Ok(())
}

/// A link's state for display.
pub fn state_of(link: &connect_links::Model) -> &'static str {
    if link.connection_id.is_some() {
        "connected"
    } else if link.revoked_at.is_some() {
        "revoked"
    } else if link.expires_at <= now() {
        "expired"
    } else {
        match link.outcome.as_deref() {
            Some("denied") => "denied",
            Some("error") => "failed",
            _ => "pending",
        }
    }
}

/// An open link, as the end customer sees it.
pub struct OpenLink {
    /// The link.
    pub link: connect_links::Model,
    /// The tenant's name, shown to the customer.
    pub tenant_name: String,
    /// The scope the link acts in.
    pub ctx: TenantCtx,
}

/// Why a link no longer works.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Closed {
    /// It was used to connect (when, if known).
    Used(Option<chrono::DateTime<chrono::Utc>>),
    /// The workspace withdrew it.
    Revoked,
    /// It expired at this time.
    Expired(chrono::DateTime<chrono::Utc>),
}

/// What a link's secret opens.
pub enum LinkState {
    /// A link that works.
    Open(Box<OpenLink>),
    /// A link that did work: the customer is told why it no longer does, by the
    /// workspace that sent it (`ctx` reads its brand and time zone).
    Closed {
        /// Why.
        why: Closed,
        /// The provider it was for.
        provider_id: String,
        /// The sending workspace, read-only.
        ctx: TenantCtx,
    },
    /// No link has this secret (mistyped, cut short, or made up).
    Unknown,
}

/// What a link's secret opens, without changing anything.
pub async fn state(app: &App, secret: &str) -> AppResult<LinkState> {
    let Some((link, tenant_name)) = app
        .store
        .connect_link_by_digest(&tokens::digest(secret))
        .await?
    else {
        return Ok(LinkState::Unknown);
    };
    let why = if link.connection_id.is_some() || link.used_at.is_some() {
        Some(Closed::Used(link.used_at))
    } else if link.revoked_at.is_some() {
        Some(Closed::Revoked)
    } else if link.expires_at <= now() {
        Some(Closed::Expired(link.expires_at))
    } else {
        None
    };
    let id = link.id;
    Ok(match why {
        Some(why) => LinkState::Closed {
            why,
            provider_id: link.provider_id.clone(),
            ctx: TenantCtx::new(link.tenant_id, Role::Viewer, Actor::ConnectLink(id)),
        },
        None => LinkState::Open(Box::new(OpenLink {
            ctx: TenantCtx::new(link.tenant_id, Role::Admin, Actor::ConnectLink(id)),
            link,
            tenant_name,
        })),
    })
}

/// Looks up a link that works by its secret; 410 for one that does not.
pub async fn open(app: &App, secret: &str) -> AppResult<OpenLink> {
    match state(app, secret).await? {
        LinkState::Open(open) => Ok(*open),
        LinkState::Closed { why, .. } => Err(AppError::Gone(
            match why {
                Closed::Used(_) => "This connect link was already used.",
                Closed::Revoked => "This connect link was withdrawn.",
                Closed::Expired(_) => "This connect link has expired.",
            }
            .into(),
        )),
        LinkState::Unknown => Err(AppError::Gone(
            "This connect link is not valid. Ask the company that sent it for a new one.".into(),
        )),
    }
}

/// Starts connecting through a link, in the browser identified by `browser` (digest of
/// its connect cookie: the callback must come back to that browser).
pub async fn begin(
    app: &App,
    secret: &str,
    browser: String,
    form: HashMap<String, String>,
    ip: Option<String>,
) -> AppResult<Begin> {
    let open = open(app, secret).await?;
    let actor = AuditActor {
        label: format!("End customer {} (connect link)", open.link.customer_ref),
        ip,
    };
    let request = ConnectRequest {
        provider_id: open.link.provider_id.clone(),
        name: String::new(),
        form,
        reconnect: open.link.reconnects_connection_id,
        customer_ref: Some(open.link.customer_ref.clone()),
    };
    let id = open.link.id;
    connections::begin(
        app,
        &open.ctx,
        &actor,
        Binding::Link { link: id, browser },
        request,
    )
    .await
}

/// A connect link, or 404.
pub async fn get(app: &App, ctx: &TenantCtx, id: ConnectLinkId) -> AppResult<connect_links::Model> {
    app.store
        .connect_link(ctx, id)
        .await?
        .ok_or(AppError::NotFound)
}

/// The tenant's latest connect links.
pub async fn list(app: &App, ctx: &TenantCtx, limit: u64) -> AppResult<Vec<connect_links::Model>> {
    Ok(app.store.connect_links(ctx, limit).await?)
}
