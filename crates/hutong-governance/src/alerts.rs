//! 督查督办: supervision alerts, from the rules of `schemas/governance/alerts.toml`.
//!
//! - **overdue**: an open event nears its deadline (提醒), passes it (预警), stays open a number
//!   of working days past it (督办). Each threshold is a point in time; an alert is raised for
//!   every threshold that has passed while the event was still open, so the alerts of an event
//!   are a function of its record and the time, whatever order the facts came in.
//! - **returned**: an event sent back (退回) more than N times.
//! - **reopened**: a closed event reopened (each reopening).
//! - **repeated**: N or more events at one address, or with one party, in one calendar month
//!   (a risk signal for 联合研判).
//!
//! Every alert has a stable id (condition, subject, threshold, level) and a content that depends
//! only on the records: raised once, the same on a replay.

use std::{collections::BTreeMap, path::Path};

use chrono::{DateTime, Datelike, Days, FixedOffset, NaiveTime};
use hutong_standard::Standard;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{Calendar, EventState, GovernanceError, beijing, check_codes, lifecycle::parse_time, read_rules};

/// The escalation levels (alert-level code list).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Level {
    /// 提醒.
    Reminder,
    /// 预警.
    Warning,
    /// 督办.
    Supervision,
}

impl Level {
    /// Its code in the alert-level list.
    pub fn code(self) -> &'static str {
        match self {
            Self::Reminder => "reminder",
            Self::Warning => "warning",
            Self::Supervision => "supervision",
        }
    }
    /// Its Chinese name.
    pub fn name(self) -> &'static str {
        match self {
            Self::Reminder => "提醒",
            Self::Warning => "预警",
            Self::Supervision => "督办",
        }
    }
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct AlertsFile {
    version: u32,
    rules_version: String,
    overdue: OverdueRule,
    returned: ReturnedRule,
    reopened: ReopenedRule,
    repeated: RepeatedRule,
}

/// Deadline alerts.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct OverdueRule {
    /// 提醒 from the start of the working day this many working days before the deadline's day.
    pub remind_before_working_days: u32,
    /// 督办 once the event is still open this many working days after the deadline's day.
    pub supervise_after_working_days: u32,
}

/// Too many returns.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReturnedRule {
    /// Raised at the return after this many.
    pub more_than: u32,
    /// Its level.
    pub level: Level,
}

/// Reopened after 办结.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct ReopenedRule {
    /// Its level.
    pub level: Level,
}

/// What repeated events are grouped by.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum By {
    /// The event's address (normalised).
    Address,
    /// A person or organisation involved (its key).
    Party,
}

/// The window repeated events are counted in.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Window {
    /// A calendar month, Beijing time: fixed windows, so the alert does not depend on the order
    /// events arrive in.
    Month,
}

/// Repeated events at one address or party.
#[derive(Debug, Clone, Deserialize, Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct RepeatedRule {
    /// The window.
    pub window: Window,
    /// Raised when a window holds at least this many events.
    pub at_least: usize,
    /// Grouped by what.
    pub by: Vec<By>,
    /// Its level.
    pub level: Level,
}

/// What identifies an alert: its condition, level, subject and what tells its occurrences apart
/// (the deadline, the return or reopening counted, the month).
#[derive(Debug, Clone, Copy)]
struct Condition<'a> {
    condition: &'a str,
    level: Level,
    subject: &'a str,
    discriminator: &'a str,
}

/// The alert rules.
#[derive(Debug, Clone)]
pub struct AlertRules {
    /// The rules' own version.
    pub rules_version: String,
    /// Deadline alerts.
    pub overdue: OverdueRule,
    /// Too many returns.
    pub returned: ReturnedRule,
    /// Reopened.
    pub reopened: ReopenedRule,
    /// Repeated events.
    pub repeated: RepeatedRule,
}

/// One supervision alert (`hutong.alert.v1`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Alert {
    /// Stable id: the same condition gives the same id.
    pub alert_id: String,
    /// `overdue`, `returned`, `reopened` or `repeated`.
    pub condition: String,
    /// Escalation level.
    pub level: Level,
    /// Its Chinese name.
    pub level_name: String,
    /// What it is about: an event key, or `address:…` / `party:…` for repeated events.
    pub subject: String,
    /// The events concerned.
    pub event_keys: Vec<String>,
    /// Where (the first event's grid and community).
    pub grid_code: Option<String>,
    /// 社区/村.
    pub community: Option<String>,
    /// The departments concerned: those that reported the events, and the bodies handling them.
    pub departments: Vec<String>,
    /// When the condition became true.
    pub condition_at: DateTime<FixedOffset>,
    /// What the condition saw.
    pub detail: Value,
    /// The rules' version.
    pub rules_version: String,
}

impl AlertRules {
    /// Reads `alerts.toml` and checks its levels against the alert-level list.
    pub fn load(path: &Path, standard: &Standard) -> Result<Self, GovernanceError> {
        let f: AlertsFile = read_rules(path)?;
        let fail = |message: String| GovernanceError::Rules { path: path.to_owned(), message };
        if f.version != 1 {
            return Err(fail(format!("version {}: this Hutong reads alert rules of version 1", f.version)));
        }
        let levels: Vec<String> =
            [Level::Reminder, Level::Warning, Level::Supervision].map(|l| l.code().to_owned()).to_vec();
        check_codes(path, standard, "alert-level", "levels", &levels)?;
        if f.repeated.at_least < 2 {
            return Err(fail("repeated.at-least: at least 2 (one event is not a repetition)".into()));
        }
        if f.repeated.by.is_empty() {
            return Err(fail("repeated.by: name address, party or both".into()));
        }
        Ok(Self {
            rules_version: f.rules_version,
            overdue: f.overdue,
            returned: f.returned,
            reopened: f.reopened,
            repeated: f.repeated,
        })
    }

    /// The alert of condition `c` over `events`, true since `at`.
    fn alert(&self, c: Condition<'_>, events: &[&EventState], at: DateTime<FixedOffset>, detail: Value) -> Alert {
        let Condition { condition, level, subject, discriminator } = c;
        let name = format!("hutong:alert:{condition}:{subject}:{discriminator}:{}", level.code());
        let mut departments: Vec<String> = events
            .iter()
            .flat_map(|e| std::iter::once(e.department.clone()).chain(e.handling_department.clone()))
            .collect();
        departments.sort();
        departments.dedup();
        Alert {
            alert_id: uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, name.as_bytes()).to_string(),
            condition: condition.into(),
            level,
            level_name: level.name().into(),
            subject: subject.into(),
            event_keys: events.iter().map(|e| e.event_key.clone()).collect(),
            grid_code: events.iter().find_map(|e| e.grid_code.clone()),
            community: events.iter().find_map(|e| e.community.clone()),
            departments,
            condition_at: at,
            detail,
            rules_version: self.rules_version.clone(),
        }
    }

    /// The deadline thresholds of `e`: (level, when, working days late at that point).
    pub fn thresholds(&self, e: &EventState, calendar: &Calendar) -> Vec<(Level, DateTime<FixedOffset>, u32)> {
        let Some(d) = &e.deadline else { return Vec::new() };
        let day = d.due.with_timezone(&beijing()).date_naive();
        let start_of = |date: chrono::NaiveDate| date.and_time(NaiveTime::MIN).and_local_timezone(beijing()).single();
        let end_of = |date: chrono::NaiveDate| {
            date.and_time(NaiveTime::from_hms_opt(23, 59, 59).expect("a time")).and_local_timezone(beijing()).single()
        };
        let mut out = Vec::new();
        // 提醒: walk back the working days before the deadline's day.
        let mut remind = day;
        let mut left = self.overdue.remind_before_working_days;
        while left > 0 {
            remind = remind - Days::new(1);
            if calendar.is_working_day(remind) {
                left -= 1;
            }
        }
        if let Some(at) = start_of(remind).filter(|at| *at < d.due) {
            out.push((Level::Reminder, at, 0));
        }
        out.push((Level::Warning, d.due, 0));
        let n = self.overdue.supervise_after_working_days;
        if let Some(at) = end_of(calendar.add_working_days(day, n).value) {
            out.push((Level::Supervision, at, n));
        }
        out
    }

    /// The deadline alerts of `e` at `now`, and the next time one could be raised (`None`: no
    /// more, the event is closed or past every threshold).
    pub fn overdue(
        &self,
        e: &EventState,
        now: DateTime<FixedOffset>,
        calendar: &Calendar,
    ) -> (Vec<Alert>, Option<DateTime<FixedOffset>>) {
        let Some(d) = &e.deadline else { return (Vec::new(), None) };
        let open_at = |t: DateTime<FixedOffset>| match e.closed_at {
            Some(c) => c > t,
            None => e.open,
        };
        let mut alerts = Vec::new();
        let mut next = None;
        for (level, at, late) in self.thresholds(e, calendar) {
            if !open_at(at) {
                continue;
            }
            if at > now {
                next = Some(next.map_or(at, |n: DateTime<FixedOffset>| n.min(at)));
                continue;
            }
            let detail = json!({
                "due": d.due.to_rfc3339(),
                "basis": d.basis,
                "working_days_late": late,
                "status_then": e.status,
                "calendar_missing_years": d.uncovered,
            });
            alerts.push(self.alert(
                Condition { condition: "overdue", level, subject: &e.event_key, discriminator: &d.due.to_rfc3339() },
                &[e],
                at,
                detail,
            ));
        }
        (alerts, next)
    }

    /// The alerts `e`'s steps raise: too many returns, each reopening.
    pub fn on_steps(&self, e: &EventState) -> Vec<Alert> {
        let mut alerts = Vec::new();
        let mut returns = 0;
        let mut reopenings = 0;
        for (i, s) in e.steps.iter().enumerate() {
            let at = parse_time(s.at.as_deref()).or(e.reported_at);
            if s.status == crate::lifecycle::RETURNED {
                returns += 1;
                if returns == self.returned.more_than + 1
                    && let Some(at) = at
                {
                    let detail = json!({"returns": returns, "more_than": self.returned.more_than, "step": i});
                    alerts.push(self.alert(
                        Condition {
                            condition: "returned",
                            level: self.returned.level,
                            subject: &e.event_key,
                            discriminator: &returns.to_string(),
                        },
                        &[e],
                        at,
                        detail,
                    ));
                }
            }
            let reopened =
                i > 0 && e.steps[i - 1].status == crate::lifecycle::CLOSED && s.status != crate::lifecycle::CLOSED;
            if reopened {
                reopenings += 1;
                if let Some(at) = at {
                    let detail = json!({"reopening": reopenings, "step": i, "to": s.status});
                    alerts.push(self.alert(
                        Condition {
                            condition: "reopened",
                            level: self.reopened.level,
                            subject: &e.event_key,
                            discriminator: &reopenings.to_string(),
                        },
                        &[e],
                        at,
                        detail,
                    ));
                }
            }
        }
        alerts
    }

    /// The subjects `e` is grouped by for repeated events (`address:…`, `party:…`).
    pub fn repeat_subjects(&self, e: &EventState) -> Vec<String> {
        let mut out = Vec::new();
        for by in &self.repeated.by {
            match by {
                By::Address => out.extend(e.address.iter().map(|a| format!("address:{a}"))),
                By::Party => out.extend(e.parties.iter().map(|p| format!("party:{p}"))),
            }
        }
        out
    }

    /// The repeated-event alerts of `subject`, given every event that shares it.
    pub fn repeated(&self, subject: &str, events: &[EventState]) -> Vec<Alert> {
        let mut windows: BTreeMap<(i32, u32), Vec<&EventState>> = BTreeMap::new();
        for e in events {
            if let Some(r) = e.reported_at {
                let local = r.with_timezone(&beijing());
                windows.entry((local.year(), local.month())).or_default().push(e);
            }
        }
        let mut alerts = Vec::new();
        for ((year, month), mut group) in windows {
            if group.len() < self.repeated.at_least {
                continue;
            }
            group.sort_by(|a, b| (a.reported_at, &a.event_key).cmp(&(b.reported_at, &b.event_key)));
            let at = group[self.repeated.at_least - 1].reported_at.expect("grouped by it");
            let window = format!("{year}-{month:02}");
            let detail = json!({"window": window, "events": group.len(), "at_least": self.repeated.at_least});
            alerts.push(self.alert(
                Condition { condition: "repeated", level: self.repeated.level, subject, discriminator: &window },
                &group,
                at,
                detail,
            ));
        }
        alerts
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::LifecycleRules;

    fn rules() -> (AlertRules, LifecycleRules, Calendar) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).expect("standard");
        (
            AlertRules::load(&root.join("governance/alerts.toml"), &standard).expect("alerts"),
            LifecycleRules::load(&root.join("governance/lifecycle.toml"), &standard).expect("lifecycle"),
            Calendar::load(&root.join("calendar/cn")).expect("calendar"),
        )
    }

    fn at(t: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(t).expect("time")
    }

    #[test]
    fn deadline_alerts_escalate_with_working_days_and_stop_at_closure() {
        let (alerts, lifecycle, calendar) = rules();
        // Due Friday 2 October 2026 would be inside 国庆节; take Wednesday 30 September 2026:
        // 提醒 from the working day before (Tue 29), 预警 at the deadline, 督办 after N working
        // days (国庆节 1–7 October off, Saturday 10 October worked).
        let e = lifecycle.analyse(
            &json!({"event_key": "wangge:E1", "title": "t", "category": "0201", "channel": "01", "status": "assigned",
                    "reported_at": "2026-09-21T09:00:00+08:00", "due_at": "2026-09-30T17:00:00+08:00"}),
            &calendar,
        );
        let levels = |now: &str| alerts.overdue(&e, at(now), &calendar).0.iter().map(|a| a.level).collect::<Vec<_>>();
        assert_eq!(levels("2026-09-28T12:00:00+08:00"), []);
        assert_eq!(levels("2026-09-29T08:00:00+08:00"), [Level::Reminder]);
        assert_eq!(levels("2026-09-30T18:00:00+08:00"), [Level::Reminder, Level::Warning]);
        let n = alerts.overdue.supervise_after_working_days;
        let supervise_day = calendar.add_working_days("2026-09-30".parse().expect("d"), n).value;
        assert!(supervise_day >= "2026-10-08".parse().expect("d"), "the holiday is not counted: {supervise_day}");
        let after = format!("{}T23:59:59+08:00", supervise_day.pred_opt().expect("d"));
        assert_eq!(levels(&after), [Level::Reminder, Level::Warning]);
        let (raised, next) = alerts.overdue(&e, at("2026-12-01T00:00:00+08:00"), &calendar);
        assert_eq!(
            raised.iter().map(|a| a.level).collect::<Vec<_>>(),
            [Level::Reminder, Level::Warning, Level::Supervision]
        );
        assert_eq!(next, None, "nothing more to raise");
        assert_eq!(raised[2].detail["working_days_late"], n);
        // The same condition, the same alert: ids and content do not depend on `now`.
        assert_eq!(alerts.overdue(&e, at("2027-03-01T00:00:00+08:00"), &calendar).0, raised);
        // Closed on the day after the deadline: 提醒 and 预警, never 督办.
        let mut closed = e.clone();
        closed.open = false;
        closed.closed_at = Some(at("2026-10-08T10:00:00+08:00"));
        let (raised, next) = alerts.overdue(&closed, at("2026-12-01T00:00:00+08:00"), &calendar);
        assert_eq!((raised.len(), next), (2, None));
    }

    #[test]
    fn returns_reopenings_and_repeats_raise_once_each() {
        let (alerts, lifecycle, calendar) = rules();
        let step = |s: &str, t: &str| json!({"status": s, "at": t});
        let mut history =
            vec![step("reported", "2026-11-02T09:00:00+08:00"), step("accepted", "2026-11-02T09:10:00+08:00")];
        for day in 3..=5 {
            history.push(step("assigned", &format!("2026-11-0{day}T09:00:00+08:00")));
            history.push(step("returned", &format!("2026-11-0{day}T15:00:00+08:00")));
        }
        history.push(step("assigned", "2026-11-06T09:00:00+08:00"));
        history.push(step("feedback", "2026-11-09T09:00:00+08:00"));
        history.push(step("closed", "2026-11-10T09:00:00+08:00"));
        history.push(step("reopened", "2026-11-12T09:00:00+08:00"));
        let e = lifecycle.analyse(
            &json!({"event_key": "rexian:T1", "title": "t", "category": "0504", "channel": "02", "status": "reopened",
                    "reported_at": "2026-11-02T09:00:00+08:00", "status_history": history}),
            &calendar,
        );
        let raised = alerts.on_steps(&e);
        let conditions: Vec<(&str, Level)> = raised.iter().map(|a| (a.condition.as_str(), a.level)).collect();
        assert_eq!(e.returned, 3);
        assert_eq!(conditions, [("returned", alerts.returned.level), ("reopened", alerts.reopened.level)]);
        // Returns on 3, 4 and 5 November: raised at the one after `more-than`.
        let crossing = format!("2026-11-0{}T15:00:00+08:00", 3 + alerts.returned.more_than);
        assert!(alerts.returned.more_than < 3, "the test returns the event three times");
        assert_eq!(raised[0].condition_at, at(&crossing), "at the return that crossed the line");
        // Repeated events: counted per calendar month.
        let ev = |k: &str, t: &str| {
            lifecycle.analyse(
                &json!({"event_key": k, "title": "t", "category": "0102", "channel": "01", "status": "reported", "reported_at": t,
                        "location": {"address": {"address_text": "文三路 100号"}}}),
                &calendar,
            )
        };
        let n = alerts.repeated.at_least;
        let mut same: Vec<EventState> =
            (0..n).map(|i| ev(&format!("wangge:R{i}"), &format!("2026-11-{:02}T10:00:00+08:00", 3 + i))).collect();
        same.push(ev("wangge:X", "2026-12-01T10:00:00+08:00"));
        let subjects = alerts.repeat_subjects(&same[0]);
        assert_eq!(subjects, ["address:文三路100号"]);
        let raised = alerts.repeated(&subjects[0], &same);
        assert_eq!(raised.len(), 1, "November only");
        assert_eq!(raised[0].event_keys.len(), n);
        // The order events arrive in changes nothing.
        same.reverse();
        assert_eq!(alerts.repeated(&subjects[0], &same), raised);
        // One November event fewer: nothing.
        let fewer: Vec<EventState> = same.iter().filter(|e| e.event_key != "wangge:R0").cloned().collect();
        assert!(alerts.repeated(&subjects[0], &fewer).is_empty());
    }
}
