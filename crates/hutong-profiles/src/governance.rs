//! The governance consumers in the consumer service's store (交办反馈督办, 供需对接, 成效评估):
//! what the rules of `hutong-governance` make of the merged events, requests and resources,
//! kept in the same transaction as the facts they come from.
//!
//! - `gov_events`: each event's state (steps, anomalies, links, deadline) and when its deadline
//!   alerts are next due (`next_check`); `gov_links` the thread links; `gov_subjects` the
//!   addresses and parties events share (repeated events).
//! - `gov_alerts`: every alert raised, once (keyed by its stable id), with `published` for the
//!   outbox: an alert is written with the batch that raised it and published after the commit,
//!   so a crash in between publishes it on the next start, never loses it.
//! - `gov_requests`: each service request with its candidates (`doc`, as on the match topic)
//!   and when it was first matched; `published` for the same outbox.
//! - `gov_submissions` / `gov_rejects`: what each department sent, for the report.
//!
//! Deadline alerts depend on the time: [`Store::tick`] raises those whose moment has come.

use std::collections::{BTreeMap, BTreeSet};

use chrono::{DateTime, FixedOffset, SecondsFormat, Utc};
use hutong_governance::{
    Alert, EventState, Governance,
    report::{DepartmentInput, Filter, KindFreshness, Period, ReportInput, RequestRow},
};
use serde_json::{Value, json};

use crate::store::{Cell, EntityId, P, Store, StoreError, parse, text_of};

/// The governance tables, created beside the profile store's (the same on both engines).
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS gov_events (
  event_key TEXT PRIMARY KEY, department TEXT NOT NULL, grid_code TEXT NOT NULL, community TEXT NOT NULL,
  handling TEXT NOT NULL, status TEXT NOT NULL, open BIGINT NOT NULL, reported_at TEXT NOT NULL,
  next_check TEXT, state TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS gov_events_by_grid ON gov_events (grid_code);
CREATE INDEX IF NOT EXISTS gov_events_by_department ON gov_events (department);
CREATE INDEX IF NOT EXISTS gov_events_by_next_check ON gov_events (next_check);
CREATE TABLE IF NOT EXISTS gov_links (
  event_key TEXT NOT NULL, other_key TEXT NOT NULL, relation TEXT NOT NULL, PRIMARY KEY (event_key, other_key));
CREATE INDEX IF NOT EXISTS gov_links_by_other ON gov_links (other_key);
CREATE TABLE IF NOT EXISTS gov_subjects (subject TEXT NOT NULL, event_key TEXT NOT NULL, PRIMARY KEY (subject, event_key));
CREATE INDEX IF NOT EXISTS gov_subjects_by_event ON gov_subjects (event_key);
CREATE TABLE IF NOT EXISTS gov_alerts (
  alert_id TEXT PRIMARY KEY, condition TEXT NOT NULL, level TEXT NOT NULL, subject TEXT NOT NULL,
  grid_code TEXT NOT NULL, departments TEXT NOT NULL, condition_at TEXT NOT NULL, doc TEXT NOT NULL,
  published BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS gov_alerts_unpublished ON gov_alerts (published);
CREATE TABLE IF NOT EXISTS gov_requests (
  request_key TEXT PRIMARY KEY, status TEXT NOT NULL, open BIGINT NOT NULL, grid_code TEXT NOT NULL,
  category TEXT NOT NULL, requester_key TEXT NOT NULL, matched_at TEXT, has_candidates BIGINT NOT NULL,
  doc TEXT NOT NULL, digest TEXT NOT NULL, published BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS gov_requests_by_requester ON gov_requests (requester_key);
CREATE INDEX IF NOT EXISTS gov_requests_unpublished ON gov_requests (published);
CREATE TABLE IF NOT EXISTS gov_submissions (
  department TEXT NOT NULL, kind TEXT NOT NULL, source_id TEXT NOT NULL, revision BIGINT NOT NULL,
  occurred_at TEXT NOT NULL, published_at TEXT NOT NULL, PRIMARY KEY (department, kind, source_id, revision));
CREATE INDEX IF NOT EXISTS gov_submissions_by_time ON gov_submissions (published_at);
CREATE TABLE IF NOT EXISTS gov_rejects (
  event_id TEXT PRIMARY KEY, department TEXT NOT NULL, kind TEXT NOT NULL, received_at TEXT NOT NULL, rules TEXT NOT NULL);
";

/// A dead letter as the service keeps it ([`Store::rejects`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct RejectRow {
    /// Its event id (the DLQ message's key).
    pub event_id: String,
    /// The department that sent it.
    pub department: String,
    /// Its source kind.
    pub kind: String,
    /// When the gateway received it (RFC 3339 UTC).
    pub received_at: String,
    /// The rules it broke.
    pub rules: Vec<String>,
}

/// What one department sent of one kind lately ([`Store::activity`]).
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize)]
pub struct Activity {
    /// The department.
    pub department: String,
    /// Its source kind.
    pub kind: String,
    /// Records published in the last hour, day, and all the store holds.
    pub published_hour: i64,
    /// See `published_hour`.
    pub published_day: i64,
    /// See `published_hour`.
    pub published_all: i64,
    /// Records refused (dead letters) in the last hour, day, and all the store holds.
    pub rejected_hour: i64,
    /// See `rejected_hour`.
    pub rejected_day: i64,
    /// See `rejected_hour`.
    pub rejected_all: i64,
    /// When its last record was published (RFC 3339 UTC).
    pub last_published: Option<String>,
    /// When its last record was refused.
    pub last_rejected: Option<String>,
}

/// The clock deadlines are measured against.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    /// The system's.
    System,
    /// A fixed time (`[governance] now`): replays and tests.
    Fixed(DateTime<FixedOffset>),
}

impl Clock {
    /// Now, Beijing time.
    pub fn now(&self) -> DateTime<FixedOffset> {
        match self {
            Self::System => Utc::now().with_timezone(&hutong_governance::beijing()),
            Self::Fixed(t) => *t,
        }
    }
}

/// The governance rules and the clock, shared by the consumer and the query side.
#[derive(Debug)]
pub struct GovernanceRuntime {
    /// The rules and the calendar.
    pub rules: Governance,
    /// The clock.
    pub clock: Clock,
}

/// A source record as it reached the bus, for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Submission {
    /// Department.
    pub department: String,
    /// Source kind.
    pub kind: String,
    /// Source id (as on the bus).
    pub source_id: String,
    /// Revision.
    pub revision: i64,
    /// Its `ce_time` (when it happened, or was received).
    pub occurred_at: DateTime<Utc>,
    /// When Kafka took it.
    pub published_at: DateTime<Utc>,
}

/// A record the gateway refused (from the dead-letter topic), for the report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Reject {
    /// Its event id.
    pub event_id: String,
    /// Department.
    pub department: String,
    /// Source kind.
    pub kind: String,
    /// When the gateway received it.
    pub received_at: DateTime<Utc>,
    /// The rules it broke.
    pub rules: Vec<String>,
}

/// What the outbox holds: alerts and matches not yet published.
#[derive(Debug, Default)]
pub struct Outbox {
    /// Alert id and document.
    pub alerts: Vec<(String, Value)>,
    /// Request key and its matches (`None`: the request is gone, a tombstone).
    pub matches: Vec<(String, Option<Value>)>,
    /// Objection id and its document as it stands (数据异议).
    pub objections: Vec<(String, Value)>,
}

fn utc(t: DateTime<FixedOffset>) -> String {
    t.with_timezone(&Utc).to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn utc_of(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn state_of(text: &str) -> Result<EventState, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(format!("event state: {e}")))
}

impl Store {
    /// What the batch's merged events, requests, resources and persons change in the
    /// governance tables.
    pub(crate) fn govern(
        &mut self,
        g: &GovernanceRuntime,
        profiles: &BTreeMap<EntityId, Option<Value>>,
    ) -> Result<(), StoreError> {
        let mut requests = BTreeSet::new();
        let mut persons = BTreeSet::new();
        let mut resources = false;
        for ((entity, key), doc) in profiles {
            match entity.as_str() {
                "event" => self.govern_event(g, key, doc.as_ref().map(|d| &d["record"]))?,
                "service_request" => {
                    requests.insert(key.clone());
                }
                "service_resource" => resources = true,
                "person" => {
                    persons.insert(key.clone());
                }
                _ => {}
            }
        }
        // A changed resource may serve any open request; a person's tags, their own requests.
        if resources {
            let open = self.db.rows("SELECT request_key FROM gov_requests WHERE open = 1", &[])?;
            requests.extend(open.into_iter().map(|r| text_of(r)()));
        }
        if !persons.is_empty() {
            let params: Vec<Vec<P<'_>>> = persons.iter().map(|p| vec![P::T(p)]).collect();
            let rows = self.chunked("SELECT request_key FROM gov_requests WHERE {match requester_key}", 1, &params)?;
            requests.extend(rows.into_iter().map(|r| text_of(r)()));
        }
        if !requests.is_empty() {
            self.rematch(g, &requests)?;
        }
        Ok(())
    }

    fn govern_event(&mut self, g: &GovernanceRuntime, key: &str, record: Option<&Value>) -> Result<(), StoreError> {
        let id = [P::T(key)];
        self.db.exec("DELETE FROM gov_links WHERE event_key = $1", &id)?;
        self.db.exec("DELETE FROM gov_subjects WHERE event_key = $1", &id)?;
        let Some(record) = record else {
            self.db.exec("DELETE FROM gov_events WHERE event_key = $1", &id)?;
            return Ok(());
        };
        let rules = &g.rules;
        let state = rules.lifecycle.analyse(record, &rules.calendar);
        // The first deadline threshold still to come while the event is open.
        let epoch = DateTime::<Utc>::MIN_UTC.fixed_offset();
        let (_, next) = rules.alerts.overdue(&state, epoch, &rules.calendar);
        let doc = serde_json::to_string(&state).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        let (next, reported) = (next.map(utc), state.reported_at.map(utc).unwrap_or_default());
        self.db.exec(
            "INSERT INTO gov_events (event_key, department, grid_code, community, handling, status, open, reported_at, next_check, state) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10) ON CONFLICT (event_key) DO UPDATE SET \
             department = excluded.department, grid_code = excluded.grid_code, community = excluded.community, \
             handling = excluded.handling, status = excluded.status, open = excluded.open, reported_at = excluded.reported_at, \
             next_check = excluded.next_check, state = excluded.state",
            &[
                P::T(key),
                P::T(&state.department),
                P::T(state.grid_code.as_deref().unwrap_or_default()),
                P::T(state.community.as_deref().unwrap_or_default()),
                P::T(state.handling_department.as_deref().unwrap_or_default()),
                P::T(&state.status),
                P::I(i64::from(state.open)),
                P::T(&reported),
                next.as_deref().map_or(P::N, P::T),
                P::T(&doc),
            ],
        )?;
        let links: Vec<Vec<P<'_>>> =
            state.links.iter().map(|l| vec![P::T(key), P::T(&l.event_key), P::T(&l.relation)]).collect();
        self.chunked(
            "INSERT INTO gov_links (event_key, other_key, relation) VALUES {rows} ON CONFLICT (event_key, other_key) DO NOTHING",
            3,
            &links,
        )?;
        let subjects = rules.alerts.repeat_subjects(&state);
        let rows: Vec<Vec<P<'_>>> = subjects.iter().map(|s| vec![P::T(s), P::T(key)]).collect();
        self.chunked("INSERT INTO gov_subjects (subject, event_key) VALUES {rows} ON CONFLICT DO NOTHING", 2, &rows)?;
        let mut alerts = rules.alerts.on_steps(&state);
        for subject in &subjects {
            let sharing = self.db.rows(
                "SELECT e.state FROM gov_subjects s JOIN gov_events e ON e.event_key = s.event_key WHERE s.subject = $1",
                &[P::T(subject)],
            )?;
            let states = sharing.into_iter().map(|r| state_of(&text_of(r)())).collect::<Result<Vec<_>, _>>()?;
            alerts.extend(rules.alerts.repeated(subject, &states));
        }
        self.raise(&alerts)
    }

    /// Writes `alerts` to the outbox; an alert already raised changes nothing.
    fn raise(&mut self, alerts: &[Alert]) -> Result<(), StoreError> {
        let docs: Vec<(String, String, String)> = alerts
            .iter()
            .map(|a| {
                let doc = serde_json::to_string(a).expect("alerts serialise");
                let departments = serde_json::to_string(&a.departments).expect("strings serialise");
                (doc, departments, utc(a.condition_at))
            })
            .collect();
        let rows: Vec<Vec<P<'_>>> = alerts
            .iter()
            .zip(&docs)
            .map(|(a, (doc, departments, at))| {
                vec![
                    P::T(&a.alert_id),
                    P::T(&a.condition),
                    P::T(a.level.code()),
                    P::T(&a.subject),
                    P::T(a.grid_code.as_deref().unwrap_or_default()),
                    P::T(departments),
                    P::T(at),
                    P::T(doc),
                    P::I(0),
                ]
            })
            .collect();
        self.chunked(
            "INSERT INTO gov_alerts (alert_id, condition, level, subject, grid_code, departments, condition_at, doc, published) \
             VALUES {rows} ON CONFLICT (alert_id) DO NOTHING",
            9,
            &rows,
        )?;
        Ok(())
    }

    /// Raises the deadline alerts whose moment has come by `now`; how many were new.
    pub fn tick(&mut self, now: DateTime<FixedOffset>) -> Result<usize, StoreError> {
        let Some(g) = self.governance.clone() else { return Ok(0) };
        self.transaction(|s| {
            let due = s.db.rows(
                "SELECT event_key, state FROM gov_events WHERE next_check IS NOT NULL AND next_check <= $1",
                &[P::T(&utc(now))],
            )?;
            let before = s.db.rows("SELECT COUNT(*) FROM gov_alerts", &[])?;
            for r in due {
                let mut t = text_of(r);
                let (key, state) = (t(), state_of(&t())?);
                let (alerts, next) = g.rules.alerts.overdue(&state, now, &g.rules.calendar);
                s.raise(&alerts)?;
                let next = next.map(utc);
                s.db.exec(
                    "UPDATE gov_events SET next_check = $1 WHERE event_key = $2",
                    &[next.as_deref().map_or(P::N, P::T), P::T(&key)],
                )?;
            }
            let after = s.db.rows("SELECT COUNT(*) FROM gov_alerts", &[])?;
            let count =
                |rows: Vec<Vec<Cell>>| rows.into_iter().next().and_then(|r| r.first().map(Cell::int)).unwrap_or(0);
            Ok((count(after) - count(before)).max(0) as usize)
        })
    }

    /// Matches `requests` again against every resource.
    fn rematch(&mut self, g: &GovernanceRuntime, requests: &BTreeSet<String>) -> Result<(), StoreError> {
        let m = &g.rules.matching;
        let resources: Vec<Value> = self
            .db
            .rows("SELECT doc FROM profiles WHERE entity = 'service_resource'", &[])?
            .into_iter()
            .map(|r| parse(&text_of(r)()).map(|d| d["record"].clone()))
            .collect::<Result<_, _>>()?;
        let ids: Vec<Vec<P<'_>>> = requests.iter().map(|k| vec![P::T("service_request"), P::T(k)]).collect();
        let mut docs: BTreeMap<String, Value> = BTreeMap::new();
        for r in self.chunked("SELECT entity_key, doc FROM profiles WHERE {match entity, entity_key}", 2, &ids)? {
            let mut t = text_of(r);
            let key = t();
            docs.insert(key, parse(&t())?);
        }
        let params: Vec<Vec<P<'_>>> = requests.iter().map(|k| vec![P::T(k)]).collect();
        let mut held: BTreeMap<String, (Option<String>, String)> = BTreeMap::new();
        for r in self.chunked(
            "SELECT request_key, matched_at, digest FROM gov_requests WHERE {match request_key}",
            1,
            &params,
        )? {
            let mut c = r.into_iter();
            let key = c.next().and_then(Cell::text).unwrap_or_default();
            let matched = c.next().and_then(Cell::text);
            held.insert(key, (matched, c.next().and_then(Cell::text).unwrap_or_default()));
        }
        for key in requests {
            let Some(doc) = docs.get(key) else {
                // Gone: a tombstone on the match topic.
                self.db.exec(
                    "UPDATE gov_requests SET open = 0, doc = '', digest = '', published = 0 WHERE request_key = $1 AND doc <> ''",
                    &[P::T(key)],
                )?;
                continue;
            };
            let record = &doc["record"];
            let status = record["status"].as_str().unwrap_or_default();
            let open = m.is_open(record);
            let requester = record["requester"]["person_key"].as_str().unwrap_or_default();
            let tags = self.tags_of(requester)?;
            let candidates = if open { m.candidates(record, &tags, &resources) } else { Vec::new() };
            // First matched: the time of the fact that gave the matched status, kept at its
            // earliest (replays and reorderings give the same).
            let status_time = doc["fields"]["status"]["source"]["time"].as_str().map(str::to_owned);
            let (held_matched, held_digest) = held.get(key).cloned().unwrap_or_default();
            let matched_at = match (m.matched_statuses.contains(status), held_matched, status_time) {
                (true, Some(a), Some(b)) => Some(a.min(b)),
                (true, a, b) => a.or(b),
                (false, a, _) => a,
            };
            let out = json!({
                "request_key": key,
                "status": status,
                "open": open,
                "category": record["category"],
                "grid_code": record["service_area"]["grid_code"],
                "requested_at": record["requested_at"],
                "matched_at": matched_at,
                "candidates": candidates,
                "rules_version": m.rules_version,
            });
            let text = out.to_string();
            let digest = crate::store::digest(text.as_bytes());
            if digest == held_digest {
                continue;
            }
            self.db.exec(
                "INSERT INTO gov_requests (request_key, status, open, grid_code, category, requester_key, matched_at, has_candidates, doc, digest, published) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, 0) ON CONFLICT (request_key) DO UPDATE SET \
                 status = excluded.status, open = excluded.open, grid_code = excluded.grid_code, category = excluded.category, \
                 requester_key = excluded.requester_key, matched_at = excluded.matched_at, has_candidates = excluded.has_candidates, \
                 doc = excluded.doc, digest = excluded.digest, published = 0",
                &[
                    P::T(key),
                    P::T(status),
                    P::I(i64::from(open)),
                    P::T(record["service_area"]["grid_code"].as_str().unwrap_or_default()),
                    P::T(record["category"].as_str().unwrap_or_default()),
                    P::T(requester),
                    matched_at.as_deref().map_or(P::N, P::T),
                    P::I(i64::from(!candidates.is_empty())),
                    P::T(&text),
                    P::T(&digest),
                ],
            )?;
        }
        Ok(())
    }

    /// The special-population tags of a person's profile.
    fn tags_of(&mut self, person_key: &str) -> Result<Vec<String>, StoreError> {
        if person_key.is_empty() {
            return Ok(Vec::new());
        }
        let doc = self.profile("person", person_key)?;
        Ok(doc
            .iter()
            .flat_map(|d| d["record"]["special_population"].as_array().cloned().unwrap_or_default())
            .filter_map(|t| t["tag"].as_str().map(str::to_owned))
            .collect())
    }

    /// What each department sent lately (the console's overview): per department and kind,
    /// records published and refused since `hour` and since `day` (RFC 3339 UTC, as stored), and
    /// the last of each; `department` narrows it to one.
    pub fn activity(&mut self, hour: &str, day: &str, department: Option<&str>) -> Result<Vec<Activity>, StoreError> {
        let only = department.unwrap_or("");
        let mut out: BTreeMap<(String, String), Activity> = BTreeMap::new();
        for (table, at, published) in [("gov_submissions", "published_at", true), ("gov_rejects", "received_at", false)]
        {
            let sql = format!(
                "SELECT department, kind, CAST(SUM(CASE WHEN {at} >= $1 THEN 1 ELSE 0 END) AS BIGINT), \
                 CAST(SUM(CASE WHEN {at} >= $2 THEN 1 ELSE 0 END) AS BIGINT), CAST(COUNT(*) AS BIGINT), MAX({at}) \
                 FROM {table} WHERE ($3 = '' OR department = $3) GROUP BY department, kind"
            );
            for r in self.db.rows(&sql, &[P::T(hour), P::T(day), P::T(only)])? {
                let mut c = r.into_iter();
                let mut next = || c.next().unwrap_or(Cell::N);
                let (d, k) = (next().text().unwrap_or_default(), next().text().unwrap_or_default());
                let (h, dy, all, last) = (next().int(), next().int(), next().int(), next().text());
                let a = out.entry((d.clone(), k.clone())).or_insert_with(|| Activity {
                    department: d,
                    kind: k,
                    ..Activity::default()
                });
                if published {
                    (a.published_hour, a.published_day, a.published_all, a.last_published) = (h, dy, all, last);
                } else {
                    (a.rejected_hour, a.rejected_day, a.rejected_all, a.last_rejected) = (h, dy, all, last);
                }
            }
        }
        Ok(out.into_values().collect())
    }

    /// The dead letters the service has seen, newest first, at most `limit`, and how many match:
    /// of `department` and `kind` (empty: any), with a violation of `rule` (empty: any), received
    /// at or after `since` (RFC 3339 UTC as stored; empty: any).
    pub fn rejects(
        &mut self,
        department: &str,
        kind: &str,
        rule: &str,
        since: &str,
        limit: usize,
    ) -> Result<(Vec<RejectRow>, usize), StoreError> {
        let rows = self.db.rows(
            "SELECT event_id, department, kind, received_at, rules FROM gov_rejects \
             WHERE ($1 = '' OR department = $1) AND ($2 = '' OR kind = $2) AND received_at >= $3 \
             ORDER BY received_at DESC, event_id",
            &[P::T(department), P::T(kind), P::T(since)],
        )?;
        let mut out = Vec::new();
        let mut total = 0;
        for r in rows {
            let mut t = text_of(r);
            let (event_id, department, kind, received_at, rules) = (t(), t(), t(), t(), t());
            let rules: Vec<String> = serde_json::from_str(&rules).unwrap_or_default();
            if !rule.is_empty() && !rules.iter().any(|r| r == rule) {
                continue;
            }
            total += 1;
            if out.len() < limit {
                out.push(RejectRow { event_id, department, kind, received_at, rules });
            }
        }
        Ok((out, total))
    }

    /// Records what reached the bus and what was refused (idempotent: a replay changes nothing).
    pub fn record_intake(&mut self, submissions: &[Submission], rejects: &[Reject]) -> Result<(), StoreError> {
        if submissions.is_empty() && rejects.is_empty() {
            return Ok(());
        }
        let times: Vec<(String, String)> =
            submissions.iter().map(|s| (utc_of(s.occurred_at), utc_of(s.published_at))).collect();
        let rows: Vec<Vec<P<'_>>> = submissions
            .iter()
            .zip(&times)
            .map(|(s, (o, p))| {
                vec![P::T(&s.department), P::T(&s.kind), P::T(&s.source_id), P::I(s.revision), P::T(o), P::T(p)]
            })
            .collect();
        let rules: Vec<(String, String)> = rejects
            .iter()
            .map(|r| (utc_of(r.received_at), serde_json::to_string(&r.rules).expect("strings serialise")))
            .collect();
        let reject_rows: Vec<Vec<P<'_>>> = rejects
            .iter()
            .zip(&rules)
            .map(|(r, (at, rules))| vec![P::T(&r.event_id), P::T(&r.department), P::T(&r.kind), P::T(at), P::T(rules)])
            .collect();
        self.transaction(|s| {
            s.chunked(
                "INSERT INTO gov_submissions (department, kind, source_id, revision, occurred_at, published_at) VALUES {rows} \
                 ON CONFLICT (department, kind, source_id, revision) DO NOTHING",
                6,
                &rows,
            )?;
            s.chunked(
                "INSERT INTO gov_rejects (event_id, department, kind, received_at, rules) VALUES {rows} ON CONFLICT (event_id) DO NOTHING",
                5,
                &reject_rows,
            )?;
            Ok(())
        })
    }

    /// Alerts and matches not yet published, oldest first.
    pub fn outbox(&mut self, limit: usize) -> Result<Outbox, StoreError> {
        let n = P::I(limit as i64);
        let mut out = Outbox::default();
        for r in self.db.rows(
            "SELECT alert_id, doc FROM gov_alerts WHERE published = 0 ORDER BY condition_at, alert_id LIMIT $1",
            &[n],
        )? {
            let mut t = text_of(r);
            let id = t();
            out.alerts.push((id, parse(&t())?));
        }
        for r in self
            .db
            .rows("SELECT request_key, doc FROM gov_requests WHERE published = 0 ORDER BY request_key LIMIT $1", &[n])?
        {
            let mut t = text_of(r);
            let key = t();
            let doc = t();
            out.matches.push((key, if doc.is_empty() { None } else { Some(parse(&doc)?) }));
        }
        for r in self.db.rows("SELECT id, doc FROM objections WHERE published = 0 ORDER BY id LIMIT $1", &[n])? {
            let mut t = text_of(r);
            let id = t();
            out.objections.push((id, parse(&t())?));
        }
        Ok(out)
    }

    /// Marks what `outbox` returned as published (tombstoned requests are forgotten).
    pub fn mark_published(&mut self, outbox: &Outbox) -> Result<(), StoreError> {
        let alerts: Vec<Vec<P<'_>>> = outbox.alerts.iter().map(|(id, _)| vec![P::T(id)]).collect();
        let matches: Vec<Vec<P<'_>>> = outbox.matches.iter().map(|(k, _)| vec![P::T(k)]).collect();
        self.transaction(|s| {
            s.chunked("UPDATE gov_alerts SET published = 1 WHERE {match alert_id}", 1, &alerts)?;
            s.chunked("UPDATE gov_requests SET published = 1 WHERE {match request_key}", 1, &matches)?;
            s.db.exec("DELETE FROM gov_requests WHERE doc = '' AND published = 1", &[])?;
            // Only the version published: a change made meanwhile is published next time.
            for (id, doc) in &outbox.objections {
                s.db.exec(
                    "UPDATE objections SET published = 1 WHERE id = $1 AND doc = $2",
                    &[P::T(id), P::T(&doc.to_string())],
                )?;
            }
            Ok(())
        })
    }

    /// Events of a grid, community, department or handling body (open only unless
    /// `include_closed`), oldest report first, and how many match in all.
    pub fn events(&mut self, filter: &EventFilter, limit: usize) -> Result<(Vec<EventState>, u64), StoreError> {
        let rows = self.db.rows(
            "SELECT state FROM gov_events WHERE ($1 = '' OR grid_code = $1) AND ($2 = '' OR community = $2) \
             AND ($3 = '' OR department = $3) AND ($4 = '' OR handling = $4) AND ($5 = 'all' OR open = 1) \
             ORDER BY reported_at, event_key",
            &[
                P::T(&filter.grid),
                P::T(&filter.community),
                P::T(&filter.department),
                P::T(&filter.handling_body),
                P::T(if filter.include_closed { "all" } else { "open" }),
            ],
        )?;
        let total = rows.len() as u64;
        let states = rows.into_iter().take(limit).map(|r| state_of(&text_of(r)())).collect::<Result<_, _>>()?;
        Ok((states, total))
    }

    /// The thread of `key`: every event linked to it, directly or through others (in time
    /// order), the linked keys not on the bus yet, and the links.
    pub fn thread(&mut self, key: &str) -> Result<Thread, StoreError> {
        let keys = self.db.rows(
            "WITH RECURSIVE t(k) AS (SELECT CAST($1 AS TEXT) UNION \
               SELECT CASE WHEN l.event_key = t.k THEN l.other_key ELSE l.event_key END \
               FROM gov_links l JOIN t ON l.event_key = t.k OR l.other_key = t.k) \
             SELECT k FROM t",
            &[P::T(key)],
        )?;
        let keys: BTreeSet<String> = keys.into_iter().map(|r| text_of(r)()).collect();
        let params: Vec<Vec<P<'_>>> = keys.iter().map(|k| vec![P::T(k)]).collect();
        let mut states: Vec<EventState> = self
            .chunked("SELECT state FROM gov_events WHERE {match event_key}", 1, &params)?
            .into_iter()
            .map(|r| state_of(&text_of(r)()))
            .collect::<Result<_, _>>()?;
        states.sort_by(|a, b| (a.reported_at, &a.event_key).cmp(&(b.reported_at, &b.event_key)));
        let found: BTreeSet<&str> = states.iter().map(|s| s.event_key.as_str()).collect();
        let missing = keys.iter().filter(|k| !found.contains(k.as_str())).cloned().collect();
        let links = self
            .chunked("SELECT event_key, other_key, relation FROM gov_links WHERE {match event_key}", 1, &params)?
            .into_iter()
            .map(|r| {
                let mut t = text_of(r);
                (t(), t(), t())
            })
            .collect();
        Ok(Thread { events: states, missing, links })
    }

    /// Alerts, newest first, of a grid, a department (reporting or handling) and a level, and
    /// the count per level over all of them.
    pub fn alerts(
        &mut self,
        grid: &str,
        department: &str,
        level: &str,
        limit: usize,
    ) -> Result<(Vec<Value>, BTreeMap<String, u64>), StoreError> {
        let like = format!("%\"{department}\"%");
        let rows = self.db.rows(
            "SELECT level, doc FROM gov_alerts WHERE ($1 = '' OR grid_code = $1) AND ($2 = '' OR departments LIKE $3) \
             ORDER BY condition_at DESC, alert_id",
            &[P::T(grid), P::T(department), P::T(&like)],
        )?;
        let mut per_level = BTreeMap::new();
        let mut docs = Vec::new();
        for r in rows {
            let mut t = text_of(r);
            let l = t();
            *per_level.entry(l.clone()).or_insert(0) += 1;
            if (level.is_empty() || l == level) && docs.len() < limit {
                docs.push(parse(&t())?);
            }
        }
        Ok((docs, per_level))
    }

    /// Requests with their matches (only open ones without a match yet, when asked), and the
    /// open requests without a candidate per `grid/category`.
    pub fn matches(
        &mut self,
        grid: &str,
        unmatched_only: bool,
        limit: usize,
    ) -> Result<(Vec<Value>, BTreeMap<String, u64>), StoreError> {
        let rows = self.db.rows(
            "SELECT doc FROM gov_requests WHERE doc <> '' AND ($1 = '' OR grid_code = $1) AND ($2 = 'all' OR (open = 1 AND matched_at IS NULL)) \
             ORDER BY request_key",
            &[P::T(grid), P::T(if unmatched_only { "unmatched" } else { "all" })],
        )?;
        let docs = rows.into_iter().take(limit).map(|r| parse(&text_of(r)())).collect::<Result<_, _>>()?;
        let counts = self
            .db
            .rows(
                "SELECT grid_code, category, COUNT(*) FROM gov_requests WHERE open = 1 AND has_candidates = 0 AND doc <> '' \
                 GROUP BY grid_code, category ORDER BY grid_code, category",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let mut c = r.into_iter();
                let g = c.next().and_then(Cell::text).unwrap_or_default();
                let k = c.next().and_then(Cell::text).unwrap_or_default();
                (format!("{}/{k}", if g.is_empty() { "-" } else { &g }), c.next().map_or(0, |c| c.int()) as u64)
            })
            .collect();
        Ok((docs, counts))
    }

    /// What the report of `period` is built from. `cycles`: each (department, kind)'s declared
    /// update cycle; `names`: department names.
    pub fn report_input(
        &mut self,
        period: Period,
        now: DateTime<FixedOffset>,
        filter: Filter,
        cycles: &BTreeMap<(String, String), Option<String>>,
        names: &BTreeMap<String, String>,
    ) -> Result<ReportInput, StoreError> {
        let events = self
            .db
            .rows("SELECT state FROM gov_events ORDER BY event_key", &[])?
            .into_iter()
            .map(|r| state_of(&text_of(r)()))
            .collect::<Result<Vec<_>, _>>()?;
        let mut supervised_by_alert = BTreeSet::new();
        for r in self.db.rows("SELECT doc FROM gov_alerts WHERE level = 'supervision'", &[])? {
            let doc = parse(&text_of(r)())?;
            supervised_by_alert.extend(
                doc["event_keys"].as_array().into_iter().flatten().filter_map(|k| k.as_str().map(str::to_owned)),
            );
        }
        let time = |v: &Value| v.as_str().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
        let requests = self
            .db
            .rows("SELECT doc, has_candidates FROM gov_requests WHERE doc <> '' ORDER BY request_key", &[])?
            .into_iter()
            .map(|r| {
                let mut c = r.into_iter();
                let doc = parse(&c.next().and_then(Cell::text).unwrap_or_default())?;
                let grid = doc["grid_code"].as_str().map(str::to_owned);
                Ok(RequestRow {
                    request_key: doc["request_key"].as_str().unwrap_or_default().to_owned(),
                    community: grid.as_ref().filter(|g| g.len() >= 12).map(|g| g[..12].to_owned()),
                    grid_code: grid,
                    category: doc["category"].as_str().map(str::to_owned),
                    status: doc["status"].as_str().unwrap_or_default().to_owned(),
                    requested_at: time(&doc["requested_at"]),
                    matched_at: time(&doc["matched_at"]),
                    has_candidates: c.next().is_some_and(|c| c.int() != 0),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        // Per department: what it published and what was refused in the period.
        // The month's bounds as stored times compare (UTC): [start, next month's start).
        let (from, to) = (utc(period.start()), utc(period.end() + chrono::Duration::seconds(1)));
        let mut departments: BTreeMap<String, DepartmentInput> = BTreeMap::new();
        let dept = |d: &str| -> DepartmentInput {
            DepartmentInput {
                department: d.to_owned(),
                name: names.get(d).cloned().unwrap_or_else(|| d.to_owned()),
                ..Default::default()
            }
        };
        for ((d, k), cycle) in cycles {
            departments.entry(d.clone()).or_insert_with(|| dept(d)).kinds.push(KindFreshness {
                kind: k.clone(),
                cycle: cycle.clone(),
                last: None,
            });
        }
        for r in self.db.rows(
            "SELECT department, occurred_at, published_at FROM gov_submissions WHERE published_at >= $1 AND published_at < $2",
            &[P::T(&from), P::T(&to)],
        )? {
            let mut t = text_of(r);
            let (d, o, p) = (t(), t(), t());
            let e = departments.entry(d.clone()).or_insert_with(|| dept(&d));
            e.published += 1;
            if let (Some(o), Some(p)) = (time(&json!(o)), time(&json!(p))) {
                e.latencies_s.push((p - o).num_seconds());
            }
        }
        for r in self.db.rows("SELECT department, kind, MAX(published_at) FROM gov_submissions WHERE published_at < $1 GROUP BY department, kind", &[P::T(&to)])? {
            let mut t = text_of(r);
            let (d, k, last) = (t(), t(), t());
            let e = departments.entry(d.clone()).or_insert_with(|| dept(&d));
            match e.kinds.iter_mut().find(|x| x.kind == k) {
                Some(x) => x.last = time(&json!(last)),
                None => e.kinds.push(KindFreshness { kind: k, cycle: None, last: time(&json!(last)) }),
            }
        }
        for r in self.db.rows(
            "SELECT department, rules FROM gov_rejects WHERE received_at >= $1 AND received_at < $2",
            &[P::T(&from), P::T(&to)],
        )? {
            let mut t = text_of(r);
            let (d, rules) = (t(), t());
            let e = departments.entry(d.clone()).or_insert_with(|| dept(&d));
            e.rejected += 1;
            let rules: Vec<String> = serde_json::from_str(&rules).unwrap_or_default();
            for rule in rules.into_iter().collect::<BTreeSet<_>>() {
                *e.rejected_by_rule.entry(rule).or_insert(0) += 1;
            }
        }
        let (_, conflicts) = self.conflicts(None, None, 0)?;
        for (d, n) in conflicts {
            departments.entry(d.clone()).or_insert_with(|| dept(&d)).conflicts = n;
        }
        Ok(ReportInput {
            period,
            now,
            events,
            supervised_by_alert,
            requests,
            departments: departments.into_values().collect(),
            filter,
            sharing: self.sharing_input()?,
        })
    }

    /// Consumers' use and every objection, for the report.
    fn sharing_input(&mut self) -> Result<hutong_governance::report::SharingInput, StoreError> {
        use hutong_governance::report::{ObjectionInput, UsageRow};
        let usage = self
            .usage()?
            .into_iter()
            .map(|u| UsageRow {
                consumer: u["consumer"].as_str().unwrap_or_default().to_owned(),
                resource: u["resource"].as_str().unwrap_or_default().to_owned(),
                queries: u["queries"].as_u64().unwrap_or_default(),
                records: u["records"].as_u64().unwrap_or_default(),
                last_access: u["last_access"].as_str().unwrap_or_default().to_owned(),
            })
            .collect();
        let objections = self
            .objections(None, false)?
            .into_iter()
            .filter_map(|o| {
                Some(ObjectionInput {
                    department: o["department"].as_str()?.to_owned(),
                    filed: crate::access::day_of(&o["filed_at"])?,
                    due: crate::access::day_of(&o["due"]),
                    resolved: crate::access::day_of(&o["resolved_at"]),
                    status: o["status"].as_str().unwrap_or_default().to_owned(),
                })
            })
            .collect();
        Ok(hutong_governance::report::SharingInput { usage, objections })
    }
}

/// One governance matter across departments ([`Store::thread`]).
#[derive(Debug, Clone, Default)]
pub struct Thread {
    /// Its events, in time order.
    pub events: Vec<EventState>,
    /// Linked keys not on the bus yet.
    pub missing: Vec<String>,
    /// The links: from, to, relation.
    pub links: Vec<(String, String, String)>,
}

/// Which events [`Store::events`] returns.
#[derive(Debug, Clone, Default)]
pub struct EventFilter {
    /// Grid code (empty: any).
    pub grid: String,
    /// Community (empty: any).
    pub community: String,
    /// Reporting department (empty: any).
    pub department: String,
    /// Handling body (empty: any).
    pub handling_body: String,
    /// Closed ones too.
    pub include_closed: bool,
}
