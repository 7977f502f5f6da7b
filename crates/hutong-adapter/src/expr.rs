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
    /// The same condition without the interpreter, when it is only presence tests.
    presence: Option<Vec<Presence>>,
}

/// One term of a condition made only of presence tests, joined by `&&`: `has(src.F)`, or
/// `src.F != ''`.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Presence {
    Has(String),
    NotEmpty(String),
}

/// The terms of `source` when it is presence tests joined by `&&` (the most common guard of the
/// shipped adapters: `has(src.F) && src.F != ''`), `None` otherwise.
fn presence_terms(source: &str) -> Option<Vec<Presence>> {
    let field = |s: &str| -> Option<String> {
        let f = s.strip_prefix("src.")?;
        (!f.is_empty() && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')).then(|| f.to_owned())
    };
    source
        .split("&&")
        .map(|term| {
            let t: String = term.chars().filter(|c| !c.is_whitespace()).collect();
            if let Some(inner) = t.strip_prefix("has(").and_then(|r| r.strip_suffix(')')) {
                return Some(Presence::Has(field(inner)?));
            }
            let left = t.strip_suffix("!=''").or_else(|| t.strip_suffix("!=\"\""))?;
            Some(Presence::NotEmpty(field(left)?))
        })
        .collect()
}

/// A presence condition on `payload` as CEL would answer it; `None` where CEL would have more to
/// say (a value that is not a string, a field read without `has` that is missing): the
/// interpreter then answers, errors included.
fn presence(terms: &[Presence], payload: &Value) -> Option<bool> {
    let map = payload.as_object()?;
    let mut unsure = false;
    for t in terms {
        let holds = match t {
            Presence::Has(f) => Some(map.contains_key(f)),
            Presence::NotEmpty(f) => match map.get(f) {
                Some(Value::String(s)) => Some(!s.is_empty()),
                _ => None,
            },
        };
        match holds {
            // `&&` is false when any term is false, whatever the others (CEL's commutative and).
            Some(false) => return Some(false),
            Some(true) => {}
            None => unsure = true,
        }
    }
    (!unsure).then_some(true)
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
        let presence = presence_terms(source);
        Ok(Self { source: source.into(), program: Arc::new(program), src_fields: src_fields(source), presence })
    }

    /// The payload fields it reads, `None` for any.
    pub(crate) fn src_fields(&self) -> Option<&[String]> {
        self.src_fields.as_deref()
    }

    /// Whether it reads the variable `name`.
    pub(crate) fn names(&self, name: &str) -> bool {
        self.program.references().has_variable(name)
    }

    fn eval(&self, scope: &Scope<'_>, vars: &[(&str, cel::Value)]) -> Result<cel::Value, String> {
        let ctx = scope.context()?;
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
        if let Some(answer) = self.presence.as_deref().and_then(|terms| presence(terms, scope.payload)) {
            return Ok(answer);
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
    /// The payload fields the adapter's expressions read (`None`: all of them).
    fields: Option<&'a [String]>,
    ctx: &'a MapContext<'a>,
    department: &'a str,
    kind: &'a str,
    context: OnceCell<Result<cel::Context<'static, 'static>, String>>,
}

impl<'a> Scope<'a> {
    /// `fields`: what the expressions read of `payload` ([`Expr::src_fields`], joined), `None`
    /// for all. Only those are converted: converting a whole payload of twenty fields, which CEL
    /// then converts again on every evaluation, cost ~8 µs of a 公安 row's ~15 µs.
    pub(crate) fn new(
        payload: &'a Value,
        fields: Option<&'a [String]>,
        ctx: &'a MapContext<'a>,
        department: &'a str,
        kind: &'a str,
    ) -> Self {
        Self { payload, fields, ctx, department, kind, context: OnceCell::new() }
    }

    fn context(&self) -> Result<&cel::Context<'static, 'static>, String> {
        self.context
            .get_or_init(|| {
                // The standard environment is built once: building it per record cost ~20 µs.
                let mut c = cel::Context::with_env(Arc::clone(stdlib()));
                let src = match (self.fields, self.payload) {
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
                if &source[start..i] == "src" && !after_dot {
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
        let scope = Scope::new(&payload, None, &ctx, "sifa", "case");
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

    /// Presence guards answered without the interpreter answer as the interpreter does.
    #[test]
    fn presence_guards_answer_as_cel_does() {
        let key = PseudonymKey::new(vec![0; 16]).unwrap();
        let ctx = MapContext { key: &key, source_id: "S1", revision: 3, op: "upsert" };
        let sources = [
            "has(src.A)",
            "has(src.A) && src.A != ''",
            "has( src.A )&&src.A!=\"\"",
            "has(src.A) && src.A != '' && has(src.B) && src.B != ''",
            "src.A != ''",
        ];
        let payloads = [
            json!({}),
            json!({"A": ""}),
            json!({"A": "x"}),
            json!({"A": null}),
            json!({"A": 1}),
            json!({"A": "x", "B": ""}),
            json!({"A": "x", "B": "y"}),
            json!({"A": "", "B": 2}),
            json!({"B": "y"}),
            json!(["not an object"]),
        ];
        let mut native = 0;
        for source in sources {
            let e = Expr::compile(source).unwrap();
            assert!(e.presence.is_some(), "{source} is a presence guard");
            let interpreted = Expr { presence: None, ..e.clone() };
            for p in &payloads {
                let scope = Scope::new(p, None, &ctx, "d", "k");
                let cel = interpreted.test(&scope);
                let fast = e.test(&scope);
                assert_eq!(fast.is_ok(), cel.is_ok(), "{source} on {p}: {fast:?} / {cel:?}");
                if let (Ok(a), Ok(b)) = (&fast, &cel) {
                    assert_eq!(a, b, "{source} on {p}");
                }
                native += usize::from(presence(e.presence.as_deref().unwrap(), p).is_some());
            }
        }
        assert!(native > 20, "most cases answered natively: {native}");
        for other in
            ["has(src.A) || src.B != ''", "src.A == 'x'", "has(src.A) && src.A.contains('x')", "src['A'] != ''"]
        {
            assert!(Expr::compile(other).unwrap().presence.is_none(), "{other}");
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
        // A scope of the fields read answers as the whole payload would.
        let key = PseudonymKey::new(vec![0; 16]).unwrap();
        let ctx = MapContext { key: &key, source_id: "S1", revision: 3, op: "delete" };
        let payload = json!({"HH": "0021", "XM": "胡金凤", "AGE": 76});
        for source in ["has(src.HH) && src.HH != ''", "has(src.NOPE)", "src.AGE >= 60 && meta.revision == 3"] {
            let e = Expr::compile(source).unwrap();
            let narrow = Scope::new(&payload, e.src_fields(), &ctx, "gongan", "k");
            let whole = Scope::new(&payload, None, &ctx, "gongan", "k");
            assert_eq!(e.test(&narrow), e.test(&whole), "{source}");
        }
    }
}
