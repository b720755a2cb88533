//! User expressions are untrusted code: hostile ones are refused at their field, the
//! expensive ones fail their record within a budget, none of them reaches the web
//! workers, and only members who may write can run them.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use crate::common::flows::{connect_both, contact_flow, post, set};
use serde_json::{Value, json};
use std::time::{Duration, Instant};

/// Resident memory of this process (the server runs in it), in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace()
        .nth(1)
        .unwrap()
        .parse::<u64>()
        .unwrap()
        * 1024
}

#[tokio::test]
async fn hostile_expressions_are_refused_at_their_field_while_health_checks_stay_quick() {
    // Memory is measured for the whole process: other tests must not share it.
    if !crate::common::in_own_process(
        "expressions::hostile_expressions_are_refused_at_their_field_while_health_checks_stay_quick",
    ) {
        return;
    }
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "40")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(40).await;

    // Memory at compile time, the parser's stack, and a way out of the expression.
    let payloads = [
        "(('x'*100000000) ~ ('x'*100000000) ~ ('x'*100000000) ~ ('x'*100000000))|length"
            .to_owned(),
        format!("{}1", "-".repeat(20_000)),
        "1)|tojson }}{% for i in range(100000) %}{% for j in range(100000) %}x{% endfor %}{% endfor %}{{ (1".to_owned(),
    ];
    for payload in &payloads {
        let fields = contact_flow(&crm, &erp, "Hostile", payload);
        let started = Instant::now();
        let page = post(&admin, "/flows", &fields).await;
        let took = started.elapsed();
        assert_eq!(
            page.status,
            422,
            "{}",
            &page.body[..page.body.len().min(400)]
        );
        assert!(
            page.body.contains("id=\"error-mapping.1.expression\"")
                || page.body.contains("mapping.1.expression"),
            "the error is shown at the field"
        );
        assert!(
            took < Duration::from_secs(1),
            "{payload:.40}… took {took:?}"
        );
    }

    // Ten concurrent dry runs of an expression that is cheap to compile and costly per
    // record: each record hits its budget on the expression pool; /healthz stays quick.
    let costly = "((range(10000) if record.email else []) | map('string') | map('upper') | map('lower') | map('trim') | map('length') | sum)";
    let mut fields = contact_flow(&crm, &erp, "Costly", costly);
    set(&mut fields, "action", "dry_run");
    // One run first, so the code and pools it touches count as the baseline.
    assert_eq!(post(&admin, "/flows", &fields).await.status, 200);
    let before = rss();
    let runs: Vec<_> = (0..10)
        .map(|_| {
            let (admin, fields) = (admin.clone(), fields.clone());
            tokio::spawn(async move { post(&admin, "/flows", &fields).await })
        })
        .collect();
    let health = app.client().http;
    let mut slowest = Duration::ZERO;
    let mut probes = 0;
    while runs.iter().any(|r| !r.is_finished()) {
        let started = Instant::now();
        let res = health
            .get(format!("{}/healthz", app.base))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status(), 200);
        slowest = slowest.max(started.elapsed());
        probes += 1;
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for run in runs {
        let page = run.await.unwrap();
        assert_eq!(page.status, 200);
        assert!(
            page.body.contains("took longer than"),
            "each record fails within its budget: {}",
            page.body
                .find("dry")
                .map(|i| &page.body[i..(i + 3000).min(page.body.len())])
                .unwrap_or("")
        );
    }
    assert!(probes > 3, "the dry runs took a while: {probes} probes");
    eprintln!("slowest /healthz during 10 hostile dry runs: {slowest:?} over {probes} probes");
    assert!(
        slowest < Duration::from_millis(250),
        "/healthz took {slowest:?} while expressions ran"
    );
    let grown = rss().saturating_sub(before);
    eprintln!("resident memory grew by {} KB", grown / 1024);
    assert!(grown < 20 << 20, "memory grew by {} MB", grown >> 20);
    app.stop().await;
}

#[tokio::test]
async fn viewers_cannot_dry_run_a_flow() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(5).await;
    let saved = post(
        &admin,
        "/flows",
        &contact_flow(&crm, &erp, "Plain", "record.email"),
    )
    .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let id = saved.location().trim_start_matches("/flows/").to_owned();
    let http = app.client().http;
    let dry_run = |token: String| {
        let req = http
            .post(format!("{}/api/v1/flows/{id}/dry-run?limit=2", app.base))
            .bearer_auth(token);
        async move {
            let res = req.send().await.unwrap();
            (
                res.status().as_u16(),
                res.json::<Value>().await.unwrap_or(Value::Null),
            )
        }
    };
    let viewer = admin.create_api_token("dash", "viewer").await;
    let (status, body) = dry_run(viewer).await;
    assert_eq!(status, 403, "{body}");
    let writer = admin.create_api_token("ci", "admin").await;
    let (status, rows) = dry_run(writer).await;
    assert_eq!(status, 200, "{rows}");
    assert_eq!(rows.as_array().unwrap().len(), 2);
    assert_eq!(rows[0]["error"], json!(null), "{rows}");
    app.stop().await;
}

#[tokio::test]
async fn a_misspelt_filter_is_refused_at_save_in_the_form_and_the_api() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;

    // The form: the error sits at the expression and at the filter, with a suggestion.
    let mut fields = contact_flow(&crm, &erp, "Typo", "record.email | lower");
    set(&mut fields, "mapping.3.expression", "record.city | upperr");
    set(&mut fields, "filter", "record.status is activ");
    let page = post(&admin, "/flows", &fields).await;
    assert_eq!(page.status, 422, "{}", page.body);
    assert!(
        page.body
            .contains("There is no filter named &#39;upperr&#39;. Did you mean &#39;upper&#39;?"),
        "{}",
        page.body
    );
    assert!(
        page.body.contains("There is no test named"),
        "{}",
        page.body
    );
    let flows = admin.get("/flows").await.body;
    assert!(!flows.contains("Typo"), "nothing was saved");

    // The API: the same check, named by field.
    let token = admin.create_api_token("ci", "admin").await;
    let res = admin
        .http
        .post(format!("{}/api/v1/flows", admin.base))
        .bearer_auth(&token)
        .json(&json!({
            "name": "Typo",
            "source": {"connection_id": crm, "object": "contacts", "incremental": false},
            "destination": {"connection_id": erp, "object": "customers", "write_mode": "upsert", "key_field": "external_id"},
            "mapping": [
                {"target": "external_id", "expression": "record.id"},
                {"target": "name", "expression": "record.name"},
                {"target": "email", "expression": "record.email | lowr"}
            ],
            "record_key": "record.id",
            "batch_size": 10,
            "trigger": {"kind": "manual"},
            "auto_pause_after": 3
        }))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let body: Value = res.json().await.unwrap();
    let fields = body["error"]["fields"].as_array().unwrap();
    assert!(
        fields.iter().any(|f| f["field"] == "mapping.2.expression"
            && f["message"].as_str().unwrap().contains("'lowr'")),
        "{body}"
    );
    app.stop().await;
}
