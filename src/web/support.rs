//! The support console (platform `support` role): cross-tenant search of failed runs,
//! the run inspector with payloads hidden until a reason is given, and replay.

use super::auth::render;
use super::extract::SupportUser;
use super::filters::{parse_time, present, query_string};
use super::flash::{self, Flash};
use super::flows::RunView;
use super::runs::{LogLine, lines};
use super::shell::Shell;
use crate::app::App;
use crate::domain::text::Grouped;
use crate::domain::{ErrorClass, RunId, TimeZone};
use crate::error::{AppError, AppResult};
use crate::services::records;
use crate::services::records::FailureFilter;
use crate::services::runs::Inspection;
use crate::services::support::{self, FailedRun, Staff};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

fn staff(member: &SupportUser) -> AppResult<Staff> {
    Staff::admit(&member.who.user, member.actor())
}

/// Search filters, as in the query string.
#[derive(Deserialize, Default)]
pub struct SearchQuery {
    tenant: Option<String>,
    flow: Option<String>,
    provider: Option<String>,
    class: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

#[derive(Template)]
#[template(path = "support/index.html")]
struct SearchPage {
    shell: Shell,
    q: SearchQuery,
    classes: &'static [ErrorClass],
    rows: Vec<FailedRun>,
    problems: Vec<String>,
    next: Option<RunId>,
    query: String,
    /// Support works across workspaces' zones, so its pages show UTC.
    tz: TimeZone,
}

/// GET /support — failed runs across tenants.
pub async fn index(
    app: web::Data<App>,
    member: SupportUser,
    q: web::Query<SearchQuery>,
) -> AppResult<HttpResponse> {
    let staff = staff(&member)?;
    let q = q.into_inner();
    let mut problems = Vec::new();
    let mut filter = FailureFilter::default();
    if let Some(t) = present(&q.tenant) {
        match crate::services::tenants::by_slug(&app, t).await? {
            Some(id) => filter.tenant = Some(id),
            None => problems.push(format!("No workspace with the address '{t}'.")),
        }
    }
    if let Some(f) = present(&q.flow) {
        match f.parse() {
            Ok(id) => filter.flow = Some(id),
            Err(_) => problems.push("The flow id is not valid.".into()),
        }
    }
    filter.provider = present(&q.provider).map(str::to_owned);
    if let Some(c) = present(&q.class) {
        match c.parse() {
            Ok(class) => filter.class = Some(class),
            Err(_) => problems.push(format!("Unknown error class '{c}'.")),
        }
    }
    for (raw, slot) in [(&q.from, &mut filter.from), (&q.to, &mut filter.to)] {
        if let Some(v) = present(raw) {
            match parse_time(v, TimeZone::UTC) {
                Some(t) => *slot = Some(t),
                None => problems.push(format!("'{v}' is not a date like 2026-11-22.")),
            }
        }
    }
    let (rows, next) = if problems.is_empty() {
        let before = present(&q.before).and_then(|b| b.parse().ok());
        support::search(&app, &staff, &filter, before).await?
    } else {
        (Vec::new(), None)
    };
    let query = query_string(&[
        ("tenant", &q.tenant),
        ("flow", &q.flow),
        ("provider", &q.provider),
        ("class", &q.class),
        ("from", &q.from),
        ("to", &q.to),
    ]);
    render(
        &SearchPage {
            shell: member.shell("support"),
            q,
            classes: ErrorClass::ALL,
            rows,
            problems,
            next,
            query,
            tz: TimeZone::UTC,
        },
        StatusCode::OK,
    )
}

#[derive(Template)]
#[template(path = "support/run.html")]
struct RunPage {
    shell: Shell,
    tenant: String,
    r: RunView,
    flow: records::Flow,
    log: Vec<LogLine>,
    inspection: Inspection,
    payloads_visible: bool,
    run_link_prefix: &'static str,
    reason_error: Option<String>,
    /// UTC, as on the search page.
    tz: TimeZone,
}

async fn run_page(
    app: &App,
    member: &SupportUser,
    id: RunId,
    reason: Option<&str>,
) -> AppResult<(RunPage, StatusCode)> {
    let staff = staff(member)?;
    let (view, reason_error) = match support::inspect(app, &staff, id, reason).await {
        Ok(view) => (view, None),
        Err(AppError::Invalid(errors)) => (
            support::inspect(app, &staff, id, None).await?,
            Some(errors.summary()),
        ),
        Err(e) => return Err(e),
    };
    let status = if reason_error.is_some() {
        StatusCode::UNPROCESSABLE_ENTITY
    } else {
        StatusCode::OK
    };
    Ok((
        RunPage {
            shell: member.shell("support"),
            tenant: view.tenant,
            r: RunView::new(view.inspection.run.clone()),
            flow: view.inspection.flow.clone(),
            log: lines(view.log),
            payloads_visible: view.revealed,
            inspection: view.inspection,
            run_link_prefix: "/support/runs/",
            reason_error,
            tz: TimeZone::UTC,
        },
        status,
    ))
}

/// GET /support/runs/{id}
pub async fn show(
    app: web::Data<App>,
    member: SupportUser,
    id: web::Path<RunId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (page, status) = run_page(&app, &member, id, None).await?;
    render(&page, status)
}

/// The reveal form.
#[derive(Deserialize)]
pub struct RevealForm {
    #[serde(default)]
    reason: String,
}

/// POST /support/runs/{id}/reveal — shows payloads in this response only.
pub async fn reveal(
    app: web::Data<App>,
    member: SupportUser,
    id: web::Path<RunId>,
    form: web::Form<RevealForm>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (page, status) = run_page(&app, &member, id, Some(&form.reason)).await?;
    render(&page, status)
}

/// POST /support/runs/{id}/replay
pub async fn replay(
    app: web::Data<App>,
    member: SupportUser,
    id: web::Path<RunId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let staff = staff(&member)?;
    let new_run = support::replay(&app, &staff, id).await?;
    Ok(flash::redirect(
        &format!("/support/runs/{new_run}"),
        Flash::success("Replay started. The customer's audit log records it."),
    ))
}
