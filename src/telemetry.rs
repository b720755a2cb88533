//! Logging (pretty or JSON) and the Prometheus recorder.

use crate::config::{LogFormat, Settings};
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use std::sync::OnceLock;
use tracing_subscriber::EnvFilter;

/// Installs the global log subscriber. Safe to call more than once (tests).
pub fn init(settings: &Settings) {
    let filter = EnvFilter::try_new(&settings.log).unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt().with_env_filter(filter);
    let _ = match settings.log_format {
        LogFormat::Json => builder.json().flatten_event(true).try_init(),
        LogFormat::Pretty => builder.compact().try_init(),
    };
}

/// The process-wide Prometheus recorder (installed once; tests start many apps).
pub fn prometheus() -> PrometheusHandle {
    static HANDLE: OnceLock<PrometheusHandle> = OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let builder = PrometheusBuilder::new()
                .set_buckets(&[
                    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
                ])
                .unwrap_or_else(|_| PrometheusBuilder::new());
            match builder.install_recorder() {
                Ok(handle) => handle,
                Err(e) => {
                    tracing::warn!(error = %e, "a metrics recorder was already installed");
                    PrometheusBuilder::new().build_recorder().handle()
                }
            }
        })
        .clone()
}

/// Most tenants that get their own `tenant` label value; the rest share `other`, so a
/// platform with thousands of tenants cannot explode the metrics' cardinality.
pub const MAX_TENANT_LABELS: usize = 100;

/// The `tenant` label value for a tenant: its id for the first [`MAX_TENANT_LABELS`]
/// tenants this process sees, `other` afterwards.
pub fn tenant_label(tenant: crate::domain::TenantId) -> String {
    static SEEN: OnceLock<std::sync::Mutex<std::collections::HashSet<crate::domain::TenantId>>> =
        OnceLock::new();
    let seen = SEEN.get_or_init(Default::default);
    let Ok(mut seen) = seen.lock() else {
        return "other".into();
    };
    if seen.contains(&tenant) || seen.len() < MAX_TENANT_LABELS {
        seen.insert(tenant);
        tenant.to_string()
    } else {
        "other".into()
    }
}
