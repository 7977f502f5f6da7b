//! `hutong events|thread|alerts|matches|report`: asking the governance consumers of the
//! consumer service (交办反馈督办, 供需对接, 成效评估). Every answer is audited there.

use std::{path::PathBuf, process::ExitCode};

use anyhow::Context as _;
use clap::{Args, ValueEnum};
use hutong_governance::report::Report;
use hutong_proto::v1::{
    GetReportRequest, GetThreadRequest, ListAlertsRequest, ListEventsRequest, ListMatchesRequest,
    governance_client::GovernanceClient,
};
use serde_json::Value;

use crate::{
    client::{Ask, ProfilesConnectArgs},
    table::pad,
};

async fn client(ask: &Ask) -> anyhow::Result<GovernanceClient<tonic::transport::Channel>> {
    Ok(GovernanceClient::new(ask.channel().await?))
}

/// `hutong events`: governance events with their age and deadline status.
#[derive(Debug, Args)]
pub(crate) struct EventsArgs {
    /// Only this grid (网格编码).
    #[arg(long)]
    grid: Option<String>,
    /// Only this community (12-digit division code).
    #[arg(long)]
    community: Option<String>,
    /// Only events this department reported (its code, e.g. rexian).
    #[arg(long)]
    department: Option<String>,
    /// Only events this body handles now (承办单位, as the records name it).
    #[arg(long)]
    handling_body: Option<String>,
    /// Closed events too (default: open ones).
    #[arg(long)]
    all: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    ask: Ask,
}

/// `hutong thread KEY`: one governance matter across departments.
#[derive(Debug, Args)]
pub(crate) struct ThreadArgs {
    /// Any event of the thread (`<department>:<id>`, e.g. sifa:XX2026-0101).
    event_key: String,
    #[command(flatten)]
    ask: Ask,
}

/// `hutong alerts`: supervision alerts.
#[derive(Debug, Args)]
pub(crate) struct AlertsArgs {
    /// Only this grid.
    #[arg(long)]
    grid: Option<String>,
    /// Only alerts concerning this department (reporting, or a handling body's name).
    #[arg(long)]
    department: Option<String>,
    /// Only this level: reminder (提醒), warning (预警), supervision (督办).
    #[arg(long)]
    level: Option<String>,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    ask: Ask,
}

/// `hutong matches`: service requests with their candidate resources.
#[derive(Debug, Args)]
pub(crate) struct MatchesArgs {
    /// Only this grid.
    #[arg(long)]
    grid: Option<String>,
    /// Only open requests not matched yet.
    #[arg(long)]
    unmatched: bool,
    /// At most this many.
    #[arg(long, default_value_t = 100)]
    limit: u32,
    #[command(flatten)]
    ask: Ask,
}

/// The report's format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum Format {
    /// A self-contained page with charts (SVG), readable offline.
    Html,
    /// One row per indicator value, for spreadsheets.
    Csv,
    /// The report as data.
    Json,
}

/// `hutong report`: the effectiveness report (成效评估) of a month.
#[derive(Debug, Args)]
pub(crate) struct ReportArgs {
    /// The month, YYYY-MM (Beijing time).
    #[arg(long)]
    period: String,
    /// Only this grid.
    #[arg(long, conflicts_with = "department")]
    grid: Option<String>,
    /// Only this department.
    #[arg(long)]
    department: Option<String>,
    /// The format.
    #[arg(long, value_enum, default_value = "html")]
    format: Format,
    /// Write here (default: `report-PERIOD.html|csv|json` in the current folder; `-` for
    /// standard output).
    #[arg(long, short)]
    out: Option<PathBuf>,
    #[command(flatten)]
    connect: ProfilesConnectArgs,
}

fn parse(docs: &[String]) -> anyhow::Result<Vec<Value>> {
    docs.iter().map(|d| serde_json::from_str(d).context("an answer that is not JSON")).collect()
}

fn text(v: &Value) -> &str {
    v.as_str().unwrap_or("")
}

/// `hutong events`.
pub(crate) async fn events(a: EventsArgs) -> anyhow::Result<ExitCode> {
    let reply = client(&a.ask)
        .await?
        .list_events(ListEventsRequest {
            grid: a.grid.unwrap_or_default(),
            community: a.community.unwrap_or_default(),
            department: a.department.unwrap_or_default(),
            handling_body: a.handling_body.unwrap_or_default(),
            include_closed: a.all,
            limit: a.limit,
        })
        .await?
        .into_inner();
    let events = parse(&reply.events_json)?;
    if a.ask.json {
        println!("{}", serde_json::json!({"now": reply.now, "total": reply.total, "events": events}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} event(s){} at {}", reply.total, if a.all { "" } else { " open" }, reply.now);
    println!(
        "  {} {} {} {} {} title",
        pad("event", 34),
        pad("status", 11),
        pad("deadline", 22),
        pad("age", 5),
        pad("grid", 16)
    );
    for e in &events {
        let deadline = match text(&e["deadline_status"]) {
            "overdue" => format!("overdue {} wd", e["working_days_late"]),
            "closed-late" => format!("closed late {} wd", e["working_days_late"]),
            other => other.to_owned(),
        };
        let marks = if e["anomalies"].as_array().is_some_and(|a| !a.is_empty()) { " ⚠anomaly" } else { "" };
        println!(
            "  {} {} {} {} {} {}{marks}",
            pad(text(&e["event_key"]), 34),
            pad(text(&e["status"]), 11),
            pad(&deadline, 22),
            pad(&e["age_working_days"].to_string(), 5),
            pad(text(&e["grid_code"]), 16),
            text(&e["title"])
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `hutong thread`.
pub(crate) async fn thread(a: ThreadArgs) -> anyhow::Result<ExitCode> {
    let reply =
        client(&a.ask).await?.get_thread(GetThreadRequest { event_key: a.event_key.clone() }).await?.into_inner();
    let events = parse(&reply.events_json)?;
    let links = parse(&reply.links_json)?;
    if a.ask.json {
        println!("{}", serde_json::json!({"events": events, "links": links, "missing_keys": reply.missing_keys}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("thread of {}: {} event(s) across departments", a.event_key, events.len());
    for l in &links {
        println!("  link: {} —{}→ {}", text(&l["from"]), text(&l["relation"]), text(&l["to"]));
    }
    for k in &reply.missing_keys {
        println!("  (linked, not on the bus yet: {k})");
    }
    // One timeline: every step of every event, in time order.
    let mut steps: Vec<(String, String, String, String)> = Vec::new();
    for e in &events {
        for s in e["steps"].as_array().into_iter().flatten() {
            steps.push((
                text(&s["at"]).to_owned(),
                text(&e["event_key"]).to_owned(),
                text(&s["status"]).to_owned(),
                text(&s["department"]).to_owned(),
            ));
        }
    }
    steps.sort();
    for e in &events {
        println!(
            "  {}  {}  status {}  {}",
            pad(text(&e["event_key"]), 34),
            text(&e["title"]),
            text(&e["status"]),
            e["anomalies"]
                .as_array()
                .filter(|a| !a.is_empty())
                .map_or(String::new(), |a| format!("{} anomaly(ies)", a.len()))
        );
    }
    println!("  timeline:");
    for (at, key, status, dept) in steps {
        println!("    {} {} {} {}", pad(&at, 26), pad(&key, 34), pad(&status, 11), dept);
    }
    Ok(ExitCode::SUCCESS)
}

/// `hutong alerts`.
pub(crate) async fn alerts(a: AlertsArgs) -> anyhow::Result<ExitCode> {
    let reply = client(&a.ask)
        .await?
        .list_alerts(ListAlertsRequest {
            grid: a.grid.unwrap_or_default(),
            department: a.department.unwrap_or_default(),
            level: a.level.unwrap_or_default(),
            limit: a.limit,
        })
        .await?
        .into_inner();
    let alerts = parse(&reply.alerts_json)?;
    if a.ask.json {
        println!("{}", serde_json::json!({"alerts": alerts, "per_level": reply.per_level}));
        return Ok(ExitCode::SUCCESS);
    }
    let counts: Vec<String> = reply.per_level.iter().map(|(l, n)| format!("{l} {n}")).collect();
    println!("{} alert(s) shown; per level: {}", alerts.len(), counts.join(", "));
    for al in &alerts {
        let keys: Vec<&str> = al["event_keys"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
        println!(
            "  {} {} {} {} {}  {}",
            pad(text(&al["level_name"]), 4),
            pad(text(&al["condition"]), 9),
            pad(text(&al["condition_at"]).get(..16).unwrap_or(""), 16),
            pad(text(&al["grid_code"]), 16),
            keys.join(" "),
            al["departments"].as_array().into_iter().flatten().filter_map(Value::as_str).collect::<Vec<_>>().join(", ")
        );
    }
    Ok(ExitCode::SUCCESS)
}

/// `hutong matches`.
pub(crate) async fn matches(a: MatchesArgs) -> anyhow::Result<ExitCode> {
    let reply = client(&a.ask)
        .await?
        .list_matches(ListMatchesRequest {
            grid: a.grid.unwrap_or_default(),
            unmatched_only: a.unmatched,
            limit: a.limit,
        })
        .await?
        .into_inner();
    let matches = parse(&reply.matches_json)?;
    if a.ask.json {
        println!("{}", serde_json::json!({"matches": matches, "unmatched": reply.unmatched}));
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} request(s)", matches.len());
    for m in &matches {
        let state = if m["matched_at"].is_string() {
            format!("matched {}", text(&m["matched_at"]))
        } else {
            text(&m["status"]).to_owned()
        };
        println!(
            "  {} {} {} {}",
            pad(text(&m["request_key"]), 26),
            pad(text(&m["category"]), 6),
            pad(text(&m["grid_code"]), 16),
            state
        );
        let candidates = m["candidates"].as_array().cloned().unwrap_or_default();
        if candidates.is_empty() && m["open"] == true {
            println!("      no resource fits (a gap in supply)");
        }
        for c in candidates {
            let reasons: Vec<&str> = c["reasons"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            println!("      {:>3}  {}  {}", c["score"], pad(text(&c["name"]), 24), reasons.join("; "));
        }
    }
    if !reply.unmatched.is_empty() {
        println!("open needs without a resource, per grid/category:");
        for (k, n) in &reply.unmatched {
            println!("  {} {n}", pad(k, 24));
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `hutong report`.
pub(crate) async fn report(a: ReportArgs) -> anyhow::Result<ExitCode> {
    let mut client = GovernanceClient::new(a.connect.channel().await?);
    let reply = client
        .get_report(GetReportRequest {
            period: a.period.clone(),
            grid: a.grid.unwrap_or_default(),
            department: a.department.unwrap_or_default(),
        })
        .await?
        .into_inner();
    let report: Report = serde_json::from_str(&reply.report_json).context("the service's report")?;
    let (body, ext) = match a.format {
        Format::Html => (report.to_html(), "html"),
        Format::Csv => (report.to_csv(), "csv"),
        Format::Json => (serde_json::to_string_pretty(&report)?, "json"),
    };
    let out = a.out.unwrap_or_else(|| PathBuf::from(format!("report-{}.{ext}", report.period)));
    if out.as_os_str() == "-" {
        print!("{body}");
    } else {
        std::fs::write(&out, body).with_context(|| format!("writing {}", out.display()))?;
        let t = &report.total;
        eprintln!(
            "report {} written to {}: {} event(s) reported, {} closed ({} on time), {} overdue, {} need(s), {} matched",
            report.period,
            out.display(),
            t.events_reported,
            t.events_closed,
            t.closed_on_time,
            t.overdue,
            t.needs_raised,
            t.needs_matched
        );
    }
    Ok(ExitCode::SUCCESS)
}
