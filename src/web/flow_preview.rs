//! The flow editor's live preview: what each mapping row makes of the sample record the
//! editor carries, asked for by its script as the member picks and types.

use super::extract::Member;
use super::flow_form::{mapping_rows_of, parse_lookups};
use crate::error::{AppError, AppResult};
use crate::services::flows;
use actix_web::{HttpResponse, web};
use serde_json::{Value as Json, json};

/// POST /flows/mapping-preview — the editor's form as posted; answers
/// `{"rows": {"<row number>": {"value": …} | {"error": …}}}` for rows with an expression.
pub async fn mapping_preview(
    member: Member,
    form: web::Form<Vec<(String, String)>>,
) -> AppResult<HttpResponse> {
    let pairs = form.into_inner();
    let field = |name: &str| {
        pairs
            .iter()
            .find(|(k, _)| k == name)
            .map_or("", |(_, v)| v.as_str())
    };
    let record = serde_json::from_str::<Vec<Json>>(field("sample"))
        .ok()
        .and_then(|records| records.into_iter().next())
        .ok_or_else(|| {
            AppError::invalid(
                "sample",
                "Show fields first: there is no sample to preview.",
            )
        })?;
    let lookups = parse_lookups(field("lookups")).unwrap_or_default();
    let (numbers, rows): (Vec<usize>, Vec<_>) = mapping_rows_of(&pairs)
        .into_iter()
        .map(|(i, row)| (i, row.to_spec()))
        .unzip();
    let previews = flows::preview_mapping(&member.ctx, rows, lookups, record).await?;
    let shown: serde_json::Map<String, Json> = numbers
        .into_iter()
        .zip(previews)
        .filter_map(|(i, preview)| {
            let shown = match preview? {
                Ok(value) => json!({ "value": value }),
                Err(error) => json!({ "error": error }),
            };
            Some((i.to_string(), shown))
        })
        .collect();
    Ok(HttpResponse::Ok().json(json!({ "rows": shown })))
}
