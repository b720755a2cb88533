//! A connection's secrets: one JSON document, sealed with the keyring at rest under
//! (tenant, connection) as associated data, so a sealed value cannot be moved to
//! another connection.

use super::oauth::TokenSet;
use crate::app::App;
use crate::crypto::Aad;
use crate::domain::{ConnectionId, TenantCtx};
use crate::error::{AppError, AppResult};
use crate::store::entities::connections;
use secrecy::ExposeSecret;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

use super::ConnectionError;

/// The secret part of a connection, encrypted at rest as one JSON document.
#[derive(Clone, Default, Serialize, Deserialize)]
pub struct Credentials {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) access_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) refresh_token: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) api_key: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) username: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub(crate) password: Option<String>,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(***)")
    }
}

fn aad_connection(ctx: &TenantCtx, id: ConnectionId) -> Aad {
    Aad::new("connection", ctx.tenant_id(), id)
}

/// Seals credentials for a connection.
pub fn seal(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
    creds: &Credentials,
) -> AppResult<String> {
    let json = serde_json::to_vec(creds).map_err(|e| AppError::Internal(e.into()))?;
    Ok(app.keyring.encrypt(&json, &aad_connection(ctx, id)))
}

/// Opens a connection's sealed credentials.
pub fn open(
    app: &App,
    ctx: &TenantCtx,
    conn: &connections::Model,
) -> Result<Credentials, ConnectionError> {
    let Some(sealed) = &conn.credentials_enc else {
        return Err(ConnectionError::ReauthRequired(
            "no credentials are stored".into(),
        ));
    };
    let id = conn.id;
    let bytes = app
        .keyring
        .decrypt(sealed, &aad_connection(ctx, id))
        .map_err(|e| {
            ConnectionError::Internal(anyhow::anyhow!("credentials of connection {id}: {e}"))
        })?;
    serde_json::from_slice(&bytes).map_err(|e| ConnectionError::Internal(e.into()))
}

/// The connection's non-secret settings (URL placeholder values).
pub fn config_of(conn: &connections::Model) -> BTreeMap<String, String> {
    serde_json::from_str(&conn.config).unwrap_or_default()
}

/// The provider a connection talks to: a generic connector's as its values describe
/// the API.
pub fn provider_of(
    conn: &connections::Model,
) -> Result<&'static super::catalogue::Provider, String> {
    let provider = super::catalogue::get(&conn.provider_id)
        .ok_or_else(|| format!("unknown provider {}", conn.provider_id))?;
    super::catalogue::resolve(provider, &config_of(conn))
}

/// The credentials a token answer carries.
pub fn from_tokens(tokens: &TokenSet) -> Credentials {
    Credentials {
        access_token: Some(tokens.access_token.expose_secret().to_owned()),
        refresh_token: tokens
            .refresh_token
            .as_ref()
            .map(|t| t.expose_secret().to_owned()),
        ..Credentials::default()
    }
}

/// When a token answer's access token expires.
pub fn expiry(tokens: &TokenSet) -> Option<chrono::DateTime<chrono::Utc>> {
    tokens
        .expires_in
        .and_then(|d| chrono::Duration::from_std(d).ok())
        .map(|d| crate::store::now() + d)
}
