//! `SeaORM` entity for the `webhook_events` table (layout of sea-orm-cli generate).

use crate::domain::{FlowId, RunId, TenantId, WebhookEventId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "webhook_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: WebhookEventId,
    pub tenant_id: TenantId,
    pub flow_id: FlowId,
    pub message_id: String,
    pub received_at: DateTimeUtc,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub run_id: Option<RunId>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
