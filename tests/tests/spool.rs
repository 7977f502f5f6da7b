//! Store and forward in the real gateway process: with `[spool]` on and the
//! broker gone, records are answered SPOOLED; the gateway is killed with
//! SIGKILL and restarted while the broker is still away; when the broker
//! returns, the gateway's own replay task drains the spool in order, every
//! spooled record reaches Kafka once per `ce_id`, and `hutong_spool_messages`
//! falls to 0.

use std::{collections::BTreeMap, time::Duration};

use hutong_proto::v1::{SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::{Broker, Gateway, Setup, citizen_id, consume_all, inproc};
use tonic::Request;

fn record(i: u32) -> SourceRecord {
    let payload = serde_json::json!({"GMSFHM": citizen_id(i), "XM": format!("存转{i}"), "XB": hutong_tests::sex_of(&citizen_id(i)), "CSRQ": "19850101"});
    inproc::household(&format!("S{i}"), payload)
}

fn batch(range: std::ops::Range<u32>) -> SubmitRequest {
    SubmitRequest { batch_id: format!("spool-{}", range.start), records: range.map(record).collect() }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_process_spools_survives_kill_9_and_replays_in_order_when_the_broker_returns() -> anyhow::Result<()>
{
    let mut broker = Broker::start_durable()?;
    let spool_dir = tempfile::tempdir()?;
    let extra = format!(
        "\n[spool]\nenabled = true\npath = {:?}\nreplay-interval-ms = 200\n",
        spool_dir.path().join("spool.redb")
    );
    // A short message timeout: a record waits that long for Kafka before it is spooled.
    let setup = Setup { extra, kafka: "message-timeout-ms = 2000".into(), ..Setup::new()? };
    let mut gateway = Gateway::start_setup(&broker.bootstrap, setup).await?;
    let t = Duration::from_secs(30);

    let mut client = IngestClient::new(gateway.channel("gongan").await?);
    let warm = client.submit(Request::new(batch(0..1))).await?.into_inner();
    assert_eq!(warm.results[0].status, Status::Published as i32, "{warm:?}");

    // The broker goes away: records are spooled, durably, and answered SPOOLED.
    broker.stop()?;
    let first = client.submit(Request::new(batch(1..6))).await?.into_inner();
    let second = client.submit(Request::new(batch(6..9))).await?.into_inner();
    let mut spooled: Vec<(String, String)> = Vec::new(); // (source_id, ce_id) in the order answered
    for r in first.results.iter().chain(&second.results) {
        assert_eq!(r.status, Status::Spooled as i32, "{}: {:?}", r.source_id, r.violations);
        assert_eq!(r.receipts[0].offset, -1);
        spooled.push((r.source_id.clone(), r.receipts[0].event_id.clone()));
    }
    gateway.wait_metric("hutong_spool_messages", 8.0, t)?;

    // kill -9, and a restart while Kafka is still away: the spool is still there.
    gateway.kill9_and_restart().await?;
    gateway.wait_metric("hutong_spool_messages", 8.0, t)?;

    // Kafka returns: the gateway's replay task drains the spool on its own.
    broker.start_again()?;
    gateway.wait_metric("hutong_spool_messages", 0.0, Duration::from_secs(60))?;
    gateway.wait_log("spool drained into kafka", 1, t)?;

    let messages = consume_all(&broker.bootstrap, "hutong.person.v2")?;
    let mut per_id: BTreeMap<&str, usize> = BTreeMap::new();
    for m in &messages {
        *per_id.entry(m.headers["ce_id"].as_str()).or_default() += 1;
    }
    assert_eq!(messages.len(), 9, "the warm-up record and the 8 spooled, exactly: {per_id:?}");
    for (source_id, ce_id) in &spooled {
        assert_eq!(per_id.get(ce_id.as_str()), Some(&1), "{source_id} ({ce_id}) once in Kafka");
    }
    // In order: within each partition, the spooled records sit in the order they were accepted.
    let accepted = |ce_id: &str| spooled.iter().position(|(_, id)| id == ce_id);
    let mut by_partition: BTreeMap<i32, Vec<(i64, usize)>> = BTreeMap::new();
    for m in &messages {
        if let Some(i) = accepted(&m.headers["ce_id"]) {
            by_partition.entry(m.partition).or_default().push((m.offset, i));
        }
    }
    for (p, mut seen) in by_partition {
        seen.sort();
        let order: Vec<usize> = seen.iter().map(|(_, i)| *i).collect();
        assert!(order.windows(2).all(|w| w[0] < w[1]), "partition {p}: replayed out of order {order:?}");
    }
    Ok(())
}
