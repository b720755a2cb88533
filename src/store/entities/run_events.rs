//! `SeaORM` entity for the `run_events` table (layout of sea-orm-cli generate).

use crate::domain::{RunEventId, RunId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "run_events")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RunEventId,
    pub tenant_id: TenantId,
    pub run_id: RunId,
    pub at: DateTimeUtc,
    pub level: String,
    #[sea_orm(column_type = "Text")]
    pub message: String,
    #[sea_orm(column_type = "Text", nullable)]
    pub detail: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
