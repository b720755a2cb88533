//! What an object's records hold, for the mapping editor: the fields a provider file
//! declares, the custom fields the vendor lists when asked (HubSpot properties,
//! Salesforce describe, Pipedrive's field lists), and the check of a flow's mapping
//! against them (required fields on create, read-only fields, types).

use crate::domain::{FlowSpec, WriteMode};
use serde::Deserialize;
use std::collections::BTreeMap;

/// One field of an object's records, named as a mapping writes it.
#[derive(Clone, Debug, Deserialize, PartialEq, Eq)]
#[serde(deny_unknown_fields)]
pub struct FieldSpec {
    /// The name a mapping's target uses (dotted for a nested field).
    pub name: String,
    /// What it holds.
    #[serde(default, rename = "type")]
    pub data_type: DataType,
    /// A create must carry it.
    #[serde(default)]
    pub required: bool,
    /// The vendor sets it; writes may not.
    #[serde(default)]
    pub read_only: bool,
    /// What people call it, when that differs from the name.
    pub label: Option<String>,
}

/// What a field holds: the mapping editor's types, and structures.
#[derive(Clone, Copy, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum DataType {
    /// Anything.
    #[default]
    Any,
    /// Text.
    Text,
    /// A whole number.
    Integer,
    /// A number.
    Number,
    /// true/false.
    Boolean,
    /// A calendar date.
    Date,
    /// An instant.
    Datetime,
    /// A JSON object.
    Object,
    /// A JSON array.
    Array,
}

impl DataType {
    /// Its name in provider files, and in the mapping editor's types where it has one.
    pub fn as_str(self) -> &'static str {
        match self {
            DataType::Any => "any",
            DataType::Text => "text",
            DataType::Integer => "integer",
            DataType::Number => "number",
            DataType::Boolean => "boolean",
            DataType::Date => "date",
            DataType::Datetime => "datetime",
            DataType::Object => "object",
            DataType::Array => "array",
        }
    }

    /// Whether a mapping row converting to `mapped` (a mapping type name) writes a value
    /// of this type. Untyped rows pass: their values are the source's.
    pub fn takes(self, mapped: &str) -> bool {
        match (self, mapped) {
            (DataType::Any, _) | (_, "" | "any") => true,
            (DataType::Number, "integer") => true,
            (declared, mapped) => declared.as_str() == mapped,
        }
    }
}

/// How the vendor lists an object's fields (custom ones included).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DescribeSpec {
    /// `GET` path, relative to the base URL.
    pub path: String,
    /// Query parameters.
    #[serde(default)]
    pub query: BTreeMap<String, String>,
    /// JSONPath to the list of fields.
    #[serde(default = "dollar")]
    pub records_path: String,
    /// The entry's field (dotted) holding the name.
    pub name: String,
    /// The entry's field holding the label.
    pub label: Option<String>,
    /// The entry's field holding the vendor's type.
    #[serde(rename = "type")]
    pub type_field: Option<String>,
    /// Vendor type → type; unlisted types are `any`.
    #[serde(default)]
    pub types: BTreeMap<String, DataType>,
    /// Entry fields that must all be true (`!` negates) for the field to be required.
    #[serde(default)]
    pub required: Vec<String>,
    /// Entry fields that must all be true (`!` negates) for the field to be read-only.
    #[serde(default)]
    pub read_only: Vec<String>,
}

fn dollar() -> String {
    "$".into()
}

impl DescribeSpec {
    /// The fields a describe call's answer (`status`, `body`) lists, or why it lists none.
    pub fn answer(&self, status: u16, body: &[u8]) -> Result<Vec<FieldSpec>, String> {
        if !(200..300).contains(&status) {
            return Err(format!("HTTP {status}"));
        }
        let body: serde_json::Value =
            serde_json::from_slice(body).map_err(|_| "the answer is not JSON".to_owned())?;
        Ok(self.fields_in(&body))
    }

    /// The fields an answer lists, in its order.
    pub fn fields_in(&self, body: &serde_json::Value) -> Vec<FieldSpec> {
        let listed = serde_json_path::JsonPath::parse(&self.records_path)
            .ok()
            .and_then(|p| p.query(body).first().cloned());
        let Some(serde_json::Value::Array(entries)) = listed else {
            return Vec::new();
        };
        entries
            .iter()
            .filter_map(|entry| {
                let name = text_at(entry, &self.name)?;
                Some(FieldSpec {
                    data_type: self
                        .type_field
                        .as_deref()
                        .and_then(|f| text_at(entry, f))
                        .and_then(|t| self.types.get(&t).copied())
                        .unwrap_or_default(),
                    required: all_true(entry, &self.required),
                    read_only: all_true(entry, &self.read_only),
                    label: self
                        .label
                        .as_deref()
                        .and_then(|f| text_at(entry, f))
                        .filter(|l| *l != name),
                    name,
                })
            })
            .collect()
    }
}

fn at<'a>(entry: &'a serde_json::Value, field: &str) -> Option<&'a serde_json::Value> {
    field
        .split('.')
        .try_fold(entry, |node, part| node.get(part))
}

fn text_at(entry: &serde_json::Value, field: &str) -> Option<String> {
    match at(entry, field)? {
        serde_json::Value::String(s) if !s.is_empty() => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// Whether every condition holds; none never does (the flag is not described).
fn all_true(entry: &serde_json::Value, conditions: &[String]) -> bool {
    !conditions.is_empty()
        && conditions.iter().all(|c| {
            let (negated, field) = match c.strip_prefix('!') {
                Some(field) => (true, field),
                None => (false, c.as_str()),
            };
            let set = at(entry, field).is_some_and(|v| v.as_bool() == Some(true));
            set != negated
        })
}

/// An object's fields: those its provider declares, then what the vendor listed that
/// they lack.
pub fn merged(declared: &[FieldSpec], listed: Vec<FieldSpec>) -> Vec<FieldSpec> {
    let mut fields = declared.to_vec();
    for field in listed {
        if !fields.iter().any(|f| f.name == field.name) {
            fields.push(field);
        }
    }
    fields
}

/// What is wrong with writing `spec`'s mapping into `object`, by form field: a create
/// or upsert that leaves a required field out, a read-only field written (the key field
/// excepted: it finds records and leaves the body), a row typed unlike its field.
pub fn check_mapping(
    object: &str,
    declared: &[FieldSpec],
    spec: &FlowSpec,
) -> Vec<(String, String)> {
    let mut problems = Vec::new();
    let key = spec.destination.key_field.trim();
    for (i, row) in spec.mapping.iter().enumerate() {
        let target = row.target.trim();
        let Some(field) = declared.iter().find(|f| f.name == target) else {
            continue;
        };
        if field.read_only && target != key {
            problems.push((
                format!("mapping.{i}.target"),
                format!(
                    "{object} {target} is set by the vendor and cannot be written; map another field."
                ),
            ));
        } else if !field.data_type.takes(row.field_type.trim()) {
            problems.push((
                format!("mapping.{i}.field_type"),
                format!(
                    "{target} takes {} values in {object}; choose that type (or any).",
                    field.data_type.as_str()
                ),
            ));
        }
    }
    if spec.destination.write_mode != WriteMode::Update {
        let missing: Vec<&str> = declared
            .iter()
            .filter(|f| f.required && !spec.mapping.iter().any(|r| r.target.trim() == f.name))
            .map(|f| f.name.as_str())
            .collect();
        if !missing.is_empty() {
            problems.push((
                "mapping".into(),
                format!(
                    "{object} needs {} on every new record: map a value to {}.",
                    missing.join(", "),
                    if missing.len() == 1 { "it" } else { "each" }
                ),
            ));
        }
    }
    problems
}

#[cfg(test)]
mod tests {
    use super::*;

    fn describe_spec() -> DescribeSpec {
        toml::from_str(
            r#"
            path = "/sobjects/Account/describe"
            records_path = "$.fields"
            name = "name"
            label = "label"
            type = "type"
            types = { string = "text", int = "integer" }
            required = ["createable", "!nillable", "!defaultedOnCreate"]
            read_only = ["!createable", "!updateable"]
            "#,
        )
        .unwrap()
    }

    #[test]
    fn a_describe_answer_becomes_fields_with_their_flags_and_types() {
        let body = serde_json::json!({ "fields": [
            { "name": "Id", "label": "Account ID", "type": "id", "createable": false, "updateable": false, "nillable": false, "defaultedOnCreate": true },
            { "name": "Name", "label": "Name", "type": "string", "createable": true, "updateable": true, "nillable": false, "defaultedOnCreate": false },
            { "name": "Tier__c", "label": "Tier", "type": "int", "createable": true, "updateable": true, "nillable": true, "defaultedOnCreate": false },
            { "label": "nameless" },
        ]});
        let fields = describe_spec().fields_in(&body);
        let summary: Vec<(&str, &str, bool, bool, Option<&str>)> = fields
            .iter()
            .map(|f| {
                (
                    f.name.as_str(),
                    f.data_type.as_str(),
                    f.required,
                    f.read_only,
                    f.label.as_deref(),
                )
            })
            .collect();
        assert_eq!(
            summary,
            vec![
                ("Id", "any", false, true, Some("Account ID")),
                ("Name", "text", true, false, None),
                ("Tier__c", "integer", false, false, Some("Tier")),
            ]
        );
    }

    #[test]
    fn declared_fields_keep_their_declaration_and_listed_ones_are_added() {
        let declared = vec![FieldSpec {
            name: "Name".into(),
            data_type: DataType::Text,
            required: true,
            read_only: false,
            label: None,
        }];
        let listed = vec![
            FieldSpec {
                required: false,
                ..declared[0].clone()
            },
            FieldSpec {
                name: "Tier__c".into(),
                data_type: DataType::Integer,
                required: false,
                read_only: false,
                label: None,
            },
        ];
        let fields = merged(&declared, listed);
        assert_eq!(fields.len(), 2);
        assert!(fields[0].required);
        assert_eq!(fields[1].name, "Tier__c");
    }

    #[test]
    fn untyped_rows_fit_any_field_and_integers_fit_numbers() {
        assert!(DataType::Text.takes(""));
        assert!(DataType::Text.takes("any"));
        assert!(DataType::Number.takes("integer"));
        assert!(!DataType::Integer.takes("number"));
        assert!(!DataType::Date.takes("text"));
        assert!(DataType::Any.takes("boolean"));
    }
}
