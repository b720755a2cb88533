//! The OpenAPI document through tools Sluice did not write: `openapi-spec-validator`
//! validates it and `openapi-python-client` generates a client from it, which lists runs
//! with filters against a real Sluice (tests/openapi-client/check.py). Runs when the
//! venv of tests/openapi-client exists (or `SLUICE_OPENAPI_CLIENT_VENV` names another);
//! required (fails instead of skipping) with `SLUICE_OPENAPI_CLIENT_TESTS=1`, as in CI.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use crate::common::flows::{connect_both, contact_flow, create_flow, run_to_end, status_of};
use crate::common::{Client, TestApp};
use serde_json::{Value, json};
use std::path::{Path, PathBuf};

/// The Python of the venv that tests/openapi-client/requirements.txt is installed in.
fn venv_python() -> Option<PathBuf> {
    let project = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi-client");
    let venv = std::env::var_os("SLUICE_OPENAPI_CLIENT_VENV")
        .map(PathBuf::from)
        .unwrap_or_else(|| project.join(".venv"));
    let required = std::env::var("SLUICE_OPENAPI_CLIENT_TESTS").is_ok_and(|v| v == "1");
    let python = venv.join("bin/python");
    if !venv.join("bin/openapi-python-client").exists() {
        assert!(
            !required,
            "{} has no openapi-python-client: python3 -m venv {0} && {0}/bin/pip install -r {}",
            venv.display(),
            project.join("requirements.txt").display()
        );
        eprintln!(
            "skipping: no venv with tests/openapi-client/requirements.txt at {}",
            venv.display()
        );
        return None;
    }
    Some(python)
}

/// Runs check.py: validates `spec`, generates the client and lists runs once per query.
async fn check(
    python: &Path,
    spec: &Path,
    base: &str,
    token: &str,
    queries: &[(&str, Value)],
) -> Value {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/openapi-client/check.py");
    let mut command = tokio::process::Command::new(python);
    command
        .arg(script)
        .arg(spec)
        .args(["--base-url", base])
        .env("SLUICE_API_TOKEN", token);
    for (name, query) in queries {
        command.arg("--query").arg(format!("{name}={query}"));
    }
    // Awaited, not blocked on: the app under test answers the client on this runtime.
    let out = command.output().await.expect("run check.py");
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "check.py failed: {stderr}");
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "check.py printed no JSON ({e}): {}\n{stderr}",
            String::from_utf8_lossy(&out.stdout)
        )
    })
}

/// Runs a flow to its end; returns the run's id and the status it ended in.
async fn run(admin: &Client, flow: &str) -> (String, String) {
    let (run, page) = run_to_end(admin, flow).await;
    (
        run.trim_start_matches("/runs/").to_owned(),
        status_of(&page),
    )
}

/// The run ids a query listed, in the order the API gave them.
fn ids(summary: &Value, query: &str) -> Vec<String> {
    summary["queries"][query]
        .as_array()
        .unwrap_or_else(|| panic!("no query {query}: {summary}"))
        .iter()
        .map(|run| run["id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_client_generated_from_the_validated_openapi_document_lists_runs_by_filter() {
    let Some(python) = venv_python() else {
        return;
    };
    let app = TestApp::spawn_with(&[("SLUICE_SANDBOX_SEED_CONTACTS", "3")]).await;
    app.wait_for_seed(3).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    let (crm, erp) = connect_both(&admin).await;
    // Flow A delivers every contact; flow B's ERP refuses one (no e-mail).
    let flow_a = create_flow(
        &admin,
        &contact_flow(&crm, &erp, "Contacts", "record.email"),
    )
    .await;
    let flow_b = create_flow(
        &admin,
        &contact_flow(
            &crm,
            &erp,
            "Contacts, one refused",
            "record.email if record.id != 'con_000001' else ''",
        ),
    )
    .await;
    let (a1, a1_status) = run(&admin, &flow_a).await;
    let (b1, b1_status) = run(&admin, &flow_b).await;
    let (a2, a2_status) = run(&admin, &flow_a).await;
    assert_eq!(
        (a1_status.as_str(), b1_status.as_str(), a2_status.as_str()),
        ("Succeeded", "Partially failed", "Succeeded")
    );
    let flow_a = flow_a.trim_start_matches("/flows/");
    let flow_b = flow_b.trim_start_matches("/flows/");

    let token = admin.create_api_token("openapi-client", "viewer").await;
    let doc = admin.get("/api/v1/openapi.json").await;
    assert_eq!(doc.status, 200);
    let dir = tempfile::tempdir().unwrap();
    let spec = dir.path().join("openapi.json");
    std::fs::write(&spec, &doc.body).unwrap();
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).to_rfc3339();
    let summary = check(
        &python,
        &spec,
        &app.base,
        &token,
        &[
            ("all", json!({})),
            ("succeeded", json!({ "status": "succeeded" })),
            ("partially_failed", json!({ "status": "partially_failed" })),
            ("flow_b", json!({ "flow_id": flow_b })),
            (
                "flow_a_newest",
                json!({ "flow_id": flow_a, "status": "succeeded", "limit": 1 }),
            ),
            ("flow_a_before", json!({ "flow_id": flow_a, "before": a2 })),
            (
                "flow_b_succeeded",
                json!({ "flow_id": flow_b, "status": "succeeded" }),
            ),
            ("manual", json!({ "trigger": "manual" })),
            ("scheduled", json!({ "trigger": "schedule" })),
            ("from_tomorrow", json!({ "from": tomorrow })),
            ("to_tomorrow", json!({ "to": tomorrow })),
        ],
    )
    .await;
    assert!(
        summary["openapi"].as_str().unwrap().starts_with("3."),
        "{summary}"
    );

    // Newest first; each filter keeps exactly the runs it names.
    assert_eq!(ids(&summary, "all"), [&*a2, &*b1, &*a1]);
    assert_eq!(ids(&summary, "succeeded"), [&*a2, &*a1]);
    assert_eq!(ids(&summary, "partially_failed"), [&*b1]);
    assert_eq!(ids(&summary, "flow_b"), [&*b1]);
    assert_eq!(ids(&summary, "flow_a_newest"), [&*a2]);
    assert_eq!(ids(&summary, "flow_a_before"), [&*a1]);
    assert_eq!(ids(&summary, "manual"), [&*a2, &*b1, &*a1]);
    assert_eq!(ids(&summary, "to_tomorrow"), [&*a2, &*b1, &*a1]);
    for excluded in ["flow_b_succeeded", "scheduled", "from_tomorrow"] {
        assert_eq!(ids(&summary, excluded), Vec::<String>::new(), "{excluded}");
    }
    // The generated models carried the fields through.
    let b = &summary["queries"]["flow_b"][0];
    assert_eq!(
        (&b["flow_id"], &b["status"], &b["trigger"]),
        (&json!(flow_b), &json!("partially_failed"), &json!("manual")),
        "{summary}"
    );
    app.stop().await;
}
