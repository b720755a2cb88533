//! Alerts end to end: a failing destination raises one alert, delivered once to e-mail,
//! a signed webhook and Slack, resolved when runs recover and visible on the dashboard;
//! silent failures; delivery retries, 410 and the outbound guard; rules and isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{
    connect_both, contact_flow, create_flow, outage, run_to_end, set, status_of, touch_contacts,
};
use crate::common::sinks::{HttpSink, SmtpSink, eventually};
use crate::common::{Client, Page, TestApp, api_send};
use sea_orm::{ConnectionTrait, Statement};
use sluice::store::FinishedRun;
use std::time::Duration;

/// The text of the element with this id (tags stripped).
fn text_of(page: &Page, id: &str) -> String {
    page.text(&format!("#{id}"))
        .unwrap_or_else(|| panic!("no #{id}"))
        .trim()
        .to_owned()
}

async fn add_channel(admin: &Client, kind: &str, name: &str, target: &str) -> Page {
    let page = admin
        .post_form(
            "/settings/alerts/channels",
            &[("kind", kind), ("name", name), ("target", target)],
        )
        .await;
    assert_eq!(page.status, 200, "{}", page.body);
    page
}

async fn active_alerts(admin: &Client) -> Page {
    admin.get("/alerts?state=all").await
}

/// The alerts page once it shows `text`: alerts are evaluated just after a run's end is
/// stored, so a page read at once may be a moment early.
async fn alerts_showing(admin: &Client, text: &str) -> Page {
    for _ in 0..100 {
        let page = active_alerts(admin).await;
        if page.body.contains(text) {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("the alerts never showed {text:?}");
}

#[tokio::test]
async fn a_failing_destination_raises_one_alert_delivered_once_per_channel_then_resolves() {
    let smtp = SmtpSink::start().await;
    let hooks = HttpSink::start().await;
    let app = TestApp::spawn_with(&[
        ("SLUICE_SMTP_URL", &smtp.url),
        ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "40"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        // Give up on a failing call after its ten tries, not after minutes of outage.
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
        ("SLUICE_ALERT_SWEEP_SECS", "1"),
    ])
    .await;
    app.wait_for_seed(40).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let mut fields = contact_flow(&crm, &erp, "Contacts to ERP", "record.email | lower");
    set(&mut fields, "auto_pause_after", "0");
    let flow = create_flow(&admin, &fields).await;

    add_channel(&admin, "email", "On-call", "oncall@example.com").await;
    let created = add_channel(
        &admin,
        "webhook",
        "Pager",
        &format!("{}/webhook", hooks.base),
    )
    .await;
    let secret = text_of(&created, "channel-secret");
    assert!(secret.starts_with("whsec_"), "{secret}");
    add_channel(
        &admin,
        "slack",
        "Slack #ops",
        &format!("{}/slack", hooks.base),
    )
    .await;

    let (_, first) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&first), "Succeeded");

    outage(&app, "erp", 503).await;
    for attempt in 0..2 {
        touch_contacts(&app, 5, &format!("Changed {attempt}")).await;
        let (_, failed) = run_to_end(&admin, &flow).await;
        assert_eq!(status_of(&failed), "Failed", "{}", failed.body);
    }

    // One alert for the failing flow, however often it failed.
    eventually(20, "one delivery per channel", || {
        smtp.messages().len() == 1
            && hooks.received("/webhook").len() == 1
            && hooks.received("/slack").len() == 1
    })
    .await;
    // The second failure is evaluated by its own job, which may still be on its way.
    let mut alerts = active_alerts(&admin).await;
    for _ in 0..100 {
        if alerts.body.contains("2×") {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
        alerts = active_alerts(&admin).await;
    }
    assert_eq!(
        alerts.body.matches("Contacts to ERP: run failed").count(),
        1,
        "{}",
        alerts.body
    );
    assert!(
        alerts.body.contains("2×"),
        "the second failure counts on the same alert"
    );

    let mail = &smtp.messages()[0];
    assert!(mail.contains("oncall@example.com"));
    assert!(mail.contains("Contacts to ERP: run failed"), "{mail}");

    let hook = &hooks.received("/webhook")[0];
    standardwebhooks::Webhook::new(&secret)
        .unwrap()
        .verify(&hook.body, &hook.headers)
        .expect("the signature verifies with an independent implementation");
    let event: serde_json::Value = serde_json::from_slice(&hook.body).unwrap();
    assert_eq!(event["type"], "alert.opened");
    assert_eq!(event["data"]["kind"], "run_failed");
    let slack: serde_json::Value =
        serde_json::from_slice(&hooks.received("/slack")[0].body).unwrap();
    assert!(slack["text"].as_str().unwrap().contains("run failed"));

    // The dashboard's error chart shows the failures.
    let dashboard = admin.get("/dashboard").await;
    assert!(
        dashboard.body.contains("class=\"dot bad\""),
        "{}",
        dashboard.body
    );
    assert_eq!(
        crate::common::failed_runs_charted(&dashboard.body),
        (2, 3),
        "{}",
        dashboard.body
    );

    // Recovery resolves the alert and tells each channel once.
    outage(&app, "erp", 0).await;
    touch_contacts(&app, 5, "Recovered").await;
    let (_, ok) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&ok), "Succeeded");
    eventually(20, "resolved notifications", || {
        smtp.messages().len() == 2
            && hooks.received("/webhook").len() == 2
            && hooks.received("/slack").len() == 2
    })
    .await;
    let resolved: serde_json::Value =
        serde_json::from_slice(&hooks.received("/webhook")[1].body).unwrap();
    assert_eq!(resolved["type"], "alert.resolved");
    assert_ne!(
        hooks.received("/webhook")[0].headers["webhook-id"],
        hooks.received("/webhook")[1].headers["webhook-id"],
        "each event is its own message"
    );
    let list = admin.get("/alerts?state=resolved").await;
    assert_eq!(list.body.matches("Contacts to ERP: run failed").count(), 1);
    assert_eq!(
        admin
            .get("/alerts")
            .await
            .body
            .matches("run failed")
            .count(),
        0
    );

    // Prometheus shows runs per tenant, deliveries per channel and queue depth.
    let metrics = app.metrics().await;
    assert!(metrics.contains("sluice_runs_total{tenant=\""), "{metrics}");
    assert!(metrics.contains("sluice_alert_deliveries_total{"));
    assert!(metrics.contains("sluice_queue_depth{"));

    // Nothing more is sent later (no duplicate deliveries from the sweep).
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(hooks.received("/webhook").len(), 2);
    assert_eq!(smtp.messages().len(), 2);
}

/// The CRM's contacts are gone, and its list still answers 200: what a silent failure
/// looks like from the source.
async fn source_serves_nothing(app: &TestApp) {
    let db = app.sandbox_db().await;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "DELETE FROM sandbox_records WHERE object = $1",
        ["crm.contacts".into()],
    ))
    .await
    .unwrap();
}

/// The id of the workspace-wide rule of `kind` (one of the defaults).
async fn workspace_rule(admin: &Client, token: &str, kind: &str) -> String {
    let rules = admin.api(token, "/api/v1/alert-rules").await.1;
    rules
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["kind"] == kind && r["flow_id"].is_null())
        .unwrap_or_else(|| panic!("{rules}"))["id"]
        .as_str()
        .unwrap()
        .to_owned()
}

#[tokio::test]
async fn a_run_that_succeeds_with_zero_records_where_hundreds_are_usual_is_a_silent_failure() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "300")]).await;
    app.wait_for_seed(300).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let fields = contact_flow(&crm, &erp, "Contacts", "record.email | lower");
    let flow = create_flow(&admin, &fields).await;
    for _ in 0..3 {
        let (_, page) = run_to_end(&admin, &flow).await;
        assert_eq!(crate::common::flows::count(&page, "read"), 300);
    }
    assert!(!active_alerts(&admin).await.body.contains("Silent"));
    // The source suddenly serves nothing (say, its API key lost access to the list),
    // and answers 200 all the same.
    source_serves_nothing(&app).await;
    let (_, empty) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&empty), "Succeeded");
    assert_eq!(crate::common::flows::count(&empty, "read"), 0);

    let mut page = active_alerts(&admin).await;
    for _ in 0..100 {
        if page.body.contains("succeeded with 0 records") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        page = active_alerts(&admin).await;
    }
    assert!(
        page.body.contains("Contacts: run succeeded with 0 records"),
        "{}",
        page.body
    );
}

#[tokio::test]
async fn a_flows_runs_are_judged_by_the_enabled_rules_for_every_flow_or_for_it() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "300")]).await;
    app.wait_for_seed(300).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let token = admin.create_api_token("ops", "admin").await;
    let (crm, erp) = connect_both(&admin).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email | lower"),
    )
    .await;
    let other = create_flow(&admin, &contact_flow(&crm, &erp, "Other", "record.email")).await;
    let add_silent_rule = async |flow: &str| {
        let (created, rule) = api_send(
            &admin,
            reqwest::Method::POST,
            &token,
            "/api/v1/alert-rules",
            serde_json::json!({
                "kind": "silent_failure",
                "threshold": 80,
                "flow_id": flow.trim_start_matches("/flows/"),
            }),
        )
        .await;
        assert_eq!(created, 201, "{rule}");
    };
    // The workspace-wide silent-failure rule is switched off, and one is on for the
    // other flow only.
    let workspace_wide = workspace_rule(&admin, &token, "silent_failure").await;
    let (switched_off, _) = api_send(
        &admin,
        reqwest::Method::PUT,
        &token,
        &format!("/api/v1/alert-rules/{workspace_wide}"),
        serde_json::json!({ "threshold": 80, "enabled": false }),
    )
    .await;
    assert_eq!(switched_off, 200);
    add_silent_rule(&other).await;
    for _ in 0..3 {
        let (_, page) = run_to_end(&admin, &flow).await;
        assert_eq!(crate::common::flows::count(&page, "read"), 300);
    }
    source_serves_nothing(&app).await;
    let (_, empty) = run_to_end(&admin, &flow).await;
    assert_eq!(crate::common::flows::count(&empty, "read"), 0);
    // Its rules are judged after it ends: wait for that before adding a rule.
    let unchecked =
        "SELECT COUNT(*) FROM runs WHERE alerts_checked = FALSE AND finished_at IS NOT NULL";
    for _ in 0..100 {
        if crate::common::scalar(app.app().store.db(), unchecked).await == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        crate::common::scalar(app.app().store.db(), unchecked).await,
        0
    );

    // A rule for this flow judges its next run: one alert, from that rule alone.
    add_silent_rule(&flow).await;
    let (judged, empty) = run_to_end(&admin, &flow).await;
    assert_eq!(crate::common::flows::count(&empty, "read"), 0);
    let mut alerts = serde_json::Value::Null;
    for _ in 0..100 {
        alerts = admin.api(&token, "/api/v1/alerts").await.1;
        if alerts.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let alerts = alerts.as_array().unwrap();
    assert_eq!(alerts.len(), 1, "{alerts:?}");
    assert_eq!(alerts[0]["kind"], "silent_failure");
    assert_eq!(alerts[0]["occurrences"], 1, "{alerts:?}");
    assert_eq!(
        judged.trim_start_matches("/runs/"),
        alerts[0]["run_id"].as_str().unwrap()
    );
}

#[tokio::test]
async fn a_run_end_its_rules_are_quiet_about_is_marked_checked_by_its_own_commit() {
    use crate::common::flows::{run_scope_of, start_run};
    use sluice::services::alerts::evaluate::{Rules, evaluate_finished};
    use sluice::sync::engine::{Executed, execute};
    // No workers: each run is executed here, as its job would, and its end inspected.
    let app = TestApp::spawn_web_only(&[("SLUICE_SANDBOX_SEED_CONTACTS", "30")]).await;
    app.wait_for_seed(30).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let token = admin.create_api_token("ops", "admin").await;
    let (crm, erp) = connect_both(&admin).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    let end_of = async || {
        let run = start_run(&admin, &flow).await;
        let ctx = run_scope_of(&app, run).await;
        let Executed::Completed(done) = execute(app.app(), &ctx, run, &Rules, None).await.unwrap()
        else {
            panic!("the run did not complete");
        };
        (ctx, done)
    };
    let alerts = "SELECT COUNT(*) FROM alerts";

    // Nothing to say (the default rules, nothing open): the end marks the run checked.
    for _ in 0..3 {
        let (_, done) = end_of().await;
        assert_eq!(done.run.records_read, 30);
        assert!(
            done.run.alerts_checked,
            "a quiet end is checked when committed"
        );
    }

    // An error-rate rule counts the run among the committed ones: judged afterwards.
    let error_rate = workspace_rule(&admin, &token, "error_rate").await;
    let switch = async |enabled: bool| {
        let (status, _) = api_send(
            &admin,
            reqwest::Method::PUT,
            &token,
            &format!("/api/v1/alert-rules/{error_rate}"),
            serde_json::json!({ "threshold": 25, "window_minutes": 60, "enabled": enabled }),
        )
        .await;
        assert_eq!(status, 200);
    };
    switch(true).await;
    let (ctx, done) = end_of().await;
    assert!(
        !done.run.alerts_checked,
        "an error-rate rule judges after the end"
    );
    let FinishedRun { run, flow: at_end } = *done;
    evaluate_finished(app.app(), &ctx, &run, at_end)
        .await
        .unwrap();
    assert_eq!(crate::common::scalar(app.app().store.db(), alerts).await, 0);
    switch(false).await;

    // A run that reads nothing where thirty are usual raises an alert: not quiet, and
    // the evaluation after the end opens it.
    source_serves_nothing(&app).await;
    let (ctx, done) = end_of().await;
    assert_eq!(done.run.records_read, 0);
    assert!(!done.run.alerts_checked, "an end with an alert to raise");
    let FinishedRun { run, flow: at_end } = *done;
    evaluate_finished(app.app(), &ctx, &run, at_end)
        .await
        .unwrap();
    assert_eq!(crate::common::scalar(app.app().store.db(), alerts).await, 1);
    let unchecked = format!(
        "SELECT COUNT(*) FROM runs WHERE alerts_checked = FALSE AND id = '{}'",
        run.id
    );
    assert_eq!(
        crate::common::scalar(app.app().store.db(), &unchecked).await,
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn deliveries_retry_with_the_same_id_honour_retry_after_and_stop_at_410() {
    let hooks = HttpSink::start().await;
    let app = TestApp::spawn_with(&[
        ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        // Give up on a failing call after its ten tries, not after minutes of outage.
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "10"),
    ])
    .await;
    app.wait_for_seed(10).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let mut fields = contact_flow(&crm, &erp, "Flaky", "record.email");
    set(&mut fields, "auto_pause_after", "0");
    let flow = create_flow(&admin, &fields).await;
    add_channel(
        &admin,
        "webhook",
        "Pager",
        &format!("{}/webhook", hooks.base),
    )
    .await;
    // The pager is busy twice (once asking for 1 s); the old endpoint is gone.
    hooks.answer_next(&[(503, None), (429, Some("1"))]);
    let gone = HttpSink::start().await;
    gone.answer_next(&[(410, None)]);
    add_channel(
        &admin,
        "webhook",
        "Old endpoint",
        &format!("{}/hook", gone.base),
    )
    .await;

    run_to_end(&admin, &flow).await;
    outage(&app, "erp", 500).await;
    touch_contacts(&app, 3, "Changed").await;
    let (_, failed) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&failed), "Failed");

    eventually(30, "the pager to get the alert on the third try", || {
        hooks.received("/webhook").len() == 3
    })
    .await;
    let ids: Vec<_> = hooks
        .received("/webhook")
        .iter()
        .map(|r| r.headers["webhook-id"].clone())
        .collect();
    assert!(
        ids.iter().all(|id| *id == ids[0]),
        "retries keep the message id: {ids:?}"
    );

    let history = admin.get("/settings/alerts/deliveries").await;
    assert!(history.body.contains("delivered"), "{}", history.body);

    // The endpoint that answered 410 was tried once, and its channel is off.
    eventually(20, "the 410 answer", || gone.received("/hook").len() == 1).await;
    let mut settings = admin.get("/settings/alerts").await;
    for _ in 0..50 {
        if settings.body.contains("410 Gone") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        settings = admin.get("/settings/alerts").await;
    }
    assert!(
        settings.body.contains("The endpoint answered 410 Gone"),
        "{}",
        settings.body
    );
}

#[tokio::test]
async fn channels_refuse_internal_urls_and_rules_are_validated_and_tenant_scoped() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    // Without an allow-list, loopback and private addresses are refused at once.
    let refused = admin
        .post_form(
            "/settings/alerts/channels",
            &[
                ("kind", "webhook"),
                ("name", "Internal"),
                ("target", "http://127.0.0.1:9/x"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("This URL cannot be used"),
        "{}",
        refused.body
    );
    let no_smtp = admin
        .post_form(
            "/settings/alerts/channels",
            &[
                ("kind", "email"),
                ("name", "Mail"),
                ("target", "ops@example.com"),
            ],
        )
        .await;
    assert_eq!(no_smtp.status, 422);
    assert!(no_smtp.body.contains("SLUICE_SMTP_URL"));

    // New tenants start with sensible rules.
    let settings = admin.get("/settings/alerts").await;
    for rule in [
        "Run failed",
        "Silent failure",
        "Stale data",
        "Connection needs attention",
        "Flow auto-paused",
    ] {
        assert!(settings.body.contains(rule), "missing default rule {rule}");
    }
    let bad = admin
        .post_form(
            "/settings/alerts/rules",
            &[
                ("kind", "error_rate"),
                ("threshold", "250"),
                ("window_minutes", "1"),
                ("enabled", "on"),
            ],
        )
        .await;
    assert_eq!(bad.status, 422);
    assert!(bad.body.contains("from 1 to 100"), "{}", bad.body);
    assert!(bad.body.contains("from 5 to 43200"), "{}", bad.body);
    let ok = admin
        .post_form(
            "/settings/alerts/rules",
            &[("kind", "duration"), ("threshold", "90"), ("enabled", "on")],
        )
        .await;
    assert_eq!(ok.status, 303, "{}", ok.body);
    let rule_action = admin
        .get("/settings/alerts")
        .await
        .action_containing("/settings/alerts/rules/");

    // Another tenant sees none of it and cannot touch it.
    let other = app.another_tenant("eve@example.com", "Evil").await;
    let theirs = other.get("/settings/alerts").await;
    assert!(!theirs.body.contains(&rule_action));
    let delete = other.post_form(&format!("{rule_action}/delete"), &[]).await;
    assert_eq!(delete.status, 404);
    assert_eq!(
        other
            .get("/alerts/00000000-0000-7000-8000-000000000000")
            .await
            .status,
        404
    );
}

#[tokio::test]
async fn the_json_api_lists_runs_and_alerts_acknowledges_and_manages_rules_and_channels() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "10"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        // Give up on a failing call after its ten tries, not after minutes of outage.
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
    ])
    .await;
    app.wait_for_seed(10).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let token = admin.create_api_token("ops", "admin").await;
    let viewer = admin.create_api_token("dashboards", "viewer").await;
    let (crm, erp) = connect_both(&admin).await;
    let mut fields = contact_flow(&crm, &erp, "Contacts", "record.email");
    set(&mut fields, "auto_pause_after", "0");
    let flow = create_flow(&admin, &fields).await;
    run_to_end(&admin, &flow).await;
    outage(&app, "erp", 500).await;
    touch_contacts(&app, 2, "Changed").await;
    run_to_end(&admin, &flow).await;
    outage(&app, "erp", 0).await;

    let (status, runs) = admin.api(&token, "/api/v1/runs?status=failed").await;
    assert_eq!(status, 200);
    assert_eq!(runs.as_array().unwrap().len(), 1, "{runs}");
    let (_, all) = admin.api(&token, "/api/v1/runs?limit=1").await;
    assert_eq!(all.as_array().unwrap().len(), 1);
    let oldest = all[0]["id"].as_str().unwrap().to_owned();
    let (_, older) = admin
        .api(&token, &format!("/api/v1/runs?before={oldest}"))
        .await;
    assert_eq!(older.as_array().unwrap().len(), 1, "keyset page");
    assert_eq!(admin.api(&token, "/api/v1/runs?status=bogus").await.0, 422);

    let mut alerts = serde_json::Value::Null;
    for _ in 0..100 {
        alerts = admin.api(&token, "/api/v1/alerts").await.1;
        if alerts.as_array().is_some_and(|a| !a.is_empty()) {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(alerts[0]["kind"], "run_failed", "{alerts}");
    let alert = alerts[0]["id"].as_str().unwrap().to_owned();
    let path = format!("/api/v1/alerts/{alert}/acknowledge");
    let (denied, _) = api_send(
        &admin,
        reqwest::Method::POST,
        &viewer,
        &path,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(denied, 403, "viewers cannot acknowledge");
    let (ok, acked) = api_send(
        &admin,
        reqwest::Method::POST,
        &token,
        &path,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(ok, 200);
    assert_eq!(acked["state"], "acknowledged");
    let (again, _) = api_send(
        &admin,
        reqwest::Method::POST,
        &token,
        &path,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(again, 409);

    let (created, rule) = api_send(
        &admin,
        reqwest::Method::POST,
        &token,
        "/api/v1/alert-rules",
        serde_json::json!({ "kind": "error_rate", "threshold": 50, "window_minutes": 30 }),
    )
    .await;
    assert_eq!(created, 201, "{rule}");
    let rule_path = format!("/api/v1/alert-rules/{}", rule["id"].as_str().unwrap());
    let (changed, rule) = api_send(
        &admin,
        reqwest::Method::PUT,
        &token,
        &rule_path,
        serde_json::json!({ "threshold": 20, "window_minutes": 60, "enabled": false }),
    )
    .await;
    assert_eq!(changed, 200, "{rule}");
    assert_eq!(
        (rule["threshold"].as_f64(), rule["enabled"].as_bool()),
        (Some(20.0), Some(false))
    );
    let (bad, _) = api_send(
        &admin,
        reqwest::Method::POST,
        &token,
        "/api/v1/alert-rules",
        serde_json::json!({ "kind": "nonsense" }),
    )
    .await;
    assert_eq!(bad, 422);
    assert_eq!(
        api_send(
            &admin,
            reqwest::Method::DELETE,
            &token,
            &rule_path,
            serde_json::json!({})
        )
        .await
        .0,
        204
    );
    let (refused, body) = api_send(
        &admin,
        reqwest::Method::POST,
        &token,
        "/api/v1/channels",
        serde_json::json!({ "kind": "webhook", "name": "Internal", "target": "http://10.0.0.1/hook" }),
    )
    .await;
    assert_eq!(refused, 422, "{body}");

    // Another workspace's token sees none of it.
    let other = app.another_tenant("eve@example.com", "Evil").await;
    let theirs = other.create_api_token("x", "admin").await;
    assert_eq!(
        other.api(&theirs, "/api/v1/runs").await.1,
        serde_json::json!([])
    );
    assert_eq!(
        other.api(&theirs, "/api/v1/alerts?state=all").await.1,
        serde_json::json!([])
    );
    let (foreign, _) = api_send(
        &other,
        reqwest::Method::POST,
        &theirs,
        &path,
        serde_json::json!({}),
    )
    .await;
    assert_eq!(foreign, 404);

    let (_, doc) = admin.api(&token, "/api/v1/openapi.json").await;
    for p in [
        "/api/v1/runs",
        "/api/v1/alerts",
        "/api/v1/alert-rules",
        "/api/v1/channels",
    ] {
        assert!(doc["paths"][p].is_object(), "{p} missing from OpenAPI");
    }
}

#[tokio::test]
async fn a_reconnect_alert_carries_a_fresh_link_that_reconnects_the_customers_connection() {
    let app = TestApp::spawn_with(&[("SLUICE_ALERT_SWEEP_SECS", "1")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "sandbox_erp"),
                ("customer_ref", "Globex"),
                ("ttl_hours", "2"),
            ],
        )
        .await;
    let link = url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();
    let customer = app.client();
    customer.get(&link).await;
    let start = customer.post_form(&link, &[]).await;
    let callback = customer
        .consent(&crate::common::continue_url(&start), true)
        .await;
    assert_eq!(customer.get(&callback).await.status, 200);
    let list = admin.get("/connections").await.body;
    let connection = list
        .match_indices("href=\"/connections/")
        .map(|(i, m)| &list[i + 6..i + m.len() + 36])
        .find(|path| path[13..].parse::<uuid::Uuid>().is_ok())
        .expect("the customer's connection")
        .to_owned();

    // The customer's grant is revoked at the provider: the next call needs a reconnect.
    let db = app.sandbox_db().await;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE sandbox_grants SET revoked = $1",
        [true.into()],
    ))
    .await
    .unwrap();
    admin.post_form(&format!("{connection}/test"), &[]).await;
    let mut alerts = active_alerts(&admin).await;
    for _ in 0..50 {
        if alerts.body.contains("must be reconnected") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        alerts = active_alerts(&admin).await;
    }
    let alert = alerts.action_containing("/alerts/");
    let alert = alert.trim_end_matches("/acknowledge").to_owned();
    let page = admin.get(&alert).await;
    let start = page
        .body
        .find("/connect/")
        .expect("a reconnect link in the alert");
    let fresh: String = page.body[start..]
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || matches!(c, '/' | '-' | '_'))
        .collect();

    // The customer reconnects through it: the same connection is active again, and the
    // alert resolves by itself.
    let again = app.client();
    assert_eq!(again.get(&fresh).await.status, 200);
    let start = again.post_form(&fresh, &[]).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let callback = again
        .consent(&crate::common::continue_url(&start), true)
        .await;
    assert_eq!(again.get(&callback).await.status, 200);
    assert!(admin.get(&connection).await.body.contains("Active"));
    let list = admin.get("/connections").await.body;
    assert_eq!(
        list.matches("Sandbox ERP — Globex").count(),
        1,
        "reconnected, not a second connection"
    );
    let mut resolved = admin.get(&alert).await;
    for _ in 0..50 {
        if resolved.body.contains("id=\"alert-state\">Resolved") {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
        resolved = admin.get(&alert).await;
    }
    assert!(
        resolved.body.contains("id=\"alert-state\">Resolved"),
        "{}",
        resolved.body
    );
}

#[tokio::test]
async fn slack_alerts_escape_names_so_they_cannot_add_links_or_mentions() {
    let hooks = HttpSink::start().await;
    let app = TestApp::spawn_with(&[
        ("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8"),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "10"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        // Give up on a failing call after its ten tries, not after minutes of outage.
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
        ("SLUICE_ALERT_SWEEP_SECS", "1"),
    ])
    .await;
    app.wait_for_seed(10).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let name = "Ops <!channel> & <https://evil.example|reset your password>";
    let mut fields = contact_flow(&crm, &erp, name, "record.email");
    set(&mut fields, "auto_pause_after", "0");
    let flow = create_flow(&admin, &fields).await;
    add_channel(
        &admin,
        "slack",
        "Slack #ops",
        &format!("{}/slack", hooks.base),
    )
    .await;
    outage(&app, "erp", 503).await;
    let (_, failed) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&failed), "Failed", "{}", failed.body);
    eventually(20, "the Slack message", || {
        hooks.received("/slack").len() == 1
    })
    .await;
    let message: serde_json::Value =
        serde_json::from_slice(&hooks.received("/slack")[0].body).unwrap();
    let text = message["text"].as_str().unwrap();
    assert!(
        text.contains(
            "Ops &lt;!channel&gt; &amp; &lt;https://evil.example|reset your password&gt;"
        ),
        "{text}"
    );
    // The only link is Sluice's own.
    assert_eq!(text.matches('<').count(), 1, "{text}");
    let link = &text[text.find('<').unwrap()..];
    assert!(
        link.starts_with(&format!("<{}/alerts/", app.base)) && link.ends_with("|Open in Sluice>"),
        "{text}"
    );
    app.stop().await;
}

#[tokio::test]
async fn urls_whose_ipv6_address_embeds_a_private_ipv4_one_are_refused() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    for host in [
        "[::ffff:127.0.0.1]",   // IPv4-mapped
        "[::ffff:0:7f00:1]",    // IPv4-translated (RFC 6145): 127.0.0.1
        "[::ffff:0:a9fe:a9fe]", // IPv4-translated: 169.254.169.254
        "[64:ff9b::7f00:1]",    // NAT64 (RFC 6052): 127.0.0.1
        "[64:ff9b::a00:1]",     // NAT64: 10.0.0.1
    ] {
        let channel = admin
            .post_form(
                "/settings/alerts/channels",
                &[
                    ("kind", "webhook"),
                    ("name", "Internal"),
                    ("target", &format!("http://{host}:9/x")),
                ],
            )
            .await;
        assert_eq!(channel.status, 422, "{host}");
        assert!(
            channel.body.contains("This URL cannot be used"),
            "{host}: {}",
            channel.body
        );
        let oauth = admin
            .post_form(
                "/settings/oauth-apps/oauth2_generic",
                &[
                    ("client_id", "cid"),
                    ("client_secret", "csecret"),
                    ("field_authorize_url", "https://93.184.216.34/authorize"),
                    ("field_token_url", &format!("https://{host}/token")),
                ],
            )
            .await;
        assert_eq!(oauth.status, 422, "{host}");
        assert!(oauth.body.contains("non-public"), "{host}: {}", oauth.body);
    }
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_is_allowed_by_its_address_not_by_how_its_url_is_spelled() {
    // The public URL names the host; port 0 becomes the bound port.
    let app = TestApp::spawn_with(&[("SLUICE_PUBLIC_URL", "http://localhost:0")]).await;
    let port = app.running.addr.port();
    let admin = app.owner("ada@example.com", "Acme").await;
    let channel = |target: String| {
        let admin = admin.clone();
        async move {
            admin
                .post_form(
                    "/settings/alerts/channels",
                    &[("kind", "webhook"), ("name", "Hook"), ("target", &target)],
                )
                .await
        }
    };
    // This server's own address and port, however the URL spells it.
    for target in [
        format!("http://localhost:{port}/sandbox/stats"),
        format!("http://127.0.0.1:{port}/sandbox/stats"),
    ] {
        let page = channel(target.clone()).await;
        assert_eq!(page.status, 200, "{target}: {}", page.body);
    }
    // Any other port of this host stays refused, /sandbox/ path or not.
    for target in [
        format!("http://localhost:{}/sandbox/stats", port.wrapping_add(1)),
        format!("http://127.0.0.1:{}/sandbox/stats", port.wrapping_add(1)),
        "http://localhost:9/x".to_owned(),
    ] {
        let page = channel(target.clone()).await;
        assert_eq!(page.status, 422, "{target}");
        assert!(page.body.contains("This URL cannot be used"), "{target}");
    }
    // And the sandbox itself still connects.
    admin.connect_sandbox("sandbox_crm").await;
    app.stop().await;
}

#[tokio::test]
async fn an_alert_fired_again_by_another_cause_shows_the_latest_and_keeps_the_history() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "6"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
    ])
    .await;
    app.wait_for_seed(6).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    // First cause: the ERP refuses one customer (no e-mail).
    let mut fields = contact_flow(
        &crm,
        &erp,
        "Contacts to ERP",
        "record.email if record.id != 'con_000002' else ''",
    );
    set(&mut fields, "auto_pause_after", "0");
    let flow = create_flow(&admin, &fields).await;
    let (_, page) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&page), "Partially failed");
    alerts_showing(&admin, "Contacts to ERP: 1 record(s) failed").await;

    // Second cause: an outage fails the next run outright.
    outage(&app, "erp", 503).await;
    touch_contacts(&app, 2, "Changed").await;
    let (_, page) = run_to_end(&admin, &flow).await;
    assert_eq!(status_of(&page), "Failed");
    outage(&app, "erp", 0).await;

    let alerts = alerts_showing(&admin, "Contacts to ERP: run failed").await;
    assert_eq!(
        alerts.body.matches("Contacts to ERP: run failed").count(),
        1,
        "the one alert now names the latest cause: {}",
        alerts.body
    );
    assert!(
        !alerts.body.contains("1 record(s) failed"),
        "{}",
        alerts.body
    );
    let link = alerts
        .body
        .split("href=\"/alerts/")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap()
        .to_owned();
    let alert = admin.get(&format!("/alerts/{link}")).await.body;
    let history = alert
        .split("id=\"occurrences\"")
        .nth(1)
        .unwrap_or_else(|| panic!("{alert}"));
    let latest = history.find("Contacts to ERP: run failed").unwrap();
    let first = history.find("Contacts to ERP: 1 record(s) failed").unwrap();
    assert!(latest < first, "newest first: {history}");
    assert!(history.contains("503"), "the outage's detail: {history}");
    app.stop().await;
}
