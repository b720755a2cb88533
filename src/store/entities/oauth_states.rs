//! `SeaORM` entity for the `oauth_states` table (layout of sea-orm-cli generate).

use crate::domain::{ConnectLinkId, ConnectionId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_states")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: String,
    pub tenant_id: TenantId,
    pub provider_id: String,
    pub session_digest: Option<String>,
    pub connect_link_id: Option<ConnectLinkId>,
    pub connection_id: Option<ConnectionId>,
    pub connection_name: String,
    #[sea_orm(column_type = "Text")]
    pub config: String,
    #[sea_orm(column_type = "Text")]
    pub verifier_enc: String,
    pub redirect_uri: String,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
