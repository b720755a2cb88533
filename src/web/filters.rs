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

/// A list's search box and one choice (status, provider, …), from the query string.
#[derive(Clone, Debug, Default, serde::Deserialize)]
pub struct ListFilter {
    /// Words searched for in the rows' names.
    pub q: Option<String>,
    /// The chosen value of the list's one choice.
    pub only: Option<String>,
}

impl ListFilter {
    /// Whether any filter is set (an empty result then means "no match", not "none").
    pub fn is_set(&self) -> bool {
        present(&self.q).is_some() || present(&self.only).is_some()
    }

    /// Whether a row with these texts and this choice value passes: every word of the
    /// search appears in one of the texts (ignoring case), and the choice matches.
    pub fn keeps(&self, texts: &[&str], choice: &str) -> bool {
        let words_found = present(&self.q).is_none_or(|q| {
            q.split_whitespace().all(|word| {
                let word = word.to_lowercase();
                texts.iter().any(|t| t.to_lowercase().contains(&word))
            })
        });
        words_found && present(&self.only).is_none_or(|only| only == choice)
    }

    /// The search as typed, for the search box.
    pub fn search(&self) -> &str {
        present(&self.q).unwrap_or_default()
    }

    /// Whether `value` is the chosen one, for the choice's list.
    pub fn is(&self, value: &str) -> bool {
        present(&self.only) == Some(value)
    }
}

/// The query string of the filled-in fields (for pagination links and exports).
pub fn query_string(fields: &[(&str, &Option<String>)]) -> String {
    let pairs: Vec<(&str, &str)> = fields
        .iter()
        .filter_map(|(k, v)| present(v).map(|v| (*k, v)))
        .collect();
    serde_urlencoded::to_string(pairs).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::ListFilter;

    #[test]
    fn a_list_filter_keeps_rows_with_every_word_and_the_chosen_value() {
        let filter = ListFilter {
            q: Some(" crm  GLOBEX ".into()),
            only: Some("active".into()),
        };
        assert!(filter.keeps(&["Sandbox CRM — Globex", "Sandbox CRM"], "active"));
        assert!(
            !filter.keeps(&["Sandbox CRM — Initech"], "active"),
            "every word"
        );
        assert!(
            !filter.keeps(&["Sandbox CRM — Globex"], "paused"),
            "the choice"
        );
        assert!(ListFilter::default().keeps(&["anything"], "any"));
        assert!(!ListFilter::default().is_set());
    }
}
