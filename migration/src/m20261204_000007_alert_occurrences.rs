//! Each time an alert fires again, what fired it: an alert shows its latest cause and
//! keeps the earlier ones (a run that lost records, then an outage, are two causes).

use sea_orm_migration::{prelude::*, schema::*};

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.create_table(
            Table::create()
                .table("alert_occurrences")
                .if_not_exists()
                .col(pk_uuid("id"))
                .col(uuid("tenant_id"))
                .col(uuid("alert_id"))
                .col(uuid_null("run_id"))
                .col(text("title"))
                .col(text("detail"))
                .col(timestamp_with_time_zone("seen_at"))
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alert_occurrences_tenant")
                        .from("alert_occurrences", "tenant_id")
                        .to("tenants", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .foreign_key(
                    ForeignKey::create()
                        .name("fk_alert_occurrences_alert")
                        .from("alert_occurrences", "alert_id")
                        .to("alerts", "id")
                        .on_delete(ForeignKeyAction::Cascade),
                )
                .to_owned(),
        )
        .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_alert_occurrences_alert")
                .table("alert_occurrences")
                .col("tenant_id")
                .col("alert_id")
                .col("seen_at")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_table(
            Table::drop()
                .table("alert_occurrences")
                .if_exists()
                .to_owned(),
        )
        .await
    }
}
