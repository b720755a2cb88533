//! Extractors: who is calling, and in which tenant. The only places (with job loaders)
//! that build a `TenantCtx`.

use super::flash::Flash;
use super::middleware::{CsrfToken, IncomingFlashes};
use crate::app::{App, AuditActor};
use crate::domain::{Actor, Role, TenantCtx};
use crate::error::{ApiError, AppError};
use crate::services::accounts::{self, ClientInfo};
use crate::services::api_tokens;
use crate::services::records;
use crate::services::records::{TenantMembership, UserRecord};
use actix_web::dev::Payload;
use actix_web::{FromRequest, HttpMessage, HttpRequest, web};
use std::future::Future;
use std::pin::Pin;

/// The session cookie name: `__Host-` prefixed (bound to this exact origin) over HTTPS.
pub fn session_cookie_name(app: &App) -> &'static str {
    if app.settings.is_https() {
        "__Host-sluice_session"
    } else {
        "sluice_session"
    }
}

fn app_of(req: &HttpRequest) -> Result<web::Data<App>, AppError> {
    req.app_data::<web::Data<App>>()
        .cloned()
        .ok_or_else(|| AppError::Internal(anyhow::anyhow!("application state missing")))
}

/// Client facts for sessions, throttling and the audit log.
pub fn client_info(req: &HttpRequest) -> ClientInfo {
    ClientInfo {
        // The peer address: forwarded headers are only trustworthy behind a known proxy.
        ip: req
            .peer_addr()
            .map(|a| a.ip().to_string())
            .unwrap_or_else(|| "unknown".into()),
        user_agent: req
            .headers()
            .get(actix_web::http::header::USER_AGENT)
            .and_then(|v| v.to_str().ok())
            .map(str::to_owned),
        device_cookie: req
            .cookie(crate::auth::device::COOKIE)
            .map(|c| c.value().to_owned()),
    }
}

/// The CSRF token for forms on this page.
pub fn csrf_token(req: &HttpRequest) -> String {
    req.extensions()
        .get::<CsrfToken>()
        .map(|t| t.0.clone())
        .unwrap_or_default()
}

/// Flash messages to show on this page.
pub fn flashes(req: &HttpRequest) -> Vec<Flash> {
    req.extensions()
        .get::<IncomingFlashes>()
        .map(|f| f.0.clone())
        .unwrap_or_default()
}

/// A signed-in user (any tenant or none).
pub struct SignedInUser {
    /// The user.
    pub user: UserRecord,
    /// Their session.
    pub session: records::Session,
    /// Client facts.
    pub client: ClientInfo,
}

impl SignedInUser {
    /// How this user appears in audit logs.
    pub fn actor(&self) -> AuditActor {
        accounts::actor_of(&self.user, &self.client)
    }
}

async fn signed_in(req: HttpRequest) -> Result<Option<SignedInUser>, AppError> {
    let app = app_of(&req)?;
    let Some(cookie) = req.cookie(session_cookie_name(&app)) else {
        return Ok(None);
    };
    Ok(accounts::authenticate_session(&app, cookie.value())
        .await?
        .map(|(user, session)| SignedInUser {
            user,
            session,
            client: client_info(&req),
        }))
}

/// `Option<SignedInUser>` for pages that work both ways (login, invitations).
pub struct MaybeUser(pub Option<SignedInUser>);

impl FromRequest for MaybeUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { Ok(MaybeUser(signed_in(req).await?)) })
    }
}

impl FromRequest for SignedInUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move { signed_in(req).await?.ok_or(AppError::Unauthenticated) })
    }
}

/// A signed-in member acting in their current tenant: the page-side `TenantCtx`.
pub struct Member {
    /// The person.
    pub who: SignedInUser,
    /// The authorised tenant scope.
    pub ctx: TenantCtx,
    /// All their workspaces (for the switcher).
    pub workspaces: Vec<TenantMembership>,
    /// CSRF token for forms.
    pub csrf: String,
    /// Flashes to show.
    pub flashes: Vec<Flash>,
}

impl Member {
    fn workspace(&self) -> Option<&TenantMembership> {
        self.workspaces
            .iter()
            .find(|w| w.tenant_id == self.ctx.tenant_id())
    }

    /// The current workspace's display name.
    pub fn tenant_name(&self) -> String {
        self.workspace()
            .map(|w| w.tenant_name.clone())
            .unwrap_or_default()
    }

    /// The current workspace's time zone, in which its pages show times.
    pub fn time_zone(&self) -> crate::domain::TimeZone {
        self.workspace()
            .map_or(crate::domain::TimeZone::UTC, |w| w.time_zone)
    }

    /// How this member appears in audit logs.
    pub fn actor(&self) -> AuditActor {
        self.who.actor()
    }
}

/// The signed-in user and the workspaces they belong to.
async fn with_workspaces(
    req: &HttpRequest,
) -> Result<(SignedInUser, Vec<TenantMembership>), AppError> {
    let app = app_of(req)?;
    let who = signed_in(req.clone())
        .await?
        .ok_or(AppError::Unauthenticated)?;
    let workspaces = crate::services::tenants::memberships_of(&app, who.user.id).await?;
    Ok((who, workspaces))
}

/// The workspace a user acts in: the one their session chose, else their first.
pub fn current_workspace<'a>(
    who: &SignedInUser,
    workspaces: &'a [TenantMembership],
) -> Option<&'a TenantMembership> {
    workspaces
        .iter()
        .find(|w| Some(w.tenant_id) == who.session.tenant_id)
        .or_else(|| workspaces.first())
}

impl FromRequest for Member {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (who, workspaces) = with_workspaces(&req).await?;
            let chosen = current_workspace(&who, &workspaces).ok_or(AppError::NoWorkspace)?;
            let ctx = TenantCtx::new(chosen.tenant_id, chosen.role, Actor::User(who.user.id));
            Ok(Member {
                csrf: csrf_token(&req),
                flashes: flashes(&req),
                who,
                ctx,
                workspaces,
            })
        })
    }
}

/// A signed-in member of the platform's support staff, in a workspace or in none: the
/// support console reads across tenants and needs no workspace of its own.
pub struct SupportUser {
    /// The person.
    pub who: SignedInUser,
    /// Their own workspaces, if any (for the switcher).
    pub workspaces: Vec<TenantMembership>,
    /// CSRF token for forms.
    pub csrf: String,
    /// Flashes to show.
    pub flashes: Vec<Flash>,
}

impl SupportUser {
    /// How this person appears in audit logs.
    pub fn actor(&self) -> AuditActor {
        self.who.actor()
    }
}

impl FromRequest for SupportUser {
    type Error = AppError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let (who, workspaces) = with_workspaces(&req).await?;
            if !who.user.is_support {
                return Err(AppError::Forbidden);
            }
            Ok(SupportUser {
                csrf: csrf_token(&req),
                flashes: flashes(&req),
                who,
                workspaces,
            })
        })
    }
}

/// A JSON API client authenticated by a bearer API token: the API-side `TenantCtx`.
pub struct ApiClient {
    /// The authorised tenant scope.
    pub ctx: TenantCtx,
}

impl ApiClient {
    /// The token's role.
    pub fn role(&self) -> Role {
        self.ctx.role()
    }
}

impl FromRequest for ApiClient {
    type Error = ApiError;
    type Future = Pin<Box<dyn Future<Output = Result<Self, Self::Error>>>>;
    fn from_request(req: &HttpRequest, _: &mut Payload) -> Self::Future {
        let req = req.clone();
        Box::pin(async move {
            let app = app_of(&req)?;
            let bearer = req
                .headers()
                .get(actix_web::http::header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(str::trim)
                .ok_or(AppError::Unauthenticated)?;
            let ctx = api_tokens::authenticate(&app, bearer).await?;
            Ok(ApiClient { ctx })
        })
    }
}
