//! Key rotation: a new master key with the old one as "previous" keeps everything readable,
//! `rotate-key` re-encrypts, after which the old key can go.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use sluice::config::{MasterKey, Settings};
use sluice::startup::{self, Roles};

async fn server(app: &TestApp, key: &str, previous: &str) -> startup::Running {
    let dir = tempfile::tempdir().unwrap();
    let settings = Settings::from_vars(vec![
        (
            "SLUICE_DATABASE_URL".to_owned(),
            app.database_url().to_owned(),
        ),
        (
            "SLUICE_DATA_DIR".to_owned(),
            dir.path().display().to_string(),
        ),
        ("SLUICE_BIND".to_owned(), "127.0.0.1:0".to_owned()),
        ("SLUICE_MASTER_KEY".to_owned(), key.to_owned()),
        (
            "SLUICE_PREVIOUS_MASTER_KEYS".to_owned(),
            previous.to_owned(),
        ),
        ("SLUICE_SANDBOX_SEED_CONTACTS".to_owned(), "0".to_owned()),
        ("SLUICE_LOG".to_owned(), "warn".to_owned()),
    ])
    .unwrap();
    startup::start(
        settings,
        Roles {
            web: true,
            workers: false,
            scheduler: false,
        },
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn rotating_the_master_key_reencrypts_without_downtime() {
    let old = MasterKey::generate_base64();
    let new = MasterKey::generate_base64();
    let app = TestApp::spawn_with(&[
        ("SLUICE_MASTER_KEY", &old),
        ("SLUICE_SANDBOX_SEED_CONTACTS", "2"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page = admin.connect_sandbox("sandbox_crm").await;
    admin
        .post_form(
            "/settings/oauth-apps/hubspot",
            &[("client_id", "hub"), ("client_secret", "hub-secret")],
        )
        .await;

    // Only the new key: old secrets cannot be read.
    let only_new = server(&app, &new, "").await;
    let browser = admin.with_base(&format!("http://{}", only_new.addr));
    browser.post_form(&format!("{page}/test"), &[]).await;
    assert!(browser.get(&page).await.body.contains("unknown key"));
    only_new.stop().await;

    // New key plus the old one as previous: everything works, then rotate.
    let both = server(&app, &new, &old).await;
    let browser = admin.with_base(&format!("http://{}", both.addr));
    browser.post_form(&format!("{page}/test"), &[]).await;
    let body = browser.get(&page).await.body;
    assert!(
        body.contains("answered HTTP 200"),
        "{}",
        body.split("flash-stack").nth(1).unwrap_or(&body)
    );
    let report = sluice::services::keys::rotate(&both.app).await.unwrap();
    assert!(report.rotated >= 2, "{report:?}");
    assert_eq!(
        sluice::services::keys::rotate(&both.app)
            .await
            .unwrap()
            .rotated,
        0,
        "idempotent"
    );
    both.stop().await;

    // The old key is no longer needed.
    let after = server(&app, &new, "").await;
    let browser = admin.with_base(&format!("http://{}", after.addr));
    browser.post_form(&format!("{page}/test"), &[]).await;
    let body = browser.get(&page).await.body;
    assert!(body.matches("answered HTTP 200").count() >= 2, "{body}");
    after.stop().await;
    app.stop().await;
}
