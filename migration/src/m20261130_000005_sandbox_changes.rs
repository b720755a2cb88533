//! The sandbox answers `updated_since` from an index, as a SaaS API with change feeds
//! does: an incremental first page (and its total) no longer scans every record.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const NAME: &str = "ix_sandbox_records_updated";

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // `seq` rides along so the first page's starting point is read from the index alone.
        m.create_index(
            Index::create()
                .if_not_exists()
                .name(NAME)
                .table("sandbox_records")
                .col("object")
                .col("updated_at")
                .col("seq")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .if_exists()
                .name(NAME)
                .table("sandbox_records")
                .to_owned(),
        )
        .await
    }
}
