//! The `sluice` binary: one binary, several roles.

use clap::{Parser, Subcommand};
use sluice::config::Settings;
use sluice::services::accounts;
use sluice::startup::{self, Roles};
use std::io::Read;
use std::process::ExitCode;

/// Sluice: self-hosted, multi-tenant integration platform.
#[derive(Parser)]
#[command(
    version,
    about,
    long_about = "Sluice connects SaaS systems and keeps data flowing between them.\n\nWith no subcommand, `sluice` runs `serve`: the web UI, the scheduler and in-process workers on the embedded SQLite database under ./data. Configure with SLUICE_* environment variables (see the README)."
)]
struct Cli {
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Run the web server, scheduler and in-process workers (the default).
    Serve,
    /// Run job workers and the scheduler only (scale-out; needs PostgreSQL).
    Worker,
    /// Apply database migrations and exit.
    Migrate,
    /// Administrative tasks.
    #[command(subcommand)]
    Admin(Admin),
    /// Flows as files, through a server's API: list, export, import.
    Flows {
        /// The Sluice server.
        #[arg(long, env = "SLUICE_URL", default_value = "http://127.0.0.1:8080")]
        url: String,
        /// An API token of the workspace (Settings → API tokens); admin role to import.
        #[arg(
            long,
            env = "SLUICE_API_TOKEN",
            hide_env_values = true,
            default_value = ""
        )]
        token: String,
        #[command(subcommand)]
        command: Flows,
    },
}

#[derive(Subcommand)]
enum Flows {
    /// List the workspace's flows.
    List,
    /// Write a flow's document (JSON, format 1) to standard output or a file.
    Export {
        /// The flow's id or exact name.
        flow: String,
        /// Write to this file instead of standard output.
        #[arg(long, short)]
        output: Option<std::path::PathBuf>,
    },
    /// Import a flow document (`-` reads standard input).
    Import {
        /// The document file.
        file: std::path::PathBuf,
        /// When a flow with the document's name exists, save the document as its next
        /// version instead of refusing.
        #[arg(long)]
        replace: bool,
    },
}

#[derive(Subcommand)]
enum Admin {
    /// Create a user. The password is read from standard input.
    CreateUser {
        /// E-mail address (the sign-in name).
        #[arg(long)]
        email: String,
        /// Display name.
        #[arg(long)]
        name: String,
    },
    /// Create a workspace (tenant) owned by an existing user.
    CreateTenant {
        /// Workspace name.
        #[arg(long)]
        name: String,
        /// E-mail of the owner.
        #[arg(long)]
        owner: String,
    },
    /// Grant the platform support role (read-only, audited cross-tenant access).
    GrantSupport {
        /// E-mail of the user.
        #[arg(long)]
        email: String,
    },
    /// Revoke the platform support role.
    RevokeSupport {
        /// E-mail of the user.
        #[arg(long)]
        email: String,
    },
    /// Seed a large run history for benchmarks and demos: tenants `seed-0…` owned by
    /// `owner0@seed.example…` (password from standard input), each with connections,
    /// 3 flows and runs spread over 30 days, with their rollups.
    SeedHistory {
        /// Tenants to create.
        #[arg(long, default_value_t = 1000)]
        tenants: u32,
        /// Runs in total.
        #[arg(long, default_value_t = 1_000_000)]
        runs: u64,
    },
    /// Push a diagnostic job and report when a worker ran it.
    ProbeQueue,
    /// Print the built-in sandbox's client secret, which its operator endpoints (e.g.
    /// `POST /sandbox/outages`) take as a bearer token. Derived from the master key.
    SandboxSecret,
    /// Re-encrypt every stored secret under the current master key (safe while running).
    ///
    /// Production: set the new key in SLUICE_MASTER_KEY and the old one in
    /// SLUICE_PREVIOUS_MASTER_KEYS, restart the processes one by one, run this, then drop
    /// the old key. Embedded default: `--new` generates the new key into the data directory.
    RotateKey {
        /// Generate a new key in the data directory first (embedded default only).
        #[arg(long)]
        new: bool,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let settings = match Settings::from_env() {
        Ok(s) => s,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            return ExitCode::from(2);
        }
    };
    // `flows export` writes the document to standard output, where logs would go.
    if !matches!(cli.command, Some(Command::Flows { .. })) {
        sluice::telemetry::init(&settings);
    }
    let mut runtime = tokio::runtime::Builder::new_multi_thread();
    if let Some(threads) = job_threads(cli.command.as_ref()) {
        runtime.worker_threads(threads);
    }
    let runtime = match runtime.enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("sluice: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run(cli.command.unwrap_or(Command::Serve), settings)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sluice: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Threads of the runtime that runs jobs, when not tokio's default (one per core, or
/// `TOKIO_WORKER_THREADS`). `serve` gives it half the cores: its HTTP server runs on
/// threads of its own, one per core, and the two pools on every core woke each other
/// across cores for each small run (a 1-record run's CPU went down 9 % with one thread
/// instead of two on two cores; the runtime's idle threads were looking for work).
/// `sluice worker` runs jobs only, on every core.
fn job_threads(command: Option<&Command>) -> Option<usize> {
    let serve = matches!(command, None | Some(Command::Serve));
    if !serve || std::env::var_os("TOKIO_WORKER_THREADS").is_some() {
        return None;
    }
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    Some((cores / 2).max(1))
}

async fn run(command: Command, settings: Settings) -> anyhow::Result<()> {
    let _ = rustls::crypto::ring::default_provider().install_default();
    match command {
        Command::Serve => {
            startup::start(settings, Roles::ALL)
                .await?
                .run_until_signal()
                .await
        }
        Command::Worker => {
            if settings.is_sqlite() {
                tracing::warn!(
                    "`sluice worker` shares the SQLite file with `sluice serve` only on this machine; use PostgreSQL to scale out"
                );
            }
            startup::start(settings, Roles::WORKER)
                .await?
                .run_until_signal()
                .await
        }
        Command::Migrate => {
            let mut settings = settings;
            settings.resolve_master_key()?;
            let store = sluice::store::Store::connect(&settings).await?;
            store.migrate().await?;
            sluice::queue::migrate(&store).await?;
            println!("migrations applied");
        }
        Command::Admin(admin) => run_admin(admin, settings).await?,
        Command::Flows {
            url,
            token,
            command,
        } => run_flows(&sluice::cli::Remote::new(&url, &token)?, command).await?,
    }
    Ok(())
}

async fn run_flows(remote: &sluice::cli::Remote, command: Flows) -> anyhow::Result<()> {
    match command {
        Flows::List => {
            for f in remote.flows().await? {
                println!("{}\t{}\tv{}\t{}", f.id, f.status, f.version, f.name);
            }
        }
        Flows::Export { flow, output } => {
            let text = remote.export(&flow).await?.to_pretty_json();
            match output {
                Some(path) => std::fs::write(&path, text)?,
                None => print!("{text}"),
            }
        }
        Flows::Import { file, replace } => {
            let text = if file.as_os_str() == "-" {
                let mut text = String::new();
                std::io::stdin().read_to_string(&mut text)?;
                text
            } else {
                std::fs::read_to_string(&file)
                    .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", file.display()))?
            };
            let document =
                sluice::domain::FlowDocument::parse(&text).map_err(anyhow::Error::msg)?;
            let (id, version, created) = remote.import(&document, replace).await?;
            if created {
                println!("imported {} as a new flow: {id}", document.name);
            } else {
                println!(
                    "imported {} as version {version} of flow {id}",
                    document.name
                );
            }
        }
    }
    Ok(())
}

async fn run_admin(admin: Admin, mut settings: Settings) -> anyhow::Result<()> {
    // Derived from the master key alone: no database, so it works beside a running server.
    if let Admin::SandboxSecret = admin {
        let key = settings.resolve_master_key()?;
        println!(
            "{}",
            sluice::connectors::session::sandbox_client_secret(&key)
        );
        return Ok(());
    }
    if let Admin::RotateKey { new: true } = admin {
        settings.resolve_master_key()?;
        let path = sluice::config::generate_new_key_file(&settings)?;
        println!(
            "generated a new master key in {}; the old key stays there as a previous key",
            path.display()
        );
        settings.master_key = None;
        settings.previous_master_keys.clear();
    }
    let app = startup::start(
        settings,
        Roles {
            web: false,
            workers: matches!(admin, Admin::ProbeQueue),
            scheduler: false,
        },
    )
    .await?;
    let result = admin_command(admin, &app.app).await;
    app.stop().await;
    result
}

async fn admin_command(admin: Admin, app: &sluice::app::App) -> anyhow::Result<()> {
    use sluice::domain::Email;
    let email_of = |raw: &str| Email::parse(raw).map_err(anyhow::Error::msg);
    match admin {
        Admin::CreateUser { email, name } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let password = password.trim_end_matches(['\n', '\r']);
            let user = accounts::create_user(app, &email, &name, password).await?;
            println!("created user {} ({})", user.email, user.id);
        }
        Admin::CreateTenant { name, owner } => {
            let owner = app
                .store
                .user_by_email(&email_of(&owner)?)
                .await?
                .ok_or_else(|| anyhow::anyhow!("no user with e-mail {owner}"))?;
            let id = sluice::services::tenants::create(app, &owner, &name).await?;
            println!("created workspace {name} ({id}) owned by {}", owner.email);
        }
        Admin::GrantSupport { email } => {
            if !app
                .store
                .set_platform_role(&email_of(&email)?, Some("support"))
                .await?
            {
                anyhow::bail!("no user with e-mail {email}");
            }
            println!("granted the support role to {email}");
        }
        Admin::RevokeSupport { email } => {
            if !app
                .store
                .set_platform_role(&email_of(&email)?, None)
                .await?
            {
                anyhow::bail!("no user with e-mail {email}");
            }
            println!("revoked the support role from {email}");
        }
        Admin::RotateKey { .. } => {
            let report = sluice::services::keys::rotate(app).await?;
            println!(
                "key {}: {} secrets re-encrypted, {} already current, {} changed meanwhile",
                app.keyring.current_id(),
                report.rotated,
                report.current,
                report.skipped
            );
        }
        Admin::SeedHistory { tenants, runs } => {
            let mut password = String::new();
            std::io::stdin().read_to_string(&mut password)?;
            let started = std::time::Instant::now();
            let report = sluice::services::seed::history(
                app,
                tenants,
                runs,
                password.trim_end_matches(['\n', '\r']),
            )
            .await?;
            println!(
                "seeded {} tenants, {} runs, {} rollup rows in {:.0} s",
                report.tenants,
                report.runs,
                report.rollups,
                started.elapsed().as_secs_f64()
            );
        }
        // Answered before start-up; the same from the running app.
        Admin::SandboxSecret => println!(
            "{}",
            sluice::connectors::session::sandbox_client_secret(&app.master_key)
        ),
        Admin::ProbeQueue => {
            let label = uuid::Uuid::now_v7().to_string();
            app.queue
                .push(sluice::queue::Probe {
                    mode: sluice::queue::ProbeMode::Succeed,
                    attempts: 1,
                    label: label.clone(),
                    sent_at_us: None,
                })
                .await?;
            println!("probe {label} enqueued; a worker logs 'probe job ran' when it runs it");
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        }
    }
    Ok(())
}
