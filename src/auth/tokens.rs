//! Random bearer secrets (session ids, invitation and setup links, API tokens) and their
//! digests. Only digests are stored, so a copy of the database opens no door.

use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};

/// 32 random bytes, URL-safe base64 (43 characters).
pub fn random_secret() -> String {
    let bytes: [u8; 32] = rand::random();
    URL_SAFE_NO_PAD.encode(bytes)
}

/// SHA-256 of a secret, hex-encoded: the form secrets are stored and looked up in.
/// A fast hash is right here: the secrets carry 256 bits of entropy.
pub fn digest(secret: &str) -> String {
    hex::encode(Sha256::digest(secret.as_bytes()))
}

/// Constant-time comparison for secrets presented by clients.
pub fn equal(a: &str, b: &str) -> bool {
    use subtle::ConstantTimeEq;
    a.len() == b.len() && bool::from(a.as_bytes().ct_eq(b.as_bytes()))
}

#[cfg(test)]
mod tests {
    #[test]
    fn secrets_are_unique_and_digests_stable() {
        let a = super::random_secret();
        assert_eq!(a.len(), 43);
        assert_ne!(a, super::random_secret());
        assert_eq!(super::digest(&a), super::digest(&a));
        assert_ne!(super::digest(&a), a);
        assert!(super::equal(&a, &a.clone()));
        assert!(!super::equal(&a, "x"));
    }
}
