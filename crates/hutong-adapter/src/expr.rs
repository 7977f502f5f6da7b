//! Conditions and computed values in CEL (Common Expression Language, the
//! `cel` crate): `src` is the source payload, `meta` the record's identity
//! (`source_id`, `revision`, `department`, `kind`).

use std::{cell::OnceCell, sync::Arc};

use serde_json::{Value, json};

use crate::MapContext;

/// A compiled CEL expression.
#[derive(Clone)]
pub(crate) struct Expr {
    source: Arc<str>,
    program: Arc<cel::Program>,
    /// The payload fields it reads (`src.NAME`), or `None` when it may read any (it names `src`
    /// otherwise, e.g. `size(src)` or `src['NAME']`).
    src_fields: Option<Vec<String>>,
    /// The same expression evaluated without the interpreter, when it is made only of what
    /// [`Native`] knows.
    native: Option<Arc<Native>>,
}

/// The subset of CEL the shipped adapters write most, evaluated straight on the JSON payload:
/// `src.F`, `has(src.F)`, `meta.F`, string, boolean, integer and null literals, `!`, `&&`, `||`,
/// `==`, `!=`, `x in [literals]`, `c ? a : b`, string `+`, `contains`, `startsWith`, `endsWith`
/// and `string(x)`. Compiled once from CEL's own syntax tree. Where its answer could differ from
/// the interpreter's (a missing field read without `has`, mixed types, a value CEL converts
/// differently), it is "unsure" and the interpreter answers, errors included; a test compares
/// both on every shipped expression.
#[derive(Debug, Clone, PartialEq)]
enum Native {
    Field(Root, String),
    Has(Root, String),
    Meta(MetaField),
    Lit(Lit),
    Not(Box<Native>),
    And(Box<Native>, Box<Native>),
    Or(Box<Native>, Box<Native>),
    Eq {
        left: Box<Native>,
        right: Box<Native>,
        negated: bool,
    },
    In(Box<Native>, Vec<Lit>),
    Cond(Box<Native>, Box<Native>, Box<Native>),
    Concat(Box<Native>, Box<Native>),
    Str(StrTest, Box<Native>, Box<Native>),
    ToString(Box<Native>),
    /// `src.F.exists(x, P)`.
    Exists {
        over: String,
        pred: Box<Native>,
    },
    /// `src.F.filter(x, P)[index].field`.
    Pick {
        over: String,
        pred: Box<Native>,
        index: usize,
        field: String,
    },
}

/// What a field is read from: the payload (`src`), or the element of a source array a
/// comprehension's variable stands for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Root {
    Src,
    Item,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum MetaField {
    SourceId,
    Revision,
    Department,
    Kind,
    Op,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StrTest {
    Contains,
    StartsWith,
    EndsWith,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Lit {
    Str(String),
    Bool(bool),
    Int(i64),
    Null,
}

/// A value of the native evaluator (borrowed from the payload where it can be).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Val<'a> {
    Str(std::borrow::Cow<'a, str>),
    Bool(bool),
    Int(i64),
    Null,
}

impl Lit {
    fn val(&self) -> Val<'_> {
        match self {
            Lit::Str(s) => Val::Str(s.as_str().into()),
            Lit::Bool(b) => Val::Bool(*b),
            Lit::Int(i) => Val::Int(*i),
            Lit::Null => Val::Null,
        }
    }
}

impl Val<'_> {
    fn same_type(&self, other: &Val<'_>) -> bool {
        std::mem::discriminant(self) == std::mem::discriminant(other)
    }
}

impl Native {
    /// `expr` as a native expression, `None` where it uses anything else.
    fn compile(expr: &cel::IdedExpr) -> Option<Native> {
        Self::compile_in(expr, None)
    }

    /// [`Self::compile`] inside a comprehension over a source array whose element is `var`.
    fn compile_in(expr: &cel::IdedExpr, var: Option<&str>) -> Option<Native> {
        use cel::common::ast::{Expr as E, LiteralValue as L, operators as op};
        let boxed = |e: &cel::IdedExpr| Native::compile_in(e, var).map(Box::new);
        let root = |e: &cel::IdedExpr| match &e.expr {
            E::Ident(name) if Some(name.as_str()) == var => Some(Root::Item),
            E::Ident(name) if name == "src" => Some(Root::Src),
            _ => None,
        };
        let lit = |l: &L| -> Option<Lit> {
            Some(match l {
                L::String(s) => Lit::Str(s.inner().to_owned()),
                L::Boolean(b) => Lit::Bool(*b.inner()),
                L::Int(i) => Lit::Int(*i.inner()),
                L::Null => Lit::Null,
                _ => return None,
            })
        };
        Some(match &expr.expr {
            E::Literal(l) => Native::Lit(lit(l)?),
            E::Select(s) if root(&s.operand).is_some() => {
                let root = root(&s.operand)?;
                if s.test { Native::Has(root, s.field.clone()) } else { Native::Field(root, s.field.clone()) }
            }
            // `src.F.filter(x, P)[i].G`
            E::Select(s) if !s.test && var.is_none() => match &s.operand.expr {
                E::Call(c) if c.func_name == op::INDEX && c.target.is_none() => match c.args.as_slice() {
                    [list, index] => {
                        let (over, pred) = Self::filter(list)?;
                        let index = match &index.expr {
                            E::Literal(L::Int(i)) => usize::try_from(*i.inner()).ok()?,
                            _ => return None,
                        };
                        Native::Pick { over, pred: Box::new(pred), index, field: s.field.clone() }
                    }
                    _ => return None,
                },
                E::Ident(name) if name == "meta" => Native::Meta(match s.field.as_str() {
                    "source_id" => MetaField::SourceId,
                    "revision" => MetaField::Revision,
                    "department" => MetaField::Department,
                    "kind" => MetaField::Kind,
                    "op" => MetaField::Op,
                    _ => return None,
                }),
                _ => return None,
            },
            E::Call(c) => {
                let name = c.func_name.as_str();
                match (c.target.as_deref(), c.args.as_slice()) {
                    (None, [a]) if name == op::LOGICAL_NOT => Native::Not(boxed(a)?),
                    (None, [a]) if name == "string" => Native::ToString(boxed(a)?),
                    (None, [l, r]) => match name {
                        op::LOGICAL_AND => Native::And(boxed(l)?, boxed(r)?),
                        op::LOGICAL_OR => Native::Or(boxed(l)?, boxed(r)?),
                        op::EQUALS | op::NOT_EQUALS => {
                            Native::Eq { left: boxed(l)?, right: boxed(r)?, negated: name == op::NOT_EQUALS }
                        }
                        op::ADD => Native::Concat(boxed(l)?, boxed(r)?),
                        op::IN => match &r.expr {
                            E::List(list) if list.optional_indices.is_empty() => {
                                let items = list.elements.iter().map(|e| match &e.expr {
                                    E::Literal(l) => lit(l),
                                    _ => None,
                                });
                                Native::In(boxed(l)?, items.collect::<Option<Vec<_>>>()?)
                            }
                            _ => return None,
                        },
                        _ => return None,
                    },
                    (None, [c, a, b]) if name == op::CONDITIONAL => Native::Cond(boxed(c)?, boxed(a)?, boxed(b)?),
                    (Some(target), [arg]) => {
                        let test = match name {
                            "contains" => StrTest::Contains,
                            "startsWith" => StrTest::StartsWith,
                            "endsWith" => StrTest::EndsWith,
                            _ => return None,
                        };
                        // `src.contains(…)` is a map's method, not a string's: leave it to CEL.
                        if root(target).is_some() {
                            return None;
                        }
                        Native::Str(test, boxed(target)?, boxed(arg)?)
                    }
                    _ => return None,
                }
            }
            // `src.F.exists(x, P)`: CEL's macro expands to a comprehension that starts false,
            // steps `@result || P` and stops at the first true.
            E::Comprehension(c) if var.is_none() => {
                let (over, v) = Self::comprehension(c)?;
                match (&c.accu_init.expr, &c.loop_step.expr, &c.result.expr) {
                    (E::Literal(L::Boolean(start)), E::Call(step), E::Ident(result))
                        if !*start.inner()
                            && step.func_name == op::LOGICAL_OR
                            && step.target.is_none()
                            && result == &c.accu_var =>
                    {
                        match step.args.as_slice() {
                            [accu, pred] if matches!(&accu.expr, E::Ident(a) if a == &c.accu_var) => {
                                Native::Exists { over, pred: Box::new(Native::compile_in(pred, Some(v))?) }
                            }
                            _ => return None,
                        }
                    }
                    _ => return None,
                }
            }
            _ => return None,
        })
    }

    /// The source array a comprehension goes over (`src.F`) and its variable.
    fn comprehension(c: &cel::common::ast::ComprehensionExpr) -> Option<(String, &str)> {
        use cel::common::ast::Expr as E;
        let over = match &c.iter_range.expr {
            E::Select(s) if !s.test && matches!(&s.operand.expr, E::Ident(n) if n == "src") => s.field.clone(),
            _ => return None,
        };
        let v = c.iter_var.as_str();
        (c.iter_var2.is_none() && v != "src" && v != "meta").then_some((over, v))
    }

    /// `src.F.filter(x, P)`: CEL's macro expands to a comprehension that starts with `[]` and
    /// steps `P ? @result + [x] : @result`.
    fn filter(expr: &cel::IdedExpr) -> Option<(String, Native)> {
        use cel::common::ast::{Expr as E, operators as op};
        let E::Comprehension(c) = &expr.expr else { return None };
        let (over, v) = Self::comprehension(c)?;
        let is_accu = |e: &cel::IdedExpr| matches!(&e.expr, E::Ident(a) if a == &c.accu_var);
        let E::List(start) = &c.accu_init.expr else { return None };
        let E::Call(step) = &c.loop_step.expr else { return None };
        if !start.elements.is_empty() || step.func_name != op::CONDITIONAL || !is_accu(&c.result) {
            return None;
        }
        let [pred, add, keep] = step.args.as_slice() else { return None };
        let E::Call(add) = &add.expr else { return None };
        let appends = add.func_name == op::ADD
            && matches!(add.args.as_slice(), [a, one] if is_accu(a)
                && matches!(&one.expr, E::List(l) if matches!(l.elements.as_slice(), [x] if matches!(&x.expr, E::Ident(n) if n == v))));
        (appends && is_accu(keep)).then_some(())?;
        Some((over, Native::compile_in(pred, Some(v))?))
    }

    /// The value as CEL would compute it, or `None` when unsure (CEL may answer an error, or a
    /// value this evaluator does not model).
    fn eval<'a>(&'a self, scope: &'a Scope<'a>, item: Option<&'a Value>) -> Option<Val<'a>> {
        Some(match self {
            Native::Field(root, f) => field(root.of(scope, item)?, f)?,
            Native::Has(root, f) => Val::Bool(root.of(scope, item)?.as_object()?.contains_key(f)),
            // The first true decides; an element CEL would fail on before it leaves it to CEL.
            Native::Exists { over, pred } => {
                for element in scope.payload.as_object()?.get(over)?.as_array()? {
                    match pred.eval(scope, Some(element))? {
                        Val::Bool(true) => return Some(Val::Bool(true)),
                        Val::Bool(false) => {}
                        _ => return None,
                    }
                }
                Val::Bool(false)
            }
            // CEL filters the whole array (an element it fails on fails it all), then indexes.
            Native::Pick { over, pred, index, field: f } => {
                let (mut kept, mut picked) = (0, None);
                for element in scope.payload.as_object()?.get(over)?.as_array()? {
                    match pred.eval(scope, Some(element))? {
                        Val::Bool(true) => {
                            if kept == *index {
                                picked = Some(element);
                            }
                            kept += 1;
                        }
                        Val::Bool(false) => {}
                        _ => return None,
                    }
                }
                field(picked?, f)?
            }
            Native::Meta(m) => match m {
                MetaField::SourceId => Val::Str(scope.ctx.source_id.into()),
                MetaField::Revision => Val::Int(i64::try_from(scope.ctx.revision).unwrap_or(i64::MAX)),
                MetaField::Department => Val::Str(scope.department.into()),
                MetaField::Kind => Val::Str(scope.kind.into()),
                MetaField::Op => Val::Str(scope.ctx.op.into()),
            },
            Native::Lit(l) => l.val(),
            Native::Not(a) => match a.eval(scope, item)? {
                Val::Bool(b) => Val::Bool(!b),
                _ => return None,
            },
            // CEL's `&&` is false when either side is false, whatever (even an error) the other
            // side is; true only when both are true. `||` the same with true.
            Native::And(l, r) | Native::Or(l, r) => {
                let decisive = matches!(self, Native::Or(..));
                let left = l.eval(scope, item);
                if left == Some(Val::Bool(decisive)) {
                    return left;
                }
                match (left, r.eval(scope, item)?) {
                    (_, Val::Bool(b)) if b == decisive => Val::Bool(b),
                    (Some(Val::Bool(_)), Val::Bool(b)) => Val::Bool(b),
                    _ => return None,
                }
            }
            Native::Eq { left, right, negated } => {
                let (l, r) = (left.eval(scope, item)?, right.eval(scope, item)?);
                if !l.same_type(&r) {
                    return None;
                }
                Val::Bool((l == r) != *negated)
            }
            Native::In(needle, items) => {
                let needle = needle.eval(scope, item)?;
                if items.iter().any(|i| !needle.same_type(&i.val())) {
                    return None;
                }
                Val::Bool(items.iter().any(|i| i.val() == needle))
            }
            Native::Cond(c, a, b) => match c.eval(scope, item)? {
                Val::Bool(true) => a.eval(scope, item)?,
                Val::Bool(false) => b.eval(scope, item)?,
                _ => return None,
            },
            Native::Concat(l, r) => match (l.eval(scope, item)?, r.eval(scope, item)?) {
                (Val::Str(a), Val::Str(b)) => Val::Str((a.into_owned() + &b).into()),
                _ => return None,
            },
            Native::Str(test, target, arg) => match (target.eval(scope, item)?, arg.eval(scope, item)?) {
                (Val::Str(t), Val::Str(a)) => Val::Bool(match test {
                    StrTest::Contains => t.contains(a.as_ref()),
                    StrTest::StartsWith => t.starts_with(a.as_ref()),
                    StrTest::EndsWith => t.ends_with(a.as_ref()),
                }),
                _ => return None,
            },
            Native::ToString(a) => match a.eval(scope, item)? {
                s @ Val::Str(_) => s,
                Val::Int(i) => Val::Str(i.to_string().into()),
                _ => return None,
            },
        })
    }
}

impl Root {
    fn of<'a>(self, scope: &'a Scope<'a>, item: Option<&'a Value>) -> Option<&'a Value> {
        match self {
            Root::Src => Some(scope.payload),
            Root::Item => item,
        }
    }
}

/// Field `f` of `object` as CEL reads it (`None` where CEL would fail: not an object, no such
/// field; or where its value is one this evaluator does not model).
fn field<'a>(object: &'a Value, f: &str) -> Option<Val<'a>> {
    Some(match object.as_object()?.get(f)? {
        Value::String(s) => Val::Str(s.as_str().into()),
        Value::Bool(b) => Val::Bool(*b),
        Value::Number(n) => Val::Int(n.as_i64()?),
        Value::Null => Val::Null,
        Value::Array(_) | Value::Object(_) => return None,
    })
}

impl std::fmt::Debug for Expr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Expr({:?})", self.source)
    }
}

impl Expr {
    /// Compiles `source`; the error names what did not parse.
    pub(crate) fn compile(source: &str) -> Result<Self, String> {
        let program = cel::Program::compile(source).map_err(|e| format!("invalid CEL {source:?}: {e}"))?;
        let native = Native::compile(program.expression()).map(Arc::new);
        Ok(Self { source: source.into(), program: Arc::new(program), src_fields: src_fields(source), native })
    }

    /// The payload fields it reads, `None` for any.
    pub(crate) fn src_fields(&self) -> Option<&[String]> {
        self.src_fields.as_deref()
    }

    /// Whether [`Native`] answers it (unless unsure about a value).
    pub(crate) fn is_native(&self) -> bool {
        self.native.is_some()
    }

    /// Whether it reads the variable `name`.
    pub(crate) fn names(&self, name: &str) -> bool {
        self.program.references().has_variable(name)
    }

    fn eval(&self, scope: &Scope<'_>, vars: &[(&str, cel::Value)]) -> Result<cel::Value, String> {
        let ctx = scope.context(self.native.is_none())?;
        let run = |ctx: &cel::Context<'_, '_>| self.program.execute(ctx).map_err(|e| format!("{}: {e}", self.source));
        if vars.is_empty() {
            return run(ctx);
        }
        let mut inner = ctx.new_inner_scope();
        for (name, value) in vars {
            inner.add_variable_from_value(*name, value.clone());
        }
        run(&inner)
    }

    /// Evaluates a condition; anything but a boolean is an error.
    pub(crate) fn test(&self, scope: &Scope<'_>) -> Result<bool, String> {
        self.test_with(scope, &[])
    }

    /// [`Self::test`] with more variables (`item`, `index`, `value`).
    pub(crate) fn test_with(&self, scope: &Scope<'_>, vars: &[(&str, cel::Value)]) -> Result<bool, String> {
        if let Some(Val::Bool(b)) = self.native.as_deref().and_then(|n| n.eval(scope, None)) {
            return Ok(b);
        }
        match self.eval(scope, vars)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!("{}: a condition must be true or false, got {other:?}", self.source)),
        }
    }

    /// Evaluates a computed value as text (`null` is no value).
    #[cfg(test)]
    pub(crate) fn eval_string(&self, scope: &Scope<'_>) -> Result<Option<String>, String> {
        self.eval_string_with(scope, &[])
    }

    /// [`Self::eval_string`] with more variables (`item`, `index`).
    pub(crate) fn eval_string_with(
        &self,
        scope: &Scope<'_>,
        vars: &[(&str, cel::Value)],
    ) -> Result<Option<String>, String> {
        if let Some(v) = self.native.as_deref().and_then(|n| n.eval(scope, None)) {
            return Ok(match v {
                Val::Null => None,
                Val::Str(s) => Some(s.into_owned()),
                Val::Int(i) => Some(i.to_string()),
                Val::Bool(b) => Some(b.to_string()),
            });
        }
        Ok(match self.eval(scope, vars)? {
            cel::Value::Null => None,
            cel::Value::String(s) => Some(s.to_string()),
            cel::Value::Int(i) => Some(i.to_string()),
            cel::Value::UInt(u) => Some(u.to_string()),
            cel::Value::Float(f) => Some(f.to_string()),
            cel::Value::Bool(b) => Some(b.to_string()),
            other => return Err(format!("{}: expected a string, number or boolean, got {other:?}", self.source)),
        })
    }
}

/// The variables of one record, converted for CEL only if an expression asks.
pub(crate) struct Scope<'a> {
    payload: &'a Value,
    /// The payload fields the adapter's expressions read (`None`: all of them), and those the
    /// expressions without a native form read.
    fields: (Option<&'a [String]>, Option<&'a [String]>),
    ctx: &'a MapContext<'a>,
    department: &'a str,
    kind: &'a str,
    /// For the expressions only the interpreter answers: their fields.
    interpreted: OnceCell<Result<cel::Context<'static, 'static>, String>>,
    /// For a native expression that was unsure: every field.
    all: OnceCell<Result<cel::Context<'static, 'static>, String>>,
}

impl<'a> Scope<'a> {
    /// `fields`: what the expressions read of `payload` ([`Expr::src_fields`], joined), and what
    /// those without a native form read; `None` for all. Only those are converted: converting a
    /// whole payload of twenty fields, which CEL then converts again on every evaluation, cost
    /// ~8 µs of a 公安 row's ~15 µs. A record whose native expressions are all sure converts only
    /// the second set.
    pub(crate) fn new(
        payload: &'a Value,
        fields: (Option<&'a [String]>, Option<&'a [String]>),
        ctx: &'a MapContext<'a>,
        department: &'a str,
        kind: &'a str,
    ) -> Self {
        Self { payload, fields, ctx, department, kind, interpreted: OnceCell::new(), all: OnceCell::new() }
    }

    /// The same fields for every expression (tests).
    #[cfg(test)]
    fn with_fields(
        payload: &'a Value,
        fields: Option<&'a [String]>,
        ctx: &'a MapContext<'a>,
        department: &'a str,
        kind: &'a str,
    ) -> Self {
        Self::new(payload, (fields, fields), ctx, department, kind)
    }

    fn context(&self, interpreted_only: bool) -> Result<&cel::Context<'static, 'static>, String> {
        let (cell, fields) =
            if interpreted_only { (&self.interpreted, self.fields.1) } else { (&self.all, self.fields.0) };
        cell.get_or_init(|| {
            // The standard environment is built once: building it per record cost ~20 µs.
            let mut c = cel::Context::with_env(Arc::clone(stdlib()));
            let src = match (fields, self.payload) {
                (Some(fields), Value::Object(map)) => fields
                    .iter()
                    .filter_map(|f| Some((f.clone(), to_cel(map.get(f)?))))
                    .collect::<std::collections::HashMap<_, _>>()
                    .into(),
                _ => to_cel(self.payload),
            };
            c.add_variable_from_value("src", src);
            let meta = json!({
                "source_id": self.ctx.source_id,
                // CEL does not mix uint and int: expose an int, as users write `meta.revision + 1`.
                "revision": i64::try_from(self.ctx.revision).unwrap_or(i64::MAX),
                "department": self.department,
                "kind": self.kind,
                "op": self.ctx.op,
            });
            c.add_variable_from_value("meta", to_cel(&meta));
            Ok(c)
        })
        .as_ref()
        .map_err(Clone::clone)
    }
}

/// The payload fields `source` reads as `src.NAME`; `None` when it names `src` in any other way
/// (`size(src)`, `src['NAME']`, `src[k]`), so the whole payload must be there. String literals
/// are skipped; a raw or triple-quoted one makes the answer `None` (all fields: never wrong).
fn src_fields(source: &str) -> Option<Vec<String>> {
    let b = source.as_bytes();
    let ident = |c: u8| c.is_ascii_alphanumeric() || c == b'_';
    let mut fields = Vec::new();
    let mut i = 0;
    while i < b.len() {
        match b[i] {
            // A comment runs to the end of the line (an apostrophe in it opens no literal).
            b'/' if b.get(i + 1) == Some(&b'/') => {
                while i < b.len() && b[i] != b'\n' {
                    i += 1;
                }
            }
            q @ (b'\'' | b'"') => {
                if b.get(i + 1) == Some(&q) && b.get(i + 2) == Some(&q) {
                    return None;
                }
                if i > 0 && matches!(b[i - 1], b'r' | b'R' | b'b' | b'B') {
                    return None;
                }
                i += 1;
                while i < b.len() && b[i] != q {
                    i += if b[i] == b'\\' { 2 } else { 1 };
                }
                i += 1;
            }
            c if ident(c) => {
                let start = i;
                while i < b.len() && ident(b[i]) {
                    i += 1;
                }
                let after_dot = start > 0 && b[start - 1] == b'.';
                // `.src.F` names the root `src` too, `x.src` may: all fields, to be safe.
                if &source[start..i] == "src" && after_dot {
                    return None;
                }
                if &source[start..i] == "src" {
                    let rest = &b[i..];
                    let name_len = rest.iter().skip(1).take_while(|c| ident(**c)).count();
                    if rest.first() != Some(&b'.') || name_len == 0 {
                        return None;
                    }
                    fields.push(source[i + 1..i + 1 + name_len].to_owned());
                    i += 1 + name_len;
                }
            }
            _ => i += 1,
        }
    }
    fields.sort();
    fields.dedup();
    Some(fields)
}

/// CEL's standard environment (functions and macros), shared by every record.
fn stdlib() -> &'static Arc<cel::Env> {
    static ENV: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib()))
}

/// JSON → CEL with integers as `int` (CEL does not mix `int` and `uint`, and
/// people write `src.AGE >= 60`, not `60u`).
pub(crate) fn to_cel(v: &Value) -> cel::Value {
    match v {
        Value::Null => cel::Value::Null,
        Value::Bool(b) => cel::Value::Bool(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => cel::Value::Int(i),
            None => cel::Value::Float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => cel::Value::String(Arc::new(s.clone())),
        Value::Array(items) => items.iter().map(to_cel).collect::<Vec<_>>().into(),
        Value::Object(map) => {
            map.iter().map(|(k, v)| (k.clone(), to_cel(v))).collect::<std::collections::HashMap<_, _>>().into()
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PseudonymKey;

    #[test]
    fn conditions_and_values() {
        let key = PseudonymKey::new(vec![0; 16]).unwrap();
        let ctx = MapContext { key: &key, source_id: "S1", revision: 3, op: "delete" };
        let payload = json!({"DSR": "张三", "AGE": 70, "EMPTY": ""});
        let scope = Scope::with_fields(&payload, None, &ctx, "sifa", "case");
        assert_eq!(Expr::compile("has(src.DSR) && src.AGE >= 60").unwrap().test(&scope), Ok(true));
        assert_eq!(Expr::compile("has(src.NOPE)").unwrap().test(&scope), Ok(false));
        assert_eq!(
            Expr::compile("meta.department + ':' + meta.source_id").unwrap().eval_string(&scope),
            Ok(Some("sifa:S1".into()))
        );
        assert_eq!(Expr::compile("meta.revision + 1").unwrap().eval_string(&scope), Ok(Some("4".into())));
        assert_eq!(Expr::compile("meta.op").unwrap().eval_string(&scope), Ok(Some("delete".into())));
        assert!(Expr::compile("src.AGE").unwrap().test(&scope).is_err(), "not a boolean");
        assert!(Expr::compile("src.NOPE == 1").unwrap().test(&scope).is_err(), "missing key is an error");
        assert!(Expr::compile("1 +").is_err());
    }

    /// Every `when` and `expr` of the shipped adapters, and more.
    fn shipped_expressions() -> Vec<String> {
        fn collect(v: &toml::Value, out: &mut Vec<String>) {
            match v {
                toml::Value::Table(t) => {
                    for (k, v) in t {
                        match (k.as_str(), v) {
                            ("when" | "expr", toml::Value::String(s)) => out.push(s.clone()),
                            _ => collect(v, out),
                        }
                    }
                }
                toml::Value::Array(items) => items.iter().for_each(|i| collect(i, out)),
                _ => {}
            }
        }
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/departments");
        let mut out = Vec::new();
        for dept in std::fs::read_dir(&root).unwrap() {
            for file in std::fs::read_dir(dept.unwrap().path()).unwrap() {
                let path = file.unwrap().path();
                if path.extension().is_some_and(|e| e == "toml") {
                    let text = std::fs::read_to_string(&path).unwrap();
                    collect(&toml::Value::Table(toml::from_str(&text).unwrap()), &mut out);
                }
            }
        }
        out
    }

    /// The native evaluator answers as the interpreter does, on every shipped expression and on
    /// payloads of every shape (missing, empty, null, numeric, boolean, nested, not an object).
    #[test]
    fn native_answers_are_cel_answers() {
        let shipped = shipped_expressions();
        assert!(shipped.len() > 100, "the shipped adapters' expressions: {}", shipped.len());
        let extra = [
            "has(src.A)",
            "has( src.A )&&src.A!=\"\"",
            "src.A != ''",
            "!has(src.A) || src.A == ''",
            "src.A == 'x' ? 'yes' : src.B",
            "src.A + '-' + string(src.B)",
            "src.A.startsWith('x') || src.B.endsWith('y')",
            "src.A in ['x', 1]",
            "src.A == 1 || src.B == true || src.A == null",
            "meta.department + ':' + meta.source_id + ':' + meta.op + meta.kind",
            "meta.revision == 3 && !(src.A in [])",
            "src.A.exists(x, x.node == '派单' && has(x.dept))",
            "has(src.B) && src.B.filter(x, has(x.dept))[1].dept",
            "src.A.filter(f, f.node == '派单')[0].node + ':' + src.B",
        ];
        let key = PseudonymKey::new(vec![0; 16]).unwrap();
        let ctx = MapContext { key: &key, source_id: "S1", revision: 3, op: "upsert" };
        let pool = [
            json!(""),
            json!("x"),
            json!("y"),
            json!("06"),
            json!("０６"),
            json!("5"),
            json!("1"),
            json!("111"),
            json!("受理已办结"),
            json!(5),
            json!(1.5),
            json!(true),
            json!(false),
            json!(null),
            json!([{"node": "派单", "dept": "x"}]),
            json!([{"node": "登记"}, {"node": "派单"}, {"node": "派单", "dept": "y"}]),
            json!([{"node": "派单", "dept": "y"}, {"node": "派单", "dept": 7}, {"dept": "z"}]),
            json!([{"dept": "z"}, {"node": "派单", "dept": "y"}]),
            json!([]),
            json!(["x", {"node": "派单", "dept": "y"}]),
            json!({"k": "v"}),
        ];
        let mut seed = 0x9e37_79b9_7f4a_7c15_u64;
        let mut next = |n: usize| {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            (seed % n as u64) as usize
        };
        let (mut compiled, mut answered, mut cases) = (0, 0, 0);
        for source in shipped.iter().map(String::as_str).chain(extra) {
            let e = Expr::compile(source).unwrap();
            let Some(native) = e.native.clone() else { continue };
            compiled += 1;
            let interpreted = Expr { native: None, ..e.clone() };
            let fields = e.src_fields().map(<[String]>::to_vec).unwrap_or_default();
            for round in 0..400 {
                let payload = if round == 0 {
                    json!(["not an object"])
                } else {
                    let mut map = serde_json::Map::new();
                    for f in fields.iter().chain(["A".to_owned(), "B".to_owned()].iter()) {
                        // A third of the fields missing.
                        let pick = next(pool.len() + pool.len() / 2);
                        if let Some(v) = pool.get(pick) {
                            map.insert(f.clone(), v.clone());
                        }
                    }
                    Value::Object(map)
                };
                // As an adapter sets it up: no field for the interpreter-only expressions (there
                // are none here); a native expression that is unsure converts its own.
                let (kind, none) = ("household_registration", Some(&[][..]));
                let scope = Scope::new(&payload, (e.src_fields(), none), &ctx, "gongan", kind);
                let reference = Scope::with_fields(&payload, e.src_fields(), &ctx, "gongan", kind);
                cases += 1;
                answered += usize::from(native.eval(&scope, None).is_some());
                let (fast, slow) = (e.test(&scope), interpreted.test(&reference));
                assert_eq!(fast.is_ok(), slow.is_ok(), "{source} on {payload}: {fast:?} / {slow:?}");
                if fast.is_ok() {
                    assert_eq!(fast, slow, "{source} on {payload}");
                }
                let (fast, slow) = (e.eval_string(&scope), interpreted.eval_string(&reference));
                assert_eq!(fast.is_ok(), slow.is_ok(), "{source} on {payload}: {fast:?} / {slow:?}");
                if fast.is_ok() {
                    assert_eq!(fast, slow, "{source} on {payload}");
                }
            }
        }
        println!(
            "{compiled} of {} expressions native; {answered} of {cases} cases answered natively",
            shipped.len() + extra.len()
        );
        assert!(compiled >= 100, "most shipped expressions compile natively: {compiled}");
        assert!(answered * 2 > cases, "most cases answered natively: {answered} of {cases}");
        for other in [
            "src.A.all(f, f.node == 'x')",
            "src.A.exists(x, src.B.exists(y, y == x))",
            "src.A.map(x, x.k)[0]",
            "src.A.exists_one(x, x.k == 1)",
            "size(src) > 2",
            "src['A'] != ''",
            "src.A > 1",
            "value == 'x'",
        ] {
            assert!(Expr::compile(other).unwrap().native.is_none(), "{other}");
        }
    }

    #[test]
    fn only_the_fields_an_expression_reads_are_converted() {
        let fields = |s: &str| Expr::compile(s).unwrap().src_fields().map(<[String]>::to_vec);
        assert_eq!(fields("has(src.HH) && src.HH != ''"), Some(vec!["HH".to_owned()]));
        assert_eq!(fields("'gongan:' + src.HH + meta.source_id"), Some(vec!["HH".to_owned()]));
        assert_eq!(
            fields("src.B > 1 || src.A == 'src.C'"),
            Some(vec!["A".to_owned(), "B".to_owned()]),
            "not in literals"
        );
        assert_eq!(fields("meta.kind == 'x'"), Some(vec![]));
        assert_eq!(fields("size(src) > 2"), None, "the whole payload");
        assert_eq!(fields("src['HH'] != ''"), None);
        assert_eq!(fields("r'src.X' == src.Y"), None, "raw literals: all, to be safe");
        assert_eq!(
            fields("src.A == 1 // it's\n|| src.B == 'y'"),
            Some(vec!["A".to_owned(), "B".to_owned()]),
            "an apostrophe in a comment opens no literal"
        );
        assert_eq!(fields(".src.B == 'y'"), None, "the root spelled with a leading dot");
        // A scope of the fields read answers as the whole payload would.
        let key = PseudonymKey::new(vec![0; 16]).unwrap();
        let ctx = MapContext { key: &key, source_id: "S1", revision: 3, op: "delete" };
        let payload = json!({"HH": "0021", "XM": "胡金凤", "AGE": 76});
        for source in [
            "has(src.HH) && src.HH != ''",
            "has(src.NOPE)",
            "src.AGE >= 60 && meta.revision == 3",
            "src.AGE > 80 // it's\n|| src.XM == 'x'",
        ] {
            let e = Expr::compile(source).unwrap();
            let narrow = Scope::with_fields(&payload, e.src_fields(), &ctx, "gongan", "k");
            let whole = Scope::with_fields(&payload, None, &ctx, "gongan", "k");
            assert_eq!(e.test(&narrow), e.test(&whole), "{source}");
        }
    }
}
