//! The flow, connection and connect-link lists are searched by name and filtered by one
//! choice each; a search that matches nothing says so and offers the whole list back.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{connect_both, contact_flow, create_flow};
use crate::common::{Client, TestApp};

/// The first text of each row's first cell (a flow's name, not its version after it).
async fn listed(client: &Client, path: &str) -> Vec<String> {
    let page = client.get(path).await;
    assert_eq!(page.status, 200, "{path}: {}", page.body);
    let row = scraper::Selector::parse("table tbody tr td:first-child").unwrap();
    page.html()
        .select(&row)
        .map(|c| c.text().next().unwrap_or_default().trim().to_owned())
        .collect()
}

#[tokio::test]
async fn lists_are_searched_by_name_and_filtered_by_status_provider_or_state() {
    let app = TestApp::spawn().await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    let flow = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    admin.post_form(&format!("{flow}/duplicate"), &[]).await;

    assert_eq!(listed(&admin, "/flows?q=COPY").await, ["Contacts (copy)"]);
    assert_eq!(
        listed(&admin, "/flows?only=paused").await,
        ["Contacts (copy)"]
    );
    assert_eq!(listed(&admin, "/flows?only=active").await, ["Contacts"]);
    assert_eq!(listed(&admin, "/flows?q=contacts&only=").await.len(), 2);
    let none = admin.get("/flows?q=invoices").await;
    assert!(
        none.text("#no-match")
            .unwrap()
            .contains("None of the 2 flow(s)")
    );

    assert_eq!(listed(&admin, "/connections?q=erp").await, ["Sandbox ERP"]);
    assert_eq!(
        listed(&admin, "/connections?only=sandbox_crm").await,
        ["Sandbox CRM"]
    );
    assert!(
        admin
            .get("/connections?q=zzz")
            .await
            .text("#no-match")
            .is_some()
    );

    for customer in ["Globex", "Initech"] {
        admin
            .post_form(
                "/connect-links",
                &[
                    ("provider", "sandbox_crm"),
                    ("customer_ref", customer),
                    ("ttl_hours", "2"),
                ],
            )
            .await;
    }
    let links = admin.get("/connect-links?q=initech").await;
    let revoke = links.action_containing("/revoke");
    assert_eq!(admin.post_form(&revoke, &[]).await.status, 303);
    assert_eq!(listed(&admin, "/connect-links?q=glob").await, ["Globex"]);
    assert_eq!(
        listed(&admin, "/connect-links?only=revoked").await,
        ["Initech"]
    );
    assert_eq!(
        listed(&admin, "/connect-links?only=pending").await,
        ["Globex"]
    );
    app.stop().await;
}
