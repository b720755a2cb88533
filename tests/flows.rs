//! Flows end to end against the built-in sandbox: forms, dry run, runs, the ledger
//! (changed records only), dead letters and replay, versions, webhooks, and isolation.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;
use common::TestApp;
use common::flows::{connect_both, contact_flow, count, post, run_to_end, wait_for_run};

#[tokio::test]
async fn ten_thousand_contacts_sync_once_then_only_changes_and_rejected_records_replay_after_a_fix()
{
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "10000")]).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    app.wait_for_seed(10_000).await;

    // Contacts in Osaka (every 8th) get an address the ERP refuses.
    let broken = "record.email if record.city != 'Osaka' else 'not-an-email'";
    let created = post(
        &admin,
        "/flows",
        &contact_flow(&crm, &erp, "Contacts to customers", broken),
    )
    .await;
    assert_eq!(created.status, 303, "{}", created.body);
    let flow = created.location().to_owned();

    let (run, first) = run_to_end(&admin, &flow).await;
    assert!(first.body.contains("Partially failed"), "{}", first.body);
    assert_eq!(count(&first, "read"), 10_000);
    assert_eq!(count(&first, "written"), 8_750);
    assert_eq!(count(&first, "failed"), 1_250);
    assert_eq!(app.sandbox_records("erp.customers").await, 8_750);
    let letters = admin.get(&format!("{flow}/dead-letters")).await;
    assert!(
        letters.body.contains("rejected") && letters.body.contains("e-mail"),
        "{}",
        letters.body
    );
    let log = admin.get(&run).await;
    assert!(
        log.body.contains("Page 20: read 500"),
        "the run log lists pages"
    );
    assert!(
        log.body.contains("POST /customers/batch"),
        "exchanges are logged without secrets"
    );

    // Change 37 deliverable contacts at the source: the next run writes exactly those.
    let db = app.app().store.db();
    let mut changed = 0;
    let mut i = 0;
    while changed < 37 {
        if i % 8 != 6 {
            let id = format!("con_{i:06}");
            let mut record = sluice::sandbox::db::find(db, "crm.contacts", &id)
                .await
                .unwrap()
                .unwrap();
            record
                .data
                .insert("name".into(), format!("Changed {i}").into());
            sluice::sandbox::db::save(db, "crm.contacts", &id, &record.data, sluice::store::now())
                .await
                .unwrap();
            changed += 1;
        }
        i += 1;
    }
    let (_, second) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&second, "written"), 37, "{}", second.body);
    assert_eq!(count(&second, "unchanged"), 10_000 - 37 - 1_250);
    assert_eq!(
        count(&second, "failed"),
        1_250,
        "still broken: the mapping is unchanged"
    );
    assert_eq!(app.sandbox_records("erp.customers").await, 8_750);

    // Fix the mapping (version 2) and replay the dead letters: delivered once.
    let mut fixed = contact_flow(&crm, &erp, "Contacts to customers", "record.email");
    fixed.push(("expected_version".into(), "1".into()));
    let saved = post(&admin, &flow, &fixed).await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let diff = admin.get(&format!("{flow}/diff?from=1&to=2")).await;
    assert!(
        diff.body.contains("mapping.2.expression") && diff.body.contains("Osaka"),
        "{}",
        diff.body
    );

    let replay = admin
        .post_form(&format!("{flow}/dead-letters/replay"), &[("scope", "all")])
        .await;
    assert_eq!(replay.status, 303, "{}", replay.body);
    let replayed = wait_for_run(&admin, replay.location()).await;
    assert!(replayed.body.contains("Succeeded"), "{}", replayed.body);
    assert_eq!(count(&replayed, "written"), 1_250);
    assert_eq!(app.sandbox_records("erp.customers").await, 10_000);
    let open = admin.get(&format!("{flow}/dead-letters")).await;
    assert!(
        open.body.contains("Every record was delivered."),
        "{}",
        open.body
    );
    let again = admin
        .post_form(&format!("{flow}/dead-letters/replay"), &[("scope", "all")])
        .await;
    assert_eq!(again.status, 303);
    assert!(
        !again.location().starts_with("/runs/"),
        "nothing left to replay"
    );

    // And a third run has nothing to do.
    let (_, third) = run_to_end(&admin, &flow).await;
    assert_eq!(count(&third, "written"), 0);
    assert_eq!(count(&third, "unchanged"), 10_000);
    app.stop().await;
}
