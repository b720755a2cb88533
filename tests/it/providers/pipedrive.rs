//! Pipedrive: OAuth with the client authenticated by basic authentication and the
//! company's own API host in the token answer (`api_domain`), the v2 API paged by
//! `cursor` (`additional_data.next_cursor`, null on the last page), `updated_since` in
//! RFC 3339, JSON writes answered `{"success": true, "data": …}`, 400 validation errors
//! with `success: false`, and 429 with `x-ratelimit-*` headers.
//!
//! Shapes from Pipedrive's developer documentation: "OAuth authorization" (authorize at
//! oauth.pipedrive.com, token request with basic authentication, answer `access_token`,
//! `refresh_token`, `expires_in`, `scope`, `api_domain`), "Pagination" (cursor pagination
//! in API v2, `limit` up to 500), the API v2 reference for Persons (`GET /api/v2/persons`
//! with `cursor`, `limit`, `updated_since`; `POST`; `PATCH /api/v2/persons/{id}`; the
//! person object with `emails[]`, `add_time`, `update_time`), "Rate limiting" (429,
//! `x-ratelimit-limit`, `x-ratelimit-remaining`, `x-ratelimit-reset`) and "HTTP status
//! codes" (`success`, `error`, `code`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, at, bearer, redeem,
    run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const OAUTH: &str = "https://oauth.pipedrive.com";
const COMPANY: &str = "https://acme.pipedrive.com";
const CLIENT_ID: &str = "fakepipedriveclient";
const CLIENT_SECRET: &str = "fake-pipedrive-secret";

/// A Pipedrive company: persons, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Company {
    persons: BTreeMap<u64, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn failed(status: u16, error: &str, code: &str) -> Answer {
    Answer::json(
        status,
        json!({ "success": false, "error": error, "code": code, "error_info": "Please check developers.pipedrive.com for more information about Pipedrive API.", "data": null, "additional_data": null }),
    )
}

impl Company {
    pub fn insert(&mut self, name: &str, email: &str) -> u64 {
        self.clock += 1;
        let id = 1 + self.persons.len() as u64;
        self.persons.insert(
            id,
            json!({
                "id": id, "name": name, "first_name": name.split(' ').next(), "last_name": null,
                "owner_id": 1, "org_id": null, "is_deleted": false, "visible_to": 3,
                "add_time": stamp(self.clock), "update_time": stamp(self.clock),
                "emails": [{ "value": email, "primary": true, "label": "work" }],
                "phones": [], "label_ids": [], "custom_fields": {},
            }),
        );
        id
    }

    pub fn touch(&mut self, id: u64, name: &str) {
        self.clock += 1;
        let person = self.persons.get_mut(&id).unwrap();
        person["name"] = json!(name);
        person["update_time"] = json!(stamp(self.clock));
    }

    pub fn persons(&self) -> Vec<Value> {
        self.persons.values().cloned().collect()
    }

    fn token(&mut self, r: &Request) -> Answer {
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Basic,
        ) {
            Err(error) => Answer::json(
                400,
                json!({ "success": false, "message": "Invalid grant: authorization code is invalid", "error": error }),
            ),
            Ok(()) => {
                let token = format!("v1u:fake{:030}", self.tokens.len());
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "access_token": token, "token_type": "Bearer", "refresh_token": format!("fakerefresh{}", self.tokens.len()), "scope": "base,deals:full,contacts:full,activities:full,users:read", "expires_in": 3599, "api_domain": COMPANY }),
                )
            }
        }
    }

    fn list(&self, r: &Request) -> Answer {
        let limit: usize = r.param("limit").map_or(Ok(100), str::parse).unwrap_or(0);
        if !(1..=500).contains(&limit) {
            return failed(
                400,
                "Validation failed: limit: Parameter 'limit' must be less than or equal to 500",
                "ERR_SCHEMA_VALIDATION_FAILED",
            );
        }
        let since = match r.param("updated_since") {
            None => None,
            Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t),
                Err(_) => {
                    return failed(
                        400,
                        "Validation failed: updated_since: must be a valid RFC3339 date-time",
                        "ERR_SCHEMA_VALIDATION_FAILED",
                    );
                }
            },
        };
        let after: u64 = match r.param("cursor") {
            None => 0,
            Some(c) => match c.strip_prefix("fakecursor:").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => {
                    return failed(
                        400,
                        "Validation failed: cursor: invalid cursor",
                        "ERR_SCHEMA_VALIDATION_FAILED",
                    );
                }
            },
        };
        // `updated_since` keeps those updated at or after the time.
        let matching: Vec<&Value> = self
            .persons
            .values()
            .filter(|p| p["id"].as_u64().unwrap() > after)
            .filter(|p| {
                since.is_none_or(|since| {
                    chrono::DateTime::parse_from_rfc3339(p["update_time"].as_str().unwrap())
                        .unwrap()
                        >= since
                })
            })
            .collect();
        let page: Vec<Value> = matching.iter().take(limit).map(|p| (*p).clone()).collect();
        let next =
            (matching.len() > limit).then(|| format!("fakecursor:{}", page.last().unwrap()["id"]));
        Answer::json(
            200,
            json!({ "success": true, "data": page, "additional_data": { "next_cursor": next } }),
        )
    }

    fn write(&mut self, r: &Request, id: Option<u64>) -> Answer {
        let Some(body) = r
            .json()
            .filter(|_| r.header("content-type") == Some("application/json"))
        else {
            return failed(415, "Unsupported media type", "ERR_UNSUPPORTED_MEDIA_TYPE");
        };
        if body.get("id").is_some() {
            return failed(
                400,
                "Validation failed: id: Parameter 'id' is not allowed for this request",
                "ERR_SCHEMA_VALIDATION_FAILED",
            );
        }
        if let Some(emails) = body.get("emails")
            && !emails
                .as_array()
                .is_some_and(|e| e.iter().all(|x| x["value"].is_string()))
        {
            return failed(
                400,
                "Validation failed: emails: must be an array of objects with value",
                "ERR_SCHEMA_VALIDATION_FAILED",
            );
        }
        let name = body["name"].as_str().unwrap_or_default();
        let id = match id {
            None if name.is_empty() => {
                return failed(
                    400,
                    "Validation failed: name: Name must be given",
                    "ERR_SCHEMA_VALIDATION_FAILED",
                );
            }
            None => self.insert(name, ""),
            Some(id) if !self.persons.contains_key(&id) => {
                return failed(404, "Person not found", "ERR_NOT_FOUND");
            }
            Some(id) => {
                let name = if name.is_empty() {
                    self.persons[&id]["name"].as_str().unwrap().to_owned()
                } else {
                    name.to_owned()
                };
                self.touch(id, &name);
                id
            }
        };
        let person = self.persons.get_mut(&id).unwrap();
        for (k, v) in body.as_object().unwrap() {
            person[k] = v.clone();
        }
        Answer::json(200, json!({ "success": true, "data": person.clone() }))
    }
}

impl Vendor for Company {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/oauth/authorize") => {
                return approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/oauth/token") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return failed(401, "Unauthorized", "ERR_UNAUTHORIZED");
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let mut answer = Answer::json(
                429,
                json!({ "success": false, "error": "Request over limit", "errorCode": 429 }),
            );
            answer.headers.extend([
                ("x-ratelimit-limit".into(), "80".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-reset".into(), "1".into()),
            ]);
            return answer;
        }
        let person = |path: &str| {
            path.strip_prefix("/api/v2/persons/")
                .and_then(|id| id.parse().ok())
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v2/persons") => self.list(r),
            ("POST", "/api/v2/persons") => self.write(r, None),
            ("PATCH", path) if person(path).is_some() => self.write(r, person(path)),
            _ => failed(404, "Unknown method", "ERR_NOT_FOUND"),
        }
    }
}

const PIPEDRIVE: OAuthVendor = OAuthVendor {
    provider: "pipedrive",
    origins: &[OAUTH, COMPANY],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

#[tokio::test]
async fn pipedrive_reads_persons_at_the_companys_api_domain_by_cursor_then_what_changed() {
    let s = PIPEDRIVE.connect::<Company>(&[]).await;
    {
        let mut company = s.vendor.lock().unwrap();
        for i in 0..1001 {
            company.insert(&format!("Person {i}"), &format!("p{i}@example.com"));
        }
    }
    let flow = s
        .read_into_companies(
            "persons",
            "record.id",
            &[
                ("name", "record.name"),
                ("domain", "record.emails[0].value"),
            ],
        )
        .await;
    // Every API call goes to the company's host from the token answer (`api_domain`):
    // without it the base URL could not be filled and the run would fail.
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 1001);
    let lists = s.fake.requests_to("/api/v2/persons");
    assert_eq!(lists.len(), 3, "500, 500, 1");
    assert!(lists.iter().all(|r| r.param("limit") == Some("500")));
    assert_eq!(lists[1].param("cursor"), Some("fakecursor:500"));

    {
        let mut company = s.vendor.lock().unwrap();
        company.touch(12, "Changed");
        company.touch(13, "Changed");
        company.rate_limited = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("Request over limit"), "{log}");
    let last = s.fake.requests_to("/api/v2/persons").pop().unwrap();
    assert_eq!(last.param("updated_since"), Some(stamp(1001).as_str()));
    // At or after: the newest person of the first run comes again, unchanged.
    assert_eq!(count(&page, "read"), 3);
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn pipedrive_creates_and_updates_persons_and_a_nameless_one_is_a_dead_letter() {
    let s = PIPEDRIVE.connect::<Company>(SEEDED).await;
    let flow = s
        .contacts_into(
            "persons",
            &[
                ("name", "record.name if record.id != 'con_000003' else ''"),
                (
                    "emails",
                    "[{'value': record.email, 'primary': true, 'label': 'work'}]",
                ),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    assert_eq!(count(&page, "failed"), 1);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("Name must be given"), "{dead}");

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
    let persons = s.vendor.lock().unwrap().persons();
    assert_eq!(persons.len(), 11, "updated, not created again");
    for patch in patches {
        let id: u64 = patch
            .path
            .trim_start_matches("/api/v2/persons/")
            .parse()
            .unwrap();
        let person = persons.iter().find(|p| p["id"] == id).unwrap();
        assert!(person["name"].as_str().unwrap().starts_with("Renamed"));
    }
    s.app.stop().await;
}
