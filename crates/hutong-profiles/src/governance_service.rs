//! `hutong.v1.Governance`: events with their deadline status, threads, alerts, matches and the
//! effectiveness report, for identified callers, every read audited; and the report's
//! indicators as Prometheus metrics of the service.

use std::{collections::BTreeMap, sync::Arc};

use hutong_gateway::Guard;
use hutong_governance::report::{Filter, Period, Report};
use hutong_proto::v1::{
    GetReportRequest, GetThreadRequest, ListAlertsReply, ListAlertsRequest, ListEventsReply, ListEventsRequest,
    ListMatchesReply, ListMatchesRequest, ReportReply, ThreadReply, governance_server,
};
use serde_json::{Value, json};
use tonic::{Request, Response, Status};

use crate::{
    governance::{EventFilter, GovernanceRuntime},
    service::{Queries, audit_read},
};

/// What the report needs besides the store: each kind's declared update cycle and the
/// departments' names.
#[derive(Debug, Clone, Default)]
pub struct Catalogue {
    /// (department, kind) → update cycle.
    pub cycles: BTreeMap<(String, String), Option<String>>,
    /// Department code → name.
    pub names: BTreeMap<String, String>,
}

impl Catalogue {
    /// From the adapters and the department code list of the standard.
    pub fn of(adapters: &hutong_adapter::Adapters, standard: &hutong_standard::Standard) -> Self {
        let cycles =
            adapters.iter().map(|a| ((a.department.clone(), a.kind.clone()), a.update_cycle.clone())).collect();
        let names = standard
            .codes()
            .get("department")
            .map(|l| l.codes().iter().map(|c| (c.code.clone(), c.name.clone())).collect())
            .unwrap_or_default();
        Self { cycles, names }
    }
}

/// The query side of the governance consumers.
pub struct GovernanceService {
    queries: Queries,
    guard: Arc<Guard>,
    runtime: Arc<GovernanceRuntime>,
    catalogue: Arc<Catalogue>,
    sharing: Arc<crate::access_service::Sharing>,
}

impl GovernanceService {
    /// Serves what the store at `queries` holds to callers `guard` lets in (a consumer only
    /// under an active grant of the governance resource).
    pub fn new(
        queries: Queries,
        guard: Arc<Guard>,
        runtime: Arc<GovernanceRuntime>,
        catalogue: Arc<Catalogue>,
        sharing: Arc<crate::access_service::Sharing>,
    ) -> Self {
        Self { queries, guard, runtime, catalogue, sharing }
    }

    /// Runs `query` for `who`, auditing `operation` with `detail` and its outcome (the error's
    /// code, or `Ok`).
    async fn audited<T: Send + 'static, Q>(
        &self,
        request: &Request<Q>,
        who: &hutong_config::Principal,
        operation: &'static str,
        detail: &Value,
        query: impl FnOnce(&mut crate::Store) -> Result<T, crate::StoreError> + Send + 'static,
    ) -> Result<T, Status> {
        let found = self.queries.run(query).await;
        let outcome = found.as_ref().map_or_else(|e| format!("{:?}", e.code()), |_| "Ok".to_owned());
        audit_read(&self.guard, request, who, operation, detail.clone(), &outcome);
        found
    }

    /// The report of `period` (filtered) at the service's clock.
    pub async fn report(&self, period: Period, filter: Filter) -> Result<Report, Status> {
        report(&self.queries, &self.runtime, &self.catalogue, period, filter).await
    }
}

async fn report(
    queries: &Queries,
    runtime: &Arc<GovernanceRuntime>,
    catalogue: &Arc<Catalogue>,
    period: Period,
    filter: Filter,
) -> Result<Report, Status> {
    let now = runtime.clock.now();
    let (rt, cat) = (Arc::clone(runtime), Arc::clone(catalogue));
    queries
        .run(move |s| {
            let input = s.report_input(period, now, filter, &cat.cycles, &cat.names)?;
            Ok(Report::build(&input, &rt.rules.calendar))
        })
        .await
}

fn limit(n: u32) -> usize {
    if n == 0 { 1000 } else { n as usize }
}

fn to_json<T: serde::Serialize>(v: &T) -> String {
    serde_json::to_string(v).expect("governance documents serialise")
}

#[tonic::async_trait]
impl governance_server::Governance for GovernanceService {
    async fn list_events(&self, request: Request<ListEventsRequest>) -> Result<Response<ListEventsReply>, Status> {
        let who = self.guard.reader(&request, "ListEvents")?;
        self.sharing
            .require(&self.guard, &self.queries, &request, &who, "ListEvents", hutong_sharing::GOVERNANCE_RESOURCE)
            .await?;
        let r = request.get_ref();
        let filter = EventFilter {
            grid: r.grid.trim().to_owned(),
            community: r.community.trim().to_owned(),
            department: r.department.trim().to_owned(),
            handling_body: r.handling_body.trim().to_owned(),
            include_closed: r.include_closed,
        };
        let detail = json!({"grid": filter.grid, "community": filter.community, "department": filter.department, "handling_body": filter.handling_body});
        let n = limit(r.limit);
        let (states, total) =
            self.audited(&request, &who, "ListEvents", &detail, move |s| s.events(&filter, n)).await?;
        let now = self.runtime.clock.now();
        let calendar = &self.runtime.rules.calendar;
        let events_json = states
            .iter()
            .map(|e| {
                let (status, late) = e.deadline_status(now, calendar);
                let age = e.reported_at.map(|r| {
                    calendar
                        .working_days_between(
                            r.with_timezone(&hutong_governance::beijing()).date_naive(),
                            now.with_timezone(&hutong_governance::beijing()).date_naive(),
                        )
                        .value
                });
                let mut doc = serde_json::to_value(e).expect("states serialise");
                doc["deadline_status"] = serde_json::to_value(status).expect("serialise");
                doc["working_days_late"] = json!(late);
                doc["age_working_days"] = json!(age);
                doc.to_string()
            })
            .collect();
        Ok(Response::new(ListEventsReply { events_json, total, now: now.to_rfc3339() }))
    }

    async fn get_thread(&self, request: Request<GetThreadRequest>) -> Result<Response<ThreadReply>, Status> {
        let who = self.guard.reader(&request, "GetThread")?;
        self.sharing
            .require(&self.guard, &self.queries, &request, &who, "GetThread", hutong_sharing::GOVERNANCE_RESOURCE)
            .await?;
        let key = request.get_ref().event_key.trim().to_owned();
        if key.is_empty() {
            return Err(Status::invalid_argument("event_key is empty"));
        }
        let detail = json!({"event_key": key});
        let k = key.clone();
        let found = self.queries.run(move |s| s.thread(&k)).await;
        let crate::governance::Thread { events: states, missing, links } = found.inspect_err(|e| {
            audit_read(&self.guard, &request, &who, "GetThread", detail.clone(), &format!("{:?}", e.code()))
        })?;
        if states.is_empty() {
            audit_read(&self.guard, &request, &who, "GetThread", detail, "NotFound");
            return Err(Status::not_found(format!("no event {key} on the bus")));
        }
        audit_read(&self.guard, &request, &who, "GetThread", detail, "Ok");
        Ok(Response::new(ThreadReply {
            events_json: states.iter().map(to_json).collect(),
            missing_keys: missing,
            links_json: links
                .iter()
                .map(|(from, to, relation)| json!({"from": from, "to": to, "relation": relation}).to_string())
                .collect(),
        }))
    }

    async fn list_alerts(&self, request: Request<ListAlertsRequest>) -> Result<Response<ListAlertsReply>, Status> {
        let who = self.guard.reader(&request, "ListAlerts")?;
        self.sharing
            .require(&self.guard, &self.queries, &request, &who, "ListAlerts", hutong_sharing::GOVERNANCE_RESOURCE)
            .await?;
        let r = request.get_ref();
        let (grid, department, level) =
            (r.grid.trim().to_owned(), r.department.trim().to_owned(), r.level.trim().to_owned());
        if !["", "reminder", "warning", "supervision"].contains(&level.as_str()) {
            return Err(Status::invalid_argument(format!(
                "level {level:?}: expected reminder, warning or supervision"
            )));
        }
        let detail = json!({"grid": grid, "department": department, "level": level});
        let n = limit(r.limit);
        let (alerts, per_level) = self
            .audited(&request, &who, "ListAlerts", &detail, move |s| s.alerts(&grid, &department, &level, n))
            .await?;
        Ok(Response::new(ListAlertsReply {
            alerts_json: alerts.iter().map(Value::to_string).collect(),
            per_level: per_level.into_iter().collect(),
        }))
    }

    async fn list_matches(&self, request: Request<ListMatchesRequest>) -> Result<Response<ListMatchesReply>, Status> {
        let who = self.guard.reader(&request, "ListMatches")?;
        self.sharing
            .require(&self.guard, &self.queries, &request, &who, "ListMatches", hutong_sharing::GOVERNANCE_RESOURCE)
            .await?;
        let r = request.get_ref();
        let (grid, unmatched) = (r.grid.trim().to_owned(), r.unmatched_only);
        let detail = json!({"grid": grid, "unmatched_only": unmatched});
        let n = limit(r.limit);
        let (matches, counts) =
            self.audited(&request, &who, "ListMatches", &detail, move |s| s.matches(&grid, unmatched, n)).await?;
        Ok(Response::new(ListMatchesReply {
            matches_json: matches.iter().map(Value::to_string).collect(),
            unmatched: counts.into_iter().collect(),
        }))
    }

    async fn get_report(&self, request: Request<GetReportRequest>) -> Result<Response<ReportReply>, Status> {
        let who = self.guard.reader(&request, "GetReport")?;
        self.sharing
            .require(&self.guard, &self.queries, &request, &who, "GetReport", hutong_sharing::GOVERNANCE_RESOURCE)
            .await?;
        let r = request.get_ref();
        let period: Period = r.period.parse().map_err(Status::invalid_argument)?;
        let filter = Filter {
            grid: Some(r.grid.trim().to_owned()).filter(|g| !g.is_empty()),
            department: Some(r.department.trim().to_owned()).filter(|d| !d.is_empty()),
        };
        let detail = json!({"period": period.to_string(), "grid": filter.grid, "department": filter.department});
        let report = self.report(period, filter).await.inspect_err(|e| {
            audit_read(&self.guard, &request, &who, "GetReport", detail.clone(), &format!("{:?}", e.code()))
        })?;
        audit_read(&self.guard, &request, &who, "GetReport", detail, "Ok");
        Ok(Response::new(ReportReply { report_json: to_json(&report) }))
    }
}

/// The indicators of the month's report as Prometheus metrics (`hutong_governance_*`, one
/// gauge per indicator, labelled by scope and key), the open needs no resource fits per grid
/// and category (`gaps`, keyed `grid/category`), and what the consumer did.
pub fn metrics_text(report: &Report, gaps: &BTreeMap<String, u64>, status: &crate::Status) -> String {
    use std::sync::atomic::Ordering::Relaxed;
    let mut out = String::new();
    let period = report.period.to_string();
    let label =
        |scope: &str, key: &str| format!("period=\"{period}\",scope=\"{scope}\",key=\"{}\"", key.replace('"', ""));
    let areas: Vec<(&str, &hutong_governance::report::AreaRow)> = report
        .grids
        .iter()
        .map(|a| ("grid", a))
        .chain(report.communities.iter().map(|a| ("community", a)))
        .chain(std::iter::once(("total", &report.total)))
        .collect();
    for ind in report.indicators.iter() {
        let mut rows = Vec::new();
        for (scope, a) in &areas {
            if let Some((_, v)) = a.values().into_iter().find(|(c, _)| *c == ind.code)
                && let Ok(v) = v.parse::<f64>()
            {
                rows.push((label(scope, &a.area), v));
            }
        }
        for d in &report.departments {
            let v = match ind.code.as_str() {
                "submitted" => Some(d.submitted as f64),
                "published" => Some(d.published as f64),
                "rejected" => Some(d.rejected as f64),
                "reject_rate" => d.reject_rate,
                "latency_p50_s" => d.latency_p50_s.map(|l| l as f64),
                "fresh_kinds" => Some(d.fresh_kinds as f64),
                "conflicts" => Some(d.conflicts as f64),
                _ => None,
            };
            if let Some(v) = v {
                rows.push((label("department", &d.department), v));
            }
        }
        if !rows.is_empty() {
            let help = format!("{} ({}): {}", ind.name, ind.code, ind.definition.replace('\n', " "));
            family(&mut out, &format!("hutong_governance_{}", ind.code), "gauge", &help, rows);
        }
    }
    let gap_rows = gaps.iter().map(|(key, n)| {
        let (grid, category) = key.split_once('/').unwrap_or((key.as_str(), ""));
        (format!("grid=\"{grid}\",category=\"{category}\""), *n)
    });
    family(
        &mut out,
        "hutong_governance_open_needs_without_resource",
        "gauge",
        "Open service requests no resource fits, per grid and service category (a gap in supply).",
        gap_rows,
    );
    out.push_str("# HELP hutong_profiles_facts_applied_total Facts that changed the store.\n# TYPE hutong_profiles_facts_applied_total counter\n");
    out.push_str(&format!("hutong_profiles_facts_applied_total {}\n", status.applied.load(Relaxed)));
    out.push_str("# HELP hutong_governance_published_total Alerts and matches published.\n# TYPE hutong_governance_published_total counter\n");
    out.push_str(&format!("hutong_governance_published_total {}\n", status.published.load(Relaxed)));
    out
}

/// One metric family in Prometheus text: its `# HELP` and `# TYPE` lines, then a line per
/// labelled value.
pub(crate) fn family<V: std::fmt::Display>(
    out: &mut String,
    name: &str,
    kind: &str,
    help: &str,
    rows: impl IntoIterator<Item = (String, V)>,
) {
    out.push_str(&format!("# HELP {name} {help}\n# TYPE {name} {kind}\n"));
    for (labels, v) in rows {
        out.push_str(&format!("{name}{{{labels}}} {v}\n"));
    }
}

/// The `/metrics` HTTP endpoint: the current month's report at each scrape.
pub fn metrics_router(
    queries: Queries,
    runtime: Arc<GovernanceRuntime>,
    catalogue: Arc<Catalogue>,
    status: Arc<crate::Status>,
) -> axum::Router {
    axum::Router::new().route(
        "/metrics",
        axum::routing::get(move || {
            let (queries, runtime, catalogue, status) =
                (queries.clone(), Arc::clone(&runtime), Arc::clone(&catalogue), Arc::clone(&status));
            async move {
                let now = runtime.clock.now().with_timezone(&hutong_governance::beijing());
                let period = Period { year: chrono::Datelike::year(&now), month: chrono::Datelike::month(&now) };
                let gaps = queries.run(|s| s.matches("", true, 0).map(|(_, counts)| counts)).await;
                let access = crate::access_service::metrics_text(&queries, now.date_naive()).await;
                match (report(&queries, &runtime, &catalogue, period, Filter::default()).await, gaps, access) {
                    (Ok(r), Ok(gaps), Ok(access)) => {
                        (axum::http::StatusCode::OK, metrics_text(&r, &gaps, &status) + &access)
                    }
                    (Err(e), _, _) | (_, Err(e), _) | (_, _, Err(e)) => {
                        (axum::http::StatusCode::SERVICE_UNAVAILABLE, format!("# the store: {}\n", e.message()))
                    }
                }
            }
        }),
    )
}
