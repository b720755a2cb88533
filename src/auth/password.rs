//! Password hashing with argon2id (OWASP parameters), off the async executor.

use anyhow::anyhow;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

/// OWASP's argon2id recommendation: 19 MiB, 2 iterations, 1 lane.
fn hasher() -> anyhow::Result<Argon2<'static>> {
    let params = Params::new(19 * 1024, 2, 1, None).map_err(|e| anyhow!("argon2 params: {e}"))?;
    Ok(Argon2::new(Algorithm::Argon2id, Version::V0x13, params))
}

/// Hashes a password into a PHC string. Runs on the blocking pool: it takes ~20 ms of CPU.
pub async fn hash(password: &str) -> anyhow::Result<String> {
    let password = password.to_owned();
    tokio::task::spawn_blocking(move || {
        let phc = hasher()?
            .hash_password(password.as_bytes())
            .map_err(|e| anyhow!("hashing password: {e}"))?;
        Ok(phc.to_string())
    })
    .await?
}

/// Checks a password against a stored PHC string. A malformed hash counts as a mismatch.
pub async fn verify(password: &str, phc: &str) -> bool {
    let password = password.to_owned();
    let phc = phc.to_owned();
    tokio::task::spawn_blocking(move || {
        hasher()
            .map(|h| h.verify_password(password.as_bytes(), phc.as_str()).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false)
}

/// Burns the same time as a real verification, so an unknown e-mail cannot be told apart
/// from a wrong password by timing.
pub async fn verify_dummy(password: &str) {
    static DUMMY: tokio::sync::OnceCell<String> = tokio::sync::OnceCell::const_new();
    let phc = DUMMY
        .get_or_init(|| async {
            hash(&super::tokens::random_secret())
                .await
                .unwrap_or_default()
        })
        .await;
    let _ = verify(password, phc).await;
}

#[cfg(test)]
mod tests {
    #[tokio::test]
    async fn a_hash_verifies_only_its_password() {
        let phc = super::hash("correct horse battery").await.unwrap();
        assert!(phc.starts_with("$argon2id$"));
        assert!(super::verify("correct horse battery", &phc).await);
        assert!(!super::verify("correct horse batterz", &phc).await);
        assert!(!super::verify("anything", "not a hash").await);
    }
}
