//! Salesforce: OAuth 2.0 web-server flow with PKCE, SOQL queries paged by
//! `nextRecordsUrl`, sObject create / update / upsert by external id, the daily
//! allocation answered as 403 `REQUEST_LIMIT_EXCEEDED`, and record errors as
//! `[{message, errorCode, fields}]`.
//!
//! Shapes from Salesforce's REST API Developer Guide (v66.0): "OAuth 2.0 Web Server
//! Flow" (token response with `instance_url`, `id`, `issued_at`, `signature` and no
//! `expires_in`), "Execute a SOQL Query" (`totalSize`, `done`, `nextRecordsUrl`,
//! `records[].attributes`, batches of up to 2,000), "Create a Record" (201 `{id, success,
//! errors}`), "Update a Record" (204), "Upsert Records Using sObject Rows by External ID"
//! ("do not specify Id or an external ID field in the request body"; 201 created, 200
//! updated), "Status Codes and Error Responses", and the SOQL reference on datetime
//! literals (`YYYY-MM-DDThh:mm:ssZ` or `±hh:mm`, no fractions).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, Codes, Fake, OAuthVendor, Request, SEEDED, Vendor, approve, connect_oauth, flow_fields,
    run_ending, verifies,
};
use crate::common::flows::{create_flow, run_to_end, set};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

const LOGIN: &str = "https://login.salesforce.com";
const INSTANCE: &str = "https://acme.my.salesforce.com";
const API: &str = "/services/data/v66.0";
const CLIENT_ID: &str = "3MVG9fake.consumer.key";
const CLIENT_SECRET: &str = "fake-consumer-secret";
const BATCH: usize = 2000;

/// A Salesforce org: its records, grants and the scripted misbehaviour of a test.
#[derive(Default)]
pub struct Org {
    /// sObject type → id → record (without `attributes`).
    records: BTreeMap<String, BTreeMap<String, Map<String, Value>>>,
    /// Seconds after 2026-01-01 of the last modification.
    clock: i64,
    next_id: u64,
    /// Authorization code → (PKCE challenge, redirect URI).
    codes: Codes,
    access_tokens: Vec<String>,
    refresh_token: Option<String>,
    /// Query locator → the query's records, in order.
    locators: HashMap<String, Vec<Value>>,
    /// The next this many API calls answer REQUEST_LIMIT_EXCEEDED.
    pub limit_exceeded: u32,
    /// Next-records URLs stop advancing (a broken query locator).
    pub stuck: bool,
}

fn prefix(sobject: &str) -> &'static str {
    match sobject {
        "Account" => "001",
        "Contact" => "003",
        "Lead" => "00Q",
        _ => "006",
    }
}

fn errors(status: u16, code: &str, message: &str, fields: &[&str]) -> Answer {
    Answer::json(
        status,
        json!([{ "message": message, "errorCode": code, "fields": fields }]),
    )
}

/// A new record needs its name: `Name` for Accounts and Opportunities, `LastName`
/// for Contacts and Leads (whose `Name` is a compound field no one writes).
fn without_name(sobject: &str, body: &Map<String, Value>) -> Option<Answer> {
    let field = name_field(sobject);
    let name = body.get(field).and_then(Value::as_str).unwrap_or_default();
    name.is_empty().then(|| {
        errors(
            400,
            "REQUIRED_FIELD_MISSING",
            &format!("Required fields are missing: [{field}]"),
            &[field],
        )
    })
}

fn name_field(sobject: &str) -> &'static str {
    match sobject {
        "Contact" | "Lead" => "LastName",
        _ => "Name",
    }
}

/// What `GET /sobjects/{type}/describe` says of an sObject's fields ("sObject
/// Describe": `fields[]` with `name`, `label`, `type`, `createable`, `updateable`,
/// `nillable`, `defaultedOnCreate`, `custom`, `externalId`), custom fields included.
fn describe(sobject: &str) -> Value {
    let field = |name: &str, label: &str, kind: &str, flags: [bool; 4], custom: bool| {
        let [createable, updateable, nillable, defaulted] = flags;
        json!({ "name": name, "label": label, "type": kind, "createable": createable,
                "updateable": updateable, "nillable": nillable, "defaultedOnCreate": defaulted,
                "custom": custom, "externalId": name == "Legacy_Id__c" })
    };
    let system = [false, false, false, true];
    let writable = [true, true, true, false];
    let mut fields = vec![
        field("Id", &format!("{sobject} ID"), "id", system, false),
        field(
            "LastModifiedDate",
            "Last Modified Date",
            "datetime",
            system,
            false,
        ),
    ];
    let name = name_field(sobject);
    if name == "LastName" {
        fields.push(field("Name", "Full Name", "string", system, false));
        fields.push(field("FirstName", "First Name", "string", writable, false));
    }
    let label = if name == "LastName" {
        "Last Name"
    } else {
        "Name"
    };
    fields.push(field(
        name,
        label,
        "string",
        [true, true, false, false],
        false,
    ));
    fields.push(field("Email", "Email", "email", writable, false));
    fields.push(field("Legacy_Id__c", "Legacy Id", "string", writable, true));
    fields.push(field(
        "Tier__c",
        "Customer Tier",
        "picklist",
        writable,
        true,
    ));
    fields.push(field("Seats__c", "Seats", "double", writable, true));
    json!({ "name": sobject, "custom": false, "createable": true, "fields": fields })
}

impl Vendor for Org {
    fn handle(&mut self, r: &Request) -> Answer {
        self.answer(r)
    }
}

impl Org {
    fn stamp(&mut self) -> String {
        self.clock += 1;
        (chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
            + chrono::Duration::seconds(self.clock))
        .format("%Y-%m-%dT%H:%M:%S%.3f+0000")
        .to_string()
    }

    /// Adds a record as if created in Salesforce; returns its id.
    pub fn insert(&mut self, sobject: &str, mut fields: Map<String, Value>) -> String {
        self.next_id += 1;
        let id = format!("{}{:015}", prefix(sobject), self.next_id);
        fields.insert("Id".into(), json!(id));
        fields.insert("LastModifiedDate".into(), json!(self.stamp()));
        self.records
            .entry(sobject.into())
            .or_default()
            .insert(id.clone(), fields);
        id
    }

    /// Changes a record as if edited in Salesforce.
    pub fn touch(&mut self, sobject: &str, id: &str, field: &str, value: Value) {
        let stamp = self.stamp();
        let record = self.records.get_mut(sobject).unwrap().get_mut(id).unwrap();
        record.insert(field.into(), value);
        record.insert("LastModifiedDate".into(), json!(stamp));
    }

    pub fn all(&self, sobject: &str) -> Vec<Map<String, Value>> {
        self.records
            .get(sobject)
            .map(|r| r.values().cloned().collect())
            .unwrap_or_default()
    }

    fn with_attributes(sobject: &str, record: &Map<String, Value>) -> Value {
        let mut shown = Map::new();
        shown.insert(
            "attributes".into(),
            json!({ "type": sobject, "url": format!("{API}/sobjects/{sobject}/{}", record["Id"].as_str().unwrap()) }),
        );
        shown.extend(record.clone());
        Value::Object(shown)
    }

    fn answer(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/services/oauth2/authorize") => self.authorize(r),
            ("POST", "/services/oauth2/token") => self.token(r),
            (_, path) if path.starts_with(API) => {
                let bearer = r.header("authorization").unwrap_or_default();
                if !self
                    .access_tokens
                    .iter()
                    .any(|t| bearer == format!("Bearer {t}"))
                {
                    return errors(401, "INVALID_SESSION_ID", "Session expired or invalid", &[]);
                }
                if self.limit_exceeded > 0 {
                    self.limit_exceeded -= 1;
                    return errors(
                        403,
                        "REQUEST_LIMIT_EXCEEDED",
                        "TotalRequests Limit exceeded.",
                        &[],
                    );
                }
                let rest = &path[API.len()..];
                match r.method.as_str() {
                    "GET" if rest == "/query" => self.query(r),
                    "GET" if rest.starts_with("/query/") => self.more(&rest["/query/".len()..]),
                    "GET" if rest.starts_with("/sobjects/") && rest.ends_with("/describe") => {
                        let sobject = &rest["/sobjects/".len()..rest.len() - "/describe".len()];
                        Answer::json(200, describe(sobject))
                    }
                    "POST" | "PATCH" if rest.starts_with("/sobjects/") => {
                        self.write(r, &rest["/sobjects/".len()..])
                    }
                    _ => errors(
                        404,
                        "NOT_FOUND",
                        "The requested resource does not exist",
                        &[],
                    ),
                }
            }
            _ => errors(
                404,
                "NOT_FOUND",
                "The requested resource does not exist",
                &[],
            ),
        }
    }

    fn authorize(&mut self, r: &Request) -> Answer {
        if r.param("response_type") != Some("code") {
            return Answer::json(400, json!({"error": "unsupported_response_type"}));
        }
        // Real codes end in '=' padding: the callback must decode them.
        approve(&mut self.codes, r, CLIENT_ID, "aPrx{n}==")
    }

    fn token(&mut self, r: &Request) -> Answer {
        if r.header("content-type") != Some("application/x-www-form-urlencoded") {
            return Answer::json(
                400,
                json!({"error": "invalid_request", "error_description": "must be form-encoded"}),
            );
        }
        let form = r.form();
        let field = |k: &str| form.get(k).map(String::as_str);
        if field("client_id") != Some(CLIENT_ID) || field("client_secret") != Some(CLIENT_SECRET) {
            return Answer::json(
                400,
                json!({"error": "invalid_client", "error_description": "invalid client credentials"}),
            );
        }
        let issue = |org: &mut Org, refresh: bool| {
            let access = format!("00D5g000004fake!AQ{}", org.access_tokens.len());
            org.access_tokens.push(access.clone());
            let mut answer = json!({
                "access_token": access,
                "signature": "fakeSignature=",
                "scope": "refresh_token api",
                "instance_url": INSTANCE,
                "id": format!("{LOGIN}/id/00D5g000004fake/0055g00000fake"),
                "token_type": "Bearer",
                "issued_at": "1767225600000",
            });
            if refresh {
                let token = "5Aep861fakeRefresh".to_owned();
                org.refresh_token = Some(token.clone());
                answer["refresh_token"] = json!(token);
            }
            Answer::json(200, answer)
        };
        match field("grant_type") {
            Some("authorization_code") => {
                let Some((challenge, redirect)) = field("code").and_then(|c| self.codes.remove(c))
                else {
                    return Answer::json(
                        400,
                        json!({"error": "invalid_grant", "error_description": "expired authorization code"}),
                    );
                };
                let verified = verifies(field("code_verifier"), &challenge);
                if !verified || field("redirect_uri") != Some(redirect.as_str()) {
                    return Answer::json(
                        400,
                        json!({"error": "invalid_grant", "error_description": "invalid code verifier or redirect_uri mismatch"}),
                    );
                }
                issue(self, true)
            }
            Some("refresh_token") if field("refresh_token") == self.refresh_token.as_deref() => {
                issue(self, false)
            }
            _ => Answer::json(
                400,
                json!({"error": "invalid_grant", "error_description": "expired access/refresh token"}),
            ),
        }
    }

    /// `SELECT FIELDS(STANDARD) FROM X [WHERE LastModifiedDate > literal] ORDER BY
    /// LastModifiedDate ASC`: the only queries the provider file sends; anything else is
    /// a MALFORMED_QUERY here.
    fn query(&mut self, r: &Request) -> Answer {
        let malformed = |why: &str| errors(400, "MALFORMED_QUERY", why, &[]);
        if r.query.len() != 1 {
            return malformed("the query resource takes exactly one parameter, q");
        }
        let Some(q) = r.param("q") else {
            return malformed("missing q");
        };
        let Some(rest) = q.strip_prefix("SELECT FIELDS(STANDARD) FROM ") else {
            return malformed(&format!("unexpected query: {q}"));
        };
        let Some(rest) = rest.strip_suffix(" ORDER BY LastModifiedDate ASC") else {
            return malformed("unexpected ORDER BY");
        };
        let (sobject, since) = match rest.split_once(" WHERE LastModifiedDate > ") {
            Some((sobject, literal)) => {
                let parsed = chrono::NaiveDateTime::parse_from_str(literal, "%Y-%m-%dT%H:%M:%SZ")
                    .map(|t| t.and_utc().fixed_offset())
                    .or_else(|_| chrono::DateTime::parse_from_str(literal, "%Y-%m-%dT%H:%M:%S%:z"));
                match parsed {
                    Ok(at) => (sobject, Some(at)),
                    Err(_) => {
                        return malformed(&format!(
                            "value of filter criterion for field 'LastModifiedDate' must be of type dateTime and should not be enclosed in quotes: {literal}"
                        ));
                    }
                }
            }
            None => (rest, None),
        };
        let mut rows: Vec<Map<String, Value>> = self
            .all(sobject)
            .into_iter()
            .filter(|record| {
                since.is_none_or(|since| {
                    chrono::DateTime::parse_from_str(
                        record["LastModifiedDate"].as_str().unwrap(),
                        "%Y-%m-%dT%H:%M:%S%.3f%z",
                    )
                    .unwrap()
                        > since
                })
            })
            .collect();
        rows.sort_by(|a, b| {
            (a["LastModifiedDate"].as_str(), a["Id"].as_str())
                .cmp(&(b["LastModifiedDate"].as_str(), b["Id"].as_str()))
        });
        let rows: Vec<Value> = rows
            .iter()
            .map(|r| Org::with_attributes(sobject, r))
            .collect();
        let locator = format!("01gD0000002HU6K{:03}", self.locators.len());
        self.locators.insert(locator.clone(), rows);
        self.batch(&locator, 0)
    }

    fn more(&mut self, tail: &str) -> Answer {
        let Some((locator, offset)) = tail.rsplit_once('-') else {
            return errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator", &[]);
        };
        match (self.locators.contains_key(locator), offset.parse::<usize>()) {
            (true, Ok(offset)) => self.batch(locator, offset),
            _ => errors(400, "INVALID_QUERY_LOCATOR", "invalid query locator", &[]),
        }
    }

    fn batch(&self, locator: &str, offset: usize) -> Answer {
        let rows = &self.locators[locator];
        let end = (offset + BATCH).min(rows.len());
        let done = end >= rows.len();
        let mut answer = json!({
            "totalSize": rows.len(),
            "done": done,
            "records": rows[offset.min(end)..end],
        });
        if !done {
            let next = if self.stuck { offset.max(BATCH) } else { end };
            answer["nextRecordsUrl"] = json!(format!("{API}/query/{locator}-{next}"));
        }
        Answer::json(200, answer)
    }

    fn write(&mut self, r: &Request, tail: &str) -> Answer {
        if r.header("content-type") != Some("application/json") {
            return errors(
                415,
                "UNSUPPORTED_MEDIA_TYPE",
                "Content-Type must be application/json",
                &[],
            );
        }
        let Some(Value::Object(body)) = r.json() else {
            return errors(
                400,
                "JSON_PARSER_ERROR",
                "The request body is not a JSON object",
                &[],
            );
        };
        let parts: Vec<&str> = tail.split('/').collect();
        let compound = name_field(parts[0]) != "Name" && body.contains_key("Name");
        if let Some(field) = ["Id", "LastModifiedDate"]
            .into_iter()
            .chain(compound.then_some("Name"))
            .find(|f| body.contains_key(*f))
        {
            return errors(
                400,
                "INVALID_FIELD_FOR_INSERT_UPDATE",
                &format!(
                    "Unable to create/update fields: {field}. Please check the security settings of this field and verify that it is read/write for your profile or permission set."
                ),
                &[field],
            );
        }
        match (r.method.as_str(), parts.as_slice()) {
            ("POST", [sobject]) => {
                if let Some(refused) = without_name(sobject, &body) {
                    return refused;
                }
                let id = self.insert(sobject, body);
                Answer::json(201, json!({ "id": id, "success": true, "errors": [] }))
            }
            ("PATCH", [sobject, id]) => {
                let exists = self
                    .records
                    .get(*sobject)
                    .is_some_and(|r| r.contains_key(*id));
                if !exists {
                    return errors(
                        404,
                        "NOT_FOUND",
                        "Provided external ID field does not exist or is not accessible",
                        &[],
                    );
                }
                for (field, value) in body {
                    self.touch(sobject, id, &field, value);
                }
                Answer::empty(204)
            }
            ("PATCH", [sobject, field, value]) => {
                let value = url::form_urlencoded::parse(format!("v={value}").as_bytes())
                    .next()
                    .unwrap()
                    .1
                    .into_owned();
                if body.contains_key(*field) {
                    return errors(
                        400,
                        "INVALID_FIELD",
                        &format!("{field} is the external ID: leave it out of the body"),
                        &[field],
                    );
                }
                let found = self
                    .all(sobject)
                    .into_iter()
                    .find(|r| r.get(*field).and_then(Value::as_str) == Some(value.as_str()));
                match found {
                    Some(record) => {
                        let id = record["Id"].as_str().unwrap().to_owned();
                        for (k, v) in body {
                            self.touch(sobject, &id, &k, v);
                        }
                        Answer::json(
                            200,
                            json!({ "id": id, "success": true, "errors": [], "created": false }),
                        )
                    }
                    None => {
                        if let Some(refused) = without_name(sobject, &body) {
                            return refused;
                        }
                        let mut fields = body;
                        fields.insert((*field).into(), json!(value));
                        let id = self.insert(sobject, fields);
                        Answer::json(
                            201,
                            json!({ "id": id, "success": true, "errors": [], "created": true }),
                        )
                    }
                }
            }
            _ => errors(405, "METHOD_NOT_ALLOWED", "HTTP Method not allowed", &[]),
        }
    }
}

const SALESFORCE: OAuthVendor = OAuthVendor {
    provider: "salesforce",
    origins: &[LOGIN, INSTANCE],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

/// The editor's fields for a flow from `source` to `destination`.
fn flow_between(
    source: &str,
    destination: &str,
    mode: &str,
    key: &str,
    mapping: &[(&str, &str)],
) -> Vec<(String, String)> {
    let name = format!("{source} to {destination}");
    flow_fields(
        &[
            ("name", &name),
            ("source", source),
            ("destination", destination),
            ("write_mode", mode),
            ("key_field", key),
            ("record_key", "record.Id"),
        ],
        mapping,
    )
}

fn count(page: &crate::common::Page, name: &str) -> i64 {
    crate::common::flows::count(page, name)
}

#[tokio::test]
async fn salesforce_reads_every_batch_by_next_records_url_then_only_what_changed() {
    let s = SALESFORCE.connect::<Org>(&[]).await;
    {
        let mut org = s.vendor.lock().unwrap();
        for i in 0..5000 {
            let mut account = Map::new();
            account.insert("Name".into(), json!(format!("Account {i}")));
            account.insert("Website".into(), json!(format!("https://a{i}.example")));
            org.insert("Account", account);
        }
    }
    let crm = s.sandbox("sandbox_crm").await;
    let mut fields = flow_between(
        &s.object("accounts"),
        &format!("{crm}:companies"),
        "create",
        "",
        &[("name", "record.Name"), ("domain", "record.Website")],
    );
    set(&mut fields, "incremental", "on");
    let flow = create_flow(&s.admin, &fields).await;

    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 5000, "exactly every account, once");
    assert_eq!(count(&page, "written"), 5000);
    assert_eq!(s.app.sandbox_records("crm.companies").await, 5000);
    let queries = s.fake.requests_to(&format!("{API}/query"));
    assert_eq!(queries.len(), 3, "one query and two nextRecordsUrl batches");
    assert_eq!(
        queries[1].path,
        format!("{API}/query/01gD0000002HU6K000-2000")
    );
    assert!(
        queries[1].query.is_empty(),
        "a next URL is followed as given"
    );
    assert!(
        queries.iter().all(|q| q
            .header("authorization")
            .is_some_and(|a| a.starts_with("Bearer 00D"))),
        "every call carries the org's access token"
    );

    // Three accounts change in Salesforce; the incremental run asks only for what
    // changed since the last one, in SOQL's datetime literal.
    {
        let mut org = s.vendor.lock().unwrap();
        let ids: Vec<String> = org
            .all("Account")
            .iter()
            .take(3)
            .map(|a| a["Id"].as_str().unwrap().to_owned())
            .collect();
        for id in ids {
            org.touch("Account", &id, "Name", json!("Renamed"));
        }
    }
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    let last = s.fake.requests_to(&format!("{API}/query")).pop().unwrap();
    let q = last.param("q").unwrap();
    assert!(
        q.contains("WHERE LastModifiedDate > 2026-01-01T01:23:20Z"),
        "the watermark (the 5,000th account's stamp) as a SOQL literal: {q}"
    );
    assert_eq!(count(&page, "read"), 3);

    // The daily allocation runs out for two calls: the run waits and goes on.
    {
        let mut org = s.vendor.lock().unwrap();
        let id = org.all("Account")[10]["Id"].as_str().unwrap().to_owned();
        org.touch("Account", &id, "Name", json!("Again"));
        org.limit_exceeded = 2;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 1);
    assert!(
        log.contains("REQUEST_LIMIT_EXCEEDED"),
        "the run log shows the vendor's answer: {log}"
    );

    // A query locator that stops advancing ends the run instead of reading forever.
    s.vendor.lock().unwrap().stuck = true;
    let mut full = fields.clone();
    set(&mut full, "name", "Full read");
    set(&mut full, "incremental", "off");
    let full = create_flow(&s.admin, &full).await;
    let (_, log) = run_ending(&s.admin, &full, "Failed").await;
    assert!(
        log.contains("Salesforce Accounts") && log.contains("would repeat the last one"),
        "{log}"
    );
    s.app.stop().await;
}

#[tokio::test]
async fn salesforce_creates_updates_and_upserts_and_a_refused_record_is_a_dead_letter() {
    let s = SALESFORCE.connect::<Org>(SEEDED).await;
    let source = s.seeded_contacts().await;

    // Create: one contact has no name, which Salesforce refuses (REQUIRED_FIELD_MISSING).
    let fields = flow_between(
        &source,
        &s.object("accounts"),
        "create",
        "",
        &[
            ("Name", "record.name if record.id != 'con_000003' else ''"),
            ("Website", "record.email"),
        ],
    );
    let mut fields = fields;
    set(&mut fields, "record_key", "record.id");
    let flow = create_flow(&s.admin, &fields).await;
    let (run, page) = run_to_end(&s.admin, &flow).await;
    assert_eq!(
        count(&page, "written"),
        11,
        "{}",
        s.admin.get(&run).await.body
    );
    assert_eq!(count(&page, "failed"), 1);
    assert_eq!(s.vendor.lock().unwrap().all("Account").len(), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("REQUIRED_FIELD_MISSING"), "{dead}");

    // Changed contacts update the accounts created for them, by the id Salesforce gave
    // (PATCH /sobjects/Account/{id}, no Id in the body, 204).
    crate::common::flows::touch_contacts(&s.app, 2, "Renamed").await;
    let (_, page) = run_to_end(&s.admin, &flow).await;
    assert_eq!(count(&page, "written"), 2);
    assert_eq!(
        s.vendor.lock().unwrap().all("Account").len(),
        11,
        "updated, not created again"
    );
    let patches: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    assert!(
        patches[0]
            .path
            .starts_with(&format!("{API}/sobjects/Account/001"))
    );
    let names: Vec<String> = s
        .vendor
        .lock()
        .unwrap()
        .all("Account")
        .iter()
        .map(|a| a["Name"].as_str().unwrap().to_owned())
        .collect();
    assert!(
        names.iter().filter(|n| n.starts_with("Renamed")).count() == 2,
        "{names:?}"
    );

    // Upsert by an external id: created the first time, updated the next, the key in
    // the URL and never in the body.
    let mut upsert = flow_between(
        &source,
        &s.object("contacts"),
        "upsert",
        "Legacy_Id__c",
        &[
            ("Legacy_Id__c", "record.id"),
            ("LastName", "record.name"),
            ("Email", "record.email"),
        ],
    );
    set(&mut upsert, "record_key", "record.id");
    set(&mut upsert, "name", "Upsert contacts");
    let upsert = create_flow(&s.admin, &upsert).await;
    let (run, page) = run_to_end(&s.admin, &upsert).await;
    assert_eq!(
        count(&page, "written"),
        12,
        "{}",
        s.admin.get(&run).await.body
    );
    assert_eq!(s.vendor.lock().unwrap().all("Contact").len(), 12);
    crate::common::flows::touch_contacts(&s.app, 1, "Upserted").await;
    let (_, page) = run_to_end(&s.admin, &upsert).await;
    assert_eq!(count(&page, "written"), 1);
    let contacts = s.vendor.lock().unwrap().all("Contact");
    assert_eq!(contacts.len(), 12, "the second upsert updated");
    assert!(
        contacts
            .iter()
            .any(|c| c["LastName"] == "Upserted 0" && c["Legacy_Id__c"] == "con_000000")
    );
    s.app.stop().await;
}

#[tokio::test]
async fn a_salesforce_sandbox_org_signs_in_at_test_salesforce_com() {
    // Production sign-in leads nowhere here: only the sandbox host reaches the fake.
    let vendor = std::sync::Arc::new(std::sync::Mutex::new(Org::default()));
    let shared = vendor.clone();
    let fake = Fake::start(move |r| shared.lock().unwrap().handle(r)).await;
    let routes = format!(
        "https://test.salesforce.com={0},{INSTANCE}={0},{LOGIN}=http://127.0.0.1:9",
        fake.base
    );
    let app = crate::common::TestApp::spawn_with(&[
        ("SLUICE_PROVIDER_ORIGINS", routes.as_str()),
        ("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32"),
    ])
    .await;
    let admin = app.owner("ada@example.com", "Acme").await;
    connect_oauth(
        &admin,
        "salesforce",
        &[("client_id", CLIENT_ID), ("client_secret", CLIENT_SECRET)],
        &[
            ("name", "Acme sandbox"),
            ("field_login_host", "test.salesforce.com"),
        ],
    )
    .await;
    assert_eq!(fake.requests_to("/services/oauth2/token").len(), 1);
    let form = admin.get("/connections/new/salesforce").await.body;
    assert!(
        form.contains("<select id=\"field_login_host\""),
        "the environment is a choice: {form}"
    );
    // What each object supports, on the provider's page.
    let table = form
        .split("id=\"object-capabilities\"")
        .nth(1)
        .expect("capabilities");
    assert!(
        table.contains("<td>Accounts</td><td>✓</td><td>✓</td><td>✓</td><td>✓</td><td>✓</td>"),
        "{table}"
    );
    let refused = admin
        .post_form(
            "/connections/new/salesforce",
            &[("name", "Acme"), ("field_login_host", "evil.example")],
        )
        .await;
    assert!(
        refused.body.contains("Choose one of the options"),
        "{}",
        refused.body
    );
    app.stop().await;
}

#[tokio::test]
async fn the_flow_editor_shows_salesforce_fields_custom_ones_included_and_checks_the_mapping() {
    let s = SALESFORCE.connect::<Org>(SEEDED).await;
    let source = s.seeded_contacts().await;
    let mut fields = flow_between(
        &source,
        &s.object("contacts"),
        "create",
        "",
        &[("Name", "record.name"), ("Email", "record.email")],
    );
    set(&mut fields, "record_key", "record.id");

    // The declared fields show once the destination is chosen, without a call.
    set(&mut fields, "action", "preview");
    let page = crate::common::flows::post(&s.admin, "/flows", &fields).await;
    assert_eq!(page.status, 200);
    assert!(
        page.body.contains("Fields of Salesforce Contacts"),
        "{}",
        page.body
    );
    assert!(page.body.contains(r#"<option value="LastName">"#));
    assert!(
        !page.body.contains(r#"<option value="Name">"#),
        "read-only fields are not offered as targets"
    );
    assert!(!page.body.contains("Tier__c"));
    assert!(s.fake.requests_to(&format!("{API}/sobjects")).is_empty());

    // "Show fields" asks the org (sObject Describe) and adds its custom fields.
    set(&mut fields, "action", "sample");
    let page = crate::common::flows::post(&s.admin, "/flows", &fields).await;
    assert_eq!(page.status, 200);
    assert_eq!(
        s.fake
            .requests_to(&format!("{API}/sobjects/Contact/describe"))
            .len(),
        1
    );
    assert!(page.body.contains("Tier__c"), "{}", page.body);
    assert!(page.body.contains("Customer Tier"));
    assert!(page.body.contains(r#"<option value="Seats__c">"#));

    // Saving checks the mapping against the fields: Name is Salesforce's, LastName is
    // needed on every new contact, and Email takes text.
    set(&mut fields, "action", "save");
    set(&mut fields, "mapping.1.field_type", "integer");
    let refused = crate::common::flows::post(&s.admin, "/flows", &fields).await;
    assert_eq!(refused.status, 422, "{}", refused.body);
    for message in [
        "Contacts Name is set by the vendor and cannot be written",
        "Contacts needs LastName on every new record",
        "Email takes text values in Contacts",
    ] {
        assert!(
            refused.body.contains(message),
            "{message}: {}",
            refused.body
        );
    }

    // Mapped as Salesforce wants, the flow saves and creates the contacts.
    set(&mut fields, "mapping.0.target", "LastName");
    set(&mut fields, "mapping.1.field_type", "text");
    let flow = create_flow(&s.admin, &fields).await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "written"), 12);
    assert_eq!(s.vendor.lock().unwrap().all("Contact").len(), 12);
    s.app.stop().await;
}
