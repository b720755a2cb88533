//! `ix_runs_tenant_status` (tenant, status) is a prefix of `ix_runs_tenant_status_id`
//! (tenant, status, id), which serves every query it served. Each run's insert and each
//! of its status changes wrote both.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_runs_tenant_status")
                .table("runs")
                .if_exists()
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_index(
            Index::create()
                .name("ix_runs_tenant_status")
                .table("runs")
                .col("tenant_id")
                .col("status")
                .if_not_exists()
                .to_owned(),
        )
        .await
    }
}
