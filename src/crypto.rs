//! Secrets at rest: AES-256-GCM with a key id prefix and associated data that binds each
//! ciphertext to the row it belongs to, so a value copied into another tenant's or
//! connection's row does not decrypt.
//!
//! Format: `v1.<key id>.<base64url(nonce ‖ ciphertext ‖ tag)>`. The key id is derived from
//! the key itself, so a keyring of current + previous keys can decrypt old values while
//! `sluice admin rotate-key` re-encrypts them under the current key — without downtime.

use crate::config::MasterKey;
use aes_gcm::aead::{Aead, KeyInit, Payload};
use aes_gcm::{Aes256Gcm, Nonce};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use sha2::{Digest, Sha256};
use std::fmt;

/// What a ciphertext is bound to: its purpose and owning ids.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Aad(String);

impl Aad {
    /// Binds a value to (purpose, tenant, entity), e.g. ("connection", tenant, connection).
    pub fn new(purpose: &str, tenant: impl fmt::Display, entity: impl fmt::Display) -> Self {
        Self(format!("sluice:{purpose}:{tenant}:{entity}"))
    }
}

/// Why a value could not be decrypted (never says more: no oracle).
#[derive(Debug, thiserror::Error)]
pub enum CryptoError {
    /// Not in our format.
    #[error("malformed ciphertext")]
    Malformed,
    /// Encrypted with a key this keyring does not hold.
    #[error("encrypted with unknown key {0}")]
    UnknownKey(String),
    /// Wrong key, wrong associated data, or tampered.
    #[error("ciphertext does not authenticate")]
    Invalid,
}

struct Key {
    id: String,
    cipher: Aes256Gcm,
}

/// The current key (used to encrypt) and previous keys (still accepted to decrypt).
pub struct Keyring {
    current: Key,
    previous: Vec<Key>,
}

impl fmt::Debug for Keyring {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Keyring")
            .field("current", &self.current.id)
            .field(
                "previous",
                &self.previous.iter().map(|k| &k.id).collect::<Vec<_>>(),
            )
            .finish()
    }
}

fn key(master: &MasterKey) -> Key {
    let id =
        hex::encode(&Sha256::digest([b"sluice-key-id:".as_slice(), master.expose()].concat())[..4]);
    // A subkey for encryption only: the master key also signs cookies (HMAC), and one key
    // should serve one purpose.
    let subkey: [u8; 32] = {
        use hmac::{Hmac, Mac};
        Hmac::<Sha256>::new_from_slice(master.expose())
            .map(|mut mac| {
                mac.update(b"sluice-secrets-aes-256-gcm-v1");
                mac.finalize().into_bytes().into()
            })
            .unwrap_or(*master.expose())
    };
    Key {
        id,
        cipher: Aes256Gcm::new((&subkey).into()),
    }
}

impl Keyring {
    /// A keyring from the current key and any previous ones.
    pub fn new(current: &MasterKey, previous: &[MasterKey]) -> Self {
        Self {
            current: key(current),
            previous: previous.iter().map(key).collect(),
        }
    }

    /// The id of the key new values are encrypted with.
    pub fn current_id(&self) -> &str {
        &self.current.id
    }

    /// Encrypts `plaintext` bound to `aad`.
    pub fn encrypt(&self, plaintext: &[u8], aad: &Aad) -> String {
        let nonce_bytes: [u8; 12] = rand::random();
        let nonce = Nonce::from(nonce_bytes);
        // Encryption with a valid key and in-memory buffers cannot fail; an empty
        // ciphertext would fail to decrypt loudly rather than leak anything.
        let sealed = self
            .current
            .cipher
            .encrypt(
                &nonce,
                Payload {
                    msg: plaintext,
                    aad: aad.0.as_bytes(),
                },
            )
            .unwrap_or_default();
        let mut out = nonce_bytes.to_vec();
        out.extend_from_slice(&sealed);
        format!("v1.{}.{}", self.current.id, URL_SAFE_NO_PAD.encode(out))
    }

    /// Decrypts a value produced by [`Keyring::encrypt`] with the same `aad`.
    pub fn decrypt(&self, text: &str, aad: &Aad) -> Result<Vec<u8>, CryptoError> {
        let mut parts = text.splitn(3, '.');
        let (Some("v1"), Some(id), Some(body)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(CryptoError::Malformed);
        };
        let key = std::iter::once(&self.current)
            .chain(self.previous.iter())
            .find(|k| k.id == id)
            .ok_or_else(|| CryptoError::UnknownKey(id.to_owned()))?;
        let bytes = URL_SAFE_NO_PAD
            .decode(body)
            .map_err(|_| CryptoError::Malformed)?;
        if bytes.len() < 12 + 16 {
            return Err(CryptoError::Malformed);
        }
        let (nonce, sealed) = bytes.split_at(12);
        let nonce = Nonce::try_from(nonce).map_err(|_| CryptoError::Malformed)?;
        key.cipher
            .decrypt(
                &nonce,
                Payload {
                    msg: sealed,
                    aad: aad.0.as_bytes(),
                },
            )
            .map_err(|_| CryptoError::Invalid)
    }

    /// Whether a stored value should be re-encrypted under the current key.
    pub fn is_stale(&self, text: &str) -> bool {
        !text.starts_with(&format!("v1.{}.", self.current.id))
    }
}

/// A fresh Standard Webhooks signing secret (`whsec_` + base64 of 32 random bytes).
pub fn new_webhook_secret() -> String {
    use base64::Engine;
    format!(
        "whsec_{}",
        base64::engine::general_purpose::STANDARD.encode(rand::random::<[u8; 32]>())
    )
}

/// The Standard Webhooks MAC of a message: HMAC-SHA256 over `id.timestamp.body`, keyed
/// by the secret's decoded bytes. Used to sign outbound and to verify inbound webhooks.
pub fn webhook_mac(
    secret: &str,
    id: &str,
    timestamp: &str,
    body: &[u8],
) -> Result<Vec<u8>, CryptoError> {
    use base64::Engine;
    use hmac::{Hmac, Mac};
    let key = base64::engine::general_purpose::STANDARD
        .decode(secret.trim_start_matches("whsec_"))
        .map_err(|_| CryptoError::Malformed)?;
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&key).map_err(|_| CryptoError::Malformed)?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(mac.finalize().into_bytes().to_vec())
}

/// The `webhook-signature` header value for a message.
pub fn webhook_signature(
    secret: &str,
    id: &str,
    timestamp: i64,
    body: &[u8],
) -> Result<String, CryptoError> {
    use base64::Engine;
    let mac = webhook_mac(secret, id, &timestamp.to_string(), body)?;
    Ok(format!(
        "v1,{}",
        base64::engine::general_purpose::STANDARD.encode(mac)
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn master() -> MasterKey {
        MasterKey::from_base64(&MasterKey::generate_base64()).unwrap()
    }

    #[test]
    fn values_round_trip_and_are_bound_to_their_row() {
        let ring = Keyring::new(&master(), &[]);
        let aad = Aad::new("connection", "t1", "c1");
        let sealed = ring.encrypt(b"canary-token", &aad);
        assert!(sealed.starts_with(&format!("v1.{}.", ring.current_id())));
        assert!(!sealed.contains("canary"));
        assert_eq!(ring.decrypt(&sealed, &aad).unwrap(), b"canary-token");
        assert!(matches!(
            ring.decrypt(&sealed, &Aad::new("connection", "t2", "c1")),
            Err(CryptoError::Invalid)
        ));
        assert!(matches!(
            ring.decrypt(&sealed, &Aad::new("connection", "t1", "c2")),
            Err(CryptoError::Invalid)
        ));
        assert_ne!(
            sealed,
            ring.encrypt(b"canary-token", &aad),
            "fresh nonce each time"
        );
    }

    #[test]
    fn rotation_keeps_old_values_readable_until_reencrypted() {
        let old = master();
        let new = master();
        let aad = Aad::new("oauth_app", "t", "a");
        let sealed_old = Keyring::new(&old, &[]).encrypt(b"secret", &aad);
        let rotated = Keyring::new(&new, std::slice::from_ref(&old));
        assert!(rotated.is_stale(&sealed_old));
        assert_eq!(rotated.decrypt(&sealed_old, &aad).unwrap(), b"secret");
        let resealed = rotated.encrypt(b"secret", &aad);
        assert!(!rotated.is_stale(&resealed));
        let without_old = Keyring::new(&new, &[]);
        assert!(matches!(
            without_old.decrypt(&sealed_old, &aad),
            Err(CryptoError::UnknownKey(_))
        ));
        assert!(matches!(
            without_old.decrypt("garbage", &aad),
            Err(CryptoError::Malformed)
        ));
    }
}
