//! Delivery under faults, against librdkafka's mock cluster: a record is
//! answered OK only after its delivery report; trouble becomes the right gRPC
//! code; nothing crashes; retries keep their event ids.

use std::{
    collections::BTreeMap,
    sync::Arc,
    time::{Duration, Instant},
};

use hutong_bus::{BusConfig, KafkaPublisher, Publisher, Spool};
use hutong_gateway::{DeliveryConfig, IngestService, Metrics, Policy, Security};
use hutong_pipeline::Reloader;
use hutong_proto::v1::{RecordResult, SourceRecord, Status as RecordStatus, SubmitRequest};
use hutong_tests::{citizen_id, inproc};
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message},
    mocking::MockCluster,
    types::{RDKafkaApiKey, RDKafkaRespErr},
};
use tonic::Code;

const PERSON: &str = "hutong.person.v2";

fn record(seq: u32, address: &str) -> SourceRecord {
    let payload = serde_json::json!({"GMSFHM": citizen_id(seq), "XM": format!("测试{seq}"), "XB": hutong_tests::sex_of(&citizen_id(seq)), "HJDZ_QHNXXDZ": address});
    inproc::household(&format!("F{seq}"), payload)
}

fn batch(range: std::ops::Range<u32>) -> SubmitRequest {
    SubmitRequest { batch_id: String::new(), records: range.map(|i| record(i, "朝阳路1号")).collect() }
}

struct Harness {
    service: IngestService,
    publisher: KafkaPublisher,
    metrics: Arc<Metrics>,
}

impl Harness {
    /// `hutong_delivery_errors_total{kind="<kind>"}` now (0 when never counted).
    fn delivery_errors(&self, kind: &str) -> u64 {
        let sample = format!("hutong_delivery_errors_total{{kind=\"{kind}\"}} ");
        self.metrics.encode().lines().find_map(|l| l.strip_prefix(&sample)?.parse().ok()).unwrap_or(0)
    }
}

fn harness(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    tune: impl FnOnce(&mut BusConfig, &mut DeliveryConfig),
) -> Harness {
    mock.create_topic(PERSON, 1, 1).unwrap();
    mock.create_topic("hutong.dlq.v1", 1, 1).unwrap();
    let mut bus =
        BusConfig { bootstrap_servers: mock.bootstrap_servers(), create_topics: false, ..BusConfig::default() };
    let mut delivery = DeliveryConfig::default();
    tune(&mut bus, &mut delivery);
    let config = inproc::config(bus.clone(), |_| {});
    let pipelines = Arc::new(Reloader::new(inproc::schemas(), inproc::key(), config.pipeline_settings()).unwrap());
    let publisher = KafkaPublisher::new(&bus).unwrap();
    let metrics = Arc::new(Metrics::default());
    let service = IngestService::new(
        pipelines,
        Arc::new(publisher.clone()) as Arc<dyn Publisher>,
        10_000,
        delivery,
        Arc::clone(&metrics),
        Security::plaintext_tokens(Policy::default()).guard,
    );
    Harness { service, publisher, metrics }
}

fn statuses(results: &[RecordResult]) -> Vec<i32> {
    results.iter().map(|r| r.status).collect()
}

/// Every message of `topic` now, by ce_id.
fn consume_all(
    mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>,
    topic: &str,
    at_least: usize,
) -> BTreeMap<String, usize> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", format!("faults-{}", uuid_like()))
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[topic]).unwrap();
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    let mut total = 0;
    while Instant::now() < deadline && total < at_least {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let id = m
                .headers()
                .and_then(|h| {
                    h.iter()
                        .find(|x| x.key == "ce_id")
                        .and_then(|x| x.value)
                        .map(|v| String::from_utf8_lossy(v).into_owned())
                })
                .unwrap();
            *seen.entry(id).or_insert(0) += 1;
            total += 1;
        }
    }
    seen
}

fn uuid_like() -> String {
    format!("{:?}", Instant::now())
}

async fn wait_until(what: &str, mut ready: impl FnMut() -> bool) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !ready() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_for_less_than_the_timeout_is_ridden_out() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |b, _| b.message_timeout_ms = 30_000);
    mock.broker_down(1).unwrap();
    let svc = h.service.clone();
    let call = tokio::spawn(async move { svc.submit_batch("gongan", batch(0..5)).await });
    // The records are in the gateway and unanswered while the broker is down.
    wait_until("records in flight", || h.service.in_flight() == 5).await;
    assert!(!call.is_finished(), "answered before delivery");
    mock.broker_up(1).unwrap();
    let resp = call.await.unwrap().unwrap();
    assert_eq!(statuses(&resp.results), vec![RecordStatus::Published as i32; 5]);
    assert_eq!(h.service.in_flight(), 0);
    println!("broker down < timeout: sent 5, acknowledged 5 after the broker returned");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broker_down_for_longer_than_the_timeout_is_unavailable_and_a_retry_publishes() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |b, _| b.message_timeout_ms = 1_500);
    mock.broker_down(1).unwrap();
    let err = h.service.submit_batch("gongan", batch(0..5)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert!(err.message().contains("retry"), "{}", err.message());
    assert_eq!(h.delivery_errors("unavailable"), 1, "the failed request is counted");
    mock.broker_up(1).unwrap();
    let resp = h.service.submit_batch("gongan", batch(0..5)).await.unwrap();
    assert_eq!(statuses(&resp.results), vec![RecordStatus::Published as i32; 5]);
    // A second retry within the window answers DUPLICATE with the original receipts.
    let again = h.service.submit_batch("gongan", batch(0..5)).await.unwrap();
    assert_eq!(statuses(&again.results), vec![RecordStatus::Duplicate as i32; 5]);
    assert_eq!(again.results[2].receipts, resp.results[2].receipts);
    let seen = consume_all(&mock, PERSON, 5);
    assert_eq!(seen.len(), 5, "every record present once after de-duplication by ce_id: {seen:?}");
    let dups: usize = seen.values().map(|n| n - 1).sum();
    println!(
        "broker down > timeout: sent 5 (UNAVAILABLE), retried 5 (PUBLISHED), retried again 5 (DUPLICATE); consumed {} messages, {dups} duplicates before de-duplication",
        seen.values().sum::<usize>()
    );
}

/// A consumer asking the mock cluster for the high watermark of partition 0 of a topic.
fn watermark_reader(mock: &MockCluster<'_, rdkafka::producer::DefaultProducerContext>) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "watermarks")
        .create()
        .unwrap()
}

fn high_watermark(reader: &BaseConsumer, topic: &str) -> i64 {
    reader.fetch_watermarks(topic, 0, Duration::from_secs(30)).unwrap().1
}

/// Errors the broker answers before appending: the producer retries them and the log holds
/// each record once (its high watermark, not a consumer that stops after n messages). A lost
/// response after the append cannot be tested here: the mock cluster checks sequence numbers
/// for transactional producers only, so it would append the idempotent producer's retry (it
/// does: the high watermark reads 9 for 6 records). `tests/tests/crash.rs` loses a response
/// in front of tansu, which checks them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn transient_produce_errors_are_retried_by_the_producer() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |_, _| {});
    mock.request_errors(
        RDKafkaApiKey::Produce,
        &[
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_NOT_ENOUGH_REPLICAS,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR__TRANSPORT,
            RDKafkaRespErr::RD_KAFKA_RESP_ERR_REQUEST_TIMED_OUT,
        ],
    );
    let resp = h.service.submit_batch("gongan", batch(0..3)).await.unwrap();
    assert_eq!(statuses(&resp.results), vec![RecordStatus::Published as i32; 3]);
    let reader = watermark_reader(&mock);
    assert_eq!(high_watermark(&reader, PERSON), 3, "three records, three messages");
    let seen = consume_all(&mock, PERSON, 3);
    assert!(seen.len() == 3 && seen.values().all(|n| *n == 1), "each ce_id once: {seen:?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_record_too_large_for_kafka_is_rejected_alone() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |b, _| {
        b.options.insert("message.max.bytes".into(), "1200".into());
    });
    let big = "很长的地址".repeat(50);
    let req = SubmitRequest {
        batch_id: String::new(),
        records: vec![record(1, "朝阳路1号"), record(2, &big), record(3, "朝阳路3号")],
    };
    let resp = h.service.submit_batch("gongan", req).await.unwrap();
    assert_eq!(
        statuses(&resp.results),
        vec![RecordStatus::Published as i32, RecordStatus::Rejected as i32, RecordStatus::Published as i32]
    );
    assert_eq!(resp.results[1].violations[0].rule, "bus:refused");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_beyond_the_queue_is_resource_exhausted_not_a_crash() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |b, d| {
        b.options.insert("queue.buffering.max.messages".into(), "5".into());
        b.queue_timeout_ms = 0;
        b.message_timeout_ms = 5_000;
        d.max_in_flight = 50;
    });
    mock.broker_down(1).unwrap();
    let err = h.service.submit_batch("gongan", batch(0..20)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted, "{err:?}");
    assert_eq!((h.delivery_errors("queue_full"), h.delivery_errors("admission")), (1, 0));
    // Admission control answers before the queue: more than the gateway holds.
    let err = h.service.submit_batch("gongan", batch(100..151)).await.unwrap_err();
    assert_eq!(err.code(), Code::ResourceExhausted);
    assert!(err.message().contains("in flight"), "{}", err.message());
    assert_eq!((h.delivery_errors("queue_full"), h.delivery_errors("admission")), (1, 1));
    mock.broker_up(1).unwrap();
    let p = h.publisher.clone();
    wait_until("the producer queue to drain", || p.queue_len() == 0).await;
    let resp = h.service.submit_batch("gongan", batch(200..203)).await.unwrap();
    assert_eq!(statuses(&resp.results), vec![RecordStatus::Published as i32; 3], "the gateway recovers");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_fatal_producer_error_rebuilds_the_producer_and_nothing_is_answered_ok() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |b, _| {
        b.options.insert("enable.gapless.guarantee".into(), "true".into());
    });
    // Warm up: a producer id and sequence numbers exist.
    let ok = h.service.submit_batch("gongan", batch(0..2)).await.unwrap();
    assert_eq!(statuses(&ok.results), vec![RecordStatus::Published as i32; 2]);
    mock.request_errors(RDKafkaApiKey::Produce, &[RDKafkaRespErr::RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER]);
    let err = h.service.submit_batch("gongan", batch(10..12)).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    assert_eq!(h.publisher.rebuilds(), 1);
    let retry = h.service.submit_batch("gongan", batch(10..12)).await.unwrap();
    assert_eq!(statuses(&retry.results), vec![RecordStatus::Published as i32; 2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_and_forward_spools_while_kafka_is_away_and_replays_in_order_after_a_restart() {
    let mock = MockCluster::new(1).unwrap();
    let h = harness(&mock, |b, _| b.message_timeout_ms = 1_000);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("spool.redb");
    let spool = Arc::new(Spool::open(&path, 5).unwrap());
    let svc = h.service.clone().with_spool(Arc::clone(&spool));
    mock.broker_down(1).unwrap();
    let first = svc.submit_batch("gongan", batch(0..3)).await.unwrap();
    assert_eq!(statuses(&first.results), vec![RecordStatus::Spooled as i32; 3]);
    assert!(first.results.iter().all(|r| r.receipts[0].offset == -1 && !r.receipts[0].event_id.is_empty()));
    // While the spool holds records, new ones queue behind them: order is kept.
    let second = svc.submit_batch("gongan", batch(3..5)).await.unwrap();
    assert_eq!(statuses(&second.results), vec![RecordStatus::Spooled as i32; 2]);
    // Bounded, with a clear error.
    let full = svc.submit_batch("gongan", batch(5..6)).await.unwrap_err();
    assert_eq!(full.code(), Code::ResourceExhausted);
    assert!(full.message().contains("spool"), "{}", full.message());
    // The gateway restarts: the spool is still there.
    drop(svc);
    drop(spool);
    let spool = Spool::open(&path, 5).unwrap();
    assert_eq!(spool.len(), 5);
    mock.broker_up(1).unwrap();
    // As the gateway's replay task does: try, and try again until the spool is empty
    // (the producer needs a moment to reconnect after the broker returns).
    let (mut replayed, mut attempts) = (0, 0);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !spool.is_empty() && Instant::now() < deadline {
        attempts += 1;
        replayed += spool.replay(&h.publisher).await.unwrap_or(0);
    }
    assert_eq!(replayed, 5, "after {attempts} attempt(s)");
    assert!(spool.is_empty());
    // In Kafka, in the order they were accepted.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "spool-order")
        .set("auto.offset.reset", "earliest")
        .create()
        .unwrap();
    consumer.subscribe(&[PERSON]).unwrap();
    let mut names = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(15);
    while names.len() < 5 && Instant::now() < deadline {
        if let Some(Ok(m)) = consumer.poll(Duration::from_millis(100)) {
            let v: serde_json::Value = serde_json::from_slice(m.payload().unwrap()).unwrap();
            names.push(v["name"].as_str().unwrap().to_owned());
        }
    }
    assert_eq!(names, ["测试0", "测试1", "测试2", "测试3", "测试4"]);
    println!(
        "store and forward: spooled 5 while the broker was down, refused 1 (spool full), replayed 5 after a restart, consumed 5 in order"
    );
}

/// A batch that fails part-way is audited with every event id handed to Kafka: a retry reuses
/// them, and some may have arrived.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failed_batch_is_audited_with_the_event_ids_handed_to_kafka() {
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic(PERSON, 1, 1).unwrap();
    mock.create_topic("hutong.dlq.v1", 1, 1).unwrap();
    let bus = BusConfig {
        bootstrap_servers: mock.bootstrap_servers(),
        create_topics: false,
        message_timeout_ms: 1_500,
        ..BusConfig::default()
    };
    let audit = tempfile::tempdir().unwrap();
    let publisher: Arc<dyn Publisher> = Arc::new(KafkaPublisher::new(&bus).unwrap());
    let security = inproc::audited_token_security(audit.path());
    let config = inproc::config(bus, |_| {});
    let gateway = inproc::TestGateway::start_secured(&inproc::schemas(), config, publisher, security).await;
    mock.broker_down(1).unwrap();
    // Two valid records and one the standard rejects (its dead letter goes to Kafka too).
    let mut records: Vec<SourceRecord> = batch(0..2).records;
    records.push(inproc::household("BAD", serde_json::json!({"GMSFHM": "110105194912310021", "XM": "错号"})));
    let expected: Vec<String> = records
        .iter()
        .map(|r| {
            let index = if r.source_id == "BAD" { hutong_bus::DEAD_LETTER_INDEX } else { 0 };
            let digest = hutong_pipeline::record_digest(r);
            // 公安's record key is the citizen ID: its event ids derive from the pseudonym.
            let source = inproc::key().tagged_pseudonym(&r.source_id);
            hutong_bus::event_id("gongan", "household_registration", &source, 1, &digest, index)
        })
        .collect();
    let mut client = gateway.client().await;
    let err = client.submit(inproc::request(SubmitRequest { batch_id: "down".into(), records })).await.unwrap_err();
    assert_eq!(err.code(), Code::Unavailable, "{err:?}");
    gateway.stop().await.unwrap();

    let text: String = std::fs::read_dir(audit.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "jsonl"))
        .map(|p| std::fs::read_to_string(p).unwrap())
        .collect();
    let entry: serde_json::Value = text
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap()["event"].clone())
        .find(|e| e["type"] == "submit")
        .expect("the batch is audited");
    assert_eq!(entry["outcome"], "Unavailable");
    assert_eq!(entry["batch_id"], "down");
    assert_eq!(entry["event_ids_unconfirmed"], serde_json::json!(expected), "{entry}");
    assert!(entry.get("event_ids").is_none(), "no answered ids: {entry}");
}

/// Hutong's partition of an entity key is the one librdkafka's own murmur2 partitioner (the
/// Java client's) gives that key: produced both ways to a 3-partition topic of the mock cluster.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn entity_partitions_agree_with_librdkafkas_java_compatible_partitioner() {
    use rdkafka::producer::{FutureProducer, FutureRecord};
    let mock = MockCluster::new(1).unwrap();
    mock.create_topic("keys", 3, 1).unwrap();
    let java: FutureProducer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("partitioner", "murmur2")
        .create()
        .unwrap();
    let bus = BusConfig { bootstrap_servers: mock.bootstrap_servers(), create_topics: false, ..BusConfig::default() };
    let hutong = KafkaPublisher::new(&bus).unwrap();
    for i in 0..30u32 {
        let entity = format!("{:x}", hutong_bus::murmur2(citizen_id(i).as_bytes()));
        let p_java = java
            .send(FutureRecord::<str, str>::to("keys").key(&entity).payload("x"), Duration::from_secs(10))
            .await
            .unwrap()
            .partition;
        let fact = hutong_bus::fact_key(&entity, "d", "k", &format!("s{i}"));
        let msg = hutong_bus::OutboundMessage {
            topic: "keys".into(),
            entity: "person".into(),
            key: Some(fact),
            event: hutong_tests::bare_event(&format!("e{i}")),
            value: Some(b"{}".to_vec()),
        };
        let receipt = hutong.publish(msg).await.unwrap();
        assert_eq!(receipt.partition, p_java, "{entity}");
        assert_eq!(receipt.partition, hutong_bus::partition_for(&entity, 3));
    }
}
