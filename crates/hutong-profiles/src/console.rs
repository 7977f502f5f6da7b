//! 管理控制台, the admin console: pages served on the consumer service's own HTTPS port, behind
//! the same mTLS identities and policy as its gRPC services. Every page is the RPCs the CLI calls
//! (`hutong access list`, `hutong events` …), called in process with the browser's connection —
//! its verified client certificate and address — as the caller: a viewer sees what its identity
//! may see, and every read and action is audited by the code that audits the RPC. Pages are
//! rendered on the server (askama, checked at compile time) and read without JavaScript; a
//! decision is a plain form post.
//!
//! Who may open it: department and admin identities. A consumer (an integrator) is refused: it
//! has the APIs its grants cover.

use std::{collections::BTreeMap, sync::Arc};

use askama::Template;
use axum::{
    Router,
    extract::{Query, Request, State},
    http::{StatusCode, header, request::Parts},
    response::{Html, IntoResponse, Redirect, Response},
    routing::{get, post},
};
use chrono::{DateTime, Duration, FixedOffset, SecondsFormat, Utc};
use hutong_config::Principal;
use hutong_gateway::Guard;
use hutong_proto::v1::{
    DecideRequest, GetReportRequest, ListAlertsRequest, ListEventsRequest, ListObjectionsRequest, ListRequestsRequest,
    access_server::Access, governance_server::Governance,
};
use serde::Deserialize;
use serde_json::Value;

use crate::{
    access_service::AccessService,
    governance::Activity,
    governance_service::{Catalogue, GovernanceService},
    service::{Queries, audit_read},
};

/// What the console calls: the services of the port it is served on, and the store for the
/// overview's counts.
pub struct Console {
    /// The Access service (申请审批).
    pub access: Arc<AccessService>,
    /// The Governance service, when `[governance]` is enabled.
    pub governance: Option<Arc<GovernanceService>>,
    /// The store.
    pub queries: Queries,
    /// The guard of the port.
    pub guard: Arc<Guard>,
    /// Department names and each kind's declared update cycle.
    pub catalogue: Arc<Catalogue>,
    /// The gateways to ask for health, and their `/metrics` (`[console]`).
    pub gateways: Vec<String>,
    /// See `gateways`.
    pub gateway_metrics: Vec<String>,
    /// The CA the gateways' certificates chain to.
    pub ca: Option<std::path::PathBuf>,
    /// The brokers, for the service's own lag.
    pub kafka: hutong_bus::BusConfig,
    /// The service's consumer group and the topics it reads.
    pub group: String,
    /// See `group`.
    pub topics: Vec<String>,
    /// The audit trails it can read: its own, and the gateway's when on the same machine.
    pub audit_dirs: Vec<(String, std::path::PathBuf)>,
    /// The admin service over this deployment's schemas (adapters, dry run, registry subjects).
    pub admin: Arc<hutong_gateway::AdminService>,
    /// The standard's code lists, to browse.
    pub standard: Arc<hutong_standard::Standard>,
    /// The adapters, to mask a rejected record's personal fields as the topics do.
    pub adapters: Arc<hutong_adapter::Adapters>,
    /// Dead-letter reads at once (each scans the dead-letter topic).
    pub scans: tokio::sync::Semaphore,
}

/// The samples of a gateway's Prometheus text the overview shows.
const GATEWAY_SAMPLES: [(&str, &str); 5] = [
    ("hutong_producer_queue_messages", "生产队列 Producer queue"),
    ("hutong_records_in_flight", "处理中 In flight"),
    ("hutong_spool_messages", "暂存 Spool"),
    ("hutong_reload_generation", "适配器版本 Adapter generation"),
    ("hutong_reload_failed", "重载失败 Reload failed"),
];

impl Console {
    /// What each payload field of (`department`, `kind`) becomes, as far as masking goes: the
    /// `x-pii` of a personal field it lands in (`Some(pii)`), `None` for a field it maps only to
    /// fields that are not personal; fields the adapter does not map are absent.
    fn source_treatment(&self, department: &str, kind: &str) -> BTreeMap<String, Option<String>> {
        let mut out: BTreeMap<String, Option<String>> = BTreeMap::new();
        let Some(adapter) = self.adapters.get(department, kind) else { return out };
        let mut personal: BTreeMap<String, Vec<hutong_standard::privacy::PersonalField>> = BTreeMap::new();
        for (from, entity, to, reveals) in adapter.sources() {
            let fields = personal.entry(entity.clone()).or_insert_with(|| {
                self.standard
                    .entity(&entity)
                    .map(|e| hutong_standard::privacy::personal_fields(&e.dereferenced))
                    .unwrap_or_default()
            });
            // `/members/0/relation` is the schema's `/members/*/relation`.
            let path: String =
                to.split('/').map(|s| if s.parse::<usize>().is_ok() { "*" } else { s }).collect::<Vec<_>>().join("/");
            let pii = fields
                .iter()
                .find(|f| f.path == path || path.starts_with(&format!("{}/", f.path)))
                .map(|f| f.pii.clone())
                // A container with personal fields inside (an array of `[[output.each]]`): all hidden.
                .or_else(|| fields.iter().any(|f| f.path.starts_with(&format!("{path}/"))).then(|| "other".to_owned()))
                // A value a transform pseudonymises or reads a citizen ID from is personal at its source.
                .or_else(|| reveals.map(str::to_owned));
            let entry = out.entry(from).or_insert(None);
            *entry = match (entry.take(), pii) {
                (None, p) | (p, None) => p,
                (Some(a), Some(b)) if a == b => Some(a),
                // Two kinds of personal data: the strictest mask.
                (Some(_), Some(_)) => Some("other".to_owned()),
            };
        }
        out
    }

    /// Each gateway: serving or why not (gRPC health, no client certificate).
    async fn gateway_health(&self) -> Vec<(String, String)> {
        use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
        let auth = hutong_client::ClientAuth { ca: self.ca.clone(), ..Default::default() };
        // Every gateway at once: one that does not answer costs its 3 s, not the others'.
        futures::future::join_all(self.gateways.iter().map(|addr| async {
            let asked = async {
                let endpoint =
                    auth.endpoint(addr).map_err(|e| e.to_string())?.connect_timeout(std::time::Duration::from_secs(2));
                let channel = endpoint.connect().await.map_err(|e| format!("unreachable: {e}"))?;
                let service = hutong_proto::v1::ingest_server::SERVICE_NAME.to_owned();
                let answer = HealthClient::new(channel)
                    .check(HealthCheckRequest { service })
                    .await
                    .map_err(|e| e.message().to_owned())?;
                Ok::<_, String>(answer.into_inner().status == ServingStatus::Serving as i32)
            };
            let state = match tokio::time::timeout(std::time::Duration::from_secs(3), asked).await {
                Ok(Ok(true)) => "服务中 serving".to_owned(),
                Ok(Ok(false)) => "未服务 not serving".to_owned(),
                Ok(Err(e)) => format!("✗ {e}"),
                Err(_) => "✗ no answer in 3 s".to_owned(),
            };
            (addr.clone(), state)
        }))
        .await
    }

    /// Each gateway's samples of [`GATEWAY_SAMPLES`], or why they could not be read.
    async fn gateway_metrics(&self) -> Vec<(String, Result<BTreeMap<&'static str, String>, String>)> {
        use http_body_util::BodyExt as _;
        let client = hyper_util::client::legacy::Client::builder(hyper_util::rt::TokioExecutor::new())
            .build_http::<http_body_util::Empty<axum::body::Bytes>>();
        futures::future::join_all(self.gateway_metrics.iter().map(|url| async {
            let read = async {
                let uri: axum::http::Uri = url.parse().map_err(|e| format!("{e}"))?;
                let answer = client.get(uri).await.map_err(|e| format!("unreachable: {e}"))?;
                let body = answer.into_body().collect().await.map_err(|e| e.to_string())?.to_bytes();
                let text = String::from_utf8_lossy(&body).into_owned();
                let mut found = BTreeMap::new();
                for (name, _) in GATEWAY_SAMPLES {
                    let value = text
                        .lines()
                        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::trim))
                        .unwrap_or("–");
                    found.insert(name, value.to_owned());
                }
                Ok::<_, String>(found)
            };
            let got = tokio::time::timeout(std::time::Duration::from_secs(3), read)
                .await
                .unwrap_or_else(|_| Err("no answer in 3 s".to_owned()));
            (url.clone(), got)
        }))
        .await
    }

    /// The service's consumer group's lag per topic (messages not applied yet).
    async fn lag(&self) -> Result<Vec<(String, i64)>, String> {
        let client = self.kafka.client().map_err(|e| e.to_string())?;
        let (group, topics) = (self.group.clone(), self.topics.clone());
        // librdkafka's calls block (each with its own timeout); the whole is bounded too.
        let asked = tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            hutong_bus::lag_of(&client, std::slice::from_ref(&group), &names, std::time::Duration::from_secs(2))
        });
        let lags = tokio::time::timeout(std::time::Duration::from_secs(8), asked)
            .await
            .map_err(|_| "no answer from the brokers in 8 s".to_owned())?
            .map_err(|e| e.to_string())?
            .map_err(|e| e.to_string())?;
        let mut per_topic: BTreeMap<String, i64> = BTreeMap::new();
        for l in lags.iter().filter(|l| l.group == self.group) {
            *per_topic.entry(l.topic.clone()).or_default() += l.lag.max(0);
        }
        Ok(per_topic.into_iter().collect())
    }
}

/// What a browser may do on the service's port, put in front of every route (the console's and
/// the gRPC services'). A browser that holds a client certificate sends it with any page's
/// request, so:
/// - a request to a gRPC service must be gRPC (`content-type: application/grpc…`) and come from
///   no web page (no `Origin`, no `Sec-Fetch-Site`): a hostile page cannot call `Decide` with the
///   viewer's certificate;
/// - a console page is refused when another site asked for it (`Sec-Fetch-Site: cross-site` or
///   `same-site`), so no other page makes the browser read, and audit, a record;
/// - no other site may frame a console page (`X-Frame-Options`, `frame-ancestors`).
pub async fn browsers(request: Request, next: axum::middleware::Next) -> Response {
    // Read before any await: the request's body is not `Sync`, so no borrow of it may live across one.
    let (site, origin, content_type, console) = {
        let h = |name: &str| request.headers().get(name).and_then(|v| v.to_str().ok()).map(str::to_owned);
        (h("sec-fetch-site"), h("origin"), h("content-type"), request.uri().path().starts_with("/console"))
    };
    if console {
        if matches!(site.as_deref(), Some("cross-site" | "same-site")) {
            return (StatusCode::FORBIDDEN, "the console answers its own pages and typed addresses only")
                .into_response();
        }
        let mut response = next.run(request).await;
        let headers = response.headers_mut();
        headers.insert("x-frame-options", axum::http::HeaderValue::from_static("SAMEORIGIN"));
        headers.insert("content-security-policy", axum::http::HeaderValue::from_static("frame-ancestors 'self'"));
        headers.insert("x-content-type-options", axum::http::HeaderValue::from_static("nosniff"));
        return response;
    }
    let grpc = content_type.is_some_and(|t| t.starts_with("application/grpc"));
    if !grpc {
        return (StatusCode::FORBIDDEN, "gRPC only").into_response();
    }
    if site.is_some() || origin.is_some() {
        // Said in gRPC, so a client reads PERMISSION_DENIED.
        return tonic::Status::permission_denied("a gRPC call from a web page (Origin, Sec-Fetch-Site) is refused")
            .into_http::<axum::body::Body>();
    }
    next.run(request).await
}

/// The console's routes, under `/console`.
pub fn router(console: Arc<Console>) -> Router {
    Router::new()
        .route("/console", get(overview))
        .route("/console/rejects", get(rejects))
        .route("/console/rejects/{id}", get(reject))
        .route("/console/sharing", get(sharing))
        .route("/console/sharing/decide", post(decide))
        .route("/console/governance", get(governance))
        .route("/console/thread/{key}", get(thread))
        .route("/console/report", get(report))
        .route("/console/audit", get(audit))
        .route("/console/adapters", get(adapters).post(adapters_post))
        .with_state(console)
}

#[derive(Template)]
#[template(path = "console.html")]
struct Page {
    title: String,
    viewer: String,
    nav: Vec<(&'static str, &'static str, bool)>,
    notice: Option<String>,
    error: Option<String>,
    /// (element id, label, value).
    cards: Vec<(String, String, String)>,
    sections: Vec<Section>,
    /// Refresh the numbers in place (progressive enhancement; the page reads without it).
    live: bool,
}

#[derive(Default)]
struct Section {
    id: String,
    title: String,
    note: Option<String>,
    /// A GET form of (name, label, value) fields posting to `filter_action`.
    filters: Vec<(String, String, String)>,
    filter_action: String,
    headers: Vec<String>,
    rows: Vec<Row>,
    /// A link per row (its `href`).
    links: bool,
    /// Approve / deny forms on rows with a key.
    actions: bool,
    frame: Option<String>,
    /// A chart (SVG markup made by [`hutong_governance::report::bar_chart`], which escapes its text).
    svg: Option<String>,
    /// A POST form: fields and a text area.
    post: Option<PostForm>,
}

struct PostForm {
    action: String,
    /// (name, label, value).
    fields: Vec<(String, String, String)>,
    area: (String, String, String),
    button: String,
}

#[derive(Default)]
struct Row {
    /// (text, numeric).
    cells: Vec<(String, bool)>,
    class: &'static str,
    key: String,
    href: String,
}

impl Row {
    fn of(cells: impl IntoIterator<Item = String>) -> Self {
        Row { cells: cells.into_iter().map(|c| (c, false)).collect(), ..Row::default() }
    }
}

const NAV: [(&str, &str); 6] = [
    ("/console", "总览 Overview"),
    ("/console/rejects", "拒收 Rejects"),
    ("/console/adapters", "适配器与标准 Adapters"),
    ("/console/sharing", "共享审批 Sharing"),
    ("/console/governance", "治理 Governance"),
    ("/console/audit", "审计 Audit"),
];

/// The RPC request a page makes for the browser: its connection (the verified client certificate
/// and address the tonic port put in the extensions) and its headers as metadata.
fn call<T>(parts: &Parts, message: T) -> tonic::Request<T> {
    tonic::Request::from_parts(
        tonic::metadata::MetadataMap::from_headers(parts.headers.clone()),
        parts.extensions.clone(),
        message,
    )
}

/// A page's answer when the RPC refused or failed: its status as HTTP, the message in words.
fn refused(status: &tonic::Status) -> Response {
    let code = hutong_gateway::ErrorCode::of_grpc(status.code()).http();
    (
        code,
        Html(format!(
            "<!DOCTYPE html><meta charset=\"utf-8\"><title>拒绝 Refused</title><p id=\"error\">{}: {}</p>",
            escape(&format!("{:?}", status.code())),
            escape(status.message())
        )),
    )
        .into_response()
}

use hutong_governance::report::escape;

impl Console {
    /// Who is looking: a department or an admin of the policy. Consumers and anonymous callers
    /// are refused (and audited by the guard).
    fn viewer(&self, parts: &Parts, page: &'static str) -> Result<Principal, tonic::Status> {
        let probe = call(parts, ());
        let who = self.guard.reader(&probe, page)?;
        if let Principal::Consumer(c) = &who {
            let status = tonic::Status::permission_denied(format!(
                "consumer {c}: the console is for departments and admins; a consumer reads through the APIs its grants cover"
            ));
            audit_read(&self.guard, &probe, &who, "Console", serde_json::json!({"page": page}), "PermissionDenied");
            return Err(status);
        }
        Ok(who)
    }

    fn page(&self, who: &Principal, at: &str, title: &str) -> Page {
        let name = match who {
            Principal::Department(d) => {
                format!("{} {d}（部门 department）", self.catalogue.names.get(d).map_or("", String::as_str))
            }
            other => format!("{}（{}）", other.name(), other.role()),
        };
        Page {
            title: title.to_owned(),
            viewer: name,
            nav: NAV.iter().map(|(href, label)| (*href, *label, *href == at)).collect(),
            notice: None,
            error: None,
            cards: Vec::new(),
            sections: Vec::new(),
            live: false,
        }
    }

    fn department_name(&self, code: &str) -> String {
        match self.catalogue.names.get(code) {
            Some(n) => format!("{n} {code}"),
            None => code.to_owned(),
        }
    }
}

fn render(page: &Page) -> Response {
    match page.render() {
        Ok(html) => Html(html).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("rendering the page: {e}")).into_response(),
    }
}

fn text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Array(a) => a.iter().map(text).collect::<Vec<_>>().join(", "),
        other => other.to_string(),
    }
}

fn docs(list: &[String]) -> Vec<Value> {
    list.iter().filter_map(|d| serde_json::from_str(d).ok()).collect()
}

fn pct(part: i64, whole: i64) -> String {
    if whole == 0 { "–".to_owned() } else { format!("{:.1}%", part as f64 * 100.0 / whole as f64) }
}

/// 总览: per department and kind, what it sent in the last hour and day, what was refused,
/// when it last sent against its declared update cycle. A department sees its own rows.
async fn overview(State(c): State<Arc<Console>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleOverview") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let now = Utc::now();
    let (hour, day) = (stamp(now - Duration::hours(1)), stamp(now - Duration::days(1)));
    let only = match &who {
        Principal::Department(d) => Some(d.clone()),
        _ => None,
    };
    let found = c.queries.run(move |s| s.activity(&hour, &day, only.as_deref())).await;
    let activity: Vec<Activity> = match found {
        Ok(a) => a,
        Err(s) => return refused(&s),
    };
    audit_read(&c.guard, &call(&parts, ()), &who, "Console", serde_json::json!({"page": "overview"}), "Ok");
    let at: DateTime<FixedOffset> = now.with_timezone(&hutong_governance::beijing());
    let sum = |f: fn(&Activity) -> i64| activity.iter().map(f).sum::<i64>();
    let mut page = c.page(&who, "/console", "总览 Overview");
    page.live = true;
    let departments: std::collections::BTreeSet<&str> =
        activity.iter().filter(|a| a.published_all > 0).map(|a| a.department.as_str()).collect();
    page.cards = vec![
        ("departments".into(), "上报部门 Departments sending".into(), departments.len().to_string()),
        ("published-hour".into(), "近1小时发布 Published, 1 h".into(), sum(|a| a.published_hour).to_string()),
        ("published-day".into(), "近24小时发布 Published, 24 h".into(), sum(|a| a.published_day).to_string()),
        ("rejected-day".into(), "近24小时拒收 Rejected, 24 h".into(), sum(|a| a.rejected_day).to_string()),
        (
            "reject-rate".into(),
            "拒收率 Reject rate, 24 h".into(),
            pct(sum(|a| a.rejected_day), sum(|a| a.rejected_day) + sum(|a| a.published_day)),
        ),
    ];
    let rows = activity
        .iter()
        .map(|a| {
            let cycle = c.catalogue.cycles.get(&(a.department.clone(), a.kind.clone())).cloned().flatten();
            let last = a.last_published.as_deref().and_then(|t| DateTime::parse_from_rfc3339(t).ok());
            let freshness =
                hutong_governance::report::KindFreshness { kind: a.kind.clone(), cycle: cycle.clone(), last };
            let fresh = freshness.fresh(at);
            let state = match fresh {
                Some(true) => "按期 on time",
                Some(false) => "逾期 late",
                None => "–",
            };
            let mut row = Row::of([
                c.department_name(&a.department),
                a.kind.clone(),
                cycle.unwrap_or_else(|| "–".into()),
                a.last_published.clone().unwrap_or_else(|| "–".into()),
                state.to_owned(),
            ]);
            for n in
                [a.published_hour, a.rejected_hour, a.published_day, a.rejected_day, a.published_all, a.rejected_all]
            {
                row.cells.push((n.to_string(), true));
            }
            row.cells.push((pct(a.rejected_all, a.rejected_all + a.published_all), true));
            row.class = if fresh == Some(false) { "late" } else { "" };
            row.key = format!("{}/{}", a.department, a.kind);
            row
        })
        .collect();
    let mut per_department: BTreeMap<&str, (f64, f64)> = BTreeMap::new();
    for a in &activity {
        let e = per_department.entry(a.department.as_str()).or_default();
        e.0 += a.published_all as f64;
        e.1 += a.rejected_all as f64;
    }
    let bars: Vec<hutong_governance::report::Bar> =
        per_department.iter().map(|(d, (p, r))| (c.department_name(d), vec![(*p, "s1"), (*r, "s2")])).collect();
    page.sections.push(Section {
        id: "chart".into(),
        title: "发布与拒收 Published and rejected, per department".into(),
        svg: (!bars.is_empty()).then(|| {
            hutong_governance::report::bar_chart(
                "累计 All the store holds",
                &[("发布 published", "s1"), ("拒收 rejected", "s2")],
                &bars,
            )
        }),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "departments".into(),
        title: "各部门上报 What each department sends".into(),
        note: Some(format!(
            "时间 UTC；更新周期取自适配器声明 Update cycles as the adapters declare them; now {}",
            stamp(now)
        )),
        headers: [
            "部门 Department",
            "类别 Kind",
            "更新周期 Cycle",
            "最近发布 Last published",
            "新鲜度 Freshness",
            "1h 发布 published",
            "1h 拒收 rejected",
            "24h 发布 published",
            "24h 拒收 rejected",
            "累计发布 All published",
            "累计拒收 All rejected",
            "拒收率 Reject rate",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows,
        ..Section::default()
    });
    // The gateways and the service itself: admins only (a department's officer sees its own data).
    if matches!(who, Principal::Admin(_)) {
        let (health, metrics, lag) = tokio::join!(c.gateway_health(), c.gateway_metrics(), c.lag());
        page.sections.push(Section {
            id: "gateways".into(),
            title: "网关 Gateways".into(),
            headers: ["网关 Gateway", "健康 Health"].map(str::to_owned).to_vec(),
            rows: health.into_iter().map(|(a, h)| Row::of([a, h])).collect(),
            ..Section::default()
        });
        let mut headers = vec!["指标 Metrics".to_owned()];
        headers.extend(GATEWAY_SAMPLES.iter().map(|(_, label)| (*label).to_owned()));
        page.sections.push(Section {
            id: "gateway-metrics".into(),
            title: "网关运行 Gateway queues and reloads".into(),
            headers,
            rows: metrics
                .into_iter()
                .map(|(url, got)| {
                    let mut row = Row::of([url]);
                    match got {
                        Ok(found) => {
                            row.class =
                                if found.get("hutong_reload_failed").is_some_and(|v| v == "1") { "bad" } else { "" };
                            row.cells.extend(GATEWAY_SAMPLES.iter().map(|(n, _)| (found[n].clone(), true)));
                        }
                        Err(e) => {
                            row.class = "bad";
                            row.cells.push((format!("✗ {e}"), false));
                        }
                    }
                    row
                })
                .collect(),
            ..Section::default()
        });
        let (rows, note) = match lag {
            Ok(l) => (
                l.into_iter()
                    .map(|(t, n)| {
                        let mut row = Row::of([t]);
                        row.cells.push((n.to_string(), true));
                        row
                    })
                    .collect(),
                format!("消费组 Consumer group {}", c.group),
            ),
            Err(e) => (Vec::new(), format!("✗ {e}")),
        };
        page.sections.push(Section {
            id: "lag".into(),
            title: "消费滞后 The consumer service's lag".into(),
            note: Some(note),
            headers: ["主题 Topic", "未处理 Not applied yet"].map(str::to_owned).to_vec(),
            rows,
            ..Section::default()
        });
    }
    render(&page)
}

/// `since` as the store compares it (RFC 3339 UTC seconds): a time, or a duration back from now;
/// empty: from the beginning.
fn since_of(since: &str) -> Result<String, String> {
    if since.trim().is_empty() {
        return Ok(String::new());
    }
    hutong_governance::since(since, Utc::now()).map(stamp).map_err(|e| format!("since: {e}"))
}

fn stamp(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

#[derive(Debug, Default, Deserialize)]
struct RejectFilter {
    /// Received since: an RFC 3339 time or a duration back from now (`24h`, `7d`).
    #[serde(default)]
    since: String,
    #[serde(default)]
    department: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    rule: String,
}

/// 拒收: the dead letters the service has seen, newest first, with their rules; a department
/// sees its own.
async fn rejects(State(c): State<Arc<Console>>, Query(f): Query<RejectFilter>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleRejects") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let department = match &who {
        Principal::Department(d) => d.clone(),
        _ => f.department.trim().to_owned(),
    };
    let (kind, rule) = (f.kind.trim().to_owned(), f.rule.trim().to_owned());
    let since = match since_of(&f.since) {
        Ok(t) => t,
        Err(e) => return refused(&tonic::Status::invalid_argument(e)),
    };
    let (d, k, r, t) = (department.clone(), kind.clone(), rule.clone(), since.clone());
    let found = c.queries.run(move |s| s.rejects(&d, &k, &r, &t, 500)).await;
    let (list, total) = match found {
        Ok(x) => x,
        Err(s) => return refused(&s),
    };
    let detail = serde_json::json!({"page": "rejects", "department": department, "kind": kind, "rule": rule, "rows": list.len()});
    audit_read(&c.guard, &call(&parts, ()), &who, "Console", detail, "Ok");
    let mut page = c.page(&who, "/console/rejects", "拒收 Rejects");
    page.cards = vec![("rejects-total".into(), "拒收记录 Rejected records".into(), total.to_string())];
    let mut filters = Vec::new();
    if !matches!(who, Principal::Department(_)) {
        filters.push(("department".into(), "部门 Department".into(), department.clone()));
    }
    filters.push(("kind".into(), "类别 Kind".into(), kind));
    filters.push(("rule".into(), "规则 Rule".into(), rule));
    filters.push(("since".into(), "自 Since (24h, 7d, RFC 3339)".into(), f.since.trim().to_owned()));
    page.sections.push(Section {
        id: "rejects".into(),
        title: "死信 Dead letters (hutong.dlq.v1)".into(),
        note: Some(
            "每条的违规规则见 docs/rules.md；修正适配器后用 hutong dlq replay 重新提交 Rules in docs/rules.md; after an \
             adapter fix, `hutong dlq replay` sends them again"
                .into(),
        ),
        filters,
        filter_action: "/console/rejects".into(),
        headers: ["收到 Received", "部门 Department", "类别 Kind", "规则 Rules", "事件 Event id"].map(str::to_owned).to_vec(),
        links: true,
        rows: list
            .into_iter()
            .map(|x| {
                let mut row = Row::of([x.received_at, c.department_name(&x.department), x.kind, x.rules.join(", "), x.event_id.clone()]);
                row.href = format!("/console/rejects/{}", x.event_id);
                row.key = x.event_id;
                row
            })
            .collect(),
        ..Section::default()
    });
    render(&page)
}

/// Every string value in `v`.
fn strings_of(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::String(s) if !s.is_empty() => out.push(s.clone()),
        Value::Array(a) => a.iter().for_each(|x| strings_of(x, out)),
        Value::Object(o) => o.values().for_each(|x| strings_of(x, out)),
        _ => {}
    }
}

/// `message` for an admin: every double-quoted literal hidden (`"***"`) unless it is in `clear`,
/// and every run of six or more digits outside them (an ID, a phone, a date quoted bare).
fn masked_message(message: &str, clear: &std::collections::HashSet<String>) -> String {
    let mut out = String::new();
    let mut rest = message;
    while let Some(i) = rest.find('"') {
        out.push_str(&masked_digits(&rest[..i]));
        let after = &rest[i + 1..];
        match after.find('"') {
            Some(j) => {
                let literal = &after[..j];
                out.push('"');
                out.push_str(if clear.contains(literal) { literal } else { "***" });
                out.push('"');
                rest = &after[j + 1..];
            }
            None => {
                out.push('"');
                rest = after;
            }
        }
    }
    out.push_str(&masked_digits(rest));
    out
}

/// Runs of six or more ASCII digits replaced by as many `*`.
fn masked_digits(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() >= 6 {
            out.extend(std::iter::repeat_n('*', run.len()));
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}

/// A source value shown as the shared topics show a `pii` field (`hutong_standard::privacy::mask`);
/// a number or a list as its text.
fn masked_as(pii: &str, v: &Value) -> String {
    match v {
        Value::Null => String::new(),
        other => hutong_standard::privacy::mask(pii, &text(other)),
    }
}

/// One dead letter: its violations (pointer, rule, message) and the record as it was sent, read
/// from the dead-letter topic. The sending department sees its record as sent; an admin sees it
/// with every value masked (the shape of what was wrong, not the resident's data); another
/// department nothing. Every view is audited (`ViewPayload`).
async fn reject(
    State(c): State<Arc<Console>>,
    axum::extract::Path(id): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleReject") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let probe = call(&parts, ());
    // Each view reads the dead-letter topic: two at a time, the rest told to come back.
    let Ok(_scan) = c.scans.try_acquire() else {
        return refused(&tonic::Status::resource_exhausted("two dead letters are being read; try again in a moment"));
    };
    let client = match c.kafka.client() {
        Ok(client) => client,
        Err(e) => return refused(&tonic::Status::unavailable(e.to_string())),
    };
    let (topic, wanted) = (c.kafka.topics().dlq(), id.clone());
    let found = tokio::task::spawn_blocking(move || {
        hutong_bus::scan_to_end(&client, &[&topic], std::time::Duration::from_secs(30), |m| {
            use rdkafka::message::Message as _;
            (m.key() == Some(wanted.as_bytes()))
                .then(|| m.payload().and_then(|p| serde_json::from_slice::<Value>(p).ok()))?
        })
    })
    .await;
    let letter = match found {
        Ok(Ok(mut list)) => list.pop(),
        Ok(Err(e)) => return refused(&tonic::Status::unavailable(e.to_string())),
        Err(e) => return refused(&tonic::Status::internal(e.to_string())),
    };
    let detail = serde_json::json!({"event_id": id});
    let Some(letter) = letter else {
        audit_read(&c.guard, &probe, &who, "ViewPayload", detail, "NotFound");
        return refused(&tonic::Status::not_found(format!(
            "no dead letter {id} on the dead-letter topic (kept 30 days)"
        )));
    };
    let department = text(&letter["department"]);
    let as_sent = match &who {
        Principal::Department(d) if *d == department => true,
        Principal::Admin(_) => {
            // Admins the policy lets read rejected records (`ViewDeadLetter`), masked.
            if let Err(s) = c.guard.admin(&probe, "ViewDeadLetter") {
                return refused(&s);
            }
            false
        }
        _ => {
            audit_read(&c.guard, &probe, &who, "ViewPayload", detail, "PermissionDenied");
            return refused(&tonic::Status::not_found(format!("no dead letter {id} of yours")));
        }
    };
    let mut detail = detail;
    detail["masked"] = (!as_sent).into();
    audit_read(&c.guard, &probe, &who, "ViewPayload", detail, "Ok");
    let mut page = c.page(&who, "/console/rejects", &format!("拒收记录 Dead letter {id}"));
    page.cards = vec![
        ("department".into(), "部门 Department".into(), c.department_name(&department)),
        ("kind".into(), "类别 Kind".into(), text(&letter["kind"])),
        ("received".into(), "收到 Received".into(), text(&letter["received_at"])),
        ("revision".into(), "版本 Revision".into(), text(&letter["revision"])),
    ];
    // For an admin, each field masked as the shared topics mask what it becomes: a field the
    // adapter maps to a personal field (x-pii) by that field's rule, a field it does not map by
    // the strictest ("***"), the rest in clear.
    let fields = letter["payload"]["json"].as_object().cloned().unwrap_or_default();
    let treatment = c.source_treatment(&department, &text(&letter["kind"]));
    let shown = |name: &str, v: &Value| -> String {
        match (as_sent, treatment.get(name)) {
            (true, _) | (false, Some(None)) => text(v),
            (false, Some(Some(pii))) => masked_as(pii, v),
            (false, None) => masked_as("other", v),
        }
    };
    // A violation quotes what it found, often after a transform (trimmed, NFKC, upper, an ID
    // made 18 digits): for an admin every quoted value is hidden but those of fields that are not
    // personal, and every run of six digits or more.
    let mut clear = std::collections::HashSet::new();
    for (name, v) in &fields {
        if matches!(treatment.get(name.as_str()), Some(None)) {
            let mut found = Vec::new();
            strings_of(v, &mut found);
            clear.extend(found);
        }
    }
    page.sections.push(Section {
        id: "violations".into(),
        title: "违规 Violations".into(),
        headers: ["位置 Pointer", "规则 Rule", "说明 Message"].map(str::to_owned).to_vec(),
        rows: letter["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|v| {
                let message = text(&v["message"]);
                Row::of([
                    text(&v["pointer"]),
                    text(&v["rule"]),
                    if as_sent { message } else { masked_message(&message, &clear) },
                ])
            })
            .collect(),
        ..Section::default()
    });
    let (rows, note) = if letter["payload"]["json"].is_object() {
        (
            fields.iter().map(|(k, v)| Row::of([k.clone(), shown(k, v)])).collect(),
            if as_sent {
                "本部门报送的原始记录 The record as your department sent it".to_owned()
            } else {
                "个人信息已遮盖 Personal fields masked as on the shared topics; fields the adapter does not map masked \
                 entirely"
                    .to_owned()
            },
        )
    } else {
        (Vec::new(), format!("非 UTF-8 JSON（{}）Not UTF-8 JSON: kept as bytes", text(&letter["charset"])))
    };
    page.sections.push(Section {
        id: "payload".into(),
        title: "原始记录 The record as sent".into(),
        note: Some(note),
        headers: ["字段 Field", "值 Value"].map(str::to_owned).to_vec(),
        rows,
        ..Section::default()
    });
    render(&page)
}

#[derive(Debug, Default, Deserialize)]
struct Done {
    #[serde(default)]
    done: String,
    #[serde(default)]
    decision: String,
    #[serde(default)]
    failed: String,
    #[serde(default)]
    code: String,
}

/// 共享审批: the requests the viewer may see (a department those for its resources), the pending
/// ones with approve / deny (the Decide RPC), and objections on its facts.
async fn sharing(State(c): State<Arc<Console>>, Query(done): Query<Done>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleSharing") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let requests = match c.access.list_requests(call(&parts, ListRequestsRequest { pending: false })).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let mine = matches!(who, Principal::Department(_));
    let objections = match c.access.list_objections(call(&parts, ListObjectionsRequest { mine, all: false })).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let catalog = match c.access.get_catalog(call(&parts, hutong_proto::v1::GetCatalogRequest {})).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let mut page = c.page(&who, "/console/sharing", "共享审批 Sharing");
    let an_id =
        |id: &str| !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-');
    page.notice = (an_id(&done.done) && matches!(done.decision.as_str(), "approved" | "denied"))
        .then(|| format!("已处理 Decided: {} {}", done.done, done.decision));
    let code = match done.code.as_str() {
        "PermissionDenied" => Some("无权决定 not yours to decide"),
        "NotFound" => Some("没有此申请 no such request"),
        "FailedPrecondition" => Some("已决定或已过期 already decided or expired"),
        "InvalidArgument" => Some("拒绝需说明理由 a denial needs a reason"),
        "" => None,
        _ => Some("未能处理 not done"),
    };
    page.error = code.filter(|_| an_id(&done.failed)).map(|c| format!("未处理 Not decided: {}: {c}", done.failed));
    let all = docs(&requests.requests_json);
    let (pending, decided): (Vec<&Value>, Vec<&Value>) = all.iter().partition(|r| r["status"] == "pending");
    page.cards = vec![
        ("pending".into(), "待审批 Pending".into(), pending.len().to_string()),
        (
            "approved".into(),
            "已批准 Approved".into(),
            all.iter().filter(|r| r["status"] == "approved").count().to_string(),
        ),
    ];
    let request_row = |r: &Value, with_key: bool| {
        let mut row = Row::of(
            ["id", "consumer", "resource", "purpose", "scenario", "until", "due", "status"].map(|k| text(&r[k])),
        );
        if with_key {
            row.key = text(&r["id"]);
        }
        row
    };
    let headers = [
        "编号 Id",
        "申请方 Consumer",
        "资源 Resource",
        "用途 Purpose",
        "场景 Scenario",
        "期限 Until",
        "审批时限 Due",
        "状态 Status",
    ]
    .map(str::to_owned)
    .to_vec();
    page.sections.push(Section {
        id: "pending".into(),
        title: "待审批申请 Requests waiting for a decision".into(),
        note: Some("批准或拒绝经 Decide 接口并记入审计 Approving or denying calls Decide, audited".into()),
        headers: headers.clone(),
        rows: pending.iter().map(|r| request_row(r, true)).collect(),
        actions: true,
        ..Section::default()
    });
    page.sections.push(Section {
        id: "decided".into(),
        title: "已决定 Decided, grants".into(),
        headers,
        rows: decided.iter().map(|r| request_row(r, false)).collect(),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "catalog".into(),
        title: "共享目录 The resource catalogue".into(),
        headers: [
            "编码 Code",
            "资源 Resource",
            "提供方 Provider",
            "共享类型 Sharing",
            "审批 Approver",
            "更新周期 Cycle",
            "信息项 Items",
            "本方 Yours",
        ]
        .map(str::to_owned)
        .to_vec(),
        rows: docs(&catalog.resources_json)
            .iter()
            .map(|r| {
                let mut row = Row::of(
                    ["code", "name", "provider_name", "sharing", "approver", "update_cycle"].map(|k| text(&r[k])),
                );
                row.cells.push((r["items"].as_array().map_or(0, Vec::len).to_string(), true));
                row.cells.push((if r["standing"]["provider"] == true { "✓".into() } else { String::new() }, false));
                row.key = text(&r["id"]);
                row
            })
            .collect(),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "objections".into(),
        title: "数据异议 Open objections".into(),
        headers: ["编号 Id", "部门 Department", "类别 Kind", "字段 Pointer", "理由 Reason", "时限 Due", "状态 Status"]
            .map(str::to_owned)
            .to_vec(),
        rows: docs(&objections.objections_json)
            .iter()
            .map(|o| Row::of(["id", "department", "kind", "pointer", "reason", "due", "status"].map(|k| text(&o[k]))))
            .collect(),
        ..Section::default()
    });
    render(&page)
}

#[derive(Debug, Deserialize)]
struct Decision {
    id: String,
    approve: bool,
    #[serde(default)]
    reason: String,
}

/// A decision from the page's form: the Decide RPC with the browser's identity. Only a form of
/// this console may post one (`Origin` or `Sec-Fetch-Site`): a page elsewhere cannot make the
/// browser's certificate decide.
async fn decide(State(c): State<Arc<Console>>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    let form: Decision = match form_of(&parts, body, 64 * 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let message = DecideRequest { id: form.id.clone(), approve: form.approve, reason: form.reason };
    // The page after it says what happened from an id and a word, never from text a link could
    // carry (a crafted link must not show a made-up notice).
    let id = urlencode(&form.id);
    let to = match c.access.decide(call(&parts, message)).await {
        Ok(_) => format!("/console/sharing?done={id}&decision={}", if form.approve { "approved" } else { "denied" }),
        Err(s) => format!("/console/sharing?failed={id}&code={}", urlencode(&format!("{:?}", s.code()))),
    };
    Redirect::to(&to).into_response()
}

fn urlencode(text: &str) -> String {
    serde_urlencoded::to_string([("", text)]).map(|s| s.trim_start_matches('=').to_owned()).unwrap_or_default()
}

/// A posted form of at most `limit` bytes, from a page of this console only ([`same_origin`]).
async fn form_of<T: serde::de::DeserializeOwned>(
    parts: &Parts,
    body: axum::body::Body,
    limit: usize,
) -> Result<T, Response> {
    if !same_origin(parts) {
        return Err((StatusCode::FORBIDDEN, "a form is posted from the console's own pages").into_response());
    }
    let Ok(bytes) = axum::body::to_bytes(body, limit).await else {
        return Err((StatusCode::PAYLOAD_TOO_LARGE, format!("the form is larger than {limit} bytes")).into_response());
    };
    serde_urlencoded::from_bytes(&bytes)
        .map_err(|e| (StatusCode::BAD_REQUEST, format!("the form: {e}")).into_response())
}

/// Whether a POST comes from a page of this console: the browser's `Sec-Fetch-Site`, else its
/// `Origin` against the `Host` it asked.
fn same_origin(parts: &Parts) -> bool {
    let h = |name: &str| parts.headers.get(name).and_then(|v| v.to_str().ok());
    if let Some(site) = h("sec-fetch-site") {
        return site == "same-origin";
    }
    let host = h(header::HOST.as_str()).map(str::to_owned).or_else(|| parts.uri.authority().map(|a| a.to_string()));
    match (h(header::ORIGIN.as_str()), host) {
        (Some(origin), Some(host)) => origin.split("://").nth(1) == Some(host.as_str()),
        _ => false,
    }
}

/// 治理: open events with their deadline status, alerts by level, and the month's report.
async fn governance(State(c): State<Arc<Console>>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleGovernance") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let mut page = c.page(&who, "/console/governance", "治理 Governance");
    let Some(g) = &c.governance else {
        page.error = Some("治理消费者未启用 The governance consumers are not enabled ([governance] enabled)".into());
        return render(&page);
    };
    let events = match g.list_events(call(&parts, ListEventsRequest { limit: 200, ..Default::default() })).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let alerts = match g.list_alerts(call(&parts, ListAlertsRequest { limit: 200, ..Default::default() })).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let events_docs = docs(&events.events_json);
    let overdue = events_docs.iter().filter(|e| e["deadline_status"] == "overdue").count();
    page.cards = vec![
        ("open-events".into(), "在办事件 Open events".into(), events.total.to_string()),
        ("overdue".into(), "超期 Overdue".into(), overdue.to_string()),
    ];
    let per_level: BTreeMap<String, u64> = alerts.per_level.into_iter().collect();
    for (level, n) in &per_level {
        page.cards.push((format!("alerts-{level}"), format!("预警 Alerts {level}"), n.to_string()));
    }
    page.sections.push(Section {
        id: "events".into(),
        title: "在办事件 Open events".into(),
        headers: [
            "事件 Event",
            "部门 Department",
            "网格 Grid",
            "状态 Status",
            "期限 Deadline",
            "工作日 Age (wd)",
            "标题 Title",
        ]
        .map(str::to_owned)
        .to_vec(),
        links: true,
        rows: events_docs
            .iter()
            .map(|e| {
                let mut row = Row::of(
                    ["event_key", "department", "grid_code", "status", "deadline_status", "age_working_days", "title"]
                        .map(|k| text(&e[k])),
                );
                row.class = if e["deadline_status"] == "overdue" { "bad" } else { "" };
                row.key = text(&e["event_key"]);
                row.href = format!("/console/thread/{}", urlencode(&row.key));
                row
            })
            .collect(),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "alerts".into(),
        title: "督办预警 Alerts".into(),
        headers: ["级别 Level", "条件 Condition", "时间 At", "网格 Grid", "部门 Departments"]
            .map(str::to_owned)
            .to_vec(),
        rows: docs(&alerts.alerts_json)
            .iter()
            .map(|a| {
                Row::of(["level_name", "condition", "condition_at", "grid_code", "departments"].map(|k| text(&a[k])))
            })
            .collect(),
        ..Section::default()
    });
    let needs = match g
        .list_matches(call(
            &parts,
            hutong_proto::v1::ListMatchesRequest { unmatched_only: true, limit: 200, ..Default::default() },
        ))
        .await
    {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let unmatched = docs(&needs.matches_json);
    page.cards.push(("unmatched".into(), "未对接需求 Unmatched needs".into(), unmatched.len().to_string()));
    page.sections.push(Section {
        id: "needs".into(),
        title: "未对接需求 Needs without a resource (供需对接)".into(),
        headers: ["需求 Need", "类别 Category", "网格 Grid", "状态 Status", "候选 Candidates"]
            .map(str::to_owned)
            .to_vec(),
        rows: unmatched
            .iter()
            .map(|m| {
                let mut row = Row::of(["request_key", "category", "grid_code", "status"].map(|k| text(&m[k])));
                row.cells.push((m["candidates"].as_array().map_or(0, Vec::len).to_string(), true));
                row
            })
            .collect(),
        ..Section::default()
    });
    let period = Utc::now().with_timezone(&hutong_governance::beijing()).format("%Y-%m").to_string();
    page.sections.push(Section {
        id: "report".into(),
        title: format!("成效评估 The month's report, {period}"),
        frame: Some(format!("/console/report?period={period}")),
        ..Section::default()
    });
    render(&page)
}

#[derive(Debug, Default, Deserialize)]
struct AuditSearch {
    #[serde(default)]
    principal: String,
    #[serde(default)]
    operation: String,
    #[serde(default)]
    outcome: String,
    /// Any text of the entry.
    #[serde(default)]
    q: String,
}

/// How many of the newest day files a search reads.
const AUDIT_DAYS: usize = 7;

/// The newest entries of the day files in `dir` matching `search`, newest first, at most `limit`.
fn audit_entries(dir: &std::path::Path, search: &AuditSearch, limit: usize) -> std::io::Result<Vec<Value>> {
    let mut files: Vec<std::path::PathBuf> = std::fs::read_dir(dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| {
            p.file_name().and_then(|n| n.to_str()).is_some_and(|n| n.starts_with("audit-") && n.ends_with(".jsonl"))
        })
        .collect();
    files.sort();
    let field = |e: &Value, k: &str| text(&e["event"][k]);
    let wanted = |want: &str, got: String| want.trim().is_empty() || got == want.trim();
    let mut out = Vec::new();
    for f in files.iter().rev().take(AUDIT_DAYS) {
        let text_of_file = std::fs::read_to_string(f)?;
        for line in text_of_file.lines().rev() {
            if !search.q.trim().is_empty() && !line.contains(search.q.trim()) {
                continue;
            }
            let Ok(e) = serde_json::from_str::<Value>(line) else { continue };
            let operation =
                if e["event"]["operation"].is_null() { field(&e, "action") } else { field(&e, "operation") };
            let outcome = if e["event"]["outcome"].is_null() { field(&e, "code") } else { field(&e, "outcome") };
            if wanted(&search.principal, field(&e, "principal"))
                && wanted(&search.operation, operation)
                && wanted(&search.outcome, outcome)
            {
                out.push(e);
                if out.len() >= limit {
                    return Ok(out);
                }
            }
        }
    }
    Ok(out)
}

/// 审计: each trail's hash chain verified, and a search over its newest entries. Admins only.
async fn audit(State(c): State<Arc<Console>>, Query(search): Query<AuditSearch>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleAudit") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    // Admins the policy lets read the trails (`ReadAudit`); anyone else is refused, audited.
    if let Err(s) = c.guard.admin(&call(&parts, ()), "ReadAudit") {
        return refused(&s);
    }
    let mut page = c.page(&who, "/console/audit", "审计 Audit");
    let detail = serde_json::json!({"page": "audit", "principal": search.principal, "operation": search.operation,
        "outcome": search.outcome, "q": search.q});
    audit_read(&c.guard, &call(&parts, ()), &who, "Console", detail, "Ok");
    let search = Arc::new(search);
    for (i, (label, dir)) in c.audit_dirs.iter().enumerate() {
        let (d, s) = (dir.clone(), Arc::clone(&search));
        let checked = tokio::task::spawn_blocking(move || (hutong_audit::verify(&d), audit_entries(&d, &s, 200))).await;
        let (verified, entries) = match checked {
            Ok(x) => x,
            Err(e) => return (StatusCode::INTERNAL_SERVER_ERROR, e.to_string()).into_response(),
        };
        let (state, ok) = match &verified {
            Ok(v) => (
                format!("完整 intact: {} entries, seq {}..{}, {} file(s)", v.entries, v.first_seq, v.last_seq, v.files),
                true,
            ),
            Err(e @ hutong_audit::AuditError::Tampered { .. }) => (format!("✗ 被篡改 TAMPERED: {e}"), false),
            Err(e) => (format!("✗ {e}"), false),
        };
        page.cards.push((format!("chain-{i}"), label.clone(), if ok { "完整 intact".into() } else { "✗".into() }));
        let read_error = entries.as_ref().err().map(|e| format!("; ✗ reading the day files: {e}"));
        let rows = entries
            .unwrap_or_default()
            .iter()
            .map(|e| {
                let ev = &e["event"];
                let op = if ev["operation"].is_null() { text(&ev["action"]) } else { text(&ev["operation"]) };
                let outcome = if ev["outcome"].is_null() { text(&ev["code"]) } else { text(&ev["outcome"]) };
                let mut row = Row::of([
                    text(&e["time"]),
                    text(&e["seq"]),
                    text(&ev["type"]),
                    format!("{} {}", text(&ev["principal"]), text(&ev["role"])).trim().to_owned(),
                    op,
                    outcome,
                    text(&ev["peer"]),
                    ev.get("detail").or(ev.get("reason")).map(text).unwrap_or_default(),
                ]);
                row.key = text(&e["seq"]);
                row
            })
            .collect();
        page.sections.push(Section {
            id: format!("trail-{i}"),
            title: format!("{label}: {}", dir.display()),
            note: Some(format!(
                "{state}; 最近{AUDIT_DAYS}天内最新200条 the newest 200 matching entries of the last {AUDIT_DAYS} day files{}",
                read_error.unwrap_or_default()
            )),
            filters: vec![
                ("principal".into(), "身份 Principal".into(), search.principal.clone()),
                ("operation".into(), "操作 Operation".into(), search.operation.clone()),
                ("outcome".into(), "结果 Outcome".into(), search.outcome.clone()),
                ("q".into(), "包含 Text".into(), search.q.clone()),
            ],
            filter_action: "/console/audit".into(),
            headers: ["时间 Time", "序号 Seq", "类型 Type", "身份 Principal", "操作 Operation", "结果 Outcome", "来源 Peer", "详情 Detail"]
                .map(str::to_owned)
                .to_vec(),
            rows,
            ..Section::default()
        });
    }
    render(&page)
}

#[derive(Debug, Default, Deserialize)]
struct AdaptersQuery {
    /// A code list to show.
    #[serde(default)]
    list: String,
    /// An entity of the standard to show.
    #[serde(default)]
    entity: String,
}

/// What the page's two forms post: a dry run (`department`, `kind`, `payload`) or a compatibility
/// check (`subject`, `schema`, `mode`).
#[derive(Debug, Default, Deserialize)]
struct AdaptersForm {
    #[serde(default)]
    department: String,
    #[serde(default)]
    kind: String,
    #[serde(default)]
    payload: String,
    #[serde(default)]
    subject: String,
    #[serde(default)]
    schema: String,
    #[serde(default)]
    mode: String,
}

/// 适配器与标准: every adapter (ListAdapters), a dry run of a pasted record (ValidateRecord),
/// the registry's subjects (ListSchemas) with a compatibility check of a pasted schema
/// (CheckCompatibility, the changes in words), and the code lists. The admin RPCs, as the CLI's
/// `hutong adapter`/`schema` verbs call them: the policy decides who may.
async fn adapters(State(c): State<Arc<Console>>, Query(q): Query<AdaptersQuery>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    adapters_page(&c, &parts, &q, &AdaptersForm::default(), Vec::new()).await
}

async fn adapters_post(State(c): State<Arc<Console>>, request: Request) -> Response {
    use hutong_proto::v1::admin_server::Admin;
    let (parts, body) = request.into_parts();
    let form: AdaptersForm = match form_of(&parts, body, 1024 * 1024).await {
        Ok(f) => f,
        Err(r) => return r,
    };
    let mut results = Vec::new();
    if !form.subject.trim().is_empty() {
        let ask = hutong_proto::v1::CheckCompatibilityRequest {
            subject: form.subject.trim().to_owned(),
            schema_json: form.schema.clone(),
            mode: form.mode.trim().to_owned(),
        };
        match c.admin.check_compatibility(call(&parts, ask)).await {
            Ok(r) => {
                let r = r.into_inner();
                results.push(Section {
                    id: "compatibility".into(),
                    title: format!(
                        "兼容性 Compatibility of {}: {} ({})",
                        form.subject.trim(),
                        if r.compatible { "兼容 compatible" } else { "✗ 不兼容 not compatible" },
                        r.mode
                    ),
                    headers: ["变化 Change", "位置 Pointer", "兼容 Compatible", "说明 In words"]
                        .map(str::to_owned)
                        .to_vec(),
                    rows: r
                        .changes
                        .into_iter()
                        .map(|ch| {
                            let mut row = Row::of([ch.kind, ch.pointer, ch.compatible.to_string(), ch.description]);
                            row.class = if ch.compatible { "" } else { "bad" };
                            row
                        })
                        .collect(),
                    ..Section::default()
                });
            }
            Err(s) => return refused(&s),
        }
    } else {
        let record = hutong_proto::v1::SourceRecord {
            kind: form.kind.trim().to_owned(),
            source_id: "console-dry-run".to_owned(),
            revision: 1,
            op: hutong_proto::v1::Op::Upsert as i32,
            occurred_at: None,
            payload: form.payload.clone().into_bytes(),
            charset: String::new(),
        };
        let ask = hutong_proto::v1::ValidateRecordRequest {
            department: form.department.trim().to_owned(),
            record: Some(record),
        };
        match c.admin.validate_record(call(&parts, ask)).await {
            Ok(r) => {
                let r = r.into_inner();
                let mut rows: Vec<Row> = r
                    .violations
                    .into_iter()
                    .map(|v| {
                        let mut row = Row::of(["✗ 违规 violation".to_owned(), v.pointer, v.rule, v.message]);
                        row.class = "bad";
                        row
                    })
                    .collect();
                rows.extend(
                    r.records.into_iter().map(|x| Row::of([format!("✓ {}", x.entity), x.topic, x.key, x.json])),
                );
                results.push(Section {
                    id: "dry-run".into(),
                    title: format!("试运行 Dry run: {}", if r.valid { "✓ 通过 valid" } else { "✗ 拒收 rejected" }),
                    note: Some("不发布、不记录载荷 Nothing is published; the payload is not logged".into()),
                    headers: [
                        "结果 Result",
                        "位置 / 主题 Pointer / topic",
                        "规则 / 键 Rule / key",
                        "说明 / 记录 Message / record",
                    ]
                    .map(str::to_owned)
                    .to_vec(),
                    rows,
                    ..Section::default()
                });
            }
            Err(s) => return refused(&s),
        }
    }
    adapters_page(&c, &parts, &AdaptersQuery::default(), &form, results).await
}

async fn adapters_page(
    c: &Console,
    parts: &Parts,
    q: &AdaptersQuery,
    form: &AdaptersForm,
    results: Vec<Section>,
) -> Response {
    let list = q.list.as_str();
    use hutong_proto::v1::{ListAdaptersRequest, ListSchemasRequest, admin_server::Admin};
    let who = match c.viewer(parts, "ConsoleAdapters") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let adapters = match c.admin.list_adapters(call(parts, ListAdaptersRequest {})).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let subjects = match c.admin.list_schemas(call(parts, ListSchemasRequest {})).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let mut page = c.page(&who, "/console/adapters", "适配器与标准 Adapters and the standard");
    page.cards = vec![
        ("adapters".into(), "适配器 Adapters".into(), adapters.adapters.len().to_string()),
        ("generation".into(), "版本 Generation (this service)".into(), adapters.reload_generation.to_string()),
        ("subjects".into(), "模式主题 Schema subjects".into(), subjects.subjects.len().to_string()),
    ];
    page.error = (!adapters.reload_error.is_empty())
        .then(|| format!("上次重载被拒 The last reload was refused: {}", adapters.reload_error));
    page.sections.extend(results);
    page.sections.push(Section {
        id: "adapters".into(),
        title: "适配器 Adapters (schemas/departments)".into(),
        note: Some("网关的重载版本见总览 Each gateway's reload generation is on the overview".into()),
        headers: ["部门 Department", "类别 Kind", "源版本 Source version", "名称 Title", "实体 Entities", "文件 File"]
            .map(str::to_owned)
            .to_vec(),
        rows: adapters
            .adapters
            .into_iter()
            .map(|a| {
                let mut row = Row::of([
                    c.department_name(&a.department),
                    a.kind.clone(),
                    a.source_version,
                    a.title,
                    a.entities.join(", "),
                    a.path,
                ]);
                row.key = format!("{}/{}", a.department, a.kind);
                row
            })
            .collect(),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "dry-run-form".into(),
        title: "试运行 Dry run of a record (ValidateRecord)".into(),
        post: Some(PostForm {
            action: "/console/adapters".into(),
            fields: vec![
                ("department".into(), "部门 Department".into(), form.department.clone()),
                ("kind".into(), "类别 Kind".into(), form.kind.clone()),
            ],
            area: ("payload".into(), "记录 The record as the department sends it (JSON)".into(), form.payload.clone()),
            button: "试运行 Dry run".into(),
        }),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "subjects".into(),
        title: "模式主题 Schema subjects (the registry)".into(),
        headers: ["主题 Subject", "版本 Versions", "兼容模式 Compatibility", "最新编号 Latest id"]
            .map(str::to_owned)
            .to_vec(),
        rows: subjects
            .subjects
            .into_iter()
            .map(|x| {
                let versions = x.versions.iter().map(u32::to_string).collect::<Vec<_>>().join(", ");
                Row::of([x.subject, versions, x.compatibility, x.latest_id.to_string()])
            })
            .collect(),
        post: Some(PostForm {
            action: "/console/adapters".into(),
            fields: vec![
                ("subject".into(), "主题 Subject".into(), form.subject.clone()),
                ("mode".into(), "模式 Mode (empty: the subject's)".into(), form.mode.clone()),
            ],
            area: ("schema".into(), "新模式 The new schema (JSON Schema)".into(), form.schema.clone()),
            button: "检查兼容性 Check compatibility".into(),
        }),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "entities".into(),
        title: "统一标准 The standard's entities".into(),
        headers: ["实体 Entity", "名称 Title", "主版本 Major", "主键 Key", "字段 Fields", "个人信息 Personal"]
            .map(str::to_owned)
            .to_vec(),
        rows: c
            .standard
            .entities()
            .map(|e| {
                let fields = e.dereferenced["properties"].as_object().map_or(0, serde_json::Map::len);
                let personal = hutong_standard::privacy::personal_fields(&e.dereferenced).len();
                let mut row = Row::of([e.name.clone(), e.title.clone(), e.major.to_string(), e.key.clone()]);
                row.cells.push((fields.to_string(), true));
                row.cells.push((personal.to_string(), true));
                row.key = e.name.clone();
                row
            })
            .collect(),
        filters: vec![("entity".into(), "查看 Show entity".into(), q.entity.clone())],
        filter_action: "/console/adapters".into(),
        ..Section::default()
    });
    if let Some(e) = c.standard.entity(q.entity.trim()) {
        let personal: BTreeMap<String, String> = hutong_standard::privacy::personal_fields(&e.dereferenced)
            .into_iter()
            .map(|f| (f.path, format!("{} {}", f.pii, f.sharing.unwrap_or_default()).trim().to_owned()))
            .collect();
        page.sections.push(Section {
            id: "fields".into(),
            title: format!("{} {}", e.name, e.title),
            headers: ["字段 Field", "类型 Type", "名称 Title", "个人信息 Personal (x-pii, x-sharing)"]
                .map(str::to_owned)
                .to_vec(),
            rows: e.dereferenced["properties"]
                .as_object()
                .into_iter()
                .flatten()
                .map(|(name, f)| {
                    let kind = if f["type"].is_null() { text(&f["$ref"]) } else { text(&f["type"]) };
                    let title = text(if f["title"].is_null() { &f["description"] } else { &f["title"] });
                    Row::of([name.clone(), kind, title, personal.get(&format!("/{name}")).cloned().unwrap_or_default()])
                })
                .collect(),
            ..Section::default()
        });
    }
    let lists = c.standard.codes();
    page.sections.push(Section {
        id: "code-lists".into(),
        title: "代码表 Code lists".into(),
        headers: ["代码表 List", "名称 Title", "标准 Standard", "代码数 Codes"].map(str::to_owned).to_vec(),
        rows: lists
            .iter()
            .map(|l| {
                let mut row = Row::of([
                    l.id.clone(),
                    format!("{} {}", l.title, l.title_en.clone().unwrap_or_default()).trim().to_owned(),
                    l.standard.clone(),
                ]);
                row.cells.push((l.codes().len().to_string(), true));
                row.key = l.id.clone();
                row
            })
            .collect(),
        filters: vec![("list".into(), "查看 Show list".into(), list.to_owned())],
        filter_action: "/console/adapters".into(),
        ..Section::default()
    });
    if let Some(l) = lists.get(list.trim()) {
        page.sections.push(Section {
            id: "codes".into(),
            title: format!("{} {}", l.id, l.title),
            note: (l.codes().len() > 500).then(|| format!("前500条 the first 500 of {}", l.codes().len())),
            headers: ["代码 Code", "名称 Name", "English", "别名 Aliases"].map(str::to_owned).to_vec(),
            rows: l
                .codes()
                .iter()
                .take(500)
                .map(|x| {
                    Row::of([
                        x.code.clone(),
                        x.name.clone(),
                        x.name_en.clone().unwrap_or_default(),
                        x.aliases.join(", "),
                    ])
                })
                .collect(),
            ..Section::default()
        });
    }
    render(&page)
}

/// 交办反馈: one matter's thread across departments (GetThread), step by step.
async fn thread(
    State(c): State<Arc<Console>>,
    axum::extract::Path(key): axum::extract::Path<String>,
    request: Request,
) -> Response {
    let (parts, _) = request.into_parts();
    let who = match c.viewer(&parts, "ConsoleThread") {
        Ok(w) => w,
        Err(s) => return refused(&s),
    };
    let Some(g) = &c.governance else {
        return (StatusCode::NOT_FOUND, "the governance consumers are not enabled").into_response();
    };
    let answer = match g.get_thread(call(&parts, hutong_proto::v1::GetThreadRequest { event_key: key.clone() })).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    let mut page = c.page(&who, "/console/governance", &format!("事件线索 The thread of {key}"));
    let events = docs(&answer.events_json);
    let mut steps: Vec<(String, Row)> = Vec::new();
    for e in &events {
        for s in e["steps"].as_array().into_iter().flatten() {
            let at = text(&s["at"]);
            let row = Row::of([
                at.clone(),
                text(&e["event_key"]),
                text(&s["status"]),
                text(&s["department"]),
                text(&s["note"]),
            ]);
            steps.push((at, row));
        }
    }
    steps.sort_by(|a, b| a.0.cmp(&b.0));
    page.cards = vec![
        ("events".into(), "相关事件 Events".into(), events.len().to_string()),
        ("steps".into(), "步骤 Steps".into(), steps.len().to_string()),
    ];
    page.error = (!answer.missing_keys.is_empty())
        .then(|| format!("尚未收到 Not received yet: {}", answer.missing_keys.join(", ")));
    page.sections.push(Section {
        id: "timeline".into(),
        title: "时间线 One timeline across departments".into(),
        headers: ["时间 At", "事件 Event", "状态 Status", "部门 Department", "说明 Note"].map(str::to_owned).to_vec(),
        rows: steps.into_iter().map(|(_, r)| r).collect(),
        ..Section::default()
    });
    page.sections.push(Section {
        id: "links".into(),
        title: "关联 Links".into(),
        headers: ["从 From", "关系 Relation", "到 To"].map(str::to_owned).to_vec(),
        rows: docs(&answer.links_json)
            .iter()
            .map(|l| Row::of(["from", "relation", "to"].map(|k| text(&l[k]))))
            .collect(),
        ..Section::default()
    });
    render(&page)
}

#[derive(Debug, Default, Deserialize)]
struct Period {
    #[serde(default)]
    period: String,
}

/// The month's effectiveness report as its own page (GetReport, rendered as `hutong report`).
async fn report(State(c): State<Arc<Console>>, Query(p): Query<Period>, request: Request) -> Response {
    let (parts, _) = request.into_parts();
    if let Err(s) = c.viewer(&parts, "ConsoleReport") {
        return refused(&s);
    }
    let Some(g) = &c.governance else {
        return (StatusCode::NOT_FOUND, "the governance consumers are not enabled").into_response();
    };
    let answer = match g.get_report(call(&parts, GetReportRequest { period: p.period, ..Default::default() })).await {
        Ok(r) => r.into_inner(),
        Err(s) => return refused(&s),
    };
    match serde_json::from_str::<hutong_governance::report::Report>(&answer.report_json) {
        Ok(report) => Html(report.to_html()).into_response(),
        Err(e) => (StatusCode::INTERNAL_SERVER_ERROR, format!("the report: {e}")).into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parts(headers: &[(&str, &str)]) -> Parts {
        let mut b = axum::http::Request::builder().method("POST").uri("/console/sharing/decide");
        for (k, v) in headers {
            b = b.header(*k, *v);
        }
        b.body(()).unwrap().into_parts().0
    }

    #[test]
    fn an_admins_message_hides_quoted_values_and_long_digit_runs() {
        let clear: std::collections::HashSet<String> = ["F".to_owned()].into();
        let m =
            masked_message(r#"source field XB: "F" is fine, idCard: "330105194802300021" is not in ["excel"]"#, &clear);
        assert_eq!(m, r#"source field XB: "F" is fine, idCard: "***" is not in ["***"]"#);
        let bare = masked_message("birth date 19480230 is not a real date (GB 11643)", &clear);
        assert_eq!(bare, "birth date ******** is not a real date (GB 11643)");
        let open = masked_message(r#"unterminated "quote 13800138000"#, &clear);
        assert_eq!(open, r#"unterminated "quote ***********"#);
        assert_eq!(masked_as("birth-date", &serde_json::json!("1948/2/30")), "1948/*/**");
        assert_eq!(masked_as("other", &serde_json::json!(76)), "***");
    }

    #[test]
    fn only_the_consoles_own_pages_may_post() {
        assert!(same_origin(&parts(&[("sec-fetch-site", "same-origin")])));
        assert!(!same_origin(&parts(&[("sec-fetch-site", "cross-site"), ("origin", "https://a"), ("host", "a")])));
        assert!(same_origin(&parts(&[("origin", "https://127.0.0.1:50061"), ("host", "127.0.0.1:50061")])));
        assert!(!same_origin(&parts(&[("origin", "https://evil.example"), ("host", "127.0.0.1:50061")])));
        assert!(!same_origin(&parts(&[("host", "127.0.0.1:50061")])), "no Origin, no Sec-Fetch-Site: refused");
    }

    #[test]
    fn a_page_escapes_what_it_shows() {
        let page = Page {
            title: "t".into(),
            viewer: "v".into(),
            nav: vec![("/console", "x", true)],
            notice: Some("<script>".into()),
            error: None,
            cards: vec![],
            live: false,
            sections: vec![Section {
                id: "s".into(),
                title: "s".into(),
                headers: vec!["h".into()],
                rows: vec![Row::of(["<b>x</b>".to_owned()])],
                ..Section::default()
            }],
        };
        let html = page.render().unwrap();
        // askama writes `<` and `>` as `&#60;` and `&#62;`.
        assert!(!html.contains("<script>") && html.contains("&#60;script&#62;"), "{html}");
        assert!(!html.contains("<b>x</b>") && html.contains("&#60;b&#62;x&#60;/b&#62;"));
        assert_eq!(escape("<a href=\"x\">&"), "&lt;a href=&quot;x&quot;&gt;&amp;");
        assert_eq!(urlencode("AR-1 approved"), "AR-1+approved");
    }
}
