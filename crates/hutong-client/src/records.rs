//! Reading a department's NDJSON export into source records.
//!
//! Each line is either a wrapper
//! `{"source_id": "…", "revision": 1, "op": "UPSERT", "occurred_at": "…", "charset": "…", "payload": {…}}`
//! or a bare payload object; a bare payload's source id is its `--id-field`
//! value, else `<file>:<line>`. A line that is not JSON is still sent (as its
//! bytes) so the gateway answers it and keeps it in the dead-letter topic.

use std::path::{Path, PathBuf};

use chrono::DateTime;
use hutong_proto::{
    Timestamp,
    v1::{Op, SourceRecord},
};
use serde_json::Value;

/// A source record and the line it came from.
#[derive(Debug, Clone)]
pub struct Line {
    /// Line number in the file, from 1.
    pub number: usize,
    /// The record to submit.
    pub record: SourceRecord,
}

/// Why an export could not be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordError {
    /// The file could not be read.
    #[error("reading {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A wrapper line is malformed (its payload is sent as it is; the wrapper is the tool's).
    #[error("{}:{line}: {message}", path.display())]
    Wrapper {
        /// The file.
        path: PathBuf,
        /// The line.
        line: usize,
        /// What is wrong.
        message: String,
    },
}

/// Reads a department's NDJSON export: each line a wrapper or a bare payload
/// (see the module's description), of source kind `kind`.
pub fn read_ndjson(path: &Path, kind: &str, id_field: Option<&str>) -> Result<Vec<Line>, RecordError> {
    let text = std::fs::read(path).map_err(|source| RecordError::Read { path: path.to_owned(), source })?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input");
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let number = i + 1;
        let fallback_id = format!("{name}:{number}");
        let record = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(obj)) if obj.contains_key("payload") || obj.contains_key("payload_base64") => {
                wrapper(obj, kind, &fallback_id).map_err(|message| RecordError::Wrapper {
                    path: path.to_owned(),
                    line: number,
                    message,
                })?
            }
            Ok(v) => {
                let source_id = id_field
                    .and_then(|f| v.get(f))
                    .and_then(|x| x.as_str().map(str::to_owned).or_else(|| x.as_number().map(|n| n.to_string())))
                    .unwrap_or(fallback_id);
                SourceRecord {
                    kind: kind.to_owned(),
                    source_id,
                    revision: 1,
                    payload: raw.to_vec(),
                    ..Default::default()
                }
            }
            Err(_) => SourceRecord {
                kind: kind.to_owned(),
                source_id: fallback_id,
                revision: 1,
                payload: raw.to_vec(),
                ..Default::default()
            },
        };
        out.push(Line { number, record });
    }
    Ok(out)
}

fn wrapper(mut obj: serde_json::Map<String, Value>, kind: &str, fallback_id: &str) -> Result<SourceRecord, String> {
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

/// The payload of `rec` as JSON, decoded from its charset (`gbk`, `gb18030`; empty is
/// UTF-8); `None` when it is not JSON in that charset.
pub fn decoded_payload(rec: &SourceRecord) -> Option<Value> {
    let label = if rec.charset.is_empty() { "utf-8" } else { rec.charset.as_str() };
    let encoding = encoding_rs::Encoding::for_label(label.as_bytes())?;
    let (text, _, malformed) = encoding.decode(&rec.payload);
    if malformed {
        return None;
    }
    serde_json::from_str(&text).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_wrappers_bare_payloads_and_garbage() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.ndjson");
        std::fs::write(
            &f,
            "{\"source_id\":\"A\",\"revision\":3,\"op\":\"delete\",\"payload\":{\"XM\":\"张三\"}}\n\n{\"ID\":7,\"XM\":\"李四\"}\nnot json\n",
        )
        .unwrap();
        let lines = read_ndjson(&f, "k", Some("ID")).unwrap();
        assert_eq!(lines.len(), 3);
        assert_eq!(lines[0].record.source_id, "A");
        assert_eq!(lines[0].record.revision, 3);
        assert_eq!(lines[0].record.op, Op::Delete as i32);
        assert_eq!(lines[1].record.source_id, "7");
        assert_eq!(lines[1].number, 3);
        assert_eq!(lines[2].record.source_id, "x.ndjson:4");
        assert_eq!(lines[2].record.payload, b"not json");
        assert_eq!(decoded_payload(&lines[1].record), Some(serde_json::json!({"ID": 7, "XM": "李四"})));
        assert_eq!(decoded_payload(&lines[2].record), None);
    }

    #[test]
    fn gbk_exports_travel_as_their_bytes_and_decode() {
        use base64::Engine as _;
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("gbk.ndjson");
        let (gbk, _, _) = encoding_rs::GBK.encode(r#"{"XM":"周玉珍"}"#);
        let b64 = base64::engine::general_purpose::STANDARD.encode(&gbk);
        std::fs::write(&f, format!("{{\"source_id\":\"G1\",\"charset\":\"gbk\",\"payload_base64\":\"{b64}\"}}\n"))
            .unwrap();
        let lines = read_ndjson(&f, "k", None).unwrap();
        assert_eq!(lines[0].record.payload, gbk.as_ref());
        assert_eq!(lines[0].record.charset, "gbk");
        assert_eq!(decoded_payload(&lines[0].record), Some(serde_json::json!({"XM": "周玉珍"})));
        std::fs::write(&f, "{\"source_id\":[1],\"payload\":{}}\n").unwrap();
        let e = read_ndjson(&f, "k", None).unwrap_err().to_string();
        assert!(e.contains("gbk.ndjson:1") && e.contains("source_id must be a string"), "{e}");
    }
}
