//! QuickBooks Online: Intuit OAuth (client by basic authentication; the company comes
//! back as `realmId` on the redirect), the production or sandbox API host chosen when
//! connecting, reads through the query language with `STARTPOSITION` (from 1) and
//! `MAXRESULTS` inside the query text, an empty `QueryResponse` when nothing matches,
//! times with the company's offset, sparse updates that must name the record's current
//! `SyncToken` (read first), `Fault` errors, and 429 throttling.
//!
//! Shapes from Intuit's developer documentation: "OAuth 2.0" (authorization request,
//! redirect with `code`, `state` and `realmId`; token answer `access_token`,
//! `refresh_token`, `expires_in`, `x_refresh_token_expires_in`, `token_type`), "Base
//! URLs" (`quickbooks.api.intuit.com`, `sandbox-quickbooks.api.intuit.com`), "Data
//! queries" (`select … from Customer where MetaData.LastUpdatedTime > '…' orderby …
//! startposition … maxresults …`, at most 1000), the Customer entity (`Id`,
//! `SyncToken`, `DisplayName`, `PrimaryEmailAddr`, `MetaData`; create; sparse update;
//! read by id), "Error codes" (`Fault.Error[]` with `Message`, `Detail`, `code`: 6240
//! duplicate name, 5010 stale object, 3001 throttled).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, at, bearer, redeem,
    run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const APPCENTER: &str = "https://appcenter.intuit.com";
const TOKENS: &str = "https://oauth.platform.intuit.com";
const SANDBOX: &str = "https://sandbox-quickbooks.api.intuit.com";
const CLIENT_ID: &str = "ABfakeintuitclient";
const CLIENT_SECRET: &str = "fake-intuit-secret";
const REALM: &str = "9130350000000001";

/// A sandbox company: customers, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Company {
    customers: BTreeMap<u64, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub throttled: u32,
    /// The next this many updates find the record changed by someone else first.
    pub stale: u32,
}

/// Company time (Pacific, as QuickBooks answers it).
fn stamp(seconds: i64) -> String {
    at(seconds)
        .with_timezone(&chrono::FixedOffset::west_opt(8 * 3600).unwrap())
        .to_rfc3339()
}

fn fault(status: u16, message: &str, detail: &str, code: &str) -> Answer {
    Answer::json(
        status,
        json!({ "Fault": { "Error": [{ "Message": message, "Detail": detail, "code": code, "element": "" }], "type": "ValidationFault" }, "time": stamp(0) }),
    )
}

impl Company {
    pub fn insert(&mut self, name: &str, email: &str) -> u64 {
        self.clock += 1;
        let id = 1 + self.customers.len() as u64;
        self.customers.insert(
            id,
            json!({
                "Id": id.to_string(), "SyncToken": "0", "DisplayName": name, "Active": true,
                "PrimaryEmailAddr": { "Address": email }, "Balance": 0, "Taxable": false,
                "domain": "QBO", "sparse": false,
                "MetaData": { "CreateTime": stamp(self.clock), "LastUpdatedTime": stamp(self.clock) },
            }),
        );
        id
    }

    pub fn touch(&mut self, id: u64, name: &str) {
        self.clock += 1;
        let customer = self.customers.get_mut(&id).unwrap();
        let sync: u64 = customer["SyncToken"].as_str().unwrap().parse().unwrap();
        customer["SyncToken"] = json!((sync + 1).to_string());
        customer["DisplayName"] = json!(name);
        customer["MetaData"]["LastUpdatedTime"] = json!(stamp(self.clock));
    }

    pub fn customers(&self) -> Vec<Value> {
        self.customers.values().cloned().collect()
    }

    fn authorize(&mut self, r: &Request) -> Answer {
        let answer = approve(&mut self.codes, r, CLIENT_ID, "AB11fakecode{n}");
        let Some((_, to)) = answer.headers.iter().find(|(k, _)| k == "location") else {
            return answer;
        };
        // The company the user picked comes back with the code.
        let mut back = url::Url::parse(to).unwrap();
        back.query_pairs_mut().append_pair("realmId", REALM);
        Answer::redirect(back.as_str())
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
                let token = format!("eyJfake.{:030}", self.tokens.len());
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "token_type": "bearer", "expires_in": 3600, "refresh_token": format!("AB11fakerefresh{}", self.tokens.len()), "x_refresh_token_expires_in": 8_726_400, "access_token": token }),
                )
            }
        }
    }

    /// `GET /query`: the query language, paged inside the query text.
    fn query(&self, r: &Request) -> Answer {
        let text = r.param("query").unwrap_or_default().to_lowercase();
        let parse = || -> Option<(Option<String>, usize, usize)> {
            let rest = text.strip_prefix("select * from customer ")?;
            let (since, rest) = match rest.strip_prefix("where metadata.lastupdatedtime > '") {
                Some(r) => {
                    let (since, rest) = r.split_once("' ")?;
                    (Some(since.to_owned()), rest)
                }
                None => (None, rest),
            };
            let rest = rest.strip_prefix("orderby metadata.lastupdatedtime startposition ")?;
            let (start, max) = rest.split_once(" maxresults ")?;
            Some((since, start.parse().ok()?, max.parse().ok()?))
        };
        let Some((since, start, max)) = parse() else {
            return fault(
                400,
                "Error parsing query",
                &format!("QueryParserError: Encountered an error while parsing: {text}"),
                "4000",
            );
        };
        if start == 0 || !(1..=1000).contains(&max) {
            return fault(
                400,
                "Invalid query",
                "QueryValidationError: STARTPOSITION must be at least 1 and MAXRESULTS at most 1000",
                "4001",
            );
        }
        let since = match since.map(|s| chrono::DateTime::parse_from_rfc3339(&s.to_uppercase())) {
            None => None,
            Some(Ok(t)) => Some(t),
            Some(Err(_)) => {
                return fault(
                    400,
                    "Invalid query",
                    "QueryValidationError: value is not a valid date",
                    "4001",
                );
            }
        };
        let mut matching: Vec<&Value> = self
            .customers
            .values()
            .filter(|c| {
                since.is_none_or(|since| {
                    chrono::DateTime::parse_from_rfc3339(
                        c["MetaData"]["LastUpdatedTime"].as_str().unwrap(),
                    )
                    .unwrap()
                        > since
                })
            })
            .collect();
        matching.sort_by_key(|c| {
            chrono::DateTime::parse_from_rfc3339(c["MetaData"]["LastUpdatedTime"].as_str().unwrap())
                .unwrap()
        });
        let page: Vec<Value> = matching
            .iter()
            .skip(start - 1)
            .take(max)
            .map(|c| (*c).clone())
            .collect();
        let response = if page.is_empty() {
            json!({})
        } else {
            json!({ "Customer": page, "startPosition": start, "maxResults": page.len() })
        };
        Answer::json(
            200,
            json!({ "QueryResponse": response, "time": stamp(self.clock) }),
        )
    }

    fn read(&self, id: &str) -> Answer {
        match id
            .parse::<u64>()
            .ok()
            .and_then(|id| self.customers.get(&id))
        {
            Some(customer) => Answer::json(
                200,
                json!({ "Customer": customer, "time": stamp(self.clock) }),
            ),
            None => fault(
                400,
                "Object Not Found",
                "Object Not Found : Something you're trying to use has been made inactive. Check the fields with accounts, customers, items, vendors or employees.",
                "610",
            ),
        }
    }

    fn write(&mut self, r: &Request) -> Answer {
        let Some(body) = r
            .json()
            .filter(|_| r.header("content-type") == Some("application/json"))
        else {
            return fault(
                400,
                "Request has invalid or unsupported property",
                "Property Name: the body must be JSON",
                "2010",
            );
        };
        let name = body["DisplayName"].as_str().unwrap_or_default().to_owned();
        let taken = |customers: &BTreeMap<u64, Value>, me: Option<&str>| {
            customers
                .values()
                .any(|c| c["DisplayName"] == name.as_str() && c["Id"].as_str() != me)
        };
        let Some(id) = body.get("Id").and_then(Value::as_str).map(str::to_owned) else {
            if name.is_empty() {
                return fault(
                    400,
                    "Required param missing, need to supply the required value for the API",
                    "Required parameter DisplayName is missing in the request",
                    "2020",
                );
            }
            if taken(&self.customers, None) {
                return fault(
                    400,
                    "Duplicate Name Exists Error",
                    "The name supplied already exists. : Another customer is already using this name. Please use a different name.",
                    "6240",
                );
            }
            let id = self.insert(
                &name,
                body["PrimaryEmailAddr"]["Address"]
                    .as_str()
                    .unwrap_or_default(),
            );
            return Answer::json(
                200,
                json!({ "Customer": self.customers[&id], "time": stamp(self.clock) }),
            );
        };
        let Some(current) = id
            .parse::<u64>()
            .ok()
            .filter(|id| self.customers.contains_key(id))
        else {
            return fault(400, "Object Not Found", "Object Not Found", "610");
        };
        if body["sparse"] != json!(true) {
            return fault(
                400,
                "Required param missing, need to supply the required value for the API",
                "A full update needs every writable field; send sparse: true for a partial one",
                "2020",
            );
        }
        if self.stale > 0 {
            self.stale -= 1;
            let name = self.customers[&current]["DisplayName"]
                .as_str()
                .unwrap()
                .to_owned();
            self.touch(current, &name);
        }
        if body["SyncToken"].as_str() != self.customers[&current]["SyncToken"].as_str() {
            return fault(
                400,
                "Stale Object Error",
                &format!(
                    "Stale Object Error : You and {} were working on this at the same time. {} finished before you did, so your work was not saved.",
                    "Ada", "Ada"
                ),
                "5010",
            );
        }
        if taken(&self.customers, Some(&id)) {
            return fault(
                400,
                "Duplicate Name Exists Error",
                "The name supplied already exists.",
                "6240",
            );
        }
        self.touch(current, &name);
        let customer = self.customers.get_mut(&current).unwrap();
        if let Some(email) = body.get("PrimaryEmailAddr") {
            customer["PrimaryEmailAddr"] = email.clone();
        }
        Answer::json(
            200,
            json!({ "Customer": customer.clone(), "time": stamp(self.clock) }),
        )
    }
}

impl Vendor for Company {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/connect/oauth2") => return self.authorize(r),
            ("POST", "/oauth2/v1/tokens/bearer") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return Answer::json(
                401,
                json!({ "fault": { "error": [{ "message": "message=AuthenticationFailed; errorCode=003200; statusCode=401", "detail": "Token expired", "code": "3200" }], "type": "AUTHENTICATION" } }),
            );
        }
        if self.throttled > 0 {
            self.throttled -= 1;
            return Answer::json(
                429,
                json!({ "Fault": { "Error": [{ "Message": "message=ThrottleExceeded; errorCode=003001; statusCode=429", "Detail": "The request limit was reached.", "code": "3001" }], "type": "SERVICE" }, "time": stamp(0) }),
            );
        }
        let Some(rest) = r.path.strip_prefix(&format!("/v3/company/{REALM}/")) else {
            return fault(
                403,
                "Unsupported Operation",
                "The company in the URL is not the one authorized",
                "5020",
            );
        };
        match (r.method.as_str(), rest) {
            ("GET", "query") => self.query(r),
            ("GET", path) if path.starts_with("customer/") => self.read(&path["customer/".len()..]),
            ("POST", "customer") => self.write(r),
            _ => fault(
                404,
                "Unsupported Operation",
                "Operation not supported",
                "500",
            ),
        }
    }
}

const INTUIT: OAuthVendor = OAuthVendor {
    provider: "quickbooks",
    origins: &[APPCENTER, TOKENS, SANDBOX],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

async fn connect(extra: &[(&str, &str)]) -> super::Connected<Company> {
    INTUIT
        .connect_with::<Company>(
            extra,
            &[],
            &[("field_api_host", "sandbox-quickbooks.api.intuit.com")],
        )
        .await
}

#[tokio::test]
async fn quickbooks_pages_customers_inside_the_query_of_the_company_from_the_callback() {
    let s = connect(&[]).await;
    {
        let mut company = s.vendor.lock().unwrap();
        for i in 0..2001 {
            company.insert(&format!("Customer {i}"), &format!("c{i}@example.com"));
        }
    }
    let flow = s
        .read_into_companies(
            "customers",
            "record.Id",
            &[
                ("name", "record.DisplayName"),
                ("domain", "record.PrimaryEmailAddr.Address"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 2001);
    let queries = s.fake.requests_to(&format!("/v3/company/{REALM}/query"));
    assert_eq!(
        queries.len(),
        3,
        "startposition 1, 1001, 2001; the short page ends it"
    );
    assert!(
        queries[0]
            .param("query")
            .unwrap()
            .contains("startposition 1 maxresults 1000")
    );
    assert!(
        queries[1]
            .param("query")
            .unwrap()
            .contains("startposition 1001 maxresults 1000")
    );
    assert_eq!(queries[0].param("minorversion"), Some("75"));

    // Two customers change: the next query filters by the newest change seen, in UTC
    // (QuickBooks answered in company time), after a throttled answer.
    {
        let mut company = s.vendor.lock().unwrap();
        company.touch(5, "Changed 5");
        company.touch(6, "Changed 6");
        company.throttled = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("ThrottleExceeded"), "{log}");
    let last = s
        .fake
        .requests_to(&format!("/v3/company/{REALM}/query"))
        .pop()
        .unwrap();
    let expected = at(2001).format("%Y-%m-%dT%H:%M:%S+00:00").to_string();
    assert!(
        last.param("query")
            .unwrap()
            .contains(&format!("where MetaData.LastUpdatedTime > '{expected}'")),
        "{:?}",
        last.param("query")
    );
    assert_eq!(count(&page, "read"), 2);

    // Nothing changed: QuickBooks leaves the list out, which is an empty read.
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 0);
    s.app.stop().await;
}

#[tokio::test]
async fn quickbooks_creates_customers_and_updates_them_with_their_current_sync_token() {
    let s = connect(SEEDED).await;
    let flow = s
        .contacts_into(
            "customers",
            &[
                // Two contacts want the same display name: QuickBooks refuses the second.
                (
                    "DisplayName",
                    "record.name if record.id != 'con_000004' else 'Dup con'",
                ),
                ("PrimaryEmailAddr", "{'Address': record.email}"),
            ],
        )
        .await;
    s.vendor
        .lock()
        .unwrap()
        .insert("Dup con", "dup@example.com");
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("Duplicate Name Exists Error"), "{dead}");

    // Updates read the customer first and send its SyncToken, sparse. One finds the
    // customer changed in between (Stale Object Error) and is tried again.
    touch_contacts(&s.app, 2, "Renamed").await;
    s.vendor.lock().unwrap().stale = 1;
    let (page, log) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2, "{log}");
    assert!(log.contains("Stale Object Error"), "{log}");
    let updates: Vec<Value> = s
        .fake
        .requests_to(&format!("/v3/company/{REALM}/customer"))
        .into_iter()
        .filter(|r| r.method == "POST")
        .filter_map(|r| r.json())
        .filter(|b| b.get("Id").is_some())
        .collect();
    assert!(
        updates
            .iter()
            .all(|b| b["sparse"] == true && b["SyncToken"].is_string())
    );
    let customers = s.vendor.lock().unwrap().customers();
    assert_eq!(
        customers.len(),
        12,
        "eleven created, one there before; none twice"
    );
    assert_eq!(
        customers
            .iter()
            .filter(|c| c["DisplayName"].as_str().unwrap().starts_with("Renamed"))
            .count(),
        2
    );
    s.app.stop().await;
}
