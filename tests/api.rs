//! The JSON API: bearer tokens, one error shape, the OpenAPI document.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::TestApp;

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
    assert_eq!(body["error"]["code"], "unauthenticated");
    app.stop().await;
}

#[tokio::test]
async fn api_errors_share_one_shape() {
    let app = TestApp::spawn().await;
    let client = app.client();
    let (status, body) = client.api("slc_not-a-token", "/api/v1/me").await;
    assert_eq!(status, 401);
    assert_eq!(body["error"]["code"], "unauthenticated");
    assert!(body["error"]["message"].is_string());
    let res = client
        .http
        .get(format!("{}/api/v1/me", client.base))
        .send()
        .await
        .unwrap();
    assert_eq!(res.status().as_u16(), 401);
    assert_eq!(res.headers()["www-authenticate"], "Bearer");
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
    app.stop().await;
}
