//! JSON API: flows as documents (export, import) and copies.

use super::super::extract::ApiClient;
use super::api_actor;
use super::flows::{FlowDto, load_dto};
use crate::app::App;
use crate::domain::{FlowDocument, FlowId};
use crate::error::{ApiErrorBody, ApiResult};
use crate::services::flow_documents;
use actix_web::{HttpResponse, web};
use serde::Deserialize;
use utoipa::IntoParams;

/// A flow's current version as a flow document (format 1), with its connections named.
#[utoipa::path(get, path = "/api/v1/flows/{id}/export", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 200, body = FlowDocument), (status = 404, body = ApiErrorBody)))]
pub async fn export(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<web::Json<FlowDocument>> {
    Ok(web::Json(
        flow_documents::export(&app, &client.ctx, id.into_inner()).await?,
    ))
}

/// Options of an import.
#[derive(Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ImportQuery {
    /// When a flow with the document's name exists, save the document as its next
    /// version instead of refusing (default false).
    pub replace: Option<bool>,
}

/// Imports a flow document: a new flow (201), or with `replace=true` a new version of
/// the flow with the same name (200). Connections are found by name and provider.
#[utoipa::path(post, path = "/api/v1/flows/import", tag = "flows", params(ImportQuery), request_body = FlowDocument,
    responses((status = 201, body = FlowDto), (status = 200, body = FlowDto), (status = 422, body = ApiErrorBody)))]
pub async fn import(
    app: web::Data<App>,
    client: ApiClient,
    q: web::Query<ImportQuery>,
    body: web::Json<serde_json::Value>,
) -> ApiResult<HttpResponse> {
    let imported = flow_documents::import(
        &app,
        &client.ctx,
        &api_actor(&client),
        FlowDocument::read_value(body.into_inner()),
        q.replace.unwrap_or(false),
    )
    .await?;
    let dto = load_dto(&app, &client, imported.saved.id).await?;
    Ok(if imported.created {
        HttpResponse::Created().json(dto)
    } else {
        HttpResponse::Ok().json(dto)
    })
}

/// Copies a flow as a new, paused flow named "… (copy)".
#[utoipa::path(post, path = "/api/v1/flows/{id}/duplicate", tag = "flows", params(("id" = uuid::Uuid, Path, description = "Flow id")),
    responses((status = 201, body = FlowDto), (status = 404, body = ApiErrorBody)))]
pub async fn duplicate(
    app: web::Data<App>,
    client: ApiClient,
    id: web::Path<FlowId>,
) -> ApiResult<HttpResponse> {
    let saved =
        flow_documents::duplicate(&app, &client.ctx, &api_actor(&client), id.into_inner()).await?;
    Ok(HttpResponse::Created().json(load_dto(&app, &client, saved.id).await?))
}
