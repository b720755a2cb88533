//! `SeaORM` entity for the `alert_rules` table (layout of sea-orm-cli generate).

use crate::domain::{AlertKind, AlertRuleId, FlowId, TenantId};
use sea_orm::entity::prelude::*;

#[derive(Clone, Debug, PartialEq, DeriveEntityModel)]
#[sea_orm(table_name = "alert_rules")]
pub struct Model {
    #[sea_orm(primary_key, auto_increment = false)]
    pub id: AlertRuleId,
    pub tenant_id: TenantId,
    pub flow_id: Option<FlowId>,
    pub kind: AlertKind,
    #[sea_orm(column_type = "Double", nullable)]
    pub threshold: Option<f64>,
    pub window_minutes: Option<i32>,
    pub throttle_minutes: i32,
    pub enabled: bool,
    pub created_at: DateTimeUtc,
    pub updated_at: DateTimeUtc,
}

#[derive(Copy, Clone, Debug, EnumIter, DeriveRelation)]
pub enum Relation {}

impl ActiveModelBehavior for ActiveModel {}
