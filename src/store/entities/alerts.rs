//! `SeaORM` entity for the `alerts` table (layout of sea-orm-cli generate).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub rule_id: Option<Uuid>,
    pub kind: String,
    pub flow_id: Option<Uuid>,
    pub connection_id: Option<Uuid>,
    pub run_id: Option<Uuid>,
    pub subject: String,
    pub dedupe_key: String,
    pub state: String,
    #[sea_orm(column_type = "Text")]
    pub title: String,
    #[sea_orm(column_type = "Text")]
    pub detail: String,
    pub occurrences: i32,
    pub notified: bool,
    pub opened_at: DateTimeUtc,
    pub last_seen_at: DateTimeUtc,
    pub acknowledged_at: Option<DateTimeUtc>,
    pub acknowledged_by: Option<String>,
    pub resolved_at: Option<DateTimeUtc>,
    #[sea_orm(column_type = "Text", nullable)]
    pub resolution: Option<String>,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
