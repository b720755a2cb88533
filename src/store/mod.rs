//! The store owns the database. Every function for tenant-owned data takes a
//! [`TenantCtx`](crate::domain::TenantCtx) and filters by its tenant itself.

pub mod entities;

mod accounts;
mod alerts;
mod api_tokens;
mod audit;
mod connections;
mod flows;
mod group_commit;
mod invitations;
mod jobs;
pub mod metrics;
mod retention;
mod runs;
mod sessions;
pub mod sql;
mod tenants;

pub use accounts::UserRecord;
pub use alerts::AlertFilter;
pub use api_tokens::{ActiveApiToken, ApiTokenState, NewApiToken};
pub use audit::{AuditEntry, AuditFilter};
pub use connections::StoredTokens;
pub use flows::{
    FlowHead, FlowToRun, NewFlow, NewWebhookEvent, WebhookAcceptance, WebhookArrivals,
    WebhookDelivery,
};
pub use group_commit::GroupCommit;
pub use invitations::InvitationWithTenant;
pub use metrics::{Bucket, Totals};
pub use runs::{
    Failure, FailureFilter, FinishedRun, LedgerEntry, PageCommit, RunEnd, RunFilter, RunLine,
    counts_of, id_floor,
};
pub use tenants::{MemberRecord, TenantMembership};

use crate::config::Settings;
use anyhow::Context;
use chrono::{DateTime, Utc};
use migration::{Migrator, MigratorTrait};
use sea_orm::sqlx::ConnectOptions as _;
use sea_orm::sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePoolOptions, SqliteSynchronous,
};
use sea_orm::{
    ConnectOptions, ConnectionTrait, Database, DatabaseConnection, DbBackend, DbErr, EntityTrait,
    Select, SqlErr, SqlxSqliteConnector,
};
use std::time::Duration;

/// Handle to the database; cheap to clone (a pool).
#[derive(Clone, Debug)]
pub struct Store {
    db: DatabaseConnection,
    /// Each workspace's enabled alert rules, read once in a while, not at every run's end.
    rules: std::sync::Arc<alerts::RuleCache>,
}

impl Store {
    /// Connects with production pool settings (SQLite: WAL, busy timeout, foreign keys).
    pub async fn connect(settings: &Settings) -> anyhow::Result<Self> {
        Self::open(&settings.database_url, settings, Checkpoints::OnCommit).await
    }

    /// The built-in sandbox's database: `SLUICE_SANDBOX_DATABASE_URL` if set. On the
    /// embedded default it is a SQLite file of its own beside ours: the sandbox stands in for an external system, and sharing our
    /// single writer would make each sync wait on its own destination's writes (the
    /// benchmark measured exactly that). The sandbox migrates it when first used. On
    /// Postgres it is our database.
    ///
    /// Its write-ahead log is folded into the file by [`Store::checkpoint`], called in the
    /// background, not by whichever write commits past the log's size: like a real SaaS's
    /// storage upkeep, that should not land on one client's request (it made one batch
    /// in fifteen several milliseconds slower, and a sync about 10 % slower).
    pub async fn connect_sandbox(&self, settings: &Settings) -> anyhow::Result<Self> {
        let Some(url) = sandbox_url(settings) else {
            return Ok(self.clone());
        };
        if !url.starts_with("sqlite:") {
            return Self::open(&url, settings, Checkpoints::InBackground).await;
        }
        // No connection until the sandbox is first used: each one costs a thread and half
        // a megabyte, and most servers never use their sandbox. (Not through sea-orm's
        // `connect`: it opens a connection at once to read SQLite's version.)
        std::fs::create_dir_all(&settings.data_dir)
            .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        let options: SqliteConnectOptions = url
            .parse()
            .with_context(|| format!("reading {}", redact_url(&url)))?;
        let pool = pool_tuning(
            SqlitePoolOptions::new()
                .max_connections(settings.db_max_connections)
                .min_connections(0)
                .acquire_timeout(Duration::from_secs(10))
                .idle_timeout(Duration::from_secs(300)),
        )
        .connect_lazy_with(
            connection_tuning(options, Checkpoints::InBackground).disable_statement_logging(),
        );
        Ok(Self {
            db: SqlxSqliteConnector::from_sqlx_sqlite_pool(pool),
            rules: Default::default(),
        })
    }

    async fn open(
        url: &str,
        settings: &Settings,
        checkpoints: Checkpoints,
    ) -> anyhow::Result<Self> {
        if settings.is_sqlite() {
            std::fs::create_dir_all(&settings.data_dir)
                .with_context(|| format!("creating {}", settings.data_dir.display()))?;
        }
        let mut options = ConnectOptions::new(url.to_owned());
        options
            .max_connections(settings.db_max_connections)
            .min_connections(1)
            .connect_timeout(Duration::from_secs(10))
            .acquire_timeout(Duration::from_secs(10))
            .idle_timeout(Duration::from_secs(300))
            // Every statement is logged only when asked for (`SLUICE_LOG=…,sqlx::query=debug`),
            // not by the default `info`: formatting each costs more than running most.
            .sqlx_logging(tracing::enabled!(target: "sqlx::query", tracing::Level::DEBUG))
            .map_sqlx_sqlite_pool_opts(pool_tuning)
            .map_sqlx_sqlite_opts(move |o| connection_tuning(o, checkpoints));
        let db = Database::connect(options)
            .await
            .with_context(|| format!("connecting to {}", redact_url(url)))?;
        Ok(Self {
            db,
            rules: Default::default(),
        })
    }

    /// Applies pending migrations (the job queue's tables are its own: `queue::migrate`).
    pub async fn migrate(&self) -> anyhow::Result<()> {
        Migrator::up(&self.db, None)
            .await
            .context("applying migrations")
    }

    /// The underlying connection, for the job queue which shares its pool.
    pub fn db(&self) -> &DatabaseConnection {
        &self.db
    }

    /// Which database this is.
    pub fn backend(&self) -> DbBackend {
        self.db.get_database_backend()
    }

    /// Folds the write-ahead log into the database file as far as readers allow, without
    /// waiting for anyone (SQLite; nothing to do on PostgreSQL).
    pub async fn checkpoint(&self) -> Result<(), DbErr> {
        if self.backend() == DbBackend::Sqlite {
            self.db
                .execute_unprepared("PRAGMA wal_checkpoint(PASSIVE)")
                .await?;
        }
        Ok(())
    }

    /// Whether the database answers.
    pub async fn ping(&self) -> Result<(), DbErr> {
        self.db.ping().await
    }
}

/// Who folds a SQLite write-ahead log into the database file.
#[derive(Clone, Copy)]
enum Checkpoints {
    /// The write that grows the log past 4,000 pages (16 MB; SQLite's default is 1,000).
    /// A page a quiet server rewrites at every run (the queue's, the runs' indexes) is
    /// copied into the file once per checkpoint however often it was logged, so fewer,
    /// larger checkpoints copy fewer pages and sync the file less often.
    OnCommit,
    /// A background task calling [`Store::checkpoint`].
    InBackground,
}

/// How pooled SQLite connections are handed out and back.
fn pool_tuning(pool: SqlitePoolOptions) -> SqlitePoolOptions {
    // A SQLite connection is a file handle, not a socket a peer may have closed: pinging
    // it before each use is one more round trip to its thread per statement, for nothing.
    pool.test_before_acquire(false)
        .after_release(|conn, _| Box::pin(released(conn)))
}

/// How each SQLite connection is set up.
fn connection_tuning(o: SqliteConnectOptions, checkpoints: Checkpoints) -> SqliteConnectOptions {
    // A page of a sync is 500 rows; with sqlx's default buffer of 50 its worker thread and
    // ours would hand each query's rows over in ten rounds of waking each other up.
    o.row_buffer_size(1024)
        // Each pooled connection keeps its own page cache and prepared statements; with
        // SQLite's defaults (2 MB, 100 statements) ten of them held more memory than the
        // rest of an idle server. The file's pages stay in the OS page cache either way.
        .statement_cache_capacity(32)
        .pragma("cache_size", "-512")
        .journal_mode(SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(10))
        .foreign_keys(true)
        .synchronous(SqliteSynchronous::Normal)
        .create_if_missing(true)
        .pragma(
            "wal_autocheckpoint",
            match checkpoints {
                Checkpoints::OnCommit => "4000",
                Checkpoints::InBackground => "0",
            },
        )
}

/// The row a lookup by primary key finds. Not `.one()`: sea-orm binds its `LIMIT 1` as a
/// parameter, and SQLite plans a statement whose LIMIT is a parameter for the value bound,
/// so it prepares it again on every execution. The connection and run lookups below run
/// several times per page of a sync.
async fn by_key<E: EntityTrait>(
    select: Select<E>,
    db: &DatabaseConnection,
) -> Result<Option<E::Model>, DbErr> {
    Ok(select.all(db).await?.into_iter().next())
}

/// Where the sandbox's SQLite file lives: beside ours (`sluice.db` → `sluice-sandbox.db`),
/// so every process on one database sees the same sandbox. None on Postgres.
/// Whether a SQLite connection handed back to the pool may be reused. One still inside a
/// transaction (SQLite keeps a transaction open when its COMMIT fails for a full disk)
/// would hold the database's write lock for as long as it sits in the pool, and every
/// other writer would wait for it, then fail with "database is locked", long after the
/// disk had space again. A `ROLLBACK` that succeeds means there was one: the connection
/// is closed, which also resets whatever the driver believed about it.
///
/// Only a connection the driver counts inside a transaction is tried: every transaction
/// we open goes through it (sea-orm's `begin`), and a COMMIT that fails leaves the count
/// up. Trying every connection cost a round trip to its thread per statement.
async fn released(
    conn: &mut sea_orm::sqlx::SqliteConnection,
) -> Result<bool, sea_orm::sqlx::Error> {
    use sea_orm::sqlx::{Connection, Executor};
    if !conn.is_in_transaction() {
        return Ok(true);
    }
    match conn.execute("ROLLBACK").await {
        Ok(_) => {
            tracing::warn!("a database connection came back inside a transaction; closed it");
            Ok(false)
        }
        Err(_) => Ok(true),
    }
}

fn sandbox_url(settings: &Settings) -> Option<String> {
    if let Some(own) = &settings.sandbox.database_url {
        return Some(own.clone());
    }
    let url = &settings.database_url;
    let rest = url
        .strip_prefix("sqlite://")
        .or_else(|| url.strip_prefix("sqlite:"))?;
    let path = rest.split('?').next().unwrap_or_default();
    let file = if path.is_empty() || path.starts_with(':') {
        settings.data_dir.join("sluice-sandbox.db")
    } else {
        let path = std::path::Path::new(path);
        let stem = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap_or("sluice");
        path.with_file_name(format!("{stem}-sandbox.db"))
    };
    Some(format!("sqlite://{}?mode=rwc", file.display()))
}

/// Current time, truncated to microseconds so values round-trip identically on SQLite and
/// Postgres.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// Whether a database error is a unique-constraint violation (a duplicate).
pub fn is_unique_violation(err: &DbErr) -> bool {
    matches!(err.sql_err(), Some(SqlErr::UniqueConstraintViolation(_)))
}

/// A database URL with any password removed, for logs and error messages.
pub fn redact_url(url: &str) -> String {
    match url::Url::parse(url) {
        Ok(mut parsed) if parsed.password().is_some() => {
            let _ = parsed.set_password(Some("***"));
            parsed.to_string()
        }
        _ => url.to_owned(),
    }
}
