//! A tenant's OAuth app per provider: the client registration its connections use.

use crate::app::{App, AuditActor};
use crate::connectors::catalogue::Provider;
use crate::crypto::Aad;
use crate::domain::{FieldErrors, TenantCtx, text};
use crate::error::{AppError, AppResult};
use crate::services::require_write;
use std::collections::HashMap;

use super::{parse_field_values, provider};

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
    let id = existing.as_ref().map(|a| a.id).unwrap_or_default();
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
