//! The support console: staff find a failed run of another tenant by error class,
//! inspect it with customer data hidden until they give a reason (secrets stay masked),
//! replay it, and cannot change the tenant's configuration; the tenant sees all of it in
//! its audit log.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use crate::common::flows::{
    connect_both, contact_flow, create_flow, outage, post, run_to_end, set, status_of,
    touch_contacts,
};
use sluice::domain::Email;

/// Grants the platform support role, as `sluice admin grant-support` does.
async fn grant_support(app: &TestApp, email: &str) {
    let granted = app
        .app()
        .store
        .set_platform_role(&Email::parse(email).unwrap(), Some("support"))
        .await
        .unwrap();
    assert!(granted);
}

/// Sam, of the platform's support staff, with a workspace of their own.
async fn support_staff(app: &TestApp) -> crate::common::Client {
    let support = app.owner("sam@sluice.example", "Sluice Support").await;
    grant_support(app, "sam@sluice.example").await;
    support
}

#[tokio::test]
async fn support_finds_inspects_and_replays_a_failed_run_and_the_tenant_sees_the_access() {
    let app = TestApp::spawn_with(&[
        ("SLUICE_SANDBOX_SEED_CONTACTS", "20"),
        ("SLUICE_RETRY_AFTER_CAP_SECS", "1"),
        // Give up on a failing call after its ten tries, not after minutes of outage.
        ("SLUICE_CALL_PATIENCE_SECS", "0"),
    ])
    .await;
    app.wait_for_seed(20).await;
    let support = support_staff(&app).await;

    // Tenant B: one flow that fails outright, one whose records the ERP rejects.
    let b = app.another_tenant("bob@beta.example", "Beta").await;
    let (crm, erp) = connect_both(&b).await;
    let flow = create_flow(
        &b,
        &contact_flow(&crm, &erp, "Beta contacts", "record.email"),
    )
    .await;
    run_to_end(&b, &flow).await;
    outage(&app, "erp", 503).await;
    touch_contacts(&app, 3, "Changed").await;
    let (failed_run, failed) = run_to_end(&b, &flow).await;
    assert_eq!(status_of(&failed), "Failed");
    outage(&app, "erp", 0).await;

    // A contact carrying a secret, which the ERP will reject (name is not an e-mail).
    let db = app.sandbox_db().await;
    let mut fields = sluice_sandbox::db::find(db, "crm.contacts", "con_000001")
        .await
        .unwrap()
        .unwrap()
        .fields();
    fields.insert("api_token".into(), "tok_live_SECRET123".into());
    sluice_sandbox::db::save(
        db,
        "crm.contacts",
        "con_000001",
        &fields,
        sluice::store::now(),
    )
    .await
    .unwrap();
    let mut broken = contact_flow(&crm, &erp, "Beta broken", "record.name");
    set(&mut broken, "auto_pause_after", "0");
    let broken = create_flow(&b, &broken).await;
    let (partial_run, partial) = run_to_end(&b, &broken).await;
    assert_eq!(status_of(&partial), "Partially failed");

    // Only support staff may open the console.
    assert_eq!(b.get("/support").await.status, 403);

    // Support finds the failed run by its class and provider.
    let found = support
        .get("/support?class=unavailable&provider=sandbox_erp")
        .await;
    assert_eq!(found.status, 200);
    let run_id = failed_run.trim_start_matches("/runs/");
    assert!(found.body.contains(run_id), "{}", found.body);
    assert!(found.body.contains("Beta"));
    assert!(
        !found
            .body
            .contains(partial_run.trim_start_matches("/runs/")),
        "filtered by class"
    );
    let by_tenant = support.get("/support?tenant=sluice-support").await;
    assert!(!by_tenant.body.contains(run_id));

    // The partially failed run: customer data hidden until a reason is given.
    let partial_id = partial_run.trim_start_matches("/runs/");
    let view = support.get(&format!("/support/runs/{partial_id}")).await;
    assert_eq!(view.status, 200, "{}", view.body);
    assert!(view.body.contains("Customer data is hidden"));
    assert!(!view.body.contains("tok_live_SECRET123"));
    assert!(
        !view.body.contains("@example"),
        "no e-mail addresses before a reason"
    );
    let refused = support
        .post_form(
            &format!("/support/runs/{partial_id}/reveal"),
            &[("reason", "x")],
        )
        .await;
    assert_eq!(refused.status, 422);
    let revealed = support
        .post_form(
            &format!("/support/runs/{partial_id}/reveal"),
            &[("reason", "Ticket 4711: customer reports missing customers")],
        )
        .await;
    assert_eq!(revealed.status, 200);
    assert!(revealed.body.contains("api_token"));
    assert!(revealed.body.contains("[redacted]"));
    assert!(
        !revealed.body.contains("tok_live_SECRET123"),
        "secrets stay masked"
    );

    // Replay the failed run (the ERP is back): it succeeds.
    let replay = support
        .post_form(&format!("/support/runs/{run_id}/replay"), &[])
        .await;
    assert_eq!(replay.status, 303, "{}", replay.body);
    let new_run = replay
        .location()
        .trim_start_matches("/support/runs/")
        .to_owned();
    let done = crate::common::flows::wait_for_run(&b, &format!("/runs/{new_run}")).await;
    assert_eq!(status_of(&done), "Succeeded");

    // Support cannot change B's configuration, through the console or B's own pages.
    let pause = support.post_form(&format!("{flow}/pause"), &[]).await;
    assert_eq!(pause.status, 404, "support is not a member of B");
    let edit = post(
        &support,
        &flow,
        &contact_flow(&crm, &erp, "Hijacked", "record.email"),
    )
    .await;
    assert_eq!(edit.status, 404);
    assert!(!b.get(&flow).await.body.contains("Hijacked"));

    // B's audit log shows every support view and action, with the reason.
    let audit = b.get("/settings/audit?action=support.").await;
    for action in [
        "support.searched_runs",
        "support.viewed_run",
        "support.revealed_payloads",
        "support.replayed_run",
    ] {
        assert!(
            audit.body.contains(action),
            "{action} missing: {}",
            audit.body
        );
    }
    assert!(audit.body.contains("Ticket 4711"));
    assert!(audit.body.contains("Sluice support: "));
    // The support tenant's own log has none of B's access.
    let own = support.get("/settings/audit?action=support.").await;
    assert!(!own.body.contains("support.viewed_run"));
}

#[tokio::test]
async fn support_staff_who_belong_to_no_workspace_reach_the_console_and_can_sign_out() {
    let app = TestApp::spawn().await;
    app.owner("ada@example.com", "Acme").await;
    // As `sluice admin create-user` then `sluice admin grant-support` leave them.
    let user = sluice::services::accounts::create_user(
        app.app(),
        "sam@sluice.example",
        "Sam",
        crate::common::PASSWORD,
    )
    .await
    .unwrap();
    grant_support(&app, &user.email).await;
    let sam = app.client();
    let signed_in = sam
        .sign_in("sam@sluice.example", crate::common::PASSWORD)
        .await;

    // Signing in lands where a workspace would be made, which now leads to the console
    // and offers a way out.
    let landing = sam.get(signed_in.location()).await;
    let landing = if landing.status == 303 {
        sam.get(landing.location()).await
    } else {
        landing
    };
    assert!(
        landing.body.contains("Create a workspace"),
        "{}",
        landing.body
    );
    assert!(
        landing.body.contains("href=\"/support\""),
        "{}",
        landing.body
    );
    assert!(landing.body.contains("action=\"/logout\""));

    // The console opens without a workspace; its frame offers no workspace pages.
    let console = sam.get("/support").await;
    assert_eq!(console.status, 200, "{}", console.body);
    assert!(console.body.contains("Support console"));
    assert!(
        !console.body.contains("href=\"/flows\""),
        "no workspace navigation"
    );
    assert!(console.body.contains("action=\"/logout\""));
    assert_eq!(sam.post_form("/logout", &[]).await.status, 303);
    assert_eq!(sam.get("/support").await.status, 303, "signed out");

    // Without the role, the console stays closed.
    let ada = app.client();
    ada.sign_in("ada@example.com", crate::common::PASSWORD)
        .await;
    assert_eq!(ada.get("/support").await.status, 403);
    app.stop().await;
}

#[tokio::test]
async fn support_blames_the_flow_not_the_destination_for_records_its_own_rules_refused() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "6")]).await;
    app.wait_for_seed(6).await;
    let support = support_staff(&app).await;
    let b = app.another_tenant("bob@beta.example", "Beta").await;
    let (crm, erp) = connect_both(&b).await;
    // A validation rule of the flow's own refuses one contact; the ERP takes the rest.
    let mut fields = contact_flow(&crm, &erp, "Strict", "record.email");
    for (k, v) in [
        ("validation.0.target", "external_id"),
        ("validation.0.rule", "pattern"),
        ("validation.0.argument", "^con_00000[1-9]$"),
        ("validation.0.message", "Not a contact we sell to"),
    ] {
        set(&mut fields, k, v);
    }
    let flow = create_flow(&b, &fields).await;
    let (run, page) = run_to_end(&b, &flow).await;
    assert_eq!(
        status_of(&page),
        "Partially failed",
        "{}",
        b.get(&run).await.body
    );

    let found = support.get("/support?class=records").await;
    let row = found
        .body
        .split("<tr>")
        .find(|r| r.contains(run.trim_start_matches("/runs/")))
        .unwrap_or_else(|| panic!("{}", found.body))
        .to_owned();
    assert!(row.contains("the flow"), "{row}");
    assert!(!row.contains("Sandbox ERP"), "{row}");
    assert!(
        row.contains("Partially failed"),
        "statuses read as words: {row}"
    );
    assert!(row.contains("Record failures"), "{row}");
    app.stop().await;
}
