//! The built-in sandbox SaaS: an OAuth 2.0 authorization server with a consent page and a
//! CRM and an ERP API, mounted under `/sandbox` in the embedded default (off with
//! `SLUICE_SANDBOX=off`). It gives newcomers and tests real systems to connect to,
//! offline, and behaves like the real thing where it matters: PKCE, short-lived access
//! tokens, rotating single-use refresh tokens (reuse revokes the family), cursor
//! pagination, `updated_since`, batch writes with per-record results, 422 validation
//! errors, 429 with `Retry-After`, and configurable fault injection.
//!
//! It is a stand-in for an external system, so it keeps its own tables (`sandbox_*`) and
//! does not go through Sluice's tenant-scoped store.
// Its handlers answer errors as ready HTTP responses, like the external systems it imitates;
// boxing them would only add noise off the hot path.
#![allow(clippy::result_large_err)]

mod api;
pub mod db;
mod oauth;
pub mod seed;

use crate::config::{MasterKey, SandboxSettings};
use actix_web::web;
use hmac::{Hmac, Mac};
use sea_orm::DatabaseConnection;
use sha2::Sha256;
use std::collections::HashMap;
use std::sync::Mutex;

/// The sandbox's own OAuth client id, used by the sandbox providers automatically.
pub const CLIENT_ID: &str = "sluice-sandbox";

/// Shared sandbox state.
pub struct Sandbox {
    db: DatabaseConnection,
    settings: SandboxSettings,
    /// This server's public URL (no trailing slash).
    public_url: String,
    client_secret: String,
    rate: Mutex<HashMap<String, (u64, u32)>>,
    /// Per-request API counters, kept in memory: a database write per request would
    /// make the sandbox measure its own bookkeeping.
    hits: Mutex<HashMap<&'static str, i64>>,
    /// Simulated outages: API (`crm`, `erp`) → the status every call answers.
    outages: Mutex<HashMap<String, u16>>,
}

impl Sandbox {
    /// Sandbox state for a server reachable at `public_url`.
    pub fn new(
        db: DatabaseConnection,
        settings: SandboxSettings,
        public_url: &str,
        key: &MasterKey,
    ) -> Self {
        Self {
            db,
            settings,
            public_url: public_url.trim_end_matches('/').to_owned(),
            client_secret: client_secret(key),
            rate: Mutex::default(),
            hits: Mutex::default(),
            outages: Mutex::default(),
        }
    }

    /// The sandbox's own database (see [`crate::store::Store::connect_sandbox`]).
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
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

/// The sandbox client secret: derived from the master key, so it is stable across
/// restarts yet secret.
pub fn client_secret(key: &MasterKey) -> String {
    let mac = Hmac::<Sha256>::new_from_slice(key.expose())
        .map(|mut m| {
            m.update(b"sluice-sandbox-client-secret-v1");
            hex::encode(m.finalize().into_bytes())
        })
        .unwrap_or_default();
    format!("sbx_{mac}")
}

/// The sandbox routes (mounted by the route table when enabled).
pub fn routes(cfg: &mut web::ServiceConfig) {
    cfg.service(
        web::scope("/sandbox")
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
