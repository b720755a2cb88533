//! HubSpot: OAuth (2026-03 token endpoint, form-encoded), CRM objects listed by `limit`
//! and `after`, changes read through the search endpoint (filters in a JSON body, dates
//! as epoch milliseconds, paged by `after` in the body, capped at 10,000), batch create /
//! update / upsert with `inputs[]` envelopes whose results come back in any order, each
//! echoing its `objectWriteTraceId`, 429 rate limits and 400 validation errors.
//!
//! Shapes from HubSpot's developer documentation: "Manage OAuth tokens" (2026-03
//! `POST /oauth/2026-03/token`, body parameters; token response `token_type`,
//! `refresh_token`, `access_token`, `expires_in`, `hub_id`, `scopes`), "CRM API | Contacts"
//! (`results[]` with `id`, `properties`, `createdAt`, `updatedAt`, `archived`;
//! `paging.next.after`; `limit` up to 100), "CRM search" (`filterGroups[].filters[]` with
//! `propertyName`, `operator`, `value`; `sorts`; `limit` up to 200; `after`; 10,000
//! results at most; `lastmodifieddate` for contacts, `hs_lastmodifieddate` for other
//! objects), the batch create / update / upsert references (`inputs[]` with `properties`,
//! `id`, `idProperty`, `objectWriteTraceId`; `results[]`, `errors[]`, 207 on partial
//! success), and "API usage guidelines" (429 with `policyName` and the
//! `X-HubSpot-RateLimit-*` headers). The order of batch results is not promised, so this
//! fake answers them reversed.
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Answer, OAuthVendor, Request, SEEDED, Vendor, flow_fields, run_ending};
use crate::common::flows::{count, create_flow, run_to_end, touch_contacts};
use base64::Engine;
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

const APP: &str = "https://app.hubspot.com";
const API: &str = "https://api.hubapi.com";
const CLIENT_ID: &str = "6f1c2b0e-fake-client";
const CLIENT_SECRET: &str = "fake-hubspot-secret";

#[derive(Clone)]
struct Object {
    properties: Map<String, Value>,
    created_ms: i64,
    updated_ms: i64,
}

/// A HubSpot account: its CRM objects, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Account {
    /// Object type → id → object.
    objects: BTreeMap<String, BTreeMap<u64, Object>>,
    next_id: u64,
    /// Milliseconds after 2026-01-01.
    clock: i64,
    codes: HashMap<String, String>,
    access_tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn iso(ms: i64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
        + chrono::Duration::milliseconds(ms))
    .format("%Y-%m-%dT%H:%M:%S%.3fZ")
    .to_string()
}

fn epoch_ms(ms: i64) -> i64 {
    chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z")
        .unwrap()
        .timestamp_millis()
        + ms
}

fn error(status: u16, category: &str, message: &str) -> Answer {
    Answer::json(
        status,
        json!({ "status": "error", "message": message, "correlationId": "9d6c8d4e-fake", "category": category }),
    )
}

fn unauthenticated() -> Answer {
    error(
        401,
        "INVALID_AUTHENTICATION",
        "Authentication credentials not found.",
    )
}

/// The property a search filters last changes by.
fn modified_property(kind: &str) -> &'static str {
    if kind == "contacts" {
        "lastmodifieddate"
    } else {
        "hs_lastmodifieddate"
    }
}

/// `GET /crm/v3/properties/{objectType}` ("CRM API | Properties"): each property with
/// `name`, `label`, `type`, `fieldType`, `hubspotDefined` and `modificationMetadata`
/// (`readOnlyValue`), a portal's custom properties among HubSpot's own.
fn properties(kind: &str) -> Value {
    let property = |name: &str,
                    label: &str,
                    kind: &str,
                    field: &str,
                    read_only: bool,
                    own: bool| {
        json!({ "name": name, "label": label, "type": kind, "fieldType": field,
                "groupName": "contactinformation", "options": [], "displayOrder": -1,
                "calculated": false, "externalOptions": false, "hasUniqueValue": false,
                "hidden": false, "hubspotDefined": own, "formField": !read_only,
                "modificationMetadata": { "archivable": !own, "readOnlyDefinition": own, "readOnlyValue": read_only },
                "createdAt": "2019-08-06T02:41:52.262Z", "updatedAt": "2019-10-30T03:30:17.883Z" })
    };
    let modified = modified_property(kind);
    json!({ "results": [
        property("email", "Email", "string", "text", false, true),
        property("firstname", "First Name", "string", "text", false, true),
        property(modified, "Last Modified Date", "datetime", "date", true, true),
        property("hs_object_id", "Record ID", "number", "number", true, true),
        property("customer_tier", "Customer tier", "enumeration", "select", false, false),
        property("seats", "Seats", "number", "number", false, false),
    ]})
}

impl Vendor for Account {
    fn handle(&mut self, r: &Request) -> Answer {
        self.answer(r)
    }
}

impl Account {
    /// Adds an object as if created in HubSpot; returns its id.
    pub fn insert(&mut self, kind: &str, properties: Map<String, Value>) -> u64 {
        self.next_id += 1;
        self.clock += 1000;
        let id = self.next_id;
        self.objects.entry(kind.into()).or_default().insert(
            id,
            Object {
                properties,
                created_ms: self.clock,
                updated_ms: self.clock,
            },
        );
        id
    }

    /// Changes an object's property as if edited in HubSpot.
    pub fn touch(&mut self, kind: &str, id: u64, name: &str, value: &str) {
        self.clock += 1000;
        let clock = self.clock;
        let object = self.objects.get_mut(kind).unwrap().get_mut(&id).unwrap();
        object.properties.insert(name.into(), json!(value));
        object.updated_ms = clock;
    }

    pub fn properties(&self, kind: &str) -> Vec<Map<String, Value>> {
        self.objects
            .get(kind)
            .map(|o| o.values().map(|o| o.properties.clone()).collect())
            .unwrap_or_default()
    }

    /// Each object's id by the value of one of its properties.
    pub fn ids_by(&self, kind: &str, property: &str) -> HashMap<String, String> {
        self.objects
            .get(kind)
            .map(|o| {
                o.iter()
                    .filter_map(|(id, o)| {
                        Some((
                            o.properties.get(property)?.as_str()?.to_owned(),
                            id.to_string(),
                        ))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    fn shown(&self, kind: &str, id: u64) -> Value {
        let object = &self.objects[kind][&id];
        let mut properties = object.properties.clone();
        properties.insert("hs_object_id".into(), json!(id.to_string()));
        properties.insert("createdate".into(), json!(iso(object.created_ms)));
        properties.insert(
            modified_property(kind).into(),
            json!(iso(object.updated_ms)),
        );
        json!({
            "id": id.to_string(),
            "properties": properties,
            "createdAt": iso(object.created_ms),
            "updatedAt": iso(object.updated_ms),
            "archived": false,
        })
    }

    fn answer(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/oauth/authorize") => self.authorize(r),
            ("POST", "/oauth/2026-03/token") => self.token(r),
            ("GET", path) if path.starts_with("/crm/v3/properties/") => {
                if !super::bearer(r, &self.access_tokens) {
                    return unauthenticated();
                }
                Answer::json(200, properties(&path["/crm/v3/properties/".len()..]))
            }
            (_, path) if path.starts_with("/crm/v3/objects/") => {
                if !super::bearer(r, &self.access_tokens) {
                    return unauthenticated();
                }
                if self.rate_limited > 0 {
                    self.rate_limited -= 1;
                    let mut answer = Answer::json(
                        429,
                        json!({ "status": "error", "message": "You have reached your secondly limit.", "errorType": "RATE_LIMIT", "correlationId": "c033cdaa-fake", "policyName": "SECONDLY" }),
                    );
                    answer.headers.extend([
                        (
                            "x-hubspot-ratelimit-interval-milliseconds".into(),
                            "10000".into(),
                        ),
                        ("x-hubspot-ratelimit-max".into(), "110".into()),
                        ("x-hubspot-ratelimit-remaining".into(), "0".into()),
                    ]);
                    return answer;
                }
                let parts: Vec<&str> = path["/crm/v3/objects/".len()..].split('/').collect();
                match (r.method.as_str(), parts.as_slice()) {
                    ("GET", [kind]) => self.list(r, kind),
                    ("POST", [kind, "search"]) => self.search(r, kind),
                    ("POST", [kind, "batch", mode]) => self.batch(r, kind, mode),
                    _ => error(404, "OBJECT_NOT_FOUND", "resource not found"),
                }
            }
            _ => error(404, "OBJECT_NOT_FOUND", "resource not found"),
        }
    }

    fn authorize(&mut self, r: &Request) -> Answer {
        let scopes: Vec<&str> = r.param("scope").unwrap_or_default().split(' ').collect();
        let (Some(CLIENT_ID), Some(redirect), Some(state), true) = (
            r.param("client_id"),
            r.param("redirect_uri"),
            r.param("state"),
            scopes.contains(&"oauth"),
        ) else {
            return Answer::json(400, json!({"error": "invalid_request"}));
        };
        let code = format!("na1-code-{}", self.codes.len());
        self.codes.insert(code.clone(), redirect.to_owned());
        let mut back = url::Url::parse(redirect).unwrap();
        back.query_pairs_mut()
            .append_pair("code", &code)
            .append_pair("state", state);
        Answer::redirect(back.as_str())
    }

    fn token(&mut self, r: &Request) -> Answer {
        // The 2026-03 endpoint takes every parameter in a form body, never the query.
        if !r.query.is_empty()
            || r.header("content-type") != Some("application/x-www-form-urlencoded")
        {
            return Answer::json(
                400,
                json!({"error": "invalid_request", "error_description": "parameters belong in a form-encoded body"}),
            );
        }
        let form = r.form();
        let field = |k: &str| form.get(k).map(String::as_str);
        if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
            return Answer::json(
                400,
                json!({"error": "invalid_client", "error_description": "client credentials are invalid", "status": "BAD_CLIENT_ID"}),
            );
        }
        let granted = match field("grant_type") {
            Some("authorization_code") => field("code")
                .and_then(|c| self.codes.remove(c))
                .is_some_and(|redirect| field("redirect_uri") == Some(redirect.as_str())),
            Some("refresh_token") => field("refresh_token") == Some("na1-fake-refresh"),
            _ => false,
        };
        if !granted {
            return Answer::json(
                400,
                json!({"error": "invalid_grant", "error_description": "auth code not found", "status": "BAD_AUTH_CODE"}),
            );
        }
        let access = format!("CJfake-access-{}", self.access_tokens.len());
        self.access_tokens.push(access.clone());
        Answer::json(
            200,
            json!({
                "token_type": "bearer",
                "refresh_token": "na1-fake-refresh",
                "hub_id": 62515,
                "scopes": ["oauth", "crm.objects.contacts.read", "crm.objects.contacts.write"],
                "access_token": access,
                "expires_in": 1800,
            }),
        )
    }

    fn list(&self, r: &Request, kind: &str) -> Answer {
        let limit: usize = r.param("limit").map_or(Ok(10), str::parse).unwrap_or(0);
        if !(1..=100).contains(&limit) {
            return error(400, "VALIDATION_ERROR", "limit must be between 1 and 100");
        }
        let offset = match r.param("after") {
            None => 0,
            Some(after) => match base64::engine::general_purpose::STANDARD
                .decode(after)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| s.parse::<usize>().ok())
            {
                Some(n) => n,
                None => {
                    return error(
                        400,
                        "VALIDATION_ERROR",
                        "Invalid input JSON: after is not a valid paging cursor",
                    );
                }
            },
        };
        let ids: Vec<u64> = self
            .objects
            .get(kind)
            .map(|o| o.keys().copied().collect())
            .unwrap_or_default();
        let page: Vec<Value> = ids
            .iter()
            .skip(offset)
            .take(limit)
            .map(|id| self.shown(kind, *id))
            .collect();
        let mut answer = json!({ "results": page });
        if offset + limit < ids.len() {
            let after =
                base64::engine::general_purpose::STANDARD.encode((offset + limit).to_string());
            answer["paging"] = json!({ "next": { "after": after, "link": format!("{API}/crm/v3/objects/{kind}?after={after}") } });
        }
        Answer::json(200, answer)
    }

    fn search(&self, r: &Request, kind: &str) -> Answer {
        let bad = |why: &str| error(400, "VALIDATION_ERROR", why);
        if r.header("content-type") != Some("application/json") {
            return bad("the body must be JSON");
        }
        let Some(body) = r.json() else {
            return bad("Invalid input JSON");
        };
        let limit = body["limit"].as_u64().unwrap_or(10) as usize;
        if !(1..=200).contains(&limit) {
            return bad("limit must be between 1 and 200");
        }
        let offset: usize = match &body["after"] {
            Value::Null => 0,
            Value::String(s) => match s.parse() {
                Ok(n) => n,
                Err(_) => return bad("after must be a numeric string"),
            },
            _ => return bad("after must be a string"),
        };
        if offset + limit > 10_000 {
            return bad("The search endpoint returns at most 10,000 results per query.");
        }
        let wanted = modified_property(kind);
        let Some([filter]) = body["filterGroups"][0]["filters"]
            .as_array()
            .map(Vec::as_slice)
        else {
            return bad("expected one filter");
        };
        if filter["propertyName"] != wanted || filter["operator"] != "GT" {
            return bad(&format!(
                "Property {} is not a date filter here; {wanted} is",
                filter["propertyName"]
            ));
        }
        let value = filter["value"].as_str().unwrap_or_default();
        let since = value.parse::<i64>().ok().or_else(|| {
            chrono::DateTime::parse_from_rfc3339(value)
                .ok()
                .map(|t| t.timestamp_millis())
        });
        let Some(since) = since else {
            return bad(&format!(
                "{value} is not a valid date value: use epoch milliseconds"
            ));
        };
        let mut matching: Vec<(i64, u64)> = self
            .objects
            .get(kind)
            .map(|o| {
                o.iter()
                    .filter(|(_, o)| epoch_ms(o.updated_ms) > since)
                    .map(|(id, o)| (o.updated_ms, *id))
                    .collect()
            })
            .unwrap_or_default();
        matching.sort();
        let page: Vec<Value> = matching
            .iter()
            .skip(offset)
            .take(limit)
            .map(|(_, id)| self.shown(kind, *id))
            .collect();
        let mut answer = json!({ "total": matching.len(), "results": page });
        if offset + limit < matching.len() {
            answer["paging"] = json!({ "next": { "after": (offset + limit).to_string() } });
        }
        Answer::json(200, answer)
    }

    fn batch(&mut self, r: &Request, kind: &str, mode: &str) -> Answer {
        let bad = |why: &str| error(400, "VALIDATION_ERROR", why);
        let Some(Value::Array(inputs)) = r.json().map(|b| b["inputs"].clone()) else {
            return bad("Invalid input JSON: expected {\"inputs\": [...]}");
        };
        if inputs.is_empty() || inputs.len() > 100 {
            return bad("inputs must hold 1 to 100 items");
        }
        // Validation refuses the whole batch, naming the bad values.
        for input in &inputs {
            let Some(properties) = input["properties"].as_object() else {
                return bad("each input needs a properties object");
            };
            if mode == "create" && input.get("id").is_some() {
                return bad("a create input has no id");
            }
            if let Some(email) = properties.get("email").and_then(Value::as_str)
                && !email.contains('@')
            {
                return bad(&format!(
                    "Property values were not valid: [{{\"isValid\":false,\"message\":\"Email address {email} is invalid\",\"error\":\"INVALID_EMAIL\",\"name\":\"email\"}}]"
                ));
            }
        }
        let mut results = Vec::new();
        let mut errors = Vec::new();
        for input in inputs {
            let properties = input["properties"].as_object().unwrap().clone();
            let id = match mode {
                "create" => Some(self.insert(kind, properties)),
                "update" => {
                    let id = input["id"].as_str().and_then(|s| s.parse::<u64>().ok());
                    match id.filter(|id| self.objects.get(kind).is_some_and(|o| o.contains_key(id)))
                    {
                        Some(id) => {
                            for (name, value) in properties {
                                self.touch(kind, id, &name, value.as_str().unwrap_or_default());
                            }
                            Some(id)
                        }
                        None => {
                            errors.push(json!({ "status": "error", "category": "OBJECT_NOT_FOUND", "message": format!("Could not get some {kind} objects, they may be deleted or not exist."), "context": { "ids": [input["id"]] } }));
                            None
                        }
                    }
                }
                "upsert" => {
                    let (Some(property), Some(value)) =
                        (input["idProperty"].as_str(), input["id"].as_str())
                    else {
                        return bad("an upsert input needs idProperty and id");
                    };
                    if property != "email" && kind == "contacts" {
                        return bad(&format!("{property} is not a unique property of contacts"));
                    }
                    let found = self.objects.get(kind).and_then(|o| {
                        o.iter()
                            .find(|(_, o)| {
                                o.properties.get(property).and_then(Value::as_str) == Some(value)
                            })
                            .map(|(id, _)| *id)
                    });
                    Some(match found {
                        Some(id) => {
                            for (name, v) in properties {
                                self.touch(kind, id, &name, v.as_str().unwrap_or_default());
                            }
                            id
                        }
                        None => {
                            let mut properties = properties;
                            properties.insert(property.into(), json!(value));
                            self.insert(kind, properties)
                        }
                    })
                }
                _ => return error(404, "OBJECT_NOT_FOUND", "resource not found"),
            };
            if let Some(id) = id {
                let mut result = self.shown(kind, id);
                if let Some(trace) = input.get("objectWriteTraceId") {
                    result["objectWriteTraceId"] = trace.clone();
                }
                results.push(result);
            }
        }
        results.reverse();
        let status = match (mode, errors.is_empty()) {
            (_, false) => 207,
            ("create", true) => 201,
            _ => 200,
        };
        let mut answer = json!({ "status": "COMPLETE", "results": results, "startedAt": iso(0), "completedAt": iso(0) });
        if !errors.is_empty() {
            answer["numErrors"] = json!(errors.len());
            answer["errors"] = json!(errors);
        }
        Answer::json(status, answer)
    }
}

const HUBSPOT: OAuthVendor = OAuthVendor {
    provider: "hubspot",
    origins: &[APP, API],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

#[tokio::test]
async fn hubspot_lists_every_page_then_searches_only_what_changed() {
    let s = HUBSPOT.connect::<Account>(&[]).await;
    let ids: Vec<u64> = {
        let mut account = s.vendor.lock().unwrap();
        (0..250)
            .map(|i| {
                let mut p = Map::new();
                p.insert("email".into(), json!(format!("person{i}@example.com")));
                p.insert("firstname".into(), json!(format!("Person {i}")));
                account.insert("contacts", p)
            })
            .collect()
    };
    let erp = s.sandbox("sandbox_erp").await;
    let source = s.object("contacts");
    let destination = format!("{erp}:customers");
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "HubSpot contacts to customers"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "upsert"),
                ("key_field", "external_id"),
                ("record_key", "record.id"),
                ("incremental", "on"),
            ],
            &[
                ("external_id", "record.id"),
                ("email", "record.properties.email"),
                ("name", "record.properties.firstname"),
            ],
        ),
    )
    .await;

    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    assert_eq!(s.app.sandbox_records("erp.customers").await, 250);
    let lists = s.fake.requests_to("/crm/v3/objects/contacts");
    assert_eq!(lists.len(), 3, "pages of 100, 100 and 50");
    assert!(
        lists
            .iter()
            .all(|r| r.method == "GET" && r.param("limit") == Some("100"))
    );
    assert_eq!(lists[0].param("after"), None);
    assert!(lists[2].param("after").is_some());

    // Three contacts change: the next run searches for changes since the last one.
    {
        let mut account = s.vendor.lock().unwrap();
        for id in &ids[..3] {
            account.touch("contacts", *id, "firstname", "Renamed");
        }
    }
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 3);
    let search = s
        .fake
        .requests_to("/crm/v3/objects/contacts/search")
        .pop()
        .unwrap();
    let filter = search.json().unwrap()["filterGroups"][0]["filters"][0].clone();
    assert_eq!(filter["propertyName"], "lastmodifieddate");
    assert_eq!(
        filter["value"],
        json!(epoch_ms(250_000).to_string()),
        "the 250th contact's change, in epoch milliseconds"
    );

    // HubSpot's secondly limit: the run waits and goes on.
    {
        let mut account = s.vendor.lock().unwrap();
        account.touch("contacts", ids[9], "firstname", "Again");
        account.rate_limited = 2;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 1);
    assert!(log.contains("secondly limit"), "{log}");
    s.app.stop().await;
}

#[tokio::test]
async fn hubspot_batches_create_update_and_upsert_and_matches_results_by_trace() {
    let s = HUBSPOT.connect::<Account>(SEEDED).await;
    let source = s.seeded_contacts().await;
    let destination = s.object("contacts");

    // Create: one address HubSpot refuses, which fails its whole batch until it stands
    // alone.
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Contacts to HubSpot"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", "record.id"),
            ],
            &[
                (
                    "email",
                    "record.email if record.id != 'con_000003' else 'not-an-email'",
                ),
                ("firstname", "record.name"),
                ("sluice_ref", "record.id"),
            ],
        ),
    )
    .await;
    let (run, page) = run_to_end(&s.admin, &flow).await;
    assert_eq!(
        count(&page, "written"),
        11,
        "{}",
        s.admin.get(&run).await.body
    );
    assert_eq!(count(&page, "failed"), 1);
    assert_eq!(s.vendor.lock().unwrap().properties("contacts").len(), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("INVALID_EMAIL"), "{dead}");
    let creates = s.fake.requests_to("/crm/v3/objects/contacts/batch/create");
    let first = creates[0].json().unwrap();
    assert_eq!(first["inputs"].as_array().unwrap().len(), 12);
    assert!(
        first["inputs"][0]["properties"]["email"].is_string(),
        "records inside properties"
    );

    // Changed contacts update the HubSpot contacts created for them. The results came
    // back reversed: only ids matched by trace put each change on the right contact.
    let created = s.vendor.lock().unwrap().ids_by("contacts", "sluice_ref");
    touch_contacts(&s.app, 3, "Renamed").await;
    let (run, page) = run_to_end(&s.admin, &flow).await;
    assert_eq!(
        count(&page, "written"),
        3,
        "{}",
        s.admin.get(&run).await.body
    );
    let update = s
        .fake
        .requests_to("/crm/v3/objects/contacts/batch/update")
        .pop()
        .unwrap();
    let inputs = update.json().unwrap()["inputs"].clone();
    for input in inputs.as_array().unwrap() {
        let source = input["properties"]["sluice_ref"].as_str().unwrap();
        assert_eq!(
            input["id"].as_str(),
            Some(created[source].as_str()),
            "{source} updates the contact created for it"
        );
        assert!(
            input["properties"].get("id").is_none(),
            "no id among the properties"
        );
    }
    let contacts = s.vendor.lock().unwrap().properties("contacts");
    assert_eq!(contacts.len(), 11, "updated, not created again");

    // Upsert by email: eleven found, the twelfth created.
    let upsert = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Upsert contacts by email"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "upsert"),
                ("key_field", "email"),
                ("record_key", "record.id"),
            ],
            &[
                ("email", "record.email"),
                ("firstname", "record.name | upper"),
            ],
        ),
    )
    .await;
    let (run, page) = run_to_end(&s.admin, &upsert).await;
    assert_eq!(
        count(&page, "written"),
        12,
        "{}",
        s.admin.get(&run).await.body
    );
    let request = s
        .fake
        .requests_to("/crm/v3/objects/contacts/batch/upsert")
        .pop()
        .unwrap();
    assert_eq!(request.json().unwrap()["inputs"][0]["idProperty"], "email");
    let contacts = s.vendor.lock().unwrap().properties("contacts");
    assert_eq!(contacts.len(), 12);
    assert!(contacts.iter().all(|c| {
        c["firstname"]
            .as_str()
            .unwrap()
            .chars()
            .all(|ch| !ch.is_lowercase())
    }));
    s.app.stop().await;
}

#[tokio::test]
async fn the_flow_editor_lists_the_portals_contact_properties_custom_ones_included() {
    let s = HUBSPOT.connect::<Account>(SEEDED).await;
    let source = s.seeded_contacts().await;
    let destination = s.object("contacts");
    let mut fields = flow_fields(
        &[
            ("name", "Contacts to HubSpot"),
            ("source", &source),
            ("destination", &destination),
            ("write_mode", "create"),
            ("key_field", ""),
            ("record_key", "record.id"),
        ],
        &[("email", "record.email")],
    );
    crate::common::flows::set(&mut fields, "action", "sample");
    let page = crate::common::flows::post(&s.admin, "/flows", &fields).await;
    assert_eq!(page.status, 200, "{}", page.body);
    assert_eq!(s.fake.requests_to("/crm/v3/properties/contacts").len(), 1);
    // The portal's own properties join HubSpot's; read-only ones are not offered.
    assert!(page.body.contains("Customer tier"), "{}", page.body);
    assert!(page.body.contains(r#"<option value="customer_tier">"#));
    assert!(page.body.contains(r#"<option value="seats">"#));
    assert!(!page.body.contains(r#"<option value="hs_object_id">"#));
    assert!(!page.body.contains(r#"<option value="lastmodifieddate">"#));

    // A read-only property cannot be written.
    crate::common::flows::set(&mut fields, "action", "save");
    crate::common::flows::set(&mut fields, "mapping.1.target", "lastmodifieddate");
    crate::common::flows::set(&mut fields, "mapping.1.expression", "record.updated_at");
    let refused = crate::common::flows::post(&s.admin, "/flows", &fields).await;
    assert_eq!(refused.status, 422);
    assert!(
        refused
            .body
            .contains("lastmodifieddate is set by the vendor"),
        "{}",
        refused.body
    );
    s.app.stop().await;
}
