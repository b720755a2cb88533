//! Connections: the OAuth consent dance against the built-in sandbox for admins and end
//! customers, attacks that must fail without a token call, token health, disconnecting,
//! and tenant isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;

#[tokio::test]
async fn an_admin_connects_the_sandbox_crm_and_tests_it() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let catalogue = admin.get("/connections/catalogue?q=crm").await;
    assert!(catalogue.body.contains("Sandbox CRM") && catalogue.body.contains("HubSpot"));
    assert!(!catalogue.body.contains("Stripe"), "search filters");

    let page_path = admin.connect_sandbox("sandbox_crm").await;
    let page = admin.get(&page_path).await;
    assert!(page.body.contains("Sandbox CRM connected."));
    assert!(page.body.contains("Active"));
    assert!(page.body.contains("crm.read crm.write"));

    let action = page.action_containing("/test");
    assert_eq!(admin.post_form(&action, &[]).await.status, 303);
    let tested = admin.get(&page_path).await;
    assert!(
        tested
            .body
            .contains("Sandbox CRM answered HTTP 200 for Contacts"),
        "{}",
        tested.body
    );
    assert!(tested.body.contains("test_succeeded") && tested.body.contains("connected"));
    assert_eq!(app.sandbox_counter("token.authorization_code").await, 1);
    let list = admin.get("/connections").await;
    assert!(list.body.contains("Sandbox CRM") && list.body.contains("Active"));
    app.stop().await;
}

#[tokio::test]
async fn an_end_customer_connects_through_a_single_use_link() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
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
    assert_eq!(created.status, 200, "{}", created.body);
    let link = url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();

    let customer = app.client();
    let landing = customer.get(&link).await;
    assert_eq!(landing.status, 200);
    assert!(
        landing.body.contains("Acme")
            && landing.body.contains("Customers")
            && landing.body.contains("erp.read")
    );
    let start = customer.post_form(&link, &[]).await;
    assert_eq!(start.status, 200);
    let callback = customer
        .consent(&crate::common::continue_url(&start), true)
        .await;
    let outcome = customer.get(&callback).await;
    assert_eq!(outcome.status, 200, "{}", outcome.body);
    assert!(outcome.body.contains("is now connected to Acme"));

    let links = admin.get("/connect-links").await;
    assert!(links.body.contains("Globex") && links.body.contains(">connected<"));
    let connections = admin.get("/connections").await;
    assert!(
        connections.body.contains("Sandbox ERP — Globex") && connections.body.contains("Active")
    );

    let reused = app.client().get(&link).await;
    assert_eq!(reused.status, 410);
    assert!(reused.body.contains("already used"));
    app.stop().await;
}

#[tokio::test]
async fn denied_consent_and_revoked_links_get_clear_pages() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "sandbox_crm"),
                ("customer_ref", "Initech"),
                ("ttl_hours", ""),
            ],
        )
        .await;
    let link = url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();
    let customer = app.client();
    let start = customer.post_form(&link, &[]).await;
    let callback = customer
        .consent(&crate::common::continue_url(&start), false)
        .await;
    let outcome = customer.get(&callback).await;
    assert_eq!(outcome.status, 400);
    assert!(outcome.body.contains("Access was denied"));
    assert!(admin.get("/connect-links").await.body.contains(">denied<"));
    assert_eq!(app.sandbox_counter("token.authorization_code").await, 0);

    let second = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "sandbox_crm"),
                ("customer_ref", "Hooli"),
                ("ttl_hours", "1"),
            ],
        )
        .await;
    let second_link = url::Url::parse(&second.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();
    let page = admin.get("/connect-links").await;
    let revoke = page.action_containing("/revoke");
    assert_eq!(admin.post_form(&revoke, &[]).await.status, 303);
    let gone = app.client().get(&second_link).await;
    assert_eq!(gone.status, 410);
    assert!(gone.body.contains("withdrawn"));
    app.stop().await;
}

#[tokio::test]
async fn replayed_foreign_and_misrouted_callbacks_make_no_token_call() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;

    // A callback replayed after success.
    let start = admin.post_form("/connections/new/sandbox_crm", &[]).await;
    let callback = admin
        .consent(&crate::common::continue_url(&start), true)
        .await;
    assert_eq!(admin.get(&callback).await.status, 303);
    assert_eq!(app.sandbox_counter("token.authorization_code").await, 1);
    let replay = admin.get(&callback).await;
    assert_eq!(replay.status, 400);
    assert!(replay.body.contains("unknown, expired or was already used"));

    // A state from Ada's session delivered to Bob's browser (login CSRF / session fixation).
    let start = admin.post_form("/connections/new/sandbox_crm", &[]).await;
    let callback = admin
        .consent(&crate::common::continue_url(&start), true)
        .await;
    let bob = app.another_tenant("bob@example.com", "Bobco").await;
    assert_eq!(bob.get(&callback).await.status, 400);
    assert_eq!(
        admin.get(&callback).await.status,
        400,
        "the state is spent either way"
    );

    // A callback arriving on another provider's path.
    let start = admin.post_form("/connections/new/sandbox_crm", &[]).await;
    let callback = admin
        .consent(&crate::common::continue_url(&start), true)
        .await;
    let misrouted = callback.replace("/oauth/callback/sandbox_crm", "/oauth/callback/sandbox_erp");
    let res = admin.get(&misrouted).await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("another provider"));

    // A callback with a forged state.
    assert_eq!(
        admin
            .get("/oauth/callback/sandbox_crm?code=abc&state=forged")
            .await
            .status,
        400
    );
    assert_eq!(
        app.sandbox_counter("token.authorization_code").await,
        1,
        "no further token calls"
    );
    app.stop().await;
}

/// A local server standing in for a hostile authorization server: every request gets a
/// redirect; the target counts hits.
async fn redirecting_server() -> (String, std::sync::Arc<std::sync::atomic::AtomicUsize>) {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    let hits = std::sync::Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let target = format!("{base}/stolen");
    tokio::spawn(async move {
        while let Ok((mut socket, _)) = listener.accept().await {
            let mut buf = vec![0u8; 8192];
            let n = socket.read(&mut buf).await.unwrap_or(0);
            let head = String::from_utf8_lossy(&buf[..n]).to_string();
            if head.contains("/stolen") {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            let response = format!(
                "HTTP/1.1 302 Found\r\nLocation: {target}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
            );
            let _ = socket.write_all(response.as_bytes()).await;
        }
    });
    (base, hits)
}

#[tokio::test]
async fn token_endpoints_that_redirect_are_not_followed() {
    let (base, stolen) = redirecting_server().await;
    let app = TestApp::spawn_with(&[("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let saved = admin
        .post_form(
            "/settings/oauth-apps/oauth2_generic",
            &[
                ("client_id", "cid"),
                ("client_secret", "csecret"),
                ("field_authorize_url", &format!("{base}/authorize")),
                ("field_token_url", &format!("{base}/token")),
            ],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let start = admin
        .post_form(
            "/connections/new/oauth2_generic",
            &[("field_base_url", &format!("{base}/api"))],
        )
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let authorize = url::Url::parse(&crate::common::continue_url(&start)).unwrap();
    assert!(authorize.as_str().starts_with(&format!("{base}/authorize")));
    let state = authorize
        .query_pairs()
        .find(|(k, _)| k == "state")
        .unwrap()
        .1
        .into_owned();
    assert!(
        authorize
            .query_pairs()
            .any(|(k, v)| k == "code_challenge_method" && v == "S256")
    );
    let res = admin
        .get(&format!(
            "/oauth/callback/oauth2_generic?code=abc&state={state}"
        ))
        .await;
    assert_eq!(res.status, 303);
    let page = admin.get(res.location()).await;
    assert!(
        page.body.contains("did not complete the connection"),
        "{}",
        page.body
    );
    assert_eq!(
        stolen.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
    assert!(
        admin
            .get("/connections")
            .await
            .body
            .contains("No connections yet")
    );
    app.stop().await;
}

#[tokio::test]
async fn private_authorization_servers_are_refused_before_any_call() {
    let (base, _) = redirecting_server().await;
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    for (authorize, token) in [
        (
            format!("{base}/authorize"),
            "https://93.184.216.34/token".to_owned(),
        ),
        (
            "https://93.184.216.34/authorize".to_owned(),
            format!("{base}/token"),
        ),
        (
            "https://93.184.216.34/authorize".to_owned(),
            "http://169.254.169.254/latest/meta-data".to_owned(),
        ),
    ] {
        let saved = admin
            .post_form(
                "/settings/oauth-apps/oauth2_generic",
                &[
                    ("client_id", "cid"),
                    ("client_secret", "csecret"),
                    ("field_authorize_url", &authorize),
                    ("field_token_url", &token),
                ],
            )
            .await;
        assert_eq!(saved.status, 422, "refused: {authorize} {token}");
        assert!(saved.body.contains("non-public"), "{}", saved.body);
    }
    // Field values cannot reshape provider URLs either.
    let bad = admin
        .post_form("/connections/new/shopify", &[("field_shop", "evil.com/x?")])
        .await;
    assert!(bad.status == 422 || bad.location() == "/connections/new/shopify");
    app.stop().await;
}

#[tokio::test]
async fn a_rejected_token_is_refreshed_once_then_the_connection_needs_reauth() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "3")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page_path = admin.connect_sandbox("sandbox_crm").await;

    // Expire the stored access token: the next use refreshes first, exactly once.
    use sea_orm::ConnectionTrait;
    let db = app.app().store.db();
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE connections SET access_expires_at = $1",
        [(sluice::store::now() - chrono::Duration::minutes(5)).into()],
    ))
    .await
    .unwrap();
    let page = admin.get(&page_path).await;
    admin.post_form(&page.action_containing("/test"), &[]).await;
    assert_eq!(app.sandbox_counter("token.refresh_token").await, 1);
    assert!(admin.get(&page_path).await.body.contains("refreshed"));

    // The provider revokes everything: the API answers 401, one refresh fails with
    // invalid_grant, and the connection is marked for reconnecting.
    sluice_revoke_all(&app).await;
    admin.post_form(&page.action_containing("/test"), &[]).await;
    let after = admin.get(&page_path).await;
    assert!(after.body.contains("Reconnect required"), "{}", after.body);
    assert!(after.body.contains("reauth_required"));
    assert_eq!(
        app.sandbox_counter("token.refresh_token").await,
        2,
        "one refresh attempt after the 401"
    );

    // Reconnecting records recovery.
    let form = admin
        .post_form(&page.action_containing("/reconnect"), &[])
        .await;
    let reconnect_id = {
        let i = form.body.find("name=\"reconnect\" value=\"").unwrap() + 24;
        form.body[i..i + 36].to_owned()
    };
    let start = admin
        .post_form(
            "/connections/new/sandbox_crm",
            &[("reconnect", &reconnect_id)],
        )
        .await;
    let callback = admin
        .consent(&crate::common::continue_url(&start), true)
        .await;
    admin.get(&callback).await;
    let recovered = admin.get(&page_path).await;
    assert!(
        recovered.body.contains("recovered") && recovered.body.contains("Active"),
        "{}",
        recovered.body
    );
    app.stop().await;
}

/// Revokes every sandbox grant (as a provider-side "revoke all apps" would).
async fn sluice_revoke_all(app: &TestApp) {
    use sea_orm::ConnectionTrait;
    let db = app.sandbox_db().await;
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE sandbox_grants SET revoked = $1",
        [true.into()],
    ))
    .await
    .unwrap();
}

#[tokio::test]
async fn disconnecting_revokes_at_the_provider_and_deletes_credentials() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page_path = admin.connect_sandbox("sandbox_crm").await;
    let page = admin.get(&page_path).await;
    let res = admin
        .post_form(&page.action_containing("/disconnect"), &[])
        .await;
    assert_eq!(res.status, 303);
    let after = admin.get(&page_path).await;
    assert!(
        after
            .body
            .contains("Access revoked at Sandbox CRM and credentials deleted.")
    );
    assert!(after.body.contains("Disconnected"));
    assert_eq!(app.sandbox_counter("revoke").await, 1);
    let id: sluice::domain::ConnectionId = page_path
        .trim_start_matches("/connections/")
        .parse()
        .unwrap();
    let rows =
        <sluice::store::entities::connections::Entity as sea_orm::EntityTrait>::find_by_id(id)
            .one(app.app().store.db())
            .await
            .unwrap()
            .unwrap();
    assert!(rows.credentials_enc.is_none());
    assert!(
        admin
            .get("/settings/audit")
            .await
            .body
            .contains("connection.disconnected")
    );
    app.stop().await;
}

#[tokio::test]
async fn connections_and_links_of_another_workspace_are_invisible() {
    let app = TestApp::spawn().await;
    let alice = app.owner("alice@a.example", "Alpha").await;
    let bob = app.another_tenant("bob@b.example", "Beta").await;
    let bobs = bob.connect_sandbox("sandbox_crm").await;
    bob.post_form(
        "/connect-links",
        &[
            ("provider", "sandbox_crm"),
            ("customer_ref", "Beta customer"),
            ("ttl_hours", ""),
        ],
    )
    .await;
    let links = bob.get("/connect-links").await;
    let revoke = links.action_containing("/revoke");

    assert_eq!(alice.get(&bobs).await.status, 404);
    for action in ["/test", "/sample", "/choose", "/disconnect", "/reconnect"] {
        assert_eq!(
            alice
                .post_form(&format!("{bobs}{action}"), &[("choice", "x")])
                .await
                .status,
            404,
            "{action}"
        );
    }
    assert_eq!(alice.post_form(&revoke, &[]).await.status, 404);
    assert!(
        alice
            .get("/connections")
            .await
            .body
            .contains("No connections yet")
    );
    assert!(
        !alice
            .get("/connect-links")
            .await
            .body
            .contains("Beta customer")
    );
    bob.post_form(
        "/settings/oauth-apps/hubspot",
        &[("client_id", "beta-client-id"), ("client_secret", "s")],
    )
    .await;
    assert!(
        !alice
            .get("/settings/oauth-apps")
            .await
            .body
            .contains("beta-client-id")
    );
    assert!(bob.get(&bobs).await.body.contains("Active"));
    app.stop().await;
}

#[tokio::test]
async fn tokens_about_to_expire_are_refreshed_proactively_by_the_scheduler() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page = admin.connect_sandbox("sandbox_crm").await;
    use sea_orm::ConnectionTrait;
    let db = app.app().store.db();
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE connections SET access_expires_at = $1",
        [(sluice::store::now() + chrono::Duration::minutes(3)).into()],
    ))
    .await
    .unwrap();
    // The scheduler's scan (run every minute by the lease holder) enqueues the refresh;
    // a worker runs it.
    assert_eq!(
        sluice::jobs::connections::enqueue_due_refreshes(app.app())
            .await
            .unwrap(),
        1
    );
    // The provider sees the refresh request before the worker has stored the new token:
    // wait for the connection's "refreshed" event, which is written with the token.
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(20);
    loop {
        let body = admin.get(&page).await.body;
        if body.contains("refreshed") {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "no proactive refresh: {body}"
        );
        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    }
    // The fresh token is good for an hour: the next scan finds nothing due.
    assert_eq!(
        sluice::jobs::connections::enqueue_due_refreshes(app.app())
            .await
            .unwrap(),
        0
    );
    assert_eq!(app.sandbox_counter("token.refresh_token").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn a_link_callback_only_completes_in_the_browser_that_started_it_and_only_once() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "sandbox_crm"),
                ("customer_ref", "Globex"),
                ("ttl_hours", "1"),
            ],
        )
        .await;
    let link = url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();

    // An attacker starts the flow with the link and lures a victim into approving: the
    // callback lands in the victim's browser, which lacks the starter's cookie.
    let attacker = app.client();
    let start = attacker.post_form(&link, &[]).await;
    let callback = attacker
        .consent(&crate::common::continue_url(&start), true)
        .await;
    let victim = app.client();
    assert_eq!(victim.get(&callback).await.status, 400);
    assert_eq!(app.sandbox_counter("token.authorization_code").await, 0);

    // Two authorizations raced on one link: exactly one connection.
    let customer = app.client();
    let first = customer.post_form(&link, &[]).await;
    let second = customer.post_form(&link, &[]).await;
    let cb1 = customer
        .consent(&crate::common::continue_url(&first), true)
        .await;
    let cb2 = customer
        .consent(&crate::common::continue_url(&second), true)
        .await;
    let (a, b) = tokio::join!(customer.get(&cb1), customer.get(&cb2));
    let mut statuses = vec![a.status, b.status];
    statuses.sort();
    assert_eq!(statuses, vec![200, 410], "{} / {}", a.body, b.body);
    let list = admin.get("/connections").await;
    assert_eq!(list.body.matches("Sandbox CRM — Globex").count(), 1);
    app.stop().await;
}

#[tokio::test]
async fn reconnecting_keeps_a_connection_on_its_provider_and_viewers_cannot_test() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page = admin.connect_sandbox("sandbox_crm").await;
    let id = page.trim_start_matches("/connections/").to_owned();
    let res = admin
        .post_form("/connections/new/sandbox_erp", &[("reconnect", &id)])
        .await;
    assert_eq!(res.status, 303);
    assert!(
        admin
            .get(res.location())
            .await
            .body
            .contains("only be reconnected to its own provider")
    );

    let viewer_link = admin.invite("vera@example.com", "viewer").await;
    let viewer = app.client();
    viewer
        .post_form(
            &viewer_link,
            &[
                ("name", "Vera"),
                ("password", crate::common::PASSWORD),
                ("password_confirm", crate::common::PASSWORD),
            ],
        )
        .await;
    for action in ["/test", "/sample"] {
        assert_eq!(
            viewer
                .post_form(&format!("{page}{action}"), &[])
                .await
                .status,
            403,
            "{action}"
        );
    }
    assert_eq!(
        app.sandbox_counter("api.reads").await,
        0,
        "no call was made for the viewer"
    );
    app.stop().await;
}

#[tokio::test]
async fn generic_oauth_endpoints_belong_to_the_oauth_app_not_to_the_connecting_party() {
    let app = TestApp::spawn_with(&[("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let form = admin.get("/connections/new/oauth2_generic").await;
    assert!(
        !form.body.contains("field_token_url"),
        "not asked when connecting"
    );
    let app_form = admin.get("/settings/oauth-apps/oauth2_generic").await;
    assert!(
        app_form.body.contains("field_token_url"),
        "asked in the OAuth app"
    );
    admin
        .post_form(
            "/settings/oauth-apps/oauth2_generic",
            &[
                ("client_id", "cid"),
                ("client_secret", "s"),
                ("field_authorize_url", "http://127.0.0.1:9/authorize"),
                ("field_token_url", "http://127.0.0.1:9/token"),
            ],
        )
        .await;
    let created = admin
        .post_form(
            "/connect-links",
            &[
                ("provider", "oauth2_generic"),
                ("customer_ref", "X"),
                ("ttl_hours", "1"),
            ],
        )
        .await;
    let link = url::Url::parse(&created.code_by_id("connect-link"))
        .unwrap()
        .path()
        .to_owned();
    let customer = app.client();
    assert!(!customer.get(&link).await.body.contains("field_token_url"));
    // A customer posting their own endpoints changes nothing: the app's are used.
    let start = customer
        .post_form(
            &link,
            &[
                ("field_base_url", "https://93.184.216.34/api"),
                ("field_authorize_url", "https://93.184.216.34/a"),
                ("field_token_url", "https://93.184.216.34/t"),
            ],
        )
        .await;
    assert!(crate::common::continue_url(&start).starts_with("http://127.0.0.1:9/authorize"));
    app.stop().await;
}

#[tokio::test]
async fn a_stored_status_nobody_knows_is_an_error_not_another_status() {
    use sea_orm::ConnectionTrait;
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let page_path = admin.connect_sandbox("sandbox_crm").await;
    app.app()
        .store
        .db()
        .execute_unprepared("UPDATE connections SET status = 'half_connected'")
        .await
        .unwrap();

    let page = admin.get(&page_path).await;
    assert_eq!(page.status, 500, "{}", page.body);
    for status in ["Active", "Disconnected", "Reconnect required"] {
        assert!(
            !page.body.contains(status),
            "read as {status}: {}",
            page.body
        );
    }
    let token = admin.create_api_token("ci", "viewer").await;
    let (status, _) = admin.api(&token, "/api/v1/connections").await;
    assert_eq!(status, 500);
}

#[tokio::test]
async fn an_incomplete_api_description_is_refused_with_what_is_missing() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let refused = admin
        .post_form(
            "/connections/new/http_json",
            &[
                ("name", "Half described"),
                ("field_base_url", "https://api.example.com"),
                ("field_paging_style", "cursor"),
                ("field_cursor_path", "$.next"),
                ("field_records_path", "not a path"),
                ("api_key", "k"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("Enter a JSONPath"),
        "{}",
        refused.body
    );
    let refused = admin
        .post_form(
            "/connections/new/http_json",
            &[
                ("name", "Half described"),
                ("field_base_url", "https://api.example.com"),
                ("field_paging_style", "cursor"),
                ("field_cursor_path", "$.next"),
                ("api_key", "k"),
            ],
        )
        .await;
    assert_eq!(refused.status, 422);
    assert!(
        refused.body.contains("The API description is incomplete")
            && refused.body.contains("cursor_param"),
        "{}",
        refused.body
    );
    assert!(
        admin
            .get("/connections")
            .await
            .body
            .contains("No connections yet")
    );
    app.stop().await;
}
