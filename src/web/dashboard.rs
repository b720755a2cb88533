//! The tenant dashboard.

use super::auth::render;
use super::extract::{MaybeUser, Member};
use super::flash;
use super::shell::Shell;
use crate::error::AppResult;
use crate::services::App;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;

#[derive(Template)]
#[template(path = "dashboard/index.html")]
struct DashboardPage {
    shell: Shell,
    members: usize,
    api_tokens: usize,
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
pub async fn show(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    let members = app.store.members(&member.ctx).await?.len();
    let api_tokens = app.store.api_tokens(&member.ctx).await?.len();
    render(
        &DashboardPage {
            shell: member.shell("dashboard"),
            members,
            api_tokens,
        },
        StatusCode::OK,
    )
}
