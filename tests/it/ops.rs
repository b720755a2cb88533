//! Operations and the web shell: health, readiness, metrics, headers, error pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let client = app.client();
    assert_eq!(client.get("/healthz").await.status, 200);
    let ready = client.get("/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    client.get("/login").await;
    let metrics = app.metrics().await;
    assert!(metrics.contains("sluice_http_requests_total"), "{metrics}");
    assert!(metrics.contains("route=\"/login\""));
    app.stop().await;
}

/// `/metrics` on the main listener with this `Authorization` header (if any).
async fn scrape(base: &str, authorization: Option<&str>) -> (u16, String) {
    let mut req = reqwest::Client::new().get(format!("{base}/metrics"));
    if let Some(value) = authorization {
        req = req.header("authorization", value);
    }
    let res = req.send().await.unwrap();
    (res.status().as_u16(), res.text().await.unwrap())
}

#[tokio::test]
async fn metrics_answer_only_with_the_scrape_token() {
    let app = TestApp::spawn().await;
    app.owner("ada@example.com", "Acme").await;
    let wrong = format!("Bearer {}x", crate::common::METRICS_TOKEN);
    let basic = format!("Basic {}", crate::common::METRICS_TOKEN);
    for authorization in [
        None,
        Some("Bearer "),
        Some(wrong.as_str()),
        Some(basic.as_str()),
    ] {
        let (status, body) = scrape(&app.base, authorization).await;
        assert_eq!(status, 401, "{authorization:?}");
        assert!(!body.contains("sluice_"), "{authorization:?}: {body}");
    }
    let right = format!("Bearer {}", crate::common::METRICS_TOKEN);
    let (status, body) = scrape(&app.base, Some(&right)).await;
    assert_eq!(status, 200);
    assert!(body.contains("sluice_http_requests_total"), "{body}");
    app.stop().await;
}

#[tokio::test]
async fn without_a_scrape_token_metrics_are_served_only_on_their_own_listener() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_METRICS_TOKEN", ""),
        ("SLUICE_METRICS_BIND", "127.0.0.1:0"),
    ])
    .await;
    app.client().get("/login").await;
    let right = format!("Bearer {}", crate::common::METRICS_TOKEN);
    for authorization in [None, Some(right.as_str())] {
        let (status, body) = scrape(&app.base, authorization).await;
        assert_eq!(status, 404, "{authorization:?}");
        assert!(!body.contains("sluice_"), "{body}");
    }
    let private = format!("http://{}", app.running.metrics_addr.unwrap());
    let (status, body) = scrape(&private, None).await;
    assert_eq!(status, 200);
    assert!(body.contains("route=\"/login\""), "{body}");
    // That listener serves nothing else.
    for path in ["/login", "/healthz", "/api/v1/me", "/sandbox/stats"] {
        let res = reqwest::get(format!("{private}{path}")).await.unwrap();
        assert_eq!(res.status().as_u16(), 404, "{path}");
    }
    app.stop().await;
}

#[tokio::test]
async fn every_response_carries_security_headers() {
    let app = TestApp::spawn().await;
    for path in ["/login", "/static/css/app.css", "/nowhere"] {
        let page = app.client().get(path).await;
        let csp = page.headers["content-security-policy"].to_str().unwrap();
        assert!(
            csp.contains("script-src 'self'") && !csp.contains("unsafe-inline"),
            "{path}: {csp}"
        );
        assert!(csp.contains("frame-ancestors 'none'"));
        assert_eq!(page.headers["x-content-type-options"], "nosniff");
        assert_eq!(page.headers["referrer-policy"], "same-origin");
    }
    app.stop().await;
}

#[tokio::test]
async fn errors_show_a_generic_page() {
    let app = TestApp::spawn().await;
    let missing = app.client().get("/no/such/page").await;
    assert_eq!(missing.status, 404);
    assert!(missing.body.contains("does not exist"));
    assert!(missing.body.contains("Back to Sluice"));
    let page = app.client().get("/login").await;
    assert!(!page.body.contains("<script>"), "no inline script");
    assert!(page.body.contains("/static/js/app.js"));
    app.stop().await;
}

#[tokio::test]
async fn unreadable_page_requests_answer_with_the_error_page() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let flow = uuid::Uuid::now_v7();
    let page = owner
        .get(&format!("/flows/{flow}/dead-letters?page=lots"))
        .await;
    assert_eq!(page.status, 400);
    assert!(
        page.headers["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/html")
    );
    assert!(page.body.contains("Back to Sluice"), "{}", page.body);

    // A 10 MB form is refused as too large, not as malformed.
    let huge = "x".repeat(10 * 1024 * 1024);
    let page = owner
        .post_form(
            "/settings/workspace",
            &[("name", huge.as_str()), ("time_zone", "UTC")],
        )
        .await;
    assert_eq!(page.status, 413);
    assert!(page.body.contains("too large"), "{}", page.body);
    assert!(page.body.contains("Back to Sluice"), "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn every_log_line_of_a_run_names_its_tenant_flow_and_run() {
    use crate::common::flows::{connect_both, contact_flow, create_flow, wait_for_run};
    let key = sluice::config::MasterKey::generate_base64();
    let app = TestApp::spawn_web_only(&[
        ("SLUICE_MASTER_KEY", &key),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "30"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(30).await;
    let fields = contact_flow(&crm, &erp, "Logged", "record.email");
    let flow = create_flow(&admin, &fields).await;
    let (mut worker, log) =
        app.spawn_worker_logged(&key, &[("SLUICE_OUTBOUND_ALLOW", "127.0.0.0/8")]);
    let run = admin.post_form(&format!("{flow}/run"), &[]).await;
    let run = run.location().to_owned();
    let done = wait_for_run(&admin, &run).await;
    assert!(done.body.contains("Succeeded"), "{}", done.body);
    // The run's end is stored before the worker logs "Finished": wait for the line.
    for _ in 0..100 {
        if log
            .lock()
            .unwrap()
            .iter()
            .any(|line| line.contains("Finished"))
        {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    worker.kill().unwrap();
    worker.wait().unwrap();

    let last = |path: &str| path.rsplit('/').next().unwrap().to_owned();
    let (flow_id, run_id) = (last(&flow), last(&run));
    let lines: Vec<serde_json::Value> = log
        .lock()
        .unwrap()
        .iter()
        .filter_map(|line| serde_json::from_str(line).ok())
        .collect();
    let of_run: Vec<&serde_json::Value> = lines
        .iter()
        .filter(|line| line["span"]["name"] == "run")
        .collect();
    let said = |what: &str| {
        of_run
            .iter()
            .any(|line| line["message"].as_str().is_some_and(|m| m.contains(what)))
    };
    assert!(
        said("Started with version") && said("Finished"),
        "{of_run:#?}"
    );
    for line in &of_run {
        let span = &line["span"];
        assert_eq!(span["run"], run_id.as_str(), "{line}");
        assert_eq!(span["flow"], flow_id.as_str(), "{line}");
        // The job around it names the queue and the same tenant.
        let job = &line["spans"][0];
        assert_eq!(job["name"], "job", "{line}");
        assert_eq!(job["queue"], "flow_runs", "{line}");
        assert!(
            span["tenant"].as_str().is_some_and(|t| !t.is_empty())
                && job["tenant"] == span["tenant"],
            "{line}"
        );
    }
    app.stop().await;
}
