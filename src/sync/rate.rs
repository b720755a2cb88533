//! Client-side rate limits per connection, from the provider's declared limit, so one
//! busy flow cannot exhaust a provider quota that other flows of the tenant share.
//!
//! The limiters live in this process: with several worker processes each keeps its own,
//! and the provider's own 429 + `Retry-After` (which the engine honours) is the backstop.

use crate::app::App;
use crate::connectors::ConnectionError;
use crate::connectors::catalogue::{Provider, RateLimit};
use crate::connectors::http::Fetched;
use crate::connectors::session::{self, ApiCall};
use crate::domain::{ConnectionId, TenantCtx};
use governor::clock::{Clock, DefaultClock};
use governor::{DefaultKeyedRateLimiter, Quota, RateLimiter};
use std::collections::HashMap;
use std::num::NonZeroU32;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// One keyed limiter per declared limit (a handful: one per provider definition), each
/// keeping a bucket per connection.
type Limiters = HashMap<(u32, u32), Arc<DefaultKeyedRateLimiter<ConnectionId>>>;

fn limiters() -> &'static Mutex<Limiters> {
    static LIMITERS: OnceLock<Mutex<Limiters>> = OnceLock::new();
    LIMITERS.get_or_init(Mutex::default)
}

/// The limiter for a declared limit: a burst of `requests`, refilled evenly over
/// `per_seconds`.
fn limiter(limit: &RateLimit) -> Option<Arc<DefaultKeyedRateLimiter<ConnectionId>>> {
    let requests = NonZeroU32::new(limit.requests.max(1))?;
    let period = Duration::from_secs(u64::from(limit.per_seconds.max(1))) / requests.get();
    let quota = Quota::with_period(period)?.allow_burst(requests);
    let mut map = limiters().lock().ok()?;
    Some(
        map.entry((limit.requests, limit.per_seconds))
            .or_insert_with(|| Arc::new(RateLimiter::keyed(quota)))
            .clone(),
    )
}

/// Waits until the connection may make another request.
pub async fn acquire(connection: ConnectionId, limit: Option<&RateLimit>) {
    let Some(limiter) = limit.and_then(limiter) else {
        return;
    };
    while let Err(not_yet) = limiter.check_key(&connection) {
        tokio::time::sleep(not_yet.wait_time_from(DefaultClock::default().now())).await;
    }
}

/// Single-record writes in flight at once on one connection, whatever number of runs
/// write through it: enough to hide a destination's latency (eight calls of 1 ms each
/// keep it busy), few enough not to look like a flood. The rate limit paces them further.
pub const WRITES_IN_FLIGHT: usize = 8;

fn write_slots() -> &'static Mutex<HashMap<ConnectionId, Arc<Semaphore>>> {
    static SLOTS: OnceLock<Mutex<HashMap<ConnectionId, Arc<Semaphore>>>> = OnceLock::new();
    SLOTS.get_or_init(Mutex::default)
}

/// Waits for one of the connection's write slots; the write holds it while it runs.
pub async fn write_slot(connection: ConnectionId) -> Option<OwnedSemaphorePermit> {
    let slots = write_slots()
        .lock()
        .ok()?
        .entry(connection)
        .or_insert_with(|| Arc::new(Semaphore::new(WRITES_IN_FLIGHT)))
        .clone();
    slots.acquire_owned().await.ok()
}

/// Forgets the buckets of connections that have been idle long enough to be full again
/// (housekeeping), so the limiters do not grow with every connection ever used; and the
/// write slots no write holds or waits for.
pub fn forget_idle() {
    if let Ok(map) = limiters().lock() {
        for limiter in map.values() {
            limiter.retain_recent();
            limiter.shrink_to_fit();
        }
    }
    if let Ok(mut slots) = write_slots().lock() {
        slots.retain(|_, s| Arc::strong_count(s) > 1);
    }
}

/// Calls a connection's API once its rate limit lets the call go out; with the call's
/// duration in milliseconds, for the run log.
pub async fn paced_call(
    provider: &Provider,
    app: &App,
    ctx: &TenantCtx,
    connection: ConnectionId,
    recent: &session::Recent,
    call: &ApiCall<'_>,
) -> (Result<Fetched, ConnectionError>, u64) {
    acquire(connection, provider.rate_limit.as_ref()).await;
    let started = Instant::now();
    let fetched = session::call_recent(app, ctx, connection, recent, call).await;
    (fetched, started.elapsed().as_millis() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_connection_gets_its_burst_then_requests_are_spaced() {
        let limit = RateLimit {
            requests: 10,
            per_seconds: 1,
        };
        let (busy, other) = (ConnectionId::new(), ConnectionId::new());
        let started = Instant::now();
        for _ in 0..10 {
            acquire(busy, Some(&limit)).await;
        }
        assert!(started.elapsed() < Duration::from_millis(50), "the burst");
        acquire(busy, Some(&limit)).await;
        let waited = started.elapsed();
        assert!(
            waited >= Duration::from_millis(60) && waited <= Duration::from_millis(250),
            "one more waits about a tenth of a second: {waited:?}"
        );
        let other_started = Instant::now();
        acquire(other, Some(&limit)).await;
        assert!(
            other_started.elapsed() < Duration::from_millis(20),
            "another connection has its own bucket"
        );
    }

    #[tokio::test]
    async fn a_connection_has_eight_write_slots_and_forgets_them_when_unused() {
        let (busy, other) = (ConnectionId::new(), ConnectionId::new());
        let mut held = Vec::new();
        for _ in 0..WRITES_IN_FLIGHT {
            held.push(write_slot(busy).await.unwrap());
        }
        let ninth = tokio::time::timeout(Duration::from_millis(50), write_slot(busy)).await;
        assert!(ninth.is_err(), "the ninth write waits");
        assert!(
            tokio::time::timeout(Duration::from_millis(50), write_slot(other))
                .await
                .is_ok(),
            "another connection has slots of its own"
        );
        held.pop();
        assert!(
            write_slot(busy).await.is_some(),
            "a slot given back is taken"
        );
        forget_idle();
        let known = |c| write_slots().lock().unwrap().contains_key(&c);
        assert!(known(busy), "slots in use are kept");
        assert!(!known(other), "unused slots are forgotten");
    }
}
