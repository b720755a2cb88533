//! Metric rollups: per tenant, flow and minute/hour, added to as each run finishes (in the
//! run's own finishing transaction), so dashboards read a few hundred small rows instead
//! of scanning runs. Raw runs may be pruned; rollups stay.

use super::entities::runs;
use super::{Store, now};
use crate::domain::{FlowId, RunStatus, TenantCtx, TenantId};
use chrono::{DateTime, Utc};
use sea_orm::{ConnectionTrait, DbErr, QueryResult, Statement, Value};

/// Seconds in a minute bucket.
pub const MINUTE: i32 = 60;
/// Seconds in an hour bucket.
pub const HOUR: i32 = 3600;

/// Totals over a period.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Totals {
    /// Finished runs.
    pub runs: i64,
    /// Runs that succeeded outright.
    pub succeeded: i64,
    /// Runs that finished with record failures.
    pub partially_failed: i64,
    /// Runs that failed.
    pub failed: i64,
    /// Records read from sources.
    pub records_read: i64,
    /// Records written to destinations.
    pub records_written: i64,
    /// Records sent to the dead letters.
    pub records_failed: i64,
    /// Summed run time.
    pub duration_ms: i64,
}

impl Totals {
    /// Share of runs that delivered every record, in percent (none without runs). A run
    /// that went through but lost records to the dead letters is not a success.
    pub fn success_rate(&self) -> Option<f64> {
        (self.runs > 0).then(|| 100.0 * self.succeeded as f64 / self.runs as f64)
    }

    /// Share of runs that failed or lost records, in percent (none without runs).
    pub fn error_rate(&self) -> Option<f64> {
        (self.runs > 0)
            .then(|| 100.0 * (self.failed + self.partially_failed) as f64 / self.runs as f64)
    }

    /// Runs that failed or lost records.
    pub fn with_errors(&self) -> i64 {
        self.failed + self.partially_failed
    }

    /// Share of the records a destination was given that failed, in percent (none
    /// before any record was written or failed).
    pub fn record_failure_rate(&self) -> Option<f64> {
        let handled = self.records_written + self.records_failed;
        (handled > 0).then(|| 100.0 * self.records_failed as f64 / handled as f64)
    }

    /// Adds another period's figures to these.
    pub fn add(&mut self, other: &Totals) {
        self.runs += other.runs;
        self.succeeded += other.succeeded;
        self.partially_failed += other.partially_failed;
        self.failed += other.failed;
        self.records_read += other.records_read;
        self.records_written += other.records_written;
        self.records_failed += other.records_failed;
        self.duration_ms += other.duration_ms;
    }

    fn read(row: &QueryResult) -> Result<Self, DbErr> {
        Ok(Self {
            runs: row.try_get("", "runs")?,
            succeeded: row.try_get("", "succeeded")?,
            partially_failed: row.try_get("", "partially_failed")?,
            failed: row.try_get("", "failed")?,
            records_read: row.try_get("", "records_read")?,
            records_written: row.try_get("", "records_written")?,
            records_failed: row.try_get("", "records_failed")?,
            duration_ms: row.try_get("", "duration_ms")?,
        })
    }
}

/// One bucket of a time series.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bucket {
    /// Start of the bucket (Unix seconds).
    pub start: i64,
    /// What finished in it.
    pub totals: Totals,
}

const SUMS: &str = "COALESCE(CAST(SUM(runs) AS BIGINT), 0) AS runs, \
    COALESCE(CAST(SUM(succeeded) AS BIGINT), 0) AS succeeded, \
    COALESCE(CAST(SUM(partially_failed) AS BIGINT), 0) AS partially_failed, \
    COALESCE(CAST(SUM(failed) AS BIGINT), 0) AS failed, \
    COALESCE(CAST(SUM(records_read) AS BIGINT), 0) AS records_read, \
    COALESCE(CAST(SUM(records_written) AS BIGINT), 0) AS records_written, \
    COALESCE(CAST(SUM(records_failed) AS BIGINT), 0) AS records_failed, \
    COALESCE(CAST(SUM(duration_ms) AS BIGINT), 0) AS duration_ms";

/// The start of the bucket holding `at`.
pub fn bucket_of(at: DateTime<Utc>, grain: i32) -> i64 {
    let g = i64::from(grain);
    at.timestamp().div_euclid(g) * g
}

/// Adds a finished run to its minute and hour rollups (inside the caller's transaction).
pub async fn add_to_rollups<C: ConnectionTrait>(db: &C, run: &runs::Model) -> Result<(), DbErr> {
    let status = run.status;
    let at = run.finished_at.unwrap_or_else(now);
    let flag = |s: RunStatus| i64::from(status == s);
    // Both grains in one statement (a run's last commit pays for each one): the minute's
    // row takes $2 and $3, the hour's $13 and $14, and they share the rest.
    let values: Vec<Value> = vec![
        run.tenant_id.into(),
        MINUTE.into(),
        bucket_of(at, MINUTE).into(),
        run.flow_id.into(),
        flag(RunStatus::Succeeded).into(),
        flag(RunStatus::PartiallyFailed).into(),
        flag(RunStatus::Failed).into(),
        flag(RunStatus::Cancelled).into(),
        run.records_read.into(),
        run.records_written.into(),
        run.records_failed.into(),
        run.duration_ms.unwrap_or(0).into(),
        HOUR.into(),
        bucket_of(at, HOUR).into(),
    ];
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "INSERT INTO metric_rollups (tenant_id, grain, bucket, flow_id, runs, succeeded, \
         partially_failed, failed, cancelled, records_read, records_written, records_failed, \
         duration_ms) VALUES ($1, $2, $3, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12), \
         ($1, $13, $14, $4, 1, $5, $6, $7, $8, $9, $10, $11, $12) \
         ON CONFLICT (tenant_id, grain, bucket, flow_id) DO UPDATE SET \
         runs = metric_rollups.runs + 1, \
         succeeded = metric_rollups.succeeded + excluded.succeeded, \
         partially_failed = metric_rollups.partially_failed + excluded.partially_failed, \
         failed = metric_rollups.failed + excluded.failed, \
         cancelled = metric_rollups.cancelled + excluded.cancelled, \
         records_read = metric_rollups.records_read + excluded.records_read, \
         records_written = metric_rollups.records_written + excluded.records_written, \
         records_failed = metric_rollups.records_failed + excluded.records_failed, \
         duration_ms = metric_rollups.duration_ms + excluded.duration_ms",
        values,
    ))
    .await?;
    Ok(())
}

impl Store {
    /// The tenant's (or one flow's) totals since `since`, at `grain` resolution.
    pub async fn rollup_totals(
        &self,
        ctx: &TenantCtx,
        flow: Option<FlowId>,
        grain: i32,
        since: DateTime<Utc>,
    ) -> Result<Totals, DbErr> {
        let mut values: Vec<Value> = vec![
            ctx.tenant_id().into(),
            grain.into(),
            bucket_of(since, grain).into(),
        ];
        let mut sql = format!(
            "SELECT {SUMS} FROM metric_rollups WHERE tenant_id = $1 AND grain = $2 AND bucket >= $3"
        );
        if let Some(f) = flow {
            values.push(f.into());
            sql.push_str(" AND flow_id = $4");
        }
        let row = self
            .db
            .query_one_raw(Statement::from_sql_and_values(self.backend(), sql, values))
            .await?;
        row.as_ref()
            .map(Totals::read)
            .transpose()
            .map(Option::unwrap_or_default)
    }

    /// The tenant's rollup rows of one grain since `since`: (bucket, flow, totals). The
    /// dashboard derives all its figures from these in one query.
    pub async fn rollup_rows(
        &self,
        ctx: &TenantCtx,
        grain: i32,
        since: DateTime<Utc>,
    ) -> Result<Vec<(i64, FlowId, Totals)>, DbErr> {
        let values: Vec<Value> = vec![
            ctx.tenant_id().into(),
            grain.into(),
            bucket_of(since, grain).into(),
        ];
        self.db
            .query_all_raw(Statement::from_sql_and_values(
                self.backend(),
                "SELECT bucket, flow_id, runs, succeeded, partially_failed, failed, records_read, \
                 records_written, records_failed, duration_ms FROM metric_rollups \
                 WHERE tenant_id = $1 AND grain = $2 AND bucket >= $3",
                values,
            ))
            .await?
            .iter()
            .map(|row| {
                Ok((
                    row.try_get("", "bucket")?,
                    row.try_get::<FlowId>("", "flow_id")?,
                    Totals::read(row)?,
                ))
            })
            .collect()
    }

    /// Writes precomputed rollup rows of one tenant (seeding).
    pub async fn insert_rollups_bulk(
        &self,
        tenant: TenantId,
        rows: &[((i32, i64, FlowId), Totals)],
    ) -> Result<(), DbErr> {
        if rows.is_empty() {
            return Ok(());
        }
        let mut marks = super::sql::Marks::new(self.backend());
        let mut values: Vec<Value> = Vec::with_capacity(rows.len() * 13);
        let mut tuples = Vec::with_capacity(rows.len());
        for ((grain, bucket, flow), t) in rows {
            tuples.push(marks.row(13));
            values.extend([
                tenant.into(),
                (*grain).into(),
                (*bucket).into(),
                (*flow).into(),
                t.runs.into(),
                t.succeeded.into(),
                t.partially_failed.into(),
                t.failed.into(),
                (t.runs - t.succeeded - t.partially_failed - t.failed).into(),
                t.records_read.into(),
                t.records_written.into(),
                t.records_failed.into(),
                t.duration_ms.into(),
            ]);
        }
        let sql = format!(
            "INSERT INTO metric_rollups (tenant_id, grain, bucket, flow_id, runs, succeeded, \
             partially_failed, failed, cancelled, records_read, records_written, records_failed, \
             duration_ms) VALUES {}",
            tuples.join(",")
        );
        self.db
            .execute_raw(Statement::from_sql_and_values(self.backend(), sql, values))
            .await?;
        Ok(())
    }

    /// Refreshes the planner's statistics after a bulk load, so queries do not run on
    /// plans made for empty tables. On Postgres it vacuums too: the visibility map lets
    /// index-only scans skip the heap, and autovacuum does not start mid-benchmark.
    pub async fn analyze(&self) -> Result<(), DbErr> {
        let sql = match self.backend() {
            sea_orm::DbBackend::Postgres => "VACUUM ANALYZE",
            _ => "ANALYZE",
        };
        self.db
            .execute_raw(Statement::from_string(self.backend(), sql))
            .await?;
        if self.backend() == sea_orm::DbBackend::Postgres {
            // Flush the load now rather than in a checkpoint during the next requests;
            // needs the pg_checkpoint role, so it is best effort.
            let _ = self
                .db
                .execute_raw(Statement::from_string(self.backend(), "CHECKPOINT"))
                .await;
        }
        Ok(())
    }

    /// Jobs waiting per queue (pending in the job tables), for the queue-depth gauge.
    pub async fn queue_depths(&self) -> Result<Vec<(String, i64)>, DbErr> {
        let sql = match self.backend() {
            sea_orm::DbBackend::Postgres => {
                "SELECT job_type, CAST(COUNT(*) AS BIGINT) AS n FROM apalis.jobs \
                 WHERE status = 'Pending' GROUP BY job_type"
            }
            _ => {
                // Worded as the queue's index of waiting jobs is (`idx_jobs_pending`): a
                // pending job is never locked, and SQLite then reads only that index.
                "SELECT job_type, CAST(COUNT(*) AS BIGINT) AS n FROM Jobs \
                 WHERE status = 'Pending' AND lock_by IS NULL GROUP BY job_type"
            }
        };
        self.db
            .query_all_raw(Statement::from_string(self.backend(), sql))
            .await?
            .iter()
            .map(|r| Ok((r.try_get("", "job_type")?, r.try_get("", "n")?)))
            .collect()
    }

    /// Forgets minute rollups older than `before` (hourly ones are kept).
    pub async fn prune_minute_rollups(&self, before: DateTime<Utc>) -> Result<u64, DbErr> {
        Ok(self
            .db
            .execute_raw(Statement::from_sql_and_values(
                self.backend(),
                "DELETE FROM metric_rollups WHERE grain = $1 AND bucket < $2",
                [MINUTE.into(), bucket_of(before, MINUTE).into()],
            ))
            .await?
            .rows_affected())
    }
}
