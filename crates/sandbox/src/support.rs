//! Small helpers the sandbox keeps for itself: it stands in for an external system, so
//! it shares no code with Sluice beyond the libraries both use.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use chrono::{DateTime, Utc};
use sea_orm::DbBackend;
use sha2::{Digest, Sha256};

/// Current time, truncated to microseconds so values round-trip on SQLite and Postgres.
pub fn now() -> DateTime<Utc> {
    use chrono::SubsecRound;
    Utc::now().trunc_subsecs(6)
}

/// 32 random bytes, URL-safe base64: codes and tokens.
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a secret, hex-encoded: grants are stored under it.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time comparison for secrets presented by clients.
pub fn equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

/// Whether `s` looks like an e-mail address, as a CRM's validation would judge it.
pub fn is_email(s: &str) -> bool {
    let s = s.trim();
    let Some((local, domain)) = s.split_once('@') else {
        return false;
    };
    s.len() <= 254
        && !local.is_empty()
        && local.len() <= 64
        && domain.contains('.')
        && !domain.starts_with('.')
        && !domain.ends_with('.')
        && domain
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        && !s.chars().any(char::is_whitespace)
}

/// Anonymous placeholders for hand-written SQL: `?` on SQLite, `$n` on Postgres (numbered
/// ones are quadratic to prepare on SQLite for statements with many values).
pub struct Marks {
    sqlite: bool,
    next: usize,
}

impl Marks {
    /// Marks for a statement on `backend`.
    pub fn new(backend: DbBackend) -> Self {
        Self {
            sqlite: backend == DbBackend::Sqlite,
            next: 1,
        }
    }

    /// The next mark.
    pub fn one(&mut self) -> String {
        let n = self.next;
        self.next += 1;
        if self.sqlite {
            "?".to_owned()
        } else {
            format!("${n}")
        }
    }

    /// The next `n` marks, separated by commas (an `IN` list).
    pub fn list(&mut self, n: usize) -> String {
        (0..n).map(|_| self.one()).collect::<Vec<_>>().join(",")
    }

    /// The next `n` marks in parentheses (a `VALUES` row).
    pub fn row(&mut self, n: usize) -> String {
        format!("({})", self.list(n))
    }
}
