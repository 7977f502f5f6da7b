//! Reading a department's NDJSON export into source records.
//!
//! Each line is either a wrapper
//! `{"source_id": "…", "revision": 1, "op": "UPSERT", "occurred_at": "…", "charset": "…", "payload": {…}}`
//! or a bare payload object; a bare payload's source id is its `--id-field`
//! value and its revision its `--revision-field` value (an integer, or a time:
//! its Unix seconds). Reading strictly (`hutong ingest`), a record without a
//! stable source id or revision is refused before anything is sent: a position
//! in a file is not an identity (a re-export reuses it for another record, and
//! consumers de-duplicating on `ce_id` would drop it). Leniently (`hutong
//! validate`, a dry run), such a record gets `<file>:<line>` and revision 1. A
//! line that is not JSON is still sent (as its bytes, `<file>:<line>`) so the
//! gateway answers it and keeps it in the dead-letter topic.

use std::path::{Path, PathBuf};

use chrono::DateTime;
use hutong_proto::v1::SourceRecord;
use serde_json::Value;

/// A source record and the line it came from.
#[derive(Debug, Clone)]
pub struct Line {
    /// Line number in the file (the row of a sheet), from 1.
    pub number: usize,
    /// The sheet of a workbook the row is on.
    pub sheet: Option<String>,
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
    /// A record without a stable source id or revision, read strictly.
    #[error("{at}: {message}")]
    Unstable {
        /// The file and line (or sheet and row).
        at: String,
        /// What is missing and how to give it.
        message: String,
    },
    /// A wrapper line is malformed (its payload is sent as it is; the wrapper is the tool's).
    #[error("{at}: {message}")]
    Wrapper {
        /// The file and line.
        at: String,
        /// What is wrong.
        message: String,
    },
    /// A table (CSV, a sheet) that cannot be read as records: its header, a row's width, its
    /// encoding.
    #[error("{at}: {message}")]
    Table {
        /// The file and line (or sheet and row).
        at: String,
        /// What is wrong and how to fix it.
        message: String,
    },
}

/// Where the source id and revision of bare payload lines come from, and whether a record
/// without them is refused (`strict`) or given its position.
#[derive(Debug, Clone, Copy, Default)]
pub struct Identity<'a> {
    /// The payload field holding the source id.
    pub id_field: Option<&'a str>,
    /// The payload field holding the revision: an integer, or a time (its Unix seconds).
    pub revision_field: Option<&'a str>,
    /// Refuse a record without a stable source id and revision.
    pub strict: bool,
}

/// Reads a department's NDJSON export: each line a wrapper or a bare payload
/// (see the module's description), of source kind `kind`.
pub fn read_ndjson(path: &Path, kind: &str, id_field: Option<&str>) -> Result<Vec<Line>, RecordError> {
    read_export(path, kind, Identity { id_field, ..Identity::default() })
}

/// [`read_ndjson`] with the source ids and revisions taken as `identity` says.
pub fn read_export(path: &Path, kind: &str, identity: Identity<'_>) -> Result<Vec<Line>, RecordError> {
    let text = std::fs::read(path).map_err(|source| RecordError::Read { path: path.to_owned(), source })?;
    let name = path.file_name().and_then(|n| n.to_str()).unwrap_or("input");
    let mut out = Vec::new();
    for (i, raw) in text.split(|b| *b == b'\n').enumerate() {
        let raw = raw.strip_suffix(b"\r").unwrap_or(raw);
        if raw.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        let at = Place { path, sheet: None, number: i + 1 };
        let record = match serde_json::from_slice::<Value>(raw) {
            Ok(Value::Object(obj)) if obj.contains_key("payload") || obj.contains_key("payload_base64") => {
                if identity.strict && !obj.get("source_id").is_some_and(|s| s.is_string() || s.is_number()) {
                    return Err(at.unstable(
                        "the wrapper has no source_id: give each record its id in the department's system \
                         (a line number is not one: a re-export would reuse it for another record)"
                            .into(),
                    ));
                }
                hutong_proto::json::source_record(obj, kind, &at.fallback_id(name))
                    .map_err(|message| RecordError::Wrapper { at: at.to_string(), message })?
            }
            Ok(v) => bare(&v, raw.to_vec(), kind, identity, &at, name)?,
            Err(_) => SourceRecord {
                kind: kind.to_owned(),
                source_id: at.fallback_id(name),
                revision: 1,
                payload: raw.to_vec(),
                ..Default::default()
            },
        };
        out.push(Line { number: at.number, sheet: None, record });
    }
    Ok(out)
}

/// Where a record is in its file: a line of NDJSON or CSV, a row of a sheet.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Place<'a> {
    pub(crate) path: &'a Path,
    pub(crate) sheet: Option<&'a str>,
    pub(crate) number: usize,
}

impl std::fmt::Display for Place<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self.sheet {
            Some(s) => write!(f, "{}[{s}]:{}", self.path.display(), self.number),
            None => write!(f, "{}:{}", self.path.display(), self.number),
        }
    }
}

impl Place<'_> {
    /// The position as an id, for a lenient read only: `<file>:<line>` or `<file>:<sheet>:<row>`.
    pub(crate) fn fallback_id(&self, name: &str) -> String {
        match self.sheet {
            Some(s) => format!("{name}:{s}:{}", self.number),
            None => format!("{name}:{}", self.number),
        }
    }

    pub(crate) fn unstable(&self, message: String) -> RecordError {
        RecordError::Unstable { at: self.to_string(), message }
    }
}

/// A bare payload (an NDJSON line, a CSV or sheet row) as a record: its source id and revision
/// from the fields `identity` names; read strictly, refused without them.
pub(crate) fn bare(
    v: &Value,
    payload: Vec<u8>,
    kind: &str,
    identity: Identity<'_>,
    at: &Place<'_>,
    name: &str,
) -> Result<SourceRecord, RecordError> {
    let id_field = identity.id_field;
    let source_id = id_field
        .and_then(|f| v.get(f))
        .and_then(|x| x.as_str().map(|s| s.trim().to_owned()).or_else(|| x.as_number().map(|n| n.to_string())))
        .filter(|s| !s.is_empty());
    let revision = identity.revision_field.and_then(|f| v.get(f)).and_then(revision_of);
    let (source_id, revision) = match (source_id, revision, identity.strict) {
        (Some(id), Some(rev), _) => (id, rev),
        (None, _, true) => {
            return Err(at.unstable(match id_field {
                Some(f) => format!("no source id in field {f:?} (--id-field)"),
                None => "a bare payload line needs its source id: name the field that holds the record's \
                         id in the department's system with --id-field (a line number is not an id: a \
                         re-export would reuse it for another record, and consumers drop a repeated \
                         event id)"
                    .to_owned(),
            }));
        }
        (Some(_), None, true) => {
            return Err(at.unstable(match identity.revision_field {
                Some(f) => format!("no revision in field {f:?} (an integer, or a time)"),
                None => "a bare payload line needs its revision: name a version or last-modified column \
                         with --revision-field (an integer, or a time: its Unix seconds), so an updated \
                         record supersedes the one before"
                    .to_owned(),
            }));
        }
        (id, rev, false) => (id.unwrap_or_else(|| at.fallback_id(name)), rev.unwrap_or(1)),
    };
    Ok(SourceRecord { kind: kind.to_owned(), source_id, revision, payload, ..Default::default() })
}

/// A revision from a field: a non-negative integer (or its digits), or a time — RFC 3339,
/// `YYYY-MM-DD HH:MM:SS` or `YYYY-MM-DD` (Beijing time) — as Unix seconds.
fn revision_of(v: &Value) -> Option<u64> {
    if let Some(n) = v.as_u64() {
        return Some(n);
    }
    let s = v.as_str()?.trim();
    if let Ok(n) = s.parse::<u64>() {
        return Some(n);
    }
    let beijing = chrono::FixedOffset::east_opt(8 * 3600)?;
    let t = DateTime::parse_from_rfc3339(s).ok().or_else(|| {
        let naive = chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S")
            .or_else(|_| chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%dT%H:%M:%S"))
            .ok()
            .or_else(|| chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").ok()?.and_hms_opt(0, 0, 0))?;
        naive.and_local_timezone(beijing).single()
    })?;
    u64::try_from(t.timestamp()).ok()
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
    use hutong_proto::v1::Op;

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

    /// Read strictly (`hutong ingest`), a record needs a stable source id and a revision: from
    /// the wrapper, or from the named fields of a bare line (a time as its Unix seconds).
    #[test]
    fn strict_reading_refuses_positions_as_identities() {
        let dir = tempfile::tempdir().unwrap();
        let f = dir.path().join("x.ndjson");
        let strict = |id_field, revision_field| Identity { id_field, revision_field, strict: true };
        std::fs::write(&f, "{\"ID\":\"T7\",\"XM\":\"李四\",\"UPDATED\":\"2026-11-03 19:00:00\",\"VER\":4}\n").unwrap();
        let e = read_export(&f, "k", strict(None, None)).unwrap_err().to_string();
        assert!(e.contains("x.ndjson:1") && e.contains("--id-field") && e.contains("re-export"), "{e}");
        let e = read_export(&f, "k", strict(Some("ID"), None)).unwrap_err().to_string();
        assert!(e.contains("--revision-field"), "{e}");
        let e = read_export(&f, "k", strict(Some("NOPE"), Some("VER"))).unwrap_err().to_string();
        assert!(e.contains("\"NOPE\""), "{e}");
        let by_version = read_export(&f, "k", strict(Some("ID"), Some("VER"))).unwrap();
        assert_eq!((by_version[0].record.source_id.as_str(), by_version[0].record.revision), ("T7", 4));
        let by_time = read_export(&f, "k", strict(Some("ID"), Some("UPDATED"))).unwrap();
        assert_eq!(by_time[0].record.revision, 1_793_703_600, "2026-11-03 19:00 Beijing time, Unix seconds");
        std::fs::write(&f, "{\"revision\":2,\"payload\":{\"XM\":\"张三\"}}\n").unwrap();
        let e = read_export(&f, "k", strict(None, None)).unwrap_err().to_string();
        assert!(e.contains("no source_id"), "{e}");
        // A dry run stays lenient: the position, revision 1.
        std::fs::write(&f, "{\"XM\":\"张三\"}\n").unwrap();
        let lenient = read_export(&f, "k", Identity::default()).unwrap();
        assert_eq!((lenient[0].record.source_id.as_str(), lenient[0].record.revision), ("x.ndjson:1", 1));
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
