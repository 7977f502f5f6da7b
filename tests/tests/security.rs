//! The security model end to end, with real processes: mTLS identity,
//! deny-by-default authorisation, per-topic protection of personal fields,
//! and the hash-chained audit trail (file and topic).

use std::{path::Path, process::Command, time::Duration};

use anyhow::Context as _;
use hutong_proto::v1::{
    ListSchemasRequest, SourceRecord, Status, SubmitRequest, ValidateRecordRequest, admin_client::AdminClient,
    ingest_client::IngestClient,
};
use hutong_tests::{
    Broker, ClientAuth, Gateway, consume_all, hutong_bin, make_pki, repo_root, sample_records, wait_for_count,
};
use serde_json::{Value, json};
use tonic::{Code, Request};

fn batch(recs: &[(SourceRecord, Value)]) -> SubmitRequest {
    SubmitRequest { batch_id: "sec".into(), records: recs.iter().map(|(r, _)| r.clone()).collect() }
}

/// Connects with `auth` and submits `req`: the error code, or OK.
async fn submit_code(auth: &ClientAuth, endpoint: &str, req: SubmitRequest) -> Code {
    match auth.connect(endpoint).await {
        Ok(ch) => match IngestClient::new(ch).submit(Request::new(req)).await {
            Ok(_) => Code::Ok,
            Err(s) => s.code(),
        },
        // A refused handshake can surface at connect time.
        Err(_) => Code::Unavailable,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_refusal_has_the_right_code_and_is_audited() -> anyhow::Result<()> {
    let pki = tempfile::tempdir()?;
    make_pki(pki.path())?;
    // 网格's certificate is revoked before the gateway starts (it reads crl.pem).
    let out = Command::new(hutong_bin()?).args(["certs", "revoke", "--dir"]).arg(pki.path()).arg("wangge").output()?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let other_ca = tempfile::tempdir()?;
    make_pki(other_ca.path())?;

    let broker = Broker::start()?;
    let gateway = Gateway::start_with(&broker.bootstrap, pki.path(), &repo_root().join("schemas"), "").await?;
    let household = sample_records("schemas/departments/gongan/samples/household_registration.ndjson")?;
    let ep = &gateway.endpoint;

    // The department's own kind, with its own certificate: published, and audited with the event ids.
    let mut gongan = IngestClient::new(gateway.channel("gongan").await?);
    let resp = gongan.submit(Request::new(batch(&household[..2]))).await?.into_inner();
    assert!(resp.results.iter().all(|r| r.status == Status::Published as i32), "{resp:?}");
    let entry = gateway.audited("the submission", |e| e["type"] == "submit")?;
    assert_eq!(entry["principal"], "gongan");
    assert_eq!(entry["kinds"], json!({"household_registration": 2}));
    assert_eq!((entry["records"].as_u64(), entry["published"].as_u64()), (Some(2), Some(2)));
    let ids: Vec<&str> = resp.results.iter().map(|r| r.receipts[0].event_id.as_str()).collect();
    assert_eq!(entry["event_ids"], json!(ids));

    // No certificate: UNAUTHENTICATED.
    let anonymous = ClientAuth::from_pki(pki.path(), None);
    assert_eq!(submit_code(&anonymous, ep, batch(&household[..1])).await, Code::Unauthenticated);
    gateway.audited("no certificate", |e| {
        e["type"] == "denied" && e["code"] == "Unauthenticated" && e["principal"].is_null()
    })?;

    // A certificate from another CA: the handshake is refused.
    let foreign = ClientAuth {
        ca: Some(pki.path().join("ca.pem")),
        cert: Some(other_ca.path().join("gongan.pem")),
        key: Some(other_ca.path().join("gongan.key")),
        token: None,
    };
    assert_ne!(submit_code(&foreign, ep, batch(&household[..1])).await, Code::Ok);
    gateway.audited("another CA", |e| {
        e["action"] == "connect" && e["reason"].as_str().unwrap().contains("UnknownIssuer")
    })?;

    // A revoked certificate: the handshake is refused.
    let revoked = ClientAuth::from_pki(pki.path(), Some("wangge"));
    let patrol = sample_records("schemas/departments/wangge/samples/patrol_report.ndjson")?;
    assert_ne!(submit_code(&revoked, ep, batch(&patrol[..1])).await, Code::Ok);
    gateway.audited("a revoked certificate", |e| {
        e["action"] == "connect" && e["reason"].as_str().unwrap().contains("Revoked")
    })?;

    // Department A submitting B's kind: PERMISSION_DENIED, nothing published.
    let assistance = sample_records("schemas/departments/minzheng/samples/social_assistance.ndjson")?;
    let err = gongan.submit(Request::new(batch(&assistance[..1]))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied, "{err:?}");
    gateway.audited("another department's kind", |e| {
        e["type"] == "denied" && e["principal"] == "gongan" && e["action"] == "Submit social_assistance"
    })?;

    // An admin call from a department certificate: PERMISSION_DENIED.
    let mut as_dept = AdminClient::new(gateway.channel("gongan").await?);
    let err = as_dept.list_schemas(ListSchemasRequest {}).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    gateway.audited("admin from a department", |e| e["principal"] == "gongan" && e["action"] == "ListSchemas")?;

    // An admin identity may call only what the policy grants it, and a department's kinds are not its to submit.
    let mut auditor = AdminClient::new(gateway.channel("auditor").await?);
    assert!(!auditor.list_schemas(ListSchemasRequest {}).await?.into_inner().subjects.is_empty());
    let err = auditor
        .validate_record(ValidateRecordRequest { department: "gongan".into(), record: Some(household[0].0.clone()) })
        .await
        .unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);
    gateway.audited("an admin call", |e| {
        e["type"] == "admin" && e["operation"] == "ListSchemas" && e["outcome"] == "Ok"
    })?;
    let mut admin_submits = IngestClient::new(gateway.channel("governance").await?);
    let err = admin_submits.submit(Request::new(batch(&household[..1]))).await.unwrap_err();
    assert_eq!(err.code(), Code::PermissionDenied);

    // The audit topic carries the same entries as the file: each one, whole (sequence, time,
    // chain hashes and event), keyed by its sequence number, nothing more.
    let file_entries = gateway.audit_entries()?;
    assert!(file_entries.len() >= 8, "{} audit entries", file_entries.len());
    wait_for_count(&broker.bootstrap, "hutong.audit.v1", file_entries.len() as i64, Duration::from_secs(30))?;
    let mut copies: Vec<(u64, Value)> = consume_all(&broker.bootstrap, "hutong.audit.v1")?
        .into_iter()
        .map(|m| {
            let v = m.value.expect("an audit copy has a value");
            assert_eq!(m.key.as_deref(), Some(v["seq"].to_string().as_str()), "keyed by sequence");
            (v["seq"].as_u64().expect("seq"), v)
        })
        .collect();
    copies.sort_by_key(|(seq, _)| *seq);
    let copies: Vec<Value> = copies.into_iter().map(|(_, v)| v).collect();
    assert_eq!(copies, file_entries, "the audit topic and the audit file differ");

    // Refusals are counted for the operators.
    let (_, metrics) = hutong_tests::http_get(&format!("{}/metrics", gateway.registry_url))?;
    for code in ["Unauthenticated", "PermissionDenied"] {
        let line = metrics.lines().find(|l| l.starts_with(&format!("hutong_refusals_total{{code=\"{code}\"}}")));
        let n: u64 = line.and_then(|l| l.rsplit(' ').next()?.parse().ok()).unwrap_or(0);
        assert!(n >= 2, "{code}: {line:?}");
    }

    // The chain verifies; any edit, deletion or reordering is detected.
    let mut gateway = gateway;
    assert!(gateway.process.terminate()?.success());
    let verify = |dir: &Path| Command::new(hutong_bin().unwrap()).args(["audit", "verify"]).arg(dir).output();
    let ok = verify(&gateway.audit_dir)?;
    assert!(ok.status.success(), "{}", String::from_utf8_lossy(&ok.stdout));
    let file = std::fs::read_dir(&gateway.audit_dir)?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .find(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .context("an audit day file")?;
    let original = std::fs::read_to_string(&file)?;
    let lines: Vec<&str> = original.lines().collect();
    assert!(lines.len() >= 8, "{} entries", lines.len());
    let edited = original.replacen("\"principal\":\"gongan\"", "\"principal\":\"minzheng\"", 1);
    let deleted = lines.iter().enumerate().filter(|(i, _)| *i != 2).map(|(_, l)| format!("{l}\n")).collect::<String>();
    let mut swapped = lines.clone();
    swapped.swap(1, 2);
    let swapped = swapped.iter().map(|l| format!("{l}\n")).collect::<String>();
    let first_gone = lines[1..].iter().map(|l| format!("{l}\n")).collect::<String>();
    for (what, text) in
        [("edited", edited), ("deleted", deleted), ("reordered", swapped), ("first deleted", first_gone)]
    {
        std::fs::write(&file, text)?;
        let out = verify(&gateway.audit_dir)?;
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert_eq!(out.status.code(), Some(1), "{what} entry not detected: {stdout}");
        assert!(stdout.contains("TAMPERED"), "{what}: {stdout}");
    }
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_topic_carries_personal_fields_as_its_policy_says() -> anyhow::Result<()> {
    // A deployment's privacy settings: overrides on the shared person topic, and a restricted copy.
    let work = tempfile::tempdir()?;
    let schemas = work.path().join("schemas");
    let copy = Command::new("cp").arg("-r").arg(repo_root().join("schemas")).arg(&schemas).status()?;
    assert!(copy.success());
    let privacy = r#"
[privacy.topics."hutong.person.v2"]
fields = { "/name" = "masked", "/birth_date" = "dropped" }

[privacy.topics."hutong.person.restricted.v1"]
entity = "person"
restricted = true
"#;
    let config = work.path().join("register.toml");
    std::fs::write(&config, privacy)?;
    // Each topic's schema is its view; they must be registered before the gateway takes them.
    let register = Command::new(hutong_bin()?)
        .args(["schema", "register", "--schemas"])
        .arg(&schemas)
        .arg("--config")
        .arg(&config)
        .output()?;
    assert!(register.status.success(), "{}", String::from_utf8_lossy(&register.stdout));

    // Clear citizen IDs on a shared topic are refused.
    let bad = work.path().join("bad.toml");
    std::fs::write(&bad, "[privacy.topics.\"hutong.person.v2\"]\nfields = { \"/citizen_id\" = \"clear\" }\n")?;
    let refused = Command::new(hutong_bin()?)
        .args(["schema", "register", "--dry-run", "--schemas"])
        .arg(&schemas)
        .arg("--config")
        .arg(&bad)
        .output()?;
    assert!(!refused.status.success());
    assert!(String::from_utf8_lossy(&refused.stderr).contains("clear only on a restricted topic"));

    let broker = Broker::start()?;
    let gateway = Gateway::start_with(&broker.bootstrap, hutong_tests::shared_pki()?, &schemas, privacy).await?;
    let care = sample_records("schemas/departments/minzheng/samples/elderly_care.ndjson")?;
    let mut client = IngestClient::new(gateway.channel("minzheng").await?);
    let resp = client.submit(Request::new(batch(&care[..1]))).await?.into_inner();
    assert_eq!(resp.results[0].status, Status::Published as i32, "{:?}", resp.results[0].violations);
    let payload = &care[0].1;
    let raw_id = payload["idCard"].as_str().unwrap();

    let shared = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    let restricted = consume_all(&broker.bootstrap, "hutong.person.restricted.v1")?;
    assert_eq!((shared.len(), restricted.len()), (1, 1), "one message on each topic");
    let (s, r) = (shared[0].value.clone().unwrap(), restricted[0].value.clone().unwrap());
    let key = s["person_key"].as_str().unwrap();
    // Shared: pseudonymised with the key id, masked, dropped; non-personal fields clear.
    let (kid, mac) = s["citizen_id"].as_str().unwrap().split_once(':').context("key id")?;
    assert!(kid.starts_with('k') && kid.len() == 9, "{kid}");
    assert_eq!(mac, key);
    assert_eq!(s["phone"], "135****1234");
    assert_eq!(s["name"], "钱**");
    assert!(s.get("birth_date").is_none(), "{s}");
    assert_eq!(s["sex"], "2");
    assert!(!s.to_string().contains(raw_id));
    // Restricted: clear.
    assert_eq!(r["citizen_id"], raw_id);
    assert_eq!(r["phone"], "13588001234");
    assert_eq!(r["name"], "钱美华");
    assert_eq!(r["birth_date"], "1938-04-12");
    // Each message names its own topic's schema.
    assert_ne!(shared[0].headers["ce_dataschema"], restricted[0].headers["ce_dataschema"]);
    assert_eq!(shared[0].headers["ce_id"], restricted[0].headers["ce_id"], "one event, two views");
    Ok(())
}
