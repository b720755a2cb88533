//! The consent dance against an OAuth server Sluice did not write (npm
//! `oauth2-mock-server`, started from tests/oauth-mock), for a tenant admin and for an
//! end customer through a connect link. Runs when `tests/oauth-mock/node_modules` exists;
//! required (fails instead of skipping) with `SLUICE_EXTERNAL_OAUTH_TESTS=1`, as in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use serde_json::{Value, json};
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

struct MockServer {
    child: Child,
    base: String,
}

impl MockServer {
    fn start() -> Option<MockServer> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/oauth-mock");
        let required = std::env::var("SLUICE_EXTERNAL_OAUTH_TESTS").is_ok_and(|v| v == "1");
        if !dir.join("node_modules/oauth2-mock-server").exists() {
            assert!(!required, "run `npm ci --prefix tests/oauth-mock` first");
            eprintln!(
                "skipping: oauth2-mock-server is not installed (npm ci --prefix tests/oauth-mock)"
            );
            return None;
        }
        let mut child = Command::new("node")
            .arg(dir.join("server.js"))
            .arg("0")
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("node");
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let ready = lines.next().unwrap().unwrap();
        let base = ready.strip_prefix("READY ").expect("READY line").to_owned();
        Some(MockServer { child, base })
    }

    async fn control(&self, body: Value) {
        reqwest::Client::new()
            .post(format!("{}/__control", self.base))
            .json(&body)
            .send()
            .await
            .unwrap();
    }

    async fn log(&self) -> Vec<Value> {
        let v: Value = reqwest::Client::new()
            .get(format!("{}/__control", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        v["log"].as_array().unwrap().clone()
    }
}

impl Drop for MockServer {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Follows the authorization server's immediate redirect back to Sluice's callback.
async fn through_mock(authorize_url: &str) -> String {
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let res = http.get(authorize_url).send().await.unwrap();
    assert_eq!(res.status().as_u16(), 302);
    let back = url::Url::parse(res.headers()["location"].to_str().unwrap()).unwrap();
    format!("{}?{}", back.path(), back.query().unwrap_or_default())
}

fn fields(mock: &MockServer) -> Vec<(String, String)> {
    vec![
        (
            "field_authorize_url".into(),
            format!("{}/authorize", mock.base),
        ),
        ("field_token_url".into(), format!("{}/token", mock.base)),
        ("field_base_url".into(), mock.base.clone()),
    ]
}

fn borrow(v: &[(String, String)]) -> Vec<(&str, &str)> {
    v.iter().map(|(a, b)| (a.as_str(), b.as_str())).collect()
}

#[tokio::test]
async fn admins_and_end_customers_connect_through_a_third_party_oauth_server() {
    let _ = rustls::crypto::ring::default_provider().install_default();
    let Some(mock) = MockServer::start() else {
        return;
    };
    mock.control(json!({ "client_secret": "mock-secret" }))
        .await;
    let app = TestApp::spawn_with(&[("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let app_form = [
        ("client_id".to_owned(), "sluice-client".to_owned()),
        ("client_secret".to_owned(), "mock-secret".to_owned()),
        (
            "field_authorize_url".to_owned(),
            format!("{}/authorize", mock.base),
        ),
        ("field_token_url".to_owned(), format!("{}/token", mock.base)),
    ];
    let saved = admin
        .post_form("/settings/oauth-apps/oauth2_generic", &borrow(&app_form))
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);

    // Tenant admin.
    let start = admin
        .post_form("/connections/new/oauth2_generic", &borrow(&fields(&mock)))
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    assert!(crate::common::continue_url(&start).starts_with(&mock.base));
    let callback = through_mock(&crate::common::continue_url(&start)).await;
    let done = admin.get(&callback).await;
    assert_eq!(done.status, 303);
    let page = admin.get(done.location()).await;
    assert!(
        page.body.contains("Custom OAuth 2.0 API connected."),
        "{}",
        page.body
    );
    let token_call = mock
        .log()
        .await
        .into_iter()
        .find(|e| e["endpoint"] == "token")
        .unwrap();
    assert_eq!(token_call["body"]["grant_type"], "authorization_code");
    assert!(
        token_call["body"]["code_verifier"].as_str().unwrap().len() >= 43,
        "PKCE verifier sent"
    );
    assert!(
        token_call["authorization"]
            .as_str()
            .unwrap()
            .starts_with("Basic "),
        "client_secret_basic"
    );

    // An expired token is refreshed at the third-party server.
    use sea_orm::ConnectionTrait;
    let db = app.app().store.db();
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE connections SET access_expires_at = $1",
        [(sluice::store::now() - chrono::Duration::minutes(1)).into()],
    ))
    .await
    .unwrap();
    admin
        .post_form(&format!("{}/test", done.location()), &[])
        .await;
    let refreshes = mock
        .log()
        .await
        .into_iter()
        .filter(|e| e["body"]["grant_type"] == "refresh_token")
        .count();
    assert_eq!(refreshes, 1);
    assert!(admin.get(done.location()).await.body.contains("refreshed"));

    // End customer through a connect link.
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "oauth2_generic"),
                ("customer_ref", "Umbrella"),
                ("ttl_hours", "1"),
            ],
        )
        .await;
    let link = url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();
    let customer = app.client();
    assert!(customer.get(&link).await.body.contains("Acme"));
    let start = customer.post_form(&link, &borrow(&fields(&mock))).await;
    assert_eq!(start.status, 200, "{}", start.body);
    let callback = through_mock(&crate::common::continue_url(&start)).await;
    let outcome = customer.get(&callback).await;
    assert_eq!(outcome.status, 200, "{}", outcome.body);
    assert!(outcome.body.contains("is now connected to Acme"));
    assert!(
        admin
            .get("/connect-links")
            .await
            .body
            .contains(">connected<")
    );

    // Denied consent at the third-party server.
    mock.control(json!({ "authorize_error": "access_denied" }))
        .await;
    let start = admin
        .post_form("/connections/new/oauth2_generic", &borrow(&fields(&mock)))
        .await;
    let callback = through_mock(&crate::common::continue_url(&start)).await;
    let denied = admin.get(&callback).await;
    let page = admin.get(denied.location()).await;
    assert!(page.body.contains("Access was denied"));
    app.stop().await;
}
