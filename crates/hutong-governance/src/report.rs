//! 成效评估: the effectiveness report of one month, per department (what it shares and how
//! well) and per grid and community (how governance events and residents' needs were handled),
//! with the definition of every indicator. Built from what the consumer service keeps
//! ([`ReportInput`]), rendered to a self-contained HTML file (charts as inline SVG, readable
//! offline and without JavaScript), to CSV (one row per indicator value, for spreadsheets) and
//! to JSON.

use std::collections::{BTreeMap, BTreeSet};

use askama::Template;
use chrono::{DateTime, Datelike, FixedOffset, NaiveDate};
use serde::{Deserialize, Serialize};

use crate::{Calendar, EventState, beijing, lifecycle::DeadlineStatus};

/// A calendar month, Beijing time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Period {
    /// Year.
    pub year: i32,
    /// Month, 1–12.
    pub month: u32,
}

impl std::str::FromStr for Period {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let bad = || format!("period {s:?}: expected YYYY-MM, e.g. 2026-11");
        let (y, m) = s.trim().split_once('-').ok_or_else(bad)?;
        let (year, month) = (y.parse().map_err(|_| bad())?, m.parse().map_err(|_| bad())?);
        NaiveDate::from_ymd_opt(year, month, 1).ok_or_else(bad)?;
        Ok(Self { year, month })
    }
}

impl std::fmt::Display for Period {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}-{:02}", self.year, self.month)
    }
}

impl Period {
    /// Whether `t` falls in the month (Beijing time).
    pub fn contains(&self, t: DateTime<FixedOffset>) -> bool {
        let l = t.with_timezone(&beijing());
        l.year() == self.year && l.month() == self.month
    }
    /// Whether the day `d` is in the month.
    pub fn contains_day(&self, d: NaiveDate) -> bool {
        d.year() == self.year && d.month() == self.month
    }
    /// The month's first instant, Beijing time.
    pub fn start(&self) -> DateTime<FixedOffset> {
        Self::first_of(self.year, self.month)
    }

    /// The month's last instant, Beijing time.
    pub fn end(&self) -> DateTime<FixedOffset> {
        let (y, m) = if self.month == 12 { (self.year + 1, 1) } else { (self.year, self.month + 1) };
        Self::first_of(y, m) - chrono::Duration::seconds(1)
    }

    fn first_of(year: i32, month: u32) -> DateTime<FixedOffset> {
        let first =
            NaiveDate::from_ymd_opt(year, month, 1).expect("a valid month").and_hms_opt(0, 0, 0).expect("midnight");
        first.and_local_timezone(beijing()).single().expect("fixed offset")
    }
}

/// A service request as the report needs it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RequestRow {
    /// Its key.
    pub request_key: String,
    /// Its grid.
    pub grid_code: Option<String>,
    /// Its community (12-digit division).
    pub community: Option<String>,
    /// service-category code.
    pub category: Option<String>,
    /// service-request-status code.
    pub status: String,
    /// When it was raised.
    pub requested_at: Option<DateTime<FixedOffset>>,
    /// When it first reached a matched status (已对接/已完成), if it did.
    pub matched_at: Option<DateTime<FixedOffset>>,
    /// Whether Hutong found at least one candidate resource.
    pub has_candidates: bool,
}

/// What one department shared in the period, as the consumer service counted it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct DepartmentInput {
    /// Department code.
    pub department: String,
    /// Its name.
    pub name: String,
    /// Source records published in the period.
    pub published: u64,
    /// Source records rejected in the period, per rule.
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Source records rejected in the period (a record may break several rules).
    pub rejected: u64,
    /// Seconds from `occurred_at` to publication, of every record published in the period.
    pub latencies_s: Vec<i64>,
    /// Per source kind: its declared update cycle and its last publication.
    pub kinds: Vec<KindFreshness>,
    /// Profile conflicts its values lost (open now).
    pub conflicts: u64,
}

/// A kind's update cycle against its last publication.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindFreshness {
    /// The source kind.
    pub kind: String,
    /// Declared update cycle (`daily`, `weekly`, `monthly`, `realtime`), if declared.
    pub cycle: Option<String>,
    /// Last publication.
    pub last: Option<DateTime<FixedOffset>>,
}

impl KindFreshness {
    /// Whether the last publication is within the cycle at `at` (`None`: no cycle declared).
    pub fn fresh(&self, at: DateTime<FixedOffset>) -> Option<bool> {
        let days = match self.cycle.as_deref()? {
            "realtime" | "daily" => 1,
            "weekly" => 7,
            "monthly" => 31,
            _ => return None,
        };
        Some(self.last.is_some_and(|l| at - l <= chrono::Duration::days(days)))
    }
}

/// Only one grid, or one department.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Filter {
    /// Only this grid (and its community's rows).
    pub grid: Option<String>,
    /// Only this department.
    pub department: Option<String>,
}

/// What a report is built from.
#[derive(Debug, Clone)]
pub struct ReportInput {
    /// The month.
    pub period: Period,
    /// When the report is made (deadline statuses are taken at the earlier of this and the
    /// period's end).
    pub now: DateTime<FixedOffset>,
    /// Every event known.
    pub events: Vec<EventState>,
    /// Events with a 督办-level alert.
    pub supervised_by_alert: BTreeSet<String>,
    /// Every service request known.
    pub requests: Vec<RequestRow>,
    /// Every department that shares.
    pub departments: Vec<DepartmentInput>,
    /// A grid or department to keep.
    pub filter: Filter,
    /// Consumers' use of the shared resources and the objections (数据异议) on departments' facts.
    pub sharing: SharingInput,
}

/// What the sharing side contributes to a report.
#[derive(Debug, Clone, Default)]
pub struct SharingInput {
    /// Per consumer and resource, since the start.
    pub usage: Vec<UsageRow>,
    /// Every objection.
    pub objections: Vec<ObjectionInput>,
}

/// One consumer's use of one resource (since the start: the store keeps totals).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct UsageRow {
    /// The consumer identity.
    pub consumer: String,
    /// The catalogue resource.
    pub resource: String,
    /// Answers drawing on it.
    pub queries: u64,
    /// Records returned of it.
    pub records: u64,
    /// Last access (RFC 3339).
    pub last_access: String,
}

/// An objection as the report counts it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectionInput {
    /// The source department it was routed to.
    pub department: String,
    /// The day it was filed.
    pub filed: NaiveDate,
    /// Its reply deadline.
    pub due: Option<NaiveDate>,
    /// The day it was closed or dismissed.
    pub resolved: Option<NaiveDate>,
    /// `open`, `acknowledged`, `closed` (corrected) or `dismissed`.
    pub status: String,
}

/// Objections routed to one department in the month.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectionRow {
    /// Department code.
    pub department: String,
    /// Its name.
    pub name: String,
    /// Filed in the month.
    pub received: u64,
    /// Closed by a corrected record.
    pub corrected: u64,
    /// Dismissed with a reason.
    pub dismissed: u64,
    /// Still open (or acknowledged) at the report's time.
    pub open: u64,
    /// Open past their reply deadline.
    pub overdue: u64,
    /// Mean working days from filing to resolution, over the resolved ones.
    pub avg_working_days: Option<f64>,
}

/// One department's row.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DepartmentRow {
    /// Department code.
    pub department: String,
    /// Its name.
    pub name: String,
    /// Records submitted (published + rejected).
    pub submitted: u64,
    /// Records published.
    pub published: u64,
    /// Records rejected.
    pub rejected: u64,
    /// Rejected ÷ submitted.
    pub reject_rate: Option<f64>,
    /// Rejections per rule.
    pub rejected_by_rule: BTreeMap<String, u64>,
    /// Median seconds from `occurred_at` to publication.
    pub latency_p50_s: Option<i64>,
    /// Kinds within their update cycle ÷ kinds with a declared cycle.
    pub fresh_kinds: u64,
    /// Kinds with a declared cycle.
    pub declared_kinds: u64,
    /// Conflicts its values lost.
    pub conflicts: u64,
}

/// One grid's (or community's) row.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct AreaRow {
    /// Grid code or community (12-digit division) code; `-` for events without either.
    pub area: String,
    /// Events reported in the period.
    pub events_reported: u64,
    /// Events closed in the period.
    pub events_closed: u64,
    /// Of those, closed by their deadline.
    pub closed_on_time: u64,
    /// closed_on_time ÷ events_closed.
    pub on_time_rate: Option<f64>,
    /// Mean working days from report to closure, of events closed in the period.
    pub avg_handling_working_days: Option<f64>,
    /// Events reported in the period that are overdue now or were closed late.
    pub overdue: u64,
    /// Events reported in the period put under supervision (督办 step or alert).
    pub supervised: u64,
    /// Ratings of events closed in the period (满意 + 基本满意 ÷ rated).
    pub satisfaction_rate: Option<f64>,
    /// Rated events.
    pub rated: u64,
    /// Needs raised in the period.
    pub needs_raised: u64,
    /// Of those, matched (已对接/已完成) by now.
    pub needs_matched: u64,
    /// Of those, not matched.
    pub needs_unmatched: u64,
    /// Of the unmatched, those Hutong found no resource for.
    pub needs_without_candidates: u64,
    /// Mean hours from raising to matching, of needs matched.
    pub avg_hours_to_match: Option<f64>,
}

/// An indicator's definition.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Indicator {
    /// Its code (the CSV's `indicator` column).
    pub code: String,
    /// Its Chinese name.
    pub name: String,
    /// What it counts.
    pub definition: String,
    /// Where it comes from.
    pub source: String,
}

/// Every indicator of the report, defined.
pub fn indicators() -> Vec<Indicator> {
    INDICATORS
        .iter()
        .map(|(code, name, definition, source)| Indicator {
            code: (*code).into(),
            name: (*name).into(),
            definition: (*definition).into(),
            source: (*source).into(),
        })
        .collect()
}

/// Code, name, definition and source of every indicator.
const INDICATORS: &[(&str, &str, &str, &str)] = &[
    (
        "submitted",
        "提交记录数",
        "Source records the department submitted in the period that reached the bus: published plus rejected (retries of the same record counted once).",
        "Hutong",
    ),
    ("published", "发布记录数", "Source records published to the entity topics in the period.", "Hutong"),
    (
        "rejected",
        "拒收记录数",
        "Source records rejected in the period (to hutong.dlq.v1), with the rules they broke.",
        "Hutong",
    ),
    (
        "reject_rate",
        "拒收率",
        "Rejected ÷ submitted: the share of records that did not meet the standard (data quality of what is shared).",
        "GB/T 38664.4-2022 政务数据开放共享 共享评价 (数据质量)",
    ),
    (
        "latency_p50_s",
        "发布时延中位数（秒）",
        "Median time from a record's occurred_at (ce_time) to its publication on the bus, of records published in the period.",
        "GB/T 38664.4-2022 共享评价 (及时性)",
    ),
    (
        "fresh_kinds",
        "按周期更新的数据类数",
        "Source kinds whose last publication is within the update cycle their adapter declares (daily, weekly, monthly), out of the kinds that declare one, at the time of the report.",
        "GB/T 38664.4-2022 共享评价 (及时性)",
    ),
    (
        "conflicts",
        "数据冲突数",
        "Fields of 一人一档 profiles where the department's value lost to a more authoritative source (open now).",
        "Hutong",
    ),
    ("events_reported", "上报事件数", "Governance events (事件) reported in the period.", "Hutong"),
    ("events_closed", "办结事件数", "Events closed (办结) in the period.", "Hutong"),
    (
        "on_time_rate",
        "按期办结率",
        "Events closed in the period by their deadline ÷ events closed in the period. The deadline is the record's 办理时限 (due_at), else the lifecycle rules' working days after the report, on the official working-day calendar.",
        "Hutong (交办反馈督办)",
    ),
    (
        "avg_handling_working_days",
        "平均办理时长（工作日）",
        "Mean working days from report to closure of events closed in the period, on the official working-day calendar.",
        "Hutong",
    ),
    (
        "overdue",
        "超期事件数",
        "Events reported in the period that are open past their deadline at the end of the period (or now, if earlier), or were closed after it.",
        "Hutong (督查督办)",
    ),
    (
        "supervised",
        "督办事件数",
        "Events reported in the period that were put under supervision: a 督办 step in their history or a 督办-level alert.",
        "Hutong (督查督办)",
    ),
    (
        "satisfaction_rate",
        "满意率",
        "Of events closed in the period with a 回访 rating, those rated 满意 or 基本满意.",
        "Hutong",
    ),
    ("needs_raised", "群众需求数", "Service requests (群众需求) raised in the period.", "Hutong (供需对接)"),
    (
        "needs_matched",
        "已对接需求数",
        "Of the requests raised in the period, those that reached 已匹配/服务中/已完成 by the time of the report.",
        "Hutong (供需对接)",
    ),
    (
        "needs_unmatched",
        "未对接需求数",
        "Of the requests raised in the period, those not matched yet.",
        "Hutong (供需对接)",
    ),
    (
        "needs_without_candidates",
        "无可匹配资源需求数",
        "Of the unmatched requests, those for which Hutong found no service resource under the matching rules (a gap in supply).",
        "Hutong (供需对接)",
    ),
    (
        "avg_hours_to_match",
        "平均对接时长（小时）",
        "Mean hours from raising a request to its first matched status, of requests raised in the period and matched.",
        "Hutong (供需对接)",
    ),
];

/// The report.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Report {
    /// The month.
    pub period: Period,
    /// When it was made.
    pub generated_at: DateTime<FixedOffset>,
    /// The grid or department kept.
    pub filter: Filter,
    /// Per department.
    pub departments: Vec<DepartmentRow>,
    /// Per grid.
    pub grids: Vec<AreaRow>,
    /// Per community (社区/村).
    pub communities: Vec<AreaRow>,
    /// Over every event and need of the report.
    pub total: AreaRow,
    /// Years the deadlines of the report were counted in without a calendar file.
    pub calendar_missing_years: BTreeSet<i32>,
    /// The indicators' definitions.
    pub indicators: Vec<Indicator>,
    /// Consumers' use of the shared resources, since the start.
    #[serde(default)]
    pub usage: Vec<UsageRow>,
    /// Objections (数据异议) routed to each department, filed in the month.
    #[serde(default)]
    pub objections: Vec<ObjectionRow>,
}

/// The rows of `events` and `requests` for one area.
fn area_row(
    area: &str,
    events: &[&EventState],
    requests: &[&RequestRow],
    input: &ReportInput,
    calendar: &Calendar,
) -> AreaRow {
    let p = input.period;
    let at = input.now.min(p.end());
    let mut row = AreaRow { area: area.to_owned(), ..AreaRow::default() };
    let mut handling = Vec::new();
    let mut satisfied = 0;
    for e in events {
        if e.reported_at.is_some_and(|t| p.contains(t)) {
            row.events_reported += 1;
            let (status, _) = e.deadline_status(at, calendar);
            row.overdue += u64::from(matches!(status, DeadlineStatus::Overdue | DeadlineStatus::ClosedLate));
            row.supervised += u64::from(e.supervised || input.supervised_by_alert.contains(&e.event_key));
        }
        if e.closed_at.is_some_and(|t| p.contains(t)) {
            row.events_closed += 1;
            row.closed_on_time += u64::from(e.deadline_status(at, calendar).0 == DeadlineStatus::ClosedOnTime);
            handling.extend(e.handling_working_days(calendar));
            if let Some(s) = e.satisfaction.as_deref().filter(|s| ["1", "2", "3"].contains(s)) {
                row.rated += 1;
                satisfied += u64::from(s != "3");
            }
        }
    }
    row.on_time_rate = ratio(row.closed_on_time, row.events_closed);
    row.avg_handling_working_days =
        (!handling.is_empty()).then(|| f64::from(handling.iter().sum::<u32>()) / handling.len() as f64);
    row.satisfaction_rate = ratio(satisfied, row.rated);
    let mut hours = Vec::new();
    for r in requests.iter().filter(|r| r.requested_at.is_some_and(|t| p.contains(t))) {
        row.needs_raised += 1;
        match (r.matched_at, r.requested_at) {
            (Some(m), Some(q)) => {
                row.needs_matched += 1;
                hours.push((m - q).num_minutes() as f64 / 60.0);
            }
            _ => {
                row.needs_unmatched += 1;
                row.needs_without_candidates += u64::from(!r.has_candidates);
            }
        }
    }
    row.avg_hours_to_match = (!hours.is_empty()).then(|| hours.iter().sum::<f64>() / hours.len() as f64);
    row
}

fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

impl Report {
    /// The report of `input`, deadlines on `calendar`.
    pub fn build(input: &ReportInput, calendar: &Calendar) -> Self {
        let f = &input.filter;
        let keep_grid = |g: Option<&str>| f.grid.as_deref().is_none_or(|want| g == Some(want));
        let keep_dept = |d: &str| f.department.as_deref().is_none_or(|want| d == want);
        let events: Vec<&EventState> =
            input.events.iter().filter(|e| keep_grid(e.grid_code.as_deref()) && keep_dept(&e.department)).collect();
        let requests: Vec<&RequestRow> = input
            .requests
            .iter()
            .filter(|r| {
                keep_grid(r.grid_code.as_deref()) && keep_dept(r.request_key.split(':').next().unwrap_or_default())
            })
            .collect();
        let group = |by: &dyn Fn(&EventState) -> Option<String>, by_request: &dyn Fn(&RequestRow) -> Option<String>| {
            let mut areas: BTreeSet<String> = events.iter().map(|e| by(e).unwrap_or_else(|| "-".into())).collect();
            areas.extend(requests.iter().map(|r| by_request(r).unwrap_or_else(|| "-".into())));
            areas
                .into_iter()
                .map(|a| {
                    let es: Vec<&EventState> =
                        events.iter().copied().filter(|e| by(e).unwrap_or_else(|| "-".into()) == a).collect();
                    let rs: Vec<&RequestRow> =
                        requests.iter().copied().filter(|r| by_request(r).unwrap_or_else(|| "-".into()) == a).collect();
                    area_row(&a, &es, &rs, input, calendar)
                })
                .filter(|r| r.events_reported + r.events_closed + r.needs_raised > 0)
                .collect::<Vec<_>>()
        };
        let grids = group(&|e| e.grid_code.clone(), &|r| r.grid_code.clone());
        let communities = group(&|e| e.community.clone(), &|r| r.community.clone());
        let total = area_row("*", &events, &requests, input, calendar);
        let at = input.now.min(input.period.end());
        let departments = input
            .departments
            .iter()
            .filter(|d| keep_dept(&d.department))
            .map(|d| {
                let mut l = d.latencies_s.clone();
                l.sort_unstable();
                let submitted = d.published + d.rejected;
                let declared: Vec<bool> = d.kinds.iter().filter_map(|k| k.fresh(at)).collect();
                DepartmentRow {
                    department: d.department.clone(),
                    name: d.name.clone(),
                    submitted,
                    published: d.published,
                    rejected: d.rejected,
                    reject_rate: ratio(d.rejected, submitted),
                    rejected_by_rule: d.rejected_by_rule.clone(),
                    latency_p50_s: (!l.is_empty()).then(|| l[(l.len() - 1) / 2]),
                    fresh_kinds: declared.iter().filter(|f| **f).count() as u64,
                    declared_kinds: declared.len() as u64,
                    conflicts: d.conflicts,
                }
            })
            .collect();
        let names: BTreeMap<&str, &str> =
            input.departments.iter().map(|d| (d.department.as_str(), d.name.as_str())).collect();
        let mut by_department: BTreeMap<&str, Vec<&ObjectionInput>> = BTreeMap::new();
        for o in input.sharing.objections.iter().filter(|o| keep_dept(&o.department)) {
            if input.period.contains_day(o.filed) {
                by_department.entry(o.department.as_str()).or_default().push(o);
            }
        }
        let today = at.date_naive();
        let objections = by_department
            .into_iter()
            .map(|(d, os)| {
                let count = |s: &str| os.iter().filter(|o| o.status == s).count() as u64;
                let open: Vec<&&ObjectionInput> =
                    os.iter().filter(|o| matches!(o.status.as_str(), "open" | "acknowledged")).collect();
                let took: Vec<u32> =
                    os.iter().filter_map(|o| Some(calendar.working_days_between(o.filed, o.resolved?).value)).collect();
                ObjectionRow {
                    department: d.to_owned(),
                    name: names.get(d).map_or_else(|| d.to_owned(), |n| (*n).to_owned()),
                    received: os.len() as u64,
                    corrected: count("closed"),
                    dismissed: count("dismissed"),
                    open: open.len() as u64,
                    overdue: open.iter().filter(|o| o.due.is_some_and(|due| today > due)).count() as u64,
                    avg_working_days: (!took.is_empty())
                        .then(|| f64::from(took.iter().sum::<u32>()) / took.len() as f64),
                }
            })
            .collect();
        let usage = input
            .sharing
            .usage
            .iter()
            .filter(|u| f.department.as_deref().is_none_or(|d| u.resource.split('.').next() == Some(d)))
            .cloned()
            .collect();
        let calendar_missing_years = events
            .iter()
            .filter(|e| {
                e.reported_at.is_some_and(|t| input.period.contains(t))
                    || e.closed_at.is_some_and(|t| input.period.contains(t))
            })
            .filter_map(|e| e.deadline.as_ref())
            .flat_map(|d| d.uncovered.iter().copied())
            .collect();
        Self {
            period: input.period,
            generated_at: input.now,
            filter: input.filter.clone(),
            departments,
            grids,
            communities,
            total,
            usage,
            objections,
            calendar_missing_years,
            indicators: indicators(),
        }
    }

    /// The report as CSV: `period,scope,key,name,indicator,value`, one row per value.
    pub fn to_csv(&self) -> String {
        let mut w = csv::Writer::from_writer(Vec::new());
        let period = self.period.to_string();
        let mut row = |scope: &str, key: &str, name: &str, indicator: &str, value: String| {
            w.write_record([period.as_str(), scope, key, name, indicator, value.as_str()]).expect("csv into memory");
        };
        row("scope", "key", "name", "indicator", "value".into());
        let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
        for d in &self.departments {
            let k = (&d.department, &d.name);
            row("department", k.0, k.1, "submitted", d.submitted.to_string());
            row("department", k.0, k.1, "published", d.published.to_string());
            row("department", k.0, k.1, "rejected", d.rejected.to_string());
            row("department", k.0, k.1, "reject_rate", num(d.reject_rate));
            row("department", k.0, k.1, "latency_p50_s", d.latency_p50_s.map(|l| l.to_string()).unwrap_or_default());
            row("department", k.0, k.1, "fresh_kinds", format!("{}/{}", d.fresh_kinds, d.declared_kinds));
            row("department", k.0, k.1, "conflicts", d.conflicts.to_string());
            for (rule, n) in &d.rejected_by_rule {
                row("department", k.0, k.1, &format!("rejected:{rule}"), n.to_string());
            }
        }
        let areas = [("grid", &self.grids), ("community", &self.communities)];
        for (scope, rows) in areas
            .iter()
            .map(|(s, r)| (*s, r.iter().collect::<Vec<_>>()))
            .chain(std::iter::once(("total", vec![&self.total])))
        {
            for a in rows {
                for (code, value) in a.values() {
                    row(scope, &a.area, "", code, value);
                }
            }
        }
        let bytes = w.into_inner().expect("csv into memory");
        String::from_utf8(bytes).expect("csv of UTF-8 text")
    }

    /// The report as a self-contained HTML page.
    pub fn to_html(&self) -> String {
        let page = Page { r: self, charts: Charts::of(self) };
        page.render().expect("the report template renders")
    }
}

impl AreaRow {
    /// Every indicator of the row with its value, as the CSV writes it.
    pub fn values(&self) -> Vec<(&'static str, String)> {
        let num = |v: Option<f64>| v.map(|v| format!("{v:.4}")).unwrap_or_default();
        vec![
            ("events_reported", self.events_reported.to_string()),
            ("events_closed", self.events_closed.to_string()),
            ("on_time_rate", num(self.on_time_rate)),
            ("avg_handling_working_days", num(self.avg_handling_working_days)),
            ("overdue", self.overdue.to_string()),
            ("supervised", self.supervised.to_string()),
            ("satisfaction_rate", num(self.satisfaction_rate)),
            ("needs_raised", self.needs_raised.to_string()),
            ("needs_matched", self.needs_matched.to_string()),
            ("needs_unmatched", self.needs_unmatched.to_string()),
            ("needs_without_candidates", self.needs_without_candidates.to_string()),
            ("avg_hours_to_match", num(self.avg_hours_to_match)),
        ]
    }
}

/// The charts, as SVG markup.
struct Charts {
    departments: String,
    events: String,
    needs: String,
}

/// One bar of a grouped horizontal bar chart: label, then (value, class) per series.
pub type Bar = (String, Vec<(f64, &'static str)>);

/// A horizontal bar chart of `bars` (each a label and its series), with a legend, as SVG markup
/// (classes `s1`, `s2`, `s3` colour the series; the report's and the console's style sheets
/// define them).
pub fn bar_chart(title: &str, legend: &[(&str, &str)], bars: &[Bar]) -> String {
    use std::fmt::Write as _;
    let max = bars.iter().flat_map(|(_, s)| s.iter().map(|(v, _)| *v)).fold(0.0_f64, f64::max).max(1.0);
    let series = bars.first().map_or(1, |(_, s)| s.len().max(1));
    let (label_w, plot_w, bar_h): (f64, f64, f64) = (150.0, 420.0, 12.0);
    let row_h = bar_h * series as f64 + 8.0;
    let height = 40.0 + row_h * bars.len() as f64 + 10.0;
    let legend_w: f64 = legend.iter().map(|(n, _)| 24.0 + text_width(n)).sum();
    let width = (label_w + plot_w + 60.0).max(label_w + legend_w + 10.0);
    let mut svg = String::new();
    let _ = write!(
        svg,
        r#"<svg class="chart" role="img" xmlns="http://www.w3.org/2000/svg" width="{w}" height="{height}" viewBox="0 0 {w} {height}"><title>{t}</title><text x="0" y="14" class="ct">{t}</text>"#,
        w = width,
        t = escape(title)
    );
    let mut x = label_w;
    for (name, class) in legend {
        let _ = write!(
            svg,
            r#"<rect x="{x}" y="22" width="10" height="10" class="{class}"/><text x="{}" y="31" class="lg">{}</text>"#,
            x + 14.0,
            escape(name)
        );
        x += 24.0 + text_width(name);
    }
    for (i, (label, values)) in bars.iter().enumerate() {
        let y = 40.0 + row_h * i as f64;
        let _ = write!(
            svg,
            r#"<text x="{}" y="{}" class="lb" text-anchor="end">{}</text>"#,
            label_w - 6.0,
            y + row_h / 2.0,
            escape(label)
        );
        for (j, (v, class)) in values.iter().enumerate() {
            let w = plot_w * v / max;
            let by = y + bar_h * j as f64;
            let _ = write!(
                svg,
                r#"<rect x="{label_w}" y="{by}" width="{w:.1}" height="{}" class="{class}"><title>{v}</title></rect><text x="{:.1}" y="{}" class="v">{}</text>"#,
                bar_h - 2.0,
                label_w + w + 4.0,
                by + bar_h - 3.0,
                trim_number(*v)
            );
        }
    }
    svg.push_str("</svg>");
    svg
}

/// The width of `s` at the charts' 11 px font: CJK characters are square, Latin about half.
fn text_width(s: &str) -> f64 {
    s.chars().map(|c| if c.is_ascii() { 6.2 } else { 11.5 }).sum()
}

fn trim_number(v: f64) -> String {
    if v.fract() == 0.0 { format!("{v:.0}") } else { format!("{v:.2}") }
}

/// `s` escaped for HTML text and attribute values.
pub fn escape(s: &str) -> String {
    s.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;").replace('"', "&quot;")
}

impl Charts {
    fn of(r: &Report) -> Self {
        let departments: Vec<Bar> = r
            .departments
            .iter()
            .map(|d| {
                (format!("{} {}", d.name, d.department), vec![(d.published as f64, "s1"), (d.rejected as f64, "s2")])
            })
            .collect();
        let events: Vec<Bar> = r
            .grids
            .iter()
            .map(|g| {
                (
                    g.area.clone(),
                    vec![(g.events_reported as f64, "s1"), (g.closed_on_time as f64, "s3"), (g.overdue as f64, "s2")],
                )
            })
            .collect();
        let needs: Vec<Bar> = r
            .grids
            .iter()
            .filter(|g| g.needs_raised > 0)
            .map(|g| (g.area.clone(), vec![(g.needs_matched as f64, "s3"), (g.needs_unmatched as f64, "s2")]))
            .collect();
        Self {
            departments: bar_chart(
                "各部门发布与拒收记录数 Records published and rejected",
                &[("发布 published", "s1"), ("拒收 rejected", "s2")],
                &departments,
            ),
            events: bar_chart(
                "各网格事件办理 Events per grid",
                &[("上报 reported", "s1"), ("按期办结 closed on time", "s3"), ("超期 overdue", "s2")],
                &events,
            ),
            needs: bar_chart(
                "各网格需求对接 Needs per grid",
                &[("已对接 matched", "s3"), ("未对接 unmatched", "s2")],
                &needs,
            ),
        }
    }
}

/// The HTML page.
#[derive(Template)]
#[template(path = "report.html")]
struct Page<'a> {
    r: &'a Report,
    charts: Charts,
}

impl Page<'_> {
    /// A rate as a percentage, or `—`.
    fn pct(&self, v: &Option<f64>) -> String {
        v.map(|v| format!("{:.1}%", v * 100.0)).unwrap_or_else(|| "—".into())
    }

    /// A number with two decimals, or `—`.
    fn dec(&self, v: &Option<f64>) -> String {
        v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "—".into())
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::LifecycleRules;

    fn at(t: &str) -> DateTime<FixedOffset> {
        DateTime::parse_from_rfc3339(t).expect("time")
    }

    fn objection(filed: &str, resolved: Option<&str>, status: &str, due: &str) -> ObjectionInput {
        let day = |d: &str| NaiveDate::parse_from_str(d, "%Y-%m-%d").expect("day");
        ObjectionInput {
            department: "wangge".into(),
            filed: day(filed),
            due: Some(day(due)),
            resolved: resolved.map(day),
            status: status.into(),
        }
    }

    /// Three events of one grid and one of another, two needs: every figure computed by hand.
    #[test]
    fn the_figures_are_the_ones_computed_by_hand() {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = hutong_standard::Standard::load(&root).expect("standard");
        let lifecycle = LifecycleRules::load(&root.join("governance/lifecycle.toml"), &standard).expect("rules");
        let calendar = Calendar::load(&root.join("calendar/cn")).expect("calendar");
        let ev = |key: &str, grid: &str, reported: &str, due: &str, closed: Option<(&str, &str)>| {
            let mut r = json!({"event_key": key, "title": "t", "category": "0102", "channel": "01",
                "reported_at": reported, "due_at": due, "status": if closed.is_some() { "closed" } else { "assigned" },
                "location": {"grid_code": grid}});
            if let Some((c, sat)) = closed {
                r["resolution"] = json!({"closed_at": c, "satisfaction": sat});
            }
            lifecycle.analyse(&r, &calendar)
        };
        let g1 = "330106004053001";
        let events = vec![
            // Mon 2 Nov → closed Wed 4 Nov, on time (2 working days), 满意.
            ev(
                "wangge:A",
                g1,
                "2026-11-02T09:00:00+08:00",
                "2026-11-06T17:00:00+08:00",
                Some(("2026-11-04T10:00:00+08:00", "1")),
            ),
            // Mon 9 Nov → closed Mon 16 Nov, late (5 working days), 不满意.
            ev(
                "wangge:B",
                g1,
                "2026-11-09T09:00:00+08:00",
                "2026-11-13T17:00:00+08:00",
                Some(("2026-11-16T10:00:00+08:00", "3")),
            ),
            // Open and overdue at the end of November.
            ev("wangge:C", g1, "2026-11-20T09:00:00+08:00", "2026-11-25T17:00:00+08:00", None),
            // October: counted nowhere in November.
            ev(
                "wangge:D",
                "330106004053002",
                "2026-10-20T09:00:00+08:00",
                "2026-10-25T17:00:00+08:00",
                Some(("2026-10-21T10:00:00+08:00", "1")),
            ),
        ];
        let requests = vec![
            RequestRow {
                request_key: "rexian:Q1".into(),
                grid_code: Some(g1.into()),
                community: None,
                category: Some("0201".into()),
                status: "matched".into(),
                requested_at: Some(at("2026-11-10T09:00:00+08:00")),
                matched_at: Some(at("2026-11-11T15:00:00+08:00")),
                has_candidates: true,
            },
            RequestRow {
                request_key: "rexian:Q2".into(),
                grid_code: Some(g1.into()),
                community: None,
                category: Some("0801".into()),
                status: "submitted".into(),
                requested_at: Some(at("2026-11-12T09:00:00+08:00")),
                matched_at: None,
                has_candidates: false,
            },
        ];
        let input = ReportInput {
            period: "2026-11".parse().expect("period"),
            now: at("2026-12-06T12:00:00+08:00"),
            events,
            supervised_by_alert: BTreeSet::from(["wangge:C".to_owned()]),
            requests,
            sharing: SharingInput {
                usage: vec![UsageRow {
                    consumer: "zhihui".into(),
                    resource: "wangge.patrol_report".into(),
                    queries: 3,
                    records: 12,
                    last_access: "2026-11-20T10:00:00+08:00".into(),
                }],
                objections: vec![
                    // Filed Fri 11-06, corrected Tue 11-10: 2 working days.
                    objection("2026-11-06", Some("2026-11-10"), "closed", "2026-11-13"),
                    // Filed Mon 11-16, dismissed Wed 11-18: 2 working days.
                    objection("2026-11-16", Some("2026-11-18"), "dismissed", "2026-11-23"),
                    // Open past its deadline at the period's end.
                    objection("2026-11-20", None, "open", "2026-11-27"),
                    // October's: not counted in November.
                    objection("2026-10-30", Some("2026-11-02"), "closed", "2026-11-06"),
                ],
            },
            departments: vec![DepartmentInput {
                department: "wangge".into(),
                name: "网格中心".into(),
                published: 9,
                rejected: 1,
                rejected_by_rule: BTreeMap::from([("format:gb11643".into(), 1)]),
                latencies_s: vec![30, 10, 20, 3600],
                kinds: vec![
                    KindFreshness {
                        kind: "patrol_report".into(),
                        cycle: Some("daily".into()),
                        last: Some(at("2026-11-30T20:00:00+08:00")),
                    },
                    KindFreshness {
                        kind: "grid_registry".into(),
                        cycle: Some("monthly".into()),
                        last: Some(at("2026-09-01T00:00:00+08:00")),
                    },
                ],
                conflicts: 2,
            }],
            filter: Filter::default(),
        };
        let report = Report::build(&input, &calendar);
        let g = report.grids.iter().find(|r| r.area == g1).expect("grid 1");
        assert_eq!((g.events_reported, g.events_closed, g.closed_on_time, g.overdue, g.supervised), (3, 2, 1, 2, 1));
        assert_eq!(g.on_time_rate, Some(0.5));
        assert_eq!(g.avg_handling_working_days, Some(3.5), "(2 + 5) / 2");
        assert_eq!((g.rated, g.satisfaction_rate), (2, Some(0.5)));
        assert_eq!((g.needs_raised, g.needs_matched, g.needs_unmatched, g.needs_without_candidates), (2, 1, 1, 1));
        assert_eq!(g.avg_hours_to_match, Some(30.0));
        assert!(report.grids.iter().all(|r| r.area != "330106004053002"), "October's grid has nothing in November");
        let d = &report.departments[0];
        assert_eq!((d.submitted, d.reject_rate, d.latency_p50_s), (10, Some(0.1), Some(20)));
        assert_eq!((d.fresh_kinds, d.declared_kinds), (1, 2), "daily fresh at the period's end, monthly stale");
        let o = &report.objections[0];
        assert_eq!((o.department.as_str(), o.name.as_str()), ("wangge", "网格中心"));
        assert_eq!((o.received, o.corrected, o.dismissed, o.open, o.overdue), (3, 1, 1, 1, 1), "October's not counted");
        assert_eq!(o.avg_working_days, Some(2.0), "Fri→Tue and Mon→Wed: 2 working days each");
        assert_eq!(report.usage.len(), 1);
        // CSV: one row per value; HTML: the tables, the charts and every definition.
        let csv = report.to_csv();
        assert!(csv.lines().any(|l| l == format!("2026-11,grid,{g1},,on_time_rate,0.5000")), "{csv}");
        assert!(csv.lines().any(|l| l == "2026-11,department,wangge,网格中心,rejected:format:gb11643,1"), "{csv}");
        let html = report.to_html();
        assert_eq!(html.matches("<svg").count(), 3);
        assert!(html.contains(g1) && html.contains("50.0%") && html.contains("GB/T 38664.4"));
        assert!(indicators().iter().all(|i| html.contains(&i.name)), "every indicator defined");
        assert!(!html.contains("<script"), "readable without JavaScript");
        assert!(html.contains("id=\"objections\"") && html.contains("zhihui") && html.contains("wangge.patrol_report"));
        // One grid only.
        let only = Report::build(
            &ReportInput { filter: Filter { grid: Some("330106004053002".into()), department: None }, ..input },
            &calendar,
        );
        assert_eq!((only.grids.len(), only.total.events_reported), (0, 0));
    }
}
