//! Run history (filters, keyset pages, CSV export) and the run inspector: live progress (a
//! polled fragment), counts, the step log with redacted exchanges, record failures, and
//! a comparison with the last successful run.

use super::auth::render;
use super::extract::Member;
use super::filters::{parse_time, present, query_string};
use super::flash::{self, Flash};
use super::flows::RunView;
use super::shell::Shell;
use crate::app::App;
use crate::domain::text::Grouped;
use crate::domain::{FlowId, RunId, TimeZone};
use crate::error::{AppError, AppResult};
use crate::services::flows;
use crate::services::records;
use crate::services::records::RunFilter;
use crate::services::runs::{self as runs_service, Inspection};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;
use std::collections::HashMap;

/// Log lines shown on the run page.
const LOG_LINES: u64 = 500;

/// One step of the log, with its HTTP exchanges.
pub struct LogLine {
    pub(super) event: records::RunEvent,
    pub(super) exchanges: Vec<String>,
}

/// How many lines of a log are warnings and errors, for its summary.
pub fn levels(log: &[LogLine]) -> (usize, usize) {
    let count = |level: &str| log.iter().filter(|l| l.event.level == level).count();
    (count("warn"), count("error"))
}

/// Log events prepared for display, exchanges spelled out.
pub(super) fn lines(events: Vec<records::RunEvent>) -> Vec<LogLine> {
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
    /// Why an unfinished run is not moving (a retry's wait).
    waiting: Option<String>,
    flow: records::Flow,
    log: Vec<LogLine>,
    csrf: String,
    can_write: bool,
    inspection: Inspection,
    /// Members see masked payloads; support staff see only their shape until they reveal.
    payloads_visible: bool,
    run_link_prefix: &'static str,
    /// The zone times are shown in (shared with the included progress and log).
    tz: TimeZone,
}

/// Runs per history page.
const HISTORY_PAGE: u64 = 50;

/// Filters of the history page, as in the query string.
#[derive(Deserialize, Default, Clone)]
pub struct HistoryQuery {
    flow: Option<String>,
    status: Option<String>,
    trigger: Option<String>,
    from: Option<String>,
    to: Option<String>,
    before: Option<String>,
}

impl HistoryQuery {
    /// The filter, and a message for each part that could not be read (it is ignored).
    fn filter(&self, tz: TimeZone) -> (RunFilter, Vec<String>) {
        let mut problems = Vec::new();
        let mut f = RunFilter::default();
        if let Some(v) = present(&self.flow) {
            match v.parse() {
                Ok(id) => f.flow = Some(id),
                Err(_) => problems.push("Unknown flow; showing all flows.".into()),
            }
        }
        if let Some(v) = present(&self.status) {
            match v.parse() {
                Ok(s) => f.status = Some(s),
                Err(_) => problems.push(format!("Unknown status '{v}'.")),
            }
        }
        if let Some(v) = present(&self.trigger) {
            match v.parse() {
                Ok(t) => f.trigger = Some(t),
                Err(_) => problems.push(format!("Unknown trigger '{v}'.")),
            }
        }
        for (raw, slot, what) in [
            (&self.from, &mut f.from, "From"),
            (&self.to, &mut f.to, "To"),
        ] {
            if let Some(v) = present(raw) {
                match parse_time(v, tz) {
                    Some(t) => *slot = Some(t),
                    None => problems.push(format!("{what}: enter a date like 2026-11-22.")),
                }
            }
        }
        if let (Some(a), Some(b)) = (f.from, f.to)
            && a >= b
        {
            problems.push("From must be before To.".into());
        }
        (f, problems)
    }

    /// The query string of these filters (without the page cursor).
    fn query_string(&self) -> String {
        query_string(&[
            ("flow", &self.flow),
            ("status", &self.status),
            ("trigger", &self.trigger),
            ("from", &self.from),
            ("to", &self.to),
        ])
    }
}

#[derive(Template)]
#[template(path = "runs/index.html")]
struct HistoryPageView {
    shell: Shell,
    q: HistoryQuery,
    query: String,
    problems: Vec<String>,
    runs: Vec<RunView>,
    names: HashMap<FlowId, String>,
    flows: Vec<(String, String)>,
    next: Option<RunId>,
    first_page: bool,
}

impl HistoryPageView {
    fn flow_name(&self, id: &FlowId) -> &str {
        self.names.get(id).map_or("(deleted flow)", String::as_str)
    }
}

/// GET /runs — the tenant's run history.
pub async fn history(
    app: web::Data<App>,
    member: Member,
    q: web::Query<HistoryQuery>,
) -> AppResult<HttpResponse> {
    let q = q.into_inner();
    let (filter, problems) = q.filter(member.time_zone());
    let before = present(&q.before).and_then(|b| b.parse().ok());
    let page = runs_service::history(&app, &member.ctx, &filter, before, HISTORY_PAGE).await?;
    let names = runs_service::flow_names(&app, &member.ctx).await?;
    let mut flows: Vec<(String, String)> = names
        .iter()
        .map(|(id, n)| (id.to_string(), n.clone()))
        .collect();
    flows.sort_by_key(|f| f.1.to_lowercase());
    render(
        &HistoryPageView {
            shell: member.shell("runs"),
            query: q.query_string(),
            first_page: before.is_none(),
            q,
            problems,
            runs: page.runs.into_iter().map(RunView::new).collect(),
            names,
            flows,
            next: page.next,
        },
        StatusCode::OK,
    )
}

/// GET /runs.csv — the filtered history as CSV.
pub async fn export(
    app: web::Data<App>,
    member: Member,
    q: web::Query<HistoryQuery>,
) -> AppResult<HttpResponse> {
    let (filter, problems) = q.filter(member.time_zone());
    if let Some(p) = problems.into_iter().next() {
        return Err(AppError::invalid("filter", p));
    }
    let csv = runs_service::history_csv(&app, &member.ctx, &filter, member.time_zone()).await?;
    Ok(HttpResponse::Ok()
        .content_type("text/csv; charset=utf-8")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"runs-{}.csv\"",
                chrono::Utc::now().format("%Y%m%d-%H%M")
            ),
        ))
        .body(csv))
}

#[derive(Template)]
#[template(path = "runs/progress.html")]
struct ProgressFragment {
    r: RunView,
    /// Why an unfinished run is not moving (a retry's wait).
    waiting: Option<String>,
    log: Vec<LogLine>,
    csrf: String,
    can_write: bool,
    tz: TimeZone,
}

async fn load(
    app: &App,
    member: &Member,
    id: RunId,
) -> AppResult<(RunView, records::Flow, Vec<LogLine>)> {
    let run = crate::services::runs::get(app, &member.ctx, id).await?;
    let flow = flows::get(app, &member.ctx, run.flow_id).await?;
    let log = lines(crate::services::runs::events(app, &member.ctx, id, LOG_LINES).await?);
    Ok((RunView::new(run), flow, log))
}

/// GET /runs/{id}
pub async fn show(
    app: web::Data<App>,
    member: Member,
    id: web::Path<RunId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (r, flow, log) = load(&app, &member, id).await?;
    let inspection = runs_service::inspect(&app, &member.ctx, id).await?;
    let waiting = runs_service::waiting_for(&app, &member.ctx, &r.run).await?;
    let shell = member.shell("runs");
    render(
        &ShowPage {
            csrf: shell.csrf.clone(),
            can_write: shell.can_write,
            tz: shell.tz,
            shell,
            waiting,
            r,
            flow,
            log,
            inspection,
            payloads_visible: true,
            run_link_prefix: "/runs/",
        },
        StatusCode::OK,
    )
}

/// GET /runs/{id}/progress — the live part of the run page; tells the poller to stop
/// once the run has ended.
pub async fn progress(
    app: web::Data<App>,
    member: Member,
    id: web::Path<RunId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let (r, _, log) = load(&app, &member, id).await?;
    let finished = r.status.is_finished();
    let waiting = runs_service::waiting_for(&app, &member.ctx, &r.run).await?;
    let html = ProgressFragment {
        r,
        waiting,
        log,
        csrf: member.csrf.clone(),
        can_write: member.ctx.role().can_write(),
        tz: member.time_zone(),
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
    id: web::Path<RunId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    let flash = match runs_service::cancel(&app, &member.ctx, &member.actor(), id).await {
        Ok(()) => Flash::success("Cancelling: the run stops after the page it is working on."),
        Err(AppError::Conflict(m)) => Flash::error(m),
        Err(e) => return Err(e),
    };
    Ok(flash::redirect(&format!("/runs/{id}"), flash))
}
