//! Flows end to end against the built-in sandbox: forms, dry run, runs, the ledger
//! (changed records only), dead letters and replay, versions, webhooks, and isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use crate::common::flows::{
    connect_both, contact_flow, count, create_flow, post, run_to_end, set, wait_for_run,
};
use sea_orm::{ConnectionTrait, Statement};
use serde_json::{Value, json};
use std::time::Duration;

async fn scalar(app: &TestApp, sql: &str) -> i64 {
    crate::common::scalar(app.app().store.db(), sql).await
}

#[tokio::test]
async fn ten_thousand_contacts_sync_once_then_only_changes_and_rejected_records_replay_after_a_fix()
{
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "10000")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(10_000).await;

    // Contacts in Osaka (every 8th) get an address the ERP refuses.
    let broken = "record.email if record.city != 'Osaka' else 'not-an-email'";
    let created = post(
        &admin,
        "/flows",
        &contact_flow(&crm, &erp, "Contacts to customers", broken),
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let flow = created.location().to_owned();

    let (run, first) = run_to_end(&admin, &flow).await;
    assert!(first.body.contains("Partially failed"), "{}", first.body);
    assert_eq!(count(&first, "read"), 10_000);
    assert_eq!(count(&first, "written"), 8_750);
    assert_eq!(count(&first, "failed"), 1_250);
    assert_eq!(app.sandbox_records("erp.customers").await, 8_750);
    let letters = admin.get(&format!("{flow}/dead-letters")).await;
    assert!(
        letters.body.contains("rejected") && letters.body.contains("e-mail"),
        "{}",
        letters.body
    );
    let log = admin.get(&run).await;
    assert!(
        log.body.contains("Page 20: read 500"),
        "the run log lists pages"
    );
    assert!(
        log.body.contains("POST /customers/batch"),
        "exchanges are logged without secrets"
    );

    // Change 37 deliverable contacts at the source: the next run writes exactly those.
    let db = app.sandbox_db().await;
    let mut changed = 0;
    let mut i = 0;
    while changed < 37 {
        if i % 8 != 6 {
            let id = format!("con_{i:06}");
            let mut fields = sluice_sandbox::db::find(db, "crm.contacts", &id)
                .await
                .unwrap()
                .unwrap()
                .fields();
            fields.insert("name".into(), format!("Changed {i}").into());
            sluice_sandbox::db::save(db, "crm.contacts", &id, &fields, sluice::store::now())
                .await
                .unwrap();
            changed += 1;
        }
        i += 1;
    }
    let (_, second) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&second, "written"), 37, "{}", second.body);
    assert_eq!(count(&second, "unchanged"), 10_000 - 37 - 1_250);
    assert_eq!(
        count(&second, "failed"),
        1_250,
        "still broken: the mapping is unchanged"
    );
    assert_eq!(app.sandbox_records("erp.customers").await, 8_750);

    // Fix the mapping (version 2) and replay the dead letters: delivered once.
    let mut fixed = contact_flow(&crm, &erp, "Contacts to customers", "record.email");
    fixed.push(("expected_version".into(), "1".into()));
    let saved = post(&admin, &flow, &fixed).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let diff = admin.get(&format!("{flow}/diff?from=1&to=2")).await;
    assert!(
        diff.body.contains("mapping.2.expression") && diff.body.contains("Osaka"),
        "{}",
        diff.body
    );

    let replay = admin
        .post_form(&format!("{flow}/dead-letters/replay"), &[("scope", "all")])
        .await;
    assert_eq!(replay.status, 303, "{}", replay.body);
    let replayed = wait_for_run(&admin, replay.location()).await;
    assert!(replayed.body.contains("Succeeded"), "{}", replayed.body);
    assert_eq!(count(&replayed, "written"), 1_250);
    assert_eq!(app.sandbox_records("erp.customers").await, 10_000);
    let open = admin.get(&format!("{flow}/dead-letters")).await;
    assert!(
        open.body.contains("Every record was delivered."),
        "{}",
        open.body
    );
    let again = admin
        .post_form(&format!("{flow}/dead-letters/replay"), &[("scope", "all")])
        .await;
    assert_eq!(again.status, 303);
    assert!(
        !again.location().starts_with("/runs/"),
        "nothing left to replay"
    );

    // And a third run has nothing to do.
    let (_, third) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&third, "written"), 0);
    assert_eq!(count(&third, "unchanged"), 10_000);
    app.stop().await;
}

/// Sends a webhook signed by the independent `standardwebhooks` implementation.
async fn deliver(app: &TestApp, url: &str, secret: &str, id: &str, at: i64, body: &str) -> u16 {
    deliver_by(&app.client().http, url, secret, id, at, body).await
}

/// [`deliver`] through a given client (so that many deliveries share its connections).
async fn deliver_by(
    http: &reqwest::Client,
    url: &str,
    secret: &str,
    id: &str,
    at: i64,
    body: &str,
) -> u16 {
    let signature = standardwebhooks::Webhook::new(secret)
        .unwrap()
        .sign(id, at, body.as_bytes())
        .unwrap();
    http.post(url)
        .header("content-type", "application/json")
        .header("webhook-id", id)
        .header("webhook-timestamp", at.to_string())
        .header("webhook-signature", signature)
        .body(body.to_owned())
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test]
async fn a_signed_webhook_starts_a_run_and_forged_stale_replayed_or_oversized_ones_change_nothing()
{
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "20")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(20).await;
    let mut fields = contact_flow(&crm, &erp, "On change", "record.email");
    set(&mut fields, "trigger", "webhook");
    let flow = create_flow(&admin, &fields).await;
    let page = admin.get(&flow).await;
    assert!(page.body.contains("Create webhook URL and secret"));
    let shown = admin.post_form(&format!("{flow}/webhook"), &[]).await;
    let secret = shown.code_by_id("webhook-secret");
    let url = shown.code_by_id("webhook-url");
    assert!(secret.starts_with("whsec_") && url.contains("/hooks/"));
    assert!(
        !admin.get(&flow).await.body.contains(&secret),
        "the secret is shown once"
    );

    let now = chrono::Utc::now().timestamp();
    let body = r#"{"type":"contact.updated","id":"con_000001"}"#;
    let forged = "whsec_".to_owned() + "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
    assert_eq!(
        deliver(&app, &url, &forged, "msg_1", now, body).await,
        401,
        "wrong secret"
    );
    assert_eq!(
        deliver(&app, &url, &secret, "msg_1", now - 600, body).await,
        401,
        "stale"
    );
    assert_eq!(
        deliver(&app, &url, &secret, "msg_1", now + 600, body).await,
        401,
        "future"
    );
    let huge = format!(r#"{{"pad":"{}"}}"#, "x".repeat(300 * 1024));
    assert_eq!(
        deliver(&app, &url, &secret, "msg_2", now, &huge).await,
        413,
        "oversized"
    );
    let unknown = url.replace("/hooks/", "/hooks/x");
    assert_eq!(
        deliver(&app, &unknown, &secret, "msg_1", now, body).await,
        404
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM webhook_events").await,
        0,
        "no side effect"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM runs").await,
        0,
        "no side effect"
    );

    assert_eq!(deliver(&app, &url, &secret, "msg_1", now, body).await, 202);
    assert_eq!(
        deliver(&app, &url, &secret, "msg_1", now, body).await,
        409,
        "replayed id"
    );
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM webhook_events").await, 1);
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM runs").await, 1);
    let list = admin.get(&flow).await;
    assert!(list.body.contains("Webhook"), "the run shows its trigger");

    // Rotating the secret retires the old one.
    admin.post_form(&format!("{flow}/webhook"), &[]).await;
    assert_eq!(deliver(&app, &url, &secret, "msg_3", now, body).await, 401);
    app.stop().await;
}

#[tokio::test]
async fn webhooks_sent_at_once_are_each_stored_once_answered_once_and_share_a_few_runs() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "20")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(20).await;
    let mut hooks = Vec::new();
    for name in ["Live", "Paused"] {
        let mut fields = contact_flow(&crm, &erp, name, "record.email");
        set(&mut fields, "trigger", "webhook");
        let flow = create_flow(&admin, &fields).await;
        let shown = admin.post_form(&format!("{flow}/webhook"), &[]).await;
        hooks.push((
            flow,
            shown.code_by_id("webhook-url"),
            shown.code_by_id("webhook-secret"),
        ));
    }
    let paused = &hooks[1].0;
    admin.post_form(&format!("{paused}/pause"), &[]).await;

    // 120 deliveries to each flow, all at once; every message id is sent twice.
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"type":"contact.updated"}"#;
    let sends = hooks.iter().flat_map(|(_, url, secret)| {
        (0..120).map(move |i| (url.clone(), secret.clone(), format!("msg_{}", i % 60)))
    });
    let http = app.client().http;
    let answers = futures::future::join_all(sends.map(|(url, secret, id)| {
        let http = &http;
        async move { deliver_by(http, &url, &secret, &id, now, body).await }
    }))
    .await;
    let count = |status: u16| answers.iter().filter(|&&s| s == status).count();
    assert_eq!(
        (count(202), count(409)),
        (120, 120),
        "each message id is accepted once per flow, its copy refused: {answers:?}"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM webhook_events").await,
        120
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM webhook_events WHERE run_id IS NULL"
        )
        .await,
        60,
        "the paused flow keeps its events and runs nothing"
    );
    let runs = scalar(&app, "SELECT COUNT(*) FROM runs").await;
    assert!(
        (1..=30).contains(&runs),
        "60 accepted deliveries joined queued runs instead of starting one each: {runs} runs"
    );
    assert_eq!(
        scalar(
            &app,
            "SELECT COUNT(*) FROM webhook_events e JOIN runs r ON r.id = e.run_id",
        )
        .await,
        60,
        "every accepted event of the live flow names its run"
    );
    for _ in 0..400 {
        if scalar(
            &app,
            "SELECT COUNT(*) FROM runs WHERE status IN ('queued', 'running')",
        )
        .await
            == 0
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").await,
        runs,
        "every run the webhooks started was queued and ran"
    );
    app.stop().await;
}

#[tokio::test]
async fn the_json_api_manages_flows_runs_and_dead_letters_within_its_own_workspace_only() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "30")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(30).await;
    let token = admin.create_api_token("ci", "admin").await;
    let http = app.client().http;
    let call = |method: reqwest::Method, path: &str, body: Option<Value>, token: &str| {
        let mut req = http
            .request(method, format!("{}/api/v1{path}", app.base))
            .bearer_auth(token);
        if let Some(b) = body {
            req = req.json(&b);
        }
        async move {
            let res = req.send().await.unwrap();
            let status = res.status().as_u16();
            (status, res.json::<Value>().await.unwrap_or(Value::Null))
        }
    };
    let spec = json!({
        "name": "Via API",
        "source": {"connection_id": crm, "object": "contacts", "incremental": false},
        "destination": {"connection_id": erp, "object": "customers", "write_mode": "upsert", "key_field": "external_id"},
        "mapping": [
            {"target": "external_id", "expression": "record.id"},
            {"target": "email", "expression": "record.email", "field_type": "text"},
            {"target": "name", "expression": "record.name if record.city != 'Lisbon' else ''"}
        ],
        "validations": [{"target": "name", "rule": "required", "message": "needs a name"}],
        "record_key": "record.id",
        "batch_size": 10,
        "trigger": {"kind": "manual"},
        "auto_pause_after": 3
    });
    let (status, flow) = call(reqwest::Method::POST, "/flows", Some(spec.clone()), &token).await;
    assert_eq!(status, 201, "{flow}");
    let id = flow["id"].as_str().unwrap().to_owned();
    let mut bad = spec.clone();
    bad["mapping"][0]["expression"] = json!("record.id |");
    bad["name"] = json!("Broken");
    let (status, err) = call(reqwest::Method::POST, "/flows", Some(bad), &token).await;
    assert_eq!(status, 422);
    assert!(err.to_string().contains("mapping.0.expression"), "{err}");

    let (status, rows) = call(
        reqwest::Method::POST,
        &format!("/flows/{id}/dry-run?limit=3"),
        None,
        &token,
    )
    .await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 3);
    assert_eq!(
        app.sandbox_records("erp.customers").await,
        0,
        "a dry run writes nothing"
    );

    let (status, run) = call(
        reqwest::Method::POST,
        &format!("/flows/{id}/run"),
        None,
        &token,
    )
    .await;
    assert_eq!(status, 202, "{run}");
    let run_id = run["id"].as_str().unwrap().to_owned();
    let mut finished = Value::Null;
    for _ in 0..200 {
        let (_, r) = call(
            reqwest::Method::GET,
            &format!("/runs/{run_id}"),
            None,
            &token,
        )
        .await;
        if !["queued", "running"].contains(&r["status"].as_str().unwrap()) {
            finished = r;
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // Every 8th contact lives in Lisbon and fails validation with the rule's message.
    assert_eq!(finished["status"], "partially_failed", "{finished}");
    assert_eq!(finished["records_written"], 26);
    assert_eq!(finished["records_failed"], 4);
    let (_, letters) = call(
        reqwest::Method::GET,
        &format!("/flows/{id}/dead-letters"),
        None,
        &token,
    )
    .await;
    assert_eq!(letters.as_array().unwrap().len(), 4);
    assert_eq!(letters[0]["error_class"], "validation");
    assert!(
        letters[0]["error"]
            .as_str()
            .unwrap()
            .contains("needs a name")
    );
    let first = letters[0]["id"].as_str().unwrap().to_owned();
    let (status, discarded) = call(
        reqwest::Method::POST,
        &format!("/flows/{id}/dead-letters/discard"),
        Some(json!({"ids": [first]})),
        &token,
    )
    .await;
    assert_eq!((status, discarded["discarded"].as_i64()), (200, Some(1)));

    let (status, conflict) = call(
        reqwest::Method::PUT,
        &format!("/flows/{id}"),
        Some(json!({"expected_version": 7, "spec": spec})),
        &token,
    )
    .await;
    assert_eq!(status, 409, "{conflict}");
    let (status, runs) = call(
        reqwest::Method::GET,
        &format!("/flows/{id}/runs"),
        None,
        &token,
    )
    .await;
    assert_eq!((status, runs.as_array().unwrap().len()), (200, 1));
    let openapi = admin.get("/api/v1/openapi.json").await;
    assert!(
        openapi
            .body
            .contains("/api/v1/flows/{id}/dead-letters/replay")
    );

    // Another workspace sees none of it, through the UI or the API.
    let other = app.another_tenant("eve@example.com", "Evil").await;
    let flow_path = format!("/flows/{id}");
    for path in [
        flow_path.clone(),
        format!("{flow_path}/edit"),
        format!("{flow_path}/dead-letters"),
        format!("{flow_path}/diff?from=1&to=1"),
        format!("{flow_path}/export"),
        format!("/runs/{run_id}"),
        format!("/runs/{run_id}/progress"),
    ] {
        assert_eq!(other.get(&path).await.status, 404, "{path}");
    }
    for path in [
        format!("{flow_path}/run"),
        format!("{flow_path}/pause"),
        format!("{flow_path}/delete"),
        format!("{flow_path}/webhook"),
        format!("{flow_path}/duplicate"),
        format!("{flow_path}/dead-letters/replay"),
        format!("/runs/{run_id}/cancel"),
    ] {
        assert_eq!(
            other.post_form(&path, &[("scope", "all")]).await.status,
            404,
            "{path}"
        );
    }
    let other_token = other.create_api_token("eve", "admin").await;
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("/flows/{id}"),
        None,
        &other_token,
    )
    .await;
    assert_eq!(status, 404);
    let (status, _) = call(
        reqwest::Method::GET,
        &format!("/runs/{run_id}"),
        None,
        &other_token,
    )
    .await;
    assert_eq!(status, 404);
    for (method, path) in [
        (reqwest::Method::GET, format!("/flows/{id}/export")),
        (reqwest::Method::POST, format!("/flows/{id}/duplicate")),
    ] {
        let (status, _) = call(method, &path, None, &other_token).await;
        assert_eq!(status, 404, "{path}");
    }
    let (_, theirs) = call(reqwest::Method::GET, "/flows", None, &other_token).await;
    assert_eq!(theirs, json!([]));
    // Nor can it point a flow of its own at Acme's connections.
    let (status, err) = call(reqwest::Method::POST, "/flows", Some(spec), &other_token).await;
    assert_eq!(status, 422, "{err}");
    assert!(err.to_string().contains("source.connection_id"), "{err}");

    // A viewer token reads but cannot run.
    let viewer = admin.create_api_token("dashboards", "viewer").await;
    let (status, _) = call(reqwest::Method::GET, &format!("/flows/{id}"), None, &viewer).await;
    assert_eq!(status, 200);
    let (status, _) = call(
        reqwest::Method::POST,
        &format!("/flows/{id}/run"),
        None,
        &viewer,
    )
    .await;
    assert_eq!(status, 403);
    app.stop().await;
}

#[tokio::test]
async fn failing_runs_pause_the_flow_loudly_and_a_revoked_grant_pauses_it_for_reconnecting() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "20")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(20).await;
    let mut fields = contact_flow(&crm, &erp, "Fragile", "record.email");
    set(&mut fields, "auto_pause_after", "2");
    let flow = create_flow(&admin, &fields).await;

    // The destination is disconnected: runs fail as a whole.
    admin
        .post_form(&format!("/connections/{erp}/disconnect"), &[])
        .await;
    let (_, first) = run_to_end(&admin, &flow).await;
    assert!(first.body.contains("Failed"), "{}", first.body);
    assert!(
        admin.get(&flow).await.body.contains("Active"),
        "one failure does not pause"
    );
    let (_, _) = run_to_end(&admin, &flow).await;
    let page = admin.get(&flow).await;
    assert!(page.body.contains("This flow is paused."), "{}", page.body);
    assert!(
        page.body
            .contains("Paused automatically after 2 failed runs in a row")
    );

    // Enabling again resets the streak; a revoked grant then pauses it for reconnecting.
    admin.post_form(&format!("{flow}/enable"), &[]).await;
    let mut fields = contact_flow(&crm, &crm, "Loop", "record.email");
    set(&mut fields, "destination", &format!("{crm}:companies"));
    set(&mut fields, "mapping.1.target", "city");
    let other = create_flow(&admin, &fields).await;
    let db = app.sandbox_db().await;
    db.execute_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE sandbox_grants SET revoked = $1",
        [true.into()],
    ))
    .await
    .unwrap();
    let (_, failed) = run_to_end(&admin, &other).await;
    assert!(failed.body.contains("reconnect"), "{}", failed.body);
    let page = admin.get(&other).await;
    assert!(
        page.body.contains("needs to be reconnected"),
        "{}",
        page.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_running_run_can_be_cancelled_and_keeps_what_it_wrote() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "5000"),
        ("SLUICE_SANDBOX_LATENCY_MS", "30"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(5000).await;
    let mut fields = contact_flow(&crm, &erp, "Slow", "record.email");
    set(&mut fields, "batch_size", "20");
    let flow = create_flow(&admin, &fields).await;
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    let run = started.location().to_owned();
    for _ in 0..200 {
        if scalar(&app, "SELECT COALESCE(MAX(pages), 0) FROM runs").await >= 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let page = admin.get(&run).await;
    assert!(
        page.body.contains("data-poll-url"),
        "the page polls while running"
    );
    let cancel = admin.post_form(&format!("{run}/cancel"), &[]).await;
    assert_eq!(cancel.status, 303);
    let done = wait_for_run(&admin, &run).await;
    assert!(done.body.contains("Cancelled"), "{}", done.body);
    let written = count(&done, "written");
    assert!(written > 0 && written < 5000, "{written}");
    assert_eq!(app.sandbox_records("erp.customers").await, written);
    app.stop().await;
}

#[tokio::test]
async fn a_malformed_dead_letter_selection_is_refused_and_changes_nothing() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "16")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(16).await;
    // Osaka is every 8th contact: two records the ERP refuses become dead letters.
    let broken = "record.email if record.city != 'Osaka' else 'not-an-email'";
    let flow = create_flow(&admin, &contact_flow(&crm, &erp, "Contacts", broken)).await;
    let (_, done) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&done, "failed"), 2, "{}", done.body);
    let token = admin.create_api_token("ci", "admin").await;
    let letters = format!("{}/api/v1{flow}/dead-letters", app.base);
    let open = || async {
        let (status, list) = admin
            .api(&token, &format!("/api/v1{flow}/dead-letters"))
            .await;
        assert_eq!(status, 200);
        list.as_array().unwrap().len()
    };
    assert_eq!(open().await, 2);
    let one = admin
        .api(&token, &format!("/api/v1{flow}/dead-letters"))
        .await
        .1[0]["id"]
        .as_str()
        .unwrap()
        .to_owned();

    let json = "application/json";
    let hostile: [(&str, Option<&str>, &str, u16); 10] = [
        (
            "a selection that is not an id",
            Some(json),
            r#"{"ids":["not-a-uuid"]}"#,
            422,
        ),
        (
            "a misspelled field",
            Some(json),
            &format!(r#"{{"idz":["{one}"]}}"#),
            422,
        ),
        (
            "an unknown field beside the ids",
            Some(json),
            &format!(r#"{{"ids":["{one}"],"x":1}}"#),
            422,
        ),
        ("no selection at all", Some(json), "{}", 422),
        ("an empty selection", Some(json), r#"{"ids":[]}"#, 422),
        ("all: false", Some(json), r#"{"all":false}"#, 422),
        (
            "both ids and all",
            Some(json),
            &format!(r#"{{"ids":["{one}"],"all":true}}"#),
            422,
        ),
        ("JSON that does not parse", Some(json), r#"{"ids":"#, 400),
        (
            "the wrong content type",
            Some("text/plain"),
            r#"{"all":true}"#,
            415,
        ),
        ("no body and no content type", None, "", 415),
    ];
    for action in ["discard", "replay"] {
        for (what, content_type, body, expected) in &hostile {
            let mut req = admin
                .http
                .post(format!("{letters}/{action}"))
                .bearer_auth(&token)
                .body(body.to_string());
            if let Some(ct) = content_type {
                req = req.header("content-type", *ct);
            }
            let res = req.send().await.unwrap();
            assert_eq!(res.status().as_u16(), *expected, "{action}: {what}");
            let error: Value = res.json().await.unwrap();
            assert!(
                error["error"]["code"].is_string(),
                "{action}: {what}: {error}"
            );
            assert!(
                error["error"]["message"].is_string(),
                "{action}: {what}: {error}"
            );
            assert_eq!(open().await, 2, "{action}: {what} changed nothing");
        }
    }
    let runs = admin.api(&token, &format!("/api/v1{flow}/runs")).await.1;
    assert_eq!(
        runs.as_array().unwrap().len(),
        1,
        "no replay run was started"
    );

    // The bulk form refuses a tampered selection the same way.
    for fields in [
        vec![("id", "not-a-uuid")],
        vec![],
        vec![("id", one.as_str()), ("id", "x")],
    ] {
        let page = admin
            .post_form(&format!("{flow}/dead-letters/discard"), &fields)
            .await;
        assert_eq!(page.status, 303, "{fields:?}");
        assert_eq!(open().await, 2, "{fields:?} changed nothing");
    }

    // Asked for explicitly, one or all.
    let discard = |body: Value| {
        let req = admin
            .http
            .post(format!("{letters}/discard"))
            .bearer_auth(&token)
            .json(&body);
        async move {
            let res = req.send().await.unwrap();
            (res.status().as_u16(), res.json::<Value>().await.unwrap())
        }
    };
    assert_eq!(
        discard(json!({"ids": [one]})).await,
        (200, json!({"discarded": 1}))
    );
    assert_eq!(
        discard(json!({"all": true})).await,
        (200, json!({"discarded": 1}))
    );
    assert_eq!(open().await, 0);
    app.stop().await;
}

#[tokio::test]
async fn dead_letters_mask_secret_looking_fields_on_the_page_and_in_the_api() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "16")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(16).await;
    // con_000006 lives in Osaka, so the broken mapping sends it to the dead letters.
    let db = app.sandbox_db().await;
    let mut fields = sluice_sandbox::db::find(db, "crm.contacts", "con_000006")
        .await
        .unwrap()
        .unwrap()
        .fields();
    fields.insert("api_token".into(), "tok_live_SECRET123".into());
    fields.insert("note".into(), "call back, password=hunter2hunter2".into());
    sluice_sandbox::db::save(
        db,
        "crm.contacts",
        "con_000006",
        &fields,
        sluice::store::now(),
    )
    .await
    .unwrap();
    let broken = "record.email if record.city != 'Osaka' else 'not-an-email'";
    let flow = create_flow(&admin, &contact_flow(&crm, &erp, "Contacts", broken)).await;
    let (run, done) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&done, "failed"), 2, "{}", done.body);
    let secrets = ["tok_live_SECRET123", "hunter2hunter2"];

    let link = admin.invite("vera@example.com", "viewer").await;
    let viewer = app.client();
    let joined = viewer
        .post_form(
            &link,
            &[
                ("name", "Vera"),
                ("password", crate::common::PASSWORD),
                ("password_confirm", crate::common::PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);

    // The run inspector, and now the dead-letter page too, for admins and viewers alike.
    for (who, client) in [("admin", &admin), ("viewer", &viewer)] {
        for page in [run.clone(), format!("{flow}/dead-letters")] {
            let page_body = client.get(&page).await;
            assert_eq!(page_body.status, 200, "{who} {page}");
            let body = crate::common::unescape(&page_body.body);
            assert!(body.contains("api_token"), "{who} {page}: {body}");
            assert!(body.contains("[redacted]"), "{who} {page}: {body}");
            for secret in secrets {
                assert!(!body.contains(secret), "{who} {page} shows {secret}");
            }
        }
    }

    // The API, for an admin token and a viewer token.
    for role in ["admin", "viewer"] {
        let token = admin.create_api_token(role, role).await;
        let (status, letters) = admin
            .api(&token, &format!("/api/v1{flow}/dead-letters"))
            .await;
        assert_eq!(status, 200);
        let text = letters.to_string();
        for secret in secrets {
            assert!(!text.contains(secret), "{role} token sees {secret}: {text}");
        }
        let letter = letters
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["record_key"] == "con_000006")
            .unwrap_or_else(|| panic!("{text}"));
        assert_eq!(letter["payload"]["api_token"], "[redacted]");
        assert_eq!(
            letter["payload"]["city"], "Osaka",
            "the rest stays readable"
        );
    }
    app.stop().await;
}

#[tokio::test]
async fn a_webhook_that_arrives_while_its_flow_runs_starts_a_follow_up_run_that_delivers_the_change()
 {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "1500"),
        ("SLUICE_SANDBOX_LATENCY_MS", "400"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(1500).await;
    let mut fields = contact_flow(&crm, &erp, "On change", "record.email");
    set(&mut fields, "trigger", "webhook");
    // Two 400 ms writes per 500-record page: the next page is read during the first.
    set(&mut fields, "batch_size", "250");
    let flow = create_flow(&admin, &fields).await;
    let shown = admin.post_form(&format!("{flow}/webhook"), &[]).await;
    let (secret, url) = (
        shown.code_by_id("webhook-secret"),
        shown.code_by_id("webhook-url"),
    );
    let now = chrono::Utc::now().timestamp();
    let body = r#"{"type":"contact.updated"}"#;
    assert_eq!(deliver(&app, &url, &secret, "msg_1", now, body).await, 202);

    // The run has committed page 2 and so read page 3, its last, when the first contact
    // changes at the source: only a new run can see the change.
    for _ in 0..200 {
        if scalar(&app, "SELECT COALESCE(MAX(pages), 0) FROM runs").await >= 2 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM runs WHERE status = 'running'").await,
        1,
        "the first run is still under way"
    );
    let db = app.sandbox_db().await;
    let mut fields = sluice_sandbox::db::find(db, "crm.contacts", "con_000000")
        .await
        .unwrap()
        .unwrap()
        .fields();
    fields.insert("name".into(), "Changed mid-run".into());
    sluice_sandbox::db::save(
        db,
        "crm.contacts",
        "con_000000",
        &fields,
        sluice::store::now(),
    )
    .await
    .unwrap();
    assert_eq!(deliver(&app, &url, &secret, "msg_2", now, body).await, 202);

    // Two runs, one after the other; the change reaches the destination.
    for _ in 0..600 {
        if scalar(
            &app,
            "SELECT COUNT(*) FROM runs WHERE status NOT IN ('queued', 'running')",
        )
        .await
            == 2
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(scalar(&app, "SELECT COUNT(*) FROM runs").await, 2);
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM runs WHERE status = 'succeeded'").await,
        2
    );
    let delivered = scalar(&app, "SELECT COUNT(*) FROM runs WHERE records_written = 1").await;
    assert_eq!(
        delivered, 1,
        "the follow-up run wrote the one changed contact"
    );
    assert_eq!(
        scalar(&app, "SELECT COUNT(*) FROM runs WHERE records_read = 1500").await,
        2,
        "the first run had read every page before the change"
    );
    let customers = app.sandbox_db().await;
    let row = customers
        .query_one_raw(Statement::from_string(
            customers.get_database_backend(),
            "SELECT data FROM sandbox_records WHERE object = 'erp.customers' AND ext_key = 'con_000000'",
        ))
        .await
        .unwrap()
        .unwrap();
    let data: String = row.try_get_by_index(0).unwrap();
    assert!(data.contains("Changed mid-run"), "{data}");
    app.stop().await;
}

#[tokio::test]
async fn a_schedule_is_previewed_from_its_own_fields_and_a_bad_one_says_why() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    // Nothing else of the flow is filled in yet.
    let preview = |cron: &'static str| {
        let admin = admin.clone();
        async move {
            admin
                .post_form(
                    "/flows",
                    &[("trigger", "cron"), ("cron", cron), ("action", "preview")],
                )
                .await
        }
    };
    let page = preview("0 9 * * 1-5").await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert!(page.body.contains("Next runs: "), "{}", page.body);
    assert!(!page.body.contains("field-error"), "{}", page.body);

    let page = preview("61 * * * *").await;
    assert_eq!(page.status, 200);
    assert!(!page.body.contains("Next runs: "));
    let at_cron = page
        .body
        .split("id=\"cron\"")
        .nth(1)
        .and_then(|rest| rest.split("</div>").next())
        .unwrap_or_default()
        .to_owned();
    assert!(
        at_cron.contains("field-error"),
        "the error is at the cron field: {}",
        page.body
    );
    app.stop().await;
}

#[tokio::test]
async fn a_runs_dead_letters_still_list_records_that_failed_again_on_replay() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "6")]).await;
    app.wait_for_seed(6).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    // The ERP refuses one customer (no e-mail), on the run and on its replay alike.
    let fields = contact_flow(
        &crm,
        &erp,
        "Contacts",
        "record.email if record.id != 'con_000002' else ''",
    );
    let flow = create_flow(&admin, &fields).await;
    let (run, page) = run_to_end(&admin, &flow).await;
    assert_eq!(crate::common::flows::status_of(&page), "Partially failed");
    let replay = admin
        .post_form(&format!("{flow}/dead-letters/replay"), &[("scope", "all")])
        .await;
    assert_eq!(replay.status, 303, "{}", replay.body);
    let replayed = crate::common::flows::wait_for_run(&admin, replay.location()).await;
    assert_eq!(count(&replayed, "failed"), 1);

    // The first run's dead letters: the record is open, under the replay.
    let run_id = run.trim_start_matches("/runs/");
    let letters = admin
        .get(&format!("{flow}/dead-letters?run={run_id}"))
        .await
        .body;
    assert!(!letters.contains("Every record was delivered"), "{letters}");
    assert!(letters.contains("con_000002"), "{letters}");
    assert!(letters.contains("failed again in a later run"), "{letters}");
    // So does the run's own page.
    let page = admin.get(&run).await.body;
    assert!(page.contains("con_000002"), "{page}");

    // Discarded, the run's open list is empty and says where its records went.
    let discard = admin
        .post_form(&format!("{flow}/dead-letters/discard"), &[("scope", "all")])
        .await;
    assert_eq!(discard.status, 303);
    let letters = admin
        .get(&format!("{flow}/dead-letters?run={run_id}"))
        .await
        .body;
    assert!(
        letters.contains("None of this run's failed records is open"),
        "{letters}"
    );
    app.stop().await;
}

#[tokio::test]
async fn while_a_run_waits_to_retry_its_progress_says_so() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "5"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
    ])
    .await;
    app.wait_for_seed(5).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    // The source is down: the run cannot read its first page yet.
    crate::common::flows::outage(&app, "crm", 503).await;
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    assert_eq!(started.status, 303);
    let run = started.location().to_owned();
    let mut seen = None;
    for _ in 0..200 {
        let progress = admin.get(&format!("{run}/progress")).await.body;
        if progress.contains("id=\"run-waiting\"") {
            seen = Some(progress);
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let progress = seen.expect("the progress card shows the wait");
    assert!(progress.contains("Waiting to try again."), "{progress}");
    assert!(progress.contains("Retrying in"), "{progress}");
    assert!(
        progress.contains("Waiting to read the first page"),
        "{progress}"
    );
    assert!(!progress.contains("0 records read, page 0"), "{progress}");

    // Back up, the run goes on and the wait is gone.
    crate::common::flows::outage(&app, "crm", 0).await;
    let page = crate::common::flows::wait_for_run(&admin, &run).await;
    assert_eq!(crate::common::flows::status_of(&page), "Succeeded");
    assert!(!page.body.contains("id=\"run-waiting\""));
    app.stop().await;
}

#[tokio::test]
async fn the_audit_log_names_what_it_touched_and_reads_as_words() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    let id = flow.trim_start_matches("/flows/");
    run_to_end(&admin, &flow).await;
    let token = admin.create_api_token("ci", "viewer").await;
    assert!(!token.is_empty());
    let audit = admin.get("/settings/audit").await.body;
    assert!(
        audit.contains(&format!("<a href=\"/flows/{id}\">Contacts</a>")),
        "the flow by name, linked: {audit}"
    );
    assert!(!audit.contains(&format!(">{id}<")), "no bare id: {audit}");
    assert!(audit.contains("role: viewer"), "detail as words: {audit}");
    assert!(!audit.contains("{&quot;"), "no JSON: {audit}");
    app.stop().await;
}

/// A run's log as stored, oldest first: level, message and time.
async fn stored_log(app: &TestApp, run: &str) -> Vec<(String, String, String)> {
    let id: uuid::Uuid = run.rsplit('/').next().unwrap().parse().unwrap();
    let db = app.app().store.db();
    db.query_all_raw(Statement::from_sql_and_values(
        db.get_database_backend(),
        "SELECT level, message, CAST(at AS TEXT) FROM run_events WHERE run_id = $1 ORDER BY id",
        [id.into()],
    ))
    .await
    .unwrap()
    .iter()
    .map(|row| {
        (
            row.try_get_by_index(0).unwrap(),
            row.try_get_by_index(1).unwrap(),
            row.try_get_by_index(2).unwrap(),
        )
    })
    .collect()
}

#[tokio::test]
async fn a_runs_log_says_what_it_started_then_each_page_then_how_it_ended_even_when_it_fails_first()
{
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "20")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(20).await;
    let flow = create_flow(&admin, &contact_flow(&crm, &erp, "Told", "record.email")).await;

    let (run, done) = run_to_end(&admin, &flow).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    let log = stored_log(&app, &run).await;
    let messages: Vec<&str> = log.iter().map(|(_, m, _)| m.as_str()).collect();
    assert!(
        messages[0]
            .starts_with("Started with version 1 (Run now). Reading Contacts from Sandbox CRM."),
        "{messages:#?}"
    );
    assert!(
        messages[1].starts_with("Page 1: read 20, wrote 20"),
        "{messages:#?}"
    );
    assert!(
        messages
            .last()
            .unwrap()
            .starts_with("Finished: succeeded. Read 20, wrote 20"),
        "{messages:#?}"
    );
    // Each line carries when it was said, not when it was stored.
    let times: Vec<&str> = log.iter().map(|(_, _, at)| at.as_str()).collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:#?}");

    // A run that fails before its first page still says what it started.
    admin
        .post_form(&format!("/connections/{crm}/disconnect"), &[])
        .await;
    let (run, failed) = run_to_end(&admin, &flow).await;
    assert!(failed.body.contains("Failed"), "{}", failed.body);
    let log = stored_log(&app, &run).await;
    let messages: Vec<&str> = log.iter().map(|(_, m, _)| m.as_str()).collect();
    assert!(
        messages[0].starts_with("Started with version 1"),
        "{messages:#?}"
    );
    let (level, last, _) = log.last().unwrap();
    assert!(level == "error" && last.starts_with("Failed: "), "{log:#?}");
    app.stop().await;
}
