//! Tests of the writer and the verifier.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use chrono::{DateTime, Utc};
use serde_json::json;
use sha2::{Digest, Sha256};

use super::*;

/// A retention long enough that `open` never deletes the fixed-date files of the tests.
const KEEP: u32 = 36_500;

fn at(time: &str) -> DateTime<Utc> {
    DateTime::parse_from_rfc3339(time).unwrap().with_timezone(&Utc)
}

fn day_file(dir: &Path, day: &str) -> PathBuf {
    dir.join(format!("audit-{day}.jsonl"))
}

fn read_lines(path: &Path) -> Vec<String> {
    fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let text: String = lines.iter().map(|line| format!("{line}\n")).collect();
    fs::write(path, text).unwrap();
}

/// A log of three entries on 2026-11-26, in audit-20261126.jsonl; returns the entries.
fn three_entries(dir: &Path) -> Vec<Entry> {
    let log = AuditLog::open(dir, KEEP).unwrap();
    let entries = ["alice", "bob", "carol"]
        .iter()
        .enumerate()
        .map(|(i, user)| {
            let time = at(&format!("2026-11-26T10:00:0{i}.250Z"));
            log.append_at(json!({"action": "read", "user": user, "rows": i}), time).unwrap()
        })
        .collect();
    log.sync().unwrap();
    entries
}

fn expect_tampered(result: Result<impl std::fmt::Debug, AuditError>) -> (PathBuf, usize, String) {
    match result {
        Err(AuditError::Tampered { file, line, reason }) => (file, line, reason),
        other => panic!("expected Tampered, got {other:?}"),
    }
}

#[test]
fn append_three_and_verify() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    assert_eq!(log.head(), (0, ZERO_HASH.to_owned()));
    assert_eq!(log.dir(), dir.path());
    let mut prev = ZERO_HASH.to_owned();
    for i in 1..=3u64 {
        let entry = log.append_at(json!({"n": i}), at("2026-11-26T08:00:00Z")).unwrap();
        assert_eq!(entry.seq, i);
        assert_eq!(entry.prev, prev);
        assert_eq!(log.head(), (i, entry.hash.clone()));
        prev = entry.hash;
    }
    log.sync().unwrap();
    let verified = verify(dir.path()).unwrap();
    let expected = Verified { files: 1, entries: 3, first_seq: 1, last_seq: 3, last_hash: log.head().1 };
    assert_eq!(verified, expected);
}

#[test]
fn line_format_and_hash_follow_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    // Key order of the event is kept; sub-millisecond digits are dropped.
    let entry = log.append_at(json!({"z": 1, "a": [true, "x"]}), at("2026-11-26T23:59:01.123456Z")).unwrap();
    let body = format!(
        r#"{{"seq":1,"time":"2026-11-26T23:59:01.123Z","prev":"{ZERO_HASH}","event":{{"z":1,"a":[true,"x"]}}}}"#
    );
    let hash = hex::encode(Sha256::digest(body.as_bytes()));
    assert_eq!(entry.hash, hash);
    let line = format!("{},\"hash\":\"{hash}\"}}", &body[..body.len() - 1]);
    assert_eq!(entry.to_line(), line);
    assert_eq!(read_lines(&day_file(dir.path(), "20261126")), vec![line]);
}

#[test]
fn reopen_continues_the_chain() {
    let dir = tempfile::tempdir().unwrap();
    let old = three_entries(dir.path());
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    assert_eq!(log.head(), (3, old[2].hash.clone()));
    let entry = log.append_at(json!({"action": "write"}), at("2026-11-26T11:00:00Z")).unwrap();
    assert_eq!(entry.seq, 4);
    assert_eq!(entry.prev, old[2].hash);
    let verified = verify(dir.path()).unwrap();
    assert_eq!((verified.entries, verified.last_seq, verified.last_hash), (4, 4, entry.hash));
}

#[test]
fn edited_field_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let mut lines = read_lines(&path);
    assert!(lines[1].contains(r#""user":"bob""#));
    lines[1] = lines[1].replace(r#""user":"bob""#, r#""user":"eve""#);
    write_lines(&path, &lines);
    let (file, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!((file, line), (path, 2));
    assert_eq!(reason, "hash mismatch: the entry was edited");
}

#[test]
fn deleted_middle_line_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let mut lines = read_lines(&path);
    lines.remove(1);
    write_lines(&path, &lines);
    let (file, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!((file, line), (path, 2));
    assert_eq!(reason, "seq 3 follows 1: entries were deleted or reordered");
}

#[test]
fn swapped_lines_are_detected() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let mut lines = read_lines(&path);
    lines.swap(1, 2);
    write_lines(&path, &lines);
    let (file, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!((file, line), (path, 2));
    assert!(reason.contains("deleted or reordered"), "{reason}");
}

#[test]
fn rewritten_prev_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let mut lines = read_lines(&path);
    // Replace entry 2 by a self-consistent forgery: right seq and hash, but a prev that is not entry 1's hash.
    let mut forged: Entry = serde_json::from_str(&lines[1]).unwrap();
    forged = Entry::build(forged.seq, forged.time, "ab".repeat(32), forged.event);
    lines[1] = forged.to_line();
    write_lines(&path, &lines);
    let (_, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!((line, reason.as_str()), (2, "prev does not match the previous entry's hash"));
}

#[test]
fn torn_last_line_is_cut_on_open_and_the_chain_continues() {
    let dir = tempfile::tempdir().unwrap();
    let old = three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let intact = fs::read(&path).unwrap();
    let mut torn = intact.clone();
    torn.extend_from_slice(br#"{"seq":4,"time":"2026-11-26T10:00:05.000Z","prev":"#);
    fs::write(&path, &torn).unwrap();
    let (_, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!(line, 4);
    assert!(reason.contains("torn"), "{reason}");

    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    assert_eq!(fs::read(&path).unwrap(), intact);
    assert_eq!(log.head(), (3, old[2].hash.clone()));
    let entry = log.append_at(json!({"action": "after crash"}), at("2026-11-26T10:00:06Z")).unwrap();
    assert_eq!((entry.seq, entry.prev.as_str()), (4, old[2].hash.as_str()));
    let verified = verify(dir.path()).unwrap();
    assert_eq!((verified.entries, verified.last_hash), (4, entry.hash));
}

#[test]
fn rotation_across_two_utc_days() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    log.append_at(json!({"n": 1}), at("2026-11-26T23:59:59.500Z")).unwrap();
    // 00:59:59.999 at UTC+1 is still the 26th in UTC; 01:00:00.100 at UTC+1 is the 27th.
    log.append_at(json!({"n": 2}), at("2026-11-27T00:59:59.999+01:00")).unwrap();
    let last = log.append_at(json!({"n": 3}), at("2026-11-27T01:00:00.100+01:00")).unwrap();
    log.sync().unwrap();
    assert_eq!(read_lines(&day_file(dir.path(), "20261126")).len(), 2);
    assert_eq!(read_lines(&day_file(dir.path(), "20261127")).len(), 1);
    assert_eq!(last.time, "2026-11-27T00:00:00.100Z");
    let verified = verify(dir.path()).unwrap();
    let expected = Verified { files: 2, entries: 3, first_seq: 1, last_seq: 3, last_hash: last.hash };
    assert_eq!(verified, expected);
}

#[test]
fn retention_deletes_old_files_and_verify_starts_later() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), 2).unwrap();
    log.append_at(json!({"n": 1}), at("2026-11-20T12:00:00Z")).unwrap();
    log.append_at(json!({"n": 2}), at("2026-11-20T13:00:00Z")).unwrap();
    log.append_at(json!({"n": 3}), at("2026-11-22T12:00:00Z")).unwrap();
    // On the 22nd the cut-off is the 20th, whose file is not older than that yet.
    assert!(day_file(dir.path(), "20261120").exists());
    // On the 24th the cut-off is the 22nd: the file of the 20th goes, the one of the 22nd stays.
    let last = log.append_at(json!({"n": 4}), at("2026-11-24T12:00:00Z")).unwrap();
    assert!(!day_file(dir.path(), "20261120").exists());
    assert!(day_file(dir.path(), "20261122").exists());
    // Retention wrote an anchor naming the first entry kept (seq 3) before entry 5.
    let lines = read_lines(&day_file(dir.path(), "20261124"));
    let anchor: Entry = serde_json::from_str(&lines[0]).unwrap();
    assert_eq!(
        (anchor.seq, anchor.event["type"].as_str(), anchor.event["first_seq"].as_u64()),
        (4, Some(RETENTION), Some(3))
    );
    let verified = verify(dir.path()).unwrap();
    let expected = Verified { files: 2, entries: 3, first_seq: 3, last_seq: 5, last_hash: last.hash };
    assert_eq!(verified, expected);
    drop(log);
    // Deleting the first entry kept is not retention: the anchor names seq 3, the log now starts at 4.
    let oldest = day_file(dir.path(), "20261122");
    write_lines(&oldest, &[]);
    let err = verify(dir.path()).unwrap_err();
    assert!(err.to_string().contains("deleted at the start"), "{err}");
}

#[test]
fn deleting_the_first_entries_without_retention_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let lines = read_lines(&path);
    write_lines(&path, &lines[1..]);
    let err = verify(dir.path()).unwrap_err();
    assert!(err.to_string().contains("no retention entry"), "{err}");
}

#[test]
fn retention_never_deletes_the_newest_file() {
    let dir = tempfile::tempdir().unwrap();
    {
        let log = AuditLog::open(dir.path(), KEEP).unwrap();
        log.append_at(json!({"n": 1}), at("2020-01-01T00:00:00Z")).unwrap();
        log.append_at(json!({"n": 2}), at("2020-01-02T00:00:00Z")).unwrap();
    }
    let log = AuditLog::open(dir.path(), 1).unwrap();
    assert!(!day_file(dir.path(), "20200101").exists());
    // Opening wrote the retention anchor (seq 3) at once, into today's file; the file of 2020-01-02, no
    // longer the newest, went then. The anchor names itself as the start, and the chain still verifies.
    assert_eq!(log.head().0, 3);
    assert!(!day_file(dir.path(), "20200102").exists());
    let verified = verify(dir.path()).unwrap();
    assert_eq!((verified.first_seq, verified.last_seq), (3, 3));
    drop(log);
    // The newest file is never deleted, even when it is past retention.
    let dir = tempfile::tempdir().unwrap();
    fs::write(day_file(dir.path(), "20200102"), "").unwrap();
    fs::write(day_file(dir.path(), "20200101"), "").unwrap();
    assert!(apply_retention(dir.path(), at("2026-01-01T00:00:00Z").date_naive(), 1));
    assert!(day_file(dir.path(), "20200102").exists() && !day_file(dir.path(), "20200101").exists());
}

#[test]
fn tampered_last_line_refuses_open() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let mut lines = read_lines(&path);
    lines[2] = lines[2].replace(r#""action":"read""#, r#""action":"nothing""#);
    write_lines(&path, &lines);
    let (file, line, reason) = expect_tampered(AuditLog::open(dir.path(), KEEP));
    assert_eq!((file, line), (path.clone(), 3));
    assert!(reason.contains("edited"), "{reason}");
    // Nothing was appended or cut.
    assert_eq!(read_lines(&path), lines);
}

#[test]
fn wrong_day_file_is_detected() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let moved = day_file(dir.path(), "20261125");
    fs::rename(day_file(dir.path(), "20261126"), &moved).unwrap();
    let (file, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!((file, line), (moved, 1));
    assert!(reason.contains("day file of 2026-11-25"), "{reason}");
}

#[test]
fn empty_directory_has_no_audit_files() {
    let dir = tempfile::tempdir().unwrap();
    fs::write(dir.path().join("notes.txt"), "not a day file").unwrap();
    let (file, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!((file.as_path(), line, reason.as_str()), (dir.path(), 0, "no audit files"));
    // A freshly opened log has no day file yet either.
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    log.sync().unwrap();
    assert!(verify(dir.path()).is_err());
}

#[test]
fn garbage_line_is_not_an_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    three_entries(dir.path());
    let path = day_file(dir.path(), "20261126");
    let mut lines = read_lines(&path);
    lines.insert(1, r#"{"hello":"world"}"#.to_owned());
    write_lines(&path, &lines);
    let (_, line, reason) = expect_tampered(verify(dir.path()));
    assert_eq!(line, 2);
    assert!(reason.starts_with("not an audit entry"), "{reason}");
}

#[test]
fn clock_going_backwards_keeps_times_in_order() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    let first = log.append_at(json!({"n": 1}), at("2026-11-27T00:00:01Z")).unwrap();
    let second = log.append_at(json!({"n": 2}), at("2026-11-26T23:59:00Z")).unwrap();
    assert_eq!(second.time, first.time);
    assert!(!day_file(dir.path(), "20261126").exists());
    assert_eq!(verify(dir.path()).unwrap().entries, 2);
}

#[test]
fn concurrent_appends_form_one_chain() {
    let dir = tempfile::tempdir().unwrap();
    let log = Arc::new(AuditLog::open(dir.path(), KEEP).unwrap());
    let threads: Vec<_> = (0..4)
        .map(|t| {
            let log = Arc::clone(&log);
            std::thread::spawn(move || {
                for i in 0..25 {
                    log.append(json!({"thread": t, "i": i})).unwrap();
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    log.sync().unwrap();
    let verified = verify(dir.path()).unwrap();
    assert_eq!((verified.entries, verified.last_seq), (100, 100));
    assert_eq!(verified.last_hash, log.head().1);
}

#[test]
fn a_second_writer_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let log = AuditLog::open(dir.path(), KEEP).unwrap();
    match AuditLog::open(dir.path(), KEEP) {
        Err(AuditError::Io { source, .. }) => assert_eq!(source.kind(), io::ErrorKind::WouldBlock),
        other => panic!("expected a WouldBlock Io error, got {other:?}"),
    }
    drop(log);
    AuditLog::open(dir.path(), KEEP).unwrap();
}
