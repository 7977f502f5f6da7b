//! Per-topic protection of personal fields in canonical records.
//!
//! Entity schemas (JSON Schema 2020-12, fully dereferenced) annotate personal fields with `x-pii` and, optionally,
//! `x-sensitivity` and `x-sharing`. For every Kafka topic a [`TopicPolicy`] decides how each of those fields is
//! published: in clear, masked (see [`mask`]), pseudonymised (replaced by a keyed pseudonym supplied by the caller)
//! or dropped. The policy also derives the schema of the topic's messages ([`TopicPolicy::view_schema`]), which only
//! widens the canonical schema so that it stays backward compatible with it.
//!
//! Paths of personal fields are JSON Pointers over the record (`~` and `/` in property names are escaped as `~0`
//! and `~1`), with `*` standing for every element of an array, e.g. `/residents/*/room`.

use std::collections::BTreeMap;
use std::fmt;

use serde_json::{Map, Value};

/// Sentence appended to the description of a masked field in a topic's view schema.
const MASKED_NOTE: &str = "On this topic: masked.";
/// Sentence appended to the description of a pseudonymised field in a topic's view schema.
const PSEUDONYMISED_NOTE: &str = "On this topic: pseudonymised (<key id>:<HMAC-SHA256 hex>).";

/// How one personal field is published on a topic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Treatment {
    /// Published unchanged.
    Clear,
    /// Replaced by [`mask`] of its value, according to its kind of personal information.
    Masked,
    /// Replaced by a keyed pseudonym computed by the caller (e.g. `<key id>:<HMAC-SHA256 hex>`).
    Pseudonymised,
    /// Removed from the record.
    Dropped,
}

impl Treatment {
    /// The treatment's name as written in configuration: `clear`, `masked`, `pseudonymised` or `dropped`.
    pub fn as_str(self) -> &'static str {
        match self {
            Treatment::Clear => "clear",
            Treatment::Masked => "masked",
            Treatment::Pseudonymised => "pseudonymised",
            Treatment::Dropped => "dropped",
        }
    }

    /// True for the treatments that rewrite a string value (masking and pseudonymisation).
    fn needs_string(self) -> bool {
        matches!(self, Treatment::Masked | Treatment::Pseudonymised)
    }
}

impl fmt::Display for Treatment {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A field of an entity schema annotated as personal information.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PersonalField {
    /// Path of the field in a record, e.g. `/residents/*/room` (`*` = every element of an array).
    pub path: String,
    /// The `x-pii` value: `name`, `citizen-id`, `phone`, `address`, `birth-date`, `geo` or `other`.
    pub pii: String,
    /// The `x-sensitivity` value (`general`, `important` or `core`), if any.
    pub sensitivity: Option<String>,
    /// The `x-sharing` value (`unconditional`, `conditional` or `none`), if any.
    pub sharing: Option<String>,
    /// True when the field's schema type is exactly `"string"` (or `["string"]`).
    pub is_string: bool,
}

impl PersonalField {
    /// True when the schema forbids sharing the field (`x-sharing: "none"`).
    fn sharing_none(&self) -> bool {
        self.sharing.as_deref() == Some("none")
    }
}

/// One step of a field path: a property of an object, or every element of an array.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    /// The property with this (unescaped) name.
    Key(String),
    /// Every element of an array (`*` in a path).
    Each,
}

/// Every personal field of a dereferenced entity schema, in schema order.
///
/// The walk follows `properties` of objects and `items` of arrays (segment `*`) and stops at the first schema that
/// carries `x-pii`. A schema of array items that carries `x-pii` is a personal field too (its path ends in `/*`),
/// so that an array of personal strings is not silently published in clear. A non-string `x-pii` counts as
/// `other`.
pub fn personal_fields(schema: &Value) -> Vec<PersonalField> {
    located_fields(schema).into_iter().map(|(field, _)| field).collect()
}

/// Personal fields with their parsed paths.
fn located_fields(schema: &Value) -> Vec<(PersonalField, Vec<Segment>)> {
    let mut out = Vec::new();
    walk_children(schema, &mut Vec::new(), &mut out);
    out
}

/// Visits the sub-schemas of `schema` reachable through `properties` and `items`.
fn walk_children(schema: &Value, segments: &mut Vec<Segment>, out: &mut Vec<(PersonalField, Vec<Segment>)>) {
    let Some(object) = schema.as_object() else {
        return;
    };
    if let Some(Value::Object(properties)) = object.get("properties") {
        for (name, child) in properties {
            segments.push(Segment::Key(name.clone()));
            visit(child, segments, out);
            segments.pop();
        }
    }
    if let Some(items) = object.get("items") {
        segments.push(Segment::Each);
        visit(items, segments, out);
        segments.pop();
    }
}

/// Records `schema` as a personal field if it carries `x-pii`, otherwise walks into it.
fn visit(schema: &Value, segments: &mut Vec<Segment>, out: &mut Vec<(PersonalField, Vec<Segment>)>) {
    let Some(pii) = schema.get("x-pii") else {
        walk_children(schema, segments, out);
        return;
    };
    let text = |key: &str| schema.get(key).and_then(Value::as_str).map(str::to_owned);
    let is_string = match schema.get("type") {
        Some(Value::String(t)) => t == "string",
        Some(Value::Array(types)) => types.len() == 1 && types[0] == "string",
        _ => false,
    };
    let field = PersonalField {
        path: path_string(segments),
        pii: pii.as_str().unwrap_or("other").to_owned(),
        sensitivity: text("x-sensitivity"),
        sharing: text("x-sharing"),
        is_string,
    };
    out.push((field, segments.clone()));
}

/// Writes segments as a path: JSON Pointer escaping for names, `*` for array elements.
fn path_string(segments: &[Segment]) -> String {
    let mut path = String::new();
    for segment in segments {
        path.push('/');
        match segment {
            Segment::Key(name) => path.push_str(&name.replace('~', "~0").replace('/', "~1")),
            Segment::Each => path.push('*'),
        }
    }
    path
}

/// The default on a shared topic: "citizen-id" → Pseudonymised; any field with x-sharing "none" → Pseudonymised
/// if it is a string, else Dropped; "phone" → Masked; everything else → Clear.
///
/// Masking and pseudonymisation only apply to strings, so a non-string "citizen-id" or "phone" field defaults to
/// Dropped (fail closed) rather than to a treatment that could not be applied.
pub fn default_treatment(field: &PersonalField) -> Treatment {
    let wanted = if field.pii == "citizen-id" || field.sharing_none() {
        Treatment::Pseudonymised
    } else if field.pii == "phone" {
        Treatment::Masked
    } else {
        Treatment::Clear
    };
    if wanted.needs_string() && !field.is_string { Treatment::Dropped } else { wanted }
}

/// Why a topic policy was refused.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum PolicyError {
    /// An override names a path that is not a personal field of the schema.
    #[error("{0}: no personal field at this path")]
    UnknownField(String),
    /// Masked or Pseudonymised was asked for a field whose schema type is not a string.
    #[error("{path}: {treatment} needs a string field")]
    NotAString {
        /// Path of the field.
        path: String,
        /// The treatment asked for (`masked` or `pseudonymised`).
        treatment: &'static str,
    },
    /// Clear was asked, on a shared topic, for a field with `x-sharing: "none"`.
    #[error("{0}: x-sharing is \"none\"; clear only on a restricted topic")]
    ClearNotAllowed(String),
}

/// One personal field with its treatment and parsed path.
#[derive(Debug, Clone, PartialEq)]
struct Entry {
    field: PersonalField,
    treatment: Treatment,
    segments: Vec<Segment>,
}

/// The treatment of every personal field of one entity on one topic.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicPolicy {
    /// Every personal field, in schema order.
    entries: Vec<Entry>,
    /// True when every entry is Clear.
    clear: bool,
}

impl TopicPolicy {
    /// Builds the policy of one entity on one topic.
    ///
    /// `restricted`: a topic the deployment restricts to cleared consumers; there every field defaults to Clear
    /// and Clear is allowed for x-sharing "none" fields. Otherwise (a shared topic) defaults are
    /// [`default_treatment`] and Clear of an x-sharing "none" field is refused. `overrides` maps field paths to
    /// treatments; an unknown path is an error; Masked and Pseudonymised need a string field. Overrides are checked
    /// in path order and the first refusal is returned.
    pub fn new(
        schema: &Value,
        overrides: &BTreeMap<String, Treatment>,
        restricted: bool,
    ) -> Result<TopicPolicy, PolicyError> {
        let located = located_fields(schema);
        for (path, &treatment) in overrides {
            let mut matching = located.iter().map(|(field, _)| field).filter(|field| &field.path == path).peekable();
            if matching.peek().is_none() {
                return Err(PolicyError::UnknownField(path.clone()));
            }
            for field in matching {
                if treatment.needs_string() && !field.is_string {
                    return Err(PolicyError::NotAString { path: path.clone(), treatment: treatment.as_str() });
                }
                if treatment == Treatment::Clear && !restricted && field.sharing_none() {
                    return Err(PolicyError::ClearNotAllowed(path.clone()));
                }
            }
        }
        let entries: Vec<Entry> = located
            .into_iter()
            .map(|(field, segments)| {
                let treatment = match overrides.get(&field.path) {
                    Some(&treatment) => treatment,
                    None if restricted => Treatment::Clear,
                    None => default_treatment(&field),
                };
                Entry { field, treatment, segments }
            })
            .collect();
        let clear = entries.iter().all(|entry| entry.treatment == Treatment::Clear);
        Ok(TopicPolicy { entries, clear })
    }

    /// (path, treatment) of every personal field, in schema order, for docs and logs.
    pub fn fields(&self) -> impl Iterator<Item = (&PersonalField, Treatment)> {
        self.entries.iter().map(|entry| (&entry.field, entry.treatment))
    }

    /// True when every field is Clear ([`TopicPolicy::apply`] is then a no-op).
    pub fn is_clear(&self) -> bool {
        self.clear
    }

    /// Protects `record` in place.
    ///
    /// Masked strings go through [`mask`]; Pseudonymised strings are replaced by `pseudonymise(value)`; Dropped
    /// removes the key from its object (or, for a path ending in `*`, every element of the array). Arrays are
    /// walked at `*` segments. Missing fields and values of an unexpected type along the path are skipped; a
    /// non-string value (including null) under Masked or Pseudonymised is removed (fail closed).
    pub fn apply(&self, record: &mut Value, pseudonymise: &dyn Fn(&str) -> String) {
        if self.clear {
            return;
        }
        for entry in self.entries.iter().filter(|entry| entry.treatment != Treatment::Clear) {
            protect(record, &entry.segments, &entry.field.pii, entry.treatment, pseudonymise);
        }
    }

    /// The schema of the topic's messages.
    ///
    /// A clone of `schema` (the schema the policy was built from) where every Masked or Pseudonymised field's
    /// schema becomes `{"title", "description" (the original one with " On this topic: masked." or " On this topic:
    /// pseudonymised (<key id>:<HMAC-SHA256 hex>)." appended), "type": "string", "x-pii", "x-sensitivity",
    /// "x-sharing"}` (other keywords such as format, pattern, length limits and enum are removed), and every
    /// Dropped field keeps its schema but is removed from its parent's `required` (which is removed when it becomes
    /// empty). Arrays on the path of a protected field lose `uniqueItems` (masking or dropping can make elements
    /// equal); an array whose items are dropped also loses `minItems`, and one whose items are protected loses
    /// `contains`, `minContains` and `maxContains`. Only widening changes, so the view stays backward compatible
    /// with the canonical schema. A policy that is all Clear returns the schema unchanged.
    pub fn view_schema(&self, schema: &Value) -> Value {
        let mut view = schema.clone();
        if self.clear {
            return view;
        }
        for entry in self.entries.iter().filter(|entry| entry.treatment != Treatment::Clear) {
            widen(&mut view, &entry.segments, entry.treatment);
        }
        view
    }
}

/// Applies `treatment` to the value(s) at `segments` under `value`.
fn protect(
    value: &mut Value,
    segments: &[Segment],
    pii: &str,
    treatment: Treatment,
    pseudonymise: &dyn Fn(&str) -> String,
) {
    let Some((first, rest)) = segments.split_first() else {
        return;
    };
    match first {
        Segment::Key(key) => {
            let Value::Object(object) = value else {
                return;
            };
            let Some(child) = object.get_mut(key.as_str()) else {
                return;
            };
            if !rest.is_empty() {
                protect(child, rest, pii, treatment, pseudonymise);
            } else if !protect_value(child, pii, treatment, pseudonymise) {
                object.shift_remove(key.as_str());
            }
        }
        Segment::Each => {
            let Value::Array(items) = value else {
                return;
            };
            if rest.is_empty() {
                items.retain_mut(|item| protect_value(item, pii, treatment, pseudonymise));
            } else {
                for item in items {
                    protect(item, rest, pii, treatment, pseudonymise);
                }
            }
        }
    }
}

/// Applies `treatment` to one field value; returns false when the value must be removed instead.
fn protect_value(value: &mut Value, pii: &str, treatment: Treatment, pseudonymise: &dyn Fn(&str) -> String) -> bool {
    match (treatment, value) {
        (Treatment::Clear, _) => true,
        (Treatment::Dropped, _) => false,
        (Treatment::Masked, Value::String(text)) => {
            *text = mask(pii, text);
            true
        }
        (Treatment::Pseudonymised, Value::String(text)) => {
            *text = pseudonymise(text);
            true
        }
        (Treatment::Masked | Treatment::Pseudonymised, _) => false,
    }
}

/// Rewrites the schema of the field at `segments` (and the arrays above it) for `treatment`.
fn widen(root: &mut Value, segments: &[Segment], treatment: Treatment) {
    let Some((last, ancestors)) = segments.split_last() else {
        return;
    };
    let mut node = root;
    for segment in ancestors {
        node = match schema_step(node, segment) {
            Some(child) => child,
            None => return,
        };
    }
    let Value::Object(parent) = node else {
        return;
    };
    match last {
        Segment::Key(key) if treatment == Treatment::Dropped => {
            if let Some(Value::Array(required)) = parent.get_mut("required") {
                required.retain(|name| name.as_str() != Some(key.as_str()));
                if required.is_empty() {
                    parent.shift_remove("required");
                }
            }
        }
        Segment::Key(key) => {
            if let Some(field) = parent.get_mut("properties").and_then(|properties| properties.get_mut(key.as_str())) {
                *field = protected_schema(field, treatment);
            }
        }
        Segment::Each => {
            for keyword in ["uniqueItems", "contains", "minContains", "maxContains"] {
                parent.shift_remove(keyword);
            }
            if treatment == Treatment::Dropped {
                parent.shift_remove("minItems");
            } else if let Some(items) = parent.get_mut("items") {
                *items = protected_schema(items, treatment);
            }
        }
    }
}

/// Moves from a schema to the sub-schema of one path segment; an array passed through loses `uniqueItems`.
fn schema_step<'a>(node: &'a mut Value, segment: &Segment) -> Option<&'a mut Value> {
    let object = node.as_object_mut()?;
    match segment {
        Segment::Key(key) => object.get_mut("properties")?.get_mut(key.as_str()),
        Segment::Each => {
            object.shift_remove("uniqueItems");
            object.get_mut("items")
        }
    }
}

/// The schema of a masked or pseudonymised field: a plain string keeping the original's documentation and
/// personal-information annotations.
fn protected_schema(original: &Value, treatment: Treatment) -> Value {
    let note = if treatment == Treatment::Masked { MASKED_NOTE } else { PSEUDONYMISED_NOTE };
    let mut schema = Map::new();
    if let Some(title) = original.get("title") {
        schema.insert("title".to_owned(), title.clone());
    }
    let description = match original.get("description").and_then(Value::as_str).map(str::trim_end) {
        Some(text) if !text.is_empty() => format!("{text} {note}"),
        _ => note.to_owned(),
    };
    schema.insert("description".to_owned(), Value::String(description));
    schema.insert("type".to_owned(), Value::String("string".to_owned()));
    for keyword in ["x-pii", "x-sensitivity", "x-sharing"] {
        if let Some(value) = original.get(keyword) {
            schema.insert(keyword.to_owned(), value.clone());
        }
    }
    Value::Object(schema)
}

/// A deployment's protection settings of one topic (`[privacy.topics."<topic>"]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct TopicSettings {
    /// The entity the topic carries; required for an extra topic, implied for an entity's own topic.
    pub entity: Option<String>,
    /// Restricted to cleared consumers: every field defaults to clear there.
    pub restricted: bool,
    /// Field path (e.g. `/phone`) → treatment, over the defaults.
    pub fields: BTreeMap<String, Treatment>,
}

/// Per-topic protection settings of a deployment (`[privacy]`).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct PrivacyConfig {
    /// Topic name → its settings. Entity topics not listed get the shared defaults.
    pub topics: BTreeMap<String, TopicSettings>,
}

/// One topic an entity is published to, with its protection and the schema of its messages.
#[derive(Debug, Clone, PartialEq)]
pub struct TopicView {
    /// The topic.
    pub topic: String,
    /// Whether the deployment restricts it.
    pub restricted: bool,
    /// The protection of each personal field.
    pub policy: TopicPolicy,
    /// The schema of its messages (the entity schema, widened where fields are protected).
    pub schema: Value,
}

/// Why the deployment's `[privacy]` topics do not fit the standard.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TopicViewError {
    /// A field override is refused.
    #[error("privacy of {topic}: {error}")]
    Policy {
        /// The topic.
        topic: String,
        /// Why.
        error: PolicyError,
    },
    /// An entity's own topic is configured with another entity.
    #[error("privacy of {topic}: it is the topic of {entity}, not {configured}")]
    WrongEntity {
        /// The topic.
        topic: String,
        /// The entity whose topic it is.
        entity: String,
        /// The entity the configuration names.
        configured: String,
    },
    /// An extra topic does not name its entity.
    #[error("privacy of {topic}: name its `entity`")]
    NoEntity {
        /// The topic.
        topic: String,
    },
    /// An extra topic names an entity the standard lacks.
    #[error("privacy of {topic}: no entity {entity:?}")]
    UnknownEntity {
        /// The topic.
        topic: String,
        /// The name given.
        entity: String,
    },
}

/// Every topic of every entity of `standard`: its own topic (`main_topic`),
/// shared unless configured otherwise, and the extra topics of `config`.
pub fn topic_views(
    standard: &crate::Standard,
    main_topic: &dyn Fn(&crate::Entity) -> String,
    config: &PrivacyConfig,
) -> Result<BTreeMap<String, Vec<TopicView>>, TopicViewError> {
    let mut views: BTreeMap<String, Vec<TopicView>> = BTreeMap::new();
    let mut claimed = std::collections::BTreeSet::new();
    let view = |topic: String, schema: &Value, settings: Option<&TopicSettings>| {
        let (restricted, fields) = settings.map_or((false, BTreeMap::new()), |s| (s.restricted, s.fields.clone()));
        let policy = TopicPolicy::new(schema, &fields, restricted)
            .map_err(|error| TopicViewError::Policy { topic: topic.clone(), error })?;
        let schema = policy.view_schema(schema);
        Ok::<_, TopicViewError>(TopicView { topic, restricted, policy, schema })
    };
    for e in standard.entities() {
        let topic = main_topic(e);
        let settings = config.topics.get(&topic);
        if let Some(other) = settings.and_then(|s| s.entity.as_ref()).filter(|n| **n != e.name) {
            return Err(TopicViewError::WrongEntity { topic, entity: e.name.clone(), configured: other.clone() });
        }
        claimed.insert(topic.clone());
        views.entry(e.name.clone()).or_default().push(view(topic, &e.dereferenced, settings)?);
    }
    for (topic, settings) in config.topics.iter().filter(|(t, _)| !claimed.contains(*t)) {
        let name = settings.entity.as_ref().ok_or_else(|| TopicViewError::NoEntity { topic: topic.clone() })?;
        let e = standard
            .entity(name)
            .ok_or_else(|| TopicViewError::UnknownEntity { topic: topic.clone(), entity: name.clone() })?;
        views.entry(e.name.clone()).or_default().push(view(topic.clone(), &e.dereferenced, Some(settings))?);
    }
    Ok(views)
}

/// Masks a string by its kind of personal information (counting chars, not bytes; Chinese text is common):
/// - "citizen-id": keep the first 6 and last 4 chars, '*' for each between ("11010519491231002X" →
///   "110105********002X"); shorter than 11 chars → all '*'.
/// - "phone": keep the first 3 and last 4 chars, '*' between ("13812345678" → "138****5678"); 7 chars or fewer →
///   all but the last 2 masked.
/// - "name": keep the first char, '*' for each other ("张三" → "张*", "欧阳娜娜" → "欧***"); one char → "*".
/// - "birth-date": keep the first 4 chars (the year), mask every digit after ("1949-12-31" → "1949-**-**");
///   besides ASCII digits this also masks other Unicode digits such as full-width ones.
/// - "address": keep the first third of the chars (rounded up), '*' for the rest.
/// - anything else: "***" (fixed, so the length does not leak).
///
/// A non-empty value is never returned unchanged: when a rule would keep every char (e.g. a 2-char phone, a 1-char
/// address, a year-only birth date), every char is masked instead.
pub fn mask(pii: &str, value: &str) -> String {
    let chars: Vec<char> = value.chars().collect();
    let count = chars.len();
    let masked: String = match pii {
        "citizen-id" if count < 11 => "*".repeat(count),
        "citizen-id" => keep_ends(&chars, 6, 4),
        "phone" if count <= 7 => keep_ends(&chars, 0, 2),
        "phone" => keep_ends(&chars, 3, 4),
        "name" => keep_ends(&chars, 1, 0),
        "birth-date" => {
            chars.iter().enumerate().map(|(i, &c)| if i >= 4 && c.is_numeric() { '*' } else { c }).collect()
        }
        "address" => keep_ends(&chars, count.div_ceil(3), 0),
        _ => return "***".to_owned(),
    };
    if count > 0 && masked == value { "*".repeat(count) } else { masked }
}

/// Keeps `head` chars at the start and `tail` at the end, one '*' for each char between; returns the chars
/// unchanged when nothing lies between.
fn keep_ends(chars: &[char], head: usize, tail: usize) -> String {
    if head + tail >= chars.len() {
        return chars.iter().collect();
    }
    let mut out: String = chars[..head].iter().collect();
    out.extend(std::iter::repeat_n('*', chars.len() - head - tail));
    out.extend(&chars[chars.len() - tail..]);
    out
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use serde_json::json;

    use super::*;

    const HEALTH: &str = "/properties/households/items/properties/residents/items/properties/health";

    /// The real schema fragment from the brief.
    fn fragment() -> Value {
        json!({
            "type": "object",
            "properties": {
                "person_key": {"type": "string", "pattern": "^[0-9a-f]{64}$"},
                "name": {"type": "string", "minLength": 1, "maxLength": 64, "x-pii": "name",
                    "x-sensitivity": "general", "x-sharing": "conditional", "title": "姓名",
                    "description": "Name as registered."},
                "citizen_id": {"type": "string", "format": "gb11643", "x-pii": "citizen-id",
                    "x-sensitivity": "important", "x-sharing": "none", "title": "公民身份号码",
                    "description": "GB 11643 citizen identity number."},
                "phone": {"type": "string", "pattern": "^1[3-9][0-9]{9}$", "x-pii": "phone",
                    "x-sensitivity": "important", "x-sharing": "conditional"},
                "special_population": {"type": "array", "x-pii": "other", "x-sensitivity": "important",
                    "x-sharing": "conditional",
                    "items": {"type": "object", "properties": {"tag": {"type": "string"}}}},
                "residence": {"type": "object", "properties": {
                    "room": {"type": "string", "x-pii": "address", "x-sharing": "conditional"},
                    "address_text": {"type": "string", "x-pii": "address"}}},
                "members": {"type": "array", "items": {"type": "object", "properties": {
                    "relation": {"type": "string", "x-pii": "other"}}}}
            },
            "required": ["person_key", "name"],
            "additionalProperties": false
        })
    }

    /// Nested arrays, a non-string x-sharing "none" field and an array of personal strings.
    fn nested() -> Value {
        json!({
            "type": "object",
            "properties": {
                "households": {"type": "array", "uniqueItems": true, "items": {"type": "object", "properties": {
                    "address": {"type": "string", "x-pii": "address"},
                    "residents": {"type": "array", "items": {"type": "object", "properties": {
                        "citizen_id": {"type": ["string"], "x-pii": "citizen-id", "x-sharing": "none"},
                        "phone": {"type": "string", "x-pii": "phone"},
                        "health": {"type": "object", "x-pii": "other", "x-sharing": "none",
                            "properties": {"note": {"type": "string"}}}
                    }, "required": ["citizen_id", "health"]}}
                }}},
                "phones": {"type": "array", "minItems": 1, "items": {"type": "string", "x-pii": "phone"}}
            }
        })
    }

    fn overrides(pairs: &[(&str, Treatment)]) -> BTreeMap<String, Treatment> {
        pairs.iter().map(|&(path, treatment)| (path.to_owned(), treatment)).collect()
    }

    fn shared(schema: &Value, pairs: &[(&str, Treatment)]) -> TopicPolicy {
        TopicPolicy::new(schema, &overrides(pairs), false).expect("valid policy")
    }

    fn by_path(policy: &TopicPolicy) -> Vec<(String, Treatment)> {
        policy.fields().map(|(field, treatment)| (field.path.clone(), treatment)).collect()
    }

    fn key_len(value: &str) -> String {
        format!("k1:{}", value.len())
    }

    #[test]
    fn personal_fields_of_fragment_in_schema_order() {
        let fields = personal_fields(&fragment());
        let paths: Vec<&str> = fields.iter().map(|f| f.path.as_str()).collect();
        assert_eq!(
            paths,
            [
                "/name",
                "/citizen_id",
                "/phone",
                "/special_population",
                "/residence/room",
                "/residence/address_text",
                "/members/*/relation"
            ]
        );
        assert!(!paths.iter().any(|p| p.starts_with("/special_population/")));
        assert_eq!(
            fields[1],
            PersonalField {
                path: "/citizen_id".into(),
                pii: "citizen-id".into(),
                sensitivity: Some("important".into()),
                sharing: Some("none".into()),
                is_string: true,
            }
        );
        assert!(!fields[3].is_string);
        assert_eq!(fields[5].sensitivity, None);
        assert_eq!(fields[5].sharing, None);
        assert_eq!(fields[6].pii, "other");
    }

    #[test]
    fn personal_fields_of_item_schemas_types_and_escaping() {
        let paths: Vec<String> = personal_fields(&nested()).into_iter().map(|f| f.path).collect();
        assert_eq!(
            paths,
            [
                "/households/*/address",
                "/households/*/residents/*/citizen_id",
                "/households/*/residents/*/phone",
                "/households/*/residents/*/health",
                "/phones/*"
            ]
        );
        let schema = json!({"properties": {
            "a/b~c": {"type": "string", "x-pii": "other"},
            "nullable": {"type": ["string", "null"], "x-pii": "name"},
            "weird": {"x-pii": true}
        }});
        let fields = personal_fields(&schema);
        assert_eq!(fields[0].path, "/a~1b~0c");
        assert!(fields[0].is_string);
        assert!(!fields[1].is_string);
        assert_eq!(fields[2].pii, "other");
        assert!(personal_fields(&json!({"type": "string"})).is_empty());
    }

    #[test]
    fn default_treatments() {
        let policy = shared(&fragment(), &[]);
        assert_eq!(
            by_path(&policy),
            [
                ("/name".to_owned(), Treatment::Clear),
                ("/citizen_id".to_owned(), Treatment::Pseudonymised),
                ("/phone".to_owned(), Treatment::Masked),
                ("/special_population".to_owned(), Treatment::Clear),
                ("/residence/room".to_owned(), Treatment::Clear),
                ("/residence/address_text".to_owned(), Treatment::Clear),
                ("/members/*/relation".to_owned(), Treatment::Clear),
            ]
        );
        let field = |pii: &str, sharing: Option<&str>, is_string: bool| PersonalField {
            path: "/x".into(),
            pii: pii.into(),
            sensitivity: None,
            sharing: sharing.map(str::to_owned),
            is_string,
        };
        assert_eq!(default_treatment(&field("name", Some("none"), true)), Treatment::Pseudonymised);
        assert_eq!(default_treatment(&field("other", Some("none"), false)), Treatment::Dropped);
        assert_eq!(default_treatment(&field("phone", Some("none"), true)), Treatment::Pseudonymised);
        assert_eq!(default_treatment(&field("citizen-id", Some("unconditional"), false)), Treatment::Dropped);
        assert_eq!(default_treatment(&field("phone", None, false)), Treatment::Dropped);
        assert_eq!(default_treatment(&field("geo", Some("conditional"), false)), Treatment::Clear);

        let restricted = TopicPolicy::new(&fragment(), &BTreeMap::new(), true).unwrap();
        assert!(restricted.is_clear());
        assert!(!policy.is_clear());
    }

    #[test]
    fn apply_protects_every_array_element() {
        let policy = shared(&nested(), &[("/households/*/address", Treatment::Masked)]);
        let seen = RefCell::new(Vec::new());
        let pseudonymise = |value: &str| {
            seen.borrow_mut().push(value.to_owned());
            key_len(value)
        };
        let mut record = json!({
            "households": [
                {"address": "北京市朝阳区建国路88号", "residents": [
                    {"citizen_id": "11010519491231002X", "phone": "13812345678", "health": {"note": "x"}, "k": 1},
                    {"citizen_id": null, "phone": 13912345678u64, "health": null}
                ]},
                {"address": 42},
                {"residents": [{"citizen_id": "110105194912310", "phone": "1234567"}]},
                "not an object"
            ],
            "phones": ["13800001111", 5, null, "13900002222"],
            "other": "kept"
        });
        policy.apply(&mut record, &pseudonymise);
        assert_eq!(
            record,
            json!({
                "households": [
                    {"address": "北京市朝********", "residents": [
                        {"citizen_id": "k1:18", "phone": "138****5678", "k": 1},
                        {}
                    ]},
                    {},
                    {"residents": [{"citizen_id": "k1:15", "phone": "*****67"}]},
                    "not an object"
                ],
                "phones": ["138****1111", "139****2222"],
                "other": "kept"
            })
        );
        assert_eq!(*seen.borrow(), ["11010519491231002X", "110105194912310"]);
    }

    #[test]
    fn apply_drops_masks_and_pseudonymises_on_the_fragment() {
        let policy = shared(
            &fragment(),
            &[
                ("/name", Treatment::Masked),
                ("/special_population", Treatment::Dropped),
                ("/residence/room", Treatment::Pseudonymised),
                ("/members/*/relation", Treatment::Dropped),
            ],
        );
        let mut record = json!({
            "person_key": "ab",
            "name": "欧阳娜娜",
            "citizen_id": "11010519491231002X",
            "phone": 13812345678u64,
            "special_population": [{"tag": "elderly"}],
            "residence": {"room": "301", "address_text": "朝阳区"},
            "members": [{"relation": "spouse", "age": 3}, {"relation": "child"}]
        });
        policy.apply(&mut record, &key_len);
        assert_eq!(
            record,
            json!({
                "person_key": "ab",
                "name": "欧***",
                "citizen_id": "k1:18",
                "residence": {"room": "k1:3", "address_text": "朝阳区"},
                "members": [{"age": 3}, {}]
            })
        );
        // Key order is preserved when keys are removed.
        let keys: Vec<&String> = record.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["person_key", "name", "citizen_id", "residence", "members"]);

        // Unexpected shapes never panic.
        for mut odd in [json!(null), json!([1, 2]), json!("x"), json!({"members": {"relation": "x"}})] {
            let before = odd.clone();
            policy.apply(&mut odd, &key_len);
            assert_eq!(odd, before);
        }
    }

    #[test]
    fn clear_policy_leaves_record_untouched() {
        let policy = TopicPolicy::new(&fragment(), &BTreeMap::new(), true).unwrap();
        let mut record = json!({"name": "张三", "citizen_id": "11010519491231002X", "phone": "13812345678"});
        let before = record.clone();
        policy.apply(&mut record, &|_| panic!("not called on a clear policy"));
        assert_eq!(record, before);
    }

    #[test]
    fn mask_examples() {
        assert_eq!(mask("citizen-id", "11010519491231002X"), "110105********002X");
        assert_eq!(mask("citizen-id", "1101051949"), "**********");
        assert_eq!(mask("citizen-id", "11010519491"), "110105*9491");
        assert_eq!(mask("phone", "13812345678"), "138****5678");
        assert_eq!(mask("phone", "+8613812345678"), "+86*******5678");
        assert_eq!(mask("phone", "1234567"), "*****67");
        assert_eq!(mask("phone", "12"), "**");
        assert_eq!(mask("name", "张三"), "张*");
        assert_eq!(mask("name", "欧阳娜娜"), "欧***");
        assert_eq!(mask("name", "王"), "*");
        assert_eq!(mask("name", ""), "");
        assert_eq!(mask("birth-date", "1949-12-31"), "1949-**-**");
        assert_eq!(mask("birth-date", "1949年12月31日"), "1949年**月**日");
        assert_eq!(mask("birth-date", "1949"), "****");
        assert_eq!(mask("address", "北京市朝阳区建国路88号"), "北京市朝********");
        assert_eq!(mask("address", "北京市朝阳区"), "北京****");
        assert_eq!(mask("address", "Room 301"), "Roo*****");
        assert_eq!(mask("address", "A"), "*");
        assert_eq!(mask("geo", "39.9042,116.4074"), "***");
        assert_eq!(mask("other", ""), "***");
    }

    #[test]
    fn view_schema_widens_protected_fields() {
        let schema = fragment();
        let policy = shared(&schema, &[("/name", Treatment::Masked), ("/residence/room", Treatment::Dropped)]);
        let view = policy.view_schema(&schema);
        let properties = &view["properties"];
        assert_eq!(
            properties["name"],
            json!({"title": "姓名", "description": "Name as registered. On this topic: masked.", "type": "string",
                "x-pii": "name", "x-sensitivity": "general", "x-sharing": "conditional"})
        );
        let citizen_id = properties["citizen_id"].as_object().unwrap();
        assert!(!citizen_id.contains_key("format"));
        assert_eq!(citizen_id["title"], "公民身份号码");
        assert_eq!(citizen_id["x-pii"], "citizen-id");
        assert_eq!(
            citizen_id["description"],
            "GB 11643 citizen identity number. On this topic: pseudonymised (<key id>:<HMAC-SHA256 hex>)."
        );
        assert_eq!(
            properties["phone"],
            json!({"description": "On this topic: masked.", "type": "string", "x-pii": "phone",
                "x-sensitivity": "important", "x-sharing": "conditional"})
        );
        assert_eq!(properties["residence"], schema["properties"]["residence"]);
        assert_eq!(properties["person_key"], schema["properties"]["person_key"]);
        assert_eq!(view["required"], json!(["person_key", "name"]));
        assert_eq!(view["additionalProperties"], false);

        let dropped = shared(&schema, &[("/name", Treatment::Dropped)]);
        let view = dropped.view_schema(&schema);
        assert_eq!(view["required"], json!(["person_key"]));
        assert_eq!(view["properties"]["name"], schema["properties"]["name"]);
    }

    #[test]
    fn view_schema_of_nested_arrays() {
        let schema = nested();
        let policy = shared(&schema, &[]);
        let view = policy.view_schema(&schema);
        let households = &view["properties"]["households"];
        assert!(households.get("uniqueItems").is_none());
        let residents = &households["items"]["properties"]["residents"]["items"];
        assert_eq!(residents["required"], json!(["citizen_id"]));
        assert_eq!(residents["properties"]["health"], schema.pointer(HEALTH).unwrap().clone());
        assert_eq!(residents["properties"]["citizen_id"]["type"], "string");
        let phones = &view["properties"]["phones"];
        assert_eq!(phones["minItems"], 1);
        assert_eq!(phones["items"]["description"], "On this topic: masked.");

        let all_dropped = shared(
            &schema,
            &[("/phones/*", Treatment::Dropped), ("/households/*/residents/*/citizen_id", Treatment::Dropped)],
        );
        let view = all_dropped.view_schema(&schema);
        assert!(view["properties"]["phones"].get("minItems").is_none());
        assert_eq!(view["properties"]["phones"]["items"], schema["properties"]["phones"]["items"]);
        let residents = view.pointer("/properties/households/items/properties/residents/items").unwrap();
        assert!(residents.get("required").is_none());
    }

    #[test]
    fn all_clear_view_is_the_schema() {
        let schema = fragment();
        let policy = TopicPolicy::new(&schema, &overrides(&[("/phone", Treatment::Clear)]), true).unwrap();
        assert!(policy.is_clear());
        assert_eq!(policy.view_schema(&schema), schema);
        let shared_clear = shared(&schema, &[("/phone", Treatment::Clear), ("/citizen_id", Treatment::Dropped)]);
        assert!(!shared_clear.is_clear());
    }

    #[test]
    fn refused_overrides() {
        let schema = fragment();
        let refuse = |pairs: &[(&str, Treatment)], restricted: bool| {
            TopicPolicy::new(&schema, &overrides(pairs), restricted).unwrap_err()
        };
        let unknown = refuse(&[("/person_key", Treatment::Masked)], false);
        assert_eq!(unknown, PolicyError::UnknownField("/person_key".into()));
        assert_eq!(unknown.to_string(), "/person_key: no personal field at this path");
        assert_eq!(
            refuse(&[("/special_population/*/tag", Treatment::Dropped)], true),
            PolicyError::UnknownField("/special_population/*/tag".into())
        );
        let not_string = refuse(&[("/special_population", Treatment::Masked)], false);
        assert_eq!(not_string, PolicyError::NotAString { path: "/special_population".into(), treatment: "masked" });
        assert_eq!(not_string.to_string(), "/special_population: masked needs a string field");
        let clear = refuse(&[("/citizen_id", Treatment::Clear)], false);
        assert_eq!(clear, PolicyError::ClearNotAllowed("/citizen_id".into()));
        assert_eq!(clear.to_string(), "/citizen_id: x-sharing is \"none\"; clear only on a restricted topic");

        let restricted = TopicPolicy::new(&schema, &overrides(&[("/citizen_id", Treatment::Clear)]), true).unwrap();
        assert!(restricted.fields().any(|(f, t)| f.path == "/citizen_id" && t == Treatment::Clear));
        let masked_restricted =
            TopicPolicy::new(&schema, &overrides(&[("/citizen_id", Treatment::Masked)]), true).unwrap();
        assert_eq!(by_path(&masked_restricted)[1], ("/citizen_id".to_owned(), Treatment::Masked));
        assert!(!masked_restricted.is_clear());
    }

    #[test]
    fn treatment_names() {
        // The names deployments write in their config files: pinned, each one.
        for (treatment, name) in [
            (Treatment::Clear, "clear"),
            (Treatment::Masked, "masked"),
            (Treatment::Pseudonymised, "pseudonymised"),
            (Treatment::Dropped, "dropped"),
        ] {
            assert_eq!(treatment.as_str(), name);
            assert_eq!(serde_json::to_value(treatment).unwrap(), json!(name));
            assert_eq!(serde_json::from_value::<Treatment>(json!(name)).unwrap(), treatment);
            assert_eq!(treatment.to_string(), name);
        }
        assert!(serde_json::from_value::<Treatment>(json!("pseudonymized")).is_err(), "one spelling only");
    }
}
