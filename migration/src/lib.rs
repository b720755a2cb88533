//! Database schema migrations, applied in order at start-up and by `sluice migrate`.

pub use sea_orm_migration::prelude::*;

mod m20261121_000001_accounts;
mod m20261122_000002_connections;
mod m20261123_000003_flows;
mod m20261124_000004_observability;
mod m20261130_000005_sandbox_changes;
mod m20261203_000006_sandbox_moves_out;
mod m20261204_000007_alert_occurrences;
mod m20261204_000008_dead_letter_first_run;
mod m20261204_000009_tenant_logos;
mod m20261205_000010_runs_index_prefix;
mod m20261205_000011_runs_unused_index;
mod m20261205_000012_runs_finished_partial;

/// All migrations, oldest first.
pub struct Migrator;

#[async_trait::async_trait]
impl MigratorTrait for Migrator {
    fn migrations() -> Vec<Box<dyn MigrationTrait>> {
        vec![
            Box::new(m20261121_000001_accounts::Migration),
            Box::new(m20261122_000002_connections::Migration),
            Box::new(m20261123_000003_flows::Migration),
            Box::new(m20261124_000004_observability::Migration),
            Box::new(m20261130_000005_sandbox_changes::Migration),
            Box::new(m20261203_000006_sandbox_moves_out::Migration),
            Box::new(m20261204_000007_alert_occurrences::Migration),
            Box::new(m20261204_000008_dead_letter_first_run::Migration),
            Box::new(m20261204_000009_tenant_logos::Migration),
            Box::new(m20261205_000010_runs_index_prefix::Migration),
            Box::new(m20261205_000011_runs_unused_index::Migration),
            Box::new(m20261205_000012_runs_finished_partial::Migration),
        ]
    }
}
