//! "Known device" cookies (OWASP's device-cookie pattern): after a successful sign-in the
//! browser gets a signed cookie naming the user, so an attack that trips the per-account
//! lockout from elsewhere does not lock out the real user on their usual browser.

use crate::config::MasterKey;
use crate::domain::UserId;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Cookie name.
pub const COOKIE: &str = "sluice_device";
/// Lifetime of a device cookie.
pub const LIFETIME_DAYS: i64 = 90;

fn mac(key: &MasterKey, payload: &str) -> Option<Hmac<Sha256>> {
    // Domain-separate from encryption uses of the master key.
    let mut mac = Hmac::<Sha256>::new_from_slice(key.expose()).ok()?;
    mac.update(b"sluice-device-cookie-v1:");
    mac.update(payload.as_bytes());
    Some(mac)
}

/// Issues a cookie value for `user`, valid until `expires_unix`.
pub fn issue(key: &MasterKey, user: UserId, expires_unix: i64) -> String {
    let payload = format!("{user}.{expires_unix}");
    let tag = mac(key, &payload)
        .map(|m| hex::encode(m.finalize().into_bytes()))
        .unwrap_or_default();
    format!("{payload}.{tag}")
}

/// Whether `value` is an unexpired device cookie for `user`.
pub fn verify(key: &MasterKey, value: &str, user: UserId, now_unix: i64) -> bool {
    let mut parts = value.rsplitn(2, '.');
    let (Some(tag), Some(payload)) = (parts.next(), parts.next()) else {
        return false;
    };
    let Some((who, expires)) = payload.split_once('.') else {
        return false;
    };
    let Ok(tag) = hex::decode(tag) else {
        return false;
    };
    let fresh = expires.parse::<i64>().is_ok_and(|e| e > now_unix);
    let signed = mac(key, payload).is_some_and(|m| m.verify_slice(&tag).is_ok());
    fresh && signed && who == user.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_device_cookie_is_bound_to_user_key_and_time() {
        let key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let other_key = MasterKey::from_base64(&MasterKey::generate_base64()).unwrap();
        let ada = UserId::new();
        let cookie = issue(&key, ada, 1_000);
        assert!(verify(&key, &cookie, ada, 999));
        assert!(!verify(&key, &cookie, ada, 1_000), "expired");
        assert!(!verify(&key, &cookie, UserId::new(), 999), "other user");
        assert!(!verify(&other_key, &cookie, ada, 999), "other key");
        assert!(
            !verify(&key, &cookie.replace(".1000.", ".9999."), ada, 999),
            "tampered"
        );
        assert!(!verify(&key, "garbage", ada, 0));
    }
}
