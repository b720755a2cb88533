//! Operations and the web shell: health, readiness, metrics, headers, error pages.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::TestApp;

#[tokio::test]
async fn health_readiness_and_metrics_answer() {
    let app = TestApp::spawn().await;
    let client = app.client();
    assert_eq!(client.get("/healthz").await.status, 200);
    let ready = client.get("/readyz").await;
    assert_eq!((ready.status, ready.body.as_str()), (200, "ready"));
    client.get("/login").await;
    let metrics = client.get("/metrics").await;
    assert_eq!(metrics.status, 200);
    assert!(
        metrics.body.contains("sluice_http_requests_total"),
        "{}",
        metrics.body
    );
    assert!(metrics.body.contains("route=\"/login\""));
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
