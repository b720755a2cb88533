//! `SeaORM` entity for the `runs` table (layout of sea-orm-cli generate).

use crate::domain::{
    ErrorClass, FlowId, FlowVersionId, RunId, RunStatus, RunTrigger, TenantId, UserId,
};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "runs")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: RunId,
    pub tenant_id: TenantId,
    pub flow_id: FlowId,
    pub flow_version_id: FlowVersionId,
    pub version: i64,
    pub trigger: RunTrigger,
    pub status: RunStatus,
    pub cancel_requested: bool,
    #[sea_orm(column_type = "Text", nullable)]
    pub cursor: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub watermark: Option<String>,
    pub pages: i64,
    pub records_read: i64,
    pub records_written: i64,
    pub records_unchanged: i64,
    pub records_filtered: i64,
    pub records_failed: i64,
    pub records_total: Option<i64>,
    #[sea_orm(column_type = "Text", nullable)]
    pub replay: Option<String>,
    #[sea_orm(column_type = "Text", nullable)]
    pub error: Option<String>,
    pub lease_holder: Option<String>,
    pub heartbeat_at: Option<DateTimeUtc>,
    pub created_by: Option<UserId>,
    pub created_at: DateTimeUtc,
    pub started_at: Option<DateTimeUtc>,
    pub finished_at: Option<DateTimeUtc>,
    pub error_class: Option<ErrorClass>,
    pub error_provider: Option<String>,
    pub duration_ms: Option<i64>,
    pub alerts_checked: bool,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
