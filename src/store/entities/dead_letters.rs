//! `SeaORM` entity for the `dead_letters` table (layout of sea-orm-cli generate).

use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: Uuid,
    pub tenant_id: Uuid,
    pub flow_id: Uuid,
    pub run_id: Uuid,
    #[sea_orm(column_type = "Text")]
    pub record_key: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub error_class: String,
    #[sea_orm(column_type = "Text")]
    pub error: String,
    pub attempts: i32,
    pub state: String,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
