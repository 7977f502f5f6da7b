use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use hutong_standard::{Standard, Violation};
use serde_json::{Map, Value};

use crate::{
    pseudonym::PseudonymKey,
    spec::{AdapterSpec, FieldSpec, TransformSpec},
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
    segments: Vec<String>,
    from: Option<String>,
    value: Option<String>,
    default: Option<String>,
    transforms: Vec<Transform>,
}

#[derive(Debug, Clone)]
struct Output {
    entity: String,
    key_field: String,
    fields: Vec<Field>,
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
    outputs: Vec<Output>,
}

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
        Self::build(spec, path, standard)
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
                fields.push(build_field(f, &out.entity, standard).map_err(&check)?);
            }
            if !fields.iter().any(|f| f.segments == [entity.key.clone()]) {
                return Err(check(format!("output {} does not fill its key /{}", out.entity, entity.key)));
            }
            for req in required_of(&entity.schema) {
                if !fields.iter().any(|f| f.segments.first() == Some(&req)) {
                    return Err(check(format!("output {} does not fill required field /{req}", out.entity)));
                }
            }
            outputs.push(Output { entity: out.entity, key_field: entity.key.clone(), fields });
        }
        Ok(Self {
            department: spec.department,
            kind: spec.kind,
            source_version: spec.source_version,
            title: spec.title,
            path: path.to_owned(),
            outputs,
        })
    }

    /// The entities this adapter produces, in order.
    pub fn entities(&self) -> impl Iterator<Item = &str> {
        self.outputs.iter().map(|o| o.entity.as_str())
    }

    /// Maps a source payload to canonical records, or every violation found.
    pub fn map(&self, payload: &Value, ctx: &MapContext<'_>) -> Result<Vec<Canonical>, Vec<Violation>> {
        let mut violations = Vec::new();
        let mut records = Vec::with_capacity(self.outputs.len());
        for out in &self.outputs {
            let mut record = Value::Object(Map::new());
            for field in &out.fields {
                match field.produce(payload, ctx) {
                    Ok(Some(v)) => set_pointer(&mut record, &field.segments, Value::String(v)),
                    Ok(None) => {}
                    Err(v) => violations.push(v),
                }
            }
            let key = record.get(&out.key_field).and_then(Value::as_str).map(str::to_owned);
            records.push(Canonical { entity: out.entity.clone(), key, record });
        }
        if violations.is_empty() { Ok(records) } else { Err(violations) }
    }
}

impl Field {
    fn produce(&self, payload: &Value, ctx: &MapContext<'_>) -> Result<Option<String>, Violation> {
        let raw = match (&self.value, &self.from) {
            (Some(v), _) => Some(v.clone()),
            (None, Some(from)) => match payload.get(from) {
                None | Some(Value::Null) => None,
                Some(Value::String(s)) => Some(s.clone()),
                Some(Value::Number(n)) => Some(n.to_string()),
                Some(Value::Bool(b)) => Some(b.to_string()),
                Some(_) => {
                    return Err(Violation::new(
                        &self.to,
                        "adapter:type",
                        format!("source field {from} must be a string or number"),
                    ));
                }
            },
            (None, None) => None,
        };
        let mut value = match raw {
            Some(s) if !s.trim().is_empty() => s,
            _ => match &self.default {
                Some(d) => return Ok(Some(d.clone())),
                None => return Ok(None),
            },
        };
        for t in &self.transforms {
            value = t.apply(value, ctx.key).map_err(|(rule, msg)| {
                let from = self.from.as_deref().unwrap_or("value");
                Violation::new(&self.to, rule, format!("source field {from}: {msg}"))
            })?;
        }
        Ok((!value.is_empty()).then_some(value))
    }
}

fn build_field(f: FieldSpec, entity: &str, standard: &Standard) -> Result<Field, String> {
    let segments = parse_pointer(&f.to)?;
    let target =
        standard.property_schema(entity, &segments).ok_or_else(|| format!("target {} is not in the standard", f.to))?;
    let ty = target.get("type").and_then(Value::as_str);
    if !matches!(ty, Some("string") | None) {
        return Err(format!(
            "target {} has type {}, adapters fill strings in format version 1",
            f.to,
            ty.unwrap_or("?")
        ));
    }
    match (&f.from, &f.value) {
        (Some(_), Some(_)) => return Err(format!("field {}: give `from` or `value`, not both", f.to)),
        (None, None) if f.default.is_none() => {
            return Err(format!("field {}: needs `from`, `value` or `default`", f.to));
        }
        _ => {}
    }
    let transforms = f
        .transforms
        .into_iter()
        .map(|t| build_transform(t, standard).map_err(|e| format!("field {}: {e}", f.to)))
        .collect::<Result<_, _>>()?;
    Ok(Field { to: f.to, segments, from: f.from, value: f.value, default: f.default, transforms })
}

fn build_transform(t: TransformSpec, standard: &Standard) -> Result<Transform, String> {
    Ok(match t {
        TransformSpec::Trim => Transform::Trim,
        TransformSpec::Nfkc => Transform::Nfkc,
        TransformSpec::Upper => Transform::Upper,
        TransformSpec::Date(formats) if formats.is_empty() => return Err("date needs at least one format".to_owned()),
        TransformSpec::Date(formats) => Transform::Date(formats),
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

fn set_pointer(root: &mut Value, segments: &[String], value: Value) {
    let mut node = root;
    for seg in &segments[..segments.len() - 1] {
        let map = node.as_object_mut().expect("adapter targets only create objects");
        node = map.entry(seg.clone()).or_insert_with(|| Value::Object(Map::new()));
    }
    if let (Some(map), Some(last)) = (node.as_object_mut(), segments.last()) {
        map.insert(last.clone(), value);
    }
}

/// Every adapter under `schemas/departments/`, by (department, kind).
#[derive(Debug, Clone, Default)]
pub struct Adapters {
    by_kind: BTreeMap<(String, String), Adapter>,
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
        let mut by_kind = BTreeMap::new();
        for f in files {
            let adapter = Adapter::load(&f, standard)?;
            let folder = f.parent().and_then(Path::file_name).and_then(|n| n.to_str()).unwrap_or_default();
            if adapter.department != folder {
                return Err(AdapterError::Check {
                    path: f.clone(),
                    message: format!("department {:?} does not match its folder {folder:?}", adapter.department),
                });
            }
            let id = (adapter.department.clone(), adapter.kind.clone());
            if let Some(prev) = by_kind.insert(id, adapter) {
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
        Ok(Self { by_kind })
    }

    /// The adapter of `department`'s source `kind`.
    pub fn get(&self, department: &str, kind: &str) -> Option<&Adapter> {
        self.by_kind.get(&(department.to_owned(), kind.to_owned()))
    }

    /// All adapters.
    pub fn iter(&self) -> impl Iterator<Item = &Adapter> {
        self.by_kind.values()
    }
}
