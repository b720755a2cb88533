//! The generic connectors, described only through their connect forms: the HTTP JSON
//! API (an API key in a query parameter here) against an API that pages by a next link
//! in the body, filters by a changed-since parameter and writes one record at a time
//! inside an envelope; and the Custom OAuth 2.0 API against an authorization server and
//! API of the tenant's own (PKCE, client secret by basic authentication) that pages by
//! offset until a `has_more` flag is false and takes batches with per-record results.
//!
//! These fakes follow no vendor: they are the kinds of API the forms describe, and
//! refuse what such an API would (a missing key, a wrong envelope, an unknown cursor).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, Connected, KeyVendor, OAuthVendor, Request, SEEDED, Vendor, approve,
    at, bearer, flow_fields, redeem, run_ending,
};
use crate::common::flows::{count, create_flow, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const NOTES: &str = "https://notes.example.test";
const AUTH: &str = "https://auth.tenant.example.test";
const API: &str = "https://api.tenant.example.test";
const KEY: &str = "notes-key-123";

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// A notes API: `GET /v2/notes?key=…&limit=…[&updated_since=…]` answers
/// `{"items": […], "links": {"next": "/v2/notes?cursor=…"}}`; notes are created with
/// `POST /v2/notes` and changed with `PATCH /v2/notes/{id}`, both as `{"note": {…}}`.
#[derive(Default)]
pub struct NotesApi {
    notes: BTreeMap<u64, Value>,
    clock: i64,
}

impl NotesApi {
    fn insert(&mut self, title: &str) -> u64 {
        self.clock += 1;
        let id = 100 + self.notes.len() as u64;
        self.notes.insert(
            id,
            json!({ "id": id, "title": title, "updated_at": stamp(self.clock) }),
        );
        id
    }

    fn touch(&mut self, id: u64, title: &str) {
        self.clock += 1;
        let note = self.notes.get_mut(&id).unwrap();
        note["title"] = json!(title);
        note["updated_at"] = json!(stamp(self.clock));
    }

    fn list(&self, r: &Request) -> Answer {
        let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
        if !(1..=100).contains(&limit) {
            return Answer::json(400, json!({ "error": "limit must be 1 to 100" }));
        }
        let since = r
            .param("updated_since")
            .map(|s| chrono::DateTime::parse_from_rfc3339(s).unwrap());
        let after: u64 = match r.param("cursor") {
            None => 0,
            Some(c) => match c.strip_prefix("after-").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => return Answer::json(400, json!({ "error": "unknown cursor" })),
            },
        };
        let matching: Vec<&Value> = self
            .notes
            .values()
            .filter(|n| n["id"].as_u64().unwrap() > after)
            .filter(|n| {
                since.is_none_or(|s| {
                    chrono::DateTime::parse_from_rfc3339(n["updated_at"].as_str().unwrap()).unwrap()
                        >= s
                })
            })
            .collect();
        let page: Vec<Value> = matching.iter().take(limit).map(|n| (*n).clone()).collect();
        let next = (matching.len() > limit).then(|| {
            let mut link = format!(
                "/v2/notes?cursor=after-{}&limit={limit}&key={KEY}",
                page.last().unwrap()["id"]
            );
            if let Some(s) = r.param("updated_since") {
                link.push_str(&format!("&updated_since={s}"));
            }
            link
        });
        Answer::json(200, json!({ "items": page, "links": { "next": next } }))
    }

    fn write(&mut self, r: &Request, id: Option<u64>) -> Answer {
        let Some(note) = r
            .json()
            .and_then(|b| b.get("note").cloned())
            .filter(Value::is_object)
        else {
            return Answer::json(422, json!({ "error": "expected {\"note\": {…}}" }));
        };
        let title = note["title"].as_str().unwrap_or_default().to_owned();
        if title.is_empty() {
            return Answer::json(422, json!({ "error": "title can't be blank" }));
        }
        let id = match id {
            None => self.insert(&title),
            Some(id) if self.notes.contains_key(&id) => {
                self.touch(id, &title);
                id
            }
            Some(_) => return Answer::json(404, json!({ "error": "no such note" })),
        };
        Answer::json(
            if r.method == "POST" { 201 } else { 200 },
            json!({ "note": self.notes[&id] }),
        )
    }
}

impl Vendor for NotesApi {
    fn handle(&mut self, r: &Request) -> Answer {
        if r.param("key") != Some(KEY) {
            return Answer::json(401, json!({ "error": "missing or wrong key" }));
        }
        let one = |p: &str| p.strip_prefix("/v2/notes/").and_then(|id| id.parse().ok());
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/v2/notes") => self.list(r),
            ("POST", "/v2/notes") => self.write(r, None),
            ("PATCH", p) if one(p).is_some() => self.write(r, one(p)),
            _ => Answer::json(404, json!({ "error": "not found" })),
        }
    }
}

/// The notes API described in the HTTP JSON API's form.
const NOTES_FORM: &[(&str, &str)] = &[
    ("field_base_url", "https://notes.example.test/v2"),
    ("field_key_style", "query"),
    ("field_key_name", "key"),
    ("field_list_path", "/notes"),
    ("field_records_path", "$.items"),
    ("field_updated_field", "updated_at"),
    ("field_updated_since_param", "updated_since"),
    ("field_paging_style", "next_url"),
    ("field_next_url_path", "$.links.next"),
    ("field_page_size_param", "limit"),
    ("field_page_size", "100"),
    ("field_write_path", "/notes"),
    ("field_update_path", "/notes/{id}"),
    ("field_update_method", "PATCH"),
    ("field_write_body_key", "note"),
];

async fn notes(extra: &[(&str, &str)]) -> Connected<NotesApi> {
    KeyVendor {
        provider: "http_json",
        origins: &[NOTES],
        key: KEY,
    }
    .connect_with::<NotesApi>(extra, NOTES_FORM)
    .await
}

#[tokio::test]
async fn a_described_api_pages_by_next_link_and_reads_what_changed_since() {
    let s = notes(&[]).await;
    {
        let mut api = s.vendor.lock().unwrap();
        for i in 0..250 {
            api.insert(&format!("Note {i}"));
        }
    }
    let flow = s
        .read_into_companies(
            "records",
            "record.id",
            &[
                ("name", "record.title"),
                ("domain", "record.id ~ '.example'"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    let lists = s.fake.requests_to("/v2/notes");
    assert_eq!(lists.len(), 3, "100, 100, 50 by the next link");
    assert_eq!(lists[1].param("cursor"), Some("after-199"));

    {
        let mut api = s.vendor.lock().unwrap();
        api.touch(120, "Changed");
        api.touch(121, "Changed");
    }
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    let last = s.fake.requests_to("/v2/notes").pop().unwrap();
    assert_eq!(last.param("updated_since"), Some(stamp(250).as_str()));
    assert_eq!(count(&page, "read"), 3);
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn a_described_api_takes_creates_and_updates_inside_its_envelope() {
    let s = notes(SEEDED).await;
    let flow = s
        .contacts_into(
            "records",
            &[("title", "record.name if record.id != 'con_000003' else ''")],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("title can"), "{dead}");

    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    let patches: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(patches.iter().all(|p| {
        p.json().unwrap()["note"]["title"]
            .as_str()
            .unwrap()
            .starts_with("Renamed")
    }));
    assert_eq!(
        s.vendor.lock().unwrap().notes.len(),
        11,
        "updated, not created again"
    );
    s.app.stop().await;
}

const CLIENT_ID: &str = "tenant-client";
const CLIENT_SECRET: &str = "tenant-secret";

/// The tenant's own API behind its own authorization server: `GET /records?offset=…&
/// limit=…` answers `{"records": […], "has_more": bool}`; `POST /records/batch` takes
/// `{"records": […]}` and answers `{"results": [{"status", "id"}]}` in order.
#[derive(Default)]
pub struct OwnApi {
    records: Vec<Value>,
    codes: Codes,
    tokens: Vec<String>,
}

impl Vendor for OwnApi {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/authorize") => return approve(&mut self.codes, r, CLIENT_ID, "code{n}"),
            ("POST", "/token") => {
                return match redeem(
                    &mut self.codes,
                    r,
                    (CLIENT_ID, CLIENT_SECRET),
                    ClientAuth::Basic,
                ) {
                    Err(error) => Answer::json(400, json!({ "error": error })),
                    Ok(()) => {
                        let token = format!("own-token-{}", self.tokens.len());
                        self.tokens.push(token.clone());
                        Answer::json(
                            200,
                            json!({ "access_token": token, "token_type": "Bearer", "expires_in": 3600 }),
                        )
                    }
                };
            }
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return Answer::json(401, json!({ "error": "invalid_token" }));
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/records") => {
                let offset: usize = r
                    .param("offset")
                    .map_or(Ok(0), str::parse)
                    .unwrap_or(usize::MAX);
                let limit: usize = r.param("limit").and_then(|l| l.parse().ok()).unwrap_or(0);
                if offset == usize::MAX || !(1..=50).contains(&limit) {
                    return Answer::json(
                        400,
                        json!({ "error": "offset and limit (1 to 50) please" }),
                    );
                }
                let page: Vec<Value> = self
                    .records
                    .iter()
                    .skip(offset)
                    .take(limit)
                    .cloned()
                    .collect();
                Answer::json(
                    200,
                    json!({ "records": page, "has_more": offset + limit < self.records.len() }),
                )
            }
            ("POST", "/records/batch") => {
                let Some(items) = r.json().and_then(|b| b["records"].as_array().cloned()) else {
                    return Answer::json(422, json!({ "error": "expected {\"records\": […]}" }));
                };
                let results: Vec<Value> = items
                    .into_iter()
                    .map(|item| {
                        if item["email"].as_str().is_none_or(|e| !e.contains('@')) {
                            return json!({ "status": "invalid", "error": "email is not an address" });
                        }
                        let id = format!("r{}", self.records.len() + 1);
                        let mut stored = item.clone();
                        stored["id"] = json!(id);
                        self.records.push(stored);
                        json!({ "status": "created", "id": id })
                    })
                    .collect();
                Answer::json(200, json!({ "results": results }))
            }
            _ => Answer::json(404, json!({ "error": "not found" })),
        }
    }
}

#[tokio::test]
async fn a_described_oauth_api_pages_by_offset_and_takes_batches_with_results() {
    let s = OAuthVendor {
        provider: "oauth2_generic",
        origins: &[AUTH, API],
        client_id: CLIENT_ID,
        client_secret: CLIENT_SECRET,
    }
    .connect_with::<OwnApi>(
        SEEDED,
        &[
            (
                "field_authorize_url",
                "https://auth.tenant.example.test/authorize",
            ),
            ("field_token_url", "https://auth.tenant.example.test/token"),
        ],
        &[
            ("field_base_url", API),
            ("field_list_path", "/records"),
            ("field_records_path", "$.records"),
            ("field_paging_style", "offset"),
            ("field_offset_param", "offset"),
            ("field_page_size_param", "limit"),
            ("field_page_size", "5"),
            ("field_has_more_path", "$.has_more"),
            ("field_batch_path", "/records/batch"),
            ("field_batch_key", "records"),
            ("field_batch_results_path", "$.results"),
        ],
    )
    .await;
    let flow = s
        .contacts_into(
            "records",
            &[
                (
                    "email",
                    "record.email if record.id != 'con_000003' else 'nobody'",
                ),
                ("name", "record.name"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("email is not an address"), "{dead}");
    let batches = s.fake.requests_to("/records/batch");
    assert_eq!(batches.len(), 1, "one batch of twelve");

    // Read back what was written: pages of five by offset until has_more is false.
    let crm = s.sandbox("sandbox_crm").await;
    let (source, destination) = (s.object("records"), format!("{crm}:companies"));
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Records to companies"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", "record.id"),
            ],
            &[("name", "record.name"), ("domain", "record.email")],
        ),
    )
    .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 11);
    let reads = s.fake.requests_to("/records");
    let reads: Vec<&Request> = reads.iter().filter(|r| r.method == "GET").collect();
    assert_eq!(reads.len(), 3, "offsets 0, 5, 10");
    assert_eq!(reads[2].param("offset"), Some("10"));
    s.app.stop().await;
}
