//! The common expressions, evaluated without the template engine: fields of the record,
//! literals, `~` joins, `==`/`!=` comparisons and the everyday text filters (`trim`,
//! `lower`, `upper`, a shrinking `replace`, `int`). Most mappings are made of nothing
//! else, and the engine costs a render to text and a JSON parse per expression.
//!
//! The fast path gives the engine's answer or none at all: whenever a value is not what
//! it handles exactly (a missing field, a number where text is expected, text longer
//! than [`MAX_TEXT`]), [`Native::eval`] answers `None` and the caller asks the engine,
//! which says what the engine says (including its errors and limits). Work here is
//! linear in text of at most [`MAX_TEXT`] bytes and never grows it by more than the
//! case mappings do, so it needs no fuel, deadline or budget.

use minijinja::machinery::ast::{BinOpKind, CallArg, CompareOpKind, Expr};
use minijinja::value::ValueKind;
use serde_json::Value as Json;

/// Longest text the fast path works on; longer text goes to the engine and its limits.
const MAX_TEXT: usize = 64 * 1024;

/// An expression the fast path evaluates.
#[derive(Debug, Clone, PartialEq)]
pub enum Native {
    /// `record.a.b` or `record["a"]`.
    Field(Vec<String>),
    /// `"text"`.
    Text(String),
    /// `42`.
    Int(i64),
    /// `true`, `false`.
    Bool(bool),
    /// `a ~ b ~ …`.
    Join(Vec<Native>),
    /// `a == b` (true) or `a != b` (false).
    Equal(Box<Native>, Box<Native>, bool),
    /// `value | filter`.
    Filter(Box<Native>, TextFilter),
}

/// The filters the fast path knows.
#[derive(Debug, Clone, PartialEq)]
pub enum TextFilter {
    Trim,
    Lower,
    Upper,
    /// `replace(from, to)` where `to` is no longer than a non-empty `from`.
    Replace(String, String),
    Int,
}

impl Native {
    /// The fast form of `source`, when it has one.
    pub fn compile(source: &str) -> Option<Native> {
        let expr = minijinja::machinery::parse_expr(source).ok()?;
        from_ast(&expr, 0)
    }

    /// The value of the expression for `record`, or `None`: ask the engine.
    pub fn eval(&self, record: &Json) -> Option<Json> {
        match self {
            Native::Field(path) => {
                let mut node = record;
                for part in path {
                    node = node.get(part)?;
                }
                match node {
                    Json::String(s) if s.len() > MAX_TEXT => None,
                    Json::String(_) | Json::Bool(_) => Some(node.clone()),
                    Json::Number(n) if n.is_i64() || n.is_u64() => Some(node.clone()),
                    // Fractions (the engine prints and reads them back, not always to the
                    // same value), null, lists and objects: the engine decides.
                    _ => None,
                }
            }
            Native::Text(t) => Some(Json::String(t.clone())),
            Native::Int(i) => Some(Json::from(*i)),
            Native::Bool(b) => Some(Json::Bool(*b)),
            Native::Join(parts) => {
                let mut out = String::new();
                for part in parts {
                    match part.eval(record)? {
                        Json::String(s) => out.push_str(&s),
                        Json::Number(n) if n.is_i64() || n.is_u64() => out.push_str(&n.to_string()),
                        _ => return None,
                    }
                }
                (out.len() <= MAX_TEXT).then_some(Json::String(out))
            }
            Native::Equal(a, b, equal) => {
                let same = match (a.eval(record)?, b.eval(record)?) {
                    (Json::String(x), Json::String(y)) => x == y,
                    (Json::Number(x), Json::Number(y)) => match (x.as_i64(), y.as_i64()) {
                        (Some(x), Some(y)) => x == y,
                        _ => return None,
                    },
                    (Json::Bool(x), Json::Bool(y)) => x == y,
                    // Across kinds the engine has its own rules (1 == true).
                    _ => return None,
                };
                Some(Json::Bool(same == *equal))
            }
            Native::Filter(value, filter) => {
                let value = value.eval(record)?;
                let Json::String(text) = value else {
                    return match (filter, value) {
                        (TextFilter::Int, Json::Number(n)) if n.is_i64() || n.is_u64() => {
                            Some(Json::Number(n))
                        }
                        _ => None,
                    };
                };
                Some(match filter {
                    TextFilter::Trim => Json::String(text.trim().to_owned()),
                    TextFilter::Lower => Json::String(text.to_lowercase()),
                    TextFilter::Upper => Json::String(text.to_uppercase()),
                    TextFilter::Replace(from, to) => Json::String(text.replace(from, to)),
                    TextFilter::Int => Json::from(plain_integer(&text)?),
                })
            }
        }
    }
}

/// Digits with an optional leading minus, as an i64: what the engine's `int` reads the
/// same way. Anything else (a sign, a fraction, an exponent, spaces) is the engine's.
fn plain_integer(text: &str) -> Option<i64> {
    let digits = text.strip_prefix('-').unwrap_or(text);
    if digits.is_empty() || digits.len() > 18 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    text.parse().ok()
}

/// Deep enough for any everyday expression; deeper ones go to the engine.
const MAX_DEPTH: usize = 16;

fn from_ast(expr: &Expr<'_>, depth: usize) -> Option<Native> {
    if depth > MAX_DEPTH {
        return None;
    }
    let d = depth + 1;
    match expr {
        Expr::Const(c) => match c.value.kind() {
            ValueKind::String => Some(Native::Text(c.value.as_str()?.to_owned())),
            ValueKind::Bool => Some(Native::Bool(c.value.is_true())),
            ValueKind::Number if c.value.is_integer() => {
                i64::try_from(c.value.clone()).ok().map(Native::Int)
            }
            _ => None,
        },
        Expr::GetAttr(_) | Expr::GetItem(_) => field(expr).map(Native::Field),
        Expr::BinOp(b) => match b.op {
            BinOpKind::Concat => {
                let mut parts = Vec::new();
                for side in [&b.left, &b.right] {
                    match from_ast(side, d)? {
                        Native::Join(inner) => parts.extend(inner),
                        other => parts.push(other),
                    }
                }
                Some(Native::Join(parts))
            }
            BinOpKind::Eq | BinOpKind::Ne => Some(Native::Equal(
                Box::new(from_ast(&b.left, d)?),
                Box::new(from_ast(&b.right, d)?),
                matches!(b.op, BinOpKind::Eq),
            )),
            _ => None,
        },
        Expr::Compare(c) => match c.ops.as_slice() {
            [op] if matches!(op.op, CompareOpKind::Eq | CompareOpKind::Ne) => Some(Native::Equal(
                Box::new(from_ast(&c.expr, d)?),
                Box::new(from_ast(&op.expr, d)?),
                matches!(op.op, CompareOpKind::Eq),
            )),
            _ => None,
        },
        Expr::Filter(f) => {
            let value = from_ast(f.expr.as_ref()?, d)?;
            let texts: Option<Vec<String>> = f
                .args
                .iter()
                .map(|a| match a {
                    CallArg::Pos(Expr::Const(c)) => c.value.as_str().map(str::to_owned),
                    _ => None,
                })
                .collect();
            let filter = match (f.name, texts?.as_slice()) {
                ("trim", []) => TextFilter::Trim,
                ("lower", []) => TextFilter::Lower,
                ("upper", []) => TextFilter::Upper,
                ("int", []) => TextFilter::Int,
                ("replace", [from, to]) if !from.is_empty() && to.len() <= from.len() => {
                    TextFilter::Replace(from.clone(), to.clone())
                }
                _ => return None,
            };
            Some(Native::Filter(Box::new(value), filter))
        }
        _ => None,
    }
}

/// `record.a["b"].c` as its path, when the expression is only that.
fn field(expr: &Expr<'_>) -> Option<Vec<String>> {
    match expr {
        Expr::GetAttr(g) => {
            let mut path = match &g.expr {
                Expr::Var(v) if v.id == "record" => Vec::new(),
                other => field(other)?,
            };
            path.push(g.name.to_owned());
            Some(path)
        }
        Expr::GetItem(g) => {
            let Expr::Const(c) = &g.subscript_expr else {
                return None;
            };
            let name = c.value.as_str()?.to_owned();
            let mut path = match &g.expr {
                Expr::Var(v) if v.id == "record" => Vec::new(),
                other => field(other)?,
            };
            path.push(name);
            Some(path)
        }
        _ => None,
    }
}
