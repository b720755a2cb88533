//! A workspace's logo, shown to its end customers on connect-link pages instead of
//! Sluice's. Kept apart from `tenants` so reading a tenant never loads the image.

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("tenant_logos")
                .if_not_exists()
                .col(pk_uuid("tenant_id"))
                .col(text("content_type"))
                .col(blob("image"))
                .col(timestamp_with_time_zone("updated_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_tenant_logos_tenant")
                        .from("tenant_logos", "tenant_id")
                        .to("tenants", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(Table::drop().table("tenant_logos").if_exists().to_owned())
            .await
    }
}
