//! Flows as files and copies: export, import (UI, API and the `sluice flows` command)
//! and duplicate, each within the caller's workspace.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{connect_both, contact_flow, create_flow, run_to_end, status_of};
use crate::common::{TestApp, api_send};
use reqwest::Method;
use serde_json::Value;

async fn export(client: &crate::common::Client, flow: &str) -> (crate::common::Page, Value) {
    let page = client.get(&format!("{flow}/export")).await;
    assert_eq!(page.status, 200, "{}", page.body);
    let document = serde_json::from_str(&page.body).unwrap();
    (page, document)
}

#[tokio::test]
async fn an_exported_flow_imports_into_another_workspace_by_connection_names_and_runs() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "10")]).await;
    app.wait_for_seed(10).await;
    let ada = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&ada).await;
    let flow = create_flow(&ada, &contact_flow(&crm, &erp, "Contacts", "record.email")).await;

    let (page, document) = export(&ada, &flow).await;
    assert!(
        page.headers["content-disposition"]
            .to_str()
            .unwrap()
            .contains("filename=\"contacts.sluice-flow.json\""),
        "{:?}",
        page.headers
    );
    assert_eq!(document["sluice_flow"], 1);
    assert_eq!(document["source"]["connection"]["provider"], "sandbox_crm");
    assert!(
        !page.body.contains(&crm),
        "no ids of this workspace: {}",
        page.body
    );

    // Another workspace has its own connections with the same names.
    let bob = app.another_tenant("bob@example.com", "Beta").await;
    let missing = bob
        .post_form("/flows/import", &[("document", page.body.as_str())])
        .await;
    assert_eq!(missing.status, 422, "{}", missing.body);
    assert!(
        missing.body.contains(
            "<code>source.connection</code>: This workspace has no connection named Sandbox CRM."
        ),
        "{}",
        missing.body
    );
    assert_eq!(
        missing.text("#document").as_deref(),
        Some(page.body.as_str()),
        "the text is kept"
    );
    connect_both(&bob).await;
    let imported = bob
        .post_form("/flows/import", &[("document", page.body.as_str())])
        .await;
    assert_eq!(imported.status, 303, "{}", imported.body);
    let copy = imported.location().to_owned();
    let (_, progress) = run_to_end(&bob, &copy).await;
    assert_eq!(status_of(&progress), "Succeeded");
    assert_eq!(export(&bob, &copy).await.1, document, "the same document");

    // The same name again is refused, unless it replaces that flow with a new version.
    let again = bob
        .post_form("/flows/import", &[("document", page.body.as_str())])
        .await;
    assert_eq!(again.status, 422);
    assert!(
        again.body.contains("A flow named Contacts already exists."),
        "{}",
        again.body
    );
    let mut changed = document.clone();
    changed["batch_size"] = 25.into();
    let changed = changed.to_string();
    let replaced = bob
        .post_form(
            "/flows/import",
            &[("document", changed.as_str()), ("replace", "on")],
        )
        .await;
    assert_eq!(replaced.status, 303, "{}", replaced.body);
    assert_eq!(replaced.location(), copy);
    assert!(bob.get(&copy).await.body.contains("version 2"));

    // Ids of one workspace mean nothing in another.
    assert_eq!(bob.get(&format!("{flow}/export")).await.status, 404);
    app.stop().await;
}

#[tokio::test]
async fn a_broken_document_is_refused_with_the_reason_and_viewers_cannot_import() {
    let app = TestApp::spawn().await;
    let ada = app.owner("ada@example.com", "Acme").await;
    for (text, why) in [
        ("{nope", "This is not JSON"),
        (
            "{\"name\": \"x\"}",
            "no &#34;sluice_flow&#34; format number",
        ),
        (
            "{\"sluice_flow\": 7}",
            "format 7; this Sluice reads format 1",
        ),
        (
            "{\"sluice_flow\": 1, \"name\": \"x\"}",
            "missing field `source`",
        ),
    ] {
        let page = ada.post_form("/flows/import", &[("document", text)]).await;
        assert_eq!(page.status, 422, "{text}: {}", page.body);
        assert!(page.body.contains(why), "{text}: {}", page.body);
    }
    let token = ada.create_api_token("viewer", "viewer").await;
    let (status, body) = api_send(
        &ada,
        Method::POST,
        &token,
        "/api/v1/flows/import",
        serde_json::json!({"sluice_flow": 1}),
    )
    .await;
    assert_eq!(status, 403, "{body}");
    app.stop().await;
}

#[tokio::test]
async fn a_duplicate_is_a_paused_copy_with_a_free_name() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    let ada = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&ada).await;
    let flow = create_flow(&ada, &contact_flow(&crm, &erp, "Contacts", "record.email")).await;

    let copied = ada.post_form(&format!("{flow}/duplicate"), &[]).await;
    assert_eq!(copied.status, 303, "{}", copied.body);
    let edit = copied.location().to_owned();
    assert!(edit.ends_with("/edit"), "{edit}");
    let copy = edit.trim_end_matches("/edit");
    let page = ada.get(copy).await.body;
    assert!(page.contains("Contacts (copy)"), "{page}");
    assert!(
        page.contains("A copy of Contacts: check it, then enable it."),
        "{page}"
    );
    let (_, original) = export(&ada, &flow).await;
    let (_, duplicate) = export(&ada, copy).await;
    let without_name = |mut d: Value| {
        d["name"] = Value::Null;
        d
    };
    assert_eq!(without_name(original), without_name(duplicate));

    let again = ada.post_form(&format!("{flow}/duplicate"), &[]).await;
    let second = again.location().trim_end_matches("/edit").to_owned();
    assert!(ada.get(&second).await.body.contains("Contacts (copy 2)"));
    app.stop().await;
}

#[tokio::test]
async fn the_api_and_the_command_line_export_import_and_duplicate() {
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "5")]).await;
    let ada = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&ada).await;
    let flow = create_flow(&ada, &contact_flow(&crm, &erp, "Contacts", "record.email")).await;
    let id = flow.trim_start_matches("/flows/");
    let token = ada.create_api_token("deploy", "admin").await;

    let (status, document) = ada.api(&token, &format!("/api/v1/flows/{id}/export")).await;
    assert_eq!(status, 200, "{document}");
    let (status, copy) = api_send(
        &ada,
        Method::POST,
        &token,
        &format!("/api/v1/flows/{id}/duplicate"),
        Value::Null,
    )
    .await;
    assert_eq!(
        (status, copy["status"].as_str()),
        (201, Some("paused")),
        "{copy}"
    );
    let mut renamed = document.clone();
    renamed["name"] = "Contacts from the API".into();
    let (status, created) =
        api_send(&ada, Method::POST, &token, "/api/v1/flows/import", renamed).await;
    assert_eq!(status, 201, "{created}");
    assert_eq!(created["version"], 1);
    let (status, refused) = api_send(
        &ada,
        Method::POST,
        &token,
        "/api/v1/flows/import",
        document.clone(),
    )
    .await;
    assert_eq!(status, 422, "{refused}");
    assert_eq!(refused["error"]["fields"][0]["field"], "name", "{refused}");

    // The command line: export by name to a file, change it, deploy it back.
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("contacts.json");
    // Awaited, not blocked on: the server under test answers on this test's runtime.
    let sluice = |args: &[&str]| {
        let mut command = tokio::process::Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .args(["flows", "--url", &ada.base])
            .args(args)
            .env("SLUICE_API_TOKEN", &token)
            .env("SLUICE_DATA_DIR", dir.path());
        async move {
            let out = command.output().await.unwrap();
            (
                out.status.success(),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            )
        }
    };
    let (ok, _, err) = sluice(&["export", "Contacts", "-o", file.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    let mut on_disk: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
    assert_eq!(on_disk, document);
    let (ok, _, err) = sluice(&["import", file.to_str().unwrap()]).await;
    assert!(!ok);
    assert!(
        err.contains("name: A flow named Contacts already exists."),
        "{err}"
    );
    on_disk["batch_size"] = 50.into();
    std::fs::write(&file, on_disk.to_string()).unwrap();
    let (ok, out, err) = sluice(&["import", "--replace", file.to_str().unwrap()]).await;
    assert!(ok, "{err}");
    assert_eq!(
        out.trim(),
        format!("imported Contacts as version 2 of flow {id}")
    );
    let (ok, out, _) = sluice(&["list"]).await;
    assert!(ok);
    assert!(
        out.contains(&format!("{id}\tactive\tv2\tContacts")),
        "{out}"
    );
    assert_eq!(out.lines().count(), 3, "{out}");
    let (ok, _, err) = sluice(&["export", "Nope"]).await;
    assert!(!ok && err.contains("no flow is named \"Nope\""), "{err}");
    app.stop().await;
}
