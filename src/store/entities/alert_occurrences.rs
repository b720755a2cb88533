//! `SeaORM` entity for the `alert_occurrences` table (layout of sea-orm-cli generate).

use crate::domain::{AlertId, AlertOccurrenceId, RunId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_occurrences")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AlertOccurrenceId,
    pub tenant_id: TenantId,
    pub alert_id: AlertId,
    pub run_id: Option<RunId>,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    pub seen_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
