//! Jira Cloud: Atlassian OAuth 2.0 (3LO) with `audience=api.atlassian.com`, the sites a
//! grant reaches listed at `accessible-resources` after consent (the tenant picks one of
//! several), every call under `/ex/jira/{cloudid}`, the enhanced JQL search paged by
//! `nextPageToken` until `isLast`, JQL dates with minutes only (so changes are read with a
//! minute of look-back), issues created and updated as `{"fields": …}`, 400 errors as
//! `errorMessages` and `errors`, and 429 with `Retry-After`.
//!
//! Shapes from Atlassian's developer documentation: "OAuth 2.0 (3LO) apps" (authorize
//! with `audience`, `prompt=consent`; token answer `access_token`, `expires_in`,
//! `refresh_token`, `scope`; `GET /oauth/token/accessible-resources` with `id`, `name`,
//! `url`, `scopes`, `avatarUrl`; calls to `api.atlassian.com/ex/jira/{cloudid}`), the
//! Jira REST API v3 reference ("Search for issues using JQL enhanced search" with `jql`,
//! `nextPageToken`, `maxResults`, `fields`, answer `issues`, `nextPageToken`, `isLast`;
//! "Create issue" answering 201 `id`, `key`, `self`; "Edit issue" answering 204), "JQL:
//! fields" (`updated` compared with "yyyy-MM-dd HH:mm"), "Status codes" (400 with
//! `errorMessages` and `errors`) and "Rate limiting" (429, `Retry-After`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, at, bearer, redeem,
    run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const AUTH: &str = "https://auth.atlassian.com";
const API: &str = "https://api.atlassian.com";
const CLIENT_ID: &str = "FakeAtlassianClientId0001";
const CLIENT_SECRET: &str = "fake-atlassian-secret";
const SANDBOX_SITE: &str = "1324a887-45db-1bf4-1e99-ef0ff456d421";
const MAIN_SITE: &str = "7c1d2e3f-0000-4a5b-9c8d-112233445566";

/// A user with access to two Jira sites; issues of the main one.
#[derive(Default)]
pub struct Cloud {
    issues: BTreeMap<u64, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%S%.3f+0000").to_string()
}

fn refused(status: u16, messages: &[&str], errors: Value) -> Answer {
    Answer::json(
        status,
        json!({ "errorMessages": messages, "errors": errors }),
    )
}

impl Cloud {
    pub fn insert(&mut self, summary: &str) -> u64 {
        self.clock += 1;
        let id = 10_000 + self.issues.len() as u64 + 1;
        self.issues.insert(
            id,
            json!({
                "id": id.to_string(), "key": format!("ACME-{}", id - 10_000),
                "self": format!("{API}/ex/jira/{MAIN_SITE}/rest/api/3/issue/{id}"),
                "fields": { "summary": summary, "status": { "name": "To Do" }, "issuetype": { "name": "Task" },
                            "project": { "key": "ACME" }, "created": stamp(self.clock), "updated": stamp(self.clock) },
            }),
        );
        id
    }

    pub fn touch(&mut self, id: u64, summary: &str) {
        self.clock += 1;
        let fields = &mut self.issues.get_mut(&id).unwrap()["fields"];
        fields["summary"] = json!(summary);
        fields["updated"] = json!(stamp(self.clock));
    }

    pub fn issues(&self) -> Vec<Value> {
        self.issues.values().cloned().collect()
    }

    fn token(&mut self, r: &Request) -> Answer {
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Post,
        ) {
            Err(error) => Answer::json(
                403,
                json!({ "error": error, "error_description": "Invalid authorization code" }),
            ),
            Ok(()) => {
                let token = format!("eyJraWQiOiJmYWtlIn0.{:030}", self.tokens.len());
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "access_token": token, "expires_in": 3600, "token_type": "Bearer", "refresh_token": format!("fakerefresh{}", self.tokens.len()), "scope": "read:jira-work write:jira-work read:jira-user offline_access" }),
                )
            }
        }
    }

    /// `updated >= "yyyy-MM-dd HH:mm"` (or the unbounded list), ordered by `updated`.
    fn search(&self, r: &Request) -> Answer {
        let jql = r.param("jql").unwrap_or_default();
        let Some(rest) = jql
            .strip_prefix("updated >= \"")
            .and_then(|r| r.strip_suffix("\" ORDER BY updated ASC"))
        else {
            return refused(
                400,
                &[
                    "Unbounded JQL queries are not allowed here. Please add a search restriction to your query.",
                ],
                json!({}),
            );
        };
        let since = match chrono::NaiveDateTime::parse_from_str(rest, "%Y-%m-%d %H:%M").or_else(
            |_| {
                chrono::NaiveDate::parse_from_str(rest, "%Y-%m-%d")
                    .map(|d| d.and_hms_opt(0, 0, 0).unwrap())
            },
        ) {
            Ok(t) => t.and_utc(),
            Err(_) => {
                return refused(
                    400,
                    &[&format!(
                        "Date value '{rest}' for field 'updated' is invalid. Valid formats include: 'yyyy/MM/dd HH:mm', 'yyyy-MM-dd HH:mm', 'yyyy/MM/dd', 'yyyy-MM-dd', or a period format e.g. '-5d', '4w 2d'."
                    )],
                    json!({}),
                );
            }
        };
        let max: usize = r
            .param("maxResults")
            .map_or(Ok(50), str::parse)
            .unwrap_or(0);
        if !(1..=5000).contains(&max) {
            return refused(400, &["maxResults must be between 1 and 5000"], json!({}));
        }
        let from: usize = match r.param("nextPageToken") {
            None => 0,
            Some(token) => match token.strip_prefix("CAEaAggD").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => {
                    return refused(
                        400,
                        &["The provided next page token is invalid or expired."],
                        json!({}),
                    );
                }
            },
        };
        let updated = |i: &Value| {
            chrono::DateTime::parse_from_str(
                i["fields"]["updated"].as_str().unwrap(),
                "%Y-%m-%dT%H:%M:%S%.3f%z",
            )
            .unwrap()
        };
        let mut matching: Vec<&Value> = self
            .issues
            .values()
            .filter(|i| updated(i) >= since)
            .collect();
        matching.sort_by_key(|i| updated(i));
        let page: Vec<Value> = matching
            .iter()
            .skip(from)
            .take(max)
            .map(|i| (*i).clone())
            .collect();
        let last = from + max >= matching.len();
        let mut answer = json!({ "issues": page, "isLast": last });
        if !last {
            answer["nextPageToken"] = json!(format!("CAEaAggD{}", from + max));
        }
        Answer::json(200, answer)
    }

    fn write(&mut self, r: &Request, id: Option<u64>) -> Answer {
        let Some(fields) = r
            .json()
            .and_then(|b| b.get("fields").cloned())
            .filter(Value::is_object)
        else {
            return refused(
                400,
                &[
                    "Can not deserialize instance of com.atlassian.jira.rest.v2.issue.IssueUpdateBean out of START_ARRAY token",
                ],
                json!({}),
            );
        };
        let summary = fields["summary"].as_str().unwrap_or_default().to_owned();
        match id {
            None => {
                if fields["project"]["key"] != "ACME" {
                    return refused(400, &[], json!({ "project": "valid project is required" }));
                }
                if summary.is_empty() {
                    return refused(
                        400,
                        &[],
                        json!({ "summary": "You must specify a summary of the issue." }),
                    );
                }
                let id = self.insert(&summary);
                Answer::json(
                    201,
                    json!({ "id": id.to_string(), "key": format!("ACME-{}", id - 10_000), "self": format!("{API}/ex/jira/{MAIN_SITE}/rest/api/3/issue/{id}") }),
                )
            }
            Some(id) if self.issues.contains_key(&id) => {
                if fields.get("project").is_some() {
                    return refused(
                        400,
                        &[],
                        json!({ "project": "Field 'project' cannot be set. It is not on the appropriate screen, or unknown." }),
                    );
                }
                self.touch(id, &summary);
                Answer::empty(204)
            }
            Some(_) => refused(
                404,
                &["Issue does not exist or you do not have permission to see it."],
                json!({}),
            ),
        }
    }
}

impl Vendor for Cloud {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/authorize") if r.param("audience") == Some("api.atlassian.com") => {
                return approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/oauth/token") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return Answer::json(401, json!({ "code": 401, "message": "Unauthorized" }));
        }
        if r.path == "/oauth/token/accessible-resources" {
            return Answer::json(
                200,
                json!([
                    { "id": SANDBOX_SITE, "name": "acme-sandbox", "url": "https://acme-sandbox.atlassian.net", "scopes": ["read:jira-work", "write:jira-work"], "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/flag.png" },
                    { "id": MAIN_SITE, "name": "acme", "url": "https://acme.atlassian.net", "scopes": ["read:jira-work", "write:jira-work"], "avatarUrl": "https://site-admin-avatar-cdn.prod.public.atl-paas.net/avatars/240/rocket.png" },
                ]),
            );
        }
        let Some(rest) = r
            .path
            .strip_prefix("/ex/jira/")
            .and_then(|p| p.strip_prefix(MAIN_SITE))
            .and_then(|p| p.strip_prefix("/rest/api/3"))
        else {
            return Answer::json(404, json!({ "errorMessages": ["Site not found"] }));
        };
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let mut answer = refused(429, &["Rate limit exceeded."], json!({}));
            answer.headers.push(("retry-after".into(), "1".into()));
            return answer;
        }
        let issue = |path: &str| path.strip_prefix("/issue/").and_then(|id| id.parse().ok());
        match (r.method.as_str(), rest) {
            ("GET", "/search/jql") => self.search(r),
            ("POST", "/issue") => self.write(r, None),
            ("PUT", path) if issue(path).is_some() => self.write(r, issue(path)),
            _ => refused(404, &["Not found"], json!({})),
        }
    }
}

const JIRA: OAuthVendor = OAuthVendor {
    provider: "jira",
    origins: &[AUTH, API],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

async fn connected(extra: &[(&str, &str)]) -> super::Connected<Cloud> {
    let s = JIRA.connect::<Cloud>(extra).await;
    let page = s
        .admin
        .get(&format!("/connections/{}", s.connection))
        .await
        .body;
    assert!(page.contains("Choose the Jira site"), "{page}");
    let chosen = s
        .admin
        .post_form(
            &format!("/connections/{}/choose", s.connection),
            &[("choice", MAIN_SITE)],
        )
        .await;
    assert_eq!(chosen.status, 303, "{}", chosen.body);
    s
}

#[tokio::test]
async fn jira_reads_the_chosen_sites_issues_by_page_token_then_changes_with_a_minute_of_lookback() {
    let s = connected(&[]).await;
    {
        let mut cloud = s.vendor.lock().unwrap();
        for i in 0..250 {
            cloud.insert(&format!("Issue {i}"));
        }
    }
    let flow = s
        .read_into_companies(
            "issues",
            "record.id",
            &[
                ("name", "record.fields.summary"),
                ("domain", "record.key ~ '.example'"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    let searches = s
        .fake
        .requests_to(&format!("/ex/jira/{MAIN_SITE}/rest/api/3/search/jql"));
    assert_eq!(searches.len(), 3, "until isLast");
    assert_eq!(searches[1].param("nextPageToken"), Some("CAEaAggD100"));

    {
        let mut cloud = s.vendor.lock().unwrap();
        cloud.touch(10_005, "Changed");
        cloud.touch(10_006, "Changed");
        cloud.rate_limited = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("Rate limit exceeded"), "{log}");
    let last = s
        .fake
        .requests_to(&format!("/ex/jira/{MAIN_SITE}/rest/api/3/search/jql"))
        .pop()
        .unwrap();
    // The newest change was at 00:04:10; JQL has minutes only, and a minute of look-back
    // makes it 00:03.
    assert_eq!(
        last.param("jql"),
        Some("updated >= \"2026-01-01 00:03\" ORDER BY updated ASC")
    );
    // Issues 180–250 come again unchanged and are not written again.
    assert_eq!(count(&page, "read"), 73);
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn jira_creates_and_edits_issues_on_the_chosen_site() {
    let s = connected(SEEDED).await;
    let flow = s
        .contacts_into(
            "issues",
            &[
                ("project", "{'key': 'ACME'}"),
                ("issuetype", "{'name': 'Task'}"),
                (
                    "summary",
                    "('Call ' ~ record.name) if record.id != 'con_000003' else ''",
                ),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("You must specify a summary"), "{dead}");

    // Edits leave out the project, which Jira refuses to change.
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
    assert!(
        puts.iter()
            .all(|p| p.json().unwrap()["fields"].get("project").is_none())
    );
    let issues = s.vendor.lock().unwrap().issues();
    assert_eq!(issues.len(), 11, "edited, not created again");
    assert_eq!(
        issues
            .iter()
            .filter(|i| i["fields"]["summary"]
                .as_str()
                .unwrap()
                .starts_with("Call Renamed"))
            .count(),
        2
    );
    s.app.stop().await;
}
