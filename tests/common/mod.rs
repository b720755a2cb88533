//! The test harness: a real Sluice process (HTTP server, workers, scheduler) on port 0
//! with a fresh database — a SQLite file, or a fresh Postgres database when
//! `SLUICE_TEST_POSTGRES_URL` is set — and a cookie-keeping HTTP client that fills in
//! CSRF tokens the way a browser form would.
#![allow(dead_code, clippy::unwrap_used, clippy::expect_used)]

pub mod fake;
pub mod flows;
pub mod sinks;

use reqwest::cookie::{CookieStore, Jar};
use sea_orm::{ConnectionTrait, Database};
use sluice::app::App;
use sluice::config::Settings;
use sluice::startup::{self, Roles, Running};
use std::sync::Arc;

/// A running Sluice for one test.
pub struct TestApp {
    pub running: Running,
    pub base: String,
    database_url: String,
    _dir: tempfile::TempDir,
    _database: FreshDatabase,
}

/// A test's own PostgreSQL database, dropped with the test, also when it panics.
struct FreshDatabase {
    /// The admin connection URL and the database's name (none on SQLite).
    postgres: Option<(String, String)>,
}

impl Drop for FreshDatabase {
    fn drop(&mut self) {
        let Some((admin_url, name)) = self.postgres.take() else {
            return;
        };
        // Drop may run inside the test's runtime, which cannot be blocked on: the statement
        // runs on a thread of its own.
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .unwrap();
            runtime.block_on(async {
                if let Ok(admin) = Database::connect(&admin_url).await {
                    let _ = admin
                        .execute_unprepared(&format!("DROP DATABASE IF EXISTS {name} WITH (FORCE)"))
                        .await;
                }
            });
        });
        let _ = dropped.join();
    }
}

/// Runs the calling test alone in a fresh process of this test binary, for measurements
/// of the whole process (resident memory) that tests running beside it would disturb.
/// True in that process; in the calling one, it waits for that run, asserts it passed and
/// answers false (the caller then returns).
pub fn in_own_process(test: &str) -> bool {
    if std::env::var_os("SLUICE_TEST_ALONE").is_some() {
        return true;
    }
    let status = std::process::Command::new(std::env::current_exe().unwrap())
        .args([test, "--exact", "--test-threads=1", "--nocapture"])
        .env("SLUICE_TEST_ALONE", "1")
        .status()
        .unwrap();
    assert!(status.success(), "{test} failed in its own process");
    false
}

/// Failed and all runs on a page's error-rate chart, summed over its hourly points (runs
/// of one test may straddle an hour).
pub fn failed_runs_charted(page: &str) -> (u32, u32) {
    page.split("<title>")
        .skip(1)
        .filter_map(|t| t.split_once(" runs failed or lost records</title>"))
        .filter_map(|(counts, _)| counts.split_once(" of "))
        .fold((0, 0), |(failed, runs), (f, r)| {
            (
                failed + f.parse::<u32>().unwrap(),
                runs + r.parse::<u32>().unwrap(),
            )
        })
}

/// The first column of the first row of `sql`, as a number.
pub async fn scalar(db: &sea_orm::DatabaseConnection, sql: &str) -> i64 {
    let row = db
        .query_one_raw(sea_orm::Statement::from_string(
            db.get_database_backend(),
            sql,
        ))
        .await
        .unwrap()
        .unwrap();
    row.try_get_by_index::<i64>(0).unwrap()
}

/// Which database the suites run on.
pub fn postgres_url() -> Option<String> {
    std::env::var("SLUICE_TEST_POSTGRES_URL")
        .ok()
        .filter(|s| !s.is_empty())
}

async fn fresh_database_url(dir: &std::path::Path) -> String {
    match postgres_url() {
        Some(admin_url) => {
            let name = format!("sluice_test_{}", uuid::Uuid::now_v7().simple());
            let admin = Database::connect(&admin_url)
                .await
                .expect("connect to Postgres");
            admin
                .execute_unprepared(&format!("CREATE DATABASE {name}"))
                .await
                .expect("create test database");
            let mut url = url::Url::parse(&admin_url).unwrap();
            url.set_path(&name);
            url.to_string()
        }
        None => format!("sqlite://{}?mode=rwc", dir.join("sluice.db").display()),
    }
}

impl TestApp {
    /// Starts Sluice with default test settings.
    pub async fn spawn() -> TestApp {
        Self::spawn_with(&[]).await
    }

    /// Starts Sluice with extra `SLUICE_*` settings.
    pub async fn spawn_with(extra: &[(&str, &str)]) -> TestApp {
        Self::spawn_roles(extra, Roles::ALL).await
    }

    /// Starts only the web server (no workers, no scheduler), for tests that run the
    /// workers in separate processes.
    pub async fn spawn_web_only(extra: &[(&str, &str)]) -> TestApp {
        Self::spawn_roles(
            extra,
            Roles {
                web: true,
                workers: false,
                scheduler: false,
            },
        )
        .await
    }

    async fn spawn_roles(extra: &[(&str, &str)], roles: Roles) -> TestApp {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let dir = tempfile::tempdir().unwrap();
        let database_url = fresh_database_url(dir.path()).await;
        // Dropped with the test however it ends, from here on.
        let database = FreshDatabase {
            postgres: postgres_url().map(|admin_url| {
                let name = url::Url::parse(&database_url)
                    .unwrap()
                    .path()
                    .trim_start_matches('/')
                    .to_owned();
                (admin_url, name)
            }),
        };
        let mut vars: Vec<(String, String)> = vec![
            ("SLUICE_DATABASE_URL".into(), database_url.clone()),
            ("SLUICE_DATA_DIR".into(), dir.path().display().to_string()),
            ("SLUICE_BIND".into(), "127.0.0.1:0".into()),
            (
                "SLUICE_MASTER_KEY".into(),
                sluice::config::MasterKey::generate_base64(),
            ),
            (
                "SLUICE_LOG".into(),
                std::env::var("SLUICE_TEST_LOG").unwrap_or_else(|_| "warn".into()),
            ),
            ("SLUICE_JOB_RETRY_BASE_MS".into(), "50".into()),
            ("SLUICE_JOB_RETRY_CAP_SECS".into(), "1".into()),
            ("SLUICE_DB_MAX_CONNECTIONS".into(), "5".into()),
            ("SLUICE_SANDBOX_SEED_CONTACTS".into(), "0".into()),
            ("SLUICE_METRICS_TOKEN".into(), METRICS_TOKEN.into()),
        ];
        vars.extend(
            extra
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned())),
        );
        let settings = Settings::from_vars(vars).unwrap();
        sluice::telemetry::init(&settings);
        let running = startup::start(settings, roles).await.unwrap();
        let base = format!("http://{}", running.addr);
        TestApp {
            running,
            base,
            database_url,
            _dir: dir,
            _database: database,
        }
    }

    /// The data directory (on SQLite: where the database files are).
    pub fn data_dir(&self) -> &std::path::Path {
        self._dir.path()
    }

    /// Shared application state (for arranging data the UI cannot, e.g. expiring rows).
    pub fn app(&self) -> &App {
        &self.running.app
    }

    /// The built-in sandbox's own database (its records, grants and counters), prepared
    /// and seeded as its first request would.
    pub async fn sandbox_db(&self) -> &sea_orm::DatabaseConnection {
        let sandbox = self.running.sandbox.as_ref().expect("the sandbox is on");
        sandbox.seeded().await.expect("the sandbox seeds its data");
        sandbox.db()
    }

    /// A fresh browser-like client with its own cookies.
    pub fn client(&self) -> Client {
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            // The server closes a connection idle for 5 s; reusing one that old races
            // with that close (and the request fails mid-way) when a slow page made the
            // test wait just that long. A browser retries then; the tests reconnect.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap();
        Client {
            http,
            jar,
            base: self.base.clone(),
        }
    }

    /// The path of the first-run setup link.
    pub async fn setup_path(&self) -> String {
        let link = sluice::services::accounts::setup_link(self.app())
            .await
            .unwrap()
            .unwrap();
        let url = url::Url::parse(&link).unwrap();
        url.path().to_owned()
    }

    /// Completes first-run setup and returns the signed-in owner's client.
    pub async fn owner(&self, email: &str, workspace: &str) -> Client {
        let path = self.setup_path().await;
        complete_setup(&self.client(), &path, email, workspace).await
    }

    /// A second workspace with its own owner (created from the command-line service).
    pub async fn another_tenant(&self, email: &str, workspace: &str) -> Client {
        let app = self.app();
        let user = sluice::services::accounts::create_user(app, email, "Other Owner", PASSWORD)
            .await
            .unwrap();
        sluice::services::tenants::create(app, &user, workspace)
            .await
            .unwrap();
        let client = self.client();
        client.sign_in(email, PASSWORD).await;
        client
    }

    /// A counter of the built-in sandbox (e.g. `token.refresh_token`).
    pub async fn sandbox_counter(&self, name: &str) -> i64 {
        let stats: serde_json::Value = self
            .client()
            .http
            .get(format!("{}/sandbox/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["counters"][name].as_i64().unwrap_or(0)
    }

    /// Records of a sandbox object (e.g. `erp.customers`).
    pub async fn sandbox_records(&self, object: &str) -> i64 {
        let stats: serde_json::Value = self
            .client()
            .http
            .get(format!("{}/sandbox/stats", self.base))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        stats["records"][object].as_i64().unwrap_or(0)
    }

    /// Records in the sandbox ERP whose `external_id` occurs more than once (duplicates).
    pub async fn duplicate_customers(&self) -> i64 {
        scalar(
            self.sandbox_db().await,
            "SELECT COUNT(*) FROM (SELECT ext_key FROM sandbox_records WHERE object = 'erp.customers' \
             GROUP BY ext_key HAVING COUNT(*) > 1) d",
        )
        .await
    }

    /// Waits until the sandbox CRM holds its `n` seeded contacts.
    pub async fn wait_for_seed(&self, n: i64) {
        for _ in 0..600 {
            if self.sandbox_records("crm.contacts").await == n {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        panic!("sandbox never seeded");
    }

    /// Starts `sluice worker` as a separate OS process on this app's database, with the
    /// master key the app was started with and extra `SLUICE_*` settings; returns once
    /// it is ready.
    pub fn spawn_worker(&self, master_key: &str, extra: &[(&str, &str)]) -> std::process::Child {
        self.spawn_worker_logged(master_key, extra).0
    }

    /// [`TestApp::spawn_worker`], also returning the lines it logs (JSON), as they come.
    pub fn spawn_worker_logged(
        &self,
        master_key: &str,
        extra: &[(&str, &str)],
    ) -> (
        std::process::Child,
        std::sync::Arc<std::sync::Mutex<Vec<String>>>,
    ) {
        use std::io::{BufRead, BufReader};
        use std::process::{Command, Stdio};
        let mut command = Command::new(env!("CARGO_BIN_EXE_sluice"));
        command
            .arg("worker")
            .env("SLUICE_DATABASE_URL", self.database_url())
            .env("SLUICE_MASTER_KEY", master_key)
            .env("SLUICE_PUBLIC_URL", &self.base)
            .env("SLUICE_SANDBOX_SEED_CONTACTS", "0")
            .env("SLUICE_LOG", "info")
            .env("SLUICE_LOG_FORMAT", "json")
            .stdout(Stdio::piped())
            .stderr(Stdio::null());
        for (k, v) in extra {
            command.env(k, v);
        }
        let mut child = command.spawn().expect("start sluice worker");
        let stdout = child.stdout.take().unwrap();
        let (tx, rx) = std::sync::mpsc::channel();
        // SLUICE_TEST_WORKER_LOG=<file> keeps the worker's log, for a failing test.
        let mut keep = std::env::var("SLUICE_TEST_WORKER_LOG")
            .ok()
            .and_then(|path| {
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(path)
                    .ok()
            });
        let lines = std::sync::Arc::new(std::sync::Mutex::new(Vec::new()));
        let collected = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                // A test that fails while reading the lines poisons the lock: keep going.
                if let Ok(mut lines) = collected.lock() {
                    lines.push(line.clone());
                }
                if let Some(file) = keep.as_mut() {
                    use std::io::Write;
                    let _ = writeln!(file, "{line}");
                }
                if line.contains("Sluice is ready") {
                    let _ = tx.send(());
                }
            }
        });
        rx.recv_timeout(std::time::Duration::from_secs(30))
            .expect("worker process became ready");
        (child, lines)
    }

    /// Waits for a child process to exit without blocking the test's runtime: on
    /// PostgreSQL this app's database connections are driven by that runtime, so a
    /// blocking wait would stall every request the child makes to it.
    pub async fn exited(child: &mut std::process::Child) -> std::process::ExitStatus {
        loop {
            if let Some(status) = child.try_wait().expect("wait for the child") {
                return status;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    }

    /// Scrapes `/metrics` as Prometheus would, with the bearer token; returns the text.
    pub async fn metrics(&self) -> String {
        let res = self
            .client()
            .http
            .get(format!("{}/metrics", self.base))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .unwrap();
        assert_eq!(res.status().as_u16(), 200);
        res.text().await.unwrap()
    }

    /// The database URL this test runs on.
    pub fn database_url(&self) -> &str {
        &self.database_url
    }

    /// Stops gracefully and drops the test's Postgres database.
    pub async fn stop(self) {
        self.running.stop().await;
    }
}

/// The scrape token tests start Sluice with.
pub const METRICS_TOKEN: &str = "test-metrics-token-0123456789";

/// A password that meets the rules.
pub const PASSWORD: &str = "correct horse battery";

/// A response read to the end.
#[derive(Debug)]
pub struct Page {
    pub status: u16,
    pub headers: reqwest::header::HeaderMap,
    pub body: String,
}

impl Page {
    /// The page's document, to query with CSS selectors.
    pub fn html(&self) -> scraper::Html {
        scraper::Html::parse_document(&self.body)
    }

    /// The first element matching a CSS selector's attribute, decoded.
    pub fn attr(&self, selector: &str, attribute: &str) -> Option<String> {
        let selector = scraper::Selector::parse(selector).unwrap();
        self.html()
            .select(&selector)
            .find_map(|e| e.value().attr(attribute).map(str::to_owned))
    }

    /// The text of the first element matching a CSS selector.
    pub fn text(&self, selector: &str) -> Option<String> {
        let selector = scraper::Selector::parse(selector).unwrap();
        self.html()
            .select(&selector)
            .next()
            .map(|e| e.text().collect())
    }

    /// The value of the form input named `name`.
    pub fn input_value(&self, name: &str) -> String {
        self.attr(&format!("input[name=\"{name}\"]"), "value")
            .unwrap_or_else(|| panic!("no input {name} in {}", self.body))
    }

    /// The Location header of a redirect.
    pub fn location(&self) -> &str {
        self.headers
            .get("location")
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
    }

    /// The value of the first `<code id="{id}">…</code>` on the page (secrets shown once).
    pub fn code_by_id(&self, id: &str) -> String {
        self.text(&format!("code#{id}"))
            .unwrap_or_else(|| panic!("no {id} in page"))
    }

    /// The first form action containing `fragment`.
    pub fn action_containing(&self, fragment: &str) -> String {
        self.attr(&format!("form[action*=\"{fragment}\"]"), "action")
            .unwrap_or_else(|| panic!("no form action containing {fragment}"))
    }
}

/// A cookie-keeping client.
#[derive(Clone)]
pub struct Client {
    pub http: reqwest::Client,
    jar: Arc<Jar>,
    pub base: String,
}

impl Client {
    /// A browser-like client for a server at `base`.
    pub fn new(base: &str) -> Client {
        let _ = rustls::crypto::ring::default_provider().install_default();
        let jar = Arc::new(Jar::default());
        let http = reqwest::Client::builder()
            .cookie_provider(jar.clone())
            .redirect(reqwest::redirect::Policy::none())
            // The server closes a connection idle for 5 s; reusing one that old races
            // with that close (and the request fails mid-way) when a slow page made the
            // test wait just that long. A browser retries then; the tests reconnect.
            .pool_idle_timeout(std::time::Duration::from_secs(2))
            .build()
            .unwrap();
        Client {
            http,
            jar,
            base: base.to_owned(),
        }
    }

    /// The same browser (cookies) talking to another server of the same deployment.
    pub fn with_base(&self, base: &str) -> Client {
        Client {
            http: self.http.clone(),
            jar: self.jar.clone(),
            base: base.to_owned(),
        }
    }

    fn cookie(&self, name: &str) -> Option<String> {
        let url = url::Url::parse(&self.base).unwrap();
        let header = self.jar.cookies(&url)?;
        header
            .to_str()
            .ok()?
            .split("; ")
            .find_map(|kv| kv.strip_prefix(&format!("{name}=")).map(str::to_owned))
    }

    async fn read(res: reqwest::Response) -> Page {
        let status = res.status().as_u16();
        let headers = res.headers().clone();
        let body = res.text().await.unwrap();
        Page {
            status,
            headers,
            body,
        }
    }

    pub async fn get(&self, path: &str) -> Page {
        Self::read(
            self.http
                .get(format!("{}{path}", self.base))
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    /// Posts a form the way the page would: with the CSRF token from the cookie.
    pub async fn post_form(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        self.post_form_with_headers(path, fields, &[]).await
    }

    /// [`Client::post_form`] with extra request headers (e.g. the `Origin` a browser sends).
    pub async fn post_form_with_headers(
        &self,
        path: &str,
        fields: &[(&str, &str)],
        headers: &[(&str, &str)],
    ) -> Page {
        if self.cookie("sluice_csrf").is_none() {
            self.get("/login").await;
        }
        let token = self.cookie("sluice_csrf").unwrap();
        let mut form: Vec<(&str, &str)> = fields.to_vec();
        form.push(("csrf_token", &token));
        let mut request = self.http.post(format!("{}{path}", self.base)).form(&form);
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        Self::read(request.send().await.unwrap()).await
    }

    /// Posts a form with no CSRF token (what a forged cross-site form would send).
    pub async fn post_form_without_csrf(&self, path: &str, fields: &[(&str, &str)]) -> Page {
        Self::read(
            self.http
                .post(format!("{}{path}", self.base))
                .form(fields)
                .send()
                .await
                .unwrap(),
        )
        .await
    }

    pub async fn sign_in(&self, email: &str, password: &str) -> Page {
        let page = self
            .post_form("/login", &[("email", email), ("password", password)])
            .await;
        assert_eq!(page.status, 303, "sign-in failed: {}", page.body);
        page
    }

    /// A JSON API call with a bearer token.
    pub async fn api(&self, token: &str, path: &str) -> (u16, serde_json::Value) {
        let res = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        let status = res.status().as_u16();
        (status, res.json().await.unwrap_or(serde_json::Value::Null))
    }

    /// Creates an API token in the current workspace through the UI; returns the secret.
    pub async fn create_api_token(&self, name: &str, role: &str) -> String {
        let page = self
            .post_form(
                "/settings/api-tokens",
                &[("name", name), ("role", role), ("expires_in_days", "30")],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        page.code_by_id("new-token")
    }

    /// Follows a provider redirect through the sandbox consent screen: approves (or
    /// denies) and returns the callback path with its query, as the browser would get it.
    pub async fn consent(&self, authorize_url: &str, approve: bool) -> String {
        let url = url::Url::parse(authorize_url).unwrap();
        let path = format!("{}?{}", url.path(), url.query().unwrap_or_default());
        let page = self.get(&path).await;
        assert_eq!(page.status, 200, "consent page: {}", page.body);
        let mut fields: Vec<(String, String)> = url.query_pairs().into_owned().collect();
        fields.push((
            "decision".into(),
            if approve { "approve" } else { "deny" }.into(),
        ));
        // The sandbox protects its form with a token of its own (a cookie and a field).
        fields.push(("csrf_token".into(), page.input_value("csrf_token")));
        let borrowed: Vec<(&str, &str)> = fields
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        let decision = self
            .post_form_without_csrf("/sandbox/oauth/authorize", &borrowed)
            .await;
        assert_eq!(decision.status, 302, "{}", decision.body);
        let back = url::Url::parse(decision.location()).unwrap();
        format!("{}?{}", back.path(), back.query().unwrap_or_default())
    }

    /// Connects the sandbox CRM as a signed-in admin; returns the connection page path.
    pub async fn connect_sandbox(&self, provider: &str) -> String {
        let start = self
            .post_form(&format!("/connections/new/{provider}"), &[("name", "")])
            .await;
        assert_eq!(start.status, 200, "{}", start.body);
        let callback = self.consent(&continue_url(&start), true).await;
        let done = self.get(&callback).await;
        assert_eq!(done.status, 303, "{}", done.body);
        assert!(
            done.location().starts_with("/connections/"),
            "{}",
            done.location()
        );
        done.location().to_owned()
    }

    /// Invites someone through the UI; returns the invitation path.
    pub async fn invite(&self, email: &str, role: &str) -> String {
        let page = self
            .post_form(
                "/settings/members/invite",
                &[("email", email), ("role", role)],
            )
            .await;
        assert_eq!(page.status, 200, "{}", page.body);
        let link = page.code_by_id("invite-link");
        url::Url::parse(&link).unwrap().path().to_owned()
    }
}

/// Completes first-run setup through the setup link at `path`.
pub async fn complete_setup(client: &Client, path: &str, email: &str, workspace: &str) -> Client {
    client.get(path).await;
    let res = client
        .post_form(
            path,
            &[
                ("name", "Owner One"),
                ("email", email),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
                ("workspace", workspace),
            ],
        )
        .await;
    assert_eq!(res.status, 303, "setup failed: {}", res.body);
    client.clone()
}

/// The provider URL a "continue to the provider" page sends the browser to.
pub fn continue_url(page: &Page) -> String {
    page.attr("#continue-link", "href")
        .unwrap_or_else(|| panic!("no continue link: {}", page.body))
}

/// Decodes the HTML character references askama writes (`&#38;`, `&amp;`, …).
pub fn unescape(text: &str) -> String {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('&') {
        out.push_str(&rest[..i]);
        let Some(j) = rest[i..].find(';') else { break };
        let entity = &rest[i + 1..i + j];
        let decoded = match entity {
            "amp" => Some('&'),
            "quot" => Some('"'),
            "lt" => Some('<'),
            "gt" => Some('>'),
            e if e.starts_with("#x") => u32::from_str_radix(&e[2..], 16)
                .ok()
                .and_then(char::from_u32),
            e if e.starts_with('#') => e[1..].parse().ok().and_then(char::from_u32),
            _ => None,
        };
        match decoded {
            Some(c) => out.push(c),
            None => out.push_str(&rest[i..=i + j]),
        }
        rest = &rest[i + j + 1..];
    }
    out.push_str(rest);
    out
}

/// A JSON API call with a bearer token and a JSON body.
pub async fn api_send(
    client: &Client,
    method: reqwest::Method,
    token: &str,
    path: &str,
    body: serde_json::Value,
) -> (u16, serde_json::Value) {
    let res = client
        .http
        .request(method, format!("{}{path}", client.base))
        .bearer_auth(token)
        .json(&body)
        .send()
        .await
        .unwrap();
    let status = res.status().as_u16();
    (status, res.json().await.unwrap_or(serde_json::Value::Null))
}

/// Accepts an invitation as a new user named `name`, signed in as `client`.
pub async fn accept_invitation(client: &Client, link: &str, name: &str) {
    let page = client
        .post_form(
            link,
            &[
                ("name", name),
                ("password", PASSWORD),
                ("password_confirm", PASSWORD),
            ],
        )
        .await;
    assert_eq!(page.status, 303, "{}", page.body);
}
