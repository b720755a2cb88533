//! The sandbox's tables, migrated on its own database under its own migration table
//! (`sandbox_migrations`), so it can share a database with Sluice without sharing
//! Sluice's migration history.

use sea_orm_migration::prelude::*;
use sea_orm_migration::schema::*;

/// The sandbox's migrations.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![Box::new(Tables), Box::new(IdempotencyByAge)]
    }

    fn migration_table_name() -> DynIden {
        "sandbox_migrations".into_iden()
    }
}

#[derive(DeriveMigrationName)]
struct Tables;

#[async_trait::async_trait]
impl MigrationTrait for Tables {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        // Grants: authorization codes, access and refresh tokens, under their digests.
        m.create_table(
            Table::create()
                .table("sandbox_grants")
                .if_not_exists()
                .col(string("id").primary_key())
                .col(string("kind"))
                .col(string("client_id"))
                .col(string("family"))
                .col(string("scope"))
                .col(string_null("redirect_uri"))
                .col(string_null("challenge"))
                .col(timestamp_with_time_zone("expires_at"))
                .col(boolean("used"))
                .col(boolean("revoked"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ix_sandbox_grants_family",
            "sandbox_grants",
            &["family"],
            false,
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sandbox_records")
                .if_not_exists()
                .col(string("object"))
                .col(string("id"))
                .col(big_integer("seq"))
                .col(text("data"))
                .col(string_null("ext_key"))
                .col(timestamp_with_time_zone("updated_at"))
                .primary_key(Index::create().col("object").col("id"))
                .to_owned(),
        )
        .await?;
        index(
            m,
            "ux_sandbox_records_seq",
            "sandbox_records",
            &["object", "seq"],
            true,
        )
        .await?;
        index(
            m,
            "ix_sandbox_records_ext_key",
            "sandbox_records",
            &["object", "ext_key"],
            false,
        )
        .await?;
        // `updated_since` is answered from an index, as a SaaS API with change feeds does;
        // `seq` rides along so a first page's starting point is read from the index alone.
        index(
            m,
            "ix_sandbox_records_updated",
            "sandbox_records",
            &["object", "updated_at", "seq"],
            false,
        )
        .await?;
        m.create_table(
            Table::create()
                .table("sandbox_counters")
                .if_not_exists()
                .col(string("name").primary_key())
                .col(big_integer("value"))
                .to_owned(),
        )
        .await?;
        // Idempotency keys of create calls, remembered like real payment and CRM APIs do.
        m.create_table(
            Table::create()
                .table("sandbox_idempotency")
                .if_not_exists()
                .col(string("key").primary_key())
                .col(text("response"))
                .col(timestamp_with_time_zone("created_at"))
                .to_owned(),
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in [
            "sandbox_idempotency",
            "sandbox_counters",
            "sandbox_records",
            "sandbox_grants",
        ] {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }
}

/// Idempotency keys are forgotten by age: without an index that delete read the whole
/// table (82 MB after a few large benchmark runs) while holding the write lock.
struct IdempotencyByAge;

// Named by hand: the derived name is the file's, which the first migration already has.
impl MigrationName for IdempotencyByAge {
    fn name(&self) -> &str {
        "sandbox_002_idempotency_by_age"
    }
}

#[async_trait::async_trait]
impl MigrationTrait for IdempotencyByAge {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        index(
            m,
            "ix_sandbox_idempotency_created",
            "sandbox_idempotency",
            &["created_at"],
            false,
        )
        .await
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        m.drop_index(
            Index::drop()
                .name("ix_sandbox_idempotency_created")
                .table("sandbox_idempotency")
                .to_owned(),
        )
        .await
    }
}

async fn index(
    m: &SchemaManager<'_>,
    name: &str,
    table: &'static str,
    cols: &[&'static str],
    unique: bool,
) -> Result<(), DbErr> {
    let mut stmt = Index::create();
    stmt.if_not_exists().name(name).table(table);
    for col in cols {
        stmt.col(*col);
    }
    if unique {
        stmt.unique();
    }
    m.create_index(stmt.to_owned()).await
}
