//! Alerts: the rule kinds a tenant can watch for, an alert's lifecycle, notification
//! channels and their deliveries, and the classes a failed run is filed under.

named_states!(
    /// What an alert rule watches for.
    AlertKind {
        /// A run ended as failed, or with records in the dead letters.
        RunFailed = ("run_failed", "Run failed", "danger"),
        /// N runs in a row failed (threshold = N).
        ConsecutiveFailures = ("consecutive_failures", "Consecutive failures", "danger"),
        /// Failed runs above X % (threshold) of the runs in a window.
        ErrorRate = ("error_rate", "Error rate", "danger"),
        /// No successful run within a window (of an active, scheduled flow).
        Freshness = ("freshness", "Stale data", "warning"),
        /// A run "succeeded" with 0 records, or Y % (threshold) fewer than the recent median.
        SilentFailure = ("silent_failure", "Silent failure", "warning"),
        /// A connection must be reconnected, or its token refresh failed N times in a row.
        ConnectionReauth = ("connection_reauth", "Connection needs attention", "danger"),
        /// A run took longer than T seconds (threshold).
        Duration = ("duration", "Slow run", "warning"),
        /// A flow paused itself after repeated failures.
        AutoPaused = ("auto_paused", "Flow auto-paused", "danger"),
    }
);

impl AlertKind {
    /// What the threshold means for this kind, for forms; `None` when it has none.
    pub fn threshold_label(self) -> Option<&'static str> {
        match self {
            AlertKind::ConsecutiveFailures => Some("failed runs in a row"),
            AlertKind::ErrorRate => Some("% of runs failed"),
            AlertKind::SilentFailure => Some("% drop against the recent median"),
            AlertKind::ConnectionReauth => Some("refresh failures in a row"),
            AlertKind::Duration => Some("seconds"),
            _ => None,
        }
    }

    /// Whether the rule needs a time window.
    pub fn uses_window(self) -> bool {
        matches!(self, AlertKind::ErrorRate | AlertKind::Freshness)
    }

    /// Whether the rule is about connections rather than flows.
    pub fn about_connections(self) -> bool {
        self == AlertKind::ConnectionReauth
    }

    /// One sentence saying when a rule of this kind fires.
    pub fn explain(self, threshold: Option<f64>, window_minutes: Option<i32>) -> String {
        let t = threshold.unwrap_or_default();
        let w = window_minutes.unwrap_or_default();
        match self {
            AlertKind::RunFailed => {
                "A run fails, or finishes with records in the dead letters.".into()
            }
            AlertKind::ConsecutiveFailures => format!("{t:.0} runs in a row fail."),
            AlertKind::ErrorRate => {
                format!(
                    "More than {t:.0} % of the runs in the last {} fail (at least 3 runs).",
                    minutes(w)
                )
            }
            AlertKind::Freshness => {
                format!(
                    "An active scheduled flow has no successful run for {}.",
                    minutes(w)
                )
            }
            AlertKind::SilentFailure => format!(
                "A run succeeds with 0 records, or {t:.0} % fewer than the median of the last 10, where records are usual."
            ),
            AlertKind::ConnectionReauth => format!(
                "A connection must be reconnected, or its token refresh fails {t:.0} times in a row."
            ),
            AlertKind::Duration => format!("A run takes longer than {}.", seconds(t)),
            AlertKind::AutoPaused => "A flow pauses itself after repeated failures.".into(),
        }
    }
}

/// "90 minutes" → "1 h 30 min".
pub fn minutes(m: i32) -> String {
    match (m / 60, m % 60) {
        (0, m) => format!("{m} min"),
        (h, 0) if h % 24 == 0 => format!("{} d", h / 24),
        (h, 0) => format!("{h} h"),
        (h, m) => format!("{h} h {m} min"),
    }
}

fn seconds(s: f64) -> String {
    if s >= 60.0 {
        minutes((s / 60.0).round() as i32)
    } else {
        format!("{s:.0} s")
    }
}

named_states!(
    /// An alert's lifecycle: open → acknowledged → resolved (or open → resolved).
    AlertState {
        /// Needs attention.
        Open = ("open", "Open", "danger"),
        /// Someone is on it; no further notifications.
        Acknowledged = ("acknowledged", "Acknowledged", "warning"),
        /// The condition cleared (automatically or by hand).
        Resolved = ("resolved", "Resolved", "success"),
    }
);

named_states!(
    /// Where alert notifications go (in-app needs no channel: the alerts page and the
    /// dashboard always show them).
    ChannelKind {
        /// An e-mail address, over the configured SMTP server.
        Email = ("email", "E-mail", "neutral"),
        /// An HTTPS endpoint, signed per the Standard Webhooks specification.
        Webhook = ("webhook", "Signed webhook", "neutral"),
        /// A Slack-compatible incoming webhook (`{"text": …}`).
        Slack = ("slack", "Slack", "neutral"),
    }
);

named_states!(
    /// Where one notification stands.
    DeliveryState {
        /// Waiting for its job (or for its next attempt).
        Pending = ("pending", "Pending", "info"),
        /// Accepted by the receiver.
        Delivered = ("delivered", "Delivered", "success"),
        /// Given up: attempts exhausted, or the endpoint is gone.
        Failed = ("failed", "Failed", "danger"),
    }
);

named_states!(
    /// Why a run failed, for search and grouping.
    ErrorClass {
        /// The connection must be reconnected.
        Auth = ("auth", "Authentication", "danger"),
        /// The provider kept answering 429.
        RateLimited = ("rate_limited", "Rate limited", "warning"),
        /// The provider kept failing (5xx, timeouts, network).
        Unavailable = ("unavailable", "Provider unavailable", "danger"),
        /// The provider refused a call (4xx).
        Rejected = ("rejected", "Rejected by provider", "danger"),
        /// The flow or its connections cannot work as configured.
        Config = ("config", "Configuration", "warning"),
        /// The run finished, but some records went to the dead letters.
        Records = ("records", "Record failures", "warning"),
    }
);
