//! `SeaORM` entity for the `api_tokens` table (layout of sea-orm-cli generate).

use crate::domain::{ApiTokenId, Role, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "api_tokens")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: ApiTokenId,
    pub tenant_id: TenantId,
    pub name: String,
    pub prefix: String,
    #[sea_orm(unique)]
    pub token_digest: String,
    pub role: Role,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub last_used_at: Option<DateTimeUtc>,
    pub expires_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
