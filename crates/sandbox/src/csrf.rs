//! The consent form's CSRF protection: a double-submit token. The consent page sets a
//! random token in a strict same-site cookie and in the form; the decision is accepted
//! only when both come back equal, which a page on another site cannot arrange.

use crate::support::{equal, random_secret};
use actix_web::HttpRequest;
use actix_web::cookie::{Cookie, SameSite};

const COOKIE: &str = "sandbox_csrf";

/// A fresh token, and the cookie that carries it.
pub fn issue() -> (String, Cookie<'static>) {
    let token = random_secret();
    let cookie = Cookie::build(COOKIE, token.clone())
        .path("/sandbox/oauth")
        .http_only(true)
        .same_site(SameSite::Strict)
        .finish();
    (token, cookie)
}

/// Whether the form's token matches the request's cookie.
pub fn verify(req: &HttpRequest, submitted: &str) -> bool {
    req.cookie(COOKIE)
        .is_some_and(|c| !submitted.is_empty() && equal(c.value(), submitted))
}
