//! A running gateway and its signals, as real processes: SIGHUP applies a
//! revoked certificate, a policy change and a changed adapter to what comes
//! next (and refuses a broken file, keeping the working one); SIGTERM with a
//! batch in flight answers the batch and leaves its records in Kafka.

use std::{process::Command, time::Duration};

use hutong_proto::v1::{SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::{
    Broker, ClientAuth, Gateway, Setup, consume_all, hutong_bin, make_pki, repo_root, sample_records, topic_count,
};
use serde_json::Value;
use tonic::{Code, Request};

fn batch(recs: &[(SourceRecord, Value)]) -> SubmitRequest {
    SubmitRequest { batch_id: "sig".into(), records: recs.iter().map(|(r, _)| r.clone()).collect() }
}

/// Connects as `identity` on a new connection and submits `req`: OK, the error code, or
/// UNAVAILABLE when the handshake itself is refused.
async fn submit_code(gateway: &Gateway, identity: &str, req: SubmitRequest) -> Code {
    match ClientAuth::from_pki(&gateway.pki, Some(identity)).connect(&gateway.endpoint).await {
        Ok(ch) => match IngestClient::new(ch).submit(Request::new(req)).await {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        },
        Err(_) => Code::Unavailable,
    }
}

const RELOADED: &str = "SIGHUP: policy and TLS files reloaded";
const REFUSED: &str = "SIGHUP: policy or TLS files refused";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_applies_a_revocation_and_a_policy_change_and_refuses_a_broken_policy() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let pki = work.path().join("pki");
    make_pki(&pki)?;
    let policy = work.path().join("policy.toml");
    let original = std::fs::read_to_string(repo_root().join("deploy/local/policy.toml"))?;
    std::fs::write(&policy, &original)?;
    let broker = Broker::start()?;
    let setup = Setup { pki: pki.clone(), policy: policy.clone(), ..Setup::new()? };
    let gateway = Gateway::start_setup(&broker.bootstrap, setup).await?;
    let patrol = sample_records("schemas/departments/wangge/samples/patrol_report.ndjson")?;
    let household = sample_records("schemas/departments/gongan/samples/household_registration.ndjson")?;
    let care = sample_records("schemas/departments/minzheng/samples/elderly_care.ndjson")?;

    // Before: 网格 submits on a connection it keeps open.
    let mut open = IngestClient::new(gateway.channel("wangge").await?);
    let resp = open.submit(Request::new(batch(&patrol[..1]))).await?.into_inner();
    assert_eq!(resp.results[0].status, Status::Published as i32, "{resp:?}");
    assert_eq!(submit_code(&gateway, "minzheng", batch(&care[..1])).await, Code::Ok);

    // 网格's certificate is revoked and the gateway told: a new connection with it is refused
    // (audited as Revoked); other departments go on; the open connection keeps its identity.
    let out = Command::new(hutong_bin()?).args(["certs", "revoke", "--dir"]).arg(&pki).arg("wangge").output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    gateway.hangup()?;
    gateway.wait_log(RELOADED, 1, Duration::from_secs(20))?;
    let code = submit_code(&gateway, "wangge", batch(&patrol[1..2])).await;
    // TLS 1.3: the client may send before it learns of the refusal, so the call fails at the
    // transport (UNAVAILABLE, UNKNOWN or CANCELLED); the audit entry says why.
    assert!(matches!(code, Code::Unavailable | Code::Unknown | Code::Cancelled), "a refused handshake, got {code:?}");
    gateway.audited("the revoked handshake", |e| {
        e["action"] == "connect" && e["reason"].as_str().is_some_and(|r| r.contains("Revoked"))
    })?;
    assert_eq!(submit_code(&gateway, "gongan", batch(&household[..1])).await, Code::Ok);
    let resp = open.submit(Request::new(batch(&patrol[2..3]))).await?.into_inner();
    assert_eq!(resp.results[0].status, Status::Published as i32, "an open connection keeps its identity");

    // A policy change: 民政 may no longer submit elderly_care.
    let narrowed = original.replace("kinds = [\"elderly_care\", \"service_facility\"", "kinds = [\"service_facility\"");
    assert_ne!(narrowed, original, "the policy line is where this test expects it");
    std::fs::write(&policy, &narrowed)?;
    gateway.hangup()?;
    gateway.wait_log(RELOADED, 2, Duration::from_secs(20))?;
    assert_eq!(submit_code(&gateway, "minzheng", batch(&care[1..2])).await, Code::PermissionDenied);

    // A broken policy file is refused at SIGHUP; the policy in force stays.
    std::fs::write(&policy, narrowed.replace("version = 1", "version = 1\ncolour = \"red\""))?;
    gateway.hangup()?;
    gateway.wait_log(REFUSED, 1, Duration::from_secs(20))?;
    assert!(gateway.log().contains("colour"), "the refusal names the bad key");
    assert_eq!(submit_code(&gateway, "minzheng", batch(&care[1..2])).await, Code::PermissionDenied);
    assert_eq!(submit_code(&gateway, "gongan", batch(&household[1..2])).await, Code::Ok);
    assert_eq!(gateway.log().matches(RELOADED).count(), 2, "the broken file did not count as a reload");
    Ok(())
}

/// The generation and the failure of hot reloads, as `/metrics` shows them: a broken adapter
/// is refused (the working one serves), a fixed one is taken.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reload_metrics_follow_a_refused_and_a_taken_adapter_change() -> anyhow::Result<()> {
    let work = tempfile::tempdir()?;
    let schemas = work.path().join("schemas");
    assert!(Command::new("cp").arg("-r").arg(repo_root().join("schemas")).arg(&schemas).status()?.success());
    let broker = Broker::start()?;
    let setup = Setup { schemas: schemas.clone(), ..Setup::new()? };
    let gateway = Gateway::start_setup(&broker.bootstrap, setup).await?;
    let t = Duration::from_secs(20);
    gateway.wait_metric("hutong_reload_generation", 1.0, t)?;
    gateway.wait_metric("hutong_reload_failed", 0.0, t)?;

    let adapter = schemas.join("departments/gongan/household_registration.toml");
    let good = std::fs::read_to_string(&adapter)?;
    std::fs::write(&adapter, good.replace("to = \"/name\"", "to = \"/nickname\""))?;
    gateway.hangup()?;
    gateway.wait_metric("hutong_reload_failed", 1.0, t)?;
    assert_eq!(gateway.metric("hutong_reload_generation")?, Some(1.0));
    let household = sample_records("schemas/departments/gongan/samples/household_registration.ndjson")?;
    let mut client = IngestClient::new(gateway.channel("gongan").await?);
    let resp = client.submit(Request::new(batch(&household[..1]))).await?.into_inner();
    assert_eq!(resp.results[0].status, Status::Published as i32, "the working adapter serves");

    std::fs::write(&adapter, good.replace("公安 户籍人口信息\"", "公安 户籍人口信息（新）\""))?;
    gateway.hangup()?;
    gateway.wait_metric("hutong_reload_failed", 0.0, t)?;
    let generation = gateway.metric("hutong_reload_generation")?.unwrap_or_default();
    assert!(generation >= 2.0, "generation {generation}");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_with_a_batch_in_flight_answers_it_and_its_records_are_in_kafka() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let mut gateway = Gateway::start(&broker.bootstrap).await?;
    let household = sample_records("schemas/departments/gongan/samples/household_registration.ndjson")?;
    let valid: Vec<(SourceRecord, Value)> =
        // The first ten rows are valid and name no 户: one person message each.
        household.into_iter().take(10).filter(|(_, p)| p.get("HH").is_none()).collect();
    assert_eq!(valid.len(), 10, "valid sample rows without a household");
    let mut client = IngestClient::new(gateway.channel("gongan").await?);
    // Warm up: the producer knows the topics and the broker.
    let warm = client.submit(Request::new(batch(&valid[..1]))).await?.into_inner();
    assert_eq!(warm.results[0].status, Status::Published as i32);

    // The broker is frozen, so the next batch stays in flight inside the gateway.
    broker.process.signal("STOP")?;
    let rest = valid[1..].to_vec();
    let call = tokio::spawn(async move { client.submit(Request::new(batch(&rest))).await });
    let n = (valid.len() - 1) as f64;
    let in_flight = gateway.wait_metric("hutong_records_in_flight", n, Duration::from_secs(20));
    if in_flight.is_err() {
        broker.process.signal("CONT")?;
    }
    in_flight?;
    gateway.process.signal("TERM")?;
    gateway.wait_log("shutdown requested", 1, Duration::from_secs(20))?;
    broker.process.signal("CONT")?;

    let resp = call.await??.into_inner();
    assert_eq!(resp.results.len(), valid.len() - 1);
    assert!(resp.results.iter().all(|r| r.status == Status::Published as i32), "{resp:?}");
    let status = gateway.process.wait()?;
    assert!(status.success(), "exit status {status}; log:\n{}", gateway.log());
    assert!(gateway.log().contains("gateway stopped"));
    let on_topic = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    assert_eq!(on_topic.len(), valid.len(), "the warm-up record and the batch in flight, exactly");
    for r in &resp.results {
        let rc = &r.receipts[0];
        let m = on_topic.iter().find(|m| m.partition == rc.partition && m.offset == rc.offset);
        assert_eq!(m.map(|m| m.headers["ce_id"].as_str()), Some(rc.event_id.as_str()), "{}", r.source_id);
    }
    assert_eq!(topic_count(&broker.bootstrap, "hutong.person.v2")?, valid.len() as i64);
    Ok(())
}
