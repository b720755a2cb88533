//! Seeds a large, realistic run history (tenants, owners, connections, flows, runs and
//! their rollups) for benchmarks and demos at scale: `sluice admin seed-history`.
//!
//! Tenants, connections and flows go through the normal code paths; runs and rollups are
//! written in bulk, with ids whose time part matches when each run happened, exactly as
//! if they had run over the past 30 days.

use crate::app::{App, AuditActor};
use crate::domain::{
    Actor, ConnectionId, Email, ErrorClass, FlowId, FlowVersionId, Role, RunId, RunStatus,
    RunTrigger, TenantCtx,
};
use crate::store::entities::{connections, runs};
use crate::store::metrics::{HOUR, MINUTE, bucket_of};
use crate::store::{Totals, now};
use anyhow::Context;
use chrono::{DateTime, Duration, Utc};
use rand::Rng;
use sea_orm::Set;
use std::collections::HashMap;

/// Flows per seeded tenant.
const FLOWS_PER_TENANT: usize = 3;
/// Days of history.
const DAYS: i64 = 30;

/// What was seeded.
#[derive(Debug, Default)]
pub struct SeedReport {
    /// Tenants created.
    pub tenants: u32,
    /// Runs written.
    pub runs: u64,
    /// Rollup rows written.
    pub rollups: u64,
}

/// The sign-in of seeded tenant `i` (all share `password`).
pub fn owner_email(i: u32) -> String {
    format!("owner{i}@seed.example")
}

/// Seeds `tenants` tenants with `runs` runs in total.
pub async fn history(
    app: &App,
    tenants: u32,
    runs: u64,
    password: &str,
) -> anyhow::Result<SeedReport> {
    let hash = crate::auth::password::hash(password).await?;
    let per_tenant = runs / u64::from(tenants.max(1));
    let actor = AuditActor {
        label: "Seed".into(),
        ip: None,
    };
    let mut report = SeedReport::default();
    let mut rng = rand::rng();
    for t in 0..tenants {
        let email = Email::parse(&owner_email(t)).map_err(anyhow::Error::msg)?;
        let user = match app
            .store
            .create_user(&email, &format!("Owner {t}"), &hash)
            .await?
        {
            Some(u) => u,
            None => app
                .store
                .user_by_email(&email)
                .await?
                .context("seeded owner vanished")?,
        };
        let Some(tenant) = app
            .store
            .create_tenant(&format!("Seed {t}"), &format!("seed-{t}"), user.id)
            .await?
        else {
            continue;
        };
        let ctx = TenantCtx::new(tenant, Role::Owner, Actor::System);
        crate::services::alerts::defaults::install(app, &ctx).await?;
        let crm = connection(app, &ctx, "sandbox_crm", "CRM").await?;
        let erp = connection(app, &ctx, "sandbox_erp", "ERP").await?;
        let mut flows = Vec::new();
        for f in 0..FLOWS_PER_TENANT {
            flows.push(flow(app, &ctx, &actor, &format!("Flow {f}"), crm, erp).await?);
        }
        let rows = random_runs(&mut rng, &ctx, &flows, per_tenant);
        report.rollups += write_rollups(app, &rows).await?;
        for chunk in rows.chunks(500) {
            app.store.insert_runs_bulk(chunk.to_vec()).await?;
        }
        for f in &flows {
            if let Some(last) = rows.iter().filter(|r| r.flow_id == *f).max_by_key(|r| r.id) {
                app.store.note_last_run(&ctx, last).await?;
            }
        }
        report.runs += rows.len() as u64;
        report.tenants += 1;
    }
    app.store.analyze().await?;
    Ok(report)
}

async fn connection(
    app: &App,
    ctx: &TenantCtx,
    provider: &str,
    name: &str,
) -> anyhow::Result<ConnectionId> {
    let id = ConnectionId::new();
    app.store
        .insert_connection(
            ctx,
            connections::ActiveModel {
                id: Set(id),
                provider_id: Set(provider.into()),
                name: Set(name.into()),
                status: Set(crate::domain::ConnectionStatus::Active),
                credentials_enc: Set(None),
                config: Set("{}".into()),
                scopes: Set(None),
                token_version: Set(1),
                access_expires_at: Set(None),
                refresh_failures: Set(0),
                customer_ref: Set(None),
                connect_link_id: Set(None),
                created_by: Set(None),
                ..connections::ActiveModel::fresh(ctx)
            },
        )
        .await?;
    Ok(id)
}

async fn flow(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    name: &str,
    crm: ConnectionId,
    erp: ConnectionId,
) -> anyhow::Result<FlowId> {
    let spec = serde_json::from_value(serde_json::json!({
        "name": name,
        "source": { "connection_id": crm, "object": "contacts", "incremental": false },
        "destination": { "connection_id": erp, "object": "customers", "write_mode": "upsert", "key_field": "external_id" },
        "mapping": [
            { "target": "external_id", "expression": "record.id" },
            { "target": "email", "expression": "record.email | lower" },
            { "target": "name", "expression": "record.name" }
        ],
        "validations": [],
        "filter": "",
        "lookups": {},
        "record_key": "record.id",
        "batch_size": 500,
        "trigger": { "kind": "manual" },
        "auto_pause_after": 0
    }))?;
    let saved = super::flows::save(app, ctx, actor, None, spec)
        .await
        .map_err(|e| anyhow::anyhow!("seeding a flow: {e}"))?;
    Ok(saved.id)
}

/// A v7 id whose time part is `at`.
fn id_at(at: DateTime<Utc>, rng: &mut impl Rng) -> RunId {
    let ms = u64::try_from(at.timestamp_millis()).unwrap_or(0);
    let mut bytes: [u8; 16] = rng.random();
    bytes[..6].copy_from_slice(&ms.to_be_bytes()[2..]);
    bytes[6] = 0x70 | (bytes[6] & 0x0f);
    bytes[8] = 0x80 | (bytes[8] & 0x3f);
    RunId::from_uuid(uuid::Uuid::from_bytes(bytes))
}

fn random_runs(
    rng: &mut impl Rng,
    ctx: &TenantCtx,
    flows: &[FlowId],
    count: u64,
) -> Vec<runs::Model> {
    let end = now();
    let span_ms = DAYS * 86_400_000;
    (0..count)
        .map(|_| {
            let created = end - Duration::milliseconds(rng.random_range(0..span_ms));
            let flow = flows[rng.random_range(0..flows.len())];
            let roll: u32 = rng.random_range(0..100);
            let (status, class) = match roll {
                0..88 => (RunStatus::Succeeded, None),
                88..94 => (RunStatus::PartiallyFailed, Some(ErrorClass::Records)),
                94..99 => (
                    RunStatus::Failed,
                    Some(
                        [
                            ErrorClass::Unavailable,
                            ErrorClass::RateLimited,
                            ErrorClass::Auth,
                            ErrorClass::Rejected,
                        ][rng.random_range(0..4)],
                    ),
                ),
                _ => (RunStatus::Cancelled, None),
            };
            let read: i64 = rng.random_range(100..1000);
            let failed = match status {
                RunStatus::PartiallyFailed => rng.random_range(1..20),
                RunStatus::Failed => 0,
                _ => 0,
            };
            let written = if status == RunStatus::Failed {
                0
            } else {
                rng.random_range(0..read - failed)
            };
            let duration_ms: i64 = rng.random_range(500..60_000);
            let started = created + Duration::milliseconds(rng.random_range(5..500));
            runs::Model {
                id: id_at(created, rng),
                tenant_id: ctx.tenant_id(),
                flow_id: flow,
                flow_version_id: FlowVersionId::from_uuid(uuid::Uuid::nil()),
                version: 1,
                trigger: if rng.random_bool(0.8) {
                    RunTrigger::Schedule
                } else {
                    RunTrigger::Manual
                },
                status,
                cancel_requested: false,
                cursor: None,
                watermark: None,
                pages: 1 + read / 500,
                records_read: read,
                records_written: written,
                records_unchanged: read - written - failed,
                records_filtered: 0,
                records_failed: failed,
                records_total: Some(read),
                replay: None,
                error: (status == RunStatus::Failed)
                    .then(|| "writing customers failed 10 times; last error: HTTP 503".into()),
                lease_holder: None,
                heartbeat_at: None,
                created_by: None,
                created_at: created,
                started_at: Some(started),
                finished_at: Some(started + Duration::milliseconds(duration_ms)),
                error_class: class,
                error_provider: class.map(|_| "sandbox_erp".into()),
                duration_ms: Some(duration_ms),
                alerts_checked: true,
            }
        })
        .collect()
}

/// Rolls the runs up per grain, bucket and flow (minute rollups only for the last two
/// days, as retention keeps them) and writes the rows.
async fn write_rollups(app: &App, rows: &[runs::Model]) -> anyhow::Result<u64> {
    let recent = now() - Duration::days(2);
    let mut sums: HashMap<(i32, i64, FlowId), Totals> = HashMap::new();
    for r in rows {
        let at = r.finished_at.unwrap_or(r.created_at);
        for grain in [MINUTE, HOUR] {
            if grain == MINUTE && at < recent {
                continue;
            }
            let t = sums
                .entry((grain, bucket_of(at, grain), r.flow_id))
                .or_default();
            t.runs += 1;
            match r.status {
                RunStatus::Succeeded => t.succeeded += 1,
                RunStatus::PartiallyFailed => t.partially_failed += 1,
                RunStatus::Failed => t.failed += 1,
                _ => {}
            }
            t.records_read += r.records_read;
            t.records_written += r.records_written;
            t.records_failed += r.records_failed;
            t.duration_ms += r.duration_ms.unwrap_or(0);
        }
    }
    let tenant = rows.first().map(|r| r.tenant_id).unwrap_or_default();
    let rows: Vec<_> = sums.into_iter().collect();
    for chunk in rows.chunks(400) {
        app.store.insert_rollups_bulk(tenant, chunk).await?;
    }
    Ok(rows.len() as u64)
}
