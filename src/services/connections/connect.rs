//! Connecting: the admin's or end customer's request, the provider's consent screen,
//! and the callback that stores the connection.

use super::{parse_fields, provider};
use crate::app::{App, AuditActor};
use crate::auth::tokens;
use crate::connectors::catalogue::{AuthKind, Provider};
use crate::connectors::credentials::{self, Credentials, expiry, seal};
use crate::connectors::discovery;
use crate::connectors::http::OutboundError;
use crate::connectors::oauth::{OAuthTarget, TokenSet};
use crate::connectors::session::{auth_server, client_credentials, url_values};
use crate::crypto::Aad;
use crate::domain::{
    Actor, ConnectLinkId, ConnectionEvent, ConnectionId, ConnectionStatus, Role, TenantCtx, text,
};
use crate::error::{AppError, AppResult};
use crate::services::require_write;
use crate::store::entities::{connections, oauth_states};
use crate::store::{StoredTokens, now};
use sea_orm::Set;
use secrecy::{ExposeSecret, SecretString};
use serde::Deserialize;
use std::collections::{BTreeMap, HashMap};

/// How long a user has to finish the provider's consent screen.
const STATE_TTL_MINUTES: i64 = 15;
/// Who a new authorization is bound to: the admin's session, or an end customer's link
/// and browser (RFC 9700 §4.7: the callback must come from the browser that started it).
#[derive(Clone, Debug)]
pub enum Binding {
    /// A signed-in member (digest of their session id).
    Session(String),
    /// An end customer holding a connect link, in the browser holding `browser` (digest of
    /// a cookie set when they started).
    Link {
        /// The link.
        link: ConnectLinkId,
        /// Digest of the browser's connect cookie.
        browser: String,
    },
}

/// A request to connect.
#[derive(Clone, Default)]
pub struct ConnectRequest {
    /// Provider id.
    pub provider_id: String,
    /// Display name (defaults to the provider's).
    pub name: String,
    /// Raw form values (`field_<name>`, `api_key`, `username`, `password`).
    pub form: HashMap<String, String>,
    /// Reconnect this connection instead of creating one.
    pub reconnect: Option<ConnectionId>,
    /// The end customer's reference (connect links).
    pub customer_ref: Option<String>,
}

impl std::fmt::Debug for ConnectRequest {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The form may hold an API key or password.
        f.debug_struct("ConnectRequest")
            .field("provider_id", &self.provider_id)
            .field("reconnect", &self.reconnect)
            .finish_non_exhaustive()
    }
}

/// What happens next.
#[derive(Debug)]
pub enum Begin {
    /// Send the browser to the provider's consent screen.
    Redirect(String),
    /// Connected already (API key, basic, client credentials).
    Connected(ConnectionId),
}

fn outbound_problem(e: OutboundError) -> AppError {
    AppError::BadRequest(format!("Sluice cannot use this provider's address: {e}"))
}

/// Starts connecting.
pub async fn begin(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    binding: Binding,
    request: ConnectRequest,
) -> AppResult<Begin> {
    let provider = provider(&request.provider_id)?;
    match binding {
        Binding::Session(_) => require_write(ctx)?,
        // A link reconnects only the connection it was issued for (reconnect alerts).
        Binding::Link { link, .. } if request.reconnect.is_some() => {
            let issued_for = app
                .store
                .connect_link(ctx, link)
                .await?
                .and_then(|l| l.reconnects_connection_id);
            if issued_for != request.reconnect {
                return Err(AppError::Forbidden);
            }
        }
        Binding::Link { .. } => {}
    }
    if let Some(id) = request.reconnect
        && app.store.connection(ctx, id).await?.is_none()
    {
        return Err(AppError::NotFound);
    }
    let config = parse_fields(provider, &request.form)?;
    let name = match request.name.trim() {
        "" => match &request.customer_ref {
            Some(c) => format!("{} — {c}", provider.name),
            None => provider.name.clone(),
        },
        other => text::parse_display_name(other, "connection name", 100)
            .map_err(|m| AppError::invalid("name", m))?,
    };
    let values = url_values(app, &config);
    let link = match &binding {
        Binding::Link { link, .. } => Some(*link),
        Binding::Session(_) => None,
    };
    if let Some(id) = request.reconnect {
        let existing = super::get(app, ctx, id).await?;
        if existing.provider_id != provider.id {
            return Err(AppError::BadRequest(
                "a connection can only be reconnected to its own provider".into(),
            ));
        }
    }
    match provider.auth.kind {
        AuthKind::Oauth2Code => {
            let server = auth_server(app, ctx, provider).await?;
            let credentials = &server.credentials;
            for url in [&provider.auth.authorize_url, &provider.auth.token_url]
                .into_iter()
                .flatten()
            {
                app.outbound
                    .check_destination(&Provider::expand(url, &credentials.values_over(&values)))
                    .await
                    .map_err(outbound_problem)?;
            }
            let target = server.target(provider, &values);
            let redirect_uri = server.redirect_uri.clone();
            let state = tokens::random_secret();
            let digest = tokens::digest(&state);
            let (url, verifier) = target
                .authorize_url(&state, &provider.auth.scopes)
                .map_err(|e| AppError::BadRequest(e.to_string()))?;
            // The browser goes where the token call will go (SLUICE_PROVIDER_ORIGINS).
            let url = app.outbound.destination(&url);
            let verifier_enc = app.keyring.encrypt(
                verifier
                    .as_ref()
                    .map(|v| v.expose_secret().as_bytes())
                    .unwrap_or_default(),
                &Aad::new("oauth_state", ctx.tenant_id(), &digest),
            );
            let mut stored_config = config.clone();
            if let Some(c) = &request.customer_ref {
                stored_config.insert("__customer_ref".into(), c.clone());
            }
            app.store
                .insert_oauth_state(
                    ctx,
                    oauth_states::Model {
                        id: digest,
                        tenant_id: ctx.tenant_id(),
                        provider_id: provider.id.clone(),
                        // The browser secret the callback must present: session or link cookie.
                        session_digest: Some(match &binding {
                            Binding::Session(d) => d.clone(),
                            Binding::Link { browser, .. } => browser.clone(),
                        }),
                        connect_link_id: link,
                        connection_id: request.reconnect,
                        connection_name: name,
                        config: serde_json::to_string(&stored_config).unwrap_or_default(),
                        verifier_enc,
                        redirect_uri,
                        created_at: now(),
                        expires_at: now() + chrono::Duration::minutes(STATE_TTL_MINUTES),
                    },
                )
                .await?;
            Ok(Begin::Redirect(url))
        }
        AuthKind::Oauth2ClientCredentials => {
            let server = auth_server(app, ctx, provider).await?;
            let target = server.target(provider, &values);
            let tokens = target
                .client_credentials(&app.outbound, &provider.auth.scopes)
                .await
                .map_err(|e| {
                    AppError::BadRequest(format!("{} refused the credentials: {e}", provider.name))
                })?;
            let id = save_connection(
                app,
                ctx,
                actor,
                provider,
                &name,
                &config,
                credentials::from_tokens(&tokens),
                &tokens,
                request.reconnect,
                link,
                request.customer_ref,
            )
            .await?;
            Ok(Begin::Connected(id))
        }
        AuthKind::ApiKey | AuthKind::Basic | AuthKind::None => {
            let secret = |k: &str| {
                request
                    .form
                    .get(k)
                    .map(|v| v.trim().to_owned())
                    .filter(|v| !v.is_empty())
            };
            let credentials = match provider.auth.kind {
                AuthKind::ApiKey => Credentials {
                    api_key: Some(
                        secret("api_key")
                            .ok_or_else(|| AppError::invalid("api_key", "Enter the API key."))?,
                    ),
                    ..Credentials::default()
                },
                AuthKind::Basic => Credentials {
                    username: Some(
                        secret("username")
                            .ok_or_else(|| AppError::invalid("username", "Enter the username."))?,
                    ),
                    password: Some(
                        secret("password")
                            .ok_or_else(|| AppError::invalid("password", "Enter the password."))?,
                    ),
                    ..Credentials::default()
                },
                _ => Credentials::default(),
            };
            let no_tokens = TokenSet {
                access_token: SecretString::from(String::new()),
                refresh_token: None,
                expires_in: None,
                scopes: None,
                extra: serde_json::Value::Null,
            };
            if let Some(link_id) = link
                && !app.store.claim_connect_link(ctx, link_id).await?
            {
                return Err(AppError::Gone("This connect link was already used.".into()));
            }
            let saved = save_connection(
                app,
                ctx,
                actor,
                provider,
                &name,
                &config,
                credentials,
                &no_tokens,
                request.reconnect,
                link,
                request.customer_ref,
            )
            .await;
            if let Some(link_id) = link {
                match &saved {
                    Ok(id) => {
                        app.store
                            .finish_connect_link(ctx, link_id, "connected", None, Some(*id))
                            .await?
                    }
                    Err(e) => {
                        app.store
                            .finish_connect_link(
                                ctx,
                                link_id,
                                "error",
                                Some(e.public_message()),
                                None,
                            )
                            .await?
                    }
                }
            }
            let id = saved?;
            Ok(Begin::Connected(id))
        }
    }
}

#[allow(clippy::too_many_arguments)]
async fn save_connection(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    provider: &Provider,
    name: &str,
    config: &BTreeMap<String, String>,
    credentials: Credentials,
    tokens: &TokenSet,
    reconnect: Option<ConnectionId>,
    link: Option<ConnectLinkId>,
    customer_ref: Option<String>,
) -> AppResult<ConnectionId> {
    let scopes = tokens
        .scopes
        .as_ref()
        .map(|s| s.join(" "))
        .or_else(|| (!provider.auth.scopes.is_empty()).then(|| provider.auth.scopes.join(" ")));
    if let Some(id) = reconnect {
        let before = super::get(app, ctx, id).await?;
        let sealed = seal(app, ctx, id, &credentials)?;
        let stored = app
            .store
            .reconnect(
                ctx,
                id,
                StoredTokens {
                    credentials_enc: sealed,
                    expires_at: expiry(tokens),
                    scopes,
                },
                &serde_json::to_string(config).unwrap_or_else(|_| "{}".into()),
            )
            .await?;
        if !stored {
            return Err(AppError::Conflict(
                "the connection changed while reconnecting; try again".into(),
            ));
        }
        let event = if before.status == ConnectionStatus::Active {
            ConnectionEvent::Connected
        } else {
            ConnectionEvent::Recovered
        };
        app.store
            .record_connection_event(ctx, id, event, Some("reconnected".into()))
            .await?;
        app.audit(
            ctx,
            actor,
            "connection.reconnected",
            Some(before.name),
            None,
        )
        .await?;
        return Ok(id);
    }
    let id = ConnectionId::new();
    app.store
        .insert_connection(
            ctx,
            connections::ActiveModel {
                id: Set(id),
                provider_id: Set(provider.id.clone()),
                name: Set(name.to_owned()),
                status: Set(ConnectionStatus::Active),
                credentials_enc: Set(Some(seal(app, ctx, id, &credentials)?)),
                config: Set(serde_json::to_string(config).unwrap_or_else(|_| "{}".into())),
                scopes: Set(scopes),
                token_version: Set(1),
                access_expires_at: Set(expiry(tokens)),
                refresh_failures: Set(0),
                customer_ref: Set(customer_ref),
                connect_link_id: Set(link),
                created_by: Set(ctx.user_id()),
                ..connections::ActiveModel::fresh(ctx)
            },
        )
        .await?;
    app.store
        .record_connection_event(ctx, id, ConnectionEvent::Connected, None)
        .await?;
    app.audit(
        ctx,
        actor,
        "connection.created",
        Some(name.to_owned()),
        Some(serde_json::json!({ "provider": provider.id })),
    )
    .await?;
    metrics::counter!("sluice_connections_created_total", "provider" => provider.id.clone())
        .increment(1);
    Ok(id)
}

/// What the provider sent back to the callback URL (no `Debug`: code and state are secrets).
#[derive(Clone, Default, Deserialize)]
pub struct CallbackParams {
    /// Authorization code.
    pub code: Option<String>,
    /// Our state.
    pub state: Option<String>,
    /// Error code (e.g. `access_denied`).
    pub error: Option<String>,
    /// Error text.
    pub error_description: Option<String>,
    /// Issuer (RFC 9207).
    pub iss: Option<String>,
    /// Everything else (e.g. QuickBooks' `realmId`), for the provider's `callback_values`.
    #[serde(flatten)]
    pub extra: BTreeMap<String, String>,
}

/// The result of a callback: which tenant it was for, and what happened.
pub struct CallbackResult {
    /// The tenant scope the authorization belonged to.
    pub ctx: TenantCtx,
    /// The connect link it came through, if any.
    pub link: Option<ConnectLinkId>,
    /// The provider.
    pub provider: &'static Provider,
    /// The connection, or why connecting failed (a message for the user).
    pub outcome: Result<ConnectionId, String>,
}

/// The signed-in member completing a callback (admin flows).
pub struct CallbackMember {
    /// Digest of their session id.
    pub session_digest: String,
    /// Who they are.
    pub user: crate::domain::UserId,
    /// How they appear in the audit log.
    pub actor: AuditActor,
}

/// Handles the provider's redirect back to `/oauth/callback/{provider}`. The state must
/// exist, be unexpired and unused, belong to this provider's path, and be bound to the
/// caller's session or to a still-valid connect link — otherwise no token call is made.
pub async fn callback(
    app: &App,
    path_provider: &str,
    params: CallbackParams,
    member: Option<CallbackMember>,
    link_browser: Option<String>,
) -> AppResult<CallbackResult> {
    let unknown = || {
        AppError::BadRequest(
            "This authorization is unknown, expired or was already used. Start connecting again."
                .into(),
        )
    };
    let state = params
        .state
        .as_deref()
        .filter(|s| !s.is_empty())
        .ok_or_else(unknown)?;
    let row = app
        .store
        .take_oauth_state(&tokens::digest(state))
        .await?
        .ok_or_else(unknown)?;
    if row.provider_id != path_provider {
        tracing::warn!(expected = %row.provider_id, got = %path_provider, "OAuth callback on another provider's path");
        return Err(AppError::BadRequest(
            "This authorization belongs to another provider. Start connecting again.".into(),
        ));
    }
    let provider = provider(&row.provider_id)?;
    let tenant = row.tenant_id;
    let bound = row.session_digest.clone().unwrap_or_default();
    let (ctx, actor, link) = match (row.connect_link_id, &member, &link_browser) {
        (None, Some(m), _) if tokens::equal(&bound, &m.session_digest) => {
            let role = app
                .store
                .role_in(m.user, tenant)
                .await?
                .ok_or(AppError::NotFound)?;
            let ctx = TenantCtx::new(tenant, role, Actor::User(m.user));
            require_write(&ctx)?;
            (ctx, m.actor.clone(), None)
        }
        (Some(link_id), _, Some(browser)) if tokens::equal(&bound, browser) => {
            let ctx = TenantCtx::new(tenant, Role::Admin, Actor::ConnectLink(link_id));
            let link = app
                .store
                .connect_link(&ctx, link_id)
                .await?
                .ok_or_else(unknown)?;
            if link.connection_id.is_some() || link.revoked_at.is_some() || link.expires_at <= now()
            {
                return Err(AppError::Gone(
                    "This connect link is no longer valid. Ask for a new one.".into(),
                ));
            }
            let actor = AuditActor {
                label: format!("End customer {} (connect link)", link.customer_ref),
                ip: None,
            };
            (ctx, actor, Some(link_id))
        }
        _ => {
            tracing::warn!("OAuth callback from a browser other than the one that started it");
            return Err(unknown());
        }
    };
    let mut config: BTreeMap<String, String> =
        serde_json::from_str(&row.config).unwrap_or_default();
    let customer_ref = config.remove("__customer_ref");
    let values = url_values(app, &config);
    let fail = |message: String| {
        Ok(CallbackResult {
            ctx: ctx.clone(),
            link,
            provider,
            outcome: Err(message),
        })
    };

    if let Some(error) = &params.error {
        let message = match error.as_str() {
            "access_denied" => "Access was denied on the provider's consent screen.".to_owned(),
            other => format!("{} reported an error: {other}", provider.name),
        };
        if let Some(link_id) = link {
            let outcome = if error == "access_denied" {
                "denied"
            } else {
                "error"
            };
            app.store
                .finish_connect_link(&ctx, link_id, outcome, Some(message.clone()), None)
                .await?;
        }
        return fail(message);
    }
    if let Some(expected) = &provider.auth.issuer {
        let expected = Provider::expand(expected, &values);
        if params.iss.as_deref() != Some(expected.as_str()) {
            tracing::warn!(provider = %provider.id, "OAuth callback with a wrong or missing issuer");
            return fail(
                "The authorization came from an unexpected issuer and was refused.".into(),
            );
        }
    }
    let Some(code) = params.code.filter(|c| !c.is_empty()) else {
        return fail("The provider sent no authorization code.".into());
    };
    // Values only the callback carries (the company a QuickBooks grant is for).
    for (name, param) in &provider.auth.callback_values {
        match params.extra.get(param) {
            Some(value) if crate::connectors::catalogue::is_plain_value(value) => {
                config.insert(name.clone(), value.clone());
            }
            _ => {
                tracing::warn!(provider = %provider.id, param = %param, "OAuth callback without a usable value");
                return fail(format!(
                    "{} sent back no usable {param}; start connecting again.",
                    provider.name
                ));
            }
        }
    }
    let verifier_bytes = app
        .keyring
        .decrypt(&row.verifier_enc, &Aad::new("oauth_state", tenant, &row.id))
        .map_err(|e| AppError::Internal(anyhow::anyhow!("OAuth state: {e}")))?;
    let verifier = (!verifier_bytes.is_empty())
        .then(|| SecretString::from(String::from_utf8_lossy(&verifier_bytes).into_owned()));
    let credentials = client_credentials(app, &ctx, provider).await?;
    let target = OAuthTarget {
        provider,
        values: &values,
        credentials: &credentials,
        redirect_uri: &row.redirect_uri,
    };
    // Claim the link before using the code, so two callbacks cannot both connect.
    if let Some(link_id) = link
        && !app.store.claim_connect_link(&ctx, link_id).await?
    {
        return Err(AppError::Gone("This connect link was already used.".into()));
    }
    let tokens = match target
        .exchange_code(&app.outbound, &code, verifier.as_ref())
        .await
    {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(provider = %provider.id, error = %e, "code exchange failed");
            if let Some(link_id) = link {
                app.store
                    .finish_connect_link(&ctx, link_id, "error", Some(e.to_string()), None)
                    .await?;
            }
            return fail(format!(
                "{} did not complete the connection: {e}",
                provider.name
            ));
        }
    };
    // Values only the token response knows (e.g. the instance every call goes to), and
    // the OAuth app's own the API's address names (a self-managed GitLab's URL).
    config.extend(tokens.values(provider));
    for (name, value) in &credentials.endpoint_values {
        if provider.base_url.contains(&format!("{{{name}}}")) {
            config.insert(name.clone(), value.clone());
        }
    }
    let reconnect = row.connection_id;
    if let Some(spec) = &provider.auth.discovery {
        let kept = match reconnect {
            Some(id) => app
                .store
                .connection(&ctx, id)
                .await?
                .and_then(|c| credentials::config_of(&c).remove(&spec.into)),
            None => None,
        };
        let settled = discovery::discover(
            app,
            provider,
            spec,
            &url_values(app, &config),
            &credentials::from_tokens(&tokens),
        )
        .await
        .map_err(|e| e.to_string())
        .and_then(|choices| {
            discovery::settle(&mut config, provider, spec, choices, kept.as_deref())
        });
        if let Err(message) = settled {
            tracing::warn!(provider = %provider.id, error = %message, "post-connect discovery failed");
            if let Some(link_id) = link {
                app.store
                    .finish_connect_link(&ctx, link_id, "error", Some(message.clone()), None)
                    .await?;
            }
            return fail(message);
        }
    }
    let id = save_connection(
        app,
        &ctx,
        &actor,
        provider,
        &row.connection_name,
        &config,
        credentials::from_tokens(&tokens),
        &tokens,
        reconnect,
        link,
        customer_ref,
    )
    .await?;
    if let Some(link_id) = link {
        app.store
            .finish_connect_link(&ctx, link_id, "connected", None, Some(id))
            .await?;
    }
    Ok(CallbackResult {
        ctx,
        link,
        provider,
        outcome: Ok(id),
    })
}
