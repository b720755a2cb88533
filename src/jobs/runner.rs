//! Runs the workers: one apalis worker per queue in this process, under a monitor that
//! restarts a worker after a backend error and drains in-flight jobs on shutdown.

use super::Handler;
use crate::app::App;
use crate::queue::retry::RetryPolicy;
use crate::queue::{
    AlertSweep, CheckConnection, DeliverNotification, Envelope, EvaluateConnection, EvaluateRun,
    Housekeeping, JobError, OwnAck, OwnAcks, Probe, QueueBackend, RefreshConnection, RunFlow,
    SqliteJobs, watch_due,
};
use apalis::prelude::*;
use apalis_core::backend::ext::poll_strategy::{
    IntervalStrategy, PollSnapshot, PollStrategy, StreamStrategy,
};
use apalis_postgres::PostgresStorage;
use futures::FutureExt;
use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};
use tokio::sync::watch;
use tracing::Instrument;

/// How often idle workers look for jobs pushed by other processes or scheduled for later
/// (on SQLite, one look for all the queues: `watch_due`). Jobs pushed by this process
/// wake its workers at once.
const POLL_INTERVAL: Duration = Duration::from_millis(500);
/// apalis can mark each fetched job `Running` before it starts: one more write per job,
/// for nothing here. The fetch already locks the job to its worker (`Queued`, `lock_by`),
/// no other fetch takes it, and orphan recovery treats `Queued` and `Running` alike.
const LOCK_TASKS: bool = false;
/// How long in-flight jobs get to finish after a shutdown signal (runs stop sooner, at
/// their next page boundary); the rest are handed back or recovered by orphan detection.
const DRAIN_TIMEOUT: Duration = Duration::from_secs(25);
/// How long the queue's own workers then get to stop.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);

/// The jobs these workers are executing right now (one count per `run`, not per
/// process: tests start several apps in one process).
#[derive(Clone, Default)]
struct JobsInFlight(Arc<AtomicUsize>);

impl JobsInFlight {
    /// Counts a job as in flight for as long as the guard lives.
    fn enter(&self) -> InFlight {
        self.0.fetch_add(1, Ordering::SeqCst);
        InFlight(self.0.clone())
    }

    /// Waits until no job is in flight, or the drain time is up.
    async fn drained(&self) {
        let deadline = tokio::time::Instant::now() + DRAIN_TIMEOUT;
        while self.0.load(Ordering::SeqCst) > 0 && tokio::time::Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

struct InFlight(Arc<AtomicUsize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs every queue's worker until `shutdown` turns true, then drains.
pub async fn run(env: App, instance: String, mut shutdown: watch::Receiver<bool>) {
    let health = env.workers.clone();
    let mut monitor = Monitor::new()
        .should_restart(move |ctx, err| {
            let wait = health.failure_backoff();
            tracing::error!(worker = %ctx.name(), error = %err, wait_ms = wait.as_millis() as u64, "worker stopped; restarting after a pause");
            // The monitor offers no async hook; a short blocking pause is what keeps a
            // failing database from being hammered (and it is only taken on failure).
            std::thread::sleep(wait);
            true
        })
        .shutdown_timeout(STOP_TIMEOUT);
    let in_flight = JobsInFlight::default();
    monitor = register::<Housekeeping>(monitor, &env, &instance, &in_flight);
    monitor = register::<Probe>(monitor, &env, &instance, &in_flight);
    monitor = register::<RefreshConnection>(monitor, &env, &instance, &in_flight);
    monitor = register::<CheckConnection>(monitor, &env, &instance, &in_flight);
    monitor = register::<RunFlow>(monitor, &env, &instance, &in_flight);
    monitor = register::<EvaluateRun>(monitor, &env, &instance, &in_flight);
    monitor = register::<EvaluateConnection>(monitor, &env, &instance, &in_flight);
    monitor = register::<DeliverNotification>(monitor, &env, &instance, &in_flight);
    monitor = register::<AlertSweep>(monitor, &env, &instance, &in_flight);
    // The queue's workers are told to stop only once the jobs in hand have ended (runs
    // hand themselves back at their next page boundary as soon as `stopping` turns):
    // apalis stops polling its own fetches and heartbeats when told, and on SQLite one
    // frozen inside its transaction holds the database's write lock until the process
    // exits, so nothing could be written meanwhile, the hand-back included.
    let signal = async move {
        super::stopped(&mut shutdown).await;
        in_flight.drained().await;
        Ok(())
    };
    tracing::info!(
        concurrency = env.settings.worker_concurrency,
        "workers started"
    );
    env.workers.set_running(true);
    let watch = match env.queue.backend() {
        QueueBackend::Sqlite(pool) => Some(tokio::spawn(watch_due(
            pool.clone(),
            env.queue.clone(),
            POLL_INTERVAL,
        ))),
        QueueBackend::Postgres(_) => None,
    };
    if let Err(e) = monitor.run_with_signal(signal).await {
        tracing::error!(error = %e, "worker monitor ended with an error");
    }
    if let Some(watch) = watch {
        watch.abort();
    }
    // Runs stop at their next page when the shutdown begins; one still busy with a page
    // when the drain time ran out was cut mid-page. Hand it back rather than leave it to
    // look alive until its lease lapses: its uncommitted page is redone from the
    // checkpoint under the same idempotency keys.
    match env.store.release_runs_of_process(&env.process).await {
        Ok(cut) if !cut.is_empty() => {
            tracing::warn!(
                runs = cut.len(),
                "runs cut mid-page by the drain timeout were handed back"
            );
            crate::sync::engine::hand_back(&env, &cut, None).await;
        }
        Ok(_) => {}
        Err(e) => {
            tracing::warn!(error = %e, "could not hand back unfinished runs; their leases lapse instead")
        }
    }
    env.workers.set_running(false);
    tracing::info!("workers stopped");
}

fn register<J: Handler>(
    monitor: Monitor,
    env: &App,
    instance: &str,
    in_flight: &JobsInFlight,
) -> Monitor {
    let env = env.clone();
    let in_flight = in_flight.clone();
    let instance = instance.to_owned();
    let concurrency = env.settings.worker_concurrency;
    // Fetch a few jobs per poll so short jobs do not each pay a round trip; the rest
    // wait locked to this worker for a moment.
    let batch = (concurrency * 4).clamp(4, 64);
    match env.queue.backend().clone() {
        QueueBackend::Sqlite(pool) => monitor.register(move |run| {
            let config = apalis_sqlite::Config::default()
                .batch_size(batch)
                .lock_tasks(LOCK_TASKS);
            let name = format!("{}-{instance}-{run}", J::QUEUE);
            let own_acks = OwnAcks::of(&name);
            WorkerBuilder::new(name)
                .backend(SqliteJobs::<Envelope<J>>::new(
                    &pool,
                    J::QUEUE,
                    config,
                    &env.queue,
                    own_acks.clone(),
                ))
                .data(own_acks)
                .data(env.clone())
                .data(in_flight.clone())
                .concurrency(concurrency)
                .build(handle::<J>)
        }),
        QueueBackend::Postgres(pool) => monitor.register(move |run| {
            let config = apalis_postgres::Config::default()
                .queue(J::QUEUE)
                .batch_size(batch)
                .lock_tasks(LOCK_TASKS);
            let strategy = PushOrTick {
                push: StreamStrategy::new(env.queue.subscribe(J::QUEUE)),
                tick: IntervalStrategy::new(POLL_INTERVAL),
            };
            WorkerBuilder::new(format!("{}-{instance}-{run}", J::QUEUE))
                .backend(
                    PostgresStorage::<Envelope<J>>::new(&pool)
                        .with_config(config)
                        .poll_with_strategy(strategy),
                )
                .data(env.clone())
                .data(in_flight.clone())
                .concurrency(concurrency)
                .build(handle::<J>)
        }),
    }
}

/// Wakes a PostgreSQL worker when a job was pushed in this process or its poll tick
/// came round. Not apalis's `Strategy`, which stops at the first wake-up that is ready: a
/// tick that fell due while pushes were coming in was never polled again, and as a fired
/// tick makes its next timer without polling it, no timer was armed. The worker then
/// slept until its next push or its 30 s heartbeat, and a job scheduled for later waited
/// (`jobs::a_job_scheduled_for_later_…` caught it under load).
struct PushOrTick<S> {
    push: StreamStrategy<S>,
    tick: IntervalStrategy,
}

impl<S: futures::Stream + Unpin> PollStrategy for PushOrTick<S> {
    fn poll_drive(&mut self, cx: &mut Context<'_>, snapshot: &PollSnapshot) -> Poll<Option<()>> {
        // Both are polled every time, so each keeps its waker.
        let pushed = matches!(self.push.poll_drive(cx, snapshot), Poll::Ready(Some(())));
        let ticked = self.tick.poll_drive(cx, snapshot).is_ready();
        if ticked {
            // Arms the timer the tick just made (it answers pending).
            let _ = self.tick.poll_drive(cx, snapshot);
        }
        if pushed || ticked {
            Poll::Ready(Some(()))
        } else {
            Poll::Pending
        }
    }
}

/// Runs one attempt on a task of its own.
///
/// apalis polls a worker's jobs inside the worker's own future, and each time that future
/// wakes with no job finished it asks the database for more: a run awaiting twenty
/// statements made ten polls of its queue, each a write. On its own task a job's wake-ups
/// are its own, and the worker wakes once, when the job ends. The task is aborted if the
/// worker drops the job (at shutdown), as the job itself was before.
async fn handle<J: Handler>(
    envelope: Envelope<J>,
    env: Data<App>,
    in_flight: Data<JobsInFlight>,
    task: TaskId,
    own_acks: Option<Data<OwnAcks>>,
) -> Result<(), BoxDynError> {
    // Only on SQLite, where the job's row is in the same database as its work.
    let ack = own_acks.map(|acks| acks.of_task(task.to_string()));
    let mut task = AbortOnDrop(tokio::spawn(attempt::<J>(
        envelope,
        (*env).clone(),
        (*in_flight).clone(),
        ack,
    )));
    match (&mut task.0).await {
        Ok(result) => result,
        Err(e) => Err(format!("the job's task ended abnormally: {e}").into()),
    }
}

/// Aborts a spawned task when its handle is dropped.
struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Runs one attempt and applies our retry policy. A panic or a timeout counts as a
/// retryable failure, so neither can take the worker down or lose the job.
async fn attempt<J: Handler>(
    envelope: Envelope<J>,
    env: App,
    in_flight: JobsInFlight,
    ack: Option<OwnAck>,
) -> Result<(), BoxDynError> {
    let _in_flight = in_flight.enter();
    let attempt = envelope.attempt + 1;
    let started = Instant::now();
    if let Some(due) = envelope.due_at_us {
        let waited = (chrono::Utc::now().timestamp_micros() - due).max(0) as f64 / 1e6;
        metrics::histogram!("sluice_job_start_latency_seconds", "queue" => J::QUEUE).record(waited);
    }
    // Every line the job logs carries its queue, attempt and (once known) tenant.
    let span = tracing::info_span!(
        "job",
        queue = J::QUEUE,
        attempt,
        tenant = tracing::field::Empty
    );
    let run = AssertUnwindSafe(tokio::time::timeout(
        J::TIMEOUT,
        envelope.job.run_acknowledging(&env, ack).instrument(span),
    ));
    let result = match run.catch_unwind().await {
        Ok(Ok(result)) => result,
        Ok(Err(_elapsed)) => Err(JobError::retryable(format!(
            "timed out after {} s",
            J::TIMEOUT.as_secs()
        ))),
        Err(panic) => Err(JobError::retryable(format!(
            "handler panicked: {}",
            panic_message(&panic)
        ))),
    };
    metrics::histogram!("sluice_job_duration_seconds", "queue" => J::QUEUE)
        .record(started.elapsed().as_secs_f64());
    let Err(error) = result else {
        metrics::counter!("sluice_jobs_total", "queue" => J::QUEUE, "outcome" => "succeeded")
            .increment(1);
        return Ok(());
    };
    let max = envelope.job.max_attempts();
    if error.retryable && attempt < max {
        let policy = RetryPolicy {
            base: env.settings.job_retry_base,
            cap: env.settings.job_retry_cap,
        };
        let delay = policy.delay(attempt, error.retry_after);
        tracing::warn!(
            queue = J::QUEUE, attempt, max, delay_ms = delay.as_millis() as u64,
            error = %error.message, "job failed; retrying"
        );
        let retry = Envelope {
            job: envelope.job,
            attempt,
            due_at_us: None,
        };
        env.queue.push_envelope(retry, delay).await?;
        metrics::counter!("sluice_jobs_total", "queue" => J::QUEUE, "outcome" => "retried")
            .increment(1);
        return Ok(());
    }
    tracing::error!(
        queue = J::QUEUE, attempt, error = %error.message,
        "job failed for good; recorded in failed_jobs"
    );
    let payload = serde_json::to_value(&envelope.job).unwrap_or_default();
    env.store
        .record_failed_job(J::QUEUE, &payload, attempt, &error.message)
        .await?;
    metrics::counter!("sluice_jobs_total", "queue" => J::QUEUE, "outcome" => "dead").increment(1);
    Err(AbortError::new(error.message).into())
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = panic.downcast_ref::<String>() {
        s.clone()
    } else {
        "unknown panic".to_owned()
    }
}
