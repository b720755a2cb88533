//! User-written expressions (mapping, validation, filter, record key) are untrusted code.
//!
//! Each one passes four gates: its text is checked for length and nesting before any
//! parser sees it ([`shape`]); it is parsed as one expression and printed back with
//! value-building operators turned into guarded calls ([`rewrite`]); it is compiled
//! into an environment whose every filter and operator checks sizes and a deadline
//! ([`guard`]); and it is tried once at compile time on an empty record, so a constant
//! that would build a huge value is refused at the form's field, not at the first run.
//! Compiling and evaluating happen on the bounded expression pool ([`pool`]), never on
//! the web workers.

mod guard;
mod native;
pub mod pool;
mod rewrite;
mod shape;

pub use guard::Scope;
pub use native::Native;
pub use rewrite::describe;

use minijinja::{Environment, Value};
use serde_json::Value as Json;
use std::collections::BTreeMap;
use std::time::Duration;

/// What a user expression may cost. One set for every flow: the figures are documented
/// in the README's security model.
#[derive(Clone, Debug)]
pub struct Limits {
    /// Characters of source text.
    pub max_length: usize,
    /// Open brackets, prefix operators and `if` arms, counted on the text.
    pub max_nesting: usize,
    /// Depth of the parsed expression tree.
    pub max_depth: usize,
    /// Bytes of any one value an expression builds.
    pub max_value: usize,
    /// Bytes built in all by one evaluation (a record's expressions share one budget).
    pub max_produced: usize,
    /// Items of any one list an expression builds.
    pub max_items: usize,
    /// Instructions per evaluation (minijinja fuel).
    pub fuel: u64,
    /// Wall-clock time per evaluation.
    pub per_evaluation: Duration,
}

impl Default for Limits {
    fn default() -> Self {
        Self {
            max_length: 2_000,
            max_nesting: 32,
            max_depth: 40,
            max_value: 1 << 20,
            max_produced: 4 << 20,
            max_items: 10_000,
            fuel: 20_000,
            per_evaluation: Duration::from_millis(50),
        }
    }
}

/// The environment user expressions compile into: builtin tests, `range` and `dict`,
/// every filter guarded, the guarded operators, and Sluice's `lookup` and `date`.
pub fn environment(
    lookups: BTreeMap<String, BTreeMap<String, String>>,
    limits: &Limits,
) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_fuel(Some(limits.fuel));
    env.remove_global("namespace");
    env.remove_global("debug");
    guard::add_guarded_filters(&mut env);
    env.add_function(rewrite::ADD, guard::add);
    env.add_function(rewrite::MUL, guard::mul);
    env.add_function(rewrite::CONCAT, guard::concat);
    env.add_function(rewrite::SLICE, guard::slice);
    // Static lookup tables: `record.country | lookup("countries")`.
    env.add_filter(
        "lookup",
        move |value: String, table: String| -> Result<Value, minijinja::Error> {
            Ok(lookups
                .get(&table)
                .and_then(|t| t.get(&value))
                .map(|v| Value::from(v.clone()))
                .unwrap_or(Value::from(())))
        },
    );
    // Dates: `record.created | date('%d.%m.%Y')` reads RFC 3339, `YYYY-MM-DD` or Unix
    // seconds and formats with chrono's strftime codes.
    env.add_filter(
        "date",
        |value: Value, format: Option<String>| -> Result<Value, minijinja::Error> {
            let text = value.to_string();
            let Some(at) = parse_instant(&text) else {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("'{text}' is not a date"),
                ));
            };
            let format = format.unwrap_or_else(|| "%Y-%m-%d".into());
            if format.len() > 200 {
                return Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    "a date format is at most 200 characters",
                ));
            }
            let mut out = String::new();
            use std::fmt::Write;
            write!(out, "{}", at.format(&format)).map_err(|_| {
                minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    format!("'{format}' is not a valid date format"),
                )
            })?;
            Ok(Value::from(out))
        },
    );
    env
}

/// Compiles `source` into `env` under `name`, or says what is wrong with it. Refuses
/// text that is too long or deep, that is not one expression, and whose constant parts
/// would exceed a limit when evaluated.
pub fn compile(
    env: &mut Environment<'static>,
    name: String,
    source: &str,
    limits: &Limits,
) -> Result<(), String> {
    shape::check(source, limits)?;
    let (guarded, names) = rewrite::rewrite_naming(source, limits.max_depth)?;
    check_names(env, &names, limits)?;
    env.add_template_owned(name.clone(), format!("{{{{ ({guarded})|tojson }}}}"))
        .map_err(|e| describe(&e))?;
    // A try on an empty record: constant parts run in full (`'x' * 100000000`), parts
    // that read the record see nothing. Only a limit counts as a fault here; other errors
    // (an attribute of nothing) depend on the record.
    let scope = Scope::enter(limits);
    let _ = eval(
        env,
        &name,
        minijinja::context! { record => Value::from(()) },
    );
    match scope.exceeded() {
        Some(limit) => {
            env.remove_template(&name);
            Err(format!("Refused: {limit}."))
        }
        None => Ok(()),
    }
}

/// Refuses a filter, test or function the environment lacks: the engine would only
/// find out when a record reaches it, failing every record of every run. Each name is
/// tried on nothing; only "unknown" counts (other errors are about the value).
fn check_names(
    env: &Environment<'static>,
    names: &rewrite::Names,
    limits: &Limits,
) -> Result<(), String> {
    use minijinja::ErrorKind;
    let probes = names
        .filters
        .iter()
        .map(|n| {
            (
                n,
                format!("{{{{ none|{n} }}}}"),
                ErrorKind::UnknownFilter,
                "filter",
            )
        })
        .chain(names.tests.iter().map(|n| {
            (
                n,
                format!("{{{{ none is {n} }}}}"),
                ErrorKind::UnknownTest,
                "test",
            )
        }))
        .chain(names.functions.iter().map(|n| {
            (
                n,
                format!("{{{{ {n}() }}}}"),
                ErrorKind::UnknownFunction,
                "function",
            )
        }));
    for (name, probe, unknown, what) in probes {
        let _scope = Scope::enter(limits);
        if env
            .render_str(&probe, minijinja::context! {})
            .is_err_and(|e| e.kind() == unknown)
        {
            let hint = if what != "filter" {
                String::new()
            } else if let Some(near) = guard::filter_names().find(|f| edits(f, name) <= 2) {
                format!(" Did you mean '{near}'?")
            } else {
                format!(
                    " Filters: {}.",
                    guard::filter_names().collect::<Vec<_>>().join(", ")
                )
            };
            return Err(format!("There is no {what} named '{name}'.{hint}"));
        }
    }
    Ok(())
}

/// How many single-character edits turn `a` into `b` (Levenshtein), for suggestions.
fn edits(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut row: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut diagonal = row[0];
        row[0] = i + 1;
        for (j, cb) in b.iter().enumerate() {
            let above = row[j + 1];
            row[j + 1] = (above + 1)
                .min(row[j] + 1)
                .min(diagonal + usize::from(ca != *cb));
            diagonal = above;
        }
    }
    row[b.len()]
}

/// Evaluates the expression compiled under `name` to JSON, within the current budget
/// (or a new one).
pub fn eval(env: &Environment<'static>, name: &str, ctx: Value) -> Result<Json, String> {
    let _scope = Scope::enter(&Limits::default());
    let template = env.get_template(name).map_err(|e| describe(&e))?;
    let text = template.render(ctx).map_err(|e| describe(&e))?;
    serde_json::from_str(&text).map_err(|e| e.to_string())
}

/// Reads an instant from RFC 3339, a plain date, or Unix seconds.
pub fn parse_instant(text: &str) -> Option<chrono::DateTime<chrono::Utc>> {
    let t = text.trim();
    if let Ok(d) = chrono::DateTime::parse_from_rfc3339(t) {
        return Some(d.with_timezone(&chrono::Utc));
    }
    if let Ok(d) = chrono::NaiveDate::parse_from_str(t, "%Y-%m-%d") {
        return d.and_hms_opt(0, 0, 0).map(|n| n.and_utc());
    }
    if let Ok(d) = chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%d %H:%M:%S") {
        return Some(d.and_utc());
    }
    t.parse::<i64>()
        .ok()
        .and_then(|s| chrono::DateTime::from_timestamp(s, 0))
}

#[cfg(test)]
mod tests;
