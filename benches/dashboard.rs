//! `cargo bench --bench dashboard`: the tenant dashboard and a filtered run history page
//! under 10 concurrent clients, with 1,000,000 runs across 1,000 tenants in the database
//! (seeded by the same code as `sluice admin seed-history`).
//!
//! SQLite by default; set `SLUICE_TEST_POSTGRES_URL` for PostgreSQL. Sizes:
//! `SLUICE_BENCH_TENANTS`, `SLUICE_BENCH_RUNS`, `SLUICE_BENCH_REQUESTS` (per client).
//! Figures are printed as `name = value` lines; the README quotes them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use common::{Client, PASSWORD, TestApp};
use std::time::Instant;

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() - 1) as f64 * p).round() as usize]
}

fn report(name: &str, mut ms: Vec<f64>) {
    ms.sort_by(f64::total_cmp);
    println!("{name}_p50_ms = {:.2}", percentile(&ms, 0.50));
    println!("{name}_p99_ms = {:.2}", percentile(&ms, 0.99));
    println!("{name}_max_ms = {:.2}", percentile(&ms, 1.0));
}

#[tokio::main]
async fn main() {
    let tenants = env_or("SLUICE_BENCH_TENANTS", 1000) as u32;
    let runs = env_or("SLUICE_BENCH_RUNS", 1_000_000);
    let requests = env_or("SLUICE_BENCH_REQUESTS", 100);
    let clients = env_or("SLUICE_BENCH_CLIENTS", 10) as u32;
    let app = TestApp::spawn_web_only(&[("SLUICE_DB_MAX_CONNECTIONS", "16")]).await;
    let backend = if common::postgres_url().is_some() {
        "postgres"
    } else {
        "sqlite"
    };
    println!("backend = {backend}");

    let started = Instant::now();
    let seeded = sluice::services::seed::history(app.app(), tenants, runs, PASSWORD)
        .await
        .unwrap();
    println!("seeded_tenants = {}", seeded.tenants);
    println!("seeded_runs = {}", seeded.runs);
    println!("seeded_rollups = {}", seeded.rollups);
    println!("seed_seconds = {:.1}", started.elapsed().as_secs_f64());

    // Ten clients, each signed in to a different tenant.
    let mut signed_in = Vec::new();
    for c in 0..clients {
        let client = Client::new(&app.base);
        let tenant = (c * 97) % tenants.max(1);
        let page = client
            .sign_in(&sluice::services::seed::owner_email(tenant), PASSWORD)
            .await;
        assert!(page.status < 400, "sign-in failed: {}", page.status);
        signed_in.push(client);
    }
    // Warm up caches and the connection pool at full concurrency (opening a Postgres
    // connection costs tens of milliseconds): the figures are for steady state.
    let signed_in: Vec<Client> =
        futures::future::join_all(signed_in.into_iter().map(|client| async move {
            for _ in 0..10 {
                assert_eq!(client.get("/dashboard").await.status, 200);
                assert_eq!(client.get("/runs?status=failed").await.status, 200);
            }
            client
        }))
        .await;

    let started = Instant::now();
    let mut tasks = Vec::new();
    for client in signed_in {
        tasks.push(tokio::spawn(async move {
            let mut dashboard = Vec::new();
            let mut history = Vec::new();
            for i in 0..requests {
                let (path, into) = if i % 2 == 0 {
                    ("/dashboard", &mut dashboard)
                } else {
                    ("/runs?status=failed&from=2000-01-01", &mut history)
                };
                let t = Instant::now();
                let page = client.get(path).await;
                into.push(t.elapsed().as_secs_f64() * 1000.0);
                assert_eq!(page.status, 200, "{path}");
            }
            (dashboard, history)
        }));
    }
    let mut dashboard = Vec::new();
    let mut history = Vec::new();
    for t in tasks {
        let (d, h) = t.await.unwrap();
        dashboard.extend(d);
        history.extend(h);
    }
    let total = dashboard.len() + history.len();
    println!("clients = {clients}");
    println!(
        "requests_per_second = {:.0}",
        total as f64 / started.elapsed().as_secs_f64()
    );
    report("dashboard", dashboard);
    report("run_history_failed", history);
    app.stop().await;
}
