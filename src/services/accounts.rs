//! First-run setup, sign-in and sign-out, sessions, and password changes.

use super::tenants;
use crate::app::{App, AuditActor};
use crate::auth::{device, password, throttle, tokens};
use crate::domain::{Actor, Email, FieldErrors, NewPassword, TenantCtx, TenantId, text};
use crate::error::{AppError, AppResult};
use crate::store::entities::sessions;
use crate::store::{UserRecord, now};
use chrono::Duration;

/// How long a first-run setup link stays valid.
const SETUP_LINK_HOURS: i64 = 24;

/// The first-run form.
pub struct SetupInput {
    /// The owner's name.
    pub name: String,
    /// The owner's e-mail.
    pub email: String,
    /// Chosen password.
    pub password: String,
    /// Repeated password.
    pub password_confirm: String,
    /// The first workspace's name.
    pub workspace: String,
}

/// A new session: the cookie value (shown to the browser only) and who it belongs to.
pub struct SignedIn {
    /// The session secret for the cookie.
    pub session_token: String,
    /// The device cookie to (re)issue.
    pub device_cookie: String,
    /// The user.
    pub user: UserRecord,
}

/// Client facts recorded with a session and used for throttling.
#[derive(Clone, Debug, Default)]
pub struct ClientInfo {
    /// Client address.
    pub ip: String,
    /// Browser user agent.
    pub user_agent: Option<String>,
    /// The device cookie the browser sent, if any.
    pub device_cookie: Option<String>,
}

/// If no user exists yet, creates a fresh setup link (replacing older ones) and returns
/// its URL, for printing at start-up. `None` once setup is done.
pub async fn setup_link(app: &App) -> AppResult<Option<String>> {
    if app.store.count_users().await? > 0 {
        return Ok(None);
    }
    let token = tokens::random_secret();
    app.store
        .replace_setup_token(
            &tokens::digest(&token),
            now() + Duration::hours(SETUP_LINK_HOURS),
        )
        .await?;
    Ok(Some(app.settings.url_for(&format!("/setup/{token}"))))
}

/// Whether a setup link can still be used.
pub async fn setup_link_valid(app: &App, token: &str) -> AppResult<bool> {
    Ok(app.store.count_users().await? == 0
        && app.store.setup_token_valid(&tokens::digest(token)).await?)
}

/// Completes first-run setup: the first owner, their workspace, and a session.
pub async fn complete_setup(
    app: &App,
    token: &str,
    input: SetupInput,
    client: &ClientInfo,
) -> AppResult<SignedIn> {
    let mut errors = FieldErrors::new();
    let name = errors.check("name", text::parse_display_name(&input.name, "name", 100));
    let email = errors.check("email", Email::parse(&input.email));
    let password = errors.check(
        "password",
        NewPassword::parse(&input.password, &input.password_confirm, Some(&input.email)),
    );
    let workspace = errors.check(
        "workspace",
        text::parse_display_name(&input.workspace, "workspace name", 80),
    );
    let (name, email, password, workspace) =
        errors.into_result(|| Some((name?, email?, password?, workspace?)))?;
    if app.store.count_users().await? > 0
        || !app
            .store
            .consume_setup_token(&tokens::digest(token))
            .await?
    {
        return Err(AppError::Gone(
            "this setup link has expired or was already used; restart Sluice to print a new one"
                .into(),
        ));
    }
    let hash = password::hash(password.expose()).await?;
    let user = app
        .store
        .create_user(&email, &name, &hash)
        .await?
        .ok_or_else(|| AppError::Conflict("a user with this e-mail already exists".into()))?;
    let tenant = tenants::create_for(app, &user, &workspace).await?;
    tracing::info!(user = %user.id, tenant = %tenant, "first-run setup completed");
    start_session(app, user, Some(tenant), client).await
}

/// Checks credentials (with throttling) and opens a session.
pub async fn sign_in(
    app: &App,
    email_raw: &str,
    password_raw: &str,
    client: &ClientInfo,
) -> AppResult<SignedIn> {
    let invalid = || AppError::invalid("email", "The e-mail or password is not correct.");
    let email = Email::parse(email_raw).map_err(|_| invalid())?;
    let (pair_key, ip_key, account_key) = throttle::keys(email.as_str(), &client.ip);
    for key in [&pair_key, &ip_key] {
        if let Some(secs) = throttle::blocked_for(&app.store, key).await? {
            return Err(AppError::TooManyRequests {
                retry_after_secs: secs,
            });
        }
    }
    let found = app.store.user_credentials(&email).await?;
    let known_device = found.as_ref().is_some_and(|(user, _)| {
        client
            .device_cookie
            .as_deref()
            .is_some_and(|c| device::verify(&app.master_key, c, user.id, now().timestamp()))
    });
    if !known_device && let Some(secs) = throttle::blocked_for(&app.store, &account_key).await? {
        return Err(AppError::TooManyRequests {
            retry_after_secs: secs,
        });
    }
    let verified = match &found {
        Some((_, hash)) => password::verify(password_raw, hash).await,
        None => {
            password::verify_dummy(password_raw).await;
            false
        }
    };
    let Some((user, _)) = found.filter(|_| verified) else {
        throttle::record_failure(&app.store, &pair_key, throttle::PER_PAIR).await?;
        throttle::record_failure(&app.store, &ip_key, throttle::PER_IP).await?;
        throttle::record_failure(&app.store, &account_key, throttle::PER_ACCOUNT).await?;
        tracing::info!(ip = %client.ip, "sign-in failed");
        metrics::counter!("sluice_sign_ins_total", "outcome" => "failed").increment(1);
        return Err(invalid());
    };
    app.store.clear_throttle(&pair_key).await?;
    metrics::counter!("sluice_sign_ins_total", "outcome" => "succeeded").increment(1);
    let tenant = app
        .store
        .memberships_of(user.id)
        .await?
        .first()
        .map(|m| m.tenant_id);
    let signed_in = start_session(app, user, tenant, client).await?;
    if let Some(tenant) = tenant {
        let ctx = TenantCtx::new(
            tenant,
            app.store
                .role_in(signed_in.user.id, tenant)
                .await?
                .unwrap_or(crate::domain::Role::Viewer),
            Actor::User(signed_in.user.id),
        );
        app.audit(
            &ctx,
            &actor_of(&signed_in.user, client),
            "user.signed_in",
            None,
            None,
        )
        .await?;
    }
    Ok(signed_in)
}

/// The audit label for a person.
pub fn actor_of(user: &UserRecord, client: &ClientInfo) -> AuditActor {
    AuditActor {
        label: format!("{} <{}>", user.name, user.email),
        ip: Some(client.ip.clone()),
    }
}

/// Opens a session with a fresh id (never reusing one from before sign-in).
pub async fn start_session(
    app: &App,
    user: UserRecord,
    tenant: Option<TenantId>,
    client: &ClientInfo,
) -> AppResult<SignedIn> {
    let token = tokens::random_secret();
    let absolute = Duration::from_std(app.settings.session_absolute)
        .map_err(|e| AppError::Internal(e.into()))?;
    app.store
        .create_session(
            &tokens::digest(&token),
            user.id,
            tenant,
            now() + absolute,
            Some(client.ip.clone()),
            client
                .user_agent
                .clone()
                .map(|ua| ua.chars().take(300).collect()),
        )
        .await?;
    let device_cookie = device::issue(
        &app.master_key,
        user.id,
        (now() + Duration::days(device::LIFETIME_DAYS)).timestamp(),
    );
    Ok(SignedIn {
        session_token: token,
        device_cookie,
        user,
    })
}

/// The user behind a session cookie, if the session is still valid (absolute and idle
/// limits, and not older than the user's last password change).
pub async fn authenticate_session(
    app: &App,
    token: &str,
) -> AppResult<Option<(UserRecord, sessions::Model)>> {
    let digest = tokens::digest(token);
    let Some(session) = app.store.session(&digest).await? else {
        return Ok(None);
    };
    let at = now();
    let idle =
        Duration::from_std(app.settings.session_idle).map_err(|e| AppError::Internal(e.into()))?;
    if session.expires_at <= at || session.last_seen_at + idle <= at {
        app.store.delete_session(&digest).await?;
        return Ok(None);
    }
    let Some(user) = app.store.user(session.user_id).await? else {
        return Ok(None);
    };
    if session.created_at < user.password_changed_at {
        app.store.delete_session(&digest).await?;
        return Ok(None);
    }
    // Writing on every request would serialise page loads on SQLite; a minute is plenty
    // for an idle timeout measured in hours.
    if at - session.last_seen_at > Duration::seconds(60) {
        app.store.touch_session(&digest).await?;
    }
    Ok(Some((user, session)))
}

/// Ends a session.
pub async fn sign_out(app: &App, token: &str) -> AppResult<()> {
    app.store.delete_session(&tokens::digest(token)).await?;
    Ok(())
}

/// Changes a password after checking the current one. Ends every session of the user,
/// this one included, and returns a fresh session for the browser that made the change.
pub async fn change_password(
    app: &App,
    user: &UserRecord,
    current: &str,
    new: &str,
    confirm: &str,
    client: &ClientInfo,
) -> AppResult<SignedIn> {
    let hash = app.store.password_hash(user.id).await?.unwrap_or_default();
    if !password::verify(current, &hash).await {
        return Err(AppError::invalid(
            "current_password",
            "The current password is not correct.",
        ));
    }
    let new = NewPassword::parse(new, confirm, Some(&user.email))
        .map_err(|m| AppError::invalid("new_password", m))?;
    let new_hash = password::hash(new.expose()).await?;
    app.store.set_password_hash(user.id, &new_hash).await?;
    app.store.delete_user_sessions(user.id, None).await?;
    let tenant = app
        .store
        .memberships_of(user.id)
        .await?
        .first()
        .map(|m| m.tenant_id);
    start_session(app, user.clone(), tenant, client).await
}

/// Creates a user from the command line.
pub async fn create_user(
    app: &App,
    email: &str,
    name: &str,
    password_raw: &str,
) -> AppResult<UserRecord> {
    let mut errors = FieldErrors::new();
    let email = errors.check("email", Email::parse(email));
    let name = errors.check("name", text::parse_display_name(name, "name", 100));
    let password = errors.check(
        "password",
        NewPassword::parse(password_raw, password_raw, None),
    );
    let (email, name, password) = errors.into_result(|| Some((email?, name?, password?)))?;
    let hash = password::hash(password.expose()).await?;
    app.store
        .create_user(&email, &name, &hash)
        .await?
        .ok_or_else(|| AppError::Conflict(format!("a user with e-mail {email} already exists")))
}
