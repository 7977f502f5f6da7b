//! The schema of the merged profile topics (`<prefix>.<entity>.profile.v1`, 一人一档): the
//! documents the profile service publishes, registered and checked like every other subject.
//!
//! A profile document is `entity`, `key`, `rules_version`, `record` (the merged record, under
//! the schema of the entity topic the service reads, with only the key required: a profile
//! holds what its sources stated), `fields` (per field of the record where its value came from:
//! a ranked field's winning fact and whether by authority or by recency, a set field's
//! elements each with the facts that state it), `conflicts` (a loser per ranked field and
//! disagreeing fact), `checks` (derived checks that failed) and `sources` (every fact merged).

use serde_json::{Value, json};

/// The schema of one source fact, as every provenance entry names it.
fn source_schema() -> Value {
    let text = json!({"type": "string", "minLength": 1});
    json!({
        "type": "object",
        "description": "One department's fact: its source record (department, kind, source_id), revision, event time (ce_time) and event id (ce_id).",
        "properties": {
            "department": text, "kind": text, "source_id": text,
            "revision": {"type": "integer"},
            "time": {"type": "string", "format": "date-time"},
            "ce_id": text,
        },
        "required": ["department", "kind", "source_id", "revision", "time", "ce_id"],
        "additionalProperties": false,
    })
}

/// The schema of a profile document of `entity` whose merged record follows `record` (a
/// self-contained entity schema, the view of the topic the facts are read from; its key field
/// is `key_field`).
pub fn profile_schema(entity: &str, key_field: &str, record: &Value) -> Value {
    let mut record = record.as_object().cloned().unwrap_or_default();
    for k in ["$schema", "$id", "examples"] {
        record.remove(k);
    }
    // Each fact satisfies the entity's required fields; the merge keeps only what was stated
    // (null values are not), so only the key is sure to be there.
    record.insert("required".into(), json!([key_field]));
    let names: Vec<Value> = record
        .get("properties")
        .and_then(Value::as_object)
        .map(|p| p.keys().filter(|k| *k != key_field).map(|k| Value::String(k.clone())).collect())
        .unwrap_or_default();
    let source = json!({"$ref": "#/$defs/source"});
    let field = json!({"oneOf": [
        {
            "description": "A ranked field: the fact its value came from, chosen by the rules' authority or as the most recent.",
            "type": "object",
            "properties": {"source": source, "by": {"enum": ["authority", "most-recent"]}},
            "required": ["source", "by"],
            "additionalProperties": false,
        },
        {
            "description": "A set field: each element with the facts that state it.",
            "type": "object",
            "properties": {
                "merge": {"const": "set"},
                "elements": {"type": "array", "items": {
                    "type": "object",
                    "properties": {"value": {}, "sources": {"type": "array", "items": source, "minItems": 1}},
                    "required": ["value", "sources"],
                    "additionalProperties": false,
                }},
            },
            "required": ["merge", "elements"],
            "additionalProperties": false,
        },
    ]});
    let field_name = json!({"enum": names});
    let side = json!({
        "type": "object",
        "properties": {"value": {}, "source": source},
        "required": ["value", "source"],
        "additionalProperties": false,
    });
    let title = record.get("title").and_then(Value::as_str).unwrap_or(entity).to_owned();
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": format!("https://schemas.hutong.dev/profiles/v1/{entity}.json"),
        "title": format!("{title} · 一人一档 profile"),
        "description": format!("The merged profile of one {entity}: every department's current facts merged under the rules of schemas/profiles/{entity}.toml, with the source of every field, the conflicts and failed checks, and the facts merged. Keyed by the entity key; a tombstone when no fact is left."),
        "type": "object",
        "properties": {
            "entity": {"const": entity},
            "key": {"type": "string", "minLength": 1},
            "rules_version": {"type": "string"},
            "record": Value::Object(record),
            "fields": {"type": "object", "propertyNames": field_name, "additionalProperties": field},
            "conflicts": {"type": "array", "items": {
                "type": "object",
                "description": "A ranked field on which a fact disagrees with the winner.",
                "properties": {"field": field_name, "what": {"const": "disagreement"}, "winner": side, "loser": side},
                "required": ["field", "what", "winner", "loser"],
                "additionalProperties": false,
            }},
            "checks": {"type": "array", "items": {
                "type": "object",
                "description": "A derived check the merged record fails (the citizen ID's sex digit or birth date against sex and birth_date).",
                "properties": {
                    "field": field_name,
                    "what": {"type": "string", "minLength": 1},
                    "expected": {"type": "string"},
                    "value": {"type": "string"},
                    "source": source,
                    "citizen_id_source": source,
                },
                "required": ["field", "what", "expected", "value", "source"],
                "additionalProperties": false,
            }},
            "sources": {"type": "array", "items": source, "minItems": 1},
        },
        "required": ["entity", "key", "rules_version", "record", "fields", "conflicts", "checks", "sources"],
        "additionalProperties": false,
        "$defs": {"source": source_schema()},
    })
}

/// The subject and schema of the profile topic of each of `entities`: `profile_topic` names
/// it, its record follows the view of the entity's own topic (`entity_topic`) under `privacy`,
/// the topic the profile service reads.
pub fn profile_subjects(
    standard: &hutong_standard::Standard,
    entity_topic: &dyn Fn(&hutong_standard::Entity) -> String,
    profile_topic: &dyn Fn(&str) -> String,
    privacy: &hutong_standard::privacy::PrivacyConfig,
    entities: &[String],
) -> Result<Vec<ProfileSubject>, crate::RegistryError> {
    let views = hutong_standard::privacy::topic_views(standard, entity_topic, privacy)?;
    let mut out = Vec::with_capacity(entities.len());
    for name in entities {
        let entity = standard.entity(name).ok_or_else(|| crate::RegistryError::UnknownSubject {
            subject: format!("{} (no entity {name} in the standard)", profile_topic(name)),
        })?;
        let topic = entity_topic(entity);
        let view = views
            .get(name)
            .and_then(|v| v.iter().find(|v| v.topic == topic))
            .ok_or_else(|| crate::RegistryError::UnknownSubject { subject: format!("{topic} (no view of {name})") })?;
        let topic = profile_topic(name);
        out.push(ProfileSubject {
            entity: name.clone(),
            subject: crate::subject_for_topic(&topic),
            topic,
            schema: profile_schema(name, &entity.key, &view.schema),
        });
    }
    Ok(out)
}

/// A profile topic with its subject and schema.
#[derive(Debug, Clone)]
pub struct ProfileSubject {
    /// The entity.
    pub entity: String,
    /// The topic, e.g. `hutong.person.profile.v1`.
    pub topic: String,
    /// Its subject, e.g. `hutong.person.profile.v1-value`.
    pub subject: String,
    /// The schema of its documents.
    pub schema: Value,
}
