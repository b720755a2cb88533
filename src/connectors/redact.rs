//! Redaction of secret-looking values in text and JSON before anything from a provider
//! (error excerpts, payloads) is stored or shown.

use regex::Regex;
use std::sync::LazyLock;

static SECRET_PAIR: LazyLock<Option<Regex>> = LazyLock::new(|| {
    Regex::new(
        r#"(?i)("?(?:access_token|refresh_token|id_token|token|secret|client_secret|password|passwd|api[_-]?key|authorization|cookie|session)"?\s*[:=]\s*"?)([^"&\s,;}]+)"#,
    )
    .ok()
});
static BEARER: LazyLock<Option<Regex>> =
    LazyLock::new(|| Regex::new(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{6,}").ok());

/// Masks secret-looking values in free text (error messages, response excerpts).
pub fn redact_text(text: &str) -> String {
    let mut out = text.to_owned();
    // Credentials after an auth scheme first: `Authorization: Bearer x` would otherwise
    // lose only the word "Bearer" to the key/value rule.
    if let Some(re) = BEARER.as_ref() {
        out = re.replace_all(&out, "${1} [redacted]").into_owned();
    }
    if let Some(re) = SECRET_PAIR.as_ref() {
        out = re.replace_all(&out, "${1}[redacted]").into_owned();
    }
    out
}

fn secret_key(key: &str) -> bool {
    let k = key.to_ascii_lowercase();
    [
        "token",
        "secret",
        "password",
        "passwd",
        "apikey",
        "api_key",
        "api-key",
        "authorization",
        "cookie",
        "session",
        "ssn",
        "card",
    ]
    .iter()
    .any(|s| k.contains(s))
}

/// Masks values under secret-looking keys anywhere in a JSON document.
pub fn redact_json(value: &mut serde_json::Value) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map.iter_mut() {
                if secret_key(k) && !v.is_null() {
                    *v = serde_json::Value::String("[redacted]".into());
                } else {
                    redact_json(v);
                }
            }
        }
        serde_json::Value::Array(items) => items.iter_mut().for_each(redact_json),
        serde_json::Value::String(s) => *s = redact_text(s),
        _ => {}
    }
}

/// [`redact_json`] over JSON text (non-JSON text goes through [`redact_text`]).
pub fn redact_json_text(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(mut v) => {
            redact_json(&mut v);
            serde_json::to_string_pretty(&v).unwrap_or_default()
        }
        Err(_) => redact_text(text),
    }
}

/// A compact summary of field names, for support staff before they reveal a payload.
pub fn shape_of(text: &str) -> String {
    match serde_json::from_str::<serde_json::Value>(text) {
        Ok(serde_json::Value::Object(map)) => {
            let mut out = String::from("{ ");
            for (i, k) in map.keys().take(20).enumerate() {
                if i > 0 {
                    out.push_str(", ");
                }
                out.push_str(k);
                out.push_str(": …");
            }
            out.push_str(" }");
            out
        }
        Ok(_) => "(a JSON value)".into(),
        Err(_) => "(text)".into(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secrets_are_masked_in_text_and_json() {
        let text = r#"HTTP 401 {"error":"invalid","access_token":"abc.def.ghi"} Authorization: Bearer eyJhbGciOi.xyz"#;
        let out = redact_text(text);
        assert!(!out.contains("abc.def.ghi"), "{out}");
        assert!(!out.contains("eyJhbGciOi"), "{out}");
        assert!(out.contains("invalid"));
        let mut v = serde_json::json!({
            "email": "ada@example.com",
            "nested": {"api_key": "k-123", "list": [{"password": "hunter2"}]},
            "note": "token=s3cr3t&x=1"
        });
        redact_json(&mut v);
        let s = v.to_string();
        assert!(s.contains("ada@example.com"));
        for secret in ["k-123", "hunter2", "s3cr3t"] {
            assert!(!s.contains(secret), "{secret} leaked: {s}");
        }
    }
}
