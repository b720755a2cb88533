//! Accounts: first-run setup, sign-in and sign-out, sessions, throttling, passwords, CSRF.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{PASSWORD, TestApp};

#[tokio::test]
async fn the_setup_link_creates_the_first_owner_once() {
    let app = TestApp::spawn().await;
    let path = app.setup_path().await;
    let browser = app.client();

    let form = browser.get(&path).await;
    assert_eq!(form.status, 200);
    assert!(form.body.contains("Set up Sluice"));

    let invalid = browser
        .post_form(
            &path,
            &[
                ("name", ""),
                ("email", "nope"),
                ("password", "short"),
                ("password_confirm", "short"),
                ("workspace", "Acme"),
            ],
        )
        .await;
    assert_eq!(invalid.status, 422);
    assert!(invalid.body.contains("Enter a name."));
    assert!(
        invalid
            .body
            .contains("Enter an e-mail address like name@example.com.")
    );
    assert!(invalid.body.contains("Use at least 10 characters"));
    assert!(
        invalid.body.contains("value=\"Acme\""),
        "entered values are kept"
    );

    let done = browser
        .post_form(
            &path,
            &[
                ("name", "Ada"),
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("workspace", "Acme"),
            ],
        )
        .await;
    assert_eq!(done.status, 303);
    assert_eq!(done.location(), "/dashboard");
    let dashboard = browser.get("/dashboard").await;
    assert_eq!(dashboard.status, 200);
    assert!(
        dashboard
            .body
            .contains("Welcome to Sluice! Your workspace is ready.")
    );
    assert!(dashboard.body.contains("Acme"));

    let again = app.client().get(&path).await;
    assert_eq!(again.status, 410, "the link works once");
    assert!(
        sluice::services::accounts::setup_link(app.app())
            .await
            .unwrap()
            .is_none()
    );
    app.stop().await;
}

#[tokio::test]
async fn members_sign_in_and_out_and_sessions_rotate() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    owner.post_form("/logout", &[]).await;
    assert_eq!(owner.get("/dashboard").await.status, 303, "signed out");

    let browser = app.client();
    assert_eq!(browser.get("/dashboard").await.location(), "/login");
    let wrong = browser
        .post_form(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", "wrong password!"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(
        wrong
            .body
            .contains("The e-mail or password is not correct.")
    );
    let unknown = browser
        .post_form(
            "/login",
            &[("email", "nobody@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert!(
        unknown
            .body
            .contains("The e-mail or password is not correct."),
        "no account enumeration"
    );

    let ok = browser
        .post_form(
            "/login",
            &[
                ("email", "ADA@example.com "),
                ("password", PASSWORD),
                ("next", "/settings/members"),
            ],
        )
        .await;
    assert_eq!(ok.status, 303);
    assert_eq!(ok.location(), "/settings/members");
    let cookie = ok
        .headers
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.starts_with("sluice_session="))
        .unwrap();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Lax"),
        "{cookie}"
    );

    let open_redirect = browser
        .post_form(
            "/login",
            &[
                ("email", "ada@example.com"),
                ("password", PASSWORD),
                ("next", "//evil.example"),
            ],
        )
        .await;
    assert_eq!(open_redirect.location(), "/dashboard");
    app.stop().await;
}

#[tokio::test]
async fn repeated_failures_are_throttled_without_locking_out_the_known_browser() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    // The owner's browser holds a device cookie from setup; sign in once more to be sure.
    owner.post_form("/logout", &[]).await;
    owner.sign_in("ada@example.com", PASSWORD).await;

    let attacker = app.client();
    for _ in 0..5 {
        let page = attacker
            .post_form(
                "/login",
                &[
                    ("email", "ada@example.com"),
                    ("password", "guess guess guess"),
                ],
            )
            .await;
        assert_eq!(page.status, 422);
    }
    let blocked = attacker
        .post_form(
            "/login",
            &[("email", "ada@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        blocked.status, 429,
        "even the right password is refused while throttled"
    );
    assert!(blocked.headers.get("retry-after").is_some());
    assert!(blocked.body.contains("Too many attempts"));

    // Trip the per-account limit too (20 failures from several addresses is the same here:
    // all tests use 127.0.0.1, so the attacker's pair/IP block already applies).
    let (_, _, account_key) = sluice::auth::throttle::keys("ada@example.com", "127.0.0.1");
    for _ in 0..20 {
        sluice::auth::throttle::record_failure(
            &app.app().store,
            &account_key,
            sluice::auth::throttle::PER_ACCOUNT,
        )
        .await
        .unwrap();
    }
    assert!(
        sluice::auth::throttle::blocked_for(&app.app().store, &account_key)
            .await
            .unwrap()
            .is_some()
    );

    // The real user on their known browser (device cookie) is not locked out by the
    // account-wide block, only by the per-address block: clear that one to isolate it.
    let (pair, ip, _) = sluice::auth::throttle::keys("ada@example.com", "127.0.0.1");
    app.app().store.clear_throttle(&pair).await.unwrap();
    app.app().store.clear_throttle(&ip).await.unwrap();
    owner.post_form("/logout", &[]).await;
    let known = owner
        .post_form(
            "/login",
            &[("email", "ada@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(known.status, 303, "known device gets in: {}", known.body);
    let unknown_device = app
        .client()
        .post_form(
            "/login",
            &[("email", "ada@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(
        unknown_device.status, 429,
        "a new browser is held back by the account block"
    );
    app.stop().await;
}

#[tokio::test]
async fn changing_the_password_ends_other_sessions() {
    let app = TestApp::spawn().await;
    let first = app.owner("ada@example.com", "Acme").await;
    let second = app.client();
    second.sign_in("ada@example.com", PASSWORD).await;
    assert_eq!(second.get("/dashboard").await.status, 200);

    let wrong = first
        .post_form(
            "/account/password",
            &[
                ("current_password", "not it at all"),
                ("new_password", "a brand new phrase"),
                ("new_password_confirm", "a brand new phrase"),
            ],
        )
        .await;
    assert_eq!(wrong.status, 422);
    assert!(wrong.body.contains("The current password is not correct."));

    let changed = first
        .post_form(
            "/account/password",
            &[
                ("current_password", PASSWORD),
                ("new_password", "a brand new phrase"),
                ("new_password_confirm", "a brand new phrase"),
            ],
        )
        .await;
    assert_eq!(changed.status, 303, "{}", changed.body);
    assert_eq!(
        first.get("/dashboard").await.status,
        200,
        "the changing browser stays in"
    );
    assert_eq!(
        second.get("/dashboard").await.status,
        303,
        "other sessions end"
    );
    let old = app
        .client()
        .post_form(
            "/login",
            &[("email", "ada@example.com"), ("password", PASSWORD)],
        )
        .await;
    assert_eq!(old.status, 422);
    app.client()
        .sign_in("ada@example.com", "a brand new phrase")
        .await;
    app.stop().await;
}

#[tokio::test]
async fn idle_and_expired_sessions_end() {
    let app = TestApp::spawn_with(&[("SLUICE_SESSION_IDLE_MINUTES", "5")]).await;
    let owner = app.owner("ada@example.com", "Acme").await;
    assert_eq!(owner.get("/dashboard").await.status, 200);
    // Age every session beyond the idle limit.
    use sea_orm::ConnectionTrait;
    let db = app.app().store.db();
    let past = sluice::store::now() - chrono::Duration::minutes(6);
    db.execute_raw(sea_orm::Statement::from_sql_and_values(
        db.get_database_backend(),
        "UPDATE sessions SET last_seen_at = $1",
        [past.into()],
    ))
    .await
    .unwrap();
    assert_eq!(
        owner.get("/dashboard").await.status,
        303,
        "idle session ended"
    );
    app.stop().await;
}

#[tokio::test]
async fn state_changes_need_a_csrf_token_and_a_post() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let forged = owner
        .post_form_without_csrf(
            "/settings/members/invite",
            &[("email", "eve@example.com"), ("role", "owner")],
        )
        .await;
    assert_eq!(forged.status, 403);
    assert!(forged.body.contains("This form has expired"));
    let cross_site = owner
        .http
        .post(format!("{}/logout", owner.base))
        .header("sec-fetch-site", "cross-site")
        .send()
        .await
        .unwrap();
    assert_eq!(cross_site.status().as_u16(), 403);
    assert_eq!(
        owner.get("/logout").await.status,
        404,
        "no state change on GET"
    );
    assert_eq!(owner.get("/dashboard").await.status, 200, "still signed in");
    let members = owner.get("/settings/members").await;
    assert!(!members.body.contains("eve@example.com"));
    app.stop().await;
}

#[tokio::test]
async fn sign_in_only_returns_to_a_path_on_this_site() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let hostile = [
        "//evil.example",
        "/\\evil.example",
        "\\\\evil.example",
        "/\t/evil.example",
        "/\n/evil.example",
        "/\r\nSet-Cookie: x=y",
        "https://evil.example",
        "javascript:alert(1)",
        "evil.example",
        " /settings",
        "/settings members",
        "/\u{0}",
        "/caf\u{e9}",
        "",
    ];
    // Signing in with the hostile value in the form.
    for next in hostile {
        let browser = app.client();
        let page = browser
            .post_form(
                "/login",
                &[
                    ("email", "ada@example.com"),
                    ("password", PASSWORD),
                    ("next", next),
                ],
            )
            .await;
        assert_eq!(page.status, 303, "{next:?}");
        assert_eq!(page.location(), "/dashboard", "{next:?}");
    }
    // Arriving signed in at /login?next=… (encoded as a browser would, and raw).
    for next in hostile {
        let query = url::form_urlencoded::Serializer::new(String::new())
            .append_pair("next", next)
            .finish();
        let page = owner.get(&format!("/login?{query}")).await;
        assert_eq!(page.status, 303, "{next:?}");
        assert_eq!(page.location(), "/dashboard", "{next:?}");
    }
    for raw in [
        "/%09/evil.example",
        "%0a",
        "/%0a",
        "/%0d%0aSet-Cookie:x=y",
        "%2F%2Fevil.example",
        "/%5Cevil.example",
    ] {
        let page = owner.get(&format!("/login?next={raw}")).await;
        assert_eq!(page.status, 303, "{raw}");
        assert_eq!(page.location(), "/dashboard", "{raw}");
    }
    // A path on this site is kept, query and all; escapes in it stay escapes.
    let page = owner.get("/login?next=%2Fruns%3Fstatus%3Dfailed").await;
    assert_eq!(page.location(), "/runs?status=failed");
    let page = owner.get("/login?next=%2F%2509%2Fhere").await;
    assert_eq!(page.location(), "/%09/here");
    app.stop().await;
}

#[tokio::test]
async fn a_form_posted_from_another_origin_is_refused_even_with_the_token() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let port = app.running.addr.port();
    let invite = |origin: String| {
        let owner = owner.clone();
        async move {
            owner
                .post_form_with_headers(
                    "/settings/members/invite",
                    &[("email", "eve@example.com"), ("role", "viewer")],
                    &[("origin", &origin)],
                )
                .await
        }
    };
    for origin in [
        "null".to_owned(),
        "http://evil.example".to_owned(),
        format!("https://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{}", port.wrapping_add(1)),
        "http://127.0.0.1".to_owned(),
        format!("http://evil.example/://127.0.0.1:{port}"),
        format!("http://127.0.0.1:{port}.evil.example"),
        "not an origin".to_owned(),
    ] {
        let page = invite(origin.clone()).await;
        assert_eq!(page.status, 403, "{origin}");
    }
    assert!(
        !owner
            .get("/settings/members")
            .await
            .body
            .contains("eve@example.com"),
        "nothing was changed"
    );
    // The site's own origin (scheme, host and port) is accepted.
    let page = invite(format!("http://127.0.0.1:{port}")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    app.stop().await;
}

#[tokio::test]
async fn over_https_the_csrf_cookie_is_bound_to_this_exact_origin() {
    let app = TestApp::spawn_with(&[("SLUICE_PUBLIC_URL", "https://127.0.0.1:0")]).await;
    let http = reqwest::Client::new();
    let login = http
        .get(format!("{}/login", app.base))
        .send()
        .await
        .unwrap();
    let cookie = login
        .headers()
        .get_all("set-cookie")
        .iter()
        .map(|v| v.to_str().unwrap().to_owned())
        .find(|c| c.contains("sluice_csrf="))
        .unwrap();
    assert!(cookie.starts_with("__Host-sluice_csrf="), "{cookie}");
    let attributes: Vec<&str> = cookie.split("; ").skip(1).collect();
    assert!(attributes.contains(&"Secure"), "{cookie}");
    assert!(attributes.contains(&"Path=/"), "{cookie}");
    assert!(
        !attributes
            .iter()
            .any(|a| a.to_lowercase().starts_with("domain")),
        "{cookie}"
    );
    let token = cookie
        .trim_start_matches("__Host-sluice_csrf=")
        .split(';')
        .next()
        .unwrap()
        .to_owned();

    // The prefixed cookie is the one checked; an unprefixed one (which a sibling
    // subdomain or a plain-http answer could have set) is not.
    let sign_in = |cookie: String| {
        let http = http.clone();
        let url = format!("{}/login", app.base);
        let token = token.clone();
        async move {
            http.post(url)
                .header("cookie", cookie)
                .form(&[
                    ("email", "nobody@example.com"),
                    ("password", "wrong password!"),
                    ("csrf_token", token.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(sign_in(format!("__Host-sluice_csrf={token}")).await, 422);
    assert_eq!(sign_in(format!("sluice_csrf={token}")).await, 403);
    app.stop().await;
}

#[tokio::test]
async fn names_refuse_control_and_text_direction_characters() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let token = owner.create_api_token("ci", "admin").await;
    let hostile = [
        "Invoice\u{202E}fdp.exe",
        "Ops\u{2066}admin\u{2069}",
        "Left\u{202A}right",
        "Null\u{0}byte",
    ];
    let direction = "reverse or isolate text direction";
    let control = "control characters";
    for name in hostile {
        let expected = if name.contains('\u{0}') {
            control
        } else {
            direction
        };
        let pages = [
            (
                "workspace",
                owner
                    .post_form(
                        "/settings/workspace",
                        &[("name", name), ("time_zone", "UTC")],
                    )
                    .await,
            ),
            (
                "new workspace",
                owner.post_form("/workspaces", &[("name", name)]).await,
            ),
            (
                "API token",
                owner
                    .post_form(
                        "/settings/api-tokens",
                        &[("name", name), ("role", "viewer"), ("expires_in_days", "")],
                    )
                    .await,
            ),
            (
                "channel",
                owner
                    .post_form(
                        "/settings/alerts/channels",
                        &[
                            ("kind", "webhook"),
                            ("name", name),
                            ("target", "https://93.184.216.34/hook"),
                        ],
                    )
                    .await,
            ),
            (
                "connection",
                owner
                    .post_form("/connections/new/sandbox_crm", &[("name", name)])
                    .await,
            ),
        ];
        for (what, page) in pages {
            assert_eq!(page.status, 422, "{what} {name:?}: {}", page.body);
            assert!(
                page.body.contains(expected),
                "{what} {name:?}: {}",
                page.body
            );
        }

        // A flow through the API: the field error names the field.
        let res = owner
            .http
            .post(format!("{}/api/v1/flows", owner.base))
            .bearer_auth(&token)
            .json(&serde_json::json!({
                "name": name,
                "source": {"connection_id": uuid::Uuid::now_v7(), "object": "contacts", "incremental": false},
                "destination": {"connection_id": uuid::Uuid::now_v7(), "object": "customers", "write_mode": "upsert", "key_field": "external_id"},
                "mapping": [{"target": "email", "expression": "record.email"}],
                "record_key": "record.id",
                "batch_size": 10,
                "trigger": {"kind": "manual"},
                "auto_pause_after": 3
            }))
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 422, "flow {name:?}");
        let body: serde_json::Value = res.json().await.unwrap();
        let fields = body["error"]["fields"].as_array().unwrap();
        assert!(
            fields
                .iter()
                .any(|f| f["field"] == "name" && f["message"].as_str().unwrap().contains(expected)),
            "flow {name:?}: {body}"
        );

        // A new member's display name.
        let link = owner
            .invite(&format!("m{}@example.com", name.len()), "viewer")
            .await;
        let joined = app
            .client()
            .post_form(
                &link,
                &[
                    ("name", name),
                    ("password", PASSWORD),
                    ("password_confirm", PASSWORD),
                ],
            )
            .await;
        assert_eq!(joined.status, 422, "member {name:?}");
        assert!(
            joined.body.contains(expected),
            "member {name:?}: {}",
            joined.body
        );
    }
    // Nothing was renamed or created.
    let settings = owner.get("/settings/workspace").await;
    assert!(settings.body.contains("Acme"));
    assert!(!settings.body.contains("Invoice"));
    app.stop().await;
}

#[tokio::test]
async fn the_workspace_time_zone_is_kept_by_name_and_unknown_zones_are_refused() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;

    let unknown = owner
        .post_form(
            "/settings/workspace",
            &[("name", "Acme"), ("time_zone", "Mars/Olympus_Mons")],
        )
        .await;
    assert_eq!(unknown.status, 422, "{}", unknown.body);
    assert!(unknown.body.contains("Choose a time zone from the list."));

    let saved = owner
        .post_form(
            "/settings/workspace",
            &[("name", "Acme"), ("time_zone", "Europe/Berlin")],
        )
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let settings = owner.get("/settings/workspace").await;
    assert_eq!(
        settings
            .attr("#time_zone option[selected]", "value")
            .as_deref(),
        Some("Europe/Berlin")
    );
    app.stop().await;
}
