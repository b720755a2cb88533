//! Client-side rate limits per connection, from the provider's declared limit, so one
//! busy flow cannot exhaust a provider quota that other flows of the tenant share.
//!
//! The buckets live in this process: with several worker processes each keeps its own,
//! and the provider's own 429 + `Retry-After` (which the engine honours) is the backstop.

use crate::app::App;
use crate::connectors::ConnectionError;
use crate::connectors::catalogue::RateLimit;
use crate::connectors::http::Fetched;
use crate::connectors::session::{self, ApiCall};
use crate::domain::{ConnectionId, TenantCtx};
use std::collections::HashMap;
use std::sync::{Mutex, OnceLock};
use std::time::{Duration, Instant};

struct Bucket {
    tokens: f64,
    updated: Instant,
}

fn buckets() -> &'static Mutex<HashMap<ConnectionId, Bucket>> {
    static BUCKETS: OnceLock<Mutex<HashMap<ConnectionId, Bucket>>> = OnceLock::new();
    BUCKETS.get_or_init(|| Mutex::new(HashMap::new()))
}

/// How long to wait before the next request may go out (and takes its token).
fn reserve(connection: ConnectionId, limit: &RateLimit) -> Duration {
    let capacity = f64::from(limit.requests.max(1));
    let per_second = capacity / f64::from(limit.per_seconds.max(1));
    let Ok(mut map) = buckets().lock() else {
        return Duration::ZERO;
    };
    let now = Instant::now();
    let bucket = map.entry(connection).or_insert(Bucket {
        tokens: capacity,
        updated: now,
    });
    let elapsed = now.duration_since(bucket.updated).as_secs_f64();
    bucket.tokens = (bucket.tokens + elapsed * per_second).min(capacity);
    bucket.updated = now;
    bucket.tokens -= 1.0;
    if bucket.tokens >= 0.0 {
        Duration::ZERO
    } else {
        Duration::from_secs_f64(-bucket.tokens / per_second)
    }
}

/// Waits until the connection may make another request.
pub async fn acquire(connection: ConnectionId, limit: Option<&RateLimit>) {
    let Some(limit) = limit else { return };
    let wait = reserve(connection, limit);
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
}

/// Calls a connection's API once its rate limit lets the call go out; with the call's
/// duration in milliseconds, for the run log.
pub async fn paced_call(
    limit: Option<&RateLimit>,
    app: &App,
    ctx: &TenantCtx,
    connection: ConnectionId,
    call: &ApiCall<'_>,
) -> (Result<Fetched, ConnectionError>, u64) {
    acquire(connection, limit).await;
    let started = Instant::now();
    let fetched = session::call_with(app, ctx, connection, call).await;
    (fetched, started.elapsed().as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_its_burst_then_spaces_requests() {
        let limit = RateLimit {
            requests: 10,
            per_seconds: 1,
        };
        let id = ConnectionId::new();
        for _ in 0..10 {
            assert_eq!(reserve(id, &limit), Duration::ZERO);
        }
        let wait = reserve(id, &limit);
        assert!(
            wait > Duration::from_millis(50) && wait <= Duration::from_millis(110),
            "{wait:?}"
        );
    }
}
