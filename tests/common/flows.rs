//! Helpers for flow tests: connecting the sandbox, the editor's fields, running a flow
//! to its end and reading the counts.

use super::{Client, Page, TestApp};
use std::time::Duration;

/// Connects the sandbox CRM and ERP; returns their connection ids.
pub async fn connect_both(admin: &Client) -> (String, String) {
    let crm = admin.connect_sandbox("sandbox_crm").await;
    let erp = admin.connect_sandbox("sandbox_erp").await;
    let id = |p: &str| p.trim_start_matches("/connections/").to_owned();
    (id(&crm), id(&erp))
}

/// The editor's fields for contacts → customers, with `email` as given.
pub fn contact_flow<'a>(
    crm: &'a str,
    erp: &'a str,
    name: &'a str,
    email: &'a str,
) -> Vec<(String, String)> {
    [
        ("name", name.to_owned()),
        ("source", format!("{crm}:contacts")),
        ("destination", format!("{erp}:customers")),
        ("write_mode", "upsert".into()),
        ("key_field", "external_id".into()),
        ("mapping.0.target", "external_id".into()),
        ("mapping.0.expression", "record.id".into()),
        ("mapping.1.target", "email".into()),
        ("mapping.1.expression", email.into()),
        ("mapping.1.field_type", "text".into()),
        ("mapping.2.target", "name".into()),
        ("mapping.2.expression", "record.name".into()),
        ("mapping.3.target", "city".into()),
        ("mapping.3.expression", "record.city | upper".into()),
        ("record_key", "record.id".into()),
        ("batch_size", "500".into()),
        ("trigger", "manual".into()),
        ("auto_pause_after", "5".into()),
        ("action", "save".into()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v))
    .collect()
}

pub async fn post(client: &Client, path: &str, fields: &[(String, String)]) -> Page {
    let borrowed: Vec<(&str, &str)> = fields
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    client.post_form(path, &borrowed).await
}

/// The number shown in `<div … id="count-{name}">` (perhaps inside a link).
pub fn count(page: &Page, name: &str) -> i64 {
    let text = page
        .text(&format!("#count-{name}"))
        .unwrap_or_else(|| panic!("no count {name}"));
    // Counts are written for people, with thousands separators.
    text.trim()
        .replace(',', "")
        .parse()
        .unwrap_or_else(|_| panic!("count {name} is not a number: {text}"))
}

/// Starts "Run now" and waits for the run to end; returns the final progress fragment.
pub async fn run_to_end(admin: &Client, flow: &str) -> (String, Page) {
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    assert_eq!(started.status, 303, "{}", started.body);
    let run = started.location().to_owned();
    (run.clone(), wait_for_run(admin, &run).await)
}

pub async fn wait_for_run(admin: &Client, run: &str) -> Page {
    for _ in 0..1200 {
        let page = admin.get(&format!("{run}/progress")).await;
        assert_eq!(page.status, 200, "{}", page.body);
        if page.headers.contains_key("x-poll-stop") {
            return page;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    panic!("run {run} did not finish");
}

/// Replaces (or adds) one field of a form.
pub fn set(fields: &mut Vec<(String, String)>, key: &str, value: &str) {
    fields.retain(|(k, _)| k != key);
    fields.push((key.to_owned(), value.to_owned()));
}

/// Creates a flow through the editor; returns its path.
pub async fn create_flow(admin: &Client, fields: &[(String, String)]) -> String {
    let created = post(admin, "/flows", fields).await;
    assert_eq!(created.status, 303, "{}", created.body);
    created.location().to_owned()
}

/// Renames `n` CRM contacts so the next run has records to write.
pub async fn touch_contacts(app: &TestApp, n: usize, tag: &str) {
    for i in 0..n {
        edit_contact(app, &format!("con_{i:06}"), "name", &format!("{tag} {i}")).await;
    }
}

/// Sets one field of a sandbox CRM contact, as an edit in the CRM would (it counts as a
/// change for incremental reads).
pub async fn edit_contact(app: &TestApp, id: &str, field: &str, value: &str) {
    let db = app.sandbox_db().await;
    let mut fields = sluice_sandbox::db::find(db, "crm.contacts", id)
        .await
        .unwrap()
        .unwrap()
        .fields();
    fields.insert(field.into(), value.into());
    sluice_sandbox::db::save(db, "crm.contacts", id, &fields, sluice::store::now())
        .await
        .unwrap();
}

/// Starts or ends (status 0) a simulated outage of a sandbox API.
pub async fn outage(app: &TestApp, api: &str, status: u16) {
    let secret = sluice::connectors::session::sandbox_client_secret(&app.app().master_key);
    let answer = app
        .client()
        .http
        .post(format!("{}/sandbox/outages", app.base))
        .bearer_auth(secret)
        .json(&serde_json::json!({ "api": api, "status": status }))
        .send()
        .await
        .unwrap();
    assert_eq!(answer.status(), 204);
}

/// The status badge of a run page or fragment.
pub fn status_of(page: &Page) -> String {
    page.text("#run-status").expect("run status")
}

/// Starts a run through "Run now"; returns its id (for tests whose app has no workers,
/// which execute it themselves).
pub async fn start_run(admin: &Client, flow: &str) -> sluice::domain::RunId {
    let started = admin.post_form(&format!("{flow}/run"), &[]).await;
    assert_eq!(started.status, 303, "{}", started.body);
    started
        .location()
        .rsplit('/')
        .next()
        .unwrap()
        .parse()
        .unwrap()
}

/// The scope a job executes `run` in (its workspace's).
pub async fn run_scope_of(app: &TestApp, run: sluice::domain::RunId) -> sluice::domain::TenantCtx {
    use sea_orm::{ConnectionTrait, Statement};
    let db = app.app().store.db();
    let row = db
        .query_one_raw(Statement::from_sql_and_values(
            db.get_database_backend(),
            "SELECT tenant_id FROM runs WHERE id = $1",
            [run.into()],
        ))
        .await
        .unwrap()
        .unwrap();
    sluice::jobs::run_scope(row.try_get("", "tenant_id").unwrap())
}
