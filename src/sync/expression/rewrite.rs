//! Parses a user expression and prints it back as the text Sluice actually compiles.
//!
//! Two things change on the way. Operators that can build large values (`+`, `*`, `~`
//! and slicing) become calls to guarded functions (`_sl_add` …), which check sizes before
//! they allocate and cannot be folded by the template engine at compile time (it folds
//! constant operators without any limit: `'x' * 100000000` allocated at save). And the
//! printed text is made only of expression syntax from the parsed tree, so nothing a
//! user writes can close the `{{ … }}` it is compiled in and reach statements.

use minijinja::Value;
use minijinja::machinery::ast::{BinOpKind, CallArg, CompareOpKind, Expr, UnaryOpKind};
use minijinja::value::ValueKind;
use std::collections::BTreeSet;
use std::fmt::Write;

/// The guarded functions operators are rewritten to.
pub const ADD: &str = "_sl_add";
/// `a * b`.
pub const MUL: &str = "_sl_mul";
/// `a ~ b`.
pub const CONCAT: &str = "_sl_concat";
/// `a[start:stop:step]`.
pub const SLICE: &str = "_sl_slice";

/// The filters, tests and functions an expression names. The engine looks them up only
/// when a record reaches them, so they are checked at save instead.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Names {
    /// `x | name`.
    pub filters: BTreeSet<String>,
    /// `x is name`.
    pub tests: BTreeSet<String>,
    /// `name(…)`.
    pub functions: BTreeSet<String>,
}

/// Parses `source` as one expression and prints its guarded form.
#[cfg(test)]
pub fn rewrite(source: &str, max_depth: usize) -> Result<String, String> {
    rewrite_naming(source, max_depth).map(|(text, _)| text)
}

/// [`rewrite`], with the names the expression uses.
pub fn rewrite_naming(source: &str, max_depth: usize) -> Result<(String, Names), String> {
    let expr = minijinja::machinery::parse_expr(source).map_err(|e| describe(&e))?;
    let mut out = String::with_capacity(source.len() * 2);
    let mut names = Names::default();
    Printer {
        out: &mut out,
        names: &mut names,
        max_depth,
    }
    .expr(&expr, 0)?;
    Ok((out, names))
}

/// A minijinja error as one line for the form.
pub fn describe(e: &minijinja::Error) -> String {
    let kind = e.kind().to_string();
    match e.detail() {
        Some(d) => format!("{kind}: {d}"),
        None => kind,
    }
}

struct Printer<'o> {
    out: &'o mut String,
    names: &'o mut Names,
    max_depth: usize,
}

impl Printer<'_> {
    fn push(&mut self, s: &str) {
        self.out.push_str(s);
    }

    fn expr(&mut self, expr: &Expr<'_>, depth: usize) -> Result<(), String> {
        if depth > self.max_depth {
            return Err(format!(
                "The expression is nested more than {} levels deep.",
                self.max_depth
            ));
        }
        let d = depth + 1;
        match expr {
            Expr::Var(v) => self.push(v.id),
            Expr::Const(c) => self.value(&c.value)?,
            Expr::Slice(s) => {
                self.push(SLICE);
                self.push("(");
                self.expr(&s.expr, d)?;
                for part in [&s.start, &s.stop, &s.step] {
                    self.push(", ");
                    match part {
                        Some(e) => self.expr(e, d)?,
                        None => self.push("none"),
                    }
                }
                self.push(")");
            }
            Expr::UnaryOp(u) => {
                self.push(match u.op {
                    UnaryOpKind::Not => "(not ",
                    UnaryOpKind::Neg => "(-",
                });
                self.expr(&u.expr, d)?;
                self.push(")");
            }
            Expr::BinOp(b) => {
                let guarded = match b.op {
                    BinOpKind::Add => Some(ADD),
                    BinOpKind::Mul => Some(MUL),
                    BinOpKind::Concat => Some(CONCAT),
                    _ => None,
                };
                if let Some(function) = guarded {
                    self.push(function);
                    self.push("(");
                    self.expr(&b.left, d)?;
                    self.push(", ");
                    self.expr(&b.right, d)?;
                    self.push(")");
                } else {
                    self.push("(");
                    self.expr(&b.left, d)?;
                    self.push(binary(b.op));
                    self.expr(&b.right, d)?;
                    self.push(")");
                }
            }
            Expr::Compare(c) => {
                self.push("(");
                self.expr(&c.expr, d)?;
                for op in &c.ops {
                    self.push(compare(op.op));
                    self.expr(&op.expr, d)?;
                }
                self.push(")");
            }
            Expr::IfExpr(i) => {
                self.push("(");
                self.expr(&i.true_expr, d)?;
                self.push(" if ");
                self.expr(&i.test_expr, d)?;
                if let Some(f) = &i.false_expr {
                    self.push(" else ");
                    self.expr(f, d)?;
                }
                self.push(")");
            }
            Expr::Filter(f) => {
                let Some(inner) = &f.expr else {
                    return Err("A filter needs a value to apply to.".into());
                };
                self.push("(");
                self.expr(inner, d)?;
                self.push("|");
                self.push(f.name);
                self.names.filters.insert(f.name.to_owned());
                self.args(&f.args, d)?;
                self.push(")");
            }
            Expr::Test(t) => {
                self.push("(");
                self.expr(&t.expr, d)?;
                self.push(" is ");
                self.push(t.name);
                self.names.tests.insert(t.name.to_owned());
                self.args(&t.args, d)?;
                self.push(")");
            }
            Expr::GetAttr(g) => {
                self.push("(");
                self.expr(&g.expr, d)?;
                self.push(").");
                self.push(g.name);
            }
            Expr::GetItem(g) => {
                self.push("(");
                self.expr(&g.expr, d)?;
                self.push(")[");
                self.expr(&g.subscript_expr, d)?;
                self.push("]");
            }
            Expr::Call(c) => {
                // A call on `x.name` stays a method call: keep the attribute outside
                // the parentheses so the engine still sees `x.name(…)`.
                match &c.expr {
                    Expr::GetAttr(g) => {
                        self.push("(");
                        self.expr(&g.expr, d)?;
                        self.push(").");
                        self.push(g.name);
                    }
                    Expr::Var(v) => {
                        self.push(v.id);
                        self.names.functions.insert(v.id.to_owned());
                    }
                    other => {
                        self.push("(");
                        self.expr(other, d)?;
                        self.push(")");
                    }
                }
                self.args(&c.args, d)?;
            }
            Expr::List(l) => {
                self.push("[");
                self.items(&l.items, d)?;
                self.push("]");
            }
            Expr::Tuple(t) => {
                self.push("(");
                self.items(&t.items, d)?;
                if t.items.len() == 1 {
                    self.push(",");
                }
                self.push(")");
            }
            Expr::Map(m) => {
                self.push("{");
                for (i, (k, v)) in m.keys.iter().zip(&m.values).enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.expr(k, d)?;
                    self.push(": ");
                    self.expr(v, d)?;
                }
                self.push("}");
            }
        }
        Ok(())
    }

    fn items(&mut self, items: &[Expr<'_>], depth: usize) -> Result<(), String> {
        for (i, item) in items.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            self.expr(item, depth)?;
        }
        Ok(())
    }

    fn args(&mut self, args: &[CallArg<'_>], depth: usize) -> Result<(), String> {
        self.push("(");
        for (i, arg) in args.iter().enumerate() {
            if i > 0 {
                self.push(", ");
            }
            match arg {
                CallArg::Pos(e) => self.expr(e, depth)?,
                CallArg::Kwarg(name, e) => {
                    self.push(name);
                    self.push("=");
                    self.expr(e, depth)?;
                }
                CallArg::PosSplat(e) => {
                    self.push("*");
                    self.expr(e, depth)?;
                }
                CallArg::KwargSplat(e) => {
                    self.push("**");
                    self.expr(e, depth)?;
                }
            }
        }
        self.push(")");
        Ok(())
    }

    /// A constant as a literal the lexer reads back to the same value.
    fn value(&mut self, value: &Value) -> Result<(), String> {
        match value.kind() {
            ValueKind::None => self.push("none"),
            ValueKind::Bool => self.push(if value.is_true() { "true" } else { "false" }),
            ValueKind::Number => {
                let text = if value.is_integer() {
                    value.to_string()
                } else {
                    match f64::try_from(value.clone()) {
                        Ok(f) if f.is_finite() => format!("{f:?}"),
                        _ => return Err("A number in the expression is out of range.".into()),
                    }
                };
                if text.starts_with('-') {
                    let _ = write!(self.out, "({text})");
                } else {
                    self.push(&text);
                }
            }
            ValueKind::String => string_literal(value.as_str().unwrap_or_default(), self.out),
            ValueKind::Seq => {
                self.push("[");
                let items = value.try_iter().map_err(|e| describe(&e))?;
                for (i, item) in items.enumerate() {
                    if i > 0 {
                        self.push(", ");
                    }
                    self.value(&item)?;
                }
                self.push("]");
            }
            other => return Err(format!("A constant of kind {other} cannot be used here.")),
        }
        Ok(())
    }
}

fn binary(op: BinOpKind) -> &'static str {
    match op {
        BinOpKind::Eq => " == ",
        BinOpKind::Ne => " != ",
        BinOpKind::Lt => " < ",
        BinOpKind::Lte => " <= ",
        BinOpKind::Gt => " > ",
        BinOpKind::Gte => " >= ",
        BinOpKind::ScAnd => " and ",
        BinOpKind::ScOr => " or ",
        BinOpKind::Sub => " - ",
        BinOpKind::Div => " / ",
        BinOpKind::FloorDiv => " // ",
        BinOpKind::Rem => " % ",
        BinOpKind::Pow => " ** ",
        BinOpKind::In => " in ",
        // Rewritten to guarded functions before this is reached.
        BinOpKind::Add => " + ",
        BinOpKind::Mul => " * ",
        BinOpKind::Concat => " ~ ",
    }
}

fn compare(op: CompareOpKind) -> &'static str {
    match op {
        CompareOpKind::Eq => " == ",
        CompareOpKind::Ne => " != ",
        CompareOpKind::Lt => " < ",
        CompareOpKind::Lte => " <= ",
        CompareOpKind::Gt => " > ",
        CompareOpKind::Gte => " >= ",
        CompareOpKind::In => " in ",
        CompareOpKind::NotIn => " not in ",
    }
}

/// A double-quoted literal: only `"` and `\` are escaped, and control characters as
/// `\uXXXX`, which the lexer reads back exactly.
fn string_literal(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn operators_that_build_values_become_guarded_calls() {
        assert_eq!(
            rewrite("record.a ~ ' ' ~ record.b", 40).unwrap(),
            "_sl_concat(_sl_concat((record).a, \" \"), (record).b)"
        );
        assert_eq!(
            rewrite("'x' * 100000000", 40).unwrap(),
            "_sl_mul(\"x\", 100000000)"
        );
        assert_eq!(
            rewrite("record.n[1:]", 40).unwrap(),
            "_sl_slice((record).n, 1, none, none)"
        );
    }

    #[test]
    fn text_that_would_leave_the_expression_does_not_parse() {
        let breakout = "1)|tojson }}{% for i in range(10) %}x{% endfor %}{{ (1";
        assert!(rewrite(breakout, 40).is_err());
        assert!(rewrite("record.a }} {{ record.b", 40).is_err());
    }

    #[test]
    fn deep_trees_are_refused_without_deep_recursion() {
        let chain = vec!["record.a"; 60].join(" - ");
        assert!(rewrite(&chain, 40).unwrap_err().contains("nested"));
    }
}
