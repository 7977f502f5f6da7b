//! The admin console in headless Chromium (Debian's `chromium`, driven by Playwright's client,
//! tests/python/console_browser.py) against real processes: tansu, `hutong serve` with every
//! department's sample, `hutong profiles serve`. Each page loads for an admin and shows the
//! figures the CLI reports for the same data; a department sees only its own rejects; approving
//! a request in the page changes the grant the API reports, and is audited as the department's;
//! a consumer is refused; the overview's screenshot is written.

use std::{collections::BTreeMap, path::Path, time::Duration};

use hutong_tests::{
    Broker, Gateway, hutong,
    profiles::{ProfileService, caught_up, ingest_samples},
    repo_root, run_python, wait_until,
};
use serde_json::{Value, json};

/// A 公安 row its adapter refuses: an unknown sex code and a date that is not one.
const DRY_RUN: &str = r#"{"GMSFHM": "330106198001010021", "XM": "李梅", "XB": "X", "CSRQ": "1980-13-45"}"#;

const TOPICS: [&str; 6] = [
    "hutong.building.v2",
    "hutong.grid.v2",
    "hutong.household.v2",
    "hutong.organization.v2",
    "hutong.person.v2",
    "hutong.dlq.v1",
];

/// Records each shipped sample publishes and rejects, per (department, kind), as `hutong
/// validate` (the CLI's dry run, no service) says.
fn expected_by_kind() -> anyhow::Result<BTreeMap<(String, String), (u64, u64)>> {
    let mut out = BTreeMap::new();
    for dept in std::fs::read_dir(repo_root().join("schemas/departments"))? {
        let dept = dept?.path();
        let Ok(samples) = std::fs::read_dir(dept.join("samples")) else { continue };
        for f in samples {
            let f = f?.path();
            if f.extension().and_then(|e| e.to_str()) != Some("ndjson") {
                continue;
            }
            let d = dept.file_name().unwrap().to_string_lossy().into_owned();
            let k = f.file_stem().unwrap().to_string_lossy().into_owned();
            let schemas = repo_root().join("schemas").display().to_string();
            let file = f.display().to_string();
            let o = hutong(&["validate", "--schemas", &schemas, "-d", &d, "-k", &k, &file])?;
            let text = String::from_utf8(o.stdout)?;
            let valid = text.lines().filter(|l| l.contains("\"status\":\"VALID\"")).count() as u64;
            let rejected = text.lines().filter(|l| l.contains("\"status\":\"REJECTED\"")).count() as u64;
            out.insert((d, k), (valid, rejected));
        }
    }
    Ok(out)
}

fn browse(base: &str, pki: &Path, steps: Value, dir: &Path) -> anyhow::Result<Vec<Value>> {
    let spec = dir.join("spec.json");
    std::fs::write(&spec, serde_json::to_vec(&json!({"base": base, "pki": pki, "steps": steps}))?)?;
    let out = run_python("tests/python/console_browser.py", &[&spec.display().to_string()])?;
    anyhow::ensure!(
        out.status.success(),
        "the browser run failed (needs Debian's chromium and Playwright's client, which deploy/test.sh installs):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The value a dead-letter page shows for payload field `name`.
fn field_of(page: &Value, name: &str) -> Option<String> {
    page["sections"]["payload"].as_array().into_iter().flatten().find(|r| cell(r, 0) == name).map(|r| cell(r, 1))
}

fn cell(row: &Value, i: usize) -> String {
    row["cells"][i].as_str().unwrap_or_default().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_console_shows_what_the_cli_reports_to_whom_it_may_and_decides_through_the_api() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    assert!(ingest_samples(&gateway)? > 150);
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite:{}", dir.path().join("profiles.db").display());
    let extra = format!(
        "\n[governance]\nenabled = true\nnow = \"2026-12-01T09:00:00+08:00\"\n\n[console]\ngateways = [{:?}, \"https://127.0.0.1:1\"]\n\
         gateway-metrics = [\"{}/metrics\"]\n",
        gateway.endpoint, gateway.registry_url
    );
    let service = ProfileService::start(&gateway, "console", &store, "hutong-profiles", &extra).await?;
    wait_until("the service to catch up", Duration::from_secs(120), || {
        caught_up(&broker.bootstrap, "hutong-profiles", &TOPICS)
    })?;
    let expected = expected_by_kind()?;
    let (published, rejected): (u64, u64) = expected.values().fold((0, 0), |(p, r), (v, x)| (p + v, r + x));

    // A request for 公安's resource, pending, for 公安 to decide in the page.
    let mut args: Vec<String> =
        ["access", "request", "--resource", "gongan.household_registration", "--field", "person.name"]
            .iter()
            .chain(&[
                "--purpose",
                "为老服务上门探访名单",
                "--scenario",
                "智慧社区平台",
                "--until",
                "2026-12-31",
                "--json",
            ])
            .map(|s| (*s).to_owned())
            .collect();
    args.extend(service.cli_args("zhihui"));
    let out = hutong(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let id = serde_json::from_slice::<Value>(&out.stdout)?["id"].as_str().unwrap().to_owned();

    // A schema for the compatibility check: the person topic's with a new required field.
    let mut new_schema: Value = serde_json::from_str(&std::fs::read_to_string(
        repo_root().join("schemas/registry/hutong.person.v2-value/1.json"),
    )?)?;
    new_schema["properties"]["nickname"] = json!({"type": "string"});
    new_schema["required"].as_array_mut().unwrap().push(json!("nickname"));
    let new_file = dir.path().join("new.json");
    std::fs::write(&new_file, new_schema.to_string())?;
    let schemas = repo_root().join("schemas").display().to_string();
    let cli_check =
        hutong(&["schema", "check", "--schemas", &schemas, "hutong.person.v2-value", &new_file.display().to_string()])?;
    let dry_file = dir.path().join("dry.ndjson");
    std::fs::write(&dry_file, format!("{DRY_RUN}\n"))?;
    let cli_dry = hutong(&[
        "validate",
        "--schemas",
        &schemas,
        "-d",
        "gongan",
        "-k",
        "household_registration",
        &dry_file.display().to_string(),
    ])?;
    let cli_dry: Value = serde_json::from_slice(&cli_dry.stdout)?;

    let shot = dir.path().join("overview.png");
    let pages = browse(
        &service.endpoint,
        &gateway.pki,
        json!([
            {"as": "governance", "goto": "/console", "screenshot": shot},
            {"as": "governance", "goto": "/console/rejects"},
            {"as": "minzheng", "goto": "/console/rejects"},
            {"as": "minzheng", "goto": "/console/rejects?department=gongan"},
            {"as": "gongan", "goto": "/console/sharing", "click": format!("tr[data-key=\"{id}\"] button.approve")},
            {"as": "minzheng", "goto": "/console/sharing"},
            {"as": "governance", "goto": "/console/governance"},
            {"as": "zhihui", "goto": "/console"},
            {"as": "governance", "goto": "/console/governance", "click": "#events a.detail"},
            {"as": "auditor", "goto": "/console/audit?principal=gongan&operation=Approve"},
            {"as": "minzheng", "goto": "/console/audit"},
            {"as": "governance", "goto": "/console/adapters?list=gb-t-4761&entity=person"},
            {"as": "governance", "goto": "/console/adapters", "fill": {
                "#dry-run-form input[name=department]": "gongan",
                "#dry-run-form input[name=kind]": "household_registration",
                "#dry-run-form textarea[name=payload]": DRY_RUN,
            }, "click": "#dry-run-form button[type=submit]"},
            {"as": "governance", "goto": "/console/adapters", "fill": {
                "#subjects input[name=subject]": "hutong.person.v2-value",
                "#subjects textarea[name=schema]": new_schema.to_string(),
            }, "click": "#subjects button[type=submit]"},
            {"as": "auditor", "goto": "/console/adapters", "fill": {
                "#dry-run-form input[name=department]": "gongan",
                "#dry-run-form input[name=kind]": "household_registration",
                "#dry-run-form textarea[name=payload]": DRY_RUN,
            }, "click": "#dry-run-form button[type=submit]"},
            {"as": "governance", "goto": "/console/rejects?since=1h"},
            {"as": "governance", "goto": "/console/rejects?since=2099-01-01T00:00:00Z"},
            {"as": "governance", "goto": "/console/rejects?since=yesterday"},
        ]),
        dir.path(),
    )?;
    let [
        overview,
        all_rejects,
        own_rejects,
        asked_for_other,
        decided,
        other_dept,
        governance,
        consumer,
        thread,
        audit_page,
        no_audit,
        adapters,
        dry_run,
        compatibility,
        auditor_dry_run,
        since_hour,
        since_later,
        since_bad,
    ] = <[Value; 18]>::try_from(pages).map_err(|p| anyhow::anyhow!("{} pages", p.len()))?;

    // 总览 as an admin: every department, each kind's counts as the dry run of its sample says.
    assert_eq!(overview["status"], 200, "{overview}");
    assert!(overview["viewer"].as_str().unwrap_or_default().contains("governance"), "{overview}");
    let rows = overview["sections"]["departments"].as_array().cloned().unwrap_or_default();
    for ((d, k), (valid, bad)) in &expected {
        let row = rows.iter().find(|r| r["key"] == format!("{d}/{k}")).unwrap_or_else(|| panic!("no row {d}/{k}"));
        // Columns: department, kind, cycle, last, freshness, 1h pub, 1h rej, 24h pub, 24h rej, all pub, all rej, rate.
        assert_eq!((cell(row, 9), cell(row, 10)), (valid.to_string(), bad.to_string()), "{d}/{k}: {row}");
        assert_eq!((cell(row, 5), cell(row, 7)), (valid.to_string(), valid.to_string()), "sent within the hour: {row}");
    }
    assert_eq!(overview["cards"]["published-day"], published.to_string());
    assert_eq!(overview["cards"]["rejected-day"], rejected.to_string());
    // The gateways: the running one serving, one that is not there said so; its queues and
    // adapter generation as its /metrics says.
    let health = overview["sections"]["gateways"].as_array().cloned().unwrap_or_default();
    assert_eq!(health.len(), 2, "{overview}");
    assert_eq!(
        (cell(&health[0], 0), cell(&health[1], 0)),
        (gateway.endpoint.clone(), "https://127.0.0.1:1".to_owned())
    );
    assert!(cell(&health[0], 1).contains("serving") && !cell(&health[0], 1).contains("not"), "{overview}");
    assert!(cell(&health[1], 1).starts_with('✗'), "{overview}");
    let metrics = &overview["sections"]["gateway-metrics"][0];
    let generation = gateway.metric("hutong_reload_generation")?.expect("the gateway's generation");
    assert_eq!(cell(metrics, 4), format!("{generation}"), "{metrics}");
    assert_eq!(cell(metrics, 5), "0", "no reload refused: {metrics}");
    let lag = overview["sections"]["lag"].as_array().cloned().unwrap_or_default();
    assert!(lag.iter().any(|r| cell(r, 0) == "hutong.person.v2"), "the service's topics with their lag: {overview}");
    let png = std::fs::read(&shot)?;
    assert!(png.len() > 10_000 && png.starts_with(b"\x89PNG"), "a screenshot of the overview ({} bytes)", png.len());

    // 拒收: an admin sees them all, 民政 its own only, whatever it asks for.
    assert_eq!(all_rejects["cards"]["rejects-total"], rejected.to_string());
    let minzheng: u64 = expected.iter().filter(|((d, _), _)| d == "minzheng").map(|(_, (_, r))| r).sum();
    for page in [&own_rejects, &asked_for_other] {
        assert_eq!(page["cards"]["rejects-total"], minzheng.to_string(), "{page}");
        let rows = page["sections"]["rejects"].as_array().cloned().unwrap_or_default();
        assert_eq!(rows.len() as u64, minzheng);
        assert!(rows.iter().all(|r| cell(r, 1).ends_with("minzheng")), "{page}");
    }

    // One dead letter in full: 民政's elderly-care row with 1948/2/30 for a birthday. 民政 sees it as
    // sent; an admin the fields with their values masked; 公安 nothing. Each view is audited.
    let rows = own_rejects["sections"]["rejects"].as_array().cloned().unwrap_or_default();
    let letter = rows
        .iter()
        .find(|r| cell(r, 2) == "elderly_care" && cell(r, 3).contains("adapter:date"))
        .map(|r| r["key"].as_str().unwrap_or_default().to_owned())
        .expect("民政's elderly-care date reject");
    let path = format!("/console/rejects/{letter}");
    // And 公安's rows refused for their codes: among them the 户主之妻 row, whose HZ_GMSFHM (the
    // head's citizen ID) the adapter only pseudonymises into a key.
    let gongan: Vec<String> = all_rejects["sections"]["rejects"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| cell(r, 2) == "household_registration" && cell(r, 3).contains("adapter:code"))
        .map(|r| r["key"].as_str().unwrap_or_default().to_owned())
        .collect();
    assert_eq!(gongan.len(), 2, "{all_rejects}");
    let mut steps = vec![
        json!({"as": "minzheng", "goto": path}),
        json!({"as": "governance", "goto": path}),
        json!({"as": "gongan", "goto": path}),
        json!({"as": "auditor", "goto": path}),
    ];
    for key in &gongan {
        steps.push(json!({"as": "gongan", "goto": format!("/console/rejects/{key}")}));
        steps.push(json!({"as": "governance", "goto": format!("/console/rejects/{key}")}));
    }
    let views = browse(&service.endpoint, &gateway.pki, Value::Array(steps), dir.path())?;
    // The auditor's operations do not include ViewDeadLetter.
    assert_eq!(views[3]["status"], 403, "{}", views[3]);
    let mut heads = 0;
    for pair in views[4..].chunks(2) {
        let (own, admin) = (&pair[0], &pair[1]);
        if let Some(head) = field_of(own, "HZ_GMSFHM") {
            heads += 1;
            let shown = field_of(admin, "HZ_GMSFHM").unwrap_or_default();
            assert_eq!(shown, hutong_standard::privacy::mask("citizen-id", &head), "{admin}");
            assert_ne!(shown, head);
            let messages: String =
                admin["sections"]["violations"].as_array().into_iter().flatten().map(|r| cell(r, 2)).collect();
            assert!(!messages.contains(&head), "{messages}");
        }
    }
    assert!(heads >= 1, "a row with the head's citizen ID");
    let field = |page: &Value, name: &str| {
        page["sections"]["payload"].as_array().into_iter().flatten().find(|r| cell(r, 0) == name).map(|r| cell(r, 1))
    };
    assert_eq!(field(&views[0], "birthday").as_deref(), Some("1948/2/30"), "{}", views[0]);
    let rules: Vec<String> =
        views[0]["sections"]["violations"].as_array().into_iter().flatten().map(|r| cell(r, 1)).collect();
    assert_eq!(rules, ["adapter:date"], "{}", views[0]);
    // The admin's view: personal fields as the shared topics show them (the adapter maps
    // birthday to person.birth_date, x-pii birth-date; idCard to citizen_id; livingStatus to a
    // special-population tag), what is not personal in clear.
    let as_topics = |pii: &str, value: &str| hutong_standard::privacy::mask(pii, value);
    assert_eq!(field(&views[1], "birthday"), Some(as_topics("birth-date", "1948/2/30")), "{}", views[1]);
    let id_card = field(&views[0], "idCard").expect("民政 sees the ID it sent");
    assert_eq!(field(&views[1], "idCard"), Some(as_topics("citizen-id", &id_card)), "{}", views[1]);
    assert_ne!(field(&views[1], "idCard"), Some(id_card));
    assert_eq!(field(&views[1], "gender"), field(&views[0], "gender"), "not personal: in clear");
    assert_eq!(field(&views[1], "communityCode"), field(&views[0], "communityCode"), "not personal: in clear");
    let message = cell(&views[1]["sections"]["violations"][0], 2);
    assert!(
        message.contains("birthday: \"***\"") && !message.contains("1948/2/30"),
        "the admin's message masked: {message}"
    );
    // The pages may not be framed by another site.
    assert_eq!(views[1]["frame_options"], "SAMEORIGIN", "{}", views[1]);
    assert_eq!(views[2]["status"], 404, "{}", views[2]);

    // Rejects by time: all within the hour, none after 2099; a time that is none is refused.
    assert_eq!(since_hour["cards"]["rejects-total"], rejected.to_string(), "{since_hour}");
    assert_eq!(since_later["cards"]["rejects-total"], "0", "{since_later}");
    assert_eq!(since_bad["status"], 422, "InvalidArgument, as the HTTP submit answers it: {since_bad}");

    // A gRPC call that says it comes from a web page (Origin) is refused before the service: a
    // hostile page cannot call Decide with a browser's certificate. The same call without it works.
    {
        use hutong_proto::v1::{ListRequestsRequest, access_client::AccessClient};
        let channel =
            hutong_tests::ClientAuth::from_pki(&gateway.pki, Some("gongan")).connect(&service.endpoint).await?;
        let mut client = AccessClient::new(channel);
        let mut from_page = tonic::Request::new(ListRequestsRequest { pending: false });
        from_page.metadata_mut().insert("origin", "https://evil.example".parse()?);
        let refused = client.list_requests(from_page).await.expect_err("a call from a web page");
        assert_eq!(refused.code(), tonic::Code::PermissionDenied, "{refused:?}");
        client.list_requests(tonic::Request::new(ListRequestsRequest { pending: false })).await?;
    }

    // 共享审批: 公安 approved in the page; the API says so, and the audit trail has 公安's Decide.
    assert_eq!(decided["status"], 200, "{decided}");
    assert!(decided["notice"].as_str().unwrap_or_default().contains(&format!("{id} approved")), "{decided}");
    let mut list: Vec<String> = ["access", "list", "--json"].map(str::to_owned).to_vec();
    list.extend(service.cli_args("gongan"));
    let out = hutong(&list.iter().map(String::as_str).collect::<Vec<_>>())?;
    let requests: Value = serde_json::from_slice(&out.stdout)?;
    let mine = requests.as_array().unwrap().iter().find(|r| r["id"] == id.as_str()).cloned().unwrap_or_default();
    assert_eq!(mine["status"], "approved", "{requests}");
    let audit = gateway.dir.path().join("audit-profiles-console");
    let events: Vec<Value> = std::fs::read_dir(&audit)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .flat_map(|p| std::fs::read_to_string(p).unwrap_or_default().lines().map(str::to_owned).collect::<Vec<_>>())
        .filter_map(|l| serde_json::from_str::<Value>(&l).ok().map(|mut e| e["event"].take()))
        .collect();
    assert!(
        events.iter().any(|e| e["principal"] == "gongan"
            && e["operation"] == "Approve"
            && e["outcome"] == "Ok"
            && e["detail"]["id"] == id.as_str()),
        "the decision is in the audit trail as 公安's: {events:?}"
    );
    for (who, outcome, masked) in
        [("minzheng", "Ok", Some(false)), ("governance", "Ok", Some(true)), ("gongan", "PermissionDenied", None)]
    {
        assert!(
            events.iter().any(|e| e["principal"] == who
                && e["operation"] == "ViewPayload"
                && e["outcome"] == outcome
                && e["detail"]["event_id"] == letter.as_str()
                && masked.is_none_or(|m| e["detail"]["masked"] == m)),
            "{who}'s view of the dead letter is audited"
        );
    }
    // The pages' reads are audited as their viewers' too.
    assert!(events.iter().any(|e| e["principal"] == "minzheng" && e["operation"] == "Console"));
    // The catalogue, 公安's own resources marked as its own.
    let catalog = decided["sections"]["catalog"].as_array().cloned().unwrap_or_default();
    let own = catalog
        .iter()
        .find(|r| r["key"] == "gongan.household_registration")
        .expect("公安's registration in the catalogue");
    assert_eq!(cell(own, 7), "✓", "{own}");
    assert!(catalog.len() >= 16, "every resource: {}", catalog.len());
    // 民政 sees no request of 公安's resource, so nothing to decide.
    assert!(other_dept["sections"]["pending"].as_array().is_none_or(|r| r.is_empty()), "{other_dept}");

    // 治理: the open events as `hutong events` counts them, and the month's report embedded.
    let mut events: Vec<String> = ["events", "--json"].map(str::to_owned).to_vec();
    events.extend(service.cli_args("governance"));
    let out = hutong(&events.iter().map(String::as_str).collect::<Vec<_>>())?;
    let listed: Value = serde_json::from_slice(&out.stdout)?;
    let open = listed["total"].as_u64().or_else(|| listed.as_array().map(|a| a.len() as u64)).unwrap_or(0);
    assert!(open > 0, "{listed}");
    assert_eq!(governance["cards"]["open-events"], open.to_string(), "{governance}");
    assert!(
        governance["frames"]
            .as_array()
            .is_some_and(|f| f.iter().any(|s| s.as_str().unwrap_or("").starts_with("/console/report")))
    );

    // 供需对接: the unmatched needs as `hutong matches --unmatched` lists them.
    let mut matches: Vec<String> = ["matches", "--unmatched", "--json"].map(str::to_owned).to_vec();
    matches.extend(service.cli_args("governance"));
    let out = hutong(&matches.iter().map(String::as_str).collect::<Vec<_>>())?;
    let unmatched: Value = serde_json::from_slice(&out.stdout)?;
    let unmatched = unmatched["matches"].as_array().cloned().unwrap_or_default();
    assert_eq!(governance["cards"]["unmatched"], unmatched.len().to_string(), "{governance}");
    // 交办反馈: an event's thread, the same steps as `hutong thread`.
    let key = governance["sections"]["events"][0]["key"].as_str().unwrap_or_default().to_owned();
    let mut ask: Vec<String> = vec!["thread".into(), key.clone(), "--json".into()];
    ask.extend(service.cli_args("governance"));
    let out = hutong(&ask.iter().map(String::as_str).collect::<Vec<_>>())?;
    anyhow::ensure!(out.status.success(), "hutong thread {key}: {}", String::from_utf8_lossy(&out.stderr));
    let cli_thread: Value = serde_json::from_slice(&out.stdout)?;
    let cli_steps: usize =
        cli_thread["events"].as_array().into_iter().flatten().map(|e| e["steps"].as_array().map_or(0, Vec::len)).sum();
    assert!(cli_steps > 0, "{cli_thread}");
    assert_eq!(thread["cards"]["steps"], cli_steps.to_string(), "{thread}");
    assert_eq!(thread["sections"]["timeline"].as_array().map_or(0, Vec::len), cli_steps);

    // A consumer has the APIs its grants cover, not the console.
    assert_eq!(consumer["status"], 403, "{consumer}");

    // 审计: both trails' chains intact (the service's own and the gateway's), and the search finds
    // 公安's approval; a department may not read the trail.
    assert_eq!(audit_page["status"], 200, "{audit_page}");
    assert_eq!(audit_page["cards"]["chain-0"], "完整 intact", "{audit_page}");
    assert_eq!(audit_page["cards"]["chain-1"], "完整 intact", "{audit_page}");
    let found = audit_page["sections"]["trail-0"].as_array().cloned().unwrap_or_default();
    assert!(
        !found.is_empty() && found.iter().all(|r| cell(r, 3) == "gongan department" && cell(r, 4) == "Approve"),
        "{audit_page}"
    );
    assert!(found.iter().any(|r| cell(r, 7).contains(&id)), "{audit_page}");
    assert_eq!(no_audit["status"], 403, "{no_audit}");

    // 适配器与标准: every shipped kind's adapter, a code list browsed; the dry run's rules and the
    // compatibility answer are those of `hutong validate` and `hutong schema check`.
    let listed = adapters["sections"]["adapters"].as_array().cloned().unwrap_or_default();
    for (d, k) in expected.keys() {
        assert!(listed.iter().any(|r| r["key"] == format!("{d}/{k}")), "no adapter {d}/{k}: {adapters}");
    }
    let entities = adapters["sections"]["entities"].as_array().cloned().unwrap_or_default();
    assert!(entities.iter().any(|r| r["key"] == "person") && entities.len() >= 8, "{adapters}");
    let fields = adapters["sections"]["fields"].as_array().cloned().unwrap_or_default();
    let citizen_id = fields.iter().find(|r| cell(r, 0) == "citizen_id").expect("person.citizen_id");
    assert!(cell(citizen_id, 3).starts_with("citizen-id"), "its x-pii shown: {citizen_id}");
    let wife = adapters["sections"]["codes"].as_array().cloned().unwrap_or_default();
    assert!(wife.iter().any(|r| cell(r, 0) == "12" && cell(r, 1) == "妻"), "{adapters}");
    let page_rules: Vec<String> = dry_run["sections"]["dry-run"]
        .as_array()
        .into_iter()
        .flatten()
        .filter(|r| cell(r, 0).contains("violation"))
        .map(|r| cell(r, 2))
        .collect();
    let cli_rules: Vec<String> = cli_dry["violations"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|v| v["rule"].as_str().unwrap_or("").to_owned())
        .collect();
    assert!(!cli_rules.is_empty(), "{cli_dry}");
    assert_eq!(page_rules, cli_rules, "the page's dry run says what hutong validate says: {dry_run}");
    let changes = compatibility["sections"]["compatibility"].as_array().cloned().unwrap_or_default();
    assert_eq!(cli_check.status.code(), Some(1), "the CLI finds the new required field incompatible");
    assert!(
        changes.iter().any(|r| cell(r, 0).starts_with("REQUIRED_PROPERTY_ADDED") && cell(r, 2) == "false"),
        "{compatibility}"
    );
    // The auditor may list adapters but not dry-run records (its operations in the policy).
    assert_eq!(auditor_dry_run["status"], 403, "{auditor_dry_run}");
    Ok(())
}
