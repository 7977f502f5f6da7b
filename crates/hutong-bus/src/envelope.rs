use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

/// `content-type` of every canonical value.
pub const CONTENT_TYPE_JSON: &str = "application/json";

/// Namespace of Hutong's UUIDv5 event ids.
const EVENT_NAMESPACE: Uuid = Uuid::from_u128(0x6875_746f_6e67_4000_8000_6576_656e_7473);

/// The deterministic event id of output `index` of a source record.
///
/// A retried record has the same (department, kind, source_id, revision), so it
/// gets the same id and consumers can de-duplicate on `ce_id`.
pub fn event_id(department: &str, kind: &str, source_id: &str, revision: u64, index: usize) -> String {
    // Length-prefixed fields: no two distinct tuples can collide by concatenation.
    let mut name = Vec::with_capacity(64 + source_id.len());
    for part in [department, kind, source_id] {
        name.extend_from_slice(&(part.len() as u32).to_be_bytes());
        name.extend_from_slice(part.as_bytes());
    }
    name.extend_from_slice(&revision.to_be_bytes());
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
}

impl CloudEvent {
    /// The Kafka headers of this event, `content-type` included.
    pub fn headers(&self) -> Vec<(&'static str, String)> {
        let mut h = vec![
            ("ce_specversion", "1.0".to_owned()),
            ("ce_id", self.id.clone()),
            ("ce_source", self.source.clone()),
            ("ce_type", self.ty.clone()),
            ("ce_time", self.time.to_rfc3339_opts(SecondsFormat::Millis, true)),
            ("content-type", CONTENT_TYPE_JSON.to_owned()),
        ];
        if let Some(s) = &self.subject {
            h.push(("ce_subject", s.clone()));
        }
        if let Some(s) = &self.dataschema {
            h.push(("ce_dataschema", s.clone()));
        }
        h
    }
}

/// One message ready for the bus.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutboundMessage {
    /// Topic it goes to.
    pub topic: String,
    /// Kafka key (the entity key); `None` for unkeyed messages.
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
        let a = event_id("gongan", "household_registration", "HJ1", 1, 0);
        assert_eq!(a, event_id("gongan", "household_registration", "HJ1", 1, 0));
        assert_ne!(a, event_id("gongan", "household_registration", "HJ1", 2, 0));
        assert_ne!(a, event_id("gongan", "household_registration", "HJ1", 1, 1));
        assert_ne!(a, event_id("gongan", "household_registrationH", "J1", 1, 0));
        assert_eq!(Uuid::parse_str(&a).unwrap().get_version_num(), 5);
    }

    /// Pinned: consumers de-duplicate on `ce_id`, so a change to the derivation would make
    /// every retry after an upgrade a new event. The values were computed independently
    /// (Python: SHA-1 over the namespace and the length-prefixed fields, RFC 4122 version 5).
    #[test]
    fn event_ids_are_pinned() {
        assert_eq!(
            event_id("gongan", "household_registration", "HJ2024001", 1, 0),
            "6c12f1ba-8aa9-5828-89da-ac3e099da595"
        );
        assert_eq!(event_id("sifa", "mediation_case", "TJ-2024-0001", 3, 2), "085c7fca-e3c2-54a4-b8fc-3b7141d7de41");
        // The dead-letter copy of a record (output index usize::MAX).
        assert_eq!(
            event_id("gongan", "household_registration", "HJ2024001", 1, usize::MAX),
            "64a86f0a-157c-57f0-9955-0a6d5626aadd"
        );
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
        };
        let h: std::collections::BTreeMap<_, _> = ev.headers().into_iter().collect();
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_time"], "2026-01-02T03:04:05.000Z");
        assert_eq!(h["content-type"], "application/json");
        for k in ["ce_id", "ce_source", "ce_type", "ce_subject", "ce_dataschema"] {
            assert!(h.contains_key(k), "{k}");
        }
    }
}
