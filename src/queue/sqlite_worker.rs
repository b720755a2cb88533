//! How a worker takes jobs from the SQLite queue: apalis's worker, tables and queries,
//! with fewer trips to the database than `apalis_sqlite::SqliteStorage` makes.
//!
//! That storage asks the database for jobs every time its worker wakes, whatever woke it
//! (a finished job, the batch it just fetched running out), and wraps each fetch and
//! each acknowledgement in a transaction of its own. A one-record run cost three
//! fetches and an acknowledgement, twelve round trips to SQLite's thread, each several
//! context switches. Here a worker asks only when there may be something to take (a job
//! was pushed in this process, its poll interval came round, or its last fetch came back
//! full), and each fetch or acknowledgement is a single statement, atomic on its own.
//! Jobs it did not push (another process's, jobs scheduled for later, jobs taken back
//! from a dead worker) are found by [`watch_due`], one statement for all the queues.

use super::JobQueue;
use apalis::prelude::{Backend, Task, WorkerContext};
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer};
use apalis_core::backend::{BackendConfig, WireFormatBackend, WorkerFilter};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_sqlite::{Config, Error, JsonCodec, SqlitePool, queries};
use futures::StreamExt;
use futures::channel::mpsc::UnboundedReceiver;
use sea_orm::sqlx;
use serde_json::Value;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// A queue's jobs for one worker.
pub struct SqliteJobs<Args> {
    persistence: Persisted<SqliteQueue>,
    /// Rings when this process pushes a job to the queue, or [`watch_due`] found one due.
    pushes: UnboundedReceiver<()>,
    gate: Arc<FetchGate>,
    codec: JsonCodec<Vec<u8>>,
    args: PhantomData<Args>,
}

impl<Args> SqliteJobs<Args> {
    /// Jobs of `config`'s queue, looked for at the start and when `pushes` rings.
    pub fn new(pool: &SqlitePool, config: Config, pushes: UnboundedReceiver<()>) -> Self {
        let gate = Arc::new(FetchGate {
            due: AtomicBool::new(true),
            more: AtomicBool::new(false),
        });
        Self {
            persistence: Persisted::new(SqliteQueue {
                pool: pool.clone(),
                config,
                gate: gate.clone(),
            }),
            pushes,
            gate,
            codec: JsonCodec::default(),
            args: PhantomData,
        }
    }
}

/// Whether a fetch is worth a trip to the database.
struct FetchGate {
    /// A push or a ring from [`watch_due`] came since the last fetch began.
    due: AtomicBool,
    /// The last fetch came back full: more may be waiting.
    more: AtomicBool,
}

impl FetchGate {
    fn worth_fetching(&self) -> bool {
        // Cleared before the fetch: a push committed after it rings again.
        self.due.swap(false, Ordering::AcqRel) || self.more.load(Ordering::Acquire)
    }

    fn fetched(&self, count: usize, batch: usize) {
        self.more.store(count >= batch, Ordering::Release);
    }
}

#[derive(Clone)]
struct SqliteQueue {
    pool: SqlitePool,
    config: Config,
    gate: Arc<FetchGate>,
}

impl Persistence for SqliteQueue {
    type Compact = Vec<u8>;
    type Response = Value;
    type Error = Error;

    /// As apalis does: takes back this worker's jobs left from a previous life.
    async fn register(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        queries::reenqueue_orphaned(
            &mut *tx,
            self.config.heartbeat_interval.as_secs() as i64,
            self.config.queue.as_ref(),
            &WorkerFilter::Only(worker.name().to_owned()),
        )
        .await?;
        queries::register_worker(&mut *tx, &self.config, worker, "SqliteStorage").await?;
        tx.commit().await?;
        Ok(())
    }

    /// As apalis does: proves this worker alive, and takes back dead workers' jobs.
    async fn heartbeat(&mut self, worker: &WorkerContext) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        queries::keep_alive(&mut *tx, &self.config, worker).await?;
        queries::reenqueue_orphaned(
            &mut *tx,
            self.config.orphaned_duration().as_secs() as i64,
            self.config.queue.as_ref(),
            &WorkerFilter::AllExcept(worker.name().to_owned()),
        )
        .await?;
        tx.commit().await?;
        Ok(())
    }

    async fn fetch_next(&mut self, worker: &WorkerContext) -> Result<Vec<Task<Vec<u8>>>, Error> {
        if !self.gate.worth_fetching() {
            // The worker parks until its next push or poll tick.
            return Ok(Vec::new());
        }
        let tasks = fetch_pending(&self.pool, &self.config, worker).await?;
        self.gate.fetched(tasks.len(), self.config.batch_size);
        Ok(tasks)
    }

    async fn reenqueue_abandoned(
        &mut self,
        tasks: Vec<Task<Vec<u8>>>,
        worker: &WorkerContext,
    ) -> Result<u64, Error> {
        let ids: Vec<String> = tasks
            .iter()
            .filter_map(|t| t.task_id().map(|id| id.to_string()))
            .collect();
        let count = queries::reenqueue_abandoned(
            &self.pool,
            self.config.queue.as_ref(),
            worker.name(),
            &ids,
        )
        .await?;
        if count as usize != tasks.len() {
            return Err(Error::ReenqueueMismatch {
                queued: tasks.len(),
                abandoned: count as usize,
            });
        }
        Ok(count)
    }

    async fn handle_events(
        &mut self,
        events: Vec<TaskEvent<Value>>,
        worker: &WorkerContext,
    ) -> Result<(), Error> {
        let locks: Vec<String> = events
            .iter()
            .filter_map(|e| match e {
                TaskEvent::Lock { task_id, .. } => Some(task_id.to_string()),
                _ => None,
            })
            .collect();
        let acks: Vec<_> = events
            .iter()
            .filter_map(|e| match e {
                TaskEvent::Complete(payload) => Some(payload),
                _ => None,
            })
            .collect();
        match (locks.is_empty(), acks.is_empty()) {
            (true, true) => {}
            (true, false) => {
                queries::ack_tasks(&self.pool, &acks, worker.name()).await?;
            }
            (false, true) => {
                queries::lock_tasks(&self.pool, &locks, worker.name()).await?;
            }
            (false, false) => {
                let mut tx = self.pool.begin().await?;
                queries::lock_tasks(&mut *tx, &locks, worker.name()).await?;
                queries::ack_tasks(&mut *tx, &acks, worker.name()).await?;
                tx.commit().await?;
            }
        }
        Ok(())
    }

    /// Not used: jobs are pushed through [`super::JobQueue`].
    async fn push_tasks(&mut self, tasks: Vec<Task<Vec<u8>>>) -> Result<(), Error> {
        let mut tx = self.pool.begin().await?;
        apalis_sqlite::queries::push_tasks(&mut *tx, self.config.queue.as_ref(), &tasks).await?;
        tx.commit().await?;
        Ok(())
    }
}

/// apalis's fetch (`queries/backend/fetch_next.sql`) without its second branch. That
/// branch takes back `Failed` jobs with apalis attempts left, and Sluice stores every job
/// with one apalis attempt (the runner retries by pushing anew, see `super::storage`), so
/// it never finds one; yet merging the two branches built and freed a temporary b-tree at
/// every fetch. The pending jobs come in `idx_jobs_pending`'s order, as apalis takes them.
pub const FETCH_PENDING: &str = "UPDATE Jobs SET status = 'Queued', lock_by = ?1, \
    lock_at = strftime('%s', 'now') WHERE ROWID IN (SELECT ROWID FROM Jobs \
    WHERE job_type = ?2 AND status = 'Pending' AND lock_by IS NULL \
    AND (run_at IS NULL OR run_at <= ?4) ORDER BY priority DESC, run_at ASC, id ASC LIMIT ?3) \
    RETURNING job, id, job_type, status, attempts, max_attempts, run_at, lock_at, lock_by, \
    done_at, priority, metadata, idempotency_key";

/// The queues with a job due: pending, not locked, its time come (`idx_jobs_pending`).
pub const DUE_QUEUES: &str = "SELECT DISTINCT job_type FROM Jobs \
    WHERE status = 'Pending' AND lock_by IS NULL AND (run_at IS NULL OR run_at <= ?1)";

/// Every `interval`, wakes the workers of the queues that have a job due which no push
/// in this process announced: one statement for all the queues, where each queue's
/// worker used to fetch on a timer of its own (nine fetches a tick, idle or not).
pub async fn watch_due(pool: SqlitePool, queue: JobQueue, interval: Duration) {
    let mut ticks = tokio::time::interval(interval);
    ticks.set_missed_tick_behavior(MissedTickBehavior::Delay);
    loop {
        ticks.tick().await;
        let now = chrono::Utc::now().timestamp();
        match sqlx::query_scalar::<_, String>(DUE_QUEUES)
            .bind(now)
            .fetch_all(&pool)
            .await
        {
            Ok(due) => due.iter().for_each(|name| queue.wake_named(name)),
            Err(e) => tracing::warn!(error = %e, "could not look for due jobs"),
        }
    }
}

/// Locks up to a batch of the queue's due jobs to `worker` and returns them, as apalis's
/// `queries::fetch_next` does for such jobs.
async fn fetch_pending(
    pool: &SqlitePool,
    config: &Config,
    worker: &WorkerContext,
) -> Result<Vec<Task<Vec<u8>>>, Error> {
    use sqlx::Row;
    let now = chrono::Utc::now().timestamp();
    let rows = sqlx::query(FETCH_PENDING)
        .bind(worker.name())
        .bind(config.queue.as_ref())
        .bind(config.batch_size as i64)
        .bind(now)
        .fetch_all(pool)
        .await?;
    rows.iter()
        .map(|row| {
            let id: String = row.try_get(1)?;
            let id = ulid::Ulid::from_string(&id).map_err(|e| sqlx::Error::Decode(e.into()))?;
            let status: String = row.try_get(3)?;
            let status = status.parse().map_err(Error::StatusError)?;
            let metadata: Option<String> = row.try_get(11)?;
            let mut task = TaskBuilder::new(row.try_get::<Vec<u8>, _>(0)?)
                .task_id(TaskId::from_ulid(id))
                .queue(row.try_get::<String, _>(2)?.into())
                .status(status)
                .attempt(row.try_get::<i64, _>(4)? as usize)
                .max_attempts(row.try_get::<i64, _>(5)? as usize)
                .run_at_timestamp(row.try_get::<i64, _>(6)? as u64)
                .lock_at(row.try_get::<Option<i64>, _>(7)?.map(|t| t as u64))
                .lock_by(row.try_get(8)?)
                .done_at(row.try_get::<Option<i64>, _>(9)?.map(|t| t as u64))
                .priority(row.try_get::<i64, _>(10)? as usize)
                .with_metadata(
                    metadata
                        .and_then(|m| serde_json::from_str(&m).ok())
                        .unwrap_or_default(),
                );
            if let Some(key) = row.try_get::<Option<String>, _>(12)? {
                task = task.idempotency_key(key);
            }
            Ok(task.build())
        })
        .collect()
}

impl<Args> Backend for SqliteJobs<Args> {
    type Task = Task<Vec<u8>>;
    type Error = Error;

    fn poll_ready(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Error>> {
        let heartbeat = self.persistence.config.heartbeat_interval;
        self.persistence.poll_ready(cx, worker, heartbeat)
    }

    /// The rings are taken until pending on every call, so the stream stays armed whatever
    /// woke the worker.
    fn poll_next(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Option<Result<Self::Task, Error>>> {
        let mut due = false;
        while let Poll::Ready(Some(())) = self.pushes.poll_next_unpin(cx) {
            due = true;
        }
        if due {
            self.gate.due.store(true, Ordering::Release);
        }
        self.persistence.poll_next(cx, worker)
    }

    fn poll_close(
        &mut self,
        cx: &mut Context<'_>,
        worker: &WorkerContext,
    ) -> Poll<Result<(), Error>> {
        self.persistence.poll_close(cx, worker)
    }
}

impl<Args> BackendConfig for SqliteJobs<Args> {
    type Args = Args;
    type Id = ulid::Ulid;
    type Kind = Durable;
    type Config = Config;
    type Layer = TaskPersistLayer<JsonCodec<Value>, Value>;

    fn config(&self) -> &Config {
        &self.persistence.config
    }

    fn middleware(&mut self, _: &mut WorkerContext) -> Self::Layer {
        let batch = self.persistence.config.batch_size;
        let persist_results = self.persistence.config.persist_results;
        let lock_tasks = self.persistence.config.lock_tasks;
        self.persistence
            .layer(JsonCodec::default(), batch)
            .persist_results(persist_results)
            .lock_tasks(lock_tasks)
    }
}

impl<Args> WireFormatBackend for SqliteJobs<Args> {
    type Codec = JsonCodec<Vec<u8>>;
    type Compact = Vec<u8>;

    fn codec(&self) -> &Self::Codec {
        &self.codec
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_worker_looks_first_then_only_when_rung_or_after_a_full_batch() {
        let gate = FetchGate {
            due: AtomicBool::new(true),
            more: AtomicBool::new(false),
        };
        assert!(gate.worth_fetching(), "the first look");
        gate.fetched(1, 4);
        assert!(!gate.worth_fetching(), "a partial batch took all there was");
        gate.due.store(true, Ordering::Release);
        assert!(gate.worth_fetching(), "a push or a ring");
        assert!(!gate.worth_fetching(), "each is taken once");
        gate.fetched(4, 4);
        assert!(gate.worth_fetching(), "a full batch may have left more");
    }
}
