//! Flows: saving (each save an immutable version), enabling and pausing, deleting,
//! starting runs (by hand, schedule, webhook or replay), cancelling, dry runs, source
//! field samples and dead letters. The inbound webhook is in `webhooks`.

use super::records;
use super::require_write;
use crate::app::{App, AuditActor};
use crate::connectors::catalogue::{ObjectSpec, Provider};
use crate::connectors::fields::{self, FieldSpec};
use crate::connectors::session;
use crate::domain::{
    ConnectionId, DeadLetterId, DeadLetterState, FieldErrors, FlowId, FlowSpec, FlowStatus,
    FlowVersionId, LetterSelection, RunId, RunStatus, RunTrigger, TenantCtx, WriteMode,
};
use crate::error::{AppError, AppResult};
use crate::queue::RunFlow;
use crate::store::entities::{flow_versions, flows, runs};
use crate::store::{FlowHead, NewFlow, now};
use crate::sync::expression::pool;
use crate::sync::mapping::Mapping;
use crate::sync::source::Source;
use crate::sync::target::Target;
use crate::sync::trigger;
use sea_orm::Set;
use serde_json::Value as Json;

/// Records a dry run reads at most.
pub const DRY_RUN_MAX: u32 = 50;
/// Longest flow name.
const NAME_MAX: usize = 100;

/// What saving did.
pub struct Saved {
    /// The flow.
    pub id: FlowId,
    /// Its version now.
    pub version: i64,
    /// Whether a new version was stored (false: nothing changed).
    pub changed: bool,
}

fn provider_object(provider: &'static Provider, object: &str) -> Option<&'static ObjectSpec> {
    provider.objects.iter().find(|o| o.id == object)
}

/// Loads a connection's provider, or says which field is wrong.
async fn connection_provider(
    app: &App,
    ctx: &TenantCtx,
    id: ConnectionId,
) -> AppResult<Option<&'static Provider>> {
    Ok(app
        .store
        .connection(ctx, id)
        .await?
        .and_then(|c| crate::connectors::credentials::provider_of(&c).ok()))
}

/// Checks a spec against the tenant's connections and the catalogue, and compiles its
/// expressions. Errors are keyed by form field.
pub async fn validate(
    app: &App,
    ctx: &TenantCtx,
    spec: &FlowSpec,
    existing: Option<FlowId>,
) -> AppResult<()> {
    let mut errors = FieldErrors::new();
    let name = spec.name.trim();
    if name.is_empty() {
        errors.add("name", "Give the flow a name.");
    } else if name.chars().count() > NAME_MAX {
        errors.add("name", format!("Use at most {NAME_MAX} characters."));
    } else if let Err(message) = crate::domain::text::check_display_text(name, "flow name") {
        errors.add("name", message);
    } else if app.store.flow_name_taken(ctx, name, existing).await? {
        errors.add("name", "Another flow already has this name.");
    }
    match connection_provider(app, ctx, spec.source.connection_id).await? {
        None => errors.add("source.connection_id", "Choose a connection."),
        Some(p) => match provider_object(p, &spec.source.object) {
            None => errors.add(
                "source.object",
                format!("Choose one of {}'s objects.", p.name),
            ),
            Some(o) => {
                if spec.source.incremental && !o.reads_changes() {
                    errors.add(
                        "source.incremental",
                        format!(
                            "{} cannot be filtered by last change; switch incremental off.",
                            o.name
                        ),
                    );
                }
            }
        },
    }
    match connection_provider(app, ctx, spec.destination.connection_id).await? {
        None => errors.add("destination.connection_id", "Choose a connection."),
        Some(p) => match provider_object(p, &spec.destination.object) {
            None => errors.add(
                "destination.object",
                format!("Choose one of {}'s objects.", p.name),
            ),
            Some(o) => {
                if let Some(why) = Target::unsupported(o, spec.destination.write_mode) {
                    errors.add("destination.write_mode", why);
                }
                for (field, message) in fields::check_mapping(&o.name, &o.fields, spec) {
                    errors.add(&field, message);
                }
            }
        },
    }
    // Update and upsert need the key to find records; create uses it, when given, to
    // look a record up before re-sending a create whose outcome was lost.
    let key = spec.destination.key_field.trim();
    if key.is_empty() {
        if spec.destination.write_mode != WriteMode::Create {
            errors.add(
                "destination.key_field",
                "Name the destination field that identifies a record, e.g. external_id.",
            );
        }
    } else if !spec.mapping.iter().any(|r| r.target.trim() == key) {
        errors.add(
            "destination.key_field",
            match spec.destination.write_mode {
                WriteMode::Create => format!(
                    "Map a value to {key}, or leave the field empty: in create mode it is how a record whose creation was not confirmed is found before it is sent again."
                ),
                _ => format!("Map a value to {key}: it is how existing records are found."),
            },
        );
    }
    if spec.mapping.is_empty() {
        errors.add("mapping", "Map at least one field.");
    }
    if !(1..=1000).contains(&spec.batch_size) {
        errors.add("batch_size", "Use a batch size from 1 to 1000.");
    }
    if spec.auto_pause_after > 100 {
        errors.add("auto_pause_after", "Use a number from 0 (never) to 100.");
    }
    if let Err((field, message)) = trigger::validate(&spec.trigger) {
        errors.add(&format!("trigger.{field}"), message);
    }
    let compiled = Mapping::compile_on_pool(spec.clone())
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    if let Err(compile) = compiled {
        for (field, message) in compile.iter() {
            errors.add(field, message);
        }
    }
    if errors.is_empty() {
        Ok(())
    } else {
        Err(AppError::Invalid(errors))
    }
}

async fn next_run(
    app: &App,
    ctx: &TenantCtx,
    spec: &FlowSpec,
) -> AppResult<Option<chrono::DateTime<chrono::Utc>>> {
    let tenant = app.store.tenant(ctx).await?;
    Ok(trigger::next_after(&spec.trigger, tenant.time_zone, now()))
}

/// The spec stored in a version.
pub fn spec_of(version: &flow_versions::Model) -> AppResult<FlowSpec> {
    serde_json::from_str(&version.spec).map_err(|e| AppError::Internal(e.into()))
}

/// A flow with its current definition.
pub struct FlowView {
    /// The row.
    pub flow: flows::Model,
    /// The current version's spec.
    pub spec: FlowSpec,
}

/// Loads a flow and its current spec.
pub async fn load(app: &App, ctx: &TenantCtx, id: FlowId) -> AppResult<FlowView> {
    let flow = get(app, ctx, id).await?;
    let version = app
        .store
        .flow_version(ctx, id, flow.version)
        .await?
        .ok_or(AppError::NotFound)?;
    Ok(FlowView {
        spec: spec_of(&version)?,
        flow,
    })
}

/// Creates a flow (version 1) or saves a new version of one. `expected_version` guards
/// against overwriting somebody else's save.
pub async fn save(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    existing: Option<(FlowId, i64)>,
    mut spec: FlowSpec,
) -> AppResult<Saved> {
    require_write(ctx)?;
    spec.name = spec.name.trim().to_owned();
    validate(app, ctx, &spec, existing.map(|(id, _)| id)).await?;
    let text = serde_json::to_string(&spec).map_err(|e| AppError::Internal(e.into()))?;
    let next_run_at = next_run(app, ctx, &spec).await?;
    let head = FlowHead {
        name: spec.name.clone(),
        trigger_kind: spec.trigger.kind,
        next_run_at,
        source: spec.source.connection_id,
        destination: spec.destination.connection_id,
    };
    let saved = match existing {
        None => {
            let id = FlowId::new();
            let version_id = FlowVersionId::new();
            app.store
                .insert_flow(NewFlow {
                    flow: flows::ActiveModel {
                        id: Set(id),
                        name: Set(head.name),
                        status: Set(FlowStatus::Active),
                        current_version_id: Set(version_id),
                        version: Set(1),
                        trigger_kind: Set(head.trigger_kind),
                        next_run_at: Set(head.next_run_at),
                        consecutive_failures: Set(0),
                        paused_reason: Set(None),
                        watermark: Set(None),
                        webhook_token: Set(None),
                        webhook_secret_enc: Set(None),
                        source_connection_id: Set(head.source),
                        destination_connection_id: Set(head.destination),
                        last_run_id: Set(None),
                        last_run_status: Set(None),
                        last_run_at: Set(None),
                        last_success_at: Set(None),
                        ..flows::ActiveModel::fresh(ctx)
                    },
                    version: version_row(ctx, id, version_id, 1, text),
                })
                .await?;
            app.audit(ctx, actor, "flow.created", Some(spec.name.clone()), None)
                .await?;
            Saved {
                id,
                version: 1,
                changed: true,
            }
        }
        Some((id, expected)) => {
            let current = load(app, ctx, id).await?;
            if current.flow.version != expected {
                return Err(AppError::Conflict(
                    "Someone else saved this flow meanwhile. Reload it to see their changes, then edit again."
                        .into(),
                ));
            }
            if current.spec == spec {
                return Ok(Saved {
                    id,
                    version: current.flow.version,
                    changed: false,
                });
            }
            let number = expected + 1;
            let row = version_row(ctx, id, FlowVersionId::new(), number, text);
            if !app
                .store
                .append_flow_version(ctx, id, expected, row, head)
                .await?
            {
                return Err(AppError::Conflict(
                    "Someone else saved this flow meanwhile. Reload it to see their changes, then edit again."
                        .into(),
                ));
            }
            app.audit(
                ctx,
                actor,
                "flow.updated",
                Some(spec.name.clone()),
                Some(serde_json::json!({ "version": number })),
            )
            .await?;
            Saved {
                id,
                version: number,
                changed: true,
            }
        }
    };
    Ok(saved)
}

fn version_row(
    ctx: &TenantCtx,
    flow: FlowId,
    id: FlowVersionId,
    number: i64,
    spec: String,
) -> flow_versions::ActiveModel {
    flow_versions::ActiveModel {
        id: Set(id),
        flow_id: Set(flow),
        number: Set(number),
        spec: Set(spec),
        created_by: Set(ctx.user_id()),
        ..flow_versions::ActiveModel::fresh(ctx)
    }
}

/// Enables or pauses a flow. Enabling resets the failure streak and the schedule.
pub async fn set_status(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: FlowId,
    status: FlowStatus,
) -> AppResult<()> {
    require_write(ctx)?;
    let view = load(app, ctx, id).await?;
    let (reason, next) = match status {
        FlowStatus::Active => (None, next_run(app, ctx, &view.spec).await?),
        FlowStatus::Paused => (Some("Paused by a member.".to_owned()), None),
    };
    app.store
        .set_flow_status(ctx, id, status, reason, next)
        .await?;
    let action = match status {
        FlowStatus::Active => "flow.enabled",
        FlowStatus::Paused => "flow.paused",
    };
    app.audit(ctx, actor, action, Some(view.flow.name), None)
        .await?;
    Ok(())
}

/// Deletes a flow with its history.
pub async fn delete(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: FlowId,
) -> AppResult<String> {
    require_write(ctx)?;
    let flow = get(app, ctx, id).await?;
    app.store.delete_flow(ctx, id).await?;
    app.audit(ctx, actor, "flow.deleted", Some(flow.name.clone()), None)
        .await?;
    Ok(flow.name)
}

/// Starts a run, or joins the flow's unfinished one (triggers never pile up). A replay
/// always starts its own run.
pub async fn start_run(
    app: &App,
    ctx: &TenantCtx,
    id: FlowId,
    trigger: RunTrigger,
    replay: Option<LetterSelection>,
) -> AppResult<RunId> {
    let flow = get(app, ctx, id).await?;
    // A queued run has not read anything yet, so it covers this request too. A running
    // one may already have passed the record that changed: a new run follows it.
    if replay.is_none()
        && let Some(run) = app.store.queued_run(ctx, id).await?
    {
        return Ok(run.id);
    }
    let replay_text = replay.as_ref().map(LetterSelection::to_stored);
    let run_id = app
        .store
        .insert_run(queued_run_row(ctx, &flow, trigger, replay_text))
        .await?
        .id;
    // If this push is lost (a crash right here), orphan recovery enqueues the run.
    app.queue
        .push(RunFlow {
            tenant_id: ctx.tenant_id(),
            run_id,
        })
        .await
        .map_err(AppError::Internal)?;
    Ok(run_id)
}

/// A new queued run of the flow's current version.
pub(crate) fn queued_run_row(
    ctx: &TenantCtx,
    flow: &records::Flow,
    trigger: RunTrigger,
    replay: Option<String>,
) -> runs::ActiveModel {
    runs::ActiveModel {
        flow_id: Set(flow.id),
        flow_version_id: Set(flow.current_version_id),
        version: Set(flow.version),
        trigger: Set(trigger),
        status: Set(RunStatus::Queued),
        cancel_requested: Set(false),
        cursor: Set(None),
        watermark: Set(None),
        pages: Set(0),
        records_read: Set(0),
        records_written: Set(0),
        records_unchanged: Set(0),
        records_filtered: Set(0),
        records_failed: Set(0),
        records_total: Set(None),
        replay: Set(replay),
        error: Set(None),
        lease_holder: Set(None),
        heartbeat_at: Set(None),
        created_by: Set(ctx.user_id()),
        started_at: Set(None),
        finished_at: Set(None),
        error_class: Set(None),
        error_provider: Set(None),
        duration_ms: Set(None),
        alerts_checked: Set(false),
        ..runs::ActiveModel::fresh(ctx)
    }
}

/// "Run now".
pub async fn run_now(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: FlowId,
) -> AppResult<RunId> {
    require_write(ctx)?;
    let run = start_run(app, ctx, id, RunTrigger::Manual, None).await?;
    app.audit(ctx, actor, "flow.run", Some(id.to_string()), None)
        .await?;
    Ok(run)
}

/// Replays dead letters (the chosen ones, or all open ones) on the current version.
pub async fn replay(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    flow: FlowId,
    selection: LetterSelection,
) -> AppResult<RunId> {
    require_write(ctx)?;
    get(app, ctx, flow).await?;
    let open = app
        .store
        .open_dead_letters(ctx, flow, selection.ids(), None, 1)
        .await?;
    if open.is_empty() {
        return Err(AppError::Conflict(
            "There are no open dead letters to replay.".into(),
        ));
    }
    let count = selection.ids().map(<[DeadLetterId]>::len);
    let run = start_run(app, ctx, flow, RunTrigger::Replay, Some(selection)).await?;
    app.audit(
        ctx,
        actor,
        "dead_letters.replayed",
        Some(flow.to_string()),
        Some(serde_json::json!({ "selected": count, "run": run.to_string() })),
    )
    .await?;
    Ok(run)
}

/// Discards dead letters (the chosen ones, or all open ones). Returns how many.
pub async fn discard(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    flow: FlowId,
    selection: LetterSelection,
) -> AppResult<u64> {
    require_write(ctx)?;
    get(app, ctx, flow).await?;
    let n = app
        .store
        .discard_dead_letters(ctx, flow, selection.ids())
        .await?;
    app.audit(
        ctx,
        actor,
        "dead_letters.discarded",
        Some(flow.to_string()),
        Some(serde_json::json!({ "count": n })),
    )
    .await?;
    Ok(n)
}

async fn source_of(
    app: &App,
    ctx: &TenantCtx,
    connection: ConnectionId,
    object: &str,
) -> AppResult<Source> {
    let conn = app
        .store
        .connection(ctx, connection)
        .await?
        .ok_or(AppError::NotFound)?;
    let provider =
        crate::connectors::credentials::provider_of(&conn).map_err(AppError::BadRequest)?;
    let object = provider_object(provider, object).ok_or_else(|| {
        AppError::BadRequest(format!("{} has no object '{object}'", provider.name))
    })?;
    Ok(Source::new(connection, provider, object).with_connection(conn))
}

/// One record of a dry run.
pub struct DryRow {
    /// The source record, pretty-printed.
    pub source: String,
    /// Its key.
    pub key: String,
    /// What would be written (pretty-printed), or none when filtered out or failing.
    pub output: Option<String>,
    /// Skipped by the filter.
    pub filtered: bool,
    /// Why it would fail.
    pub error: Option<String>,
}

/// Fetches the first `n` source records and shows what the mapping makes of them.
/// Writes nothing. Needs the write role: it runs the member's expressions and calls the
/// source with the workspace's credentials.
pub async fn dry_run(
    app: &App,
    ctx: &TenantCtx,
    spec: &FlowSpec,
    n: u32,
) -> AppResult<Vec<DryRow>> {
    require_write(ctx)?;
    let mapping = Mapping::compile_on_pool(spec.clone())
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(AppError::Invalid)?;
    let source = source_of(app, ctx, spec.source.connection_id, &spec.source.object).await?;
    let page = source
        .fetch(app, ctx, None, None, n.clamp(1, DRY_RUN_MAX))
        .await
        .map_err(|f| AppError::Conflict(format!("Reading the source failed: {}", f.message())))?;
    let records: Vec<Json> = page.records.into_iter().take(n as usize).collect();
    pool::run(move || dry_rows(&mapping, records))
        .await
        .map_err(|e| AppError::Internal(e.into()))
}

/// Time a dry run's expressions may take in all; records past it are reported untried.
const DRY_RUN_BUDGET: std::time::Duration = std::time::Duration::from_secs(2);

/// What the mapping makes of each record; runs on the expression pool.
fn dry_rows(mapping: &Mapping, records: Vec<Json>) -> Vec<DryRow> {
    let pretty = |v: &Json| serde_json::to_string_pretty(v).unwrap_or_default();
    let deadline = std::time::Instant::now() + DRY_RUN_BUDGET;
    records
        .iter()
        .map(|record| {
            let mut row = DryRow {
                source: pretty(record),
                key: String::new(),
                output: None,
                filtered: false,
                error: None,
            };
            if std::time::Instant::now() > deadline {
                row.error = Some(format!(
                    "Not tried: the dry run used up its {} s for expressions.",
                    DRY_RUN_BUDGET.as_secs()
                ));
                return row;
            }
            let _budget = mapping.record_budget();
            match mapping.key(record) {
                Ok(key) => row.key = key,
                Err(e) => {
                    row.error = Some(format!("{}: {}", e.field, e.message));
                    return row;
                }
            }
            match mapping.keep(record) {
                Ok(false) => row.filtered = true,
                Err(e) => row.error = Some(format!("{}: {}", e.field, e.message)),
                Ok(true) => match mapping.apply(record) {
                    Ok(out) => row.output = Some(pretty(&Json::Object(out))),
                    Err(e) => row.error = Some(format!("{} ({}): {}", e.field, e.kind, e.message)),
                },
            }
            row
        })
        .collect()
}

/// What writing one record as a test did.
pub struct TestWrite {
    /// The record as mapped and sent (pretty-printed), when the mapping made one.
    pub sent: Option<String>,
    /// Whether the destination accepted it.
    pub accepted: bool,
    /// The destination's answer, or why nothing was sent.
    pub answer: String,
    /// The HTTP calls made (`POST /customers → 201 in 12 ms`).
    pub exchanges: Vec<String>,
}

/// Maps `record` (the first record of the editor's sample, or else the source's first)
/// with `spec` and writes it to the destination: a real write, audited, so the member
/// sees the destination's answer before a run sends thousands.
pub async fn test_write(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    spec: &FlowSpec,
    record: Option<Json>,
) -> AppResult<TestWrite> {
    require_write(ctx)?;
    let mapping = Mapping::compile_on_pool(spec.clone())
        .await
        .map_err(|e| AppError::Internal(e.into()))?
        .map_err(AppError::Invalid)?;
    let record = match record {
        Some(record) => record,
        None => {
            let source =
                source_of(app, ctx, spec.source.connection_id, &spec.source.object).await?;
            let page = source.fetch(app, ctx, None, None, 1).await.map_err(|f| {
                AppError::Conflict(format!("Reading a record failed: {}", f.message()))
            })?;
            page.records.into_iter().next().ok_or_else(|| {
                AppError::Conflict("The source has no record to test with.".into())
            })?
        }
    };
    let mapped = pool::run(move || mapping.apply(&record))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    let mapped = match mapped {
        Ok(mapped) => mapped,
        Err(e) => {
            return Ok(TestWrite {
                sent: None,
                accepted: false,
                answer: format!("Nothing was sent: {} ({}): {}", e.field, e.kind, e.message),
                exchanges: Vec::new(),
            });
        }
    };
    let target = target_of(app, ctx, spec).await?;
    let sent = serde_json::to_string_pretty(&mapped).unwrap_or_default();
    let key = format!("test-{}", uuid::Uuid::now_v7());
    let result = target
        .write(
            app,
            ctx,
            vec![crate::sync::target::Item {
                record: std::sync::Arc::new(mapped),
                dest_id: None,
            }],
            &key,
            &crate::sync::target::Recheck::default(),
        )
        .await;
    let (accepted, answer, exchanges) = match result {
        Ok(written) => {
            let (accepted, answer) = match written.outcomes.into_iter().next() {
                Some(crate::sync::target::Outcome::Written(Some(id))) => {
                    (true, format!("Accepted as {id}."))
                }
                Some(crate::sync::target::Outcome::Written(None)) => (true, "Accepted.".into()),
                Some(crate::sync::target::Outcome::Rejected(why)) => {
                    (false, format!("Refused: {why}"))
                }
                None => (false, "No answer for the record.".into()),
            };
            (accepted, answer, written.exchanges)
        }
        Err(fault) => (false, format!("Failed: {}", fault.message()), Vec::new()),
    };
    app.audit(
        ctx,
        actor,
        "flow.test_write",
        Some(spec.name.clone()),
        Some(serde_json::json!({ "accepted": accepted })),
    )
    .await?;
    Ok(TestWrite {
        sent: Some(crate::connectors::redact::redact_json_text(&sent)),
        accepted,
        answer: crate::connectors::redact::redact_text(&answer),
        exchanges: exchanges
            .iter()
            .map(|x| format!("{} {} → {} in {} ms", x.method, x.path, x.status, x.ms))
            .collect(),
    })
}

/// A destination of a spec.
async fn target_of(app: &App, ctx: &TenantCtx, spec: &FlowSpec) -> AppResult<Target> {
    let conn = app
        .store
        .connection(ctx, spec.destination.connection_id)
        .await?
        .ok_or(AppError::NotFound)?;
    let provider =
        crate::connectors::credentials::provider_of(&conn).map_err(AppError::BadRequest)?;
    let object = provider_object(provider, &spec.destination.object).ok_or_else(|| {
        AppError::BadRequest(format!(
            "{} has no object '{}'",
            provider.name, spec.destination.object
        ))
    })?;
    Ok(Target {
        connection: spec.destination.connection_id,
        provider,
        object,
        mode: spec.destination.write_mode,
        key_field: spec.destination.key_field.clone(),
        values: crate::connectors::credentials::config_of(&conn),
        recent: crate::connectors::session::Recent::seeded(conn),
    })
}

/// Records a sample for the field picker holds at most.
pub const SAMPLE_RECORDS: u32 = 5;
/// Largest sample kept in the editor's page, in bytes of JSON.
const SAMPLE_MAX_BYTES: usize = 32 * 1024;

/// A few records of a live sample of the source, as JSON text small enough for the
/// editor to carry from one submit to the next (so previews do not call the vendor).
pub async fn sample(
    app: &App,
    ctx: &TenantCtx,
    connection: ConnectionId,
    object: &str,
) -> AppResult<String> {
    require_write(ctx)?;
    let source = source_of(app, ctx, connection, object).await?;
    let page = source
        .fetch(app, ctx, None, None, SAMPLE_RECORDS)
        .await
        .map_err(|f| AppError::Conflict(format!("Reading a sample failed: {}", f.message())))?;
    let mut records: Vec<Json> = page
        .records
        .into_iter()
        .take(SAMPLE_RECORDS as usize)
        .collect();
    loop {
        let text = serde_json::to_string(&records).map_err(|e| AppError::Internal(e.into()))?;
        if text.len() <= SAMPLE_MAX_BYTES || records.len() <= 1 {
            return Ok(text);
        }
        records.pop();
    }
}

/// A field of a sample: its path in an expression and an example value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SampleField {
    /// `record.properties.email`.
    pub path: String,
    /// The first non-empty value seen, as JSON text, shortened.
    pub example: String,
}

/// The field paths of sample records (at most 300), each with an example value.
pub fn sample_fields(records: &[Json]) -> Vec<SampleField> {
    fn walk(prefix: &str, v: &Json, out: &mut std::collections::BTreeMap<String, String>) {
        match v {
            Json::Object(map) if out.len() < 300 => {
                for (k, v) in map {
                    let valid = k.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
                        && !k.starts_with(|c: char| c.is_ascii_digit());
                    let path = if valid {
                        format!("{prefix}.{k}")
                    } else {
                        format!("{prefix}[{}]", Json::String(k.clone()))
                    };
                    walk(&path, v, out);
                }
            }
            _ => {
                let slot = out.entry(prefix.to_owned()).or_default();
                let empty = matches!(v, Json::Null) || v.as_str() == Some("");
                if slot.is_empty() && !empty {
                    *slot = shown(v);
                }
            }
        }
    }
    let mut paths = std::collections::BTreeMap::new();
    for record in records {
        walk("record", record, &mut paths);
    }
    paths
        .into_iter()
        .map(|(path, example)| SampleField { path, example })
        .collect()
}

/// A value as the editor shows it: JSON (so text is quoted and types are visible),
/// shortened to 80 characters.
pub fn shown(value: &Json) -> String {
    let text = value.to_string();
    if text.chars().count() <= 80 {
        text
    } else {
        format!("{}…", text.chars().take(79).collect::<String>())
    }
}

/// What each mapping row makes of `record` (a sample record the editor sent back): the
/// value as shown, or why the row fails. Needs the write role: it runs the member's
/// expressions.
pub async fn preview_mapping(
    ctx: &TenantCtx,
    rows: Vec<crate::domain::flow::MappingRowSpec>,
    lookups: std::collections::BTreeMap<String, std::collections::BTreeMap<String, String>>,
    record: Json,
) -> AppResult<Vec<Option<Result<String, String>>>> {
    require_write(ctx)?;
    let previews = pool::run(move || crate::sync::mapping::preview(&rows, &lookups, &record))
        .await
        .map_err(|e| AppError::Internal(e.into()))?;
    Ok(previews
        .into_iter()
        .map(|p| p.map(|outcome| outcome.map(|v| shown(&v))))
        .collect())
}

/// A destination's fields, for the mapping editor.
pub struct ObjectFields {
    /// The object's name.
    pub object: String,
    /// Declared fields, then those the vendor listed.
    pub fields: Vec<FieldSpec>,
    /// Whether the vendor can be asked for more (custom fields).
    pub describable: bool,
    /// Why asking the vendor failed.
    pub error: Option<String>,
}

/// The fields of a connection's object: those its provider declares and, with
/// `ask_vendor`, the fields the vendor lists (custom ones). Nothing when the
/// connection or object is unknown.
pub async fn object_fields(
    app: &App,
    ctx: &TenantCtx,
    connection: ConnectionId,
    object: &str,
    ask_vendor: bool,
) -> AppResult<Option<ObjectFields>> {
    let Some(provider) = connection_provider(app, ctx, connection).await? else {
        return Ok(None);
    };
    let Some(spec) = provider_object(provider, object) else {
        return Ok(None);
    };
    let mut found = ObjectFields {
        object: format!("{} {}", provider.name, spec.name),
        fields: spec.fields.clone(),
        describable: spec.describe.is_some(),
        error: None,
    };
    if let (true, Some(describe)) = (ask_vendor, &spec.describe) {
        require_write(ctx)?;
        let query: Vec<(String, String)> = describe.query.clone().into_iter().collect();
        let listed = session::call(
            app,
            ctx,
            connection,
            reqwest::Method::GET,
            &describe.path,
            &query,
        )
        .await
        .map_err(|e| AppError::from(e).public_message())
        .and_then(|fetched| describe.answer(fetched.status.as_u16(), &fetched.body));
        match listed {
            Ok(listed) => found.fields = fields::merged(&spec.fields, listed),
            Err(why) => {
                found.error = Some(format!("{} did not list its fields: {why}", provider.name))
            }
        }
    }
    Ok(Some(found))
}

/// The tenant's flows, by name.
pub async fn list(app: &App, ctx: &TenantCtx) -> AppResult<Vec<records::Flow>> {
    Ok(app.store.flows(ctx).await?)
}

/// A flow, or 404.
pub async fn get(app: &App, ctx: &TenantCtx, id: FlowId) -> AppResult<records::Flow> {
    app.store.flow(ctx, id).await?.ok_or(AppError::NotFound)
}

/// A flow's runs, newest first, from before `before`.
pub async fn runs(
    app: &App,
    ctx: &TenantCtx,
    id: FlowId,
    before: Option<RunId>,
    limit: u64,
) -> AppResult<Vec<records::Run>> {
    Ok(app.store.runs(ctx, id, before, limit).await?)
}

/// A flow's saved versions.
pub async fn versions(
    app: &App,
    ctx: &TenantCtx,
    id: FlowId,
) -> AppResult<Vec<records::FlowVersion>> {
    Ok(app.store.flow_versions(ctx, id).await?)
}

/// One saved version of a flow, or 404.
pub async fn version(
    app: &App,
    ctx: &TenantCtx,
    id: FlowId,
    number: i64,
) -> AppResult<records::FlowVersion> {
    app.store
        .flow_version(ctx, id, number)
        .await?
        .ok_or(AppError::NotFound)
}

/// How many of a flow's dead letters are in `state`.
pub async fn dead_letter_count(
    app: &App,
    ctx: &TenantCtx,
    id: FlowId,
    state: DeadLetterState,
) -> AppResult<u64> {
    Ok(app.store.count_dead_letters(ctx, id, state).await?)
}

/// How many of a flow's dead letters are open.
pub async fn open_dead_letter_count(app: &App, ctx: &TenantCtx, id: FlowId) -> AppResult<u64> {
    Ok(app
        .store
        .count_dead_letters(ctx, id, DeadLetterState::Open)
        .await?)
}
