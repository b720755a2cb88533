//! Typed ids: a `TenantId` can never be passed where a `UserId` is expected.

use serde::{Deserialize, Serialize};
use std::fmt;
use std::str::FromStr;
use uuid::Uuid;

macro_rules! typed_id {
    ($($(#[$meta:meta])* $name:ident),+ $(,)?) => {$(
        $(#[$meta])*
        #[derive(
            Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
            sea_orm::DeriveValueType,
        )]
        #[serde(transparent)]
        pub struct $name(Uuid);

        // Primary keys must say whether an auto-increment number converts: ours never do.
        impl sea_orm::TryFromU64 for $name {
            fn try_from_u64(n: u64) -> Result<Self, sea_orm::DbErr> {
                <Uuid as sea_orm::TryFromU64>::try_from_u64(n).map(Self)
            }
        }

        impl $name {
            /// A fresh, time-ordered id (UUIDv7), so indexes stay append-mostly.
            pub fn new() -> Self {
                Self(Uuid::now_v7())
            }
            /// Wraps an id read from storage.
            pub fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }
            /// The raw UUID, for storage.
            pub fn uuid(self) -> Uuid {
                self.0
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = uuid::Error;
            fn from_str(s: &str) -> Result<Self, Self::Err> {
                Uuid::parse_str(s).map(Self)
            }
        }

        impl From<$name> for Uuid {
            fn from(id: $name) -> Uuid {
                id.0
            }
        }
    )+};
}

typed_id!(
    /// A tenant (an organisation using Sluice).
    TenantId,
    /// A person who can sign in.
    UserId,
    /// A user's role in one tenant.
    MembershipId,
    /// A pending invitation to join a tenant.
    InvitationId,
    /// A bearer token for the JSON API.
    ApiTokenId,
    /// An append-only audit record.
    AuditEventId,
    /// A connection to a SaaS system.
    ConnectionId,
    /// A tenant's OAuth client registration for one provider.
    OAuthAppId,
    /// A single-use link an end customer connects through.
    ConnectLinkId,
    /// A flow (source → mapping → destination).
    FlowId,
    /// An immutable snapshot of a flow's definition.
    FlowVersionId,
    /// One execution of a flow.
    RunId,
    /// A record that could not be delivered, kept for replay.
    DeadLetterId,
    /// A tenant's rule for raising alerts.
    AlertRuleId,
    /// A raised alert.
    AlertId,
    /// One firing of an alert, with its cause.
    AlertOccurrenceId,
    /// Where notifications go (e-mail, webhook, Slack).
    ChannelId,
    /// One notification of one alert event to one channel.
    DeliveryId,
    /// One line of a run's log.
    RunEventId,
    /// One entry of a connection's timeline.
    ConnectionEventId,
    /// One received webhook delivery.
    WebhookEventId,
);
