use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::Arc,
};

use jsonschema::{Keyword, PatternOptions, Registry, Resource, ValidationError, Validator};
use serde_json::{Map, Value};

use crate::{Violation, checks, codes::CodeLists};

/// Why the standard could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum StandardError {
    /// A file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The file or folder.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A schema file is not valid JSON, lacks `$id`, or does not compile.
    #[error("{path}: {message}")]
    Schema {
        /// The schema file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// A code list file is malformed.
    #[error("{path}: {message}")]
    CodeList {
        /// The code list file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

impl StandardError {
    pub(crate) fn io(path: &Path, source: std::io::Error) -> Self {
        Self::Io { path: path.to_owned(), source }
    }
    fn schema(path: &Path, message: impl std::fmt::Display) -> Self {
        Self::Schema { path: path.to_owned(), message: message.to_string() }
    }
}

/// One entity of the standard (a schema under `standard/v<major>/`).
#[derive(Debug)]
pub struct Entity {
    /// Entity name, e.g. `person`.
    pub name: String,
    /// Major version; a new major is a new topic.
    pub major: u32,
    /// The schema's `$id`, used as `ce_dataschema`.
    pub schema_id: String,
    /// The property that keys the entity (`x-entity-key`).
    pub key: String,
    /// Chinese title of the entity.
    pub title: String,
    /// The schema document.
    pub schema: Value,
    /// The schema with every `$ref` into the core definitions inlined: self-contained,
    /// what the registry serves and compatibility checks compare.
    pub dereferenced: Value,
    /// Where it was loaded from.
    pub path: PathBuf,
    validator: Validator,
    /// The cross-field checks the schema declares (`x-consistency`) and what a failure does.
    pub consistency: Vec<(String, OnMismatch)>,
}

/// What a failed cross-field check (`x-consistency`) does to a record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OnMismatch {
    /// The record is rejected with the rule `consistency:<check>`.
    Reject,
    /// The record is accepted and carries the rule as a flag (`ce_flags`, the answer's warnings).
    Flag,
}

/// The prefix of the rule a failed cross-field check reports.
pub const CONSISTENCY_RULE: &str = "consistency:";

impl Entity {
    /// Every violation of `record` against this entity's schema, its rejecting cross-field
    /// checks included.
    pub fn validate(&self, record: &Value) -> Vec<Violation> {
        self.check(record).0
    }

    /// The flagging cross-field checks `record` fails: accepted, but worth a look.
    pub fn flags(&self, record: &Value) -> Vec<Violation> {
        self.check(record).1
    }

    /// Both at once, the citizen ID read once: every violation (as [`Self::validate`]) and
    /// the flags (as [`Self::flags`]).
    pub fn check(&self, record: &Value) -> (Vec<Violation>, Vec<Violation>) {
        let mut violations = violations_of(&self.validator, record);
        let mut flags = Vec::new();
        let id = record.get("citizen_id").and_then(Value::as_str);
        let Some(id) = id.filter(|_| !self.consistency.is_empty()) else { return (violations, flags) };
        for (check, field, expected) in crate::checks::citizen_id_implies(id) {
            let Some((_, action)) = self.consistency.iter().find(|(c, _)| c == check) else { continue };
            let Some(value) = record.get(field).and_then(Value::as_str) else { continue };
            if crate::checks::contradicts(field, value, &expected) {
                // Neither value is echoed: both are personal data.
                let message = match field {
                    "sex" => "sex contradicts the citizen ID's 17th digit (odd 1 男, even 2 女)",
                    _ => "birth_date contradicts the birth date in the citizen ID (digits 7-14)",
                };
                let v = Violation::new(format!("/{field}"), format!("{CONSISTENCY_RULE}{check}"), message);
                match action {
                    OnMismatch::Reject => violations.push(v),
                    OnMismatch::Flag => flags.push(v),
                }
            }
        }
        (violations, flags)
    }
}

/// The checks of `x-consistency` (`{"citizen-id-sex": "reject", …}`), refused when a check is
/// unknown, its action is neither `reject` nor `flag`, or the entity lacks a field it compares.
fn consistency_of(schema: &Value) -> Result<Vec<(String, OnMismatch)>, String> {
    let Some(declared) = schema.get("x-consistency") else { return Ok(Vec::new()) };
    let declared = declared.as_object().ok_or("x-consistency must be an object of check: reject|flag")?;
    let known = [(crate::checks::CITIZEN_ID_SEX, "sex"), (crate::checks::CITIZEN_ID_BIRTH_DATE, "birth_date")];
    let mut out = Vec::new();
    for (check, action) in declared {
        let Some((_, field)) = known.iter().find(|(k, _)| k == check) else {
            let names: Vec<&str> = known.iter().map(|(k, _)| *k).collect();
            return Err(format!("x-consistency: unknown check {check:?} (known: {})", names.join(", ")));
        };
        for needed in ["citizen_id", field] {
            if schema.pointer(&format!("/properties/{needed}")).is_none() {
                return Err(format!("x-consistency: {check} compares {needed}, which the entity does not have"));
            }
        }
        let action = match action.as_str() {
            Some("reject") => OnMismatch::Reject,
            Some("flag") => OnMismatch::Flag,
            _ => return Err(format!("x-consistency: {check} must be \"reject\" or \"flag\", got {action}")),
        };
        out.push((check.clone(), action));
    }
    Ok(out)
}

/// The loaded standard: compiled entity schemas and code lists.
#[derive(Debug)]
pub struct Standard {
    root: PathBuf,
    codes: Arc<CodeLists>,
    entities: BTreeMap<String, Entity>,
    version: String,
    /// Every schema document (core and entities) by `$id`.
    documents: BTreeMap<String, Value>,
}

impl Standard {
    /// Loads `root/standard/**.json` and `root/codes/*.json` and compiles every
    /// entity schema once. `root` is the `schemas/` folder.
    pub fn load(root: &Path) -> Result<Self, StandardError> {
        let codes = Arc::new(CodeLists::load(&root.join("codes"))?);
        let mut docs = Vec::new();
        collect_json(&root.join("standard"), &mut docs)?;
        docs.sort();

        let mut resources = Vec::with_capacity(docs.len());
        let mut parsed = Vec::with_capacity(docs.len());
        for path in docs {
            let text = std::fs::read_to_string(&path).map_err(|e| StandardError::io(&path, e))?;
            let schema: Value = serde_json::from_str(&text).map_err(|e| StandardError::schema(&path, e))?;
            let id = schema
                .get("$id")
                .and_then(Value::as_str)
                .ok_or_else(|| StandardError::schema(&path, "missing $id"))?
                .to_owned();
            resources.push((id.clone(), Resource::from_contents(schema.clone())));
            parsed.push((path, id, schema));
        }
        let annotations = parsed
            .iter()
            .find(|(_, id, _)| id.ends_with("/standard/annotations.json"))
            .map(|(path, _, schema)| {
                jsonschema::options()
                    .with_draft(jsonschema::Draft::Draft202012)
                    .build(schema)
                    .map_err(|e| StandardError::schema(path, e))
            })
            .transpose()?
            .ok_or_else(|| {
                StandardError::schema(
                    &root.join("standard"),
                    "annotations.json (the annotations meta-schema) is missing",
                )
            })?;
        for (path, _, schema) in &parsed {
            check_annotations(schema, "", &annotations).map_err(|e| StandardError::schema(path, e))?;
        }
        let version = std::fs::read_to_string(root.join("standard/VERSION"))
            .map_err(|e| StandardError::io(&root.join("standard/VERSION"), e))?
            .trim()
            .to_owned();

        let registry = Registry::new()
            .extend(resources)
            .and_then(|r| r.prepare())
            .map_err(|e| StandardError::schema(&root.join("standard"), e))?;

        let mut entities = BTreeMap::new();
        let mut documents = BTreeMap::new();
        for (path, schema_id, schema) in parsed {
            documents.insert(schema_id.clone(), schema.clone());
            let Some(major) = major_of(&path) else { continue };
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().replace('-', "_");
            let key = schema
                .get("x-entity-key")
                .and_then(Value::as_str)
                .ok_or_else(|| StandardError::schema(&path, "entity schema lacks x-entity-key"))?
                .to_owned();
            let title = schema.get("title").and_then(Value::as_str).unwrap_or(&name).to_owned();
            let validator = compile(&schema, &registry, &codes).map_err(|e| StandardError::schema(&path, e))?;
            let mut dereferenced = jsonschema::options()
                .with_draft(jsonschema::Draft::Draft202012)
                .with_registry(&registry)
                .dereference(&schema)
                .map_err(|e| StandardError::schema(&path, format!("dereferencing: {e}")))?;
            // The cross-field checks run at the gateway on the canonical record (a topic's
            // pseudonymised ID cannot be checked); topics carry their outcome in `ce_flags`, so
            // they are no part of what the registry serves.
            if let Some(o) = dereferenced.as_object_mut() {
                o.remove("x-consistency");
            }
            let consistency = consistency_of(&schema).map_err(|e| StandardError::schema(&path, e))?;
            entities.insert(
                name.clone(),
                Entity { name, major, schema_id, key, title, schema, dereferenced, path, validator, consistency },
            );
        }
        Ok(Self { root: root.to_owned(), codes, entities, version, documents })
    }

    /// The standard's version (`standard/VERSION`).
    pub fn version(&self) -> &str {
        &self.version
    }

    /// The `schemas/` folder this standard was loaded from.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The entity `name` (e.g. `person`), if the standard defines it.
    pub fn entity(&self, name: &str) -> Option<&Entity> {
        self.entities.get(name)
    }

    /// All entities, by name.
    pub fn entities(&self) -> impl Iterator<Item = &Entity> {
        self.entities.values()
    }

    /// Every schema document (shared core definitions and entities) by `$id`.
    pub fn documents(&self) -> impl Iterator<Item = (&str, &Value)> {
        self.documents.iter().map(|(k, v)| (k.as_str(), v))
    }

    /// The schema of the property at `path` (property names from the root) of
    /// entity `name`, following `$ref`s across the standard's documents.
    pub fn property_schema(&self, name: &str, path: &[impl AsRef<str>]) -> Option<&Value> {
        let entity = self.entity(name)?;
        let (mut base, mut node) = self.deref(&entity.schema_id, &entity.schema)?;
        for seg in path {
            let seg = seg.as_ref();
            // A numeric segment indexes an array: its schema is `items`.
            let next = match (seg.parse::<usize>(), node.get("items")) {
                (Ok(_), Some(items)) => items,
                _ => node.get("properties")?.get(seg)?,
            };
            (base, node) = self.deref(base, next)?;
        }
        Some(node)
    }

    /// Follows `node`'s `$ref` (if any, repeatedly) from document `base`.
    pub fn deref<'a>(&'a self, base: &'a str, node: &'a Value) -> Option<(&'a str, &'a Value)> {
        let (mut base, mut node) = (base, node);
        for _ in 0..32 {
            let Some(r) = node.get("$ref").and_then(Value::as_str) else { return Some((base, node)) };
            let (uri, fragment) = r.split_once('#').unwrap_or((r, ""));
            let (doc_id, doc) = if uri.is_empty() {
                self.documents.get_key_value(base)?
            } else {
                self.documents.get_key_value(&join_uri(base, uri))?
            };
            base = doc_id;
            node = if fragment.is_empty() { doc } else { doc.pointer(fragment)? };
        }
        None
    }

    /// The code lists.
    pub fn codes(&self) -> &CodeLists {
        &self.codes
    }

    /// Every violation of `record` against entity `name`; an unknown entity is
    /// itself a violation.
    pub fn validate(&self, name: &str, record: &Value) -> Vec<Violation> {
        match self.entity(name) {
            Some(e) => e.validate(record),
            None => vec![Violation::new("", "entity", format!("the standard has no entity {name:?}"))],
        }
    }

    /// A validator of a self-contained schema (a topic's view of an entity,
    /// `TopicPolicy::view_schema` of its dereferenced schema) with the standard's formats and
    /// code lists: what a consumer checks the messages of that topic with.
    pub fn view_validator(&self, schema: &Value) -> Result<ViewValidator, StandardError> {
        let registry = Registry::new().prepare().map_err(|e| StandardError::schema(&self.root, e))?;
        let validator = compile(schema, &registry, &self.codes).map_err(|e| StandardError::schema(&self.root, e))?;
        Ok(ViewValidator(validator))
    }
}

/// A compiled topic view ([`Standard::view_validator`]).
#[derive(Debug)]
pub struct ViewValidator(Validator);

impl ViewValidator {
    /// Every violation of `record`.
    pub fn validate(&self, record: &Value) -> Vec<Violation> {
        violations_of(&self.0, record)
    }
}

/// Every violation of `record` against `validator`. Most records are valid: the short-circuiting
/// check first (a fifth of the time), the errors collected only when there are some.
fn violations_of(validator: &Validator, record: &Value) -> Vec<Violation> {
    if validator.is_valid(record) {
        return Vec::new();
    }
    validator.iter_errors(record).map(|e| violation_from(&e)).collect()
}

/// Checks every `x-*` annotation of a schema document against the
/// annotations meta-schema; values (examples, enums, consts) are not schemas
/// and are skipped.
fn check_annotations(node: &Value, at: &str, meta: &Validator) -> Result<(), String> {
    match node {
        Value::Object(map) => {
            let annotations: Map<String, Value> =
                map.iter().filter(|(k, _)| k.starts_with("x-")).map(|(k, v)| (k.clone(), v.clone())).collect();
            if let Some(e) = meta.iter_errors(&Value::Object(annotations)).next() {
                return Err(format!("annotation at {}: {e}", if at.is_empty() { "/" } else { at }));
            }
            for (k, v) in map {
                let here = format!("{at}/{k}");
                match (k.as_str(), v) {
                    // Values, not schemas.
                    ("examples" | "enum" | "const" | "default", _) => {}
                    // Maps of names to schemas: the names are not keywords.
                    (
                        "properties" | "patternProperties" | "$defs" | "definitions" | "dependentSchemas",
                        Value::Object(named),
                    ) => {
                        for (name, schema) in named {
                            check_annotations(schema, &format!("{here}/{name}"), meta)?;
                        }
                    }
                    _ => check_annotations(v, &here, meta)?,
                }
            }
            Ok(())
        }
        Value::Array(items) => {
            items.iter().enumerate().try_for_each(|(i, v)| check_annotations(v, &format!("{at}/{i}"), meta))
        }
        _ => Ok(()),
    }
}

/// Resolves a relative reference against a base URI (enough for the
/// standard's own `https://…/a/b.json` ids and `../core/x.json` references).
fn join_uri(base: &str, reference: &str) -> String {
    if reference.contains("://") {
        return reference.to_owned();
    }
    let mut parts: Vec<&str> = base.split('/').collect();
    parts.pop();
    for seg in reference.split('/') {
        match seg {
            "." | "" => {}
            ".." => {
                parts.pop();
            }
            s => parts.push(s),
        }
    }
    parts.join("/")
}

fn collect_json(dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), StandardError> {
    for entry in std::fs::read_dir(dir).map_err(|e| StandardError::io(dir, e))? {
        let path = entry.map_err(|e| StandardError::io(dir, e))?.path();
        if path.is_dir() {
            collect_json(&path, out)?;
        } else if path.extension().is_some_and(|x| x == "json") {
            out.push(path);
        }
    }
    Ok(())
}

/// `Some(n)` for a schema in a `v<n>` folder (an entity), `None` for shared definitions.
fn major_of(path: &Path) -> Option<u32> {
    let dir = path.parent()?.file_name()?.to_str()?;
    dir.strip_prefix('v')?.parse().ok()
}

fn compile(
    schema: &Value,
    registry: &Registry<'_>,
    codes: &Arc<CodeLists>,
) -> Result<Validator, ValidationError<'static>> {
    let divisions = Arc::clone(codes);
    let id_codes = Arc::clone(codes);
    let list_codes = Arc::clone(codes);
    jsonschema::options()
        .with_draft(jsonschema::Draft::Draft202012)
        .with_registry(registry)
        .with_pattern_options(PatternOptions::regex())
        .should_validate_formats(true)
        .should_ignore_unknown_formats(false)
        .with_format("gb11643", move |s: &str| checks::check_gb11643(s).is_ok() && known_province(&id_codes, s))
        .with_format("gb32100", |s: &str| checks::check_gb32100(s).is_ok())
        .with_format("cn-phone", checks::check_cn_phone)
        .with_format("division-code", move |s: &str| divisions.get("division").is_some_and(|l| l.contains(s)))
        .with_keyword("x-code-list", move |_parent: &Map<String, Value>, value: &Value, _path| {
            let id = value.as_str().ok_or_else(|| ValidationError::custom("x-code-list must be a string"))?;
            if list_codes.get(id).is_none() {
                return Err(ValidationError::custom(format!("unknown code list {id:?}")));
            }
            Ok(Box::new(CodeListKeyword { codes: Arc::clone(&list_codes), id: id.to_owned() })
                as Box<dyn for<'i> Keyword<'i>>)
        })
        .build(schema)
}

/// The first two digits of a citizen ID name a province in the division list
/// (retired county codes stay valid, so only the province is checked).
fn known_province(codes: &CodeLists, id: &str) -> bool {
    let Some(divisions) = codes.get("division") else { return true };
    id.get(..2).is_some_and(|p| divisions.contains(&format!("{p}0000")))
}

struct CodeListKeyword {
    codes: Arc<CodeLists>,
    id: String,
}

impl<'i> Keyword<'i> for CodeListKeyword {
    fn validate(&self, instance: &'i Value) -> Result<(), ValidationError<'i>> {
        if self.is_valid(instance) {
            return Ok(());
        }
        let list = self.codes.get(&self.id);
        let title = list.map(|l| l.title.as_str()).unwrap_or_default();
        Err(ValidationError::custom(format!("{instance} is not a code of {} ({title})", self.id)))
    }

    fn is_valid(&self, instance: &'i Value) -> bool {
        match instance {
            Value::String(s) => self.codes.get(&self.id).is_some_and(|l| l.contains(s)),
            _ => true,
        }
    }
}

fn violation_from(e: &ValidationError<'_>) -> Violation {
    use jsonschema::error::ValidationErrorKind as K;
    let pointer = e.instance_path().to_string();
    let (rule, message) = match e.kind() {
        K::Format { format } => {
            let detail = e.instance().as_str().and_then(|s| format_detail(format, s));
            (format!("format:{format}"), detail.unwrap_or_else(|| e.to_string()))
        }
        K::Custom { keyword, message } => {
            let kw = if keyword.is_empty() { last_segment(&e.schema_path().to_string()) } else { keyword.clone() };
            (kw, message.clone())
        }
        kind => (kind.keyword().to_owned(), e.to_string()),
    };
    Violation { pointer, rule, message }
}

fn last_segment(path: &str) -> String {
    path.rsplit('/').next().unwrap_or_default().to_owned()
}

/// The reason a checked format failed, in words, without echoing the value
/// (values here are citizen IDs and must not reach logs through messages).
fn format_detail(format: &str, value: &str) -> Option<String> {
    match format {
        "gb11643" => Some(match checks::check_gb11643(value) {
            Err(e) => format!("not a valid citizen ID (GB 11643): {e}"),
            Ok(()) => "not a valid citizen ID (GB 11643): unknown province prefix".to_owned(),
        }),
        "gb32100" => checks::check_gb32100(value)
            .err()
            .map(|e| format!("not a valid unified social credit code (GB 32100): {e}")),
        "division-code" => Some(format!("{value:?} is not in the division code list")),
        "cn-phone" => Some("not a normalised Chinese mobile (11 digits) or landline (0AREA-NUMBER) number".to_owned()),
        _ => None,
    }
}
