//! Connections: connecting (OAuth, API key, basic), the OAuth callback, token health
//! (proactive and on-401 refresh, exactly one refresh at a time across processes),
//! authorised calls to the provider, "Test connection", and disconnecting.

use super::{App, AuditActor, require_write};
use crate::auth::tokens;
use crate::connectors::catalogue::{self, AuthKind, KeyPlacement, Provider};
use crate::connectors::http::{Fetched, OutboundError, Purpose};
use crate::connectors::oauth::{ClientCredentials, OAuthError, OAuthTarget, TokenSet};
use crate::crypto::Aad;
use crate::domain::{
    Actor, ConnectLinkId, ConnectionEvent, ConnectionId, ConnectionStatus, FieldErrors, OAuthAppId,
    Role, TenantCtx, text,
};
use crate::error::{AppError, AppResult};
use crate::store::entities::{connections, oauth_states};
use crate::store::{StoredTokens, now};
use secrecy::{ExposeSecret, SecretString};
use serde::{Deserialize, Serialize};
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// How long a user has to finish the provider's consent screen.
const STATE_TTL_MINUTES: i64 = 15;
/// Refresh when the access token has less than this left.
const REFRESH_SKEW: Duration = Duration::from_secs(60);
/// The proactive refresher renews tokens this long before they expire.
pub const PROACTIVE_WINDOW: Duration = Duration::from_secs(300);
/// How long a process may hold a connection's refresh lease: longer than the slowest
/// possible token call (the outbound total timeout), so a lease never lapses mid-refresh.
const LEASE_TTL: Duration = Duration::from_secs(90);

/// The secret part of a connection, encrypted at rest as one JSON document.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

/// Why a connection could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// No such connection in this tenant.
    #[error("connection not found")]
    NotFound,
    /// The provider refused our grant; someone must reconnect.
    #[error("the connection needs to be reconnected: {0}")]
    ReauthRequired(String),
    /// A temporary problem (network, provider 5xx, a refresh in progress elsewhere).
    #[error("temporarily unavailable: {0}")]
    Transient(String),
    /// A permanent problem with this call or configuration.
    #[error("{0}")]
    Failed(String),
    /// A bug or storage failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ConnectionError {
    fn from(e: sea_orm::DbErr) -> Self {
        ConnectionError::Internal(e.into())
    }
}

impl From<ConnectionError> for AppError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::NotFound => AppError::NotFound,
            ConnectionError::Internal(e) => AppError::Internal(e),
            other => AppError::Conflict(other.to_string()),
        }
    }
}

/// A provider by id, or 404.
pub fn provider(id: &str) -> AppResult<&'static Provider> {
    catalogue::get(id).ok_or(AppError::NotFound)
}

/// Where the provider sends the user back: one path per provider, exact.
pub fn callback_url(app: &App, provider: &Provider) -> String {
    app.settings
        .url_for(&format!("/oauth/callback/{}", provider.id))
}

fn url_values(app: &App, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
    let mut values = config.clone();
    values.insert(
        "sluice".into(),
        app.settings
            .public_url
            .as_str()
            .trim_end_matches('/')
            .to_owned(),
    );
    values
}

fn aad_connection(ctx: &TenantCtx, id: ConnectionId) -> Aad {
    Aad::new("connection", ctx.tenant_id(), id)
}

fn seal(app: &App, ctx: &TenantCtx, id: ConnectionId, creds: &Credentials) -> AppResult<String> {
    let json = serde_json::to_vec(creds).map_err(|e| AppError::Internal(e.into()))?;
    Ok(app.keyring.encrypt(&json, &aad_connection(ctx, id)))
}

fn open_credentials(
    app: &App,
    ctx: &TenantCtx,
    conn: &connections::Model,
) -> Result<Credentials, ConnectionError> {
    let Some(sealed) = &conn.credentials_enc else {
        return Err(ConnectionError::ReauthRequired(
            "no credentials are stored".into(),
        ));
    };
    let id = ConnectionId::from_uuid(conn.id);
    let bytes = app
        .keyring
        .decrypt(sealed, &aad_connection(ctx, id))
        .map_err(|e| {
            ConnectionError::Internal(anyhow::anyhow!("credentials of connection {id}: {e}"))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| ConnectionError::Internal(e.into()))
}

fn config_of(conn: &connections::Model) -> BTreeMap<String, String> {
    serde_json::from_str(&conn.config).unwrap_or_default()
}

/// The OAuth client registration to use: the sandbox's own, or the tenant's OAuth app.
pub async fn client_credentials(
    app: &App,
    ctx: &TenantCtx,
    provider: &Provider,
) -> AppResult<ClientCredentials> {
    if provider.sandbox {
        return Ok(ClientCredentials {
            client_id: crate::sandbox::CLIENT_ID.into(),
            client_secret: Some(SecretString::from(crate::sandbox::client_secret(
                &app.master_key,
            ))),
            endpoint_values: BTreeMap::new(),
        });
    }
    let Some(row) = app.store.oauth_app(ctx, &provider.id).await? else {
        return Err(AppError::Conflict(format!(
            "{} needs an OAuth app first: add its client id and secret under Settings → OAuth apps",
            provider.name
        )));
    };
    let secret = match &row.client_secret_enc {
        Some(sealed) => {
            let bytes = app
                .keyring
                .decrypt(sealed, &Aad::new("oauth_app", ctx.tenant_id(), row.id))
                .map_err(|e| AppError::Internal(anyhow::anyhow!("OAuth app secret: {e}")))?;
            Some(SecretString::from(
                String::from_utf8(bytes).map_err(|e| AppError::Internal(e.into()))?,
            ))
        }
        None => None,
    };
    Ok(ClientCredentials {
        client_id: row.client_id,
        client_secret: secret,
        endpoint_values: serde_json::from_str(&row.config).unwrap_or_default(),
    })
}

/// The tenant's registration at a provider's authorization server, and our callback.
struct AuthServer {
    credentials: ClientCredentials,
    redirect_uri: String,
}

impl AuthServer {
    fn target<'a>(
        &'a self,
        provider: &'a Provider,
        values: &'a BTreeMap<String, String>,
    ) -> OAuthTarget<'a> {
        OAuthTarget {
            provider,
            values,
            credentials: &self.credentials,
            redirect_uri: &self.redirect_uri,
        }
    }
}

async fn auth_server(app: &App, ctx: &TenantCtx, provider: &Provider) -> AppResult<AuthServer> {
    Ok(AuthServer {
        credentials: client_credentials(app, ctx, provider).await?,
        redirect_uri: callback_url(app, provider),
    })
}

/// Saves a tenant's OAuth app for a provider (client id, secret, and the app's endpoint
/// fields); an empty secret keeps the stored one.
pub async fn save_oauth_app(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    provider_id: &str,
    form: &HashMap<String, String>,
) -> AppResult<()> {
    require_write(ctx)?;
    let provider = provider(provider_id)?;
    if !provider.needs_oauth_app() {
        return Err(AppError::BadRequest(format!(
            "{} does not use an OAuth app",
            provider.name
        )));
    }
    let get = |k: &str| form.get(k).map(|v| v.trim().to_owned()).unwrap_or_default();
    let mut errors = FieldErrors::new();
    let client_id = errors.check(
        "client_id",
        text::parse_display_name(&get("client_id"), "client id", 300),
    );
    let endpoint_values = match parse_field_values(&provider.app_fields(), form) {
        Ok(v) => Some(v),
        Err(e) => {
            for (field, message) in e.iter() {
                errors.add(field, message);
            }
            None
        }
    };
    let (client_id, endpoint_values) =
        errors.into_result(|| Some((client_id?, endpoint_values?)))?;
    // Endpoints the tenant typed in are checked now; catalogue endpoints when connecting.
    let endpoints = if provider.app_fields().is_empty() {
        Vec::new()
    } else {
        [&provider.auth.authorize_url, &provider.auth.token_url]
            .into_iter()
            .flatten()
            .collect()
    };
    for url in endpoints {
        app.outbound
            .check_destination(&Provider::expand(url, &endpoint_values))
            .await
            .map_err(|e| {
                AppError::invalid(
                    "client_id",
                    format!("Sluice cannot use this authorization server: {e}"),
                )
            })?;
    }
    let existing = app.store.oauth_app(ctx, provider_id).await?;
    let id = existing
        .as_ref()
        .map(|a| OAuthAppId::from_uuid(a.id))
        .unwrap_or_default();
    let secret = get("client_secret");
    let sealed = if secret.is_empty() {
        existing.and_then(|a| a.client_secret_enc)
    } else {
        Some(app.keyring.encrypt(
            secret.as_bytes(),
            &Aad::new("oauth_app", ctx.tenant_id(), id),
        ))
    };
    let config = serde_json::to_string(&endpoint_values).unwrap_or_else(|_| "{}".into());
    app.store
        .save_oauth_app(ctx, id, provider_id, &client_id, sealed, &config)
        .await?;
    app.audit(
        ctx,
        actor,
        "oauth_app.saved",
        Some(provider.name.clone()),
        None,
    )
    .await?;
    Ok(())
}

/// Validates the values a provider asks for when connecting.
pub fn parse_fields(
    provider: &Provider,
    raw: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldErrors> {
    parse_field_values(&provider.connection_fields(), raw)
}

/// Validates `field_<name>` form values: URLs must be http(s), paths must start with `/`,
/// everything else may only hold characters that cannot reshape a URL.
fn parse_field_values(
    fields: &[&crate::connectors::catalogue::AuthField],
    raw: &HashMap<String, String>,
) -> Result<BTreeMap<String, String>, FieldErrors> {
    let mut errors = FieldErrors::new();
    let mut values = BTreeMap::new();
    for field in fields {
        let key = format!("field_{}", field.name);
        let value = raw
            .get(&key)
            .map(|v| v.trim().to_owned())
            .unwrap_or_default();
        let problem = if value.contains(['{', '}']) {
            Some("Braces are not allowed here.".into())
        } else if value.is_empty() {
            Some(format!("Enter the {}.", field.label.to_lowercase()))
        } else if field.name.ends_with("url") {
            match url::Url::parse(&value) {
                Ok(u)
                    if matches!(u.scheme(), "http" | "https")
                        && u.host().is_some()
                        && u.username().is_empty() =>
                {
                    None
                }
                _ => Some("Enter an http:// or https:// URL.".into()),
            }
        } else if field.name.ends_with("records_path") {
            serde_json_path::JsonPath::parse(&value)
                .is_err()
                .then(|| "Enter a JSONPath such as $.data (RFC 9535).".into())
        } else if field.name.ends_with("path") {
            (!value.starts_with('/') || value.contains(char::is_whitespace) || value.contains(".."))
                .then(|| "Enter a path starting with /.".into())
        } else {
            // Values end up inside URLs: allow only what cannot change the URL's shape.
            (!value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_'))
                || value.len() > 100)
                .then(|| "Use only letters, digits, '.', '-' and '_'.".into())
        };
        match problem {
            Some(message) => errors.add(&key, message),
            None => {
                values.insert(field.name.clone(), value);
            }
        }
    }
    if errors.is_empty() {
        Ok(values)
    } else {
        Err(errors)
    }
}

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
            if issued_for != request.reconnect.map(ConnectionId::uuid) {
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
        let existing = app
            .store
            .connection(ctx, id)
            .await?
            .ok_or(AppError::NotFound)?;
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
                        tenant_id: ctx.tenant_id().uuid(),
                        provider_id: provider.id.clone(),
                        // The browser secret the callback must present: session or link cookie.
                        session_digest: Some(match &binding {
                            Binding::Session(d) => d.clone(),
                            Binding::Link { browser, .. } => browser.clone(),
                        }),
                        connect_link_id: link.map(ConnectLinkId::uuid),
                        connection_id: request.reconnect.map(ConnectionId::uuid),
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
                tokens_to_credentials(&tokens),
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

fn tokens_to_credentials(tokens: &TokenSet) -> Credentials {
    Credentials {
        access_token: Some(tokens.access_token.expose_secret().to_owned()),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        ..Credentials::default()
    }
}

fn expiry(tokens: &TokenSet) -> Option<chrono::DateTime<chrono::Utc>> {
    tokens
        .expires_in
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| now() + d)
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
        let before = app
            .store
            .connection(ctx, id)
            .await?
            .ok_or(AppError::NotFound)?;
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
        let was = before
            .status
            .parse::<ConnectionStatus>()
            .unwrap_or(ConnectionStatus::Active);
        let event = if was == ConnectionStatus::Active {
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
    let at = now();
    app.store
        .insert_connection(
            ctx,
            connections::Model {
                id: id.uuid(),
                tenant_id: ctx.tenant_id().uuid(),
                provider_id: provider.id.clone(),
                name: name.to_owned(),
                status: ConnectionStatus::Active.as_str().to_owned(),
                credentials_enc: Some(seal(app, ctx, id, &credentials)?),
                config: serde_json::to_string(config).unwrap_or_else(|_| "{}".into()),
                scopes,
                token_version: 1,
                access_expires_at: expiry(tokens),
                last_refresh_at: None,
                last_used_at: None,
                last_error: None,
                refresh_failures: 0,
                lease_holder: None,
                lease_until: None,
                customer_ref,
                connect_link_id: link.map(ConnectLinkId::uuid),
                created_by: ctx.user_id().map(|u| u.uuid()),
                created_at: at,
                updated_at: at,
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
    let tenant = crate::domain::TenantId::from_uuid(row.tenant_id);
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
            let link_id = ConnectLinkId::from_uuid(link_id);
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
    let reconnect = row.connection_id.map(ConnectionId::from_uuid);
    let id = save_connection(
        app,
        &ctx,
        &actor,
        provider,
        &row.connection_name,
        &config,
        tokens_to_credentials(&tokens),
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

/// A connection ready to call its provider.
pub struct Authorized {
    /// The row (at the token version the credentials belong to).
    pub conn: connections::Model,
    /// Decrypted credentials.
    credentials: Credentials,
    /// The provider.
    pub provider: &'static Provider,
    /// URL placeholder values.
    pub values: BTreeMap<String, String>,
}

fn needs_refresh(conn: &connections::Model, min_validity: Duration) -> bool {
    let window = chrono::Duration::from_std(min_validity).unwrap_or_default();
    conn.access_expires_at
        .is_some_and(|at| at <= now() + window)
}

/// Loads a connection with usable credentials, refreshing the access token first when it
/// expires within `min_validity`, or when `stale_version` (the version that just got a
/// 401) is still current. Across processes exactly one caller refreshes: it takes the
/// connection's lease; the others wait for the token version to move on.
pub async fn authorized(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    min_validity: Duration,
    stale_version: Option<i64>,
) -> Result<Authorized, ConnectionError> {
    let deadline = std::time::Instant::now() + LEASE_TTL + Duration::from_secs(5);
    let holder = uuid::Uuid::now_v7().to_string();
    loop {
        let conn = app
            .store
            .connection(ctx, id)
            .await?
            .ok_or(ConnectionError::NotFound)?;
        let provider = catalogue::get(&conn.provider_id).ok_or_else(|| {
            ConnectionError::Failed(format!("unknown provider {}", conn.provider_id))
        })?;
        match conn.status.parse::<ConnectionStatus>() {
            Ok(ConnectionStatus::Active) => {}
            _ => {
                return Err(ConnectionError::ReauthRequired(
                    conn.last_error
                        .clone()
                        .unwrap_or_else(|| "the connection is not active".into()),
                ));
            }
        }
        let values = url_values(app, &config_of(&conn));
        let credentials = open_credentials(app, ctx, &conn)?;
        let must_refresh = provider.auth.kind.is_oauth()
            && (needs_refresh(&conn, min_validity) || stale_version == Some(conn.token_version));
        if !must_refresh {
            return Ok(Authorized {
                conn,
                credentials,
                provider,
                values,
            });
        }
        if app
            .store
            .try_lease_connection(ctx, id, conn.token_version, &holder, LEASE_TTL)
            .await?
        {
            return refresh_holding_lease(app, ctx, conn, credentials, provider, values, &holder)
                .await;
        }
        if std::time::Instant::now() > deadline {
            return Err(ConnectionError::Transient(
                "another process is refreshing this connection".into(),
            ));
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn refresh_holding_lease(
    app: &App,
    ctx: &TenantCtx,
    conn: connections::Model,
    credentials: Credentials,
    provider: &'static Provider,
    values: BTreeMap<String, String>,
    holder: &str,
) -> Result<Authorized, ConnectionError> {
    let id = ConnectionId::from_uuid(conn.id);
    let server = match auth_server(app, ctx, provider).await {
        Ok(s) => s,
        Err(e) => {
            app.store.release_connection_lease(ctx, id, holder).await?;
            return Err(ConnectionError::Failed(e.public_message()));
        }
    };
    let target = server.target(provider, &values);
    let result = match (provider.auth.kind, &credentials.refresh_token) {
        (AuthKind::Oauth2ClientCredentials, _) => {
            target
                .client_credentials(&app.outbound, &provider.auth.scopes)
                .await
        }
        (_, Some(refresh)) => {
            target
                .refresh(&app.outbound, &SecretString::from(refresh.clone()))
                .await
        }
        (_, None) => Err(OAuthError::InvalidGrant),
    };
    metrics::counter!("sluice_token_refreshes_total", "tenant" => crate::telemetry::tenant_label(ctx.tenant_id()), "provider" => provider.id.clone(), "outcome" => match &result {
        Ok(_) => "succeeded",
        Err(OAuthError::InvalidGrant | OAuthError::InvalidClient) => "rejected",
        Err(_) => "failed",
    })
    .increment(1);
    match result {
        Ok(tokens) => {
            let mut next = credentials.clone();
            next.access_token = Some(tokens.access_token.expose_secret().to_owned());
            if let Some(rotated) = &tokens.refresh_token {
                next.refresh_token = Some(rotated.expose_secret().to_owned());
            }
            // Persist the (possibly rotated) refresh token before anything else: the old
            // one is already spent at a rotating provider.
            let sealed = seal(app, ctx, id, &next)
                .map_err(|e| ConnectionError::Internal(anyhow::anyhow!(e.public_message())))?;
            let stored = app
                .store
                .store_tokens(
                    ctx,
                    id,
                    conn.token_version,
                    StoredTokens {
                        credentials_enc: sealed,
                        expires_at: expiry(&tokens),
                        scopes: tokens.scopes.as_ref().map(|s| s.join(" ")),
                    },
                    Some(holder),
                )
                .await?;
            if !stored {
                return Err(ConnectionError::Internal(anyhow::anyhow!(
                    "token version moved while holding the refresh lease"
                )));
            }
            app.store
                .record_connection_event(ctx, id, ConnectionEvent::Refreshed, None)
                .await?;
            let conn = app
                .store
                .connection(ctx, id)
                .await?
                .ok_or(ConnectionError::NotFound)?;
            Ok(Authorized {
                conn,
                credentials: next,
                provider,
                values,
            })
        }
        Err(e @ (OAuthError::InvalidGrant | OAuthError::InvalidClient)) => {
            mark_reauth_required(app, ctx, id, conn.token_version, &e.to_string()).await?;
            app.store.release_connection_lease(ctx, id, holder).await?;
            Err(ConnectionError::ReauthRequired(e.to_string()))
        }
        Err(e) => {
            app.store
                .record_refresh_failure(ctx, id, holder, &e.to_string())
                .await?;
            app.audit(
                ctx,
                &system_actor(),
                "connection.refresh_failed",
                Some(conn.name.clone()),
                Some(serde_json::json!({ "error": crate::connectors::redact::redact_text(&e.to_string()) })),
            )
            .await?;
            app.store
                .record_connection_event(
                    ctx,
                    id,
                    ConnectionEvent::RefreshFailed,
                    Some(e.to_string()),
                )
                .await?;
            Err(ConnectionError::Transient(e.to_string()))
        }
    }
}

/// How Sluice itself appears in audit logs for what it does on its own.
fn system_actor() -> AuditActor {
    AuditActor {
        label: "Sluice (automatic)".into(),
        ip: None,
    }
}

/// Marks a connection (still at token `version`) as needing a reconnect and records the
/// event (alerts notify on it). A concurrent refresh or reconnect wins.
async fn mark_reauth_required(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    version: i64,
    why: &str,
) -> Result<(), ConnectionError> {
    if !app
        .store
        .mark_reauth_required(ctx, id, version, why)
        .await?
    {
        return Ok(());
    }
    app.store
        .record_connection_event(
            ctx,
            id,
            ConnectionEvent::ReauthRequired,
            Some(why.to_owned()),
        )
        .await?;
    tracing::warn!(connection = %id, reason = %why, "connection needs to be reconnected");
    app.audit(
        ctx,
        &system_actor(),
        "connection.reauth_required",
        Some(id.to_string()),
        Some(serde_json::json!({ "reason": crate::connectors::redact::redact_text(why) })),
    )
    .await?;
    // Its flows would only fail until someone reconnects: pause them, loudly.
    let paused = app
        .store
        .pause_flows_of_connection(
            ctx,
            id,
            "A connection it uses needs to be reconnected; reconnect it, then resume this flow.",
        )
        .await?;
    if !paused.is_empty() {
        tracing::warn!(connection = %id, flows = paused.len(), "flows paused until the connection is reconnected");
    }
    // Tell people now rather than at the next sweep; the sweep retries if this fails.
    if let Err(e) = crate::alerts::evaluate_connection(app, ctx, id).await {
        tracing::warn!(connection = %id, error = %e, "could not evaluate connection alerts");
    }
    Ok(())
}

impl Authorized {
    fn request(&self, app: &App, call: &ApiCall<'_>) -> Result<reqwest::Request, ConnectionError> {
        let (method, path, query) = (call.method.clone(), call.path, call.query);
        let base = Provider::expand(&self.provider.base_url, &self.values);
        let path = Provider::expand(path, &self.values);
        let url = if path.starts_with("http://") || path.starts_with("https://") {
            // Absolute URLs (e.g. next-page links) must stay on the provider's origin, or
            // the credentials would follow them anywhere.
            let same_origin = match (url::Url::parse(&path), url::Url::parse(&base)) {
                (Ok(a), Ok(b)) => a.origin() == b.origin(),
                _ => false,
            };
            if !same_origin {
                return Err(ConnectionError::Failed(
                    "refused to send credentials to another origin".into(),
                ));
            }
            path
        } else {
            format!("{}{}", base.trim_end_matches('/'), path)
        };
        let client = app
            .outbound
            .client_for(&url, Purpose::Api)
            .map_err(|e| ConnectionError::Failed(e.to_string()))?;
        let mut builder = client.request(method, &url).query(query);
        for (name, value) in &self.provider.headers {
            builder = builder.header(name, Provider::expand(value, &self.values));
        }
        for (name, value) in call.headers {
            builder = builder.header(*name, value);
        }
        if let Some(body) = call.body {
            builder = builder.json(body);
        }
        let auth = &self.provider.auth;
        builder = match auth.kind {
            AuthKind::Oauth2Code | AuthKind::Oauth2ClientCredentials => {
                builder.bearer_auth(self.credentials.access_token.as_deref().unwrap_or_default())
            }
            AuthKind::ApiKey => {
                let key = self.credentials.api_key.clone().unwrap_or_default();
                let name = auth
                    .api_key_name
                    .clone()
                    .unwrap_or_else(|| "Authorization".into());
                match auth.api_key_in {
                    KeyPlacement::Header => {
                        builder.header(name, format!("{}{key}", auth.api_key_prefix))
                    }
                    KeyPlacement::Query => builder.query(&[(name, key)]),
                }
            }
            AuthKind::Basic => builder.basic_auth(
                self.credentials.username.clone().unwrap_or_default(),
                self.credentials.password.clone(),
            ),
            AuthKind::None => builder,
        };
        builder
            .build()
            .map_err(|e| ConnectionError::Failed(format!("cannot build the request: {e}")))
    }
}

/// Calls the provider with the connection's credentials. A 401 triggers exactly one token
/// refresh and one retry; a second 401 marks the connection *reauth required*.
pub async fn call(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    method: reqwest::Method,
    path: &str,
    query: &[(String, String)],
) -> Result<Fetched, ConnectionError> {
    call_with(
        app,
        ctx,
        id,
        &ApiCall {
            method,
            path,
            query,
            body: None,
            headers: &[],
        },
    )
    .await
}

/// Whether "last used" should be written now: at most once a minute per connection and
/// process, so a sync does not add a database write to every API call.
fn touch_due(id: ConnectionId) -> bool {
    static LAST: std::sync::OnceLock<std::sync::Mutex<HashMap<ConnectionId, std::time::Instant>>> =
        std::sync::OnceLock::new();
    let Ok(mut last) = LAST.get_or_init(Default::default).lock() else {
        return true;
    };
    let now = std::time::Instant::now();
    match last.get(&id) {
        Some(at) if now.duration_since(*at) < Duration::from_secs(60) => false,
        _ => {
            last.insert(id, now);
            true
        }
    }
}

/// One request to a provider's API.
pub struct ApiCall<'a> {
    /// Method.
    pub method: reqwest::Method,
    /// Path relative to the base URL (or an absolute URL on the provider's origin).
    pub path: &'a str,
    /// Query parameters.
    pub query: &'a [(String, String)],
    /// JSON body.
    pub body: Option<&'a serde_json::Value>,
    /// Extra headers (e.g. `Idempotency-Key`).
    pub headers: &'a [(&'a str, String)],
}

/// [`call`] with a body and headers.
pub async fn call_with(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    call: &ApiCall<'_>,
) -> Result<Fetched, ConnectionError> {
    let mut authorized = authorized(app, ctx, id, REFRESH_SKEW, None).await?;
    for attempt in 0..2 {
        let request = authorized.request(app, call)?;
        let fetched = app
            .outbound
            .send(request, Purpose::Api)
            .await
            .map_err(|e| match e {
                OutboundError::Transport(m) => ConnectionError::Transient(m),
                other => ConnectionError::Failed(other.to_string()),
            })?;
        if fetched.status != reqwest::StatusCode::UNAUTHORIZED {
            if touch_due(id) {
                app.store.touch_connection(ctx, id).await?;
            }
            return Ok(fetched);
        }
        if attempt == 0 && authorized.provider.auth.kind.is_oauth() {
            authorized = authorized_after_401(app, ctx, id, authorized.conn.token_version).await?;
            continue;
        }
        break;
    }
    let why = format!(
        "{} answered 401 Unauthorized even with fresh credentials",
        authorized.provider.name
    );
    mark_reauth_required(app, ctx, id, authorized.conn.token_version, &why).await?;
    Err(ConnectionError::ReauthRequired(why))
}

async fn authorized_after_401(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    version: i64,
) -> Result<Authorized, ConnectionError> {
    authorized(app, ctx, id, REFRESH_SKEW, Some(version)).await
}

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
    let conn = app
        .store
        .connection(ctx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let provider = provider(&conn.provider_id)?;
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
            if let Some(limit) = &provider.pagination.limit_param {
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
    let conn = app
        .store
        .connection(ctx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let provider = provider(&conn.provider_id)?;
    let mut note = "Credentials deleted.".to_owned();
    if provider.auth.kind.is_oauth()
        && provider.auth.revoke_url.is_some()
        && let Ok(credentials) = open_credentials(app, ctx, &conn)
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
