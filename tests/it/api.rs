//! The JSON API: bearer tokens, one error shape, the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;

#[tokio::test]
async fn api_tokens_are_shown_once_and_authenticate_the_api() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let token = owner.create_api_token("ci", "viewer").await;
    assert!(token.starts_with("slc_"));
    let list = owner.get("/settings/api-tokens").await;
    assert!(list.body.contains("ci"));
    assert!(!list.body.contains(&token), "the secret is not shown again");

    let (status, me) = owner.api(&token, "/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["workspace_name"], "Acme");
    assert_eq!(me["role"], "viewer");

    let action = list.action_containing("/revoke");
    assert_eq!(owner.post_form(&action, &[]).await.status, 303);
    let (status, body) = owner.api(&token, "/api/v1/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_token");
    assert_eq!(
        body["error"]["message"],
        "This API token was revoked; create a new one."
    );
    app.stop().await;
}

#[tokio::test]
async fn api_errors_share_one_shape() {
    let app = TestApp::spawn().await;
    let client = app.client();
    // A token that was sent but does not work says why (RFC 6750 `invalid_token`)…
    for (token, why) in [
        ("slc_not-a-token", "not known here"),
        ("ghp_someone-elses", "not a Sluice API token"),
    ] {
        let res = client
            .http
            .get(format!("{}/api/v1/me", client.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 401);
        assert_eq!(
            res.headers()["www-authenticate"],
            r#"Bearer error="invalid_token""#
        );
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], "invalid_token");
        assert!(
            body["error"]["message"].as_str().unwrap().contains(why),
            "{body}"
        );
    }
    // …and one that was not sent asks for one.
    let res = client
        .http
        .get(format!("{}/api/v1/me", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
    let body: serde_json::Value = res.json().await.unwrap();
    assert_eq!(body["error"]["code"], "unauthenticated");
    let (status, body) = client.api("x", "/api/v1/nothing-here").await;
    assert_eq!(status, 404);
    assert_eq!(body["error"]["code"], "not_found");
    app.stop().await;
}

#[tokio::test]
async fn the_openapi_document_describes_the_api() {
    let app = TestApp::spawn().await;
    let res = app.client().get("/api/v1/openapi.json").await;
    assert_eq!(res.status, 200);
    let doc: serde_json::Value = serde_json::from_str(&res.body).unwrap();
    assert!(doc["openapi"].as_str().unwrap().starts_with("3."));
    assert!(doc["paths"]["/api/v1/me"]["get"].is_object());
    assert!(doc["paths"]["/api/v1/members"]["get"].is_object());
    assert!(doc["components"]["securitySchemes"]["bearer"].is_object());
    for path in [
        "/api/v1/providers",
        "/api/v1/connections/{id}",
        "/api/v1/connect-links",
    ] {
        assert!(doc["paths"][path].is_object(), "{path}");
    }
    // Every path parameter is in its path; filters are optional query parameters.
    let mut query = 0;
    for (path, operations) in doc["paths"].as_object().unwrap() {
        for (method, operation) in operations.as_object().unwrap() {
            for parameter in operation["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap();
                match parameter["in"].as_str().unwrap() {
                    "path" => assert!(
                        path.contains(&format!("{{{name}}}")),
                        "{method} {path}: '{name}' is declared a path parameter"
                    ),
                    "query" => {
                        query += 1;
                        assert_ne!(
                            parameter["required"], true,
                            "{method} {path}: the filter '{name}' is optional"
                        );
                    }
                    other => panic!("{method} {path}: '{name}' in {other}"),
                }
            }
        }
    }
    let runs = &doc["paths"]["/api/v1/runs"]["get"]["parameters"];
    for filter in [
        "flow_id", "status", "trigger", "from", "to", "before", "limit",
    ] {
        assert!(
            runs.as_array()
                .unwrap()
                .iter()
                .any(|p| p["name"] == filter && p["in"] == "query"),
            "/api/v1/runs {filter}: {runs}"
        );
    }
    assert!(query >= 22, "{query} query parameters");
    app.stop().await;
}

#[tokio::test]
async fn vendors_create_connect_links_and_read_connections_through_the_api() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let token = owner.create_api_token("vendor", "admin").await;
    let viewer_token = owner.create_api_token("dash", "viewer").await;
    let http = &owner.http;

    let (status, providers) = owner.api(&token, "/api/v1/providers?q=sandbox").await;
    assert_eq!(status, 200);
    assert_eq!(providers.as_array().unwrap().len(), 2);
    assert_eq!(providers[0]["auth_kind"], "oauth2_code");

    let res = http
        .post(format!("{}/api/v1/connect-links", owner.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"provider": "sandbox_crm", "customer_ref": "cust-42", "ttl_hours": 4}))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 201);
    let link: serde_json::Value = res.json().await.unwrap();
    assert_eq!(link["state"], "pending");
    let url = link["url"].as_str().unwrap().to_owned();

    // The end customer completes the link; the API shows the connection.
    let customer = app.client();
    let path = url::Url::parse(&url).unwrap().path().to_owned();
    let start = customer.post_form(&path, &[]).await;
    let callback = customer
        .consent(&crate::common::continue_url(&start), true)
        .await;
    assert_eq!(customer.get(&callback).await.status, 200);
    let (_, links) = owner.api(&token, "/api/v1/connect-links").await;
    assert_eq!(links[0]["state"], "connected");
    assert!(
        links[0].get("url").is_none(),
        "the URL is only returned once"
    );
    let (_, connections) = owner.api(&viewer_token, "/api/v1/connections").await;
    assert_eq!(connections[0]["customer_ref"], "cust-42");
    assert_eq!(connections[0]["status"], "active");
    assert!(
        !connections.to_string().contains("sbx_"),
        "no credentials in API answers"
    );
    let id = connections[0]["id"].as_str().unwrap().to_owned();

    let test: serde_json::Value = http
        .post(format!("{}/api/v1/connections/{id}/test", owner.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(test["ok"], true);
    // Viewers cannot disconnect; admins can.
    let denied = http
        .delete(format!("{}/api/v1/connections/{id}", owner.base))
        .bearer_auth(&viewer_token)
        .send()
        .await
        .unwrap();
    assert_eq!(denied.status().as_u16(), 403);
    let bad = http
        .post(format!("{}/api/v1/connect-links", owner.base))
        .bearer_auth(&token)
        .json(&serde_json::json!({"provider": "nope", "customer_ref": ""}))
        .send()
        .await
        .unwrap();
    assert_eq!(bad.status().as_u16(), 422);
    let body: serde_json::Value = bad.json().await.unwrap();
    assert_eq!(body["error"]["code"], "invalid_input");
    assert!(body["error"]["fields"].as_array().unwrap().len() >= 2);
    let gone = http
        .delete(format!("{}/api/v1/connections/{id}", owner.base))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(gone.status().as_u16(), 200);
    let (_, after) = owner
        .api(&token, &format!("/api/v1/connections/{id}"))
        .await;
    assert_eq!(after["status"], "disconnected");
    let (status, _) = owner
        .api(
            &token,
            &format!("/api/v1/connections/{}", uuid::Uuid::now_v7()),
        )
        .await;
    assert_eq!(status, 404);
    app.stop().await;
}

/// The membership id the members page addresses `email` by.
fn membership_of(members_page: &str, email: &str) -> String {
    let at = members_page.find(email).unwrap();
    let rest = &members_page[at..];
    let i = rest.find("/settings/members/").unwrap() + "/settings/members/".len();
    rest[i..i + 36].to_owned()
}

#[tokio::test]
async fn an_api_token_acts_with_its_creators_current_role_and_dies_with_their_membership() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let link = owner.invite("adam@example.com", "admin").await;
    let admin = app.client();
    let joined = admin
        .post_form(
            &link,
            &[
                ("name", "Adam"),
                ("password", crate::common::PASSWORD),
                ("password_confirm", crate::common::PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    let token = admin.create_api_token("adam-ci", "admin").await;
    let create_link = |token: String| {
        let http = owner.http.clone();
        let base = owner.base.clone();
        async move {
            http.post(format!("{base}/api/v1/connect-links"))
                .bearer_auth(token)
                .json(&serde_json::json!({"provider": "sandbox_crm", "customer_ref": "c-1"}))
                .send()
                .await
                .unwrap()
                .status()
                .as_u16()
        }
    };
    assert_eq!(create_link(token.clone()).await, 201);

    // Demoted to viewer: the admin token now has a viewer's rights, no more.
    let membership = membership_of(
        &owner.get("/settings/members").await.body,
        "adam@example.com",
    );
    let demoted = owner
        .post_form(
            &format!("/settings/members/{membership}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(demoted.status, 303, "{}", demoted.body);
    let (status, me) = owner.api(&token, "/api/v1/me").await;
    assert_eq!(status, 200);
    assert_eq!(me["role"], "viewer");
    assert_eq!(create_link(token.clone()).await, 403);

    // Removed: the token no longer authenticates, and stays revoked if they come back.
    let removed = owner
        .post_form(&format!("/settings/members/{membership}/remove"), &[])
        .await;
    assert_eq!(removed.status, 303, "{}", removed.body);
    let (status, body) = owner.api(&token, "/api/v1/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "invalid_token");
    assert!(
        body["error"]["message"]
            .as_str()
            .unwrap()
            .contains("revoked"),
        "{body}"
    );
    assert_eq!(create_link(token.clone()).await, 401);
    assert!(
        !owner
            .get("/settings/api-tokens")
            .await
            .body
            .contains("adam-ci"),
        "the removed member's token is revoked"
    );
    let back = owner.invite("adam@example.com", "admin").await;
    assert_eq!(admin.post_form(&back, &[]).await.status, 303);
    let (status, _) = owner.api(&token, "/api/v1/me").await;
    assert_eq!(status, 401, "re-joining does not revive an old token");
    app.stop().await;
}

#[tokio::test]
async fn unreadable_api_requests_answer_in_the_error_shape() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let token = owner.create_api_token("ci", "admin").await;
    let url = |path: &str| format!("{}/api/v1{path}", owner.base);
    let flow = uuid::Uuid::now_v7();
    let ten_mb = format!(r#"{{"provider":"{}"}}"#, "x".repeat(10 * 1024 * 1024));
    let requests = [
        (
            "a query value of the wrong type",
            owner.http.get(url("/audit-events?limit=lots")),
            400,
            "bad_request",
        ),
        (
            "a query id that is not a UUID",
            owner
                .http
                .get(url(&format!("/flows/{flow}/dead-letters?run=nope"))),
            400,
            "bad_request",
        ),
        (
            "a body that is not JSON",
            owner
                .http
                .post(url("/connect-links"))
                .header("content-type", "text/plain")
                .body("provider=sandbox_crm"),
            415,
            "unsupported_media_type",
        ),
        (
            "JSON that does not parse",
            owner
                .http
                .post(url("/connect-links"))
                .header("content-type", "application/json")
                .body("{"),
            400,
            "bad_request",
        ),
        (
            "a 10 MB body",
            owner
                .http
                .post(url("/connect-links"))
                .header("content-type", "application/json")
                .body(ten_mb),
            413,
            "payload_too_large",
        ),
    ];
    for (what, request, status, code) in requests {
        let res = request.bearer_auth(&token).send().await.unwrap();
        assert_eq!(res.status().as_u16(), status, "{what}");
        assert_eq!(res.headers()["content-type"], "application/json", "{what}");
        let body: serde_json::Value = res.json().await.unwrap();
        assert_eq!(body["error"]["code"], code, "{what}: {body}");
        assert!(body["error"]["message"].is_string(), "{what}: {body}");
    }
    app.stop().await;
}
