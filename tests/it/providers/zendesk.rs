//! Zendesk Support: OAuth on the account's own subdomain (PKCE, the client secret in
//! the form), the cursor-based incremental exports (`start_time` in epoch seconds on
//! the first request, then `after_url` until `end_of_stream`), one-record writes wrapped
//! in the object's name, `create_or_update` matching users by email, 422 `RecordInvalid`
//! errors, and 429 with `Retry-After`.
//!
//! Shapes from Zendesk's developer documentation: "Using OAuth authentication with your
//! application" (`/oauth/authorizations/new`, `/oauth/tokens`, PKCE), "Incremental
//! Exports" (cursor-based ticket and user exports: `start_time`, `cursor`, `per_page` up
//! to 1000, `after_url`, `after_cursor`, `end_of_stream`; start time at least a minute
//! in the past), "Tickets" and "Users" (objects, create, update, `create_or_update`
//! answering 201 when created and 200 when updated), "Errors" (`RecordInvalid` with
//! `details`), "Rate limits" (429, `Retry-After`) and "OAuth Tokens for Grant Types"
//! (`POST /oauth/tokens` with `scope` on every grant, refresh tokens, `invalid_token`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, at, bearer,
    flow_fields, redeem, run_ending,
};
use crate::common::flows::{count, create_flow, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ACCOUNT: &str = "https://acme.zendesk.com";
const CLIENT_ID: &str = "sluice_integration";
const CLIENT_SECRET: &str = "fake-zendesk-secret";

/// A Zendesk account: tickets, users, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Account {
    tickets: BTreeMap<u64, Value>,
    users: BTreeMap<u64, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    refresh_tokens: Vec<String>,
    /// Refresh grants honoured.
    pub refreshed: u32,
    /// Export cursors handed out: cursor → (kind, position after which to go on).
    cursors: BTreeMap<String, (String, usize)>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

fn invalid(field: &str, description: &str) -> Answer {
    Answer::json(
        422,
        json!({ "error": "RecordInvalid", "description": "Record validation errors", "details": { field: [{ "description": description, "error": "InvalidValue" }] } }),
    )
}

impl Account {
    pub fn add_ticket(&mut self, subject: &str) -> u64 {
        self.clock += 1;
        let id = 1 + self.tickets.len() as u64;
        self.tickets.insert(
            id,
            json!({
                "id": id, "url": format!("{ACCOUNT}/api/v2/tickets/{id}.json"), "external_id": null,
                "type": "question", "subject": subject, "raw_subject": subject,
                "description": format!("{subject}, please help"), "priority": "normal", "status": "open",
                "requester_id": 9001, "submitter_id": 9001, "assignee_id": null, "organization_id": null,
                "tags": [], "created_at": stamp(self.clock), "updated_at": stamp(self.clock),
                "generated_timestamp": at(self.clock).timestamp(),
            }),
        );
        id
    }

    pub fn touch_ticket(&mut self, id: u64, status: &str) {
        self.clock += 1;
        let ticket = self.tickets.get_mut(&id).unwrap();
        ticket["status"] = json!(status);
        ticket["updated_at"] = json!(stamp(self.clock));
        ticket["generated_timestamp"] = json!(at(self.clock).timestamp());
    }

    pub fn users(&self) -> Vec<Value> {
        self.users.values().cloned().collect()
    }

    /// `POST /oauth/tokens`: every grant must name its scope; a refresh token is good
    /// once and brings a new pair.
    fn token(&mut self, r: &Request) -> Answer {
        let form = r.form();
        if form.get("scope").map(String::as_str) != Some("read write") {
            return Answer::json(
                400,
                json!({ "error": "invalid_scope", "error_description": "The requested scope is invalid, unknown, or malformed." }),
            );
        }
        if form.get("grant_type").map(String::as_str) == Some("refresh_token") {
            let known = form
                .get("refresh_token")
                .and_then(|t| self.refresh_tokens.iter().position(|k| k == t));
            let credentials = form.get("client_id").map(String::as_str) == Some(CLIENT_ID)
                && form.get("client_secret").map(String::as_str) == Some(CLIENT_SECRET);
            return match known {
                Some(i) if credentials => {
                    self.refresh_tokens.remove(i);
                    self.refreshed += 1;
                    self.issue()
                }
                _ => Answer::json(
                    400,
                    json!({ "error": "invalid_grant", "error_description": "The provided authorization grant is invalid, expired, or revoked" }),
                ),
            };
        }
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Post,
        ) {
            Err(error) => Answer::json(
                400,
                json!({ "error": error, "error_description": "The provided authorization grant is invalid, expired, or revoked" }),
            ),
            Ok(()) => self.issue(),
        }
    }

    fn issue(&mut self) -> Answer {
        let token = format!("fakezd{:040}", self.tokens.len());
        self.tokens.push(token.clone());
        let refresh = format!("fakezdrefresh{}", self.tokens.len());
        self.refresh_tokens.push(refresh.clone());
        Answer::json(
            200,
            json!({ "access_token": token, "token_type": "bearer", "scope": "read write", "refresh_token": refresh, "expires_in": 172_800, "refresh_token_expires_in": 800_000 }),
        )
    }

    /// Every access token handed out so far stops working (as when they expire).
    pub fn expire_tokens(&mut self) {
        self.tokens.iter_mut().for_each(|t| t.push_str("-expired"));
    }

    /// `GET /api/v2/incremental/{kind}/cursor.json`: a first request by `start_time`,
    /// then `cursor` alone.
    fn export(&mut self, kind: &str, r: &Request) -> Answer {
        let per_page: usize = r
            .param("per_page")
            .map_or(Ok(1000), str::parse)
            .unwrap_or(0);
        if !(1..=1000).contains(&per_page) {
            return Answer::json(
                400,
                json!({ "error": "InvalidPaginationParameter", "description": "per_page must be between 1 and 1000" }),
            );
        }
        let records = if kind == "tickets" {
            &self.tickets
        } else {
            &self.users
        };
        let mut ordered: Vec<&Value> = records.values().collect();
        ordered.sort_by_key(|v| (v["generated_timestamp"].as_i64(), v["id"].as_u64()));
        let from = match (r.param("start_time"), r.param("cursor")) {
            (Some(start), None) => {
                let Ok(start) = start.parse::<i64>() else {
                    return Answer::json(
                        400,
                        json!({ "error": "InvalidValue", "description": "start_time must be an integer" }),
                    );
                };
                if start > chrono::Utc::now().timestamp() - 60 {
                    return Answer::json(
                        400,
                        json!({ "error": "InvalidValue", "description": "Too recent start_time. Use a start_time older than 1 minute" }),
                    );
                }
                ordered
                    .iter()
                    .position(|v| v["generated_timestamp"].as_i64().unwrap() >= start)
                    .unwrap_or(ordered.len())
            }
            (None, Some(cursor)) => match self.cursors.get(cursor) {
                Some((k, position)) if k == kind => *position,
                _ => {
                    return Answer::json(
                        400,
                        json!({ "error": "InvalidCursor", "description": "Invalid cursor" }),
                    );
                }
            },
            _ => {
                return Answer::json(
                    400,
                    json!({ "error": "InvalidValue", "description": "Give start_time on the first request and cursor after it" }),
                );
            }
        };
        let page: Vec<Value> = ordered
            .iter()
            .skip(from)
            .take(per_page)
            .map(|v| (*v).clone())
            .collect();
        let next = from + page.len();
        let cursor = format!("{kind}{next:08}");
        self.cursors.insert(cursor.clone(), (kind.to_owned(), next));
        let end = next >= ordered.len();
        Answer::json(
            200,
            json!({
                kind: page,
                "after_url": format!("{ACCOUNT}/api/v2/incremental/{kind}/cursor.json?cursor={cursor}&per_page={per_page}"),
                "after_cursor": cursor, "before_url": null, "before_cursor": null,
                "end_of_stream": end,
            }),
        )
    }

    fn user_from(&mut self, body: &Value, id: Option<u64>) -> Result<u64, Answer> {
        let Some(user) = body.get("user").and_then(Value::as_object) else {
            return Err(Answer::json(
                400,
                json!({ "error": "InvalidEndpoint", "description": "user is required" }),
            ));
        };
        if let Some(email) = user.get("email").and_then(Value::as_str)
            && !email.contains('@')
        {
            return Err(invalid(
                "email",
                &format!("Email: {email} is not properly formatted"),
            ));
        }
        self.clock += 1;
        let id = id.unwrap_or(9100 + self.users.len() as u64);
        let entry = self
            .users
            .entry(id)
            .or_insert_with(|| json!({ "id": id, "role": "end-user", "created_at": stamp(0) }));
        for (k, v) in user {
            entry[k] = v.clone();
        }
        entry["updated_at"] = json!(stamp(self.clock));
        Ok(id)
    }

    fn write_user(&mut self, r: &Request, id: Option<u64>, upsert: bool) -> Answer {
        let Some(body) = r
            .json()
            .filter(|_| r.header("content-type") == Some("application/json"))
        else {
            return Answer::json(
                400,
                json!({ "error": "Unprocessable Entity", "description": "The request body must be JSON" }),
            );
        };
        let email = body["user"]["email"].as_str().map(str::to_owned);
        let existing = match (id, upsert) {
            (Some(id), _) if !self.users.contains_key(&id) => {
                return Answer::json(
                    404,
                    json!({ "error": "RecordNotFound", "description": "Not found" }),
                );
            }
            (Some(id), _) => Some(id),
            (None, true) => self
                .users
                .iter()
                .find(|(_, u)| u["email"].as_str() == email.as_deref())
                .map(|(id, _)| *id),
            (None, false) => None,
        };
        match self.user_from(&body, existing) {
            Err(answer) => answer,
            Ok(id) => Answer::json(
                if existing.is_some() { 200 } else { 201 },
                json!({ "user": self.users[&id] }),
            ),
        }
    }
}

impl Vendor for Account {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/oauth/authorizations/new") => {
                return approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/oauth/tokens") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return Answer::json(
                401,
                json!({ "error": "invalid_token", "error_description": "The access token provided is expired, revoked, malformed or invalid for other reasons." }),
            );
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let mut answer = Answer::json(
                429,
                json!({ "error": "APIRateLimitExceeded", "description": "Number of allowed API requests per minute exceeded" }),
            );
            answer.headers.push(("retry-after".into(), "1".into()));
            return answer;
        }
        let user = |path: &str| {
            path.strip_prefix("/api/v2/users/")
                .and_then(|p| p.strip_suffix(".json"))
                .and_then(|id| id.parse().ok())
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v2/incremental/tickets/cursor.json") => self.export("tickets", r),
            ("GET", "/api/v2/incremental/users/cursor.json") => self.export("users", r),
            ("POST", "/api/v2/users.json") => self.write_user(r, None, false),
            ("POST", "/api/v2/users/create_or_update.json") => self.write_user(r, None, true),
            ("PUT", path) if user(path).is_some() => self.write_user(r, user(path), false),
            _ => Answer::json(
                404,
                json!({ "error": "InvalidEndpoint", "description": "Not found" }),
            ),
        }
    }
}

const ZENDESK: OAuthVendor = OAuthVendor {
    provider: "zendesk",
    origins: &[ACCOUNT],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

async fn connect(extra: &[(&str, &str)]) -> super::Connected<Account> {
    ZENDESK
        .connect_with::<Account>(extra, &[], &[("field_subdomain", "acme")])
        .await
}

#[tokio::test]
async fn zendesk_exports_tickets_by_cursor_then_from_the_last_change() {
    let s = connect(&[]).await;
    {
        let mut account = s.vendor.lock().unwrap();
        for i in 0..2001 {
            account.add_ticket(&format!("Printer {i} is jammed"));
        }
    }
    let flow = s
        .read_into_companies(
            "tickets",
            "record.id",
            &[
                ("name", "record.subject"),
                ("domain", "record.status ~ '.example'"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 2001);
    let exports = s.fake.requests_to("/api/v2/incremental/tickets");
    assert_eq!(
        exports.len(),
        3,
        "1000, 1000, then 1 and the end of the stream"
    );
    assert_eq!(exports[0].param("per_page"), Some("1000"));
    assert_eq!(exports[0].param("start_time"), Some("0"));
    assert!(
        exports[1].param("start_time").is_none(),
        "later pages by cursor alone"
    );
    assert!(exports[1].param("cursor").is_some());

    // Two tickets change; the next export starts at the newest change seen, in epoch
    // seconds, after waiting out a 429 and refreshing an expired token (Zendesk wants
    // the scope named again: `refresh_params`).
    {
        let mut account = s.vendor.lock().unwrap();
        account.touch_ticket(7, "solved");
        account.touch_ticket(8, "pending");
        account.rate_limited = 1;
        account.expire_tokens();
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("APIRateLimitExceeded"), "{log}");
    assert_eq!(s.vendor.lock().unwrap().refreshed, 1);
    let first = s
        .fake
        .requests_to("/api/v2/incremental/tickets")
        .into_iter()
        .rev()
        .find(|r| r.param("start_time").is_some())
        .unwrap();
    assert_eq!(
        first.param("start_time"),
        Some(at(2001).timestamp().to_string().as_str())
    );
    // The start is inclusive: the last ticket of the first run comes again, unchanged.
    assert_eq!(count(&page, "read"), 3);
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn zendesk_creates_updates_and_upserts_users_by_email() {
    let s = connect(SEEDED).await;
    let source = s.seeded_contacts().await;
    let destination = s.object("users");
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Contacts to Zendesk users"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", "record.id"),
            ],
            &[
                ("name", "record.name"),
                (
                    "email",
                    "record.email if record.id != 'con_000003' else 'not-an-email'",
                ),
            ],
        ),
    )
    .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    assert_eq!(count(&page, "failed"), 1);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("RecordInvalid"), "{dead}");
    let create = s.fake.requests_to("/api/v2/users.json").pop().unwrap();
    assert!(
        create.json().unwrap()["user"]["email"].is_string(),
        "wrapped in user"
    );

    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    let puts: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PUT")
        .collect();
    assert_eq!(puts.len(), 2);
    assert_eq!(
        s.vendor.lock().unwrap().users().len(),
        11,
        "updated, not created again"
    );

    // Upsert by email: the endpoint matches by the email in the body, which stays there.
    let upsert = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Upsert users by email"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "upsert"),
                ("key_field", "email"),
                ("record_key", "record.id"),
            ],
            &[("email", "record.email"), ("name", "record.name | upper")],
        ),
    )
    .await;
    let (page, _) = run_ending(&s.admin, &upsert, "Succeeded").await;
    assert_eq!(count(&page, "written"), 12);
    let sent = s.fake.requests_to("/api/v2/users/create_or_update.json");
    assert_eq!(sent.len(), 12);
    assert!(
        sent.iter()
            .all(|r| r.json().unwrap()["user"]["email"].is_string())
    );
    let users = s.vendor.lock().unwrap().users();
    assert_eq!(users.len(), 12, "eleven matched by email, one created");
    assert!(users.iter().all(|u| {
        u["name"]
            .as_str()
            .unwrap()
            .chars()
            .all(|c| !c.is_lowercase())
    }));
    s.app.stop().await;
}
