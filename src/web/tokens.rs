//! API tokens page: create (shown once), list, revoke.

use super::auth::render;
use super::extract::Member;
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::domain::{ApiTokenId, FieldErrors};
use crate::error::{AppError, AppResult};
use crate::services::api_tokens;
use crate::services::records;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "tokens/index.html")]
struct TokensPage {
    shell: Shell,
    tokens: Vec<records::ApiToken>,
    new_secret: Option<String>,
    name: String,
    role: String,
    expires_in_days: String,
    errors: FieldErrors,
}

async fn page(app: &App, member: &Member) -> AppResult<TokensPage> {
    Ok(TokensPage {
        shell: member.shell("tokens"),
        tokens: api_tokens::list(app, &member.ctx).await?,
        new_secret: None,
        name: String::new(),
        role: "viewer".into(),
        expires_in_days: "90".into(),
        errors: FieldErrors::new(),
    })
}

/// GET /settings/api-tokens
pub async fn index(app: web::Data<App>, member: Member) -> AppResult<HttpResponse> {
    render(&page(&app, &member).await?, StatusCode::OK)
}

#[derive(Deserialize)]
pub struct CreateForm {
    name: String,
    role: String,
    expires_in_days: String,
}

/// POST /settings/api-tokens — the secret is rendered into this response only.
pub async fn create(
    app: web::Data<App>,
    member: Member,
    form: web::Form<CreateForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    match api_tokens::create(
        &app,
        &member.ctx,
        &member.actor(),
        &form.name,
        &form.role,
        &form.expires_in_days,
    )
    .await
    {
        Ok(secret) => {
            let mut p = page(&app, &member).await?;
            p.new_secret = Some(secret);
            p.shell.flashes.push(Flash::success(format!(
                "Token “{}” created.",
                form.name.trim()
            )));
            render(&p, StatusCode::OK)
        }
        Err(AppError::Invalid(errors)) => {
            let mut p = page(&app, &member).await?;
            p.name = form.name;
            p.role = form.role;
            p.expires_in_days = form.expires_in_days;
            p.errors = errors;
            render(&p, StatusCode::UNPROCESSABLE_ENTITY)
        }
        Err(e) => Err(e),
    }
}

/// POST /settings/api-tokens/{id}/revoke
pub async fn revoke(
    app: web::Data<App>,
    member: Member,
    id: web::Path<ApiTokenId>,
) -> AppResult<HttpResponse> {
    let id = id.into_inner();
    api_tokens::revoke(&app, &member.ctx, &member.actor(), id).await?;
    Ok(flash::redirect(
        "/settings/api-tokens",
        Flash::success("Token revoked. Clients using it are refused from now on."),
    ))
}
