//! The sync engine: mapping and validation of records, triggers, paging through sources,
//! batched writes, and the run loop that ties them together.

pub mod engine;
pub mod mapping;
pub mod rate;
pub mod source;
pub mod target;
pub mod trigger;

use crate::connectors::http::Fetched;
use crate::services::connections::ConnectionError;
use serde::Serialize;
use std::time::Duration;

/// Why a call to a provider did not give a usable answer.
#[derive(Clone, Debug)]
pub enum Fault {
    /// May work later (timeouts, 5xx, 429), after the provider's `Retry-After` if given.
    Retryable {
        /// What happened.
        message: String,
        /// The delay the provider asked for.
        retry_after: Option<Duration>,
    },
    /// The connection must be reconnected (its flows are paused).
    Reauth(String),
    /// Retrying will not help.
    Fatal(String),
}

impl Fault {
    /// What happened, for the run log.
    pub fn message(&self) -> &str {
        match self {
            Fault::Retryable { message, .. } | Fault::Reauth(message) | Fault::Fatal(message) => {
                message
            }
        }
    }

    /// Classifies a non-success HTTP answer.
    pub fn from_status(what: &str, fetched: &Fetched) -> Fault {
        let status = fetched.status;
        let detail =
            String::from_utf8_lossy(&fetched.body[..fetched.body.len().min(300)]).into_owned();
        let message = format!("{what}: HTTP {} {}", status.as_u16(), detail.trim());
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Fault::Retryable {
                message,
                retry_after: retry_after(fetched),
            }
        } else {
            Fault::Fatal(message)
        }
    }
}

impl From<ConnectionError> for Fault {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::ReauthRequired(m) => Fault::Reauth(m),
            ConnectionError::Transient(m) => Fault::Retryable {
                message: m,
                retry_after: None,
            },
            ConnectionError::Internal(e) => Fault::Retryable {
                message: e.to_string(),
                retry_after: None,
            },
            other => Fault::Fatal(other.to_string()),
        }
    }
}

/// `Retry-After` in seconds or as an HTTP date.
fn retry_after(fetched: &Fetched) -> Option<Duration> {
    let value = fetched
        .headers
        .get(reqwest::header::RETRY_AFTER)?
        .to_str()
        .ok()?
        .trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let at = chrono::DateTime::parse_from_rfc2822(value).ok()?;
    (at.with_timezone(&chrono::Utc) - chrono::Utc::now())
        .to_std()
        .ok()
}

/// One HTTP exchange as shown in the run log: no query string, no headers, no bodies.
#[derive(Clone, Debug, Serialize)]
pub struct Exchange {
    /// Method.
    pub method: String,
    /// Path on the provider (query removed).
    pub path: String,
    /// Status code.
    pub status: u16,
    /// Duration.
    pub ms: u64,
    /// Records in the page or batch.
    pub records: usize,
}
