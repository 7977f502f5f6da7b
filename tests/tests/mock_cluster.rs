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
    let valid = serde_json::json!({"GMSFHM": "11010519491231002X", "XM": "张三", "XB": "男", "MZ": "01",
        "CSRQ": "19491231", "HJDZ_XZQH": "110105", "HJDZ_QHNXXDZ": "朝阳路1号"});
    let invalid = serde_json::json!({"GMSFHM": "110105194912310021", "XM": "李四", "XB": "女"});
    let req = inproc::request(SubmitRequest {
        batch_id: "m".into(),
        records: vec![inproc::household("A", valid), inproc::household("B", invalid)],
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

    // What the mock broker holds.
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", mock.bootstrap_servers())
        .set("group.id", "mock-test")
        .set("auto.offset.reset", "earliest")
        .create()?;
    consumer.subscribe(&["hutong.person.v2"])?;
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let msg = loop {
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            break m?.detach();
        }
        assert!(std::time::Instant::now() < deadline, "no message on the mock cluster");
    };
    let headers: Vec<(String, String)> = msg
        .headers()
        .unwrap()
        .iter()
        .map(|h| (h.key.to_owned(), String::from_utf8_lossy(h.value.unwrap()).into_owned()))
        .collect();
    assert!(headers.contains(&("ce_id".to_owned(), a.receipts[0].event_id.clone())));
    assert!(headers.contains(&("ce_specversion".to_owned(), "1.0".to_owned())));
    let value: serde_json::Value = serde_json::from_slice(msg.payload().unwrap())?;
    assert_eq!(value["name"], "张三");
    assert_eq!(value["sex"], "1");
    let fact: Vec<String> = serde_json::from_slice(msg.key().unwrap())?;
    assert_eq!((fact[0].len(), &fact[1..3]), (64, &["gongan".to_owned(), "household_registration".into()][..]));
    assert!(
        fact[3].starts_with('k') && fact[3].contains(':') && fact[3] != "A",
        "the record key travels pseudonymised"
    );

    gateway.stop().await?;
    Ok(())
}
