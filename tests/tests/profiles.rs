//! 一人一档 end to end, as real processes: tansu, `hutong serve`, every department's sample
//! submitted, and `hutong profiles serve` merging the entity topics into profiles; asked through
//! `hutong profile …`. Then the faults: kill -9 under load, a poison fact, the store away, two
//! instances of one group with one killed. After each, the state equals a from-scratch rebuild
//! of the same topics by a fresh instance (every profile compared).

use std::time::Duration;

use hutong_profiles::{Store, StoreUrl};
use hutong_tests::{
    Broker, Gateway, consume_all, expected_person_key,
    pg::Postgres,
    profiles::{ProfileService, caught_up, ingest_samples},
    wait_until,
};
use serde_json::Value;

/// 胡金凤: 公安 registers her, 卫健 follows her health, 民政 her elderly care, 人社 her pension;
/// 住建 has her flat (5幢 302) and 民政 her grid.
const HU_JINFENG: &str = "330106194803080242";

const ENTITY_TOPICS: [&str; 5] =
    ["hutong.building.v2", "hutong.grid.v2", "hutong.household.v2", "hutong.organization.v2", "hutong.person.v2"];

fn sqlite(dir: &tempfile::TempDir, name: &str) -> String {
    format!("sqlite:{}", dir.path().join(name).display())
}

/// Runs `f` on a connection of its own to the store at `url`. The PostgreSQL client blocks on a
/// runtime of its own: off the test's async threads.
fn with_store<T>(url: &str, f: impl FnOnce(&mut Store) -> Result<T, hutong_profiles::StoreError>) -> anyhow::Result<T> {
    tokio::task::block_in_place(|| Ok(f(&mut Store::open(&url.parse::<StoreUrl>()?)?)?))
}

fn persons(url: &str) -> anyhow::Result<u64> {
    with_store(url, |s| Ok(s.counts()?.get("person").copied().unwrap_or(0)))
}

/// Waits until `group` has committed every message of the entity topics.
fn wait_caught_up(broker: &Broker, group: &str, service: &ProfileService) -> anyhow::Result<()> {
    wait_until(&format!("group {group} to catch up"), Duration::from_secs(120), || {
        caught_up(&broker.bootstrap, group, &ENTITY_TOPICS)
    })
    .map_err(|e| {
        let broker_log = std::fs::read_to_string(&broker.process.log).unwrap_or_default();
        e.context(format!("the service's log:\n{}\nthe broker's log:\n{broker_log}", service.log()))
    })
}

/// A fresh instance (its own group and store) reads the same topics from the beginning: its
/// profiles must be the ones of `store`, every one.
async fn assert_equals_rebuild(
    broker: &Broker,
    gateway: &Gateway,
    store: &str,
    dir: &tempfile::TempDir,
    held: &ProfileService,
) -> anyhow::Result<usize> {
    let url = sqlite(dir, "rebuild.db");
    let rebuild = ProfileService::start(gateway, "rebuild", &url, "rebuild", "publish = false").await?;
    wait_caught_up(broker, "rebuild", &rebuild)?;
    let expected = with_store(&url, Store::all_profiles)?;
    let got = with_store(store, Store::all_profiles)?;
    assert!(!expected.is_empty());
    let differ: Vec<&(String, String)> =
        expected.keys().chain(got.keys()).filter(|k| expected.get(*k) != got.get(*k)).collect();
    if let Some(k) = differ.first() {
        panic!(
            "{} of {} profiles differ from the rebuild, e.g. {k:?}:\nrebuilt {}\nheld    {}\nthe service's log:\n{}",
            differ.len(),
            expected.len(),
            expected.get(*k).map_or("none".into(), Value::to_string),
            got.get(*k).map_or("none".into(), Value::to_string),
            held.log()
        );
    }
    Ok(expected.len())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_resident_merged_from_four_departments_with_household_building_and_grid() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    assert!(ingest_samples(&gateway)? > 150);
    let dir = tempfile::tempdir()?;
    let store = sqlite(&dir, "profiles.db");
    let service = ProfileService::start(&gateway, "main", &store, "hutong-profiles", "").await?;
    wait_caught_up(&broker, "hutong-profiles", &service)?;

    // By citizen ID, as 民政 asks: four departments, every field with its source.
    let answer = service.ask("minzheng", &["person", "--citizen-id", HU_JINFENG])?;
    let p = &answer["profile"];
    assert_eq!(p["key"], expected_person_key(HU_JINFENG));
    let mut departments: Vec<&str> =
        p["sources"].as_array().unwrap().iter().filter_map(|s| s["department"].as_str()).collect();
    departments.dedup();
    assert_eq!(departments, ["gongan", "minzheng", "renshe", "weijian"], "{p}");
    assert_eq!(p["record"]["name"], "胡金凤");
    for field in ["name", "sex", "birth_date", "household_key"] {
        assert_eq!(
            p["fields"][field]["source"]["department"], "gongan",
            "{field} by authority: {}",
            p["fields"][field]
        );
    }
    // 民政's spreadsheet put her birthday a day late (the Excel 1900 leap-year slip): a
    // conflict, 公安 kept.
    let conflict =
        p["conflicts"].as_array().unwrap().iter().find(|c| c["field"] == "birth_date").expect("a birth_date conflict");
    assert_eq!(conflict["winner"]["value"], "1948-03-08");
    assert_eq!(conflict["loser"]["value"], "1948-03-09");
    assert_eq!(conflict["loser"]["source"]["department"], "minzheng");
    // 不予共享: the citizen ID (even pseudonymised) is 公安's, withheld from 民政 …
    assert!(p["record"].get("citizen_id").is_none(), "{}", p["record"]);
    assert!(p["fields"]["citizen_id"]["withheld"].is_string());
    // … and shown to 公安.
    let own = service.ask("gongan", &["person", &expected_person_key(HU_JINFENG)])?;
    assert!(own["profile"]["record"]["citizen_id"].is_string());

    // Her household: members with their relation to the head, her among them.
    let household = p["record"]["household_key"].as_str().expect("a household").to_owned();
    let h = service.ask("minzheng", &["household", &household])?;
    assert!(h["profile"]["record"]["household_number"].is_string());
    let members: Vec<&Value> = h["people"].as_array().unwrap().iter().collect();
    let her = members.iter().find(|m| m["person_key"] == p["key"]).expect("she is a member");
    assert!(her["link"].as_array().unwrap().iter().any(|l| l["relation"].is_string()), "{her}");
    // Her building, through 住建's flat register: room 302.
    let links = with_store(&store, |s| s.people_of("grid", "330106004053001", 1000))?.0;
    assert!(links.iter().any(|l| l.person_key == p["key"].as_str().unwrap()), "she lives in grid 330106004053001");
    let building = links
        .iter()
        .find(|l| l.person_key == p["key"].as_str().unwrap())
        .and_then(|l| l.link.as_array()?.iter().find(|x| x["via"] == "building").cloned());
    assert_eq!(building.as_ref().map(|b| b["room"].clone()), Some(Value::from("1单元302")), "{building:?}");
    // The grid: its population, through people, buildings and households.
    let g = service.ask("wangge", &["grid", "330106004053001"])?;
    assert!(g["population"].as_u64().unwrap() >= 10, "population {}", g["population"]);
    assert_eq!(g["profile"]["record"]["grid_code"], "330106004053001");

    // Conflicts, counted per department.
    let c = service.ask("gongan", &["conflicts", "--department", "minzheng"])?;
    assert!(c["per_department"]["minzheng"].as_u64().unwrap() >= 1);
    assert!(
        c["conflicts"]
            .as_array()
            .unwrap()
            .iter()
            .all(|c| c["loser"]["source"]["department"] == "minzheng" || c["source"]["department"] == "minzheng")
    );

    // Every profile change reached its merged topic, keyed by the entity key.
    let counts = with_store(&store, Store::counts)?;
    let published = consume_all(&broker.bootstrap, "hutong.person.profile.v1")?;
    let keys: std::collections::BTreeSet<&str> = published.iter().filter_map(|m| m.key.as_deref()).collect();
    assert_eq!(keys.len() as u64, counts["person"], "one key per person profile");
    assert!(published.iter().all(|m| m.headers.get("ce_type").map(String::as_str) == Some("cn.hutong.person.profile")));
    // Every profile topic's documents follow the schema their ce_dataschema names: the version
    // registered for the topic's subject.
    let schemas = hutong_tests::inproc::schemas();
    let (registry, standard) = (hutong_registry::Registry::load(&schemas)?, hutong_standard::Standard::load(&schemas)?);
    for entity in ["building", "grid", "household", "organization", "person"] {
        let topic = format!("hutong.{entity}.profile.v1");
        let docs = consume_all(&broker.bootstrap, &topic)?;
        assert!(!docs.is_empty(), "{topic} is empty");
        for m in &docs {
            let url = &m.headers["ce_dataschema"];
            let id = url.rsplit('/').next().and_then(|id| id.parse().ok()).expect("a registry id");
            let registered = registry.by_id(id).unwrap_or_else(|| panic!("{url} is not registered"));
            assert_eq!(registered.subject, format!("{topic}-value"));
            let check = standard.view_validator(&registered.schema)?;
            let doc = m.value.as_ref().expect("no tombstone here");
            assert_eq!(check.validate(doc), [], "{topic} {:?}", m.key);
        }
    }

    // The reads are audited (never with the ID); the service's log has no citizen ID either.
    let audit = std::fs::read_dir(gateway.dir.path().join("audit-profiles-main"))?
        .map(|e| std::fs::read_to_string(e?.path()).map_err(anyhow::Error::from))
        .collect::<anyhow::Result<Vec<_>>>()?
        .join("\n");
    assert!(audit.contains("\"FindPerson\""), "{audit}");
    assert!(!audit.contains(HU_JINFENG) && !service.log().contains(HU_JINFENG));
    // An anonymous caller (no client certificate) is refused.
    let anonymous = hutong_tests::hutong(&[
        "profile",
        "grid",
        "330106004053001",
        "--addr",
        &service.endpoint,
        "--pki",
        gateway.pki.to_str().unwrap(),
    ])?;
    assert!(!anonymous.status.success());
    let n = assert_equals_rebuild(&broker, &gateway, &store, &dir, &service).await?;
    assert!(n > 50, "{n} profiles");
    Ok(())
}

/// Load from `hutong bench` (synthetic 公安 rows: a person and a household each) while the
/// service runs; kill -9 midway, restart: the final state equals a rebuild.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill9_under_load_then_restart_equals_a_rebuild() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let dir = tempfile::tempdir()?;
    let store = sqlite(&dir, "profiles.db");
    let mut service = ProfileService::start(&gateway, "main", &store, "main", "batch-size = 200").await?;
    let mut bench = load(&gateway, 6000)?;
    // Midway: some profiles in, not all.
    wait_until("profiles to arrive", Duration::from_secs(120), || Ok(persons(&store)? > 500))?;
    service.kill9_and_restart().await?;
    let status = bench.wait()?;
    assert!(status.success(), "the load ran");
    wait_caught_up(&broker, "main", &service)?;
    let n = assert_equals_rebuild(&broker, &gateway, &store, &dir, &service).await?;
    assert!(n >= 6000, "{n} profiles");
    Ok(())
}

/// `hutong bench` submitting `records` synthetic 公安 rows to `gateway`, in the background.
fn load(gateway: &Gateway, records: usize) -> anyhow::Result<hutong_tests::Process> {
    let mut cmd = std::process::Command::new(hutong_tests::hutong_bin()?);
    cmd.args(["bench", "--records", &records.to_string(), "--batch", "100", "--concurrency", "2", "--skip-raw"])
        .args(gateway.cli_args("gongan"))
        .env("HUTONG_PSEUDONYM_KEY", hutong_tests::TEST_KEY);
    hutong_tests::Process::spawn(cmd, gateway.dir.path().join("bench.log"))
}

/// A message that is not a fact (no fact key; a value that fails the schema) goes to the
/// service's dead-letter topic with the reason, and the next fact of the same partition is
/// applied.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poison_fact_goes_to_the_dead_letter_topic_and_the_partition_moves_on() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let dir = tempfile::tempdir()?;
    let store = sqlite(&dir, "profiles.db");
    let service = ProfileService::start(&gateway, "main", &store, "main", "").await?;
    let key = expected_person_key(HU_JINFENG);
    let partition = hutong_bus::partition_for(&key, 3);
    let producer: rdkafka::producer::BaseProducer =
        rdkafka::ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create()?;
    let bad_value = format!(r#"["{key}","weijian","elderly_health","x1"]"#);
    for (k, v) in
        [("not a fact key", "{}".to_owned()), (bad_value.as_str(), format!(r#"{{"person_key":"{key}","name":""}}"#))]
    {
        let record =
            rdkafka::producer::BaseRecord::to("hutong.person.v2").partition(partition).key(k).payload(v.as_str());
        producer.send(record).map_err(|(e, _)| e)?;
    }
    rdkafka::producer::Producer::flush(&producer, Duration::from_secs(10))?;
    // Then the real thing, on the same partition: 公安's row of her.
    let rows = hutong_tests::sample_records("schemas/departments/gongan/samples/household_registration.ndjson")?;
    let row = rows.into_iter().find(|(r, _)| r.source_id == HU_JINFENG).expect("her row").0;
    let mut client = hutong_proto::v1::ingest_client::IngestClient::new(gateway.channel("gongan").await?);
    client.submit(hutong_proto::v1::SubmitRequest { batch_id: "b".into(), records: vec![row] }).await?;
    wait_until("her profile", Duration::from_secs(60), || {
        Ok(with_store(&store, |s| s.profile("person", &key))?.is_some())
    })
    .map_err(|e| e.context(service.log()))?;
    let dead = hutong_tests::wait_for_count(&broker.bootstrap, "hutong.profiles.dlq.v1", 2, Duration::from_secs(30))?;
    assert_eq!(dead, 2);
    let dlq = consume_all(&broker.bootstrap, "hutong.profiles.dlq.v1")?;
    // Keyed by the refused message's key: across partitions, in no order.
    let reason_of = |key: &str| {
        let m = dlq.iter().find(|m| m.key.as_deref() == Some(key)).expect("its dead letter");
        assert_eq!(m.headers.get("hutong_partition"), Some(&partition.to_string()), "where it came from");
        assert_eq!(m.headers.get("hutong_topic").map(String::as_str), Some("hutong.person.v2"));
        m.headers.get("hutong_reason").cloned().unwrap_or_default()
    };
    assert!(reason_of("not a fact key").contains("not a fact key"));
    // No headers at all: the first thing missing is named.
    assert!(reason_of(&bad_value).contains("no ce_revision header"));
    assert!(service.log().contains("to the dead-letter topic"));
    Ok(())
}

/// PostgreSQL stopped under the service: it reports not-serving, stops consuming; started
/// again, it resumes without loss (the state equals a rebuild).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_store_away_then_back_loses_nothing() -> anyhow::Result<()> {
    let mut pg = Postgres::start()?;
    let store = pg.database("profiles")?;
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let service = ProfileService::start(&gateway, "main", &store, "main", "batch-size = 100").await?;
    let mut bench = load(&gateway, 3000)?;
    wait_until("profiles to arrive", Duration::from_secs(120), || Ok(persons(&store)? > 300))?;
    pg.stop()?;
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while service.is_serving().await {
        anyhow::ensure!(std::time::Instant::now() < deadline, "still serving with the store away:\n{}", service.log());
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert!(bench.wait()?.success());
    pg.start_again()?;
    let mut service = service;
    service.wait_serving(Duration::from_secs(60)).await?;
    wait_caught_up(&broker, "main", &service)?;
    assert!(service.log().contains("store unavailable"), "{}", service.log());
    let dir = tempfile::tempdir()?;
    let n = assert_equals_rebuild(&broker, &gateway, &store, &dir, &service).await?;
    assert!(n >= 3000, "{n}");
    Ok(())
}

/// Two instances in one group on PostgreSQL; one killed (kill -9) mid-run: the survivor takes
/// its partitions, nothing is lost or applied twice (the state equals a rebuild). Against
/// librdkafka's mock cluster: tansu 0.6's group coordinator keeps a killed member in the group
/// after its session expired (its partitions are assigned to it again and never read), which
/// Kafka does not.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_one_killed_the_survivor_takes_over() -> anyhow::Result<()> {
    use hutong_tests::inproc;
    let mock = rdkafka::mocking::MockCluster::new(1)?;
    for t in ENTITY_TOPICS.iter().chain(&["hutong.dlq.v1"]) {
        mock.create_topic(t, 3, 1)?;
    }
    for e in ["building", "grid", "household", "organization", "person"] {
        mock.create_topic(&format!("hutong.{e}.profile.v1"), 3, 1)?;
    }
    mock.create_topic("hutong.profiles.dlq.v1", 3, 1)?;
    let bootstrap = mock.bootstrap_servers();
    let bus =
        hutong_bus::BusConfig { bootstrap_servers: bootstrap.clone(), create_topics: false, ..Default::default() };
    let publisher: std::sync::Arc<dyn hutong_bus::Publisher> =
        std::sync::Arc::new(hutong_bus::KafkaPublisher::new(&bus)?);
    let security = inproc::departments_security(&[("gongan", &["household_registration"])]);
    let gateway =
        inproc::TestGateway::start_secured(&inproc::schemas(), inproc::config(bus, |_| {}), publisher, security).await;
    let pg = Postgres::start()?;
    let store = pg.database("profiles")?;
    let dir = tempfile::tempdir()?;
    let pki = hutong_tests::shared_pki()?;
    let base = format!(
        "schemas-dir = {:?}\n[kafka]\nbootstrap-servers = {bootstrap:?}\ncreate-topics = false\n\
         [auth]\nmode = \"mtls\"\npolicy-file = {:?}\nca-file = {:?}\ncert-file = {:?}\nkey-file = {:?}\n\
         [audit]\ndir = {:?}\npublish = false\n",
        inproc::schemas(),
        hutong_tests::repo_root().join("deploy/local/policy.toml"),
        pki.join("ca.pem"),
        pki.join("server.pem"),
        pki.join("server.key"),
        dir.path().join("audit"),
    );
    // The mock cluster has no CreateTopics or DescribeConfigs: its topics are made above.
    let extra = "batch-size = 50\nensure-topics = false";
    let start = |name: &'static str, store: String, group: &'static str| {
        let (dir, base) = (dir.path().to_owned(), base.clone());
        async move { ProfileService::start_with(&dir, pki, &base, name, &store, group, extra).await }
    };
    let mut a = start("a", store.clone(), "shared").await?;
    let b = start("b", store.clone(), "shared").await?;
    let mut client = gateway.client().await;
    // 3000 synthetic 公安 rows (a person and a household each), in batches while both run.
    let row = |i: u32| {
        let id = hutong_standard::checks::synthetic_citizen_id(i);
        let payload = serde_json::json!({"GMSFHM": id, "XM": format!("压测{i}"), "XB": hutong_tests::sex_of(&id), "MZ": "01",
            "CSRQ": &id[6..14], "HJDZ_XZQH": "330106004053", "HJDZ_QHNXXDZ": "石灰桥新村5幢",
            "HH": format!("33010600405{:05}", i / 3), "HB": "1", "YHZGX": "02", "HZ_GMSFHM": id});
        inproc::household(&id, payload)
    };
    let mut killed = false;
    for batch in 0..30u32 {
        let records = (batch * 100..batch * 100 + 100).map(row).collect();
        let req = inproc::request_as("gongan", hutong_proto::v1::SubmitRequest { batch_id: String::new(), records });
        let answer = client.submit(req).await?.into_inner();
        assert!(answer.results.iter().all(|r| r.status == hutong_proto::v1::Status::Published as i32));
        // Midway, once both hold partitions and have applied some: kill one.
        if batch == 15 {
            wait_until("both instances to apply batches", Duration::from_secs(60), || {
                Ok(a.log().contains("batch committed") && b.log().contains("batch committed"))
            })?;
            a.process.kill9()?;
            killed = true;
        }
    }
    assert!(killed);
    wait_until("group shared to catch up", Duration::from_secs(120), || {
        caught_up(&bootstrap, "shared", &ENTITY_TOPICS)
    })
    .map_err(|e| e.context(format!("the survivor's log:\n{}", b.log())))?;
    assert!(b.log().matches("partitions assigned").count() >= 2, "the survivor was assigned again: {}", b.log());
    let rebuilt = sqlite(&dir, "rebuild.db");
    let rebuild = start("rebuild", rebuilt.clone(), "rebuild").await?;
    wait_until("the rebuild", Duration::from_secs(120), || caught_up(&bootstrap, "rebuild", &ENTITY_TOPICS))
        .map_err(|e| e.context(rebuild.log()))?;
    let expected = with_store(&rebuilt, Store::all_profiles)?;
    let got = with_store(&store, Store::all_profiles)?;
    assert_eq!(expected.len(), 3000 + 1000, "3000 persons, 1000 households");
    let differ = expected.keys().chain(got.keys()).filter(|k| expected.get(*k) != got.get(*k)).count();
    assert_eq!(differ, 0, "profiles differing from the rebuild");
    drop(a);
    gateway.stop().await?;
    Ok(())
}
