//! The authorised session: a connection's credentials applied to a provider call, the
//! access token refreshed before it expires or after a 401 (exactly one refresh at a time
//! across processes), and a connection marked *reauth required* when the provider
//! refuses our grant.

use super::ConnectionError;
use super::catalogue::{AuthKind, BodyEncoding, KeyPlacement, Provider};
use super::credentials::{self, Credentials, config_of, expiry, seal};
use super::http::{Fetched, OutboundError, Purpose};
use super::oauth::{ClientCredentials, OAuthError, OAuthTarget};
use crate::app::{App, AuditActor};
use crate::config::MasterKey;
use crate::crypto::Aad;
use crate::domain::{ConnectionEvent, ConnectionId, ConnectionStatus, TenantCtx};
use crate::error::{AppError, AppResult};
use crate::store::entities::connections;
use crate::store::{StoredTokens, now};
use hmac::{Hmac, Mac};
use secrecy::{ExposeSecret, SecretString};
use sha2::Sha256;
use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Refresh when the access token has less than this left.
const REFRESH_SKEW: Duration = Duration::from_secs(60);
/// The proactive refresher renews tokens this long before they expire.
pub const PROACTIVE_WINDOW: Duration = Duration::from_secs(300);
/// How long a process may hold a connection's refresh lease: longer than the slowest
/// possible token call (the outbound total timeout), so a lease never lapses mid-refresh.
const LEASE_TTL: Duration = Duration::from_secs(90);

/// How long a call may use the connection row its caller read before (see [`Recent`]).
const RECENT_FOR: Duration = Duration::from_secs(5);

/// The connection row a sync last read, which its next calls use for a few seconds
/// instead of reading it again: a sync calls its source and its destination once or
/// more per page, and each read was one more statement. A row that old still says which
/// credentials to use; one whose token is due for a refresh, or that just got a 401, is
/// read again before anything is decided.
#[derive(Default)]
pub struct Recent(std::sync::Mutex<Option<(std::time::Instant, connections::Model)>>);

impl Recent {
    /// Starts from a row just read.
    pub fn seeded(conn: connections::Model) -> Self {
        Self(std::sync::Mutex::new(Some((
            std::time::Instant::now(),
            conn,
        ))))
    }

    /// The row, if it is this connection's and recent enough.
    fn get(&self, id: ConnectionId) -> Option<connections::Model> {
        let held = self.0.lock().ok()?;
        let (at, conn) = held.as_ref()?;
        (conn.id == id && at.elapsed() < RECENT_FOR).then(|| conn.clone())
    }

    fn put(&self, conn: &connections::Model) {
        if let Ok(mut held) = self.0.lock() {
            *held = Some((std::time::Instant::now(), conn.clone()));
        }
    }
}

/// Where the provider sends the user back: one path per provider, exact.
pub fn callback_url(app: &App, provider: &Provider) -> String {
    app.settings
        .url_for(&format!("/oauth/callback/{}", provider.id))
}

/// The values a provider's URLs may name: the connection's settings and `sluice`.
pub fn url_values(app: &App, config: &BTreeMap<String, String>) -> BTreeMap<String, String> {
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

/// The OAuth client Sluice registers at the built-in sandbox (start-up hands it over
/// when it mounts the sandbox), used by the sandbox providers without an OAuth app.
pub const SANDBOX_CLIENT_ID: &str = "sluice-sandbox";

/// The sandbox client's secret: derived from the master key, so it is stable across
/// restarts and processes yet secret.
pub fn sandbox_client_secret(key: &MasterKey) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(key.expose())
        .map(|mut m| {
            m.update(b"sluice-sandbox-client-secret-v1");
            hex::encode(m.finalize().into_bytes())
        })
        .unwrap_or_default();
    format!("sbx_{mac}")
}

/// The OAuth client registration to use: the sandbox's own, or the tenant's OAuth app.
pub async fn client_credentials(
    app: &App,
    ctx: &TenantCtx,
    provider: &Provider,
) -> AppResult<ClientCredentials> {
    if provider.sandbox {
        return Ok(ClientCredentials {
            client_id: SANDBOX_CLIENT_ID.into(),
            client_secret: Some(SecretString::from(sandbox_client_secret(&app.master_key))),
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
pub struct AuthServer {
    pub credentials: ClientCredentials,
    pub redirect_uri: String,
}

impl AuthServer {
    /// The authorization server to talk to for this provider and connection.
    pub fn target<'a>(
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

/// The tenant's registration at the provider and our callback.
pub async fn auth_server(app: &App, ctx: &TenantCtx, provider: &Provider) -> AppResult<AuthServer> {
    Ok(AuthServer {
        credentials: client_credentials(app, ctx, provider).await?,
        redirect_uri: callback_url(app, provider),
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
    authorized_recent(
        app,
        ctx,
        id,
        min_validity,
        stale_version,
        &Recent::default(),
    )
    .await
}

/// [`authorized`], starting from the row in `recent` when there is one (and keeping the
/// row it ends with there).
async fn authorized_recent(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    min_validity: Duration,
    stale_version: Option<i64>,
    recent: &Recent,
) -> Result<Authorized, ConnectionError> {
    let deadline = std::time::Instant::now() + LEASE_TTL + Duration::from_secs(5);
    let holder = uuid::Uuid::now_v7().to_string();
    let mut known = recent.get(id);
    loop {
        let was_known = known.is_some();
        let conn = match known.take() {
            Some(conn) => conn,
            None => {
                let conn = app
                    .store
                    .connection(ctx, id)
                    .await?
                    .ok_or(ConnectionError::NotFound)?;
                recent.put(&conn);
                conn
            }
        };
        let provider = credentials::provider_of(&conn).map_err(ConnectionError::Failed)?;
        match conn.status {
            ConnectionStatus::Active => {}
            _ => {
                return Err(ConnectionError::ReauthRequired(
                    conn.last_error
                        .clone()
                        .unwrap_or_else(|| "the connection is not active".into()),
                ));
            }
        }
        let values = url_values(app, &config_of(&conn));
        let credentials = credentials::open(app, ctx, &conn)?;
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
        if was_known {
            // Whether to refresh is decided on the row as it is now.
            continue;
        }
        if app
            .store
            .try_lease_connection(ctx, id, conn.token_version, &holder, LEASE_TTL)
            .await?
        {
            let refreshed =
                refresh_holding_lease(app, ctx, conn, credentials, provider, values, &holder)
                    .await?;
            recent.put(&refreshed.conn);
            return Ok(refreshed);
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
    let id = conn.id;
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
    let evaluate = crate::queue::EvaluateConnection {
        tenant_id: ctx.tenant_id(),
        connection_id: id,
    };
    if let Err(e) = app.queue.push(evaluate).await {
        tracing::warn!(connection = %id, error = %e, "could not enqueue connection alerts");
    }
    Ok(())
}

impl Authorized {
    fn request(&self, app: &App, call: &ApiCall<'_>) -> Result<reqwest::Request, ConnectionError> {
        build_request(app, self.provider, &self.values, &self.credentials, call)
    }
}

/// `template` with connection values filled in; a value the connection lacks (a
/// site not chosen yet, a value the vendor did not send) is an error saying what to do.
fn filled(
    provider: &Provider,
    template: &str,
    values: &BTreeMap<String, String>,
) -> Result<String, ConnectionError> {
    let text = Provider::expand(template, values);
    if !text.contains('{') {
        return Ok(text);
    }
    for source in provider.value_sources() {
        if text.contains(&format!("{{{}}}", source.name)) {
            return Err(ConnectionError::Failed(format!(
                "this {} connection has no {} yet: {}",
                provider.name, source.name, source.remedy
            )));
        }
    }
    Ok(text)
}

/// A provider call with `credentials` applied: the URL, the connection's values in
/// path, query and headers, the body in the provider's encoding.
pub(super) fn build_request(
    app: &App,
    provider: &Provider,
    values: &BTreeMap<String, String>,
    credentials: &Credentials,
    call: &ApiCall<'_>,
) -> Result<reqwest::Request, ConnectionError> {
    let (method, path, query) = (call.method.clone(), call.path, call.query);
    // A link needs only the base's origin, which is known before the values a
    // discovery call is about to fill.
    let base = if call.link {
        Provider::expand(&provider.base_url, values)
    } else {
        filled(provider, &provider.base_url, values)?
    };
    let path = filled(provider, path, values)?;
    let absolute = path.starts_with("http://") || path.starts_with("https://");
    let url = if absolute || call.link {
        // Links (e.g. next pages) must stay on the provider's origin, or the
        // credentials would follow them anywhere.
        let base = url::Url::parse(&format!("{}/", base.trim_end_matches('/')))
            .map_err(|e| ConnectionError::Failed(format!("invalid base URL: {e}")))?;
        let link = base
            .join(&path)
            .map_err(|e| ConnectionError::Failed(format!("invalid link: {e}")))?;
        if link.origin() != base.origin() {
            return Err(ConnectionError::Failed(
                "refused to send credentials to another origin".into(),
            ));
        }
        link.to_string()
    } else {
        format!("{}{}", base.trim_end_matches('/'), path)
    };
    let client = app
        .outbound
        .client_for(&url, Purpose::Api)
        .map_err(|e| ConnectionError::Failed(e.to_string()))?;
    // Parameter values may name connection values (e.g. a workspace id).
    let query = query
        .iter()
        .map(|(k, v)| Ok((k, filled(provider, v, values)?)))
        .collect::<Result<Vec<_>, ConnectionError>>()?;
    let mut builder = client.request(method, &url).query(&query);
    for (name, value) in &provider.headers {
        builder = builder.header(name, filled(provider, value, values)?);
    }
    for (name, value) in call.headers {
        builder = builder.header(*name, value);
    }
    if let Some(body) = call.body {
        builder = match provider.body_encoding {
            BodyEncoding::Json => builder.json(body),
            BodyEncoding::Form => builder.form(&BodyEncoding::form_pairs(body)),
        };
    }
    let auth = &provider.auth;
    builder = match auth.kind {
        AuthKind::Oauth2Code | AuthKind::Oauth2ClientCredentials => {
            // Most vendors take `Authorization: Bearer`; some their own header.
            let mut value = reqwest::header::HeaderValue::from_str(&format!(
                "{}{}",
                auth.token_prefix.as_deref().unwrap_or("Bearer "),
                credentials.access_token.as_deref().unwrap_or_default()
            ))
            .map_err(|_| ConnectionError::Failed("the access token cannot be sent".into()))?;
            value.set_sensitive(true);
            builder.header(
                auth.token_header.as_deref().unwrap_or("Authorization"),
                value,
            )
        }
        AuthKind::ApiKey => {
            let key = credentials.api_key.clone().unwrap_or_default();
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
            credentials.username.clone().unwrap_or_default(),
            credentials.password.clone(),
        ),
        AuthKind::None => builder,
    };
    builder
        .build()
        .map_err(|e| ConnectionError::Failed(format!("cannot build the request: {e}")))
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
            link: false,
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
    /// Whether `path` is a link the provider gave (a next-page URL): resolved against
    /// the base URL as a browser would (`/x` is on the base's host), not appended to it.
    pub link: bool,
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
    call_recent(app, ctx, id, &Recent::default(), call).await
}

/// [`call_with`], using (and keeping) the connection row in `recent`.
pub async fn call_recent(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    recent: &Recent,
    call: &ApiCall<'_>,
) -> Result<Fetched, ConnectionError> {
    let mut authorized = authorized_recent(app, ctx, id, REFRESH_SKEW, None, recent).await?;
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
            // The row in `recent` still has the version refused: it is read again.
            authorized = authorized_recent(
                app,
                ctx,
                id,
                REFRESH_SKEW,
                Some(authorized.conn.token_version),
                recent,
            )
            .await?;
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
