//! Pure types and rules: typed ids, roles, validated inputs, the tenant scope. No IO.

#[macro_use]
pub mod named;
pub mod alert;
pub mod connection;
pub mod flow;
pub mod flow_document;
pub mod ids;
pub mod role;
pub mod tenant_ctx;
pub mod text;
pub mod time_zone;
pub mod validation;

pub use alert::{AlertKind, AlertState, ChannelKind, DeliveryState, ErrorClass};
pub use connection::{ConnectionEvent, ConnectionStatus};
pub use flow::{
    DeadLetterState, FlowSpec, FlowStatus, LetterSelection, RecordFault, RunStatus, RunTrigger,
    TriggerKind, WriteMode,
};
pub use flow_document::FlowDocument;
pub use ids::*;
pub use named::UnknownName;
pub use role::{PlatformRole, Role};
pub use tenant_ctx::{Actor, TenantCtx};
pub use time_zone::TimeZone;
pub use validation::{Email, FieldErrors, NewPassword};
