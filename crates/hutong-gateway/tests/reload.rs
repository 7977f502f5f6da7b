//! Hot reload: a broken adapter never replaces the working one, a good change
//! takes effect, requests keep the version they started with, and the file
//! watcher picks up a save without a restart.

use std::{
    path::{Path, PathBuf},
    sync::Arc,
    time::{Duration, Instant},
};

use hutong_adapter::PseudonymKey;
use hutong_gateway::{GatewayConfig, Outcome, Reloader};
use hutong_proto::v1::{Op, SourceRecord};

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() { copy_dir(&p, &to) } else { std::fs::copy(&p, &to).map(|_| ()).unwrap() }
    }
}

fn schemas_copy(tag: &str) -> PathBuf {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let dst = std::env::temp_dir().join(format!("hutong-reload-{tag}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dst);
    copy_dir(&src, &dst);
    dst
}

fn record(sex: &str) -> SourceRecord {
    SourceRecord {
        kind: "household_registration".into(),
        source_id: "R1".into(),
        revision: 1,
        op: Op::Upsert as i32,
        occurred_at: None,
        payload: serde_json::to_vec(&serde_json::json!({"GMSFHM": "11010519491231002X", "XM": "张三", "XB": sex}))
            .unwrap(),
        charset: String::new(),
    }
}

fn accepted(r: &Reloader, sex: &str) -> bool {
    matches!(r.current().prepare("gongan", &record(sex), chrono::Utc::now()), Outcome::Publish(_))
}

fn reloader(dir: &Path) -> Reloader {
    let key = PseudonymKey::new(b"reload-test-key-0123".to_vec()).unwrap();
    Reloader::new(dir.to_owned(), key, GatewayConfig::default().pipeline_settings()).unwrap()
}

const ADAPTER: &str = "departments/gongan/household_registration.toml";

#[test]
fn reload_is_atomic_and_in_flight_work_keeps_its_version() {
    let dir = schemas_copy("atomic");
    let r = reloader(&dir);
    assert!(!accepted(&r, "M"), "M is not a sex code yet");
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
    assert_eq!(r.status(), hutong_gateway::ReloadStatus { generation: 2, last_error: None });
    assert!(accepted(&r, "M"));
    // A request that started before the reload finishes on its version.
    assert!(!matches!(in_flight.prepare("gongan", &record("M"), chrono::Utc::now()), Outcome::Publish(_)));
    std::fs::remove_dir_all(dir).unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn saving_a_file_reloads_without_a_restart() {
    let dir = schemas_copy("watch");
    let r = Arc::new(reloader(&dir));
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
    std::fs::remove_dir_all(dir).unwrap();
}
