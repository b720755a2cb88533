//! `SeaORM` entity for the `connections` table (layout of sea-orm-cli generate).

use crate::domain::{ConnectLinkId, ConnectionId, ConnectionStatus, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "connections")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ConnectionId,
    pub tenant_id: TenantId,
    pub provider_id: String,
    pub name: String,
    pub status: ConnectionStatus,
    #[sea_orm(column_type = "Text", nullable)]
    pub credentials_enc: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub config: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub scopes: Option<String>,
    pub token_version: i64,
    pub access_expires_at: Option<DateTimeUtc>,
    pub last_refresh_at: Option<DateTimeUtc>,
    pub last_used_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub last_error: Option<String>,
    pub refresh_failures: i32,
    pub lease_holder: Option<String>,
    pub lease_until: Option<DateTimeUtc>,
    pub customer_ref: Option<String>,
    pub connect_link_id: Option<ConnectLinkId>,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
