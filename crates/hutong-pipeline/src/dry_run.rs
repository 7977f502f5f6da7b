//! The dry run of one record: what the gateway would publish, or why it would
//! reject it. `hutong validate` and the admin RPC `ValidateRecord` both answer
//! with it, so they agree.

use chrono::{DateTime, Utc};
use hutong_proto::v1::SourceRecord;
use hutong_standard::Violation;
use serde_json::{Value, json};

use crate::{Outcome, Pipeline, Prepared};

/// One message a valid record would become.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRecord {
    /// Entity of the standard.
    pub entity: String,
    /// The topic.
    pub topic: String,
    /// The Kafka key (the entity key).
    pub key: Option<String>,
    /// Its `ce_id`.
    pub event_id: String,
    /// The record as the topic would carry it.
    pub value: Value,
}

/// The outcome of a dry run of one record.
#[derive(Debug, Clone, PartialEq)]
pub struct DryRun {
    /// Each message, when valid.
    pub records: Vec<DryRecord>,
    /// Every reason, when rejected.
    pub violations: Vec<Violation>,
    /// The standard's flags of a valid record (accepted, worth a look).
    pub warnings: Vec<Violation>,
}

impl DryRun {
    /// Whether the record would be published.
    pub fn is_valid(&self) -> bool {
        self.violations.is_empty()
    }

    /// The JSON line `hutong validate` prints for it.
    pub fn to_json(&self, line: usize, source_id: &str) -> Value {
        if self.is_valid() {
            let mut answer = json!({
                "line": line,
                "source_id": source_id,
                "status": "VALID",
                "records": self.records.iter().map(|r| json!({
                    "entity": r.entity, "topic": r.topic, "key": r.key, "event_id": r.event_id, "value": r.value,
                })).collect::<Vec<_>>(),
            });
            if !self.warnings.is_empty() {
                answer["warnings"] = json!(self.warnings);
            }
            answer
        } else {
            json!({"line": line, "source_id": source_id, "status": "REJECTED", "violations": self.violations})
        }
    }
}

/// Runs one record through adapter and standard; nothing is published.
pub fn dry_run(pipeline: &Pipeline, department: &str, rec: &SourceRecord, received: DateTime<Utc>) -> DryRun {
    match pipeline.prepare(department, rec, received) {
        Outcome::Publish(prepared) => DryRun {
            warnings: Prepared::warnings(&prepared),
            records: prepared
                .into_iter()
                .map(|p| DryRecord {
                    entity: p.message.entity,
                    topic: p.message.topic,
                    key: p.message.key,
                    event_id: p.message.event.id,
                    value: p.record,
                })
                .collect(),
            violations: vec![],
        },
        Outcome::Reject { violations, .. } => DryRun { records: vec![], violations, warnings: vec![] },
    }
}
