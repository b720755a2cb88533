//! Invitations and member management.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::{PASSWORD, TestApp};

#[tokio::test]
async fn an_invited_person_creates_an_account_and_joins_once() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let link = owner.invite("grace@example.com", "admin").await;

    let guest = app.client();
    let landing = guest.get(&link).await;
    assert_eq!(landing.status, 200);
    assert!(landing.body.contains("Join Acme"));
    assert!(landing.body.contains("admin"));

    let weak = guest
        .post_form(
            &link,
            &[
                ("name", "Grace"),
                ("password", "short"),
                ("password_confirm", "short"),
            ],
        )
        .await;
    assert_eq!(weak.status, 422);
    let joined = guest
        .post_form(
            &link,
            &[
                ("name", "Grace"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(joined.status, 303, "{}", joined.body);
    let dashboard = guest.get("/dashboard").await;
    assert!(dashboard.body.contains("You joined Acme."));

    let members = owner.get("/settings/members").await;
    assert!(members.body.contains("grace@example.com"));
    assert!(
        !members
            .body
            .contains("Pending invitations</h2></div>\n    <div class=\"table-wrap\">")
    );

    let reused = app.client().get(&link).await;
    assert_eq!(reused.status, 410);
    assert!(reused.body.contains("already used"));
    let audit = owner.get("/settings/audit").await;
    assert!(audit.body.contains("member.invited") && audit.body.contains("member.joined"));
    app.stop().await;
}

#[tokio::test]
async fn withdrawn_and_unknown_invitations_are_refused_clearly() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let link = owner.invite("grace@example.com", "viewer").await;
    let page = owner.get("/settings/members").await;
    let action = page.action_containing("/settings/invitations/");
    assert_eq!(owner.post_form(&action, &[]).await.status, 303);
    let gone = app.client().get(&link).await;
    assert_eq!(gone.status, 410);
    assert!(gone.body.contains("withdrawn"));
    assert_eq!(
        app.client().get("/invite/not-a-real-token").await.status,
        410
    );
    app.stop().await;
}

#[tokio::test]
async fn roles_limit_who_can_change_what() {
    let app = TestApp::spawn().await;
    let owner = app.owner("ada@example.com", "Acme").await;
    let admin_link = owner.invite("adam@example.com", "admin").await;
    let viewer_link = owner.invite("vera@example.com", "viewer").await;
    let admin = app.client();
    admin.get(&admin_link).await;
    admin
        .post_form(
            &admin_link,
            &[
                ("name", "Adam"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    let viewer = app.client();
    viewer
        .post_form(
            &viewer_link,
            &[
                ("name", "Vera"),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;

    // A viewer changes nothing.
    let denied = viewer
        .post_form(
            "/settings/members/invite",
            &[("email", "x@example.com"), ("role", "viewer")],
        )
        .await;
    assert_eq!(denied.status, 403);
    assert_eq!(
        viewer
            .post_form(
                "/settings/api-tokens",
                &[("name", "t"), ("role", "viewer"), ("expires_in_days", "")]
            )
            .await
            .status,
        403
    );

    // An admin cannot invite owners or demote the owner.
    let owner_invite = admin
        .post_form(
            "/settings/members/invite",
            &[("email", "o@example.com"), ("role", "owner")],
        )
        .await;
    assert_eq!(owner_invite.status, 422);
    assert!(owner_invite.body.contains("Only owners can invite owners."));
    let members = owner.get("/settings/members").await;
    let owner_membership = {
        let at = members.body.find("ada@example.com").unwrap();
        let rest = &members.body[at..];
        let i = rest.find("/settings/members/").unwrap() + 18;
        rest[i..i + 36].to_owned()
    };
    let demote = admin
        .post_form(
            &format!("/settings/members/{owner_membership}/role"),
            &[("role", "viewer")],
        )
        .await;
    assert_eq!(demote.status, 403);

    // The last owner cannot leave or be demoted: the button says so before they try.
    let members = owner.get("/settings/members").await.body;
    assert!(
        members.contains(
            "type=\"submit\" disabled aria-describedby=\"sole-owner-hint\">Leave</button>"
        ),
        "{members}"
    );
    let leave = owner
        .post_form(&format!("/settings/members/{owner_membership}/remove"), &[])
        .await;
    assert_eq!(leave.status, 303);
    assert!(
        owner.get("/settings/members").await.body.contains(
            "You are the last owner, so you cannot leave: make someone else owner first."
        )
    );
    // Reloading the page an invitation was made on goes back to the members.
    let reload = owner.get("/settings/members/invite").await;
    assert_eq!(reload.status, 303);
    assert_eq!(reload.location(), "/settings/members");
    app.stop().await;
}
