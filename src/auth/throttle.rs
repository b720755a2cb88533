//! Login throttling, stored in the database so every process shares it.
//!
//! Three counters, each a fixed window: per (account, client address) pair, per client
//! address, and per account. The per-account counter does not apply to a browser holding a
//! valid device cookie for that account, so an attacker cannot lock the real user out.

use crate::store::entities::login_throttle;
use crate::store::{Store, now};
use chrono::Duration;
use sea_orm::DbErr;

/// One counter's limits.
#[derive(Clone, Copy, Debug)]
pub struct Limit {
    /// Failures allowed in a window.
    pub max_failures: i32,
    /// Window length, and how long a block lasts.
    pub window: Duration,
}

/// Failures per account from one address.
pub const PER_PAIR: Limit = Limit {
    max_failures: 5,
    window: Duration::minutes(15),
};
/// Failures from one address across accounts.
pub const PER_IP: Limit = Limit {
    max_failures: 50,
    window: Duration::minutes(15),
};
/// Failures for one account across addresses (not applied to known devices).
pub const PER_ACCOUNT: Limit = Limit {
    max_failures: 20,
    window: Duration::minutes(15),
};

/// Seconds until `key` may try again, if it is blocked now.
pub async fn blocked_for(store: &Store, key: &str) -> Result<Option<u64>, DbErr> {
    let at = now();
    Ok(store
        .throttle(key)
        .await?
        .and_then(|row| row.blocked_until)
        .filter(|until| *until > at)
        .map(|until| (until - at).num_seconds().max(1) as u64))
}

/// Counts a failure against `key`, blocking it when the limit is reached.
pub async fn record_failure(store: &Store, key: &str, limit: Limit) -> Result<(), DbErr> {
    let at = now();
    let mut row = store
        .throttle(key)
        .await?
        .filter(|row| row.window_started_at + limit.window > at)
        .unwrap_or(login_throttle::Model {
            key: key.to_owned(),
            failures: 0,
            window_started_at: at,
            blocked_until: None,
        });
    row.failures += 1;
    if row.failures >= limit.max_failures {
        row.blocked_until = Some(at + limit.window);
    }
    store.save_throttle(row).await
}

/// The counter keys for a sign-in attempt.
pub fn keys(email: &str, ip: &str) -> (String, String, String) {
    (
        format!("pair:{email}|{ip}"),
        format!("ip:{ip}"),
        format!("account:{email}"),
    )
}
