//! What an expression may do once it runs: every operation that can build a value checks,
//! before it allocates, that the value stays under the size limit, and counts what it
//! built against the evaluation's budget (bytes produced and a deadline). Fuel alone
//! counts instructions, not work: one `|upper` over 100 MB costs one unit.

use super::Limits;
use minijinja::value::{Rest, ValueKind, ValueOrKwargs};
use minijinja::{Environment, Error, ErrorKind, State, Value};
use std::cell::RefCell;
use std::sync::LazyLock;
use std::time::Instant;

/// What one evaluation may still spend; kept per thread, since an evaluation runs on
/// one thread from start to end.
struct Budget {
    limits: Limits,
    deadline: Instant,
    produced: usize,
    /// The first limit that was hit, kept even if the expression swallows the error
    /// (e.g. with `default`), so the caller still learns of it.
    exceeded: Option<String>,
}

thread_local! {
    static BUDGET: RefCell<Option<Budget>> = const { RefCell::new(None) };
}

/// An open budget on this thread; closing it (drop) ends it. Nested scopes share the
/// outermost one, so a record's budget covers all of its expressions.
pub struct Scope {
    owner: bool,
}

impl Scope {
    /// Opens a budget of `limits.per_evaluation` from now, unless one is open already.
    pub fn enter(limits: &Limits) -> Self {
        let owner = BUDGET.with(|b| {
            let mut b = b.borrow_mut();
            if b.is_some() {
                return false;
            }
            *b = Some(Budget {
                limits: limits.clone(),
                deadline: Instant::now() + limits.per_evaluation,
                produced: 0,
                exceeded: None,
            });
            true
        });
        Self { owner }
    }

    /// The limit this budget hit, if any.
    pub fn exceeded(&self) -> Option<String> {
        BUDGET.with(|b| b.borrow().as_ref().and_then(|b| b.exceeded.clone()))
    }
}

impl Drop for Scope {
    fn drop(&mut self) {
        if self.owner {
            BUDGET.with(|b| b.borrow_mut().take());
        }
    }
}

fn limits() -> Limits {
    BUDGET.with(|b| {
        b.borrow()
            .as_ref()
            .map(|b| b.limits.clone())
            .unwrap_or_default()
    })
}

fn refuse(message: String) -> Error {
    BUDGET.with(|b| {
        if let Some(b) = b.borrow_mut().as_mut() {
            b.exceeded.get_or_insert_with(|| message.clone());
        }
    });
    Error::new(ErrorKind::InvalidOperation, message)
}

/// Checks the deadline and that a value of `bytes` may be built, and counts it.
fn charge(bytes: usize) -> Result<(), Error> {
    let verdict = BUDGET.with(|b| {
        let mut b = b.borrow_mut();
        let Some(b) = b.as_mut() else {
            return Ok(());
        };
        if Instant::now() > b.deadline {
            return Err(format!(
                "the expression took longer than {} ms",
                b.limits.per_evaluation.as_millis()
            ));
        }
        if bytes > b.limits.max_value {
            return Err(format!(
                "the expression would build a value of {}, over the limit of {}",
                human(bytes),
                human(b.limits.max_value)
            ));
        }
        b.produced = b.produced.saturating_add(bytes);
        if b.produced > b.limits.max_produced {
            return Err(format!(
                "the expression built more than {} in all",
                human(b.limits.max_produced)
            ));
        }
        Ok(())
    });
    verdict.map_err(refuse)
}

/// What one list item counts for, whatever it holds (its content is counted apart).
const ITEM_BYTES: usize = 8;

fn human(bytes: usize) -> String {
    if bytes >= 1 << 20 {
        format!("{:.1} MB", bytes as f64 / (1 << 20) as f64)
    } else {
        format!("{} KB", bytes.div_ceil(1024))
    }
}

/// The size of a value in bytes, roughly as printed; stops counting past `cap`.
fn size(value: &Value, cap: usize) -> usize {
    fn walk(value: &Value, cap: usize, total: &mut usize) {
        if *total > cap {
            return;
        }
        match value.kind() {
            ValueKind::String => *total += value.as_str().map_or(0, str::len) + 2,
            ValueKind::Bytes => *total += value.as_bytes().map_or(0, <[u8]>::len),
            ValueKind::Seq => {
                *total += 2;
                if let Ok(items) = value.try_iter() {
                    for item in items {
                        *total += 2;
                        walk(&item, cap, total);
                        if *total > cap {
                            return;
                        }
                    }
                }
            }
            ValueKind::Map => {
                *total += 2;
                if let Ok(keys) = value.try_iter() {
                    for key in keys {
                        walk(&key, cap, total);
                        if let Ok(v) = value.get_item(&key) {
                            walk(&v, cap, total);
                        }
                        if *total > cap {
                            return;
                        }
                    }
                }
            }
            // Lazy: not walked (that could use it up). Its length, where known, stands
            // for its printed size; unknown, it counts as too large to print.
            ValueKind::Iterable => {
                *total = total.saturating_add(
                    value
                        .len()
                        .map_or(cap.saturating_add(1), |n| n.saturating_mul(24)),
                )
            }
            _ => *total += 8,
        }
    }
    let mut total = 0;
    walk(value, cap, &mut total);
    total
}

/// A lazy sequence (`map`, `select`, `range` …) as a list, refused past the item limit,
/// so its size can be known before anything is built from it.
fn materialise(value: Value, limits: &Limits) -> Result<Value, Error> {
    if value.kind() != ValueKind::Iterable {
        return Ok(value);
    }
    let mut items = Vec::new();
    for item in value.try_iter()? {
        if items.len() >= limits.max_items {
            return Err(refuse(format!(
                "the expression would build a list of more than {} items",
                limits.max_items
            )));
        }
        items.push(item);
    }
    charge(items.len() * ITEM_BYTES)?;
    Ok(Value::from(items))
}

fn count(value: &Value) -> usize {
    value.len().unwrap_or(0)
}

fn text(value: &Value) -> usize {
    value.as_str().map_or(0, str::len)
}

fn int(value: Option<&Value>) -> Option<usize> {
    value.and_then(Value::as_usize)
}

/// The most a filter may produce from these arguments, for filters whose output can be
/// far larger than their input; `None` for those that stay within a small multiple.
fn estimate(name: &str, args: &[Value], limits: &Limits) -> Result<Option<usize>, Error> {
    let cap = limits.max_value;
    let arg = |i: usize| args.get(i).filter(|v| !v.is_kwargs());
    Ok(Some(match name {
        "replace" => {
            // Arguments that are not text are printed: count their printed size.
            let (s, old, new) = (
                arg(0).and_then(Value::as_str).unwrap_or_default(),
                arg(1).and_then(Value::as_str).unwrap_or_default(),
                arg(2).map(|v| size(v, cap)).unwrap_or(0),
            );
            let hits = if old.is_empty() {
                s.chars().count() + 1
            } else {
                s.matches(old).count()
            };
            s.len().saturating_add(hits.saturating_mul(new))
        }
        "join" => {
            let items = arg(0).map(count).unwrap_or(0);
            let separator = arg(1).map(|v| size(v, cap)).unwrap_or(0);
            arg(0)
                .map(|v| size(v, cap))
                .unwrap_or(0)
                .saturating_add(items.saturating_mul(separator))
        }
        "indent" => {
            let s = arg(0).and_then(Value::as_str).unwrap_or_default();
            let width = arg(1)
                .map(|w| w.as_usize().unwrap_or_else(|| size(w, cap)))
                .unwrap_or(4);
            s.len()
                .saturating_add((s.lines().count() + 1).saturating_mul(width))
        }
        "batch" | "slice" => {
            let n = int(arg(1)).unwrap_or(0);
            if n > limits.max_items {
                return Err(refuse(format!(
                    "the expression would build more than {} lists",
                    limits.max_items
                )));
            }
            n.saturating_mul(ITEM_BYTES)
                .saturating_add(arg(0).map(|v| size(v, cap)).unwrap_or(0))
        }
        "split" | "lines" => {
            let s = arg(0).and_then(Value::as_str).unwrap_or_default();
            let pieces = match (name, arg(1).and_then(Value::as_str)) {
                ("split", Some(sep)) if !sep.is_empty() => s.matches(sep).count(),
                ("split", _) => s.split_whitespace().count(),
                _ => s.lines().count(),
            };
            if pieces > limits.max_items {
                return Err(refuse(format!(
                    "the expression would build a list of more than {} items",
                    limits.max_items
                )));
            }
            s.len().saturating_add(pieces.saturating_mul(ITEM_BYTES))
        }
        "list" => {
            let n = arg(0)
                .map(|v| v.as_str().map_or_else(|| count(v), |s| s.chars().count()))
                .unwrap_or(0);
            if n > limits.max_items {
                return Err(refuse(format!(
                    "the expression would build a list of more than {} items",
                    limits.max_items
                )));
            }
            n.saturating_mul(ITEM_BYTES)
        }
        "format" => {
            let f = arg(0).and_then(Value::as_str).unwrap_or_default();
            let widest = widest_format_field(f);
            if widest > 1000 {
                return Err(refuse(format!(
                    "a format field of width {widest} is over the limit of 1000"
                )));
            }
            let fields = f.matches('%').count();
            args.iter()
                .map(|v| size(v, cap))
                .sum::<usize>()
                .saturating_add(fields.saturating_mul(widest))
        }
        "tojson" => {
            if args.len() > 1 {
                return Err(refuse("tojson takes no arguments in an expression".into()));
            }
            return Ok(None);
        }
        _ => return Ok(None),
    }))
}

/// The largest width or precision in a printf-style format string (`%-08.3f` → 8).
fn widest_format_field(f: &str) -> usize {
    let mut widest = 0usize;
    let bytes = f.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' {
            i += 1;
            while i < bytes.len() && matches!(bytes[i], b'-' | b'+' | b' ' | b'#' | b'0') {
                i += 1;
            }
            for _ in 0..2 {
                let mut n = 0usize;
                while i < bytes.len() && bytes[i].is_ascii_digit() {
                    n = n
                        .saturating_mul(10)
                        .saturating_add((bytes[i] - b'0') as usize);
                    i += 1;
                }
                if i < bytes.len() && bytes[i] == b'*' {
                    n = usize::MAX;
                    i += 1;
                }
                widest = widest.max(n);
                if i < bytes.len() && bytes[i] == b'.' {
                    i += 1;
                } else {
                    break;
                }
            }
        } else {
            i += 1;
        }
    }
    widest
}

/// Every builtin filter a user expression may use, each behind the guard, added to `env`
/// under its own name (so filters that call filters by name, like `map('upper')`, reach
/// guarded ones). `pprint` is left out: its output grows with nesting and is of no use
/// in a record.
pub fn add_guarded_filters(env: &mut Environment<'static>) {
    env.remove_filter("pprint");
    for (&name, inner) in BUILTINS.iter() {
        env.add_filter(name, guarded(name, inner.clone()));
    }
}

/// Every filter's name, Sluice's own (`lookup`, `date`) among the builtins.
pub fn filter_names() -> impl Iterator<Item = &'static str> {
    let mut names: Vec<&'static str> = BUILTINS
        .keys()
        .copied()
        .chain(["lookup", "date"])
        .filter(|n| *n != "pprint")
        .collect();
    names.sort_unstable();
    names.into_iter()
}

/// The builtin filters, as values that can be called.
static BUILTINS: LazyLock<std::collections::BTreeMap<&'static str, Value>> = LazyLock::new(|| {
    use minijinja::filters as f;
    let mut m = std::collections::BTreeMap::new();
    m.insert("safe", Value::from_function(f::safe));
    m.insert("escape", Value::from_function(f::escape));
    m.insert("e", Value::from_function(f::escape));
    m.insert("lower", Value::from_function(f::lower));
    m.insert("upper", Value::from_function(f::upper));
    m.insert("title", Value::from_function(f::title));
    m.insert("capitalize", Value::from_function(f::capitalize));
    m.insert("replace", Value::from_function(f::replace));
    m.insert("length", Value::from_function(f::length));
    m.insert("count", Value::from_function(f::length));
    m.insert("dictsort", Value::from_function(f::dictsort));
    m.insert("items", Value::from_function(f::items));
    m.insert("reverse", Value::from_function(f::reverse));
    m.insert("trim", Value::from_function(f::trim));
    m.insert("join", Value::from_function(f::join));
    m.insert("split", Value::from_function(f::split));
    m.insert("lines", Value::from_function(f::lines));
    m.insert("default", Value::from_function(f::default));
    m.insert("d", Value::from_function(f::default));
    m.insert("round", Value::from_function(f::round));
    m.insert("abs", Value::from_function(f::abs));
    m.insert("int", Value::from_function(f::int));
    m.insert("float", Value::from_function(f::float));
    m.insert("attr", Value::from_function(f::attr));
    m.insert("first", Value::from_function(f::first));
    m.insert("last", Value::from_function(f::last));
    m.insert("min", Value::from_function(f::min));
    m.insert("max", Value::from_function(f::max));
    m.insert("sort", Value::from_function(f::sort));
    m.insert("list", Value::from_function(f::list));
    m.insert("string", Value::from_function(f::string));
    m.insert("bool", Value::from_function(f::bool));
    m.insert("batch", Value::from_function(f::batch));
    m.insert("slice", Value::from_function(f::slice));
    m.insert("sum", Value::from_function(f::sum));
    m.insert("indent", Value::from_function(f::indent));
    m.insert("select", Value::from_function(f::select));
    m.insert("reject", Value::from_function(f::reject));
    m.insert("selectattr", Value::from_function(f::selectattr));
    m.insert("rejectattr", Value::from_function(f::rejectattr));
    m.insert("map", Value::from_function(f::map));
    m.insert("groupby", Value::from_function(f::groupby));
    m.insert("unique", Value::from_function(f::unique));
    m.insert("chain", Value::from_function(f::chain));
    m.insert("zip", Value::from_function(f::zip));
    m.insert("format", Value::from_function(f::format));
    m.insert("tojson", Value::from_function(f::tojson));
    m
});

/// `inner` behind the guard: lazy arguments materialised within the item limit, every
/// argument within the value limit, the output estimated first where it can outgrow
/// the input, and what was built counted against the budget.
fn guarded(
    name: &'static str,
    inner: Value,
) -> impl Fn(&mut State, Rest<ValueOrKwargs>) -> Result<Value, Error> + Send + Sync + 'static {
    move |state: &mut State, args: Rest<ValueOrKwargs>| {
        let limits = limits();
        let args = args
            .into_values()
            .into_iter()
            .map(|a| materialise(a, &limits))
            .collect::<Result<Vec<_>, _>>()?;
        for a in &args {
            let bytes = size(a, limits.max_value);
            if bytes > limits.max_value {
                return Err(refuse(format!(
                    "{name} was given a value over the limit of {}",
                    human(limits.max_value)
                )));
            }
        }
        // Text given where a list is expected is walked character by character.
        if ITERATING.contains(&name)
            && let Some(text) = args.first().and_then(Value::as_str)
            && text.chars().count() > limits.max_items
        {
            return Err(refuse(format!(
                "{name} would go through more than {} characters one by one",
                limits.max_items
            )));
        }
        charge(estimate(name, &args, &limits)?.unwrap_or(0))?;
        let out = inner.call(state, &args)?;
        charge(size(&out, limits.max_value.saturating_add(1)))?;
        Ok(out)
    }
}

/// Filters that go through their first argument item by item.
const ITERATING: &[&str] = &[
    "sort",
    "unique",
    "list",
    "reverse",
    "first",
    "last",
    "min",
    "max",
    "sum",
    "map",
    "select",
    "reject",
    "selectattr",
    "rejectattr",
    "groupby",
    "batch",
    "slice",
    "join",
    "dictsort",
    "items",
    "chain",
    "zip",
];

/// `a ~ b`: both printed and joined, as the engine does, after their printed size is
/// known to be within the limit.
pub fn concat(a: Value, b: Value) -> Result<Value, Error> {
    let limits = limits();
    let (a, b) = (materialise(a, &limits)?, materialise(b, &limits)?);
    charge(size(&a, limits.max_value).saturating_add(size(&b, limits.max_value)))?;
    Ok(Value::from(format!("{a}{b}")))
}

/// `a + b` and `a * b` are computed by the engine itself (its numeric rules are kept
/// exactly), once the size of a text or list result is known to be within the limit.
pub fn add(a: Value, b: Value) -> Result<Value, Error> {
    let limits = limits();
    if !(a.is_number() && b.is_number()) {
        let (a, b) = (
            materialise(a.clone(), &limits)?,
            materialise(b.clone(), &limits)?,
        );
        charge(size(&a, limits.max_value).saturating_add(size(&b, limits.max_value)))?;
    }
    OPS.binary(Op::Add, a, b)
}

/// `a * b`; see [`add`].
pub fn mul(a: Value, b: Value) -> Result<Value, Error> {
    let limits = limits();
    let repeated = |v: &Value, n: &Value| -> Option<usize> {
        let n = n.as_usize()?;
        match v.kind() {
            ValueKind::String => Some(text(v).saturating_mul(n)),
            ValueKind::Seq | ValueKind::Iterable => Some(
                v.len()
                    .unwrap_or(limits.max_items)
                    .saturating_mul(n)
                    .saturating_mul(ITEM_BYTES),
            ),
            _ => None,
        }
    };
    if let Some(bytes) = repeated(&a, &b).or_else(|| repeated(&b, &a)) {
        charge(bytes)?;
    }
    OPS.binary(Op::Mul, a, b)
}

/// `v[start:stop:step]`: a slice is never larger than its value, but each one is new.
pub fn slice(v: Value, start: Value, stop: Value, step: Value) -> Result<Value, Error> {
    let limits = limits();
    let v = materialise(v, &limits)?;
    charge(size(&v, limits.max_value))?;
    OPS.slice(v, start, stop, step)
}

#[derive(Clone, Copy)]
enum Op {
    Add,
    Mul,
}

/// The engine's own operators, compiled once in a plain environment and called with
/// values whose size the guard has already checked.
struct Ops {
    add: Option<minijinja::Expression<'static, 'static>>,
    mul: Option<minijinja::Expression<'static, 'static>>,
    slice: Option<minijinja::Expression<'static, 'static>>,
}

static PLAIN: LazyLock<Environment<'static>> = LazyLock::new(Environment::empty);

static OPS: LazyLock<Ops> = LazyLock::new(|| Ops {
    add: PLAIN.compile_expression("a + b").ok(),
    mul: PLAIN.compile_expression("a * b").ok(),
    slice: PLAIN.compile_expression("v[start:stop:step]").ok(),
});

impl Ops {
    fn binary(&self, op: Op, a: Value, b: Value) -> Result<Value, Error> {
        let expr = match op {
            Op::Add => &self.add,
            Op::Mul => &self.mul,
        };
        missing(expr)?.eval(minijinja::context! { a, b })
    }

    fn slice(&self, v: Value, start: Value, stop: Value, step: Value) -> Result<Value, Error> {
        missing(&self.slice)?.eval(minijinja::context! { v, start, stop, step })
    }
}

fn missing<'a>(
    expr: &'a Option<minijinja::Expression<'static, 'static>>,
) -> Result<&'a minijinja::Expression<'static, 'static>, Error> {
    expr.as_ref().ok_or_else(|| {
        Error::new(
            ErrorKind::InvalidOperation,
            "the expression engine failed to start",
        )
    })
}
