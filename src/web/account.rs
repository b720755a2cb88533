//! The signed-in user's own account: profile and password.

use super::auth::{render, signed_in_redirect};
use super::extract::Member;
use super::flash::Flash;
use super::shell::Shell;
use crate::app::App;
use crate::domain::FieldErrors;
use crate::error::{AppError, AppResult};
use crate::services::accounts;
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "account/show.html")]
struct AccountPage {
    shell: Shell,
    errors: FieldErrors,
}

/// GET /account
pub async fn show(member: Member) -> AppResult<HttpResponse> {
    render(
        &AccountPage {
            shell: member.shell("account"),
            errors: FieldErrors::new(),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct PasswordForm {
    current_password: String,
    new_password: String,
    new_password_confirm: String,
}

/// POST /account/password — ends every other session.
pub async fn change_password(
    app: web::Data<App>,
    member: Member,
    form: web::Form<PasswordForm>,
) -> AppResult<HttpResponse> {
    match accounts::change_password(
        &app,
        &member.who.user,
        &form.current_password,
        &form.new_password,
        &form.new_password_confirm,
        &member.who.client,
    )
    .await
    {
        Ok(session) => Ok(signed_in_redirect(
            &app,
            &session,
            "/account",
            Some(Flash::success(
                "Password changed. You were signed out everywhere else.",
            )),
        )),
        Err(AppError::Invalid(errors)) => render(
            &AccountPage {
                shell: member.shell("account"),
                errors,
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => Err(e),
    }
}
