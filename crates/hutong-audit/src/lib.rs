//! Tamper-evident, append-only, hash-chained audit log for the Hutong gateway.
//!
//! A log lives in one directory as day files named `audit-YYYYMMDD.jsonl` (the UTC day of their entries). Every
//! line is one compact JSON object `{"seq":..,"time":..,"prev":..,"event":..,"hash":..}`: `seq` counts from 1 across
//! all files, `prev` is the previous entry's `hash` (64 zeros for seq 1), and `hash` is the lowercase hex SHA-256 of
//! the same object without its `hash` key. [`AuditLog`] appends to such a log and [`verify`] checks one.
//!
//! A hash chain shows edits, deletions and reordering inside the log, but someone who can write the files can also
//! rewrite every later entry or cut the tail off. To detect that too, record [`AuditLog::head`] (or
//! [`Verified::last_hash`]) somewhere the writer of the log cannot change, and compare it later.

#![forbid(unsafe_code)]
#![warn(missing_docs)]

mod verify;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Days, NaiveDate, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use tracing::{info, warn};

pub use verify::{Verified, verify};

/// The `type` of the entry written after retention deleted day files: it names the first entry kept
/// (`first_seq`, `first_prev`), so [`verify`] can tell retention from a deletion at the start of the log.
pub const RETENTION: &str = "retention";

/// The `prev` of the genesis entry (seq 1): 64 zeros.
const ZERO_HASH: &str = "0000000000000000000000000000000000000000000000000000000000000000";

/// Name of the lock file that keeps a second writer out of a log directory.
const LOCK_FILE: &str = "audit.lock";

/// One entry of the log.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Entry {
    /// Position in the log: 1 for the first entry ever, then one more for each entry, across day files.
    pub seq: u64,
    /// When the entry was appended: RFC 3339 in UTC with milliseconds, e.g. `2026-11-26T23:59:01.123Z`.
    pub time: String,
    /// The `hash` of the previous entry; 64 zeros for the genesis entry (seq 1).
    pub prev: String,
    /// What happened, as given to [`AuditLog::append`].
    pub event: serde_json::Value,
    /// Lowercase hex SHA-256 of the compact JSON of this entry without the `hash` key.
    pub hash: String,
}

/// The hashed part of an entry: every field but `hash`, in the order of the line.
#[derive(Serialize)]
struct Body<'a> {
    seq: u64,
    time: &'a str,
    prev: &'a str,
    event: &'a serde_json::Value,
}

impl Entry {
    /// The JSON line (no newline).
    pub fn to_line(&self) -> String {
        // Serialising strings, integers and a `Value` (whose map keys are always strings) cannot fail.
        serde_json::to_string(self).expect("an audit entry always serialises to JSON")
    }

    /// Builds the entry that follows `prev` and computes its hash.
    fn build(seq: u64, time: String, prev: String, event: serde_json::Value) -> Entry {
        let body = Body { seq, time: &time, prev: &prev, event: &event };
        // Same reasoning as in `to_line`: this serialisation cannot fail.
        let bytes = serde_json::to_vec(&body).expect("an audit entry always serialises to JSON");
        let hash = sha256_hex(&bytes);
        Entry { seq, time, prev, event, hash }
    }
}

/// Errors of the audit log.
#[derive(Debug, thiserror::Error)]
pub enum AuditError {
    /// A file system operation on `path` failed.
    #[error("{path}: {source}")]
    Io {
        /// The file or directory concerned.
        path: PathBuf,
        /// What the operating system reported.
        #[source]
        source: io::Error,
    },
    /// The log is not intact: `line` (1-based; 0 for the file or directory as a whole) of `file` shows why.
    #[error("{file}:{line}: {reason}")]
    Tampered {
        /// The day file (or, for line 0, possibly the directory).
        file: PathBuf,
        /// The 1-based line number, or 0 when the problem is not one line's.
        line: usize,
        /// What is wrong, in words.
        reason: String,
    },
}

/// The append-only writer. Thread-safe (&self methods; internal Mutex).
///
/// Only one `AuditLog` may have a directory open at a time: [`AuditLog::open`] takes an exclusive lock on the file
/// `audit.lock` in it, released when the `AuditLog` is dropped.
#[derive(Debug)]
pub struct AuditLog {
    dir: PathBuf,
    retention_days: u32,
    /// Held (and locked) for as long as the log is open.
    _lock: File,
    state: Mutex<State>,
}

/// The mutable part of an [`AuditLog`].
#[derive(Debug)]
struct State {
    /// Seq of the last entry (0 when the log is empty).
    seq: u64,
    /// Hash of the last entry (zeros when the log is empty).
    hash: String,
    /// Time of the last entry, kept so that times never go backwards.
    last_time: Option<DateTime<Utc>>,
    /// The day file appended to, once the first append has opened it.
    current: Option<DayFile>,
    /// A file left with a partial line by a failed write whose rollback also failed; cut before the next append.
    repair: Option<PathBuf>,
    /// Whether files were created or deleted since the last directory fsync.
    dir_dirty: bool,
    /// Retention deleted files and the anchor naming the first entry kept is not written yet.
    anchor_due: bool,
}

/// An open day file.
#[derive(Debug)]
struct DayFile {
    day: NaiveDate,
    path: PathBuf,
    file: File,
}

impl AuditLog {
    /// Opens (creating) `dir`. Recovers seq and the last hash from the newest file's last complete line, whose hash
    /// it checks (a mismatch is AuditError::Tampered: refuse to extend a broken chain). A torn last line (no trailing
    /// newline, left by a crash mid-write) is cut off with a tracing::warn! — it was never acknowledged.
    /// Deletes day files older than `retention_days` days (by the date in the file name) and never the newest file.
    ///
    /// A file of day D is older than N days when D is before today (UTC) minus N days, so N = 0 keeps only today's
    /// file (and the newest). Files are deleted oldest first and deletion stops at the first failure (logged, not
    /// returned), so what remains is always an unbroken tail of the chain. If the newest file is empty, the last
    /// entry is taken from the newest non-empty file. Fails with an [`AuditError::Io`] of kind `WouldBlock` when
    /// another `AuditLog` has `dir` open.
    pub fn open(dir: &Path, retention_days: u32) -> Result<AuditLog, AuditError> {
        fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
        let lock = lock_dir(dir)?;
        let files = list_day_files(dir)?;
        let (seq, hash, last_time) = recover_head(&files)?;
        let deleted = apply_retention(dir, Utc::now().date_naive(), retention_days);
        let log = AuditLog {
            dir: dir.to_path_buf(),
            retention_days,
            _lock: lock,
            state: Mutex::new(State {
                seq,
                hash,
                last_time,
                current: None,
                repair: None,
                dir_dirty: deleted,
                anchor_due: deleted,
            }),
        };
        if deleted {
            // Written at once, so the log never rests without the anchor of its new start.
            log.append_inner(None, Utc::now())?;
        }
        Ok(log)
    }

    /// Appends one event now: builds the entry, writes line+"\n" with one write_all to the day file opened with
    /// append mode (a new file when the UTC day changes, applying retention then), flushes. Returns the entry.
    ///
    /// If the clock went back behind the last entry, the last entry's time is used instead, so that times never
    /// decrease and entries never go to an older day file. When a write fails, the partial line is cut off again and
    /// the error returned; the chain is not advanced.
    pub fn append(&self, event: serde_json::Value) -> Result<Entry, AuditError> {
        self.append_at(event, Utc::now())
    }

    /// Same with an explicit time (for tests of rotation and retention).
    ///
    /// The time is truncated to milliseconds. Retention on a change of day counts from the day of `time`.
    pub fn append_at(&self, event: serde_json::Value, time: DateTime<Utc>) -> Result<Entry, AuditError> {
        self.append_inner(Some(event), time).map(|e| e.expect("an event makes an entry"))
    }

    /// Appends `event` (after the retention anchor, when one is due); `None` writes only a due anchor.
    fn append_inner(&self, event: Option<serde_json::Value>, time: DateTime<Utc>) -> Result<Option<Entry>, AuditError> {
        let mut guard = self.lock();
        let state = &mut *guard;
        if let Some(path) = &state.repair {
            repair_tail(path)?;
            state.repair = None;
        }
        let mut time = DateTime::from_timestamp_millis(time.timestamp_millis()).unwrap_or(time);
        if let Some(last) = state.last_time
            && time < last
        {
            warn!(requested = %time, last = %last, "audit: clock went backwards; using the last entry's time");
            time = last;
        }
        let day = time.date_naive();
        let mut current = match state.current.take() {
            Some(current) if current.day == day => current,
            old => {
                let (current, deleted) = self.open_day_file(old, day)?;
                state.dir_dirty = true;
                state.anchor_due |= deleted;
                current
            }
        };

        if state.anchor_due {
            let anchor = self.retention_anchor(state.seq + 1, &state.hash);
            let written = self.write_entry(state, &mut current, anchor, time);
            if let Err(e) = written {
                state.current = Some(current);
                return Err(e);
            }
            state.anchor_due = false;
        }
        let result = match event {
            Some(event) => self.write_entry(state, &mut current, event, time).map(Some),
            None => Ok(None),
        };
        state.current = Some(current);
        result
    }

    /// The anchor entry after retention: the first entry the log now starts with (its seq and
    /// prev), read from the oldest remaining day file; the anchor itself when none is left.
    fn retention_anchor(&self, next_seq: u64, head: &str) -> serde_json::Value {
        let first = list_day_files(&self.dir).ok().and_then(|files| {
            files.iter().find_map(|(_, path)| {
                let text = fs::read_to_string(path).ok()?;
                let line = text.lines().next()?;
                check_line(line).ok().map(|(e, _)| (e.seq, e.prev))
            })
        });
        let (first_seq, first_prev) = first.unwrap_or_else(|| (next_seq, head.to_owned()));
        serde_json::json!({"type": RETENTION, "first_seq": first_seq, "first_prev": first_prev})
    }

    /// Writes one entry to `current` and advances the chain; on failure the partial line is cut.
    fn write_entry(
        &self,
        state: &mut State,
        current: &mut DayFile,
        event: serde_json::Value,
        time: DateTime<Utc>,
    ) -> Result<Entry, AuditError> {
        let entry = Entry::build(state.seq + 1, format_time(time), state.hash.clone(), event);
        let mut line = entry.to_line();
        line.push('\n');
        let before = current.file.metadata().map_err(|e| io_error(&current.path, e))?.len();
        if let Err(e) = current.file.write_all(line.as_bytes()).and_then(|()| current.file.flush()) {
            // Take back whatever part of the line reached the file, so that the next line starts on a fresh line.
            if let Err(cut) = current.file.set_len(before) {
                warn!(path = %current.path.display(), error = %cut, "audit: cannot cut a partly written line");
                state.repair = Some(current.path.clone());
            }
            return Err(io_error(&current.path, e));
        }
        state.seq = entry.seq;
        state.hash = entry.hash.clone();
        state.last_time = Some(time);
        Ok(entry)
    }

    /// fsync of the current file (the gateway calls it every second and at shutdown).
    ///
    /// Also syncs the directory (on Unix) when day files were created or deleted since the last call. Appends are
    /// not blocked while the disk flushes.
    pub fn sync(&self) -> Result<(), AuditError> {
        let (file, dir_dirty) = {
            let mut state = self.lock();
            let file = match &state.current {
                Some(current) => {
                    let clone = current.file.try_clone().map_err(|e| io_error(&current.path, e))?;
                    Some((clone, current.path.clone()))
                }
                None => None,
            };
            (file, std::mem::take(&mut state.dir_dirty))
        };
        let result = match file {
            Some((file, path)) => file.sync_data().map_err(|e| io_error(&path, e)),
            None => Ok(()),
        };
        let result = result.and_then(|()| if dir_dirty { sync_dir(&self.dir) } else { Ok(()) });
        if result.is_err() && dir_dirty {
            self.lock().dir_dirty = true;
        }
        result
    }

    /// (seq, hash) of the last entry; (0, 64 zeros) when empty.
    pub fn head(&self) -> (u64, String) {
        let state = self.lock();
        (state.seq, state.hash.clone())
    }

    /// The directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Locks the state. A panic while it was held cannot have left it half-updated (the chain advances only after a
    /// successful write, in plain assignments), so a poisoned lock is taken over.
    fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Opens the file of `day` for appending (cutting a torn tail it may have), after syncing the previous one, and
    /// applies retention counting from `day`.
    fn open_day_file(&self, old: Option<DayFile>, day: NaiveDate) -> Result<(DayFile, bool), AuditError> {
        if let Some(old) = old
            && let Err(e) = old.file.sync_data()
        {
            warn!(path = %old.path.display(), error = %e, "audit: cannot fsync the previous day file");
        }
        let path = self.dir.join(day_file_name(day));
        repair_tail(&path)?;
        let file = OpenOptions::new().create(true).append(true).open(&path).map_err(|e| io_error(&path, e))?;
        let deleted = apply_retention(&self.dir, day, self.retention_days);
        Ok((DayFile { day, path, file }, deleted))
    }
}

/// Takes the exclusive lock of the directory.
fn lock_dir(dir: &Path) -> Result<File, AuditError> {
    let path = dir.join(LOCK_FILE);
    let file = OpenOptions::new().create(true).truncate(false).write(true).open(&path);
    let file = file.map_err(|e| io_error(&path, e))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(fs::TryLockError::WouldBlock) => {
            Err(io_error(&path, io::Error::new(io::ErrorKind::WouldBlock, "another AuditLog has this directory open")))
        }
        Err(fs::TryLockError::Error(e)) if e.kind() == io::ErrorKind::Unsupported => {
            warn!(path = %path.display(), "audit: no file locks here; a second writer is not kept out");
            Ok(file)
        }
        Err(fs::TryLockError::Error(e)) => Err(io_error(&path, e)),
    }
}

/// Finds the last entry of the log: the last line of the newest non-empty day file, after cutting a torn tail.
fn recover_head(files: &[(NaiveDate, PathBuf)]) -> Result<(u64, String, Option<DateTime<Utc>>), AuditError> {
    for (_, path) in files.iter().rev() {
        let len = repair_tail(path)?;
        if len == 0 {
            continue;
        }
        let io_err = |e| io_error(path, e);
        let mut file = File::open(path).map_err(io_err)?;
        // The file ends with a newline at len - 1; the last line starts after the newline before it.
        let start = rfind_newline(&mut file, len - 1).map_err(io_err)?.map_or(0, |at| at + 1);
        let mut bytes = vec![0; usize::try_from(len - 1 - start).unwrap_or(usize::MAX)];
        file.seek(SeekFrom::Start(start)).map_err(io_err)?;
        file.read_exact(&mut bytes).map_err(io_err)?;
        let checked = std::str::from_utf8(&bytes).map_err(|_| NOT_UTF8.to_owned()).and_then(check_line);
        return match checked {
            Ok((entry, time)) => Ok((entry.seq, entry.hash, Some(time))),
            Err(reason) => {
                let line = count_newlines(&mut file, start).map_err(io_err)? + 1;
                Err(AuditError::Tampered { file: path.clone(), line, reason })
            }
        };
    }
    Ok((0, ZERO_HASH.to_owned(), None))
}

/// Reason for a line that is not UTF-8.
const NOT_UTF8: &str = "not an audit entry (not UTF-8)";

/// Parses one line (without its newline) and checks it on its own: the shape, that `hash` is the hash of the line
/// without it, and the formats of `seq`, `prev` and `time`. Returns the entry and its time, or the reason.
///
/// The hash is checked on the bytes of the line as they are: the writer's compact serialisation, with the `hash` key
/// last, so this is the hash of the entry's serialisation without `hash`, and any change to the bytes shows.
fn check_line(line: &str) -> Result<(Entry, DateTime<Utc>), String> {
    let entry: Entry = serde_json::from_str(line).map_err(|e| format!("not an audit entry ({e})"))?;
    if !is_hash(&entry.hash) {
        return Err("not an audit entry (hash is not 64 lowercase hex digits)".to_owned());
    }
    let Some(body) = line.strip_suffix(&format!(",\"hash\":\"{}\"}}", entry.hash)) else {
        return Err("not an audit entry (\"hash\" is not the last key of a compact line)".to_owned());
    };
    if sha256_hex(format!("{body}}}").as_bytes()) != entry.hash {
        return Err("hash mismatch: the entry was edited".to_owned());
    }
    if entry.seq == 0 {
        return Err("not an audit entry (seq 0)".to_owned());
    }
    if !is_hash(&entry.prev) {
        return Err("not an audit entry (prev is not 64 lowercase hex digits)".to_owned());
    }
    let time = DateTime::parse_from_rfc3339(&entry.time).map(|t| t.with_timezone(&Utc));
    match time {
        Ok(time) if format_time(time) == entry.time => Ok((entry, time)),
        _ => Err("not an audit entry (time is not RFC 3339 UTC with milliseconds and Z)".to_owned()),
    }
}

/// The format of `Entry::time`.
fn format_time(time: DateTime<Utc>) -> String {
    time.to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// Whether `s` is 64 lowercase hex digits.
fn is_hash(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// Lowercase hex SHA-256 of `bytes`.
fn sha256_hex(bytes: &[u8]) -> String {
    hex::encode(Sha256::digest(bytes))
}

/// The name of the day file of `day`.
fn day_file_name(day: NaiveDate) -> String {
    format!("audit-{}.jsonl", day.format("%Y%m%d"))
}

/// The day of a day file's name, or `None` for any other name.
fn parse_day_file_name(name: &str) -> Option<NaiveDate> {
    let digits = name.strip_prefix("audit-")?.strip_suffix(".jsonl")?;
    if digits.len() != 8 || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    NaiveDate::parse_from_str(digits, "%Y%m%d").ok()
}

/// The day files of `dir`, oldest first (which is also name order). Other files are ignored.
fn list_day_files(dir: &Path) -> Result<Vec<(NaiveDate, PathBuf)>, AuditError> {
    let mut files = Vec::new();
    for item in fs::read_dir(dir).map_err(|e| io_error(dir, e))? {
        let item = item.map_err(|e| io_error(dir, e))?;
        let Some(day) = item.file_name().to_str().and_then(parse_day_file_name) else {
            continue;
        };
        let path = item.path();
        if path.is_file() {
            files.push((day, path));
        }
    }
    files.sort();
    Ok(files)
}

/// Deletes the day files older than `retention_days` days before `today`, oldest first, never the newest file.
/// Stops at the first failure (logged) so that the remaining files stay an unbroken tail of the chain. Returns
/// whether anything was deleted.
fn apply_retention(dir: &Path, today: NaiveDate, retention_days: u32) -> bool {
    let Some(cutoff) = today.checked_sub_days(Days::new(u64::from(retention_days))) else {
        return false;
    };
    let files = match list_day_files(dir) {
        Ok(files) => files,
        Err(e) => {
            warn!(error = %e, "audit: retention cannot list the log directory");
            return false;
        }
    };
    let mut deleted = false;
    let keep_newest = files.len().saturating_sub(1);
    for (day, path) in files.iter().take(keep_newest) {
        if *day >= cutoff {
            break;
        }
        match fs::remove_file(path) {
            Ok(()) => {
                info!(path = %path.display(), retention_days, "audit: deleted a day file past retention");
                deleted = true;
            }
            Err(e) => {
                warn!(path = %path.display(), error = %e, "audit: retention cannot delete a day file");
                break;
            }
        }
    }
    deleted
}

/// Cuts a torn last line (bytes after the last newline) off the file at `path`, if any, with a warning. Returns the
/// length of the complete part; 0 for a missing file.
fn repair_tail(path: &Path) -> Result<u64, AuditError> {
    let io_err = |e| io_error(path, e);
    let mut file = match File::open(path) {
        Ok(file) => file,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(0),
        Err(e) => return Err(io_err(e)),
    };
    let len = file.metadata().map_err(io_err)?.len();
    if len == 0 {
        return Ok(0);
    }
    let mut last = [0u8; 1];
    file.seek(SeekFrom::Start(len - 1)).map_err(io_err)?;
    file.read_exact(&mut last).map_err(io_err)?;
    if last[0] == b'\n' {
        return Ok(len);
    }
    let keep = rfind_newline(&mut file, len).map_err(io_err)?.map_or(0, |at| at + 1);
    warn!(
        path = %path.display(),
        cut_bytes = len - keep,
        "audit: cutting a torn last line left by an interrupted write (it was never acknowledged)"
    );
    let file = OpenOptions::new().write(true).open(path).map_err(io_err)?;
    file.set_len(keep).map_err(io_err)?;
    file.sync_all().map_err(io_err)?;
    Ok(keep)
}

/// The offset of the last newline before `end`, reading backwards in blocks.
fn rfind_newline(file: &mut File, end: u64) -> io::Result<Option<u64>> {
    const BLOCK: u64 = 64 * 1024;
    let mut buf = vec![0u8; BLOCK as usize];
    let mut end = end;
    while end > 0 {
        let start = end.saturating_sub(BLOCK);
        let block = &mut buf[..(end - start) as usize];
        file.seek(SeekFrom::Start(start))?;
        file.read_exact(block)?;
        if let Some(at) = block.iter().rposition(|&b| b == b'\n') {
            return Ok(Some(start + at as u64));
        }
        end = start;
    }
    Ok(None)
}

/// The number of newlines before `end` (for line numbers in errors).
fn count_newlines(file: &mut File, end: u64) -> io::Result<usize> {
    file.seek(SeekFrom::Start(0))?;
    let mut reader = io::BufReader::new(file.take(end));
    let mut buf = [0u8; 64 * 1024];
    let mut count = 0;
    loop {
        let n = reader.read(&mut buf)?;
        if n == 0 {
            return Ok(count);
        }
        count += buf[..n].iter().filter(|&&b| b == b'\n').count();
    }
}

/// Makes created and deleted directory entries durable.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> Result<(), AuditError> {
    File::open(dir).and_then(|d| d.sync_all()).map_err(|e| io_error(dir, e))
}

/// Makes created and deleted directory entries durable (nothing to do off Unix).
#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> Result<(), AuditError> {
    Ok(())
}

/// An [`AuditError::Io`] for `path`.
fn io_error(path: &Path, source: io::Error) -> AuditError {
    AuditError::Io { path: path.to_path_buf(), source }
}

#[cfg(test)]
mod tests;
