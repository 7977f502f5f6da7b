use std::borrow::Cow;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `content-type` of every canonical value.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Namespace of Hutong's UUIDv5 event ids.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6875_746f_6e67_4000_8000_6576_656e_7473);

/// The output index of a record's dead-letter copy (its event id differs from every output's).
pub const DEAD_LETTER_INDEX: usize = usize::MAX;

/// What a canonical message says happened to its entity (the last part of `ce_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Op {
    /// The entity is as the value says.
    Upsert,
    /// The entity is gone (a tombstone on compacted topics).
    Delete,
    /// Something happened (an event record).
    Event,
}

impl Op {
    /// `upsert`, `delete` or `event`.
    pub fn name(self) -> &'static str {
        match self {
            Self::Upsert => "upsert",
            Self::Delete => "delete",
            Self::Event => "event",
        }
    }
}

/// The digest of a record's content (its op, payload bytes and charset): the first 16 bytes of
/// their SHA-256. It is part of every event id, so the same (department, kind, source_id,
/// revision) resent with other content, or as a DELETE of what it upserted, is a new event, never
/// taken for a retry.
pub type ContentDigest = [u8; 16];

/// The [`ContentDigest`] of a record: `op`, and its payload in `charset`.
pub fn content_digest(op: Op, payload: &[u8], charset: &str) -> ContentDigest {
    use sha2::{Digest as _, Sha256};
    let mut h = Sha256::new();
    for part in [op.name(), &charset.to_ascii_lowercase()] {
        h.update((part.len() as u32).to_be_bytes());
        h.update(part.as_bytes());
    }
    h.update(payload);
    let full = h.finalize();
    let mut out = [0u8; 16];
    out.copy_from_slice(&full[..16]);
    out
}

/// Where messages come from: one source record of a department.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Origin<'a> {
    /// The department (from its identity, never from the payload).
    pub department: &'a str,
    /// The department's source kind.
    pub kind: &'a str,
    /// The record's source id as it may travel (pseudonymised where it is personal data).
    pub source_id: &'a str,
    /// Its revision.
    pub revision: u64,
    /// The digest of its content.
    pub digest: ContentDigest,
}

impl Origin<'_> {
    /// `/departments/<department>/<kind>`: the `ce_source` of its messages.
    pub fn source(&self) -> String {
        format!("/departments/{}/{}", self.department, self.kind)
    }

    /// The event id of its output `index` ([`DEAD_LETTER_INDEX`] for the dead-letter copy).
    pub fn event_id(&self, index: usize) -> String {
        event_id(self.department, self.kind, self.source_id, self.revision, &self.digest, index)
    }
}

impl CloudEvent {
    /// The event of output `index` of `origin`: `cn.hutong.<entity>.<op>`, its subject the
    /// entity key (never a raw identifier), `time` when it happened.
    pub fn canonical(
        origin: &Origin<'_>,
        index: usize,
        entity: &str,
        op: Op,
        subject: Option<String>,
        time: DateTime<Utc>,
    ) -> Self {
        Self {
            id: origin.event_id(index),
            source: origin.source(),
            ty: format!("cn.hutong.{entity}.{}", op.name()),
            subject,
            time,
            dataschema: None,
            source_id: Some(origin.source_id.to_owned()),
            revision: Some(origin.revision),
            flags: None,
        }
    }
}

/// The entity name a dead-letter message carries.
pub const DEAD_LETTER_ENTITY: &str = "dlq";

/// A rejected record as the dead-letter topic keeps it: who sent what, the original payload
/// exactly (as JSON when it parses as UTF-8 JSON, else as base64), and every reason.
#[derive(Debug, Clone, Copy)]
pub struct DeadLetter<'a, V> {
    /// The record.
    pub origin: Origin<'a>,
    /// What it asked for.
    pub op: Op,
    /// The charset it was sent in (empty: UTF-8).
    pub charset: &'a str,
    /// The payload as sent.
    pub payload: &'a [u8],
    /// The source id as sent (the dead-letter topic is restricted: it keeps what was sent).
    pub source_id: &'a str,
    /// When the gateway received it.
    pub received: DateTime<Utc>,
    /// When it happened in the source system, if the department said (`occurred_at`).
    pub occurred: Option<DateTime<Utc>>,
    /// Why it was rejected.
    pub violations: &'a V,
}

impl<V: Serialize> DeadLetter<'_, V> {
    /// The message for `topic`, keyed by its event id.
    pub fn into_message(self, topic: String) -> OutboundMessage {
        use base64::Engine as _;
        let utf8 = self.charset.is_empty() || self.charset.eq_ignore_ascii_case("utf-8");
        let base64 = || base64::engine::general_purpose::STANDARD.encode(self.payload);
        // Readable JSON where it parses; the exact bytes as well unless the JSON gives them back
        // (another spacing, key order or escape): `hutong dlq replay` sends those bytes again, and
        // the content digest, so the event ids, are of the bytes.
        let payload = match serde_json::from_slice::<serde_json::Value>(self.payload) {
            Ok(v) if utf8 => match serde_json::to_vec(&v) {
                Ok(again) if again == self.payload => serde_json::json!({ "json": v }),
                _ => serde_json::json!({ "json": v, "base64": base64() }),
            },
            _ => serde_json::json!({ "base64": base64() }),
        };
        let value = serde_json::json!({
            "department": self.origin.department,
            "kind": self.origin.kind,
            "source_id": self.source_id,
            "revision": self.origin.revision,
            "op": self.op.name(),
            "charset": self.charset,
            "received_at": self.received.to_rfc3339(),
            "occurred_at": self.occurred.map(|t| t.to_rfc3339()),
            "payload": payload,
            "violations": self.violations,
        });
        let id = self.origin.event_id(DEAD_LETTER_INDEX);
        OutboundMessage {
            topic,
            entity: DEAD_LETTER_ENTITY.to_owned(),
            key: Some(id.clone()),
            event: CloudEvent {
                id,
                source: self.origin.source(),
                ty: "cn.hutong.dlq.rejected".to_owned(),
                subject: None,
                time: self.received,
                dataschema: None,
                source_id: Some(self.origin.source_id.to_owned()),
                revision: Some(self.origin.revision),
                flags: None,
            },
            value: Some(serde_json::to_vec(&value).expect("json values serialise")),
        }
    }
}

/// The deterministic event id of output `index` of a source record.
///
/// A retried record has the same (department, kind, source_id, revision) and the same content,
/// so it gets the same id and consumers can de-duplicate on `ce_id`; the same revision with other
/// content gets another id.
pub fn event_id(
    department: &str,
    kind: &str,
    source_id: &str,
    revision: u64,
    digest: &ContentDigest,
    index: usize,
) -> String {
    // Length-prefixed fields: no two distinct tuples can collide by concatenation.
    let mut name = Vec::with_capacity(64 + source_id.len());
    for part in [department, kind, source_id] {
        name.extend_from_slice(&(part.len() as u32).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    name.extend_from_slice(&revision.to_be_bytes());
    name.extend_from_slice(digest);
    name.extend_from_slice(&(index as u32).to_be_bytes());
    Uuid::new_v5(&EVENT_NAMESPACE, &name).to_string()
}

/// CloudEvents 1.0 attributes of one message (Kafka protocol binding, binary mode).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CloudEvent {
    /// `ce_id`.
    pub id: String,
    /// `ce_source`, `/departments/<dept>/<kind>`.
    pub source: String,
    /// `ce_type`, e.g. `cn.hutong.person.upsert`.
    pub ty: String,
    /// `ce_subject`: the entity key (never a raw identifier).
    pub subject: Option<String>,
    /// `ce_time`.
    pub time: DateTime<Utc>,
    /// `ce_dataschema`: the `$id` of the value's schema.
    pub dataschema: Option<String>,
    /// `ce_sourceid` (extension): the record's source id, pseudonymised where it is personal data.
    #[serde(default)]
    pub source_id: Option<String>,
    /// `ce_revision` (extension): the record's revision; a consumer keeps the highest per
    /// (department, kind, source id).
    #[serde(default)]
    pub revision: Option<u64>,
    /// `ce_flags` (extension): the standard's flagging checks the record failed
    /// (`consistency:citizen-id-birth-date` …), space-separated; accepted, but worth a look.
    #[serde(default)]
    pub flags: Option<String>,
}

impl CloudEvent {
    /// The Kafka headers of this event, `content-type` included, borrowed where the event
    /// holds them (librdkafka copies them anyway).
    pub fn headers(&self) -> Vec<(&'static str, Cow<'_, str>)> {
        let mut h = Vec::with_capacity(11);
        h.extend([
            ("ce_specversion", Cow::Borrowed("1.0")),
            ("ce_id", Cow::Borrowed(self.id.as_str())),
            ("ce_source", Cow::Borrowed(self.source.as_str())),
            ("ce_type", Cow::Borrowed(self.ty.as_str())),
            ("ce_time", Cow::Owned(self.time.to_rfc3339_opts(SecondsFormat::Millis, true))),
            ("content-type", Cow::Borrowed(CONTENT_TYPE_JSON)),
        ]);
        let optional = [
            ("ce_subject", self.subject.as_deref()),
            ("ce_dataschema", self.dataschema.as_deref()),
            ("ce_sourceid", self.source_id.as_deref()),
        ];
        h.extend(optional.into_iter().filter_map(|(k, v)| v.map(|v| (k, Cow::Borrowed(v)))));
        if let Some(r) = self.revision {
            h.push(("ce_revision", Cow::Owned(r.to_string())));
        }
        if let Some(f) = &self.flags {
            h.push(("ce_flags", Cow::Borrowed(f.as_str())));
        }
        h
    }
}

/// One message ready for the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Topic it goes to.
    pub topic: String,
    /// The entity it carries (`dlq` for a dead letter, empty for other topics); absent from
    /// spool files written before it existed.
    #[serde(default)]
    pub entity: String,
    /// Kafka key ([`crate::fact_key`] on entity topics: the producer partitions by its entity
    /// key, [`crate::EntityPartitioner`]); `None` for unkeyed messages.
    pub key: Option<String>,
    /// The CloudEvents attributes, sent as headers.
    pub event: CloudEvent,
    /// The value; `None` is a tombstone (a DELETE on a compacted topic).
    pub value: Option<Vec<u8>>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_deterministic_and_distinct() {
        let d = content_digest(Op::Upsert, b"{}", "");
        let a = event_id("gongan", "household_registration", "HJ1", 1, &d, 0);
        assert_eq!(a, event_id("gongan", "household_registration", "HJ1", 1, &d, 0));
        assert_ne!(a, event_id("gongan", "household_registration", "HJ1", 2, &d, 0));
        assert_ne!(a, event_id("gongan", "household_registration", "HJ1", 1, &d, 1));
        assert_ne!(a, event_id("gongan", "household_registrationH", "J1", 1, &d, 0));
        // The same revision with other content is another event.
        assert_ne!(
            a,
            event_id("gongan", "household_registration", "HJ1", 1, &content_digest(Op::Upsert, b"{ }", ""), 0)
        );
        assert_ne!(content_digest(Op::Upsert, b"{}", ""), content_digest(Op::Upsert, b"{}", "gbk"));
        assert_eq!(content_digest(Op::Upsert, b"{}", "GBK"), content_digest(Op::Upsert, b"{}", "gbk"));
        // A DELETE of what the same revision upserted is another event too.
        assert_ne!(content_digest(Op::Upsert, b"{}", ""), content_digest(Op::Delete, b"{}", ""));
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    /// Pinned: consumers de-duplicate on `ce_id`, so a change to the derivation would make
    /// every retry after an upgrade a new event. The values were computed independently
    /// (Python: SHA-256 of the length-prefixed op and charset then the payload, SHA-1 over the namespace and the length-prefixed fields,
    /// RFC 4122 version 5).
    #[test]
    fn event_ids_are_pinned() {
        let d = content_digest(Op::Upsert, "{\"XM\":\"张三\"}".as_bytes(), "");
        assert_eq!(hex(&d), "0aff61533bda304da18c4477737cc504");
        assert_eq!(
            event_id("gongan", "household_registration", "HJ2024001", 1, &d, 0),
            "9c84773b-40fe-5507-81a8-a8635ba08b69"
        );
        let gbk = content_digest(Op::Upsert, "{\"XM\":\"张三\"}".as_bytes(), "GBK");
        assert_eq!(
            event_id("sifa", "mediation_case", "TJ-2024-0001", 3, &gbk, 2),
            "90d2f759-dedc-5b34-8a4b-acf6d781fe77"
        );
        // The dead-letter copy of a record (output index usize::MAX).
        assert_eq!(
            event_id("gongan", "household_registration", "HJ2024001", 1, &d, DEAD_LETTER_INDEX),
            "16c7cddf-21b8-57bf-9cfc-fdd535dfd379"
        );
    }

    fn hex(b: &[u8]) -> String {
        b.iter().map(|x| format!("{x:02x}")).collect()
    }

    #[test]
    fn headers_carry_every_required_attribute() {
        let ev = CloudEvent {
            id: "x".into(),
            source: "/departments/gongan/household_registration".into(),
            ty: "cn.hutong.person.upsert".into(),
            subject: Some("k".into()),
            time: DateTime::parse_from_rfc3339("2026-01-02T03:04:05Z").unwrap().with_timezone(&Utc),
            dataschema: Some("https://schemas.hutong.dev/standard/v1/person.json".into()),
            source_id: Some("HJ1".into()),
            revision: Some(3),
            flags: None,
        };
        let h: std::collections::BTreeMap<_, _> = ev.headers().into_iter().collect();
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_time"], "2026-01-02T03:04:05.000Z");
        assert_eq!(h["content-type"], "application/json");
        assert_eq!((&*h["ce_sourceid"], &*h["ce_revision"]), ("HJ1", "3"));
        for k in ["ce_id", "ce_source", "ce_type", "ce_subject", "ce_dataschema"] {
            assert!(h.contains_key(k), "{k}");
        }
    }
}
