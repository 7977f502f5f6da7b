//! 共享目录, 申请审批, 数据异议 as real processes over mTLS: tansu, `hutong serve` with every
//! department's sample, `hutong profiles serve`; consumers, departments and admins asking
//! through the CLI with their own certificates. A consumer sees only what its grants cover;
//! approval belongs to the owning department; a revocation holds from the next call; an
//! objection goes round the loop and its mark comes and goes in the profile answer.

use std::{path::Path, process::Output, time::Duration};

use hutong_tests::{
    Broker, Gateway, expected_person_key, http_get, hutong,
    profiles::{ProfileService, caught_up, ingest_samples},
    repo_root, wait_until,
};
use serde_json::Value;

/// 胡金凤 (公安 registers her, 民政's elderly care has her birthday a day late).
const HU_JINFENG: &str = "330106194803080242";

const ENTITY_TOPICS: [&str; 5] =
    ["hutong.building.v2", "hutong.grid.v2", "hutong.household.v2", "hutong.organization.v2", "hutong.person.v2"];

/// `hutong <args…>` against `service` as `identity`.
fn run(service: &ProfileService, identity: &str, args: &[&str]) -> anyhow::Result<Output> {
    let mut all: Vec<String> = args.iter().map(|a| (*a).to_owned()).collect();
    all.extend(service.cli_args(identity));
    let refs: Vec<&str> = all.iter().map(String::as_str).collect();
    hutong(&refs)
}

/// The JSON answer of a command that must succeed.
fn ok(service: &ProfileService, identity: &str, args: &[&str]) -> anyhow::Result<Value> {
    let out = run(service, identity, &[args, &["--json"]].concat())?;
    anyhow::ensure!(
        out.status.success(),
        "hutong {} as {identity}: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    Ok(serde_json::from_slice(&out.stdout)?)
}

/// The error of a command that must fail.
fn refused(service: &ProfileService, identity: &str, args: &[&str]) -> anyhow::Result<String> {
    let out = run(service, identity, args)?;
    anyhow::ensure!(!out.status.success(), "hutong {} as {identity} should fail", args.join(" "));
    Ok(String::from_utf8_lossy(&out.stderr).into_owned())
}

/// `hutong access request` for `resource` with `extra` flags (`--field`, `--grid`), a stated
/// purpose and scenario, until `until`.
fn request_args<'a>(resource: &'a str, extra: &[&'a str], until: &'a str) -> Vec<&'a str> {
    let mut args = vec!["access", "request", "--resource", resource];
    args.extend_from_slice(extra);
    args.extend(["--purpose", "为老服务上门探访名单", "--scenario", "智慧社区平台 网格员端", "--until", until]);
    args
}

/// Every audit event of the service so far.
fn audit_events(dir: &Path) -> anyhow::Result<Vec<Value>> {
    let mut files: Vec<_> = std::fs::read_dir(dir)?.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.retain(|p| p.extension().is_some_and(|x| x == "jsonl"));
    files.sort();
    let mut events = Vec::new();
    for f in files {
        for line in std::fs::read_to_string(f)?.lines() {
            let mut entry: Value = serde_json::from_str(line)?;
            events.push(entry["event"].take());
        }
    }
    Ok(events)
}

fn audited(dir: &Path, principal: &str, operation: &str, outcome: &str) -> anyhow::Result<()> {
    wait_until(&format!("{principal} {operation} {outcome} in the audit trail"), Duration::from_secs(10), || {
        Ok(audit_events(dir)?
            .iter()
            .any(|e| e["principal"] == principal && e["operation"] == operation && e["outcome"] == outcome))
    })
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grants_decide_what_a_consumer_sees_and_an_objection_goes_round_the_loop() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    assert!(ingest_samples(&gateway)? > 150);
    let dir = tempfile::tempdir()?;
    let store = format!("sqlite:{}", dir.path().join("profiles.db").display());
    // The clock fixed (2026-12-01, a Tuesday): reply deadlines in working days are then known.
    let metrics = format!("127.0.0.1:{}", hutong_tests::free_port());
    let extra = format!(
        "\n[governance]\nenabled = true\nnow = \"2026-12-01T09:00:00+08:00\"\nmetrics-listen = \"{metrics}\"\n\n\
         [sharing]\nprofiles-per-hour = 5"
    );
    let service = ProfileService::start(&gateway, "main", &store, "hutong-profiles", &extra).await?;
    wait_until("the service to catch up", Duration::from_secs(120), || {
        caught_up(&broker.bootstrap, "hutong-profiles", &ENTITY_TOPICS)
    })?;
    let audit = gateway.dir.path().join("audit-profiles-main");
    let person = expected_person_key(HU_JINFENG);

    // Without a grant a consumer gets nothing, and the refusal is audited.
    let err = refused(&service, "zhihui", &["profile", "person", &person])?;
    assert!(err.contains("no active grant"), "{err}");
    audited(&audit, "zhihui", "GetProfile", "PermissionDenied")?;
    let err = refused(&service, "zhihui", &["events"])?;
    assert!(err.contains("hutong.governance"), "{err}");

    // The catalogue on the registry port: every resource, read-only.
    let (status, body) = http_get(&format!("{}/catalog", gateway.registry_url))?;
    assert_eq!(status, 200, "{body}");
    let served: Value = serde_json::from_str(&body)?;
    assert!(served["resources"].as_array().unwrap().len() >= 16);
    let (status, one) = http_get(&format!("{}/catalog/gongan.household_registration", gateway.registry_url))?;
    assert_eq!(status, 200);
    assert!(one.contains("\"person.citizen_id\"") && one.contains("\"none\""), "{one}");
    assert_eq!(http_get(&format!("{}/catalog/nope.nothing", gateway.registry_url))?.0, 404);

    // The catalogue as zhihui stands: 公安's registration requestable from 公安.
    let catalog = ok(&service, "zhihui", &["access", "catalog"])?;
    let gongan = catalog.as_array().unwrap().iter().find(|r| r["id"] == "gongan.household_registration").unwrap();
    assert_eq!(gongan["standing"]["requestable"], true);
    assert_eq!(gongan["standing"]["approver"], "provider");

    // Requests: 不予共享 is never granted; two proper ones, pending with a deadline 10 working
    // days on (2026-12-01 + 10 = 2026-12-15).
    let args = request_args("gongan.household_registration", &["--field", "person.citizen_id"], "2026-12-31");
    let err = refused(&service, "zhihui", &args)?;
    assert!(err.contains("不予共享"), "{err}");
    let fields = ["--field", "person.name", "--field", "person.sex", "--field", "person.household_key"];
    let ar1 = ok(&service, "zhihui", &request_args("gongan.household_registration", &fields, "2026-12-31"))?;
    assert_eq!(ar1["status"], "pending");
    assert_eq!(ar1["due"], "2026-12-15");
    let ar2 = ok(&service, "zhihui", &request_args("weijian.elderly_health", &[], "2026-12-31"))?;
    let (id1, id2) = (ar1["id"].as_str().unwrap().to_owned(), ar2["id"].as_str().unwrap().to_owned());
    let pending = ok(&service, "gongan", &["access", "list", "--pending"])?;
    assert_eq!(pending.as_array().unwrap().len(), 1, "公安 sees the request for its resource only: {pending}");

    // 有条件共享: only the owner decides. 民政 and an admin are refused (audited); 公安 approves.
    let err = refused(&service, "minzheng", &["access", "approve", &id1])?;
    assert!(err.contains("department gongan"), "{err}");
    audited(&audit, "minzheng", "Approve", "PermissionDenied")?;
    assert!(refused(&service, "governance", &["access", "approve", &id1])?.contains("department gongan"));
    assert_eq!(ok(&service, "gongan", &["access", "approve", &id1, "--reason", "用途明确"])?["status"], "approved");
    let denied = ok(&service, "weijian", &["access", "deny", &id2, "--reason", "健康档案不向平台开放"])?;
    assert_eq!(denied["status"], "denied");
    audited(&audit, "gongan", "Approve", "Ok")?;

    // Granted: 公安's name, sex and household; nothing of 卫健 or 民政, no conflicts.
    let p = &ok(&service, "zhihui", &["profile", "person", &person])?["profile"];
    assert_eq!(p["record"]["name"], "胡金凤");
    assert_eq!(p["fields"]["name"]["source"]["department"], "gongan");
    assert!(p["record"].get("birth_date").is_none(), "not asked for: {p}");
    assert!(p["fields"]["birth_date"]["withheld"].is_string());
    assert!(p["record"].get("phone").is_none() && p["record"].get("special_population").is_none(), "{p}");
    assert!(p.get("conflicts").is_none());
    assert!(p["sources"].as_array().unwrap().iter().all(|s| s["department"] == "gongan"), "{p}");
    // 民政 (a department) still sees everything it saw before.
    let full = &ok(&service, "minzheng", &["profile", "person", &person])?["profile"];
    assert!(full["record"]["birth_date"].is_string() && full["record"]["phone"].is_string());

    // Reading a whole grid's people is far beyond a purpose of five profiles an hour: a misuse
    // signal, shown to the admins and to 公安 (whose grant it reads under), not to 卫健.
    let grid = ok(&service, "zhihui", &["profile", "grid", "330106004053001"])?;
    let people = grid["people"].as_array().expect("people");
    assert!(people.len() > 5, "{grid}");
    assert!(people.iter().all(|p| p["profile"]["record"].get("phone").is_none()), "granted fields only");
    let signals = |who: &str| -> anyhow::Result<Vec<Value>> {
        Ok(ok(&service, who, &["access", "usage"])?["signals"].as_array().cloned().unwrap_or_default())
    };
    let seen = signals("gongan")?;
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert_eq!((seen[0]["consumer"].as_str(), seen[0]["signal"].as_str()), (Some("zhihui"), Some("enumeration")));
    assert_eq!(signals("governance")?.len(), 1);
    assert!(signals("weijian")?.is_empty());
    audited(&audit, "zhihui", "MisuseSignal", "Signalled")?;

    // A grant limited to one 网格: the street office's for grid 002 does not reach 胡金凤 (grid
    // 001); asking for grid 001's people is refused and signalled as out of scope.
    let scoped = ["--field", "person.name", "--grid", "330106004053002"];
    let ar = ok(&service, "jiedao", &request_args("gongan.household_registration", &scoped, "2026-12-31"))?;
    assert_eq!(ar["grids"][0], "330106004053002");
    ok(&service, "gongan", &["access", "approve", ar["id"].as_str().unwrap()])?;
    assert!(refused(&service, "jiedao", &["profile", "person", &person])?.contains("no active grant"));
    let err = refused(&service, "jiedao", &["profile", "grid", "330106004053001"])?;
    assert!(err.contains("网格 330106004053001"), "{err}");
    let seen = signals("gongan")?;
    assert!(seen.iter().any(|g| g["consumer"] == "jiedao" && g["signal"] == "out-of-scope"), "{seen:?}");
    let short = request_args("gongan.household_registration", &["--grid", "33010600405300"], "2026-12-31");
    assert!(refused(&service, "jiedao", &short)?.contains("15 digits"));

    // Usage, and the ACL plan of the grants: zhihui may read the person topics, nothing of 卫健.
    let usage = ok(&service, "governance", &["access", "usage"])?;
    let row = usage["usage"].as_array().unwrap().iter().find(|u| u["consumer"] == "zhihui").expect("zhihui's usage");
    assert_eq!(row["resource"], "gongan.household_registration");
    assert!(row["queries"].as_i64() >= Some(1));
    let (status, text) = http_get(&format!("http://{metrics}/metrics"))?;
    assert_eq!(status, 200, "{text}");
    let line = text
        .lines()
        .find(|l| {
            l.starts_with("hutong_access_queries_total{consumer=\"zhihui\",resource=\"gongan.household_registration\"}")
        })
        .expect("zhihui's queries in /metrics");
    assert!(line.rsplit(' ').next().and_then(|n| n.parse::<u64>().ok()).is_some_and(|n| n >= 2), "{line}");
    assert!(text.contains("hutong_access_misuse_signals_total{consumer=\"zhihui\"} 1"), "{text}");
    assert!(text.contains("hutong_access_misuse_signals_total{consumer=\"jiedao\"} 1"), "{text}");
    assert!(text.contains("hutong_access_active_grants{} 2"), "{text}");
    let plan = ok(&service, "governance", &["access", "acls", "-c", "deploy/local/hutong.toml", "--on", "2026-12-01"])?;
    let acls = plan["acls"].as_array().unwrap();
    assert!(acls.iter().any(|a| a["principal"] == "User:zhihui.consumers.hutong.local"
        && a["resource_type"] == "topic"
        && a["name"] == "hutong.person.v2"
        && a["operation"] == "Read"));
    assert!(
        acls.iter().all(|a| a["principal"] == "User:zhihui.consumers.hutong.local"),
        "only zhihui has a grant a topic can enforce (jiedao's is limited to a grid)"
    );
    assert!(acls.iter().any(|a| a["resource_type"] == "group" && a["name"] == "zhihui."));

    // The platform reads hutong.person.v2 in its own group; usage --lag reads the brokers'
    // group list and committed offsets for the consumers with active grants.
    {
        use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer as _};
        let consumer: BaseConsumer = rdkafka::ClientConfig::new()
            .set("bootstrap.servers", &broker.bootstrap)
            .set("group.id", "zhihui.platform")
            .set("auto.offset.reset", "earliest")
            .set("enable.auto.commit", "false")
            .set("session.timeout.ms", "6000")
            .create()?;
        consumer.subscribe(&["hutong.person.v2"])?;
        let mut read = 0;
        wait_until("zhihui.platform to read", Duration::from_secs(60), || {
            if let Some(m) = consumer.poll(Duration::from_millis(200)) {
                m?;
                read += 1;
            }
            Ok(read >= 5)
        })?;
        consumer.commit_consumer_state(CommitMode::Sync)?;
    }
    let config = gateway.dir.path().join("hutong.toml").display().to_string();
    let usage = ok(&service, "governance", &["access", "usage", "--lag", "-c", &config])?;
    let lag: Vec<&Value> =
        usage["lag"].as_array().unwrap().iter().filter(|l| l["group"] == "zhihui.platform").collect();
    assert!(!lag.is_empty(), "{usage}");
    assert!(lag.iter().all(|l| l["topic"] == "hutong.person.v2" || l["topic"] == "hutong.household.v2"), "{usage}");
    assert!(lag.iter().any(|l| l["committed"].as_i64().is_some_and(|c| c > 0)), "{usage}");
    // --apply against tansu: it lists no ACLs, so the dry run would create the whole plan; the
    // apply itself fails with the reason (tansu answers CreateAcls without results, which makes
    // librdkafka abort its worker process), and says what to do instead.
    let acls_args = ["access", "acls", "-c", &config, "--on", "2026-12-01", "--apply"];
    let dry = ok(&service, "governance", &[&acls_args[..], &["--dry-run"]].concat())?;
    assert_eq!(dry["found"], 0, "{dry}");
    let create = dry["create"].as_array().unwrap();
    assert!(create.iter().any(|a| a["name"] == "hutong.person.v2" && a["operation"] == "Read"), "{dry}");
    assert!(create.iter().all(|a| a["principal"] == "User:zhihui.consumers.hutong.local"), "{dry}");
    let why = refused(&service, "governance", &acls_args)?;
    assert!(why.contains("tansu") && why.contains("--format kafka-acls"), "{why}");

    // 数据异议: 公安 objects to 民政's fact behind the birth-date conflict …
    let conflict = full["conflicts"].as_array().unwrap().iter().find(|c| c["field"] == "birth_date").unwrap().clone();
    let ce_id = conflict["loser"]["source"]["ce_id"].as_str().unwrap().to_owned();
    let ob = ok(
        &service,
        "gongan",
        &["objection", "file", "--ce-id", &ce_id, "--pointer", "/birth_date", "--reason", "户籍登记为1948-03-08"],
    )?;
    assert_eq!((ob["department"].as_str(), ob["status"].as_str()), (Some("minzheng"), Some("open")));
    let ob_id = ob["id"].as_str().unwrap().to_owned();
    // … it is in 民政's queue, and the fields from that fact are marked 异议.
    let queue = ok(&service, "minzheng", &["objection", "list", "--mine"])?;
    assert!(queue.as_array().unwrap().iter().any(|o| o["id"] == ob_id.as_str()));
    assert!(ok(&service, "weijian", &["objection", "list", "--mine"])?.as_array().unwrap().is_empty());
    let marked = &ok(&service, "minzheng", &["profile", "person", &person])?["profile"];
    let listed = marked["objections"].as_array().expect("objections listed").clone();
    assert_eq!(listed.len(), 1, "listed once: {marked}");
    let fields = listed[0]["fields"].as_array().expect("the fields it marks");
    assert!(!fields.is_empty(), "{marked}");
    for f in fields {
        let f = f.as_str().unwrap();
        assert_eq!(marked["fields"][f]["异议"][0], ob_id.as_str(), "{f}: {}", marked["fields"][f]);
        assert!(marked["fields"][f].to_string().contains("minzheng"), "only 民政's fields: {f}");
    }
    // Only the source department resolves it.
    assert!(refused(&service, "gongan", &["objection", "ack", &ob_id])?.contains("minzheng"));
    assert_eq!(ok(&service, "minzheng", &["objection", "ack", &ob_id])?["status"], "acknowledged");

    // 民政 sends the corrected record (revision 2): the objection closes by itself, the mark goes.
    let correction = repo_root().join("deploy/local/corrections/minzheng/elderly_care.ndjson");
    let mut args: Vec<String> =
        vec!["ingest".into(), "-k".into(), "elderly_care".into(), correction.display().to_string()];
    args.extend(gateway.cli_args("minzheng"));
    let out = hutong(&args.iter().map(String::as_str).collect::<Vec<_>>())?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let published = String::from_utf8_lossy(&out.stdout).into_owned();
    wait_until("the objection to close", Duration::from_secs(60), || {
        let all = ok(&service, "minzheng", &["objection", "list", "--all"])?;
        Ok(all.as_array().unwrap().iter().any(|o| o["id"] == ob_id.as_str() && o["status"] == "closed"))
    })
    .map_err(|e| {
        let all = ok(&service, "minzheng", &["objection", "list", "--all"]).unwrap_or_default();
        e.context(format!("ingest said {published}\nobjections {all}\nlog {}", service.log()))
    })?;
    // It is on hutong.objection.v1 for 民政 to consume, as it stands: closed. (Changes made
    // through the API go out with the next batch or tick; only the state then is published.)
    wait_until("the closed objection on its topic", Duration::from_secs(30), || {
        let seen = hutong_tests::consume_all(&broker.bootstrap, "hutong.objection.v1")?;
        let states: Vec<String> = seen
            .iter()
            .filter(|m| m.key.as_deref() == Some(ob_id.as_str()))
            .filter_map(|m| Some(m.value.as_ref()?["status"].as_str()?.to_owned()))
            .collect();
        Ok(states.last().map(String::as_str) == Some("closed"))
    })?;
    let corrected = &ok(&service, "minzheng", &["profile", "person", &person])?["profile"];
    assert!(corrected.get("objections").is_none(), "{corrected}");
    assert!(
        !corrected["conflicts"].as_array().unwrap().iter().any(|c| c["field"] == "birth_date"),
        "the birth dates agree now: {corrected}"
    );

    // The month's report counts the objection for 民政 (corrected, 0 working days) and the use.
    let out = run(&service, "governance", &["report", "--period", "2026-12", "--format", "json", "--out", "-"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let report: Value = serde_json::from_slice(&out.stdout)?;
    let row = report["objections"].as_array().unwrap().iter().find(|o| o["department"] == "minzheng").cloned();
    let row = row.expect("民政's objections in the report");
    assert_eq!(
        (row["received"].as_u64(), row["corrected"].as_u64(), row["open"].as_u64()),
        (Some(1), Some(1), Some(0))
    );
    assert!(report["usage"].as_array().unwrap().iter().any(|u| u["consumer"] == "zhihui"));

    // Revoked: the very next call is refused.
    assert_eq!(ok(&service, "gongan", &["access", "revoke", &id1, "--reason", "项目结束"])?["status"], "revoked");
    let err = refused(&service, "zhihui", &["profile", "person", &person])?;
    assert!(err.contains("no active grant"), "{err}");

    // Expiry: 综治中心 granted through 2026-12-02 reads on the 1st; with the clock on the 3rd
    // (the same store, a restarted service) the next call is refused.
    let ar3 = ok(&service, "zongzhi", &request_args("gongan.household_registration", &[], "2026-12-02"))?;
    let id3 = ar3["id"].as_str().unwrap().to_owned();
    ok(&service, "gongan", &["access", "approve", &id3])?;
    assert_eq!(ok(&service, "zongzhi", &["profile", "person", &person])?["profile"]["record"]["name"], "胡金凤");
    let mut service = service;
    service.process.kill9()?;
    let later = extra.replace("2026-12-01T09:00:00", "2026-12-03T09:00:00").replace(&metrics, "");
    let service = ProfileService::start(&gateway, "later", &store, "hutong-profiles", &later).await?;
    let err = refused(&service, "zongzhi", &["profile", "person", &person])?;
    assert!(err.contains("no active grant"), "{err}");
    let listed = ok(&service, "zongzhi", &["access", "list"])?;
    assert_eq!(listed[0]["expired"], true, "{listed}");
    Ok(())
}

/// `docs/catalog.md` is the catalogue of the local deployment as it is now.
#[test]
fn the_catalogue_document_is_in_sync() -> anyhow::Result<()> {
    let out = hutong(&["catalog", "docs", "-c", "deploy/local/hutong.toml"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let rendered = String::from_utf8(out.stdout)?;
    let path = repo_root().join("docs/catalog.md");
    if std::env::var_os("HUTONG_BLESS").is_some() {
        std::fs::write(&path, &rendered)?;
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/catalog.md is out of date: hutong catalog docs -c deploy/local/hutong.toml --out docs/catalog.md"
    );
    // Every shipped adapter is a resource there, with its sharing class.
    for dept in std::fs::read_dir(repo_root().join("schemas/departments"))? {
        let dept = dept?.path();
        for f in std::fs::read_dir(&dept)?.filter_map(Result::ok).map(|e| e.path()) {
            if f.extension().is_some_and(|x| x == "toml") {
                let id = format!(
                    "{}.{}",
                    dept.file_name().unwrap().to_string_lossy(),
                    f.file_stem().unwrap().to_string_lossy()
                );
                assert!(rendered.contains(&format!("\n## {id}\n")), "{id} is not in the catalogue");
            }
        }
    }
    assert!(rendered.contains("有条件共享") && rendered.contains("不予共享"));
    Ok(())
}
