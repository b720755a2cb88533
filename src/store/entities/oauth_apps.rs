//! `SeaORM` entity for the `oauth_apps` table (layout of sea-orm-cli generate).

use crate::domain::{OAuthAppId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "oauth_apps")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: OAuthAppId,
    pub tenant_id: TenantId,
    pub provider_id: String,
    pub client_id: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub client_secret_enc: Option<String>,
    #[sea_orm(column_type = "Text")]
    pub config: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
