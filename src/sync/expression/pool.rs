//! The bounded pool user expressions run on. Compiling and evaluating happen on
//! blocking threads, one job per permit, so expressions can never occupy the web
//! workers (which also answer `/healthz`) and at most a few run at once however many
//! requests and runs ask.

use std::sync::LazyLock;
use tokio::sync::Semaphore;

/// At most one expression job per core.
static PERMITS: LazyLock<Semaphore> = LazyLock::new(|| {
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());
    Semaphore::new(cores.max(1))
});

/// The pool is gone (the process is shutting down) or the job panicked.
#[derive(Debug, thiserror::Error)]
#[error("the expression pool could not run the job: {0}")]
pub struct PoolError(String);

/// Runs `job` on the pool, waiting for a permit first.
pub async fn run<T, F>(job: F) -> Result<T, PoolError>
where
    T: Send + 'static,
    F: FnOnce() -> T + Send + 'static,
{
    let _permit = PERMITS
        .acquire()
        .await
        .map_err(|e| PoolError(e.to_string()))?;
    tokio::task::spawn_blocking(job)
        .await
        .map_err(|e| PoolError(e.to_string()))
}
