//! Settings: built-in defaults, then an optional TOML file (`SLUICE_CONFIG`), then `SLUICE_*`
//! environment variables. Everything is validated once at start-up, and every problem is
//! reported together so an operator fixes the file in one go.

use anyhow::{Context, bail};
use base64::Engine;
use secrecy::{ExposeSecret, SecretBox, SecretString};
use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;
use url::Url;

/// How log lines are written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable, for a terminal.
    Pretty,
    /// One JSON object per line, for log shippers.
    Json,
}

/// The 256-bit key that encrypts secrets at rest. Never printed.
#[derive(Clone)]
pub struct MasterKey(std::sync::Arc<SecretBox<[u8; 32]>>);

impl MasterKey {
    /// Decodes a base64 key of exactly 32 bytes.
    pub fn from_base64(text: &str) -> Result<Self, String> {
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(text.trim())
            .map_err(|_| "is not valid base64".to_owned())?;
        let key: [u8; 32] = bytes
            .try_into()
            .map_err(|_| "must decode to exactly 32 bytes (e.g. `openssl rand -base64 32`)")?;
        Ok(Self(std::sync::Arc::new(SecretBox::new(Box::new(key)))))
    }

    /// A fresh random key, base64-encoded, for the first run of the embedded default.
    pub fn generate_base64() -> String {
        let key: [u8; 32] = rand::random();
        base64::engine::general_purpose::STANDARD.encode(key)
    }

    /// The raw key bytes, for the cipher only.
    pub fn expose(&self) -> &[u8; 32] {
        self.0.expose_secret()
    }
}

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(***)")
    }
}

/// Validated settings for every role of the binary.
#[derive(Clone, Debug)]
pub struct Settings {
    /// Where the database lives; SQLite file by default.
    pub database_url: String,
    /// Directory for the SQLite file and the generated master key.
    pub data_dir: PathBuf,
    /// Address the web server listens on.
    pub bind: SocketAddr,
    /// The URL users reach Sluice at; used in links, cookies and OAuth callbacks.
    pub public_url: Url,
    /// Set when configured; otherwise resolved by [`Settings::resolve_master_key`].
    pub master_key: Option<MasterKey>,
    /// `tracing` filter directives.
    pub log: String,
    /// Log line format.
    pub log_format: LogFormat,
    /// Jobs run at the same time by one process.
    pub worker_concurrency: usize,
    /// Idle time after which a session ends.
    pub session_idle: Duration,
    /// Time after sign-in after which a session ends regardless of use.
    pub session_absolute: Duration,
    /// How long invitation links stay valid.
    pub invitation_ttl: Duration,
    /// Database connections per process.
    pub db_max_connections: u32,
    /// Whether `/metrics` is served at all.
    pub metrics_enabled: bool,
    /// Bearer token `/metrics` on the main listener requires; without one the main
    /// listener does not serve `/metrics` (the per-workspace figures are not public).
    pub metrics_token: Option<SecretString>,
    /// A separate listener that serves only `/metrics`, without a token (for a scraper on
    /// a private interface).
    pub metrics_bind: Option<SocketAddr>,
    /// Backoff ceiling for a job's first retry; doubles per attempt.
    pub job_retry_base: Duration,
    /// Longest wait between two attempts of a job.
    pub job_retry_cap: Duration,
    /// Keys that encrypted older secrets, still accepted for decryption during rotation.
    pub previous_master_keys: Vec<MasterKey>,
    /// Non-public networks outbound calls may reach anyway.
    pub outbound_allow: Vec<ipnet::IpNet>,
    /// Vendor origins served by another server instead (contract fakes, local
    /// development): every call and redirect to the left origin goes to the right one.
    pub provider_origins: Vec<OriginRoute>,
    /// Runs one tenant may have executing at once, so no tenant starves the others.
    pub tenant_concurrency: u32,
    /// Longest wait a provider's `Retry-After` may impose on a run before retrying.
    pub retry_after_cap: Duration,
    /// How long a run keeps retrying a failing call (an outage) before it fails.
    pub call_patience: Duration,
    /// A run whose worker has not renewed its lease for this long is taken over by
    /// another worker (crash recovery). The holder renews it every quarter of this,
    /// whatever it is waiting on.
    pub run_lease: Duration,
    /// Total time one outbound call may take. At most three quarters of the run lease:
    /// a worker that can no longer renew its lease stops starting calls, and the calls
    /// it already started must end before anyone may take its run over.
    pub outbound_timeout: Duration,
    /// SMTP server for e-mail notifications (`smtp://host:port`, `smtps://…`, with
    /// optional `user:password@`); none disables e-mail channels.
    pub smtp_url: Option<String>,
    /// Sender of notification e-mails.
    pub smtp_from: String,
    /// How often time-based alert rules (freshness, connection health) are evaluated.
    pub alert_sweep: Duration,
    /// Days run logs, finished dead letters and notification deliveries are kept.
    pub retention_detail_days: u32,
    /// Days runs are kept (their hourly rollups are kept regardless).
    pub retention_runs_days: u32,
    /// The built-in sandbox SaaS.
    pub sandbox: SandboxSettings,
}

/// Settings of the built-in sandbox SaaS (OAuth server, CRM and ERP APIs).
#[derive(Clone, Debug)]
pub struct SandboxSettings {
    /// Whether it is mounted under `/sandbox`.
    pub enabled: bool,
    /// Lifetime of its access tokens.
    pub token_ttl: Duration,
    /// Requests per second per access token before it answers 429 (0 = unlimited).
    pub rate_limit: u32,
    /// Share of API requests that fail with 503, for fault injection (0.0–1.0).
    pub error_rate: f64,
    /// Added latency per API request.
    pub latency: Duration,
    /// Further latency per write request (a destination that stalls on writes).
    pub write_latency: Duration,
    /// Number of seeded CRM contacts.
    pub seed_contacts: u32,
    /// Its own database, when not the SQLite file beside Sluice's (e.g. on another
    /// disk); on PostgreSQL it shares Sluice's database unless set.
    pub database_url: Option<String>,
    /// Batches are all or nothing: one invalid record refuses the whole batch with 422,
    /// as some vendors' batch endpoints do (to try how Sluice finds the culprits).
    pub all_or_none: bool,
    /// Whether `Idempotency-Key` is honoured (off: like the many vendors that ignore it).
    pub idempotency: bool,
    /// Share of writes that are applied and then answered 504, as if the answer was lost
    /// on its way back (0.0–1.0).
    pub lost_answer_rate: f64,
}

const KEYS: &[(&str, &str)] = &[
    ("database_url", ""),
    ("data_dir", "./data"),
    ("bind", "127.0.0.1:8080"),
    ("public_url", ""),
    ("master_key", ""),
    ("log", "info"),
    ("log_format", "pretty"),
    ("worker_concurrency", "4"),
    ("session_idle_minutes", "480"),
    ("session_absolute_hours", "168"),
    ("invitation_ttl_hours", "168"),
    // Empty: 4 on SQLite, 10 on PostgreSQL (see below).
    ("db_max_connections", ""),
    ("metrics", "on"),
    ("metrics_token", ""),
    ("metrics_bind", ""),
    ("job_retry_base_ms", "2000"),
    ("job_retry_cap_secs", "3600"),
    ("previous_master_keys", ""),
    ("outbound_allow", ""),
    ("provider_origins", ""),
    ("tenant_concurrency", "2"),
    ("retry_after_cap_secs", "60"),
    ("run_lease_secs", "90"),
    ("outbound_timeout_secs", "60"),
    ("call_patience_secs", "300"),
    ("smtp_url", ""),
    ("smtp_from", "Sluice <sluice@localhost>"),
    ("alert_sweep_secs", "30"),
    ("retention_detail_days", "30"),
    ("retention_runs_days", "90"),
    ("sandbox", "on"),
    ("sandbox_token_ttl_secs", "3600"),
    ("sandbox_rate_limit", "0"),
    ("sandbox_error_rate", "0"),
    ("sandbox_latency_ms", "0"),
    ("sandbox_write_latency_ms", "0"),
    ("sandbox_all_or_none", "off"),
    ("sandbox_idempotency", "on"),
    ("sandbox_lost_answer_rate", "0"),
    ("sandbox_seed_contacts", "10000"),
    // Empty: beside Sluice's SQLite file, or in Sluice's PostgreSQL database.
    ("sandbox_database_url", ""),
];

/// Why `url` cannot be a database URL, if it cannot.
fn database_url_problem(url: &str) -> Result<(), String> {
    if url.starts_with("sqlite:")
        || url.starts_with("postgres://")
        || url.starts_with("postgresql://")
    {
        Ok(())
    } else {
        Err("must start with sqlite:, postgres:// or postgresql://".into())
    }
}

/// One `SLUICE_PROVIDER_ORIGINS` pair: calls to `from` go to `to` instead.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct OriginRoute {
    /// The vendor's origin, as provider definitions name it.
    pub from: url::Origin,
    /// The server that answers in its place (plain http allowed).
    pub to: url::Url,
}

impl OriginRoute {
    /// Parses `https://vendor.example=http://127.0.0.1:PORT`.
    pub fn parse(entry: &str) -> Result<Self, String> {
        let origin = |text: &str| {
            let url =
                url::Url::parse(text.trim()).map_err(|e| format!("'{text}' is not a URL ({e})"))?;
            let bare = url.path() == "/" && url.query().is_none() && url.fragment().is_none();
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() || !bare {
                return Err(format!(
                    "'{text}' must be an http(s) origin, without path or query"
                ));
            }
            Ok(url)
        };
        let (from, to) = entry
            .split_once('=')
            .ok_or_else(|| format!("'{entry}' must be vendor-origin=replacement-origin"))?;
        Ok(OriginRoute {
            from: origin(from)?.origin(),
            to: origin(to)?,
        })
    }

    /// `url` sent to the replacement, when it is on the vendor's origin.
    pub fn reroute(&self, url: &url::Url) -> Option<url::Url> {
        if url.origin() != self.from {
            return None;
        }
        let mut moved = url.clone();
        moved.set_scheme(self.to.scheme()).ok()?;
        moved.set_host(self.to.host_str()).ok()?;
        moved.set_port(self.to.port_or_known_default()).ok()?;
        Some(moved)
    }
}

impl Settings {
    /// Loads settings from the process environment (and the file it names).
    pub fn from_env() -> anyhow::Result<Self> {
        Self::from_vars(std::env::vars())
    }

    /// Loads settings from the given variables; tests pass their own.
    pub fn from_vars(vars: impl IntoIterator<Item = (String, String)>) -> anyhow::Result<Self> {
        let env: BTreeMap<String, String> = vars
            .into_iter()
            .filter_map(|(k, v)| k.strip_prefix("SLUICE_").map(|k| (k.to_lowercase(), v)))
            .collect();
        let mut raw: BTreeMap<String, String> = KEYS
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        if let Some(path) = env.get("config").filter(|p| !p.is_empty()) {
            raw.extend(read_file(Path::new(path))?);
        }
        for (key, value) in env {
            if key != "config" && raw.contains_key(&key) {
                raw.insert(key, value);
            }
        }
        Self::parse(&raw)
    }

    fn parse(raw: &BTreeMap<String, String>) -> anyhow::Result<Self> {
        let get = |k: &str| raw.get(k).map(|s| s.trim().to_owned()).unwrap_or_default();
        let mut problems = Vec::new();
        let mut check = |key: &str, result: Result<(), String>| {
            if let Err(e) = result {
                problems.push(format!("SLUICE_{}: {e}", key.to_uppercase()));
            }
        };

        let data_dir = PathBuf::from(get("data_dir"));
        let database_url = match get("database_url") {
            url if url.is_empty() => format!(
                "sqlite://{}?mode=rwc",
                data_dir.join("sluice.db").to_string_lossy()
            ),
            url => url,
        };
        check("database_url", database_url_problem(&database_url));

        let bind = get("bind").parse::<SocketAddr>();
        check(
            "bind",
            bind.as_ref()
                .map(|_| ())
                .map_err(|_| "must be host:port, e.g. 127.0.0.1:8080".into()),
        );
        let bind = bind.unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 8080)));

        let public_url = match get("public_url") {
            s if s.is_empty() => Url::parse(&format!("http://{bind}")).map_err(|e| e.to_string()),
            s => Url::parse(&s).map_err(|e| format!("is not a URL ({e})")),
        }
        .and_then(|u| {
            if matches!(u.scheme(), "http" | "https") && u.host().is_some() {
                Ok(u)
            } else {
                Err("must be an http:// or https:// URL".into())
            }
        });
        let public_url = match public_url {
            Ok(u) => Some(u),
            Err(e) => {
                check("public_url", Err(e));
                None
            }
        };

        let master_key = match get("master_key") {
            s if s.is_empty() => None,
            s => match MasterKey::from_base64(&s) {
                Ok(k) => Some(k),
                Err(e) => {
                    check("master_key", Err(e));
                    None
                }
            },
        };

        let log_format = match get("log_format").as_str() {
            "pretty" | "" => LogFormat::Pretty,
            "json" => LogFormat::Json,
            _ => {
                check("log_format", Err("must be pretty or json".into()));
                LogFormat::Pretty
            }
        };

        let mut number = |key: &str, min: u64, max: u64| -> u64 {
            match get(key).parse::<u64>() {
                Ok(n) if (min..=max).contains(&n) => n,
                _ => {
                    check(
                        key,
                        Err(format!("must be a whole number from {min} to {max}")),
                    );
                    min
                }
            }
        };
        let worker_concurrency = number("worker_concurrency", 1, 256) as usize;
        let session_idle =
            Duration::from_secs(number("session_idle_minutes", 5, 60 * 24 * 30) * 60);
        let session_absolute =
            Duration::from_secs(number("session_absolute_hours", 1, 24 * 365) * 3600);
        let invitation_ttl = Duration::from_secs(number("invitation_ttl_hours", 1, 24 * 30) * 3600);
        // SQLite takes one writer at a time, and each pooled connection keeps a cache of
        // its own that any other connection's write empties: four connections hit their
        // caches more often and hold less memory than ten (100k-record job: peak RSS
        // 66 → 59 MB, the same share of the reference script's rate).
        let db_max_connections = if get("db_max_connections").is_empty() {
            if database_url.starts_with("sqlite:") {
                4
            } else {
                10
            }
        } else {
            number("db_max_connections", 2, 1000) as u32
        };
        let job_retry_base = Duration::from_millis(number("job_retry_base_ms", 1, 3_600_000));
        let job_retry_cap = Duration::from_secs(number("job_retry_cap_secs", 1, 86_400));
        let tenant_concurrency = number("tenant_concurrency", 1, 1000) as u32;
        let retry_after_cap = Duration::from_secs(number("retry_after_cap_secs", 1, 3600));
        let run_lease = Duration::from_secs(number("run_lease_secs", 2, 3600));
        let outbound_timeout = Duration::from_secs(number("outbound_timeout_secs", 1, 60));
        let call_patience = Duration::from_secs(number("call_patience_secs", 0, 86_400));
        let alert_sweep = Duration::from_secs(number("alert_sweep_secs", 1, 3600));
        let retention_detail_days = number("retention_detail_days", 1, 3650) as u32;
        let retention_runs_days = number("retention_runs_days", 1, 3650) as u32;

        let sandbox_token_ttl = Duration::from_secs(number("sandbox_token_ttl_secs", 1, 86_400));
        let sandbox_rate_limit = number("sandbox_rate_limit", 0, 1_000_000) as u32;
        let sandbox_latency = Duration::from_millis(number("sandbox_latency_ms", 0, 60_000));
        let sandbox_write_latency =
            Duration::from_millis(number("sandbox_write_latency_ms", 0, 600_000));
        let sandbox_seed_contacts = number("sandbox_seed_contacts", 0, 1_000_000) as u32;
        let mut share = |key: &str| match get(key).parse::<f64>() {
            Ok(r) if (0.0..=1.0).contains(&r) => r,
            _ => {
                check(key, Err("must be a number from 0 to 1".into()));
                0.0
            }
        };
        let sandbox_error_rate = share("sandbox_error_rate");
        let sandbox_lost_answer_rate = share("sandbox_lost_answer_rate");
        let sandbox_enabled = match get("sandbox").as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            _ => {
                check("sandbox", Err("must be on or off".into()));
                false
            }
        };
        let sandbox_database_url =
            Some(get("sandbox_database_url")).filter(|u| !u.trim().is_empty());
        if let Some(u) = &sandbox_database_url {
            check("sandbox_database_url", database_url_problem(u));
        }
        let smtp_url = Some(get("smtp_url")).filter(|u| !u.trim().is_empty());
        if let Some(u) = &smtp_url
            && !(u.starts_with("smtp://") || u.starts_with("smtps://"))
        {
            check(
                "smtp_url",
                Err("must start with smtp:// or smtps://".into()),
            );
        }
        let smtp_from = get("smtp_from");
        if smtp_from.parse::<lettre::message::Mailbox>().is_err() {
            check(
                "smtp_from",
                Err("must be an address such as Sluice <alerts@example.com>".into()),
            );
        }
        let mut previous_master_keys = Vec::new();
        for (i, text) in get("previous_master_keys")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
            .enumerate()
        {
            match MasterKey::from_base64(text) {
                Ok(k) => previous_master_keys.push(k),
                Err(e) => check("previous_master_keys", Err(format!("key {}: {e}", i + 1))),
            }
        }
        let mut outbound_allow = Vec::new();
        for entry in get("outbound_allow")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match entry
                .parse::<ipnet::IpNet>()
                .or_else(|_| entry.parse::<std::net::IpAddr>().map(ipnet::IpNet::from))
            {
                Ok(net) => outbound_allow.push(net),
                Err(_) => check(
                    "outbound_allow",
                    Err(format!("'{entry}' is not an address or CIDR range")),
                ),
            }
        }
        let mut provider_origins = Vec::new();
        for entry in get("provider_origins")
            .split(',')
            .map(str::trim)
            .filter(|s| !s.is_empty())
        {
            match OriginRoute::parse(entry) {
                Ok(route) => provider_origins.push(route),
                Err(e) => check("provider_origins", Err(e)),
            }
        }

        check(
            "outbound_timeout_secs",
            if outbound_timeout.as_millis() * 4 <= run_lease.as_millis() * 3 {
                Ok(())
            } else {
                Err(format!(
                    "{} s is more than three quarters of SLUICE_RUN_LEASE_SECS ({} s): a call \
                     must end before a lease its worker can no longer renew runs out; raise \
                     the lease or lower the timeout",
                    outbound_timeout.as_secs(),
                    run_lease.as_secs()
                ))
            },
        );

        let metrics_enabled = match get("metrics").as_str() {
            "on" | "true" | "1" => true,
            "off" | "false" | "0" => false,
            _ => {
                check("metrics", Err("must be on or off".into()));
                true
            }
        };

        let metrics_token = match get("metrics_token") {
            t if t.is_empty() => None,
            t if t.len() < 16 || !t.chars().all(|c| c.is_ascii_graphic()) => {
                check(
                    "metrics_token",
                    Err("must be at least 16 visible ASCII characters, no spaces (e.g. `openssl rand -hex 24`)".into()),
                );
                None
            }
            t => Some(SecretString::from(t)),
        };
        let metrics_bind = match get("metrics_bind") {
            b if b.is_empty() => None,
            b => match b.parse::<SocketAddr>() {
                Ok(addr) if addr == bind && addr.port() != 0 => {
                    check(
                        "metrics_bind",
                        Err("must differ from SLUICE_BIND (it serves only /metrics, without a token)".into()),
                    );
                    None
                }
                Ok(addr) => Some(addr),
                Err(_) => {
                    check(
                        "metrics_bind",
                        Err("must be host:port, e.g. 127.0.0.1:9464".into()),
                    );
                    None
                }
            },
        };
        if !metrics_enabled && (metrics_token.is_some() || metrics_bind.is_some()) {
            check(
                "metrics",
                Err("is off, but SLUICE_METRICS_TOKEN or SLUICE_METRICS_BIND is set".into()),
            );
        }

        if !problems.is_empty() {
            bail!("invalid configuration:\n  - {}", problems.join("\n  - "));
        }
        let Some(public_url) = public_url else {
            bail!("invalid configuration: SLUICE_PUBLIC_URL");
        };
        Ok(Self {
            database_url,
            data_dir,
            bind,
            public_url,
            master_key,
            log: get("log"),
            log_format,
            worker_concurrency,
            session_idle,
            session_absolute,
            invitation_ttl,
            db_max_connections,
            metrics_enabled,
            metrics_token,
            metrics_bind,
            job_retry_base,
            job_retry_cap,
            previous_master_keys,
            tenant_concurrency,
            retry_after_cap,
            run_lease,
            outbound_timeout,
            call_patience,
            outbound_allow,
            provider_origins,
            smtp_url,
            smtp_from,
            alert_sweep,
            retention_detail_days,
            retention_runs_days,
            sandbox: SandboxSettings {
                enabled: sandbox_enabled,
                token_ttl: sandbox_token_ttl,
                rate_limit: sandbox_rate_limit,
                error_rate: sandbox_error_rate,
                latency: sandbox_latency,
                write_latency: sandbox_write_latency,
                all_or_none: matches!(get("sandbox_all_or_none").as_str(), "on" | "true" | "1"),
                idempotency: !matches!(get("sandbox_idempotency").as_str(), "off" | "false" | "0"),
                lost_answer_rate: sandbox_lost_answer_rate,
                seed_contacts: sandbox_seed_contacts,
                database_url: sandbox_database_url,
            },
        })
    }

    /// Whether this is the embedded default (SQLite), where conveniences such as a generated
    /// master key are allowed.
    pub fn is_sqlite(&self) -> bool {
        self.database_url.starts_with("sqlite:")
    }

    /// Whether cookies must be `Secure` (and may use the `__Host-` prefix).
    pub fn is_https(&self) -> bool {
        self.public_url.scheme() == "https"
    }

    /// Absolute URL for a path on this server.
    pub fn url_for(&self, path: &str) -> String {
        format!("{}{}", self.public_url.as_str().trim_end_matches('/'), path)
    }

    /// The configured master key or, for the embedded default only, the key stored in the
    /// data directory (generated with mode 0600 on first run). Production must configure it.
    pub fn resolve_master_key(&mut self) -> anyhow::Result<MasterKey> {
        if let Some(key) = &self.master_key {
            return Ok(key.clone());
        }
        if !self.is_sqlite() {
            bail!(
                "SLUICE_MASTER_KEY is required with PostgreSQL: set it to 32 random bytes in \
                 base64 (e.g. `openssl rand -base64 32`) and keep it safe; without it stored \
                 credentials cannot be decrypted"
            );
        }
        let path = self.data_dir.join("master.key");
        let key = if path.exists() {
            // First line: the current key; further lines: previous keys kept for rotation.
            let text = std::fs::read_to_string(&path)
                .with_context(|| format!("reading {}", path.display()))?;
            let mut keys = text
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(|line| {
                    MasterKey::from_base64(line)
                        .map_err(|e| anyhow::anyhow!("{}: a key {e}", path.display()))
                });
            let current = keys
                .next()
                .ok_or_else(|| anyhow::anyhow!("{} is empty", path.display()))??;
            for previous in keys {
                self.previous_master_keys.push(previous?);
            }
            current
        } else {
            std::fs::create_dir_all(&self.data_dir)
                .with_context(|| format!("creating {}", self.data_dir.display()))?;
            let text = MasterKey::generate_base64();
            write_private(&path, &text)?;
            tracing::warn!(
                path = %path.display(),
                "generated a new master key; back it up, stored credentials depend on it"
            );
            MasterKey::from_base64(&text).map_err(anyhow::Error::msg)?
        };
        self.master_key = Some(key.clone());
        Ok(key)
    }
}

/// Embedded default only: generates a new current key into the data directory, keeping
/// the old ones as previous keys, so `rotate-key` can re-encrypt. Returns the key file path.
pub fn generate_new_key_file(settings: &Settings) -> anyhow::Result<PathBuf> {
    if settings.master_key.is_some() && std::env::var("SLUICE_MASTER_KEY").is_ok() {
        bail!(
            "the master key comes from SLUICE_MASTER_KEY: set a new one there and the old one in SLUICE_PREVIOUS_MASTER_KEYS instead"
        );
    }
    let path = settings.data_dir.join("master.key");
    let old =
        std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let text = format!("{}\n{}", MasterKey::generate_base64(), old.trim());
    let tmp = settings.data_dir.join("master.key.new");
    let _ = std::fs::remove_file(&tmp);
    write_private(&tmp, &text)?;
    std::fs::rename(&tmp, &path).with_context(|| format!("replacing {}", path.display()))?;
    Ok(path)
}

fn read_file(path: &Path) -> anyhow::Result<BTreeMap<String, String>> {
    let text = std::fs::read_to_string(path)
        .with_context(|| format!("SLUICE_CONFIG: cannot read {}", path.display()))?;
    let table: toml::Table =
        toml::from_str(&text).with_context(|| format!("SLUICE_CONFIG: {}", path.display()))?;
    let mut out = BTreeMap::new();
    for (key, value) in table {
        let key = key.to_lowercase();
        if !KEYS.iter().any(|(k, _)| *k == key) {
            bail!("SLUICE_CONFIG: {}: unknown setting '{key}'", path.display());
        }
        let text = match value {
            toml::Value::String(s) => s,
            toml::Value::Integer(n) => n.to_string(),
            toml::Value::Boolean(b) => if b { "on" } else { "off" }.to_owned(),
            other => bail!("SLUICE_CONFIG: '{key}' has an unsupported value {other}"),
        };
        out.insert(key, text);
    }
    Ok(out)
}

#[cfg(unix)]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let mut file = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    file.write_all(text.as_bytes())?;
    Ok(())
}

#[cfg(not(unix))]
fn write_private(path: &Path, text: &str) -> anyhow::Result<()> {
    std::fs::write(path, text).with_context(|| format!("creating {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    #[test]
    fn defaults_are_the_embedded_sqlite_setup() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert!(s.is_sqlite());
        assert_eq!(s.bind.to_string(), "127.0.0.1:8080");
        assert_eq!(s.public_url.as_str(), "http://127.0.0.1:8080/");
        assert!(!s.is_https());
    }

    #[test]
    fn the_pool_is_four_connections_on_sqlite_and_ten_on_postgres_unless_set() {
        let sqlite = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(sqlite.db_max_connections, 4);
        let postgres = Settings::from_vars(vars(&[
            ("SLUICE_DATABASE_URL", "postgres://sluice@127.0.0.1/sluice"),
            ("SLUICE_MASTER_KEY", &MasterKey::generate_base64()),
        ]))
        .unwrap();
        assert_eq!(postgres.db_max_connections, 10);
        let set = Settings::from_vars(vars(&[("SLUICE_DB_MAX_CONNECTIONS", "7")])).unwrap();
        assert_eq!(set.db_max_connections, 7);
    }

    #[test]
    fn the_sandbox_database_is_beside_sluices_unless_set() {
        let beside = Settings::from_vars(vars(&[])).unwrap();
        assert_eq!(beside.sandbox.database_url, None);
        let own = Settings::from_vars(vars(&[(
            "SLUICE_SANDBOX_DATABASE_URL",
            "sqlite:///elsewhere/sandbox.db",
        )]))
        .unwrap();
        assert_eq!(
            own.sandbox.database_url.as_deref(),
            Some("sqlite:///elsewhere/sandbox.db")
        );
        let err = Settings::from_vars(vars(&[("SLUICE_SANDBOX_DATABASE_URL", "/tmp/x.db")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLUICE_SANDBOX_DATABASE_URL"), "{err}");
    }

    #[test]
    fn every_problem_is_reported_at_once() {
        let err = Settings::from_vars(vars(&[
            ("SLUICE_BIND", "nowhere"),
            ("SLUICE_MASTER_KEY", "c2hvcnQ="),
            ("SLUICE_WORKER_CONCURRENCY", "0"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("SLUICE_BIND"), "{err}");
        assert!(err.contains("SLUICE_MASTER_KEY"), "{err}");
        assert!(err.contains("SLUICE_WORKER_CONCURRENCY"), "{err}");
        assert!(
            !err.contains("c2hvcnQ="),
            "the key itself must not be echoed: {err}"
        );
    }

    #[test]
    fn a_call_may_not_outlast_three_quarters_of_the_run_lease() {
        let s = Settings::from_vars(vars(&[])).unwrap();
        assert!(
            s.outbound_timeout * 4 <= s.run_lease * 3,
            "the defaults agree"
        );
        let err = Settings::from_vars(vars(&[("SLUICE_RUN_LEASE_SECS", "30")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("SLUICE_OUTBOUND_TIMEOUT_SECS"), "{err}");
        let s = Settings::from_vars(vars(&[
            ("SLUICE_RUN_LEASE_SECS", "4"),
            ("SLUICE_OUTBOUND_TIMEOUT_SECS", "3"),
        ]))
        .unwrap();
        assert_eq!(s.outbound_timeout, Duration::from_secs(3));
    }

    #[test]
    fn metrics_settings_are_checked_at_start_up() {
        let s = Settings::from_vars(vars(&[
            ("SLUICE_METRICS_TOKEN", "0123456789abcdef0123"),
            ("SLUICE_METRICS_BIND", "127.0.0.1:9464"),
        ]))
        .unwrap();
        assert_eq!(
            s.metrics_token
                .as_ref()
                .map(|t| t.expose_secret().to_owned()),
            Some("0123456789abcdef0123".to_owned())
        );
        assert_eq!(s.metrics_bind.map(|a| a.port()), Some(9464));
        assert!(
            !format!("{s:?}").contains("0123456789abcdef0123"),
            "the token is not printed"
        );
        let defaults = Settings::from_vars(vars(&[])).unwrap();
        assert!(defaults.metrics_token.is_none() && defaults.metrics_bind.is_none());
        let err = Settings::from_vars(vars(&[
            ("SLUICE_METRICS_TOKEN", "short"),
            ("SLUICE_METRICS_BIND", "127.0.0.1:8080"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("SLUICE_METRICS_TOKEN"), "{err}");
        assert!(err.contains("SLUICE_METRICS_BIND"), "{err}");
        assert!(!err.contains("short"), "{err}");
        let err = Settings::from_vars(vars(&[
            ("SLUICE_METRICS", "off"),
            ("SLUICE_METRICS_BIND", "127.0.0.1:9464"),
        ]))
        .unwrap_err()
        .to_string();
        assert!(err.contains("SLUICE_METRICS:"), "{err}");
    }

    #[test]
    fn postgres_requires_a_master_key() {
        let mut s = Settings::from_vars(vars(&[(
            "SLUICE_DATABASE_URL",
            "postgres://localhost/sluice",
        )]))
        .unwrap();
        assert!(s.resolve_master_key().is_err());
    }

    #[test]
    fn embedded_default_generates_a_private_key_once() {
        let dir = std::env::temp_dir().join(format!("sluice-cfg-{}", uuid::Uuid::now_v7()));
        let dir_text = dir.to_string_lossy().to_string();
        let mut s = Settings::from_vars(vars(&[("SLUICE_DATA_DIR", &dir_text)])).unwrap();
        let first = s.resolve_master_key().unwrap();
        let mut again = Settings::from_vars(vars(&[("SLUICE_DATA_DIR", &dir_text)])).unwrap();
        assert_eq!(first.expose(), again.resolve_master_key().unwrap().expose());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.join("master.key"))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        std::fs::remove_dir_all(dir).ok();
    }
}
