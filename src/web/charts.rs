//! Server-rendered SVG charts: readable without hovering (labelled axes and gridlines),
//! no JavaScript. Only numbers and fixed labels go into the markup, never user text.

use crate::domain::TimeZone;
use crate::domain::text::Grouped;
use crate::services::records::Bucket;
use std::fmt::Write;

const W: f64 = 640.0;
const H: f64 = 200.0;
const LEFT: f64 = 56.0;
const RIGHT: f64 = 12.0;
const TOP: f64 = 12.0;
const BOTTOM: f64 = 28.0;

/// What a chart draws: buckets of `step_secs` seconds, labelled in the workspace zone.
#[derive(Clone, Copy)]
pub struct Series<'a> {
    /// The buckets, oldest first.
    pub buckets: &'a [Bucket],
    /// Seconds per bucket.
    pub step_secs: i64,
    /// The zone of the time labels.
    pub tz: TimeZone,
}

fn plot_w() -> f64 {
    W - LEFT - RIGHT
}

fn plot_h() -> f64 {
    H - TOP - BOTTOM
}

/// A "nice" axis maximum at or above `v` (1, 2, 2.5 or 5 times a power of ten), at
/// least 4 so the four gridlines of a count axis fall on whole numbers.
fn nice_max(v: f64) -> f64 {
    if v <= 4.0 {
        return 4.0;
    }
    let p = 10f64.powf(v.log10().floor());
    [1.0, 2.0, 2.5, 5.0, 10.0]
        .into_iter()
        .map(|m| m * p)
        .find(|m| *m >= v)
        .unwrap_or(10.0 * p)
}

/// A tick value in few characters, exact to two decimals of its unit: 12,500 is
/// "12.5k", never a rounded "12k" that a reader would take for the value.
fn compact(v: f64) -> String {
    let (scaled, unit) = if v >= 1_000_000.0 {
        (v / 1_000_000.0, "M")
    } else if v >= 1000.0 {
        (v / 1000.0, "k")
    } else {
        (v, "")
    };
    let text = format!("{scaled:.2}");
    let text = text.trim_end_matches('0').trim_end_matches('.');
    format!("{text}{unit}")
}

fn open(out: &mut String, label: &str) {
    let _ = write!(
        out,
        r#"<svg class="chart" viewBox="0 0 {W} {H}" role="img" aria-label="{label}" xmlns="http://www.w3.org/2000/svg">"#
    );
}

/// Horizontal gridlines with value labels, and time labels under the axis.
fn axes(out: &mut String, max: f64, suffix: &str, series: &Series) {
    let Series {
        buckets,
        step_secs,
        tz,
    } = *series;
    for i in 0..=4 {
        let v = max * f64::from(i) / 4.0;
        let y = TOP + plot_h() - plot_h() * f64::from(i) / 4.0;
        let _ = write!(
            out,
            r#"<line class="grid" x1="{LEFT}" x2="{}" y1="{y:.1}" y2="{y:.1}"/><text class="axis" x="{}" y="{:.1}" text-anchor="end">{}{suffix}</text>"#,
            W - RIGHT,
            LEFT - 6.0,
            y + 4.0,
            compact(v)
        );
    }
    let n = buckets.len().max(1);
    let every = (n / 6).max(1);
    for (i, b) in buckets.iter().enumerate() {
        if i % every != 0 && i != n - 1 {
            continue;
        }
        let Some(at) = chrono::DateTime::from_timestamp(b.start, 0) else {
            continue;
        };
        let at = at.with_timezone(&tz.tz());
        let label = if step_secs >= 6 * 3600 {
            at.format("%a %H:%M").to_string()
        } else {
            at.format("%H:%M").to_string()
        };
        let x = LEFT + plot_w() * (i as f64 + 0.5) / n as f64;
        let _ = write!(
            out,
            r#"<text class="axis" x="{x:.1}" y="{}" text-anchor="middle">{label}</text>"#,
            H - 8.0
        );
    }
}

/// Bars of records written per step.
pub fn throughput(series: &Series) -> String {
    let buckets = series.buckets;
    let max = nice_max(
        buckets
            .iter()
            .map(|b| b.totals.records_written as f64)
            .fold(0.0, f64::max),
    );
    let mut out = String::new();
    open(&mut out, "Records written over time");
    axes(&mut out, max, "", series);
    let n = buckets.len().max(1) as f64;
    let slot = plot_w() / n;
    for (i, b) in buckets.iter().enumerate() {
        let v = b.totals.records_written as f64;
        if v <= 0.0 {
            continue;
        }
        let h = plot_h() * v / max;
        let x = LEFT + slot * i as f64 + slot * 0.15;
        let _ = write!(
            out,
            r#"<rect class="bar" x="{x:.1}" y="{:.1}" width="{:.1}" height="{h:.1}"><title>{} records</title></rect>"#,
            TOP + plot_h() - h,
            slot * 0.7,
            b.totals.records_written.grouped()
        );
    }
    out.push_str("</svg>");
    out
}

/// Share of runs with errors (failed, or records lost) per step (a point per step with
/// runs, joined by a line).
pub fn error_rate(series: &Series) -> String {
    let buckets = series.buckets;
    let mut out = String::new();
    open(
        &mut out,
        "Runs that failed or lost records, in percent over time",
    );
    axes(&mut out, 100.0, "%", series);
    let n = buckets.len().max(1) as f64;
    let points: Vec<(f64, f64, &Bucket)> = buckets
        .iter()
        .enumerate()
        .filter_map(|(i, b)| {
            let rate = b.totals.error_rate()?;
            let x = LEFT + plot_w() * (i as f64 + 0.5) / n;
            let y = TOP + plot_h() - plot_h() * rate / 100.0;
            Some((x, y, b))
        })
        .collect();
    if points.len() > 1 {
        let path: Vec<String> = points
            .iter()
            .map(|(x, y, _)| format!("{x:.1},{y:.1}"))
            .collect();
        let _ = write!(
            out,
            r#"<polyline class="line" points="{}"/>"#,
            path.join(" ")
        );
    }
    for (x, y, b) in &points {
        let class = if b.totals.with_errors() > 0 {
            "dot bad"
        } else {
            "dot"
        };
        let _ = write!(
            out,
            r#"<circle class="{class}" cx="{x:.1}" cy="{y:.1}" r="3.5"><title>{} of {} runs failed or lost records</title></circle>"#,
            b.totals.with_errors(),
            b.totals.runs
        );
    }
    out.push_str("</svg>");
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::services::records::Totals;

    fn bucket(start: i64, runs: i64, failed: i64, written: i64) -> Bucket {
        Bucket {
            start,
            totals: Totals {
                runs,
                failed,
                records_written: written,
                ..Totals::default()
            },
        }
    }

    #[test]
    fn axes_round_up_to_readable_values() {
        assert_eq!(nice_max(0.0), 4.0);
        assert_eq!(nice_max(3.0), 4.0);
        assert_eq!(nice_max(7.0), 10.0);
        assert_eq!(nice_max(180.0), 200.0);
        assert_eq!(nice_max(2100.0), 2500.0);
        assert_eq!(compact(12_500.0), "12.5k");
        assert_eq!(compact(37_500.0), "37.5k");
        assert_eq!(compact(10_000.0), "10k");
        assert_eq!(compact(2_500.0), "2.5k");
        assert_eq!(compact(1_250_000.0), "1.25M");
        assert_eq!(compact(0.5), "0.5");
        assert_eq!(compact(0.0), "0");
        assert_eq!(compact(75.0), "75");
    }

    #[test]
    fn charts_draw_one_mark_per_step_with_data_and_label_their_axes() {
        let b = vec![
            bucket(0, 4, 1, 100),
            bucket(3600, 0, 0, 0),
            bucket(7200, 2, 2, 0),
        ];
        let series = Series {
            buckets: &b,
            step_secs: 3600,
            tz: TimeZone::UTC,
        };
        let bars = throughput(&series);
        assert_eq!(bars.matches("<rect").count(), 1);
        assert!(bars.contains(">100 records<"));
        assert!(
            bars.contains(">100<"),
            "the axis is labelled with its maximum"
        );
        let rate = error_rate(&series);
        assert_eq!(rate.matches("<circle").count(), 2, "no point without runs");
        assert!(rate.contains("1 of 4 runs failed or lost records"));
        assert!(rate.contains(">100%<"));
    }

    #[test]
    fn time_labels_are_in_the_workspace_zone() {
        let b = vec![bucket(0, 1, 0, 10), bucket(3600, 1, 0, 10)];
        let at = |tz: &str| {
            throughput(&Series {
                buckets: &b,
                step_secs: 3600,
                tz: tz.parse().unwrap(),
            })
        };
        assert!(at("UTC").contains(">00:00<") && at("UTC").contains(">01:00<"));
        let tokyo = at("Asia/Tokyo");
        assert!(
            tokyo.contains(">09:00<") && tokyo.contains(">10:00<"),
            "{tokyo}"
        );
    }
}
