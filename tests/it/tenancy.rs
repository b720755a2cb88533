//! Tenant isolation: no page, form or API call of one workspace reads or changes another's
//! data. Every resource has its cross-tenant case; a foreign id answers exactly like a
//! missing one (404).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;

fn id_after<'a>(body: &'a str, prefix: &str) -> &'a str {
    let start = body
        .find(prefix)
        .unwrap_or_else(|| panic!("{prefix} not found"))
        + prefix.len();
    &body[start..start + 36]
}

#[tokio::test]
async fn members_of_another_workspace_cannot_be_seen_or_changed() {
    let app = TestApp::spawn().await;
    let alice = app.owner("alice@a.example", "Alpha").await;
    alice.invite("carol@a.example", "viewer").await;
    let bob = app.another_tenant("bob@b.example", "Beta").await;
    let bobs_page = bob.get("/settings/members").await;
    let bobs_membership = id_after(&bobs_page.body, "/settings/members/").to_owned();

    // Alice cannot see Beta's members, change Bob's role, or remove him.
    let alices_page = alice.get("/settings/members").await;
    assert!(!alices_page.body.contains("bob@b.example"));
    let role = alice
        .post_form(
            &format!("/settings/members/{bobs_membership}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(role.status, 404);
    let remove = alice
        .post_form(&format!("/settings/members/{bobs_membership}/remove"), &[])
        .await;
    assert_eq!(remove.status, 404);
    let missing = alice
        .post_form(
            &format!("/settings/members/{}/remove", uuid::Uuid::now_v7()),
            &[],
        )
        .await;
    assert_eq!(missing.status, 404, "foreign and missing look the same");
    assert!(
        bob.get("/settings/members")
            .await
            .body
            .contains("bob@b.example")
    );
    assert!(bob.get("/settings/members").await.body.contains("owner"));
    app.stop().await;
}

#[tokio::test]
async fn invitations_of_another_workspace_cannot_be_revoked() {
    let app = TestApp::spawn().await;
    let alice = app.owner("alice@a.example", "Alpha").await;
    let bob = app.another_tenant("bob@b.example", "Beta").await;
    bob.invite("dave@b.example", "admin").await;
    let page = bob.get("/settings/members").await;
    let invitation = id_after(&page.body, "/settings/invitations/").to_owned();

    let revoke = alice
        .post_form(&format!("/settings/invitations/{invitation}/revoke"), &[])
        .await;
    assert_eq!(revoke.status, 404);
    assert!(
        bob.get("/settings/members")
            .await
            .body
            .contains("dave@b.example")
    );
    assert!(
        !alice
            .get("/settings/members")
            .await
            .body
            .contains("dave@b.example")
    );
    app.stop().await;
}

#[tokio::test]
async fn api_tokens_of_another_workspace_cannot_be_revoked_or_used_across() {
    let app = TestApp::spawn().await;
    let alice = app.owner("alice@a.example", "Alpha").await;
    let bob = app.another_tenant("bob@b.example", "Beta").await;
    let bobs_token = bob.create_api_token("beta-ci", "admin").await;
    let page = bob.get("/settings/api-tokens").await;
    let token_id = id_after(&page.body, "/settings/api-tokens/").to_owned();

    let revoke = alice
        .post_form(&format!("/settings/api-tokens/{token_id}/revoke"), &[])
        .await;
    assert_eq!(revoke.status, 404);
    assert!(
        !alice
            .get("/settings/api-tokens")
            .await
            .body
            .contains("beta-ci")
    );

    // Bob's token sees Beta only.
    let (status, members) = alice.api(&bobs_token, "/api/v1/members").await;
    assert_eq!(status, 200);
    let emails: Vec<&str> = members
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m["email"].as_str().unwrap())
        .collect();
    assert_eq!(emails, vec!["bob@b.example"]);
    let (_, audit) = alice.api(&bobs_token, "/api/v1/audit-events").await;
    assert!(audit.to_string().contains("beta-ci"));
    assert!(!audit.to_string().contains("alice@a.example"));
    app.stop().await;
}

#[tokio::test]
async fn a_workspace_one_does_not_belong_to_cannot_be_switched_to() {
    let app = TestApp::spawn().await;
    let alice = app.owner("alice@a.example", "Alpha").await;
    let bob = app.another_tenant("bob@b.example", "Beta").await;
    let beta_id = id_after(&bob.get("/dashboard").await.body, "<option value=\"").to_owned();

    let switch = alice
        .post_form("/workspaces/switch", &[("tenant_id", &beta_id)])
        .await;
    assert_eq!(switch.status, 404);
    let dashboard = alice.get("/dashboard").await;
    assert!(dashboard.body.contains("Alpha") && !dashboard.body.contains("Beta"));
    // Nor its settings or audit log.
    let settings = alice
        .post_form(
            "/settings/workspace",
            &[("name", "Hijacked"), ("time_zone", "UTC")],
        )
        .await;
    assert_eq!(settings.status, 303);
    assert!(
        bob.get("/settings/workspace")
            .await
            .body
            .contains("value=\"Beta\"")
    );
    assert!(!bob.get("/settings/audit").await.body.contains("Hijacked"));
    app.stop().await;
}

#[tokio::test]
async fn users_with_several_workspaces_switch_between_them() {
    let app = TestApp::spawn().await;
    let alice = app.owner("alice@a.example", "Alpha").await;
    let created = alice.post_form("/workspaces", &[("name", "Second")]).await;
    assert_eq!(created.status, 303);
    let dashboard = alice.get("/dashboard").await;
    assert!(dashboard.body.contains("Workspace “Second” created."));
    let alpha_id = {
        let body = &dashboard.body;
        let at = body.find("Alpha (owner)").unwrap();
        let before = &body[..at];
        let v = before.rfind("<option value=\"").unwrap() + 15;
        body[v..v + 36].to_owned()
    };
    alice
        .post_form("/workspaces/switch", &[("tenant_id", &alpha_id)])
        .await;
    let page = alice.get("/settings/workspace").await;
    assert!(page.body.contains("value=\"Alpha\""));
    app.stop().await;
}
