//! Shopify: OAuth on the shop's own host without PKCE (the token answer has only
//! `access_token` and comma-separated `scope`), the GraphQL Admin API at
//! `/admin/api/{version}/graphql.json` with the token in `X-Shopify-Access-Token`,
//! connections paged by `first`/`after` until `pageInfo.hasNextPage` is false, changes
//! by the search syntax `updated_at:>'…'`, mutations answering `userErrors`, and
//! throttling as HTTP 200 with a `THROTTLED` error.
//!
//! Shapes from Shopify's developer documentation: "Authorization code grant"
//! (`/admin/oauth/authorize` with `client_id`, `scope`, `redirect_uri`, `state`; token
//! request with `client_id`, `client_secret`, `code`; answer `access_token`, `scope`),
//! "GraphQL Admin API" (endpoint, `X-Shopify-Access-Token`), "Paginating results with
//! GraphQL" (`first` up to 250, `after`, `pageInfo { hasNextPage endCursor }`), the
//! `customers` query (`sortKey: UPDATED_AT`, `query: "updated_at:>'…'"`), the
//! `customerCreate` and `customerUpdate` mutations (`CustomerInput`, `userErrors`) and
//! "Shopify API rate limits" (cost-based throttling answered with `THROTTLED` and
//! `extensions.cost.throttleStatus`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve_without_pkce, at,
    redeem, run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const SHOP: &str = "https://acme-store.myshopify.com";
const GRAPHQL: &str = "/admin/api/2025-07/graphql.json";
const CLIENT_ID: &str = "fakeshopifyclientid";
const CLIENT_SECRET: &str = "shpss_fakesecret";

/// A Shopify store: customers, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Store {
    customers: BTreeMap<u64, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many queries are throttled.
    pub throttled: u32,
}

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn cost(requested: u64) -> Value {
    json!({ "cost": { "requestedQueryCost": requested, "actualQueryCost": requested, "throttleStatus": { "maximumAvailable": 2000.0, "currentlyAvailable": 2000 - requested, "restoreRate": 100.0 } } })
}

fn graphql_errors(message: &str, code: &str) -> Answer {
    Answer::json(
        200,
        json!({ "errors": [{ "message": message, "extensions": { "code": code } }], "extensions": cost(0) }),
    )
}

fn gid(id: u64) -> String {
    format!("gid://shopify/Customer/{id}")
}

impl Store {
    pub fn insert(&mut self, first: &str, email: &str) -> u64 {
        self.clock += 1;
        let id = 7_000_000 + self.customers.len() as u64 + 1;
        self.customers.insert(
            id,
            json!({
                "id": gid(id), "firstName": first, "lastName": null, "email": email, "phone": null,
                "note": null, "tags": [], "state": "ENABLED",
                "createdAt": stamp(self.clock), "updatedAt": stamp(self.clock),
            }),
        );
        id
    }

    pub fn touch(&mut self, id: u64, first: &str) {
        self.clock += 1;
        let customer = self.customers.get_mut(&id).unwrap();
        customer["firstName"] = json!(first);
        customer["updatedAt"] = json!(stamp(self.clock));
    }

    pub fn customers(&self) -> Vec<Value> {
        self.customers.values().cloned().collect()
    }

    fn token(&mut self, r: &Request) -> Answer {
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Post,
        ) {
            Err(_) => Answer::json(
                400,
                json!({ "error": "invalid_request", "error_description": "The authorization code was not found or was already used" }),
            ),
            Ok(()) => {
                let token = format!("shpat_fake{:024}", self.tokens.len());
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "access_token": token, "scope": "read_customers,write_customers,read_products,write_products,read_orders" }),
                )
            }
        }
    }

    fn customers_query(&self, variables: &Value) -> Answer {
        let Some(first) = variables["first"]
            .as_u64()
            .filter(|n| (1..=250).contains(n))
        else {
            return graphql_errors(
                "The field 'customers' requires 'first' or 'last' between 1 and 250.",
                "MAX_INPUT_SIZE_EXCEEDED",
            );
        };
        let after: u64 = match &variables["after"] {
            Value::Null => 0,
            Value::String(c) => match c
                .strip_prefix("eyJsYXN0X2lkIjo")
                .and_then(|n| n.parse().ok())
            {
                Some(n) => n,
                None => {
                    return graphql_errors(
                        "Invalid cursor for current pagination sort.",
                        "BAD_REQUEST",
                    );
                }
            },
            _ => {
                return graphql_errors(
                    "Variable $after of type String was provided invalid value",
                    "BAD_REQUEST",
                );
            }
        };
        let since = match variables.get("query").and_then(Value::as_str) {
            None => None,
            Some(q) => match q
                .strip_prefix("updated_at:>'")
                .and_then(|q| q.strip_suffix('\''))
                .map(chrono::DateTime::parse_from_rfc3339)
            {
                Some(Ok(t)) => Some(t),
                _ => return graphql_errors("Invalid search query", "BAD_REQUEST"),
            },
        };
        let updated = |c: &Value| {
            chrono::DateTime::parse_from_rfc3339(c["updatedAt"].as_str().unwrap()).unwrap()
        };
        let mut matching: Vec<(usize, &Value)> = Vec::new();
        let mut sorted: Vec<&Value> = self
            .customers
            .values()
            .filter(|c| since.is_none_or(|s| updated(c) > s))
            .collect();
        sorted.sort_by_key(|c| updated(c));
        for (i, c) in sorted.into_iter().enumerate() {
            matching.push((i + 1, c));
        }
        let page: Vec<&(usize, &Value)> = matching
            .iter()
            .filter(|(n, _)| *n as u64 > after)
            .take(first as usize)
            .collect();
        let edges: Vec<Value> = page
            .iter()
            .map(|(n, c)| json!({ "node": c, "cursor": format!("eyJsYXN0X2lkIjo{n}") }))
            .collect();
        let end = page.last().map(|(n, _)| format!("eyJsYXN0X2lkIjo{n}"));
        let more = page.last().is_some_and(|(n, _)| *n < matching.len());
        Answer::json(
            200,
            json!({ "data": { "customers": { "edges": edges, "pageInfo": { "hasNextPage": more, "endCursor": end } } }, "extensions": cost(first + 2) }),
        )
    }

    fn customer_mutation(&mut self, update: bool, variables: &Value) -> Answer {
        let name = if update {
            "customerUpdate"
        } else {
            "customerCreate"
        };
        let Some(input) = variables.get("input").and_then(Value::as_object) else {
            return graphql_errors(
                "Variable $input of type CustomerInput! was provided invalid value",
                "BAD_REQUEST",
            );
        };
        let refused = |field: &str, message: &str| {
            Answer::json(
                200,
                json!({ "data": { name: { "customer": null, "userErrors": [{ "field": [field], "message": message }] } }, "extensions": cost(10) }),
            )
        };
        if let Some(email) = input.get("email").and_then(Value::as_str)
            && !email.contains('@')
        {
            return refused("email", "Email is invalid");
        }
        let id = if update {
            match input
                .get("id")
                .and_then(Value::as_str)
                .and_then(|g| g.strip_prefix("gid://shopify/Customer/"))
                .and_then(|n| n.parse().ok())
            {
                Some(id) if self.customers.contains_key(&id) => {
                    self.touch(
                        id,
                        input
                            .get("firstName")
                            .and_then(Value::as_str)
                            .unwrap_or_default(),
                    );
                    id
                }
                _ => return refused("id", "Customer does not exist"),
            }
        } else {
            if input.contains_key("id") {
                return refused("id", "id is not allowed on create");
            }
            self.insert(
                input
                    .get("firstName")
                    .and_then(Value::as_str)
                    .unwrap_or_default(),
                "",
            )
        };
        let customer = self.customers.get_mut(&id).unwrap();
        for (k, v) in input {
            if k != "id" {
                customer[k] = v.clone();
            }
        }
        Answer::json(
            200,
            json!({ "data": { name: { "customer": { "id": gid(id) }, "userErrors": [] } }, "extensions": cost(10) }),
        )
    }
}

impl Vendor for Store {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/admin/oauth/authorize") => {
                return approve_without_pkce(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/admin/oauth/access_token") => return self.token(r),
            _ => {}
        }
        let token = r.header("x-shopify-access-token").unwrap_or_default();
        if !self.tokens.iter().any(|t| t == token) {
            return Answer::json(
                401,
                json!({ "errors": "[API] Invalid API key or access token (unrecognized login or wrong password)" }),
            );
        }
        if (r.method.as_str(), r.path.as_str()) != ("POST", GRAPHQL) {
            return Answer::json(404, json!({ "errors": "Not Found" }));
        }
        let Some(body) = r
            .json()
            .filter(|_| r.header("content-type") == Some("application/json"))
        else {
            return Answer::json(
                400,
                json!({ "errors": { "query": "Required parameter missing or invalid" } }),
            );
        };
        let query = body["query"].as_str().unwrap_or_default();
        let variables = body.get("variables").cloned().unwrap_or(Value::Null);
        if self.throttled > 0 && query.starts_with("query") {
            self.throttled -= 1;
            return graphql_errors("Throttled", "THROTTLED");
        }
        if query.starts_with("query Customers(")
            && query.contains("customers(first: $first, after: $after")
        {
            self.customers_query(&variables)
        } else if query.starts_with("mutation customerCreate(") {
            self.customer_mutation(false, &variables)
        } else if query.starts_with("mutation customerUpdate(") {
            self.customer_mutation(true, &variables)
        } else {
            graphql_errors("Parse error on query", "GRAPHQL_PARSE_FAILED")
        }
    }
}

const SHOPIFY: OAuthVendor = OAuthVendor {
    provider: "shopify",
    origins: &[SHOP],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

async fn connect(extra: &[(&str, &str)]) -> super::Connected<Store> {
    SHOPIFY
        .connect_with::<Store>(extra, &[], &[("field_shop", "acme-store")])
        .await
}

#[tokio::test]
async fn shopify_pages_customers_through_graphql_then_asks_for_what_changed() {
    let s = connect(&[]).await;
    {
        let mut store = s.vendor.lock().unwrap();
        for i in 0..600 {
            store.insert(&format!("Buyer {i}"), &format!("b{i}@example.com"));
        }
    }
    let flow = s
        .read_into_companies(
            "customers",
            "record.id",
            &[("name", "record.firstName"), ("domain", "record.email")],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 600);
    let queries = s.fake.requests_to(GRAPHQL);
    assert_eq!(queries.len(), 3, "250, 250, 100 until hasNextPage is false");
    let second = queries[1].json().unwrap();
    assert_eq!(second["variables"]["first"], 250);
    assert_eq!(second["variables"]["after"], "eyJsYXN0X2lkIjo250");

    {
        let mut store = s.vendor.lock().unwrap();
        store.touch(7_000_010, "Changed");
        store.touch(7_000_011, "Changed");
        store.throttled = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("THROTTLED"), "{log}");
    let last = s.fake.requests_to(GRAPHQL).pop().unwrap().json().unwrap();
    assert_eq!(
        last["variables"]["query"],
        format!("updated_at:>'{}'", stamp(600))
    );
    assert_eq!(count(&page, "read"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn shopify_creates_and_updates_customers_by_mutation_and_user_errors_are_dead_letters() {
    let s = connect(SEEDED).await;
    let flow = s
        .contacts_into(
            "customers",
            &[
                ("firstName", "record.name"),
                (
                    "email",
                    "record.email if record.id != 'con_000003' else 'not-an-email'",
                ),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("Email is invalid"), "{dead}");
    assert_eq!(s.vendor.lock().unwrap().customers().len(), 11);

    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    let updates: Vec<Value> = s
        .fake
        .requests_to(GRAPHQL)
        .iter()
        .filter_map(Request::json)
        .filter(|b| {
            b["query"]
                .as_str()
                .unwrap()
                .starts_with("mutation customerUpdate")
        })
        .collect();
    assert_eq!(updates.len(), 2);
    assert!(updates.iter().all(|u| {
        u["variables"]["input"]["id"]
            .as_str()
            .unwrap()
            .starts_with("gid://shopify/Customer/")
    }));
    let customers = s.vendor.lock().unwrap().customers();
    assert_eq!(customers.len(), 11, "updated, not created again");
    assert_eq!(
        customers
            .iter()
            .filter(|c| c["firstName"].as_str().unwrap().starts_with("Renamed"))
            .count(),
        2
    );
    s.app.stop().await;
}
