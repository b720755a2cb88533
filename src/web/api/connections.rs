//! JSON API: providers, connections and connect links — so a vendor embedding Sluice can
//! hand its customer a connect link programmatically.

use super::super::extract::ApiClient;
use super::api_actor;
use crate::app::App;
use crate::connectors::catalogue::{self, Provider};
use crate::domain::{ConnectLinkId, ConnectionId};
use crate::error::{ApiErrorBody, ApiResult};
use crate::services::connect_links;
use crate::services::connections;
use crate::services::records;
use actix_web::{HttpResponse, web};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

/// A provider in the catalogue.
#[derive(Serialize, ToSchema)]
pub struct ProviderDto {
    /// Id.
    pub id: String,
    /// Name.
    pub name: String,
    /// Category.
    pub category: String,
    /// One sentence.
    pub description: String,
    /// `oauth2_code`, `oauth2_client_credentials`, `api_key`, `basic` or `none`.
    pub auth_kind: String,
    /// Default scopes.
    pub scopes: Vec<String>,
    /// Object ids.
    pub objects: Vec<String>,
    /// Whether it is a built-in sandbox system.
    pub sandbox: bool,
}

impl From<&Provider> for ProviderDto {
    fn from(p: &Provider) -> Self {
        Self {
            id: p.id.clone(),
            name: p.name.clone(),
            category: p.category.clone(),
            description: p.description.clone(),
            auth_kind: p.auth.kind.as_str().to_owned(),
            scopes: p.auth.scopes.clone(),
            objects: p.objects.iter().map(|o| o.id.clone()).collect(),
            sandbox: p.sandbox,
        }
    }
}

/// Search query.
#[derive(Deserialize, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ProviderQuery {
    /// Filter by name, id, category or description.
    pub q: Option<String>,
}

/// The provider catalogue.
#[utoipa::path(get, path = "/api/v1/providers", tag = "connections", params(ProviderQuery),
    responses((status = 200, body = Vec<ProviderDto>), (status = 401, body = ApiErrorBody)))]
pub async fn providers(
    _client: ApiClient,
    query: web::Query<ProviderQuery>,
) -> web::Json<Vec<ProviderDto>> {
    web::Json(
        catalogue::search(query.q.as_deref().unwrap_or_default())
            .into_iter()
            .map(ProviderDto::from)
            .collect(),
    )
}

/// A connection (never with credentials).
#[derive(Serialize, ToSchema)]
pub struct ConnectionDto {
    /// Id.
    pub id: uuid::Uuid,
    /// Name.
    pub name: String,
    /// Provider id.
    pub provider: String,
    /// `active`, `reauth_required` or `disconnected`.
    pub status: String,
    /// Granted scopes.
    pub scopes: Option<String>,
    /// Access token expiry.
    pub access_expires_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last refresh.
    pub last_refresh_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last use.
    pub last_used_at: Option<chrono::DateTime<chrono::Utc>>,
    /// Last error, if any.
    pub last_error: Option<String>,
    /// End customer reference (connect links).
    pub customer_ref: Option<String>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<records::Connection> for ConnectionDto {
    fn from(c: records::Connection) -> Self {
        Self {
            id: c.id.uuid(),
            name: c.name,
            provider: c.provider_id,
            status: c.status.to_string(),
            scopes: c.scopes,
            access_expires_at: c.access_expires_at,
            last_refresh_at: c.last_refresh_at,
            last_used_at: c.last_used_at,
            last_error: c.last_error,
            customer_ref: c.customer_ref,
            created_at: c.created_at,
        }
    }
}

/// The workspace's connections.
#[utoipa::path(get, path = "/api/v1/connections", tag = "connections", operation_id = "list_connections",
    responses((status = 200, body = Vec<ConnectionDto>), (status = 401, body = ApiErrorBody)))]
pub async fn list(
    app: web::Data<App>,
    client: ApiClient,
) -> ApiResult<web::Json<Vec<ConnectionDto>>> {
    Ok(web::Json(
        connections::list(&app, &client.ctx)
            .await?
            .into_iter()
            .map(ConnectionDto::from)
            .collect(),
    ))
}

/// One connection.
#[utoipa::path(get, path = "/api/v1/connections/{id}", tag = "connections", operation_id = "show_connection", params(("id" = uuid::Uuid, Path, description = "Connection id")),
    responses((status = 200, body = ConnectionDto), (status = 404, body = ApiErrorBody)))]
pub async fn show(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<ConnectionId>,
) -> ApiResult<web::Json<ConnectionDto>> {
    let id = id.into_inner();
    let row = connections::get(&app, &client.ctx, id).await?;
    Ok(web::Json(row.into()))
}

/// Disconnects: revokes at the provider where supported and deletes the credentials.
#[utoipa::path(delete, path = "/api/v1/connections/{id}", tag = "connections", operation_id = "delete_connection", params(("id" = uuid::Uuid, Path, description = "Connection id")),
    responses((status = 200, body = TestResultDto), (status = 403, body = ApiErrorBody), (status = 404, body = ApiErrorBody)))]
pub async fn delete(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<ConnectionId>,
) -> ApiResult<web::Json<TestResultDto>> {
    let id = id.into_inner();
    let note = connections::disconnect(&app, &client.ctx, &api_actor(&client), id).await?;
    Ok(web::Json(TestResultDto {
        ok: true,
        message: note,
    }))
}

/// Outcome of a test or disconnect.
#[derive(Serialize, ToSchema)]
pub struct TestResultDto {
    /// Whether it worked.
    pub ok: bool,
    /// What happened.
    pub message: String,
}

/// Calls the provider with the connection and reports the result.
#[utoipa::path(post, path = "/api/v1/connections/{id}/test", tag = "connections", params(("id" = uuid::Uuid, Path, description = "Connection id")),
    responses((status = 200, body = TestResultDto), (status = 404, body = ApiErrorBody)))]
pub async fn test(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<ConnectionId>,
) -> ApiResult<web::Json<TestResultDto>> {
    let id = id.into_inner();
    let outcome = connections::test(&app, &client.ctx, id).await?;
    Ok(web::Json(TestResultDto {
        ok: outcome.ok,
        message: outcome.message,
    }))
}

/// A connect link (its URL is returned only when created).
#[derive(Serialize, ToSchema)]
pub struct ConnectLinkDto {
    /// Id.
    pub id: uuid::Uuid,
    /// Provider id.
    pub provider: String,
    /// Your reference for the end customer.
    pub customer_ref: String,
    /// `pending`, `connected`, `denied`, `failed`, `revoked` or `expired`.
    pub state: String,
    /// The URL to send (only in the create response).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub url: Option<String>,
    /// Expiry.
    pub expires_at: chrono::DateTime<chrono::Utc>,
    /// The connection it created.
    pub connection_id: Option<uuid::Uuid>,
    /// Created.
    pub created_at: chrono::DateTime<chrono::Utc>,
}

impl From<records::ConnectLink> for ConnectLinkDto {
    fn from(l: records::ConnectLink) -> Self {
        Self {
            id: l.id.uuid(),
            state: connect_links::state_of(&l).to_owned(),
            provider: l.provider_id,
            customer_ref: l.customer_ref,
            url: None,
            expires_at: l.expires_at,
            connection_id: l.connection_id.map(Uuid::from),
            created_at: l.created_at,
        }
    }
}

/// Body of a new connect link.
#[derive(Deserialize, ToSchema)]
pub struct NewConnectLink {
    /// Provider id.
    pub provider: String,
    /// Your reference for the end customer.
    pub customer_ref: String,
    /// Validity in hours (1–720, default 72).
    pub ttl_hours: Option<u32>,
}

/// Creates a single-use connect link for an end customer.
#[utoipa::path(post, path = "/api/v1/connect-links", tag = "connections", request_body = NewConnectLink,
    responses((status = 201, body = ConnectLinkDto), (status = 422, body = ApiErrorBody)))]
pub async fn create_link(
    app: web::Data<App>,
    client: ApiClient,
    body: web::Json<NewConnectLink>,
) -> ApiResult<HttpResponse> {
    let body = body.into_inner();
    let ttl = body.ttl_hours.map(|h| h.to_string()).unwrap_or_default();
    let created = connect_links::create(
        &app,
        &client.ctx,
        &api_actor(&client),
        &body.provider,
        &body.customer_ref,
        &ttl,
    )
    .await?;
    let row = connect_links::get(&app, &client.ctx, created.id).await?;
    let mut dto = ConnectLinkDto::from(row);
    dto.url = Some(created.url);
    Ok(HttpResponse::Created().json(dto))
}

/// The workspace's connect links, newest first.
#[utoipa::path(get, path = "/api/v1/connect-links", tag = "connections",
    responses((status = 200, body = Vec<ConnectLinkDto>), (status = 401, body = ApiErrorBody)))]
pub async fn list_links(
    app: web::Data<App>,
    client: ApiClient,
) -> ApiResult<web::Json<Vec<ConnectLinkDto>>> {
    Ok(web::Json(
        connect_links::list(&app, &client.ctx, 500)
            .await?
            .into_iter()
            .map(ConnectLinkDto::from)
            .collect(),
    ))
}

/// Revokes an unused connect link.
#[utoipa::path(post, path = "/api/v1/connect-links/{id}/revoke", tag = "connections", params(("id" = uuid::Uuid, Path, description = "Link id")),
    responses((status = 204), (status = 404, body = ApiErrorBody)))]
pub async fn revoke_link(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<ConnectLinkId>,
) -> ApiResult<HttpResponse> {
    let id = id.into_inner();
    connect_links::revoke(&app, &client.ctx, &api_actor(&client), id).await?;
    Ok(HttpResponse::NoContent().finish())
}
