//! The JSON API under `/api/v1`: bearer API tokens, one error shape, an OpenAPI document.

pub mod alerts;
pub mod connections;
pub mod flow_documents;
pub mod flows;

use super::extract::ApiClient;
use crate::app::App;
use crate::error::{ApiError, ApiErrorBody, ApiResult, AppError};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{IntoParams, Modify, OpenApi, ToSchema};

/// The OpenAPI document; later resources add their paths here.
#[derive(OpenApi)]
#[openapi(
    info(title = "Sluice API", description = "Manage a Sluice workspace programmatically. Authenticate with `Authorization: Bearer <API token>`; a token acts in one workspace, for the member who created it: never with more than their current role, and not at all once they leave the workspace."),
    paths(me, members, audit_events, connections::providers, connections::list, connections::show, connections::delete, connections::test, connections::create_link, connections::list_links, connections::revoke_link, flows::list, flows::create, flows::show, flows::update, flows::delete, flows::enable, flows::pause, flows::run, flows::dry_run, flows::runs, flows::run_show, flows::cancel, flows::dead_letters, flows::replay, flows::discard, flow_documents::export, flow_documents::import, flow_documents::duplicate, alerts::history, alerts::list, alerts::acknowledge, alerts::resolve, alerts::rules, alerts::create_rule, alerts::update_rule, alerts::delete_rule, alerts::channels, alerts::create_channel, alerts::delete_channel),
    components(schemas(ApiErrorBody)),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
    tags((name = "workspace", description = "The workspace the token belongs to"), (name = "connections", description = "Providers, connections and connect links"), (name = "flows", description = "Flows, runs and dead letters"), (name = "runs", description = "Run history across flows"), (name = "alerts", description = "Alerts, alert rules and notification channels"))
)]
pub struct ApiDoc;

/// How an API client appears in audit logs.
pub(super) fn api_actor(client: &ApiClient) -> crate::app::AuditActor {
    let label = match client.ctx.actor() {
        crate::domain::Actor::ApiToken(id) => format!("API token {id}"),
        _ => "API".to_owned(),
    };
    crate::app::AuditActor { label, ip: None }
}

struct BearerAuth;

impl Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("slc_…")
                    .build(),
            ),
        );
    }
}

/// GET /api/v1/openapi.json
pub async fn openapi() -> ApiResult<HttpResponse> {
    let json = ApiDoc::openapi()
        .to_pretty_json()
        .map_err(|e| ApiError(AppError::Internal(e.into())))?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .body(json))
}

/// Unknown API paths answer in the API's error shape.
pub async fn not_found() -> ApiResult<HttpResponse> {
    Err(ApiError(AppError::NotFound))
}

/// The caller's workspace and access.
#[derive(Serialize, ToSchema)]
pub struct MeResponse {
    /// Workspace id.
    pub workspace_id: uuid::Uuid,
    /// Workspace name.
    pub workspace_name: String,
    /// The token's access now: `admin` or `viewer`, never more than its creator's
    /// current role in the workspace.
    pub role: String,
}

/// Who am I: the workspace and role of the presented token.
#[utoipa::path(get, path = "/api/v1/me", tag = "workspace",
    responses((status = 200, body = MeResponse), (status = 401, body = ApiErrorBody)))]
pub async fn me(app: web::Data<App>, client: ApiClient) -> ApiResult<web::Json<MeResponse>> {
    let tenant = crate::services::tenants::get(&app, &client.ctx).await?;
    Ok(web::Json(MeResponse {
        workspace_id: tenant.id.uuid(),
        workspace_name: tenant.name,
        role: client.role().to_string(),
    }))
}

/// A member of the workspace.
#[derive(Serialize, ToSchema)]
pub struct MemberDto {
    /// Membership id.
    pub id: uuid::Uuid,
    /// Name.
    pub name: String,
    /// E-mail.
    pub email: String,
    /// `owner`, `admin` or `viewer`.
    pub role: String,
    /// When they joined.
    pub joined_at: chrono::DateTime<chrono::Utc>,
}

/// Members of the token's workspace.
#[utoipa::path(get, path = "/api/v1/members", tag = "workspace",
    responses((status = 200, body = Vec<MemberDto>), (status = 401, body = ApiErrorBody)))]
pub async fn members(
    app: web::Data<App>,
    client: ApiClient,
) -> ApiResult<web::Json<Vec<MemberDto>>> {
    let members = crate::services::members::list(&app, &client.ctx).await?;
    Ok(web::Json(
        members
            .into_iter()
            .map(|m| MemberDto {
                id: m.id.uuid(),
                name: m.name,
                email: m.email,
                role: m.role.to_string(),
                joined_at: m.joined_at,
            })
            .collect(),
    ))
}

/// Query for the audit log.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// Most recent N events (1–500, default 100).
    pub limit: Option<u64>,
    /// Only actions starting with this, e.g. `support.` or `flow.`.
    pub action: Option<String>,
    /// Only actors whose label contains this.
    pub actor: Option<String>,
    /// Events older than this event id (the last id of the previous page).
    pub before: Option<uuid::Uuid>,
}

/// An audit log entry.
#[derive(Serialize, ToSchema)]
pub struct AuditEventDto {
    /// Event id.
    pub id: uuid::Uuid,
    /// Who acted.
    pub actor: String,
    /// What happened, e.g. `member.invited`.
    pub action: String,
    /// What it happened to.
    pub target: Option<String>,
    /// Client address.
    pub ip: Option<String>,
    /// When.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

/// The workspace's audit log, newest first.
#[utoipa::path(get, path = "/api/v1/audit-events", tag = "workspace", params(AuditQuery),
    responses((status = 200, body = Vec<AuditEventDto>), (status = 401, body = ApiErrorBody)))]
pub async fn audit_events(
    app: web::Data<App>,
    client: ApiClient,
    query: web::Query<AuditQuery>,
) -> ApiResult<web::Json<Vec<AuditEventDto>>> {
    let limit = query.limit.unwrap_or(100).clamp(1, 500);
    let filter = crate::services::records::AuditFilter {
        action_prefix: query.action.clone().filter(|a| !a.is_empty()),
        actor: query.actor.clone().filter(|a| !a.is_empty()),
        ..Default::default()
    };
    let before = query.before.map(crate::domain::AuditEventId::from_uuid);
    let events =
        crate::services::tenants::audit_log(&app, &client.ctx, &filter, before, limit).await?;
    Ok(web::Json(
        events
            .into_iter()
            .map(|e| AuditEventDto {
                id: e.id.uuid(),
                actor: e.actor,
                action: e.action,
                target: e.target,
                ip: e.ip,
                created_at: e.created_at,
            })
            .collect(),
    ))
}
