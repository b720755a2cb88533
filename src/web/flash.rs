//! One-time messages shown on the page after a redirect ("Invitation sent").

use actix_web::HttpResponse;
use actix_web::cookie::{Cookie, SameSite};
use actix_web::http::header;

/// Cookie carrying flashes across one redirect.
pub const COOKIE: &str = "sluice_flash";

/// A message and its kind (`success`, `error`, `info`, `warning`: a CSS class suffix).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Flash {
    /// Kind, used as `flash-<kind>`.
    pub kind: &'static str,
    /// Text (escaped when rendered).
    pub message: String,
}

impl Flash {
    /// A success message.
    pub fn success(message: impl Into<String>) -> Self {
        Self {
            kind: "success",
            message: message.into(),
        }
    }
    /// An error message.
    pub fn error(message: impl Into<String>) -> Self {
        Self {
            kind: "error",
            message: message.into(),
        }
    }
    /// A neutral message.
    pub fn info(message: impl Into<String>) -> Self {
        Self {
            kind: "info",
            message: message.into(),
        }
    }
}

/// Decodes the cookie value; anything unexpected is dropped.
pub fn decode(value: &str) -> Vec<Flash> {
    url::form_urlencoded::parse(value.as_bytes())
        .filter_map(|(kind, message)| {
            let kind = match kind.as_ref() {
                "success" => "success",
                "error" => "error",
                "warning" => "warning",
                "info" => "info",
                _ => return None,
            };
            Some(Flash {
                kind,
                message: message.chars().take(500).collect(),
            })
        })
        .take(5)
        .collect()
}

/// A 303 redirect to `location` carrying `flash` to the next page.
pub fn redirect(location: &str, flash: Flash) -> HttpResponse {
    let value = url::form_urlencoded::Serializer::new(String::new())
        .append_pair(flash.kind, &flash.message)
        .finish();
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .cookie(
            Cookie::build(COOKIE, value)
                .path("/")
                .http_only(true)
                .same_site(SameSite::Lax)
                .finish(),
        )
        .finish()
}

/// A plain 303 redirect.
pub fn see_other(location: &str) -> HttpResponse {
    HttpResponse::SeeOther()
        .insert_header((header::LOCATION, location))
        .finish()
}
