//! Contract suites: each provider of the catalogue against a local fake of its vendor's
//! API. A fake serves the vendor's documented shapes (token response, pages, write
//! answers, rate limits, errors) and refuses what the real API would refuse (wrong
//! encoding, envelope, header or paging parameter), so a passing suite says Sluice talks
//! to the vendor as the vendor expects. Each fake names the documents its shapes come
//! from. Sluice reaches the fakes through `SLUICE_PROVIDER_ORIGINS`.

mod asana;
mod generic;
mod github;
mod gitlab;
mod google_sheets;
mod hubspot;
mod jira;
mod pipedrive;
mod quickbooks;
mod salesforce;
mod shopify;
mod slack;
mod stripe;
mod xero;
mod zendesk;

use crate::common::{Client, TestApp, continue_url};
use std::sync::{Arc, Mutex};

pub use crate::common::fake::{Answer, Fake, Request};

/// The codes a fake authorization server issued: code → (PKCE challenge, redirect URI).
pub type Codes = std::collections::HashMap<String, (String, String)>;

/// A vendor's consent screen that approves at once: the client and the PKCE S256
/// parameters must be there; a new code (`code` with `{n}` numbered) is remembered
/// with its challenge and redirect, and the browser is sent back with it and the state.
pub fn approve(codes: &mut Codes, r: &Request, client_id: &str, code: &str) -> Answer {
    let (Some(id), Some(redirect), Some(state), Some(challenge), Some("S256")) = (
        r.param("client_id"),
        r.param("redirect_uri"),
        r.param("state"),
        r.param("code_challenge"),
        r.param("code_challenge_method"),
    ) else {
        return Answer::json(400, serde_json::json!({"error": "invalid_request"}));
    };
    if id != client_id {
        return Answer::json(400, serde_json::json!({"error": "invalid_client"}));
    }
    let code = code.replace("{n}", &codes.len().to_string());
    codes.insert(code.clone(), (challenge.to_owned(), redirect.to_owned()));
    let mut back = url::Url::parse(redirect).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Answer::redirect(back.as_str())
}

/// [`approve`] for a vendor that takes no PKCE: the authorization must not carry it.
pub fn approve_without_pkce(codes: &mut Codes, r: &Request, client_id: &str, code: &str) -> Answer {
    let (Some(id), Some(redirect), Some(state), None) = (
        r.param("client_id"),
        r.param("redirect_uri"),
        r.param("state"),
        r.param("code_challenge"),
    ) else {
        return Answer::json(400, serde_json::json!({"error": "invalid_request"}));
    };
    if id != client_id {
        return Answer::json(400, serde_json::json!({"error": "invalid_client"}));
    }
    let code = code.replace("{n}", &codes.len().to_string());
    codes.insert(code.clone(), (String::new(), redirect.to_owned()));
    let mut back = url::Url::parse(redirect).unwrap();
    back.query_pairs_mut()
        .append_pair("code", &code)
        .append_pair("state", state);
    Answer::redirect(back.as_str())
}

/// Whether a token request proves it started the authorization (PKCE S256).
pub fn verifies(verifier: Option<&str>, challenge: &str) -> bool {
    use base64::Engine;
    use sha2::Digest;
    verifier.is_some_and(|v| {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sha2::Sha256::digest(v.as_bytes()))
            == challenge
    })
}

/// How a client proves itself at a token endpoint.
#[derive(Clone, Copy)]
pub enum ClientAuth {
    /// `client_id` and `client_secret` in the form.
    Post,
    /// HTTP basic authentication.
    Basic,
}

/// Checks a token request that redeems an authorization code: the client authenticates
/// as registered, and the code was issued for the same redirect and PKCE challenge (a
/// code is good once). The error is RFC 6749's.
pub fn redeem(
    codes: &mut Codes,
    r: &Request,
    client: (&str, &str),
    auth: ClientAuth,
) -> Result<(), &'static str> {
    use base64::Engine;
    let form = r.form();
    let field = |k: &str| form.get(k).map(String::as_str);
    let authenticated = match auth {
        ClientAuth::Post => {
            field("client_id") == Some(client.0) && field("client_secret") == Some(client.1)
        }
        ClientAuth::Basic => {
            r.header("authorization")
                == Some(&format!(
                    "Basic {}",
                    base64::engine::general_purpose::STANDARD
                        .encode(format!("{}:{}", client.0, client.1))
                ))
        }
    };
    if !authenticated {
        return Err("invalid_client");
    }
    if field("grant_type") != Some("authorization_code") {
        return Err("unsupported_grant_type");
    }
    let issued = field("code").and_then(|c| codes.remove(c));
    match issued {
        Some((challenge, redirect))
            if field("redirect_uri") == Some(redirect.as_str())
                && if challenge.is_empty() {
                    field("code_verifier").is_none()
                } else {
                    verifies(field("code_verifier"), &challenge)
                } =>
        {
            Ok(())
        }
        _ => Err("invalid_grant"),
    }
}

/// A fake's clock: `seconds` after 2026-01-01T00:00:00Z.
pub fn at(seconds: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp(1_767_225_600 + seconds, 0).unwrap()
}

/// Whether a request carries one of `tokens` as `Authorization: Bearer`.
pub fn bearer(r: &Request, tokens: &[String]) -> bool {
    r.header("authorization")
        .and_then(|h| h.strip_prefix("Bearer "))
        .is_some_and(|t| tokens.iter().any(|known| known == t))
}

/// A vendor's state behind its fake: it answers each request.
pub trait Vendor: Default + Send + 'static {
    fn handle(&mut self, request: &Request) -> Answer;
}

/// A vendor's OAuth registration and the origins Sluice calls it at.
pub struct OAuthVendor<'a> {
    pub provider: &'a str,
    pub origins: &'a [&'a str],
    pub client_id: &'a str,
    pub client_secret: &'a str,
}

/// A fake vendor, a Sluice whose calls to its origins reach it, and an admin whose
/// workspace is connected to it through its OAuth.
pub struct Connected<V> {
    pub vendor: Arc<Mutex<V>>,
    pub fake: Fake,
    pub app: TestApp,
    pub admin: Client,
    /// The connection's id.
    pub connection: String,
}

/// Settings for a suite that writes the sandbox CRM's contacts to the vendor.
pub const SEEDED: &[(&str, &str)] = &[("SLUICE_SANDBOX_SEED_CONTACTS", "12")];

impl<V> Connected<V> {
    /// Connects a built-in sandbox system; returns its connection id.
    pub async fn sandbox(&self, provider: &str) -> String {
        let page = self.admin.connect_sandbox(provider).await;
        page.trim_start_matches("/connections/").to_owned()
    }

    /// Connects the sandbox CRM and waits for its twelve contacts ([`SEEDED`]); returns
    /// them as a flow source.
    pub async fn seeded_contacts(&self) -> String {
        let crm = self.sandbox("sandbox_crm").await;
        self.app.wait_for_seed(12).await;
        format!("{crm}:contacts")
    }

    /// An incremental flow from this vendor's `object` into the sandbox CRM's companies,
    /// each record keyed by `record_key`; returns its path.
    pub async fn read_into_companies(
        &self,
        object: &str,
        record_key: &str,
        mapping: &[(&str, &str)],
    ) -> String {
        let crm = self.sandbox("sandbox_crm").await;
        let (source, destination) = (self.object(object), format!("{crm}:companies"));
        let name = format!("{object} to companies");
        let mut fields = flow_fields(
            &[
                ("name", &name),
                ("source", &source),
                ("destination", &destination),
                ("write_mode", "create"),
                ("key_field", ""),
                ("record_key", record_key),
            ],
            mapping,
        );
        crate::common::flows::set(&mut fields, "incremental", "on");
        crate::common::flows::create_flow(&self.admin, &fields).await
    }

    /// A flow creating (then updating) this vendor's `object` from the seeded sandbox
    /// contacts; returns its path.
    pub async fn contacts_into(&self, object: &str, mapping: &[(&str, &str)]) -> String {
        let source = self.seeded_contacts().await;
        let destination = self.object(object);
        let name = format!("Contacts to {object}");
        crate::common::flows::create_flow(
            &self.admin,
            &flow_fields(
                &[
                    ("name", &name),
                    ("source", &source),
                    ("destination", &destination),
                    ("write_mode", "create"),
                    ("key_field", ""),
                    ("record_key", "record.id"),
                ],
                mapping,
            ),
        )
        .await
    }

    /// This vendor's `object`, as a flow source or destination.
    pub fn object(&self, object: &str) -> String {
        format!("{}:{object}", self.connection)
    }
}

/// A vendor that takes an API key, and where Sluice calls it.
pub struct KeyVendor<'a> {
    pub provider: &'a str,
    pub origins: &'a [&'a str],
    pub key: &'a str,
}

/// The fake for `V` and a Sluice whose calls to `origins` reach it, with an admin.
async fn serve<V: Vendor>(
    origins: &[&str],
    extra: &[(&str, &str)],
) -> (Arc<Mutex<V>>, Fake, TestApp, Client) {
    let vendor = Arc::new(Mutex::new(V::default()));
    let shared = vendor.clone();
    let fake = Fake::start(move |r| shared.lock().unwrap().handle(r)).await;
    let app = sluice_for(&fake, origins, extra).await;
    let admin = app.owner("ada@example.com", "Acme").await;
    (vendor, fake, app, admin)
}

impl OAuthVendor<'_> {
    pub async fn connect<V: Vendor>(&self, extra: &[(&str, &str)]) -> Connected<V> {
        self.connect_with(extra, &[], &[]).await
    }

    /// [`OAuthVendor::connect`] with values for the OAuth app's form (e.g. a
    /// self-managed vendor's URL) and the connect form (e.g. a subdomain).
    pub async fn connect_with<V: Vendor>(
        &self,
        extra: &[(&str, &str)],
        app_form: &[(&str, &str)],
        connect_form: &[(&str, &str)],
    ) -> Connected<V> {
        let (vendor, fake, app, admin) = serve::<V>(self.origins, extra).await;
        let mut app_fields = vec![
            ("client_id", self.client_id),
            ("client_secret", self.client_secret),
        ];
        app_fields.extend_from_slice(app_form);
        let mut fields = vec![("name", "Acme")];
        fields.extend_from_slice(connect_form);
        let connection = connect_oauth(&admin, self.provider, &app_fields, &fields).await;
        Connected {
            vendor,
            fake,
            app,
            admin,
            connection,
        }
    }
}

impl KeyVendor<'_> {
    pub async fn connect<V: Vendor>(&self, extra: &[(&str, &str)]) -> Connected<V> {
        self.connect_with(extra, &[]).await
    }

    /// [`KeyVendor::connect`] with more of the connect form (a described API).
    pub async fn connect_with<V: Vendor>(
        &self,
        extra: &[(&str, &str)],
        form: &[(&str, &str)],
    ) -> Connected<V> {
        let (vendor, fake, app, admin) = serve::<V>(self.origins, extra).await;
        let mut fields = vec![("name", "Acme"), ("api_key", self.key)];
        fields.extend_from_slice(form);
        let created = admin
            .post_form(&format!("/connections/new/{}", self.provider), &fields)
            .await;
        assert_eq!(created.status, 303, "{}", created.body);
        let connection = created
            .location()
            .trim_start_matches("/connections/")
            .to_owned();
        Connected {
            vendor,
            fake,
            app,
            admin,
            connection,
        }
    }
}

/// The flow editor's fields: manual, batches of 100, `pairs` over that, then the
/// mapping's targets and expressions.
pub fn flow_fields(pairs: &[(&str, &str)], mapping: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut fields: Vec<(String, String)> = [
        ("batch_size", "100"),
        ("trigger", "manual"),
        ("auto_pause_after", "5"),
        ("action", "save"),
    ]
    .iter()
    .chain(pairs)
    .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
    .collect();
    for (i, (target, expression)) in mapping.iter().enumerate() {
        fields.push((format!("mapping.{i}.target"), (*target).to_owned()));
        fields.push((format!("mapping.{i}.expression"), (*expression).to_owned()));
    }
    fields
}

/// Runs a flow to its end, which must be `status` (the run log shows otherwise);
/// returns its final progress and its log page.
pub async fn run_ending(admin: &Client, flow: &str, status: &str) -> (crate::common::Page, String) {
    let (run, page) = crate::common::flows::run_to_end(admin, flow).await;
    let log = admin.get(&run).await.body;
    assert_eq!(crate::common::flows::status_of(&page), status, "{log}");
    (page, log)
}

/// A Sluice whose calls to the vendor origins go to `fake`.
pub async fn sluice_for(fake: &Fake, vendor_origins: &[&str], extra: &[(&str, &str)]) -> TestApp {
    let routes: Vec<String> = vendor_origins
        .iter()
        .map(|origin| format!("{origin}={}", fake.base))
        .collect();
    let routes = routes.join(",");
    let mut settings = vec![
        ("SLUICE_PROVIDER_ORIGINS", routes.as_str()),
        ("SLUICE_OUTBOUND_ALLOW", "127.0.0.1/32"),
    ];
    settings.extend_from_slice(extra);
    TestApp::spawn_with(&settings).await
}

/// Registers the tenant's OAuth app for `provider`, connects through the vendor's
/// consent (the fake approves at once and redirects back), and returns the connection
/// id.
pub async fn connect_oauth(
    admin: &Client,
    provider: &str,
    app_form: &[(&str, &str)],
    fields: &[(&str, &str)],
) -> String {
    let saved = admin
        .post_form(&format!("/settings/oauth-apps/{provider}"), app_form)
        .await;
    assert_eq!(saved.status, 303, "{}", saved.body);
    let start = admin
        .post_form(&format!("/connections/new/{provider}"), fields)
        .await;
    assert_eq!(start.status, 200, "{}", start.body);
    let consent = continue_url(&start);
    let http = reqwest::Client::builder()
        .redirect(reqwest::redirect::Policy::none())
        .build()
        .unwrap();
    let answer = http.get(&consent).send().await.unwrap();
    assert_eq!(answer.status().as_u16(), 302, "the vendor's consent");
    let back = url::Url::parse(answer.headers()["location"].to_str().unwrap()).unwrap();
    let done = admin
        .get(&format!(
            "{}?{}",
            back.path(),
            back.query().unwrap_or_default()
        ))
        .await;
    assert_eq!(done.status, 303, "{}", done.body);
    let page = admin.get(done.location()).await;
    assert!(page.body.contains("connected"), "{}", page.body);
    done.location()
        .trim_start_matches("/connections/")
        .to_owned()
}
