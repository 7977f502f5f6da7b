//! Bad input never takes the gateway down or costs another record: gzip
//! bombs on the transport, oversized batches, deep or invalid payloads.

use std::sync::Arc;

use hutong_bus::{BusConfig, MemoryPublisher};
use hutong_proto::v1::{SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_tests::inproc;
use tonic::codec::CompressionEncoding;

fn rec(source_id: &str, payload: Vec<u8>, charset: &str) -> SourceRecord {
    SourceRecord { payload, charset: charset.into(), ..inproc::household(source_id, serde_json::json!({})) }
}

fn good(id: &str) -> SourceRecord {
    rec(id, br#"{"GMSFHM":"11010519491231002X","XM":"\u5f20\u4e09","XB":"2"}"#.to_vec(), "")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hostile_input_gets_clear_errors_and_other_records_go_through() -> anyhow::Result<()> {
    let config = inproc::config(BusConfig::default(), |f| {
        f.limits.max_message_bytes = 1 << 20;
        f.limits.max_records_per_batch = 100;
    });
    let memory = MemoryPublisher::default();
    let gateway = inproc::TestGateway::start_with(&inproc::schemas(), config, Arc::new(memory.clone())).await;
    let channel = tonic::transport::Endpoint::from_shared(format!("http://{}", gateway.addr))?.connect().await?;
    let mut client =
        IngestClient::new(channel).send_compressed(CompressionEncoding::Gzip).max_encoding_message_size(64 << 20);
    let call = |records: Vec<SourceRecord>| inproc::request(SubmitRequest { batch_id: String::new(), records });

    // Token mode: a wrong or missing token is UNAUTHENTICATED.
    for token in [Some("Bearer wrong-token"), Some("gongan-token"), None] {
        let mut r = tonic::Request::new(SubmitRequest { batch_id: String::new(), records: vec![good("t")] });
        if let Some(t) = token {
            r.metadata_mut().insert("authorization", t.parse().unwrap());
        }
        assert_eq!(client.submit(r).await.unwrap_err().code(), tonic::Code::Unauthenticated, "{token:?}");
    }

    // A gzip bomb: 32 MiB of zeros compress to ~32 KiB; the decoded size limit refuses it.
    let bomb = rec("bomb", vec![b' '; 32 << 20], "");
    let err = client.submit(call(vec![bomb])).await.unwrap_err();
    assert!(
        matches!(err.code(), tonic::Code::OutOfRange | tonic::Code::ResourceExhausted | tonic::Code::InvalidArgument),
        "{err:?}"
    );
    // Too many records in one request.
    let err = client.submit(call((0..101).map(|i| good(&format!("n{i}"))).collect())).await.unwrap_err();
    assert_eq!(err.code(), tonic::Code::InvalidArgument);

    // Per-record errors in one batch, beside a good record that is published.
    let deep = format!("{{\"a\":{}1{}}}", "[".repeat(200), "]".repeat(200));
    let (gbk, _, _) = encoding_rs::GBK.encode(r#"{"GMSFHM":"11010519491231002X","XM":"张三","XB":"女"}"#);
    let batch = vec![
        rec("invalid-utf8", vec![0xff, 0xfe, 0x00], ""),
        rec("deep", deep.into_bytes(), ""),
        rec("big", vec![b' '; 300 * 1024], ""),
        rec("wrong-charset", b"{}".to_vec(), "ebcdic"),
        rec("gbk", gbk.into_owned(), "gbk"),
        SourceRecord { kind: "no_such_kind".into(), ..good("unknown-kind") },
        good("fine"),
    ];
    let resp = client.submit(call(batch)).await?.into_inner();
    let by_id: std::collections::BTreeMap<_, _> = resp
        .results
        .iter()
        .map(|r| (r.source_id.as_str(), (r.status, r.violations.first().map(|v| v.rule.clone()))))
        .collect();
    assert_eq!(by_id["invalid-utf8"], (Status::Rejected as i32, Some("payload:charset".into())));
    assert_eq!(by_id["deep"], (Status::Rejected as i32, Some("payload:depth".into())));
    assert_eq!(by_id["big"], (Status::Rejected as i32, Some("payload:size".into())));
    assert_eq!(by_id["wrong-charset"], (Status::Rejected as i32, Some("payload:charset".into())));
    assert_eq!(by_id["unknown-kind"], (Status::Rejected as i32, Some("record:kind".into())));
    assert_eq!(by_id["gbk"].0, Status::Published as i32, "a GBK export decodes");
    assert_eq!(by_id["fine"].0, Status::Published as i32);
    let published = memory.sent().iter().filter(|m| m.topic == "hutong.person.v2").count();
    assert_eq!(published, 2);

    gateway.stop().await?;
    Ok(())
}
