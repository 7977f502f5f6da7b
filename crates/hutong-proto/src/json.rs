//! The JSON shape of Hutong's records and answers, shared by the NDJSON wrappers of `hutong
//! ingest`, the gateway's `POST /v1/submit` and every `--json` output.

use chrono::DateTime;
use serde_json::{Map, Value, json};

use crate::{
    Timestamp,
    v1::{Op, RecordResult, SourceRecord, Status, Violation},
};

/// A record from its JSON wrapper `{"source_id", "revision", "op", "occurred_at", "charset",
/// "payload" | "payload_base64"}` (an NDJSON line, a record of `POST /v1/submit`): of source
/// kind `kind`, `source_id` defaulting to `fallback_id`; `Err` says what is malformed. Other
/// keys (`kind`, a rejects file's `violations` …) are ignored.
pub fn source_record(mut obj: Map<String, Value>, kind: &str, fallback_id: &str) -> Result<SourceRecord, String> {
    let source_id = match obj.remove("source_id") {
        Some(Value::String(s)) => s,
        Some(Value::Number(n)) => n.to_string(),
        None => fallback_id.to_owned(),
        Some(other) => return Err(format!("source_id must be a string, got {other}")),
    };
    let revision = obj
        .get("revision")
        .map_or(Ok(1), |r| r.as_u64().ok_or_else(|| "revision must be a non-negative integer".to_owned()))?;
    let op = match obj.get("op").and_then(Value::as_str).unwrap_or("UPSERT").to_ascii_uppercase().as_str() {
        "UPSERT" => Op::Upsert,
        "DELETE" => Op::Delete,
        "EVENT" => Op::Event,
        other => return Err(format!("op must be UPSERT, DELETE or EVENT, got {other:?}")),
    };
    let occurred_at = match obj.get("occurred_at").and_then(Value::as_str) {
        Some(t) => {
            let t = DateTime::parse_from_rfc3339(t).map_err(|e| format!("occurred_at {t:?} is not RFC 3339: {e}"))?;
            Some(Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 })
        }
        None => None,
    };
    let charset = obj.get("charset").and_then(Value::as_str).unwrap_or_default().to_owned();
    let payload = if let Some(b64) = obj.remove("payload_base64") {
        // Legacy exports (GBK/GB18030) travel as their original bytes.
        use base64::Engine as _;
        let text = b64.as_str().ok_or("payload_base64 must be a string")?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(|e| format!("payload_base64 is not base64: {e}"))?
    } else {
        match obj.remove("payload") {
            // A string payload is sent as its bytes (e.g. a CSV-turned-JSON text).
            Some(Value::String(s)) => s.into_bytes(),
            Some(v) => serde_json::to_vec(&v).map_err(|e| e.to_string())?,
            None => Vec::new(),
        }
    };
    Ok(SourceRecord { kind: kind.to_owned(), source_id, revision, op: op as i32, occurred_at, payload, charset })
}

/// The name of a [`Status`] as the answers print it (`PUBLISHED`, `REJECTED` …).
pub fn status_name(status: i32) -> &'static str {
    match Status::try_from(status).unwrap_or(Status::Unspecified) {
        Status::Published => "PUBLISHED",
        Status::Rejected => "REJECTED",
        Status::Duplicate => "DUPLICATE",
        Status::Spooled => "SPOOLED",
        Status::Unspecified => "UNSPECIFIED",
    }
}

/// Violations (or warnings) as JSON: `[{"pointer", "rule", "message"}]`.
pub fn violations(list: &[Violation]) -> Value {
    list.iter().map(|v| json!({"pointer": v.pointer, "rule": v.rule, "message": v.message})).collect()
}

/// A record's answer as JSON: `source_id`, `status`, `receipts`, `violations`, `warnings`.
pub fn record_result(r: &RecordResult) -> Value {
    json!({
        "index": r.index,
        "source_id": r.source_id,
        "revision": r.revision,
        "status": status_name(r.status),
        "receipts": r.receipts.iter().map(|x| json!({
            "entity": x.entity, "topic": x.topic, "partition": x.partition, "offset": x.offset, "event_id": x.event_id,
        })).collect::<Vec<_>>(),
        "violations": violations(&r.violations),
        "warnings": violations(&r.warnings),
    })
}
