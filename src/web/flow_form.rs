//! The flow editor's form: posted fields ⇄ [`FlowSpec`]. Rows are numbered fields
//! (`mapping.0.target`, `validation.2.rule`), so the editor works without JavaScript.

use crate::domain::flow::{
    DestinationSpec, MappingRowSpec, SourceSpec, TriggerSpec, ValidationSpec,
};
use crate::domain::{ConnectionId, FieldErrors, FlowSpec, TriggerKind, WriteMode};
use std::collections::BTreeMap;

/// Blank mapping rows offered below the filled ones.
const SPARE_MAPPING_ROWS: usize = 2;
/// Blank validation rows offered below the filled ones.
const SPARE_VALIDATION_ROWS: usize = 1;

/// One mapping row as typed.
#[derive(Clone, Debug, Default)]
pub struct MappingInput {
    /// Target field.
    pub target: String,
    /// Expression.
    pub expression: String,
    /// Default.
    pub default: String,
    /// Type.
    pub field_type: String,
}

impl MappingInput {
    /// The row as a spec's row.
    pub fn to_spec(&self) -> MappingRowSpec {
        MappingRowSpec {
            target: self.target.trim().to_owned(),
            expression: self.expression.trim().to_owned(),
            default: self.default.clone(),
            field_type: self.field_type.clone(),
        }
    }
}

/// One validation row as typed.
#[derive(Clone, Debug, Default)]
pub struct ValidationInput {
    /// Target field.
    pub target: String,
    /// Rule name.
    pub rule: String,
    /// Argument.
    pub argument: String,
    /// Message.
    pub message: String,
}

/// The editor's values, exactly as typed (so a failed save shows them again).
#[derive(Clone, Debug)]
pub struct FlowForm {
    /// Name.
    pub name: String,
    /// `connection_id:object`.
    pub source: String,
    /// Incremental.
    pub incremental: bool,
    /// `connection_id:object`.
    pub destination: String,
    /// Write mode.
    pub write_mode: String,
    /// Key field.
    pub key_field: String,
    /// Mapping rows.
    pub mapping: Vec<MappingInput>,
    /// Validation rows.
    pub validations: Vec<ValidationInput>,
    /// Filter.
    pub filter: String,
    /// Lookup tables as text.
    pub lookups: String,
    /// Record key expression.
    pub record_key: String,
    /// Batch size.
    pub batch_size: String,
    /// Trigger kind.
    pub trigger: String,
    /// Interval.
    pub interval_minutes: String,
    /// Cron.
    pub cron: String,
    /// Auto-pause threshold.
    pub auto_pause_after: String,
    /// Version being edited (optimistic concurrency).
    pub expected_version: String,
    /// Which button was pressed.
    pub action: String,
    /// A live sample of the source (JSON array), carried from submit to submit for the
    /// field picker and the previews.
    pub sample: String,
}

impl Default for FlowForm {
    fn default() -> Self {
        Self {
            name: String::new(),
            source: String::new(),
            incremental: false,
            destination: String::new(),
            write_mode: WriteMode::Upsert.as_str().into(),
            key_field: "external_id".into(),
            mapping: Vec::new(),
            validations: Vec::new(),
            filter: String::new(),
            lookups: String::new(),
            record_key: "record.id".into(),
            batch_size: "100".into(),
            trigger: TriggerKind::Manual.as_str().into(),
            interval_minutes: "60".into(),
            cron: "0 6 * * *".into(),
            auto_pause_after: "5".into(),
            expected_version: String::new(),
            action: String::new(),
            sample: String::new(),
        }
    }
}

fn row_index(key: &str, prefix: &str) -> Option<(usize, String)> {
    let rest = key.strip_prefix(prefix)?;
    let (n, field) = rest.split_once('.')?;
    Some((
        n.parse().ok().filter(|n: &usize| *n < 500)?,
        field.to_owned(),
    ))
}

/// The posted mapping rows by their number in the form. A field picked in a row's
/// "Source field" list (`mapping.N.pick`) becomes its expression: the list shows the
/// row's field when its expression is one, and nothing when it is a longer expression,
/// so a posted pick is always the member's choice.
pub fn mapping_rows_of(pairs: &[(String, String)]) -> BTreeMap<usize, MappingInput> {
    let mut rows: BTreeMap<usize, MappingInput> = BTreeMap::new();
    let mut picks: BTreeMap<usize, String> = BTreeMap::new();
    for (key, value) in pairs {
        let Some((i, field)) = row_index(key, "mapping.") else {
            continue;
        };
        let row = rows.entry(i).or_default();
        let v = value.clone();
        match field.as_str() {
            "target" => row.target = v,
            "expression" => row.expression = v,
            "default" => row.default = v,
            "field_type" => row.field_type = v,
            "pick" => {
                picks.insert(i, v);
            }
            _ => {}
        }
    }
    for (i, pick) in picks {
        if !pick.trim().is_empty()
            && let Some(row) = rows.get_mut(&i)
        {
            row.expression = pick.trim().to_owned();
        }
    }
    rows
}

impl FlowForm {
    /// Reads posted fields.
    pub fn from_pairs(pairs: &[(String, String)]) -> Self {
        let mut form = FlowForm {
            incremental: false,
            ..FlowForm::default()
        };
        let mut validations: BTreeMap<usize, ValidationInput> = BTreeMap::new();
        for (key, value) in pairs {
            let v = value.clone();
            match key.as_str() {
                "name" => form.name = v,
                "source" => form.source = v,
                "incremental" => form.incremental = v == "on" || v == "true",
                "destination" => form.destination = v,
                "write_mode" => form.write_mode = v,
                "key_field" => form.key_field = v,
                "filter" => form.filter = v,
                "lookups" => form.lookups = v,
                "record_key" => form.record_key = v,
                "batch_size" => form.batch_size = v,
                "trigger" => form.trigger = v,
                "interval_minutes" => form.interval_minutes = v,
                "cron" => form.cron = v,
                "auto_pause_after" => form.auto_pause_after = v,
                "expected_version" => form.expected_version = v,
                "action" => form.action = v,
                "sample" => form.sample = v,
                _ => {
                    if let Some((i, field)) = row_index(key, "validation.") {
                        let row = validations.entry(i).or_default();
                        match field.as_str() {
                            "target" => row.target = v,
                            "rule" => row.rule = v,
                            "argument" => row.argument = v,
                            "message" => row.message = v,
                            _ => {}
                        }
                    }
                }
            }
        }
        let mut rows = mapping_rows_of(pairs);
        // "Remove" on a row posts its number as the action `remove:N`.
        if let Some(n) = form
            .action
            .strip_prefix("remove:")
            .and_then(|n| n.parse::<usize>().ok())
        {
            rows.remove(&n);
        }
        form.mapping = rows
            .into_values()
            .filter(|r| !(r.target.trim().is_empty() && r.expression.trim().is_empty()))
            .collect();
        form.validations = validations
            .into_values()
            .filter(|r| !(r.target.trim().is_empty() && r.rule.trim().is_empty()))
            .collect();
        form
    }

    /// The form for editing a saved spec.
    pub fn from_spec(spec: &FlowSpec, version: i64) -> Self {
        FlowForm {
            name: spec.name.clone(),
            source: format!("{}:{}", spec.source.connection_id, spec.source.object),
            incremental: spec.source.incremental,
            destination: format!(
                "{}:{}",
                spec.destination.connection_id, spec.destination.object
            ),
            write_mode: spec.destination.write_mode.as_str().into(),
            key_field: spec.destination.key_field.clone(),
            mapping: spec
                .mapping
                .iter()
                .map(|r| MappingInput {
                    target: r.target.clone(),
                    expression: r.expression.clone(),
                    default: r.default.clone(),
                    field_type: r.field_type.clone(),
                })
                .collect(),
            validations: spec
                .validations
                .iter()
                .map(|v| ValidationInput {
                    target: v.target.clone(),
                    rule: v.rule.clone(),
                    argument: v.argument.clone(),
                    message: v.message.clone(),
                })
                .collect(),
            filter: spec.filter.clone(),
            lookups: lookups_text(&spec.lookups),
            record_key: spec.record_key.clone(),
            batch_size: spec.batch_size.to_string(),
            trigger: spec.trigger.kind.as_str().into(),
            interval_minutes: spec
                .trigger
                .interval_minutes
                .map(|m| m.to_string())
                .unwrap_or_else(|| "60".into()),
            cron: spec
                .trigger
                .cron
                .clone()
                .unwrap_or_else(|| "0 6 * * *".into()),
            auto_pause_after: spec.auto_pause_after.to_string(),
            expected_version: version.to_string(),
            action: String::new(),
            sample: String::new(),
        }
    }

    /// Mapping rows plus blank ones to fill in (more after "Add rows").
    pub fn mapping_rows(&self) -> Vec<MappingInput> {
        let extra = if self.action == "add_rows" {
            5
        } else {
            SPARE_MAPPING_ROWS
        };
        let mut rows = self.mapping.clone();
        rows.extend(std::iter::repeat_n(MappingInput::default(), extra));
        rows
    }

    /// Validation rows plus blank ones.
    pub fn validation_rows(&self) -> Vec<ValidationInput> {
        let extra = if self.action == "add_rows" {
            3
        } else {
            SPARE_VALIDATION_ROWS
        };
        let mut rows = self.validations.clone();
        rows.extend(std::iter::repeat_n(ValidationInput::default(), extra));
        rows
    }

    /// The spec, or the fields that cannot even be read.
    pub fn to_spec(&self) -> Result<FlowSpec, FieldErrors> {
        let mut errors = FieldErrors::new();
        let endpoint = |raw: &str, field: &str, errors: &mut FieldErrors| {
            raw.split_once(':')
                .and_then(|(c, o)| Some((c.parse::<ConnectionId>().ok()?, o.to_owned())))
                .or_else(|| {
                    errors.add(field, "Choose a connection and object.");
                    None
                })
        };
        let source = endpoint(&self.source, "source", &mut errors);
        let destination = endpoint(&self.destination, "destination", &mut errors);
        let write_mode = errors.check(
            "write_mode",
            self.write_mode
                .parse::<WriteMode>()
                .map_err(|_| "Choose a write mode.".to_owned()),
        );
        let number = |raw: &str, field: &str, errors: &mut FieldErrors| {
            errors.check(
                field,
                raw.trim()
                    .parse::<u32>()
                    .map_err(|_| "Enter a whole number.".to_owned()),
            )
        };
        let batch_size = number(&self.batch_size, "batch_size", &mut errors);
        let auto_pause_after = number(&self.auto_pause_after, "auto_pause_after", &mut errors);
        let trigger = match self.trigger_spec() {
            Ok(trigger) => Some(trigger),
            Err(problems) => {
                for (field, message) in problems.iter() {
                    errors.add(field, message);
                }
                None
            }
        };
        let lookups = errors.check("lookups", parse_lookups(&self.lookups));
        let (
            Some((src_conn, src_obj)),
            Some((dst_conn, dst_obj)),
            Some(write_mode),
            Some(batch_size),
            Some(auto_pause_after),
            Some(trigger),
            Some(lookups),
        ) = (
            source,
            destination,
            write_mode,
            batch_size,
            auto_pause_after,
            trigger,
            lookups,
        )
        else {
            return Err(errors);
        };
        if !errors.is_empty() {
            return Err(errors);
        }
        Ok(FlowSpec {
            name: self.name.trim().to_owned(),
            source: SourceSpec {
                connection_id: src_conn,
                object: src_obj,
                incremental: self.incremental,
            },
            destination: DestinationSpec {
                connection_id: dst_conn,
                object: dst_obj,
                write_mode,
                key_field: self.key_field.trim().to_owned(),
            },
            mapping: self.mapping.iter().map(MappingInput::to_spec).collect(),
            validations: self
                .validations
                .iter()
                .map(|v| ValidationSpec {
                    target: v.target.trim().to_owned(),
                    rule: v.rule.clone(),
                    argument: v.argument.trim().to_owned(),
                    message: v.message.trim().to_owned(),
                })
                .collect(),
            filter: self.filter.trim().to_owned(),
            lookups,
            record_key: self.record_key.trim().to_owned(),
            batch_size,
            trigger,
            auto_pause_after,
        })
    }

    /// The trigger alone, read from its fields (a schedule can be previewed before the
    /// rest of the form is complete).
    pub fn trigger_spec(&self) -> Result<TriggerSpec, FieldErrors> {
        let mut errors = FieldErrors::new();
        let kind = errors.check(
            "trigger",
            self.trigger
                .parse::<TriggerKind>()
                .map_err(|_| "Choose a trigger.".to_owned()),
        );
        let interval = if kind == Some(TriggerKind::Interval) {
            errors.check(
                "trigger.interval_minutes",
                self.interval_minutes
                    .trim()
                    .parse::<u32>()
                    .map_err(|_| "Enter a whole number.".to_owned()),
            )
        } else {
            None
        };
        match kind {
            Some(kind) if errors.is_empty() => Ok(TriggerSpec {
                kind,
                interval_minutes: interval,
                cron: (kind == TriggerKind::Cron).then(|| self.cron.trim().to_owned()),
            }),
            _ => Err(errors),
        }
    }
}

/// Lookup tables as the editor shows them: `[table]` headers and `key = value` lines.
pub fn lookups_text(tables: &BTreeMap<String, BTreeMap<String, String>>) -> String {
    let mut out = String::new();
    for (name, rows) in tables {
        out.push_str(&format!("[{name}]\n"));
        for (k, v) in rows {
            out.push_str(&format!("{k} = {v}\n"));
        }
    }
    out
}

/// Reads lookup tables from the editor's text.
pub fn parse_lookups(text: &str) -> Result<BTreeMap<String, BTreeMap<String, String>>, String> {
    let mut tables: BTreeMap<String, BTreeMap<String, String>> = BTreeMap::new();
    let mut current: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(name) = line.strip_prefix('[').and_then(|l| l.strip_suffix(']')) {
            let name = name.trim();
            if name.is_empty() {
                return Err(format!("Line {}: name the table, e.g. [countries].", n + 1));
            }
            tables.entry(name.to_owned()).or_default();
            current = Some(name.to_owned());
            continue;
        }
        let Some(table) = &current else {
            return Err(format!(
                "Line {}: start with a table name in brackets, e.g. [countries].",
                n + 1
            ));
        };
        let Some((k, v)) = line.split_once('=') else {
            return Err(format!("Line {}: write key = value.", n + 1));
        };
        tables
            .entry(table.clone())
            .or_default()
            .insert(k.trim().to_owned(), v.trim().to_owned());
    }
    Ok(tables)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookup_tables_round_trip_and_errors_name_the_line() {
        let text = "[countries]\nDE = Germany\nGB = United Kingdom\n";
        let tables = parse_lookups(text).unwrap();
        assert_eq!(tables["countries"]["GB"], "United Kingdom");
        assert_eq!(lookups_text(&tables), text);
        assert_eq!(
            parse_lookups("DE = Germany"),
            Err("Line 1: start with a table name in brackets, e.g. [countries].".into())
        );
    }

    #[test]
    fn posted_rows_are_collected_in_order_and_blank_rows_dropped() {
        let pairs: Vec<(String, String)> = [
            ("mapping.1.target", "name"),
            ("mapping.1.expression", "record.name"),
            ("mapping.0.target", "email"),
            ("mapping.0.expression", "record.email"),
            ("mapping.2.target", ""),
            ("mapping.2.expression", ""),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let form = FlowForm::from_pairs(&pairs);
        let targets: Vec<&str> = form.mapping.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["email", "name"]);
    }

    #[test]
    fn a_removed_row_is_dropped_and_the_others_kept_in_order() {
        let pairs: Vec<(String, String)> = [
            ("mapping.0.target", "a"),
            ("mapping.0.expression", "record.a"),
            ("mapping.1.target", "b"),
            ("mapping.1.expression", "record.b"),
            ("mapping.2.target", "c"),
            ("mapping.2.expression", "record.c"),
            ("action", "remove:1"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let form = FlowForm::from_pairs(&pairs);
        let targets: Vec<&str> = form.mapping.iter().map(|r| r.target.as_str()).collect();
        assert_eq!(targets, ["a", "c"]);
    }

    #[test]
    fn a_picked_source_field_becomes_the_rows_expression() {
        let pairs: Vec<(String, String)> = [
            ("mapping.0.pick", "record.email"),
            ("mapping.0.target", "email"),
            ("mapping.0.expression", ""),
            ("mapping.1.target", "name"),
            ("mapping.1.expression", "record.first ~ ' ' ~ record.last"),
            ("mapping.1.pick", ""),
            ("mapping.2.target", "city"),
            ("mapping.2.expression", "record.town"),
            ("mapping.2.pick", "record.city"),
        ]
        .iter()
        .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
        .collect();
        let form = FlowForm::from_pairs(&pairs);
        let expressions: Vec<&str> = form.mapping.iter().map(|r| r.expression.as_str()).collect();
        assert_eq!(
            expressions,
            [
                "record.email",
                "record.first ~ ' ' ~ record.last",
                "record.city"
            ]
        );
    }
}
