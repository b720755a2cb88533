//! Handing a browser to a provider's consent screen, for members and end customers alike.

use super::auth::render;
use super::flash::Flash;
use crate::error::AppResult;
use actix_web::HttpResponse;
use actix_web::http::StatusCode;
use askama::Template;

/// Cookie binding a connect-link authorization to the browser that started it.
pub const BROWSER_COOKIE: &str = "sluice_connect";

#[derive(Template)]
#[template(path = "connections/redirect.html")]
struct RedirectPage {
    flashes: Vec<Flash>,
    url: String,
    host: String,
}

/// Sends the browser on to a provider's consent screen. A page (meta refresh plus a link)
/// rather than a 303: the form's CSP `form-action 'self'` would block a redirect from the
/// form submission to another origin.
pub fn continue_to_provider(url: &str) -> AppResult<HttpResponse> {
    let host = url::Url::parse(url)
        .ok()
        .and_then(|u| u.host_str().map(str::to_owned))
        .unwrap_or_default();
    render(
        &RedirectPage {
            flashes: Vec::new(),
            url: url.to_owned(),
            host,
        },
        StatusCode::OK,
    )
}
