//! A tenant's time zone: an IANA name, stored as text and read back as a zone, so a name
//! nobody knows is a read error rather than a silent UTC.

use chrono_tz::Tz;
use std::fmt;
use std::str::FromStr;

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
}
