//! Hot reload: a broken adapter never replaces the working one, a good change
//! takes effect, requests keep the version they started with, and the file
//! watcher picks up a save without a restart.

use std::{
    collections::BTreeMap,
    path::Path,
    sync::Arc,
    time::{Duration, Instant},
};

use hutong_bus::MemoryPublisher;
use hutong_pipeline::{Outcome, Reloader};
use hutong_proto::v1::{SourceRecord, Status, SubmitRequest};
use hutong_tests::inproc;

fn record(sex: &str) -> SourceRecord {
    inproc::household("R1", serde_json::json!({"GMSFHM": "11010519491231002X", "XM": "张三", "XB": sex}))
}

fn accepted(r: &Reloader, sex: &str) -> bool {
    matches!(r.current().prepare("gongan", &record(sex), chrono::Utc::now()), Outcome::Publish(_))
}

fn reloader(dir: &Path) -> Reloader {
    Reloader::new(dir.to_owned(), inproc::key(), inproc::default_config().pipeline_settings()).unwrap()
}

const ADAPTER: &str = "departments/gongan/household_registration.toml";

#[test]
fn reload_is_atomic_and_in_flight_work_keeps_its_version() {
    let copy = inproc::schemas_copy();
    let dir = copy.path();
    let r = reloader(dir);
    assert!(!accepted(&r, "F"), "F is not a sex code yet");
    let in_flight = r.current();

    // A file that does not parse never replaces the working version.
    let path = dir.join(ADAPTER);
    let original = std::fs::read_to_string(&path).unwrap();
    std::fs::write(&path, original.replace("version = 1", "version = 1\nbogus-key = 2")).unwrap();
    let err = r.reload().unwrap_err();
    let status = r.status();
    assert_eq!(status.generation, 1);
    let last = status.last_error.unwrap();
    assert!(last.contains("household_registration.toml") && last.contains("bogus-key"), "{last} / {err}");
    assert!(accepted(&r, "女"), "the working adapter still serves");

    // A file that parses but fails the static checks is refused too.
    std::fs::write(&path, original.replace("to = \"/name\"", "to = \"/nickname\"")).unwrap();
    assert!(r.reload().is_err());
    assert_eq!(r.status().generation, 1);

    // A good change lands atomically.
    let with_map = original.replace(
        "transforms = [\"trim\", \"nfkc\", { code = { list = \"gb-t-2261.1\", unknown = \"reject\" } }]",
        "transforms = [\"trim\", \"nfkc\", \"upper\", { map = { table = { \"M\" = \"1\", \"F\" = \"2\", \"男\" = \"1\", \"女\" = \"2\" }, unknown = \"reject\" } }]",
    );
    assert_ne!(with_map, original, "the sex mapping line is where this test expects it");
    std::fs::write(&path, with_map).unwrap();
    assert_eq!(r.reload().unwrap(), 2);
    assert_eq!(r.status(), hutong_pipeline::ReloadStatus { generation: 2, last_error: None });
    assert!(accepted(&r, "F"));
    // A request that started before the reload finishes on its version.
    assert!(!matches!(in_flight.prepare("gongan", &record("F"), chrono::Utc::now()), Outcome::Publish(_)));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_file_reloads_without_a_restart() {
    let copy = inproc::schemas_copy();
    let dir = copy.path();
    let r = Arc::new(reloader(dir));
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _guard = r
        .watch(move |p| {
            let _ = tx.send(p.adapters().iter().count());
        })
        .unwrap();
    let path = dir.join(ADAPTER);
    let text = std::fs::read_to_string(&path).unwrap().replace("公安 户籍人口信息\"", "公安 户籍人口信息（新）\"");
    std::fs::write(&path, text).unwrap();
    let adapters = tokio::time::timeout(Duration::from_secs(20), rx.recv()).await.expect("a reload within 20 s");
    assert!(adapters.unwrap() >= 1);
    let deadline = Instant::now() + Duration::from_secs(5);
    while r.status().generation < 2 && Instant::now() < deadline {
        tokio::task::yield_now().await;
    }
    assert_eq!(r.status().generation, 2);
    assert!(r.current().adapters().get("gongan", "household_registration").unwrap().title.ends_with("（新）"));
}

/// An adapter changed while a stream is submitting: every record is mapped by exactly the old or
/// the new version (told apart by two output fields the change touches), none by a mix of the
/// two, none lost; records sent after the reload use the new version.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_adapter_changed_under_load_maps_each_record_by_one_version() {
    const BATCHES: u32 = 40;
    const PER_BATCH: u32 = 25;
    let copy = inproc::schemas_copy();
    let memory = MemoryPublisher::default();
    let gateway =
        inproc::TestGateway::start_with(copy.path(), inproc::default_config(), Arc::new(memory.clone())).await;
    let _watch = gateway.reloader.watch(|_| {}).unwrap();
    let mut client = gateway.client().await;
    let (tx, rx) = tokio::sync::mpsc::channel::<SubmitRequest>(4);
    let stream = tokio_stream::wrappers::ReceiverStream::new(rx);
    let mut responses = client.submit_stream(inproc::request(stream)).await.unwrap().into_inner();
    let batch = |b: u32| {
        SubmitRequest {
        batch_id: format!("b{b}"),
        records: (b * PER_BATCH..(b + 1) * PER_BATCH)
            .map(|i| {
                inproc::household(
                    &format!("L{i}"),
                    serde_json::json!({"GMSFHM": hutong_tests::citizen_id(i), "XM": "旧名", "XB": hutong_tests::sex_of(&hutong_tests::citizen_id(i)), "HJDZ_QHNXXDZ": "旧址"}),
                )
            })
            .collect(),
    }
    };
    let mut answered = Vec::new();
    for b in 0..BATCHES / 2 {
        tx.send(batch(b)).await.unwrap();
        if b >= 4 {
            answered.push(responses.message().await.unwrap().expect("a response"));
        }
    }
    let answered_before = answered.len();
    // The new version fills name and address with constants of its own.
    let path = copy.path().join(ADAPTER);
    let old = std::fs::read_to_string(&path).unwrap();
    let new =
        old.replace("from = \"XM\"           # 姓名\ntransforms = [\"trim\", \"nfkc\"]", "value = \"新名\"").replace(
            "from = \"HJDZ_QHNXXDZ\" # 户籍地区划内详细地址\ntransforms = [\"trim\", \"nfkc\"]",
            "value = \"新址\"",
        );
    assert_eq!(new.matches("value = ").count(), 2, "the adapter lines are where this test expects them");
    std::fs::write(&path, new).unwrap();
    let deadline = Instant::now() + Duration::from_secs(20);
    while gateway.reloader.status().generation < 2 {
        assert!(Instant::now() < deadline, "no reload: {:?}", gateway.reloader.status());
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    for b in BATCHES / 2..BATCHES {
        tx.send(batch(b)).await.unwrap();
    }
    drop(tx);
    while let Some(r) = responses.message().await.unwrap() {
        answered.push(r);
    }
    assert_eq!(answered.len(), BATCHES as usize);
    let results: Vec<_> = answered.iter().flat_map(|r| &r.results).collect();
    assert_eq!(results.len(), (BATCHES * PER_BATCH) as usize);
    assert!(results.iter().all(|r| r.status == Status::Published as i32));

    let persons: BTreeMap<String, (String, String)> = memory
        .sent()
        .into_iter()
        .filter(|m| m.topic == "hutong.person.v2")
        .map(|m| {
            let v: serde_json::Value = serde_json::from_slice(&m.value.unwrap()).unwrap();
            let pair = (
                v["name"].as_str().unwrap().to_owned(),
                v["household_registration"]["address_text"].as_str().unwrap().to_owned(),
            );
            (m.event.id, pair)
        })
        .collect();
    assert_eq!(persons.len(), (BATCHES * PER_BATCH) as usize, "one message per record, none lost or doubled");
    let old_pair = ("旧名".to_owned(), "旧址".to_owned());
    let new_pair = ("新名".to_owned(), "新址".to_owned());
    let (mut old_n, mut new_n) = (0, 0);
    for (i, resp) in answered.iter().enumerate() {
        let b: u32 = resp.batch_id.trim_start_matches('b').parse().unwrap();
        for r in &resp.results {
            let pair = &persons[&r.receipts[0].event_id];
            assert!(pair == &old_pair || pair == &new_pair, "{}: mapped by a mix of versions: {pair:?}", r.source_id);
            if pair == &old_pair {
                old_n += 1
            } else {
                new_n += 1
            }
            if i < answered_before {
                assert_eq!(pair, &old_pair, "{}: answered before the change", r.source_id);
            }
            if b >= BATCHES / 2 {
                assert_eq!(pair, &new_pair, "{}: sent after the reload", r.source_id);
            }
        }
    }
    assert!(answered_before >= 10, "{answered_before} batches answered before the change");
    println!("hot reload under load: {old_n} records by the old adapter, {new_n} by the new, none mixed or lost");
    gateway.stop().await.unwrap();
}
