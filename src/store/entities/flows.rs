//! `SeaORM` entity for the `flows` table (layout of sea-orm-cli generate).

use crate::domain::{
    ConnectionId, FlowId, FlowStatus, FlowVersionId, RunId, RunStatus, TenantId, TriggerKind,
};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flows")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: FlowId,
    pub tenant_id: TenantId,
    pub name: String,
    pub status: FlowStatus,
    pub current_version_id: FlowVersionId,
    pub version: i64,
    pub trigger_kind: TriggerKind,
    pub next_run_at: Option<DateTimeUtc>,
    pub consecutive_failures: i32,
    #[sea_orm(column_type = "Text", nullable)]
    pub paused_reason: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub watermark: Option<String>,
    pub webhook_token: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub webhook_secret_enc: Option<String>,
    pub source_connection_id: ConnectionId,
    pub destination_connection_id: ConnectionId,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
    pub last_run_id: Option<RunId>,
    pub last_run_status: Option<RunStatus>,
    pub last_run_at: Option<DateTimeUtc>,
    pub last_success_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
