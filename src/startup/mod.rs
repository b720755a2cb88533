//! Builds and runs the application: database, migrations, queue, scheduler, workers and
//! the HTTP server, with graceful shutdown on SIGTERM/Ctrl-C.

use crate::app::App;
use crate::config::Settings;
use crate::connectors::http::{AllowedNet, Outbound, OutboundPolicy};
use crate::crypto::Keyring;
use crate::jobs;
use crate::queue::JobQueue;
use crate::services::accounts;
use crate::store::Store;
use actix_web::dev::ServerHandle;
use std::net::TcpListener;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::watch;

#[cfg(feature = "sandbox")]
mod sandbox;

/// Which parts run in this process.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Roles {
    /// Serve HTTP.
    pub web: bool,
    /// Run job workers.
    pub workers: bool,
    /// Run the scheduler loop.
    pub scheduler: bool,
}

impl Roles {
    /// `sluice serve`: everything in one process (the embedded default).
    pub const ALL: Roles = Roles {
        web: true,
        workers: true,
        scheduler: true,
    };
    /// `sluice worker`: workers and the (lease-guarded) scheduler, no HTTP.
    pub const WORKER: Roles = Roles {
        web: false,
        workers: true,
        scheduler: true,
    };
}

/// A running Sluice process.
pub struct Running {
    /// The bound address (port 0 resolves here).
    pub addr: std::net::SocketAddr,
    /// The separate metrics listener's address, when `SLUICE_METRICS_BIND` is set.
    pub metrics_addr: Option<std::net::SocketAddr>,
    /// Shared application state.
    pub app: App,
    /// The built-in sandbox, when this process serves it.
    #[cfg(feature = "sandbox")]
    pub sandbox: Option<Arc<sluice_sandbox::Sandbox>>,
    shutdown: watch::Sender<bool>,
    servers: Vec<ServerHandle>,
    tasks: Vec<tokio::task::JoinHandle<()>>,
}

impl Running {
    /// Stops taking work, drains in-flight jobs and requests, and waits for the end.
    pub async fn stop(mut self) {
        let _ = self.shutdown.send(true);
        for server in self.servers.drain(..) {
            server.stop(true).await;
        }
        for task in self.tasks.drain(..) {
            let _ = task.await;
        }
    }

    /// Waits for SIGTERM or Ctrl-C, then stops gracefully.
    pub async fn run_until_signal(self) {
        wait_for_signal().await;
        tracing::info!(
            "shutting down: no new work is taken; runs stop at their next page boundary and are handed back to the queue"
        );
        self.stop().await;
        tracing::info!("Sluice stopped");
    }
}

/// Connects, migrates, and starts the requested roles.
pub async fn start(mut settings: Settings, roles: Roles) -> anyhow::Result<Running> {
    let started = Instant::now();
    let listener = if roles.web {
        let listener = TcpListener::bind(settings.bind)
            .map_err(|e| anyhow::anyhow!("cannot listen on {}: {e}", settings.bind))?;
        // With port 0 (tests, ad-hoc runs) links must name the port actually bound.
        if settings.public_url.port() == Some(0) {
            let _ = settings
                .public_url
                .set_port(Some(listener.local_addr()?.port()));
        }
        Some(listener)
    } else {
        None
    };
    // Bound up front with the main listener, so a taken port fails start-up at once.
    let metrics_listener = match settings.metrics_bind {
        Some(bind) => Some(
            TcpListener::bind(bind)
                .map_err(|e| anyhow::anyhow!("cannot listen on {bind} (metrics): {e}"))?,
        ),
        None => None,
    };
    #[cfg(not(feature = "sandbox"))]
    if settings.sandbox.enabled {
        tracing::warn!(
            "this build has no built-in sandbox (cargo feature `sandbox`); SLUICE_SANDBOX is ignored"
        );
        settings.sandbox.enabled = false;
    }
    let master_key = settings.resolve_master_key()?;
    let store = Store::connect(&settings).await?;
    store.migrate().await?;
    crate::queue::migrate(&store).await?;
    let settings = Arc::new(settings);
    let queue = JobQueue::new(&store);
    if let Err(problem) = crate::connectors::catalogue::catalogue() {
        anyhow::bail!("the provider catalogue is invalid: {problem}");
    }
    let mut policy = OutboundPolicy::new(
        settings
            .outbound_allow
            .iter()
            .map(|net| AllowedNet::from(*net))
            .collect(),
    )
    .with_timeout(settings.outbound_timeout);
    if settings.sandbox.enabled {
        // The sandbox is called over HTTP like any provider, at this server's own
        // address: that address and port are allowed, nothing else of this host.
        if let Err(e) = policy.allow_own(&settings.public_url).await {
            tracing::warn!(error = %e, "cannot resolve SLUICE_PUBLIC_URL: calls to the sandbox will be refused unless SLUICE_OUTBOUND_ALLOW lists its address");
        }
    }
    for route in &settings.provider_origins {
        tracing::warn!(
            vendor = %route.from.ascii_serialization(),
            served_by = %route.to.origin().ascii_serialization(),
            "SLUICE_PROVIDER_ORIGINS: calls to this vendor go to another server"
        );
    }
    let outbound = Outbound::new(policy)?.with_routes(settings.provider_origins.clone());
    let keyring = Arc::new(Keyring::new(&master_key, &settings.previous_master_keys));
    let instance = format!(
        "{}-{}",
        std::process::id(),
        &uuid::Uuid::new_v4().simple().to_string()[..8]
    );
    let (shutdown, shutdown_rx) = watch::channel(false);
    let mut tasks = Vec::new();
    let app = App {
        store: store.clone(),
        settings: settings.clone(),
        queue: queue.clone(),
        master_key,
        keyring,
        outbound,
        process: instance.clone(),
        stopping: shutdown_rx.clone(),
        workers: Default::default(),
        webhooks: Default::default(),
    };
    #[cfg_attr(not(feature = "sandbox"), allow(unused_mut))]
    let mut mounts = Vec::new();
    #[cfg(feature = "sandbox")]
    let mut embedded_sandbox = None;
    // The sandbox is served by the web role, from a database of its own.
    #[cfg(feature = "sandbox")]
    if roles.web && settings.sandbox.enabled {
        let embedded = sandbox::start(&app, &store, shutdown_rx.clone()).await?;
        mounts.push(embedded.mount);
        tasks.push(embedded.upkeep);
        embedded_sandbox = Some(embedded.sandbox);
    }
    let env = app.clone();
    if roles.workers {
        tasks.push(tokio::spawn(jobs::runner::run(
            env.clone(),
            instance.clone(),
            shutdown_rx.clone(),
        )));
    }
    if roles.scheduler {
        tasks.push(tokio::spawn(jobs::scheduler::run(
            env,
            instance.clone(),
            shutdown_rx.clone(),
        )));
    }
    let mut addr = settings.bind;
    let mut servers = Vec::new();
    let mut metrics_addr = None;
    if let Some(listener) = metrics_listener {
        metrics_addr = Some(listener.local_addr()?);
        let http = crate::web::metrics_server(app.clone(), listener)?;
        servers.push(http.handle());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "metrics listener failed");
            }
        }));
    }
    if let Some(listener) = listener {
        addr = listener.local_addr()?;
        let http = crate::web::server(app.clone(), listener, mounts)?;
        servers.push(http.handle());
        tasks.push(tokio::spawn(async move {
            if let Err(e) = http.await {
                tracing::error!(error = %e, "HTTP server failed");
            }
        }));
        if let Some(link) = accounts::setup_link(&app).await? {
            // Printed, not logged: the link is a one-time secret for whoever runs the server.
            println!(
                "\n  Welcome to Sluice. Finish setting up in your browser:\n\n    {link}\n\n  (single use, valid for 24 hours; restart Sluice for a new one)\n"
            );
        }
    }
    let metrics = crate::telemetry::prometheus();
    tasks.push(tokio::spawn({
        let mut stop = shutdown_rx.clone();
        async move {
            let mut tick = tokio::time::interval(Duration::from_secs(10));
            loop {
                tokio::select! {
                    _ = tick.tick() => metrics.run_upkeep(),
                    _ = jobs::stopped(&mut stop) => break,
                }
            }
        }
    }));
    tracing::info!(
        %addr,
        web = roles.web,
        workers = roles.workers,
        metrics = ?metrics_addr,
        ready_ms = started.elapsed().as_millis() as u64,
        database = %crate::store::redact_url(&settings.database_url),
        "Sluice is ready"
    );
    Ok(Running {
        addr,
        metrics_addr,
        app,
        #[cfg(feature = "sandbox")]
        sandbox: embedded_sandbox,
        shutdown,
        servers,
        tasks,
    })
}

async fn wait_for_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}
