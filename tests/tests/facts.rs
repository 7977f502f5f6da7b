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
#[derive(Clone)]
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
        // A fact key (a JSON array); a merged profile's key is the entity key alone.
        key: m
            .key()
            .map(|k| serde_json::from_slice(k).unwrap_or_else(|_| vec![String::from_utf8_lossy(k).into_owned()]))
            .expect("entity and profile topics are keyed"),
        headers,
        value: m.payload().map(|p| serde_json::from_slice(p).unwrap()),
    }
}

/// The consuming guide's rules (docs/consuming.md): per fact key, the message of the highest
/// `ce_revision`, at an equal revision the later offset; per source record (department, kind,
/// source id), its highest revision: only the facts of that revision are current, and a tombstone
/// at revision r deletes every fact of its record up to r. `facts` are in log order per
/// partition (as read); revisions are compared across partitions and topics.
fn current_state(facts: &[Fact]) -> BTreeMap<Vec<String>, (u64, Value)> {
    let mut kept: BTreeMap<&[String], (u64, Option<&Value>)> = BTreeMap::new();
    // Per source record: its highest revision, and the highest revision it was deleted at.
    let mut records: BTreeMap<&[String], (u64, Option<u64>)> = BTreeMap::new();
    for f in facts {
        let revision: u64 = f.headers["ce_revision"].parse().unwrap();
        if kept.get(&f.key[..]).is_none_or(|(r, _)| revision >= *r) {
            kept.insert(&f.key, (revision, f.value.as_ref()));
        }
        let record = records.entry(&f.key[1..]).or_insert((0, None));
        record.0 = record.0.max(revision);
        if f.value.is_none() {
            record.1 = record.1.max(Some(revision));
        }
    }
    kept.into_iter()
        .filter_map(|(key, (revision, value))| {
            let (top, deleted) = records[&key[1..]];
            let current = revision == top && deleted.is_none_or(|d| revision > d);
            Some((key.to_vec(), (revision, value.filter(|_| current)?.clone())))
        })
        .collect()
}

/// A gateway of 公安 and 卫健 publishing to `mock`, whose entity `topics` get 3 partitions.
async fn on_mock(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    topics: &[&str],
) -> anyhow::Result<inproc::TestGateway> {
    for topic in topics {
        mock.create_topic(topic, 3, 1)?;
    }
    mock.create_topic("hutong.dlq.v1", 1, 1)?;
    let bus = BusConfig { bootstrap_servers: mock.bootstrap_servers(), create_topics: false, ..BusConfig::default() };
    let publisher: Arc<dyn Publisher> = Arc::new(KafkaPublisher::new(&bus)?);
    let config = inproc::config(bus, |_| {});
    Ok(inproc::TestGateway::start_secured(&inproc::schemas(), config, publisher, security()).await)
}

/// Reads `n` messages of `topics` from the beginning of the mock cluster (which delivers tombstones).
fn read(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    topics: &[&str],
    n: usize,
) -> anyhow::Result<Vec<Fact>> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", format!("facts-{}", topics.join("-")))
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(topics)?;
    let mut messages: Vec<OwnedMessage> = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    while messages.len() < n {
        anyhow::ensure!(std::time::Instant::now() < deadline, "read {} of {n} messages", messages.len());
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            messages.push(m?.detach());
        }
    }
    Ok(messages.iter().map(fact).collect())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_department_deletes_only_its_own_fact_and_a_stale_resend_loses_to_the_newer_revision() -> anyhow::Result<()> {
    let mock = MockCluster::new(1)?;
    let gateway = on_mock(&mock, &["hutong.person.v2"]).await?;
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
    let facts = read(&mock, &["hutong.person.v2"], 5)?;

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
    assert_eq!(state.len(), 1, "{state:?}");
    let (revision, value) = &state[gongan_key];
    assert_eq!(*revision, 3, "the highest revision wins, not the last message");
    assert_eq!(value["household_registration"]["address_text"], "石灰桥社区5幢1单元302室", "{value:?}");
    assert!(!state.contains_key(weijian_key), "卫健's fact is deleted");
    // Compaction alone (the last message per key) would have kept the stale revision 2.
    let last: &Fact = facts.iter().rev().find(|f| &f.key == gongan_key).unwrap();
    assert_eq!(last.headers["ce_revision"], "2");

    gateway.stop().await?;
    Ok(())
}

/// 公安 moves 陈建国 from one 户 to another (a new revision names another household), then
/// deletes his row with a DELETE that carries only the ID: the facts under the old keys stay in
/// the log (no tombstone names them), and the rule per source record makes them obsolete.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_that_names_another_entity_leaves_its_old_fact_obsolete() -> anyhow::Result<()> {
    let mock = MockCluster::new(1)?;
    let gateway = on_mock(&mock, &["hutong.person.v2", "hutong.household.v2"]).await?;
    let mut client = gateway.client().await;
    let in_household = |revision: u64, hh: &str| {
        let mut rec = gongan(revision, "石灰桥新村3幢2单元501");
        let mut payload: Value = serde_json::from_slice(&rec.payload).unwrap();
        payload
            .as_object_mut()
            .unwrap()
            .extend(json!({"HH": hh, "HB": "1", "YHZGX": "02", "HZ_GMSFHM": CITIZEN}).as_object().unwrap().clone());
        rec.payload = serde_json::to_vec(&payload).unwrap();
        rec
    };
    let delete = SourceRecord {
        op: Op::Delete as i32,
        payload: serde_json::to_vec(&json!({"GMSFHM": CITIZEN})).unwrap(),
        ..gongan(3, "")
    };
    for rec in [in_household(1, "3301060040530001"), in_household(2, "3301060040530099"), delete] {
        let resp = submit(&mut client, "gongan", rec).await;
        assert_eq!(resp.results[0].status, Status::Published as i32, "{:?}", resp.results[0]);
    }
    // person ×3 (the last a tombstone) and household ×2.
    let facts = read(&mock, &["hutong.person.v2", "hutong.household.v2"], 5)?;
    let households = |state: &BTreeMap<Vec<String>, (u64, Value)>| -> Vec<String> {
        state.keys().filter(|k| k[0].starts_with("gongan:")).map(|k| k[0].clone()).collect()
    };
    let before_delete: Vec<Fact> = facts.iter().filter(|f| f.headers["ce_revision"] != "3").cloned().collect();
    let state = current_state(&before_delete);
    assert_eq!(households(&state), ["gongan:3301060040530099"], "only the household of the latest revision");
    // Last message per key (what compaction keeps) would still list him in the old 户 as well.
    let old: Vec<&Fact> = facts.iter().filter(|f| f.key[0] == "gongan:3301060040530001").collect();
    assert_eq!(old.len(), 1, "no tombstone names the old household fact");
    assert!(old[0].value.is_some());
    // The DELETE tombstones the person fact only; by the rule nothing of the record is current.
    let tombstones: Vec<&Fact> = facts.iter().filter(|f| f.value.is_none()).collect();
    assert_eq!(tombstones.len(), 1);
    assert_eq!(tombstones[0].key[0], inproc::key().pseudonym(CITIZEN));
    assert!(current_state(&facts).is_empty(), "{:?}", current_state(&facts));
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
    let person: Vec<_> = memory.sent().into_iter().filter(|m| m.topic == "hutong.person.v2").collect();
    let address = |m: &hutong_bus::OutboundMessage| -> String {
        let v: Value = serde_json::from_slice(m.value.as_ref().unwrap()).unwrap();
        v["household_registration"]["address_text"].as_str().unwrap().to_owned()
    };
    // A consumer that counts events skips every ce_id it has seen: each content once.
    let mut seen = std::collections::BTreeSet::new();
    let counted: Vec<String> = person.iter().filter(|m| seen.insert(m.event.id.clone())).map(address).collect();
    assert_eq!(counted, ["石灰桥社区5幢1单元301室", "石灰桥社区5幢1单元302室", "石灰桥社区5幢1单元303室"]);
    // A consumer that keeps state applies the rule per fact key (equal revision: the later
    // offset) and skips a ce_id only when it is the fact it keeps: the resent first content,
    // which the department sent last, is current, as in the compacted log.
    let mut state: Option<(&str, String)> = None;
    for m in &person {
        if state.as_ref().is_none_or(|(id, _)| *id != m.event.id) {
            state = Some((&m.event.id, address(m)));
        }
    }
    assert_eq!(state.unwrap().1, "石灰桥社区5幢1单元301室");
    assert_eq!(address(person.last().unwrap()), "石灰桥社区5幢1单元301室");
    assert!(person.iter().all(|m| m.event.revision == Some(1)));
    Ok(())
}

/// A DELETE sent under the revision of the UPSERT it deletes, with the same payload, is not that
/// UPSERT's duplicate: its op is part of the record's content.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_delete_under_the_revision_of_its_upsert_is_published() -> anyhow::Result<()> {
    let memory = MemoryPublisher::default();
    let gateway = inproc::TestGateway::start_secured(
        &inproc::schemas(),
        inproc::default_config(),
        Arc::new(memory.clone()),
        security(),
    )
    .await;
    let mut client = gateway.client().await;
    let upsert = submit(&mut client, "gongan", gongan(1, "石灰桥社区5幢1单元301室")).await.results.remove(0);
    let delete = SourceRecord { op: Op::Delete as i32, ..gongan(1, "石灰桥社区5幢1单元301室") };
    let deleted = submit(&mut client, "gongan", delete).await.results.remove(0);
    assert_eq!(deleted.status, Status::Published as i32, "{deleted:?}");
    assert_ne!(deleted.receipts[0].event_id, upsert.receipts[0].event_id);
    let person: Vec<_> = memory.sent().into_iter().filter(|m| m.topic == "hutong.person.v2").collect();
    assert_eq!(person.len(), 2);
    assert!(person[1].value.is_none() && person[1].key == person[0].key, "a tombstone of the same fact");
    gateway.stop().await?;
    Ok(())
}

/// The profile service on the same facts (consumer in process, against the mock cluster, which
/// delivers tombstones): 卫健's DELETE takes only 卫健's contribution out of the merged profile;
/// 公安's DELETE leaves no fact, and the merged topic gets a tombstone for the person.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deletes_reach_the_merged_profile_and_the_last_one_tombstones_it() -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicBool, Ordering};
    let mock = MockCluster::new(1)?;
    let gateway = on_mock(&mock, &["hutong.person.v2"]).await?;
    mock.create_topic("hutong.person.profile.v1", 3, 1)?;
    mock.create_topic("hutong.profiles.dlq.v1", 1, 1)?;
    let mut client = gateway.client().await;
    for (dept, rec) in [
        ("gongan", gongan(1, "石灰桥社区5幢1单元301室")),
        ("weijian", weijian(1, Op::Upsert)),
        ("weijian", weijian(2, Op::Delete)),
        ("gongan", gongan(2, "石灰桥社区5幢1单元301室")),
    ] {
        let mut rec = rec;
        if dept == "gongan" && rec.revision == 2 {
            rec.op = Op::Delete as i32;
        }
        let resp = submit(&mut client, dept, rec).await;
        assert_eq!(resp.results[0].status, Status::Published as i32, "{dept}: {:?}", resp.results[0]);
    }
    let schemas = inproc::schemas();
    let (standard, rules) = hutong_profiles::load_rules(&schemas, None)?;
    let bus = BusConfig { bootstrap_servers: mock.bootstrap_servers(), create_topics: false, ..BusConfig::default() };
    let entities = ["person".to_owned()];
    let intake = hutong_profiles::Intake::new(&standard, &bus, &Default::default(), &entities)?;
    let registry = hutong_registry::Registry::load(&schemas)?;
    let outlet = hutong_profiles::Outlet::new(
        &standard,
        &bus,
        &Default::default(),
        &registry,
        "http://registry.test",
        &entities,
    )?;
    let dir = tempfile::tempdir()?;
    let settings = hutong_profiles::ConsumerSettings {
        bus,
        group_id: "profiles".into(),
        store: hutong_profiles::StoreUrl::Sqlite(dir.path().join("p.db")),
        batch_size: 1,
        session_timeout_ms: 6000,
        governance: None,
        tick: std::time::Duration::from_secs(30),
        objections_from_conflicts: false,
    };
    let (status, stop) = (hutong_profiles::Status::default(), AtomicBool::new(false));
    // One fact a batch: every step of the merge is published.
    let profiles = std::thread::scope(|s| {
        let consumer = s.spawn(|| hutong_profiles::consumer::run(&settings, &intake, &outlet, &rules, &status, &stop));
        let read = read(&mock, &["hutong.person.profile.v1"], 4);
        stop.store(true, Ordering::Relaxed);
        consumer.join().expect("consumer thread").map_err(anyhow::Error::from).and(read)
    })?;
    let key = inproc::key().pseudonym(CITIZEN);
    assert!(profiles.iter().all(|p| p.key == [key.clone()]), "keyed by the person key");
    let departments = |p: &Fact| -> Vec<String> {
        let sources =
            p.value.as_ref().map(|v| v["sources"].as_array().cloned().unwrap_or_default()).unwrap_or_default();
        sources.iter().filter_map(|s| s["department"].as_str().map(str::to_owned)).collect()
    };
    assert_eq!(departments(&profiles[0]), ["gongan"]);
    assert_eq!(departments(&profiles[1]), ["gongan", "weijian"]);
    assert_eq!(departments(&profiles[2]), ["gongan"], "卫健's DELETE took only its own fact");
    assert!(profiles[3].value.is_none(), "no fact left: a tombstone on the merged topic");
    assert_eq!(status.applied.load(Ordering::Relaxed), 4);
    gateway.stop().await?;
    Ok(())
}
