//! End to end, as real processes: tansu (memory storage) and `hutong serve`;
//! the sample 公安 household-registration export submitted over gRPC; an
//! independent Kafka consumer checks value, key and every CloudEvents header,
//! and the dead-letter topic.

use std::collections::{BTreeMap, BTreeSet};

use hutong_proto::v1::{RecordResult, SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::{Broker, Gateway, consume_all, expected_person_key, repo_root, topic_count};
use serde_json::{Value, json};
use tonic::Request;

/// Whether a 公安 row names its 户 (and so gives a household).
fn rec_has_household(rec: &SourceRecord) -> bool {
    hutong_client::decoded_payload(rec).is_some_and(|p| p.get("HH").is_some_and(|h| h != ""))
}

fn sample() -> anyhow::Result<Vec<(SourceRecord, Value)>> {
    hutong_tests::sample_records("schemas/departments/gongan/samples/household_registration.ndjson")
}

fn request<T>(body: T) -> Request<T> {
    Request::new(body)
}

/// Global id of the latest person schema, as `schemas/registry/registry.json` says.
fn person_schema_id() -> u64 {
    let text = std::fs::read_to_string(repo_root().join("schemas/registry/registry.json")).unwrap();
    let reg: Value = serde_json::from_str(&text).unwrap();
    let versions = reg["subjects"]["hutong.person.v2-value"]["versions"].as_array().unwrap();
    versions.last().unwrap()["id"].as_u64().unwrap()
}

/// The rows that must be rejected (公安 keys its rows by the 公民身份号码).
const REJECTED: [&str; 4] = ["110105198001010210", "110105198001010315", "110105198001010411", "330106197511060526"];

/// A source id of 公安 as it travels: normalised as its citizen-ID field is (trimmed, full-width
/// characters folded, upper-case, a legacy 15-digit number converted to 18), then pseudonymised
/// like a citizen ID, `<key id>:<HMAC>`.
fn travelling(source_id: &str) -> String {
    let folded: String = source_id
        .trim()
        .chars()
        .map(|c| if ('\u{ff01}'..='\u{ff5e}').contains(&c) { char::from_u32(c as u32 - 0xfee0).unwrap() } else { c })
        .collect::<String>()
        .to_ascii_uppercase();
    let id = if folded.len() == 15 {
        let body = format!("{}19{}", &folded[..6], &folded[6..]);
        let check = hutong_standard::checks::gb11643_check_char(&body).unwrap();
        format!("{body}{check}")
    } else {
        folded
    };
    format!("{}:{}", key_id(), expected_person_key(&id))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_records_reach_kafka_as_cloudevents_and_rejects_reach_the_dlq() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let sample = sample()?;
    let mut client = IngestClient::new(gateway.channel("gongan").await?);
    let resp = client
        .submit(request(SubmitRequest {
            batch_id: "b1".into(),
            records: sample.iter().map(|(r, _)| r.clone()).collect(),
        }))
        .await?
        .into_inner();
    assert_eq!(resp.batch_id, "b1");
    assert_eq!(resp.results.len(), sample.len());
    let by_id: BTreeMap<&str, &RecordResult> = resp.results.iter().map(|r| (r.source_id.as_str(), r)).collect();

    // Statuses and reasons.
    for (rec, _) in &sample {
        let r = by_id[rec.source_id.as_str()];
        let expected = if REJECTED.contains(&rec.source_id.as_str()) { Status::Rejected } else { Status::Published };
        assert_eq!(r.status, expected as i32, "{}: {:?}", rec.source_id, r.violations);
        // A row that names its 户 gives the household too.
        let outputs = if expected == Status::Published && rec_has_household(rec) { 2 } else { 1 };
        assert_eq!(r.receipts.len(), outputs, "{}", rec.source_id);
    }
    let rules = |id: &str| -> Vec<(String, String)> {
        by_id[id].violations.iter().map(|v| (v.pointer.clone(), v.rule.clone())).collect()
    };
    assert_eq!(rules(REJECTED[0]), [("/citizen_id".to_owned(), "format:gb11643".to_owned())]);
    let r901 = rules(REJECTED[1]);
    for expected in [("/sex", "adapter:code"), ("/ethnicity", "adapter:code"), ("/birth_date", "adapter:date")] {
        assert!(r901.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{r901:?} lacks {expected:?}");
    }
    assert!(rules(REJECTED[2]).iter().any(|(_, rule)| rule == "required"), "{:?}", rules(REJECTED[2]));
    assert_eq!(rules(REJECTED[3]), [("/members/0/relation".to_owned(), "adapter:code".to_owned())]);

    // The person topic, read by an independent consumer.
    let published = sample.len() - REJECTED.len();
    let persons = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    assert_eq!(persons.len(), published, "person messages on the topic, exactly");
    let person_receipt = |id: &str| by_id[id].receipts.iter().find(|r| r.entity == "person").expect("a person");
    for (rec, payload) in sample.iter().filter(|(r, _)| !REJECTED.contains(&r.source_id.as_str())) {
        let receipt = person_receipt(&rec.source_id);
        let msg = persons
            .iter()
            .find(|m| m.partition == receipt.partition && m.offset == receipt.offset)
            .unwrap_or_else(|| panic!("no message at the receipt of {}", rec.source_id));
        let value = msg.value.as_ref().expect("a value");
        // The shared topic carries the citizen ID pseudonymised: `<key id>:<HMAC>`, the HMAC being the person_key.
        let raw_id = payload["GMSFHM"].as_str().unwrap();
        let key = value["person_key"].as_str().unwrap().to_owned();
        assert_eq!(value["citizen_id"], json!(format!("{}:{key}", key_id())));
        assert!(!value.to_string().contains(raw_id), "the raw citizen ID is on the shared topic: {value}");
        // One source's fact: keyed by (entity key, department, kind, source id), partitioned by the
        // entity key as Kafka's Java clients would partition that key (murmur2, 3 partitions).
        // The source id is the citizen ID itself: it travels pseudonymised, in the key and the header.
        let fact = format!(r#"["{key}","gongan","household_registration","{}"]"#, travelling(&rec.source_id));
        assert_eq!(msg.key.as_deref(), Some(fact.as_str()));
        assert_eq!(msg.partition, hutong_bus::partition_for(&key, 3), "{}", rec.source_id);
        assert_eq!(msg.headers["ce_sourceid"], travelling(&rec.source_id));
        assert_eq!(msg.headers["ce_revision"], rec.revision.to_string());
        assert!(!msg.key.as_deref().unwrap_or_default().contains(&rec.source_id), "the raw source id in the key");
        for (h, v) in &msg.headers {
            assert!(!v.contains(raw_id), "header {h} carries the citizen ID");
        }
        // Every CloudEvents header.
        let h = &msg.headers;
        assert_eq!(h["ce_specversion"], "1.0");
        assert_eq!(h["ce_id"], receipt.event_id);
        assert_eq!(h["ce_source"], "/departments/gongan/household_registration");
        assert_eq!(h["ce_type"], "cn.hutong.person.upsert");
        assert_eq!(h["ce_subject"], key);
        assert_eq!(h["ce_dataschema"], format!("{}/schemas/ids/{}", gateway.registry_url, person_schema_id()));
        assert_eq!(h["content-type"], "application/json");
        assert!(chrono_like(&h["ce_time"]), "ce_time {:?}", h["ce_time"]);
        // The canonical value: names trimmed and normalised, codes national.
        assert!(["1", "2"].contains(&value["sex"].as_str().unwrap()));
        assert_eq!(value["birth_date"].as_str().unwrap().len(), 10);
        assert_eq!(value["household_registration"]["division_code"], payload["HJDZ_XZQH"]);
    }
    // Quirks normalised: full-width digits, stray spaces, 汉族 by name, legacy 15-digit ID.
    let value_of = |id: &str| {
        let rc = person_receipt(id);
        persons.iter().find(|m| m.offset == rc.offset && m.partition == rc.partition).unwrap().value.clone().unwrap()
    };
    let zhou = value_of("320102198808081237");
    assert_eq!(zhou["person_key"], expected_person_key("320102198808081237"), "keyed on the normalised ID");
    assert_eq!(zhou["birth_date"], "1988-08-08");
    assert_eq!(zhou["ethnicity"], "01");
    assert_eq!(zhou["sex"], "1");
    assert_eq!(value_of("510107197007080915")["ethnicity"], "01", "汉族 by name");
    assert_eq!(value_of("33010620010930112X")["ethnicity"], "03", "回 by alias");
    assert_eq!(
        value_of("420106750312041")["person_key"],
        expected_person_key("420106197503120412"),
        "15-digit ID converted"
    );

    // 人户关联: each row that names its 户 is one member's fact about the household, keyed by
    // (household key, 公安, kind, the row), on the partition of the household key.
    let households = consume_all(&broker.bootstrap, "hutong.household.v2")?;
    let with_household: Vec<&(SourceRecord, Value)> =
        sample.iter().filter(|(r, _)| rec_has_household(r) && !REJECTED.contains(&r.source_id.as_str())).collect();
    assert!(with_household.len() >= 8, "{} rows name their 户", with_household.len());
    assert_eq!(households.len(), with_household.len(), "household messages on the topic, exactly");
    for (rec, payload) in with_household {
        let rc = by_id[rec.source_id.as_str()].receipts.iter().find(|r| r.entity == "household").unwrap();
        let m = households.iter().find(|m| m.partition == rc.partition && m.offset == rc.offset).unwrap();
        let v = m.value.as_ref().unwrap();
        let hh = format!("gongan:{}", payload["HH"].as_str().unwrap());
        assert_eq!(v["household_key"], hh);
        let fact = format!(r#"["{hh}","gongan","household_registration","{}"]"#, travelling(&rec.source_id));
        assert_eq!(m.key.as_deref(), Some(fact.as_str()));
        assert_eq!(m.partition, hutong_bus::partition_for(&hh, 3));
        let member = value_of(&rec.source_id);
        assert_eq!(v["members"][0]["person_key"], member["person_key"], "the member is the row's person");
        assert_eq!(member["household_key"], hh, "and the person names the household");
        let head = payload["HZ_GMSFHM"].as_str().unwrap().to_ascii_uppercase();
        assert_eq!(v["head_person_key"], expected_person_key(&head));
    }
    // The 陈 household: 户主, 妻, 子 in three facts of one partition.
    let chen: Vec<&Value> = households
        .iter()
        .filter_map(|m| m.value.as_ref())
        .filter(|v| v["household_key"] == "gongan:3301060040530001")
        .collect();
    let mut relations: Vec<&str> = chen.iter().map(|v| v["members"][0]["relation"].as_str().unwrap()).collect();
    relations.sort();
    assert_eq!(relations, ["02", "12", "20"], "户主, 妻 (by name), 子");

    // The dead-letter topic: original payload and reasons.
    let dlq = consume_all(&broker.bootstrap, "hutong.dlq.v1")?;
    assert_eq!(dlq.len(), REJECTED.len(), "dead letters on the topic, exactly");
    for id in REJECTED {
        let m = dlq.iter().find(|m| m.value.as_ref().unwrap()["source_id"] == id).expect("dlq message");
        let v = m.value.as_ref().unwrap();
        let original = &sample.iter().find(|(r, _)| r.source_id == id).unwrap().1;
        assert_eq!(&v["payload"]["json"], original);
        assert_eq!(v["department"], "gongan");
        assert_eq!(v["violations"].as_array().unwrap().len(), by_id[id].violations.len());
        assert_eq!(m.headers["ce_type"], "cn.hutong.dlq.rejected");
        assert_eq!(m.headers["ce_id"], by_id[id].receipts[0].event_id);
    }

    // A Confluent client (Python confluent-kafka) lists subjects and fetches
    // schemas from the running gateway, and ce_dataschema resolves there.
    let out = hutong_tests::run_python(
        "tests/python/registry_client.py",
        &[&gateway.registry_url, &persons[0].headers["ce_dataschema"]],
    )?;
    assert!(
        out.status.success(),
        "the Confluent client disagrees (needs `confluent-kafka[schemaregistry]` for {}; deploy/test.sh installs it):\n{}{}",
        hutong_tests::python(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // The published records again: every one answered DUPLICATE with its original receipts,
    // and nothing is published a second time (the topics' high watermarks do not move).
    let again: Vec<SourceRecord> =
        sample.iter().filter(|(r, _)| !REJECTED.contains(&r.source_id.as_str())).map(|(r, _)| r.clone()).collect();
    let resp = client.submit(request(SubmitRequest { batch_id: "b2".into(), records: again })).await?.into_inner();
    assert_eq!(resp.results.len(), published);
    for r in &resp.results {
        assert_eq!(r.status, Status::Duplicate as i32, "{}", r.source_id);
        assert_eq!(r.receipts, by_id[r.source_id.as_str()].receipts, "{}: the original receipts", r.source_id);
    }
    assert_eq!(topic_count(&broker.bootstrap, "hutong.person.v2")?, published as i64, "a DUPLICATE republished");
    assert_eq!(topic_count(&broker.bootstrap, "hutong.dlq.v1")?, REJECTED.len() as i64);

    // Prometheus metrics count what happened, by department, kind and outcome, and rejects by rule.
    let (code, metrics) = hutong_tests::http_get(&format!("{}/metrics", gateway.registry_url))?;
    assert_eq!(code, 200);
    for line in [
        format!(
            "hutong_records_total{{department=\"gongan\",kind=\"household_registration\",outcome=\"published\"}} {published}"
        ),
        format!(
            "hutong_records_total{{department=\"gongan\",kind=\"household_registration\",outcome=\"duplicate\"}} {published}"
        ),
        format!(
            "hutong_records_total{{department=\"gongan\",kind=\"household_registration\",outcome=\"rejected\"}} {}",
            REJECTED.len()
        ),
        "hutong_violations_total{rule=\"format:gb11643\"} 1".to_owned(),
        "hutong_records_in_flight 0".to_owned(),
    ] {
        assert!(metrics.lines().any(|l| l == line), "{line} missing from /metrics:\n{metrics}");
    }
    assert!(metrics.contains("hutong_batch_duration_seconds_bucket"), "{metrics}");

    // No raw citizen ID in the gateway's log, even at debug level.
    let log = gateway.log();
    assert!(log.contains("batch handled"), "gateway log:\n{log}");
    for (_, payload) in &sample {
        let raw = payload["GMSFHM"].as_str().unwrap();
        assert!(!log.contains(raw), "raw citizen ID in the gateway log");
    }
    Ok(())
}

/// Strings that are (or normalise to) a citizen ID or a mobile number, found anywhere in `v`.
fn collect_identifiers(v: &Value, out: &mut std::collections::BTreeSet<String>) {
    match v {
        Value::String(s) => {
            // Full-width digits as ASCII; spaces, dashes and `+` dropped; anything else means not an identifier.
            let digits: String = s
                .chars()
                .filter(|c| !matches!(c, ' ' | '-' | '+'))
                .map(|c| if ('０'..='９').contains(&c) { char::from(b'0' + (c as u32 - '０' as u32) as u8) } else { c })
                .collect();
            if !digits.chars().all(|c| c.is_ascii_digit() || c == 'X' || c == 'x') {
                return;
            }
            let mobile = digits.strip_prefix("86").unwrap_or(&digits);
            if digits.len() == 18 && gb11643_valid(&digits) {
                out.extend([s.clone(), digits.to_ascii_uppercase()]);
            } else if mobile.len() == 11 && mobile.starts_with('1') && mobile.chars().all(|c| c.is_ascii_digit()) {
                out.extend([s.clone(), mobile.to_owned()]);
            } else if digits.len() == 15 && digits.chars().all(|c| c.is_ascii_digit()) {
                // A legacy 15-digit ID (or a grid code: they look alike); the 18-digit form it becomes is the secret.
                let body = format!("{}19{}", &digits[..6], &digits[6..]);
                let check = hutong_standard::checks::gb11643_check_char(&body).expect("17 digits");
                out.insert(format!("{body}{check}"));
            }
        }
        Value::Array(a) => a.iter().for_each(|x| collect_identifiers(x, out)),
        Value::Object(o) => o.values().for_each(|x| collect_identifiers(x, out)),
        _ => {}
    }
}

/// Whether an 18-character string carries a citizen ID's check character (the birth date is not
/// checked: IDs with impossible dates are secrets too).
fn gb11643_valid(id: &str) -> bool {
    let id = id.to_ascii_uppercase();
    id.len() == 18 && hutong_standard::checks::gb11643_check_char(&id[..17]) == id[17..].chars().next()
}

/// The id of the test key, computed independently: `k` + 8 hex of HMAC(key, "hutong/key-id").
fn key_id() -> String {
    format!("k{}", &expected_person_key("hutong/key-id")[..8])
}

/// `YYYY-MM-DDTHH:MM:SS.mmmZ`.
fn chrono_like(s: &str) -> bool {
    s.len() == 24 && s.ends_with('Z') && s.as_bytes()[10] == b'T'
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn streaming_retries_keep_event_ids_and_reflection_lists_the_service() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let sample = sample()?;
    let batches: Vec<SubmitRequest> = sample
        .chunks(4)
        .enumerate()
        .map(|(i, c)| SubmitRequest { batch_id: format!("s{i}"), records: c.iter().map(|(r, _)| r.clone()).collect() })
        .collect();
    let mut client = IngestClient::new(gateway.channel("gongan").await?);
    let mut ids = Vec::new();
    for attempt in 0..2 {
        let mut stream = client.submit_stream(request(futures::stream::iter(batches.clone()))).await?.into_inner();
        let mut got = Vec::new();
        while let Some(resp) = stream.message().await? {
            got.push(resp);
        }
        assert_eq!(got.len(), batches.len(), "one response per request");
        for (i, resp) in got.iter().enumerate() {
            assert_eq!(resp.batch_id, format!("s{i}"), "responses keep request order");
        }
        let event_ids: Vec<String> =
            got.iter().flat_map(|r| &r.results).flat_map(|r| r.receipts.iter().map(|x| x.event_id.clone())).collect();
        let receipts: usize = got.iter().flat_map(|r| &r.results).map(|r| r.receipts.len()).sum();
        assert_eq!(event_ids.len(), receipts);
        assert!(receipts > sample.len(), "the rows that name their 户 give a household too");
        if attempt == 1 {
            assert_eq!(event_ids, ids, "a retried record carries the same event id");
        }
        ids = event_ids;
    }
    // The second attempt was answered DUPLICATE for every published record and put nothing new on
    // the person topic; rejects are not remembered, so their dead letters are there twice.
    let published = sample.len() - REJECTED.len();
    assert_eq!(topic_count(&broker.bootstrap, "hutong.person.v2")?, published as i64);
    assert_eq!(topic_count(&broker.bootstrap, "hutong.dlq.v1")?, 2 * REJECTED.len() as i64);

    // 卫健's certificate submitting 公安's kind: refused as a whole, PERMISSION_DENIED.
    let mut weijian = IngestClient::new(gateway.channel("weijian").await?);
    let err = weijian
        .submit(request(SubmitRequest { batch_id: String::new(), records: vec![sample[0].0.clone()] }))
        .await
        .unwrap_err();
    assert_eq!(err.code(), tonic::Code::PermissionDenied, "{err:?}");
    // No client certificate → UNAUTHENTICATED.
    let anonymous = hutong_tests::ClientAuth::from_pki(&gateway.pki, None);
    let mut anonymous = IngestClient::new(anonymous.connect(&gateway.endpoint).await?);
    let err =
        anonymous.submit(Request::new(SubmitRequest { batch_id: String::new(), records: vec![] })).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Server reflection lists the ingest service (what grpcurl uses).
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let channel = gateway.channel("gongan").await?;
    let mut refl = ServerReflectionClient::new(channel);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let mut resp = refl.server_reflection_info(futures::stream::iter([req])).await?.into_inner();
    let Some(MessageResponse::ListServicesResponse(list)) = resp.message().await?.and_then(|r| r.message_response)
    else {
        anyhow::bail!("no list-services answer");
    };
    let names: Vec<String> = list.service.into_iter().map(|s| s.name).collect();
    assert!(names.contains(&"hutong.v1.Ingest".to_owned()), "{names:?}");
    assert!(names.contains(&"grpc.health.v1.Health".to_owned()), "{names:?}");
    // Without a client certificate, reflection is refused like everything but health.
    let anonymous = hutong_tests::ClientAuth::from_pki(&gateway.pki, None);
    let mut refl = ServerReflectionClient::new(anonymous.connect(&gateway.endpoint).await?);
    let req = ServerReflectionRequest {
        host: String::new(),
        message_request: Some(MessageRequest::ListServices(String::new())),
    };
    let err = refl.server_reflection_info(futures::stream::iter([req])).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gateway_stops_gracefully_on_sigterm() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let mut gateway = Gateway::start(&broker.bootstrap).await?;
    let status = gateway.process.terminate()?;
    assert!(status.success(), "exit status {status}; log:\n{}", gateway.log());
    assert!(gateway.log().contains("gateway stopped"));
    Ok(())
}

/// Every department's sample export flows through the running gateway as
/// that department: what the dry run accepts is published on the standard
/// topics, and every record it rejects lands in the dead-letter topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_department_sample_flows_end_to_end() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let mut samples: Vec<std::path::PathBuf> = Vec::new();
    for dept in std::fs::read_dir(repo_root().join("schemas/departments"))? {
        let dir = dept?.path().join("samples");
        for f in std::fs::read_dir(&dir).into_iter().flatten() {
            samples.push(f?.path());
        }
    }
    samples.sort();
    assert!(samples.len() >= 15, "samples of ten departments: {samples:?}");
    let bin = hutong_tests::hutong_bin()?;
    let mut departments = std::collections::BTreeSet::new();
    let (mut rejected, mut per_topic) = (0usize, BTreeMap::<String, usize>::new());
    // Every citizen ID and mobile number in the samples, as written and as normalised.
    let mut secrets = std::collections::BTreeSet::new();
    // The payloads as decoded from their charsets: the IDs inside GBK exports (`payload_base64`) too.
    let mut gbk = Vec::new();
    for sample in &samples {
        let path = sample.strip_prefix(repo_root())?.to_str().unwrap().to_owned();
        collect_identifiers(
            &serde_json::from_str(&format!("[{}]", std::fs::read_to_string(sample)?.trim().replace('\n', ",")))?,
            &mut secrets,
        );
        for (rec, payload) in hutong_tests::sample_records(&path)? {
            collect_identifiers(&payload, &mut secrets);
            if rec.charset.eq_ignore_ascii_case("gbk") {
                gbk.push((rec.source_id, payload));
            }
        }
    }
    assert!(secrets.len() > 100, "{} identifiers found in the samples", secrets.len());
    assert!(gbk.len() >= 4, "GBK records in the samples: {}", gbk.len());
    let gbk_ids: std::collections::BTreeSet<String> = {
        let mut ids = std::collections::BTreeSet::new();
        for (_, payload) in &gbk {
            collect_identifiers(payload, &mut ids);
        }
        ids
    };
    assert!(!gbk_ids.is_empty(), "the GBK samples carry citizen IDs or phones");
    assert!(gbk_ids.is_subset(&secrets));
    // What each GBK record became: (source_id) → its published person's receipt.
    let mut gbk_receipts: BTreeMap<String, (String, i32, i64)> = BTreeMap::new();
    for sample in &samples {
        let dept = sample.parent().unwrap().parent().unwrap().file_name().unwrap().to_str().unwrap().to_owned();
        let kind = sample.file_stem().unwrap().to_str().unwrap().to_owned();
        departments.insert(dept.clone());
        let run = |args: &[&str]| {
            std::process::Command::new(&bin)
                .args(args)
                .current_dir(repo_root())
                .env("HUTONG_PSEUDONYM_KEY", hutong_tests::TEST_KEY)
                .output()
        };
        let path = sample.to_str().unwrap();
        let dry = run(&["validate", "-d", &dept, "-k", &kind, path])?;
        let mut args = vec!["ingest", "-k", &kind, "--json", path];
        let connect = gateway.cli_args(&dept);
        args.extend(connect.iter().map(String::as_str));
        let live = run(&args)?;
        assert!(live.status.success(), "{dept}/{kind}: {}", String::from_utf8_lossy(&live.stderr));
        let dry: Vec<Value> =
            String::from_utf8(dry.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        let live: Vec<Value> =
            String::from_utf8(live.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
        assert_eq!(dry.len(), live.len(), "{dept}/{kind}");
        let mut kind_rejects = 0;
        for (d, l) in dry.iter().zip(&live) {
            let expected = if d["status"] == "VALID" { "PUBLISHED" } else { "REJECTED" };
            assert_eq!(l["status"], expected, "{dept}/{kind} line {}: {l}", l["line"]);
            if expected == "REJECTED" {
                kind_rejects += 1;
                assert_eq!(l["receipts"][0]["topic"], "hutong.dlq.v1");
            } else {
                for (rec, receipt) in d["records"].as_array().unwrap().iter().zip(l["receipts"].as_array().unwrap()) {
                    assert_eq!(rec["topic"], receipt["topic"]);
                    assert_eq!(rec["event_id"], receipt["event_id"]);
                    *per_topic.entry(rec["topic"].as_str().unwrap().to_owned()).or_default() += 1;
                    let source_id = l["source_id"].as_str().unwrap();
                    if receipt["entity"] == "person" && gbk.iter().any(|(id, _)| id == source_id) {
                        let at = (
                            receipt["topic"].as_str().unwrap().to_owned(),
                            receipt["partition"].as_i64().unwrap() as i32,
                            receipt["offset"].as_i64().unwrap(),
                        );
                        gbk_receipts.insert(source_id.to_owned(), at);
                    }
                }
            }
        }
        assert!(kind_rejects >= 1, "{dept}/{kind}: the sample holds records that must be rejected");
        rejected += kind_rejects;
    }
    assert_eq!(departments.len(), 10, "{departments:?}");
    // What an independent consumer sees on each topic.
    // No citizen ID or mobile number of any sample on a shared topic: pseudonymised or masked.
    // Value, key and every header are scanned.
    let mut on_topics: BTreeMap<(String, i32, i64), Value> = BTreeMap::new();
    // Per topic: the distinct fact keys and entity keys (the samples hold no DELETE).
    let mut keys: BTreeMap<String, (BTreeSet<String>, BTreeSet<String>)> = BTreeMap::new();
    for (topic, n) in &per_topic {
        let got = consume_all(&broker.bootstrap, topic)?;
        assert_eq!(got.len(), *n, "{topic}: messages on the topic, exactly");
        for m in got {
            let fact: Vec<String> = serde_json::from_str(m.key.as_deref().unwrap())?;
            let entry = keys.entry(topic.clone()).or_default();
            entry.0.insert(m.key.clone().unwrap());
            entry.1.insert(fact[0].clone());
            let headers: Vec<String> = m.headers.iter().map(|(k, v)| format!("{k}={v}")).collect();
            let text = format!(
                "{} {} {}",
                m.value.as_ref().map(Value::to_string).unwrap_or_default(),
                m.key.as_deref().unwrap_or_default(),
                headers.join(" ")
            );
            let leaked: Vec<&String> = secrets.iter().filter(|s| text.contains(s.as_str())).collect();
            assert!(leaked.is_empty(), "{topic} carries {leaked:?}: {text}");
            if let Some(v) = m.value {
                on_topics.insert((m.topic, m.partition, m.offset), v);
            }
        }
    }
    // GBK exports as a consumer reads them: the decoded Chinese values, keyed by the normalised ID.
    assert!(!gbk_receipts.is_empty(), "GBK records were published as persons");
    for (source_id, at) in &gbk_receipts {
        let payload = &gbk.iter().find(|(id, _)| id == source_id).unwrap().1;
        let value = on_topics.get(at).unwrap_or_else(|| panic!("{source_id}: no message at {at:?}"));
        let name = payload["XM"].as_str().or(payload["XFR_XM"].as_str()).expect("a GBK sample names its person");
        assert_eq!(value["name"], name.trim(), "{source_id}: decoded from GBK");
        assert!(value["name"].as_str().unwrap().chars().all(|c| !c.is_ascii() && c != '\u{fffd}'), "{value}");
        let id = payload["ZJHM"].as_str().or(payload["XFR_ZJHM"].as_str()).map(|i| i.trim().to_ascii_uppercase());
        if let Some(id) = id.filter(|i| i.len() == 18) {
            assert_eq!(value["person_key"], expected_person_key(&id), "{source_id}: keyed on the decoded ID");
        }
    }
    let dlq = consume_all(&broker.bootstrap, "hutong.dlq.v1")?;
    assert_eq!(dlq.len(), rejected, "dead letters on the topic, exactly");
    // Every topic of the plan, counted by `hutong topics check --counts`: each entity topic holds
    // what was published on it, none is empty, the DLQ holds the rejects, the audit copy its entries.
    let config = gateway.dir.path().join("hutong.toml").display().to_string();
    let check = std::process::Command::new(&bin)
        .args(["topics", "check", "--counts", "--require-messages", "--json", "--config", &config])
        .current_dir(repo_root())
        .output()?;
    assert!(
        check.status.success(),
        "{}{}",
        String::from_utf8_lossy(&check.stdout),
        String::from_utf8_lossy(&check.stderr)
    );
    let check: Value = serde_json::from_slice(&check.stdout)?;
    let counts = check["counts"].as_object().unwrap();
    assert_eq!(counts.len(), 10, "eight entity topics, the DLQ and the audit topic: {counts:?}");
    for (topic, n) in counts {
        match topic.as_str() {
            "hutong.dlq.v1" => assert_eq!(n.as_u64(), Some(rejected as u64)),
            "hutong.audit.v1" => assert!(n.as_u64().unwrap() > 0, "{topic}"),
            _ => assert_eq!(n.as_u64(), per_topic.get(topic).map(|n| *n as u64), "{topic}: fed by the samples"),
        }
    }
    // The consuming guide's Python example (confluent-kafka) rebuilds the same state, and the whole
    // picture of 胡金凤, a resident the samples of 公安, 卫健 and 住建 describe: her facts from each
    // department, her 户 with her relation (02 户主), her dwelling and its 网格.
    let hu = hutong_tests::expected_person_key("330106194803080242");
    let out = hutong_tests::run_python(
        "docs/examples/python/rebuild_state.py",
        &["--bootstrap", &broker.bootstrap, "--person", &hu, "--json"],
    )?;
    assert!(
        out.status.success(),
        "rebuild_state.py ({}): {}",
        hutong_tests::python(),
        String::from_utf8_lossy(&out.stderr)
    );
    let rebuilt: Value = serde_json::from_slice(&out.stdout)?;
    for (topic, (facts, entities)) in &keys {
        let t = &rebuilt["topics"][topic];
        assert_eq!(t["messages"].as_u64(), Some(per_topic[topic] as u64), "{topic}: {t}");
        assert_eq!(t["duplicates"], 0, "{topic}");
        assert_eq!(t["facts"].as_u64(), Some(facts.len() as u64), "{topic}: {t}");
        assert_eq!(t["entities"].as_u64(), Some(entities.len() as u64), "{topic}: {t}");
    }
    let person = &rebuilt["person"];
    let departments: BTreeSet<&str> =
        person["facts"].as_array().unwrap().iter().map(|f| f["department"].as_str().unwrap()).collect();
    assert_eq!(departments, BTreeSet::from(["gongan", "minzheng", "renshe", "weijian"]), "{person}");
    assert!(person["facts"].as_array().unwrap().iter().all(|f| f["value"]["name"] == "胡金凤"), "{person}");
    assert_eq!(person["households"][0]["relation"], "02", "{person}");
    assert_eq!(person["households"][0]["household_key"], "gongan:3301060040530021", "{person}");
    assert!(person["buildings"][0]["room"].as_str().unwrap().contains("302"), "{person}");
    assert!(person["grids"][0]["grid_code"].as_str().unwrap().starts_with("330106004053"), "{person}");
    // Nor in the gateway's log, at debug level.
    let log = gateway.log();
    assert!(log.contains("batch handled"), "{log}");
    let leaked: Vec<&String> = secrets.iter().filter(|s| log.contains(s.as_str())).collect();
    assert!(leaked.is_empty(), "the gateway log holds {leaked:?}");
    println!("published per topic: {per_topic:?}; rejected into the DLQ: {rejected}");
    Ok(())
}

/// `hutong bench --mix default`: every shipped kind in its weight, each department on its own
/// certificate; the gateway counts each department's records as published under that department,
/// and the raw baseline publishes the same number of records.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bench_on_the_default_mix_publishes_every_department_as_itself() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let out = std::process::Command::new(hutong_tests::hutong_bin()?)
        .args(["bench", "--mix", "default", "--records", "400", "--batch", "20", "--concurrency", "2"])
        .arg("--config")
        .arg(gateway.dir.path().join("hutong.toml"))
        .args(gateway.cli_args("gongan"))
        .env("HUTONG_PSEUDONYM_KEY", hutong_tests::TEST_KEY)
        .output()?;
    let stdout = String::from_utf8(out.stdout)?;
    assert!(out.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&out.stderr));
    assert!(stdout.contains(": 400 records of"), "all 400 through the gateway: {stdout}");
    assert!(stdout.contains("raw producer (same canonical records, same producer settings): 400 ("), "{stdout}");
    let counted = |dept: &str, kind: &str| -> anyhow::Result<f64> {
        let sample = format!("hutong_records_total{{department=\"{dept}\",kind=\"{kind}\",outcome=\"published\"}}");
        Ok(gateway.metric(&sample)?.unwrap_or(0.0))
    };
    // 30 % of 400 are 12345 tickets, 25 % patrol reports, 1 % building registers.
    assert_eq!(counted("rexian", "hotline_ticket")?, 120.0);
    assert_eq!(counted("wangge", "patrol_report")?, 100.0);
    assert_eq!(counted("zhujian", "building_register")?, 4.0);
    assert_eq!(counted("gongan", "hotline_ticket")?, 0.0, "no department submits for another");
    // Without a department's certificate the mix is refused before anything is sent.
    let lonely = tempfile::tempdir()?;
    std::fs::copy(gateway.pki.join("ca.pem"), lonely.path().join("ca.pem"))?;
    for ext in ["pem", "key"] {
        std::fs::copy(gateway.pki.join(format!("gongan.{ext}")), lonely.path().join(format!("gongan.{ext}")))?;
    }
    let out = std::process::Command::new(hutong_tests::hutong_bin()?)
        .args(["bench", "--mix", "gongan/household_registration=1,rexian/hotline_ticket=1", "--records", "10"])
        .arg("--config")
        .arg(gateway.dir.path().join("hutong.toml"))
        .args(hutong_tests::cli_args(&gateway.endpoint, lonely.path(), "gongan"))
        .env("HUTONG_PSEUDONYM_KEY", hutong_tests::TEST_KEY)
        .output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success());
    assert!(stderr.contains("rexian.pem is missing"), "{stderr}");
    assert_eq!(counted("gongan", "household_registration")?, 32.0, "nothing more was sent");
    Ok(())
}
