//! The built-in sandbox (cargo feature `sandbox`): a system of its own, with its own
//! database, migrations and routes, mounted on this server. Sluice registers its OAuth
//! client there and reaches it over HTTP like any provider.

use crate::app::App;
use crate::connectors::catalogue;
use crate::connectors::session::{SANDBOX_CLIENT_ID, callback_url, sandbox_client_secret};
use crate::jobs;
use crate::store::Store;
use crate::web::Mount;
use actix_web::web;
use sluice_sandbox::{Client, Sandbox};
use std::sync::Arc;
use std::time::Duration;
use tokio::sync::watch;

/// How often the sandbox forgets old idempotency keys.
const HOUSEKEEPING: Duration = Duration::from_secs(15 * 60);

/// The sandbox, ready to be mounted.
pub struct Embedded {
    /// Its state (tests reach its database through it).
    pub sandbox: Arc<Sandbox>,
    /// Its routes, for the HTTP server.
    pub mount: Mount,
    /// The upkeep of its database, until shutdown.
    pub upkeep: tokio::task::JoinHandle<()>,
}

/// Registers Sluice's client with the sandbox (its database is opened, migrated and
/// seeded when the sandbox is first used).
pub async fn start(
    app: &App,
    store: &Store,
    stop: watch::Receiver<bool>,
) -> anyhow::Result<Embedded> {
    let settings = &app.settings;
    let db = store.connect_sandbox(settings).await?;
    let client = Client {
        id: SANDBOX_CLIENT_ID.to_owned(),
        secret: sandbox_client_secret(&app.master_key),
        redirect_uris: catalogue::all()
            .iter()
            .filter(|p| p.sandbox)
            .map(|p| callback_url(app, p))
            .collect(),
    };
    let own = &settings.sandbox;
    let behaviour = sluice_sandbox::Settings {
        token_ttl: own.token_ttl,
        rate_limit: own.rate_limit,
        error_rate: own.error_rate,
        latency: own.latency,
        write_latency: own.write_latency,
        all_or_none: own.all_or_none,
        idempotency: own.idempotency,
        lost_answer_rate: own.lost_answer_rate,
        seed_contacts: own.seed_contacts,
    };
    let sandbox = Arc::new(Sandbox::new(
        db.db().clone(),
        behaviour,
        settings.public_url.as_str(),
        client,
    ));
    let data = web::Data::from(sandbox.clone());
    let mount: Mount = Arc::new(move |cfg: &mut web::ServiceConfig| {
        cfg.app_data(data.clone());
        sluice_sandbox::routes(cfg);
    });
    let upkeep = tokio::spawn(upkeep(sandbox.clone(), db, stop));
    Ok(Embedded {
        sandbox,
        mount,
        upkeep,
    })
}

/// Once the sandbox is in use, folds its database's write-ahead log into its file every
/// half second (see [`Store::connect_sandbox`]) and once more on the way out, and runs
/// its housekeeping now and then.
async fn upkeep(sandbox: Arc<Sandbox>, db: Store, mut stop: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // The first housekeeping comes one period after start-up, not at once: at start the
    // sandbox is not in use yet, so an immediate tick was skipped anyway, unless the task
    // happened to first run after something had opened the sandbox.
    let mut housekeeping =
        tokio::time::interval_at(tokio::time::Instant::now() + HOUSEKEEPING, HOUSEKEEPING);
    loop {
        let stopping = tokio::select! {
            _ = tick.tick() => false,
            _ = housekeeping.tick() => {
                if sandbox.in_use() && let Err(e) = sandbox.housekeeping().await {
                    tracing::warn!(error = %e, "sandbox housekeeping failed");
                }
                continue;
            }
            _ = jobs::stopped(&mut stop) => true,
        };
        // An unused sandbox has no database open, and nothing to fold.
        if !sandbox.in_use() {
            if stopping {
                break;
            }
            continue;
        }
        if let Err(e) = db.checkpoint().await {
            tracing::warn!(error = %e, "sandbox checkpoint failed");
        }
        if stopping {
            break;
        }
    }
}
