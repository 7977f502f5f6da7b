//! End to end, as real processes: tansu (memory storage) and `hutong serve`;
//! the sample 公安 household-registration export submitted over gRPC; an
//! independent Kafka consumer checks value, key and every CloudEvents header,
//! and the dead-letter topic.

use std::{collections::BTreeMap, time::Duration};

use hutong_proto::v1::{Op, RecordResult, SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::{Broker, Gateway, consume, expected_person_key, repo_root};
use serde_json::{Value, json};
use tonic::Request;

const PERSON_SCHEMA_ID: &str = "https://schemas.hutong.dev/standard/v1/person.json";

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
        assert_eq!(h["ce_dataschema"], PERSON_SCHEMA_ID);
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
