//! `SeaORM` entity for the `dead_letters` table (layout of sea-orm-cli generate).

use crate::domain::{DeadLetterId, DeadLetterState, FlowId, RecordFault, RunId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "dead_letters")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: DeadLetterId,
    pub tenant_id: TenantId,
    pub flow_id: FlowId,
    /// The run that last failed the record.
    pub run_id: RunId,
    /// The run that first failed it (kept when a replay or later run fails it again).
    pub first_run_id: Option<RunId>,
    #[sea_orm(column_type = "Text")]
    pub record_key: String,
    #[sea_orm(column_type = "Text")]
    pub payload: String,
    pub error_class: RecordFault,
    #[sea_orm(column_type = "Text")]
    pub error: String,
    pub attempts: i32,
    pub state: DeadLetterState,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
