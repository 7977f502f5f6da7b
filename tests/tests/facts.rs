//! Per-source facts on the entity topics, as a consumer rebuilds them: the gateway in process
//! publishing through the real rdkafka producer to librdkafka's mock cluster (which, unlike
//! tansu 0.6, delivers tombstones), or to memory where no broker is needed.

use std::{collections::BTreeMap, sync::Arc, time::Duration};

use hutong_bus::{BusConfig, KafkaPublisher, MemoryPublisher, Publisher};
use hutong_proto::v1::{Op, SourceRecord, Status, SubmitRequest, SubmitResponse, ingest_client::IngestClient};
use hutong_tests::inproc;
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message, OwnedMessage},
    mocking::MockCluster,
};
use serde_json::{Value, json};
use tonic::transport::Channel;

/// 陈建国's citizen ID (a resident of the sample community).
const CITIZEN: &str = "330106196203150314";

fn gongan(revision: u64, address: &str) -> SourceRecord {
    let payload = json!({"GMSFHM": CITIZEN, "XM": "陈建国", "XB": "1", "MZ": "01", "CSRQ": "19620315",
        "HJDZ_XZQH": "330106004053", "HJDZ_QHNXXDZ": address});
    SourceRecord { revision, ..inproc::household(CITIZEN, payload) }
}

fn weijian(revision: u64, op: Op) -> SourceRecord {
    let payload = json!({"DAH": "330106004053000777", "XM": "陈建国", "SFZH": CITIZEN, "XB": "1",
        "CSRQ": "1962-3-15", "MZ": "01", "XZZ_XZQH": "330106004053", "XZZ": "石灰桥社区5幢1单元301室",
        "TJRQ": "2024-05-20", "ZLNL": "1"});
    SourceRecord {
        kind: "elderly_health".into(),
        source_id: "330106004053000777".into(),
        revision,
        op: op as i32,
        occurred_at: None,
        payload: serde_json::to_vec(&payload).unwrap(),
        charset: String::new(),
    }
}

async fn submit(client: &mut IngestClient<Channel>, department: &str, rec: SourceRecord) -> SubmitResponse {
    let req = inproc::request_as(department, SubmitRequest { batch_id: String::new(), records: vec![rec] });
    client.submit(req).await.expect("the call is answered").into_inner()
}

fn security() -> hutong_gateway::Security {
    inproc::departments_security(&[("gongan", &["household_registration"]), ("weijian", &["elderly_health"])])
}

/// One message as a consumer sees it: the fact key's parts, the headers, the value.
struct Fact {
    partition: i32,
    key: Vec<String>,
    headers: BTreeMap<String, String>,
    value: Option<Value>,
}

fn fact(m: &OwnedMessage) -> Fact {
    let headers = m
        .headers()
        .map(|h| h.iter().map(|x| (x.key.to_owned(), String::from_utf8_lossy(x.value.unwrap()).into_owned())).collect())
        .unwrap_or_default();
    Fact {
        partition: m.partition(),
        key: serde_json::from_slice(m.key().expect("entity topics are keyed")).expect("a fact key is a JSON array"),
        headers,
        value: m.payload().map(|p| serde_json::from_slice(p).unwrap()),
    }
}

/// The consuming guide's rule: per fact key, the fact of the highest `ce_revision`; at an equal
/// revision the later offset (a correction of the same revision). A tombstone removes the fact
/// and is remembered with its revision, so an older upsert arriving later does not revive it.
fn current_state(facts: &[Fact]) -> BTreeMap<Vec<String>, (u64, Option<Value>)> {
    let mut state: BTreeMap<Vec<String>, (u64, Option<Value>)> = BTreeMap::new();
    for f in facts {
        let revision: u64 = f.headers["ce_revision"].parse().unwrap();
        match state.get(&f.key) {
            Some((kept, _)) if *kept > revision => {}
            _ => {
                state.insert(f.key.clone(), (revision, f.value.clone()));
            }
        }
    }
    state
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_deletes_only_its_own_fact_and_a_stale_resend_loses_to_the_newer_revision() -> anyhow::Result<()> {
    let mock = MockCluster::new(1)?;
    mock.create_topic("hutong.person.v2", 3, 1)?;
    mock.create_topic("hutong.dlq.v1", 1, 1)?;
    let bus = BusConfig { bootstrap_servers: mock.bootstrap_servers(), create_topics: false, ..BusConfig::default() };
    let publisher: Arc<dyn Publisher> = Arc::new(KafkaPublisher::new(&bus)?);
    let config = inproc::config(bus, |_| {});
    let gateway = inproc::TestGateway::start_secured(&inproc::schemas(), config, publisher, security()).await;
    let mut client = gateway.client().await;

    // 公安 and 卫健 each state a fact about 陈建国; 卫健 then deletes its own.
    let mut answers = Vec::new();
    for (dept, rec) in [
        ("gongan", gongan(1, "石灰桥社区5幢1单元301室")),
        ("weijian", weijian(1, Op::Upsert)),
        ("weijian", weijian(2, Op::Delete)),
        // 公安 resends out of order: revision 3 (the corrected address), then the stale revision 2.
        ("gongan", gongan(3, "石灰桥社区5幢1单元302室")),
        ("gongan", gongan(2, "石灰桥社区5幢1单元301室 (old)")),
    ] {
        let resp = submit(&mut client, dept, rec).await;
        assert_eq!(resp.results[0].status, Status::Published as i32, "{dept}: {:?}", resp.results[0]);
        answers.push(resp.results[0].receipts[0].clone());
    }
    // Every revision is published, each under an event id of its own.
    let ids: std::collections::BTreeSet<&str> = answers.iter().map(|r| r.event_id.as_str()).collect();
    assert_eq!(ids.len(), 5, "{answers:?}");

    // A consumer reads the topic from the beginning (the mock cluster delivers tombstones).
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "facts")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&["hutong.person.v2"])?;
    let mut messages: Vec<OwnedMessage> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while messages.len() < 5 {
        assert!(std::time::Instant::now() < deadline, "read {} of 5 messages", messages.len());
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            messages.push(m?.detach());
        }
    }
    let facts: Vec<Fact> = messages.iter().map(fact).collect();

    // One entity key, two sources: two fact keys, every message on the entity key's partition,
    // the one Kafka's Java partitioner (murmur2) gives for it.
    let entity_key = &facts[0].key[0];
    assert_eq!(entity_key, &inproc::key().pseudonym(CITIZEN));
    assert!(facts.iter().all(|f| &f.key[0] == entity_key));
    let partition = hutong_bus::partition_for(entity_key, 3);
    assert!(facts.iter().all(|f| f.partition == partition), "partitions: {:?}", answers);
    let (gongan_key, weijian_key) = (&facts[0].key, &facts[1].key);
    assert_eq!(&gongan_key[1..3], ["gongan", "household_registration"]);
    assert_eq!(&weijian_key[1..3], ["weijian", "elderly_health"]);
    // The tombstone carries 卫健's key, not 公安's, nor the bare entity key.
    assert_eq!(&facts[2].key, weijian_key);
    assert!(facts[2].value.is_none(), "a DELETE is a tombstone");
    assert_eq!(facts[2].headers["ce_type"], "cn.hutong.person.delete");
    // Source ids that are personal data travel pseudonymised: in the key and in ce_sourceid.
    for f in &facts {
        assert!(!f.key[3].contains(CITIZEN) && !f.headers["ce_sourceid"].contains(CITIZEN), "{:?}", f.key);
        assert_eq!(f.headers["ce_sourceid"], f.key[3]);
    }
    assert_eq!(weijian_key[3], facts[1].headers["ce_sourceid"]);

    // Rebuilt by key from the beginning: 公安's fact is intact, 卫健's is gone.
    let state = current_state(&facts);
    let (revision, value) = &state[gongan_key];
    assert_eq!(*revision, 3, "the highest revision wins, not the last message");
    assert_eq!(
        value.as_ref().unwrap()["household_registration"]["address_text"],
        "石灰桥社区5幢1单元302室",
        "{value:?}"
    );
    assert_eq!(state[weijian_key], (2, None), "卫健's fact is deleted");
    // Compaction alone (the last message per key) would have kept the stale revision 2.
    let last: &Fact = facts.iter().rev().find(|f| &f.key == gongan_key).unwrap();
    assert_eq!(last.headers["ce_revision"], "2");

    gateway.stop().await?;
    Ok(())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_revision_resent_with_other_content_is_a_new_event_in_the_window_and_after_a_restart() -> anyhow::Result<()> {
    let memory = MemoryPublisher::default();
    let schemas = inproc::schemas();
    let start =
        || inproc::TestGateway::start_secured(&schemas, inproc::default_config(), Arc::new(memory.clone()), security());
    let gateway = start().await;
    let mut client = gateway.client().await;
    let first = submit(&mut client, "gongan", gongan(1, "石灰桥社区5幢1单元301室")).await.results.remove(0);
    assert_eq!(first.status, Status::Published as i32);
    // The same record again, within the window: a duplicate, answered with the first receipts.
    let again = submit(&mut client, "gongan", gongan(1, "石灰桥社区5幢1单元301室")).await.results.remove(0);
    assert_eq!((again.status, &again.receipts), (Status::Duplicate as i32, &first.receipts));
    // Revision 1 again with a corrected address: not a duplicate, a new event.
    let corrected = submit(&mut client, "gongan", gongan(1, "石灰桥社区5幢1单元302室")).await.results.remove(0);
    assert_eq!(corrected.status, Status::Published as i32, "{corrected:?}");
    assert_ne!(corrected.receipts[0].event_id, first.receipts[0].event_id);
    gateway.stop().await?;

    // After a restart (the window is empty): a third content under revision 1 is yet another
    // event, and the first content resent gets its first event id back (consumers drop it by ce_id).
    let gateway = start().await;
    let mut client = gateway.client().await;
    let third = submit(&mut client, "gongan", gongan(1, "石灰桥社区5幢1单元303室")).await.results.remove(0);
    assert_eq!(third.status, Status::Published as i32);
    let resent = submit(&mut client, "gongan", gongan(1, "石灰桥社区5幢1单元301室")).await.results.remove(0);
    assert_eq!(resent.status, Status::Published as i32);
    assert_eq!(resent.receipts[0].event_id, first.receipts[0].event_id);
    gateway.stop().await?;

    let ids: Vec<String> = [&first, &corrected, &third].iter().map(|r| r.receipts[0].event_id.clone()).collect();
    assert_eq!(ids.iter().collect::<std::collections::BTreeSet<_>>().len(), 3, "{ids:?}");
    // What a consumer de-duplicating by ce_id keeps, in order: every content once, the last one
    // (equal revision: the later offset) the current fact.
    let person: Vec<_> = memory.sent().into_iter().filter(|m| m.topic == "hutong.person.v2").collect();
    let mut seen = std::collections::BTreeSet::new();
    let kept: Vec<Value> = person
        .iter()
        .filter(|m| seen.insert(m.event.id.clone()))
        .map(|m| serde_json::from_slice(m.value.as_ref().unwrap()).unwrap())
        .collect();
    let addresses: Vec<&str> =
        kept.iter().map(|v| v["household_registration"]["address_text"].as_str().unwrap()).collect();
    assert_eq!(addresses, ["石灰桥社区5幢1单元301室", "石灰桥社区5幢1单元302室", "石灰桥社区5幢1单元303室"]);
    assert!(person.iter().all(|m| m.event.revision == Some(1)));
    Ok(())
}
