//! Enqueueing jobs into apalis's tables on the shared pool, and waking local workers.

use super::{Envelope, Job};
use crate::store::Store;
use anyhow::Context;
use apalis::prelude::TaskBuilder;
use apalis_core::task::status::Status;
use apalis_core::task::task_id::TaskId;
use apalis_sqlite::SqliteTask;
use futures::channel::mpsc;
use sea_orm::DbBackend;
use sea_orm::sqlx::{self, PgPool, SqlitePool};
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// Which database holds the queue.
#[derive(Clone, Debug)]
pub enum QueueBackend {
    /// The embedded default.
    Sqlite(SqlitePool),
    /// Production and scale-out.
    Postgres(PgPool),
}

/// Local workers waiting for pushes, per queue.
type Wakers = HashMap<&'static str, Vec<mpsc::UnboundedSender<()>>>;

/// Pushes jobs; cheap to clone.
#[derive(Clone)]
pub struct JobQueue {
    backend: QueueBackend,
    wakers: Arc<Mutex<Wakers>>,
    takers: Arc<Mutex<HashMap<String, Taker>>>,
}

/// This process's worker for a SQLite queue, which takes the jobs pushed here straight
/// from the push (see [`JobQueue::enqueue_statement`]).
#[derive(Clone)]
pub(crate) struct Taker {
    /// The worker's name, which the jobs are locked to.
    pub worker: String,
    /// Where the worker takes them.
    pub tasks: mpsc::UnboundedSender<SqliteTask>,
}

impl Taker {
    /// The task the worker's fetch would have made of the stored job.
    fn task(&self, job: Vec<u8>, id: ulid::Ulid, queue: &str, run_at: i64) -> SqliteTask {
        TaskBuilder::new(job)
            .task_id(TaskId::from_ulid(id))
            .queue(queue.to_owned().into())
            .status(Status::Queued)
            .attempt(0)
            .max_attempts(1)
            .run_at_timestamp(run_at as u64)
            .lock_at(Some(run_at as u64))
            .lock_by(Some(self.worker.clone()))
            .priority(0)
            .build()
    }
}

/// Jobs stored by the caller's commit, for [`JobQueue::committed`].
pub struct Enqueued {
    queue: &'static str,
    count: usize,
    handoff: Option<(Taker, Vec<SqliteTask>)>,
}

/// Creates apalis's tables, after the store's own migrations (SQLite `Jobs`/`Workers`, Postgres schema `apalis`). Only the
/// migrations run: apalis's `setup` would also change our connection pragmas.
pub async fn migrate(store: &Store) -> anyhow::Result<()> {
    migrate_tables(store)
        .await
        .context("preparing the job queue tables")
}

async fn migrate_tables(store: &Store) -> anyhow::Result<()> {
    match backend_of(store) {
        QueueBackend::Sqlite(pool) => {
            apalis_sqlite::SqliteStorage::migrations()
                .run(&pool)
                .await
                .context("apalis sqlite migrations")?;
            drop_unused_job_indexes(&pool)
                .await
                .context("dropping unused queue indexes")?;
            describe_jobs_to_the_planner(&pool)
                .await
                .context("queue planner statistics")?;
        }
        QueueBackend::Postgres(pool) => {
            apalis_postgres::PostgresStorage::migrations()
                .run(&pool)
                .await
                .context("apalis postgres migrations")?;
        }
    }
    Ok(())
}

/// Indexes apalis's SQLite migrations create for statements Sluice never runs (its job
/// listings and statistics, and marking a fetched job `Running`, which `LOCK_TASKS` in
/// the runner turns off). Every job is written two or three times (pushed, fetched
/// unless handed over, acknowledged) and each write changed both. What Sluice runs finds
/// its rows without them: fetches through `idx_jobs_pending` (`super::FETCH_PENDING`),
/// acknowledgements through the primary key (`super::ACKNOWLEDGE`), orphan recovery
/// through `idx_jobs_status_run_at` or `LIdx`, the purge of finished jobs through
/// `idx_jobs_completed_done_at`, the queue depth through `idx_jobs_pending` or `LIdx`
/// (`tests/it/jobs.rs` checks each plan). Dropped at every start, after apalis's
/// migrations, in case one of them makes one again.
async fn drop_unused_job_indexes(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    for sql in [
        "DROP INDEX IF EXISTS idx_jobs_job_type_status_run_at",
        "DROP INDEX IF EXISTS idx_jobs_claimable",
    ] {
        sqlx::query(sql).execute(pool).await?;
    }
    Ok(())
}

/// SQLite plans apalis's lock and hand-back statements (a join of `Jobs` with a JSON
/// list of job ids; its acknowledgement was one too, see `super::ACKNOWLEDGE`) on the
/// guess that `lock_by = ?` or `status = ?` picks out a few rows. In a queue they pick
/// out nearly all of them: finished jobs keep both. With that guess every such statement
/// scanned the worker's whole history, re-parsing the JSON list per row, and throughput
/// fell as jobs accumulated. Statistics that describe a queue make SQLite look jobs up
/// by id instead. Real statistics are gathered first (bounded), then these two are set,
/// since a momentary sample of a young queue says the opposite.
async fn describe_jobs_to_the_planner(pool: &SqlitePool) -> Result<(), sqlx::Error> {
    let mut conn = pool.acquire().await?;
    for sql in [
        "PRAGMA analysis_limit = 1000",
        "ANALYZE Jobs",
        "DELETE FROM sqlite_stat1 WHERE tbl = 'Jobs' AND idx IN ('LIdx', 'idx_jobs_status_run_at')",
        "INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES \
         ('Jobs', 'LIdx', '1000000 100000'), ('Jobs', 'idx_jobs_status_run_at', '1000000 200000 1')",
        // Makes this connection re-read the statistics; new connections read them anyway.
        "ANALYZE sqlite_schema",
    ] {
        sqlx::query(sql).execute(&mut *conn).await?;
    }
    Ok(())
}

fn backend_of(store: &Store) -> QueueBackend {
    let db = store.db();
    match db.get_database_backend() {
        DbBackend::Postgres => QueueBackend::Postgres(db.get_postgres_connection_pool().clone()),
        _ => QueueBackend::Sqlite(db.get_sqlite_connection_pool().clone()),
    }
}

impl JobQueue {
    /// A queue on the store's database.
    pub fn new(store: &Store) -> Self {
        Self {
            backend: backend_of(store),
            wakers: Arc::default(),
            takers: Arc::default(),
        }
    }

    /// The database behind the queue, for the worker runner.
    pub fn backend(&self) -> &QueueBackend {
        &self.backend
    }

    /// Enqueues a job to run as soon as a worker is free.
    pub async fn push<J: Job>(&self, job: J) -> anyhow::Result<()> {
        self.push_envelope(
            Envelope {
                job,
                attempt: 0,
                due_at_us: None,
            },
            Duration::ZERO,
        )
        .await
    }

    /// Enqueues jobs to run as soon as a worker is free, in one statement.
    pub async fn push_all<J: Job>(&self, jobs: Vec<J>) -> anyhow::Result<()> {
        if jobs.is_empty() {
            return Ok(());
        }
        let due_at_us = Some(chrono::Utc::now().timestamp_micros());
        let count = jobs.len();
        let tasks = jobs
            .into_iter()
            .map(|job| {
                let envelope = Envelope {
                    job,
                    attempt: 0,
                    due_at_us,
                };
                let bytes = serde_json::to_vec(&envelope).context("encoding job")?;
                Ok(TaskBuilder::new(bytes).max_attempts(1).build())
            })
            .collect::<anyhow::Result<Vec<_>>>()?;
        self.insert_tasks(J::QUEUE, tasks).await?;
        metrics::counter!("sluice_jobs_enqueued_total", "queue" => J::QUEUE)
            .increment(count as u64);
        self.wake(J::QUEUE);
        Ok(())
    }

    /// On SQLite, the statement that enqueues `jobs` to run now from inside the caller's
    /// transaction on the same database (apalis's `Jobs` table, as its own push writes
    /// it): the jobs commit with what they are about, in one commit rather than two, and
    /// one cannot be stored without the other. `None` on PostgreSQL, where the caller
    /// pushes them after its commit. Either way the caller then hands what it got back
    /// to [`JobQueue::committed`].
    ///
    /// When this process has a worker for the queue, the jobs are stored already locked
    /// to it, as its fetch would lock them, and handed to it once committed: it takes
    /// them without asking the database (one statement and one commit less per job). If
    /// the process dies first, they are taken back as any fetched job is (see
    /// [`super::SqliteJobs`]).
    pub fn enqueue_statement<J: Job>(
        &self,
        jobs: Vec<J>,
    ) -> anyhow::Result<Option<(sea_orm::Statement, Enqueued)>> {
        if jobs.is_empty() || !matches!(self.backend, QueueBackend::Sqlite(_)) {
            return Ok(None);
        }
        let due_at_us = Some(chrono::Utc::now().timestamp_micros());
        let run_at = chrono::Utc::now().timestamp();
        let taker = self.taker(J::QUEUE);
        let mut values: Vec<sea_orm::Value> = Vec::with_capacity(jobs.len() * 5);
        let mut handed = Vec::new();
        let count = jobs.len();
        for job in jobs {
            let envelope = Envelope {
                job,
                attempt: 0,
                due_at_us,
            };
            let bytes = serde_json::to_vec(&envelope).context("encoding job")?;
            let id = ulid::Ulid::generate();
            values.push(bytes.clone().into());
            values.push(id.to_string().into());
            values.push(J::QUEUE.into());
            values.push(run_at.into());
            if let Some(taker) = &taker {
                values.push(taker.worker.clone().into());
                handed.push(taker.task(bytes, id, J::QUEUE, run_at));
            }
        }
        // As `push_all`'s jobs: one attempt (the runner retries by pushing anew), priority
        // 0, no metadata, no idempotency key; handed ones as `super::FETCH_PENDING`
        // leaves a job it takes.
        let (row, width, locked) = match taker {
            Some(_) => (
                "(?, ?, ?, 'Queued', 0, 1, ?, 0, '{}', ?, strftime('%s', 'now'))",
                5,
                ", lock_by, lock_at",
            ),
            None => ("(?, ?, ?, 'Pending', 0, 1, ?, 0, '{}')", 4, ""),
        };
        let sql = format!(
            "INSERT INTO Jobs (job, id, job_type, status, attempts, max_attempts, run_at, \
             priority, metadata{locked}) VALUES {}",
            vec![row; values.len() / width].join(", ")
        );
        let enqueued = Enqueued {
            queue: J::QUEUE,
            count,
            handoff: taker.map(|taker| (taker, handed)),
        };
        Ok(Some((
            sea_orm::Statement::from_sql_and_values(DbBackend::Sqlite, sql, values),
            enqueued,
        )))
    }

    /// Counts jobs enqueued by [`JobQueue::enqueue_statement`] once they are committed,
    /// and hands them to this process's worker, or wakes it for them.
    pub async fn committed(&self, enqueued: Enqueued) {
        metrics::counter!("sluice_jobs_enqueued_total", "queue" => enqueued.queue)
            .increment(enqueued.count as u64);
        let Some((taker, tasks)) = enqueued.handoff else {
            self.wake(enqueued.queue);
            return;
        };
        let mut refused = Vec::new();
        for task in tasks {
            if let Err(e) = taker.tasks.unbounded_send(task) {
                refused.extend(e.into_inner().task_id().map(|id| id.to_string()));
            }
        }
        if refused.is_empty() {
            return;
        }
        // The worker stopped after the jobs were locked to it: unlock them for whichever
        // worker comes next, rather than leave them until its heartbeat is missed.
        if let QueueBackend::Sqlite(pool) = &self.backend {
            let unlocked = apalis_sqlite::queries::reenqueue_abandoned(
                pool,
                enqueued.queue,
                &taker.worker,
                &refused,
            )
            .await;
            if let Err(e) = unlocked {
                tracing::warn!(error = %e, queue = enqueued.queue, "jobs of a stopped worker wait for its heartbeat to lapse");
            }
        }
        self.wake(enqueued.queue);
    }

    /// Offers jobs pushed to `queue` in this process to `taker` (a worker that has
    /// registered, so that if it dies its jobs are taken back), instead of a ring.
    pub(crate) fn offer_to(&self, queue: &str, taker: Taker) {
        if let Ok(mut takers) = self.takers.lock() {
            takers.insert(queue.to_owned(), taker);
        }
    }

    fn taker(&self, queue: &str) -> Option<Taker> {
        let takers = self.takers.lock().ok()?;
        takers.get(queue).filter(|t| !t.tasks.is_closed()).cloned()
    }

    /// Enqueues a job to run after `delay`.
    pub async fn push_after<J: Job>(&self, job: J, delay: Duration) -> anyhow::Result<()> {
        self.push_envelope(
            Envelope {
                job,
                attempt: 0,
                due_at_us: None,
            },
            delay,
        )
        .await
    }

    /// Enqueues an envelope (used by the runner for retries).
    pub(crate) async fn push_envelope<J: Job>(
        &self,
        mut envelope: Envelope<J>,
        delay: Duration,
    ) -> anyhow::Result<()> {
        let due = chrono::Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
        envelope.due_at_us = Some(due.timestamp_micros());
        let bytes = serde_json::to_vec(&envelope).context("encoding job")?;
        // One apalis attempt per stored job: retries are ours (see the module docs).
        let task = TaskBuilder::new(bytes)
            .run_after(delay)
            .max_attempts(1)
            .build();
        self.insert_tasks(J::QUEUE, vec![task]).await?;
        metrics::counter!("sluice_jobs_enqueued_total", "queue" => J::QUEUE).increment(1);
        if delay.is_zero() {
            self.wake(J::QUEUE);
        }
        Ok(())
    }

    async fn insert_tasks(
        &self,
        queue: &'static str,
        tasks: Vec<SqliteTask>,
    ) -> anyhow::Result<()> {
        match &self.backend {
            QueueBackend::Sqlite(pool) => {
                if let [task] = &tasks[..] {
                    let mut conn = pool.acquire().await.context("queue connection")?;
                    apalis_sqlite::queries::push_tasks(
                        &mut *conn,
                        queue,
                        std::slice::from_ref(task),
                    )
                    .await
                    .context("enqueueing job")?;
                } else {
                    // apalis inserts them one statement each: one transaction keeps it
                    // one commit.
                    let mut tx = pool.begin().await.context("queue connection")?;
                    apalis_sqlite::queries::push_tasks(&mut *tx, queue, &tasks)
                        .await
                        .context("enqueueing jobs")?;
                    tx.commit().await.context("enqueueing jobs")?;
                }
            }
            QueueBackend::Postgres(pool) => {
                let mut conn = pool.acquire().await.context("queue connection")?;
                apalis_postgres::queries::push_tasks(&mut *conn, queue, tasks)
                    .await
                    .context("enqueueing job")?;
            }
        }
        Ok(())
    }

    /// A stream that yields whenever a job is pushed to `queue` in this process, so local
    /// workers start it at once instead of waiting for their next poll.
    pub(crate) fn subscribe(&self, queue: &'static str) -> mpsc::UnboundedReceiver<()> {
        let (tx, rx) = mpsc::unbounded();
        if let Ok(mut wakers) = self.wakers.lock() {
            wakers.entry(queue).or_default().push(tx);
        }
        rx
    }

    /// Wakes the workers of the queue called `name` (a name read back from the database).
    pub(crate) fn wake_named(&self, name: &str) {
        let known = self
            .wakers
            .lock()
            .ok()
            .and_then(|wakers| wakers.keys().find(|q| **q == name).copied());
        if let Some(queue) = known {
            self.wake(queue);
        }
    }

    fn wake(&self, queue: &'static str) {
        if let Ok(mut wakers) = self.wakers.lock()
            && let Some(senders) = wakers.get_mut(queue)
        {
            senders.retain(|tx| tx.unbounded_send(()).is_ok());
        }
    }
}
