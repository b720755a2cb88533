//! API tokens for the JSON API: created in the UI, shown once, stored as digests.

use super::require_write;
use crate::app::{App, AuditActor};
use crate::auth::tokens;
use crate::domain::{Actor, ApiTokenId, FieldErrors, Role, TenantCtx, text};
use crate::error::{AppError, AppResult};
use crate::store::{NewApiToken, now};

/// Prefix that makes leaked tokens easy to find with secret scanners.
pub const TOKEN_PREFIX: &str = "slc_";

/// Creates a token; returns the only copy of its secret.
pub async fn create(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    name_raw: &str,
    role_raw: &str,
    expires_in_days_raw: &str,
) -> AppResult<String> {
    require_write(ctx)?;
    let mut errors = FieldErrors::new();
    let name = errors.check("name", text::parse_display_name(name_raw, "token name", 60));
    let role = errors.check(
        "role",
        match role_raw.parse::<Role>() {
            Ok(Role::Owner) => Err("API tokens can be admin or viewer.".to_owned()),
            Ok(role) if ctx.role().can_manage(role) => Ok(role),
            Ok(_) => Err("You cannot create a token with more rights than you have.".to_owned()),
            Err(_) => Err("Choose admin or viewer.".to_owned()),
        },
    );
    let expires_at = errors.check(
        "expires_in_days",
        match expires_in_days_raw.trim() {
            "" | "never" => Ok(None),
            days => match days.parse::<i64>() {
                Ok(d) if (1..=3650).contains(&d) => Ok(Some(now() + chrono::Duration::days(d))),
                _ => Err("Enter a number of days from 1 to 3650, or leave it empty.".to_owned()),
            },
        },
    );
    let (name, role, expires_at) = errors.into_result(|| Some((name?, role?, expires_at?)))?;
    let secret = format!("{TOKEN_PREFIX}{}", tokens::random_secret());
    let prefix: String = secret.chars().take(TOKEN_PREFIX.len() + 6).collect();
    app.store
        .create_api_token(
            ctx,
            NewApiToken {
                name: &name,
                prefix: &prefix,
                digest: &tokens::digest(&secret),
                role,
                expires_at,
            },
        )
        .await?;
    app.audit(
        ctx,
        actor,
        "api_token.created",
        Some(name),
        Some(serde_json::json!({"role": role.as_str()})),
    )
    .await?;
    Ok(secret)
}

/// Revokes a token of the caller's tenant.
pub async fn revoke(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: ApiTokenId,
) -> AppResult<()> {
    require_write(ctx)?;
    if !app.store.revoke_api_token(ctx, id).await? {
        return Err(AppError::NotFound);
    }
    app.audit(ctx, actor, "api_token.revoked", Some(id.to_string()), None)
        .await?;
    Ok(())
}

/// The tenant scope a bearer token grants, or why it grants none. A token speaks for
/// the member who created it: it works only while they are still a member of its
/// workspace, and never with more than their current role there (a demoted admin's
/// admin token acts as a viewer). Whoever holds a token's secret may learn why it
/// stopped working; nothing is said about tokens one does not hold.
pub async fn authenticate(app: &App, secret: &str) -> AppResult<TenantCtx> {
    let refused = |why: &str| AppError::InvalidToken(why.to_owned());
    if !secret.starts_with(TOKEN_PREFIX) {
        return Err(refused(
            "This is not a Sluice API token: tokens start with the prefix shown when they are created.",
        ));
    }
    let Some(state) = app
        .store
        .api_token_by_digest(&tokens::digest(secret))
        .await?
    else {
        return Err(refused(
            "This API token is not known here: check that it was copied whole and belongs to this Sluice.",
        ));
    };
    if state.revoked {
        return Err(refused("This API token was revoked; create a new one."));
    }
    if state.expired {
        return Err(refused("This API token has expired; create a new one."));
    }
    let token = state.token;
    let creator_role = match token.created_by {
        Some(creator) => app.store.role_in(creator, token.tenant_id).await?,
        None => None,
    };
    let Some(creator_role) = creator_role else {
        return Err(refused(
            "The member who created this API token has left the workspace, so it no longer works; create a new one.",
        ));
    };
    app.store.touch_api_token(token.id).await?;
    Ok(TenantCtx::new(
        token.tenant_id,
        token.role.min(creator_role),
        Actor::ApiToken(token.id),
    ))
}

/// The tenant's active API tokens.
pub async fn list(app: &App, ctx: &TenantCtx) -> AppResult<Vec<super::records::ApiToken>> {
    Ok(app.store.api_tokens(ctx).await?)
}
