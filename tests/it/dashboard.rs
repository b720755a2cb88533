//! The dashboard, run history and retention: totals and charts come from rollups kept as
//! runs finish; history filters, pages and exports; old detail is pruned, rollups stay.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use crate::common::flows::{
    connect_both, contact_flow, create_flow, outage, run_to_end, set, touch_contacts,
};
use sea_orm::{ConnectionTrait, Statement};
use sluice::jobs::Handler;

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    crate::common::scalar(app.app().store.db(), sql).await
}

#[tokio::test]
async fn dashboard_history_csv_and_retention_agree_and_stay_within_the_tenant() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "30"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        // Give up on a failing call after its ten tries, not after minutes of outage.
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
    ])
    .await;
    app.wait_for_seed(30).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let empty = admin.get("/dashboard").await;
    assert!(empty.body.contains("No integrations yet"));

    let (crm, erp) = connect_both(&admin).await;
    let mut fields = contact_flow(&crm, &erp, "Contacts", "record.email");
    set(&mut fields, "auto_pause_after", "0");
    let flow = create_flow(&admin, &fields).await;
    run_to_end(&admin, &flow).await;
    outage(&app, "erp", 500).await;
    touch_contacts(&app, 4, "Changed").await;
    let (failed_run, failed_progress) = run_to_end(&admin, &flow).await;
    // The folded log says up front how much went wrong.
    let summary = failed_progress.text("#run-log summary").unwrap();
    assert!(
        summary.contains("warning(s)") && summary.contains("1 error(s)"),
        "{summary}"
    );
    outage(&app, "erp", 0).await;
    run_to_end(&admin, &flow).await;

    let dashboard = admin.get("/dashboard").await;
    assert!(
        dashboard.body.contains("id=\"stat-runs\">3<"),
        "{}",
        dashboard.body
    );
    assert!(
        dashboard.body.contains(">34<"),
        "30 + 4 records written: {}",
        dashboard.body
    );
    assert_eq!(
        crate::common::failed_runs_charted(&dashboard.body),
        (1, 3),
        "{}",
        dashboard.body
    );
    assert!(
        dashboard.body.contains("<rect class=\"bar\""),
        "throughput bars"
    );
    assert!(dashboard.body.contains("id=\"flow-health\""));
    assert!(
        dashboard.body.contains("33.3 %"),
        "7-day error rate of the flow"
    );
    let week = admin.get("/dashboard?period=7d").await;
    assert_eq!(
        week.body.matches("<circle").count(),
        1,
        "one 6-hour step with runs"
    );

    // History: filters, pages, CSV.
    let failed = admin.get("/runs?status=failed").await;
    assert!(
        failed
            .body
            .contains(failed_run.trim_start_matches("/runs/"))
    );
    assert_eq!(
        failed.body.matches("href=\"/runs/").count(),
        1,
        "{}",
        failed.body
    );
    let bad = admin.get("/runs?status=exploded&from=yesterday").await;
    assert_eq!(bad.status, 200);
    assert!(bad.body.contains("Unknown status"));
    assert!(bad.body.contains("enter a date"));
    let future = admin.get("/runs?from=2999-01-01").await;
    assert!(future.body.contains("No runs match these filters"));
    let csv = admin.get("/runs.csv?status=failed").await;
    assert_eq!(csv.status, 200);
    assert!(
        csv.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/csv")
    );
    let lines: Vec<&str> = csv.body.lines().collect();
    assert_eq!(lines.len(), 2, "{}", csv.body);
    assert!(lines[0].starts_with("run_id,flow_id,flow,trigger,status"));
    assert!(lines[1].contains("\"failed\"") && lines[1].contains("\"unavailable\""));

    // The inspector compares with the last success.
    let last = admin.get(&failed_run).await;
    assert!(
        last.body.contains("Compared with the last successful run"),
        "{}",
        last.body
    );

    // Another tenant sees nothing of it.
    let other = app.another_tenant("eve@example.com", "Evil").await;
    assert!(other.get("/runs").await.body.contains("No runs"));
    assert_eq!(other.get(&failed_run).await.status, 404);
    assert_eq!(other.get("/runs.csv").await.body.lines().count(), 1);
    assert!(
        other
            .get("/dashboard")
            .await
            .body
            .contains("id=\"stat-runs\">0<")
    );

    // Retention: runs older than the setting go (their logs with them); rollups stay.
    let db = app.app().store.db();
    db.execute_raw(Statement::from_string(
        db.get_database_backend(),
        "UPDATE runs SET finished_at = created_at - INTERVAL '400 days'".replace(
            "created_at - INTERVAL '400 days'",
            match db.get_database_backend() {
                sea_orm::DbBackend::Sqlite => "datetime(created_at, '-400 days')",
                _ => "created_at - INTERVAL '400 days'",
            },
        ),
    ))
    .await
    .unwrap();
    sluice::queue::Housekeeping {}.run(app.app()).await.unwrap();
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM runs").await, 0);
    let after = admin.get("/dashboard").await;
    assert!(
        after.body.contains("id=\"stat-runs\">3<"),
        "rollups are kept"
    );
}

#[tokio::test]
async fn a_run_that_lost_records_is_not_a_success() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "10")]).await;
    app.wait_for_seed(10).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    // The ERP refuses a customer without an e-mail: one of ten becomes a dead letter.
    let fields = contact_flow(
        &crm,
        &erp,
        "Contacts",
        "record.email if record.id != 'con_000003' else ''",
    );
    let flow = create_flow(&admin, &fields).await;
    let (_, page) = run_to_end(&admin, &flow).await;
    assert_eq!(crate::common::flows::status_of(&page), "Partially failed");

    let dashboard = admin.get("/dashboard").await.body;
    assert!(dashboard.contains("id=\"stat-runs\">1<"), "{dashboard}");
    assert!(
        dashboard.contains("id=\"stat-success\">0.0 %<"),
        "a run that lost a record is not a success: {dashboard}"
    );
    assert!(dashboard.contains("1 with errors"), "{dashboard}");
    assert!(
        dashboard.contains("<td>Sandbox CRM</td>") && !dashboard.contains("<td>sandbox_crm</td>"),
        "providers by name: {dashboard}"
    );
    assert!(
        dashboard.contains("id=\"stat-records-failed\">1 failed (10.0 %)"),
        "{dashboard}"
    );
    assert_eq!(
        crate::common::failed_runs_charted(&dashboard),
        (1, 1),
        "the error rate counts it: {dashboard}"
    );
    let last_success = scalar(
        &app,
        "SELECT COUNT(*) FROM flows WHERE last_success_at IS NOT NULL",
    )
    .await;
    assert_eq!(last_success, 0, "no run has delivered everything yet");

    app.stop().await;
}

#[tokio::test]
async fn pages_exports_and_filters_use_the_workspace_time_zone() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "1200")]).await;
    app.wait_for_seed(1200).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let saved = admin
        .post_form(
            "/settings/workspace",
            &[("name", "Acme"), ("time_zone", "Asia/Tokyo")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let (crm, erp) = connect_both(&admin).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    let (run, progress) = run_to_end(&admin, &flow).await;
    assert_eq!(
        progress.text("#count-written").as_deref().map(str::trim),
        Some("1,200"),
        "counts have thousands separators"
    );

    // The export gives times with the zone's offset; the pages show the same instant.
    let csv = admin.get("/runs.csv").await.body;
    let created = csv
        .lines()
        .nth(1)
        .unwrap()
        .split(',')
        .nth(5)
        .unwrap()
        .trim_matches('"');
    assert!(created.ends_with("+09:00"), "{csv}");
    let created = chrono::DateTime::parse_from_rfc3339(created)
        .unwrap()
        .with_timezone(&chrono::Utc);
    let tokyo: sluice::domain::TimeZone = "Asia/Tokyo".parse().unwrap();
    let shown = tokyo.at_secs(created);
    assert!(shown.ends_with(" JST"), "{shown}");
    for page in [run.as_str(), "/runs", flow.as_str()] {
        let body = admin.get(page).await.body;
        assert!(body.contains(&shown), "{page} shows {shown}: {body}");
        assert!(!body.contains(" UTC"), "{page}: {body}");
    }
    let log = admin.get(&format!("{run}/progress")).await;
    let line = log.text("#run-log .timeline .muted").unwrap_or_default();
    assert!(
        line.contains(&tokyo.date(created)) && line.contains(" JST"),
        "{}",
        log.body
    );
    let dashboard = admin.get("/dashboard").await.body;
    assert!(dashboard.contains("(Asia/Tokyo)"), "{dashboard}");
    let audit = admin.get("/settings/audit").await.body;
    assert!(
        audit.contains(" JST<") && !audit.contains(" UTC<"),
        "{audit}"
    );

    // A filter's times are the workspace's wall-clock times, not UTC.
    let local = |minutes: i64| tokyo.input_value(created + chrono::Duration::minutes(minutes));
    let runs_from = |at: String| {
        let admin = &admin;
        async move { admin.get(&format!("/runs?from={at}")).await.body }
    };
    assert!(
        runs_from(local(-1)).await.contains(&shown),
        "a minute before"
    );
    assert!(
        !runs_from(local(1)).await.contains(&shown),
        "a minute after"
    );
    app.stop().await;
}
