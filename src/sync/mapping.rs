//! Field mapping, validation and filtering of records, with user-written expressions.
//!
//! Expressions are minijinja expressions over `record` (e.g. `record.properties.email |
//! lower | trim`), run as untrusted code under the limits of [`super::expression`]. Every
//! error names the row at fault (`mapping.2.expression`). Compiling and applying a
//! mapping is CPU work: async callers do it on [`super::expression::pool`].

use super::expression::{self, Limits, Native, Scope, parse_instant};
use crate::domain::RecordFault;
use crate::domain::flow::MappingRowSpec;
use crate::domain::{FieldErrors, FlowSpec, FlowVersionId};
use minijinja::{Environment, Value, context};
use serde_json::{Map, Value as Json};
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, OnceLock};

/// The type a mapped field is converted to.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldType {
    /// Any value, unchanged.
    Any,
    /// Text.
    Text,
    /// Whole number.
    Integer,
    /// Number.
    Number,
    /// true/false (also "yes"/"no", 1/0).
    Boolean,
    /// A calendar date, `YYYY-MM-DD`.
    Date,
    /// An instant, RFC 3339 in UTC.
    DateTime,
}

impl FieldType {
    /// Parses a type name from a form.
    pub fn parse(name: &str) -> Option<Self> {
        Some(match name {
            "" | "any" => FieldType::Any,
            "text" => FieldType::Text,
            "integer" => FieldType::Integer,
            "number" => FieldType::Number,
            "boolean" => FieldType::Boolean,
            "date" => FieldType::Date,
            "datetime" => FieldType::DateTime,
            _ => return None,
        })
    }

    /// The name used in forms.
    pub fn name(self) -> &'static str {
        match self {
            FieldType::Any => "any",
            FieldType::Text => "text",
            FieldType::Integer => "integer",
            FieldType::Number => "number",
            FieldType::Boolean => "boolean",
            FieldType::Date => "date",
            FieldType::DateTime => "datetime",
        }
    }

    /// Every type, for the form's select.
    pub const ALL: &'static [FieldType] = &[
        FieldType::Any,
        FieldType::Text,
        FieldType::Integer,
        FieldType::Number,
        FieldType::Boolean,
        FieldType::Date,
        FieldType::DateTime,
    ];

    fn convert(self, value: Json) -> Result<Json, String> {
        let text = |v: &Json| match v {
            Json::String(s) => s.trim().to_owned(),
            other => other.to_string(),
        };
        Ok(match (self, value) {
            (_, Json::Null) => Json::Null,
            (FieldType::Any, v) => v,
            (FieldType::Text, Json::String(s)) => Json::String(s),
            (FieldType::Text, v) => Json::String(text(&v)),
            (FieldType::Integer, v) => {
                let t = text(&v);
                t.parse::<i64>()
                    .map(Json::from)
                    .or_else(|_| {
                        t.parse::<f64>()
                            .ok()
                            .filter(|f| f.fract() == 0.0)
                            .map(|f| Json::from(f as i64))
                            .ok_or(())
                    })
                    .map_err(|_| format!("'{t}' is not a whole number"))?
            }
            (FieldType::Number, v) => {
                let t = text(&v);
                t.parse::<f64>()
                    .ok()
                    .and_then(|f| serde_json::Number::from_f64(f).map(Json::Number))
                    .ok_or(format!("'{t}' is not a number"))?
            }
            (FieldType::Date, v) => {
                let t = text(&v);
                Json::String(
                    parse_instant(&t)
                        .map(|d| d.date_naive().to_string())
                        .ok_or(format!("'{t}' is not a date"))?,
                )
            }
            (FieldType::DateTime, v) => {
                let t = text(&v);
                Json::String(
                    parse_instant(&t)
                        .map(|d| d.to_rfc3339_opts(chrono::SecondsFormat::Secs, true))
                        .ok_or(format!("'{t}' is not a date and time"))?,
                )
            }
            (FieldType::Boolean, Json::Bool(b)) => Json::Bool(b),
            (FieldType::Boolean, v) => match text(&v).to_lowercase().as_str() {
                "true" | "yes" | "1" => Json::Bool(true),
                "false" | "no" | "0" => Json::Bool(false),
                t => return Err(format!("'{t}' is not true or false")),
            },
        })
    }
}

/// One mapping row: target field ← expression, with a default and a type.
#[derive(Clone, Debug)]
pub struct MappingRow {
    /// Destination field name (dots make nested objects).
    pub target: String,
    /// Expression over `record`.
    pub expression: String,
    /// Used when the expression yields nothing (null, undefined or empty text).
    pub default: Option<String>,
    /// Conversion applied last.
    pub field_type: FieldType,
}

/// A validation rule on a mapped field.
#[derive(Clone, Debug)]
pub enum Rule {
    /// Must be present and not empty.
    Required,
    /// Text must match this regular expression.
    Pattern(String),
    /// Must be one of these values.
    OneOf(Vec<String>),
    /// An expression over `value` and `record` that must be true.
    Expression(String),
    /// Must already have this type (after conversion).
    Type(FieldType),
}

/// A validation rule with its field and the message shown when it fails.
#[derive(Clone, Debug)]
pub struct Validation {
    /// Mapped field it checks.
    pub target: String,
    /// The rule.
    pub rule: Rule,
    /// Shown when it fails (a sensible default when empty).
    pub message: String,
}

/// Why one record could not be mapped: record-level, goes to the dead letters.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordError {
    /// What kind of failure.
    pub kind: RecordFault,
    /// The field at fault.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// A compiled mapping: rows, validations and an optional filter.
pub struct Mapping {
    env: Environment<'static>,
    rows: Vec<MappingRow>,
    /// Per row: the field path when the expression is a plain `record.a.b` (read directly,
    /// without the template engine: most mapping rows are like this).
    paths: Vec<Option<Vec<String>>>,
    /// Per row: the expression's fast form, when it has one ([`Native`]).
    natives: Vec<Option<Native>>,
    key_path: Option<Vec<String>>,
    key_native: Option<Native>,
    validations: Vec<(Validation, Option<regex::Regex>)>,
    has_filter: bool,
    filter_native: Option<Native>,
}

impl Mapping {
    /// Compiles a mapping. Errors are keyed by row: `mapping.N.expression`,
    /// `validation.N.pattern`, `filter`.
    pub fn compile(
        rows: Vec<MappingRow>,
        validations: Vec<Validation>,
        filter: Option<&str>,
        lookups: BTreeMap<String, BTreeMap<String, String>>,
    ) -> Result<Self, FieldErrors> {
        let limits = Limits::default();
        let mut env = expression::environment(lookups, &limits);
        let mut errors = FieldErrors::new();
        for (i, row) in rows.iter().enumerate() {
            if row.target.trim().is_empty() {
                errors.add(&format!("mapping.{i}.target"), "Name the target field.");
            }
            if let Err(e) = expression::compile(&mut env, format!("m{i}"), &row.expression, &limits)
            {
                errors.add(&format!("mapping.{i}.expression"), e);
            }
        }
        let mut compiled = Vec::new();
        for (i, v) in validations.into_iter().enumerate() {
            let regex = match &v.rule {
                Rule::Pattern(p) => match regex::Regex::new(p) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        errors.add(
                            &format!("validation.{i}.pattern"),
                            format!("Not a valid pattern: {e}"),
                        );
                        None
                    }
                },
                Rule::Expression(expr) => {
                    if let Err(e) = expression::compile(&mut env, format!("v{i}"), expr, &limits) {
                        errors.add(&format!("validation.{i}.expression"), e);
                    }
                    None
                }
                _ => None,
            };
            compiled.push((v, regex));
        }
        if let Some(f) = filter.filter(|f| !f.trim().is_empty())
            && let Err(e) = expression::compile(&mut env, "filter".into(), f, &limits)
        {
            errors.add("filter", e);
        }
        if !errors.is_empty() {
            return Err(errors);
        }
        let filter = filter.filter(|f| !f.trim().is_empty());
        Ok(Self {
            env,
            paths: rows.iter().map(|r| plain_path(&r.expression)).collect(),
            natives: rows
                .iter()
                .map(|r| Native::compile(&r.expression))
                .collect(),
            key_path: None,
            key_native: None,
            rows,
            validations: compiled,
            has_filter: filter.is_some(),
            filter_native: filter.and_then(Native::compile),
        })
    }

    /// Compiles a flow's mapping rows, validations, filter, lookup tables and record key.
    /// Errors are keyed by the form field at fault.
    pub fn from_spec(spec: &FlowSpec) -> Result<Self, FieldErrors> {
        let mut errors = FieldErrors::new();
        let rows = spec
            .mapping
            .iter()
            .enumerate()
            .map(|(i, r)| MappingRow {
                target: r.target.trim().to_owned(),
                expression: r.expression.clone(),
                default: Some(r.default.clone()).filter(|d| !d.is_empty()),
                field_type: FieldType::parse(&r.field_type).unwrap_or_else(|| {
                    errors.add(
                        &format!("mapping.{i}.field_type"),
                        "Choose a type from the list.",
                    );
                    FieldType::Any
                }),
            })
            .collect();
        let mut validations = Vec::new();
        for (i, v) in spec.validations.iter().enumerate() {
            let argument = v.argument.trim();
            let rule = match v.rule.as_str() {
                "required" => Some(Rule::Required),
                "pattern" => Some(Rule::Pattern(argument.to_owned())),
                "enum" => Some(Rule::OneOf(
                    argument
                        .split(',')
                        .map(|o| o.trim().to_owned())
                        .filter(|o| !o.is_empty())
                        .collect(),
                )),
                "expression" => Some(Rule::Expression(argument.to_owned())),
                "type" => FieldType::parse(argument).map(Rule::Type),
                _ => None,
            };
            let Some(rule) = rule else {
                errors.add(
                    &format!("validation.{i}.argument"),
                    "Choose a rule, and for a type rule one of: text, integer, number, boolean, date, datetime.",
                );
                continue;
            };
            if matches!(v.rule.as_str(), "pattern" | "enum" | "expression") && argument.is_empty() {
                errors.add(
                    &format!("validation.{i}.argument"),
                    "This rule needs a value.",
                );
            }
            validations.push(Validation {
                target: v.target.trim().to_owned(),
                rule,
                message: v.message.trim().to_owned(),
            });
        }
        let filter = Some(spec.filter.as_str()).filter(|f| !f.trim().is_empty());
        let mut mapping = match Self::compile(rows, validations, filter, spec.lookups.clone()) {
            Ok(m) => Some(m),
            Err(e) => {
                for (field, message) in e.iter() {
                    errors.add(field, message);
                }
                None
            }
        };
        if spec.record_key.trim().is_empty() {
            errors.add(
                "record_key",
                "Say which expression identifies a record, e.g. record.id.",
            );
        } else if let Some(m) = mapping.as_mut() {
            match expression::compile(
                &mut m.env,
                "key".into(),
                &spec.record_key,
                &Limits::default(),
            ) {
                Ok(()) => {
                    m.key_path = plain_path(&spec.record_key);
                    m.key_native = Native::compile(&spec.record_key);
                }
                Err(e) => errors.add("record_key", e),
            }
        }
        match mapping {
            Some(m) if errors.is_empty() => Ok(m),
            _ => Err(errors),
        }
    }

    /// [`Mapping::from_spec`] on the expression pool, for async callers.
    pub async fn compile_on_pool(
        spec: FlowSpec,
    ) -> Result<Result<Self, FieldErrors>, expression::pool::PoolError> {
        expression::pool::run(move || Self::from_spec(&spec)).await
    }

    /// The compiled mapping of a flow version, compiled (on the expression pool) only
    /// the first time: a run (most are small, a webhook or a few changed records) does
    /// not compile its flow's expressions again. A version never changes and its id is
    /// unique, so an entry never goes stale; the cache is emptied when full.
    pub async fn of_version(
        version: FlowVersionId,
        spec: &FlowSpec,
    ) -> Result<Result<Arc<Self>, FieldErrors>, expression::pool::PoolError> {
        /// Versions kept: those of the flows that run most, a few kilobytes each.
        const KEPT: usize = 64;
        static COMPILED: OnceLock<Mutex<HashMap<FlowVersionId, Arc<Mapping>>>> = OnceLock::new();
        let lock = || {
            COMPILED
                .get_or_init(Default::default)
                .lock()
                .unwrap_or_else(|poisoned| poisoned.into_inner())
        };
        if let Some(found) = lock().get(&version) {
            return Ok(Ok(found.clone()));
        }
        let compiled = match Self::compile_on_pool(spec.clone()).await? {
            Ok(mapping) => Arc::new(mapping),
            Err(errors) => return Ok(Err(errors)),
        };
        let mut kept = lock();
        if kept.len() >= KEPT {
            kept.clear();
        }
        kept.insert(version, compiled.clone());
        Ok(Ok(compiled))
    }

    /// The record's key (from the flow's record key expression).
    pub fn key(&self, record: &Json) -> Result<String, RecordError> {
        let fail = |message: String| RecordError {
            kind: RecordFault::Mapping,
            field: "record key".into(),
            message,
        };
        let fast = self.key_native.as_ref().and_then(|n| n.eval(record));
        let value = match (&self.key_path, fast) {
            (Some(path), _) => read_path(record, path),
            (None, Some(value)) => value,
            (None, None) => self
                .eval(
                    "key",
                    context! { record => Value::from(minijinja::value::Serde(record)) },
                )
                .map_err(fail)?,
        };
        match value {
            Json::String(s) if !s.is_empty() => Ok(s),
            Json::Number(n) => Ok(n.to_string()),
            Json::Bool(b) => Ok(b.to_string()),
            _ => Err(fail("the record key is empty".into())),
        }
    }

    fn eval(&self, name: &str, ctx: Value) -> Result<Json, String> {
        expression::eval(&self.env, name, ctx)
    }

    /// Whether every expression has a fast form ([`Native`] or a plain path) and no check
    /// is an expression. Such a mapping's work on a record is linear in the record, as
    /// reading it was, with no user-made loop: a small page may be mapped on the task
    /// that read it.
    pub fn is_native(&self) -> bool {
        let fast = |native: &Option<Native>, path: &Option<Vec<String>>| {
            native.is_some() || path.is_some()
        };
        self.natives
            .iter()
            .zip(&self.paths)
            .all(|(n, p)| fast(n, p))
            && fast(&self.key_native, &self.key_path)
            && (!self.has_filter || self.filter_native.is_some())
            && self
                .validations
                .iter()
                .all(|(v, _)| !matches!(v.rule, Rule::Expression(_)))
    }

    /// Opens the budget one record's expressions share (key, filter, rows, checks).
    pub fn record_budget(&self) -> Scope {
        Scope::enter(&Limits::default())
    }

    /// Whether the record passes the filter (no filter: always).
    pub fn keep(&self, record: &Json) -> Result<bool, RecordError> {
        if !self.has_filter {
            return Ok(true);
        }
        if let Some(value) = self.filter_native.as_ref().and_then(|n| n.eval(record)) {
            return Ok(truthy(&value));
        }
        self.eval(
            "filter",
            context! { record => Value::from(minijinja::value::Serde(record)) },
        )
        .map(|v| truthy(&v))
        .map_err(|message| RecordError {
            kind: RecordFault::Filter,
            field: "filter".into(),
            message,
        })
    }

    /// Maps and validates one record.
    pub fn apply(&self, record: &Json) -> Result<Map<String, Json>, RecordError> {
        // Converting the record for the template engine costs; only do it when needed.
        let converted = std::cell::OnceCell::new();
        let source = || {
            converted
                .get_or_init(|| Value::from(minijinja::value::Serde(record)))
                .clone()
        };
        let mut out = Map::new();
        for (i, row) in self.rows.iter().enumerate() {
            let fail = |message: String| RecordError {
                kind: RecordFault::Mapping,
                field: row.target.clone(),
                message,
            };
            let fast = || self.natives[i].as_ref().and_then(|n| n.eval(record));
            let mut value = match &self.paths[i] {
                Some(path) => read_path(record, path),
                None => match fast() {
                    Some(value) => value,
                    None => self
                        .eval(&format!("m{i}"), context! { record => source() })
                        .map_err(fail)?,
                },
            };
            let empty =
                matches!(&value, Json::Null) || matches!(&value, Json::String(s) if s.is_empty());
            if empty && let Some(d) = &row.default {
                value = Json::String(d.clone());
            }
            let value = row.field_type.convert(value).map_err(fail)?;
            insert_path(&mut out, &row.target, value);
        }
        for (i, (v, regex)) in self.validations.iter().enumerate() {
            let value = get_path(&out, &v.target).cloned().unwrap_or(Json::Null);
            let ok = match &v.rule {
                Rule::Required => !matches!(&value, Json::Null) && !matches!(&value, Json::String(s) if s.trim().is_empty()),
                Rule::Pattern(_) => match (&value, regex) {
                    (Json::Null, _) => true,
                    (Json::String(s), Some(r)) => r.is_match(s),
                    (other, Some(r)) => r.is_match(&other.to_string()),
                    _ => false,
                },
                Rule::OneOf(options) => match &value {
                    Json::Null => true,
                    Json::String(s) => options.contains(s),
                    other => options.contains(&other.to_string()),
                },
                Rule::Type(t) => has_type(*t, &value),
                Rule::Expression(_) => self
                    .eval(&format!("v{i}"), context! { value => Value::from(minijinja::value::Serde(&value)), record => source() })
                    .map(|r| truthy(&r))
                    .unwrap_or(false),
            };
            if !ok {
                let message = if v.message.trim().is_empty() {
                    default_message(&v.rule)
                } else {
                    v.message.clone()
                };
                return Err(RecordError {
                    kind: RecordFault::Validation,
                    field: v.target.clone(),
                    message,
                });
            }
        }
        Ok(out)
    }
}

/// What each mapping row makes of one record, each row on its own, for the editor's
/// live preview: a row that does not compile or fails says why without hiding the
/// other rows' values. Rows without an expression get `None`.
pub fn preview(
    rows: &[MappingRowSpec],
    lookups: &BTreeMap<String, BTreeMap<String, String>>,
    record: &Json,
) -> Vec<Option<Result<Json, String>>> {
    rows.iter()
        .map(|r| {
            if r.expression.trim().is_empty() {
                return None;
            }
            // The row alone, under a fixed name: the preview is of the value, and a
            // target not named yet is no reason to hide it.
            let row = MappingRow {
                target: "value".into(),
                expression: r.expression.clone(),
                default: Some(r.default.clone()).filter(|d| !d.is_empty()),
                field_type: FieldType::parse(&r.field_type).unwrap_or(FieldType::Any),
            };
            let outcome = match Mapping::compile(vec![row], Vec::new(), None, lookups.clone()) {
                Err(errors) => Err(errors.summary()),
                Ok(mapping) => {
                    let _budget = mapping.record_budget();
                    mapping
                        .apply(record)
                        .map(|mut out| out.remove("value").unwrap_or(Json::Null))
                        .map_err(|e| e.message)
                }
            };
            Some(outcome)
        })
        .collect()
}

/// `["properties", "email"]` for `record.properties.email`; none for anything else.
fn plain_path(expression: &str) -> Option<Vec<String>> {
    let rest = expression.trim().strip_prefix("record.")?;
    let parts: Vec<String> = rest.split('.').map(str::to_owned).collect();
    let ident = |p: &String| {
        p.chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts.iter().all(ident).then_some(parts)
}

/// The value at a path; null where it is missing (as the template engine would say).
fn read_path(record: &Json, path: &[String]) -> Json {
    let mut node = record;
    for part in path {
        match node.get(part) {
            Some(next) => node = next,
            None => return Json::Null,
        }
    }
    node.clone()
}

/// Whether a mapped value already has type `t` (missing values pass: `required` is
/// a separate rule).
fn has_type(t: FieldType, value: &Json) -> bool {
    match (t, value) {
        (_, Json::Null) | (FieldType::Any, _) => true,
        (FieldType::Text, Json::String(_)) => true,
        (FieldType::Date | FieldType::DateTime, Json::String(s)) => parse_instant(s).is_some(),
        (FieldType::Integer, Json::Number(n)) => n.is_i64() || n.is_u64(),
        (FieldType::Number, Json::Number(_)) => true,
        (FieldType::Boolean, Json::Bool(_)) => true,
        _ => false,
    }
}

fn default_message(rule: &Rule) -> String {
    match rule {
        Rule::Required => "is required".into(),
        Rule::Pattern(p) => format!("does not match {p}"),
        Rule::OneOf(o) => format!("must be one of {}", o.join(", ")),
        Rule::Expression(e) => format!("fails the check {e}"),
        Rule::Type(t) => format!("must be of type {}", t.name()),
    }
}

fn truthy(v: &Json) -> bool {
    match v {
        Json::Null => false,
        Json::Bool(b) => *b,
        Json::Number(n) => n.as_f64().is_some_and(|f| f != 0.0),
        Json::String(s) => !s.is_empty(),
        Json::Array(a) => !a.is_empty(),
        Json::Object(o) => !o.is_empty(),
    }
}

fn insert_path(out: &mut Map<String, Json>, path: &str, value: Json) {
    let mut parts = path.split('.').peekable();
    let mut node = out;
    while let Some(part) = parts.next() {
        if parts.peek().is_none() {
            node.insert(part.to_owned(), value);
            return;
        }
        let entry = node
            .entry(part.to_owned())
            .or_insert_with(|| Json::Object(Map::new()));
        if !entry.is_object() {
            *entry = Json::Object(Map::new());
        }
        let Json::Object(next) = entry else { return };
        node = next;
    }
}

fn get_path<'a>(map: &'a Map<String, Json>, path: &str) -> Option<&'a Json> {
    let mut parts = path.split('.');
    let mut current = map.get(parts.next()?)?;
    for part in parts {
        current = current.as_object()?.get(part)?;
    }
    Some(current)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(target: &str, expression: &str, field_type: FieldType) -> MappingRow {
        MappingRow {
            target: target.into(),
            expression: expression.into(),
            default: None,
            field_type,
        }
    }

    fn contact() -> Json {
        json!({"id": "c1", "properties": {"email": "  ADA@Example.com ", "first": "Ada", "last": "Lovelace", "age": "36", "country": "GB"}, "vip": "yes"})
    }

    #[test]
    fn a_preview_shows_each_rows_value_or_its_own_error() {
        let spec = |expression: &str, field_type: &str| MappingRowSpec {
            target: String::new(),
            expression: expression.into(),
            default: String::new(),
            field_type: field_type.into(),
        };
        let rows = [
            spec("record.properties.email | trim | lower", "text"),
            spec("record.properties.first | upperr", "any"),
            spec("", "any"),
            spec("record.properties.age", "integer"),
            spec("record.properties.first", "integer"),
        ];
        let shown = preview(&rows, &BTreeMap::new(), &contact());
        assert_eq!(shown[0], Some(Ok(json!("ada@example.com"))));
        assert!(
            matches!(&shown[1], Some(Err(e)) if e.contains("upperr")),
            "{shown:?}"
        );
        assert_eq!(shown[2], None, "nothing to show for an empty row");
        assert_eq!(shown[3], Some(Ok(json!(36))));
        assert!(matches!(&shown[4], Some(Err(_))), "Ada is no integer");
    }

    #[test]
    fn a_mapping_of_fast_forms_only_is_native_and_one_engine_expression_makes_it_not() {
        let native = |rows, validations, filter| {
            let mut m = Mapping::compile(rows, validations, filter, BTreeMap::new())
                .expect("the mapping compiles");
            m.key_path = plain_path("record.id");
            m.is_native()
        };
        let fast = || {
            vec![
                row("email", "record.email | trim | lower", FieldType::Text),
                row("id", "record.id", FieldType::Text),
            ]
        };
        let check = |rule| Validation {
            target: "email".into(),
            rule,
            message: String::new(),
        };
        assert!(native(fast(), vec![], Some("record.stage != 'archived'")));
        assert!(native(fast(), vec![check(Rule::Pattern("@".into()))], None));
        let mut slow = fast();
        slow.push(row("count", "record.items | length", FieldType::Integer));
        assert!(!native(slow, vec![], None), "a row the engine evaluates");
        assert!(
            !native(fast(), vec![], Some("record.tags | select('odd') | list")),
            "a filter the engine evaluates"
        );
        assert!(
            !native(
                fast(),
                vec![check(Rule::Expression("value | length > 3".into()))],
                None
            ),
            "a check that is an expression"
        );
        let keyless = Mapping::compile(fast(), vec![], None, BTreeMap::new()).expect("compiles");
        assert!(!keyless.is_native(), "no record key to read");
    }

    #[test]
    fn rows_map_convert_and_nest() {
        let mut lookups = BTreeMap::new();
        lookups.insert(
            "countries".to_owned(),
            BTreeMap::from([("GB".to_owned(), "United Kingdom".to_owned())]),
        );
        let mapping = Mapping::compile(
            vec![
                row(
                    "email",
                    "record.properties.email | trim | lower",
                    FieldType::Text,
                ),
                row(
                    "name",
                    "record.properties.first ~ ' ' ~ record.properties.last",
                    FieldType::Text,
                ),
                row("age", "record.properties.age", FieldType::Integer),
                row("vip", "record.vip", FieldType::Boolean),
                row(
                    "address.country",
                    "record.properties.country | lookup('countries')",
                    FieldType::Text,
                ),
                MappingRow {
                    target: "source".into(),
                    expression: "record.missing".into(),
                    default: Some("crm".into()),
                    field_type: FieldType::Text,
                },
            ],
            vec![],
            None,
            lookups,
        )
        .unwrap();
        let out = mapping.apply(&contact()).unwrap();
        assert_eq!(
            Json::Object(out),
            json!({"email": "ada@example.com", "name": "Ada Lovelace", "age": 36, "vip": true, "address": {"country": "United Kingdom"}, "source": "crm"})
        );
    }

    #[test]
    fn compile_errors_point_at_the_faulty_row() {
        let errors = Mapping::compile(
            vec![
                row("ok", "record.id", FieldType::Any),
                row("bad", "record.id |", FieldType::Any),
            ],
            vec![Validation {
                target: "ok".into(),
                rule: Rule::Pattern("([".into()),
                message: String::new(),
            }],
            Some("record.id =="),
            BTreeMap::new(),
        )
        .err()
        .unwrap();
        assert!(errors.has("mapping.1.expression"));
        assert!(!errors.has("mapping.0.expression"));
        assert!(errors.has("validation.0.pattern"));
        assert!(errors.has("filter"));
    }

    #[test]
    fn validation_failures_name_the_field_and_message() {
        let mapping = Mapping::compile(
            vec![
                row("email", "record.properties.email | trim", FieldType::Text),
                row("tier", "record.tier", FieldType::Text),
            ],
            vec![
                Validation {
                    target: "email".into(),
                    rule: Rule::Required,
                    message: String::new(),
                },
                Validation {
                    target: "email".into(),
                    rule: Rule::Pattern("^[^@]+@[^@]+$".into()),
                    message: "needs an e-mail".into(),
                },
                Validation {
                    target: "tier".into(),
                    rule: Rule::OneOf(vec!["gold".into(), "silver".into()]),
                    message: String::new(),
                },
                Validation {
                    target: "email".into(),
                    rule: Rule::Expression("value | length < 40".into()),
                    message: "too long".into(),
                },
            ],
            None,
            BTreeMap::new(),
        )
        .unwrap();
        assert!(
            mapping
                .apply(&json!({"properties": {"email": "a@b.c"}, "tier": "gold"}))
                .is_ok()
        );
        assert_eq!(
            mapping
                .apply(&json!({"properties": {"email": " "}}))
                .unwrap_err(),
            RecordError {
                kind: RecordFault::Validation,
                field: "email".into(),
                message: "is required".into()
            }
        );
        assert_eq!(
            mapping
                .apply(&json!({"properties": {"email": "nope"}}))
                .unwrap_err()
                .message,
            "needs an e-mail"
        );
        assert_eq!(
            mapping
                .apply(&json!({"properties": {"email": "a@b.c"}, "tier": "bronze"}))
                .unwrap_err()
                .message,
            "must be one of gold, silver"
        );
        let long = format!("{}@b.c", "a".repeat(50));
        assert_eq!(
            mapping
                .apply(&json!({"properties": {"email": long}}))
                .unwrap_err()
                .message,
            "too long"
        );
        let bad_type = Mapping::compile(
            vec![row("n", "record.x", FieldType::Integer)],
            vec![],
            None,
            BTreeMap::new(),
        )
        .unwrap();
        assert_eq!(
            bad_type.apply(&json!({"x": "twelve"})).unwrap_err().message,
            "'twelve' is not a whole number"
        );
    }

    #[test]
    fn filters_keep_or_drop_records_and_runaway_expressions_fail_the_record() {
        let mapping =
            Mapping::compile(vec![], vec![], Some("record.vip == 'yes'"), BTreeMap::new()).unwrap();
        assert!(mapping.keep(&contact()).unwrap());
        assert!(!mapping.keep(&json!({"vip": "no"})).unwrap());
        let runaway = Mapping::compile(
            vec![row("x", "range(100000000) | join(',')", FieldType::Text)],
            vec![],
            None,
            BTreeMap::new(),
        )
        .unwrap();
        let error = runaway.apply(&json!({})).unwrap_err();
        assert_eq!(
            error.field, "x",
            "a runaway expression fails its record, naming the field"
        );
    }
}
