//! The embedded database's connection pool: a quiet server keeps running its statements
//! on the connection it used last, whose page cache and prepared statements are warm,
//! because each connection is back in the pool as soon as a statement is done with it.
//! A statement runs on the caller's thread when the connection's own thread has nothing
//! queued, but one that finds the database locked still waits for the lock, and a task
//! running statement after statement still lets other tasks run.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use sea_orm::sqlx;
use sea_orm::{ConnectionTrait, DbBackend, Statement};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

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

#[tokio::test]
async fn statements_that_find_the_database_locked_wait_for_the_lock_and_succeed() {
    if crate::common::postgres_url().is_some() {
        return;
    }
    let app = TestApp::spawn_web_only(&[]).await;
    let pool = app.app().store.db().get_sqlite_connection_pool().clone();
    sqlx::raw_sql("CREATE TABLE lock_waits (x INTEGER)")
        .execute(&pool)
        .await
        .unwrap();
    let mut holder = pool.acquire().await.unwrap();
    let mut waiter = pool.acquire().await.unwrap();

    // Each kind of statement that takes the write lock, while another connection holds it.
    let waits: [(&str, &str); 3] = [
        ("a single statement", "INSERT INTO lock_waits VALUES (1)"),
        (
            "several statements in one query",
            "INSERT INTO lock_waits VALUES (2); INSERT INTO lock_waits VALUES (3)",
        ),
        ("BEGIN IMMEDIATE", "BEGIN IMMEDIATE"),
    ];
    for (what, sql) in waits {
        sqlx::raw_sql("BEGIN IMMEDIATE")
            .execute(&mut *holder)
            .await
            .unwrap();
        let release = async {
            tokio::time::sleep(Duration::from_millis(300)).await;
            sqlx::raw_sql("COMMIT").execute(&mut *holder).await.unwrap();
        };
        let (_, waited) = tokio::join!(release, sqlx::raw_sql(sql).execute(&mut *waiter));
        assert!(
            waited.is_ok(),
            "{what} failed instead of waiting: {waited:?}"
        );
    }
    sqlx::raw_sql("COMMIT").execute(&mut *waiter).await.unwrap();
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM lock_waits")
        .fetch_one(&mut *waiter)
        .await
        .unwrap();
    assert_eq!(rows, 3, "every insert that waited is there");
    drop((holder, waiter));
    app.stop().await;
}

/// `#[tokio::test]` runs on one thread: the spawned task runs only when the loop yields.
/// tokio's own sockets and channels yield once a task has used its budget of 128
/// operations; statements run inline do the same. In a transaction, because a statement
/// outside one borrows a connection from the pool, whose semaphore takes from the budget.
#[tokio::test]
async fn a_task_running_statement_after_statement_lets_other_tasks_run() {
    if crate::common::postgres_url().is_some() {
        return;
    }
    let app = TestApp::spawn_web_only(&[]).await;
    let txn = sea_orm::TransactionTrait::begin(app.app().store.db())
        .await
        .unwrap();
    let other_ran = Arc::new(AtomicBool::new(false));
    tokio::spawn({
        let other_ran = other_ran.clone();
        async move { other_ran.store(true, Ordering::SeqCst) }
    });
    let mut statements = 0;
    while !other_ran.load(Ordering::SeqCst) {
        assert!(
            statements < 200,
            "another task waited through {statements} statements"
        );
        txn.query_one_raw(Statement::from_string(DbBackend::Sqlite, "SELECT 1"))
            .await
            .unwrap();
        statements += 1;
    }
    txn.commit().await.unwrap();
    app.stop().await;
}
