//! Every topic Hutong writes, declared in one place ([`TopicPlan`]): what it holds, what its
//! key is, its partitions, replication and topic configuration. The gateway creates missing
//! topics from the plan and checks existing ones against it ([`crate::ensure_topics`]);
//! `hutong topics plan` prints it for operators (JSON, `kafka-topics.sh`, Strimzi `KafkaTopic`).

use std::{collections::BTreeMap, fmt};

use serde::{Deserialize, Serialize};

use crate::{BusConfig, BusError};

/// What the gateway does when an existing topic's configuration differs from the plan
/// (`kafka.topic-config-mismatch`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum MismatchPolicy {
    /// Refuse to start, naming every difference.
    #[default]
    Error,
    /// Log every difference and start.
    Warn,
}

/// What a topic holds.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(tag = "role", rename_all = "kebab-case")]
pub enum TopicRole {
    /// The current facts about one entity of the standard, one per source record: compacted.
    Entity {
        /// The entity, e.g. `person`.
        entity: String,
        /// Whether the deployment restricts the topic (`[privacy]`).
        restricted: bool,
    },
    /// Records the standard refused, for the departments to correct: time retention.
    DeadLetter,
    /// The copy of the hash-chained audit trail: time retention, at least the file log's.
    Audit,
    /// The merged profiles of one entity (一人一档), one per entity key: compacted.
    Profile {
        /// The entity.
        entity: String,
    },
    /// Facts the profile service could not use, with the reason: time retention.
    ProfileDeadLetter,
    /// Supervision alerts (督查督办), one per alert id: compacted.
    Alert,
    /// Candidate resources per service request (供需对接), one per request: compacted.
    Match,
    /// Objections (数据异议) on departments' facts, one per objection as it stands: compacted.
    Objection,
}

/// The consumer service's own topics a deployment has.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct DerivedTopics {
    /// The entities whose merged profiles are published.
    pub profiles: Vec<String>,
    /// Whether the governance consumers publish alerts and matches.
    pub governance: bool,
}

/// One topic: its name, role, key and the settings it is created with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "kebab-case")]
pub struct TopicSpec {
    /// The topic's name.
    pub name: String,
    /// What it holds.
    #[serde(flatten)]
    pub role: TopicRole,
    /// What it is for, in a sentence (printed with the plan).
    pub purpose: String,
    /// What its Kafka key is.
    pub key: &'static str,
    /// Partitions.
    pub partitions: i32,
    /// Replication factor.
    pub replication_factor: i32,
    /// Topic configuration (`cleanup.policy`, `retention.ms`, …).
    pub config: BTreeMap<String, String>,
}

/// An entity topic of the standard, as the pipeline publishes to it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EntityTopic {
    /// The entity.
    pub entity: String,
    /// The topic.
    pub topic: String,
    /// Whether the deployment restricts it.
    pub restricted: bool,
}

/// Every topic of a deployment.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicPlan {
    /// Entity topics first (by name), then the dead-letter and the audit topic, then the
    /// profile service's topics.
    pub topics: Vec<TopicSpec>,
}

/// The key of every entity topic (the wire contract's key format, [`crate::KEY_FORMAT`]).
pub const ENTITY_KEY: &str = "JSON array [entity key, department, kind, source id]: one source's fact; \
                              partitioned by murmur2 of the entity key";

impl TopicPlan {
    /// The plan of `entities` under `bus`: the entity topics compacted, the dead-letter and the
    /// audit topic with time retention.
    pub fn new(bus: &BusConfig, entities: impl IntoIterator<Item = EntityTopic>) -> Self {
        Self::with_derived(bus, entities, DerivedTopics::default())
    }

    /// The plan of `entities` with the consumer service's topics: one compacted topic of merged
    /// profiles per entity of `derived.profiles` and their dead-letter topic, and with
    /// `derived.governance` the alert and match topics.
    pub fn with_derived(
        bus: &BusConfig,
        entities: impl IntoIterator<Item = EntityTopic>,
        derived: DerivedTopics,
    ) -> Self {
        let DerivedTopics { profiles, governance } = derived;
        let has_profiles = !profiles.is_empty() || governance;
        let mut common = BTreeMap::new();
        if let Some(n) = bus.min_insync_replicas {
            common.insert("min.insync.replicas".to_owned(), n.to_string());
        }
        let spec = |name: String, role: TopicRole, purpose: String, key, extra: &[(&str, String)]| {
            let mut config = common.clone();
            config.extend(extra.iter().map(|(k, v)| ((*k).to_owned(), v.clone())));
            TopicSpec {
                name,
                role,
                purpose,
                key,
                partitions: bus.partitions,
                replication_factor: bus.replication_factor,
                config,
            }
        };
        let compacted = [
            ("cleanup.policy", "compact".to_owned()),
            ("min.compaction.lag.ms", bus.entity_min_compaction_lag_ms.to_string()),
            ("segment.ms", bus.entity_segment_ms.to_string()),
            ("delete.retention.ms", bus.entity_delete_retention_ms.to_string()),
        ];
        let mut entities: Vec<EntityTopic> = entities.into_iter().collect();
        entities.sort_by(|a, b| a.topic.cmp(&b.topic));
        let mut topics: Vec<TopicSpec> = entities
            .into_iter()
            .map(|e| {
                let purpose = format!(
                    "facts about each {}{}, one per source record and revision, compacted to the last per fact key; a DELETE is a tombstone",
                    e.entity,
                    if e.restricted { " (restricted topic)" } else { "" }
                );
                let role = TopicRole::Entity { entity: e.entity, restricted: e.restricted };
                spec(e.topic, role, purpose, ENTITY_KEY, &compacted)
            })
            .collect();
        let names = bus.topics();
        topics.push(spec(
            names.dlq(),
            TopicRole::DeadLetter,
            "records the standard refused, with the raw record and every error, for the department to correct".into(),
            "event id of the refused record",
            &[("cleanup.policy", "delete".into()), ("retention.ms", bus.dlq_retention_ms.to_string())],
        ));
        topics.push(spec(
            names.audit(),
            TopicRole::Audit,
            "copy of the hash-chained audit trail (who submitted, read or changed what)".into(),
            "sequence number of the entry",
            &[("cleanup.policy", "delete".into()), ("retention.ms", bus.audit_retention_ms.to_string())],
        ));
        topics.extend(profiles.into_iter().map(|entity| {
            let purpose = format!(
                "the merged profile of each {entity} (一人一档): every department's facts, with provenance and conflicts; a tombstone when no fact is left"
            );
            spec(names.profile(&entity), TopicRole::Profile { entity }, purpose, "entity key", &compacted)
        }));
        if has_profiles {
            topics.push(spec(
                names.profiles_dlq(),
                TopicRole::ProfileDeadLetter,
                "facts the profile service could not use (not the key format, not the topic's schema), with the reason"
                    .into(),
                "the fact's key",
                &[("cleanup.policy", "delete".into()), ("retention.ms", bus.dlq_retention_ms.to_string())],
            ));
        }
        if governance {
            topics.push(spec(
                names.alert(),
                TopicRole::Alert,
                "supervision alerts (督查督办: overdue, returned, reopened, repeated), each raised once".into(),
                "alert id",
                &compacted,
            ));
            topics.push(spec(
                names.matching(),
                TopicRole::Match,
                "the candidate service resources of each service request (供需对接), best first; a tombstone when the request is gone".into(),
                "request key",
                &compacted,
            ));
            topics.push(spec(
                names.objection(),
                TopicRole::Objection,
                "objections (数据异议) on departments' facts as they stand (open, acknowledged, closed by a correction, dismissed); each department reads those routed to it".into(),
                "objection id",
                &compacted,
            ));
        }
        Self { topics }
    }

    /// The topic named `name`.
    pub fn get(&self, name: &str) -> Option<&TopicSpec> {
        self.topics.iter().find(|t| t.name == name)
    }

    /// `kafka-topics.sh` commands that create the plan's topics on a cluster at `bootstrap`
    /// (existing ones are left alone: check them with `hutong topics check`).
    pub fn kafka_topics_commands(&self, bootstrap: &str) -> String {
        let mut out = String::from("#!/bin/sh\n# Hutong's topics (hutong topics plan --format kafka-topics)\nset -e\n");
        for t in &self.topics {
            out.push_str(&format!("\n# {}: {}\n", t.name, t.purpose));
            out.push_str(&format!(
                "kafka-topics.sh --bootstrap-server {} --create --if-not-exists --topic {} --partitions {} --replication-factor {}",
                shell_word(bootstrap),
                shell_word(&t.name),
                t.partitions,
                t.replication_factor
            ));
            for (k, v) in &t.config {
                out.push_str(&format!(" \\\n  --config {}", shell_word(&format!("{k}={v}"))));
            }
            out.push('\n');
        }
        out
    }

    /// The plan as Strimzi `KafkaTopic` resources (`kafka.strimzi.io/v1beta2`) for the Kafka
    /// cluster `cluster`, one YAML document per topic. Kubernetes names are DNS-1123 subdomains
    /// (no `_`), so `metadata.name` is the topic's name lower-cased with `_` → `-`, and
    /// `spec.topicName` is the real name; two topics that would share a resource name are refused.
    pub fn strimzi(&self, cluster: &str, namespace: Option<&str>) -> Result<String, BusError> {
        if !is_dns_label(cluster) {
            return Err(BusError::Config {
                reason: format!("Strimzi cluster name {cluster:?} is not a Kubernetes label value (a DNS-1123 label)"),
            });
        }
        if let Some(ns) = namespace.filter(|ns| !is_dns_label(ns)) {
            return Err(BusError::Config { reason: format!("namespace {ns:?} is not a DNS-1123 label") });
        }
        let mut seen: BTreeMap<String, &str> = BTreeMap::new();
        let mut out = String::new();
        for t in &self.topics {
            let name = resource_name(&t.name);
            if let Some(other) = seen.insert(name.clone(), &t.name) {
                return Err(BusError::Config {
                    reason: format!("topics {other:?} and {:?} would both be the KafkaTopic {name:?}", t.name),
                });
            }
            if name.len() > 253 || !name.split('.').all(is_dns_label) {
                return Err(BusError::Config {
                    reason: format!("topic {:?} has no valid Kubernetes resource name ({name:?})", t.name),
                });
            }
            let q = |s: &str| serde_json::to_string(s).expect("a string serialises");
            out.push_str(&format!("---\n# {}\napiVersion: kafka.strimzi.io/v1beta2\nkind: KafkaTopic\n", t.purpose));
            out.push_str(&format!("metadata:\n  name: {}\n", q(&name)));
            if let Some(ns) = namespace {
                out.push_str(&format!("  namespace: {}\n", q(ns)));
            }
            out.push_str(&format!(
                "  labels:\n    strimzi.io/cluster: {}\n    app.kubernetes.io/part-of: \"hutong\"\n",
                q(cluster)
            ));
            out.push_str(&format!(
                "spec:\n  topicName: {}\n  partitions: {}\n  replicas: {}\n  config:\n",
                q(&t.name),
                t.partitions,
                t.replication_factor
            ));
            for (k, v) in &t.config {
                out.push_str(&format!("    {}: {}\n", q(k), q(v)));
            }
        }
        Ok(out)
    }
}

/// A Kubernetes resource name for a topic: lower case, `_` → `-`.
fn resource_name(topic: &str) -> String {
    topic.to_ascii_lowercase().replace('_', "-")
}

/// A DNS-1123 label: 1–63 of `[a-z0-9-]`, starting and ending alphanumeric.
fn is_dns_label(s: &str) -> bool {
    let ok = |c: u8| c.is_ascii_lowercase() || c.is_ascii_digit();
    !s.is_empty()
        && s.len() <= 63
        && s.bytes().all(|c| ok(c) || c == b'-')
        && s.bytes().next().is_some_and(ok)
        && s.bytes().last().is_some_and(ok)
}

/// `s` as one shell word (single-quoted unless it is plainly safe).
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-=:,/".contains(&c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// One way an existing topic differs from the plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TopicMismatch {
    /// The topic.
    pub topic: String,
    /// The setting: a topic config key, `partitions` or `replication-factor`.
    pub setting: String,
    /// What the plan declares.
    pub declared: String,
    /// What the broker reports (`None`: it does not report the setting).
    pub actual: Option<String>,
}

impl TopicMismatch {
    /// The setting of a topic of the plan that does not exist (and is not created).
    pub const EXISTS: &'static str = "exists";

    /// `topic` does not exist and `kafka.create-topics` is off.
    pub fn missing(topic: &str) -> Self {
        Self {
            topic: topic.to_owned(),
            setting: Self::EXISTS.to_owned(),
            declared: "true".into(),
            actual: Some("false".into()),
        }
    }
}

impl fmt::Display for TopicMismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.setting == Self::EXISTS {
            return write!(f, "topic {}: missing, and kafka.create-topics is off", self.topic);
        }
        match &self.actual {
            Some(a) => write!(f, "topic {}: {} is {a:?}, declared {:?}", self.topic, self.setting, self.declared),
            None => write!(f, "topic {}: {} is not set, declared {:?}", self.topic, self.setting, self.declared),
        }
    }
}

/// The differences, one sentence each.
pub(crate) fn join(mismatches: &[TopicMismatch]) -> String {
    mismatches.iter().map(ToString::to_string).collect::<Vec<_>>().join("; ")
}

/// What the brokers hold compared with the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct TopicCheck {
    /// Topics of the plan that do not exist.
    pub missing: Vec<String>,
    /// Settings of existing topics that differ from the plan.
    pub mismatches: Vec<TopicMismatch>,
}

impl TopicCheck {
    /// Nothing missing, nothing different.
    pub fn is_clean(&self) -> bool {
        self.missing.is_empty() && self.mismatches.is_empty()
    }
}

/// The differences between `spec` and what the broker reports about its topic: `configs` (from
/// DescribeConfigs), `partitions` and `replicas` (from the metadata).
pub fn compare(
    spec: &TopicSpec,
    configs: &BTreeMap<String, String>,
    partitions: i32,
    replicas: i32,
) -> Vec<TopicMismatch> {
    let mismatch = |setting: &str, declared: String, actual: Option<String>| TopicMismatch {
        topic: spec.name.clone(),
        setting: setting.to_owned(),
        declared,
        actual,
    };
    let mut out = Vec::new();
    if partitions != spec.partitions {
        out.push(mismatch("partitions", spec.partitions.to_string(), Some(partitions.to_string())));
    }
    if replicas != spec.replication_factor {
        out.push(mismatch("replication-factor", spec.replication_factor.to_string(), Some(replicas.to_string())));
    }
    for (k, v) in &spec.config {
        match configs.get(k) {
            Some(actual) if actual == v => {}
            actual => out.push(mismatch(k, v.clone(), actual.cloned())),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plan() -> TopicPlan {
        let bus = BusConfig::default();
        let e =
            |entity: &str, topic: &str| EntityTopic { entity: entity.into(), topic: topic.into(), restricted: false };
        TopicPlan::new(&bus, [e("service_resource", "hutong.service_resource.v2"), e("person", "hutong.person.v2")])
    }

    #[test]
    fn entity_topics_are_compacted_the_others_retained() {
        let p = plan();
        let names: Vec<&str> = p.topics.iter().map(|t| t.name.as_str()).collect();
        assert_eq!(names, ["hutong.person.v2", "hutong.service_resource.v2", "hutong.dlq.v1", "hutong.audit.v1"]);
        let person = p.get("hutong.person.v2").unwrap();
        assert_eq!(person.config["cleanup.policy"], "compact");
        assert_eq!(person.config["min.compaction.lag.ms"], "3600000");
        assert!(!person.config.contains_key("retention.ms"));
        let audit = p.get("hutong.audit.v1").unwrap();
        assert_eq!(audit.config["cleanup.policy"], "delete");
        assert!(audit.config["retention.ms"].parse::<u64>().unwrap() >= 190 * 86_400_000);
        assert!(!audit.config.contains_key("min.insync.replicas"));
        let mut bus = BusConfig { min_insync_replicas: Some(2), replication_factor: 3, ..BusConfig::default() };
        bus.dlq_retention_ms = -1;
        let p = TopicPlan::new(&bus, []);
        assert!(p.topics.iter().all(|t| t.config["min.insync.replicas"] == "2" && t.replication_factor == 3));
        assert_eq!(p.get("hutong.dlq.v1").unwrap().config["retention.ms"], "-1");
    }

    #[test]
    fn strimzi_names_are_kubernetes_names_and_topic_names_stay_real() {
        let y = plan().strimzi("my-cluster", Some("hutong")).unwrap();
        assert_eq!(y.matches("kind: KafkaTopic").count(), 4);
        assert!(y.contains("  name: \"hutong.service-resource.v2\"\n"), "{y}");
        assert!(y.contains("  topicName: \"hutong.service_resource.v2\"\n"), "{y}");
        assert!(y.contains("    strimzi.io/cluster: \"my-cluster\"\n"));
        assert!(plan().strimzi("My_Cluster", None).is_err());
        let bus = BusConfig::default();
        let e = |topic: &str| EntityTopic { entity: "x".into(), topic: topic.into(), restricted: false };
        let clash = TopicPlan::new(&bus, [e("h.a_b.v2"), e("h.a-b.v2")]).strimzi("c", None).unwrap_err();
        assert!(clash.to_string().contains("would both be the KafkaTopic \"h.a-b.v2\""), "{clash}");
    }

    #[test]
    fn kafka_topics_commands_quote_what_the_shell_would_split() {
        let sh = plan().kafka_topics_commands("broker-1:9092,broker-2:9092");
        assert!(sh.contains("--bootstrap-server broker-1:9092,broker-2:9092 --create --if-not-exists --topic hutong.person.v2 --partitions 3 --replication-factor 1"), "{sh}");
        assert!(sh.contains("--config cleanup.policy=compact"));
        assert_eq!(shell_word("a b'c"), r"'a b'\''c'");
    }

    #[test]
    fn a_mismatch_names_the_topic_the_setting_and_both_values() {
        let p = plan();
        let spec = p.get("hutong.person.v2").unwrap();
        let mut configs = spec.config.clone();
        assert!(compare(spec, &configs, 3, 1).is_empty());
        configs.insert("cleanup.policy".into(), "delete".into());
        configs.remove("segment.ms");
        let m: Vec<String> = compare(spec, &configs, 6, 1).iter().map(ToString::to_string).collect();
        assert_eq!(
            m,
            [
                "topic hutong.person.v2: partitions is \"6\", declared \"3\"",
                "topic hutong.person.v2: cleanup.policy is \"delete\", declared \"compact\"",
                "topic hutong.person.v2: segment.ms is not set, declared \"86400000\"",
            ]
        );
    }
}
