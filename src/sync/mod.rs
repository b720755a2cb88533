//! The sync engine: mapping and validation of records, triggers, paging through sources,
//! batched writes, and the run loop that ties them together.

pub mod engine;
pub mod expression;
pub mod mapping;
pub mod rate;
pub mod source;
pub mod target;
pub mod trigger;

use crate::connectors::ConnectionError;
use crate::connectors::http::Fetched;
use crate::domain::ErrorClass;
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

    /// The class a run that failed with this fault is filed under.
    pub fn class(&self) -> ErrorClass {
        match self {
            Fault::Reauth(_) => ErrorClass::Auth,
            Fault::Retryable { message, .. } if message.contains("HTTP 429") => {
                ErrorClass::RateLimited
            }
            Fault::Retryable { .. } => ErrorClass::Unavailable,
            // `from_status` words provider refusals as "…: HTTP 4xx …".
            Fault::Fatal(message) if message.contains(": HTTP 4") => ErrorClass::Rejected,
            Fault::Fatal(_) => ErrorClass::Config,
        }
    }

    /// Whether the fault happened while writing (else while reading or preparing): every
    /// write call is described as "writing …" and every read as "reading …".
    pub fn while_writing(&self) -> bool {
        self.message()
            .get(..8)
            .is_some_and(|p| p.eq_ignore_ascii_case("writing "))
    }

    /// Classifies a non-success HTTP answer.
    pub fn from_status(what: &str, fetched: &Fetched) -> Fault {
        let status = fetched.status;
        // Error bodies sometimes echo credentials: mask them before they reach the log.
        let detail = crate::connectors::redact::redact_text(&String::from_utf8_lossy(
            &fetched.body[..fetched.body.len().min(300)],
        ));
        let message = format!("{what}: HTTP {} {}", status.as_u16(), detail.trim());
        if status.as_u16() == 429 || status.is_server_error() || status.as_u16() == 408 {
            Fault::Retryable {
                message,
                retry_after: fetched.retry_after(),
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
