//! The engine under adversity: a 429 storm with 30 % server errors, a worker killed with
//! SIGKILL mid-run, two schedulers racing for one tick, hostile inbound webhooks, and runs
//! that must wait their turn.
//! In every case each record reaches the destination exactly once.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{
    connect_both, contact_flow, count, create_flow, run_scope_of, run_to_end, set, start_run,
    wait_for_run,
};
use crate::common::{TestApp, scalar};
use sea_orm::{ConnectionTrait, Statement};
use std::time::Duration;

#[tokio::test]
async fn a_429_storm_and_30_percent_server_errors_still_deliver_every_record_exactly_once() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "1500"),
        ("SLUICE_SANDBOX_ERROR_RATE", "0.3"),
        ("SLUICE_SANDBOX_RATE_LIMIT", "4"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(1500).await;
    // Create mode: a write repeated without idempotency would show up as a duplicate.
    let mut fields = contact_flow(&crm, &erp, "Stormy", "record.email");
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "batch_size", "100");
    let flow = create_flow(&admin, &fields).await;

    let (run, done) = run_to_end(&admin, &flow).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert_eq!(count(&done, "written"), 1500);
    assert_eq!(app.sandbox_records("erp.customers").await, 1500);
    assert_eq!(app.duplicate_customers().await, 0);
    assert!(
        app.sandbox_counter("api.rate_limited").await > 0,
        "the storm happened"
    );
    assert!(
        app.sandbox_counter("api.injected_faults").await > 0,
        "faults happened"
    );
    let log = admin.get(&run).await;
    assert!(
        log.body.contains("Retry-After"),
        "waits are shown in the run log"
    );
    assert!(log.body.contains("HTTP 503"), "{}", log.body);
    app.stop().await;
}

#[tokio::test]
async fn calls_slower_than_the_lease_keep_it_alive_so_no_second_worker_resends_a_batch() {
    // Every call takes 2.5 s and a page (read, then write) 5 s, longer than the 4 s
    // lease: only a lease renewed while calls are in flight keeps the run with its worker.
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "1500"),
        ("SLUICE_SANDBOX_LATENCY_MS", "2500"),
        ("SLUICE_RUN_LEASE_SECS", "4"),
        ("SLUICE_OUTBOUND_TIMEOUT_SECS", "3"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(1500).await;
    let mut fields = contact_flow(&crm, &erp, "Slow destination", "record.email");
    set(&mut fields, "write_mode", "create");
    let flow = create_flow(&admin, &fields).await;
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    let run = started.location().to_owned();

    // Sample the lease while the run works: it must move between page commits.
    let db = app.app().store.db();
    let mut renewed_within_a_page = false;
    let mut seen: Option<(i64, String)> = None;
    for _ in 0..150 {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT pages, CAST(heartbeat_at AS TEXT), status FROM runs",
            ))
            .await
            .unwrap()
            .unwrap();
        let pages: i64 = row.try_get_by_index(0).unwrap();
        let beat: Option<String> = row.try_get_by_index(1).unwrap();
        let status: String = row.try_get_by_index(2).unwrap();
        if let (Some((p, b)), Some(beat)) = (&seen, &beat)
            && *p == pages
            && b != beat
        {
            renewed_within_a_page = true;
        }
        if status != "running" && status != "queued" {
            break;
        }
        seen = beat.map(|b| (pages, b));
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    let done = wait_for_run(&admin, &run).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert!(
        renewed_within_a_page,
        "the lease is renewed while a call is in flight"
    );
    assert_eq!(count(&done, "written"), 1500);
    assert_eq!(app.sandbox_records("erp.customers").await, 1500);
    assert_eq!(
        app.sandbox_counter("api.batch_requests").await,
        3,
        "each batch of 500 was sent once"
    );
    let log = admin.get(&run).await;
    assert!(
        !log.body.contains("Resumed after an interruption"),
        "no second execution took the run over"
    );
    app.stop().await;
}

/// A worker process for these tests: a short run lease so recovery is quick.
#[tokio::test]
async fn a_destination_stalling_40_s_under_the_default_lease_gets_each_batch_once() {
    // Two worker processes with the default lease and outbound timeout, a destination
    // that ignores Idempotency-Key and takes 40 s to answer each write.
    let key = sluice::config::MasterKey::generate_base64();
    let app = TestApp::spawn_web_only(&[
        ("SLUICE_MASTER_KEY", &key),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "500"),
        ("SLUICE_SANDBOX_IDEMPOTENCY", "off"),
        ("SLUICE_SANDBOX_WRITE_LATENCY_MS", "40000"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(500).await;
    let mut fields = contact_flow(&crm, &erp, "Stalling destination", "record.email");
    set(&mut fields, "write_mode", "create");
    let flow = create_flow(&admin, &fields).await;
    let defaults = [("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8")];
    let mut workers = [
        app.spawn_worker(&key, &defaults),
        app.spawn_worker(&key, &defaults),
    ];
    let started = std::time::Instant::now();
    let (run, done) = run_to_end(&admin, &flow).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert!(
        started.elapsed() >= Duration::from_secs(40),
        "the batch stalled"
    );
    assert_eq!(
        app.sandbox_counter("api.batch_requests").await,
        1,
        "the batch was sent once"
    );
    assert_eq!(app.sandbox_records("erp.customers").await, 500);
    assert_eq!(app.duplicate_customers().await, 0);
    let log = admin.get(&run).await.body;
    assert!(!log.contains("Resumed after an interruption"), "{log}");
    for worker in &mut workers {
        worker.kill().unwrap();
        worker.wait().unwrap();
    }
    app.stop().await;
}

fn worker(app: &TestApp, key: &str) -> std::process::Child {
    app.spawn_worker(
        key,
        &[
            ("SLUICE_RUN_LEASE_SECS", "4"),
            ("SLUICE_OUTBOUND_TIMEOUT_SECS", "3"),
            ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ],
    )
}

#[tokio::test]
async fn a_worker_killed_mid_run_is_resumed_from_its_checkpoint_with_no_record_lost_or_doubled() {
    kill_a_worker_mid_run_and_resume(true).await;
}

#[tokio::test]
async fn after_a_kill_a_destination_ignoring_idempotency_keys_gets_no_duplicate_either() {
    // The pages the killed worker wrote but did not commit are looked up by the flow's
    // key field before they are created again.
    kill_a_worker_mid_run_and_resume(false).await;
}

async fn kill_a_worker_mid_run_and_resume(destination_honours_keys: bool) {
    let key = sluice::config::MasterKey::generate_base64();
    let app = TestApp::spawn_web_only(&[
        ("SLUICE_MASTER_KEY", &key),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "3000"),
        ("SLUICE_SANDBOX_LATENCY_MS", "40"),
        (
            "SLUICE_SANDBOX_IDEMPOTENCY",
            if destination_honours_keys {
                "on"
            } else {
                "off"
            },
        ),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(3000).await;
    let mut fields = contact_flow(&crm, &erp, "Crash test", "record.email");
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "batch_size", "50");
    let flow = create_flow(&admin, &fields).await;

    let mut first = worker(&app, &key);
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    let run = started.location().to_owned();
    // Let it commit a couple of pages, then pull the plug.
    for _ in 0..300 {
        if scalar(
            app.app().store.db(),
            "SELECT COALESCE(MAX(pages), 0) FROM runs",
        )
        .await
            >= 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let holder = |db: sea_orm::DatabaseConnection| async move {
        let row = db
            .query_one_raw(Statement::from_string(
                db.get_database_backend(),
                "SELECT lease_holder FROM runs",
            ))
            .await
            .unwrap()
            .unwrap();
        row.try_get_by_index::<Option<String>>(0).unwrap()
    };
    let killed_holder = holder(app.app().store.db().clone()).await;
    first.kill().unwrap();
    first.wait().unwrap();
    let killed_at = std::time::Instant::now();
    let written_before = scalar(
        app.sandbox_db().await,
        "SELECT COUNT(*) FROM sandbox_records WHERE object = 'erp.customers'",
    )
    .await;
    assert!(
        written_before > 0 && written_before < 3000,
        "killed mid-run ({written_before} written)"
    );

    let mut second = worker(&app, &key);
    // Taken over within the lease (4 s) and 5 s, though the killed worker was also the
    // scheduler whose own lease had to lapse first.
    while holder(app.app().store.db().clone()).await == killed_holder {
        assert!(
            killed_at.elapsed() < Duration::from_secs(9),
            "not taken over within the lease + 5 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    eprintln!("taken over {:?} after the kill", killed_at.elapsed());
    let done = wait_for_run(&admin, &run).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert_eq!(app.sandbox_records("erp.customers").await, 3000);
    assert_eq!(app.duplicate_customers().await, 0);
    assert_eq!(count(&done, "written"), 3000);
    let log = admin.get(&run).await.body;
    assert!(log.contains("Resumed after an interruption"), "{log}");
    assert!(
        log.contains("looked up by external_id at Sandbox ERP"),
        "{log}"
    );
    second.kill().unwrap();
    second.wait().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn racing_schedulers_start_one_run_per_tick_and_a_long_downtime_catches_up_once() {
    let app = TestApp::spawn_web_only(&[("SLUICE_SANDBOX_SEED_CONTACTS", "10")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let mut fields = contact_flow(&crm, &erp, "Every five minutes", "record.email");
    set(&mut fields, "trigger", "interval");
    set(&mut fields, "interval_minutes", "5");
    let flow = create_flow(&admin, &fields).await;
    let page = admin.get(&flow).await;
    assert!(page.body.contains("Every 5 minutes"), "{}", page.body);

    let overdue = |minutes: i64| {
        let db = app.app().store.db().clone();
        async move {
            db.execute_raw(Statement::from_sql_and_values(
                db.get_database_backend(),
                "UPDATE flows SET next_run_at = $1",
                [(sluice::store::now() - chrono::Duration::minutes(minutes)).into()],
            ))
            .await
            .unwrap();
        }
    };
    // A tick is due; eight scheduler passes race for it.
    overdue(1).await;
    let env = app.app();
    let passes =
        futures::future::join_all((0..8).map(|_| sluice::jobs::flows::enqueue_due(env))).await;
    let started: usize = passes.into_iter().map(Result::unwrap).sum();
    assert_eq!(started, 1);
    assert_eq!(
        scalar(app.app().store.db(), "SELECT COUNT(*) FROM runs").await,
        1
    );

    // Two hours of downtime (24 missed ticks) yield one catch-up run, and the next tick
    // is scheduled from now.
    overdue(120).await;
    let db = app.app().store.db();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE runs SET status = 'succeeded'",
    ))
    .await
    .unwrap();
    let started: usize =
        futures::future::join_all((0..8).map(|_| sluice::jobs::flows::enqueue_due(env)))
            .await
            .into_iter()
            .map(Result::unwrap)
            .sum();
    assert_eq!(started, 1);
    assert_eq!(
        scalar(app.app().store.db(), "SELECT COUNT(*) FROM runs").await,
        2
    );
    let again: usize = sluice::jobs::flows::enqueue_due(env).await.unwrap();
    assert_eq!(again, 0, "the next tick is in the future");
    app.stop().await;
}

#[tokio::test]
async fn a_batch_refused_whole_for_three_bad_records_is_halved_until_they_stand_alone() {
    // The destination refuses a whole batch of 500 for one invalid record, as some
    // vendors' batch endpoints do.
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "3000"),
        ("SLUICE_SANDBOX_ALL_OR_NONE", "on"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(3000).await;
    let email = "'not-an-email' if record.id in ['con_000007', 'con_001500', 'con_002999'] \
                 else record.email";
    let mut fields = contact_flow(&crm, &erp, "Three bad apples", email);
    set(&mut fields, "write_mode", "create");
    let flow = create_flow(&admin, &fields).await;

    let (_, done) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&done, "written"), 2997, "{}", done.body);
    assert_eq!(count(&done, "failed"), 3);
    assert_eq!(app.sandbox_records("erp.customers").await, 2997);
    let requests = app.sandbox_counter("api.batch_requests").await;
    // Six batches, and for each bad record about two calls per halving of 500.
    assert!(requests <= 6 + 3 * 2 * 9, "{requests} batch requests");
    let letters = admin.get(&format!("{flow}/dead-letters")).await;
    assert!(letters.body.contains("con_001500"), "{}", letters.body);
    app.stop().await;
}

#[tokio::test]
async fn sigterm_stops_a_run_at_a_page_boundary_and_hands_it_to_the_next_worker() {
    let key = sluice::config::MasterKey::generate_base64();
    let app = TestApp::spawn_web_only(&[
        ("SLUICE_MASTER_KEY", &key),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "3000"),
        ("SLUICE_SANDBOX_LATENCY_MS", "40"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(3000).await;
    let mut fields = contact_flow(&crm, &erp, "Shutdown test", "record.email");
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "batch_size", "50");
    let flow = create_flow(&admin, &fields).await;

    // A long lease: without the hand-back the run would sit for a minute.
    let worker = |app: &TestApp| {
        app.spawn_worker_logged(
            &key,
            &[
                ("SLUICE_RUN_LEASE_SECS", "60"),
                ("SLUICE_OUTBOUND_TIMEOUT_SECS", "30"),
                ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
            ],
        )
    };
    let (mut first, first_log) = worker(&app);
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    let run = started.location().to_owned();
    let db = app.app().store.db().clone();
    for _ in 0..300 {
        if scalar(&db, "SELECT COALESCE(MAX(pages), 0) FROM runs").await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let signalled = std::time::Instant::now();
    let term = std::process::Command::new("kill")
        .args(["-TERM", &first.id().to_string()])
        .status()
        .unwrap();
    assert!(term.success());
    let status = TestApp::exited(&mut first).await;
    assert!(status.success(), "{status}");
    assert!(
        signalled.elapsed() < Duration::from_secs(10),
        "stopped at the next page, not after the drain timeout: {:?}",
        signalled.elapsed()
    );
    assert_eq!(
        scalar(
            &db,
            "SELECT COUNT(*) FROM runs WHERE status = 'running' AND lease_holder IS NULL"
        )
        .await,
        1,
        "the unfinished run was handed back, not left looking alive"
    );
    let log = admin.get(&run).await;
    assert!(log.body.contains("Handed back at shutdown"), "{}", log.body);

    let resumed_from = std::time::Instant::now();
    let (mut second, second_log) = worker(&app);
    let done = wait_for_run(&admin, &run).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert!(
        resumed_from.elapsed() < Duration::from_secs(60),
        "the next worker did not wait for the lease ({:?}); first worker:\n{}\nsecond worker:\n{}",
        resumed_from.elapsed(),
        first_log.lock().unwrap().join("\n"),
        second_log.lock().unwrap().join("\n")
    );
    assert_eq!(app.sandbox_records("erp.customers").await, 3000);
    assert_eq!(app.duplicate_customers().await, 0);
    second.kill().unwrap();
    second.wait().unwrap();
    app.stop().await;
}

#[tokio::test]
async fn creates_whose_answers_are_lost_are_looked_up_before_they_are_sent_again() {
    // A destination that ignores Idempotency-Key and, one write in three, applies it and
    // answers 504 as if the answer had been lost on its way back.
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "1000"),
        ("SLUICE_SANDBOX_IDEMPOTENCY", "off"),
        ("SLUICE_SANDBOX_LOST_ANSWER_RATE", "0.3"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(1000).await;
    let mut fields = contact_flow(&crm, &erp, "Lost answers", "record.email");
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "batch_size", "50");
    let flow = create_flow(&admin, &fields).await;
    let (run, done) = run_to_end(&admin, &flow).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert!(app.sandbox_counter("api.lost_answers").await > 0);
    assert_eq!(app.sandbox_records("erp.customers").await, 1000);
    assert_eq!(app.duplicate_customers().await, 0);
    assert_eq!(count(&done, "written"), 1000);
    let log = admin.get(&run).await.body;
    assert!(log.contains("HTTP 504"), "{log}");

    // The same destination without a key field to look records up by: the lost answers
    // become duplicates, which is what the lookup prevents.
    let mut fields = contact_flow(&crm, &erp, "Lost answers, no key", "record.email");
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "batch_size", "50");
    set(&mut fields, "key_field", "");
    let flow = create_flow(&admin, &fields).await;
    let (_, done) = run_to_end(&admin, &flow).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    assert!(
        app.sandbox_records("erp.customers").await > 2000,
        "re-sent batches were created twice"
    );
    app.stop().await;
}

/// A destination without a batch endpoint, as many vendors' APIs are: `POST /items`
/// creates one record in 15 ms and ignores idempotency keys. It notes how many creates
/// it serves at once, and refuses its tenth create once with a 503, creating nothing.
#[derive(Default)]
struct OneByOne {
    created: std::sync::Mutex<Vec<String>>,
    calls: std::sync::atomic::AtomicUsize,
    in_flight: std::sync::atomic::AtomicUsize,
    most_at_once: std::sync::atomic::AtomicUsize,
}

async fn one_by_one(
    sink: actix_web::web::Data<OneByOne>,
    body: actix_web::web::Json<serde_json::Value>,
) -> actix_web::HttpResponse {
    use std::sync::atomic::Ordering::SeqCst;
    let now = sink.in_flight.fetch_add(1, SeqCst) + 1;
    sink.most_at_once.fetch_max(now, SeqCst);
    tokio::time::sleep(Duration::from_millis(15)).await;
    sink.in_flight.fetch_sub(1, SeqCst);
    if sink.calls.fetch_add(1, SeqCst) == 9 {
        return actix_web::HttpResponse::ServiceUnavailable().finish();
    }
    let id = body["external_id"].as_str().unwrap_or_default().to_owned();
    sink.created.lock().unwrap().push(id.clone());
    actix_web::HttpResponse::Created().json(serde_json::json!({ "id": id }))
}

#[tokio::test]
async fn a_destination_without_batches_gets_several_records_at_once_and_none_twice_after_a_failure()
{
    let sink = actix_web::web::Data::new(OneByOne::default());
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let served = sink.clone();
    let server = actix_web::HttpServer::new(move || {
        actix_web::App::new()
            .app_data(served.clone())
            .route("/items", actix_web::web::post().to(one_by_one))
    })
    .workers(1)
    .disable_signals()
    .listen(listener)
    .unwrap()
    .run();
    tokio::spawn(server);

    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "60"),
        ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, _) = connect_both(&admin).await;
    let connected = admin
        .post_form(
            "/connections/new/http_json",
            &[
                ("name", "Items"),
                ("api_key", "items-key"),
                ("field_base_url", &base),
                ("field_key_style", "bearer"),
                ("field_list_path", "/items"),
                ("field_records_path", "$"),
                ("field_id_field", "id"),
                ("field_paging_style", "none"),
                ("field_write_path", "/items"),
                ("field_update_method", "PATCH"),
            ],
        )
        .await;
    assert_eq!(connected.status, 303, "{}", connected.body);
    let items = connected
        .location()
        .trim_start_matches("/connections/")
        .to_owned();
    app.wait_for_seed(60).await;
    let mut fields = contact_flow(&crm, &items, "Contacts to items", "record.email");
    set(&mut fields, "destination", &format!("{items}:records"));
    set(&mut fields, "write_mode", "create");
    set(&mut fields, "key_field", "");
    let flow = create_flow(&admin, &fields).await;

    let (_, page) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&page, "written"), 60);
    let mut created = sink.created.lock().unwrap().clone();
    created.sort();
    created.dedup();
    assert_eq!(created.len(), 60, "every record once");
    assert_eq!(
        sink.created.lock().unwrap().len(),
        60,
        "the records written before the 503 were not sent again"
    );
    let most = sink.most_at_once.load(std::sync::atomic::Ordering::SeqCst);
    assert!(
        (2..=8).contains(&most),
        "several creates at once, never more than eight: {most}"
    );
    app.stop().await;
}

/// Sets columns of a run; `$1` is now.
async fn update_run(app: &TestApp, run: sluice::domain::RunId, set: &str) {
    let db = app.app().store.db();
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        format!("UPDATE runs SET {set} WHERE id = $2"),
        [sluice::store::now().into(), run.into()],
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn a_flow_runs_one_sync_at_a_time_and_a_tenant_no_more_than_its_concurrency() {
    use sluice::services::alerts::evaluate::Rules;
    use sluice::sync::engine::{Executed, execute};
    let app = TestApp::spawn_web_only(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "3"),
        ("SLUICE_TENANT_CONCURRENCY", "2"),
    ])
    .await;
    app.wait_for_seed(3).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let mut flows = Vec::new();
    for name in ["Contacts A", "Contacts B", "Contacts C"] {
        flows.push(create_flow(&admin, &contact_flow(&crm, &erp, name, "record.email")).await);
    }
    let running = "status = 'running', lease_holder = 'another-worker/1', heartbeat_at = $1";
    let finished = "status = 'succeeded', lease_holder = NULL, finished_at = $1";

    // A run of flow A is under way on another worker: the next run of A waits for it.
    let first = start_run(&admin, &flows[0]).await;
    update_run(&app, first, running).await;
    let second = start_run(&admin, &flows[0]).await;
    assert_ne!(first, second, "a running run is not joined");
    let ctx = run_scope_of(&app, second).await;
    let executed = execute(app.app(), &ctx, second, &Rules, None)
        .await
        .unwrap();
    assert!(
        matches!(executed, Executed::Deferred(_)),
        "a second run of a flow started while its first was running"
    );

    // Flows B and C run elsewhere too: with A's first run done, the tenant is still at
    // its two runs at once, so A's second run keeps waiting.
    update_run(&app, first, finished).await;
    let others = [
        start_run(&admin, &flows[1]).await,
        start_run(&admin, &flows[2]).await,
    ];
    for run in others {
        update_run(&app, run, running).await;
    }
    let executed = execute(app.app(), &ctx, second, &Rules, None)
        .await
        .unwrap();
    assert!(
        matches!(executed, Executed::Deferred(_)),
        "a third run started beside two with a concurrency of two"
    );

    // One of them ends: A's second run goes, through to its end.
    update_run(&app, others[0], finished).await;
    let executed = execute(app.app(), &ctx, second, &Rules, None)
        .await
        .unwrap();
    let Executed::Completed(done) = executed else {
        panic!("the run did not go once the tenant had room");
    };
    assert_eq!(done.run.records_written, 3, "{:?}", done.run);
    app.stop().await;
}
