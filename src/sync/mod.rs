//! The sync engine: mapping and validation of records, triggers, paging through sources,
//! batched writes, and the run loop that ties them together.

pub mod engine;
pub mod expression;
pub mod mapping;
pub mod rate;
pub mod since;
pub mod source;
pub mod table;
pub mod target;
pub mod trigger;

use crate::connectors::ConnectionError;
use crate::connectors::catalogue::{ErrorAction, Provider};
use crate::connectors::http::Fetched;
use crate::domain::ErrorClass;
use serde::Serialize;
use std::time::Duration;

/// Why a call to a provider did not give a usable answer. Classified by its fields, never
/// by its wording.
#[derive(Clone, Debug)]
pub struct Fault {
    /// Whether retrying may help, or someone must reconnect.
    pub kind: FaultKind,
    /// What the run was doing.
    pub phase: Phase,
    /// The provider's HTTP status, when it answered.
    pub status: Option<u16>,
    /// The delay the provider asked for (`Retry-After` and the like).
    pub retry_after: Option<Duration>,
    /// Whether the provider said to slow down (a 429, or what its error rules call a
    /// rate limit).
    pub rate_limited: bool,
    /// Whether the provider's error rules say nothing more can work: a refused write
    /// then fails the run instead of making a dead letter.
    pub stops_run: bool,
    /// What happened, for the run log.
    pub message: String,
}

/// Whether a fault may go away.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FaultKind {
    /// May work later (timeouts, 5xx, 429), after the provider's `Retry-After` if given.
    Retryable,
    /// The connection must be reconnected (its flows are paused).
    Reauth,
    /// Retrying will not help.
    Fatal,
}

/// What the run was doing when a fault happened.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    /// Loading the flow, its connections and mapping.
    Prepare,
    /// Reading from the source.
    Read,
    /// Writing to the destination (looking records up included).
    Write,
}

impl Fault {
    fn new(kind: FaultKind, message: impl Into<String>) -> Fault {
        Fault {
            kind,
            phase: Phase::Prepare,
            status: None,
            retry_after: None,
            rate_limited: false,
            stops_run: false,
            message: message.into(),
        }
    }

    /// A fault that retrying will not mend (configuration, a refused request).
    pub fn fatal(message: impl Into<String>) -> Fault {
        Fault::new(FaultKind::Fatal, message)
    }

    /// A fault that may pass (a transport failure, an outage).
    pub fn retryable(message: impl Into<String>) -> Fault {
        Fault::new(FaultKind::Retryable, message)
    }

    /// The same fault, happened while `phase` (kept if already known).
    pub fn during(mut self, phase: Phase) -> Fault {
        if self.phase == Phase::Prepare {
            self.phase = phase;
        }
        self
    }

    /// What happened, for the run log.
    pub fn message(&self) -> &str {
        &self.message
    }

    /// Whether the destination refused this one record (a dead letter; the run goes on).
    pub fn refuses_record(&self) -> bool {
        self.kind == FaultKind::Fatal && !self.stops_run
    }

    /// Whether trying again later may help.
    pub fn is_retryable(&self) -> bool {
        self.kind == FaultKind::Retryable
    }

    /// The class a run that failed with this fault is filed under.
    pub fn class(&self) -> ErrorClass {
        match (self.kind, self.status) {
            (FaultKind::Reauth, _) => ErrorClass::Auth,
            (FaultKind::Retryable, _) if self.rate_limited => ErrorClass::RateLimited,
            (FaultKind::Retryable, _) => ErrorClass::Unavailable,
            (FaultKind::Fatal, Some(400..=499)) => ErrorClass::Rejected,
            (FaultKind::Fatal, _) => ErrorClass::Config,
        }
    }

    /// Whether the fault happened while writing (else while reading or preparing).
    pub fn while_writing(&self) -> bool {
        self.phase == Phase::Write
    }

    /// What a provider's answer to `what` (e.g. "writing customers") means, when it is
    /// not a plain success: the provider's error rules first (a 403 that is a rate
    /// limit, a 200 that carries an error), then the status.
    pub fn of_answer(
        provider: &Provider,
        phase: Phase,
        what: &str,
        fetched: &Fetched,
    ) -> Option<Fault> {
        let status = fetched.status.as_u16();
        let action = provider
            .errors
            .iter()
            .find(|rule| rule.matches(status, &fetched.body))
            .map(|rule| rule.action);
        match action {
            None if fetched.status.is_success() => None,
            None => Some(Fault::from_status(phase, what, fetched)),
            Some(action) => {
                let mut fault = Fault::from_status(phase, what, fetched);
                fault.kind = match action {
                    ErrorAction::RateLimit | ErrorAction::Retry => FaultKind::Retryable,
                    ErrorAction::Reject | ErrorAction::Fail => FaultKind::Fatal,
                };
                fault.stops_run = action == ErrorAction::Fail;
                fault.rate_limited = action == ErrorAction::RateLimit;
                fault.retry_after = fault
                    .is_retryable()
                    .then(|| fetched.retry_after())
                    .flatten();
                Some(fault)
            }
        }
    }

    /// Classifies a non-success HTTP answer to `what` (e.g. "writing customers") by its
    /// status alone.
    pub fn from_status(phase: Phase, what: &str, fetched: &Fetched) -> Fault {
        let status = fetched.status;
        // Error bodies sometimes echo credentials: mask them before they reach the log.
        let detail = crate::connectors::redact::redact_text(&String::from_utf8_lossy(
            &fetched.body[..fetched.body.len().min(300)],
        ));
        let message = format!("{what}: HTTP {} {}", status.as_u16(), detail.trim());
        let rate_limited = status.as_u16() == 429;
        let retryable = rate_limited || status.is_server_error() || status.as_u16() == 408;
        Fault {
            kind: if retryable {
                FaultKind::Retryable
            } else {
                FaultKind::Fatal
            },
            phase,
            status: Some(status.as_u16()),
            retry_after: retryable.then(|| fetched.retry_after()).flatten(),
            rate_limited,
            stops_run: false,
            message,
        }
    }
}

impl From<ConnectionError> for Fault {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::ReauthRequired(m) => Fault::new(FaultKind::Reauth, m),
            ConnectionError::Transient(m) => Fault::retryable(m),
            ConnectionError::Internal(e) => Fault::retryable(e.to_string()),
            other => Fault::fatal(other.to_string()),
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
