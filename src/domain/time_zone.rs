//! A tenant's time zone: an IANA name, stored as text and read back as a zone, so a name
//! nobody knows is a read error rather than a silent UTC.

use chrono::{DateTime, Utc};
use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

/// An instant however a template holds it: templates pass fields by reference, and
/// `if let` inside loops adds one more.
pub trait Instant {
    /// The instant.
    fn instant(&self) -> DateTime<Utc>;
}

impl Instant for DateTime<Utc> {
    fn instant(&self) -> DateTime<Utc> {
        *self
    }
}

impl<T: Instant + ?Sized> Instant for &T {
    fn instant(&self) -> DateTime<Utc> {
        (**self).instant()
    }
}

/// An IANA time zone, e.g. `Europe/Berlin`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, sea_orm::DeriveValueType)]
#[sea_orm(value_type = "String")]
pub struct TimeZone(Tz);

impl TimeZone {
    /// Coordinated Universal Time, every new workspace's zone.
    pub const UTC: TimeZone = TimeZone(Tz::UTC);

    /// The zone, for date arithmetic.
    pub fn tz(self) -> Tz {
        self.0
    }

    /// `t` as people of this zone read it, to the minute and with the zone's abbreviation
    /// (`2026-12-04 13:05 CET`), so a time on a page is never ambiguous.
    pub fn at(self, t: impl Instant) -> String {
        self.local(t, "%Y-%m-%d %H:%M %Z")
    }

    /// [`TimeZone::at`] to the second.
    pub fn at_secs(self, t: impl Instant) -> String {
        self.local(t, "%Y-%m-%d %H:%M:%S %Z")
    }

    /// [`TimeZone::at`] to the millisecond, for log lines.
    pub fn at_millis(self, t: impl Instant) -> String {
        self.local(t, "%Y-%m-%d %H:%M:%S%.3f %Z")
    }

    /// The local calendar day of `t` (`2026-12-04`).
    pub fn date(self, t: impl Instant) -> String {
        self.local(t, "%Y-%m-%d")
    }

    /// The local wall-clock value of `t` for a `datetime-local` input (`2026-12-04T13:05`).
    pub fn input_value(self, t: impl Instant) -> String {
        self.local(t, "%Y-%m-%dT%H:%M")
    }

    /// `t` with this zone's offset, for files read by programs (`2026-12-04T13:05:09+01:00`).
    pub fn rfc3339(self, t: impl Instant) -> String {
        t.instant()
            .with_timezone(&self.0)
            .to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

    /// A wall-clock time of this zone as an instant. A time skipped by a daylight-saving
    /// change is read an hour later; a repeated one as its first occurrence.
    pub fn from_local(self, local: chrono::NaiveDateTime) -> Option<DateTime<Utc>> {
        use chrono::offset::LocalResult;
        let resolve = |l: chrono::NaiveDateTime| match l.and_local_timezone(self.0) {
            LocalResult::Single(t) | LocalResult::Ambiguous(t, _) => Some(t.with_timezone(&Utc)),
            LocalResult::None => None,
        };
        resolve(local).or_else(|| resolve(local + chrono::Duration::hours(1)))
    }

    fn local(self, t: impl Instant, format: &str) -> String {
        t.instant()
            .with_timezone(&self.0)
            .format(format)
            .to_string()
    }
}

impl fmt::Display for TimeZone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.0.name())
    }
}

impl FromStr for TimeZone {
    type Err = super::UnknownName;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        s.parse()
            .map(TimeZone)
            .map_err(|_| super::UnknownName::new("time zone", s))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn zones_round_trip_by_name_and_unknown_names_are_refused() {
        let berlin: TimeZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(berlin.to_string(), "Europe/Berlin");
        assert!("Mars/Olympus_Mons".parse::<TimeZone>().is_err());
    }

    #[test]
    fn times_read_in_the_zone_with_its_abbreviation() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T12:05:09.250Z")
            .unwrap()
            .with_timezone(&Utc);
        let berlin: TimeZone = "Europe/Berlin".parse().unwrap();
        assert_eq!(berlin.at(t), "2026-12-04 13:05 CET");
        let in_a_loop: &&DateTime<Utc> = &&t;
        assert_eq!(berlin.at_secs(in_a_loop), "2026-12-04 13:05:09 CET");
        assert_eq!(berlin.at_millis(t), "2026-12-04 13:05:09.250 CET");
        assert_eq!(TimeZone::UTC.at(t), "2026-12-04 12:05 UTC");
        let tokyo: TimeZone = "Asia/Tokyo".parse().unwrap();
        assert_eq!(tokyo.date(t), "2026-12-04");
        assert_eq!(tokyo.rfc3339(t), "2026-12-04T21:05:09+09:00");
        assert_eq!(berlin.input_value(t), "2026-12-04T13:05");
    }

    #[test]
    fn local_times_become_instants_across_daylight_saving_changes() {
        let berlin: TimeZone = "Europe/Berlin".parse().unwrap();
        let read = |s: &str| {
            berlin
                .from_local(chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M").unwrap())
                .unwrap()
                .to_rfc3339()
        };
        assert_eq!(read("2026-12-04T13:05"), "2026-12-04T12:05:00+00:00");
        // 02:30 on 29 March 2026 does not exist in Berlin; 03:30 CEST does.
        assert_eq!(read("2026-03-29T02:30"), "2026-03-29T01:30:00+00:00");
        // 02:30 on 25 October 2026 happens twice; the first (CEST) is meant.
        assert_eq!(read("2026-10-25T02:30"), "2026-10-25T00:30:00+00:00");
    }
}
