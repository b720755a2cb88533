//! The flow editor without scripts: templates fill it in, the destination's required
//! fields are listed as rows, source fields are picked from a live sample with example
//! values, and every row previews its value on that sample. The script's live preview
//! asks the same server.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{connect_both, post};
use crate::common::{Page, TestApp};
use serde_json::Value;

fn fields(page: &Page) -> Vec<(String, String)> {
    // The editor's inputs as a browser would post them (selects at their selected value).
    let html = page.html();
    let mut out = Vec::new();
    let input = scraper::Selector::parse("form[data-preview-url] input[name]").unwrap();
    for e in html.select(&input) {
        let kind = e.value().attr("type").unwrap_or("text");
        if kind == "checkbox" && e.value().attr("checked").is_none() {
            continue;
        }
        let value = e
            .value()
            .attr("value")
            .unwrap_or(if kind == "checkbox" { "on" } else { "" });
        out.push((e.value().attr("name").unwrap().to_owned(), value.to_owned()));
    }
    let select = scraper::Selector::parse("form[data-preview-url] select[name]").unwrap();
    let chosen = scraper::Selector::parse("option[selected]").unwrap();
    let first = scraper::Selector::parse("option").unwrap();
    for e in html.select(&select) {
        let option = e.select(&chosen).next().or_else(|| e.select(&first).next());
        let value = option.and_then(|o| o.value().attr("value")).unwrap_or("");
        out.push((e.value().attr("name").unwrap().to_owned(), value.to_owned()));
    }
    let textarea = scraper::Selector::parse("form[data-preview-url] textarea[name]").unwrap();
    for e in html.select(&textarea) {
        out.push((
            e.value().attr("name").unwrap().to_owned(),
            e.text().collect(),
        ));
    }
    out
}

fn set(fields: &mut Vec<(String, String)>, key: &str, value: &str) {
    crate::common::flows::set(fields, key, value);
}

/// The row whose target input holds `target`.
fn row_of(page: &Page, target: &str) -> usize {
    let html = page.html();
    let inputs = scraper::Selector::parse("input[name$='.target'][name^='mapping.']").unwrap();
    html.select(&inputs)
        .find(|e| e.value().attr("value") == Some(target))
        .and_then(|e| e.value().attr("name"))
        .and_then(|n| n.split('.').nth(1))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no row for {target}: {}", page.body))
}

#[tokio::test]
async fn a_flow_is_mapped_by_picking_sample_fields_with_previews_and_no_script() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    app.wait_for_seed(5).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;

    let new = admin.get("/flows/new").await;
    let mut form = fields(&new);
    set(&mut form, "name", "Picked");
    set(&mut form, "source", &format!("{crm}:contacts"));
    set(&mut form, "destination", &format!("{erp}:customers"));
    set(&mut form, "action", "sample");
    let sampled = post(&admin, "/flows", &form).await;
    assert_eq!(sampled.status, 200, "{}", sampled.body);
    // The key field and the fields a customer needs are rows to fill.
    let (key, name, email) = (
        row_of(&sampled, "external_id"),
        row_of(&sampled, "name"),
        row_of(&sampled, "email"),
    );
    // Source fields come with an example value.
    let picker = sampled.text("#source-fields").unwrap();
    assert!(
        picker.contains("record.email") && picker.contains("@"),
        "{picker}"
    );

    let mut form = fields(&sampled);
    set(&mut form, &format!("mapping.{key}.pick"), "record.id");
    set(&mut form, &format!("mapping.{name}.pick"), "record.name");
    set(&mut form, &format!("mapping.{email}.pick"), "record.email");
    set(&mut form, "action", "preview");
    let previewed = post(&admin, "/flows", &form).await;
    assert_eq!(previewed.status, 200, "{}", previewed.body);
    let preview = |row: usize| {
        previewed
            .text(&format!("[data-preview-row='{row}']"))
            .unwrap_or_default()
    };
    assert!(preview(key).starts_with("\"con_"), "{}", preview(key));
    assert!(preview(email).contains('@'), "{}", preview(email));

    let mut form = fields(&previewed);
    set(&mut form, "action", "save");
    let saved = post(&admin, "/flows", &form).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let document: Value = serde_json::from_str(
        &admin
            .get(&format!("{}/export", saved.location()))
            .await
            .body,
    )
    .unwrap();
    let mapped: Vec<(&str, &str)> = document["mapping"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["target"].as_str().unwrap(),
                r["expression"].as_str().unwrap(),
            )
        })
        .collect();
    for pair in [
        ("external_id", "record.id"),
        ("name", "record.name"),
        ("email", "record.email"),
    ] {
        assert!(mapped.contains(&pair), "{mapped:?}");
    }
    app.stop().await;
}

#[tokio::test]
async fn the_live_preview_shows_each_rows_value_or_error_to_writers_only() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let sample = r#"[{"id": "c1", "email": " ADA@Example.com ", "age": "36"}]"#;
    let answer = admin
        .post_form(
            "/flows/mapping-preview",
            &[
                ("sample", sample),
                ("mapping.0.target", "email"),
                ("mapping.0.expression", "record.email | trim | lower"),
                ("mapping.3.target", "age"),
                ("mapping.3.expression", "record.age"),
                ("mapping.3.field_type", "integer"),
                ("mapping.4.target", "oops"),
                ("mapping.4.expression", "record.email | upperr"),
                ("mapping.5.target", "picked"),
                ("mapping.5.pick", "record.id"),
            ],
        )
        .await;
    assert_eq!(answer.status, 200, "{}", answer.body);
    let rows: Value = serde_json::from_str(&answer.body).unwrap();
    let rows = &rows["rows"];
    assert_eq!(rows["0"]["value"], "\"ada@example.com\"");
    assert_eq!(rows["3"]["value"], "36");
    assert!(
        rows["4"]["error"].as_str().unwrap().contains("upperr"),
        "{rows}"
    );
    assert_eq!(rows["5"]["value"], "\"c1\"");

    let missing = admin
        .post_form(
            "/flows/mapping-preview",
            &[("mapping.0.expression", "record.id")],
        )
        .await;
    assert_eq!(missing.status, 422);

    let viewer_link = admin.invite("vic@example.com", "viewer").await;
    let viewer = app.client();
    crate::common::accept_invitation(&viewer, &viewer_link, "Vic").await;
    let refused = viewer
        .post_form(
            "/flows/mapping-preview",
            &[("sample", sample), ("mapping.0.expression", "record.id")],
        )
        .await;
    assert_eq!(refused.status, 403, "{}", refused.body);
    app.stop().await;
}

#[tokio::test]
async fn a_template_fills_in_the_editor_with_the_workspaces_connections() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let offered = admin.get("/flows/new").await;
    assert!(
        offered.body.contains("CRM contacts → ERP customers"),
        "{}",
        offered.body
    );
    assert!(offered.body.contains("Webhook → CRM contacts"));

    let without = admin
        .get("/flows/new?template=crm-contacts-to-erp-customers")
        .await;
    assert!(
        without
            .body
            .contains("This template needs a connection to Sandbox CRM and Sandbox ERP"),
        "{}",
        without.body
    );
    let (crm, erp) = connect_both(&admin).await;
    let with = admin
        .get("/flows/new?template=crm-contacts-to-erp-customers")
        .await;
    let form = fields(&with);
    let value = |k: &str| {
        form.iter()
            .find(|(n, _)| n == k)
            .map(|(_, v)| v.clone())
            .unwrap()
    };
    assert_eq!(value("source"), format!("{crm}:contacts"));
    assert_eq!(value("destination"), format!("{erp}:customers"));
    assert_eq!(value("trigger"), "interval");
    assert_eq!(value("mapping.2.expression"), "record.email | lower | trim");
    let mut form = form;
    set(&mut form, "action", "save");
    let saved = post(&admin, "/flows", &form).await;
    assert_eq!(
        saved.status, 303,
        "the template saves as it is: {}",
        saved.body
    );
    assert_eq!(admin.get("/flows/new?template=nope").await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn testing_one_record_writes_it_for_real_and_shows_the_destinations_answer() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    app.wait_for_seed(5).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;

    let mut form = crate::common::flows::contact_flow(&crm, &erp, "Tested", "record.email");
    set(&mut form, "action", "test_write");
    let tested = post(&admin, "/flows", &form).await;
    assert_eq!(tested.status, 200, "{}", tested.body);
    assert_eq!(
        tested.text("#test-write-result").as_deref(),
        Some("Written")
    );
    let answer = tested.text("#test-write-answer").unwrap();
    assert!(answer.contains("Accepted"), "{answer}");
    assert!(
        tested.text("#test-write").unwrap().contains("→ 20"),
        "the call is shown"
    );
    assert_eq!(
        app.sandbox_records("erp.customers").await,
        1,
        "one record, really written"
    );

    // The destination refuses a customer without an e-mail, and says so.
    set(&mut form, "mapping.1.expression", "''");
    let refused = post(&admin, "/flows", &form).await;
    assert_eq!(
        refused.text("#test-write-result").as_deref(),
        Some("Not written")
    );
    let answer = refused.text("#test-write-answer").unwrap();
    assert!(
        answer.contains("Refused") && answer.contains("email"),
        "{answer}"
    );
    assert_eq!(app.sandbox_records("erp.customers").await, 1);
    assert!(
        admin
            .get("/settings/audit")
            .await
            .body
            .contains("flow.test_write")
    );
    assert_eq!(
        admin.get("/flows").await.body.matches("Tested").count(),
        0,
        "nothing saved"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_first_run_is_guided_from_the_first_connection_to_the_first_flow() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let crm = admin.connect_sandbox("sandbox_crm").await;
    let first = admin.get(&crm).await;
    let step = first.text("#next-step").unwrap();
    assert!(step.contains("Add another connection"), "{step}");

    let erp = admin.connect_sandbox("sandbox_erp").await;
    let second = admin.get(&erp).await;
    let step = second.text("#next-step").unwrap();
    assert!(step.contains("CRM contacts → ERP customers"), "{step}");
    assert_eq!(
        second.attr("#next-step a.btn-primary", "href").as_deref(),
        Some("/flows/new?template=crm-contacts-to-erp-customers")
    );
    let new = admin.get("/flows/new").await;
    assert!(
        new.text("#templates")
            .unwrap()
            .contains("uses your connections")
    );

    let mut form = fields(
        &admin
            .get("/flows/new?template=crm-contacts-to-erp-customers")
            .await,
    );
    set(&mut form, "action", "save");
    assert_eq!(post(&admin, "/flows", &form).await.status, 303);
    assert!(
        admin.get(&erp).await.text("#next-step").is_none(),
        "done once a flow exists"
    );
    app.stop().await;
}

#[tokio::test]
async fn rows_are_added_and_removed_freely_without_a_script() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let mut form = crate::common::flows::contact_flow(&crm, &erp, "Rows", "record.email");
    set(&mut form, "action", "add_rows");
    let more = post(&admin, "/flows", &form).await;
    let rows = |page: &Page| {
        let html = page.html();
        let targets = scraper::Selector::parse("input[name$='.target'][name^='mapping.']").unwrap();
        html.select(&targets)
            .map(|e| e.value().attr("value").unwrap_or_default().to_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(
        rows(&more).len(),
        4 + 5,
        "four filled rows and five to fill"
    );

    let mut form = fields(&more);
    let city = row_of(&more, "city");
    set(&mut form, "action", &format!("remove:{city}"));
    let fewer = post(&admin, "/flows", &form).await;
    assert_eq!(fewer.status, 200, "{}", fewer.body);
    let left: Vec<String> = rows(&fewer).into_iter().filter(|t| !t.is_empty()).collect();
    assert_eq!(left, ["external_id", "email", "name"]);
    app.stop().await;
}
