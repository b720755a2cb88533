//! Master key rotation: re-encrypts every stored secret under the current key while the
//! previous keys still decrypt, so it runs with the service up.

use crate::app::App;
use crate::crypto::Aad;
use crate::domain::TenantId;
use crate::error::AppResult;

/// What a rotation did.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct RotationReport {
    /// Values re-encrypted under the current key.
    pub rotated: usize,
    /// Values already under the current key.
    pub current: usize,
    /// Values changed concurrently (rewritten by a refresh meanwhile: already current).
    pub skipped: usize,
}

fn aad_for(table: &str, tenant: TenantId, id: &str) -> Aad {
    let purpose = match table {
        "oauth_apps" => "oauth_app",
        "connections" => "connection",
        "flows" => "flow_webhook",
        "notification_channels" => "channel_secret",
        _ => "oauth_state",
    };
    Aad::new(purpose, tenant, id)
}

/// Re-encrypts every value not yet under the current key.
pub async fn rotate(app: &App) -> AppResult<RotationReport> {
    let mut report = RotationReport::default();
    for (table, id, tenant, sealed) in app.store.encrypted_values().await? {
        if !app.keyring.is_stale(&sealed) {
            report.current += 1;
            continue;
        }
        let aad = aad_for(table, tenant, &id);
        let plain = app.keyring.decrypt(&sealed, &aad).map_err(|e| {
            anyhow::anyhow!("{table} {id}: {e} (is the old key in SLUICE_PREVIOUS_MASTER_KEYS?)")
        })?;
        let resealed = app.keyring.encrypt(&plain, &aad);
        if app
            .store
            .replace_encrypted(table, &id, &sealed, &resealed)
            .await?
        {
            report.rotated += 1;
        } else {
            report.skipped += 1;
        }
    }
    tracing::info!(
        rotated = report.rotated,
        current = report.current,
        skipped = report.skipped,
        key = app.keyring.current_id(),
        "key rotation finished"
    );
    Ok(report)
}
