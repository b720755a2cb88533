//! The incremental position: the newest last-change value a read has seen, compared as
//! the time (or number) it stands for, and sent back in the form the provider filters by.

use chrono::{DateTime, Utc};
use serde_json::Value as Json;

/// The value of a record's last-change field (dotted, e.g. `MetaData.LastUpdatedTime`),
/// when it is text or a number.
pub fn field_value(record: &Json, field: &str) -> Option<String> {
    let found = field
        .split('.')
        .try_fold(record, |node, part| node.get(part))?;
    match found {
        Json::String(s) if !s.is_empty() => Some(s.clone()),
        Json::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The instant a last-change value names: RFC 3339, ISO 8601 with a `+0000` offset
/// (Salesforce, Jira) or none (read as UTC), or a Microsoft JSON date
/// (`/Date(1573755038314+0000)/`, Xero).
pub fn instant(text: &str) -> Option<DateTime<Utc>> {
    if let Some(inner) = text
        .strip_prefix("/Date(")
        .and_then(|t| t.strip_suffix(")/"))
    {
        let millis = inner
            .find(['+', '-'])
            .filter(|at| *at > 0)
            .map_or(inner, |at| &inner[..at]);
        return DateTime::from_timestamp_millis(millis.parse().ok()?);
    }
    DateTime::parse_from_rfc3339(text)
        .or_else(|_| DateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f%z"))
        .map(|at| at.with_timezone(&Utc))
        .ok()
        .or_else(|| {
            chrono::NaiveDateTime::parse_from_str(text, "%Y-%m-%dT%H:%M:%S%.f")
                .ok()
                .map(|at| at.and_utc())
        })
}

/// Whether `candidate` is a later change than `than`: as times when both are, as numbers
/// when both are (epoch values), else as text.
pub fn is_later(candidate: &str, than: &str) -> bool {
    if let (Some(a), Some(b)) = (instant(candidate), instant(than)) {
        return a > b;
    }
    if let (Ok(a), Ok(b)) = (candidate.parse::<f64>(), than.parse::<f64>()) {
        return a > b;
    }
    candidate > than
}

/// `since` as the provider wants it: `lookback_seconds` earlier and written in `format`
/// (a chrono format, in UTC) when it is a time; as read from the records otherwise.
pub fn since_text(since: &str, format: Option<&str>, lookback_seconds: u32) -> String {
    let Some(at) = instant(since) else {
        return since.to_owned();
    };
    let at = at - chrono::Duration::seconds(i64::from(lookback_seconds));
    match format {
        Some(format) => at.format(format).to_string(),
        None if lookback_seconds > 0 => at.to_rfc3339_opts(chrono::SecondsFormat::AutoSi, true),
        // As read, so a provider gets back exactly what it gave.
        None => since.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn since_is_rewritten_in_the_providers_format() {
        let soql = Some("%Y-%m-%dT%H:%M:%SZ");
        assert_eq!(
            since_text("2026-01-01T01:23:20.000+0000", soql, 0),
            "2026-01-01T01:23:20Z"
        );
        assert_eq!(
            since_text("2026-01-01T02:00:00+01:00", soql, 0),
            "2026-01-01T01:00:00Z"
        );
        assert_eq!(
            since_text("1767230000", soql, 0),
            "1767230000",
            "not a time: as read"
        );
        assert_eq!(
            since_text("2026-01-01T01:23:20.000+0000", None, 0),
            "2026-01-01T01:23:20.000+0000"
        );
        assert_eq!(
            since_text("/Date(1767230000000+0000)/", Some("%Y-%m-%dT%H:%M:%S"), 0),
            "2026-01-01T01:13:20"
        );
    }

    #[test]
    fn a_lookback_window_moves_since_earlier() {
        assert_eq!(
            since_text("2026-01-01T10:00:30Z", Some("%Y-%m-%d %H:%M"), 60),
            "2026-01-01 09:59"
        );
        assert_eq!(
            since_text("2026-01-01T10:00:30Z", None, 300),
            "2026-01-01T09:55:30Z"
        );
    }

    #[test]
    fn changes_are_compared_as_the_times_they_name() {
        // Text order would say otherwise for each pair.
        assert!(is_later(
            "2026-01-01T10:00:00Z",
            "2026-01-01T11:30:00+02:00"
        ));
        assert!(is_later("2026-01-01T10:00:00.5Z", "2026-01-01T10:00:00Z"));
        assert!(is_later(
            "/Date(1767300000000+0000)/",
            "/Date(999999999999+0000)/"
        ));
        assert!(is_later("1767300000000", "999999999999"));
        assert!(!is_later(
            "2026-01-01T10:00:00Z",
            "2026-01-01T10:00:00.000+0000"
        ));
    }

    #[test]
    fn nested_and_numeric_change_fields_are_read() {
        let record = json!({"MetaData": {"LastUpdatedTime": "2026-01-01T10:00:00-08:00"}, "ts": 17, "e": ""});
        assert_eq!(
            field_value(&record, "MetaData.LastUpdatedTime").as_deref(),
            Some("2026-01-01T10:00:00-08:00")
        );
        assert_eq!(field_value(&record, "ts").as_deref(), Some("17"));
        assert_eq!(field_value(&record, "e"), None);
        assert_eq!(field_value(&record, "MetaData.missing"), None);
    }
}
