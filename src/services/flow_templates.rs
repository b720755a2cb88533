//! Flow templates offered on the New flow page: flow documents (`flow-templates/*.json`,
//! built into the binary) that fill in the editor, with the workspace's connections of
//! the template's providers chosen.

use crate::app::App;
use crate::domain::{ConnectionId, FlowDocument, FlowSpec, TenantCtx};
use crate::error::AppResult;
use serde::Deserialize;
use std::sync::LazyLock;

/// A template.
pub struct FlowTemplate {
    /// Its id (the file's name), as in `/flows/new?template=…`.
    pub id: &'static str,
    /// What it does, in a few words.
    pub title: String,
    /// What it does, in a sentence.
    pub description: String,
    /// The flow it starts from.
    pub flow: FlowDocument,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TemplateFile {
    title: String,
    description: String,
    flow: serde_json::Value,
}

const FILES: &[(&str, &str)] = &[
    (
        "crm-contacts-to-erp-customers",
        include_str!("../../flow-templates/crm-contacts-to-erp-customers.json"),
    ),
    (
        "erp-customers-to-crm-contacts-on-webhook",
        include_str!("../../flow-templates/erp-customers-to-crm-contacts-on-webhook.json"),
    ),
];

static TEMPLATES: LazyLock<Vec<FlowTemplate>> = LazyLock::new(|| {
    FILES
        .iter()
        .filter_map(|(id, text)| match read(id, text) {
            Ok(t) => Some(t),
            Err(e) => {
                // A test reads every file; this is only reached by a broken build.
                tracing::error!(template = id, "unreadable flow template: {e}");
                None
            }
        })
        .collect()
});

fn read(id: &'static str, text: &str) -> Result<FlowTemplate, String> {
    let file: TemplateFile = serde_json::from_str(text).map_err(|e| e.to_string())?;
    Ok(FlowTemplate {
        id,
        title: file.title,
        description: file.description,
        flow: FlowDocument::read_value(file.flow)?,
    })
}

/// Every template.
pub fn all() -> &'static [FlowTemplate] {
    &TEMPLATES
}

/// A template by id.
pub fn get(id: &str) -> Option<&'static FlowTemplate> {
    all().iter().find(|t| t.id == id)
}

/// A template made ready for the editor: its spec with the workspace's first usable
/// connection of each provider, and the providers it still lacks (by name).
pub struct Prepared {
    /// The spec; a side whose provider is missing keeps a connection id of none.
    pub spec: FlowSpec,
    /// Whether the source and destination connections were found.
    pub found: (bool, bool),
    /// Names of the providers to connect first.
    pub missing: Vec<String>,
}

/// Fills in a template's connections from the workspace's.
pub async fn prepare(app: &App, ctx: &TenantCtx, template: &FlowTemplate) -> AppResult<Prepared> {
    let connections = super::connections::list(app, ctx).await?;
    let usable = |provider: &str| {
        connections
            .iter()
            .find(|c| {
                c.provider_id == provider
                    && c.status != crate::domain::ConnectionStatus::Disconnected
            })
            .map(|c| c.id)
    };
    let flow = &template.flow;
    let source = usable(&flow.source.connection.provider);
    let destination = usable(&flow.destination.connection.provider);
    let mut missing = Vec::new();
    for (found, provider) in [
        (source, &flow.source.connection.provider),
        (destination, &flow.destination.connection.provider),
    ] {
        let name = crate::connectors::catalogue::display_name(provider);
        if found.is_none() && !missing.contains(&name) {
            missing.push(name);
        }
    }
    let nil = ConnectionId::from_uuid(uuid::Uuid::nil());
    Ok(Prepared {
        spec: flow
            .clone()
            .into_spec(source.unwrap_or(nil), destination.unwrap_or(nil)),
        found: (source.is_some(), destination.is_some()),
        missing,
    })
}

/// The templates whose providers the workspace has connected.
pub async fn ready(app: &App, ctx: &TenantCtx) -> AppResult<Vec<&'static FlowTemplate>> {
    let mut out = Vec::new();
    for template in all() {
        if prepare(app, ctx, template).await?.missing.is_empty() {
            out.push(template);
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    #[test]
    fn every_template_file_is_a_valid_flow_document() {
        for (id, text) in super::FILES {
            super::read(id, text).unwrap_or_else(|e| panic!("{id}: {e}"));
        }
        assert_eq!(super::all().len(), super::FILES.len());
    }
}
