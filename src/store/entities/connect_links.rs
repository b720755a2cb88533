//! `SeaORM` entity for the `connect_links` table (layout of sea-orm-cli generate).

use crate::domain::{ConnectLinkId, ConnectionId, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connect_links")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ConnectLinkId,
    pub tenant_id: TenantId,
    pub provider_id: String,
    #[sea_orm(unique)]
    pub token_digest: String,
    pub customer_ref: String,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub used_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
    pub connection_id: Option<ConnectionId>,
    pub outcome: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub outcome_detail: Option<String>,
    pub reconnects_connection_id: Option<ConnectionId>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
