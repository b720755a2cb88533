//! The runtime for talking to providers: the catalogue, a connection's credentials, the
//! authorised session (token refresh, reauth), the OAuth 2.0 client and the guarded
//! outbound HTTP client. Below the use cases and the engine, which both call through it.

pub mod catalogue;
pub mod credentials;
pub mod discovery;
pub mod fields;
pub mod http;
pub mod oauth;
pub mod redact;
pub mod session;

use crate::error::AppError;

/// Why a connection could not be used.
#[derive(Debug, thiserror::Error)]
pub enum ConnectionError {
    /// No such connection in this tenant.
    #[error("connection not found")]
    NotFound,
    /// The provider refused our grant; someone must reconnect.
    #[error("the connection needs to be reconnected: {0}")]
    ReauthRequired(String),
    /// A temporary problem (network, provider 5xx, a refresh in progress elsewhere).
    #[error("temporarily unavailable: {0}")]
    Transient(String),
    /// A permanent problem with this call or configuration.
    #[error("{0}")]
    Failed(String),
    /// A bug or storage failure.
    #[error(transparent)]
    Internal(#[from] anyhow::Error),
}

impl From<sea_orm::DbErr> for ConnectionError {
    fn from(e: sea_orm::DbErr) -> Self {
        ConnectionError::Internal(e.into())
    }
}

impl From<ConnectionError> for AppError {
    fn from(e: ConnectionError) -> Self {
        match e {
            ConnectionError::NotFound => AppError::NotFound,
            ConnectionError::Internal(e) => AppError::Internal(e),
            other => AppError::Conflict(other.to_string()),
        }
    }
}
