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
//!
//! Jobs enqueued in this process's commits ([`JobQueue::enqueue_statement`], the runs
//! webhooks start) are not even fetched: once the worker has registered, they are stored
//! locked to it and handed over after the commit. A handed job is then what a fetched
//! one is: if the worker stops first it hands it back, and if the process dies it is
//! taken back when the worker's heartbeat lapses. And a job whose handler commits its
//! acknowledgement with its work ([`OwnAck`]: a run that completes) is not acknowledged
//! again.

use super::JobQueue;
use super::storage::Taker;
use apalis::prelude::{Backend, Task, WorkerContext};
use apalis_core::backend::finalize::Durable;
use apalis_core::backend::persistence::{Persisted, Persistence, TaskEvent, TaskPersistLayer};
use apalis_core::backend::{BackendConfig, TaskResult, WireFormatBackend, WorkerFilter};
use apalis_core::task::builder::TaskBuilder;
use apalis_core::task::task_id::TaskId;
use apalis_sqlite::{Config, Error, JsonCodec, SqlitePool, SqliteTask, queries};
use futures::channel::mpsc::{self, UnboundedReceiver, UnboundedSender};
use futures::future::BoxFuture;
use futures::{FutureExt, StreamExt};
use sea_orm::sqlx;
use serde_json::Value;
use std::collections::HashSet;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;
use tokio::time::MissedTickBehavior;

/// A queue's jobs for one worker.
pub struct SqliteJobs<Args> {
    persistence: Persisted<SqliteQueue>,
    /// Rings when this process pushes a job to the queue, or [`watch_due`] found one due.
    pushes: UnboundedReceiver<()>,
    /// Jobs pushed in this process, already locked to this worker.
    handed: UnboundedReceiver<SqliteTask>,
    /// Handing back, when the worker stops, jobs handed over but not started.
    closing: Closing,
    gate: Arc<FetchGate>,
    codec: JsonCodec<Vec<u8>>,
    args: PhantomData<Args>,
}

impl<Args> SqliteJobs<Args> {
    /// Jobs of the queue called `name`: those `queue` hands over, and those looked for
    /// at the start and whenever `queue` rings. Their handlers may acknowledge them
    /// through `own_acks`.
    pub fn new(
        pool: &SqlitePool,
        name: &'static str,
        config: Config,
        queue: &JobQueue,
        own_acks: OwnAcks,
    ) -> Self {
        let config = config.queue(name);
        let gate = Arc::new(FetchGate {
            due: AtomicBool::new(true),
            more: AtomicBool::new(false),
        });
        let (handoff, handed) = mpsc::unbounded();
        let pushes = queue.subscribe(name);
        Self {
            persistence: Persisted::new(SqliteQueue {
                pool: pool.clone(),
                config,
                gate: gate.clone(),
                queue: queue.clone(),
                handoff,
                own_acks,
            }),
            pushes,
            handed,
            closing: Closing::Open,
            gate,
            codec: JsonCodec::default(),
            args: PhantomData,
        }
    }
}

/// Acknowledgements a worker's jobs committed with their own work (see [`OwnAck`]),
/// which the worker then skips.
#[derive(Clone)]
pub struct OwnAcks {
    worker: String,
    committed: Arc<Mutex<HashSet<String>>>,
}

impl OwnAcks {
    /// For the worker called `worker`.
    pub fn of(worker: &str) -> Self {
        Self {
            worker: worker.to_owned(),
            committed: Arc::default(),
        }
    }

    /// The acknowledgement of the job `task`, for its handler.
    pub fn of_task(&self, task: String) -> OwnAck {
        OwnAck {
            task,
            acks: self.clone(),
        }
    }

    /// Whether `task`'s acknowledgement was committed already (asked once per job).
    fn taken(&self, task: &str) -> bool {
        self.committed
            .lock()
            .map(|mut committed| committed.remove(task))
            .unwrap_or(false)
    }
}

/// The acknowledgement of the job a handler is running, for the handler to commit with
/// the work it ends: its worker then skips its own (a statement and a commit less), and
/// the work cannot be committed without the job being marked done, or the other way.
/// Unused, the worker acknowledges the job as usual.
pub struct OwnAck {
    task: String,
    acks: OwnAcks,
}

impl OwnAck {
    /// The statement that marks the job done, to commit with the work.
    pub fn statement(&self) -> sea_orm::Statement {
        sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            ACKNOWLEDGE,
            [
                "Done".into(),
                1i64.into(),
                OWN_ACK_RESULT.into(),
                self.task.clone().into(),
                self.acks.worker.clone().into(),
            ],
        )
    }

    /// Tells the worker the statement was committed.
    pub fn committed(self) {
        if let Ok(mut committed) = self.acks.committed.lock() {
            committed.insert(self.task);
        }
    }
}

/// The result an [`OwnAck`] records (apalis records `{"Ok":null}`).
pub const OWN_ACK_RESULT: &str = r#"{"Ok":"acknowledged with its work"}"#;

/// Where a stopping worker is with the jobs handed to it.
enum Closing {
    Open,
    HandingBack(BoxFuture<'static, Result<(), Error>>),
    Closed,
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
    queue: JobQueue,
    handoff: UnboundedSender<SqliteTask>,
    own_acks: OwnAcks,
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
        // Registered, so jobs locked to it can be taken back if it dies: now it may take
        // them straight from the push.
        self.queue.offer_to(
            self.config.queue.as_ref(),
            Taker {
                worker: worker.name().to_owned(),
                tasks: self.handoff.clone(),
            },
        );
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
            .filter(|ack| !self.own_acks.taken(&ack.task_id.to_string()))
            .collect();
        match (&locks[..], &acks[..]) {
            ([], []) => return Ok(()),
            // A statement is atomic on its own: no transaction to begin and commit.
            ([], [ack]) => return acknowledge(&self.pool, ack, worker.name()).await,
            _ => {}
        }
        let mut tx = self.pool.begin().await?;
        if !locks.is_empty() {
            queries::lock_tasks(&mut *tx, &locks, worker.name()).await?;
        }
        for ack in acks {
            acknowledge(&mut *tx, ack, worker.name()).await?;
        }
        tx.commit().await?;
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

/// apalis's acknowledgement (`queries/task/ack.sql`), one job at a time. apalis's form
/// joins `Jobs` with a JSON list of results (encoded for the purpose, then parsed again
/// by SQLite); nearly every call acknowledges the one job a worker just ended, and
/// looking it up by its key costs a quarter of that.
pub const ACKNOWLEDGE: &str = "UPDATE Jobs SET status = ?1, attempts = ?2, last_result = ?3, \
    done_at = strftime('%s', 'now') WHERE id = ?4 AND lock_by = ?5";

async fn acknowledge<'c>(
    db: impl sqlx::SqliteExecutor<'c>,
    ack: &TaskResult<Value>,
    worker: &str,
) -> Result<(), Error> {
    let result = serde_json::to_string(&ack.result).map_err(|e| sqlx::Error::Encode(e.into()))?;
    sqlx::query(ACKNOWLEDGE)
        .bind(ack.status.to_string())
        .bind(ack.attempt as i64)
        .bind(result)
        .bind(ack.task_id.to_string())
        .bind(worker)
        .execute(db)
        .await?;
    Ok(())
}

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
        if let Poll::Ready(Some(task)) = self.handed.poll_next_unpin(cx) {
            return Poll::Ready(Some(Ok(task)));
        }
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
        if let Closing::Open = self.closing {
            // No more are handed over (pushes fall back to the queue); those already
            // handed go back to it, as apalis hands back fetched jobs not yet started.
            self.handed.close();
            let mut ids = Vec::new();
            while let Ok(task) = self.handed.try_recv() {
                ids.extend(task.task_id().map(|id| id.to_string()));
            }
            let pool = self.persistence.pool.clone();
            let queue = self.persistence.config.queue.to_string();
            let name = worker.name().to_owned();
            self.closing = Closing::HandingBack(
                async move {
                    if !ids.is_empty() {
                        queries::reenqueue_abandoned(&pool, &queue, &name, &ids).await?;
                    }
                    Ok(())
                }
                .boxed(),
            );
        }
        if let Closing::HandingBack(handing_back) = &mut self.closing {
            let handed_back = std::task::ready!(handing_back.poll_unpin(cx));
            self.closing = Closing::Closed;
            handed_back?;
        }
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
