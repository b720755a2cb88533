//! The job queue: retries with backoff, a dead state, panics contained, housekeeping,
//! and a scheduler that is safe with several processes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use sluice::queue::{Probe, ProbeMode};
use std::time::{Duration, Instant};

async fn wait_for_failed(app: &TestApp, queue: &str, label: &str) -> (i32, String) {
    wait_for_failed_within(app, queue, label, Duration::from_secs(30)).await
}

async fn wait_for_failed_within(
    app: &TestApp,
    queue: &str,
    label: &str,
    within: Duration,
) -> (i32, String) {
    let deadline = Instant::now() + within;
    loop {
        let failed = app.app().store.failed_jobs(queue, 50).await.unwrap();
        if let Some(job) = failed.iter().find(|j| j.payload.contains(label)) {
            return (job.attempts, job.last_error.clone());
        }
        assert!(
            Instant::now() < deadline,
            "job {label} never reached the dead state"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test]
async fn a_job_that_always_fails_is_retried_then_recorded_as_failed() {
    let app = TestApp::spawn().await;
    app.app()
        .queue
        .push(Probe {
            mode: ProbeMode::Fail,
            attempts: 4,
            label: "always-fails".into(),
            sent_at_us: None,
        })
        .await
        .unwrap();
    let (attempts, error) = wait_for_failed(&app, "diagnostics", "always-fails").await;
    assert_eq!(attempts, 4);
    assert!(error.contains("failed on purpose"));
    app.stop().await;
}

fn failing_probe(label: String) -> Probe {
    Probe {
        mode: ProbeMode::Fail,
        attempts: 1,
        label,
        sent_at_us: None,
    }
}

#[tokio::test]
async fn a_job_scheduled_for_later_starts_on_time_while_other_jobs_come_and_go() {
    let app = TestApp::spawn().await;
    let queue = &app.app().queue;
    // Three rounds: each time the worker is woken off its poll rhythm by jobs pushed now,
    // then has only its poll timer to find the job that falls due.
    for round in 0..3 {
        let later = format!("later-{round}");
        queue
            .push_after(failing_probe(later.clone()), Duration::from_millis(1500))
            .await
            .unwrap();
        for i in 0..5 {
            queue
                .push(failing_probe(format!("now-{round}-{i}")))
                .await
                .unwrap();
            tokio::time::sleep(Duration::from_millis(90)).await;
        }
        // Due within 2.5 s (the queue keeps whole seconds), found by a poll every 0.5 s;
        // the worker's 30 s heartbeat must not be what finds it.
        wait_for_failed_within(&app, "diagnostics", &later, Duration::from_secs(5)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_panicking_job_does_not_kill_the_worker() {
    let app = TestApp::spawn().await;
    app.app()
        .queue
        .push(Probe {
            mode: ProbeMode::Panic,
            attempts: 2,
            label: "panics".into(),
            sent_at_us: None,
        })
        .await
        .unwrap();
    let (attempts, error) = wait_for_failed(&app, "diagnostics", "panics").await;
    assert_eq!(attempts, 2);
    assert!(error.contains("handler panicked"), "{error}");
    // The same worker keeps working afterwards.
    app.app()
        .queue
        .push(Probe {
            mode: ProbeMode::Fail,
            attempts: 1,
            label: "after-panic".into(),
            sent_at_us: None,
        })
        .await
        .unwrap();
    let (attempts, _) = wait_for_failed(&app, "diagnostics", "after-panic").await;
    assert_eq!(attempts, 1);
    app.stop().await;
}

#[tokio::test]
async fn housekeeping_purges_expired_sessions() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let store = &app.app().store;
    let user = store
        .user_by_email(&sluice::domain::Email::parse("ada@example.com").unwrap())
        .await
        .unwrap()
        .unwrap();
    store
        .create_session(
            "expired-digest",
            user.id,
            None,
            sluice::store::now() - chrono::Duration::minutes(1),
            None,
            None,
        )
        .await
        .unwrap();
    app.app()
        .queue
        .push(sluice::queue::Housekeeping {})
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while store.session("expired-digest").await.unwrap().is_some() {
        assert!(Instant::now() < deadline, "housekeeping never ran");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(
        owner.get("/dashboard").await.status,
        200,
        "live sessions are kept"
    );
    app.stop().await;
}

#[tokio::test]
async fn only_one_scheduler_holds_the_lease_and_each_tick_runs_once() {
    let app = TestApp::spawn().await;
    let store = app.app().store.clone();
    let ttl = Duration::from_secs(30);
    assert!(
        store
            .try_lease("test-lease", "process-a", ttl)
            .await
            .unwrap()
    );
    assert!(
        !store
            .try_lease("test-lease", "process-b", ttl)
            .await
            .unwrap()
    );
    assert!(
        store
            .try_lease("test-lease", "process-a", ttl)
            .await
            .unwrap(),
        "renewal"
    );
    store
        .release_lease("test-lease", "process-a")
        .await
        .unwrap();
    assert!(
        store
            .try_lease("test-lease", "process-b", ttl)
            .await
            .unwrap(),
        "hand-over"
    );

    // Two schedulers racing for the same due tick: exactly one claims it.
    let next = sluice::store::now() + chrono::Duration::minutes(15);
    let (a, b) = tokio::join!(
        store.claim_periodic("race", next),
        store.claim_periodic("race", next)
    );
    let claims = [a.unwrap(), b.unwrap()].iter().filter(|c| **c).count();
    assert_eq!(claims, 1);
    assert!(
        !store.claim_periodic("race", next).await.unwrap(),
        "not due again until next"
    );
    app.stop().await;
}

/// Rows of finished jobs of one queue still in the queue's table (other
/// queues, such as housekeeping at start-up, finish on their own schedule).
async fn finished_jobs(app: &TestApp, queue: &str) -> i64 {
    use sea_orm::{ConnectionTrait, DbBackend, Statement};
    let db = app.app().store.db();
    let table = match db.get_database_backend() {
        DbBackend::Postgres => "apalis.jobs",
        _ => "Jobs",
    };
    let sql = format!(
        "SELECT CAST(COUNT(*) AS BIGINT) FROM {table} WHERE status = 'Done' AND job_type = $1"
    );
    db.query_one_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        sql,
        [queue.into()],
    ))
    .await
    .unwrap()
    .unwrap()
    .try_get_by_index::<i64>(0)
    .unwrap()
}

#[tokio::test]
async fn finished_jobs_leave_the_queue_tables_after_a_day_and_waiting_ones_stay() {
    let app = TestApp::spawn().await;
    let queue = &app.app().queue;
    let probe = |label: &str| Probe {
        mode: ProbeMode::Succeed,
        attempts: 1,
        label: label.into(),
        sent_at_us: None,
    };
    queue.push(probe("done-soon")).await.unwrap();
    queue
        .push_after(probe("later"), Duration::from_secs(3600))
        .await
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while finished_jobs(&app, "diagnostics").await == 0 {
        assert!(Instant::now() < deadline, "the probe never finished");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let store = &app.app().store;
    let now = sluice::store::now();
    assert_eq!(
        store
            .purge_finished_jobs(now - chrono::Duration::days(1))
            .await
            .unwrap(),
        0,
        "a job finished moments ago is kept"
    );
    assert!(
        store
            .purge_finished_jobs(now + chrono::Duration::days(1))
            .await
            .unwrap()
            >= 1
    );
    assert_eq!(finished_jobs(&app, "diagnostics").await, 0);
    let waiting = store.queue_depths().await.unwrap();
    assert!(
        waiting.iter().any(|(q, n)| q == "diagnostics" && *n == 1),
        "the scheduled job is still waiting: {waiting:?}"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_bundled_sqlite_plans_a_statement_once_whatever_its_bound_limit() {
    if crate::common::postgres_url().is_some() {
        return;
    }
    let app = TestApp::spawn().await;
    // Without the query planner stability guarantee, SQLite compiles a statement again
    // each time a value its plan looked at is bound (sea-orm binds every LIMIT, the queue
    // polls with LIMIT ?): 15 % of a small run's CPU. Set in .cargo/config.toml.
    let options = crate::common::scalar(
        app.app().store.db(),
        "SELECT COUNT(*) FROM pragma_compile_options \
         WHERE compile_options IN ('ENABLE_QPSG', 'DEFAULT_MEMSTATUS=0')",
    )
    .await;
    assert_eq!(options, 2, "SQLite was built without LIBSQLITE3_FLAGS");
    app.stop().await;
}

/// The query plan of `sql` on the test's SQLite database, one line per step.
async fn plan_of(app: &TestApp, sql: &str) -> Vec<String> {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.app().store.db();
    db.query_all_raw(Statement::from_string(
        db.get_database_backend(),
        format!("EXPLAIN QUERY PLAN {sql}"),
    ))
    .await
    .unwrap()
    .iter()
    .filter_map(|r| r.try_get::<String>("", "detail").ok())
    .collect()
}

#[tokio::test]
async fn every_statement_on_the_sqlite_queue_finds_its_jobs_through_an_index() {
    if crate::common::postgres_url().is_some() {
        return;
    }
    let app = TestApp::spawn().await;
    // Each job is written three times, so the queue keeps only the indexes these need
    // (`queue::storage::drop_unused_job_indexes`). Our fetch, acknowledgement and look for due jobs, apalis-sqlite 1.0's
    // statements where they choose the plan, and ours as `Store::purge_finished_jobs` and
    // `Store::queue_depths` word them.
    let statements: [(&str, &str, &[&str]); 6] = [
        ("fetch", sluice::queue::FETCH_PENDING, &["idx_jobs_pending"]),
        (
            "the look for queues with a job due",
            sluice::queue::DUE_QUEUES,
            // Either finds the waiting jobs alone.
            &["idx_jobs_pending", "idx_jobs_status_run_at (status=?"],
        ),
        (
            "acknowledgement",
            sluice::queue::ACKNOWLEDGE,
            &["sqlite_autoindex_Jobs_1"],
        ),
        (
            "orphan recovery (apalis)",
            "SELECT Jobs.id FROM Jobs INNER JOIN Workers ON lock_by = Workers.id \
             WHERE (status = 'Running' OR status = 'Queued') \
             AND strftime('%s', 'now') - Workers.last_seen >= ?1 AND Workers.worker_type = ?2",
            &["idx_jobs_status_run_at (status=?)", "LIdx (lock_by=?)"],
        ),
        (
            "purge of finished jobs",
            "SELECT id FROM Jobs WHERE status IN ('Done', 'Failed', 'Killed') \
             AND done_at IS NOT NULL AND done_at < ?1 \
             AND (status <> 'Failed' OR attempts >= max_attempts) LIMIT 500",
            &["idx_jobs_completed_done_at"],
        ),
        (
            "queue depth",
            "SELECT job_type, COUNT(*) FROM Jobs WHERE status = 'Pending' AND lock_by IS NULL \
             GROUP BY job_type",
            // Each finds the waiting jobs alone: finished ones keep their worker.
            &[
                "idx_jobs_pending",
                "LIdx (lock_by=?)",
                "idx_jobs_status_run_at (status=?)",
            ],
        ),
    ];
    for (what, sql, indexes) in statements {
        let plan = plan_of(&app, sql).await;
        assert!(
            plan.iter()
                .any(|step| step.contains("Jobs")
                    && indexes.iter().any(|index| step.contains(index))),
            "{what}: expected one of {indexes:?}, got {plan:?}"
        );
        assert!(
            !plan.iter().any(|step| step.trim_end() == "SCAN Jobs"),
            "{what} reads the whole table: {plan:?}"
        );
    }
    // The fetch takes the jobs in the index's order: no sort, so no temporary b-tree
    // made and freed at every fetch (apalis's own fetch merges two branches with one).
    let fetch = plan_of(&app, sluice::queue::FETCH_PENDING).await;
    assert!(
        !fetch.iter().any(|step| step.contains("TEMP B-TREE")),
        "the fetch sorts: {fetch:?}"
    );
    let dropped = crate::common::scalar(
        app.app().store.db(),
        "SELECT COUNT(*) FROM sqlite_schema WHERE type = 'index' AND name IN \
         ('idx_jobs_job_type_status_run_at', 'idx_jobs_claimable')",
    )
    .await;
    assert_eq!(dropped, 0, "the indexes no statement needs are gone");
    app.stop().await;
}

#[tokio::test]
async fn a_job_enqueued_in_a_commit_is_stored_locked_to_this_process_worker_and_runs_without_a_fetch()
 {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let queue = &app.app().queue;
    let db = app.app().store.db();
    let probe = Probe {
        mode: ProbeMode::Succeed,
        attempts: 1,
        label: "handed-over".into(),
        sent_at_us: None,
    };
    if db.get_database_backend() == sea_orm::DbBackend::Postgres {
        // Jobs are pushed after the caller's commit there, and fetched.
        assert!(queue.enqueue_statement(vec![probe]).unwrap().is_none());
        app.stop().await;
        return;
    }
    // The worker is offered jobs once it has registered (so that its death frees them).
    let deadline = Instant::now() + Duration::from_secs(20);
    let worker = loop {
        let row = db
            .query_one_raw(sea_orm::Statement::from_string(
                sea_orm::DbBackend::Sqlite,
                "SELECT id FROM Workers WHERE worker_type = 'diagnostics'",
            ))
            .await
            .unwrap();
        if let Some(row) = row {
            break row.try_get_by_index::<String>(0).unwrap();
        }
        assert!(Instant::now() < deadline, "the worker never registered");
        tokio::time::sleep(Duration::from_millis(20)).await;
    };
    tokio::time::sleep(Duration::from_millis(50)).await;
    let (statement, enqueued) = queue.enqueue_statement(vec![probe]).unwrap().unwrap();
    db.execute_raw(statement).await.unwrap();
    let job = "SELECT status, lock_by FROM Jobs WHERE CAST(job AS TEXT) LIKE '%handed-over%'";
    let stored = queue_rows(&app, job, vec![]).await;
    // Taken already: the worker's fetch takes only `Pending` jobs, so the hand-over is
    // the only way this one can start.
    assert_eq!(stored, vec![("Queued".to_owned(), Some(worker.clone()))]);
    queue.committed(enqueued).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let now = queue_rows(&app, job, vec![]).await.pop();
        if now.as_ref().is_some_and(|(status, _)| status == "Done") {
            assert_eq!(
                now.and_then(|(_, by)| by),
                Some(worker),
                "acknowledged by its worker"
            );
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the handed job never ran: {now:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    app.stop().await;
}

#[tokio::test]
async fn a_completed_run_marks_its_job_done_in_the_commit_that_ends_it() {
    use crate::common::flows::{connect_both, contact_flow, create_flow, run_to_end, status_of};
    use sluice::queue::{Job, RunFlow};
    if crate::common::postgres_url().is_some() {
        // There the queue is apalis's own, which acknowledges each job after it.
        return;
    }
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "20")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(20).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    let (_, end) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&end).to_lowercase(), "succeeded");
    // Time for an acknowledgement by the worker after the job, had it made one.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let jobs = queue_rows(
        &app,
        "SELECT status, last_result FROM Jobs WHERE job_type = ?",
        vec![RunFlow::QUEUE.into()],
    )
    .await;
    assert_eq!(
        jobs,
        vec![(
            "Done".to_owned(),
            Some(sluice::queue::OWN_ACK_RESULT.to_owned())
        )],
        "the run's job, acknowledged by the run's end and only by it"
    );
    app.stop().await;
}

/// The two text columns `sql` selects from the SQLite queue's rows.
async fn queue_rows(
    app: &TestApp,
    sql: &str,
    values: Vec<sea_orm::Value>,
) -> Vec<(String, Option<String>)> {
    use sea_orm::ConnectionTrait;
    app.app()
        .store
        .db()
        .query_all_raw(sea_orm::Statement::from_sql_and_values(
            sea_orm::DbBackend::Sqlite,
            sql,
            values,
        ))
        .await
        .unwrap()
        .iter()
        .map(|row| {
            (
                row.try_get_by_index::<String>(0).unwrap(),
                row.try_get_by_index::<Option<String>>(1).unwrap(),
            )
        })
        .collect()
}
