//! `SeaORM` entity for the `invitations` table (layout of sea-orm-cli generate).

use crate::domain::{InvitationId, Role, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "invitations")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: InvitationId,
    pub tenant_id: TenantId,
    pub email: String,
    pub role: Role,
    #[sea_orm(unique)]
    pub token_digest: String,
    pub invited_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub expires_at: DateTimeUtc,
    pub accepted_at: Option<DateTimeUtc>,
    pub revoked_at: Option<DateTimeUtc>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
