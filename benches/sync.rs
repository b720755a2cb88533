//! `cargo bench --bench sync`: a batched sandbox CRM → ERP sync on SQLite, with the
//! sandbox's own ceiling and queue figures measured in the same run. Throughput, latency
//! and queue figures come from the embedded default (one process); Sluice's memory comes
//! from the same sync run by a `sluice worker` process of its own, since a process that
//! also hosts the sandbox would count the stand-in SaaS's memory as ours.
//!
//! Records default to 100,000 (`SLUICE_BENCH_RECORDS` changes it). Figures are printed as
//! `name = value` lines; the README quotes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::TestApp;
use common::flows::{connect_both, contact_flow, create_flow, set};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::json;
use sluice::connectors::session::{self, ApiCall};
use sluice::domain::{ConnectionId, TenantId};
use sluice::sync::source::{Resume, Source};
use std::time::{Duration, Instant};

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    let db = app.app().store.db();
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .and_then(|r| r.try_get_by_index::<i64>(0).ok())
        .unwrap_or(0)
}

async fn uuid_of(app: &TestApp, sql: &str) -> uuid::Uuid {
    let db = app.app().store.db();
    db.query_one_raw(Statement::from_string(db.get_database_backend(), sql))
        .await
        .unwrap()
        .unwrap()
        .try_get_by_index::<uuid::Uuid>(0)
        .unwrap()
}

fn status_kb(file: &str, field: &str) -> u64 {
    std::fs::read_to_string(file)
        .unwrap_or_default()
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

/// CPU seconds this process has used (user + system), from /proc/self/stat.
fn cpu_seconds() -> f64 {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let fields: Vec<&str> = stat
        .rsplit_once(')')
        .map(|(_, rest)| rest.split_whitespace().collect())
        .unwrap_or_default();
    let ticks: f64 = [11, 12]
        .iter()
        .filter_map(|&i| fields.get(i).and_then(|v| v.parse::<f64>().ok()))
        .sum();
    ticks / 100.0
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

/// Runs a flow now and waits (polling the database) until it ends; returns the time.
async fn timed_run(app: &TestApp, admin: &common::Client, flow: &str) -> Duration {
    let started = Instant::now();
    let res = admin.post_form(&format!("{flow}/run"), &[]).await;
    assert_eq!(res.status, 303);
    let run = res.location().trim_start_matches("/runs/").to_owned();
    loop {
        let done = scalar(
            app,
            &format!(
                "SELECT COUNT(*) FROM runs WHERE status NOT IN ('queued','running') AND hex(id) = upper(replace('{run}','-',''))"
            ),
        )
        .await;
        if done == 1 {
            return started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A Sluice instance with `n` seeded sandbox contacts and the sandbox CRM and ERP
/// connected; `web_only` leaves the workers to another process.
async fn instance(
    n: i64,
    extra: &[(&str, &str)],
    web_only: bool,
) -> (TestApp, common::Client, String, String) {
    let seed = n.to_string();
    let mut vars = vec![
        ("SLUICE_SANDBOX_SEED_CONTACTS", seed.as_str()),
        ("SLUICE_LOG", "error"),
        ("SLUICE_DB_MAX_CONNECTIONS", "8"),
    ];
    vars.extend_from_slice(extra);
    let app = if web_only {
        TestApp::spawn_web_only(&vars).await
    } else {
        TestApp::spawn_with(&vars).await
    };
    let admin = app.owner("bench@example.com", "Bench").await;
    let (crm, erp) = connect_both(&admin).await;
    for _ in 0..1200 {
        if app.sandbox_records("crm.contacts").await == n {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(app.sandbox_records("crm.contacts").await, n, "seeded");
    (app, admin, crm, erp)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let n: i64 = std::env::var("SLUICE_BENCH_RECORDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(100_000);
    // The embedded default: web, sandbox and workers in this one process.
    let (app, admin, crm, erp) = instance(n, &[], false).await;

    // 1. The ceiling: the sandbox alone serving the same pages and accepting the same
    //    batches, through the same client, with no mapping, ledger or checkpoints.
    let env = app.app();
    let tenant = TenantId::from_uuid(uuid_of(&app, "SELECT id FROM tenants").await);
    let ctx = sluice::jobs::tenant_scope(env, tenant).await.unwrap();
    let crm_id: ConnectionId = crm.parse().unwrap();
    let erp_id: ConnectionId = erp.parse().unwrap();
    let provider = sluice::connectors::catalogue::get("sandbox_crm").unwrap();
    let source = Source::new(
        crm_id,
        provider,
        provider
            .objects
            .iter()
            .find(|o| o.id == "contacts")
            .unwrap(),
    );
    let started = Instant::now();
    let cpu_at_start = cpu_seconds();
    let mut resume: Option<Resume> = None;
    let mut pages = Vec::new();
    loop {
        let page = source
            .fetch(env, &ctx, resume.as_ref(), None, source.page_size(None))
            .await
            .unwrap();
        let next = page.next;
        pages.push(page.records);
        match next {
            Some(next) => resume = Some(next),
            None => break,
        }
    }
    let read_time = started.elapsed();
    let read_cpu = cpu_seconds() - cpu_at_start;
    assert_eq!(pages.iter().map(Vec::len).sum::<usize>() as i64, n);
    // The same batches the flow writes (its four mapped fields, upserted by key), under
    // keys of their own so that the sync later creates its records as it would alone.
    let batches: Vec<_> = pages
        .iter()
        .flat_map(|page| page.chunks(500))
        .map(|page| {
            let records: Vec<_> = page
                .iter()
                .map(|r| {
                    json!({
                        "external_id": format!("ceiling-{}", r["id"].as_str().unwrap()),
                        "email": r["email"],
                        "name": r["name"],
                        "city": r["city"].as_str().map(str::to_uppercase),
                    })
                })
                .collect();
            json!({ "mode": "upsert", "records": records })
        })
        .collect();
    drop(pages);
    let started = Instant::now();
    let cpu_at_start = cpu_seconds();
    for body in &batches {
        let res = session::call_with(
            env,
            &ctx,
            erp_id,
            &ApiCall {
                link: false,
                method: reqwest::Method::POST,
                path: "/customers/batch",
                query: &[],
                body: Some(body),
                headers: &[],
            },
        )
        .await
        .unwrap();
        assert!(res.status.is_success());
    }
    let write_time = started.elapsed();
    let ceiling_cpu = read_cpu + cpu_seconds() - cpu_at_start;
    let ceiling = n as f64 / (read_time + write_time).as_secs_f64();

    // 2. Enqueue to finish for 10,000 records (an incremental run over the newest 10k).
    let mut fields = contact_flow(&crm, &erp, "Newest 10k", "record.email");
    set(&mut fields, "destination", &format!("{erp}:orders"));
    set(&mut fields, "write_mode", "create");
    // Creates must map the key the destination finds records by (`external_id`), so an
    // unconfirmed create can be looked up before it is sent again.
    set(&mut fields, "mapping.4.target", "customer_id");
    set(&mut fields, "mapping.4.expression", "record.id");
    set(&mut fields, "incremental", "on");
    set(&mut fields, "batch_size", "500");
    let small = create_flow(&admin, &fields).await;
    let since = chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
        + chrono::Duration::minutes(n - 10_000);
    let db = app.app().store.db();
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE flows SET watermark = $1",
        [since
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
            .into()],
    ))
    .await
    .unwrap();
    let ten_k = timed_run(&app, &admin, &small).await;
    assert_eq!(app.sandbox_records("erp.orders").await, 10_000);

    // 3. The full batched sync. (Phase marks on stderr let a profiler attach to one phase.)
    eprintln!("phase: full sync");
    let mut fields = contact_flow(&crm, &erp, "All contacts", "record.email");
    set(&mut fields, "batch_size", "500");
    let full = create_flow(&admin, &fields).await;
    let cpu_at_start = cpu_seconds();
    let full_time = timed_run(&app, &admin, &full).await;
    let sync_cpu = cpu_seconds() - cpu_at_start;
    assert_eq!(
        app.sandbox_records("erp.customers").await,
        2 * n,
        "the ceiling's and the sync's"
    );
    let rate = n as f64 / full_time.as_secs_f64();

    eprintln!("phase: accounting");
    // 4. What Sluice stores per synced record (SQLite page accounting).
    let ours = scalar(
        &app,
        "SELECT COALESCE(SUM(pgsize), 0) FROM dbstat WHERE name IN \
         ('record_ledger', 'runs', 'run_events', 'dead_letters', 'sqlite_autoindex_record_ledger_1')",
    )
    .await;

    // 5. Sluice's own memory: the same sync run by a `sluice worker` process of its own,
    //    against a second instance whose web process serves the sandbox.
    let key = sluice::config::MasterKey::generate_base64();
    let (apart, apart_admin, apart_crm, apart_erp) =
        instance(n, &[("SLUICE_MASTER_KEY", key.as_str())], true).await;
    let mut worker = apart.spawn_worker(
        &key,
        &[
            ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
            ("SLUICE_DB_MAX_CONNECTIONS", "8"),
        ],
    );
    let worker_status = format!("/proc/{}/status", worker.id());
    let worker_idle = status_kb(&worker_status, "VmRSS:");
    let mut fields = contact_flow(&apart_crm, &apart_erp, "All contacts", "record.email");
    set(&mut fields, "batch_size", "500");
    let flow = create_flow(&apart_admin, &fields).await;
    let worker_time = timed_run(&apart, &apart_admin, &flow).await;
    assert_eq!(apart.sandbox_records("erp.customers").await, n);
    let worker_peak = status_kb(&worker_status, "VmHWM:");
    let _ = worker.kill();
    let _ = worker.wait();
    apart.stop().await;

    // 6. Queue: no-op jobs per second, and enqueue → start latency when idle.
    let burst = 3000;
    let started = Instant::now();
    for i in 0..burst {
        env.queue
            .push(sluice::queue::Probe {
                mode: sluice::queue::ProbeMode::Succeed,
                attempts: 1,
                label: format!("burst-{i}"),
                sent_at_us: None,
            })
            .await
            .unwrap();
    }
    let mut ran = 0;
    let mut probes = Vec::new();
    while ran < burst {
        tokio::time::sleep(Duration::from_millis(5)).await;
        ran = scalar(
            &app,
            "SELECT COUNT(*) FROM Jobs WHERE job_type = 'diagnostics' AND status = 'Done'",
        )
        .await;
        if started.elapsed() > Duration::from_secs(120) {
            break;
        }
    }
    let jobs_per_sec = ran as f64 / started.elapsed().as_secs_f64();
    sluice::jobs::probe::take_latencies();
    for i in 0..300 {
        env.queue
            .push(sluice::queue::Probe {
                mode: sluice::queue::ProbeMode::Succeed,
                attempts: 1,
                label: format!("latency-{i}"),
                sent_at_us: Some(chrono::Utc::now().timestamp_micros()),
            })
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(10)).await;
        probes.extend(sluice::jobs::probe::take_latencies());
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    probes.extend(sluice::jobs::probe::take_latencies());
    probes.sort_by(f64::total_cmp);

    println!("records = {n}");
    println!(
        "sandbox_ceiling_records_per_sec = {ceiling:.0}  (read {:.2} s + write {:.2} s)",
        read_time.as_secs_f64(),
        write_time.as_secs_f64()
    );
    println!(
        "sync_records_per_sec = {rate:.0}  ({:.2} s)",
        full_time.as_secs_f64()
    );
    println!(
        "cpu_us_per_record ceiling = {:.1}, sync = {:.1}  (this process, user + system)",
        ceiling_cpu * 1e6 / n as f64,
        sync_cpu * 1e6 / n as f64
    );
    println!("sync_share_of_ceiling = {:.0} %", rate / ceiling * 100.0);
    println!("enqueue_to_finish_10k_ms = {}", ten_k.as_millis());
    println!(
        "worker_rss_mb idle = {:.1}, peak = {:.1}  (a `sluice worker` process running the same sync in {:.2} s)",
        worker_idle as f64 / 1024.0,
        worker_peak as f64 / 1024.0,
        worker_time.as_secs_f64()
    );
    let ledger_rows = scalar(&app, "SELECT COUNT(*) FROM record_ledger")
        .await
        .max(1);
    println!(
        "stored_bytes_per_record = {:.1}  ({ledger_rows} records synced in all)",
        ours as f64 / ledger_rows as f64
    );
    println!("queue_noop_jobs_per_sec = {jobs_per_sec:.0}  ({ran} jobs)");
    println!(
        "queue_enqueue_to_start_ms p50 = {:.1}, p99 = {:.1}  ({} samples)",
        percentile(&probes, 0.5) * 1000.0,
        percentile(&probes, 0.99) * 1000.0,
        probes.len()
    );
    app.stop().await;
}
