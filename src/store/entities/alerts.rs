//! `SeaORM` entity for the `alerts` table (layout of sea-orm-cli generate).

use crate::domain::{
    AlertId, AlertKind, AlertRuleId, AlertState, ConnectionId, FlowId, RunId, TenantId,
};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, Eq, DeriveEntityModel)]
#[sea_orm(table_name = "alerts")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AlertId,
    pub tenant_id: TenantId,
    pub rule_id: Option<AlertRuleId>,
    pub kind: AlertKind,
    pub flow_id: Option<FlowId>,
    pub connection_id: Option<ConnectionId>,
    pub run_id: Option<RunId>,
    pub subject: String,
    pub dedupe_key: String,
    pub state: AlertState,
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
