//! The topic plan against the local broker: the gateway creates every topic with its declared
//! config (read back with DescribeConfigs by an independent admin client), refuses to start on
//! an existing topic that differs (or warns, if so configured), and `hutong topics` prints and
//! checks the same plan. tansu 0.6 stores and returns the configs of CreateTopics; it does not
//! compact (see docs/consuming.md).

use std::{collections::BTreeMap, path::Path, time::Duration};

use hutong_tests::{Broker, Gateway, Setup, hutong, python, repo_root, run_python};
use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, ResourceSpecifier},
    client::DefaultClientContext,
};
use serde_json::Value;

/// The gateway's config with `lines` added to its `[kafka]` table, written beside it.
fn variant(config: &Path, name: &str, lines: &str) -> anyhow::Result<String> {
    let text = std::fs::read_to_string(config)?.replacen("[kafka]\n", &format!("[kafka]\n{lines}\n"), 1);
    let path = config.with_file_name(name);
    std::fs::write(&path, text)?;
    Ok(path.display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn topics_are_created_as_declared_and_a_differing_one_is_named_at_start() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let gateway = Gateway::start(&broker.bootstrap).await?;
    let config = gateway.dir.path().join("hutong.toml");
    let config_arg = config.display().to_string();

    let out = hutong(&["topics", "plan", "--config", &config_arg])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout)?;
    let topics = plan["topics"].as_array().unwrap();
    let roles: Vec<&str> = topics.iter().map(|t| t["role"].as_str().unwrap()).collect();
    assert_eq!(roles.iter().filter(|r| **r == "entity").count(), 8, "every entity of the standard: {roles:?}");
    assert!(roles.contains(&"dead-letter") && roles.contains(&"audit"));

    // Read back by an independent admin client: DescribeConfigs and the metadata.
    let admin: AdminClient<DefaultClientContext> =
        ClientConfig::new().set("bootstrap.servers", &broker.bootstrap).create()?;
    let names: Vec<&str> = topics.iter().map(|t| t["name"].as_str().unwrap()).collect();
    let specs: Vec<ResourceSpecifier<'_>> = names.iter().map(|n| ResourceSpecifier::Topic(n)).collect();
    let described = admin.describe_configs(&specs, &AdminOptions::new()).await?;
    let metadata = admin.inner().fetch_metadata(None, Duration::from_secs(10))?;
    for (t, resource) in topics.iter().zip(described) {
        let name = t["name"].as_str().unwrap();
        let resource = resource.map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let actual: BTreeMap<&str, Option<&str>> =
            resource.entries.iter().map(|e| (e.name.as_str(), e.value.as_deref())).collect();
        for (key, declared) in t["config"].as_object().unwrap() {
            assert_eq!(actual.get(key.as_str()).copied().flatten(), declared.as_str(), "{name}: {key}");
        }
        let md = metadata.topics().iter().find(|m| m.name() == name).unwrap();
        assert_eq!(md.partitions().len() as u64, t["partitions"].as_u64().unwrap(), "{name}");
        let policy = t["config"]["cleanup.policy"].as_str().unwrap();
        assert_eq!(policy, if t["role"] == "entity" { "compact" } else { "delete" }, "{name}");
    }
    let audit = topics.iter().find(|t| t["role"] == "audit").unwrap();
    assert!(audit["config"]["retention.ms"].as_str().unwrap().parse::<u64>()? >= 190 * 86_400_000);

    // `hutong topics check`: the topics are as declared.
    let out = hutong(&["topics", "check", "--config", &config_arg])?;
    assert!(out.status.success(), "{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));

    // The same brokers, another declaration: the gateway refuses to start, naming the topic,
    // the setting and both values; `hutong topics check` says the same.
    let changed = "entity-segment-ms = 3600000\npartitions = 2";
    let Err(refused) = Gateway::start_setup(&broker.bootstrap, Setup { kafka: changed.into(), ..Setup::new()? }).await
    else {
        panic!("a gateway whose topics differ from the plan does not start");
    };
    let refused = format!("{refused:#}");
    assert!(refused.contains(r#"topic hutong.person.v2: segment.ms is "86400000", declared "3600000""#), "{refused}");
    assert!(refused.contains(r#"topic hutong.dlq.v1: partitions is "3", declared "2""#), "{refused}");
    let check = hutong(&["topics", "check", "--config", &variant(&config, "changed.toml", changed)?])?;
    let text = String::from_utf8_lossy(&check.stdout);
    assert_eq!(check.status.code(), Some(1), "{text}");
    assert!(text.contains(r#"✗ topic hutong.household.v2: segment.ms is "86400000", declared "3600000""#), "{text}");

    // Where the operator chose so, a difference is a warning and the gateway serves.
    let warn = format!("{changed}\ntopic-config-mismatch = \"warn\"");
    let gateway = Gateway::start_setup(&broker.bootstrap, Setup { kafka: warn, ..Setup::new()? }).await?;
    let log = gateway.log();
    assert!(log.contains("existing topic differs from the plan") && log.contains("segment.ms"), "{log}");
    Ok(())
}

/// `hutong topics plan --format strimzi` is valid against the Strimzi KafkaTopic v1beta2 schema
/// (checked offline, the YAML parsed by PyYAML) and says what the JSON plan says; topic names
/// that are no Kubernetes names (`service_resource`) keep their real name in `spec.topicName`.
#[test]
fn the_strimzi_resources_are_valid_kafka_topics_of_the_plan() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    // A deployment with a restricted extra topic and a prefix of its own.
    let config = dir.path().join("hutong.toml");
    std::fs::write(
        &config,
        "[kafka]\ntopic-prefix = \"xihu_hutong\"\npartitions = 6\nreplication-factor = 3\nmin-insync-replicas = 2\n\n\
         [privacy.topics.\"xihu_hutong.person.restricted.v2\"]\nentity = \"person\"\nrestricted = true\n",
    )?;
    let config = config.display().to_string();
    let run = |format: &str| -> anyhow::Result<std::path::PathBuf> {
        let out = hutong(&["topics", "plan", "--config", &config, "--format", format, "--namespace", "hutong"])?;
        assert!(out.status.success(), "{format}: {}", String::from_utf8_lossy(&out.stderr));
        let path = dir.path().join(format!("plan.{format}"));
        std::fs::write(&path, out.stdout)?;
        Ok(path)
    };
    let (json, yaml, sh) = (run("json")?, run("strimzi")?, run("kafka-topics")?);
    let plan: Value = serde_json::from_slice(&std::fs::read(&json)?)?;
    let names: Vec<&str> = plan["topics"].as_array().unwrap().iter().map(|t| t["name"].as_str().unwrap()).collect();
    assert!(names.contains(&"xihu_hutong.person.restricted.v2") && names.contains(&"xihu_hutong.service_resource.v2"));
    assert!(plan["topics"].as_array().unwrap().iter().all(|t| t["config"]["min.insync.replicas"] == "2"));

    let (yaml_arg, json_arg) = (yaml.display().to_string(), json.display().to_string());
    let check = || run_python("tests/python/check_strimzi.py", &[&yaml_arg, &json_arg]);
    let out = check()?;
    assert!(
        out.status.success(),
        "the Strimzi resources are refused (needs PyYAML and jsonschema for {}; deploy/test.sh installs them):\n{}{}",
        python(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout).trim(), format!("{} KafkaTopic resources valid", names.len()));
    // A resource the schema refuses is caught: the checker is not a rubber stamp.
    let broken = std::fs::read_to_string(&yaml)?.replacen("replicas: 3", "replicas: 0", 1);
    std::fs::write(&yaml, broken)?;
    let out = check()?;
    assert!(!out.status.success() && String::from_utf8_lossy(&out.stdout).contains("less than the minimum of 1"));

    // kafka-topics.sh: one create per topic with every declared config.
    let sh = std::fs::read_to_string(&sh)?;
    for t in plan["topics"].as_array().unwrap() {
        let name = t["name"].as_str().unwrap();
        let at = sh.find(&format!("--topic {name} --partitions 6 --replication-factor 3")).expect(name);
        let command: String = sh[at..].lines().take_while(|l| !l.is_empty()).collect();
        for (k, v) in t["config"].as_object().unwrap() {
            assert!(command.contains(&format!("--config {k}={}", v.as_str().unwrap())), "{name}: {k}");
        }
    }
    Ok(())
}

/// With `kafka.create-topics` off, a missing topic is a difference too: the gateway would not
/// start (librdkafka's mock cluster, which knows no DescribeConfigs, holds none of the topics).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn without_topic_creation_a_missing_topic_refuses_the_start() -> anyhow::Result<()> {
    let mock = rdkafka::mocking::MockCluster::new(1)?;
    let bus = hutong_bus::BusConfig {
        bootstrap_servers: mock.bootstrap_servers(),
        create_topics: false,
        ..hutong_bus::BusConfig::default()
    };
    let standard = hutong_standard::Standard::load(&repo_root().join("schemas"))?;
    let plan = hutong_pipeline::topic_plan(&standard, &bus, &Default::default(), Default::default())?;
    let err = hutong_bus::ensure_topics(&bus, &plan).await.unwrap_err();
    let hutong_bus::BusError::TopicMismatch { mismatches } = &err else { panic!("{err}") };
    assert_eq!(mismatches.len(), plan.topics.len(), "{err}");
    assert!(err.to_string().contains("topic hutong.person.v2: missing, and kafka.create-topics is off"), "{err}");
    // Where the operator chose so, it is a warning.
    let warn = hutong_bus::BusConfig { topic_config_mismatch: hutong_bus::MismatchPolicy::Warn, ..bus };
    let check = hutong_bus::ensure_topics(&warn, &plan).await?;
    assert_eq!(check.missing.len(), plan.topics.len());
    Ok(())
}

/// Kafka away at start with store and forward on: the gateway serves (spooling), and when the
/// broker returns with topics that differ from the plan it stops, as it would have at start,
/// instead of draining the spool into topics that do not keep what they should.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_difference_found_after_kafka_returns_stops_the_gateway() -> anyhow::Result<()> {
    let mut broker = Broker::start_durable()?;
    let first = Gateway::start(&broker.bootstrap).await?; // creates the topics as declared
    drop(first);
    broker.stop()?;
    let spool = tempfile::tempdir()?;
    let setup = Setup {
        kafka: "entity-segment-ms = 3600000\nmessage-timeout-ms = 2000".into(),
        extra: format!("\n[spool]\nenabled = true\npath = {:?}\n", spool.path().join("spool.redb")),
        ..Setup::new()?
    };
    let mut gateway = Gateway::start_setup(&broker.bootstrap, setup).await?;
    assert!(gateway.log().contains("serving with the spool, seeing to the topics later"), "{}", gateway.log());
    broker.start_again()?;
    let mut exited = None;
    hutong_tests::wait_until("the gateway to stop", Duration::from_secs(60), || {
        exited = gateway.process.check_alive("hutong serve").err();
        Ok(exited.is_some())
    })?;
    let exited = format!("{:#}", exited.unwrap());
    assert!(!exited.contains("exit status: 0"), "{exited}");
    assert!(exited.contains("the topics cannot be used as declared: stopping the gateway"), "{exited}");
    assert!(exited.contains(r#"segment.ms is "86400000", declared "3600000""#), "{exited}");
    Ok(())
}

/// A spool left by an earlier version holds messages for the v1 topics (keyed by the entity key
/// alone): the gateway refuses to start, naming them, rather than stall the replay for ever.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_spool_of_an_earlier_version_is_named_at_start() -> anyhow::Result<()> {
    let broker = Broker::start()?;
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("spool.redb");
    {
        let spool = hutong_bus::Spool::open(&path, 10)?;
        let old = hutong_bus::OutboundMessage {
            topic: "hutong.person.v1".into(),
            entity: "person".into(),
            key: Some("0b6f".into()),
            event: hutong_tests::bare_event("e1"),
            value: Some(b"{}".to_vec()),
        };
        spool.append(&[old])?;
    }
    let setup = Setup { extra: format!("\n[spool]\nenabled = true\npath = {path:?}\n"), ..Setup::new()? };
    let Err(refused) = Gateway::start_setup(&broker.bootstrap, setup).await else {
        panic!("a gateway with a spool of v1 messages does not start");
    };
    let refused = format!("{refused:#}");
    assert!(
        refused.contains("holds messages for topics this version does not write (hutong.person.v1: 1)"),
        "{refused}"
    );
    Ok(())
}

/// The production example (deploy/production/hutong.toml) reads as `serve` reads it; every topic
/// of its plan is kept three times, two in sync, and is left to the platform to create.
#[test]
fn the_production_example_keeps_every_topic_three_times_two_in_sync() -> anyhow::Result<()> {
    let config = "deploy/production/hutong.toml";
    let out = hutong(&["topics", "plan", "-c", config, "--schemas", "schemas", "--format", "json"])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let plan: Value = serde_json::from_slice(&out.stdout)?;
    let topics = plan["topics"].as_array().unwrap();
    assert!(topics.iter().any(|t| t["name"] == "hutong.person.profile.v1"), "the consumer service's topics too");
    for t in topics {
        assert_eq!(
            (t["replication-factor"].as_i64(), t["config"]["min.insync.replicas"].as_str()),
            (Some(3), Some("2")),
            "{t}"
        );
    }
    let out = hutong(&["serve", "--print-config", "-c", config])?;
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let effective: Value = serde_json::from_slice(&out.stdout)?;
    assert_eq!(effective["kafka"]["create-topics"], false);
    assert_eq!(effective["profiles"]["ensure-topics"], false);
    assert_eq!(effective["kafka"]["options"]["security.protocol"], "SSL");
    assert!(effective["profiles"]["store"].as_str().unwrap().starts_with("postgres://"));

    // This build's librdkafka takes its broker security: mTLS as the example sets it (the files
    // taken from the test PKI), and SASL/SCRAM over TLS as its comment shows.
    let pki = hutong_tests::shared_pki()?;
    let file = |name: &str| pki.join(name).display().to_string();
    let mut mtls = rdkafka::ClientConfig::new();
    mtls.set("bootstrap.servers", "127.0.0.1:1");
    for (k, v) in effective["kafka"]["options"].as_object().unwrap() {
        let v = v.as_str().unwrap();
        let v = match v.rsplit('/').next() {
            Some("ca.pem") => file("ca.pem"),
            Some("client.pem") => file("gongan.pem"),
            Some("client.key") => file("gongan.key"),
            _ => v.to_owned(),
        };
        mtls.set(k, v);
    }
    mtls.create::<rdkafka::producer::BaseProducer>().map_err(|e| anyhow::anyhow!("mTLS options refused: {e}"))?;
    rdkafka::ClientConfig::new()
        .set("bootstrap.servers", "127.0.0.1:1")
        .set("security.protocol", "SASL_SSL")
        .set("sasl.mechanism", "SCRAM-SHA-512")
        .set("sasl.username", "hutong-gateway")
        .set("sasl.password", "not-a-real-password")
        .set("ssl.ca.location", file("ca.pem"))
        .create::<rdkafka::producer::BaseProducer>()
        .map_err(|e| anyhow::anyhow!("SASL/SCRAM options refused: {e}"))?;
    Ok(())
}
