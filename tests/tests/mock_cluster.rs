//! In-process: the gateway's gRPC server on 127.0.0.1:0 publishing through the
//! real rdkafka producer to librdkafka's mock cluster.

use hutong_tests::inproc;
use std::{sync::Arc, time::Duration};

use hutong_bus::{BusConfig, KafkaPublisher, Publisher};
use hutong_proto::v1::{Status, SubmitRequest};
use rdkafka::{
    ClientConfig,
    consumer::{BaseConsumer, Consumer},
    message::{Headers, Message},
    mocking::MockCluster,
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn grpc_submit_publishes_to_the_mock_cluster_after_delivery() -> anyhow::Result<()> {
    // The mock cluster is !Send: it stays on this test's thread.
    let mock = MockCluster::new(1)?;
    mock.create_topic("hutong.person.v2", 1, 1)?;
    mock.create_topic("hutong.dlq.v1", 1, 1)?;
    let bus = BusConfig { bootstrap_servers: mock.bootstrap_servers(), create_topics: false, ..BusConfig::default() };
    let config = inproc::config(bus.clone(), |_| {});

    let publisher: Arc<dyn Publisher> = Arc::new(KafkaPublisher::new(&bus)?);
    let gateway = inproc::TestGateway::start_with(&inproc::schemas(), config, publisher).await;
    let mut client = gateway.client().await;
    let valid = serde_json::json!({"GMSFHM": "11010519491231002X", "XM": "张三", "XB": "女", "MZ": "01",
        "CSRQ": "19491231", "HJDZ_XZQH": "110105", "HJDZ_QHNXXDZ": "朝阳路1号"});
    let invalid = serde_json::json!({"GMSFHM": "110105194912310021", "XM": "李四", "XB": "女"});
    // A birth date one day off the ID's (born 1950-01-01): flagged by the standard, not rejected.
    let slip_id = hutong_tests::citizen_id(5);
    let slip = serde_json::json!({"GMSFHM": slip_id, "XM": "王五", "XB": hutong_tests::sex_of(&slip_id),
        "CSRQ": "19500102"});
    let req = inproc::request(SubmitRequest {
        batch_id: "m".into(),
        records: vec![inproc::household("A", valid), inproc::household("B", invalid), inproc::household("C", slip)],
    });
    let resp = client.submit(req).await?.into_inner();

    let a = &resp.results[0];
    assert_eq!(a.status, Status::Published as i32, "{:?}", a.violations);
    assert_eq!(a.receipts[0].topic, "hutong.person.v2");
    assert_eq!(a.receipts[0].offset, 0, "the receipt carries the delivery report's offset");
    let b = &resp.results[1];
    assert_eq!(b.status, Status::Rejected as i32);
    assert_eq!(b.receipts[0].topic, "hutong.dlq.v1");
    assert!(b.violations.iter().any(|v| v.rule == "format:gb11643" && v.pointer == "/citizen_id"));
    assert!(a.warnings.is_empty() && b.warnings.is_empty());
    let c = &resp.results[2];
    assert_eq!(c.status, Status::Published as i32, "{:?}", c.violations);
    let warned: Vec<(&str, &str)> = c.warnings.iter().map(|w| (w.pointer.as_str(), w.rule.as_str())).collect();
    assert_eq!(warned, [("/birth_date", "consistency:citizen-id-birth-date")]);
    assert!(!c.warnings[0].message.contains("1950"), "no personal data in the warning");

    // What the mock broker holds.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "mock-test")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&["hutong.person.v2"])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let mut messages = Vec::new();
    while messages.len() < 2 {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            messages.push(m?.detach());
        }
        assert!(std::time::Instant::now() < deadline, "{} of 2 messages on the mock cluster", messages.len());
    }
    let headers_of = |m: &rdkafka::message::OwnedMessage| -> Vec<(String, String)> {
        m.headers()
            .unwrap()
            .iter()
            .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap()).into_owned()))
            .collect()
    };
    let (msg, flagged) = (&messages[0], &messages[1]);
    let headers = headers_of(msg);
    assert!(headers.contains(&("ce_id".to_owned(), a.receipts[0].event_id.clone())));
    assert!(headers.contains(&("ce_specversion".to_owned(), "1.0".to_owned())));
    assert!(!headers.iter().any(|(k, _)| k == "ce_flags"));
    let flagged = headers_of(flagged);
    assert!(flagged.contains(&("ce_id".to_owned(), c.receipts[0].event_id.clone())));
    assert!(flagged.contains(&("ce_flags".to_owned(), "consistency:citizen-id-birth-date".to_owned())));
    let value: serde_json::Value = serde_json::from_slice(msg.payload().unwrap())?;
    assert_eq!(value["name"], "张三");
    assert_eq!(value["sex"], "2");
    let fact: Vec<String> = serde_json::from_slice(msg.key().unwrap())?;
    assert_eq!((fact[0].len(), &fact[1..3]), (64, &["gongan".to_owned(), "household_registration".into()][..]));
    assert!(
        fact[3].starts_with('k') && fact[3].contains(':') && fact[3] != "A",
        "the record key travels pseudonymised"
    );

    gateway.stop().await?;
    Ok(())
}
