//! `ix_runs_tenant_flow_created` (tenant, flow, created_at) serves no query: a flow's runs
//! are listed newest first by id (time-ordered), through `ix_runs_tenant_flow_id`, and no
//! query filters or sorts a flow's runs by creation time. Each run's insert wrote it.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_runs_tenant_flow_created")
                .table("runs")
                .if_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_runs_tenant_flow_created")
                .table("runs")
                .col("tenant_id")
                .col("flow_id")
                .col("created_at")
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}
