//! The verifier: checks a whole log directory, line by line.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use chrono::{DateTime, Utc};

use crate::{AuditError, NOT_UTF8, RETENTION, ZERO_HASH, check_line, io_error, list_day_files};

/// What verification found on an intact log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Verified {
    /// Number of day files checked (empty ones included).
    pub files: usize,
    /// Number of entries checked.
    pub entries: u64,
    /// Seq of the first entry present: 1, or more when retention has deleted older files.
    pub first_seq: u64,
    /// Seq of the last entry.
    pub last_seq: u64,
    /// Hash of the last entry; compare it with a head recorded elsewhere to detect a cut or rewritten tail.
    pub last_hash: String,
}

/// Checks every file of `dir` in name order, every line: parses (else Tampered "not an audit entry"), recomputes the
/// hash (edited → "hash mismatch: the entry was edited"), checks seq = previous + 1 ("seq N follows M: entries were
/// deleted or reordered"), checks prev = previous hash ("prev does not match the previous entry's hash"), and that
/// the very first entry of the log either has seq 1 with zero prev, or (older files removed by retention) any seq —
/// report it in first_seq. Also fails if a file's entries belong to a different UTC day than its name, or the
/// directory has no audit files (Tampered with line 0, reason "no audit files"). Stops at the first problem.
///
/// Only files named `audit-YYYYMMDD.jsonl` are read. Empty day files are accepted (a crash can leave one between
/// creating a file and writing to it), but a log without any entry is Tampered with line 0, "no audit entries". A
/// last line without its newline is reported as torn ([`crate::AuditLog::open`] cuts it). Times must not decrease.
pub fn verify(dir: &Path) -> Result<Verified, AuditError> {
    let files = list_day_files(dir)?;
    if files.is_empty() {
        return Err(tampered(dir, 0, "no audit files".to_owned()));
    }
    let mut first_seq = 0;
    // Where the log starts (file, prev of its first entry), and the latest retention anchor seen.
    let mut start: Option<(std::path::PathBuf, String)> = None;
    let mut anchor: Option<(u64, String)> = None;
    let mut entries = 0;
    let mut last: Option<(u64, String, DateTime<Utc>)> = None;
    for (day, path) in &files {
        let mut reader = BufReader::new(File::open(path).map_err(|e| io_error(path, e))?);
        let mut bytes = Vec::new();
        let mut line_no = 0;
        loop {
            bytes.clear();
            if reader.read_until(b'\n', &mut bytes).map_err(|e| io_error(path, e))? == 0 {
                break;
            }
            line_no += 1;
            if bytes.pop() != Some(b'\n') {
                let reason = "torn last line (no trailing newline): a write was interrupted".to_owned();
                return Err(tampered(path, line_no, reason));
            }
            let line = std::str::from_utf8(&bytes).map_err(|_| tampered(path, line_no, NOT_UTF8.to_owned()))?;
            let (entry, time) = check_line(line).map_err(|reason| tampered(path, line_no, reason))?;
            if time.date_naive() != *day {
                let reason = format!("entry of {} in the day file of {day}", time.date_naive());
                return Err(tampered(path, line_no, reason));
            }
            match &last {
                None => {
                    if entry.seq == 1 && entry.prev != ZERO_HASH {
                        let reason = "the genesis entry (seq 1) must have a zero prev".to_owned();
                        return Err(tampered(path, line_no, reason));
                    }
                    first_seq = entry.seq;
                    start = Some((path.clone(), entry.prev.clone()));
                }
                Some((seq, hash, last_time)) => {
                    if entry.seq != seq + 1 {
                        let reason = format!("seq {} follows {seq}: entries were deleted or reordered", entry.seq);
                        return Err(tampered(path, line_no, reason));
                    }
                    if entry.prev != *hash {
                        let reason = "prev does not match the previous entry's hash".to_owned();
                        return Err(tampered(path, line_no, reason));
                    }
                    if time < *last_time {
                        let reason = format!("time {} is before the previous entry's", entry.time);
                        return Err(tampered(path, line_no, reason));
                    }
                }
            }
            if entry.event["type"] == RETENTION {
                let seq = entry.event["first_seq"].as_u64().unwrap_or(0);
                let prev = entry.event["first_prev"].as_str().unwrap_or_default().to_owned();
                anchor = Some((seq, prev));
            }
            entries += 1;
            last = Some((entry.seq, entry.hash, time));
        }
    }
    let Some((last_seq, last_hash, _)) = last else {
        return Err(tampered(dir, 0, "no audit entries".to_owned()));
    };
    // A log that does not start at seq 1 must start exactly where the latest retention entry says the
    // kept entries start: anything else is a deletion at the start of the log, not retention.
    if first_seq != 1 {
        let (file, prev) = start.expect("set with the first entry");
        if anchor.as_ref() != Some(&(first_seq, prev)) {
            let named = anchor.map_or("no retention entry".to_owned(), |(s, _)| format!("retention kept from seq {s}"));
            let reason = format!("the log starts at seq {first_seq} but {named}: entries were deleted at the start");
            return Err(tampered(&file, 1, reason));
        }
    }
    Ok(Verified { files: files.len(), entries, first_seq, last_seq, last_hash })
}

/// An [`AuditError::Tampered`].
fn tampered(file: &Path, line: usize, reason: String) -> AuditError {
    AuditError::Tampered { file: file.to_path_buf(), line, reason }
}
