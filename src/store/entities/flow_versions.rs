//! `SeaORM` entity for the `flow_versions` table (layout of sea-orm-cli generate).

use crate::domain::{FlowId, FlowVersionId, TenantId, UserId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "flow_versions")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: FlowVersionId,
    pub tenant_id: TenantId,
    pub flow_id: FlowId,
    pub number: i64,
    #[sea_orm(column_type = "Text")]
    pub spec: String,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
