//! The built-in sandbox keeps its tables under its own migrations now (the
//! `sluice-sandbox` crate, table `sandbox_migrations`), like the external system it
//! stands in for. Sluice's copies go: on SQLite they were never used (the sandbox has a
//! database file of its own); where the two share a database, the sandbox recreates its
//! tables right after Sluice's migrations, and its demo data is seeded again.

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

const TABLES: [&str; 4] = [
    "sandbox_idempotency",
    "sandbox_counters",
    "sandbox_records",
    "sandbox_grants",
];

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        for table in TABLES {
            m.drop_table(Table::drop().table(table).if_exists().to_owned())
                .await?;
        }
        Ok(())
    }

    async fn down(&self, _m: &SchemaManager) -> Result<(), DbErr> {
        // The sandbox's own migrations create them where it runs.
        Ok(())
    }
}
