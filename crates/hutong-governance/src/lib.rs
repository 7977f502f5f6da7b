//! 交办反馈督办, 供需对接, 成效评估: the governance side of Hutong's consumer service, as pure
//! functions of records and rules. No store, no Kafka, no clock of its own: the consumer service
//! (hutong-profiles) feeds it merged records and the time, keeps what it returns, and publishes
//! the alerts and matches.
//!
//! - [`calendar`]: the working-day calendar (China's official holidays and adjusted working
//!   days, one file per year with its source).
//! - [`lifecycle`]: an event's handling steps checked against the lifecycle's transitions
//!   (anomalies recorded, never dropped), its thread links, its deadline in working days.
//! - [`alerts`]: supervision alerts (提醒 → 预警 → 督办): overdue, returned too often, reopened,
//!   repeated at one address or party; each with a stable id, raised once.
//! - [`matching`]: service requests ranked against service resources (category, coverage,
//!   target groups, capacity and opening).
//! - [`report`]: the effectiveness report (成效评估) as data, and rendered to HTML (charts as
//!   SVG, readable offline), CSV and JSON.
//!
//! Every rule file lives under `schemas/governance/` (the calendar under `schemas/calendar/`),
//! is versioned, and is checked against the standard's code lists when loaded ([`Governance`]).
#![warn(missing_docs)]

pub mod alerts;
pub mod calendar;
pub mod lifecycle;
pub mod matching;
pub mod report;

use std::path::{Path, PathBuf};

use hutong_standard::Standard;

pub use alerts::{Alert, AlertRules, Level};
pub use calendar::{Calendar, Count};
pub use lifecycle::{Anomaly, EventState, LifecycleRules};
pub use matching::{Candidate, MatchingRules};

/// A rule or calendar file that cannot be used, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum GovernanceError {
    /// A file or folder could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file does not parse or does not fit the standard.
    #[error("{path}: {message}")]
    Rules {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// Beijing time (UTC+8, no daylight saving): the local time of every deadline and period.
pub fn beijing() -> chrono::FixedOffset {
    chrono::FixedOffset::east_opt(8 * 3600).expect("a valid offset")
}

/// A point in time a person writes when narrowing a search (`--since`, a console filter): an RFC
/// 3339 time (`2026-12-01T00:00:00+08:00`) or a duration back from `now` (`24h`, `7d`).
pub fn since(text: &str, now: chrono::DateTime<chrono::Utc>) -> Result<chrono::DateTime<chrono::Utc>, String> {
    let text = text.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(text) {
        return Ok(t.with_timezone(&chrono::Utc));
    }
    let back = humantime::parse_duration(text)
        .map_err(|e| format!("{text:?} is neither an RFC 3339 time nor a duration like 24h or 7d ({e})"))?;
    let back = chrono::Duration::from_std(back).map_err(|e| format!("{text:?}: {e}"))?;
    now.checked_sub_signed(back).ok_or_else(|| format!("{text:?} goes back before any date"))
}

/// Every governance rule, loaded and checked together.
#[derive(Debug)]
pub struct Governance {
    /// The working-day calendar.
    pub calendar: Calendar,
    /// Event lifecycle and deadlines.
    pub lifecycle: LifecycleRules,
    /// Supervision alerts.
    pub alerts: AlertRules,
    /// Matching needs to resources.
    pub matching: MatchingRules,
}

impl Governance {
    /// The rules in `rules_dir` (`lifecycle.toml`, `alerts.toml`, `matching.toml`) and the
    /// calendar in `calendar_dir`, checked against `standard`'s code lists.
    pub fn load(rules_dir: &Path, calendar_dir: &Path, standard: &Standard) -> Result<Self, GovernanceError> {
        Ok(Self {
            calendar: Calendar::load(calendar_dir)?,
            lifecycle: LifecycleRules::load(&rules_dir.join("lifecycle.toml"), standard)?,
            alerts: AlertRules::load(&rules_dir.join("alerts.toml"), standard)?,
            matching: MatchingRules::load(&rules_dir.join("matching.toml"), standard)?,
        })
    }

    /// The shipped rules of a `schemas/` folder: `governance/` and `calendar/cn/`.
    pub fn load_shipped(schemas_dir: &Path, standard: &Standard) -> Result<Self, GovernanceError> {
        Self::load(&schemas_dir.join("governance"), &schemas_dir.join("calendar/cn"), standard)
    }
}

/// Reads and parses a versioned TOML rule file.
pub(crate) fn read_rules<T: serde::de::DeserializeOwned>(path: &Path) -> Result<T, GovernanceError> {
    let text = std::fs::read_to_string(path).map_err(|e| GovernanceError::Io { path: path.to_owned(), source: e })?;
    toml::from_str(&text).map_err(|e| GovernanceError::Rules { path: path.to_owned(), message: e.to_string() })
}

/// Checks that every code of `codes` is in the standard's list `list`.
pub(crate) fn check_codes<'a>(
    path: &Path,
    standard: &Standard,
    list: &str,
    what: &str,
    codes: impl IntoIterator<Item = &'a String>,
) -> Result<(), GovernanceError> {
    let fail = |message: String| GovernanceError::Rules { path: path.to_owned(), message };
    let l = standard.codes().get(list).ok_or_else(|| fail(format!("the standard has no code list {list}")))?;
    for c in codes {
        if !l.contains(c) {
            return Err(fail(format!("{what}: {c:?} is not a code of {list} ({})", l.title)));
        }
    }
    Ok(())
}

/// Whether `code` is `ancestor` or under it in a hierarchical code list (codes that extend
/// their parent's digits, as the event-category, service-category and special-population
/// lists do).
pub(crate) fn within(code: &str, ancestor: &str) -> bool {
    code.starts_with(ancestor)
}
