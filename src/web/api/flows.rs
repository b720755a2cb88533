//! JSON API: flows (CRUD, enable/pause, run now, dry run), runs (list, show, cancel) and
//! dead letters (list, replay, discard).

use super::super::extract::ApiClient;
use super::api_actor;
use crate::app::App;
use crate::domain::{
    DeadLetterId, DeadLetterState, FlowId, FlowSpec, FlowStatus, RunId, UnknownName,
};
use crate::error::{ApiErrorBody, ApiResult, AppError};
use crate::services::flows;
use crate::services::records;
use crate::services::runs as run_service;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

/// A flow with its current definition.
#[derive(Serialize, ToSchema)]
pub struct FlowDto {
    /// Id.
    pub id: uuid::Uuid,
    /// Name.
    pub name: String,
    /// `active` or `paused`.
    pub status: String,
    /// Why it is paused.
    pub paused_reason: Option<String>,
    /// Current version number.
    pub version: i64,
    /// Next scheduled run.
    pub next_run_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Failed runs in a row.
    pub consecutive_failures: i32,
    /// The current definition.
    pub spec: FlowSpec,
}

fn flow_dto(flow: records::Flow, spec: FlowSpec) -> FlowDto {
    FlowDto {
        id: flow.id.uuid(),
        name: flow.name,
        status: flow.status.to_string(),
        paused_reason: flow.paused_reason,
        version: flow.version,
        next_run_at: flow.next_run_at,
        consecutive_failures: flow.consecutive_failures,
        spec,
    }
}

pub(super) async fn load_dto(app: &App, client: &ApiClient, id: FlowId) -> ApiResult<FlowDto> {
    let view = flows::load(app, &client.ctx, id).await?;
    Ok(flow_dto(view.flow, view.spec))
}

/// A run.
#[derive(Serialize, ToSchema)]
pub struct RunDto {
    /// Id.
    pub id: uuid::Uuid,
    /// Flow.
    pub flow_id: uuid::Uuid,
    /// Flow version it ran.
    pub version: i64,
    /// `manual`, `schedule`, `webhook` or `replay`.
    pub trigger: String,
    /// `queued`, `running`, `succeeded`, `partially_failed`, `failed` or `cancelled`.
    pub status: String,
    /// Records read.
    pub records_read: i64,
    /// Records written.
    pub records_written: i64,
    /// Records skipped as unchanged.
    pub records_unchanged: i64,
    /// Records filtered out.
    pub records_filtered: i64,
    /// Records sent to the dead letters.
    pub records_failed: i64,
    /// Source total, when known.
    pub records_total: Option<i64>,
    /// Pages committed.
    pub pages: i64,
    /// Why it failed.
    pub error: Option<String>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
    /// Started.
    pub started_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Finished.
    pub finished_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<records::Run> for RunDto {
    fn from(r: records::Run) -> Self {
        Self {
            id: r.id.uuid(),
            flow_id: r.flow_id.uuid(),
            version: r.version,
            trigger: r.trigger.to_string(),
            status: r.status.to_string(),
            records_read: r.records_read,
            records_written: r.records_written,
            records_unchanged: r.records_unchanged,
            records_filtered: r.records_filtered,
            records_failed: r.records_failed,
            records_total: r.records_total,
            pages: r.pages,
            error: r.error,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
        }
    }
}

/// A dead letter.
#[derive(Serialize, ToSchema)]
pub struct DeadLetterDto {
    /// Id.
    pub id: uuid::Uuid,
    /// The run it last failed in.
    pub run_id: uuid::Uuid,
    /// Source record key.
    pub record_key: String,
    /// The source record, with secret-looking values masked.
    pub payload: serde_json::Value,
    /// `mapping`, `validation`, `filter` or `rejected`.
    pub error_class: String,
    /// What went wrong.
    pub error: String,
    /// Failed attempts.
    pub attempts: i32,
    /// `open`, `replayed` or `discarded`.
    pub state: String,
    /// Last failure.
    pub updated_at: chrono::DateTime<chrono::Utc>,
}

impl From<records::DeadLetter> for DeadLetterDto {
    fn from(l: records::DeadLetter) -> Self {
        Self {
            id: l.id.uuid(),
            run_id: l.run_id.uuid(),
            record_key: l.record_key,
            payload: serde_json::from_str(&l.payload).unwrap_or(serde_json::Value::Null),
            error_class: l.error_class.to_string(),
            error: l.error,
            attempts: l.attempts,
            state: l.state.to_string(),
            updated_at: l.updated_at,
        }
    }
}

/// The workspace's flows.
#[utoipa::path(get, path = "/api/v1/flows", tag = "flows",
    responses((status = 200, body = Vec<FlowDto>), (status = 401, body = ApiErrorBody)))]
pub async fn list(app: web::Data<App>, client: ApiClient) -> ApiResult<web::Json<Vec<FlowDto>>> {
    let mut out = Vec::new();
    for flow in flows::list(&app, &client.ctx).await? {
        out.push(load_dto(&app, &client, flow.id).await?);
    }
    Ok(web::Json(out))
}

/// Creates a flow (version 1).
#[utoipa::path(post, path = "/api/v1/flows", tag = "flows", request_body = FlowSpec,
    responses((status = 201, body = FlowDto), (status = 422, body = ApiErrorBody)))]
pub async fn create(
    app: web::Data<App>,
    client: ApiClient,
    spec: web::Json<FlowSpec>,
) -> ApiResult<HttpResponse> {
    let saved = flows::save(
        &app,
        &client.ctx,
        &api_actor(&client),
        None,
        spec.into_inner(),
    )
    .await?;
    Ok(HttpResponse::Created().json(load_dto(&app, &client, saved.id).await?))
}

/// One flow.
#[utoipa::path(get, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 200, body = FlowDto), (status = 404, body = ApiErrorBody)))]
pub async fn show(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<web::Json<FlowDto>> {
    Ok(web::Json(load_dto(&app, &client, id.into_inner()).await?))
}

/// A new version of a flow.
#[derive(Deserialize, ToSchema)]
pub struct UpdateFlow {
    /// The version you edited (409 when someone saved meanwhile).
    pub expected_version: i64,
    /// The new definition.
    pub spec: FlowSpec,
}

/// Saves a new version of a flow.
#[utoipa::path(put, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")), request_body = UpdateFlow,
    responses((status = 200, body = FlowDto), (status = 409, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn update(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
    body: web::Json<UpdateFlow>,
) -> ApiResult<web::Json<FlowDto>> {
    let id = id.into_inner();
    flows::get(&app, &client.ctx, id).await?;
    let body = body.into_inner();
    flows::save(
        &app,
        &client.ctx,
        &api_actor(&client),
        Some((id, body.expected_version)),
        body.spec,
    )
    .await?;
    Ok(web::Json(load_dto(&app, &client, id).await?))
}

/// Deletes a flow with its history.
#[utoipa::path(delete, path = "/api/v1/flows/{id}", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<HttpResponse> {
    flows::delete(&app, &client.ctx, &api_actor(&client), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// Enables a flow's triggers.
#[utoipa::path(post, path = "/api/v1/flows/{id}/enable", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 200, body = FlowDto), (status = 404, body = ApiErrorBody)))]
pub async fn enable(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<web::Json<FlowDto>> {
    set_status(&app, &client, id.into_inner(), FlowStatus::Active).await
}

/// Pauses a flow's triggers.
#[utoipa::path(post, path = "/api/v1/flows/{id}/pause", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 200, body = FlowDto), (status = 404, body = ApiErrorBody)))]
pub async fn pause(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<web::Json<FlowDto>> {
    set_status(&app, &client, id.into_inner(), FlowStatus::Paused).await
}

async fn set_status(
    app: &App,
    client: &ApiClient,
    id: FlowId,
    status: FlowStatus,
) -> ApiResult<web::Json<FlowDto>> {
    flows::set_status(app, &client.ctx, &api_actor(client), id, status).await?;
    Ok(web::Json(load_dto(app, client, id).await?))
}

async fn run_dto(app: &App, client: &ApiClient, id: RunId) -> ApiResult<RunDto> {
    Ok(crate::services::runs::get(app, &client.ctx, id)
        .await?
        .into())
}

/// Starts a run now (or returns the flow's unfinished one).
#[utoipa::path(post, path = "/api/v1/flows/{id}/run", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 202, body = RunDto), (status = 404, body = ApiErrorBody)))]
pub async fn run(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<HttpResponse> {
    let run = flows::run_now(&app, &client.ctx, &api_actor(&client), id.into_inner()).await?;
    Ok(HttpResponse::Accepted().json(run_dto(&app, &client, run).await?))
}

/// Dry run size.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct DryRunQuery {
    /// Records to read (1–50, default 10).
    pub limit: Option<u32>,
}

/// One record of a dry run.
#[derive(Serialize, ToSchema)]
pub struct DryRowDto {
    /// Source record.
    pub source: serde_json::Value,
    /// Record key.
    pub key: String,
    /// What would be written.
    pub output: Option<serde_json::Value>,
    /// Skipped by the filter.
    pub filtered: bool,
    /// Why it would fail.
    pub error: Option<String>,
}

/// Maps the first source records with the current version; writes nothing.
#[utoipa::path(post, path = "/api/v1/flows/{id}/dry-run", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id"), DryRunQuery),
    responses((status = 200, body = Vec<DryRowDto>), (status = 404, body = ApiErrorBody)))]
pub async fn dry_run(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
    query: web::Query<DryRunQuery>,
) -> ApiResult<web::Json<Vec<DryRowDto>>> {
    let view = flows::load(&app, &client.ctx, id.into_inner()).await?;
    let rows = flows::dry_run(&app, &client.ctx, &view.spec, query.limit.unwrap_or(10)).await?;
    let json = |s: &str| serde_json::from_str(s).unwrap_or(serde_json::Value::Null);
    Ok(web::Json(
        rows.into_iter()
            .map(|r| DryRowDto {
                source: json(&r.source),
                key: r.key,
                output: r.output.as_deref().map(json),
                filtered: r.filtered,
                error: r.error,
            })
            .collect(),
    ))
}

/// Keyset pagination of runs.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RunsQuery {
    /// Only runs older than this run id.
    pub before: Option<uuid::Uuid>,
    /// Page size (1–100, default 20).
    pub limit: Option<u64>,
}

/// A flow's runs, newest first.
#[utoipa::path(get, path = "/api/v1/flows/{id}/runs", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id"), RunsQuery),
    responses((status = 200, body = Vec<RunDto>), (status = 404, body = ApiErrorBody)))]
pub async fn runs(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
    query: web::Query<RunsQuery>,
) -> ApiResult<web::Json<Vec<RunDto>>> {
    let id = id.into_inner();
    flows::get(&app, &client.ctx, id).await?;
    let runs = flows::runs(
        &app,
        &client.ctx,
        id,
        query.before.map(RunId::from_uuid),
        query.limit.unwrap_or(20).clamp(1, 100),
    )
    .await?;
    Ok(web::Json(runs.into_iter().map(RunDto::from).collect()))
}

/// One run.
#[utoipa::path(get, path = "/api/v1/runs/{id}", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Run id")),
    responses((status = 200, body = RunDto), (status = 404, body = ApiErrorBody)))]
pub async fn run_show(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<RunId>,
) -> ApiResult<web::Json<RunDto>> {
    Ok(web::Json(run_dto(&app, &client, id.into_inner()).await?))
}

/// Cancels a run at its next page boundary.
#[utoipa::path(post, path = "/api/v1/runs/{id}/cancel", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Run id")),
    responses((status = 200, body = RunDto), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn cancel(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<RunId>,
) -> ApiResult<web::Json<RunDto>> {
    let id = id.into_inner();
    run_service::cancel(&app, &client.ctx, &api_actor(&client), id).await?;
    Ok(web::Json(run_dto(&app, &client, id).await?))
}

/// Dead letter filters.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct LettersQuery {
    /// `open` (default), `replayed` or `discarded`.
    pub state: Option<String>,
    /// Only this run's.
    pub run: Option<uuid::Uuid>,
    /// Only this error class: `mapping`, `validation`, `filter` or `rejected`.
    pub error_class: Option<String>,
    /// Skip this many.
    pub offset: Option<u64>,
    /// Page size (1–500, default 100).
    pub limit: Option<u64>,
}

/// A flow's dead letters, newest first.
#[utoipa::path(get, path = "/api/v1/flows/{id}/dead-letters", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id"), LettersQuery),
    responses((status = 200, body = Vec<DeadLetterDto>), (status = 404, body = ApiErrorBody)))]
pub async fn dead_letters(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
    query: web::Query<LettersQuery>,
) -> ApiResult<web::Json<Vec<DeadLetterDto>>> {
    let id = id.into_inner();
    let state: DeadLetterState = match query.state.as_deref() {
        None => DeadLetterState::Open,
        Some(s) => s
            .parse()
            .map_err(|e: UnknownName| AppError::BadRequest(e.to_string()))?,
    };
    let letters = run_service::dead_letters(
        &app,
        &client.ctx,
        id,
        run_service::LetterQuery {
            state,
            run: query.run.map(RunId::from_uuid),
            class: query
                .error_class
                .as_deref()
                .map(str::parse)
                .transpose()
                .map_err(|e: UnknownName| AppError::BadRequest(e.to_string()))?,
            offset: query.offset.unwrap_or(0),
            limit: query.limit.unwrap_or(100).clamp(1, 500),
        },
    )
    .await?;
    Ok(web::Json(
        letters.into_iter().map(DeadLetterDto::from).collect(),
    ))
}

/// Which dead letters to act on: either `ids`, or `"all": true` for every open dead
/// letter of the flow. Anything else (no body, both, neither, unknown fields, ids that
/// are not UUIDs) is refused and changes nothing.
#[derive(Deserialize, ToSchema, Default)]
#[serde(deny_unknown_fields)]
pub struct LetterSelection {
    /// These dead letters (at least one).
    pub ids: Option<Vec<uuid::Uuid>>,
    /// `true` to act on every open dead letter of the flow.
    pub all: Option<bool>,
}

impl TryFrom<LetterSelection> for crate::domain::LetterSelection {
    type Error = AppError;
    fn try_from(body: LetterSelection) -> Result<Self, AppError> {
        match (body.ids, body.all) {
            (Some(ids), None | Some(false)) => crate::domain::LetterSelection::of(
                ids.into_iter().map(DeadLetterId::from_uuid).collect(),
            )
            .ok_or_else(|| AppError::invalid("ids", "Select at least one dead letter.")),
            (None, Some(true)) => Ok(crate::domain::LetterSelection::All),
            (Some(_), Some(true)) => Err(AppError::invalid(
                "all",
                "Give either ids or \"all\": true, not both.",
            )),
            (None, None | Some(false)) => Err(AppError::invalid(
                "ids",
                "Give the ids to act on, or \"all\": true for every open dead letter.",
            )),
        }
    }
}

/// Replays dead letters on the current version; returns the replay run.
#[utoipa::path(post, path = "/api/v1/flows/{id}/dead-letters/replay", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")), request_body = LetterSelection,
    responses((status = 202, body = RunDto), (status = 400, description = "Malformed JSON", body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, description = "No open dead letters in the selection", body = ApiErrorBody), (status = 415, description = "Body is not `application/json`", body = ApiErrorBody), (status = 422, description = "Neither `ids` nor `\"all\": true`, both, or unknown fields", body = ApiErrorBody)))]
pub async fn replay(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
    body: web::Json<LetterSelection>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    let selection = body.into_inner().try_into()?;
    let run = flows::replay(&app, &client.ctx, &api_actor(&client), id, selection).await?;
    Ok(HttpResponse::Accepted().json(run_dto(&app, &client, run).await?))
}

/// How many were discarded.
#[derive(Serialize, ToSchema)]
pub struct Discarded {
    /// Count.
    pub discarded: u64,
}

/// Discards dead letters.
#[utoipa::path(post, path = "/api/v1/flows/{id}/dead-letters/discard", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")), request_body = LetterSelection,
    responses((status = 200, body = Discarded), (status = 400, description = "Malformed JSON", body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 415, description = "Body is not `application/json`", body = ApiErrorBody), (status = 422, description = "Neither `ids` nor `\"all\": true`, both, or unknown fields", body = ApiErrorBody)))]
pub async fn discard(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
    body: web::Json<LetterSelection>,
) -> ApiResult<web::Json<Discarded>> {
    let id = id.into_inner();
    let selection = body.into_inner().try_into()?;
    let discarded = flows::discard(&app, &client.ctx, &api_actor(&client), id, selection).await?;
    Ok(web::Json(Discarded { discarded }))
}
