//! What a request whose body, query or path cannot be read answers. Extractor failures
//! must end the request with a clear client error, never fall through to a default, and
//! answer in the shape the caller reads: the API's JSON error body under `/api/` (and for
//! JSON bodies anywhere), the error page elsewhere.

use crate::error::{ApiError, AppError};
use actix_web::HttpRequest;
use actix_web::error::{
    JsonPayloadError, PathError, PayloadError, QueryPayloadError, UrlencodedError,
};

/// Whether this request is answered in the API's JSON error shape.
fn is_api(req: &HttpRequest) -> bool {
    req.path().starts_with("/api/")
}

fn reject(req: &HttpRequest, error: AppError) -> actix_web::Error {
    if is_api(req) {
        ApiError(error).into()
    } else {
        error.into()
    }
}

/// A JSON body that cannot be read: 413 when it is too large, 415 when it is not JSON,
/// 422 when it is JSON of the wrong shape, 400 when it does not parse; always in the
/// API's error shape.
pub fn json(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::Overflow { .. }
        | JsonPayloadError::OverflowKnownLength { .. }
        | JsonPayloadError::Payload(PayloadError::Overflow) => AppError::PayloadTooLarge,
        JsonPayloadError::ContentType => {
            AppError::UnsupportedMediaType("Send the body as application/json.".into())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => AppError::invalid("body", e.to_string()),
        _ => AppError::BadRequest(err.to_string()),
    };
    ApiError(error).into()
}

/// A query string that does not fit the endpoint's parameters: 400.
pub fn query(err: QueryPayloadError, req: &HttpRequest) -> actix_web::Error {
    let QueryPayloadError::Deserialize(cause) = &err else {
        return reject(req, AppError::BadRequest(err.to_string()));
    };
    reject(
        req,
        AppError::BadRequest(format!("The query string is not valid: {cause}.")),
    )
}

/// A path segment that does not parse names nothing that exists: 404, as for a missing
/// id.
pub fn path(_err: PathError, req: &HttpRequest) -> actix_web::Error {
    reject(req, AppError::NotFound)
}

/// A form body that cannot be read: 413 when it is too large, 415 when it is not a
/// form, 400 otherwise.
pub fn form(err: UrlencodedError, req: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        UrlencodedError::Overflow { .. } | UrlencodedError::Payload(PayloadError::Overflow) => {
            AppError::PayloadTooLarge
        }
        UrlencodedError::ContentType => AppError::UnsupportedMediaType(
            "Send the form as application/x-www-form-urlencoded.".into(),
        ),
        _ => AppError::BadRequest(format!("The form could not be read: {err}")),
    };
    reject(req, error)
}

/// A raw body that cannot be read (the CSRF check reads form bodies before any handler):
/// 413 when it is too large, 400 otherwise.
pub fn body(err: actix_web::Error, req: &HttpRequest) -> actix_web::Error {
    let error = match err.as_error::<PayloadError>() {
        Some(PayloadError::Overflow) => AppError::PayloadTooLarge,
        _ => AppError::BadRequest(format!("The request body could not be read: {err}")),
    };
    reject(req, error)
}
