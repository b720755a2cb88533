//! Bookkeeping for background work: leases (one holder across processes), periodic task
//! clocks, and jobs that ran out of attempts.

use super::entities::{failed_jobs, leases, periodic_tasks};
use super::{Store, now};
use chrono::{DateTime, Utc};
use sea_orm::sea_query::ExprTrait;
use sea_orm::sea_query::{Expr, OnConflict};
use sea_orm::{
    ColumnTrait, ConnectionTrait, DbBackend, DbErr, EntityTrait, QueryFilter, QueryOrder,
    QuerySelect, Set, Statement,
};
use std::time::Duration;

impl Store {
    /// Writes one row, to learn whether the database accepts writes (readiness): a full
    /// disk or a read-only file still answers reads.
    pub async fn write_probe(&self, process: &str) -> Result<(), DbErr> {
        self.try_lease("readiness", process, Duration::ZERO)
            .await
            .map(|_| ())
    }

    /// Takes or renews the named lease for `holder`. True while `holder` holds it; another
    /// process gets it only after it expires. Safe under races: the database decides.
    pub async fn try_lease(&self, name: &str, holder: &str, ttl: Duration) -> Result<bool, DbErr> {
        let at = now();
        let until = at + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::seconds(30));
        leases::Entity::insert(leases::ActiveModel {
            name: Set(name.to_owned()),
            holder: Set(holder.to_owned()),
            expires_at: Set(at),
        })
        .on_conflict(
            OnConflict::column(leases::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        let taken = leases::Entity::update_many()
            .col_expr(leases::Column::Holder, Expr::value(holder))
            .col_expr(leases::Column::ExpiresAt, Expr::value(until))
            .filter(leases::Column::Name.eq(name))
            .filter(
                leases::Column::Holder
                    .eq(holder)
                    .or(leases::Column::ExpiresAt.lte(at)),
            )
            .exec(&self.db)
            .await?;
        Ok(taken.rows_affected == 1)
    }

    /// Gives up a lease early (on shutdown) so another process takes over at once.
    pub async fn release_lease(&self, name: &str, holder: &str) -> Result<(), DbErr> {
        leases::Entity::update_many()
            .col_expr(leases::Column::ExpiresAt, Expr::value(now()))
            .filter(leases::Column::Name.eq(name))
            .filter(leases::Column::Holder.eq(holder))
            .exec(&self.db)
            .await
            .map(|_| ())
    }

    /// Claims the due tick of a periodic task: moves its clock to `next` only if it still
    /// reads what we saw, so two schedulers can never both claim one tick, and a long
    /// downtime yields a single catch-up run rather than one per missed tick.
    pub async fn claim_periodic(&self, name: &str, next: DateTime<Utc>) -> Result<bool, DbErr> {
        let at = now();
        periodic_tasks::Entity::insert(periodic_tasks::ActiveModel {
            name: Set(name.to_owned()),
            next_run_at: Set(at),
            last_run_at: Set(None),
        })
        .on_conflict(
            OnConflict::column(periodic_tasks::Column::Name)
                .do_nothing()
                .to_owned(),
        )
        .exec_without_returning(&self.db)
        .await?;
        let Some(row) = periodic_tasks::Entity::find_by_id(name.to_owned())
            .one(&self.db)
            .await?
        else {
            return Ok(false);
        };
        if row.next_run_at > at {
            return Ok(false);
        }
        let claimed = periodic_tasks::Entity::update_many()
            .col_expr(periodic_tasks::Column::NextRunAt, Expr::value(next))
            .col_expr(periodic_tasks::Column::LastRunAt, Expr::value(at))
            .filter(periodic_tasks::Column::Name.eq(name))
            .filter(periodic_tasks::Column::NextRunAt.eq(row.next_run_at))
            .exec(&self.db)
            .await?;
        Ok(claimed.rows_affected == 1)
    }

    /// Records a job that ran out of attempts (its arguments hold ids only, no secrets).
    pub async fn record_failed_job(
        &self,
        queue: &str,
        payload: &serde_json::Value,
        attempts: u32,
        last_error: &str,
    ) -> Result<(), DbErr> {
        failed_jobs::Entity::insert(failed_jobs::ActiveModel {
            id: Set(uuid::Uuid::now_v7()),
            queue: Set(queue.to_owned()),
            payload: Set(payload.to_string()),
            attempts: Set(i32::try_from(attempts).unwrap_or(i32::MAX)),
            last_error: Set(last_error.to_owned()),
            failed_at: Set(now()),
        })
        .exec_without_returning(&self.db)
        .await
        .map(|_| ())
    }

    /// Most recent failed jobs of a queue.
    pub async fn failed_jobs(
        &self,
        queue: &str,
        limit: u64,
    ) -> Result<Vec<failed_jobs::Model>, DbErr> {
        failed_jobs::Entity::find()
            .filter(failed_jobs::Column::Queue.eq(queue))
            .order_by_desc(failed_jobs::Column::FailedAt)
            .limit(limit)
            .all(&self.db)
            .await
    }
}

impl Store {
    /// Deletes queue rows of jobs that ended before `before`. The queue keeps every job it
    /// ran; without this its tables grow forever and its own queries slow down with them.
    /// Jobs that ran out of attempts are kept in `failed_jobs` by the runner.
    pub async fn purge_finished_jobs(&self, before: DateTime<Utc>) -> Result<u64, DbErr> {
        // A batch at a time, like every retention delete (see `retention`).
        let (table, at): (&str, sea_orm::Value) = match self.backend() {
            DbBackend::Postgres => ("apalis.jobs", before.into()),
            _ => ("Jobs", before.timestamp().into()),
        };
        // Worded as the SQLite queue's index of finished jobs is (`idx_jobs_completed_done_at`,
        // partial on the first two conditions), so that SQLite searches it, not the table.
        let sql = format!(
            "DELETE FROM {table} WHERE id IN (SELECT id FROM {table} WHERE \
             status IN ('Done', 'Failed', 'Killed') AND done_at IS NOT NULL AND done_at < $1 \
             AND (status <> 'Failed' OR attempts >= max_attempts) LIMIT {})",
            super::retention::BATCH
        );
        let mut removed = 0;
        loop {
            let done = self
                .db
                .execute_raw(Statement::from_sql_and_values(
                    self.backend(),
                    sql.clone(),
                    [at.clone()],
                ))
                .await?
                .rows_affected();
            removed += done;
            if done < super::retention::BATCH {
                return Ok(removed);
            }
            super::retention::between_batches().await;
        }
    }
}
