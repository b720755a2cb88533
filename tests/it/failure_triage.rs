//! Failure triage at volume: a flow's dead letters grouped by error with counts, each
//! group replayed or discarded at once, the table filtered by error class, and counts
//! on every tab.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::TestApp;
use crate::common::flows::{connect_both, contact_flow, create_flow, run_to_end, set};

#[tokio::test]
async fn dead_letters_are_grouped_by_error_and_a_group_is_replayed_or_discarded_at_once() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "12")]).await;
    app.wait_for_seed(12).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    // Three contacts lose their e-mail (the ERP refuses them); two others fail the
    // flow's own rule that a city is needed.
    let mut fields = contact_flow(
        &crm,
        &erp,
        "Contacts",
        "'' if record.id in ['con_000001', 'con_000002', 'con_000003'] else record.email",
    );
    set(
        &mut fields,
        "mapping.3.expression",
        "'' if record.id in ['con_000004', 'con_000005'] else record.city",
    );
    set(&mut fields, "validation.0.target", "city");
    set(&mut fields, "validation.0.rule", "required");
    set(
        &mut fields,
        "validation.0.message",
        "A customer needs a city.",
    );
    let flow = create_flow(&admin, &fields).await;
    run_to_end(&admin, &flow).await;

    let page = admin.get(&format!("{flow}/dead-letters")).await;
    let groups = page.text("#letter-groups").unwrap();
    assert!(
        groups.contains("5 open dead letter(s) in 2 group(s)"),
        "{groups}"
    );
    assert!(groups.contains("A customer needs a city."), "{groups}");
    let rows: Vec<String> = page
        .html()
        .select(&scraper::Selector::parse("#letter-groups tbody tr").unwrap())
        .map(|r| r.text().collect::<String>())
        .collect();
    assert_eq!(rows.len(), 2, "{rows:?}");
    assert!(
        rows[0].contains("rejected") && rows[0].contains('3'),
        "largest first: {rows:?}"
    );
    assert!(
        rows[1].contains("validation") && rows[1].contains('2'),
        "{rows:?}"
    );
    assert_eq!(page.text("#count-open").as_deref(), Some("5"));

    // The table filtered by class.
    let validation = admin
        .get(&format!("{flow}/dead-letters?class=validation"))
        .await;
    let listed = validation
        .html()
        .select(&scraper::Selector::parse("#letters tbody tr").unwrap())
        .count();
    assert_eq!(listed, 2, "{}", validation.body);

    // Discarding the validation group touches only its letters.
    let signature = |page: &crate::common::Page, class: &str| {
        let html = page.html();
        let forms = scraper::Selector::parse("#letter-groups form").unwrap();
        let input = scraper::Selector::parse("input[name='signature']").unwrap();
        html.select(&forms)
            .filter_map(|f| f.select(&input).next())
            .filter_map(|i| i.value().attr("value"))
            .find(|v| v.starts_with(class))
            .unwrap()
            .to_owned()
    };
    let discard = signature(&page, "validation");
    let done = admin
        .post_form(
            &format!("{flow}/dead-letters/discard"),
            &[("scope", "group"), ("signature", discard.as_str())],
        )
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let after = admin.get(&format!("{flow}/dead-letters")).await;
    assert_eq!(after.text("#count-open").as_deref(), Some("3"));
    assert_eq!(after.text("#count-discarded").as_deref(), Some("2"));
    assert!(!after.text("#letter-groups").unwrap().contains("city"));

    // Replaying the other group starts a replay run of its three records.
    let replay = signature(&after, "rejected");
    let started = admin
        .post_form(
            &format!("{flow}/dead-letters/replay"),
            &[("scope", "group"), ("signature", replay.as_str())],
        )
        .await;
    assert_eq!(started.status, 303, "{}", started.body);
    assert!(
        started.location().starts_with("/runs/"),
        "{}",
        started.location()
    );
    let progress = crate::common::flows::wait_for_run(&admin, started.location()).await;
    assert_eq!(crate::common::flows::count(&progress, "read"), 3);

    // A group that no longer has open letters changes nothing.
    let gone = admin
        .post_form(
            &format!("{flow}/dead-letters/discard"),
            &[("scope", "group"), ("signature", discard.as_str())],
        )
        .await;
    assert_eq!(gone.status, 303);
    let flash = admin.get(gone.location()).await;
    assert!(
        flash
            .body
            .contains("No open dead letter has this error any more"),
        "{}",
        flash.body
    );
    app.stop().await;
}
