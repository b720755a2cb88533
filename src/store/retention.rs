//! Deleting old rows without holding up the write path: retention deletes go a batch at
//! a time, each its own short statement, with a pause between them. One statement over
//! a large table would hold SQLite's only write lock (or lock many rows on PostgreSQL)
//! for as long as it takes, and page commits and webhook intake would wait behind it.

use sea_orm::sea_query::{Condition, Query};
use sea_orm::{ColumnTrait, ConnectionTrait, DbErr, EntityTrait, QueryFilter};
use std::time::Duration;

/// Rows one delete statement removes at most.
pub const BATCH: u64 = 1000;

/// The pause between batches, in which waiting writers take the lock.
const PAUSE: Duration = Duration::from_millis(5);

/// Deletes the rows of `E` matching `condition`, [`BATCH`] at a time by the key column
/// `key`; returns how many went.
pub async fn delete_in_batches<E, C>(
    db: &C,
    key: E::Column,
    condition: Condition,
) -> Result<u64, DbErr>
where
    E: EntityTrait,
    C: ConnectionTrait,
{
    let mut removed = 0;
    loop {
        let batch = Query::select()
            .column(key)
            .from(E::default())
            .cond_where(condition.clone())
            .limit(BATCH)
            .to_owned();
        let done = E::delete_many()
            .filter(key.in_subquery(batch))
            .exec(db)
            .await?
            .rows_affected;
        removed += done;
        if done < BATCH {
            return Ok(removed);
        }
        between_batches().await;
    }
}

/// Waits between two batches of a delete, so waiting writers take the lock.
pub async fn between_batches() {
    tokio::time::sleep(PAUSE).await;
}
