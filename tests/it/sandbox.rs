//! The built-in sandbox SaaS behaves like a real OAuth server and API: PKCE, rotating
//! refresh tokens with reuse detection, cursor pagination, validation, rate limits.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use base64::Engine;
use serde_json::{Value, json};
use sha2::{Digest, Sha256};

struct Tokens {
    access: String,
    refresh: String,
}

fn challenge(verifier: &str) -> String {
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(Sha256::digest(verifier.as_bytes()))
}

/// Runs the consent dance by hand (as a provider's client would) and returns tokens.
async fn authorize(app: &TestApp, verifier: &str) -> Result<Tokens, Value> {
    let browser = app.client();
    let redirect = format!("{}/oauth/callback/sandbox_crm", app.base);
    let query = format!(
        "/sandbox/oauth/authorize?response_type=code&client_id=sluice-sandbox&redirect_uri={}&state=xyz&scope=crm.read%20crm.write&code_challenge={}&code_challenge_method=S256",
        urlencode(&redirect),
        challenge("the-real-verifier-0123456789-0123456789-abcdef")
    );
    let consent = browser.get(&query).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    assert!(consent.body.contains("Sluice") && consent.body.contains("crm.read"));
    let token = consent.input_value("csrf_token");
    let decision = browser
        .post_form_without_csrf(
            "/sandbox/oauth/authorize",
            &[
                ("csrf_token", &token),
                ("decision", "approve"),
                ("response_type", "code"),
                ("client_id", "sluice-sandbox"),
                ("redirect_uri", &redirect),
                ("state", "xyz"),
                ("scope", "crm.read crm.write"),
                (
                    "code_challenge",
                    &challenge("the-real-verifier-0123456789-0123456789-abcdef"),
                ),
                ("code_challenge_method", "S256"),
            ],
        )
        .await;
    assert_eq!(decision.status, 302);
    let location = url::Url::parse(decision.location()).unwrap();
    let params: std::collections::HashMap<_, _> = location.query_pairs().into_owned().collect();
    assert_eq!(params["state"], "xyz");
    assert_eq!(params["iss"], format!("{}/sandbox", app.base));
    let secret = sluice::connectors::session::sandbox_client_secret(&app.app().master_key);
    let res = browser
        .http
        .post(format!("{}/sandbox/oauth/token", app.base))
        .basic_auth("sluice-sandbox", Some(&secret))
        .form(&[
            ("grant_type", "authorization_code"),
            ("code", &params["code"]),
            ("redirect_uri", &redirect),
            ("code_verifier", verifier),
        ])
        .send()
        .await
        .unwrap();
    let body: Value = res.json().await.unwrap();
    match body["access_token"].as_str() {
        Some(access) => Ok(Tokens {
            access: access.into(),
            refresh: body["refresh_token"].as_str().unwrap().into(),
        }),
        None => Err(body),
    }
}

fn urlencode(s: &str) -> String {
    url::form_urlencoded::byte_serialize(s.as_bytes()).collect()
}

async fn get(app: &TestApp, token: &str, path: &str) -> (u16, Value) {
    let res = app
        .client()
        .http
        .get(format!("{}{path}", app.base))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn the_consent_dance_needs_the_right_pkce_verifier() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "10")]).await;
    let wrong = authorize(&app, "a-wrong-verifier-0123456789-0123456789-abcdef").await;
    assert_eq!(wrong.err().unwrap()["error"], "invalid_grant");
    let tokens = authorize(&app, "the-real-verifier-0123456789-0123456789-abcdef")
        .await
        .unwrap();
    assert!(tokens.access.starts_with("sbx_at_"));
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_prepares_and_seeds_its_database_when_first_used_not_at_start() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "20")]).await;
    tokio::time::sleep(std::time::Duration::from_millis(700)).await;
    // On SQLite an unused sandbox has not even opened its file; on PostgreSQL (our own
    // database) it has not created its tables.
    let prepared = || async {
        match crate::common::postgres_url() {
            None => app.data_dir().join("sluice-sandbox.db").exists(),
            Some(_) => {
                let tables = "SELECT COUNT(*) FROM information_schema.tables \
                              WHERE table_name = 'sandbox_records'";
                crate::common::scalar(app.app().store.db(), tables).await > 0
            }
        }
    };
    assert!(!prepared().await, "an unused sandbox holds nothing");
    // The first request waits for the whole seed rather than seeing part of it.
    assert_eq!(app.sandbox_records("crm.contacts").await, 20);
    assert!(prepared().await);
    let stored = "SELECT COUNT(*) FROM sandbox_records WHERE object = 'crm.contacts'";
    assert_eq!(
        crate::common::scalar(app.sandbox_db().await, stored).await,
        20
    );
    app.stop().await;
}

#[tokio::test]
async fn records_page_by_cursor_and_filter_by_update_time() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "50")]).await;
    app.wait_for_seed(50).await;
    let tokens = authorize(&app, "the-real-verifier-0123456789-0123456789-abcdef")
        .await
        .unwrap();
    let mut seen = Vec::new();
    let mut cursor = String::new();
    loop {
        let (status, page) = get(
            &app,
            &tokens.access,
            &format!("/sandbox/crm/contacts?limit=20&cursor={cursor}"),
        )
        .await;
        assert_eq!(status, 200);
        for r in page["data"].as_array().unwrap() {
            seen.push(r["id"].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(next) => cursor = next.to_owned(),
            None => break,
        }
    }
    assert_eq!(seen.len(), 50);
    assert_eq!(seen.first().unwrap(), "con_000000");
    let (_, recent) = get(
        &app,
        &tokens.access,
        "/sandbox/crm/contacts?limit=100&updated_since=2026-01-01T00:40:00Z",
    )
    .await;
    assert_eq!(
        recent["data"].as_array().unwrap().len(),
        10,
        "contacts 40..49 were updated at or after minute 40"
    );
    assert_eq!(recent["data"][0]["id"], "con_000040", "oldest change first");
    assert_eq!(recent["total"], 10);
    let (status, none) = get(
        &app,
        &tokens.access,
        "/sandbox/crm/contacts?updated_since=2027-01-01T00:00:00Z",
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(none["data"], serde_json::json!([]));
    assert_eq!(none["next_cursor"], serde_json::Value::Null);
    let (status, _) = get(&app, "sbx_at_forged", "/sandbox/crm/contacts").await;
    assert_eq!(status, 401);
    app.stop().await;
}

#[tokio::test]
async fn refresh_tokens_rotate_and_reuse_revokes_the_family() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    let tokens = authorize(&app, "the-real-verifier-0123456789-0123456789-abcdef")
        .await
        .unwrap();
    let secret = sluice::connectors::session::sandbox_client_secret(&app.app().master_key);
    let refresh = |rt: String| {
        let http = app.client().http;
        let url = format!("{}/sandbox/oauth/token", app.base);
        let secret = secret.clone();
        async move {
            http.post(url)
                .basic_auth("sluice-sandbox", Some(secret))
                .form(&[
                    ("grant_type", "refresh_token"),
                    ("refresh_token", rt.as_str()),
                ])
                .send()
                .await
                .unwrap()
                .json::<Value>()
                .await
                .unwrap()
        }
    };
    let rotated = refresh(tokens.refresh.clone()).await;
    let new_access = rotated["access_token"].as_str().unwrap().to_owned();
    assert_ne!(rotated["refresh_token"].as_str().unwrap(), tokens.refresh);
    assert_eq!(get(&app, &new_access, "/sandbox/crm/contacts").await.0, 200);

    let reused = refresh(tokens.refresh.clone()).await;
    assert_eq!(reused["error"], "invalid_grant");
    assert_eq!(
        get(&app, &new_access, "/sandbox/crm/contacts").await.0,
        401,
        "the family is revoked"
    );
    let newest = refresh(rotated["refresh_token"].as_str().unwrap().to_owned()).await;
    assert_eq!(newest["error"], "invalid_grant");
    app.stop().await;
}

#[tokio::test]
async fn writes_validate_each_record_and_batches_report_per_record() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "0")]).await;
    let mut tokens = authorize(&app, "the-real-verifier-0123456789-0123456789-abcdef")
        .await
        .unwrap();
    // The CRM scopes do not cover the ERP.
    let http = app.client().http;
    let res = http
        .post(format!("{}/sandbox/erp/customers", app.base))
        .bearer_auth(&tokens.access)
        .json(&json!({"name": "A", "email": "a@example.com"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 403);

    let res = http
        .post(format!("{}/sandbox/crm/contacts", app.base))
        .bearer_auth(&tokens.access)
        .json(&json!({"name": "", "email": "nope"}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 422);
    let body: Value = res.json().await.unwrap();
    assert_eq!(body["fields"]["name"], "is required");
    assert_eq!(body["fields"]["email"], "is not a valid e-mail address");

    let batch = json!({"mode": "upsert", "records": [
        {"name": "Ada", "email": "ada@example.com", "external_id": "x1"},
        {"name": "Bad", "email": "bad"},
        {"name": "Ada Lovelace", "email": "ada@example.com", "external_id": "x1"}
    ]});
    let res: Value = http
        .post(format!("{}/sandbox/crm/contacts/batch", app.base))
        .bearer_auth(&tokens.access)
        .json(&batch)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let statuses: Vec<&str> = res["results"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["status"].as_str().unwrap())
        .collect();
    assert_eq!(statuses, vec!["created", "invalid", "updated"]);
    let (_, page) = get(&app, &tokens.access, "/sandbox/crm/contacts").await;
    assert_eq!(page["data"].as_array().unwrap().len(), 1);
    assert_eq!(page["data"][0]["name"], "Ada Lovelace");
    tokens.access.clear();
    app.stop().await;
}

#[tokio::test]
async fn a_batch_repeated_under_its_idempotency_key_gets_the_first_answer_and_writes_nothing() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "0")]).await;
    let tokens = authorize(&app, "the-real-verifier-0123456789-0123456789-abcdef")
        .await
        .unwrap();
    let http = app.client().http;
    let send = |records: Value| {
        http.post(format!("{}/sandbox/crm/contacts/batch", app.base))
            .bearer_auth(&tokens.access)
            .header("Idempotency-Key", "page-7-batch-1")
            .json(&json!({"mode": "create", "records": records}))
            .send()
    };
    let first = send(json!([{"name": "Ada", "email": "ada@example.com"}]))
        .await
        .unwrap();
    assert_eq!(first.status().as_u16(), 200);
    assert!(first.headers().get("idempotent-replayed").is_none());
    let first: Value = first.json().await.unwrap();
    assert_eq!(first["results"][0]["status"], "created");

    // A retry after a lost answer; even a different body is not written again.
    let again = send(json!([{"name": "Grace", "email": "grace@example.com"}]))
        .await
        .unwrap();
    assert_eq!(again.status().as_u16(), 200);
    assert_eq!(again.headers()["idempotent-replayed"], "true");
    assert_eq!(again.json::<Value>().await.unwrap(), first);
    assert_eq!(app.sandbox_records("crm.contacts").await, 1);
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_folds_its_write_ahead_log_into_its_file_in_the_background() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "3000")]).await;
    app.wait_for_seed(3000).await;
    if crate::common::postgres_url().is_some() {
        // On PostgreSQL the sandbox lives in our database: no log of its own to fold.
        return app.stop().await;
    }
    // No write checkpoints the sandbox's log (writes stay quick); until the background
    // task does, the seeded contacts are in the log and the file keeps its empty size.
    let file = app.data_dir().join("sluice-sandbox.db");
    let mut size = 0;
    for _ in 0..100 {
        size = std::fs::metadata(&file).map(|m| m.len()).unwrap_or(0);
        if size > 256 * 1024 {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert!(size > 256 * 1024, "the sandbox file holds {size} bytes");
    app.stop().await;
}

#[tokio::test]
async fn the_rate_limit_answers_429_with_retry_after() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "1"),
        ("SLUICE_SANDBOX_RATE_LIMIT", "3"),
    ])
    .await;
    let tokens = authorize(&app, "the-real-verifier-0123456789-0123456789-abcdef")
        .await
        .unwrap();
    let http = app.client().http;
    let mut limited = None;
    for _ in 0..10 {
        let res = http
            .get(format!("{}/sandbox/crm/contacts", app.base))
            .bearer_auth(&tokens.access)
            .send()
            .await
            .unwrap();
        if res.status().as_u16() == 429 {
            limited = Some(res.headers()["retry-after"].to_str().unwrap().to_owned());
            break;
        }
    }
    assert_eq!(limited.as_deref(), Some("1"));
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_can_be_switched_off() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX", "off")]).await;
    assert_eq!(
        app.client().get("/sandbox/oauth/authorize").await.status,
        404
    );
    assert_eq!(app.client().get("/sandbox/stats").await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_consent_refuses_a_decision_without_its_own_form_token() {
    let app = TestApp::spawn().await;
    let browser = app.client();
    let redirect = format!("{}/oauth/callback/sandbox_crm", app.base);
    let query = format!(
        "/sandbox/oauth/authorize?response_type=code&client_id=sluice-sandbox&redirect_uri={}&state=s&scope=crm.read&code_challenge=abc&code_challenge_method=S256",
        urlencode(&redirect)
    );
    let consent = browser.get(&query).await;
    assert_eq!(consent.status, 200, "{}", consent.body);
    let decision = |token: String| {
        let redirect = redirect.clone();
        let browser = &browser;
        async move {
            browser
                .post_form_without_csrf(
                    "/sandbox/oauth/authorize",
                    &[
                        ("csrf_token", token.as_str()),
                        ("decision", "approve"),
                        ("response_type", "code"),
                        ("client_id", "sluice-sandbox"),
                        ("redirect_uri", &redirect),
                        ("state", "s"),
                        ("scope", "crm.read"),
                        ("code_challenge", "abc"),
                        ("code_challenge_method", "S256"),
                    ],
                )
                .await
        }
    };
    // A forged form (no token, or another one) gets no code; the page's own token does.
    assert_eq!(decision(String::new()).await.status, 403);
    assert_eq!(decision("forged".into()).await.status, 403);
    let approved = decision(consent.input_value("csrf_token")).await;
    assert_eq!(approved.status, 302, "{}", approved.body);
    assert!(
        approved.location().contains("code="),
        "{}",
        approved.location()
    );
    app.stop().await;
}

#[tokio::test]
async fn the_sandbox_accepts_only_its_registered_redirect_uris() {
    let app = TestApp::spawn().await;
    let redirect = format!("{}/oauth/callback/../../evil", app.base);
    let path = format!(
        "/sandbox/oauth/authorize?response_type=code&client_id=sluice-sandbox&redirect_uri={}&state=s&code_challenge=abc&code_challenge_method=S256",
        urlencode(&redirect)
    );
    let res = app.client().get(&path).await;
    assert_eq!(res.status, 400);
    assert!(res.body.contains("not registered"));
    app.stop().await;
}

#[tokio::test]
async fn the_operator_gets_the_sandbox_secret_from_the_command_line_and_starts_an_outage() {
    let key = sluice::config::MasterKey::generate_base64();
    let app = TestApp::spawn_with(&[("SLUICE_MASTER_KEY", &key)]).await;
    // `sluice admin sandbox-secret`, as the README's outage how-to says.
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["admin", "sandbox-secret"])
        .env("SLUICE_DATABASE_URL", app.database_url())
        .env("SLUICE_MASTER_KEY", &key)
        .env("SLUICE_LOG", "error")
        .output()
        .unwrap();
    assert!(output.status.success(), "{output:?}");
    let secret = String::from_utf8(output.stdout).unwrap().trim().to_owned();
    assert!(!secret.is_empty());
    let outage = |bearer: String| {
        let http = app.client().http;
        let url = format!("{}/sandbox/outages", app.base);
        async move {
            http.post(url)
                .bearer_auth(bearer)
                .json(&serde_json::json!({ "api": "erp", "status": 503 }))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(outage("not-the-secret".into()).await, 401);
    let status = outage(secret).await;
    assert!((200..300).contains(&status), "{status}");
    app.stop().await;
}

#[tokio::test]
async fn old_idempotency_keys_are_forgotten_a_batch_at_a_time_by_their_age_index() {
    let app = TestApp::spawn().await;
    let db = app.sandbox_db().await;
    let backend = db.get_database_backend();
    let old = chrono::Utc::now() - chrono::Duration::days(3);
    for (n, at) in [(2_500, old), (5, chrono::Utc::now())] {
        for i in 0..n {
            sea_orm::ConnectionTrait::execute_raw(
                db,
                sea_orm::Statement::from_sql_and_values(
                    backend,
                    "INSERT INTO sandbox_idempotency (key, response, created_at) VALUES ($1, '{}', $2)",
                    [format!("k-{}-{i}", at.timestamp()).into(), at.into()],
                ),
            )
            .await
            .unwrap();
        }
    }
    let removed =
        sluice_sandbox::db::purge_idempotency(db, chrono::Utc::now() - chrono::Duration::days(1))
            .await
            .unwrap();
    assert_eq!(removed, 2_500, "more than one batch of old keys goes");
    assert_eq!(
        crate::common::scalar(db, "SELECT COUNT(*) FROM sandbox_idempotency").await,
        5,
        "keys of the last day stay"
    );
    if backend == sea_orm::DbBackend::Sqlite {
        let plan = sea_orm::ConnectionTrait::query_all_raw(
            db,
            sea_orm::Statement::from_string(
                backend,
                "EXPLAIN QUERY PLAN SELECT key FROM sandbox_idempotency WHERE created_at < '2026-01-01'",
            ),
        )
        .await
        .unwrap();
        let plan: Vec<String> = plan
            .iter()
            .filter_map(|r| r.try_get::<String>("", "detail").ok())
            .collect();
        assert!(
            plan.iter()
                .any(|d| d.contains("ix_sandbox_idempotency_created")),
            "the purge reads the age index, not the table: {plan:?}"
        );
    }
    app.stop().await;
}
