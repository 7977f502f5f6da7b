//! 交办反馈督办, 供需对接, 成效评估 end to end, as real processes: tansu, `hutong serve`, every
//! department's sample submitted (November 2026 plays out: a thread across 网格, 司法 and 信访,
//! a ticket returned twice and overdue, one reopened, one with feedback before assignment, four
//! events at one address, needs that match and needs no resource fits), and `hutong profiles
//! serve` with `[governance]` on a fixed clock. Asked through `hutong thread|events|alerts|
//! matches|report`; the alert and match topics read back and checked against their registered
//! schemas; a replay from the beginning by a fresh instance gives the same alerts and matches;
//! the HTML report rendered in headless Chromium.

use std::{collections::BTreeSet, path::Path, process::Command, time::Duration};

use anyhow::{Context as _, ensure};
use hutong_profiles::{Store, StoreUrl};
use hutong_tests::{
    Broker, Gateway, consume_all, free_port, hutong,
    profiles::{ProfileService, caught_up, ingest_samples},
    repo_root, wait_until,
};
use serde_json::Value;

/// The clock of the test: Tuesday 1 December 2026, 09:00 Beijing time.
const NOW: &str = "2026-12-01T09:00:00+08:00";

const READ_TOPICS: [&str; 9] = [
    "hutong.building.v2",
    "hutong.grid.v2",
    "hutong.household.v2",
    "hutong.organization.v2",
    "hutong.person.v2",
    "hutong.event.v2",
    "hutong.service_request.v2",
    "hutong.service_resource.v2",
    "hutong.dlq.v1",
];

fn with_store<T>(url: &str, f: impl FnOnce(&mut Store) -> Result<T, hutong_profiles::StoreError>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| Ok(f(&mut Store::open(&url.parse::<StoreUrl>()?)?)?))
}

fn governance(metrics_port: u16) -> String {
    format!(
        "\n[governance]\nenabled = true\nnow = {NOW:?}\ntick-seconds = 1\nmetrics-listen = \"127.0.0.1:{metrics_port}\"\n"
    )
}

/// Waits until `group` has read everything and the outbox of `store` is empty.
fn wait_settled(broker: &Broker, group: &str, service: &ProfileService, store: &str) -> anyhow::Result<()> {
    wait_until(&format!("group {group} caught up, outbox empty"), Duration::from_secs(120), || {
        Ok(caught_up(&broker.bootstrap, group, &READ_TOPICS)?
            && with_store(store, |s| s.outbox(1)).is_ok_and(|o| o.alerts.is_empty() && o.matches.is_empty()))
    })
    .map_err(|e| e.context(format!("the service's log:\n{}", service.log())))
}

/// `hutong <args> --json` against `service` as `identity`.
fn ask(service: &ProfileService, identity: &str, args: &[&str]) -> anyhow::Result<Value> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.push("--json".into());
    all.extend(service.cli_args(identity));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    let out = hutong(&refs)?;
    ensure!(out.status.success(), "hutong {}: {}", refs.join(" "), String::from_utf8_lossy(&out.stderr));
    Ok(serde_json::from_slice(&out.stdout)?)
}

fn keys(v: &Value) -> Vec<&str> {
    v.as_array().into_iter().flatten().filter_map(Value::as_str).collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn governance_plays_out_on_the_samples_and_a_replay_gives_the_same() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    assert!(ingest_samples(&gateway)? > 150);
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite:{}", dir.path().join("main.db").display());
    let metrics_port = free_port();
    let service =
        ProfileService::start(&gateway, "main", &store, "hutong-consumers", &governance(metrics_port)).await?;
    wait_settled(&broker, "hutong-consumers", &service, &store)?;

    // One matter across three departments: the grid worker's report handed to mediation (移交),
    // the mediation case from it (来源于), the petition about the failed mediation (来源于).
    let thread = ask(&service, "wangge", &["thread", "xinfang:XF330106-2026-000412"])?;
    let events: Vec<&str> =
        thread["events"].as_array().unwrap().iter().filter_map(|e| e["event_key"].as_str()).collect();
    assert_eq!(events, ["wangge:WG330106004053-20261103-0011", "sifa:XX2026-0101", "xinfang:XF330106-2026-000412"]);
    let departments: BTreeSet<&str> =
        thread["events"].as_array().unwrap().iter().filter_map(|e| e["department"].as_str()).collect();
    assert_eq!(departments, BTreeSet::from(["sifa", "wangge", "xinfang"]));
    let relations: BTreeSet<&str> =
        thread["links"].as_array().unwrap().iter().filter_map(|l| l["relation"].as_str()).collect();
    assert_eq!(relations, BTreeSet::from(["originates", "referred"]));
    assert_eq!(thread["events"][0]["assigned_from"], "西溪街道社会治理中心");

    // An illegal transition (feedback before assignment) is kept on the event as an anomaly.
    let all = ask(&service, "rexian", &["events", "--all", "--department", "rexian", "--limit", "1000"])?;
    let find = |key: &str| all["events"].as_array().unwrap().iter().find(|e| e["event_key"] == key).cloned();
    let direct = find("rexian:GD20261108000801").context("the ticket answered directly")?;
    assert_eq!(direct["anomalies"][0]["what"], "illegal-transition");
    assert_eq!(
        (direct["anomalies"][0]["from"].as_str(), direct["anomalies"][0]["to"].as_str()),
        (Some("accepted"), Some("feedback"))
    );
    assert_eq!(direct["status"], "closed", "recorded, not dropped");
    // The ticket returned twice is open, 16 working days late at the clock (due Monday
    // 9 November 17:00; 10 … 30 November, then 1 December).
    let bounced = find("rexian:GD20261102000515").context("the bounced ticket")?;
    assert_eq!((bounced["returned"].as_u64(), bounced["deadline_status"].as_str()), (Some(2), Some("overdue")));
    assert_eq!(bounced["working_days_late"], 16);
    assert_eq!(bounced["assigned_from"], "12345热线");
    let reopened = find("rexian:GD20261105000733").context("the reopened ticket")?;
    assert_eq!((reopened["reopened"].as_u64(), reopened["anomalies"].as_array().map(Vec::len)), (Some(1), Some(0)));

    // The alerts: each condition on the samples, once.
    let alerts = ask(&service, "wangge", &["alerts", "--limit", "10000"])?;
    let list = alerts["alerts"].as_array().unwrap();
    let of = |condition: &str, subject: &str| -> Vec<&Value> {
        list.iter().filter(|a| a["condition"] == condition && a["subject"] == subject).collect()
    };
    fn levels<'a>(v: &[&'a Value]) -> BTreeSet<&'a str> {
        v.iter().filter_map(|a| a["level"].as_str()).collect()
    }
    assert_eq!(of("returned", "rexian:GD20261102000515").len(), 1);
    assert_eq!(of("reopened", "rexian:GD20261105000733").len(), 1);
    // Due 9 November: 提醒 from Friday 6 November, 预警 at the deadline, 督办 three working days
    // on; each once.
    let overdue = of("overdue", "rexian:GD20261102000515");
    assert_eq!(levels(&overdue), BTreeSet::from(["reminder", "supervision", "warning"]));
    assert_eq!(overdue.len(), 3);
    let supervision = overdue.iter().find(|a| a["level"] == "supervision").unwrap();
    assert_eq!(supervision["detail"]["working_days_late"], 3);
    assert_eq!(supervision["condition_at"], "2026-11-12T23:59:59+08:00");
    // Due on 4 December (the petition's 办理期限): nothing yet at the clock.
    assert!(of("overdue", "xinfang:XF330106-2026-000412").is_empty());
    // Four events at 石灰桥社区3幢2单元 in November, from 12345 and the grid workers: one alert.
    let repeated = of("repeated", "address:石灰桥社区3幢2单元");
    assert_eq!(repeated.len(), 1, "{repeated:?}");
    assert!(keys(&repeated[0]["event_keys"]).len() >= 3);
    assert_eq!(repeated[0]["detail"]["window"], "2026-11");
    let ids: Vec<&str> = list.iter().filter_map(|a| a["alert_id"].as_str()).collect();
    assert_eq!(ids.iter().collect::<BTreeSet<_>>().len(), ids.len(), "no alert twice");

    // The alert topic holds each alert once, as its registered schema says.
    let schemas = hutong_tests::inproc::schemas();
    let (registry, standard) = (hutong_registry::Registry::load(&schemas)?, hutong_standard::Standard::load(&schemas)?);
    let published = consume_all(&broker.bootstrap, "hutong.alert.v1")?;
    assert_eq!(published.len(), list.len(), "one message per alert");
    for m in &published {
        let id = m.headers["ce_dataschema"].rsplit('/').next().and_then(|i| i.parse().ok()).context("a registry id")?;
        let registered = registry.by_id(id).context("registered")?;
        assert_eq!(registered.subject, "hutong.alert.v1-value");
        let check = standard.view_validator(&registered.schema)?;
        assert_eq!(check.validate(m.value.as_ref().context("an alert")?), []);
        assert_eq!(m.key.as_deref(), m.value.as_ref().and_then(|v| v["alert_id"].as_str()));
    }

    // Matches: the 独居 elder's meal request gets her community canteen (grid, target group,
    // places left); legal aid and a full day-care centre leave two needs without a resource.
    let matches = ask(&service, "minzheng", &["matches", "--limit", "1000"])?;
    let request = |key: &str| matches["matches"].as_array().unwrap().iter().find(|m| m["request_key"] == key).cloned();
    let meal = request("rexian:GD20261116000903").context("the meal request")?;
    assert_eq!(meal["candidates"][0]["resource_key"], "minzheng:SS330106004053-01", "{meal}");
    assert!(keys(&meal["candidates"][0]["reasons"]).iter().any(|r| r.contains("0101")), "{meal}");
    for key in ["rexian:GD20261120000905", "rexian:GD20261123000906"] {
        let m = request(key).context("an unmatched request")?;
        assert_eq!((m["open"].as_bool(), m["candidates"].as_array().map(Vec::len)), (Some(true), Some(0)), "{m}");
    }
    let care = request("rexian:GD20261118000904").context("the home-care request")?;
    assert_eq!(care["matched_at"], "2026-11-19T02:00:00.000Z", "when 12345 dispatched it");
    assert!(matches["unmatched"]["330106005051001/0802"].as_u64() == Some(1));
    let on_topic = consume_all(&broker.bootstrap, "hutong.match.v1")?;
    let last: std::collections::BTreeMap<String, Value> =
        on_topic.iter().filter_map(|m| Some((m.key.clone()?, m.value.clone()?))).collect();
    assert_eq!(last.get("rexian:GD20261116000903"), Some(&meal), "the topic's last message is the answer");

    // The report of November: every figure against the samples, counted by hand.
    let out = dir.path().join("report.json");
    let mut args = vec!["report", "--period", "2026-11", "--format", "json", "--out", out.to_str().unwrap()];
    let connect = service.cli_args("wangge");
    args.extend(connect.iter().map(String::as_str));
    let run = hutong(&args)?;
    ensure!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let report: Value = serde_json::from_str(&std::fs::read_to_string(&out)?)?;
    let t = &report["total"];
    // Reported in November: 12345 ×8, 网格 ×3, 司法 ×1, 信访 ×1. Closed in November, all on time:
    // the reopened ticket (12 Nov, due 12 Nov 17:00), the one answered directly, the 3幢 ticket,
    // the three grid reports, the mediation case. Overdue at the month's end: the bounced ticket.
    let figures = |k: &str| t[k].as_u64();
    assert_eq!(
        ["events_reported", "events_closed", "closed_on_time", "overdue", "supervised"].map(figures),
        [Some(13), Some(7), Some(7), Some(1), Some(1)]
    );
    // Working days from report to closure: 5 (5→12 Nov) + 0 + 1 (12 Nov → Saturday 14th) + 1
    // (3→4 Nov) + 0 + 0 + 12 (4→20 Nov): 19 / 7.
    assert!((t["avg_handling_working_days"].as_f64().unwrap() - 19.0 / 7.0).abs() < 1e-9, "{t}");
    // Rated at follow-up: the three closed 12345 tickets, all 满意.
    assert_eq!((t["rated"].as_u64(), t["satisfaction_rate"].as_f64()), (Some(3), Some(1.0)));
    // Needs raised in November: 4; matched 1 (20 hours: 18 Nov 14:00 → 19 Nov 10:00); 3 open,
    // 2 of them without any resource.
    assert_eq!(
        ["needs_raised", "needs_matched", "needs_unmatched", "needs_without_candidates"].map(figures),
        [Some(4), Some(1), Some(3), Some(2)]
    );
    assert_eq!(t["avg_hours_to_match"].as_f64(), Some(20.0));

    // The same indicators as Prometheus metrics (the month of the clock: December).
    let url = format!("http://127.0.0.1:{metrics_port}/metrics");
    let (code, metrics) = tokio::task::spawn_blocking(move || hutong_tests::http_get(&url)).await??;
    assert_eq!(code, 200);
    assert!(metrics.contains("# TYPE hutong_governance_events_reported gauge"), "{metrics}");
    assert!(
        metrics.contains("hutong_governance_needs_raised{period=\"2026-12\",scope=\"total\",key=\"*\"}"),
        "{metrics}"
    );
    // Open needs no resource fits, per grid and category: legal aid in 翠苑.
    assert!(
        metrics.contains("hutong_governance_open_needs_without_resource{grid=\"330106005051001\",category=\"0802\"} 1"),
        "{metrics}"
    );

    // A fresh instance (own group, own store, publishing nothing) reads everything from the
    // beginning: the same alerts and the same matches, each once.
    let replay_store = format!("sqlite:{}", dir.path().join("replay.db").display());
    let replay_extra = format!(
        "publish = false{}",
        governance(free_port()).replace("enabled = true", "enabled = true\npublish = false")
    );
    let replay = ProfileService::start(&gateway, "replay", &replay_store, "replay", &replay_extra).await?;
    wait_settled(&broker, "replay", &replay, &replay_store)?;
    let alerts_of = |url: &str| -> anyhow::Result<Vec<(String, String, String)>> {
        let (docs, _) = with_store(url, |s| s.alerts("", "", "", 100_000))?;
        let mut v: Vec<(String, String, String)> = docs
            .iter()
            .map(|a| {
                (a["alert_id"].as_str().unwrap_or("").to_owned(), a["condition"].to_string(), a["subject"].to_string())
            })
            .collect();
        v.sort();
        Ok(v)
    };
    assert_eq!(alerts_of(&replay_store)?, alerts_of(&store)?);
    let matches_of = |url: &str| with_store(url, |s| Ok(s.matches("", false, 100_000)?.0));
    assert_eq!(matches_of(&replay_store)?, matches_of(&store)?);
    assert_eq!(
        consume_all(&broker.bootstrap, "hutong.alert.v1")?.len(),
        published.len(),
        "the replay published nothing"
    );

    // The HTML report in a real browser: the charts and the tables are there.
    let html = dir.path().join("report.html");
    let mut args = vec!["report", "--period", "2026-11", "--out", html.to_str().unwrap()];
    args.extend(connect.iter().map(String::as_str));
    ensure!(hutong(&args)?.status.success());
    chromium_renders(&html, dir.path())?;
    Ok(())
}

/// Headless Chromium (Debian's `chromium`) renders `html`: its DOM has the report's three
/// SVG charts with bars and the department, grid and community tables with rows, and the
/// screenshot is not blank where the first chart is.
fn chromium_renders(html: &Path, dir: &Path) -> anyhow::Result<()> {
    let chromium = ["chromium", "chromium-browser", "google-chrome"]
        .into_iter()
        .find(|c| Command::new(c).arg("--version").output().is_ok_and(|o| o.status.success()))
        .context("no Chromium: deploy/test.sh installs Debian's chromium package")?;
    let base = |profile: &str| {
        let mut c = Command::new(chromium);
        c.args([
            "--headless",
            "--no-sandbox",
            "--disable-gpu",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
            "--window-size=1200,2400",
        ])
        .arg(format!("--user-data-dir={}", dir.join(profile).display()));
        c
    };
    let url = format!("file://{}", html.display());
    let dom = base("dom").arg("--dump-dom").arg(&url).output()?;
    ensure!(dom.status.success(), "chromium --dump-dom: {}", String::from_utf8_lossy(&dom.stderr));
    let dom = String::from_utf8(dom.stdout)?;
    assert_eq!(dom.matches("<svg").count(), 3, "three charts");
    assert!(dom.matches("<rect").count() > 10, "bars in the charts");
    for table in ["departments", "grids", "communities"] {
        let start = dom.find(&format!("id=\"{table}\"")).with_context(|| format!("table {table}"))?;
        let rows = dom[start..].split("</table>").next().unwrap_or("").matches("<tr").count();
        assert!(rows >= 2, "table {table} has {rows} row(s)");
    }
    assert!(dom.contains("330106004053001"), "the grid of the samples");
    let png = dir.join("report.png");
    let shot = base("shot").arg(format!("--screenshot={}", png.display())).arg(&url).output()?;
    ensure!(shot.status.success() && png.exists(), "chromium --screenshot: {}", String::from_utf8_lossy(&shot.stderr));
    let decoder = png::Decoder::new(std::io::BufReader::new(std::fs::File::open(&png)?));
    let mut reader = decoder.read_info()?;
    let mut buf = vec![0; reader.output_buffer_size().context("a size")?];
    let info = reader.next_frame(&mut buf)?;
    let channels = info.color_type.samples();
    // The published bars are blue (#2563eb): count strongly blue pixels.
    let blue = buf[..info.buffer_size()]
        .chunks(channels)
        .filter(|p| p.len() >= 3 && p[2] > 200 && p[0] < 80 && p[1] < 130)
        .count();
    assert!(blue > 500, "the charts are drawn ({blue} blue pixels)");
    Ok(())
}

#[test]
fn the_governance_rules_and_calendar_load_against_the_standard() -> anyhow::Result<()> {
    let root = repo_root().join("schemas");
    let standard = hutong_standard::Standard::load(&root)?;
    let g = hutong_governance::Governance::load_shipped(&root, &standard)?;
    assert!(g.calendar.covers(2026) && g.calendar.covers(2024));
    // A rule naming a status the standard lacks is refused with the file named.
    let dir = tempfile::tempdir()?;
    for f in ["alerts.toml", "matching.toml"] {
        std::fs::copy(root.join("governance").join(f), dir.path().join(f))?;
    }
    let lifecycle =
        std::fs::read_to_string(root.join("governance/lifecycle.toml"))?.replace("\"reopened\"]", "\"reopend\"]");
    std::fs::write(dir.path().join("lifecycle.toml"), lifecycle)?;
    let err =
        hutong_governance::Governance::load(dir.path(), &root.join("calendar/cn"), &standard).expect_err("a typo");
    assert!(err.to_string().contains("lifecycle.toml") && err.to_string().contains("reopend"), "{err}");
    Ok(())
}
