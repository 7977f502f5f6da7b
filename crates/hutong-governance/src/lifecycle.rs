//! 交办反馈: an event's handling lifecycle. The merged event record (the standard's `event`)
//! is read into an [`EventState`]: its steps checked against the transitions of
//! `schemas/governance/lifecycle.toml` (an illegal one is an [`Anomaly`] on the event, never a
//! reason to drop it), how often it was returned or reopened, whether it was supervised, its
//! links to other departments' events (the thread), and its deadline in working days.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::Path,
};

use chrono::{DateTime, FixedOffset, NaiveTime};
use hutong_standard::Standard;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{Calendar, GovernanceError, beijing, calendar::Count, check_codes, read_rules, within};

/// The closing status: a transition out of it is a reopening.
pub const CLOSED: &str = "closed";
/// The status of a matter sent back (退回).
pub const RETURNED: &str = "returned";
/// The status of a matter put under supervision (督办).
pub const SUPERVISED: &str = "supervised";
/// The status that reopens a closed matter (重新打开).
pub const REOPENED: &str = "reopened";

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct LifecycleFile {
    version: u32,
    rules_version: String,
    initial: Vec<String>,
    transitions: BTreeMap<String, Vec<String>>,
    deadlines: DeadlineFile,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct DeadlineFile {
    default_working_days: u32,
    #[serde(default)]
    rule: Vec<DeadlineRule>,
}

/// A time limit for events the record gives none for: the first rule whose category (a code
/// or a group above it) and severity match.
#[derive(Debug, Clone, Deserialize, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct DeadlineRule {
    /// An event-category code; its subtypes match too.
    #[serde(default)]
    pub category: Option<String>,
    /// An event-severity code.
    #[serde(default)]
    pub severity: Option<String>,
    /// Working days after the day the event was reported.
    pub working_days: u32,
}

/// The lifecycle: where an event may start, which step may follow which, and the time limits.
#[derive(Debug, Clone)]
pub struct LifecycleRules {
    /// The rules' own version.
    pub rules_version: String,
    initial: BTreeSet<String>,
    transitions: BTreeMap<String, BTreeSet<String>>,
    default_working_days: u32,
    deadline_rules: Vec<DeadlineRule>,
}

impl LifecycleRules {
    /// Reads `lifecycle.toml` and checks every status against the event-status list, every
    /// category and severity against theirs.
    pub fn load(path: &Path, standard: &Standard) -> Result<Self, GovernanceError> {
        let f: LifecycleFile = read_rules(path)?;
        let fail = |message: String| GovernanceError::Rules { path: path.to_owned(), message };
        if f.version != 1 {
            return Err(fail(format!("version {}: this Hutong reads lifecycle rules of version 1", f.version)));
        }
        check_codes(path, standard, "event-status", "initial", &f.initial)?;
        for (from, to) in &f.transitions {
            check_codes(path, standard, "event-status", "transitions", std::iter::once(from).chain(to))?;
        }
        for s in [CLOSED, RETURNED, SUPERVISED, REOPENED] {
            if !f.transitions.contains_key(s) {
                return Err(fail(format!("transitions: no entry for {s:?} (every status needs its next steps)")));
            }
        }
        let statuses = standard.codes().get("event-status").map(|l| l.codes().to_vec()).unwrap_or_default();
        if let Some(missing) = statuses.iter().find(|c| !f.transitions.contains_key(&c.code)) {
            return Err(fail(format!("transitions: no entry for {:?} ({})", missing.code, missing.name)));
        }
        for r in &f.deadlines.rule {
            check_codes(path, standard, "event-category", "deadlines.rule.category", &r.category)?;
            check_codes(path, standard, "event-severity", "deadlines.rule.severity", &r.severity)?;
            if r.category.is_none() && r.severity.is_none() {
                return Err(fail("deadlines.rule: a rule names a category, a severity or both".into()));
            }
        }
        Ok(Self {
            rules_version: f.rules_version,
            initial: f.initial.into_iter().collect(),
            transitions: f.transitions.into_iter().map(|(k, v)| (k, v.into_iter().collect())).collect(),
            default_working_days: f.deadlines.default_working_days,
            deadline_rules: f.deadlines.rule,
        })
    }

    /// Whether `to` may follow `from`.
    pub fn allows(&self, from: &str, to: &str) -> bool {
        from == to || self.transitions.get(from).is_some_and(|t| t.contains(to))
    }

    /// The working days allowed to an event of `category` and `severity` without a stated
    /// time limit, and which rule gave them.
    pub fn working_days_for(&self, category: Option<&str>, severity: Option<&str>) -> (u32, String) {
        for r in &self.deadline_rules {
            let cat = r.category.as_deref().is_none_or(|c| category.is_some_and(|x| within(x, c)));
            let sev = r.severity.as_deref().is_none_or(|s| severity == Some(s));
            if cat && sev {
                let mut what = Vec::new();
                if let Some(c) = &r.category {
                    what.push(format!("category {c}"));
                }
                if let Some(s) = &r.severity {
                    what.push(format!("severity {s}"));
                }
                return (r.working_days, format!("rule: {}", what.join(", ")));
            }
        }
        (self.default_working_days, "rule: default".into())
    }

    /// The state of the merged event `record` (a record of the standard's `event`).
    pub fn analyse(&self, record: &Value, calendar: &Calendar) -> EventState {
        let text = |v: &Value| v.as_str().map(str::to_owned);
        let key = record["event_key"].as_str().unwrap_or_default().to_owned();
        let status = record["status"].as_str().unwrap_or_default().to_owned();
        let steps: Vec<Step> = record["status_history"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|s| Step {
                status: s["status"].as_str().unwrap_or_default().to_owned(),
                at: text(&s["at"]),
                department: text(&s["department"]),
            })
            .collect();
        let mut anomalies = Vec::new();
        if let Some(first) = steps.first()
            && !self.initial.contains(&first.status)
        {
            anomalies.push(Anomaly::new("illegal-start", 0, None, &first.status, first.at.clone()));
        }
        let (mut returned, mut reopened) = (0, 0);
        let mut supervised = status == SUPERVISED;
        for (i, s) in steps.iter().enumerate() {
            returned += u32::from(s.status == RETURNED);
            supervised |= s.status == SUPERVISED;
            let Some(prev) = i.checked_sub(1).map(|p| &steps[p]) else { continue };
            if prev.status == CLOSED && s.status != CLOSED {
                reopened += 1;
            }
            if !self.allows(&prev.status, &s.status) {
                anomalies.push(Anomaly::new("illegal-transition", i, Some(&prev.status), &s.status, s.at.clone()));
            }
            if let (Some(a), Some(b)) = (parse_time(prev.at.as_deref()), parse_time(s.at.as_deref()))
                && b < a
            {
                anomalies.push(Anomaly::new("steps-out-of-order", i, Some(&prev.status), &s.status, s.at.clone()));
            }
        }
        if steps.is_empty() && status == RETURNED {
            returned = 1;
        }
        if let Some(last) = steps.last()
            && last.status != status
        {
            anomalies.push(Anomaly::new("status-not-last-step", steps.len(), Some(&last.status), &status, None));
        }
        let closed_at = (status == CLOSED)
            .then(|| {
                parse_time(record["resolution"]["closed_at"].as_str()).or_else(|| {
                    steps.iter().rev().find(|s| s.status == CLOSED).and_then(|s| parse_time(s.at.as_deref()))
                })
            })
            .flatten();
        let reported_at = parse_time(record["reported_at"].as_str());
        let location = &record["location"];
        let grid_code = text(&location["grid_code"]);
        let division_code = text(&location["division_code"]);
        let community = grid_code
            .as_deref()
            .filter(|g| g.len() >= 12)
            .map(|g| g[..12].to_owned())
            .or_else(|| division_code.clone().filter(|d| d.len() == 12));
        let a = &location["address"];
        let address = a["address_text"]
            .as_str()
            .map(str::to_owned)
            .or_else(|| {
                let parts: Vec<&str> =
                    ["road", "house_number", "estate", "building"].iter().filter_map(|k| a[*k].as_str()).collect();
                (!parts.is_empty()).then(|| parts.concat())
            })
            .map(|a| normalise_address(&a))
            .filter(|a| !a.is_empty());
        let parties = record["parties"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|p| p["person_key"].as_str().or(p["organization_key"].as_str()).map(str::to_owned))
            .collect::<BTreeSet<_>>()
            .into_iter()
            .collect();
        let mut bodies: BTreeSet<String> = steps.iter().filter_map(|s| s.department.clone()).collect();
        bodies.extend(text(&record["handling_department"]));
        let links = record["related_events"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|l| {
                Some(Link {
                    event_key: l["event_key"].as_str()?.to_owned(),
                    relation: text(&l["relation"]).unwrap_or_default(),
                })
            })
            .collect();
        let category = text(&record["category"]);
        let severity = text(&record["severity"]);
        let deadline = self.deadline(record, reported_at, category.as_deref(), severity.as_deref(), calendar);
        EventState {
            department: key.split(':').next().unwrap_or_default().to_owned(),
            event_key: key,
            title: text(&record["title"]),
            open: status != CLOSED,
            status,
            category,
            severity,
            channel: text(&record["channel"]),
            grid_code,
            division_code,
            community,
            address,
            parties,
            handling_department: text(&record["handling_department"]),
            bodies: bodies.into_iter().collect(),
            assigned_from: text(&record["assigned_from"]),
            reported_at,
            closed_at,
            returned,
            reopened,
            supervised,
            satisfaction: text(&record["resolution"]["satisfaction"]),
            steps,
            anomalies,
            links,
            deadline,
        }
    }

    fn deadline(
        &self,
        record: &Value,
        reported_at: Option<DateTime<FixedOffset>>,
        category: Option<&str>,
        severity: Option<&str>,
        calendar: &Calendar,
    ) -> Option<Deadline> {
        if let Some(due) = parse_time(record["due_at"].as_str()) {
            return Some(Deadline { due, basis: "due_at".into(), working_days: None, uncovered: BTreeSet::new() });
        }
        let reported = reported_at?.with_timezone(&beijing());
        let (days, basis) = self.working_days_for(category, severity);
        let Count { value, uncovered } = calendar.add_working_days(reported.date_naive(), days);
        // The end of the last working day, Beijing time.
        let end = value.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("a time"));
        let due = end.and_local_timezone(beijing()).single()?;
        Some(Deadline { due, basis, working_days: Some(days), uncovered })
    }
}

/// One handling step as the record states it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Step {
    /// The status entered.
    pub status: String,
    /// When (RFC 3339, as stated).
    pub at: Option<String>,
    /// The body that took it.
    pub department: Option<String>,
}

/// A link from an event to another (转办, 派单, 移交, 合并, 重复件).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    /// The other event.
    pub event_key: String,
    /// How they are related (event-relation code).
    pub relation: String,
}

/// Something wrong with an event's steps, kept on the event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Anomaly {
    /// What: `illegal-start`, `illegal-transition`, `steps-out-of-order`, `status-not-last-step`.
    pub what: String,
    /// The step it was found at (0-based; the number of steps for the current status).
    pub step: usize,
    /// The status before.
    pub from: Option<String>,
    /// The status entered.
    pub to: String,
    /// When the step was taken.
    pub at: Option<String>,
}

impl Anomaly {
    fn new(what: &str, step: usize, from: Option<&str>, to: &str, at: Option<String>) -> Self {
        Self { what: what.into(), step, from: from.map(str::to_owned), to: to.into(), at }
    }
}

/// An event's time limit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Deadline {
    /// When it falls due.
    pub due: DateTime<FixedOffset>,
    /// Where it comes from: `due_at` (the record), or the rule that gave it.
    pub basis: String,
    /// The working days a rule allowed.
    pub working_days: Option<u32>,
    /// Years counted without a calendar file (the deadline may be off there).
    pub uncovered: BTreeSet<i32>,
}

/// Where an event stands against its deadline at a given time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum DeadlineStatus {
    /// Open, before the deadline.
    OnTime,
    /// Open, past the deadline.
    Overdue,
    /// Closed by the deadline.
    ClosedOnTime,
    /// Closed after it.
    ClosedLate,
    /// No deadline could be computed (no time limit and no report time).
    Unknown,
}

/// What the lifecycle knows of one event.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventState {
    /// Its key.
    pub event_key: String,
    /// The department that reported it (its key's scope).
    pub department: String,
    /// Its title.
    pub title: Option<String>,
    /// Its current status.
    pub status: String,
    /// Whether it is still open (not 办结).
    pub open: bool,
    /// event-category code.
    pub category: Option<String>,
    /// event-severity code.
    pub severity: Option<String>,
    /// reporting-channel code.
    pub channel: Option<String>,
    /// The grid it happened in.
    pub grid_code: Option<String>,
    /// The most specific division it happened in.
    pub division_code: Option<String>,
    /// Its community (社区/村, 12-digit division), from the grid or the division.
    pub community: Option<String>,
    /// Its address, normalised (for repeated-event signals).
    pub address: Option<String>,
    /// Persons and organisations involved (their keys).
    pub parties: Vec<String>,
    /// The body handling it now.
    pub handling_department: Option<String>,
    /// Every body named in its steps or handling it.
    pub bodies: Vec<String>,
    /// The body that assigned it (交办单位).
    pub assigned_from: Option<String>,
    /// When it was reported.
    pub reported_at: Option<DateTime<FixedOffset>>,
    /// When it was closed, if it is.
    pub closed_at: Option<DateTime<FixedOffset>>,
    /// Times it was returned (退回).
    pub returned: u32,
    /// Times it was reopened after 办结.
    pub reopened: u32,
    /// Whether it was put under supervision (督办).
    pub supervised: bool,
    /// 回访满意度 (satisfaction code).
    pub satisfaction: Option<String>,
    /// Its steps, as stated.
    pub steps: Vec<Step>,
    /// What is wrong with its steps.
    pub anomalies: Vec<Anomaly>,
    /// Its links to other events.
    pub links: Vec<Link>,
    /// Its time limit.
    pub deadline: Option<Deadline>,
}

impl EventState {
    /// Where it stands against its deadline at `now`, and by how many working days it is (or
    /// was) late.
    pub fn deadline_status(&self, now: DateTime<FixedOffset>, calendar: &Calendar) -> (DeadlineStatus, u32) {
        let Some(d) = &self.deadline else { return (DeadlineStatus::Unknown, 0) };
        let late = |until: DateTime<FixedOffset>| {
            calendar
                .working_days_between(
                    d.due.with_timezone(&beijing()).date_naive(),
                    until.with_timezone(&beijing()).date_naive(),
                )
                .value
        };
        match self.closed_at {
            Some(c) if c <= d.due => (DeadlineStatus::ClosedOnTime, 0),
            Some(c) => (DeadlineStatus::ClosedLate, late(c)),
            None if !self.open => (DeadlineStatus::ClosedOnTime, 0),
            None if now <= d.due => (DeadlineStatus::OnTime, 0),
            None => (DeadlineStatus::Overdue, late(now)),
        }
    }

    /// Working days from report to closure, for closed events with both times.
    pub fn handling_working_days(&self, calendar: &Calendar) -> Option<u32> {
        let (r, c) = (self.reported_at?, self.closed_at?);
        let local = |t: DateTime<FixedOffset>| t.with_timezone(&beijing()).date_naive();
        Some(calendar.working_days_between(local(r), local(c)).value)
    }
}

/// An RFC 3339 time, if `s` is one.
pub fn parse_time(s: Option<&str>) -> Option<DateTime<FixedOffset>> {
    DateTime::parse_from_rfc3339(s?).ok()
}

/// An address as compared for repeated events: NFKC-free (the standard already normalised
/// it), without spaces and punctuation.
fn normalise_address(a: &str) -> String {
    a.chars().filter(|c| !c.is_whitespace() && !c.is_ascii_punctuation() && !matches!(c, '，' | '。' | '、')).collect()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn rules() -> (LifecycleRules, Calendar) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).expect("standard");
        let rules = LifecycleRules::load(&root.join("governance/lifecycle.toml"), &standard).expect("lifecycle");
        (rules, Calendar::load(&root.join("calendar/cn")).expect("calendar"))
    }

    fn event(status: &str, steps: &[(&str, &str)]) -> Value {
        json!({
            "event_key": "rexian:GD1", "title": "t", "category": "0504", "channel": "02",
            "reported_at": "2026-11-02T09:00:00+08:00", "status": status,
            "status_history": steps.iter().map(|(s, at)| json!({"status": s, "at": at})).collect::<Vec<_>>(),
        })
    }

    #[test]
    fn legal_steps_pass_and_illegal_ones_are_anomalies_not_drops() {
        let (rules, calendar) = rules();
        let ok = rules.analyse(
            &event(
                "closed",
                &[
                    ("reported", "2026-11-02T09:00:00+08:00"),
                    ("accepted", "2026-11-02T09:05:00+08:00"),
                    ("assigned", "2026-11-02T10:00:00+08:00"),
                    ("feedback", "2026-11-04T10:00:00+08:00"),
                    ("closed", "2026-11-05T10:00:00+08:00"),
                ],
            ),
            &calendar,
        );
        assert_eq!(ok.anomalies, []);
        assert_eq!((ok.open, ok.closed_at.map(|t| t.to_rfc3339())), (false, Some("2026-11-05T10:00:00+08:00".into())));
        // 办结 → 受理 without 重新打开, and feedback before assignment.
        let bad = rules.analyse(
            &event(
                "accepted",
                &[
                    ("reported", "2026-11-02T09:00:00+08:00"),
                    ("accepted", "2026-11-02T09:05:00+08:00"),
                    ("feedback", "2026-11-03T09:00:00+08:00"),
                    ("closed", "2026-11-04T09:00:00+08:00"),
                    ("accepted", "2026-11-06T09:00:00+08:00"),
                ],
            ),
            &calendar,
        );
        let found: Vec<(&str, Option<&str>, &str)> =
            bad.anomalies.iter().map(|a| (a.what.as_str(), a.from.as_deref(), a.to.as_str())).collect();
        assert_eq!(
            found,
            [("illegal-transition", Some("accepted"), "feedback"), ("illegal-transition", Some("closed"), "accepted")]
        );
        assert_eq!((bad.reopened, bad.open), (1, true), "reopened all the same, and open again");
        // Reopening the proper way is no anomaly.
        let reopened = rules.analyse(
            &event(
                "assigned",
                &[
                    ("reported", "2026-11-02T09:00:00+08:00"),
                    ("accepted", "2026-11-02T09:05:00+08:00"),
                    ("closed", "2026-11-03T09:00:00+08:00"),
                    ("reopened", "2026-11-06T09:00:00+08:00"),
                    ("assigned", "2026-11-06T10:00:00+08:00"),
                ],
            ),
            &calendar,
        );
        assert_eq!((reopened.anomalies.len(), reopened.reopened), (0, 1));
        // Steps out of time order and a current status that is not the last step.
        let odd = rules.analyse(
            &event("closed", &[("reported", "2026-11-02T09:00:00+08:00"), ("accepted", "2026-11-01T09:00:00+08:00")]),
            &calendar,
        );
        let whats: Vec<&str> = odd.anomalies.iter().map(|a| a.what.as_str()).collect();
        assert_eq!(whats, ["steps-out-of-order", "status-not-last-step"]);
    }

    #[test]
    fn returns_and_supervision_are_counted() {
        let (rules, calendar) = rules();
        let steps = [
            ("reported", "2026-11-02T09:00:00+08:00"),
            ("accepted", "2026-11-02T09:05:00+08:00"),
            ("assigned", "2026-11-02T10:00:00+08:00"),
            ("returned", "2026-11-03T10:00:00+08:00"),
            ("assigned", "2026-11-03T11:00:00+08:00"),
            ("returned", "2026-11-04T10:00:00+08:00"),
            ("assigned", "2026-11-04T11:00:00+08:00"),
            ("supervised", "2026-11-05T11:00:00+08:00"),
        ];
        let s = rules.analyse(&event("supervised", &steps), &calendar);
        assert_eq!((s.returned, s.supervised, s.anomalies.len()), (2, true, 0));
    }

    #[test]
    fn deadlines_come_from_the_record_or_from_rules_in_working_days() {
        let (rules, calendar) = rules();
        let mut e = event("accepted", &[]);
        e["due_at"] = json!("2026-11-09T17:00:00+08:00");
        let stated = rules.analyse(&e, &calendar).deadline.expect("stated");
        assert_eq!(
            (stated.basis.as_str(), stated.due.to_rfc3339()),
            ("due_at", "2026-11-09T17:00:00+08:00".to_owned())
        );
        // No due_at: the rule for the category's group (05 生态环境) or the default.
        let (days, basis) = rules.working_days_for(Some("0504"), Some("4"));
        let computed = rules.analyse(&event("accepted", &[]), &calendar).deadline.expect("computed");
        assert_eq!((computed.working_days, computed.basis.clone()), (Some(days), basis));
        let expected = calendar.add_working_days("2026-11-02".parse().expect("date"), days).value;
        assert_eq!(computed.due.date_naive(), expected);
        // Against the clock.
        let mut s = rules.analyse(&e, &calendar);
        let at = |t: &str| DateTime::parse_from_rfc3339(t).expect("time");
        assert_eq!(s.deadline_status(at("2026-11-09T12:00:00+08:00"), &calendar), (DeadlineStatus::OnTime, 0));
        // Monday 9 November 17:00 passed; by Thursday 12 November it is 3 working days late.
        assert_eq!(s.deadline_status(at("2026-11-12T09:00:00+08:00"), &calendar), (DeadlineStatus::Overdue, 3));
        s.closed_at = Some(at("2026-11-10T09:00:00+08:00"));
        s.open = false;
        assert_eq!(s.deadline_status(at("2026-12-01T09:00:00+08:00"), &calendar), (DeadlineStatus::ClosedLate, 1));
    }
}
