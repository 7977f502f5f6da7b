use std::{
    borrow::Cow,
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use hutong_standard::{Standard, Violation};
use serde_json::{Map, Value};

use crate::{
    expr::{Expr, Scope},
    pseudonym::PseudonymKey,
    spec::{AdapterSpec, FieldSpec, TransformSpec, ValueType},
    transform::Transform,
};

/// Why an adapter file was refused.
#[derive(Debug, thiserror::Error)]
pub enum AdapterError {
    /// The file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid TOML or has unknown or missing keys.
    #[error("{path}: {message}")]
    Parse {
        /// The adapter file.
        path: PathBuf,
        /// The parser's message, with line and column.
        message: String,
    },
    /// The file parses but does not fit the standard.
    #[error("{path}: {message}")]
    Check {
        /// The adapter file.
        path: PathBuf,
        /// What does not fit.
        message: String,
    },
}

/// What a mapping needs besides the payload.
#[derive(Debug, Clone)]
pub struct MapContext<'a> {
    /// Key of keyed pseudonyms such as `person_key`.
    pub key: &'a PseudonymKey,
    /// The record's source id (`meta.source_id` in expressions).
    pub source_id: &'a str,
    /// The record's revision (`meta.revision` in expressions).
    pub revision: u64,
    /// The record's operation, `upsert`, `delete` or `event` (`meta.op` in expressions).
    pub op: &'a str,
}

/// A canonical record produced by an adapter, not yet validated.
#[derive(Debug, Clone, PartialEq)]
pub struct Canonical {
    /// Entity of the standard, e.g. `person`.
    pub entity: String,
    /// The value of the entity key field, when the mapping produced one.
    pub key: Option<String>,
    /// The canonical JSON record.
    pub record: Value,
}

#[derive(Debug, Clone)]
struct Field {
    to: String,
    /// The target pointer's segments, read once at load ([`set_pointer`] walks them).
    path: Vec<Step>,
    from: Vec<String>,
    sep: String,
    value: Option<String>,
    expr: Option<Expr>,
    when: Option<Expr>,
    /// `when` reads `value`: it is tested on the source value trimmed and NFKC-normalised.
    when_after: bool,
    default: Option<String>,
    transforms: Vec<Transform>,
    as_type: ValueType,
}

/// A target array filled from a source array (`[[output.each]]`).
#[derive(Debug, Clone)]
struct Each {
    over: String,
    /// The target array's pointer and segments.
    to: String,
    path: Vec<Step>,
    when: Option<Expr>,
    /// The element's fields; their paths are relative to the element.
    fields: Vec<Field>,
    /// Whether an expression of the block reads `item` or `index` (the element is converted for
    /// CEL only then).
    reads_element: bool,
}

#[derive(Debug, Clone)]
struct Output {
    entity: String,
    key_field: String,
    /// How many top-level fields its records may have: the record's map is sized once.
    width: usize,
    when: Option<Expr>,
    fields: Vec<Field>,
    each: Vec<Each>,
}

/// A checked adapter for one (department, source kind).
#[derive(Debug, Clone)]
pub struct Adapter {
    /// Department id.
    pub department: String,
    /// Source kind.
    pub kind: String,
    /// Version of the department's export format.
    pub source_version: String,
    /// Title for people.
    pub title: String,
    /// The file it was loaded from.
    pub path: PathBuf,
    /// The payload field the record key is, if declared.
    pub source_id_field: Option<String>,
    /// The kind of personal data the record key is, if it is (it then travels pseudonymised).
    pub source_id_pii: Option<String>,
    /// The declared update cycle (更新周期), if any: `realtime`, `daily`, `weekly`, `monthly`.
    pub update_cycle: Option<String>,
    /// Marked `draft = true`: not live (see [`crate::spec::AdapterSpec::draft`]).
    pub draft: bool,
    outputs: Vec<Output>,
    cel_fields: CelFields,
}

/// The payload fields its CEL expressions read (`None`: any).
#[derive(Debug, Clone)]
struct CelFields {
    /// Read by any expression.
    all: Option<Vec<String>>,
    /// Read by the expressions only the interpreter answers.
    interpreted: Option<Vec<String>>,
}

/// The update cycles an adapter may declare.
pub(crate) const UPDATE_CYCLES: &[&str] = &["realtime", "daily", "weekly", "monthly"];

/// The `x-pii` kinds a record key may be declared as.
const PII_KINDS: &[&str] = &["name", "citizen-id", "phone", "address", "birth-date", "geo", "other"];

impl Adapter {
    /// Parses and checks one adapter file against `standard`.
    pub fn load(path: &Path, standard: &Standard) -> Result<Self, AdapterError> {
        let text = std::fs::read_to_string(path).map_err(|e| AdapterError::Io { path: path.to_owned(), source: e })?;
        Self::parse(&text, path, standard)
    }

    /// Parses and checks adapter `text` (named `path` in errors).
    pub fn parse(text: &str, path: &Path, standard: &Standard) -> Result<Self, AdapterError> {
        let spec: AdapterSpec =
            toml::from_str(text).map_err(|e| AdapterError::Parse { path: path.to_owned(), message: e.to_string() })?;
        Self::build(spec, path, standard).map_err(|e| with_line(e, text))
    }

    fn build(spec: AdapterSpec, path: &Path, standard: &Standard) -> Result<Self, AdapterError> {
        let check = |message: String| AdapterError::Check { path: path.to_owned(), message };
        if spec.version != 1 {
            return Err(check(format!("version = {} is not supported (only 1)", spec.version)));
        }
        if spec.output.is_empty() {
            return Err(check("no [[output]]".to_owned()));
        }
        let mut outputs = Vec::with_capacity(spec.output.len());
        for out in spec.output {
            let entity = standard
                .entity(&out.entity)
                .ok_or_else(|| check(format!("output entity {:?} is not in the standard", out.entity)))?;
            let mut fields = Vec::with_capacity(out.field.len());
            for f in out.field {
                let field = build_field(f, &out.entity, standard).map_err(&check)?;
                for e in field.when.iter().chain(field.expr.iter()) {
                    only_in_each(e, &["item", "index"], &format!("field {}", field.to)).map_err(&check)?;
                }
                fields.push(field);
            }
            let when = out
                .when
                .as_deref()
                .map(|w| Expr::compile(w).map_err(|e| check(format!("output {} when: {e}", out.entity))))
                .transpose()?;
            if let Some(w) = &when {
                only_in_each(w, &["item", "index", "value"], &format!("output {} when", out.entity)).map_err(&check)?;
            }
            let mut each: Vec<Each> = Vec::with_capacity(out.each.len());
            for e in out.each {
                let e = build_each(e, &out.entity, standard).map_err(&check)?;
                // One writer per array: elements of two writers would merge by position.
                let mut taken = fields.iter().map(|f| &f.path).chain(each.iter().map(|x| &x.path));
                if let Some(other) = taken.find(|s| s.starts_with(&e.path) || e.path.starts_with(s)) {
                    return Err(check(format!(
                        "each {}: /{} is also filled elsewhere in output {}; one array, one writer",
                        e.to,
                        pointer(other),
                        out.entity
                    )));
                }
                each.push(e);
            }
            if !fields.iter().any(|f| matches!(f.path.as_slice(), [only] if only.key == entity.key)) {
                return Err(check(format!("output {} does not fill its key /{}", out.entity, entity.key)));
            }
            for req in required_of(&entity.schema) {
                if !top_fields(&fields, &each).any(|t| t == req) {
                    return Err(check(format!("output {} does not fill required field /{req}", out.entity)));
                }
            }
            let mut tops: Vec<&str> = top_fields(&fields, &each).collect();
            tops.sort_unstable();
            tops.dedup();
            let width = tops.len();
            outputs.push(Output { entity: out.entity, key_field: entity.key.clone(), width, when, fields, each });
        }
        let (source_id_field, source_id_pii) = match spec.source_id {
            Some(s) => (s.from, s.pii),
            None => (None, None),
        };
        if let Some(p) = source_id_pii.as_deref().filter(|p| !PII_KINDS.contains(p)) {
            return Err(check(format!("source-id pii {p:?} is not one of {}", PII_KINDS.join(", "))));
        }
        if let Some(c) = spec.update_cycle.as_deref().filter(|c| !UPDATE_CYCLES.contains(c)) {
            return Err(check(format!("update-cycle {c:?} is not one of {}", UPDATE_CYCLES.join(", "))));
        }
        let cel_fields = CelFields { all: cel_fields(&outputs, false), interpreted: cel_fields(&outputs, true) };
        Ok(Self {
            department: spec.department,
            kind: spec.kind,
            source_version: spec.source_version,
            title: spec.title,
            path: path.to_owned(),
            source_id_field,
            source_id_pii,
            update_cycle: spec.update_cycle,
            draft: spec.draft,
            outputs,
            cel_fields,
        })
    }

    /// The entities this adapter produces, in order.
    pub fn entities(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|o| o.entity.as_str())
    }

    /// Where the payload's top-level fields land: (source field, entity, canonical pointer, what
    /// its transforms say it is) of every field mapped from one. An array of `[[output.each]]`
    /// lands under its pointer with `/*`. A field only an expression reads is not listed. The
    /// last element is `Some("citizen-id")` when a transform reads a citizen ID (`citizen-id`,
    /// `pseudonym`, `id-birth-date`, `id-sex`, `id-division`) or `Some("phone")` for `phone`,
    /// whatever the target's own annotation: a pseudonymised key is personal at its source.
    pub fn sources(&self) -> Vec<(String, String, String, Option<&'static str>)> {
        let reveals = |f: &Field| {
            f.transforms.iter().find_map(|t| match t {
                Transform::CitizenId(_)
                | Transform::Pseudonym
                | Transform::IdBirthDate
                | Transform::IdSex
                | Transform::IdDivision => Some("citizen-id"),
                Transform::Phone => Some("phone"),
                _ => None,
            })
        };
        let mut out = Vec::new();
        for o in &self.outputs {
            for f in &o.fields {
                out.extend(f.from.iter().map(|from| (from.clone(), o.entity.clone(), f.to.clone(), reveals(f))));
            }
            for e in &o.each {
                let inner = e.fields.iter().find_map(&reveals);
                out.push((e.over.clone(), o.entity.clone(), format!("{}/*", e.to), inner));
            }
        }
        out
    }

    /// The top-level fields this adapter fills in its `entity` records (none if it produces
    /// no such record).
    pub fn fields_of<'s>(&'s self, entity: &'s str) -> impl Iterator<Item = &'s str> + 's {
        self.outputs.iter().filter(move |o| o.entity == entity).flat_map(|o| top_fields(&o.fields, &o.each))
    }

    /// Maps a source payload to canonical records, or every violation found.
    pub fn map(&self, payload: &Value, ctx: &MapContext<'_>) -> Result<Vec<Canonical>, Vec<Violation>> {
        let mut violations = Vec::new();
        let mut records = Vec::with_capacity(self.outputs.len());
        let fields = (self.cel_fields.all.as_deref(), self.cel_fields.interpreted.as_deref());
        let scope = Scope::new(payload, fields, ctx, &self.department, &self.kind);
        for out in &self.outputs {
            match out.when.as_ref().map(|w| w.test(&scope)) {
                Some(Ok(false)) => continue,
                Some(Err(e)) => {
                    violations.push(Violation::new("", "adapter:when", format!("output {}: {e}", out.entity)));
                    continue;
                }
                Some(Ok(true)) | None => {}
            }
            let mut record = Value::Object(Map::with_capacity(out.width));
            for field in &out.fields {
                match field.produce(payload, ctx, &scope, &[]) {
                    Ok(Some(v)) => set_pointer(&mut record, &[&field.path], v),
                    Ok(None) => {}
                    Err(v) => violations.push(v),
                }
            }
            for each in &out.each {
                each.fill(&mut record, payload, ctx, &scope, &mut violations);
            }
            compact_arrays(&mut record);
            let key = record.get(&out.key_field).and_then(Value::as_str).map(str::to_owned);
            records.push(Canonical { entity: out.entity.clone(), key, record });
        }
        if violations.is_empty() { Ok(records) } else { Err(violations) }
    }
}

/// The payload fields the CEL expressions of `outputs` read together, `None` if one may read any;
/// with `interpreted_only`, only the expressions the interpreter always answers (see
/// [`Scope::new`]).
fn cel_fields(outputs: &[Output], interpreted_only: bool) -> Option<Vec<String>> {
    fn of_fields(fields: &[Field]) -> impl Iterator<Item = &Expr> {
        fields.iter().flat_map(|f| f.when.iter().chain(f.expr.iter()))
    }
    let exprs = outputs.iter().flat_map(|o| {
        let mut e: Vec<&Expr> = o.when.iter().collect();
        e.extend(of_fields(&o.fields));
        for each in &o.each {
            e.extend(each.when.iter());
            e.extend(of_fields(&each.fields));
        }
        e
    });
    let mut all = Vec::new();
    for e in exprs.filter(|e| !interpreted_only || !e.is_native()) {
        all.extend_from_slice(e.src_fields()?);
    }
    all.sort();
    all.dedup();
    Some(all)
}

impl Field {
    fn source_name(&self) -> String {
        if self.from.is_empty() { "value".to_owned() } else { self.from.join("+") }
    }

    /// The field's value from `payload` (the record's, or an array element's for the fields of
    /// `[[output.each]]`), with `vars` (`item`, `index`) in its expressions.
    fn produce(
        &self,
        payload: &Value,
        ctx: &MapContext<'_>,
        scope: &Scope<'_>,
        vars: &[(&str, cel::Value)],
    ) -> Result<Option<Value>, Violation> {
        let fail = |rule: &str, msg: String| {
            Violation::new(&self.to, rule, format!("source field {}: {msg}", self.source_name()))
        };
        if let Some(w) = self.when.as_ref().filter(|_| !self.when_after) {
            match w.test_with(scope, vars) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err(fail("adapter:when", e)),
            }
        }
        let raw = if let Some(v) = &self.value {
            Some(v.clone())
        } else if let Some(e) = &self.expr {
            e.eval_string_with(scope, vars).map_err(|e| fail("adapter:expr", e))?
        } else {
            // The parts written straight into the value: one allocation for the field, however
            // many parts it joins.
            let mut joined: Option<String> = None;
            let mut present = 0;
            for name in &self.from {
                let part: Cow<'_, str> = match payload.get(name) {
                    None | Some(Value::Null) => continue,
                    Some(Value::String(s)) if s.trim().is_empty() => continue,
                    Some(Value::String(s)) => Cow::Borrowed(s),
                    Some(Value::Number(n)) => Cow::Owned(n.to_string()),
                    Some(Value::Bool(b)) => Cow::Borrowed(if *b { "true" } else { "false" }),
                    Some(_) => return Err(fail("adapter:type", "must be a string or number".to_owned())),
                };
                present += 1;
                if let Some(j) = joined.as_mut() {
                    j.push_str(&self.sep);
                    j.push_str(&part);
                } else {
                    joined = Some(part.into_owned());
                }
            }
            // A joined value needs every part; a single one may be absent.
            joined.filter(|_| present == self.from.len())
        };
        let mut value = match raw {
            Some(s) if !s.trim().is_empty() => s,
            _ => match &self.default {
                Some(d) => d.clone(),
                None => return Ok(None),
            },
        };
        if let Some(w) = self.when.as_ref().filter(|_| self.when_after) {
            // The value as a person reads it: trimmed (U+3000 too) and NFKC-normalised, before
            // the transforms that may refuse it.
            use unicode_normalization::UnicodeNormalization as _;
            let normal: String = value.trim().nfkc().collect::<String>().trim().to_owned();
            let mut with_value = vars.to_vec();
            with_value.push(("value", cel::Value::String(std::sync::Arc::new(normal))));
            match w.test_with(scope, &with_value) {
                Ok(true) => {}
                Ok(false) => return Ok(None),
                Err(e) => return Err(fail("adapter:when", e)),
            }
        }
        for t in &self.transforms {
            match t.apply(value, ctx.key).map_err(|(rule, msg)| fail(rule, msg))? {
                Some(v) => value = v,
                None => return Ok(None),
            }
        }
        if value.is_empty() {
            return Ok(None);
        }
        convert(value, self.as_type).map(Some).map_err(|m| fail("adapter:type", m))
    }
}

impl Each {
    /// One element of the target array per element of the source array (none when the source
    /// field is absent); a source that is not an array is a violation.
    fn fill(
        &self,
        record: &mut Value,
        payload: &Value,
        ctx: &MapContext<'_>,
        scope: &Scope<'_>,
        violations: &mut Vec<Violation>,
    ) {
        let items = match payload.get(&self.over) {
            None | Some(Value::Null) => return,
            Some(Value::Array(items)) => items,
            Some(_) => {
                let message = format!("source field {}: must be an array (each)", self.over);
                return violations.push(Violation::new(&self.to, "adapter:type", message));
            }
        };
        for (i, item) in items.iter().enumerate() {
            let vars = if self.reads_element {
                vec![("item", crate::expr::to_cel(item)), ("index", cel::Value::Int(i as i64))]
            } else {
                Vec::new()
            };
            if let Some(w) = &self.when {
                match w.test_with(scope, &vars) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(e) => {
                        let at = format!("{}/{i}", self.to);
                        violations.push(Violation::new(
                            &at,
                            "adapter:when",
                            format!("source field {}[{i}]: {e}", self.over),
                        ));
                        continue;
                    }
                }
            }
            let element = [Step::index(i)];
            for field in &self.fields {
                match field.produce(item, ctx, scope, &vars) {
                    Ok(Some(v)) => set_pointer(record, &[&self.path, &element, &field.path], v),
                    Ok(None) => {}
                    Err(mut v) => {
                        // The element's own pointer and source place.
                        v.pointer = format!("/{}/{i}/{}", pointer(&self.path), pointer(&field.path));
                        v.message =
                            v.message.replacen("source field ", &format!("source field {}[{i}].", self.over), 1);
                        violations.push(v);
                    }
                }
            }
        }
    }
}

/// Refuses an expression reading a variable that does not exist where it stands (`item` and
/// `index` outside `[[output.each]]`, `value` outside a field's `when`): it would fail on every
/// record, not at the check.
fn only_in_each(e: &Expr, names: &[&str], what: &str) -> Result<(), String> {
    match names.iter().find(|n| e.names(n)) {
        Some(n) => Err(format!(
            "{what} reads `{n}`, which exists only {}",
            if *n == "value" { "in a field's own when" } else { "in [[output.each]]" }
        )),
        None => Ok(()),
    }
}

/// A `[[output.each]]`: its fields checked as the element `0` of the target array.
fn build_each(e: crate::spec::EachSpec, entity: &str, standard: &Standard) -> Result<Each, String> {
    let segments = parse_pointer(&e.to)?;
    let when =
        e.when.as_deref().map(|w| Expr::compile(w).map_err(|x| format!("each {} when: {x}", e.to))).transpose()?;
    if let Some(w) = &when {
        only_in_each(w, &["value"], &format!("each {} when", e.to))?;
    }
    let mut fields = Vec::with_capacity(e.field.len());
    for mut f in e.field {
        let relative = parse_pointer(&f.to).map_err(|x| format!("each {}: {x}", e.to))?;
        f.to = format!("{}/0{}", e.to, f.to);
        let mut field = build_field(f, entity, standard)?;
        field.to = format!("{}/…/{}", e.to, relative.join("/"));
        field.path = Step::of(&relative);
        fields.push(field);
    }
    if fields.is_empty() {
        return Err(format!("each {}: no field", e.to));
    }
    let mut exprs = when.iter().chain(fields.iter().flat_map(|f| f.when.iter().chain(f.expr.iter())));
    let reads_element = exprs.any(|x| x.names("item") || x.names("index"));
    Ok(Each { over: e.over, to: e.to, path: Step::of(&segments), when, fields, reads_element })
}

/// The string result of a field as the JSON type its target wants.
fn convert(value: String, ty: ValueType) -> Result<Value, String> {
    match ty {
        // The field's own string becomes the value: no copy.
        ValueType::String => Ok(Value::String(value)),
        ValueType::Integer => {
            value.trim().parse::<i64>().map(Value::from).map_err(|_| format!("{value:?} is not an integer"))
        }
        // Integral values stay integers (8, not 8.0), as a person would write them.
        ValueType::Number => match value.trim().parse::<i64>() {
            Ok(i) => Ok(Value::from(i)),
            Err(_) => value
                .trim()
                .parse::<f64>()
                .ok()
                .and_then(serde_json::Number::from_f64)
                .map(Value::Number)
                .ok_or_else(|| format!("{value:?} is not a number")),
        },
        ValueType::Boolean => match value.trim() {
            "true" | "1" | "是" | "Y" | "y" | "TRUE" | "True" => Ok(Value::Bool(true)),
            "false" | "0" | "否" | "N" | "n" | "FALSE" | "False" => Ok(Value::Bool(false)),
            _ => Err(format!("{value:?} is not a boolean (true/false, 1/0, 是/否, Y/N)")),
        },
    }
}

fn build_field(f: FieldSpec, entity: &str, standard: &Standard) -> Result<Field, String> {
    let segments = parse_pointer(&f.to)?;
    let target =
        standard.property_schema(entity, &segments).ok_or_else(|| format!("target {} is not in the standard", f.to))?;
    let as_type = f.as_type.unwrap_or(ValueType::String);
    let accepted: Vec<&str> = match target.get("type") {
        Some(Value::String(t)) => vec![t.as_str()],
        Some(Value::Array(ts)) => ts.iter().filter_map(Value::as_str).collect(),
        _ => vec![],
    };
    let fits = accepted.is_empty()
        || accepted.contains(&as_type.schema_name())
        || (as_type == ValueType::Integer && accepted.contains(&"number"));
    if !fits {
        return Err(format!(
            "target {} has type {}, but the field fills {} (set `as`)",
            f.to,
            accepted.join("|"),
            as_type.schema_name()
        ));
    }
    let sources = [f.from.is_some(), f.value.is_some(), f.expr.is_some()].iter().filter(|x| **x).count();
    if sources > 1 {
        return Err(format!("field {}: give one of `from`, `value` or `expr`", f.to));
    }
    if sources == 0 && f.default.is_none() {
        return Err(format!("field {}: needs `from`, `value`, `expr` or `default`", f.to));
    }
    let compile = |what: &str, src: &Option<String>| {
        src.as_deref().map(|s| Expr::compile(s).map_err(|e| format!("field {} {what}: {e}", f.to))).transpose()
    };
    let expr = compile("expr", &f.expr)?;
    let when = compile("when", &f.when)?;
    if let Some(e) = &expr {
        only_in_each(e, &["value"], &format!("field {} expr", f.to))?;
    }
    let when_after = when.as_ref().is_some_and(|w| w.names("value"));
    let transforms: Vec<Transform> = f
        .transforms
        .into_iter()
        .map(|t| build_transform(t, standard).map_err(|e| format!("field {}: {e}", f.to)))
        .collect::<Result<_, _>>()?;
    // A department code map must land inside the target's code list.
    if let (Some(list_id), Some(Transform::Map { table, unknown })) =
        (target.get("x-code-list").and_then(Value::as_str), transforms.last())
    {
        let list = standard.codes().get(list_id).ok_or_else(|| format!("unknown code list {list_id}"))?;
        let mut outside: Vec<&str> = table.values().map(String::as_str).filter(|c| !list.contains(c)).collect();
        if let crate::spec::UnknownPolicy::Other(c) = unknown
            && !list.contains(c)
        {
            outside.push(c);
        }
        if !outside.is_empty() {
            return Err(format!("field {}: map yields {outside:?}, not codes of {list_id}", f.to));
        }
    }
    // A constant (`value`, or the `default` of a field without transforms) landing in a coded
    // target must be one of the list's codes: else every record fails `x-code-list` at run time
    // (a new department's own id missing from `department`, most often).
    if let Some(list_id) = target.get("x-code-list").and_then(Value::as_str) {
        let list = standard.codes().get(list_id).ok_or_else(|| format!("unknown code list {list_id}"))?;
        let constants = [("value", f.value.as_deref()), ("default", f.default.as_deref())];
        for (what, constant) in constants.into_iter().filter(|_| transforms.is_empty()) {
            if let Some(c) = constant.filter(|c| !list.contains(c)) {
                return Err(format!(
                    "field {}: {what} {c:?} is not a code of {list_id} (schemas/codes/{list_id}.json): every record \
                     would fail x-code-list; add the code to the list first if it is new",
                    f.to
                ));
            }
        }
    }
    Ok(Field {
        to: f.to,
        path: Step::of(&segments),
        from: f.from.map(|s| s.names().into_iter().map(str::to_owned).collect()).unwrap_or_default(),
        sep: f.sep.unwrap_or_else(|| ",".to_owned()),
        value: f.value,
        expr,
        when,
        when_after,
        default: f.default,
        transforms,
        as_type,
    })
}

fn build_transform(t: TransformSpec, standard: &Standard) -> Result<Transform, String> {
    Ok(match t {
        TransformSpec::Trim => Transform::Trim,
        TransformSpec::Nfkc => Transform::Nfkc,
        TransformSpec::Upper => Transform::Upper,
        TransformSpec::Lower => Transform::Lower,
        TransformSpec::Datetime(d) => {
            if d.formats.is_empty() {
                return Err("datetime needs at least one format".to_owned());
            }
            let offset = chrono::DateTime::parse_from_rfc3339(&format!("2000-01-01T00:00:00{}", d.timezone))
                .map(|t| *t.offset())
                .map_err(|_| format!("timezone {:?} is not an offset like +08:00", d.timezone))?;
            Transform::Datetime { formats: crate::transform::DateFormat::list(&d.formats), offset }
        }
        TransformSpec::IdBirthDate => Transform::IdBirthDate,
        TransformSpec::IdSex => Transform::IdSex,
        TransformSpec::IdDivision => Transform::IdDivision,
        TransformSpec::Phone => Transform::Phone,
        TransformSpec::Gcj02ToWgs84(c) => Transform::Gcj02ToWgs84(c),
        TransformSpec::Split(s) => Transform::Split { sep: s.sep, index: s.index },
        TransformSpec::Replace(r) => Transform::Replace { from: r.from, to: r.to },
        TransformSpec::Date(formats) if formats.is_empty() => return Err("date needs at least one format".to_owned()),
        TransformSpec::Date(formats) => {
            if let Some(problem) = formats.iter().find_map(|f| crate::transform::date_format_problem(f)) {
                return Err(problem);
            }
            Transform::Date(crate::transform::DateFormat::list(&formats))
        }
        TransformSpec::Code(c) => {
            let list = standard.codes().get(&c.list).ok_or_else(|| format!("unknown code list {:?}", c.list))?;
            if let crate::spec::UnknownPolicy::Other(code) = &c.unknown
                && !list.contains(code)
            {
                return Err(format!("unknown = {{ other = {code:?} }} is not a code of {}", c.list));
            }
            Transform::Code { list: Box::new(list.clone()), unknown: c.unknown }
        }
        TransformSpec::Map(m) => Transform::Map { table: m.table, unknown: m.unknown },
        TransformSpec::CitizenId(c) => Transform::CitizenId(c.legacy15),
        TransformSpec::Pseudonym => Transform::Pseudonym,
    })
}

/// Prefixes a static-check error about field `to = "/x"` (or a named key)
/// with the line it is on, so admins land on it.
fn with_line(e: AdapterError, text: &str) -> AdapterError {
    let AdapterError::Check { path, message } = e else { return e };
    let needle = message
        .split_whitespace()
        .find(|w| w.starts_with('/'))
        .map(|w| format!("\"{}\"", w.trim_end_matches([':', ',', ')'])));
    let line = needle.and_then(|n| text.lines().position(|l| l.contains(&n) && l.trim_start().starts_with("to")));
    match line {
        Some(i) => AdapterError::Check { path, message: format!("line {}: {message}", i + 1) },
        None => AdapterError::Check { path, message },
    }
}

fn parse_pointer(p: &str) -> Result<Vec<String>, String> {
    let rest = p.strip_prefix('/').ok_or_else(|| format!("target {p:?} must be a JSON pointer starting with /"))?;
    let segs: Vec<String> = rest.split('/').map(|s| s.replace("~1", "/").replace("~0", "~")).collect();
    if segs.iter().any(String::is_empty) {
        return Err(format!("target {p:?} has an empty segment"));
    }
    Ok(segs)
}

fn required_of(schema: &Value) -> Vec<String> {
    schema
        .get("required")
        .and_then(Value::as_array)
        .map(|a| a.iter().filter_map(Value::as_str).map(str::to_owned).collect())
        .unwrap_or_default()
}

/// One segment of a target pointer: its text (the key in an object) and, when it is a number,
/// the index in an array.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Step {
    key: String,
    index: Option<usize>,
}

impl Step {
    fn of(segments: &[String]) -> Vec<Step> {
        segments.iter().map(|s| Step { key: s.clone(), index: s.parse().ok() }).collect()
    }

    fn index(i: usize) -> Step {
        Step { key: i.to_string(), index: Some(i) }
    }
}

/// The top-level fields that `fields` and `each` fill.
fn top_fields<'a>(fields: &'a [Field], each: &'a [Each]) -> impl Iterator<Item = &'a str> {
    let paths = fields.iter().map(|f| &f.path).chain(each.iter().map(|e| &e.path));
    paths.filter_map(|p| p.first().map(|s| s.key.as_str()))
}

/// `path` as written in a pointer, without its leading `/`.
fn pointer(path: &[Step]) -> String {
    path.iter().map(|s| s.key.as_str()).collect::<Vec<_>>().join("/")
}

/// Sets `value` at the pointer made of `parts` one after the other, creating objects, and arrays
/// for numeric segments.
fn set_pointer(root: &mut Value, parts: &[&[Step]], value: Value) {
    let mut steps = parts.iter().flat_map(|p| p.iter()).peekable();
    let mut node = root;
    while let Some(step) = steps.next() {
        let Some(next) = steps.peek() else {
            match (node, step.index) {
                (Value::Array(items), Some(idx)) => *slot(items, idx) = value,
                (Value::Object(map), _) => {
                    map.insert(step.key.clone(), value);
                }
                _ => {}
            }
            return;
        };
        let fresh = || if next.index.is_some() { Value::Array(Vec::new()) } else { Value::Object(Map::new()) };
        node = match (node, step.index) {
            (Value::Array(items), Some(idx)) => {
                let item = slot(items, idx);
                if item.is_null() {
                    *item = fresh();
                }
                item
            }
            // No copy of the key when the object is already there (most parents, after the first field).
            (Value::Object(map), _) => {
                if !map.contains_key(&step.key) {
                    map.insert(step.key.clone(), fresh());
                }
                map.get_mut(&step.key).expect("there or just made")
            }
            _ => return,
        };
    }
}

/// Element `idx` of `items`, the array grown with `null`s to hold it.
fn slot(items: &mut Vec<Value>, idx: usize) -> &mut Value {
    if items.len() <= idx {
        items.resize(idx + 1, Value::Null);
    }
    &mut items[idx]
}

/// Drops the holes (`null`s) that optional array elements left behind.
fn compact_arrays(v: &mut Value) {
    match v {
        Value::Array(items) => {
            items.retain(|x| !x.is_null());
            items.iter_mut().for_each(compact_arrays);
        }
        Value::Object(map) => map.values_mut().for_each(compact_arrays),
        _ => {}
    }
}

/// Every adapter under `schemas/departments/`, by (department, kind).
#[derive(Debug, Clone, Default)]
pub struct Adapters {
    /// department → kind → adapter: looked up per record by `&str`, without allocating.
    by_kind: BTreeMap<String, BTreeMap<String, Adapter>>,
    /// Files marked `draft = true`, left aside.
    drafts: Vec<PathBuf>,
}

/// Whether adapter `text` is marked `draft = true` (a file that is not TOML is not a draft: it
/// is refused as it would be).
fn is_draft(text: &str) -> bool {
    toml::from_str::<toml::Table>(text).ok().and_then(|t| t.get("draft")?.as_bool()) == Some(true)
}

impl Adapters {
    /// Loads and checks every `*.toml` in `dir/<department>/`; the first bad
    /// file refuses the whole set, so a broken file never replaces a working one.
    pub fn load(dir: &Path, standard: &Standard) -> Result<Self, AdapterError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |e| AdapterError::Io { path, source: e }
        };
        let mut files = Vec::new();
        for dept in std::fs::read_dir(dir).map_err(io(dir))? {
            let dept = dept.map_err(io(dir))?.path();
            if !dept.is_dir() {
                continue;
            }
            for f in std::fs::read_dir(&dept).map_err(io(&dept))? {
                let f = f.map_err(io(&dept))?.path();
                if f.extension().is_some_and(|x| x == "toml") {
                    files.push(f);
                }
            }
        }
        files.sort();
        let mut by_kind: BTreeMap<String, BTreeMap<String, Adapter>> = BTreeMap::new();
        let mut drafts = Vec::new();
        for f in files {
            let text = std::fs::read_to_string(&f).map_err(io(&f))?;
            if is_draft(&text) {
                drafts.push(f);
                continue;
            }
            let adapter = Adapter::parse(&text, &f, standard)?;
            let folder = f.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or_default();
            if adapter.department != folder {
                return Err(AdapterError::Check {
                    path: f.clone(),
                    message: format!("department {:?} does not match its folder {folder:?}", adapter.department),
                });
            }
            let kinds = by_kind.entry(adapter.department.clone()).or_default();
            if let Some(prev) = kinds.insert(adapter.kind.clone(), adapter) {
                return Err(AdapterError::Check {
                    path: f,
                    message: format!(
                        "kind {} of {} is also mapped by {}",
                        prev.kind,
                        prev.department,
                        prev.path.display()
                    ),
                });
            }
        }
        Ok(Self { by_kind, drafts })
    }

    /// The adapter of `department`'s source `kind`.
    pub fn get(&self, department: &str, kind: &str) -> Option<&Adapter> {
        self.by_kind.get(department)?.get(kind)
    }

    /// The files marked `draft = true`, left aside.
    pub fn drafts(&self) -> &[PathBuf] {
        &self.drafts
    }

    /// Every live adapter.
    pub fn iter(&self) -> impl Iterator<Item = &Adapter> {
        self.by_kind.values().flat_map(BTreeMap::values)
    }
}
