//! When flows run: fixed intervals and cron schedules in the tenant's time zone.

use crate::domain::TimeZone;
use crate::domain::TriggerKind;
use crate::domain::flow::TriggerSpec;
use chrono::{DateTime, Utc};
use croner::Cron;
use std::str::FromStr;

/// Longest fixed interval: a week.
pub const MAX_INTERVAL_MINUTES: u32 = 7 * 24 * 60;

/// Checks a trigger; the message names what is wrong.
pub fn validate(trigger: &TriggerSpec) -> Result<(), (&'static str, String)> {
    match trigger.kind {
        TriggerKind::Interval => match trigger.interval_minutes {
            Some(m) if (1..=MAX_INTERVAL_MINUTES).contains(&m) => Ok(()),
            _ => Err((
                "interval_minutes",
                format!("Enter minutes between runs, from 1 to {MAX_INTERVAL_MINUTES}."),
            )),
        },
        TriggerKind::Cron => {
            let expr = trigger.cron.as_deref().unwrap_or_default().trim();
            if expr.split_whitespace().count() != 5 {
                return Err((
                    "cron",
                    "Enter five fields: minute hour day-of-month month day-of-week, e.g. 0 6 * * MON-FRI."
                        .into(),
                ));
            }
            Cron::from_str(expr)
                .map(|_| ())
                .map_err(|e| ("cron", format!("Not a valid cron schedule: {e}.")))
        }
        TriggerKind::Manual | TriggerKind::Webhook => Ok(()),
    }
}

/// The first scheduled time strictly after `after` (none for manual and webhook flows).
pub fn next_after(
    trigger: &TriggerSpec,
    time_zone: TimeZone,
    after: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    match trigger.kind {
        TriggerKind::Interval => trigger
            .interval_minutes
            .map(|m| after + chrono::Duration::minutes(i64::from(m))),
        TriggerKind::Cron => {
            let cron = Cron::from_str(trigger.cron.as_deref()?.trim()).ok()?;
            let local = after.with_timezone(&time_zone.tz());
            cron.find_next_occurrence(&local, false)
                .ok()
                .map(|t| t.with_timezone(&Utc))
        }
        TriggerKind::Manual | TriggerKind::Webhook => None,
    }
}

/// The tick after the one scheduled at `scheduled`, reached at `now`: counted from the
/// schedule, not from when the tick was noticed (else a 1-minute interval drifts to one
/// run per minute plus the scheduler's delay). After a downtime that skipped ticks, the
/// next one is counted from now: one catch-up run, not one per missed tick.
pub fn next_tick(
    trigger: &TriggerSpec,
    time_zone: TimeZone,
    scheduled: DateTime<Utc>,
    now: DateTime<Utc>,
) -> Option<DateTime<Utc>> {
    next_after(trigger, time_zone, scheduled)
        .filter(|next| *next > now)
        .or_else(|| next_after(trigger, time_zone, now))
}

/// The next `n` run times, in the tenant's time zone, formatted for people.
pub fn upcoming(
    trigger: &TriggerSpec,
    time_zone: TimeZone,
    from: DateTime<Utc>,
    n: usize,
) -> Vec<String> {
    let tz = time_zone.tz();
    let mut out = Vec::with_capacity(n);
    let mut at = from;
    while out.len() < n {
        let Some(next) = next_after(trigger, time_zone, at) else {
            break;
        };
        out.push(
            next.with_timezone(&tz)
                .format("%a %d %b %Y, %H:%M %Z")
                .to_string(),
        );
        at = next;
    }
    out
}

/// The trigger in words ("Every 15 minutes", "At 06:00 on Monday through Friday").
pub fn describe(trigger: &TriggerSpec) -> String {
    match trigger.kind {
        TriggerKind::Manual => "Only when started by hand or through the API".into(),
        TriggerKind::Webhook => "When its webhook receives a signed event".into(),
        TriggerKind::Interval => match trigger.interval_minutes {
            Some(1) => "Every minute".into(),
            Some(m) if m % 60 == 0 && m >= 60 => match m / 60 {
                1 => "Every hour".into(),
                h => format!("Every {h} hours"),
            },
            Some(m) => format!("Every {m} minutes"),
            None => "Every … minutes".into(),
        },
        TriggerKind::Cron => trigger
            .cron
            .as_deref()
            .and_then(|c| Cron::from_str(c.trim()).ok())
            .map(|c| {
                let words = c.describe();
                let mut chars = words.chars();
                chars
                    .next()
                    .map(|f| f.to_uppercase().collect::<String>() + chars.as_str())
                    .unwrap_or_default()
            })
            .unwrap_or_else(|| "Invalid schedule".into()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn cron(expr: &str) -> TriggerSpec {
        TriggerSpec {
            kind: TriggerKind::Cron,
            interval_minutes: None,
            cron: Some(expr.into()),
        }
    }

    #[test]
    fn ticks_follow_the_schedule_not_the_moment_they_were_noticed() {
        let every_minute = TriggerSpec {
            kind: TriggerKind::Interval,
            interval_minutes: Some(1),
            cron: None,
        };
        let scheduled = Utc::now();
        let noticed = scheduled + chrono::Duration::seconds(5);
        assert_eq!(
            next_tick(
                &every_minute,
                crate::domain::TimeZone::UTC,
                scheduled,
                noticed
            ),
            Some(scheduled + chrono::Duration::minutes(1))
        );
        let after_downtime = scheduled + chrono::Duration::minutes(30);
        assert_eq!(
            next_tick(
                &every_minute,
                crate::domain::TimeZone::UTC,
                scheduled,
                after_downtime
            ),
            Some(after_downtime + chrono::Duration::minutes(1))
        );
    }

    fn berlin() -> crate::domain::TimeZone {
        "Europe/Berlin".parse().unwrap()
    }

    #[test]
    fn cron_runs_in_the_tenants_time_zone() {
        let at = Utc.with_ymd_and_hms(2026, 11, 23, 12, 0, 0).unwrap();
        // 06:00 in Berlin (UTC+1 in November) is 05:00 UTC, next day.
        let next = next_after(&cron("0 6 * * *"), berlin(), at).unwrap();
        assert_eq!(next, Utc.with_ymd_and_hms(2026, 11, 24, 5, 0, 0).unwrap());
        let shown = upcoming(&cron("0 6 * * *"), berlin(), at, 3);
        assert_eq!(shown.len(), 3);
        assert!(shown[0].contains("06:00"), "{shown:?}");
    }

    #[test]
    fn schedules_are_described_in_words() {
        assert!(describe(&cron("0 6 * * MON-FRI")).contains("06"));
        let every = TriggerSpec {
            kind: TriggerKind::Interval,
            interval_minutes: Some(120),
            cron: None,
        };
        assert_eq!(describe(&every), "Every 2 hours");
    }

    #[test]
    fn bad_schedules_are_refused_with_a_reason() {
        assert!(validate(&cron("61 * * * *")).is_err());
        assert!(validate(&cron("* * * * * *")).is_err());
        assert!(validate(&cron("*/15 * * * *")).is_ok());
    }
}
