//! Workspaces (tenants): creating, switching, settings.

use super::records;
use super::require_write;
use crate::app::{App, AuditActor};
use crate::auth::tokens;
use crate::domain::{Role, TenantCtx, TenantId, TimeZone, UserId, text};
use crate::error::{AppError, AppResult};
use crate::store::UserRecord;

/// Creates a workspace owned by `owner`, with a unique slug derived from its name.
pub async fn create_for(app: &App, owner: &UserRecord, name: &str) -> AppResult<TenantId> {
    let base = slugify(name);
    for attempt in 0..20 {
        let slug = match attempt {
            0 => base.clone(),
            _ => format!("{base}-{}", &tokens::random_secret()[..6].to_lowercase()),
        };
        if let Some(id) = app.store.create_tenant(name, &slug, owner.id).await? {
            let ctx = TenantCtx::new(id, Role::Owner, crate::domain::Actor::User(owner.id));
            crate::services::alerts::defaults::install(app, &ctx).await?;
            return Ok(id);
        }
    }
    Err(AppError::Conflict(
        "could not find a free workspace address; try another name".into(),
    ))
}

/// Creates an additional workspace from the UI, owned by the signed-in user.
pub async fn create(app: &App, owner: &UserRecord, name_raw: &str) -> AppResult<TenantId> {
    let name = text::parse_display_name(name_raw, "workspace name", 80)
        .map_err(|m| AppError::invalid("name", m))?;
    create_for(app, owner, &name).await
}

/// Makes `tenant` the session's current workspace, if the user belongs to it.
pub async fn switch(
    app: &App,
    user: UserId,
    session_digest: &str,
    tenant: TenantId,
) -> AppResult<()> {
    if app.store.role_in(user, tenant).await?.is_none() {
        return Err(AppError::NotFound);
    }
    app.store.set_session_tenant(session_digest, tenant).await?;
    Ok(())
}

/// Renames the workspace and sets its time zone.
pub async fn update_settings(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    name_raw: &str,
    time_zone_raw: &str,
) -> AppResult<()> {
    require_write(ctx)?;
    let mut errors = crate::domain::FieldErrors::new();
    let name = errors.check(
        "name",
        text::parse_display_name(name_raw, "workspace name", 80),
    );
    let tz = time_zone_raw.trim();
    let time_zone = if TIME_ZONES.contains(&tz)
        && let Ok(zone) = tz.parse::<TimeZone>()
    {
        Some(zone)
    } else {
        errors.add("time_zone", "Choose a time zone from the list.");
        None
    };
    let (name, time_zone) = errors.into_result(|| Some((name?, time_zone?)))?;
    app.store.update_tenant(ctx, &name, time_zone).await?;
    app.audit(ctx, actor, "workspace.updated", Some(name), None)
        .await?;
    Ok(())
}

/// Only owners may see and change some settings.
pub fn is_owner(ctx: &TenantCtx) -> bool {
    ctx.role() == Role::Owner
}

/// A URL-safe slug: lowercase ASCII letters, digits and single dashes.
pub fn slugify(name: &str) -> String {
    let mut slug = String::new();
    for c in name.chars().flat_map(char::to_lowercase) {
        if c.is_ascii_alphanumeric() {
            slug.push(c);
        } else if !slug.ends_with('-') && !slug.is_empty() {
            slug.push('-');
        }
    }
    let slug: String = slug.trim_end_matches('-').chars().take(40).collect();
    if slug.is_empty() {
        "workspace".to_owned()
    } else {
        slug
    }
}

/// Time zones offered for schedules and dashboards (IANA names).
pub const TIME_ZONES: &[&str] = &[
    "UTC",
    "Europe/London",
    "Europe/Dublin",
    "Europe/Lisbon",
    "Europe/Paris",
    "Europe/Berlin",
    "Europe/Amsterdam",
    "Europe/Madrid",
    "Europe/Rome",
    "Europe/Zurich",
    "Europe/Stockholm",
    "Europe/Warsaw",
    "Europe/Athens",
    "Europe/Helsinki",
    "Europe/Istanbul",
    "Europe/Moscow",
    "Africa/Cairo",
    "Africa/Johannesburg",
    "Africa/Lagos",
    "Africa/Nairobi",
    "Asia/Dubai",
    "Asia/Karachi",
    "Asia/Kolkata",
    "Asia/Dhaka",
    "Asia/Bangkok",
    "Asia/Jakarta",
    "Asia/Singapore",
    "Asia/Hong_Kong",
    "Asia/Shanghai",
    "Asia/Taipei",
    "Asia/Seoul",
    "Asia/Tokyo",
    "Australia/Perth",
    "Australia/Adelaide",
    "Australia/Brisbane",
    "Australia/Sydney",
    "Pacific/Auckland",
    "Pacific/Honolulu",
    "America/Anchorage",
    "America/Los_Angeles",
    "America/Vancouver",
    "America/Denver",
    "America/Phoenix",
    "America/Chicago",
    "America/Mexico_City",
    "America/New_York",
    "America/Toronto",
    "America/Bogota",
    "America/Lima",
    "America/Santiago",
    "America/Caracas",
    "America/Argentina/Buenos_Aires",
    "America/Sao_Paulo",
    "Atlantic/Reykjavik",
];

/// The workspace itself.
pub async fn get(app: &App, ctx: &TenantCtx) -> AppResult<records::Tenant> {
    Ok(app.store.tenant(ctx).await?)
}

/// The workspaces a user belongs to.
pub async fn memberships_of(app: &App, user: UserId) -> AppResult<Vec<records::TenantMembership>> {
    Ok(app.store.memberships_of(user).await?)
}

/// A workspace by its address (support staff look tenants up by it).
pub async fn by_slug(app: &App, slug: &str) -> AppResult<Option<TenantId>> {
    Ok(app.store.tenant_by_slug(slug).await?)
}

/// The workspace's audit log, newest first, from before `before`.
pub async fn audit_log(
    app: &App,
    ctx: &TenantCtx,
    filter: &records::AuditFilter,
    before: Option<crate::domain::AuditEventId>,
    limit: u64,
) -> AppResult<Vec<records::AuditEvent>> {
    Ok(app.store.audit_events(ctx, filter, before, limit).await?)
}

#[cfg(test)]
mod tests {
    #[test]
    fn slugs_are_url_safe() {
        assert_eq!(super::slugify("Acme, Inc."), "acme-inc");
        assert_eq!(super::slugify("  Zürich Ops "), "z-rich-ops");
        assert_eq!(super::slugify("***"), "workspace");
    }
}
