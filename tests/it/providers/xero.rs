//! Xero: OAuth with PKCE (client by basic authentication), the organisations the grant
//! reaches listed at `GET /connections` right after consent (one is taken at once), every
//! Accounting API call naming it in `xero-tenant-id`, lists paged by `page` and
//! `pageSize` (a short page is the last), `If-Modified-Since` for changes, dates as
//! `/Date(…)/`, writes as `{"Contacts": [ … ]}` (a whole batch refused with a
//! `ValidationException` for one bad contact), and 429 with `Retry-After`.
//!
//! Shapes from Xero's developer documentation: "OAuth 2.0: auth flow" (authorize at
//! login.xero.com, token at identity.xero.com, answer `id_token`, `access_token`,
//! `expires_in`, `refresh_token`, `scope`; then `GET /connections` for `tenantId`,
//! `tenantType`, `tenantName`), "Accounting API: Contacts" (GET with `page`, `pageSize`,
//! `order`, `If-Modified-Since`; POST/PUT with a `Contacts` array; POST
//! `/Contacts/{ContactID}` to update; the contact object with `ContactID`, `Name`,
//! `EmailAddress`, `UpdatedDateUTC`), "Requests and responses" (JSON dates as
//! `/Date(ms+0000)/`), "HTTP response codes" (400 `ValidationException` with
//! `Elements[].ValidationErrors[]`) and "OAuth 2.0 API limits" (429, `Retry-After`,
//! `X-Rate-Limit-Problem`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, at, bearer, redeem,
    run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const LOGIN: &str = "https://login.xero.com";
const IDENTITY: &str = "https://identity.xero.com";
const API: &str = "https://api.xero.com";
const CLIENT_ID: &str = "FAKEXEROCLIENT0000000000000000001";
const CLIENT_SECRET: &str = "fake-xero-secret";
const TENANT: &str = "70784a63-d24b-46a9-a4db-0e70a274b056";

/// A Xero organisation: contacts, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Organisation {
    contacts: BTreeMap<String, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

/// A JSON date as Xero writes it.
fn json_date(seconds: i64) -> String {
    format!("/Date({}+0000)/", at(seconds).timestamp_millis())
}

fn validation(messages: &[String]) -> Answer {
    Answer::json(
        400,
        json!({ "ErrorNumber": 10, "Type": "ValidationException", "Message": "A validation exception occurred",
                "Elements": [{ "ValidationErrors": messages.iter().map(|m| json!({ "Message": m })).collect::<Vec<_>>() }] }),
    )
}

impl Organisation {
    pub fn insert(&mut self, name: &str, email: &str) -> String {
        self.clock += 1;
        let id = format!("bd2270c3-8706-4c11-9cfb-{:012}", self.contacts.len() + 1);
        self.contacts.insert(
            id.clone(),
            json!({
                "ContactID": id, "ContactStatus": "ACTIVE", "Name": name, "EmailAddress": email,
                "IsSupplier": false, "IsCustomer": true, "Addresses": [], "Phones": [],
                "UpdatedDateUTC": json_date(self.clock), "HasValidationErrors": false,
            }),
        );
        id
    }

    pub fn touch(&mut self, id: &str, name: &str) {
        self.clock += 1;
        let contact = self.contacts.get_mut(id).unwrap();
        contact["Name"] = json!(name);
        contact["UpdatedDateUTC"] = json!(json_date(self.clock));
    }

    pub fn contacts(&self) -> Vec<Value> {
        self.contacts.values().cloned().collect()
    }

    fn updated(contact: &Value) -> i64 {
        let text = contact["UpdatedDateUTC"].as_str().unwrap();
        text["/Date(".len()..text.find('+').unwrap()]
            .parse()
            .unwrap()
    }

    fn token(&mut self, r: &Request) -> Answer {
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Basic,
        ) {
            Err(error) => Answer::json(400, json!({ "error": error })),
            Ok(()) => {
                let token = format!(
                    "eyJhbGciOiJSUzI1NiIsImZha2UiOnRydWV9.{:030}",
                    self.tokens.len()
                );
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "id_token": "eyJfake.id.token", "access_token": token, "expires_in": 1800, "token_type": "Bearer", "refresh_token": format!("fakerefresh{}", self.tokens.len()), "scope": "openid profile email offline_access accounting.contacts accounting.invoices accounting.settings.read" }),
                )
            }
        }
    }

    fn list(&self, r: &Request) -> Answer {
        let page: usize = r.param("page").map_or(Ok(1), str::parse).unwrap_or(0);
        let size: usize = r.param("pageSize").map_or(Ok(100), str::parse).unwrap_or(0);
        if page == 0 || !(1..=1000).contains(&size) {
            return validation(&[
                "page and pageSize must be positive; pageSize at most 1000".into()
            ]);
        }
        let since = match r.header("if-modified-since") {
            None => None,
            Some(text) => match chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S") {
                Ok(t) => Some(t.and_utc().timestamp_millis()),
                Err(_) => {
                    return Answer::json(
                        400,
                        json!({ "Title": "Bad Request", "Detail": "If-Modified-Since is not a valid date" }),
                    );
                }
            },
        };
        let mut matching: Vec<&Value> = self
            .contacts
            .values()
            .filter(|c| since.is_none_or(|s| Self::updated(c) >= s))
            .collect();
        if r.param("order") == Some("UpdatedDateUTC ASC") {
            matching.sort_by_key(|c| Self::updated(c));
        }
        let items: Vec<Value> = matching
            .iter()
            .skip((page - 1) * size)
            .take(size)
            .map(|c| (*c).clone())
            .collect();
        Answer::json(
            200,
            json!({ "Id": "a1b2c3d4-0000-0000-0000-000000000000", "Status": "OK", "ProviderName": "Sluice", "DateTimeUTC": json_date(self.clock), "Contacts": items }),
        )
    }

    /// POST `/Contacts` (create, a batch of any size) or `/Contacts/{id}` (update one).
    fn write(&mut self, r: &Request, id: Option<&str>) -> Answer {
        let Some(items) = r
            .json()
            .and_then(|b| b.get("Contacts").and_then(Value::as_array).cloned())
        else {
            return validation(&["The request body must be {\"Contacts\": [ … ]}".into()]);
        };
        // Xero checks the whole request first: one bad contact refuses them all.
        let mut problems = Vec::new();
        let mut names: Vec<String> = Vec::new();
        for item in &items {
            let name = item["Name"].as_str().unwrap_or_default().to_owned();
            let clash = self
                .contacts
                .values()
                .any(|c| c["Name"] == name.as_str() && c["ContactID"].as_str() != id)
                || names.contains(&name);
            if name.is_empty() {
                problems.push("The contact name must be specified.".to_owned());
            } else if clash {
                problems.push(format!("The contact name {name} is already assigned to another contact. The contact name must be unique across all active contacts."));
            }
            names.push(name);
        }
        if !problems.is_empty() {
            return validation(&problems);
        }
        let mut written = Vec::new();
        for item in items {
            let contact_id = match id {
                Some(id) if !self.contacts.contains_key(id) => {
                    return Answer::json(
                        404,
                        json!({ "Title": "Not Found", "Detail": "The resource you're looking for cannot be found" }),
                    );
                }
                Some(id) => {
                    self.touch(id, item["Name"].as_str().unwrap());
                    id.to_owned()
                }
                None => self.insert(item["Name"].as_str().unwrap(), ""),
            };
            let contact = self.contacts.get_mut(&contact_id).unwrap();
            for (k, v) in item.as_object().unwrap() {
                if k != "ContactID" {
                    contact[k] = v.clone();
                }
            }
            written.push(contact.clone());
        }
        Answer::json(
            200,
            json!({ "Id": "a1b2c3d4-0000-0000-0000-000000000001", "Status": "OK", "Contacts": written }),
        )
    }
}

impl Vendor for Organisation {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/identity/connect/authorize") => {
                return approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/connect/token") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return Answer::json(
                401,
                json!({ "Type": null, "Title": "Unauthorized", "Status": 401, "Detail": "AuthenticationUnsuccessful" }),
            );
        }
        if r.path == "/connections" {
            return Answer::json(
                200,
                json!([{ "id": "e1eede29-f875-4a5d-8470-17f6a29a88b1", "authEventId": "d99ecdfe-391d-43d2-b834-17636ba90e8d", "tenantId": TENANT, "tenantType": "ORGANISATION", "tenantName": "Maple Florists Inc", "createdDateUtc": "2026-01-01T00:00:00.0000000", "updatedDateUtc": "2026-01-01T00:00:00.0000000" }]),
            );
        }
        if r.header("xero-tenant-id") != Some(TENANT) {
            return Answer::json(
                403,
                json!({ "Type": null, "Title": "Forbidden", "Status": 403, "Detail": "AuthorizationUnsuccessful" }),
            );
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let mut answer = Answer {
                status: 429,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: "The rate limit was exceeded (minute limit)".into(),
            };
            answer.headers.extend([
                ("retry-after".into(), "1".into()),
                ("x-rate-limit-problem".into(), "minute".into()),
            ]);
            return answer;
        }
        let one = |path: &str| {
            path.strip_prefix("/api.xro/2.0/Contacts/")
                .map(str::to_owned)
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api.xro/2.0/Contacts") => self.list(r),
            ("POST", "/api.xro/2.0/Contacts") => self.write(r, None),
            ("POST", path) if one(path).is_some() => self.write(r, one(path).as_deref()),
            _ => Answer::json(
                404,
                json!({ "Title": "Not Found", "Detail": "The resource you're looking for cannot be found" }),
            ),
        }
    }
}

const XERO: OAuthVendor = OAuthVendor {
    provider: "xero",
    origins: &[LOGIN, IDENTITY, API],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

#[tokio::test]
async fn xero_takes_the_one_organisation_then_pages_contacts_and_asks_for_changes_by_header() {
    let s = XERO.connect::<Organisation>(&[]).await;
    {
        let mut org = s.vendor.lock().unwrap();
        for i in 0..250 {
            org.insert(&format!("Florist {i}"), &format!("f{i}@example.com"));
        }
    }
    // One organisation: nothing to choose.
    let page = s
        .admin
        .get(&format!("/connections/{}", s.connection))
        .await
        .body;
    assert!(!page.contains("Choose the Xero organisation"), "{page}");
    let flow = s
        .read_into_companies(
            "contacts",
            "record.ContactID",
            &[("name", "record.Name"), ("domain", "record.EmailAddress")],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    let lists = s.fake.requests_to("/api.xro/2.0/Contacts");
    assert_eq!(lists.len(), 3, "pages 1 to 3; the short one is the last");
    assert_eq!(lists[2].param("page"), Some("3"));
    assert!(
        lists
            .iter()
            .all(|r| r.header("if-modified-since").is_none())
    );

    {
        let mut org = s.vendor.lock().unwrap();
        let ids: Vec<String> = org
            .contacts()
            .iter()
            .take(2)
            .map(|c| c["ContactID"].as_str().unwrap().to_owned())
            .collect();
        for id in ids {
            org.touch(&id, "Changed");
        }
        org.rate_limited = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("rate limit was exceeded"), "{log}");
    let last = s.fake.requests_to("/api.xro/2.0/Contacts").pop().unwrap();
    assert_eq!(
        last.header("if-modified-since"),
        Some(at(250).format("%Y-%m-%dT%H:%M:%S").to_string().as_str()),
        "the newest /Date()/ seen, as Xero takes it"
    );
    assert_eq!(count(&page, "read"), 3);
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn xero_creates_contacts_in_batches_and_updates_one_by_one() {
    let s = XERO.connect::<Organisation>(SEEDED).await;
    s.vendor
        .lock()
        .unwrap()
        .insert("Taken Name", "taken@example.com");
    let flow = s
        .contacts_into(
            "contacts",
            &[
                (
                    "Name",
                    "record.name if record.id != 'con_000003' else 'Taken Name'",
                ),
                ("EmailAddress", "record.email"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(
        dead.contains("already assigned to another contact"),
        "{dead}"
    );
    let batches: Vec<Request> = s
        .fake
        .requests_to("/api.xro/2.0/Contacts")
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert_eq!(
        batches[0].json().unwrap()["Contacts"]
            .as_array()
            .unwrap()
            .len(),
        12,
        "one batch first"
    );
    assert_eq!(s.vendor.lock().unwrap().contacts().len(), 12);

    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    let updates: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/api.xro/2.0/Contacts/"))
        .collect();
    assert_eq!(updates.len(), 2);
    let contacts = s.vendor.lock().unwrap().contacts();
    assert_eq!(contacts.len(), 12, "updated, not created again");
    for update in updates {
        let id = update.path.trim_start_matches("/api.xro/2.0/Contacts/");
        let contact = contacts.iter().find(|c| c["ContactID"] == id).unwrap();
        assert!(contact["Name"].as_str().unwrap().starts_with("Renamed"));
        assert!(
            update.json().unwrap()["Contacts"][0]
                .get("ContactID")
                .is_none()
        );
    }
    s.app.stop().await;
}
