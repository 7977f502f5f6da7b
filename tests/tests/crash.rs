//! Nothing acknowledged is lost, no silent duplicates: real processes under
//! load, `kill -9` of the gateway, then of the broker; clients retry what was
//! not acknowledged; an independent consumer checks that every acknowledged
//! record is in Kafka and every source record appears once after
//! de-duplication by `ce_id`.

use std::{
    collections::{BTreeMap, BTreeSet},
    sync::{Arc, Mutex},
    time::Duration,
};

use hutong_proto::v1::{Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::{Broker, Gateway, citizen_id, consume_all, inproc};
use tonic::Request;

const BATCHES: u32 = 60;
const PER_BATCH: u32 = 25;

fn batch(b: u32) -> SubmitRequest {
    let records = (b * PER_BATCH..(b + 1) * PER_BATCH)
        .map(|i| {
            let payload = serde_json::json!({
                "GMSFHM": citizen_id(i), "XM": format!("压测{i}"), "XB": hutong_tests::sex_of(&citizen_id(i)), "CSRQ": "19850101",
                "HJDZ_XZQH": "310104", "HJDZ_QHNXXDZ": "徐汇区漕溪北路200弄5号"
            });
            inproc::household(&format!("C{i}"), payload)
        })
        .collect();
    SubmitRequest { batch_id: format!("b{b}"), records }
}

#[derive(Default)]
struct Tally {
    sent: usize,
    retried: usize,
    acked: BTreeMap<String, String>, // source_id → event id
}

/// Submits every batch to whatever gateway `endpoint` names, retrying each
/// until it is acknowledged, and tallies what was sent, retried and acknowledged.
async fn load(endpoint: Arc<Mutex<String>>, tally: Arc<Mutex<Tally>>) {
    for b in 0..BATCHES {
        let mut attempt = 0;
        loop {
            let target = endpoint.lock().unwrap().clone();
            attempt += 1;
            {
                let mut t = tally.lock().unwrap();
                t.sent += PER_BATCH as usize;
                if attempt > 1 {
                    t.retried += PER_BATCH as usize;
                }
            }
            let result = async {
                let channel = hutong_tests::ClientAuth::from_pki(hutong_tests::shared_pki()?, Some("gongan"))
                    .endpoint(&target)?
                    .connect_timeout(Duration::from_secs(2))
                    .timeout(Duration::from_secs(60))
                    .connect()
                    .await?;
                let mut client = IngestClient::new(channel);
                let req = Request::new(batch(b));
                anyhow::Ok(client.submit(req).await?.into_inner())
            }
            .await;
            match result {
                Ok(resp) => {
                    let mut t = tally.lock().unwrap();
                    for r in resp.results {
                        assert!(
                            r.status == Status::Published as i32 || r.status == Status::Duplicate as i32,
                            "{}: {:?}",
                            r.source_id,
                            r.violations
                        );
                        t.acked.insert(r.source_id, r.receipts[0].event_id.clone());
                    }
                    break;
                }
                // Not acknowledged: the client keeps the batch and retries it.
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
    }
}

async fn wait_acked(tally: &Arc<Mutex<Tally>>, n: usize) {
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    while tally.lock().unwrap().acked.len() < n {
        assert!(std::time::Instant::now() < deadline, "load stalled");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

fn verify(bootstrap: &str, tally: &Tally, label: &str) {
    let total = (BATCHES * PER_BATCH) as usize;
    assert_eq!(tally.acked.len(), total, "every record acknowledged in the end");
    let consumed = consume_all(bootstrap, "hutong.person.v2").unwrap();
    let mut by_id: BTreeMap<String, usize> = BTreeMap::new();
    for m in &consumed {
        *by_id.entry(m.headers["ce_id"].clone()).or_default() += 1;
    }
    let acked_ids: BTreeSet<&String> = tally.acked.values().collect();
    let missing: Vec<&&String> = acked_ids.iter().filter(|id| !by_id.contains_key(**id)).collect();
    assert!(missing.is_empty(), "{label}: {} acknowledged records are not in Kafka", missing.len());
    assert_eq!(by_id.len(), total, "{label}: each source record once after de-duplication by ce_id");
    let duplicates = consumed.len() - by_id.len();
    println!(
        "{label}: sent {}, acknowledged {}, retried {}, consumed {}, duplicates before de-duplication {}",
        tally.sent,
        tally.acked.len(),
        tally.retried,
        consumed.len(),
        duplicates
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_the_gateway_under_load_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let mut first = Gateway::start(&broker.bootstrap).await?;
    let endpoint = Arc::new(Mutex::new(first.endpoint.clone()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let load_task = tokio::spawn(load(Arc::clone(&endpoint), Arc::clone(&tally)));
    wait_acked(&tally, (PER_BATCH * 10) as usize).await;
    first.process.kill9()?;
    let second = Gateway::start(&broker.bootstrap).await?;
    *endpoint.lock().unwrap() = second.endpoint.clone();
    load_task.await?;
    verify(&broker.bootstrap, &tally.lock().unwrap(), "gateway kill -9");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_broker_restart_under_load_loses_nothing_acknowledged() -> anyhow::Result<()> {
    let mut broker = Broker::start_durable()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let endpoint = Arc::new(Mutex::new(gateway.endpoint.clone()));
    let tally = Arc::new(Mutex::new(Tally::default()));
    let load_task = tokio::spawn(load(Arc::clone(&endpoint), Arc::clone(&tally)));
    wait_acked(&tally, (PER_BATCH * 10) as usize).await;
    broker.restart()?;
    load_task.await?;
    verify(&broker.bootstrap, &tally.lock().unwrap(), "broker kill -9 and restart");
    Ok(())
}

/// A Produce response lost after the broker appended (the connection dropped before the answer):
/// the idempotent producer sends the records again with the same sequence numbers, the broker
/// recognises the copy, and the log holds each record once. Audit copies are off, so the one
/// lost response is a batch's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_lost_produce_response_is_retried_without_a_copy_in_the_log() -> anyhow::Result<()> {
    let (broker, proxy) = Broker::start_behind_proxy().await?;
    let setup = hutong_tests::Setup { extra: "publish = false\n".into(), ..hutong_tests::Setup::new()? };
    let gateway = Gateway::start_setup(&broker.bootstrap, setup).await?;
    let mut client = IngestClient::new(gateway.channel("gongan").await?);
    let published = |resp: &hutong_proto::v1::SubmitResponse| {
        resp.results.iter().filter(|r| r.status == Status::Published as i32).count()
    };
    let first = client.submit(Request::new(batch(0))).await?.into_inner();
    assert_eq!(published(&first), PER_BATCH as usize);
    assert_eq!(hutong_tests::topic_count(&broker.bootstrap, "hutong.person.v2")?, i64::from(PER_BATCH));

    proxy.lose_next_produce_response();
    let second = client.submit(Request::new(batch(1))).await?.into_inner();
    assert_eq!(proxy.lost(), 1, "a Produce response was lost");
    assert_eq!(published(&second), PER_BATCH as usize, "{second:?}");
    let messages = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &messages {
        *per_id.entry(m.headers["ce_id"].as_str()).or_default() += 1;
    }
    assert_eq!(messages.len(), 2 * PER_BATCH as usize, "the log holds a copy: {per_id:?}");
    assert!(per_id.values().all(|n| *n == 1));
    println!(
        "lost produce response: 1 response lost, {} records, {} messages in the log",
        2 * PER_BATCH,
        messages.len()
    );
    Ok(())
}

/// `hutong ingest --addr g1,g2`: two gateways on one broker share a load (batches round-robin, or
/// one stream at a time); one is killed (`kill -9`) in the middle. The load goes on through the
/// other, every record is answered PUBLISHED or DUPLICATE, and every source record is in Kafka
/// under one event id.
async fn two_gateways_one_killed(extra: &[&str]) -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let mut g1 = Gateway::start(&broker.bootstrap).await?;
    let g2 = Gateway::start(&broker.bootstrap).await?;
    let work = tempfile::tempdir()?;
    let export = work.path().join("load.csv");
    let total: u32 = 3_000;
    let mut csv = String::from("GMSFHM,XM,XB,MZ,CSRQ,HJDZ_XZQH,HJDZ_QHNXXDZ,VER\n");
    for i in 0..total {
        let id = citizen_id(200_000 + i);
        let sex = if hutong_tests::sex_of(&id) == "1" { "男" } else { "女" };
        csv.push_str(&format!("{id},双活{i},{sex},01,{},330106,文三路{i}号,1\n", &id[6..14]));
    }
    std::fs::write(&export, csv)?;
    let checkpoint = work.path().join("load.ckpt");
    let addr = format!("{},{}", g1.endpoint, g2.endpoint);
    let mut load = std::process::Command::new(hutong_tests::hutong_bin()?)
        .args(["ingest", "-k", "household_registration", "--batch-size", "10", "--json"])
        .args(["--id-field", "GMSFHM", "--revision-field", "VER", "--checkpoint"])
        .arg(&checkpoint)
        .arg(&export)
        .args(extra)
        .args(hutong_tests::cli_args(&addr, &g1.pki, "gongan"))
        .current_dir(hutong_tests::repo_root())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let answered = || -> u64 {
        std::fs::read(&checkpoint)
            .ok()
            .and_then(|b| serde_json::from_slice::<serde_json::Value>(&b).ok())
            .and_then(|c| c["answered"].as_u64())
            .unwrap_or(0)
    };
    hutong_tests::wait_until("a tenth of the load answered", Duration::from_secs(120), || {
        if let Some(status) = load.try_wait()? {
            let mut said = String::new();
            std::io::Read::read_to_string(load.stderr.as_mut().expect("piped"), &mut said)?;
            anyhow::bail!("the load ended ({status}) before its first gateway was killed: {said}");
        }
        Ok(answered() >= u64::from(total / 10))
    })?;
    g1.process.kill9()?;
    // The load ends by itself (a hang fails here, not the whole run); its output is drained meanwhile.
    let (done, ended) = std::sync::mpsc::channel();
    std::thread::spawn(move || done.send(load.wait_with_output()));
    let out = ended.recv_timeout(Duration::from_secs(120)).map_err(|_| anyhow::anyhow!("the load hangs"))??;
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    // The killed gateway is tried again: it fails, and the batch goes to the other.
    assert!(said.contains(&format!("gateway {} failed", g1.endpoint)), "{said}");
    let results: Vec<serde_json::Value> =
        String::from_utf8(out.stdout)?.lines().map(serde_json::from_str).collect::<Result<_, _>>()?;
    assert_eq!(results.len(), total as usize);
    assert!(
        results.iter().all(|r| r["status"] == "PUBLISHED" || r["status"] == "DUPLICATE"),
        "{:?}",
        results.iter().find(|r| r["status"] != "PUBLISHED" && r["status"] != "DUPLICATE")
    );
    // Both gateways took batches (the second's audit trail holds its Submit entries).
    let audited = |dir: &std::path::Path| -> anyhow::Result<usize> {
        let mut n = 0;
        for f in std::fs::read_dir(dir)? {
            n += std::fs::read_to_string(f?.path())?.matches("\"type\":\"submit\"").count();
        }
        Ok(n)
    };
    assert!(audited(&g1.audit_dir)? > 0 && audited(&g2.audit_dir)? > 0, "both gateways answered batches");
    let person = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    let mut ids_by_key: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for m in &person {
        ids_by_key.entry(m.key.clone().unwrap_or_default()).or_default().insert(m.headers["ce_id"].clone());
    }
    assert_eq!(ids_by_key.len(), total as usize, "every source record in Kafka");
    assert!(ids_by_key.values().all(|ids| ids.len() == 1), "a record sent twice keeps its event id");
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ingest_over_two_gateways_rides_out_one_killed() -> anyhow::Result<()> {
    two_gateways_one_killed(&[]).await
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_over_two_gateways_goes_on_from_the_first_unanswered_batch() -> anyhow::Result<()> {
    two_gateways_one_killed(&["--stream"]).await
}
