//! Slack: OAuth v2 for a bot token (client credentials by basic authentication, scopes
//! comma-separated, `token_type: "bot"`), Web API methods that answer HTTP 200 with
//! `{"ok": false, "error": …}` when they fail, cursor paging by
//! `response_metadata.next_cursor` (empty on the last page), JSON bodies for writes, and
//! 429 with `Retry-After` in seconds.
//!
//! Shapes from Slack's API documentation: "Installing with OAuth" and `oauth.v2.access`
//! (answer `ok`, `access_token`, `token_type`, `scope`, `bot_user_id`, `app_id`, `team`,
//! `authed_user`), "Pagination" (`cursor`, `limit`, `response_metadata.next_cursor`),
//! `conversations.list` (the conversation object), `conversations.create` (names lower
//! case without spaces or periods, up to 80 characters; errors `name_taken`,
//! `invalid_name_specials`), "Using the Slack Web API" (JSON bodies with a bearer token;
//! errors as `ok: false` with HTTP 200) and "Rate limits" (429, `Retry-After`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Answer, Codes, OAuthVendor, Request, SEEDED, Vendor, flow_fields, run_ending};
use crate::common::flows::{count, create_flow};
use base64::Engine;
use serde_json::{Value, json};

const SLACK: &str = "https://slack.com";
const CLIENT_ID: &str = "1234567890.0987654321";
const CLIENT_SECRET: &str = "fake-slack-secret";

/// A Slack workspace: its channels, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Workspace {
    channels: Vec<Value>,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn failed(error: &str) -> Answer {
    Answer::json(200, json!({ "ok": false, "error": error }))
}

impl Workspace {
    pub fn insert(&mut self, name: &str, private: bool) -> String {
        let id = format!("C{:08}", self.channels.len() + 1);
        self.channels.push(json!({
            "id": id, "name": name, "is_channel": true, "is_group": false, "is_im": false,
            "created": 1_767_225_600 + self.channels.len() as i64, "creator": "U012A3CDE",
            "is_archived": false, "is_general": false, "name_normalized": name,
            "is_shared": false, "is_private": private, "is_mpim": false, "is_member": true,
            "updated": 1_767_225_600_000_i64, "topic": { "value": "", "creator": "", "last_set": 0 },
            "purpose": { "value": "", "creator": "", "last_set": 0 }, "previous_names": [],
            "num_members": 1,
        }));
        id
    }

    pub fn names(&self) -> Vec<String> {
        self.channels
            .iter()
            .map(|c| c["name"].as_str().unwrap().to_owned())
            .collect()
    }

    /// Client credentials by basic authentication, as the provider file declares.
    fn access(&mut self, r: &Request) -> Answer {
        let expected = format!(
            "Basic {}",
            base64::engine::general_purpose::STANDARD
                .encode(format!("{CLIENT_ID}:{CLIENT_SECRET}"))
        );
        if r.header("authorization") != Some(expected.as_str()) {
            return failed("invalid_client_id");
        }
        let form = r.form();
        let known = form
            .get("code")
            .and_then(|c| self.codes.remove(c))
            .is_some_and(|(challenge, redirect)| {
                form.get("redirect_uri") == Some(&redirect)
                    && super::verifies(form.get("code_verifier").map(String::as_str), &challenge)
            });
        if !known {
            return failed("invalid_code");
        }
        let token = format!("xoxb-17653672481-{:012}", self.tokens.len());
        self.tokens.push(token.clone());
        Answer::json(
            200,
            json!({
                "ok": true, "access_token": token, "token_type": "bot",
                "scope": "channels:read,groups:read,channels:manage,users:read,chat:write",
                "bot_user_id": "U0KRQLJ9H", "app_id": "A0KRD7HC3",
                "team": { "name": "Acme", "id": "T9TK3CUKW" }, "enterprise": null,
                "authed_user": { "id": "U1234" },
            }),
        )
    }

    fn list(&self, r: &Request) -> Answer {
        let limit: usize = r.param("limit").map_or(Ok(100), str::parse).unwrap_or(0);
        if !(1..=1000).contains(&limit) {
            return failed("invalid_limit");
        }
        let start = match r.param("cursor") {
            None | Some("") => 0,
            Some(cursor) => match base64::engine::general_purpose::STANDARD
                .decode(cursor)
                .ok()
                .and_then(|b| String::from_utf8(b).ok())
                .and_then(|s| {
                    s.strip_prefix("team:")
                        .and_then(|n| n.parse::<usize>().ok())
                }) {
                Some(n) => n,
                None => return failed("invalid_cursor"),
            },
        };
        let end = (start + limit).min(self.channels.len());
        let next = if end < self.channels.len() {
            base64::engine::general_purpose::STANDARD.encode(format!("team:{end}"))
        } else {
            String::new()
        };
        Answer::json(
            200,
            json!({ "ok": true, "channels": self.channels[start..end], "response_metadata": { "next_cursor": next } }),
        )
    }

    fn create(&mut self, r: &Request) -> Answer {
        if !r
            .header("content-type")
            .is_some_and(|t| t.starts_with("application/json"))
        {
            return failed("invalid_form_data");
        }
        let Some(body) = r.json() else {
            return failed("invalid_json");
        };
        let name = body["name"].as_str().unwrap_or_default();
        if name.is_empty() {
            return failed("invalid_name_required");
        }
        if name.len() > 80
            || !name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-' || c == '_')
        {
            return failed("invalid_name_specials");
        }
        if self.names().iter().any(|n| n == name) {
            return failed("name_taken");
        }
        let private = body["is_private"].as_bool().unwrap_or(false);
        let id = self.insert(name, private);
        let channel = self
            .channels
            .iter()
            .find(|c| c["id"] == id.as_str())
            .unwrap()
            .clone();
        Answer::json(200, json!({ "ok": true, "channel": channel }))
    }
}

impl Vendor for Workspace {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/oauth/v2/authorize") => {
                return super::approve(&mut self.codes, r, CLIENT_ID, "1234.{n}.fakecode");
            }
            ("POST", "/api/oauth.v2.access") => return self.access(r),
            _ => {}
        }
        let bearer = r.header("authorization").unwrap_or_default();
        if !self.tokens.iter().any(|t| bearer == format!("Bearer {t}")) {
            return failed("invalid_auth");
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let mut answer = failed("ratelimited");
            answer.status = 429;
            answer.headers.push(("retry-after".into(), "1".into()));
            return answer;
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/conversations.list") => self.list(r),
            ("POST", "/api/conversations.create") => self.create(r),
            _ => failed("unknown_method"),
        }
    }
}

const SLACK_APP: OAuthVendor = OAuthVendor {
    provider: "slack",
    origins: &[SLACK],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

#[tokio::test]
async fn slack_pages_channels_by_next_cursor_and_waits_out_a_429() {
    let s = SLACK_APP.connect::<Workspace>(&[]).await;
    {
        let mut workspace = s.vendor.lock().unwrap();
        for i in 0..450 {
            workspace.insert(&format!("team-{i}"), i % 10 == 0);
        }
        workspace.rate_limited = 1;
    }
    let crm = s.sandbox("sandbox_crm").await;
    let source = s.object("channels");
    let destination = format!("{crm}:companies");
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Channels to companies"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", "record.id"),
            ],
            &[("name", "record.name")],
        ),
    )
    .await;
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 450);
    assert!(log.contains("ratelimited"), "{log}");
    let lists = s.fake.requests_to("/api/conversations.list");
    assert_eq!(lists.len(), 4, "a 429, then pages of 200, 200 and 50");
    assert!(lists.iter().all(|r| r.param("limit") == Some("200")));
    assert!(lists[3].param("cursor").is_some());
    s.app.stop().await;
}

#[tokio::test]
async fn slack_creates_channels_and_an_ok_false_answer_is_a_dead_letter() {
    let s = SLACK_APP.connect::<Workspace>(SEEDED).await;
    let source = s.seeded_contacts().await;
    let destination = s.object("channels");
    // The fourth contact asks for the third one's name: Slack answers 200 name_taken.
    let name =
        "'crm-' ~ (record.id if record.id != 'con_000003' else 'con_000002') | replace('_', '-')";
    let flow = create_flow(
        &s.admin,
        &flow_fields(
            &[
                ("name", "Contacts to channels"),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", "record.id"),
            ],
            &[("name", name), ("is_private", "false")],
        ),
    )
    .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    assert_eq!(count(&page, "failed"), 1);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("name_taken"), "{dead}");
    let names = s.vendor.lock().unwrap().names();
    assert_eq!(names.len(), 11);
    assert!(names.contains(&"crm-con-000011".to_owned()), "{names:?}");
    s.app.stop().await;
}
