//! What an end customer sees: the sending workspace's name and logo (uploaded in its
//! settings) instead of Sluice's, and for a link that no longer works, what happened and
//! whom to ask, never a bare "410 Gone" or Sluice's sign-in.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{Client, TestApp};
use base64::Engine;
use sea_orm::{ConnectionTrait, Statement};

/// A PNG's signature followed by some bytes: enough for Sluice to tell its type.
fn png(len: usize) -> String {
    let mut bytes = b"\x89PNG\r\n\x1a\n".to_vec();
    bytes.resize(len, 7);
    format!(
        "data:image/png;base64,{}",
        base64::engine::general_purpose::STANDARD.encode(bytes)
    )
}

async fn new_link(admin: &Client, customer: &str) -> String {
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "sandbox_crm"),
                ("customer_ref", customer),
                ("ttl_hours", "2"),
            ],
        )
        .await;
    assert_eq!(created.status, 200, "{}", created.body);
    url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned()
}

fn assert_no_sluice_chrome(body: &str) {
    assert!(
        !body.contains("/static/img/logo.svg"),
        "Sluice's logo: {body}"
    );
    assert!(
        !body.contains("href=\"/login\""),
        "Sluice's sign-in: {body}"
    );
}

#[tokio::test]
async fn connect_pages_show_the_workspaces_logo_uploaded_in_its_settings() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let none = admin.get("/settings/workspace").await;
    assert!(none.text("#no-logo").is_some());

    for (logo, why) in [
        (
            "data:image/svg+xml;base64,PHN2ZyBvbmxvYWQ9YWxlcnQoMSk+",
            "Use a PNG, JPEG or WebP image.",
        ),
        ("not an image", "Choose an image file (PNG, JPEG or WebP)."),
        (
            png(150 * 1024).as_str(),
            "The image is 150 KB; use one of at most 100 KB.",
        ),
    ] {
        let refused = admin
            .post_form("/settings/workspace/logo", &[("logo", logo)])
            .await;
        assert_eq!(refused.status, 422, "{why}");
        assert!(refused.body.contains(why), "{why}: {}", refused.body);
    }
    let logo = png(2048);
    let saved = admin
        .post_form("/settings/workspace/logo", &[("logo", logo.as_str())])
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let settings = admin.get("/settings/workspace").await;
    assert_eq!(settings.attr("#current-logo", "src"), Some(logo.clone()));

    let link = new_link(&admin, "Globex").await;
    let landing = app.client().get(&link).await;
    assert_eq!(landing.status, 200);
    assert_eq!(landing.attr("#brand img", "src"), Some(logo.clone()));
    assert!(landing.text("#brand").unwrap().contains("Acme"));
    assert_no_sluice_chrome(&landing.body);

    let removed = admin
        .post_form("/settings/workspace/logo/remove", &[])
        .await;
    assert_eq!(removed.status, 303);
    let plain = app.client().get(&link).await;
    assert!(plain.attr("#brand img", "src").is_none());
    assert_eq!(plain.text("#brand .brand-initial").as_deref(), Some("A"));
    let audit = admin.get("/settings/audit").await.body;
    assert!(audit.contains("workspace.logo_changed") && audit.contains("workspace.logo_removed"));

    // Another workspace's members cannot change it.
    let eve = app.another_tenant("eve@example.com", "Evil").await;
    eve.post_form("/settings/workspace/logo", &[("logo", png(100).as_str())])
        .await;
    assert!(
        app.client()
            .get(&link)
            .await
            .attr("#brand img", "src")
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn used_withdrawn_expired_and_unknown_links_say_what_happened_and_whom_to_ask() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;

    let used = new_link(&admin, "Globex").await;
    let customer = app.client();
    let start = customer.post_form(&used, &[]).await;
    let callback = customer
        .consent(&crate::common::continue_url(&start), true)
        .await;
    assert_eq!(customer.get(&callback).await.status, 200);

    let withdrawn = new_link(&admin, "Initech").await;
    let page = admin.get("/connect-links").await;
    assert_eq!(
        admin
            .post_form(&page.action_containing("/revoke"), &[])
            .await
            .status,
        303
    );

    let expired = new_link(&admin, "Hooli").await;
    app.app()
        .store
        .db()
        .execute_raw(Statement::from_string(
            app.app().store.db().get_database_backend(),
            "UPDATE connect_links SET expires_at = created_at WHERE customer_ref = 'Hooli'",
        ))
        .await
        .unwrap();

    for (link, title, words) in [
        (
            used.as_str(),
            "This link was already used",
            "It connected a Sandbox CRM account on ",
        ),
        (
            withdrawn.as_str(),
            "This link was withdrawn",
            "Acme withdrew this link, so it no longer connects anything.",
        ),
        (
            expired.as_str(),
            "This link has expired",
            "It could be used until ",
        ),
        (
            "/connect/not-a-link",
            "This link does not work",
            "ask the company that sent it for a new one",
        ),
    ] {
        for page in [
            app.client().get(link).await,
            app.client().post_form(link, &[]).await,
        ] {
            assert_eq!(page.status, 410, "{link}");
            assert!(page.body.contains(title), "{link}: {}", page.body);
            let reason = page.text("#closed-reason").unwrap();
            assert!(reason.contains(words), "{link}: {reason}");
            if !link.ends_with("not-a-link") {
                assert!(reason.contains("ask Acme for a new link"), "{reason}");
                assert!(page.text("#brand").unwrap().contains("Acme"));
            }
            assert_no_sluice_chrome(&page.body);
            assert!(!page.body.contains("Gone"), "a bare status: {}", page.body);
        }
    }
    app.stop().await;
}
