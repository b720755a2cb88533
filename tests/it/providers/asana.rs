//! Asana: OAuth with PKCE, the workspaces the user belongs to listed after consent (the
//! tenant picks one when there are several), tasks listed by `assignee` and `workspace`
//! and paged by an `offset` token (`next_page.offset`, null at the end), `modified_since`,
//! bodies wrapped as `{"data": …}` with the workspace inside a new task, 400 errors as
//! `errors[].message`, and 429 with `Retry-After`.
//!
//! Shapes from Asana's developer documentation: "OAuth" (authorize at
//! `/-/oauth_authorize`, token at `/-/oauth_token`, PKCE, answer `access_token`,
//! `refresh_token`, `expires_in`, `token_type`, `data`), "Get multiple workspaces", "Get
//! multiple tasks" (`assignee` with `workspace`, `modified_since`, `limit` 1–100,
//! `offset`, `opt_fields`), "Pagination" (`next_page` with `offset`, `path`, `uri`),
//! "Create a task" (needs a workspace, a project or a parent; `due_on` as YYYY-MM-DD),
//! "Update a task", "Errors" and "Rate limits" (429 with `Retry-After`).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use super::{
    Answer, ClientAuth, Codes, Connected, OAuthVendor, Request, SEEDED, Vendor, approve, at,
    bearer, redeem, run_ending,
};
use crate::common::flows::{count, touch_contacts};
use serde_json::{Value, json};
use std::collections::BTreeMap;

const ASANA: &str = "https://app.asana.com";
const CLIENT_ID: &str = "1200000000000001";
const CLIENT_SECRET: &str = "fake-asana-secret";
const PERSONAL: &str = "1100000000000001";
const COMPANY: &str = "1100000000000002";

/// An Asana user in two workspaces: tasks (each in one), grants and misbehaviour.
#[derive(Default)]
pub struct User {
    /// Task gid → (workspace gid, task).
    tasks: BTreeMap<String, (String, Value)>,
    clock: i64,
    codes: Codes,
    tokens: Vec<String>,
    /// The next this many API calls answer 429.
    pub rate_limited: u32,
}

fn stamp(seconds: i64) -> String {
    at(seconds).format("%Y-%m-%dT%H:%M:%S%.3fZ").to_string()
}

fn errors(status: u16, message: &str) -> Answer {
    Answer::json(
        status,
        json!({ "errors": [{ "message": message, "help": "For more information on API status codes and how to handle them, read the docs on errors: https://developers.asana.com/docs/errors" }] }),
    )
}

impl User {
    pub fn insert(&mut self, workspace: &str, name: &str) -> String {
        self.clock += 1;
        let gid = format!("12{:014}", self.tasks.len() + 1);
        self.tasks.insert(
            gid.clone(),
            (
                workspace.to_owned(),
                json!({
                    "gid": gid, "resource_type": "task", "name": name, "notes": "",
                    "completed": false, "completed_at": null, "due_on": null,
                    "created_at": stamp(self.clock), "modified_at": stamp(self.clock),
                    "assignee": { "gid": "1000000000000001", "name": "Ada Lovelace" },
                }),
            ),
        );
        gid
    }

    pub fn touch(&mut self, gid: &str, name: &str) {
        self.clock += 1;
        let task = &mut self.tasks.get_mut(gid).unwrap().1;
        task["name"] = json!(name);
        task["modified_at"] = json!(stamp(self.clock));
    }

    /// The tasks of one workspace.
    pub fn tasks_in(&self, workspace: &str) -> Vec<Value> {
        self.tasks
            .values()
            .filter(|(w, _)| w == workspace)
            .map(|(_, t)| t.clone())
            .collect()
    }

    fn token(&mut self, r: &Request) -> Answer {
        match redeem(
            &mut self.codes,
            r,
            (CLIENT_ID, CLIENT_SECRET),
            ClientAuth::Post,
        ) {
            Err(error) => Answer::json(
                400,
                json!({ "error": error, "error_description": "The `code` is invalid or has expired." }),
            ),
            Ok(()) => {
                let token = format!("2/fake{:030}", self.tokens.len());
                self.tokens.push(token.clone());
                Answer::json(
                    200,
                    json!({ "access_token": token, "expires_in": 3600, "token_type": "bearer", "refresh_token": format!("2/fakerefresh{}", self.tokens.len()), "data": { "id": 1000000000000001_u64, "gid": "1000000000000001", "name": "Ada Lovelace", "email": "ada@example.com" } }),
                )
            }
        }
    }

    fn list(&self, r: &Request) -> Answer {
        let (Some("me"), Some(workspace)) = (r.param("assignee"), r.param("workspace")) else {
            return errors(
                400,
                "Must specify exactly one of project, tag, section, user task list, or assignee + workspace",
            );
        };
        if ![PERSONAL, COMPANY].contains(&workspace) {
            return errors(404, "workspace: Unknown object: ".to_owned().as_str());
        }
        let limit: usize = r.param("limit").map_or(Ok(20), str::parse).unwrap_or(0);
        if !(1..=100).contains(&limit) {
            return errors(400, "limit: Must be between 1 and 100");
        }
        let since = match r.param("modified_since") {
            None => None,
            Some(s) => match chrono::DateTime::parse_from_rfc3339(s) {
                Ok(t) => Some(t),
                Err(_) => return errors(400, "modified_since: Not a valid date-time"),
            },
        };
        let from: usize = match r.param("offset") {
            None => 0,
            Some(o) => match o.strip_prefix("eyJmYWtlIjo").and_then(|n| n.parse().ok()) {
                Some(n) => n,
                None => {
                    return errors(
                        400,
                        "offset: Your pagination token is invalid. Please check your request.",
                    );
                }
            },
        };
        let matching: Vec<Value> = self
            .tasks
            .values()
            .filter(|(w, _)| w == workspace)
            .map(|(_, t)| t)
            .filter(|t| {
                since.is_none_or(|since| {
                    chrono::DateTime::parse_from_rfc3339(t["modified_at"].as_str().unwrap())
                        .unwrap()
                        >= since
                })
            })
            .cloned()
            .collect();
        let page: Vec<Value> = matching.iter().skip(from).take(limit).cloned().collect();
        let next = (from + limit < matching.len()).then(|| {
            let offset = format!("eyJmYWtlIjo{}", from + limit);
            json!({ "offset": offset, "path": format!("/tasks?limit={limit}&offset={offset}"), "uri": format!("{ASANA}/api/1.0/tasks?limit={limit}&offset={offset}") })
        });
        Answer::json(200, json!({ "data": page, "next_page": next }))
    }

    fn write(&mut self, r: &Request, gid: Option<&str>) -> Answer {
        let Some(data) = r
            .json()
            .and_then(|b| b.get("data").cloned())
            .filter(Value::is_object)
        else {
            return errors(400, "data: Missing input");
        };
        if data.get("gid").is_some() {
            return errors(400, "gid: Cannot write this property");
        }
        if let Some(due) = data.get("due_on").and_then(Value::as_str)
            && chrono::NaiveDate::parse_from_str(due, "%Y-%m-%d").is_err()
        {
            return errors(400, "due_on: Must be a date in YYYY-MM-DD format");
        }
        let gid = match gid {
            Some(gid) if !self.tasks.contains_key(gid) => {
                return errors(404, "task: Unknown object");
            }
            Some(gid) => {
                if data.get("workspace").is_some() {
                    return errors(400, "workspace: Cannot update workspace of a task");
                }
                let name = data["name"].as_str().unwrap_or_default().to_owned();
                self.touch(gid, &name);
                gid.to_owned()
            }
            None => {
                let workspace = data["workspace"].as_str().unwrap_or_default().to_owned();
                if ![PERSONAL, COMPANY].contains(&workspace.as_str()) {
                    return errors(400, "workspace: Missing input");
                }
                self.insert(&workspace, data["name"].as_str().unwrap_or_default())
            }
        };
        let task = &mut self.tasks.get_mut(&gid).unwrap().1;
        for (k, v) in data.as_object().unwrap() {
            if k != "workspace" && k != "assignee" {
                task[k] = v.clone();
            }
        }
        Answer::json(
            if r.method == "POST" { 201 } else { 200 },
            json!({ "data": task.clone() }),
        )
    }
}

impl Vendor for User {
    fn handle(&mut self, r: &Request) -> Answer {
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/-/oauth_authorize") => {
                return approve(&mut self.codes, r, CLIENT_ID, "fakecode{n}");
            }
            ("POST", "/-/oauth_token") => return self.token(r),
            _ => {}
        }
        if !bearer(r, &self.tokens) {
            return errors(401, "Not Authorized");
        }
        if self.rate_limited > 0 {
            self.rate_limited -= 1;
            let mut answer = errors(
                429,
                "You have made too many requests recently. Please, be chill.",
            );
            answer.headers.push(("retry-after".into(), "1".into()));
            return answer;
        }
        let task = |path: &str| path.strip_prefix("/api/1.0/tasks/").map(str::to_owned);
        match (r.method.as_str(), r.path.as_str()) {
            ("GET", "/api/1.0/workspaces") => Answer::json(
                200,
                json!({ "data": [
                    { "gid": PERSONAL, "resource_type": "workspace", "name": "Personal Projects" },
                    { "gid": COMPANY, "resource_type": "workspace", "name": "Acme Corp" },
                ], "next_page": null }),
            ),
            ("GET", "/api/1.0/tasks") => self.list(r),
            ("POST", "/api/1.0/tasks") => self.write(r, None),
            ("PUT", path) if task(path).is_some() => self.write(r, task(path).as_deref()),
            _ => errors(404, "Unknown object"),
        }
    }
}

const ASANA_APP: OAuthVendor = OAuthVendor {
    provider: "asana",
    origins: &[ASANA],
    client_id: CLIENT_ID,
    client_secret: CLIENT_SECRET,
};

/// Picks the workspace on the connection's page.
async fn choose(s: &Connected<User>, workspace: &str) {
    let chosen = s
        .admin
        .post_form(
            &format!("/connections/{}/choose", s.connection),
            &[("choice", workspace)],
        )
        .await;
    assert_eq!(chosen.status, 303, "{}", chosen.body);
    let page = s.admin.get(chosen.location()).await.body;
    assert!(page.contains("Asana workspace set to"), "{page}");
}

#[tokio::test]
async fn asana_asks_which_workspace_then_pages_its_tasks_by_offset_token() {
    let s = ASANA_APP.connect::<User>(&[]).await;
    {
        let mut user = s.vendor.lock().unwrap();
        for i in 0..250 {
            user.insert(COMPANY, &format!("Company task {i}"));
        }
        user.insert(PERSONAL, "Water the plants");
    }
    // The grant reaches two workspaces: the connection page asks which one.
    let page = s
        .admin
        .get(&format!("/connections/{}", s.connection))
        .await
        .body;
    assert!(page.contains("Choose the Asana workspace"), "{page}");
    assert!(
        page.contains("Personal Projects") && page.contains("Acme Corp"),
        "{page}"
    );
    let refused = s
        .admin
        .post_form(
            &format!("/connections/{}/choose", s.connection),
            &[("choice", "999")],
        )
        .await;
    assert_eq!(refused.status, 303);
    let page = s.admin.get(refused.location()).await.body;
    assert!(page.contains("Choose one of the listed"), "{page}");

    let flow = s
        .read_into_companies(
            "tasks",
            "record.gid",
            &[
                ("name", "record.name"),
                ("domain", "record.gid ~ '.example'"),
            ],
        )
        .await;
    // Until a workspace is chosen, runs say what to do.
    let (_, log) = run_ending(&s.admin, &flow, "Failed").await;
    assert!(
        log.contains("choose the Asana workspace on the connection"),
        "{log}"
    );

    choose(&s, COMPANY).await;
    let (page, _) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert_eq!(
        count(&page, "read"),
        250,
        "only the chosen workspace's tasks"
    );
    let lists = s.fake.requests_to("/api/1.0/tasks");
    let lists = &lists[lists.len() - 3..];
    assert!(lists.iter().all(|r| r.param("workspace") == Some(COMPANY)));
    assert_eq!(lists[1].param("offset"), Some("eyJmYWtlIjo100"));

    {
        let mut user = s.vendor.lock().unwrap();
        let gids: Vec<String> = user
            .tasks_in(COMPANY)
            .iter()
            .take(2)
            .map(|t| t["gid"].as_str().unwrap().to_owned())
            .collect();
        for gid in gids {
            user.touch(&gid, "Changed");
        }
        user.rate_limited = 1;
    }
    let (page, log) = run_ending(&s.admin, &flow, "Succeeded").await;
    assert!(log.contains("be chill"), "{log}");
    let last = s.fake.requests_to("/api/1.0/tasks").pop().unwrap();
    assert_eq!(last.param("modified_since"), Some(stamp(250).as_str()));
    assert_eq!(count(&page, "written"), 2);
    s.app.stop().await;
}

#[tokio::test]
async fn asana_creates_tasks_in_the_chosen_workspace_and_updates_them() {
    let s = ASANA_APP.connect::<User>(SEEDED).await;
    choose(&s, PERSONAL).await;
    let flow = s
        .contacts_into(
            "tasks",
            &[
                ("name", "'Call ' ~ record.name"),
                (
                    "due_on",
                    "'2026-02-01' if record.id != 'con_000003' else '2026-13-45'",
                ),
            ],
        )
        .await;
    let (page, _) = run_ending(&s.admin, &flow, "Partially failed").await;
    assert_eq!(count(&page, "written"), 11);
    let dead = s.admin.get(&format!("{flow}/dead-letters")).await.body;
    assert!(dead.contains("YYYY-MM-DD"), "{dead}");
    assert_eq!(
        s.vendor.lock().unwrap().tasks_in(PERSONAL).len(),
        11,
        "in the chosen workspace"
    );
    let create = s
        .fake
        .requests_to("/api/1.0/tasks")
        .into_iter()
        .find(|r| r.method == "POST")
        .unwrap();
    let data = &create.json().unwrap()["data"];
    assert_eq!(data["workspace"], PERSONAL);
    assert_eq!(data["assignee"], "me");

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
    let tasks = s.vendor.lock().unwrap().tasks_in(PERSONAL);
    assert_eq!(tasks.len(), 11, "updated, not created again");
    for put in puts {
        let gid = put.path.trim_start_matches("/api/1.0/tasks/");
        let task = tasks.iter().find(|t| t["gid"] == gid).unwrap();
        assert!(task["name"].as_str().unwrap().starts_with("Call Renamed"));
    }
    s.app.stop().await;
}
