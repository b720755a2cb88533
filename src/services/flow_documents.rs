//! Flows as files and copies: export a flow as a [`FlowDocument`], import one (a new
//! flow, or a new version of the flow with the same name), and duplicate a flow.

use super::flows::{self, Saved};
use super::require_write;
use crate::app::{App, AuditActor};
use crate::domain::flow_document::ConnectionRef;
use crate::domain::{ConnectionId, FieldErrors, FlowDocument, FlowId, FlowStatus, TenantCtx};
use crate::error::{AppError, AppResult};
use crate::store::entities::connections;

/// A flow's current version as a document.
pub async fn export(app: &App, ctx: &TenantCtx, id: FlowId) -> AppResult<FlowDocument> {
    let view = flows::load(app, ctx, id).await?;
    let connections = app.store.connections(ctx).await?;
    let named = |id: ConnectionId| {
        connections
            .iter()
            .find(|c| c.id == id)
            .map(|c| ConnectionRef {
                name: c.name.clone(),
                provider: c.provider_id.clone(),
            })
            .ok_or_else(|| {
                AppError::Conflict(
                    "A connection this flow uses was removed; choose another one in the editor before exporting."
                        .into(),
                )
            })
    };
    let (source, destination) = (
        named(view.spec.source.connection_id)?,
        named(view.spec.destination.connection_id)?,
    );
    Ok(FlowDocument::of(view.spec, source, destination))
}

/// What an import did.
pub struct Imported {
    /// The flow and its version.
    pub saved: Saved,
    /// Whether a new flow was created (false: a new version of an existing one).
    pub created: bool,
}

/// Imports a document. Its connections are found by name and provider. A flow with the
/// same name is refused unless `replace`, which saves the document as that flow's next
/// version (so a flow kept in git can be deployed again and again).
///
/// `document` is as read, or why it could not be read: a caller who may not change the
/// workspace is refused before anything is said about the document.
pub async fn import(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    document: Result<FlowDocument, String>,
    replace: bool,
) -> AppResult<Imported> {
    require_write(ctx)?;
    let document = document.map_err(|message| AppError::invalid("document", message))?;
    let connections = app.store.connections(ctx).await?;
    let mut errors = FieldErrors::new();
    let source = find(
        &connections,
        &document.source.connection,
        "source",
        &mut errors,
    );
    let destination = find(
        &connections,
        &document.destination.connection,
        "destination",
        &mut errors,
    );
    let (Some(source), Some(destination)) = (source, destination) else {
        return Err(AppError::Invalid(errors));
    };
    let name = document.name.trim().to_owned();
    let existing = flows::list(app, ctx)
        .await?
        .into_iter()
        .find(|f| f.name == name);
    let spec = document.into_spec(source, destination);
    let target = match existing {
        Some(flow) if replace => Some((flow.id, flow.version)),
        Some(_) => {
            return Err(AppError::invalid(
                "name",
                format!(
                    "A flow named {name} already exists. Rename the flow in the document, or replace the existing flow with a new version."
                ),
            ));
        }
        None => None,
    };
    let saved = flows::save(app, ctx, actor, target, spec).await?;
    app.audit(
        ctx,
        actor,
        "flow.imported",
        Some(name),
        Some(serde_json::json!({ "version": saved.version })),
    )
    .await?;
    Ok(Imported {
        created: target.is_none(),
        saved,
    })
}

/// The connection a document names, or an error at the field that names it.
fn find(
    connections: &[connections::Model],
    wanted: &ConnectionRef,
    side: &str,
    errors: &mut FieldErrors,
) -> Option<ConnectionId> {
    let same_name: Vec<_> = connections
        .iter()
        .filter(|c| c.name == wanted.name)
        .collect();
    let found = same_name
        .iter()
        .find(|c| c.provider_id == wanted.provider)
        .map(|c| c.id);
    if found.is_none() {
        let provider = crate::connectors::catalogue::display_name(&wanted.provider);
        errors.add(
            &format!("{side}.connection_id"),
            match same_name.first() {
                Some(other) => format!(
                    "The connection {} here is a {} connection, not {provider}.",
                    wanted.name,
                    crate::connectors::catalogue::display_name(&other.provider_id)
                ),
                None => format!(
                    "This workspace has no connection named {}. Connect {provider} under that name, or rename the connection in the document.",
                    wanted.name
                ),
            },
        );
    }
    found
}

/// Copies a flow's current version as a new, paused flow named "… (copy)", so the copy
/// does not run on the original's schedule before it has been changed.
pub async fn duplicate(
    app: &App,
    ctx: &TenantCtx,
    actor: &AuditActor,
    id: FlowId,
) -> AppResult<Saved> {
    require_write(ctx)?;
    let view = flows::load(app, ctx, id).await?;
    let names: Vec<String> = flows::list(app, ctx)
        .await?
        .into_iter()
        .map(|f| f.name)
        .collect();
    let mut spec = view.spec;
    spec.name = copy_name(&view.flow.name, &names);
    let saved = flows::save(app, ctx, actor, None, spec).await?;
    app.store
        .set_flow_status(
            ctx,
            saved.id,
            FlowStatus::Paused,
            Some(format!(
                "A copy of {}: check it, then enable it.",
                view.flow.name
            )),
            None,
        )
        .await?;
    app.audit(
        ctx,
        actor,
        "flow.duplicated",
        Some(view.flow.name),
        Some(serde_json::json!({ "copy": saved.id.to_string() })),
    )
    .await?;
    Ok(saved)
}

/// "Contacts (copy)", then "Contacts (copy 2)", … — the first name not in `taken`.
fn copy_name(name: &str, taken: &[String]) -> String {
    (1..)
        .map(|n| match n {
            1 => format!("{name} (copy)"),
            n => format!("{name} (copy {n})"),
        })
        .find(|candidate| !taken.iter().any(|t| t == candidate))
        .unwrap_or_else(|| format!("{name} (copy)"))
}

#[cfg(test)]
mod tests {
    use super::copy_name;

    #[test]
    fn copies_get_the_first_free_name() {
        let taken = |names: &[&str]| names.iter().map(|n| n.to_string()).collect::<Vec<_>>();
        assert_eq!(
            copy_name("Contacts", &taken(&["Contacts"])),
            "Contacts (copy)"
        );
        assert_eq!(
            copy_name("Contacts", &taken(&["Contacts", "Contacts (copy)"])),
            "Contacts (copy 2)"
        );
    }
}
