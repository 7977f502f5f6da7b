//! `hutong dlq` against a real broker and gateway, on the demo's 公安 export and a few records of
//! its own: records rejected by an adapter are counted by rule, a dry run sends nothing, and after
//! the adapter is fixed a replay publishes them with the event ids their original bytes give (the
//! dead letter keeps the exact bytes); a record the fix does not cure is rejected again, a fact
//! the department has since sent corrected is not sent over it, a second replay sends nothing
//! already published, a record of another rule is left alone.

use std::{process::Command, time::Duration};

use base64::Engine as _;
use hutong_tests::{Broker, Gateway, consume_all, hutong_bin, inproc, shared_pki, wait_until};
use serde_json::{Value, json};

const KIND: &str = "household_registration";
const SOURCE: &str = "/departments/gongan/household_registration";

fn run(args: &[String]) -> anyhow::Result<(bool, String, String)> {
    let out = Command::new(hutong_bin()?).args(args).output()?;
    Ok((out.status.success(), String::from_utf8(out.stdout)?, String::from_utf8(out.stderr)?))
}

fn json_of(args: &[String]) -> anyhow::Result<Value> {
    let (ok, stdout, stderr) = run(args)?;
    anyhow::ensure!(ok, "hutong {args:?} failed:\n{stdout}{stderr}");
    Ok(serde_json::from_str(stdout.trim())?)
}

fn strings(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

/// Every message on the entity topics (`hutong.<entity>.vN`) with `ce_source` and `ce_sourceid`.
fn published_of(bootstrap: &str, source_id: &str) -> anyhow::Result<Vec<hutong_tests::Consumed>> {
    use rdkafka::consumer::{BaseConsumer, Consumer as _};
    let c: BaseConsumer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", bootstrap).set("group.id", "dlq-test-md").create()?;
    let md = c.fetch_metadata(None, Duration::from_secs(10))?;
    let mut out = Vec::new();
    for t in md.topics() {
        let name = t.name();
        let entity = name.strip_prefix("hutong.").is_some_and(|rest| {
            rest.rsplit_once(".v").is_some_and(|(e, v)| !e.contains('.') && v.parse::<u32>().is_ok())
        });
        if !entity || name == "hutong.dlq.v1" || name == "hutong.audit.v1" {
            continue;
        }
        out.extend(consume_all(bootstrap, name)?.into_iter().filter(|m| {
            m.headers.get("ce_source").map(String::as_str) == Some(SOURCE)
                && m.headers.get("ce_sourceid").map(String::as_str) == Some(source_id)
        }));
    }
    Ok(out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dlq_replay_after_an_adapter_fix_publishes_the_rejected_originals_with_their_event_ids() -> anyhow::Result<()> {
    let schemas = inproc::schemas_copy();
    let broker = Broker::start()?;
    let gateway = Gateway::start_with(&broker.bootstrap, shared_pki()?, schemas.path(), "").await?;
    let config = gateway.dir.path().join("hutong.toml").display().to_string();
    let work = tempfile::tempdir()?;

    // R1 and R2 use English sex codes the adapter does not map yet (rule adapter:code); R1 is
    // sent as bytes no JSON writer gives back (spacing), with the time it happened. R3 passes.
    // R4's citizen ID fails its check digit: another rule, which the fix does not touch.
    let r1_bytes = r#"{ "GMSFHM": "330106198001010021",  "XM": "李梅", "XB": "F" }"#.as_bytes().to_vec();
    let r2 = json!({"GMSFHM": "330106198001010013", "XM": "王强", "XB": "M"});
    let lines = [
        json!({"source_id": "R1", "revision": 4, "occurred_at": "2026-11-30T12:00:00Z",
               "payload_base64": base64::engine::general_purpose::STANDARD.encode(&r1_bytes)}),
        json!({"source_id": "R2", "revision": 1, "payload": r2}),
        json!({"source_id": "R3", "revision": 1, "payload": {"GMSFHM": "330106198505050035", "XM": "赵刚", "XB": "男"}}),
        json!({"source_id": "R4", "revision": 1, "payload": {"GMSFHM": "330106198505050036", "XM": "钱进", "XB": "男"}}),
        // R5 and R6 are rejected like R1 and R2, then the department corrects them itself: R5
        // at revision 2, R6 at the same revision with other content.
        json!({"source_id": "R5", "revision": 1, "payload": {"GMSFHM": "330106198001010021", "XM": "李梅", "XB": "F"}}),
        json!({"source_id": "R6", "revision": 1, "payload": {"GMSFHM": "330106198001010013", "XM": "王强", "XB": "M"}}),
        // R7 is rejected twice, at revisions 1 and 2: only the newest may be sent. R8 passes at
        // revision 1; then its system sends revision 1 again with other content, rejected.
        json!({"source_id": "R7", "revision": 1, "payload": {"GMSFHM": "330106198202020023", "XM": "孙丽", "XB": "F"}}),
        json!({"source_id": "R7", "revision": 2, "payload": {"GMSFHM": "330106198202020023", "XM": "孙丽娟", "XB": "F"}}),
        json!({"source_id": "R8", "revision": 1, "payload": {"GMSFHM": "330106198303030036", "XM": "周平", "XB": "男"}}),
    ];
    let export = work.path().join("export.ndjson");
    std::fs::write(&export, lines.iter().map(|l| format!("{l}\n")).collect::<String>())?;
    let mut ingest = strings(&["ingest", "-k", KIND, "--json"]);
    ingest.push(export.display().to_string());
    ingest.extend(gateway.cli_args("gongan"));
    let (ok, stdout, stderr) = run(&ingest)?;
    assert!(ok, "{stdout}{stderr}");
    let statuses: Vec<String> = stdout
        .lines()
        .map(|l| serde_json::from_str::<Value>(l).map(|v| v["status"].as_str().unwrap_or_default().to_owned()))
        .collect::<Result<_, _>>()?;
    assert_eq!(
        statuses,
        ["REJECTED", "REJECTED", "PUBLISHED", "REJECTED", "REJECTED", "REJECTED", "REJECTED", "REJECTED", "PUBLISHED"],
        "{stdout}"
    );
    let corrected = work.path().join("corrected.ndjson");
    std::fs::write(
        &corrected,
        [
            json!({"source_id": "R5", "revision": 2, "payload": {"GMSFHM": "330106198001010021", "XM": "李梅", "XB": "女"}}),
            json!({"source_id": "R6", "revision": 1, "payload": {"GMSFHM": "330106198001010013", "XM": "王强", "XB": "男"}}),
            json!({"source_id": "R8", "revision": 1, "payload": {"GMSFHM": "330106198303030036", "XM": "周平安", "XB": "M"}}),
        ]
        .iter()
        .map(|l| format!("{l}\n"))
        .collect::<String>(),
    )?;
    let mut again = strings(&["ingest", "-k", KIND, "--quiet"]);
    again.push(corrected.display().to_string());
    again.extend(gateway.cli_args("gongan"));
    let (ok, stdout, stderr) = run(&again)?;
    assert!(ok && stdout.contains(" 2 published") && stdout.contains(" 1 rejected"), "{stdout}{stderr}");
    // The demo's 公安 export as README command 1 sends it: four of its rows are rejected, one
    // (330106197511060526) because its system writes the relation to the head in words (户主之妻).
    let sample = hutong_tests::repo_root().join("schemas/departments/gongan/samples/household_registration.ndjson");
    let mut demo = strings(&["ingest", "-k", KIND, "--quiet"]);
    demo.push(sample.display().to_string());
    demo.extend(gateway.cli_args("gongan"));
    let (ok, stdout, stderr) = run(&demo)?;
    assert!(ok && stdout.contains(" 4 rejected"), "{stdout}{stderr}");

    // The dead letters, counted by rule. The topic is read to its end: wait until all are there.
    let list = |extra: &[&str]| {
        let mut a = strings(&["dlq", "list", "-c", &config, "--json"]);
        a.extend(strings(extra));
        json_of(&a)
    };
    let mut all = Value::Null;
    wait_until("twelve dead letters", Duration::from_secs(30), || {
        all = list(&[])?;
        Ok(all["records"] == 12)
    })?;
    let by_rule = all["by_rule"].as_array().cloned().unwrap_or_default();
    let code_row = by_rule.iter().find(|r| r["rule"] == "adapter:code").expect("an adapter:code row");
    assert_eq!(
        (&code_row["department"], &code_row["kind"], &code_row["records"]),
        (&json!("gongan"), &json!(KIND), &json!(9)),
        "{all}"
    );
    let gb11643 = by_rule.iter().find(|r| r["rule"] == "format:gb11643").expect("R4's rule is listed");
    assert_eq!(gb11643["records"], 2, "{all}");
    assert_eq!(list(&["--rule", "adapter:code", "--since", "1h"])?["records"], 9);
    assert_eq!(list(&["--department", "minzheng"])?["records"], 0);
    assert_eq!(list(&["--since", "2099-01-01T00:00:00Z"])?["records"], 0);

    // The dead letter keeps R1's exact bytes (its JSON would give other ones) and its time.
    let letters = consume_all(&broker.bootstrap, "hutong.dlq.v1")?;
    let r1_letter =
        letters.iter().find(|m| m.value.as_ref().is_some_and(|v| v["source_id"] == "R1")).expect("R1's dead letter");
    let v = r1_letter.value.as_ref().unwrap();
    assert_eq!(v["payload"]["base64"], base64::engine::general_purpose::STANDARD.encode(&r1_bytes));
    assert_eq!(v["payload"]["json"]["XB"], "F");
    assert_eq!(v["occurred_at"], "2026-11-30T12:00:00+00:00");
    let r2_letter = letters.iter().find(|m| m.value.as_ref().is_some_and(|v| v["source_id"] == "R2")).unwrap();
    assert!(r2_letter.value.as_ref().unwrap()["payload"].get("base64").is_none(), "R2's JSON gives its bytes back");

    let replay = |pki: &str, extra: &[&str]| {
        let mut a = strings(&["dlq", "replay", "-c", &config, "--addr", &gateway.endpoint, "--pki", pki, "--json"]);
        a.extend(strings(&["--rule", "adapter:code"]));
        a.extend(strings(extra));
        a
    };
    let pki = gateway.pki.display().to_string();

    // Without the department's certificate nothing is sent, and the error says which is missing.
    let empty = tempfile::tempdir()?;
    let (ok, _, stderr) = run(&replay(&empty.path().display().to_string(), &[]))?;
    assert!(!ok && stderr.contains("gongan.pem"), "{stderr}");

    // A dry run sends nothing.
    let dry = json_of(&replay(&pki, &["--dry-run"]))?;
    assert_eq!(dry["by_department"]["gongan"]["to send"], 6, "R1, R2, two demo rows, R7's second, R8: {dry}");
    assert_eq!(dry["by_department"]["gongan"]["superseded"], 3, "R5 and R6 corrected since, R7's first: {dry}");
    // Replayed before the fix, they are rejected again by the same rule.
    let again = json_of(&replay(&pki, &[]))?;
    assert_eq!(again["by_department"]["gongan"]["REJECTED"], 6, "{again}");
    assert_eq!(again["rejected_again_by_rule"]["adapter:code"], 6, "{again}");
    let r1_source_id = r1_letter.headers.get("ce_sourceid").cloned().expect("ce_sourceid on the dead letter");
    assert!(published_of(&broker.bootstrap, &r1_source_id)?.is_empty());

    // The fix: the adapter maps M/F too, and 户主之妻 to 妻 (GB/T 4761 code 12); the golden
    // fixture that pinned the old refusal goes. The gateway reloads it on SIGHUP.
    let adapter = schemas.path().join("departments/gongan/household_registration.toml");
    let text = std::fs::read_to_string(&adapter)?;
    let relation = "transforms = [\"trim\", \"nfkc\", { code = { list = \"gb-t-4761\", unknown = \"reject\" } }]";
    assert!(text.contains(relation), "the relation line is where this test expects it");
    let text = text.replace(
        relation,
        "transforms = [\"trim\", \"nfkc\", { map = { table = { \"户主之妻\" = \"12\" }, unknown = \"keep\" } }, \
         { code = { list = \"gb-t-4761\", unknown = \"reject\" } }]",
    );
    std::fs::remove_file(
        schemas.path().join("departments/gongan/fixtures/household_registration/reject_unknown_relation.json"),
    )?;
    let fixed = text.replace(
        "transforms = [\"trim\", \"nfkc\", { code = { list = \"gb-t-2261.1\", unknown = \"reject\" } }]",
        "transforms = [\"trim\", \"nfkc\", \"upper\", { map = { table = { \"M\" = \"1\", \"F\" = \"2\", \"男\" = \"1\", \"女\" = \"2\" }, unknown = \"reject\" } }]",
    );
    assert_ne!(fixed, text, "the sex mapping line is where this test expects it");
    std::fs::write(&adapter, fixed)?;
    let before = gateway.metric("hutong_reload_generation")?.unwrap_or(0.0);
    gateway.hangup()?;
    wait_until("the fixed adapter in use", Duration::from_secs(30), || {
        Ok(gateway.metric("hutong_reload_generation")?.unwrap_or(0.0) > before)
    })?;

    let replayed = json_of(&replay(&pki, &[]))?;
    assert_eq!(replayed["records"], 9, "R4 (another rule) is not replayed: {replayed}");
    assert_eq!(replayed["by_department"]["gongan"]["superseded"], 3, "{replayed}");
    assert_eq!(replayed["by_department"]["gongan"]["PUBLISHED"], 5, "{replayed}");
    // 110105198001010315 has an unknown sex X, a 13th month and an unknown 民族 99: still refused.
    assert_eq!(replayed["by_department"]["gongan"]["REJECTED"], 1, "{replayed}");
    assert_eq!(replayed["rejected_again_by_rule"]["adapter:date"], 1, "{replayed}");

    // Published with the ids of the original bytes: the dead letter's own id (its key) and the
    // published events' ids all come from (department, kind, source id, revision, digest).
    for (source, bytes, revision) in [("R1", r1_bytes.clone(), 4u64), ("R2", serde_json::to_vec(&r2)?, 1)] {
        let letter = letters.iter().find(|m| m.value.as_ref().is_some_and(|v| v["source_id"] == source)).unwrap();
        let travelling = letter.headers.get("ce_sourceid").cloned().unwrap();
        let digest = hutong_bus::content_digest(hutong_bus::Op::Upsert, &bytes, "");
        let id = |i| hutong_bus::event_id("gongan", KIND, &travelling, revision, &digest, i);
        assert_eq!(letter.key.as_deref(), Some(id(hutong_bus::DEAD_LETTER_INDEX).as_str()), "{source}'s dead letter");
        let mut published = Vec::new();
        wait_until(&format!("{source} published"), Duration::from_secs(30), || {
            published = published_of(&broker.bootstrap, &travelling)?;
            Ok(!published.is_empty())
        })?;
        let mut ids: Vec<String> = published.iter().map(|m| m.headers["ce_id"].clone()).collect();
        ids.sort();
        let mut want: Vec<String> = (0..published.len()).map(id).collect();
        want.sort();
        assert_eq!(ids, want, "{source}: the ids of the original bytes");
        assert!(published.iter().all(|m| m.headers["ce_revision"] == revision.to_string()));
        if source == "R1" {
            let person = published.iter().find(|m| m.topic.starts_with("hutong.person.")).expect("R1's person");
            assert_eq!(person.value.as_ref().unwrap()["sex"], "2", "F mapped by the fix");
            assert_eq!(person.headers["ce_time"], "2026-11-30T12:00:00.000Z", "the time it happened, kept");
        }
    }

    // The demo's row: its household now says the member is the head's wife.
    let wife = letters
        .iter()
        .find(|m| m.value.as_ref().is_some_and(|v| v["source_id"] == "330106197511060526"))
        .and_then(|m| m.headers.get("ce_sourceid").cloned())
        .expect("the 户主之妻 row's dead letter");
    let household = published_of(&broker.bootstrap, &wife)?
        .into_iter()
        .find(|m| m.topic.starts_with("hutong.household."))
        .expect("the 户主之妻 row's household, published");
    assert_eq!(household.value.as_ref().unwrap()["members"][0]["relation"], "12");

    // R5 and R6 stay as the department corrected them: still one message each, its own.
    for (source, revision) in [("R5", "2"), ("R6", "1")] {
        let travelling = letters
            .iter()
            .find(|m| m.value.as_ref().is_some_and(|v| v["source_id"] == source))
            .and_then(|m| m.headers.get("ce_sourceid").cloned())
            .unwrap();
        let person: Vec<_> = published_of(&broker.bootstrap, &travelling)?
            .into_iter()
            .filter(|m| m.topic.starts_with("hutong.person."))
            .collect();
        assert_eq!(person.len(), 1, "{source}: {person:?}");
        assert_eq!(person[0].headers["ce_revision"], revision);
    }

    // R7: only its second revision, replayed; R8: the rejected content, newer than the published.
    for (source, revision, name, sex) in [("R7", "2", "孙丽娟", "2"), ("R8", "1", "周平安", "1")] {
        let travelling = letters
            .iter()
            .find(|m| m.value.as_ref().is_some_and(|v| v["source_id"] == source))
            .and_then(|m| m.headers.get("ce_sourceid").cloned())
            .unwrap();
        let mut person = Vec::new();
        wait_until(&format!("{source} replayed"), Duration::from_secs(30), || {
            person = published_of(&broker.bootstrap, &travelling)?
                .into_iter()
                .filter(|m| m.topic.starts_with("hutong.person."))
                .collect();
            Ok(person.iter().any(|m| m.value.as_ref().is_some_and(|v| v["name"] == name)))
        })?;
        let revisions: Vec<&str> = person.iter().map(|m| m.headers["ce_revision"].as_str()).collect();
        assert!(revisions.iter().all(|r| *r == revision), "{source}: {revisions:?}");
        let last = person.last().and_then(|m| m.value.as_ref()).unwrap();
        assert_eq!((&last["name"], &last["sex"]), (&json!(name), &json!(sex)), "{source}: the newest content last");
    }

    // Once more: nothing already published is sent again.
    let twice = json_of(&replay(&pki, &[]))?;
    assert_eq!(twice["by_department"]["gongan"]["already published"], 5, "{twice}");
    assert_eq!(twice["by_department"]["gongan"]["superseded"], 3, "{twice}");
    assert_eq!(twice["by_department"]["gongan"]["REJECTED"], 1, "{twice}");
    Ok(())
}
