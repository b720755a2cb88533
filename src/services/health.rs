//! What readiness and metrics report about the process itself.

use crate::app::App;
use crate::error::AppResult;

/// Whether the database accepts a write now (readiness: a full disk or a lost primary
/// shows here, not on reads).
pub async fn write_probe(app: &App, process: &str) -> Result<(), sea_orm::DbErr> {
    app.store.write_probe(process).await
}

/// Jobs waiting per queue.
pub async fn queue_depths(app: &App) -> AppResult<Vec<(String, i64)>> {
    Ok(app.store.queue_depths().await?)
}
