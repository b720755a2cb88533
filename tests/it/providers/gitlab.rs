//! GitLab (GitLab.com or self-managed): OAuth with PKCE and the client secret in the
//! form, REST lists paged by `page`/`per_page` with the next page in the `Link` header,
//! `updated_after` (which needs `order_by=updated_at`), projects created with `POST` and
//! updated with `PUT`, 400 validation errors keyed by field, and 429 with `Retry-After`
//! and `RateLimit-*` headers.
//!
//! Shapes from GitLab's documentation: "OAuth 2.0 identity provider API" (authorization
//! code with PKCE, token answer `access_token`, `token_type`, `expires_in`,
//! `refresh_token`, `scope`, `created_at`), "REST API: pagination" (offset pagination,
//! `per_page` up to 100, `Link`, `x-next-page`, `x-total`), "Projects API" (list
//! attributes `membership`, `order_by`, `sort`, `updated_after`; create and edit; the
//! project object), "REST API: status codes" (400 with `message` per field) and
//! "Rate limits" (429, `Retry-After`, `RateLimit-Reset`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, OAuthVendor, Request, SEEDED, Vendor, approve, at, bearer, redeem,
    run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

/// A self-managed GitLab: its address is part of the OAuth app, not of GitLab.com.
const GITLAB: &str = "https://gitlab.example.test";
const CLIENT_ID: &str = "fake-gitlab-application-id";
const CLIENT_SECRET: &str = "gloas-fake-secret";

/// A GitLab user's projects, grants and scripted misbehaviour.
#[derive(Default)]
pub struct Instance {
    /// Project id → project.
    projects: BTreeMap<u64, Value>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn error(status: u16, message: Value) -> Answer {
    Answer::json(status, json!({ "message": message }))
}

impl Instance {
    pub fn insert(&mut self, name: &str, description: &str) -> u64 {
        self.clock += 1;
        let id = 1000 + self.projects.len() as u64;
        let path = name.to_lowercase().replace(' ', "-");
        self.projects.insert(
            id,
            json!({
                "id": id, "name": name, "description": description, "path": path,
                "name_with_namespace": format!("Acme / {name}"),
                "path_with_namespace": format!("acme/{path}"), "default_branch": "main",
                "visibility": "private", "web_url": format!("{GITLAB}/acme/{path}"),
                "created_at": stamp(self.clock), "updated_at": stamp(self.clock),
                "last_activity_at": stamp(self.clock), "namespace": { "id": 7, "name": "Acme", "path": "acme", "kind": "group" },
            }),
        );
        id
    }

    pub fn touch(&mut self, id: u64, description: &str) {
        self.clock += 1;
        let project = self.projects.get_mut(&id).unwrap();
        project["description"] = json!(description);
        project["updated_at"] = json!(stamp(self.clock));
    }

    pub fn projects(&self) -> Vec<Value> {
        self.projects.values().cloned().collect()
    }

    fn token(&mut self, r: &Request) -> Answer {
        if let Err(error) = redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Post,
        ) {
            return Answer::json(
                400,
                json!({ "error": error, "error_description": "The provided authorization grant is invalid, expired, revoked, does not match the redirection URI used in the authorization request, or was issued to another client." }),
            );
        }
        let token = format!("glpat-fake{:020}", self.tokens.len());
        self.tokens.push(token.clone());
        Answer::json(
            200,
            json!({ "access_token": token, "token_type": "Bearer", "expires_in": 7200, "refresh_token": format!("glrt-fake{}", self.tokens.len()), "scope": "api read_user", "created_at": 1_767_225_600 }),
        )
    }

    fn list(&self, r: &Request) -> Answer {
        let per_page: usize = r.param("per_page").map_or(Ok(20), str::parse).unwrap_or(0);
        let page: usize = r.param("page").map_or(Ok(1), str::parse).unwrap_or(0);
        if !(1..=100).contains(&per_page) || page == 0 {
            return Answer::json(400, json!({ "error": "per_page is invalid" }));
        }
        if !matches!(
            r.param("order_by"),
            None | Some("id" | "name" | "path" | "created_at" | "updated_at" | "last_activity_at")
        ) {
            return Answer::json(
                400,
                json!({ "error": "order_by does not have a valid value" }),
            );
        }
        let after = match r.param("updated_after") {
            None => None,
            // The filter only works when ordering by updated_at (Projects API).
            Some(_) if r.param("order_by") != Some("updated_at") => {
                return Answer::json(
                    400,
                    json!({ "error": "updated_after requires order_by=updated_at" }),
                );
            }
            Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t),
                Err(_) => return Answer::json(400, json!({ "error": "updated_after is invalid" })),
            },
        };
        let mut all: Vec<&Value> = self
            .projects
            .values()
            .filter(|p| {
                after.is_none_or(|after| {
                    chrono::DateTime::parse_from_rfc3339(p["updated_at"].as_str().unwrap()).unwrap()
                        > after
                })
            })
            .collect();
        if r.param("order_by") == Some("updated_at") {
            all.sort_by_key(|p| p["updated_at"].as_str().unwrap().to_owned());
        }
        if r.param("sort") != Some("asc") {
            all.reverse();
        }
        let items: Vec<Value> = all
            .iter()
            .skip((page - 1) * per_page)
            .take(per_page)
            .map(|p| (*p).clone())
            .collect();
        let pages = all.len().div_ceil(per_page).max(1);
        let mut answer = Answer::json(200, Value::Array(items));
        let link = |n: usize| {
            let mut url = url::Url::parse(&format!("{GITLAB}/api/v4/projects")).unwrap();
            for (k, v) in r.query.iter().filter(|(k, _)| k != "page") {
                url.query_pairs_mut().append_pair(k, v);
            }
            url.query_pairs_mut().append_pair("page", &n.to_string());
            url.to_string()
        };
        let mut links = vec![
            format!(r#"<{}>; rel="first""#, link(1)),
            format!(r#"<{}>; rel="last""#, link(pages)),
        ];
        if page < pages {
            links.insert(0, format!(r#"<{}>; rel="next""#, link(page + 1)));
        }
        answer.headers.extend([
            ("link".into(), links.join(", ")),
            ("x-page".into(), page.to_string()),
            ("x-per-page".into(), per_page.to_string()),
            (
                "x-next-page".into(),
                if page < pages {
                    (page + 1).to_string()
                } else {
                    String::new()
                },
            ),
            ("x-total".into(), all.len().to_string()),
            ("x-total-pages".into(), pages.to_string()),
        ]);
        answer
    }

    fn write(&mut self, r: &Request, id: Option<u64>) -> Answer {
        let Some(body) = r
            .json()
            .filter(|_| r.header("content-type") == Some("application/json"))
        else {
            return error(400, json!("400 Bad request - body is not JSON"));
        };
        if body.get("id").is_some() {
            return error(400, json!("id is not a permitted attribute"));
        }
        let name = body["name"].as_str().unwrap_or_default().to_owned();
        let taken = self
            .projects
            .iter()
            .any(|(other, p)| Some(*other) != id && p["name"] == name.as_str());
        if taken {
            return error(
                400,
                json!({ "name": ["has already been taken"], "path": ["has already been taken"] }),
            );
        }
        let description = body["description"].as_str().unwrap_or_default().to_owned();
        match id {
            None if name.is_empty() => error(400, json!({ "name": ["can't be blank"] })),
            None => {
                let id = self.insert(&name, &description);
                Answer::json(201, self.projects[&id].clone())
            }
            Some(id) if self.projects.contains_key(&id) => {
                if !name.is_empty() {
                    self.projects.get_mut(&id).unwrap()["name"] = json!(name);
                }
                self.touch(id, &description);
                Answer::json(200, self.projects[&id].clone())
            }
            Some(_) => error(404, json!("404 Project Not Found")),
        }
    }
}

impl Vendor for Instance {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/oauth/authorize") if r.param("response_type") == Some("code") => {
                return approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/oauth/token") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return error(401, json!("401 Unauthorized"));
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let reset = chrono::Utc::now().timestamp() + 1;
            let mut answer = Answer {
                status: 429,
                headers: vec![("content-type".into(), "text/plain".into())],
                body: "Retry later".into(),
            };
            answer.headers.extend([
                ("retry-after".into(), "1".into()),
                ("ratelimit-limit".into(), "2000".into()),
                ("ratelimit-observed".into(), "2001".into()),
                ("ratelimit-remaining".into(), "0".into()),
                ("ratelimit-reset".into(), reset.to_string()),
            ]);
            return answer;
        }
        let project = |path: &str| {
            path.strip_prefix("/api/v4/projects/")
                .and_then(|id| id.parse().ok())
        };
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/v4/projects") => self.list(r),
            ("POST", "/api/v4/projects") => self.write(r, None),
            ("PUT", path) if project(path).is_some() => self.write(r, project(path)),
            _ => error(404, json!("404 Not Found")),
        }
    }
}

const GITLAB_APP: OAuthVendor = OAuthVendor {
    provider: "gitlab",
    origins: &[GITLAB],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

/// Connects to the self-managed GitLab: its URL is entered with the OAuth app.
async fn connect(extra: &[(&str, &str)]) -> super::Connected<Instance> {
    GITLAB_APP
        .connect_with::<Instance>(extra, &[("field_gitlab_url", GITLAB)], &[])
        .await
}

#[tokio::test]
async fn a_self_managed_gitlab_pages_projects_by_link_header_then_reads_what_changed() {
    let s = connect(&[]).await;
    {
        let mut instance = s.vendor.lock().unwrap();
        for i in 0..250 {
            instance.insert(&format!("Service {i}"), "");
        }
    }
    let flow = s
        .read_into_companies(
            "projects",
            "record.id",
            &[("name", "record.name"), ("domain", "record.web_url")],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(count(&page, "read"), 250);
    assert_eq!(s.app.sandbox_records("crm.companies").await, 250);
    let lists = s.fake.requests_to("/api/v4/projects");
    assert_eq!(lists.len(), 3, "pages of 100, 100, 50 by rel=\"next\"");
    assert!(lists.iter().all(|r| r.param("per_page") == Some("100")));
    assert_eq!(lists[2].param("page"), Some("3"));
    let token = s.fake.requests_to("/oauth/token");
    assert_eq!(
        token.len(),
        1,
        "the token came from the self-managed instance"
    );

    // Two projects change; the next run asks for what was updated after the newest
    // change it saw, and waits out a 429 first.
    {
        let mut instance = s.vendor.lock().unwrap();
        instance.touch(1003, "Renamed");
        instance.touch(1100, "Renamed");
        instance.rate_limited = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("429"), "the rate limit was waited out: {log}");
    let last = s.fake.requests_to("/api/v4/projects").pop().unwrap();
    assert_eq!(last.param("updated_after"), Some(stamp(250).as_str()));
    assert_eq!(last.param("order_by"), Some("updated_at"));
    assert_eq!(count(&page, "read"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn gitlab_creates_and_updates_projects_and_a_taken_name_is_a_dead_letter() {
    let s = connect(SEEDED).await;
    let flow = s
        .contacts_into(
            "projects",
            &[
                // Two contacts ask for the same project name: GitLab refuses the second.
                (
                    "name",
                    "'Project ' ~ (record.id if record.id != 'con_000004' else 'con_000003')",
                ),
                ("description", "record.name"),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    assert_eq!(count(&page, "failed"), 1);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("has already been taken"), "{dead}");
    assert_eq!(s.vendor.lock().unwrap().projects().len(), 11);

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
    let projects = s.vendor.lock().unwrap().projects();
    assert_eq!(projects.len(), 11, "updated, not created again");
    for put in puts {
        let id: u64 = put
            .path
            .trim_start_matches("/api/v4/projects/")
            .parse()
            .unwrap();
        let project = projects.iter().find(|p| p["id"] == id).unwrap();
        assert!(
            project["description"]
                .as_str()
                .unwrap()
                .starts_with("Renamed")
        );
    }
    s.app.stop().await;
}
