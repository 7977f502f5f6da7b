//! End to end, as real processes: tansu (memory storage) and `hutong serve`;
//! the sample 公安 household-registration export submitted over gRPC; an
//! independent Kafka consumer checks value, key and every CloudEvents header,
//! and the dead-letter topic.

use std::{collections::BTreeMap, time::Duration};

use hutong_proto::v1::{Op, RecordResult, SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::{Broker, Gateway, consume, expected_person_key, repo_root};
use serde_json::{Value, json};
use tonic::Request;

fn sample() -> anyhow::Result<Vec<(SourceRecord, Value)>> {
    let path = repo_root().join("schemas/departments/gongan/samples/household_registration.ndjson");
    let mut out = Vec::new();
    for line in std::fs::read_to_string(path)?.lines().filter(|l| !l.trim().is_empty()) {
        let v: Value = serde_json::from_str(line)?;
        let rec = SourceRecord {
            kind: "household_registration".into(),
            source_id: v["source_id"].as_str().unwrap().into(),
            revision: v["revision"].as_u64().unwrap(),
            op: Op::Upsert as i32,
            occurred_at: None,
            payload: serde_json::to_vec(&v["payload"])?,
            charset: String::new(),
        };
        out.push((rec, v["payload"].clone()));
    }
    Ok(out)
}

fn request<T>(body: T, department: &str) -> Request<T> {
    let mut r = Request::new(body);
    r.metadata_mut().insert("x-hutong-department", department.parse().unwrap());
    r
}

/// Global id of the latest person schema, as `schemas/registry/registry.json` says.
fn person_schema_id() -> u64 {
    let text = std::fs::read_to_string(repo_root().join("schemas/registry/registry.json")).unwrap();
    let reg: Value = serde_json::from_str(&text).unwrap();
    let versions = reg["subjects"]["hutong.person.v1-value"]["versions"].as_array().unwrap();
    versions.last().unwrap()["id"].as_u64().unwrap()
}

const REJECTED: [&str; 3] = ["HJ2024900", "HJ2024901", "HJ2024902"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn household_records_reach_kafka_as_cloudevents_and_rejects_reach_the_dlq() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let sample = sample()?;
    let mut client = IngestClient::connect(gateway.endpoint.clone()).await?;
    let resp = client
        .submit(request(
            SubmitRequest { batch_id: "b1".into(), records: sample.iter().map(|(r, _)| r.clone()).collect() },
            "gongan",
        ))
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
        assert_eq!(r.receipts.len(), 1);
    }
    let rules = |id: &str| -> Vec<(String, String)> {
        by_id[id].violations.iter().map(|v| (v.pointer.clone(), v.rule.clone())).collect()
    };
    assert_eq!(rules("HJ2024900"), [("/citizen_id".to_owned(), "format:gb11643".to_owned())]);
    let r901 = rules("HJ2024901");
    for expected in [("/sex", "adapter:code"), ("/ethnicity", "adapter:code"), ("/birth_date", "adapter:date")] {
        assert!(r901.contains(&(expected.0.to_owned(), expected.1.to_owned())), "{r901:?} lacks {expected:?}");
    }
    assert!(rules("HJ2024902").iter().any(|(_, rule)| rule == "required"), "{:?}", rules("HJ2024902"));

    // The person topic, read by an independent consumer.
    let published = sample.len() - REJECTED.len();
    let persons = consume(&broker.bootstrap, "hutong.person.v1", published, Duration::from_secs(30))?;
    assert_eq!(persons.len(), published, "person messages consumed");
    for (rec, payload) in sample.iter().filter(|(r, _)| !REJECTED.contains(&r.source_id.as_str())) {
        let result = by_id[rec.source_id.as_str()];
        let receipt = &result.receipts[0];
        let msg = persons
            .iter()
            .find(|m| m.partition == receipt.partition && m.offset == receipt.offset)
            .unwrap_or_else(|| panic!("no message at the receipt of {}", rec.source_id));
        let value = msg.value.as_ref().expect("a value");
        let citizen_id = value["citizen_id"].as_str().unwrap();
        let raw_id = payload["GMSFHM"].as_str().unwrap();
        assert_eq!(citizen_id.len(), 18);
        // Key: keyed HMAC of the normalised ID; the raw number is in no key or header.
        let key = expected_person_key(citizen_id);
        assert_eq!(msg.key.as_deref(), Some(key.as_str()));
        assert_eq!(value["person_key"], json!(key));
        for (h, v) in &msg.headers {
            assert!(!v.contains(citizen_id) && !v.contains(raw_id), "header {h} carries the citizen ID");
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
        let rc = &by_id[id].receipts[0];
        persons.iter().find(|m| m.offset == rc.offset && m.partition == rc.partition).unwrap().value.clone().unwrap()
    };
    let zhou = value_of("HJ2024100");
    assert_eq!(zhou["citizen_id"], "320102198808081237");
    assert_eq!(zhou["birth_date"], "1988-08-08");
    assert_eq!(zhou["ethnicity"], "01");
    assert_eq!(zhou["sex"], "1");
    assert_eq!(value_of("HJ2024003")["ethnicity"], "01", "汉族 by name");
    assert_eq!(value_of("HJ2024004")["ethnicity"], "03", "回 by alias");
    assert_eq!(value_of("HJ2024101")["citizen_id"], "420106197503120412", "15-digit ID converted");

    // The dead-letter topic: original payload and reasons.
    let dlq = consume(&broker.bootstrap, "hutong.dlq.v1", REJECTED.len(), Duration::from_secs(30))?;
    assert_eq!(dlq.len(), REJECTED.len());
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
    let python = std::env::var("HUTONG_PYTHON").unwrap_or_else(|_| "python3".to_owned());
    let out = std::process::Command::new(&python)
        .arg(repo_root().join("tests/python/registry_client.py"))
        .arg(&gateway.registry_url)
        .arg(&persons[0].headers["ce_dataschema"])
        .output()?;
    assert!(
        out.status.success(),
        "the Confluent client disagrees (needs `confluent-kafka[schemaregistry]` for {python}; deploy/test.sh installs it):\n{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );

    // Prometheus metrics count what happened, by department, kind and outcome, and rejects by rule.
    let (code, metrics) = hutong_tests::http_get(&format!("{}/metrics", gateway.registry_url))?;
    assert_eq!(code, 200);
    let published = sample.len() - REJECTED.len();
    for line in [
        format!(
            "hutong_records_total{{department=\"gongan\",kind=\"household_registration\",outcome=\"published\"}} {published}"
        ),
        "hutong_records_total{department=\"gongan\",kind=\"household_registration\",outcome=\"rejected\"} 3".to_owned(),
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
    let mut client = IngestClient::connect(gateway.endpoint.clone()).await?;
    let mut ids = Vec::new();
    for attempt in 0..2 {
        let mut stream =
            client.submit_stream(request(futures::stream::iter(batches.clone()), "gongan")).await?.into_inner();
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
        assert_eq!(event_ids.len(), sample.len());
        if attempt == 1 {
            assert_eq!(event_ids, ids, "a retried record carries the same event id");
        }
        ids = event_ids;
    }

    // A department without an adapter for the kind is rejected per record, not crashed.
    let resp = client
        .submit(request(SubmitRequest { batch_id: String::new(), records: vec![sample[0].0.clone()] }, "weijian"))
        .await?
        .into_inner();
    assert_eq!(resp.results[0].status, Status::Rejected as i32);
    assert_eq!(resp.results[0].violations[0].rule, "record:kind");
    // No department → UNAUTHENTICATED.
    let err =
        client.submit(Request::new(SubmitRequest { batch_id: String::new(), records: vec![] })).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::Unauthenticated);

    // Server reflection lists the ingest service (what grpcurl uses).
    use tonic_reflection::pb::v1::{
        ServerReflectionRequest, server_reflection_client::ServerReflectionClient,
        server_reflection_request::MessageRequest, server_reflection_response::MessageResponse,
    };
    let channel = tonic::transport::Endpoint::from_shared(gateway.endpoint.clone())?.connect().await?;
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
    assert!(samples.len() >= 10, "samples of nine departments: {samples:?}");
    let bin = hutong_tests::hutong_bin()?;
    let mut departments = std::collections::BTreeSet::new();
    let (mut rejected, mut per_topic) = (0usize, BTreeMap::<String, usize>::new());
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
        let live = run(&["ingest", "-d", &dept, "-k", &kind, "--addr", &gateway.endpoint, "--json", path])?;
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
                }
            }
        }
        assert!(kind_rejects >= 1, "{dept}/{kind}: the sample holds records that must be rejected");
        rejected += kind_rejects;
    }
    assert_eq!(departments.len(), 9, "{departments:?}");
    // What an independent consumer sees on each topic.
    for (topic, n) in &per_topic {
        let got = consume(&broker.bootstrap, topic, *n, Duration::from_secs(30))?;
        assert_eq!(got.len(), *n, "{topic}");
    }
    let dlq = consume(&broker.bootstrap, "hutong.dlq.v1", rejected, Duration::from_secs(30))?;
    assert_eq!(dlq.len(), rejected);
    println!("published per topic: {per_topic:?}; rejected into the DLQ: {rejected}");
    Ok(())
}
