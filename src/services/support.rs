//! The support console: platform support staff search failed runs across tenants,
//! inspect them with payloads hidden until they give a reason, and replay them. They act
//! in the run's tenant with a read-only scope (replay aside), and every view and action
//! is written to that tenant's audit log, where the tenant sees it.

use super::runs::{self as run_service, Inspection};
use crate::app::{App, AuditActor};
use crate::domain::{
    Actor, DeadLetterId, DeadLetterState, FlowId, LetterSelection, Role, RunId, RunTrigger,
    TenantCtx, TenantId, UserId,
};
use crate::error::{AppError, AppResult};
use crate::store::entities::{run_events, runs};
use crate::store::{FailureFilter, UserRecord};
use std::collections::{HashMap, HashSet};

/// Shortest reason accepted for revealing payloads.
pub const MIN_REASON: usize = 10;
/// Failed runs per search page.
pub const PAGE: u64 = 50;

/// A signed-in user holding the support role.
pub struct Staff {
    user: UserId,
    actor: AuditActor,
}

impl Staff {
    /// Admits `user` as support staff, or refuses.
    pub fn admit(user: &UserRecord, actor: AuditActor) -> AppResult<Staff> {
        if !user.is_support {
            return Err(AppError::Forbidden);
        }
        Ok(Staff {
            user: user.id,
            actor: AuditActor {
                label: format!("Sluice support: {}", actor.label),
                ip: actor.ip,
            },
        })
    }

    /// Read-only scope in a tenant: support cannot change configuration.
    fn read_scope(&self, tenant: TenantId) -> TenantCtx {
        TenantCtx::new(tenant, Role::Viewer, Actor::Support(self.user))
    }

    /// The scope a replay runs in (replays are the one change support may make).
    fn replay_scope(&self, tenant: TenantId) -> TenantCtx {
        TenantCtx::new(tenant, Role::Admin, Actor::Support(self.user))
    }
}

/// A failed run in the search results.
pub struct FailedRun {
    /// The run.
    pub run: runs::Model,
    /// Its tenant's name.
    pub tenant: String,
    /// Its flow's name.
    pub flow: String,
}

/// Searches failed runs across tenants. Each tenant whose runs are listed gets an audit
/// event: what support saw of its data is never invisible to it.
pub async fn search(
    app: &App,
    staff: &Staff,
    filter: &FailureFilter,
    before: Option<RunId>,
) -> AppResult<(Vec<FailedRun>, Option<RunId>)> {
    let mut found = app.store.failed_runs(filter, before, PAGE + 1).await?;
    let next = if found.len() as u64 > PAGE {
        found.truncate(PAGE as usize);
        found.last().map(|r| r.id)
    } else {
        None
    };
    let tenant_ids: Vec<TenantId> = found
        .iter()
        .map(|r| r.tenant_id)
        .collect::<HashSet<_>>()
        .into_iter()
        .collect();
    let tenants = app.store.tenant_names(&tenant_ids).await?;
    let mut flows: HashMap<FlowId, String> = HashMap::new();
    for t in &tenant_ids {
        let ctx = staff.read_scope(*t);
        for f in app.store.flows(&ctx).await? {
            flows.insert(f.id, f.name);
        }
        let shown = found.iter().filter(|r| r.tenant_id == *t).count();
        app.audit(
            &ctx,
            &staff.actor,
            "support.searched_runs",
            Some(format!("{shown} failed run(s) listed")),
            None,
        )
        .await?;
    }
    let rows = found
        .into_iter()
        .map(|run| FailedRun {
            tenant: tenants.get(&run.tenant_id).cloned().unwrap_or_default(),
            flow: flows.get(&run.flow_id).cloned().unwrap_or_default(),
            run,
        })
        .collect();
    Ok((rows, next))
}

/// What support sees of a run.
pub struct SupportView {
    /// The tenant's name.
    pub tenant: String,
    /// The run, its flow, comparison and failures.
    pub inspection: Inspection,
    /// The run log.
    pub log: Vec<run_events::Model>,
    /// Whether payloads are shown (after a reason was given).
    pub revealed: bool,
}

/// Opens a run of any tenant, payloads hidden; audited in the run's tenant.
pub async fn inspect(
    app: &App,
    staff: &Staff,
    id: RunId,
    reveal_reason: Option<&str>,
) -> AppResult<SupportView> {
    let run = app
        .store
        .run_of_any_tenant(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let tenant = run.tenant_id;
    let ctx = staff.read_scope(tenant);
    let revealed = match reveal_reason.map(str::trim) {
        None => false,
        Some(r) if r.chars().count() >= MIN_REASON => true,
        Some(_) => {
            return Err(AppError::invalid(
                "reason",
                format!(
                    "Say why you need to see this customer's data (at least {MIN_REASON} characters)."
                ),
            ));
        }
    };
    let (action, detail) = if revealed {
        (
            "support.revealed_payloads",
            Some(serde_json::json!({ "reason": reveal_reason.map(str::trim) })),
        )
    } else {
        ("support.viewed_run", None)
    };
    app.audit(&ctx, &staff.actor, action, Some(id.to_string()), detail)
        .await?;
    let inspection = run_service::inspect(app, &ctx, id).await?;
    let log = app.store.run_events(&ctx, id, 500).await?;
    let tenant_name = app
        .store
        .tenant_names(&[tenant])
        .await?
        .remove(&tenant)
        .unwrap_or_default();
    Ok(SupportView {
        tenant: tenant_name,
        inspection,
        log,
        revealed,
    })
}

/// Replays a run: its open dead letters if it has any, otherwise the whole flow again.
pub async fn replay(app: &App, staff: &Staff, id: RunId) -> AppResult<RunId> {
    let run = app
        .store
        .run_of_any_tenant(id)
        .await?
        .ok_or(AppError::NotFound)?;
    let ctx = staff.replay_scope(run.tenant_id);
    let flow = run.flow_id;
    let letters: Vec<DeadLetterId> = app
        .store
        .dead_letters_of_run(&ctx, id, 10_000)
        .await?
        .into_iter()
        .filter(|l| l.state == DeadLetterState::Open)
        .map(|l| l.id)
        .collect();
    let (new_run, what) = if letters.is_empty() {
        (
            super::flows::start_run(app, &ctx, flow, RunTrigger::Manual, None).await?,
            "the flow".to_owned(),
        )
    } else {
        let n = letters.len();
        (
            super::flows::start_run(
                app,
                &ctx,
                flow,
                RunTrigger::Replay,
                LetterSelection::of(letters),
            )
            .await?,
            format!("{n} dead letter(s)"),
        )
    };
    app.audit(
        &ctx,
        &staff.actor,
        "support.replayed_run",
        Some(id.to_string()),
        Some(serde_json::json!({ "replayed": what, "new_run": new_run })),
    )
    .await?;
    Ok(new_run)
}
