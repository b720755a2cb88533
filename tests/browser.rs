//! Browser tests: headless Chromium driven over WebDriver (chromedriver), against the real
//! server. They run when chromedriver is installed, and are required (fail instead of
//! skipping) when `SLUICE_BROWSER_TESTS=1`, as `.ci/run` sets.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::{PASSWORD, TestApp};
use fantoccini::{Client, ClientBuilder, Locator};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

struct Driver {
    process: Child,
    client: Client,
    _profile: tempfile::TempDir,
}

impl Driver {
    /// Starts chromedriver and a headless Chromium session; `None` when not installed
    /// (unless browser tests are required).
    async fn start() -> Option<Driver> {
        let required = std::env::var("SLUICE_BROWSER_TESTS").is_ok_and(|v| v == "1");
        let driver_bin = std::env::var("CHROMEDRIVER").unwrap_or_else(|_| "chromedriver".into());
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let process = match Command::new(&driver_bin)
            .arg(format!("--port={port}"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
        {
            Ok(p) => p,
            Err(e) if !required => {
                eprintln!("skipping browser test: {driver_bin} not available ({e})");
                return None;
            }
            Err(e) => panic!("SLUICE_BROWSER_TESTS=1 but {driver_bin} cannot start: {e}"),
        };
        let profile = tempfile::tempdir().unwrap();
        let caps: serde_json::Map<String, serde_json::Value> = serde_json::from_value(serde_json::json!({
            "browserName": "chrome",
            "goog:chromeOptions": {
                "binary": std::env::var("CHROMIUM").unwrap_or_else(|_| "/usr/bin/chromium".into()),
                "args": [
                    "--headless=new", "--no-sandbox", "--disable-gpu", "--disable-quic",
                    "--disable-background-networking", "--disable-component-update",
                    "--disable-sync", "--no-first-run", "--window-size=1400,1000",
                    format!("--user-data-dir={}", profile.path().display()),
                ]
            }
        }))
        .unwrap();
        let url = format!("http://127.0.0.1:{port}");
        let mut last_error = String::new();
        for _ in 0..50 {
            let mut builder =
                ClientBuilder::new(hyper_util::client::legacy::connect::HttpConnector::new());
            builder.capabilities(caps.clone());
            match builder.connect(&url).await {
                Ok(client) => {
                    return Some(Driver {
                        process,
                        client,
                        _profile: profile,
                    });
                }
                Err(e) => last_error = e.to_string(),
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("could not start a Chromium session: {last_error}");
    }

    async fn fill(&self, name: &str, value: &str) {
        let field = self
            .client
            .find(Locator::Css(&format!("[name='{name}']")))
            .await
            .unwrap();
        field.clear().await.unwrap();
        field.send_keys(value).await.unwrap();
    }

    async fn submit(&self, selector: &str) {
        self.client
            .find(Locator::Css(selector))
            .await
            .unwrap()
            .click()
            .await
            .unwrap();
    }

    /// Waits for the navigation a click started to land on `path`.
    async fn wait_for_path(&self, path: &str) {
        for _ in 0..100 {
            let ready = self
                .client
                .execute("return document.readyState", vec![])
                .await
                .ok();
            if self.client.current_url().await.unwrap().path() == path
                && ready.as_ref().and_then(|v| v.as_str()) == Some("complete")
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!(
            "never reached {path}; at {}",
            self.client.current_url().await.unwrap()
        );
    }

    /// Waits until the visible page text contains `needle` (flashes fade in).
    async fn wait_for_text(&self, needle: &str) {
        for _ in 0..50 {
            if self.text().await.contains(needle) {
                return;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("page never showed {needle:?}: {}", self.text().await);
    }

    /// The page's visible text; empty while a navigation or a poll swaps the page out.
    async fn text(&self) -> String {
        match self.client.find(Locator::Css("body")).await {
            Ok(body) => body.text().await.unwrap_or_default(),
            Err(_) => String::new(),
        }
    }

    /// Signs in through the login form and lands on the dashboard.
    async fn sign_in(&self, base: &str, email: &str) {
        self.client.goto(&format!("{base}/login")).await.unwrap();
        self.fill("email", email).await;
        self.fill("password", PASSWORD).await;
        self.submit("button[type='submit']").await;
        self.wait_for_path("/dashboard").await;
    }

    async fn screenshot(&self, name: &str) {
        let png = self.client.screenshot().await.unwrap();
        let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("screenshots");
        std::fs::create_dir_all(&dir).unwrap();
        std::fs::write(dir.join(format!("{name}.png")), png).unwrap();
    }

    async fn stop(mut self) {
        let _ = self.client.close().await;
        let _ = self.process.kill();
        let _ = self.process.wait();
    }
}

#[tokio::test]
async fn a_newcomer_sets_up_signs_in_and_sees_the_dashboard() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn().await;
    let setup = format!("{}{}", app.base, app.setup_path().await);

    browser.client.goto(&setup).await.unwrap();
    assert!(browser.text().await.contains("Set up Sluice"));
    browser.fill("name", "Ada Lovelace").await;
    browser.fill("email", "ada@example.com").await;
    browser.fill("password", PASSWORD).await;
    browser.fill("password_confirm", PASSWORD).await;
    browser.fill("workspace", "Acme").await;
    browser.screenshot("setup").await;
    browser.submit("button[type=submit]").await;
    browser.wait_for_path("/dashboard").await;
    browser
        .wait_for_text("Welcome to Sluice! Your workspace is ready.")
        .await;
    let text = browser.text().await;
    assert!(text.contains("No integrations yet"));
    browser.screenshot("dashboard").await;

    // Sign out, then sign in through the form.
    browser.submit(".user-menu button[type=submit]").await;
    browser.wait_for_path("/login").await;
    browser.wait_for_text("You have been signed out.").await;
    browser.fill("email", "ada@example.com").await;
    browser.fill("password", PASSWORD).await;
    browser.screenshot("login").await;
    browser.submit("button[type=submit]").await;
    browser.wait_for_path("/dashboard").await;
    let text = browser.text().await;
    assert!(
        text.contains("Dashboard") && text.contains("Acme"),
        "{text}"
    );

    // The members page with an invitation link, for the record.
    browser
        .client
        .goto(&format!("{}/settings/members", app.base))
        .await
        .unwrap();
    browser.fill("email", "grace@example.com").await;
    browser
        .submit("form[action='/settings/members/invite'] button[type=submit]")
        .await;
    browser.wait_for_path("/settings/members/invite").await;
    browser
        .wait_for_text("Invitation created for grace@example.com")
        .await;
    browser.screenshot("members").await;

    browser.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn an_end_customer_connects_through_a_link_in_the_browser() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "3")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "sandbox_crm"),
                ("customer_ref", "Globex"),
                ("ttl_hours", "2"),
            ],
        )
        .await;
    let link = created.code_by_id("connect-link");

    browser.client.goto(&link).await.unwrap();
    browser
        .wait_for_text("Connect your Sandbox CRM account")
        .await;
    assert!(browser.text().await.contains("Acme asks to connect"));
    browser.screenshot("connect-link").await;
    browser.submit("#continue").await;
    browser.wait_for_path("/sandbox/oauth/authorize").await;
    browser
        .wait_for_text("wants to access your Sandbox account")
        .await;
    browser.screenshot("sandbox-consent").await;
    browser.submit("#approve").await;
    browser.wait_for_path("/oauth/callback/sandbox_crm").await;
    browser.wait_for_text("is now connected to Acme").await;
    browser.screenshot("connected").await;

    let list = admin.get("/connections").await;
    assert!(list.body.contains("Sandbox CRM — Globex"));
    assert!(list.body.contains("badge-success\">Active"));
    browser.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn a_newcomer_maps_by_picking_sees_previews_dry_runs_runs_and_the_dashboard_counts_the_loss()
{
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "25")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = common::flows::connect_both(&admin).await;
    app.wait_for_seed(25).await;
    // One contact has no e-mail address: the ERP refuses it as a customer.
    common::flows::edit_contact(&app, "con_000020", "email", "").await;

    browser.sign_in(&app.base, "ada@example.com").await;
    browser
        .client
        .goto(&format!("{}/flows", app.base))
        .await
        .unwrap();
    browser.wait_for_text("No flows yet").await;
    browser.submit(".page-actions a.btn-primary").await;
    browser.wait_for_path("/flows/new").await;
    browser.fill("name", "Contacts to customers").await;
    browser.select("source", &format!("{crm}:contacts")).await;
    browser
        .select("destination", &format!("{erp}:customers"))
        .await;
    browser.submit("button[value='sample']").await;
    browser
        .wait_for_text("Fields in a live sample of the source")
        .await;

    // The customer's key and required fields are rows already; their sources are picked,
    // never typed: from a row's list, or by clicking a field into the row.
    let (key, name, email) = (
        browser.mapping_row("external_id").await,
        browser.mapping_row("name").await,
        browser.mapping_row("email").await,
    );
    browser
        .select(&format!("mapping.{key}.pick"), "record.id")
        .await;
    browser
        .submit(&format!("input[name='mapping.{name}.expression']"))
        .await;
    browser.submit("button[data-pick='record.name']").await;
    browser
        .select(&format!("mapping.{email}.pick"), "record.email")
        .await;
    for (row, expected) in [
        (key, "record.id"),
        (name, "record.name"),
        (email, "record.email"),
    ] {
        assert_eq!(
            browser.value(&format!("mapping.{row}.expression")).await,
            expected
        );
    }
    // Each row shows its value on the sample as soon as it is picked.
    let preview = browser
        .wait_for_preview(email, |text| text.contains('@'))
        .await;
    assert!(preview.starts_with('"'), "{preview}");
    assert!(
        browser
            .wait_for_preview(key, |text| text.contains("con_"))
            .await
            .contains("con_000000")
    );
    for (width, height) in [(390, 844), (1366, 900)] {
        browser.client.set_window_size(width, height).await.unwrap();
        let sideways = browser
            .client
            .execute(
                "return document.documentElement.scrollWidth - window.innerWidth;",
                vec![],
            )
            .await
            .unwrap();
        assert!(
            sideways.as_f64().unwrap() <= 1.0,
            "the editor scrolls sideways at {width} px: {sideways}"
        );
        browser.screenshot(&format!("editor-picking-{width}")).await;
    }

    browser.submit("button[value='dry_run']").await;
    browser.wait_for_text("Dry run: first 10 record(s)").await;
    assert!(browser.text().await.contains("Nothing was written."));
    // The results are where the eye goes: summed up, and scrolled to.
    assert!(
        browser
            .text()
            .await
            .contains("10 valid · 0 failing · 0 filtered")
    );
    let at = browser.client.current_url().await.unwrap();
    assert_eq!(at.fragment(), Some("dry-run"), "{at}");
    browser.screenshot("flow-dry-run").await;
    assert_eq!(app.sandbox_records("erp.customers").await, 0);

    browser.submit("button[value='save']").await;
    browser.wait_for_text("Flow created.").await;
    let flow_page = browser.client.current_url().await.unwrap();
    browser.submit("form[action$='/run'] button").await;
    browser.wait_for_text("Run started.").await;
    browser.wait_for_text("Finished: partially failed").await;
    assert_eq!(browser.counter("count-written").await, "24");
    assert_eq!(browser.counter("count-failed").await, "1");
    browser.screenshot("flow-run").await;
    assert_eq!(app.sandbox_records("erp.customers").await, 24);

    // The dashboard does not call a run that lost a record a success.
    browser
        .client
        .goto(&format!("{}/dashboard", app.base))
        .await
        .unwrap();
    browser.wait_for_path("/dashboard").await;
    assert_eq!(browser.counter("stat-success").await, "0.0 %");
    assert!(
        browser
            .counter("stat-records-failed")
            .await
            .starts_with("1 failed (4.0 %)"),
        "{}",
        browser.text().await
    );
    assert_eq!(browser.counter("stat-records").await, "24");

    // Fixed at the source, the next run delivers everything; a run watched after that
    // shows, when it ends, what only a finished run has (the comparison with the last
    // success) without a reload by hand.
    common::flows::edit_contact(&app, "con_000020", "email", "ada20@example.com").await;
    for _ in 0..2 {
        browser.client.goto(flow_page.as_str()).await.unwrap();
        browser.submit("form[action$='/run'] button").await;
        browser.wait_for_text("Run started.").await;
        browser.wait_for_text("Finished: succeeded").await;
    }
    browser
        .wait_for_text("Compared with the last successful run")
        .await;
    assert_eq!(app.sandbox_records("erp.customers").await, 25);
    browser.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn the_dashboard_chart_a_failed_run_acknowledging_its_alert_and_replaying_it() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "12")]).await;
    app.wait_for_seed(12).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = common::flows::connect_both(&admin).await;
    // The ERP refuses every record: the name is not an e-mail address.
    let mut fields =
        common::flows::contact_flow(&crm, &erp, "Contacts to customers", "record.name");
    let flow = common::flows::create_flow(&admin, &fields).await;
    let (run, page) = common::flows::run_to_end(&admin, &flow).await;
    assert_eq!(common::flows::status_of(&page), "Partially failed");

    browser.sign_in(&app.base, "ada@example.com").await;
    browser.wait_for_text("Flow health").await;
    // The charts are drawn (server-side SVG with a point for this hour).
    let chart = browser
        .client
        .find(Locator::Css("#error-chart svg"))
        .await
        .unwrap();
    let (_, _, width, height) = chart.rectangle().await.unwrap();
    assert!(
        width > 200.0 && height > 50.0,
        "chart is laid out: {width}x{height}"
    );
    assert!(
        browser
            .client
            .find(Locator::Css("#error-chart svg circle"))
            .await
            .is_ok()
    );
    browser.screenshot("dashboard-chart").await;

    // Open the failed run from the flow health table.
    browser.submit("#flow-health a[href^='/runs/']").await;
    browser.wait_for_path(&run).await;
    browser.wait_for_text("Record failures").await;
    assert!(browser.text().await.contains("Partially failed"));

    // Acknowledge its alert.
    browser
        .client
        .goto(&format!("{}/alerts", app.base))
        .await
        .unwrap();
    browser.wait_for_text("12 record(s) failed").await;
    browser
        .submit("#alerts form[action$='/acknowledge'] button")
        .await;
    browser
        .wait_for_text("Acknowledged: no further notifications")
        .await;
    browser.screenshot("alert-acknowledged").await;

    // Fix the mapping, then replay the run's dead letters from the browser.
    common::flows::set(&mut fields, "mapping.1.expression", "record.email");
    common::flows::set(&mut fields, "expected_version", "1");
    let saved = common::flows::post(&admin, &flow, &fields).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    browser
        .client
        .goto(&format!("{}{run}", app.base))
        .await
        .unwrap();
    browser
        .submit(".page-actions a[href*='dead-letters']")
        .await;
    browser.wait_for_text("Replay all (12)").await;
    browser
        .submit("form[action$='/dead-letters/replay'] button")
        .await;
    browser.client.accept_alert().await.unwrap();
    browser.wait_for_text("Replay started").await;
    browser.wait_for_text("Finished: succeeded").await;
    browser.screenshot("replayed").await;
    assert_eq!(app.sandbox_records("erp.customers").await, 12);
    browser.stop().await;
    app.stop().await;
}

/// An items API that pages as `{"data": [...], "next_page": N}` (null on the last
/// page), behind a bearer key.
fn items_api(r: &common::fake::Request) -> common::fake::Answer {
    use common::fake::Answer;
    if r.header("authorization") != Some("Bearer items-key") {
        return Answer::json(401, serde_json::json!({ "error": "unauthorized" }));
    }
    let page: usize = r.param("page").map_or(Ok(1), str::parse).unwrap_or(0);
    let per_page: usize = r.param("per_page").map_or(Ok(10), str::parse).unwrap_or(0);
    if page == 0 || per_page == 0 || r.path != "/items" {
        return Answer::json(400, serde_json::json!({ "error": "bad request" }));
    }
    let all: Vec<serde_json::Value> = (1..=12)
        .map(|i| serde_json::json!({ "id": i, "sku": format!("SKU-{i:03}"), "name": format!("Widget {i}") }))
        .collect();
    let data: Vec<serde_json::Value> = all
        .iter()
        .skip((page - 1) * per_page)
        .take(per_page)
        .cloned()
        .collect();
    let next = (page * per_page < all.len()).then_some(page + 1);
    Answer::json(200, serde_json::json!({ "data": data, "next_page": next }))
}

/// A warehouse API that takes `POST /batch` with `{"records": [...]}` behind its own
/// key header, answering a result per record in order.
fn warehouse_api(r: &common::fake::Request) -> common::fake::Answer {
    use common::fake::Answer;
    if r.header("x-api-key") != Some("warehouse-key") {
        return Answer::json(401, serde_json::json!({ "error": "unauthorized" }));
    }
    match (r.method.as_str(), r.path.as_str(), r.json()) {
        ("POST", "/batch", Some(body)) if body["records"].is_array() => {
            let results: Vec<serde_json::Value> = body["records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|record| serde_json::json!({ "status": "created", "id": format!("W-{}", record["sku"].as_str().unwrap_or("?")) }))
                .collect();
            Answer::json(200, serde_json::json!({ "results": results }))
        }
        _ => Answer::json(
            400,
            serde_json::json!({ "error": "expected POST /batch with records" }),
        ),
    }
}

impl Driver {
    /// The number of the mapping row whose target is `target`.
    async fn mapping_row(&self, target: &str) -> usize {
        let inputs = self
            .client
            .find_all(Locator::Css("input[name^='mapping.'][name$='.target']"))
            .await
            .unwrap();
        for input in inputs {
            if input.prop("value").await.unwrap().as_deref() == Some(target) {
                let name = input.attr("name").await.unwrap().unwrap();
                return name.split('.').nth(1).unwrap().parse().unwrap();
            }
        }
        panic!("no mapping row for {target}");
    }

    /// The current value of the input named `name`.
    async fn value(&self, name: &str) -> String {
        self.client
            .find(Locator::Css(&format!("[name='{name}']")))
            .await
            .unwrap()
            .prop("value")
            .await
            .unwrap()
            .unwrap_or_default()
    }

    /// Waits for mapping row `row`'s live preview to satisfy `ok`; returns it.
    async fn wait_for_preview(&self, row: usize, ok: impl Fn(&str) -> bool) -> String {
        let mut text = String::new();
        for _ in 0..50 {
            if let Ok(cell) = self
                .client
                .find(Locator::Css(&format!("[data-preview-row='{row}']")))
                .await
            {
                text = cell.text().await.unwrap_or_default();
                if ok(&text) {
                    return text;
                }
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("row {row} never previewed as expected: {text:?}");
    }

    /// The text of the element with id `id` once it is on the page (polls swap it in).
    async fn counter(&self, id: &str) -> String {
        for _ in 0..50 {
            if let Ok(cell) = self.client.find(Locator::Id(id)).await
                && let Ok(text) = cell.text().await
            {
                return text.trim().to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("no #{id} on the page");
    }

    async fn select(&self, name: &str, value: &str) {
        self.client
            .find(Locator::Css(&format!("select[name='{name}']")))
            .await
            .unwrap()
            .select_by_value(value)
            .await
            .unwrap();
    }

    /// Connects the generic HTTP JSON API through its form; returns the connection id.
    async fn connect_http_json(
        &self,
        base: &str,
        fields: &[(&str, &str)],
        selects: &[(&str, &str)],
    ) -> String {
        self.client
            .goto(&format!("{base}/connections/new/http_json"))
            .await
            .unwrap();
        self.wait_for_path("/connections/new/http_json").await;
        for (name, value) in fields {
            self.fill(name, value).await;
        }
        for (name, value) in selects {
            self.select(name, value).await;
        }
        self.submit("form[action='/connections/new/http_json'] button[type='submit']")
            .await;
        for _ in 0..100 {
            let path = self.client.current_url().await.unwrap().path().to_owned();
            if let Some(id) = path.strip_prefix("/connections/")
                && !id.starts_with("new")
            {
                return id.to_owned();
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        panic!("not connected: {}", self.text().await);
    }
}

#[tokio::test]
async fn a_paged_api_is_described_in_the_forms_tested_and_synced_into_a_batch_endpoint() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let items = common::fake::Fake::start(items_api).await;
    let warehouse = common::fake::Fake::start(warehouse_api).await;
    let app = TestApp::spawn_with(&[("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32")]).await;
    app.owner("ada@example.com", "Acme").await;
    browser.sign_in(&app.base, "ada@example.com").await;

    // The source: records under $.data, the next page number in the answer.
    let source = browser
        .connect_http_json(
            &app.base,
            &[
                ("name", "Items API"),
                ("field_base_url", &items.base),
                ("field_list_path", "/items"),
                ("field_records_path", "$.data"),
                ("field_page_size_param", "per_page"),
                ("field_page_size", "5"),
                ("field_cursor_param", "page"),
                ("field_cursor_path", "$.next_page"),
                ("api_key", "items-key"),
            ],
            &[("field_paging_style", "cursor")],
        )
        .await;
    browser.wait_for_text("Items API").await;
    browser.submit("#test-request").await;
    browser.wait_for_text("5 record(s)").await;
    let next = browser
        .client
        .find(Locator::Id("sample-next"))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(next, "2", "the next page comes from next_page");
    assert!(
        browser.text().await.contains("\"next_page\": 2"),
        "the raw answer is shown"
    );
    browser.screenshot("generic-test-request").await;

    // The destination: batches of records under "records", its own key header.
    let destination = browser
        .connect_http_json(
            &app.base,
            &[
                ("name", "Warehouse"),
                ("field_base_url", &warehouse.base),
                ("field_key_name", "X-API-Key"),
                ("field_batch_path", "/batch"),
                ("field_batch_key", "records"),
                ("field_batch_results_path", "$.results"),
                ("api_key", "warehouse-key"),
            ],
            &[("field_key_style", "header")],
        )
        .await;

    browser
        .client
        .goto(&format!("{}/flows/new", app.base))
        .await
        .unwrap();
    browser.wait_for_path("/flows/new").await;
    browser.fill("name", "Items to the warehouse").await;
    browser.select("source", &format!("{source}:records")).await;
    browser
        .select("destination", &format!("{destination}:records"))
        .await;
    browser.select("write_mode", "create").await;
    // Nothing to look a lost create up by at this API.
    browser.fill("key_field", "").await;
    for (i, (target, expression)) in [("sku", "record.sku"), ("title", "record.name | upper")]
        .iter()
        .enumerate()
    {
        browser.fill(&format!("mapping.{i}.target"), target).await;
        browser
            .fill(&format!("mapping.{i}.expression"), expression)
            .await;
    }
    // Leave the other rows empty.
    for i in 2..20 {
        let Ok(input) = browser
            .client
            .find(Locator::Css(&format!("[name='mapping.{i}.target']")))
            .await
        else {
            break;
        };
        input.clear().await.unwrap();
        browser.fill(&format!("mapping.{i}.expression"), "").await;
    }
    browser.fill("record_key", "record.id").await;
    browser.submit("button[value='save']").await;
    browser.wait_for_text("Flow created.").await;
    browser.submit("form[action$='/run'] button").await;
    browser.wait_for_text("Run started.").await;
    browser.wait_for_text("Finished: succeeded").await;
    browser.screenshot("generic-flow-run").await;

    let batches: Vec<common::fake::Request> = warehouse
        .requests()
        .into_iter()
        .filter(|r| r.path == "/batch")
        .collect();
    let sent: Vec<serde_json::Value> = batches
        .iter()
        .flat_map(|r| r.json().unwrap()["records"].as_array().unwrap().clone())
        .collect();
    assert_eq!(sent.len(), 12, "every item, once");
    assert_eq!(
        sent[11],
        serde_json::json!({ "sku": "SKU-012", "title": "WIDGET 12" })
    );
    let pages = items
        .requests()
        .into_iter()
        .filter(|r| r.path == "/items")
        .count();
    assert!(pages >= 3, "paged by next_page: {pages} requests");
    browser.stop().await;
    app.stop().await;
}

#[tokio::test]
async fn pages_fit_a_laptop_and_a_phone_and_an_opened_payload_stays_in_its_table() {
    let Some(browser) = Driver::start().await else {
        return;
    };
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "6")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = common::flows::connect_both(&admin).await;
    app.wait_for_seed(6).await;
    // A contact with a long unbroken value, which the ERP refuses (no e-mail).
    let db = app.sandbox_db().await;
    let mut fields = sluice_sandbox::db::find(db, "crm.contacts", "con_000002")
        .await
        .unwrap()
        .unwrap()
        .fields();
    fields.insert("notes".into(), "x".repeat(3000).into());
    sluice_sandbox::db::save(
        db,
        "crm.contacts",
        "con_000002",
        &fields,
        sluice::store::now(),
    )
    .await
    .unwrap();
    let flow = common::flows::create_flow(
        &admin,
        &common::flows::contact_flow(
            &crm,
            &erp,
            "Contacts",
            "record.email if record.id != 'con_000002' else ''",
        ),
    )
    .await;
    common::flows::run_to_end(&admin, &flow).await;

    browser.sign_in(&app.base, "ada@example.com").await;

    let pages = [
        ("dashboard", "/dashboard".to_owned()),
        ("editor", format!("{flow}/edit")),
        ("connect", "/connections/new/sandbox_crm".to_owned()),
        ("dead-letters", format!("{flow}/dead-letters")),
    ];
    for (width, height) in [(1366, 900), (390, 844)] {
        browser.client.set_window_size(width, height).await.unwrap();
        for (name, path) in &pages {
            browser
                .client
                .goto(&format!("{}{path}", app.base))
                .await
                .unwrap();
            if *name == "dead-letters" {
                browser.submit("td details summary").await;
            }
            let overflow = browser
                .client
                .execute(
                    "const page = document.documentElement.scrollWidth - window.innerWidth; \
                     const tables = [...document.querySelectorAll('.table-wrap')].map(w => \
                       w.querySelector('table').getBoundingClientRect().width - w.clientWidth); \
                     return { page, tables, wide: window.innerWidth };",
                    vec![],
                )
                .await
                .unwrap();
            assert!(
                overflow["page"].as_f64().unwrap() <= 1.0,
                "{name} at {width} px scrolls sideways: {overflow}"
            );
            if *name == "dead-letters" {
                let widest = overflow["tables"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter_map(serde_json::Value::as_f64)
                    .fold(0.0, f64::max);
                // On a phone a table may scroll inside its frame; on a laptop an opened
                // payload must not widen it.
                if width > 1000 {
                    assert!(widest <= 1.0, "the payload widened the table: {overflow}");
                }
            }
            browser.screenshot(&format!("{name}-{width}")).await;
        }
    }
    browser.stop().await;
    app.stop().await;
}
