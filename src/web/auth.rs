//! Sign-in, sign-out and first-run setup pages.

use super::extract::{MaybeUser, client_info, csrf_token, flashes, session_cookie_name};
use super::flash::{self, Flash};
use crate::app::App;
use crate::domain::FieldErrors;
use crate::error::{AppError, AppResult};
use crate::services::accounts::{self, SetupInput, SignedIn};
use actix_web::cookie::{Cookie, SameSite, time::Duration as CookieDuration};
use actix_web::http::StatusCode;
use actix_web::{HttpRequest, HttpResponse, web};
use askama::Template;
use serde::Deserialize;

#[derive(Template)]
#[template(path = "auth/login.html")]
struct LoginPage {
    csrf: String,
    flashes: Vec<Flash>,
    email: String,
    next: String,
    error: Option<String>,
}

#[derive(Template)]
#[template(path = "auth/setup.html")]
struct SetupPage {
    csrf: String,
    flashes: Vec<Flash>,
    token: String,
    name: String,
    email: String,
    workspace: String,
    errors: FieldErrors,
}

/// Renders a template with a status (askama's responder always answers 200).
pub fn render(template: &impl Template, status: StatusCode) -> AppResult<HttpResponse> {
    Ok(HttpResponse::build(status)
        .content_type("text/html; charset=utf-8")
        .body(template.render()?))
}

/// Where to go after signing in when no (acceptable) `next` was given.
const DEFAULT_LANDING: &str = "/dashboard";

/// The redirect target after sign-in: `next` only if it is a path on this site, else the
/// default landing page. Browsers are lenient with `Location`: they strip tabs and
/// newlines, read `\` as `/`, and treat `//host` as another site, so `/\t/evil` leads
/// off-site. Only a path that starts with exactly one `/`, followed by neither `/` nor
/// `\`, made of visible ASCII other than `\` (no whitespace, no control characters) is
/// taken as given (a control or non-ASCII character would not even fit in the header).
pub fn safe_next(next: Option<&str>) -> String {
    match next {
        Some(n) if is_local_path(n) => n.to_owned(),
        _ => DEFAULT_LANDING.to_owned(),
    }
}

fn is_local_path(path: &str) -> bool {
    let mut chars = path.chars();
    chars.next() == Some('/')
        && !matches!(chars.next(), Some('/' | '\\'))
        && path.chars().all(|c| c.is_ascii_graphic() && c != '\\')
}

/// Sets the session and device cookies and redirects.
pub fn signed_in_redirect(
    app: &App,
    signed_in: &SignedIn,
    location: &str,
    flash: Option<Flash>,
) -> HttpResponse {
    let https = app.settings.is_https();
    let session = Cookie::build(session_cookie_name(app), signed_in.session_token.clone())
        .path("/")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Lax)
        .max_age(CookieDuration::seconds(
            app.settings.session_absolute.as_secs() as i64,
        ))
        .finish();
    let device = Cookie::build(crate::auth::device::COOKIE, signed_in.device_cookie.clone())
        .path("/login")
        .http_only(true)
        .secure(https)
        .same_site(SameSite::Strict)
        .max_age(CookieDuration::days(crate::auth::device::LIFETIME_DAYS))
        .finish();
    let mut response = match flash {
        Some(f) => flash::redirect(location, f),
        None => flash::see_other(location),
    };
    let _ = response.add_cookie(&session);
    let _ = response.add_cookie(&device);
    response
}

#[derive(Deserialize)]
pub struct NextQuery {
    next: Option<String>,
}

/// GET /login
pub async fn login_form(
    req: HttpRequest,
    user: MaybeUser,
    query: web::Query<NextQuery>,
) -> AppResult<HttpResponse> {
    let next = safe_next(query.next.as_deref());
    if user.0.is_some() {
        return Ok(flash::see_other(&next));
    }
    render(
        &LoginPage {
            csrf: csrf_token(&req),
            flashes: flashes(&req),
            email: String::new(),
            next,
            error: None,
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct LoginForm {
    email: String,
    password: String,
    next: Option<String>,
}

/// POST /login
pub async fn login_submit(
    req: HttpRequest,
    app: web::Data<App>,
    form: web::Form<LoginForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let next = safe_next(form.next.as_deref());
    match accounts::sign_in(&app, &form.email, &form.password, &client_info(&req)).await {
        Ok(signed_in) => Ok(signed_in_redirect(&app, &signed_in, &next, None)),
        Err(e @ (AppError::Invalid(_) | AppError::TooManyRequests { .. })) => {
            let status = actix_web::ResponseError::status_code(&e);
            let mut response = render(
                &LoginPage {
                    csrf: csrf_token(&req),
                    flashes: Vec::new(),
                    email: form.email,
                    next,
                    error: Some(match &e {
                        AppError::Invalid(errors) => errors
                            .iter()
                            .next()
                            .map(|(_, m)| m.to_owned())
                            .unwrap_or_default(),
                        other => other.public_message(),
                    }),
                },
                status,
            )?;
            if let AppError::TooManyRequests { retry_after_secs } = e {
                response.headers_mut().insert(
                    actix_web::http::header::RETRY_AFTER,
                    actix_web::http::header::HeaderValue::from(retry_after_secs),
                );
            }
            Ok(response)
        }
        Err(e) => Err(e),
    }
}

/// POST /logout
pub async fn logout(req: HttpRequest, app: web::Data<App>) -> AppResult<HttpResponse> {
    let name = session_cookie_name(&app);
    if let Some(cookie) = req.cookie(name) {
        accounts::sign_out(&app, cookie.value()).await?;
    }
    let mut gone = Cookie::build(name, "").path("/").finish();
    gone.make_removal();
    let mut response = flash::redirect("/login", Flash::info("You have been signed out."));
    let _ = response.add_cookie(&gone);
    Ok(response)
}

/// GET /setup/{token}
pub async fn setup_form(
    req: HttpRequest,
    app: web::Data<App>,
    token: web::Path<String>,
) -> AppResult<HttpResponse> {
    if !accounts::setup_link_valid(&app, &token).await? {
        return Err(AppError::Gone(
            "this setup link has expired or was already used; restart Sluice to print a new one"
                .into(),
        ));
    }
    render(
        &SetupPage {
            csrf: csrf_token(&req),
            flashes: flashes(&req),
            token: token.into_inner(),
            name: String::new(),
            email: String::new(),
            workspace: String::new(),
            errors: FieldErrors::new(),
        },
        StatusCode::OK,
    )
}

#[derive(Deserialize)]
pub struct SetupForm {
    name: String,
    email: String,
    password: String,
    password_confirm: String,
    workspace: String,
}

/// POST /setup/{token}
pub async fn setup_submit(
    req: HttpRequest,
    app: web::Data<App>,
    token: web::Path<String>,
    form: web::Form<SetupForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let (name, email, workspace) = (
        form.name.clone(),
        form.email.clone(),
        form.workspace.clone(),
    );
    let input = SetupInput {
        name: form.name,
        email: form.email,
        password: form.password,
        password_confirm: form.password_confirm,
        workspace: form.workspace,
    };
    match accounts::complete_setup(&app, &token, input, &client_info(&req)).await {
        Ok(signed_in) => Ok(signed_in_redirect(
            &app,
            &signed_in,
            "/dashboard",
            Some(Flash::success(
                "Welcome to Sluice! Your workspace is ready.",
            )),
        )),
        Err(AppError::Invalid(errors)) => render(
            &SetupPage {
                csrf: csrf_token(&req),
                flashes: Vec::new(),
                token: token.into_inner(),
                name,
                email,
                workspace,
                errors,
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => Err(e),
    }
}
