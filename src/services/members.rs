//! Members and invitations.

use super::accounts::{self, ClientInfo, SignedIn};
use super::require_write;
use crate::app::{App, AuditActor};
use crate::auth::{password, tokens};
use crate::domain::{
    Email, FieldErrors, InvitationId, MembershipId, NewPassword, Role, TenantCtx, text,
};
use crate::error::{AppError, AppResult};
use crate::store::{InvitationWithTenant, UserRecord, now};

/// Invites someone by e-mail; returns the single-use link to send them.
pub async fn invite(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    email_raw: &str,
    role_raw: &str,
) -> AppResult<String> {
    require_write(ctx)?;
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(email_raw));
    let role = errors.check(
        "role",
        match role_raw.parse::<Role>() {
            Ok(role) if ctx.role().can_manage(role) => Ok(role),
            Ok(_) => Err("Only owners can invite owners.".to_owned()),
            Err(_) => Err("Choose a role.".to_owned()),
        },
    );
    let (email, role) = errors.into_result(|| Some((email?, role?)))?;
    let already = app
        .store
        .members(ctx)
        .await?
        .iter()
        .any(|m| m.email == email.as_str());
    if already {
        return Err(AppError::invalid(
            "email",
            "This person is already a member.",
        ));
    }
    let token = tokens::random_secret();
    let ttl = chrono::Duration::from_std(app.settings.invitation_ttl)
        .map_err(|e| AppError::Internal(e.into()))?;
    app.store
        .create_invitation(
            ctx,
            email.as_str(),
            role,
            &tokens::digest(&token),
            now() + ttl,
        )
        .await?;
    app.audit(
        ctx,
        actor,
        "member.invited",
        Some(email.to_string()),
        Some(serde_json::json!({ "role": role.as_str() })),
    )
    .await?;
    Ok(app.settings.url_for(&format!("/invite/{token}")))
}

/// Revokes a pending invitation.
pub async fn revoke_invitation(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: InvitationId,
) -> AppResult<()> {
    require_write(ctx)?;
    if !app.store.revoke_invitation(ctx, id).await? {
        return Err(AppError::NotFound);
    }
    app.audit(
        ctx,
        actor,
        "member.invitation_revoked",
        Some(id.to_string()),
        None,
    )
    .await?;
    Ok(())
}

/// An invitation that can still be accepted, or a clear reason why not.
pub async fn open_invitation(app: &App, token: &str) -> AppResult<InvitationWithTenant> {
    let found = app
        .store
        .invitation_by_digest(&tokens::digest(token))
        .await?
        .ok_or_else(|| AppError::Gone("this invitation link is not valid".into()))?;
    let inv = &found.invitation;
    if inv.accepted_at.is_some() {
        return Err(AppError::Gone("this invitation was already used".into()));
    }
    if inv.revoked_at.is_some() {
        return Err(AppError::Gone("this invitation was withdrawn".into()));
    }
    if inv.expires_at <= now() {
        return Err(AppError::Gone(
            "this invitation has expired; ask for a new one".into(),
        ));
    }
    Ok(found)
}

/// Accepts an invitation as the signed-in user (whose e-mail must match).
pub async fn accept_as(
    app: &App,
    token: &str,
    user: &UserRecord,
    client: &ClientInfo,
) -> AppResult<InvitationWithTenant> {
    let inv = open_invitation(app, token).await?;
    if inv.invitation.email != user.email {
        return Err(AppError::Forbidden);
    }
    join(app, &inv, user, client).await?;
    Ok(inv)
}

/// Accepts an invitation by creating an account for the invited e-mail.
pub async fn accept_with_new_account(
    app: &App,
    token: &str,
    name_raw: &str,
    password_raw: &str,
    confirm: &str,
    client: &ClientInfo,
) -> AppResult<(InvitationWithTenant, SignedIn)> {
    let inv = open_invitation(app, token).await?;
    let email = Email::parse(&inv.invitation.email).map_err(AppError::BadRequest)?;
    if app.store.user_by_email(&email).await?.is_some() {
        return Err(AppError::invalid(
            "password",
            "You already have an account: sign in to accept.",
        ));
    }
    let mut errors = FieldErrors::new();
    let name = errors.check("name", text::parse_display_name(name_raw, "name", 100));
    let password = errors.check(
        "password",
        NewPassword::parse(password_raw, confirm, Some(email.as_str())),
    );
    let (name, password) = errors.into_result(|| Some((name?, password?)))?;
    let hash = password::hash(password.expose()).await?;
    let user = app
        .store
        .create_user(&email, &name, &hash)
        .await?
        .ok_or_else(|| AppError::Conflict("an account with this e-mail already exists".into()))?;
    join(app, &inv, &user, client).await?;
    let session = accounts::start_session(app, user, Some(inv.tenant_id()), client).await?;
    Ok((inv, session))
}

async fn join(
    app: &App,
    inv: &InvitationWithTenant,
    user: &UserRecord,
    client: &ClientInfo,
) -> AppResult<()> {
    let id = inv.invitation.id;
    if !app.store.accept_invitation(id, user.id).await? {
        return Err(AppError::Gone("this invitation is no longer valid".into()));
    }
    let role = app
        .store
        .role_in(user.id, inv.tenant_id())
        .await?
        .unwrap_or(Role::Viewer);
    let ctx = TenantCtx::new(inv.tenant_id(), role, crate::domain::Actor::User(user.id));
    app.audit(
        &ctx,
        &accounts::actor_of(user, client),
        "member.joined",
        Some(user.email.clone()),
        Some(serde_json::json!({ "role": role.as_str() })),
    )
    .await?;
    Ok(())
}

/// Changes a member's role. Admins cannot touch owners; the last owner stays an owner.
pub async fn change_role(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: MembershipId,
    role_raw: &str,
) -> AppResult<()> {
    require_write(ctx)?;
    let member = app.store.member(ctx, id).await?.ok_or(AppError::NotFound)?;
    let role: Role = role_raw
        .parse()
        .map_err(|_| AppError::invalid("role", "Choose a role."))?;
    if !ctx.role().can_manage(member.role) || !ctx.role().can_manage(role) {
        return Err(AppError::Forbidden);
    }
    if member.role == Role::Owner && role != Role::Owner && app.store.count_owners(ctx).await? <= 1
    {
        return Err(AppError::Conflict(
            "A workspace needs at least one owner: make someone else owner first.".into(),
        ));
    }
    app.store.set_member_role(ctx, id, role).await?;
    app.audit(
        ctx,
        actor,
        "member.role_changed",
        Some(member.email),
        Some(serde_json::json!({ "from": member.role.as_str(), "to": role.as_str() })),
    )
    .await?;
    Ok(())
}

/// Removes a member (or lets a member leave). The last owner cannot be removed.
pub async fn remove(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: MembershipId,
) -> AppResult<()> {
    let member = app.store.member(ctx, id).await?.ok_or(AppError::NotFound)?;
    let leaving_self = ctx.user_id() == Some(member.user_id);
    if !leaving_self {
        require_write(ctx)?;
        if !ctx.role().can_manage(member.role) {
            return Err(AppError::Forbidden);
        }
    }
    if member.role == Role::Owner && app.store.count_owners(ctx).await? <= 1 {
        return Err(AppError::Conflict(
            "You are the last owner, so you cannot leave: make someone else owner first.".into(),
        ));
    }
    app.store.remove_member(ctx, id).await?;
    app.audit(ctx, actor, "member.removed", Some(member.email), None)
        .await?;
    Ok(())
}

/// The workspace's members.
pub async fn list(app: &App, ctx: &TenantCtx) -> AppResult<Vec<super::records::MemberRecord>> {
    Ok(app.store.members(ctx).await?)
}

/// Invitations not yet accepted.
pub async fn pending_invitations(
    app: &App,
    ctx: &TenantCtx,
) -> AppResult<Vec<super::records::Invitation>> {
    Ok(app.store.pending_invitations(ctx).await?)
}

/// Whether a membership is the caller's own.
pub async fn is_self(app: &App, ctx: &TenantCtx, id: MembershipId) -> AppResult<bool> {
    Ok(app
        .store
        .member(ctx, id)
        .await?
        .is_some_and(|m| Some(m.user_id) == ctx.user_id()))
}

/// Whether someone already has an account under this address (an invitation then asks
/// them to sign in rather than to sign up).
pub async fn has_account(app: &App, email: &Email) -> AppResult<bool> {
    Ok(app.store.user_by_email(email).await?.is_some())
}
