//! GitHub: OAuth app web flow with PKCE (the token answer is JSON only when asked for
//! with `Accept: application/json`, scopes comma-separated), REST calls that need a
//! `User-Agent` and take `X-GitHub-Api-Version`, lists paged by `per_page` and the
//! `Link` header, `since` filters, gists created and updated as JSON, 422 validation
//! errors, and the rate limit as 403 with `x-ratelimit-remaining: 0` and
//! `x-ratelimit-reset`.
//!
//! Shapes from GitHub's REST API documentation: "Authorizing OAuth apps" (web
//! application flow, `code_verifier`, token response `access_token`, `scope`,
//! `token_type`, errors such as `bad_verification_code` answered with 200), "Getting
//! started: user agent required", "API versions" (`X-GitHub-Api-Version: 2022-11-28`),
//! "Using pagination in the REST API" (`per_page` up to 100, `Link` with `rel="next"`),
//! "Gists" (list with `since`; create needs `files` with `content`; the gist object),
//! "Rate limits for the REST API" (403 "API rate limit exceeded", `x-ratelimit-*`
//! headers) and "Troubleshooting: 422 Validation Failed" (`errors[]` with `resource`,
//! `field`, `code`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{Answer, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, run_ending, verifies};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const WEB: &str = "https://github.com";
const API: &str = "https://api.github.com";
const CLIENT_ID: &str = "Iv1.fakeclient0001";
const CLIENT_SECRET: &str = "fake-github-secret";

/// A GitHub user: their gists, grants and scripted misbehaviour.
#[derive(Default)]
pub struct User {
    /// Gist id → gist.
    gists: BTreeMap<String, Value>,
    next: u64,
    /// Seconds after 2026-01-01.
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer the rate limit.
    pub rate_limited: u32,
}

fn stamp(seconds: i64) -> String {
    (chrono::DateTime::parse_from_rfc3339("2026-01-01T00:00:00Z").unwrap()
        + chrono::Duration::seconds(seconds))
    .format("%Y-%m-%dT%H:%M:%SZ")
    .to_string()
}

fn failed(status: u16, message: &str, errors: Value) -> Answer {
    Answer::json(
        status,
        json!({ "message": message, "errors": errors, "documentation_url": "https://docs.github.com/rest", "status": status.to_string() }),
    )
}

impl User {
    /// Adds a gist with one file, as if created on GitHub; returns its id.
    pub fn insert(&mut self, description: &str, files: &serde_json::Map<String, Value>) -> String {
        self.next += 1;
        self.clock += 1;
        let id = format!("{:020x}", self.next * 7919);
        let shown: serde_json::Map<String, Value> = files
            .iter()
            .map(|(name, file)| {
                let size = file["content"].as_str().map_or(0, str::len);
                (name.clone(), json!({ "filename": name, "type": "text/plain", "language": "Text", "raw_url": format!("https://gist.githubusercontent.com/octocat/{id}/raw/{name}"), "size": size, "content": file["content"] }))
            })
            .collect();
        self.gists.insert(
            id.clone(),
            json!({
                "url": format!("{API}/gists/{id}"), "id": id, "node_id": format!("G_fake{id}"),
                "html_url": format!("https://gist.github.com/{id}"), "files": shown, "public": false,
                "created_at": stamp(self.clock), "updated_at": stamp(self.clock),
                "description": description, "comments": 0, "user": null,
                "owner": { "login": "octocat", "id": 1, "type": "User" }, "truncated": false,
            }),
        );
        id
    }

    pub fn gists(&self) -> Vec<Value> {
        self.gists.values().cloned().collect()
    }

    /// Changes a gist's description as if edited on GitHub.
    pub fn touch(&mut self, id: &str, description: &str) {
        self.clock += 1;
        let gist = self.gists.get_mut(id).unwrap();
        gist["description"] = json!(description);
        gist["updated_at"] = json!(stamp(self.clock));
    }

    fn authorize(&mut self, r: &Request) -> Answer {
        approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}")
    }

    /// GitHub answers token errors with 200, and JSON only to `Accept: application/json`.
    fn token(&mut self, r: &Request) -> Answer {
        let form = r.form();
        let field = |k: &str| form.get(k).map(String::as_str);
        let verified = field("code")
            .and_then(|c| self.codes.remove(c))
            .is_some_and(|(challenge, redirect)| {
                field("redirect_uri") == Some(redirect.as_str())
                    && verifies(field("code_verifier"), &challenge)
            });
        let answer = if field("client_id") != Some(CLIENT_ID)
            || field("client_secret") != Some(CLIENT_SECRET)
        {
            json!({ "error": "incorrect_client_credentials", "error_description": "The client_id and/or client_secret passed are incorrect." })
        } else if !verified {
            json!({ "error": "bad_verification_code", "error_description": "The code passed is incorrect or expired." })
        } else {
            let token = format!("gho_fake{:032}", self.tokens.len());
            self.tokens.push(token.clone());
            json!({ "access_token": token, "scope": "gist,read:user,repo", "token_type": "bearer" })
        };
        if r.header("accept") == Some("application/json") {
            return Answer::json(200, answer);
        }
        let form: Vec<(String, String)> = answer
            .as_object()
            .unwrap()
            .iter()
            .map(|(k, v)| (k.clone(), v.as_str().unwrap().to_owned()))
            .collect();
        Answer {
            status: 200,
            headers: vec![(
                "content-type".into(),
                "application/x-www-form-urlencoded".into(),
            )],
            body: url::form_urlencoded::Serializer::new(String::new())
                .extend_pairs(form)
                .finish(),
        }
    }

    fn list(&self, r: &Request) -> Answer {
        let per_page: usize = r.param("per_page").map_or(Ok(30), str::parse).unwrap_or(0);
        let page: usize = r.param("page").map_or(Ok(1), str::parse).unwrap_or(0);
        if !(1..=100).contains(&per_page) || page == 0 {
            return failed(
                422,
                "Validation Failed",
                json!([{ "resource": "Gist", "field": "per_page", "code": "invalid" }]),
            );
        }
        let since = match r.param("since") {
            None => None,
            Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(at) => Some(at),
                Err(_) => {
                    return failed(
                        422,
                        "Validation Failed",
                        json!([{ "resource": "Gist", "field": "since", "code": "invalid" }]),
                    );
                }
            },
        };
        // Newest first, as GitHub lists gists.
        let mut all: Vec<&Value> = self
            .gists
            .values()
            .filter(|g| {
                since.is_none_or(|since| {
                    chrono::DateTime::parse_from_rfc3339(g["updated_at"].as_str().unwrap()).unwrap()
                        >= since
                })
            })
            .collect();
        all.sort_by(|a, b| {
            b["updated_at"]
                .as_str()
                .cmp(&a["updated_at"].as_str())
                .then(b["id"].as_str().cmp(&a["id"].as_str()))
        });
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|g| {
                let mut listed = (*g).clone();
                // Lists leave file contents out.
                for file in listed["files"].as_object_mut().unwrap().values_mut() {
                    file.as_object_mut().unwrap().remove("content");
                }
                listed
            })
            .collect();
        let mut answer = Answer::json(200, Value::Array(items));
        let last = all.len().div_ceil(per_page).max(1);
        let link = |n: usize| {
            let mut url = url::Url::parse(&format!("{API}/gists")).unwrap();
            for (k, v) in &r.query {
                if k != "page" {
                    url.query_pairs_mut().append_pair(k, v);
                }
            }
            url.query_pairs_mut().append_pair("page", &n.to_string());
            url.to_string()
        };
        if page < last {
            answer.headers.push((
                "link".into(),
                format!(
                    r#"<{}>; rel="next", <{}>; rel="last""#,
                    link(page + 1),
                    link(last)
                ),
            ));
        }
        answer
    }

    fn write(&mut self, r: &Request, id: Option<&str>) -> Answer {
        let Some(body) = r
            .json()
            .filter(|_| r.header("content-type") == Some("application/json"))
        else {
            return failed(400, "Problems parsing JSON", json!([]));
        };
        let files = body["files"].as_object().cloned().unwrap_or_default();
        let empty = files.is_empty()
            || files
                .values()
                .any(|f| f["content"].as_str().is_none_or(str::is_empty));
        let description = body["description"].as_str().unwrap_or_default().to_owned();
        match id {
            None if empty => failed(
                422,
                "Validation Failed",
                json!([{ "resource": "Gist", "field": "files", "code": "missing_field" }]),
            ),
            None => {
                let id = self.insert(&description, &files);
                Answer::json(201, self.gists[&id].clone())
                    .with_location(&format!("{API}/gists/{id}"))
            }
            Some(id) if self.gists.contains_key(id) => {
                if body.get("id").is_some() {
                    return failed(
                        422,
                        "Invalid request.\n\n\"id\" is not a permitted key.",
                        json!([]),
                    );
                }
                self.touch(id, &description);
                Answer::json(200, self.gists[id].clone())
            }
            Some(_) => failed(404, "Not Found", json!([])),
        }
    }
}

impl Answer {
    fn with_location(mut self, to: &str) -> Answer {
        self.headers.push(("location".into(), to.into()));
        self
    }
}

impl Vendor for User {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/login/oauth/authorize") => return self.authorize(r),
            ("POST", "/login/oauth/access_token") => return self.token(r),
            _ => {}
        }
        if r.header("user-agent").is_none_or(str::is_empty) {
            return failed(
                403,
                "Request forbidden by administrative rules. Please make sure your request has a User-Agent header.",
                json!([]),
            );
        }
        if r.header("x-github-api-version")
            .is_some_and(|v| v != "2022-11-28")
        {
            return failed(400, "Unsupported API version", json!([]));
        }
        let bearer = r.header("authorization").unwrap_or_default();
        if !self
            .tokens
            .iter()
            .any(|t| bearer == format!("Bearer {t}") || bearer == format!("token {t}"))
        {
            return failed(401, "Requires authentication", json!([]));
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let reset = chrono::Utc::now().timestamp() + 1;
            let mut answer = Answer::json(
                403,
                json!({ "message": "API rate limit exceeded for user ID 1. If you reach out to GitHub Support for help, please include the request ID.", "documentation_url": "https://docs.github.com/rest/overview/rate-limits-for-the-rest-api", "status": "403" }),
            );
            answer.headers.extend([
                ("x-ratelimit-limit".into(), "5000".into()),
                ("x-ratelimit-remaining".into(), "0".into()),
                ("x-ratelimit-used".into(), "5000".into()),
                ("x-ratelimit-reset".into(), reset.to_string()),
                ("x-ratelimit-resource".into(), "core".into()),
            ]);
            return answer;
        }
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/gists") => self.list(r),
            ("POST", "/gists") => self.write(r, None),
            ("PATCH", path) if path.starts_with("/gists/") => {
                self.write(r, Some(&path["/gists/".len()..]))
            }
            _ => failed(404, "Not Found", json!([])),
        }
    }
}

const GITHUB: OAuthVendor = OAuthVendor {
    provider: "github",
    origins: &[WEB, API],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

#[tokio::test]
async fn github_pages_gists_by_link_header_then_reads_only_what_changed_since() {
    let s = GITHUB.connect::<User>(&[]).await;
    {
        let mut user = s.vendor.lock().unwrap();
        for i in 0..250 {
            let mut files = serde_json::Map::new();
            files.insert(
                format!("note{i}.md"),
                json!({ "content": format!("Note {i}") }),
            );
            user.insert(&format!("Gist {i}"), &files);
        }
    }
    let flow = s
        .read_into_companies(
            "gists",
            "record.id",
            &[
                ("name", "record.description"),
                ("domain", "record.html_url"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    assert_eq!(s.app.sandbox_records("crm.companies").await, 250);
    let lists = s.fake.requests_to("/gists");
    assert_eq!(lists.len(), 3, "pages of 100, 100, 50 by rel=\"next\"");
    assert!(lists.iter().all(|r| r.param("per_page") == Some("100")));
    assert_eq!(lists[2].param("page"), Some("3"));

    // Two gists change; the next run asks for those updated since the last one seen.
    {
        let mut user = s.vendor.lock().unwrap();
        let ids: Vec<String> = user
            .gists()
            .iter()
            .take(2)
            .map(|g| g["id"].as_str().unwrap().to_owned())
            .collect();
        for id in ids {
            user.touch(&id, "Edited");
        }
        user.rate_limited = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(
        log.contains("API rate limit exceeded"),
        "the 403 rate limit was waited out: {log}"
    );
    let last = s.fake.requests_to("/gists").pop().unwrap();
    assert_eq!(
        last.param("since"),
        Some(stamp(250).as_str()),
        "the newest change seen"
    );
    // `since` includes its own instant: the last gist of the first run comes again,
    // unchanged, and is not written again.
    assert_eq!(count(&page, "read"), 3);
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn github_creates_and_updates_gists_and_a_refused_one_is_a_dead_letter() {
    let s = GITHUB.connect::<User>(SEEDED).await;
    let flow = s
        .contacts_into("gists", &[
                ("description", "record.name"),
                (
                    "files",
                    "{'contact.md': {'content': record.email if record.id != 'con_000003' else ''}}",
                ),
            ])
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    assert_eq!(count(&page, "failed"), 1);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("missing_field"), "{dead}");
    let gists = s.vendor.lock().unwrap().gists();
    assert_eq!(gists.len(), 11);

    // The refused record is tried again with every run until it is fixed.
    touch_contacts(&s.app, 2, "Renamed").await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 2);
    assert_eq!(count(&page, "failed"), 1);
    let patches: Vec<Request> = s
        .fake
        .requests()
        .into_iter()
        .filter(|r| r.method == "PATCH")
        .collect();
    assert_eq!(patches.len(), 2);
    let gists = s.vendor.lock().unwrap().gists();
    assert_eq!(gists.len(), 11, "updated, not created again");
    for patch in patches {
        let id = patch.path.trim_start_matches("/gists/");
        let gist = gists.iter().find(|g| g["id"] == id).unwrap();
        assert_eq!(gist["description"], patch.json().unwrap()["description"]);
        assert!(gist["description"].as_str().unwrap().starts_with("Renamed"));
    }
    s.app.stop().await;
}

/// A GitHub Enterprise Server: OAuth at the server's own address, the REST API only
/// under `/api/v3` ("REST API endpoints: about GitHub Enterprise Server": "`http(s)://HOSTNAME/api/v3`"),
/// and next-page links on that base.
#[derive(Default)]
pub struct Enterprise(User);

const SERVER: &str = "https://github.acme.test";

impl Vendor for Enterprise {
    fn handle(&mut self, r: &Request) -> Answer {
        if r.path.starts_with("/login/oauth/") {
            return self.0.handle(r);
        }
        let Some(path) = r.path.strip_prefix("/api/v3") else {
            return failed(404, "Not Found", json!([]));
        };
        let mut answer = self.0.handle(&Request {
            path: path.to_owned(),
            ..r.clone()
        });
        for (name, value) in &mut answer.headers {
            if name == "link" {
                *value = value.replace(&format!("{API}/"), &format!("{SERVER}/api/v3/"));
            }
        }
        answer
    }
}

#[tokio::test]
async fn a_github_enterprise_server_is_reached_at_its_own_address() {
    let server = OAuthVendor {
        origins: &[SERVER],
        ..GITHUB
    };
    let api = format!("{SERVER}/api/v3");
    let s = server
        .connect_with::<Enterprise>(
            &[],
            &[("field_github_url", SERVER), ("field_api_url", &api)],
            &[],
        )
        .await;
    {
        let mut user = s.vendor.lock().unwrap();
        for i in 0..120 {
            let mut files = serde_json::Map::new();
            files.insert(format!("note{i}.md"), json!({ "content": "hello" }));
            user.0.insert(&format!("Note {i}"), &files);
        }
    }
    let flow = s
        .read_into_companies(
            "gists",
            "record.id",
            &[
                ("name", "record.description"),
                ("domain", "record.html_url"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 120);
    let lists = s.fake.requests_to("/api/v3/gists");
    assert_eq!(
        lists.len(),
        2,
        "both pages from the server's API, by its links"
    );
    assert_eq!(s.fake.requests_to("/gists").len(), 0);
    s.app.stop().await;
}
