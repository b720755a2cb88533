//! The run page: live progress (a polled fragment), counts, the step log, cancel.

use super::auth::render;
use super::extract::Member;
use super::flash::{self, Flash};
use super::flows::RunView;
use super::shell::Shell;
use crate::domain::RunId;
use crate::error::{AppError, AppResult};
use crate::services::App;
use crate::services::flows;
use crate::store::entities::{flows as flow_rows, run_events};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

/// Log lines shown on the run page.
const LOG_LINES: u64 = 500;

fn run_id(raw: &str) -> AppResult<RunId> {
    raw.parse().map_err(|_| AppError::NotFound)
}

/// One step of the log, with its HTTP exchanges.
pub struct LogLine {
    event: run_events::Model,
    exchanges: Vec<String>,
}

fn lines(events: Vec<run_events::Model>) -> Vec<LogLine> {
    events
        .into_iter()
        .map(|event| {
            let exchanges = event
                .detail
                .as_deref()
                .and_then(|d| serde_json::from_str::<serde_json::Value>(d).ok())
                .and_then(|d| d.get("exchanges").and_then(|e| e.as_array()).cloned())
                .unwrap_or_default()
                .iter()
                .map(|x| {
                    format!(
                        "{} {} → {} in {} ms ({} records)",
                        x["method"].as_str().unwrap_or_default(),
                        x["path"].as_str().unwrap_or_default(),
                        x["status"],
                        x["ms"],
                        x["records"]
                    )
                })
                .collect();
            LogLine { event, exchanges }
        })
        .collect()
}

#[derive(Template)]
#[template(path = "runs/show.html")]
struct ShowPage {
    shell: Shell,
    r: RunView,
    flow: flow_rows::Model,
    log: Vec<LogLine>,
    csrf: String,
    can_write: bool,
}

#[derive(Template)]
#[template(path = "runs/progress.html")]
struct ProgressFragment {
    r: RunView,
    log: Vec<LogLine>,
    csrf: String,
    can_write: bool,
}

async fn load(
    app: &App,
    member: &Member,
    id: RunId,
) -> AppResult<(RunView, flow_rows::Model, Vec<LogLine>)> {
    let run = app
        .store
        .run(&member.ctx, id)
        .await?
        .ok_or(AppError::NotFound)?;
    let flow = app
        .store
        .flow(&member.ctx, crate::domain::FlowId::from_uuid(run.flow_id))
        .await?
        .ok_or(AppError::NotFound)?;
    let log = lines(app.store.run_events(&member.ctx, id, LOG_LINES).await?);
    Ok((RunView::new(run), flow, log))
}

/// GET /runs/{id}
pub async fn show(
    app: web::Data<App>,
    member: Member,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = run_id(&id)?;
    let (r, flow, log) = load(&app, &member, id).await?;
    let shell = member.shell("flows");
    render(
        &ShowPage {
            csrf: shell.csrf.clone(),
            can_write: shell.can_write,
            shell,
            r,
            flow,
            log,
        },
        StatusCode::OK,
    )
}

/// GET /runs/{id}/progress — the live part of the run page; tells the poller to stop
/// once the run has ended.
pub async fn progress(
    app: web::Data<App>,
    member: Member,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = run_id(&id)?;
    let (r, _, log) = load(&app, &member, id).await?;
    let finished = r.status.is_finished();
    let html = ProgressFragment {
        r,
        log,
        csrf: member.csrf.clone(),
        can_write: member.ctx.role().can_write(),
    }
    .render()
    .map_err(|e| AppError::Internal(e.into()))?;
    let mut response = HttpResponse::Ok();
    response.content_type("text/html; charset=utf-8");
    if finished {
        response.insert_header(("X-Poll-Stop", "1"));
    }
    Ok(response.body(html))
}

/// POST /runs/{id}/cancel
pub async fn cancel(
    app: web::Data<App>,
    member: Member,
    id: web::Path<String>,
) -> AppResult<HttpResponse> {
    let id = run_id(&id)?;
    let flash = match flows::cancel(&app, &member.ctx, &member.actor(), id).await {
        Ok(()) => Flash::success("Cancelling: the run stops after the page it is working on."),
        Err(AppError::Conflict(m)) => Flash::error(m),
        Err(e) => return Err(e),
    };
    Ok(flash::redirect(&format!("/runs/{id}"), flash))
}
