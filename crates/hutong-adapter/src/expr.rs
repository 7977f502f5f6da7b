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
        Ok(Self { source: source.into(), program: Arc::new(program) })
    }

    fn eval(&self, scope: &Scope<'_>) -> Result<cel::Value, String> {
        let ctx = scope.context()?;
        self.program.execute(ctx).map_err(|e| format!("{}: {e}", self.source))
    }

    /// Evaluates a condition; anything but a boolean is an error.
    pub(crate) fn test(&self, scope: &Scope<'_>) -> Result<bool, String> {
        match self.eval(scope)? {
            cel::Value::Bool(b) => Ok(b),
            other => Err(format!("{}: a condition must be true or false, got {other:?}", self.source)),
        }
    }

    /// Evaluates a computed value as text (`null` is no value).
    pub(crate) fn eval_string(&self, scope: &Scope<'_>) -> Result<Option<String>, String> {
        Ok(match self.eval(scope)? {
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
    meta: Value,
    context: OnceCell<Result<cel::Context<'static, 'static>, String>>,
}

impl<'a> Scope<'a> {
    pub(crate) fn new(payload: &'a Value, ctx: &MapContext<'_>, department: &str, kind: &str) -> Self {
        let meta = json!({
            "source_id": ctx.source_id,
            // CEL does not mix uint and int: expose an int, as users write `meta.revision + 1`.
            "revision": i64::try_from(ctx.revision).unwrap_or(i64::MAX),
            "department": department,
            "kind": kind,
        });
        Self { payload, meta, context: OnceCell::new() }
    }

    fn context(&self) -> Result<&cel::Context<'static, 'static>, String> {
        self.context
            .get_or_init(|| {
                // The standard environment is built once: building it per record cost ~20 µs.
                let mut c = cel::Context::with_env(Arc::clone(stdlib()));
                c.add_variable_from_value("src", to_cel(self.payload));
                c.add_variable_from_value("meta", to_cel(&self.meta));
                Ok(c)
            })
            .as_ref()
            .map_err(Clone::clone)
    }
}

/// CEL's standard environment (functions and macros), shared by every record.
fn stdlib() -> &'static Arc<cel::Env> {
    static ENV: std::sync::OnceLock<Arc<cel::Env>> = std::sync::OnceLock::new();
    ENV.get_or_init(|| Arc::new(cel::Env::stdlib()))
}

/// JSON → CEL with integers as `int` (CEL does not mix `int` and `uint`, and
/// people write `src.AGE >= 60`, not `60u`).
fn to_cel(v: &Value) -> cel::Value {
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
        let ctx = MapContext { key: &key, source_id: "S1", revision: 3 };
        let payload = json!({"DSR": "张三", "AGE": 70, "EMPTY": ""});
        let scope = Scope::new(&payload, &ctx, "sifa", "case");
        assert_eq!(Expr::compile("has(src.DSR) && src.AGE >= 60").unwrap().test(&scope), Ok(true));
        assert_eq!(Expr::compile("has(src.NOPE)").unwrap().test(&scope), Ok(false));
        assert_eq!(
            Expr::compile("meta.department + ':' + meta.source_id").unwrap().eval_string(&scope),
            Ok(Some("sifa:S1".into()))
        );
        assert_eq!(Expr::compile("meta.revision + 1").unwrap().eval_string(&scope), Ok(Some("4".into())));
        assert!(Expr::compile("src.AGE").unwrap().test(&scope).is_err(), "not a boolean");
        assert!(Expr::compile("src.NOPE == 1").unwrap().test(&scope).is_err(), "missing key is an error");
        assert!(Expr::compile("1 +").is_err());
    }
}
