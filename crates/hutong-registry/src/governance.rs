//! The schemas of the governance consumers' topics: supervision alerts (`<prefix>.alert.v1`,
//! 督查督办) and the candidate resources of each service request (`<prefix>.match.v1`,
//! 供需对接). Registered and checked like every other subject; the consumer service checks
//! each message against its registered schema before it publishes it.

use serde_json::{Value, json};

use crate::subject_for_topic;

fn text() -> Value {
    json!({"type": "string", "minLength": 1})
}

fn time() -> Value {
    json!({"type": "string", "format": "date-time"})
}

/// The schema of an alert (`hutong.alert.v1`).
pub fn alert_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.hutong.dev/governance/v1/alert.json",
        "title": "督办预警 · supervision alert",
        "description": "A supervision alert of the consumer service (督查督办): an open event near, at or past its deadline (overdue), sent back too often (returned), reopened after closure (reopened), or several events at one address or with one party in a month (repeated, a signal for 联合研判). Keyed by its id, raised once: the same condition always has the same id and content.",
        "type": "object",
        "properties": {
            "alert_id": {"type": "string", "format": "uuid"},
            "condition": {"enum": ["overdue", "returned", "reopened", "repeated"]},
            "level": {"description": "alert-level code: reminder 提醒, warning 预警, supervision 督办.", "enum": ["reminder", "warning", "supervision"]},
            "level_name": {"enum": ["提醒", "预警", "督办"]},
            "subject": {"description": "The event key, or address:… / party:… for repeated events.", "type": "string", "minLength": 1},
            "event_keys": {"type": "array", "items": text(), "minItems": 1},
            "grid_code": {"type": ["string", "null"]},
            "community": {"type": ["string", "null"]},
            "departments": {"description": "The departments that reported the events and the bodies handling them.", "type": "array", "items": text()},
            "condition_at": time(),
            "detail": {"type": "object"},
            "rules_version": {"type": "string"},
        },
        "required": ["alert_id", "condition", "level", "level_name", "subject", "event_keys", "departments", "condition_at", "detail", "rules_version"],
        "additionalProperties": false,
    })
}

/// The schema of a request's matches (`hutong.match.v1`).
pub fn match_schema() -> Value {
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.hutong.dev/governance/v1/match.json",
        "title": "供需对接 · matches of a service request",
        "description": "The service resources proposed for one service request (群众需求), best first, with the score and the reasons; empty when none fits. Keyed by the request key; a tombstone when the request is gone.",
        "type": "object",
        "properties": {
            "request_key": text(),
            "status": {"description": "service-request-status code.", "type": "string"},
            "open": {"description": "Whether the request still needs a match.", "type": "boolean"},
            "category": {"type": ["string", "null"]},
            "grid_code": {"type": ["string", "null"]},
            "requested_at": {"type": ["string", "null"], "format": "date-time"},
            "matched_at": {"description": "When it first reached a matched status (已对接/已完成).", "type": ["string", "null"], "format": "date-time"},
            "candidates": {"type": "array", "items": {
                "type": "object",
                "properties": {
                    "resource_key": text(),
                    "name": {"type": "string"},
                    "score": {"type": "integer", "minimum": 0},
                    "reasons": {"type": "array", "items": {"type": "string"}},
                    "distance_m": {"type": ["integer", "null"], "minimum": 0},
                },
                "required": ["resource_key", "name", "score", "reasons"],
                "additionalProperties": false,
            }},
            "rules_version": {"type": "string"},
        },
        "required": ["request_key", "status", "open", "candidates", "rules_version"],
        "additionalProperties": false,
    })
}

/// A governance topic with its subject and schema.
#[derive(Debug, Clone)]
pub struct GovernanceSubject {
    /// What it carries: `alert` or `match`.
    pub kind: &'static str,
    /// The topic.
    pub topic: String,
    /// Its subject.
    pub subject: String,
    /// The schema of its messages.
    pub schema: Value,
}

/// The subjects of the alert and match topics named `alert_topic` and `match_topic`.
pub fn governance_subjects(alert_topic: &str, match_topic: &str, objection_topic: &str) -> Vec<GovernanceSubject> {
    vec![
        GovernanceSubject {
            kind: "alert",
            topic: alert_topic.to_owned(),
            subject: subject_for_topic(alert_topic),
            schema: alert_schema(),
        },
        GovernanceSubject {
            kind: "match",
            topic: match_topic.to_owned(),
            subject: subject_for_topic(match_topic),
            schema: match_schema(),
        },
        GovernanceSubject {
            kind: "objection",
            topic: objection_topic.to_owned(),
            subject: subject_for_topic(objection_topic),
            schema: objection_schema(),
        },
    ]
}

/// The schema of an objection (`hutong.objection.v1`).
pub fn objection_schema() -> Value {
    let nullable_time = json!({"type": ["string", "null"], "format": "date-time"});
    json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": "https://schemas.hutong.dev/sharing/v1/objection.json",
        "title": "数据异议 · objection",
        "description": "An objection on one department's published fact (校核纠错), as it stands: filed by a consumer, a department, an admin or the profile service (on a conflict), routed to the fact's source department, acknowledged, then closed by a corrected record (a higher revision of the same source id) or dismissed with a reason. Keyed by its id; each change is published again.",
        "type": "object",
        "properties": {
            "id": {"type": "string", "pattern": "^OB-[0-9]{4,}$"},
            "ce_id": text(),
            "entity": text(),
            "entity_key": text(),
            "department": {"description": "The source department the objection is routed to.", "type": "string", "minLength": 1},
            "kind": text(),
            "source_id": text(),
            "revision": {"type": "integer"},
            "pointer": {"description": "What is wrong in the record: a JSON pointer.", "type": "string", "pattern": "^/"},
            "reason": text(),
            "filed_by": text(),
            "filed_by_role": {"enum": ["consumer", "department", "admin", "service"]},
            "filed_at": time(),
            "due": {"description": "The reply deadline (working days).", "type": ["string", "null"], "format": "date"},
            "status": {"enum": ["open", "acknowledged", "closed", "dismissed"]},
            "acknowledged_at": nullable_time.clone(),
            "resolved_at": nullable_time,
            "resolution": {"type": "string"},
        },
        "required": ["id", "ce_id", "entity", "entity_key", "department", "kind", "source_id", "revision", "pointer", "reason", "filed_by", "filed_by_role", "filed_at", "status"],
        "additionalProperties": false,
    })
}
