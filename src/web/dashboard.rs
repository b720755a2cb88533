//! The tenant dashboard: totals, throughput and error-rate charts, open alerts, flow and
//! connection health.

use super::auth::render;
use super::charts;
use super::extract::{MaybeUser, Member};
use super::flash;
use super::shell::Shell;
use crate::app::App;
use crate::domain::text::Grouped;
use crate::domain::{AlertState, FlowStatus};
use crate::error::AppResult;
use crate::services::dashboard::{self, Dashboard, Period};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "dashboard/index.html")]
struct DashboardPage {
    shell: Shell,
    d: Dashboard,
    throughput_chart: String,
    error_chart: String,
}

/// Query of the dashboard.
#[derive(Deserialize)]
pub struct DashboardQuery {
    period: Option<String>,
}

/// GET / — the dashboard when signed in, otherwise sign-in.
pub async fn home(user: MaybeUser) -> HttpResponse {
    flash::see_other(if user.0.is_some() {
        "/dashboard"
    } else {
        "/login"
    })
}

/// GET /dashboard
pub async fn show(
    app: web::Data<App>,
    member: Member,
    query: web::Query<DashboardQuery>,
) -> AppResult<HttpResponse> {
    let period = Period::parse(query.period.as_deref());
    let d = dashboard::load(&app, &member.ctx, period).await?;
    let step = if period == Period::Day {
        3600
    } else {
        6 * 3600
    };
    let series = charts::Series {
        buckets: &d.series,
        step_secs: step,
        tz: member.time_zone(),
    };
    let (throughput_chart, error_chart) =
        (charts::throughput(&series), charts::error_rate(&series));
    render(
        &DashboardPage {
            shell: member.shell("dashboard"),
            throughput_chart,
            error_chart,
            d,
        },
        StatusCode::OK,
    )
}

/// "3 h 20 min" for a duration, "—" for none. (Templates pass fields by reference and
/// call results by value, hence `Borrow`.)
pub fn ago(d: impl std::borrow::Borrow<Option<chrono::Duration>>) -> String {
    match d.borrow() {
        Some(d) => {
            crate::domain::alert::minutes(i32::try_from(d.num_minutes()).unwrap_or(i32::MAX))
        }
        None => "—".into(),
    }
}

/// "12.5 %" or "—".
pub fn percent(v: impl std::borrow::Borrow<Option<f64>>) -> String {
    v.borrow()
        .map_or_else(|| "—".into(), |v| format!("{v:.1} %"))
}
