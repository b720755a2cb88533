//! Connection states and token events.

use super::named::UnknownName;
use std::fmt;
use std::str::FromStr;

named_states!(
    /// Where a connection stands.
    ConnectionStatus {
        /// Usable.
        Active = ("active", "Active", "success"),
        /// The provider refused our grant: someone must connect again.
        ReauthRequired = ("reauth_required", "Reconnect required", "danger"),
        /// Disconnected by a member: credentials deleted.
        Disconnected = ("disconnected", "Disconnected", "neutral"),
    }
);

/// Things that happen to a connection's credentials, shown as its timeline and consumed
/// by alerting.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sea_orm::DeriveValueType)]
#[sea_orm(value_type = "String")]
pub enum ConnectionEvent {
    /// First connected.
    Connected,
    /// Tokens refreshed.
    Refreshed,
    /// A refresh failed (transiently).
    RefreshFailed,
    /// The provider refused the grant: reconnect required.
    ReauthRequired,
    /// Connected again after needing reauthorisation.
    Recovered,
    /// "Test connection" succeeded.
    TestSucceeded,
    /// "Test connection" failed.
    TestFailed,
    /// Disconnected (and revoked at the provider where supported).
    Disconnected,
}

impl ConnectionEvent {
    /// Stored name.
    pub fn as_str(self) -> &'static str {
        match self {
            ConnectionEvent::Connected => "connected",
            ConnectionEvent::Refreshed => "refreshed",
            ConnectionEvent::RefreshFailed => "refresh_failed",
            ConnectionEvent::ReauthRequired => "reauth_required",
            ConnectionEvent::Recovered => "recovered",
            ConnectionEvent::TestSucceeded => "test_succeeded",
            ConnectionEvent::TestFailed => "test_failed",
            ConnectionEvent::Disconnected => "disconnected",
        }
    }
}

impl ConnectionEvent {
    /// Every event, for parsing.
    pub const ALL: [ConnectionEvent; 8] = [
        ConnectionEvent::Connected,
        ConnectionEvent::Refreshed,
        ConnectionEvent::RefreshFailed,
        ConnectionEvent::ReauthRequired,
        ConnectionEvent::Recovered,
        ConnectionEvent::TestSucceeded,
        ConnectionEvent::TestFailed,
        ConnectionEvent::Disconnected,
    ];
}

impl fmt::Display for ConnectionEvent {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for ConnectionEvent {
    type Err = UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Self::ALL
            .into_iter()
            .find(|event| event.as_str() == s)
            .ok_or_else(|| UnknownName::new("connection event", s))
    }
}
