//! JSON API: run history across flows, alerts (list, acknowledge, resolve), alert rules
//! and notification channels.

use super::super::extract::ApiClient;
use super::api_actor;
use super::flows::RunDto;
use crate::app::App;
use crate::domain::{AlertId, AlertRuleId, AlertState, ChannelId, RunId};
use crate::error::{ApiErrorBody, ApiResult};
use crate::services::alerts::{self, ChannelInput, RuleInput};
use crate::services::records;
use crate::services::records::{AlertFilter, RunFilter};
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

/// Filters of the run history.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// One flow.
    pub flow_id: Option<uuid::Uuid>,
    /// One status (`failed`, `succeeded`, …).
    pub status: Option<String>,
    /// One trigger (`manual`, `schedule`, `webhook`, `replay`).
    pub trigger: Option<String>,
    /// Created at or after (RFC 3339).
    pub from: Option<chrono::DateTime<chrono::Utc>>,
    /// Created before (RFC 3339).
    pub to: Option<chrono::DateTime<chrono::Utc>>,
    /// Runs older than this run id (the last id of the previous page).
    pub before: Option<uuid::Uuid>,
    /// Page size (1–500, default 50).
    pub limit: Option<u64>,
}

/// The workspace's runs across flows, newest first.
#[utoipa::path(get, path = "/api/v1/runs", tag = "runs", params(HistoryQuery),
    responses((status = 200, body = Vec<RunDto>), (status = 422, body = ApiErrorBody)))]
pub async fn history(
    app: web::Data<App>,
    client: ApiClient,
    q: web::Query<HistoryQuery>,
) -> ApiResult<web::Json<Vec<RunDto>>> {
    let invalid = |field: &str, v: &str| {
        crate::error::AppError::invalid(field, format!("unknown value '{v}'"))
    };
    let filter = RunFilter {
        flow: q.flow_id.map(crate::domain::FlowId::from_uuid),
        status: match q.status.as_deref() {
            Some(s) => Some(s.parse().map_err(|_| invalid("status", s))?),
            None => None,
        },
        trigger: match q.trigger.as_deref() {
            Some(t) => Some(t.parse().map_err(|_| invalid("trigger", t))?),
            None => None,
        },
        from: q.from,
        to: q.to,
    };
    let page = crate::services::runs::history(
        &app,
        &client.ctx,
        &filter,
        q.before.map(RunId::from_uuid),
        q.limit.unwrap_or(50).clamp(1, 500),
    )
    .await?;
    Ok(web::Json(page.runs.into_iter().map(RunDto::from).collect()))
}

/// An alert.
#[derive(Serialize, ToSchema)]
pub struct AlertDto {
    /// Id.
    pub id: uuid::Uuid,
    /// The rule kind that raised it.
    pub kind: String,
    /// `open`, `acknowledged` or `resolved`.
    pub state: String,
    /// Headline.
    pub title: String,
    /// What happened.
    pub detail: String,
    /// The flow or connection it is about (name).
    pub subject: String,
    /// Flow, when about a flow.
    pub flow_id: Option<uuid::Uuid>,
    /// Connection, when about a connection.
    pub connection_id: Option<uuid::Uuid>,
    /// The latest run that raised it.
    pub run_id: Option<uuid::Uuid>,
    /// Times the condition was seen while unresolved.
    pub occurrences: i32,
    /// Opened.
    pub opened_at: chrono::DateTime<chrono::Utc>,
    /// Acknowledged.
    pub acknowledged_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Resolved.
    pub resolved_at: Option<chrono::DateTime<chrono::Utc>>,
}

impl From<records::Alert> for AlertDto {
    fn from(a: records::Alert) -> Self {
        Self {
            id: a.id.uuid(),
            kind: a.kind.to_string(),
            state: a.state.to_string(),
            title: a.title,
            detail: a.detail,
            subject: a.subject,
            flow_id: a.flow_id.map(Uuid::from),
            connection_id: a.connection_id.map(Uuid::from),
            run_id: a.run_id.map(Uuid::from),
            occurrences: a.occurrences,
            opened_at: a.opened_at,
            acknowledged_at: a.acknowledged_at,
            resolved_at: a.resolved_at,
        }
    }
}

/// Filters of the alert list.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AlertQuery {
    /// `active` (default: open and acknowledged), `open`, `acknowledged`, `resolved` or `all`.
    pub state: Option<String>,
    /// Alerts older than this alert id.
    pub before: Option<uuid::Uuid>,
    /// Page size (1–500, default 50).
    pub limit: Option<u64>,
}

/// Alerts, newest first.
#[utoipa::path(get, path = "/api/v1/alerts", tag = "alerts", operation_id = "list_alerts", params(AlertQuery),
    responses((status = 200, body = Vec<AlertDto>), (status = 422, body = ApiErrorBody)))]
pub async fn list(
    app: web::Data<App>,
    client: ApiClient,
    q: web::Query<AlertQuery>,
) -> ApiResult<web::Json<Vec<AlertDto>>> {
    let filter = match q.state.as_deref().unwrap_or("active") {
        "active" => AlertFilter::Active,
        "all" => AlertFilter::All,
        s => AlertFilter::State(s.parse::<AlertState>().map_err(|_| {
            crate::error::AppError::invalid("state", format!("unknown state '{s}'"))
        })?),
    };
    let alerts = alerts::list(
        &app,
        &client.ctx,
        filter,
        q.before.map(AlertId::from_uuid),
        q.limit.unwrap_or(50).clamp(1, 500),
    )
    .await?;
    Ok(web::Json(alerts.into_iter().map(AlertDto::from).collect()))
}

/// Acknowledges an open alert (no further notifications until it resolves).
#[utoipa::path(post, path = "/api/v1/alerts/{id}/acknowledge", tag = "alerts", params(("id" = uuid::Uuid, Path, description = "Alert id")),
    responses((status = 200, body = AlertDto), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody), (status = 409, body = ApiErrorBody)))]
pub async fn acknowledge(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<AlertId>,
) -> ApiResult<web::Json<AlertDto>> {
    let alert =
        alerts::acknowledge(&app, &client.ctx, &api_actor(&client), id.into_inner()).await?;
    Ok(web::Json(alert.into()))
}

/// Resolves an alert by hand.
#[utoipa::path(post, path = "/api/v1/alerts/{id}/resolve", tag = "alerts", params(("id" = uuid::Uuid, Path, description = "Alert id")),
    responses((status = 204), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn resolve(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<AlertId>,
) -> ApiResult<HttpResponse> {
    alerts::resolve(&app, &client.ctx, &api_actor(&client), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// An alert rule.
#[derive(Serialize, ToSchema)]
pub struct RuleDto {
    /// Id.
    pub id: uuid::Uuid,
    /// What it watches for (`run_failed`, `consecutive_failures`, `error_rate`,
    /// `freshness`, `silent_failure`, `connection_reauth`, `duration`, `auto_paused`).
    pub kind: String,
    /// One flow, or none for all flows.
    pub flow_id: Option<uuid::Uuid>,
    /// Threshold (meaning depends on the kind).
    pub threshold: Option<f64>,
    /// Window in minutes (error rate, freshness).
    pub window_minutes: Option<i32>,
    /// Minutes within which a flapping alert does not notify again.
    pub throttle_minutes: i32,
    /// On or off.
    pub enabled: bool,
}

impl From<records::AlertRule> for RuleDto {
    fn from(r: records::AlertRule) -> Self {
        Self {
            id: r.id.uuid(),
            kind: r.kind.to_string(),
            flow_id: r.flow_id.map(Uuid::from),
            threshold: r.threshold,
            window_minutes: r.window_minutes,
            throttle_minutes: r.throttle_minutes,
            enabled: r.enabled,
        }
    }
}

/// A rule to create or change (kind and flow are fixed once created).
#[derive(Deserialize, ToSchema)]
pub struct RuleBody {
    /// Kind (create only).
    #[serde(default)]
    pub kind: String,
    /// Flow (create only); none for all flows.
    pub flow_id: Option<uuid::Uuid>,
    /// Threshold.
    pub threshold: Option<f64>,
    /// Window in minutes.
    pub window_minutes: Option<i32>,
    /// Throttle in minutes (default 60).
    pub throttle_minutes: Option<i32>,
    /// On or off (default on).
    pub enabled: Option<bool>,
}

impl RuleBody {
    fn input(&self) -> RuleInput {
        let text = |v: Option<String>| v.unwrap_or_default();
        RuleInput {
            kind: self.kind.clone(),
            flow_id: text(self.flow_id.map(|f| f.to_string())),
            threshold: text(self.threshold.map(|t| t.to_string())),
            window_minutes: text(self.window_minutes.map(|w| w.to_string())),
            throttle_minutes: text(self.throttle_minutes.map(|t| t.to_string())),
            enabled: self.enabled.unwrap_or(true),
        }
    }
}

/// The workspace's alert rules.
#[utoipa::path(get, path = "/api/v1/alert-rules", tag = "alerts",
    responses((status = 200, body = Vec<RuleDto>)))]
pub async fn rules(app: web::Data<App>, client: ApiClient) -> ApiResult<web::Json<Vec<RuleDto>>> {
    let rules = alerts::rules(&app, &client.ctx).await?;
    Ok(web::Json(rules.into_iter().map(RuleDto::from).collect()))
}

async fn rule_dto(app: &App, client: &ApiClient, id: AlertRuleId) -> ApiResult<RuleDto> {
    Ok(alerts::rule(app, &client.ctx, id).await?.into())
}

/// Adds a rule.
#[utoipa::path(post, path = "/api/v1/alert-rules", tag = "alerts", request_body = RuleBody,
    responses((status = 201, body = RuleDto), (status = 403, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create_rule(
    app: web::Data<App>,
    client: ApiClient,
    body: web::Json<RuleBody>,
) -> ApiResult<HttpResponse> {
    let id = alerts::create_rule(&app, &client.ctx, &api_actor(&client), &body.input()).await?;
    Ok(HttpResponse::Created().json(rule_dto(&app, &client, id).await?))
}

/// Changes a rule's threshold, window, throttle or switch.
#[utoipa::path(put, path = "/api/v1/alert-rules/{id}", tag = "alerts", request_body = RuleBody, params(("id" = uuid::Uuid, Path, description = "Rule id")),
    responses((status = 200, body = RuleDto), (status = 404, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn update_rule(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<AlertRuleId>,
    body: web::Json<RuleBody>,
) -> ApiResult<web::Json<RuleDto>> {
    let id = id.into_inner();
    alerts::update_rule(&app, &client.ctx, &api_actor(&client), id, &body.input()).await?;
    Ok(web::Json(rule_dto(&app, &client, id).await?))
}

/// Deletes a rule.
#[utoipa::path(delete, path = "/api/v1/alert-rules/{id}", tag = "alerts", params(("id" = uuid::Uuid, Path, description = "Rule id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete_rule(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<AlertRuleId>,
) -> ApiResult<HttpResponse> {
    alerts::delete_rule(&app, &client.ctx, &api_actor(&client), id.into_inner()).await?;
    Ok(HttpResponse::NoContent().finish())
}

/// A notification channel (its signing secret is never returned after creation).
#[derive(Serialize, ToSchema)]
pub struct ChannelDto {
    /// Id.
    pub id: uuid::Uuid,
    /// `email`, `webhook` or `slack`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// Address or URL.
    pub target: String,
    /// On or off.
    pub enabled: bool,
    /// Why it is off.
    pub disabled_reason: Option<String>,
    /// The `whsec_…` signing secret: only in the answer that created it.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub secret: Option<String>,
}

impl From<records::Channel> for ChannelDto {
    fn from(c: records::Channel) -> Self {
        Self {
            id: c.id.uuid(),
            kind: c.kind.to_string(),
            name: c.name,
            target: c.target,
            enabled: c.enabled,
            disabled_reason: c.disabled_reason,
            secret: None,
        }
    }
}

/// A channel to create.
#[derive(Deserialize, ToSchema)]
pub struct ChannelBody {
    /// `email`, `webhook` or `slack`.
    pub kind: String,
    /// Name.
    pub name: String,
    /// E-mail address or https URL.
    pub target: String,
}

/// The workspace's notification channels.
#[utoipa::path(get, path = "/api/v1/channels", tag = "alerts",
    responses((status = 200, body = Vec<ChannelDto>)))]
pub async fn channels(
    app: web::Data<App>,
    client: ApiClient,
) -> ApiResult<web::Json<Vec<ChannelDto>>> {
    let channels = alerts::channels(&app, &client.ctx).await?;
    Ok(web::Json(
        channels.into_iter().map(ChannelDto::from).collect(),
    ))
}

/// Adds a channel; a webhook's signing secret is returned once, here.
#[utoipa::path(post, path = "/api/v1/channels", tag = "alerts", request_body = ChannelBody,
    responses((status = 201, body = ChannelDto), (status = 403, body = ApiErrorBody), (status = 422, body = ApiErrorBody)))]
pub async fn create_channel(
    app: web::Data<App>,
    client: ApiClient,
    body: web::Json<ChannelBody>,
) -> ApiResult<HttpResponse> {
    let input = ChannelInput {
        kind: body.kind.clone(),
        name: body.name.clone(),
        target: body.target.clone(),
    };
    let created = alerts::create_channel(&app, &client.ctx, &api_actor(&client), &input).await?;
    let mut dto: ChannelDto = alerts::channel(&app, &client.ctx, created.id).await?.into();
    dto.secret = created.secret;
    Ok(HttpResponse::Created().json(dto))
}

/// Deletes a channel.
#[utoipa::path(delete, path = "/api/v1/channels/{id}", tag = "alerts", params(("id" = uuid::Uuid, Path, description = "Channel id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn delete_channel(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<ChannelId>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    alerts::delete_channel(&app, &client.ctx, &api_actor(&client), id).await?;
    Ok(HttpResponse::NoContent().finish())
}
