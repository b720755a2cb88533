//! The built-in sandbox SaaS: an OAuth 2.0 authorization server with a consent page and a
//! CRM and an ERP API, mounted under `/sandbox` by Sluice's start-up in the embedded default
//! (off with `SLUICE_SANDBOX=off`, or left out of a build without the `sandbox` feature). It gives newcomers and tests real systems to connect to,
//! offline, and behaves like the real thing where it matters: PKCE, short-lived access
//! tokens, rotating single-use refresh tokens (reuse revokes the family), cursor
//! pagination, `updated_since`, batch writes with per-record results, 422 validation
//! errors, 429 with `Retry-After`, and configurable fault injection.
//!
//! It is a stand-in for an external system: a crate of its own with its own migrations,
//! templates and CSRF protection, sharing no code with Sluice. Sluice reaches it only over
//! HTTP, like any provider.
// Its handlers answer errors as ready HTTP responses, like the external systems it imitates;
// boxing them would only add noise off the hot path.
#![allow(clippy::result_large_err)]

mod api;
mod csrf;
pub mod db;
mod migration;
mod oauth;
pub mod seed;
mod support;

use actix_web::web;
use sea_orm::{DatabaseConnection, DbErr};
use sea_orm_migration::MigratorTrait;
use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

/// The one OAuth client registered at the sandbox: Sluice, as the embedding server
/// registers it (like an OAuth app at a vendor).
#[derive(Clone)]
pub struct Client {
    /// Client id.
    pub id: String,
    /// Client secret (also the bearer for the sandbox's admin calls, e.g. outages).
    pub secret: String,
    /// The exact redirect URIs it may use.
    pub redirect_uris: Vec<String>,
}

/// How the sandbox behaves: token lifetime, limits, and the faults it injects.
#[derive(Clone, Debug, Default)]
pub struct Settings {
    /// Lifetime of its access tokens.
    pub token_ttl: Duration,
    /// Requests per second per access token before it answers 429 (0 = unlimited).
    pub rate_limit: u32,
    /// Share of API requests that fail with 503 (0.0–1.0).
    pub error_rate: f64,
    /// Added latency per API request.
    pub latency: Duration,
    /// Further latency per write request (a destination that stalls on writes).
    pub write_latency: Duration,
    /// Batches are all or nothing: one invalid record refuses the whole batch with 422,
    /// as some vendors' batch endpoints do.
    pub all_or_none: bool,
    /// Whether `Idempotency-Key` is honoured (off: like the many vendors that ignore it).
    pub idempotency: bool,
    /// Share of writes that are applied and then answered 504, as if the answer was lost
    /// on its way back (0.0–1.0).
    pub lost_answer_rate: f64,
    /// CRM contacts seeded when the sandbox is first used (see [`Sandbox::seeded`]).
    pub seed_contacts: u32,
}

/// Creates or updates the sandbox's tables in `db`.
pub async fn migrate(db: &DatabaseConnection) -> Result<(), DbErr> {
    migration::Migrator::up(db, None).await
}

/// Shared sandbox state.
pub struct Sandbox {
    db: DatabaseConnection,
    settings: Settings,
    /// This server's public URL (no trailing slash).
    public_url: String,
    client: Client,
    rate: Mutex<HashMap<String, (u64, u32)>>,
    /// Per-request API counters, kept in memory: a database write per request would
    /// make the sandbox measure its own bookkeeping.
    hits: Mutex<HashMap<&'static str, i64>>,
    /// Simulated outages: API (`crm`, `erp`) → the status every call answers.
    outages: Mutex<HashMap<String, u16>>,
    /// Set once the seed data is in.
    seeded: tokio::sync::OnceCell<()>,
}

impl Sandbox {
    /// Sandbox state for a server reachable at `public_url`, with its one `client`.
    pub fn new(
        db: DatabaseConnection,
        settings: Settings,
        public_url: &str,
        client: Client,
    ) -> Self {
        Self {
            db,
            settings,
            public_url: public_url.trim_end_matches('/').to_owned(),
            client,
            rate: Mutex::default(),
            hits: Mutex::default(),
            outages: Mutex::default(),
            seeded: tokio::sync::OnceCell::new(),
        }
    }

    /// Prepares its database and seeds the CRM on first use, not at start: a server
    /// nobody has connected to the sandbox yet has not spent the time and memory (its
    /// database may not even be open). Every sandbox request waits for it, so nobody sees
    /// half the seed; a failed attempt is tried again by the next request.
    pub async fn seeded(&self) -> Result<(), DbErr> {
        self.seeded
            .get_or_try_init(|| async {
                migrate(&self.db).await?;
                seed::seed(&self.db, self.settings.seed_contacts).await
            })
            .await
            .map(|_| ())
    }

    /// Whether the sandbox has been used (and its database prepared) since start.
    pub fn in_use(&self) -> bool {
        self.seeded.initialized()
    }

    /// The sandbox's own database.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Forgets idempotency keys older than a day; returns how many.
    pub async fn housekeeping(&self) -> Result<u64, DbErr> {
        db::purge_idempotency(&self.db, support::now() - chrono::Duration::days(1)).await
    }

    /// Counts an API request outcome (`api.reads`, `api.writes`, …).
    fn hit(&self, name: &'static str) {
        if let Ok(mut hits) = self.hits.lock() {
            *hits.entry(name).or_default() += 1;
        }
    }

    /// The in-memory API counters.
    fn hits(&self) -> Vec<(String, i64)> {
        self.hits
            .lock()
            .map(|h| h.iter().map(|(k, v)| ((*k).to_owned(), *v)).collect())
            .unwrap_or_default()
    }

    /// The status a simulated outage of `api` answers with, if one is on.
    fn outage(&self, api: &str) -> Option<u16> {
        self.outages.lock().ok().and_then(|o| o.get(api).copied())
    }

    /// The issuer identifier (RFC 9207 `iss`).
    pub fn issuer(&self) -> String {
        format!("{}/sandbox", self.public_url)
    }
}

/// Holds each request until the seed data is in (see [`Sandbox::seeded`]).
async fn seed_first(
    req: actix_web::dev::ServiceRequest,
    next: actix_web::middleware::Next<impl actix_web::body::MessageBody>,
) -> Result<actix_web::dev::ServiceResponse<impl actix_web::body::MessageBody>, actix_web::Error> {
    if let Some(sandbox) = req.app_data::<web::Data<Sandbox>>()
        && let Err(e) = sandbox.seeded().await
    {
        tracing::warn!(error = %e, "sandbox seeding failed");
        return Err(actix_web::error::ErrorServiceUnavailable(
            "the sandbox could not seed its data; try again",
        ));
    }
    next.call(req).await
}

/// The sandbox routes, under `/sandbox`.
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/sandbox")
            .wrap(actix_web::middleware::from_fn(seed_first))
            .route("", web::get().to(oauth::landing))
            .route("/oauth/authorize", web::get().to(oauth::authorize_form))
            .route(
                "/oauth/authorize",
                web::post().to(oauth::authorize_decision),
            )
            .route("/oauth/token", web::post().to(oauth::token))
            .route("/oauth/revoke", web::post().to(oauth::revoke))
            .route("/stats", web::get().to(api::stats))
            .route("/outages", web::post().to(api::set_outage))
            .route("/{api}/{object}", web::get().to(api::list))
            .route("/{api}/{object}", web::post().to(api::create))
            .route("/{api}/{object}/batch", web::post().to(api::batch))
            .route("/{api}/{object}/{id}", web::get().to(api::show))
            .route("/{api}/{object}/{id}", web::patch().to(api::update)),
    );
}
