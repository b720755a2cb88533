//! `ix_runs_finished` (finished_at) serves retention, which asks for runs finished before
//! a time. It indexed every run from its insert, with a null end that no query looks for:
//! one more page written when each run is created. Made again over finished runs only
//! (a comparison on `finished_at` implies it is not null, so the planner still uses it).

use sea_orm_migration::prelude::*;

#[derive(DeriveMigrationName)]
pub struct Migration;

#[async_trait::async_trait]
impl MigrationTrait for Migration {
    async fn up(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ix_runs_finished")
            .await?;
        db.execute_unprepared(
            "CREATE INDEX IF NOT EXISTS ix_runs_finished ON runs (finished_at) \
             WHERE finished_at IS NOT NULL",
        )
        .await?;
        Ok(())
    }

    async fn down(&self, m: &SchemaManager) -> Result<(), DbErr> {
        let db = m.get_connection();
        db.execute_unprepared("DROP INDEX IF EXISTS ix_runs_finished")
            .await?;
        db.execute_unprepared("CREATE INDEX IF NOT EXISTS ix_runs_finished ON runs (finished_at)")
            .await?;
        Ok(())
    }
}
