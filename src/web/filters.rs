//! Filter forms submitted by GET: reading optional fields and dates, and rebuilding the
//! query string for "older" links and exports.

use crate::domain::TimeZone;
use chrono::{DateTime, NaiveDate, NaiveDateTime, Utc};

/// A filled-in field, trimmed; `None` when absent or blank.
pub fn present(v: &Option<String>) -> Option<&str> {
    v.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

/// A date (`2026-11-22`, from its midnight) or date-time (`2026-11-22T13:05`), read as a
/// wall-clock time of the workspace's zone `tz`, the zone its pages show times in.
pub fn parse_time(raw: &str, tz: TimeZone) -> Option<DateTime<Utc>> {
    let local = match NaiveDate::parse_from_str(raw, "%Y-%m-%d") {
        Ok(d) => d.and_hms_opt(0, 0, 0)?,
        Err(_) => NaiveDateTime::parse_from_str(raw, "%Y-%m-%dT%H:%M").ok()?,
    };
    tz.from_local(local)
}

/// The query string of the filled-in fields (for pagination links and exports).
pub fn query_string(fields: &[(&str, &Option<String>)]) -> String {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(k, v)| present(v).map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}
