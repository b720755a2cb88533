//! What a request whose body, query or path cannot be read answers. Extractor failures
//! must end the request with a clear client error, never fall through to a default.

use crate::error::{ApiError, AppError};
use actix_web::HttpRequest;
use actix_web::error::JsonPayloadError;

/// A JSON body that cannot be read: 415 when it is not JSON, 422 when it is JSON of the
/// wrong shape, 400 when it does not parse; always in the API's error shape.
pub fn json(err: JsonPayloadError, _req: &HttpRequest) -> actix_web::Error {
    let error = match &err {
        JsonPayloadError::ContentType => {
            AppError::UnsupportedMediaType("Send the body as application/json.".into())
        }
        JsonPayloadError::Deserialize(e) if e.is_data() => AppError::invalid("body", e.to_string()),
        _ => AppError::BadRequest(err.to_string()),
    };
    ApiError(error).into()
}
