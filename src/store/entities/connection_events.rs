//! `SeaORM` entity for the `connection_events` table (layout of sea-orm-cli generate).

use crate::domain::{ConnectionEvent, ConnectionEventId, ConnectionId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connection_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ConnectionEventId,
    pub tenant_id: TenantId,
    pub connection_id: ConnectionId,
    pub kind: ConnectionEvent,
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
