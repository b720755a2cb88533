//! A flow as a file: the versioned JSON document that export writes and import reads,
//! so flows can be reviewed and kept in git and moved between workspaces.
//!
//! It is a [`FlowSpec`] whose connections are named (name and provider) instead of
//! referenced by id, because ids mean nothing in another workspace. The format is
//! described for users in `docs/flow-format.md`.

use super::flow::{FlowSpec, MappingRowSpec, TriggerSpec, ValidationSpec, WriteMode};
use super::ids::ConnectionId;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The format this Sluice writes and reads.
pub const FORMAT: u32 = 1;

/// A flow document (format 1).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct FlowDocument {
    /// The document format: 1.
    pub sluice_flow: u32,
    /// The flow's name.
    pub name: String,
    /// Where records come from.
    pub source: DocumentSource,
    /// Where records go.
    pub destination: DocumentDestination,
    /// Mapping rows.
    pub mapping: Vec<MappingRowSpec>,
    /// Validation rules.
    #[serde(default)]
    pub validations: Vec<ValidationSpec>,
    /// Records for which this expression is false are skipped.
    #[serde(default)]
    pub filter: String,
    /// Static lookup tables: table → key → value.
    #[serde(default)]
    pub lookups: BTreeMap<String, BTreeMap<String, String>>,
    /// Expression identifying a source record.
    pub record_key: String,
    /// Records per destination write (1–1000).
    pub batch_size: u32,
    /// What starts the flow.
    pub trigger: TriggerSpec,
    /// Failed runs in a row after which the flow pauses itself (0: never).
    pub auto_pause_after: u32,
}

/// A connection named by the workspace it is imported into.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ConnectionRef {
    /// The connection's name in the workspace.
    pub name: String,
    /// Its provider, e.g. `hubspot` (the catalogue id).
    pub provider: String,
}

/// The source of a flow document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentSource {
    /// The connection read with.
    pub connection: ConnectionRef,
    /// Provider object, e.g. `contacts`.
    pub object: String,
    /// Only records changed since the last successful run.
    #[serde(default)]
    pub incremental: bool,
}

/// The destination of a flow document.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize, utoipa::ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DocumentDestination {
    /// The connection written with.
    pub connection: ConnectionRef,
    /// Provider object, e.g. `customers`.
    pub object: String,
    /// `create`, `update` or `upsert`.
    pub write_mode: WriteMode,
    /// Destination field that identifies a record.
    #[serde(default)]
    pub key_field: String,
}

impl FlowDocument {
    /// The document of `spec`, whose source and destination connections are `source`
    /// and `destination`.
    pub fn of(spec: FlowSpec, source: ConnectionRef, destination: ConnectionRef) -> FlowDocument {
        FlowDocument {
            sluice_flow: FORMAT,
            name: spec.name,
            source: DocumentSource {
                connection: source,
                object: spec.source.object,
                incremental: spec.source.incremental,
            },
            destination: DocumentDestination {
                connection: destination,
                object: spec.destination.object,
                write_mode: spec.destination.write_mode,
                key_field: spec.destination.key_field,
            },
            mapping: spec.mapping,
            validations: spec.validations,
            filter: spec.filter,
            lookups: spec.lookups,
            record_key: spec.record_key,
            batch_size: spec.batch_size,
            trigger: spec.trigger,
            auto_pause_after: spec.auto_pause_after,
        }
    }

    /// The spec this document describes, once its connections are found.
    pub fn into_spec(self, source: ConnectionId, destination: ConnectionId) -> FlowSpec {
        FlowSpec {
            name: self.name,
            source: super::flow::SourceSpec {
                connection_id: source,
                object: self.source.object,
                incremental: self.source.incremental,
            },
            destination: super::flow::DestinationSpec {
                connection_id: destination,
                object: self.destination.object,
                write_mode: self.destination.write_mode,
                key_field: self.destination.key_field,
            },
            mapping: self.mapping,
            validations: self.validations,
            filter: self.filter,
            lookups: self.lookups,
            record_key: self.record_key,
            batch_size: self.batch_size,
            trigger: self.trigger,
            auto_pause_after: self.auto_pause_after,
        }
    }

    /// Reads a document, saying what is wrong in words a person can act on: not JSON,
    /// not a flow document, a format this Sluice does not know, or a field amiss.
    pub fn parse(text: &str) -> Result<FlowDocument, String> {
        let value: serde_json::Value = serde_json::from_str(text).map_err(|e| {
            format!("This is not JSON ({e}). Paste the whole file that Export gave you.")
        })?;
        let format = value.get("sluice_flow").ok_or_else(|| {
            "This is not a Sluice flow document: it has no \"sluice_flow\" format number."
                .to_owned()
        })?;
        if format.as_u64() != Some(u64::from(FORMAT)) {
            return Err(format!(
                "This document has format {format}; this Sluice reads format {FORMAT}. Export the flow again from a Sluice of the same version."
            ));
        }
        Self::read_value(value)
    }

    /// A document already parsed as JSON (the API's body); the format must be known.
    pub fn read_value(value: serde_json::Value) -> Result<FlowDocument, String> {
        let document: FlowDocument = serde_json::from_value(value)
            .map_err(|e| format!("The flow document is not valid: {e}."))?;
        if document.sluice_flow != FORMAT {
            return Err(format!(
                "This document has format {}; this Sluice reads format {FORMAT}.",
                document.sluice_flow
            ));
        }
        Ok(document)
    }

    /// The document as people and git read it: pretty, keys in a stable order, a final
    /// newline.
    pub fn to_pretty_json(&self) -> String {
        let value = serde_json::to_value(self).unwrap_or_default();
        let mut text = serde_json::to_string_pretty(&value).unwrap_or_default();
        text.push('\n');
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::domain::flow::{DestinationSpec, SourceSpec, TriggerKind};

    fn spec() -> FlowSpec {
        FlowSpec {
            name: "Contacts".into(),
            source: SourceSpec {
                connection_id: ConnectionId::new(),
                object: "contacts".into(),
                incremental: true,
            },
            destination: DestinationSpec {
                connection_id: ConnectionId::new(),
                object: "customers".into(),
                write_mode: WriteMode::Upsert,
                key_field: "external_id".into(),
            },
            mapping: vec![MappingRowSpec {
                target: "external_id".into(),
                expression: "record.id".into(),
                default: String::new(),
                field_type: "text".into(),
            }],
            validations: vec![],
            filter: String::new(),
            lookups: BTreeMap::new(),
            record_key: "record.id".into(),
            batch_size: 100,
            trigger: TriggerSpec {
                kind: TriggerKind::Manual,
                interval_minutes: None,
                cron: None,
            },
            auto_pause_after: 5,
        }
    }

    fn named(name: &str, provider: &str) -> ConnectionRef {
        ConnectionRef {
            name: name.into(),
            provider: provider.into(),
        }
    }

    #[test]
    fn a_document_names_connections_and_reads_back_to_the_same_spec() {
        let spec = spec();
        let (from, to) = (spec.source.connection_id, spec.destination.connection_id);
        let doc = FlowDocument::of(
            spec.clone(),
            named("CRM", "sandbox_crm"),
            named("ERP", "sandbox_erp"),
        );
        let text = doc.to_pretty_json();
        assert!(
            text.starts_with("{\n  \"auto_pause_after\""),
            "keys sorted: {text}"
        );
        assert!(!text.contains(&from.to_string()), "no ids: {text}");
        let read = FlowDocument::parse(&text).unwrap();
        assert_eq!(read, doc);
        assert_eq!(read.into_spec(from, to), spec);
    }

    #[test]
    fn the_documented_example_is_a_valid_document() {
        let doc = include_str!("../../docs/flow-format.md");
        let example = doc
            .split("```json\n")
            .nth(1)
            .and_then(|rest| rest.split("```").next())
            .unwrap();
        let read = FlowDocument::parse(example).unwrap();
        assert_eq!(read.destination.write_mode, WriteMode::Upsert);
    }

    #[test]
    fn unreadable_documents_say_why() {
        assert!(
            FlowDocument::parse("{nope")
                .unwrap_err()
                .starts_with("This is not JSON")
        );
        assert!(
            FlowDocument::parse("{}")
                .unwrap_err()
                .contains("no \"sluice_flow\"")
        );
        let future = r#"{"sluice_flow": 2}"#;
        assert!(
            FlowDocument::parse(future)
                .unwrap_err()
                .contains("format 2; this Sluice reads format 1")
        );
        let mut value =
            serde_json::to_value(FlowDocument::of(spec(), named("a", "b"), named("c", "d")))
                .unwrap();
        value["surprise"] = serde_json::json!(true);
        let unknown = FlowDocument::parse(&value.to_string()).unwrap_err();
        assert!(unknown.contains("unknown field `surprise`"), "{unknown}");
    }
}
