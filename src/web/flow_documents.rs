//! Pages for flows as files and copies: export (a download), import (paste or pick a
//! file) and duplicate.

use super::auth::render;
use super::extract::Member;
use super::flash::{self, Flash};
use super::shell::Shell;
use crate::app::App;
use crate::domain::{FieldErrors, FlowDocument, FlowId};
use crate::error::{AppError, AppResult};
use crate::services::{flow_documents, flows};
use actix_web::http::StatusCode;
use actix_web::{HttpResponse, web};
use askama::Template;
use serde::Deserialize;

/// GET /flows/{id}/export — the flow document as a file.
pub async fn export(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let document = flow_documents::export(&app, &member.ctx, id.into_inner()).await?;
    Ok(HttpResponse::Ok()
        .content_type("application/json")
        .insert_header((
            "Content-Disposition",
            format!(
                "attachment; filename=\"{}.sluice-flow.json\"",
                file_stem(&document.name)
            ),
        ))
        .body(document.to_pretty_json()))
}

/// A file name from a flow name: letters, digits and dashes only.
fn file_stem(name: &str) -> String {
    let stem: String = name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    let stem = stem
        .split('-')
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join("-");
    if stem.is_empty() { "flow".into() } else { stem }
}

/// POST /flows/{id}/duplicate
pub async fn duplicate(
    app: web::Data<App>,
    member: Member,
    id: web::Path<FlowId>,
) -> AppResult<HttpResponse> {
    let saved =
        flow_documents::duplicate(&app, &member.ctx, &member.actor(), id.into_inner()).await?;
    let copy = flows::get(&app, &member.ctx, saved.id).await?;
    Ok(flash::redirect(
        &format!("/flows/{}/edit", saved.id),
        Flash::success(format!(
            "Copied as {}. It is paused: change what you need, save, then enable it.",
            copy.name
        )),
    ))
}

#[derive(Template)]
#[template(path = "flows/import.html")]
struct ImportPage {
    shell: Shell,
    document: String,
    replace: bool,
    errors: FieldErrors,
}

/// GET /flows/import
pub async fn import_form(member: Member) -> AppResult<HttpResponse> {
    render(
        &ImportPage {
            shell: member.shell("flows"),
            document: String::new(),
            replace: false,
            errors: FieldErrors::new(),
        },
        StatusCode::OK,
    )
}

/// The import form.
#[derive(Deserialize)]
pub struct ImportForm {
    document: String,
    #[serde(default)]
    replace: Option<String>,
}

/// POST /flows/import — a new flow, or a new version of the one with the same name.
pub async fn import(
    app: web::Data<App>,
    member: Member,
    form: web::Form<ImportForm>,
) -> AppResult<HttpResponse> {
    let form = form.into_inner();
    let replace = form.replace.is_some();
    let document = FlowDocument::parse(&form.document);
    match flow_documents::import(&app, &member.ctx, &member.actor(), document, replace).await {
        Ok(imported) => {
            let message = if imported.created {
                "Flow imported.".to_owned()
            } else {
                format!(
                    "Flow replaced: the document is now version {}.",
                    imported.saved.version
                )
            };
            Ok(flash::redirect(
                &format!("/flows/{}", imported.saved.id),
                Flash::success(message),
            ))
        }
        Err(AppError::Invalid(errors)) => render(
            &ImportPage {
                shell: member.shell("flows"),
                document: form.document,
                replace,
                errors,
            },
            StatusCode::UNPROCESSABLE_ENTITY,
        ),
        Err(e) => Err(e),
    }
}

/// Where in the document an error's field is: the editor's `source.connection_id` is the
/// document's `source.connection`; other fields have the same path in both.
pub fn document_path(field: &str) -> String {
    field.replace(".connection_id", ".connection")
}

#[cfg(test)]
mod tests {
    #[test]
    fn file_names_keep_letters_and_digits() {
        assert_eq!(
            super::file_stem("CRM → ERP: contacts (v2)"),
            "crm-erp-contacts-v2"
        );
        assert_eq!(super::file_stem("★"), "flow");
    }
}
