//! The one error type at the edge. Users see a stable code and a clear, generic message;
//! the log gets the whole cause chain, once.

use crate::domain::FieldErrors;
use actix_web::http::StatusCode;
use actix_web::http::header::{self, ContentType};
use actix_web::{HttpResponse, ResponseError};
use askama::Template;
use serde::Serialize;

/// Everything a handler can fail with.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    /// Missing, or belonging to another tenant: the two are indistinguishable on purpose.
    #[error("not found")]
    NotFound,
    /// Signed in, but the role does not allow this.
    #[error("you do not have permission to do this")]
    Forbidden,
    /// No valid session or token.
    #[error("sign-in required")]
    Unauthenticated,
    /// A bearer token that was sent but does not work (unknown, revoked, expired, or
    /// its creator left): the message says which.
    #[error("{0}")]
    InvalidToken(String),
    /// Signed in, but not a member of any workspace yet.
    #[error("create or join a workspace first")]
    NoWorkspace,
    /// The input broke a rule; each field says which.
    #[error("{0}")]
    Invalid(FieldErrors),
    /// The request clashes with the current state (e.g. a duplicate).
    #[error("{0}")]
    Conflict(String),
    /// A link that is expired, used or revoked.
    #[error("{0}")]
    Gone(String),
    /// The CSRF token was missing or wrong.
    #[error("this form has expired; reload the page and try again")]
    Csrf,
    /// Throttled; try again later.
    #[error("too many attempts; try again in {retry_after_secs} seconds")]
    TooManyRequests {
        /// Seconds until another attempt is accepted.
        retry_after_secs: u64,
    },
    /// Malformed request.
    #[error("{0}")]
    BadRequest(String),
    /// The request body is larger than this endpoint accepts.
    #[error("the request body is too large")]
    PayloadTooLarge,
    /// The body is not in a format this endpoint reads (e.g. not `application/json`).
    #[error("{0}")]
    UnsupportedMediaType(String),
    /// The database or another dependency is unreachable.
    #[error("the service is temporarily unavailable")]
    Unavailable,
    /// A bug or an unexpected failure; details only in the log.
    #[error("internal error")]
    Internal(#[source] anyhow::Error),
}

impl AppError {
    /// A stable, machine-readable code for API clients and support.
    pub fn code(&self) -> &'static str {
        match self {
            AppError::NotFound => "not_found",
            AppError::Forbidden => "forbidden",
            AppError::Unauthenticated => "unauthenticated",
            AppError::InvalidToken(_) => "invalid_token",
            AppError::NoWorkspace => "no_workspace",
            AppError::Invalid(_) => "invalid_input",
            AppError::Conflict(_) => "conflict",
            AppError::Gone(_) => "gone",
            AppError::Csrf => "csrf_failed",
            AppError::TooManyRequests { .. } => "rate_limited",
            AppError::BadRequest(_) => "bad_request",
            AppError::PayloadTooLarge => "payload_too_large",
            AppError::UnsupportedMediaType(_) => "unsupported_media_type",
            AppError::Unavailable => "unavailable",
            AppError::Internal(_) => "internal",
        }
    }

    /// The message shown to users: never a database error or a stack.
    pub fn public_message(&self) -> String {
        match self {
            AppError::Internal(_) => {
                "Something went wrong on our side. It has been logged; please try again.".into()
            }
            AppError::NotFound => "The page or item you asked for does not exist.".into(),
            other => capitalise(&other.to_string()),
        }
    }

    /// Shorthand for an error on one form field.
    pub fn invalid(field: &str, message: impl Into<String>) -> Self {
        AppError::Invalid(FieldErrors::single(field, message))
    }

    /// Logs the cause once: server faults as errors, client faults quietly.
    fn log(&self) {
        match self {
            AppError::Internal(cause) => tracing::error!(error = ?cause, "request failed"),
            AppError::Unavailable => tracing::warn!("dependency unavailable"),
            other => tracing::debug!(code = other.code(), "request refused"),
        }
    }
}

fn capitalise(text: &str) -> String {
    let mut chars = text.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

impl From<sea_orm::DbErr> for AppError {
    fn from(e: sea_orm::DbErr) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<anyhow::Error> for AppError {
    fn from(e: anyhow::Error) -> Self {
        AppError::Internal(e)
    }
}

impl From<askama::Error> for AppError {
    fn from(e: askama::Error) -> Self {
        AppError::Internal(e.into())
    }
}

impl From<FieldErrors> for AppError {
    fn from(e: FieldErrors) -> Self {
        AppError::Invalid(e)
    }
}

/// The generic error page: status, title and message; no navigation that could fail again.
#[derive(Template)]
#[template(path = "errors/error.html")]
struct ErrorPage<'a> {
    status: u16,
    title: &'a str,
    message: &'a str,
}

impl ResponseError for AppError {
    fn status_code(&self) -> StatusCode {
        match self {
            AppError::NotFound => StatusCode::NOT_FOUND,
            AppError::Forbidden => StatusCode::FORBIDDEN,
            AppError::Unauthenticated | AppError::InvalidToken(_) => StatusCode::UNAUTHORIZED,
            AppError::NoWorkspace => StatusCode::CONFLICT,
            AppError::Invalid(_) => StatusCode::UNPROCESSABLE_ENTITY,
            AppError::Conflict(_) => StatusCode::CONFLICT,
            AppError::Gone(_) => StatusCode::GONE,
            AppError::Csrf => StatusCode::FORBIDDEN,
            AppError::TooManyRequests { .. } => StatusCode::TOO_MANY_REQUESTS,
            AppError::BadRequest(_) => StatusCode::BAD_REQUEST,
            AppError::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            AppError::UnsupportedMediaType(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            AppError::Unavailable => StatusCode::SERVICE_UNAVAILABLE,
            AppError::Internal(_) => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }

    fn error_response(&self) -> HttpResponse {
        self.log();
        let redirect = match self {
            AppError::Unauthenticated => Some("/login"),
            AppError::NoWorkspace => Some("/workspaces/new"),
            _ => None,
        };
        if let Some(location) = redirect {
            return HttpResponse::SeeOther()
                .insert_header((header::LOCATION, location))
                .finish();
        }
        let status = self.status_code();
        let message = self.public_message();
        let page = ErrorPage {
            status: status.as_u16(),
            title: status.canonical_reason().unwrap_or("Error"),
            message: &message,
        };
        let mut response = HttpResponse::build(status);
        if let AppError::TooManyRequests { retry_after_secs } = self {
            response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
        }
        match page.render() {
            Ok(body) => response.content_type(ContentType::html()).body(body),
            Err(_) => response
                .content_type(ContentType::plaintext())
                .body(message),
        }
    }
}

/// The JSON body of every API error.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiErrorBody {
    /// The error.
    pub error: ApiErrorDetail,
}

/// Code, message and, for invalid input, the fields at fault.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiErrorDetail {
    /// Stable machine-readable code, e.g. `not_found`.
    pub code: String,
    /// Human-readable explanation.
    pub message: String,
    /// Field → message, for `invalid_input`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub fields: Vec<ApiFieldError>,
}

/// One invalid field.
#[derive(Debug, Serialize, utoipa::ToSchema)]
pub struct ApiFieldError {
    /// Field name.
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// [`AppError`] rendered as JSON for `/api/v1`: same codes, same messages.
#[derive(Debug, thiserror::Error)]
#[error(transparent)]
pub struct ApiError(#[from] pub AppError);

impl From<sea_orm::DbErr> for ApiError {
    fn from(e: sea_orm::DbErr) -> Self {
        ApiError(e.into())
    }
}

impl ResponseError for ApiError {
    fn status_code(&self) -> StatusCode {
        self.0.status_code()
    }

    fn error_response(&self) -> HttpResponse {
        self.0.log();
        let fields = match &self.0 {
            AppError::Invalid(errors) => errors
                .iter()
                .map(|(field, message)| ApiFieldError {
                    field: field.to_owned(),
                    message: message.to_owned(),
                })
                .collect(),
            _ => Vec::new(),
        };
        let mut response = HttpResponse::build(self.status_code());
        match &self.0 {
            AppError::TooManyRequests { retry_after_secs } => {
                response.insert_header((header::RETRY_AFTER, retry_after_secs.to_string()));
            }
            AppError::Unauthenticated => {
                response.insert_header((header::WWW_AUTHENTICATE, "Bearer"));
            }
            // RFC 6750 §3: a token was sent and refused.
            AppError::InvalidToken(_) => {
                response
                    .insert_header((header::WWW_AUTHENTICATE, r#"Bearer error="invalid_token""#));
            }
            _ => {}
        }
        response.json(ApiErrorBody {
            error: ApiErrorDetail {
                code: self.0.code().to_owned(),
                message: self.0.public_message(),
                fields,
            },
        })
    }
}

/// Result alias for page handlers and services.
pub type AppResult<T> = Result<T, AppError>;
/// Result alias for JSON API handlers.
pub type ApiResult<T> = Result<T, ApiError>;
