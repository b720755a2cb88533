//! A dead letter remembers the run that first failed its record: when a replay or a
//! later run fails it again, `run_id` moves on, and the first run must still list it.

use sea_orm_migration::prelude::*;
use sea_orm_migration::sea_orm::ConnectionTrait;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.alter_table(
            Table::alter()
                .table("dead_letters")
                .add_column(ColumnDef::new("first_run_id").uuid().null())
                .to_owned(),
        )
        .await?;
        // Before this, a record's first run was not kept: its latest is the best known.
        m.get_connection()
            .execute_unprepared("UPDATE dead_letters SET first_run_id = run_id")
            .await?;
        m.create_index(
            Index::create()
                .if_not_exists()
                .name("ix_dead_letters_first_run")
                .table("dead_letters")
                .col("tenant_id")
                .col("first_run_id")
                .to_owned(),
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .if_exists()
                .name("ix_dead_letters_first_run")
                .table("dead_letters")
                .to_owned(),
        )
        .await?;
        m.alter_table(
            Table::alter()
                .table("dead_letters")
                .drop_column("first_run_id")
                .to_owned(),
        )
        .await
    }
}
