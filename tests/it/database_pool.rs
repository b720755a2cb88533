//! The embedded database's connection pool: a quiet server keeps running its statements
//! on the connection it used last, whose page cache and prepared statements are warm,
//! because each connection is back in the pool as soon as a statement is done with it.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use sea_orm::{ConnectionTrait, DbBackend, Statement};

#[tokio::test]
async fn consecutive_statements_run_on_the_connection_used_last() {
    if crate::common::postgres_url().is_some() {
        return;
    }
    // No workers or scheduler: nothing else borrows connections meanwhile.
    let app = TestApp::spawn_web_only(&[]).await;
    let db = app.app().store.db();
    let pool = db.get_sqlite_connection_pool();
    // Several connections open and idle, so that the pool has others to hand out.
    let held = futures::future::try_join_all((0..3).map(|_| pool.acquire()))
        .await
        .unwrap();
    drop(held);
    assert!(
        pool.num_idle() >= 3,
        "idle connections: {}",
        pool.num_idle()
    );

    // A temporary table exists only on the connection that created it.
    db.execute_unprepared("CREATE TEMP TABLE used_last (x)")
        .await
        .unwrap();
    for i in 0..20 {
        let seen = db
            .query_one_raw(Statement::from_string(
                DbBackend::Sqlite,
                "SELECT count(*) FROM temp.used_last",
            ))
            .await;
        assert!(
            seen.is_ok(),
            "statement {i} ran on another connection than the one used last: {seen:?}"
        );
    }
    app.stop().await;
}
