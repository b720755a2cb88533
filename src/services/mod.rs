//! Use cases, called by web handlers, the API, the command line and jobs. They validate,
//! authorise (by role, inside the `TenantCtx` they are given), write, and audit.

pub mod accounts;
pub mod alerts;
pub mod api_tokens;
pub mod branding;
pub mod connect_links;
pub mod connections;
pub mod dashboard;
pub mod flow_documents;
pub mod flow_templates;
pub mod flows;
pub mod health;
pub mod keys;
pub mod members;
pub mod records;
pub mod runs;
pub mod seed;
pub mod support;
pub mod tenants;
pub mod webhooks;

use crate::domain::TenantCtx;

/// Refuses the action unless the caller may change tenant configuration.
pub fn require_write(ctx: &TenantCtx) -> Result<(), crate::error::AppError> {
    if ctx.role().can_write() {
        Ok(())
    } else {
        Err(crate::error::AppError::Forbidden)
    }
}
