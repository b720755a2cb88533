//! Workspaces: create, switch, settings, audit log.

use super::auth::render;
use super::extract::{Member, SignedInUser, csrf_token, flashes};
use super::filters::{parse_time, present, query_string};
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::domain::{AuditEventId, FieldErrors, TenantId};
use crate::error::{AppError, AppResult};
use crate::services::branding;
use crate::services::records;
use crate::services::records::AuditFilter;
use crate::services::tenants;
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "tenants/new.html")]
struct NewWorkspacePage {
    csrf: String,
    flashes: Vec<crate::web::flash::Flash>,
    name: String,
    errors: FieldErrors,
    has_workspaces: bool,
    /// Holds the platform support role: the console is open to them without a workspace.
    is_support: bool,
}

#[derive(Template)]
#[template(path = "tenants/settings.html")]
struct SettingsPage {
    shell: Shell,
    name: String,
    slug: String,
    time_zone: String,
    time_zones: &'static [&'static str],
    errors: FieldErrors,
    /// The logo as a `data:` URL.
    logo: Option<String>,
}

#[derive(Template)]
#[template(path = "tenants/audit.html")]
struct AuditPage {
    shell: Shell,
    events: Vec<AuditRow>,
    q: AuditLogQuery,
    categories: &'static [(&'static str, &'static str)],
    next: Option<AuditEventId>,
    query: String,
}

/// An audit event as people read it: the target by name (with a link where it has a
/// page), the detail as `key: value` pairs rather than JSON.
pub struct AuditRow {
    event: records::AuditEvent,
    target: Option<String>,
    href: Option<String>,
    detail: String,
}

impl AuditRow {
    fn new(event: records::AuditEvent, names: &std::collections::HashMap<String, String>) -> Self {
        let action = event.action.as_str();
        let page = if action.starts_with("flow.") || action.starts_with("dead_letters.") {
            Some(("/flows/", "flow"))
        } else if action.starts_with("connection.") {
            Some(("/connections/", "connection"))
        } else if action.starts_with("run.") || action == "support.replayed_run" {
            Some(("/runs/", "run"))
        } else if action.starts_with("alert.") {
            Some(("/alerts/", "alert"))
        } else {
            None
        };
        let (target, href) = match (&event.target, page) {
            (Some(t), Some((prefix, what))) if uuid::Uuid::parse_str(t).is_ok() => {
                let short: String = t
                    .chars()
                    .rev()
                    .take(8)
                    .collect::<Vec<_>>()
                    .into_iter()
                    .rev()
                    .collect();
                let label = names
                    .get(t)
                    .cloned()
                    .unwrap_or_else(|| format!("{what} …{short}"));
                // Deleted things have no page left.
                let href = (action != "flow.deleted").then(|| format!("{prefix}{t}"));
                (Some(label), href)
            }
            (t, _) => (t.clone(), None),
        };
        let detail = match event
            .detail
            .as_deref()
            .map(serde_json::from_str::<serde_json::Value>)
        {
            Some(Ok(serde_json::Value::Object(fields))) => fields
                .iter()
                .map(|(k, v)| match v {
                    serde_json::Value::String(s) => format!("{}: {s}", k.replace('_', " ")),
                    other => format!("{}: {other}", k.replace('_', " ")),
                })
                .collect::<Vec<_>>()
                .join(" · "),
            _ => event.detail.clone().unwrap_or_default(),
        };
        AuditRow {
            event,
            target,
            href,
            detail,
        }
    }
}

/// Filters of the audit log page.
#[derive(Deserialize, Default)]
pub struct AuditLogQuery {
    action: Option<String>,
    actor: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

/// Audit action families, for the filter.
const AUDIT_CATEGORIES: &[(&str, &str)] = &[
    ("user.", "Sign-ins"),
    ("member.", "Members and roles"),
    ("connection", "Connections and links"),
    ("flow.", "Flows"),
    ("run.", "Runs"),
    ("dead_letters.", "Dead letters"),
    ("alert", "Alerts and rules"),
    ("channel.", "Notification channels"),
    ("support.", "Support access"),
    ("api_token.", "API tokens"),
    ("workspace.", "Workspace"),
];

const AUDIT_PAGE: u64 = 100;

/// GET /workspaces/new
pub async fn new_form(
    req: HttpRequest,
    app: web::Data<App>,
    user: SignedInUser,
) -> AppResult<HttpResponse> {
    let has_workspaces = !tenants::memberships_of(&app, user.user.id)
        .await?
        .is_empty();
    render(
        &NewWorkspacePage {
            csrf: csrf_token(&req),
            flashes: flashes(&req),
            name: String::new(),
            errors: FieldErrors::new(),
            has_workspaces,
            is_support: user.user.is_support,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct NameForm {
    name: String,
}

/// POST /workspaces
pub async fn create(
    req: HttpRequest,
    app: web::Data<App>,
    user: SignedInUser,
    form: web::Form<NameForm>,
) -> AppResult<HttpResponse> {
    match tenants::create(&app, &user.user, &form.name).await {
        Ok(id) => {
            tenants::switch(&app, user.user.id, &user.session.id, id).await?;
            Ok(flash::redirect(
                "/dashboard",
                Flash::success(format!("Workspace “{}” created.", form.name.trim())),
            ))
        }
        Err(AppError::Invalid(errors)) => {
            let has_workspaces = !tenants::memberships_of(&app, user.user.id)
                .await?
                .is_empty();
            render(
                &NewWorkspacePage {
                    csrf: csrf_token(&req),
                    flashes: Vec::new(),
                    name: form.name.clone(),
                    errors,
                    has_workspaces,
                    is_support: user.user.is_support,
                },
                StatusCode::UNPROCESSABLE_ENTITY,
            )
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub struct SwitchForm {
    tenant_id: String,
}

/// POST /workspaces/switch
pub async fn switch(
    app: web::Data<App>,
    user: SignedInUser,
    form: web::Form<SwitchForm>,
) -> AppResult<HttpResponse> {
    let tenant: TenantId = form.tenant_id.parse().map_err(|_| AppError::NotFound)?;
    tenants::switch(&app, user.user.id, &user.session.id, tenant).await?;
    Ok(flash::see_other("/dashboard"))
}

/// The settings page with these values in the form.
async fn settings_page(
    app: &App,
    member: &Member,
    values: Option<(String, String)>,
    errors: FieldErrors,
) -> AppResult<SettingsPage> {
    let tenant = tenants::get(app, &member.ctx).await?;
    let (name, time_zone) = values.unwrap_or((tenant.name, tenant.time_zone.to_string()));
    Ok(SettingsPage {
        shell: member.shell("tenant"),
        name,
        slug: tenant.slug,
        time_zone,
        time_zones: tenants::TIME_ZONES,
        errors,
        logo: branding::brand(app, &member.ctx).await?.logo,
    })
}

/// GET /settings/workspace
pub async fn settings_form(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    let page = settings_page(&app, &member, None, FieldErrors::new()).await?;
    render(&page, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct SettingsForm {
    name: String,
    time_zone: String,
}

/// POST /settings/workspace
pub async fn settings_submit(
    app: web::Data<App>,
    member: Member,
    form: web::Form<SettingsForm>,
) -> AppResult<HttpResponse> {
    match tenants::update_settings(
        &app,
        &member.ctx,
        &member.actor(),
        &form.name,
        &form.time_zone,
    )
    .await
    {
        Ok(()) => Ok(flash::redirect(
            "/settings/workspace",
            Flash::success("Workspace settings saved."),
        )),
        Err(AppError::Invalid(errors)) => {
            let values = Some((form.name.clone(), form.time_zone.clone()));
            let page = settings_page(&app, &member, values, errors).await?;
            render(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

#[derive(Deserialize)]
pub struct LogoForm {
    #[serde(default)]
    logo: String,
}

/// POST /settings/workspace/logo — the image as a `data:` URL read by the page's script.
pub async fn logo_submit(
    app: web::Data<App>,
    member: Member,
    form: web::Form<LogoForm>,
) -> AppResult<HttpResponse> {
    match branding::set_logo(&app, &member.ctx, &member.actor(), &form.logo).await {
        Ok(()) => Ok(flash::redirect(
            "/settings/workspace#logo",
            Flash::success("Logo saved: connect-link pages show it now."),
        )),
        Err(AppError::Invalid(errors)) => {
            let page = settings_page(&app, &member, None, errors).await?;
            render(&page, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

/// POST /settings/workspace/logo/remove
pub async fn logo_remove(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    branding::remove_logo(&app, &member.ctx, &member.actor()).await?;
    Ok(flash::redirect(
        "/settings/workspace#logo",
        Flash::success("Logo removed: connect-link pages show the workspace name."),
    ))
}

/// GET /settings/audit
pub async fn audit_log(
    app: web::Data<App>,
    member: Member,
    q: web::Query<AuditLogQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let owned = |v: &Option<String>| present(v).map(str::to_owned);
    let tz = member.time_zone();
    let date = |v: &Option<String>| present(v).and_then(|v| parse_time(v, tz));
    let filter = AuditFilter {
        action_prefix: owned(&q.action),
        actor: owned(&q.actor),
        from: date(&q.from),
        to: date(&q.to),
    };
    let before = present(&q.before).and_then(|b| b.parse().ok());
    let mut events = tenants::audit_log(&app, &member.ctx, &filter, before, AUDIT_PAGE + 1).await?;
    let next = if events.len() as u64 > AUDIT_PAGE {
        events.truncate(AUDIT_PAGE as usize);
        events.last().map(|e| e.id)
    } else {
        None
    };
    let query = query_string(&[
        ("action", &q.action),
        ("actor", &q.actor),
        ("from", &q.from),
        ("to", &q.to),
    ]);
    // Targets by name: the workspace's flows and connections (few; one query each).
    let mut names = std::collections::HashMap::new();
    for f in crate::services::flows::list(&app, &member.ctx).await? {
        names.insert(f.id.to_string(), f.name);
    }
    for c in crate::services::connections::list(&app, &member.ctx).await? {
        names.insert(c.id.to_string(), c.name);
    }
    let events = events
        .into_iter()
        .map(|e| AuditRow::new(e, &names))
        .collect();
    render(
        &AuditPage {
            shell: member.shell("audit"),
            events,
            q,
            categories: AUDIT_CATEGORIES,
            next,
            query,
        },
        StatusCode::OK,
    )
}
