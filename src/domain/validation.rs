//! Validated inputs. A form becomes one of these types or a list of field errors;
//! services only ever see valid values.

use serde::Serialize;
use std::fmt;

/// Errors keyed by form field, in the order they were found.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct FieldErrors(Vec<(String, String)>);

impl FieldErrors {
    /// No errors yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// A single error on one field.
    pub fn single(field: &str, message: impl Into<String>) -> Self {
        let mut errors = Self::new();
        errors.add(field, message);
        errors
    }

    /// Records an error on `field`.
    pub fn add(&mut self, field: &str, message: impl Into<String>) {
        self.0.push((field.to_owned(), message.into()));
    }

    /// Keeps the value if valid, records the error otherwise.
    pub fn check<T>(&mut self, field: &str, result: Result<T, String>) -> Option<T> {
        match result {
            Ok(value) => Some(value),
            Err(message) => {
                self.add(field, message);
                None
            }
        }
    }

    /// The first message for `field`, for showing under that input.
    pub fn get(&self, field: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(f, _)| f == field)
            .map(|(_, m)| m.as_str())
    }

    /// Whether `field` has an error (templates use this to mark inputs).
    pub fn has(&self, field: &str) -> bool {
        self.get(field).is_some()
    }

    /// Whether any error was recorded.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Every message in one sentence, for a flash.
    pub fn summary(&self) -> String {
        self.iter().map(|(_, m)| m).collect::<Vec<_>>().join(" ")
    }

    /// All (field, message) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(f, m)| (f.as_str(), m.as_str()))
    }

    /// `Ok(value)` when nothing was recorded.
    pub fn into_result<T>(self, value: impl FnOnce() -> Option<T>) -> Result<T, FieldErrors> {
        if self.is_empty() {
            value().ok_or(self)
        } else {
            Err(self)
        }
    }
}

impl fmt::Display for FieldErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let parts: Vec<String> = self.0.iter().map(|(k, v)| format!("{k}: {v}")).collect();
        f.write_str(&parts.join("; "))
    }
}

/// A syntactically plausible e-mail address, trimmed and lower-cased.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Serialize)]
pub struct Email(String);

impl Email {
    /// Validates and normalises an address.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let value = raw.trim().to_lowercase();
        if value.is_empty() {
            return Err("Enter an e-mail address.".into());
        }
        if value.len() > 254 {
            return Err("An e-mail address has at most 254 characters.".into());
        }
        let Some((local, domain)) = value.split_once('@') else {
            return Err("Enter an e-mail address like name@example.com.".into());
        };
        let domain_ok = domain.contains('.')
            && !domain.starts_with('.')
            && !domain.ends_with('.')
            && domain
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
        if local.is_empty()
            || local.len() > 64
            || !domain_ok
            || value.chars().any(char::is_whitespace)
        {
            return Err("Enter an e-mail address like name@example.com.".into());
        }
        Ok(Self(value))
    }

    /// The normalised address.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Email {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A new password that meets the rules (NIST SP 800-63B: length, not composition).
pub struct NewPassword(String);

impl NewPassword {
    /// Shortest accepted password.
    pub const MIN_CHARS: usize = 10;
    /// Longest accepted password: long enough for passphrases and managers, short
    /// enough that hashing cannot be abused for denial of service.
    pub const MAX_CHARS: usize = 128;

    /// Validates a chosen password; `confirm` must repeat it.
    pub fn parse(raw: &str, confirm: &str, email: Option<&str>) -> Result<Self, String> {
        let chars = raw.chars().count();
        if chars < Self::MIN_CHARS {
            return Err(format!(
                "Use at least {} characters; a short phrase is easiest to remember.",
                Self::MIN_CHARS
            ));
        }
        if chars > Self::MAX_CHARS {
            return Err(format!("Use at most {} characters.", Self::MAX_CHARS));
        }
        if raw.trim().is_empty() {
            return Err("A password cannot be only spaces.".into());
        }
        let lower = raw.to_lowercase();
        if COMMON_PASSWORDS.contains(&lower.as_str())
            || email.is_some_and(|e| lower == e.to_lowercase())
        {
            return Err("This password is too easy to guess; choose another.".into());
        }
        if raw != confirm {
            return Err("The two passwords do not match.".into());
        }
        Ok(Self(raw.to_owned()))
    }

    /// The password, for hashing only.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for NewPassword {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("NewPassword(***)")
    }
}

/// Passwords that meet the length rule yet appear at the top of every breach list.
const COMMON_PASSWORDS: &[&str] = &[
    "password123",
    "password1234",
    "1234567890",
    "12345678910",
    "qwertyuiop",
    "1q2w3e4r5t",
    "iloveyou123",
    "passw0rd123",
    "administrator",
    "letmein1234",
    "welcome123",
    "0987654321",
    "abcdefghij",
    "aaaaaaaaaa",
    "sluicesluice",
];

/// A human name (person, tenant, token): trimmed, 1..=max characters, no control characters.
pub fn parse_name(raw: &str, what: &str, max: usize) -> Result<String, String> {
    let value = raw.trim();
    if value.is_empty() {
        return Err(format!("Enter a {what}."));
    }
    if value.chars().count() > max {
        return Err(format!("A {what} has at most {max} characters."));
    }
    if value.chars().any(char::is_control) {
        return Err(format!("A {what} cannot contain control characters."));
    }
    Ok(value.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn emails_are_normalised_and_checked() {
        assert_eq!(
            Email::parse("  Ada@Example.COM ").map(|e| e.0),
            Ok("ada@example.com".into())
        );
        for bad in [
            "",
            "ada",
            "ada@",
            "@x.io",
            "ada@localhost",
            "a b@x.io",
            "ada@x..io.",
        ] {
            assert!(Email::parse(bad).is_err(), "{bad} should be refused");
        }
    }

    #[test]
    fn passwords_need_length_not_composition() {
        assert!(NewPassword::parse("correct horse", "correct horse", None).is_ok());
        assert!(NewPassword::parse("short", "short", None).is_err());
        assert!(NewPassword::parse(&"x".repeat(129), &"x".repeat(129), None).is_err());
        let sixty_four = "é".repeat(64);
        assert!(NewPassword::parse(&sixty_four, &sixty_four, None).is_ok());
        assert!(NewPassword::parse("password123", "password123", None).is_err());
        assert!(NewPassword::parse("correct horse", "correct horsf", None).is_err());
        assert!(
            NewPassword::parse(
                "ada@example.com",
                "ada@example.com",
                Some("ada@example.com")
            )
            .is_err()
        );
    }

    #[test]
    fn names_are_trimmed_and_bounded() {
        assert_eq!(parse_name("  Acme ", "name", 10), Ok("Acme".into()));
        assert!(parse_name("   ", "name", 10).is_err());
        assert!(parse_name("abcdefghijk", "name", 10).is_err());
        assert!(parse_name("a\u{7}b", "name", 10).is_err());
    }
}
