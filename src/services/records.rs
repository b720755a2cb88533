//! The records use cases hand to pages and the API, read-only: the store's rows (typed
//! ids and states in every column) and filters, named here so that the web layer depends
//! on use cases and never on the store.

pub use crate::store::entities::{
    alert_occurrences::Model as AlertOccurrence, alert_rules::Model as AlertRule,
    alerts::Model as Alert, api_tokens::Model as ApiToken, audit_events::Model as AuditEvent,
    connect_links::Model as ConnectLink, connection_events::Model as ConnectionLogEntry,
    connections::Model as Connection, dead_letters::Model as DeadLetter,
    flow_versions::Model as FlowVersion, flows::Model as Flow, invitations::Model as Invitation,
    notification_channels::Model as Channel, notification_deliveries::Model as Delivery,
    oauth_apps::Model as OAuthApp, run_events::Model as RunEvent, runs::Model as Run,
    sessions::Model as Session, tenants::Model as Tenant,
};
pub use crate::store::{
    AlertFilter, AuditFilter, Bucket, FailureFilter, InvitationWithTenant, MemberRecord, RunFilter,
    TenantMembership, Totals, UserRecord,
};
