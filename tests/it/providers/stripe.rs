//! Stripe: a secret key as a bearer token, lists paged by `starting_after` while
//! `has_more`, form-encoded writes with nested values in bracket notation, updates as
//! POSTs, idempotency keys honoured, errors as `{"error": {type, code, message, param}}`.
//!
//! Shapes from Stripe's API reference: "Authentication" (`Authorization: Bearer
//! sk_…`), "Pagination" (`limit` 1–100, `starting_after`, `{object: "list", url,
//! has_more, data}`), "The Customer object" and "Create / Update / List customers",
//! "Metadata" (`metadata[key]=value`), "Idempotent requests" (a key replays its first
//! answer; other parameters under it are an `idempotency_error`), "Errors" (400
//! `invalid_request_error` with `code` and `param`, 401 for a bad key, 429 rate limits).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Answer, KeyVendor, Request, SEEDED, Vendor, flow_fields, run_ending};
use crate::common::flows::{count, create_flow, touch_contacts};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, HashMap};

const API: &str = "https://api.stripe.com";
const KEY: &str = "sk_test_51Fake000000000000000000";
const CUSTOMER_PARAMS: &[&str] = &["name", "email", "description", "phone", "metadata"];

/// A Stripe account in test mode.
#[derive(Default)]
pub struct Account {
    customers: BTreeMap<String, Value>,
    next: u64,
    /// Idempotency key → the request it came with and the answer given.
    replays: HashMap<String, Replay>,
    /// The next this many calls answer 429.
    pub rate_limited: u32,
}

/// What an idempotency key was first used for.
struct Replay {
    params: Vec<(String, String)>,
    status: u16,
    answer: Value,
}

fn error(
    status: u16,
    kind: &str,
    code: Option<&str>,
    message: &str,
    param: Option<&str>,
) -> Answer {
    let mut error = json!({ "type": kind, "message": message });
    if let Some(code) = code {
        error["code"] = json!(code);
        error["doc_url"] = json!(format!(
            "https://stripe.com/docs/error-codes/{}",
            code.replace('_', "-")
        ));
    }
    if let Some(param) = param {
        error["param"] = json!(param);
    }
    Answer::json(status, json!({ "error": error }))
}

/// Form pairs into the object they describe: `metadata[ref]=x` → `{"metadata": {"ref": "x"}}`.
fn unflatten(pairs: &[(String, String)]) -> Result<Map<String, Value>, String> {
    let mut out = Map::new();
    for (name, value) in pairs {
        match name.split_once('[') {
            None => {
                out.insert(name.clone(), json!(value));
            }
            Some((outer, rest)) => {
                let inner = rest
                    .strip_suffix(']')
                    .filter(|k| !k.contains('[') && !k.is_empty())
                    .ok_or_else(|| name.clone())?;
                let entry = out.entry(outer.to_owned()).or_insert_with(|| json!({}));
                entry
                    .as_object_mut()
                    .ok_or_else(|| name.clone())?
                    .insert(inner.to_owned(), json!(value));
            }
        }
    }
    Ok(out)
}

impl Account {
    pub fn insert(&mut self, fields: Map<String, Value>) -> String {
        self.next += 1;
        let id = format!("cus_Fake{:010}", self.next);
        let mut customer = json!({
            "id": id, "object": "customer", "address": null, "balance": 0,
            "created": 1_767_225_600 + self.next as i64, "currency": null, "delinquent": false,
            "description": null, "email": null, "invoice_prefix": format!("FAKE{:04}", self.next),
            "livemode": false, "metadata": {}, "name": null, "phone": null,
            "preferred_locales": [], "tax_exempt": "none",
        });
        for (k, v) in fields {
            customer[k] = v;
        }
        self.customers.insert(id.clone(), customer);
        id
    }

    pub fn customers(&self) -> Vec<Value> {
        self.customers.values().cloned().collect()
    }

    fn write(&mut self, r: &Request, id: Option<&str>) -> (u16, Value) {
        let pairs: Vec<(String, String)> =
            url::form_urlencoded::parse(&r.body).into_owned().collect();
        let fields = match unflatten(&pairs) {
            Ok(fields) => fields,
            Err(name) => {
                return (
                    400,
                    json!({"error": {"type": "invalid_request_error", "message": format!("Invalid parameter: {name}")}}),
                );
            }
        };
        if let Some(unknown) = fields
            .keys()
            .find(|k| !CUSTOMER_PARAMS.contains(&k.as_str()))
        {
            return (
                400,
                json!({"error": {"type": "invalid_request_error", "code": "parameter_unknown", "message": format!("Received unknown parameter: {unknown}"), "param": unknown}}),
            );
        }
        if let Some(email) = fields.get("email").and_then(Value::as_str)
            && !email.is_empty()
            && !email.contains('@')
        {
            return (
                400,
                json!({"error": {"type": "invalid_request_error", "code": "email_invalid", "message": format!("Invalid email address: {email}"), "param": "email"}}),
            );
        }
        match id {
            None => {
                let id = self.insert(fields);
                (200, self.customers[&id].clone())
            }
            Some(id) => match self.customers.get_mut(id) {
                None => (
                    404,
                    json!({"error": {"type": "invalid_request_error", "code": "resource_missing", "message": format!("No such customer: '{id}'"), "param": "id"}}),
                ),
                Some(customer) => {
                    for (k, v) in fields {
                        customer[k] = v;
                    }
                    (200, customer.clone())
                }
            },
        }
    }
}

impl Vendor for Account {
    fn handle(&mut self, r: &Request) -> Answer {
        if r.header("authorization") != Some(&format!("Bearer {KEY}")) {
            return error(
                401,
                "invalid_request_error",
                None,
                "Invalid API Key provided: sk_test_****0000",
                None,
            );
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            return error(
                429,
                "invalid_request_error",
                Some("rate_limit"),
                "Request rate limit exceeded. Learn more about rate limits here https://stripe.com/docs/rate-limits.",
                None,
            );
        }
        let id = r.path.strip_prefix("/v1/customers/");
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/v1/customers") => {
                let limit: usize = r.param("limit").map_or(Ok(10), str::parse).unwrap_or(0);
                if !(1..=100).contains(&limit) {
                    return error(
                        400,
                        "invalid_request_error",
                        Some("parameter_invalid_integer"),
                        "This value must be less than or equal to 100.",
                        Some("limit"),
                    );
                }
                if let Some(unknown) = r
                    .query
                    .iter()
                    .map(|(k, _)| k.as_str())
                    .find(|k| !["limit", "starting_after", "email", "created"].contains(k))
                {
                    return error(
                        400,
                        "invalid_request_error",
                        Some("parameter_unknown"),
                        &format!("Received unknown parameter: {unknown}"),
                        Some(unknown),
                    );
                }
                // Newest first, as Stripe lists.
                let all: Vec<&Value> = self.customers.values().rev().collect();
                let start = match r.param("starting_after") {
                    None => 0,
                    Some(after) => match all.iter().position(|c| c["id"] == after) {
                        Some(at) => at + 1,
                        None => {
                            return error(
                                400,
                                "invalid_request_error",
                                Some("resource_missing"),
                                &format!("No such customer: '{after}'"),
                                Some("starting_after"),
                            );
                        }
                    },
                };
                let data: Vec<&Value> = all.iter().skip(start).take(limit).copied().collect();
                Answer::json(
                    200,
                    json!({ "object": "list", "url": "/v1/customers", "has_more": start + limit < all.len(), "data": data }),
                )
            }
            ("POST", _) if r.path == "/v1/customers" || id.is_some_and(|id| !id.contains('/')) => {
                if r.header("content-type") != Some("application/x-www-form-urlencoded") {
                    return error(
                        400,
                        "invalid_request_error",
                        None,
                        "Invalid request (check that your POST content type is application/x-www-form-urlencoded). If you have any questions, we can help at https://support.stripe.com/.",
                        None,
                    );
                }
                let pairs: Vec<(String, String)> =
                    url::form_urlencoded::parse(&r.body).into_owned().collect();
                let key = r.header("idempotency-key").map(str::to_owned);
                if let Some(key) = &key
                    && let Some(first) = self.replays.get(key)
                {
                    if first.params != pairs {
                        return error(
                            400,
                            "idempotency_error",
                            None,
                            "Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than the one used in the original request.",
                            None,
                        );
                    }
                    let mut replay = Answer::json(first.status, first.answer.clone());
                    replay
                        .headers
                        .push(("idempotent-replayed".into(), "true".into()));
                    return replay;
                }
                let (status, answer) = self.write(r, id);
                if let Some(key) = key {
                    self.replays.insert(
                        key,
                        Replay {
                            params: pairs,
                            status,
                            answer: answer.clone(),
                        },
                    );
                }
                Answer::json(status, answer)
            }
            _ => error(
                404,
                "invalid_request_error",
                None,
                &format!("Unrecognized request URL ({} {}).", r.method, r.path),
                None,
            ),
        }
    }
}

/// Stripe connects with a secret key, not OAuth.
const STRIPE: KeyVendor = KeyVendor {
    provider: "stripe",
    origins: &[API],
    key: KEY,
};

#[tokio::test]
async fn stripe_lists_customers_by_starting_after_until_has_more_is_false() {
    let s = STRIPE.connect::<Account>(&[]).await;
    {
        let mut account = s.vendor.lock().unwrap();
        for i in 0..250 {
            let mut fields = Map::new();
            fields.insert("name".into(), json!(format!("Customer {i}")));
            fields.insert("email".into(), json!(format!("c{i}@example.com")));
            account.insert(fields);
        }
        account.rate_limited = 1;
    }
    let crm = s.sandbox("sandbox_crm").await;
    let source = s.object("customers");
    let destination = format!("{crm}:companies");
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Stripe customers to companies"),
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
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    assert_eq!(s.app.sandbox_records("crm.companies").await, 250);
    assert!(
        log.contains("rate_limit"),
        "the 429 is in the run log: {log}"
    );
    let lists: Vec<Request> = s
        .fake
        .requests_to("/v1/customers")
        .into_iter()
        .filter(|r| r.method == "GET")
        .collect();
    assert_eq!(
        lists.len(),
        4,
        "one refused by the rate limit, then pages of 100, 100, 50"
    );
    let listed = s.vendor.lock().unwrap().customers();
    // Newest first: the second page starts after the 100th newest.
    assert_eq!(lists[2].param("starting_after"), listed[150]["id"].as_str());
    s.app.stop().await;
}

#[tokio::test]
async fn stripe_creates_and_updates_customers_with_form_bodies_and_refuses_a_bad_email() {
    let s = STRIPE.connect::<Account>(SEEDED).await;
    let source = s.seeded_contacts().await;
    let destination = s.object("customers");
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Contacts to Stripe"),
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
                ("name", "record.name"),
                ("metadata", "{'sluice_ref': record.id}"),
            ],
        ),
    )
    .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    assert_eq!(count(&page, "failed"), 1);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("email_invalid"), "{dead}");
    let customers = s.vendor.lock().unwrap().customers();
    assert_eq!(customers.len(), 11);
    assert!(customers.iter().all(|c| {
        c["metadata"]["sluice_ref"]
            .as_str()
            .is_some_and(|r| r.starts_with("con_"))
    }));
    let posts: Vec<Request> = s
        .fake
        .requests_to("/v1/customers")
        .into_iter()
        .filter(|r| r.method == "POST")
        .collect();
    assert!(
        posts.iter().all(|p| p.header("idempotency-key").is_some()),
        "every write has a key"
    );
    let created: HashMap<String, String> = customers
        .iter()
        .map(|c| {
            (
                c["metadata"]["sluice_ref"].as_str().unwrap().to_owned(),
                c["id"].as_str().unwrap().to_owned(),
            )
        })
        .collect();

    // Changed contacts update their customers: POST /v1/customers/{id}, no id in the body.
    // The refused record is tried again with every run until it is fixed.
    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    assert_eq!(count(&page, "failed"), 1);
    let updates: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "POST" && r.path.starts_with("/v1/customers/"))
        .collect();
    assert_eq!(updates.len(), 2);
    for update in &updates {
        let form = update.form();
        assert!(!form.contains_key("id"));
        let reference = &form["metadata[sluice_ref]"];
        assert_eq!(update.path, format!("/v1/customers/{}", created[reference]));
    }
    let customers = s.vendor.lock().unwrap().customers();
    assert_eq!(customers.len(), 11, "updated, not created again");
    assert_eq!(
        customers
            .iter()
            .filter(|c| c["name"].as_str().unwrap().starts_with("Renamed"))
            .count(),
        2
    );
    s.app.stop().await;
}
