use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

/// Kafka settings of the gateway (`[kafka]` in the config file).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct BusConfig {
    /// `host:port[,host:port]` of the brokers.
    pub bootstrap_servers: String,
    /// Prefix of every topic name: `<prefix>.<entity>.v<major>`.
    pub topic_prefix: String,
    /// Create missing topics at start (the local broker does not auto-create).
    pub create_topics: bool,
    /// Partitions of topics the gateway creates.
    pub partitions: i32,
    /// Replication factor of topics the gateway creates.
    pub replication_factor: i32,
    /// How long librdkafka keeps retrying a message before failing it.
    pub message_timeout_ms: u64,
    /// How long a produce waits for room in a full producer queue.
    pub queue_timeout_ms: u64,
    /// Batching delay of the producer.
    pub linger_ms: u64,
    /// Any other librdkafka option, passed through as is.
    pub options: BTreeMap<String, String>,
}

impl Default for BusConfig {
    fn default() -> Self {
        Self {
            bootstrap_servers: "127.0.0.1:9092".to_owned(),
            topic_prefix: "hutong".to_owned(),
            create_topics: true,
            partitions: 3,
            replication_factor: 1,
            message_timeout_ms: 30_000,
            queue_timeout_ms: 5_000,
            linger_ms: 2,
            options: BTreeMap::new(),
        }
    }
}

impl BusConfig {
    /// The producer configuration: idempotent, `acks=all`, then the passthrough options.
    pub fn to_rdkafka(&self) -> ClientConfig {
        let mut c = ClientConfig::new();
        c.set("bootstrap.servers", &self.bootstrap_servers)
            .set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("linger.ms", self.linger_ms.to_string())
            // Nagle's algorithm with delayed ACKs adds ~40 ms to every produce round trip.
            .set("socket.nagle.disable", "true");
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c
    }

    /// Topic names under this configuration's prefix.
    pub fn topics(&self) -> TopicNames {
        TopicNames { prefix: self.topic_prefix.clone() }
    }
}

/// How Hutong names its topics.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicNames {
    prefix: String,
}

impl TopicNames {
    /// Names under `prefix`.
    pub fn new(prefix: impl Into<String>) -> Self {
        Self { prefix: prefix.into() }
    }

    /// `<prefix>.<entity>.v<major>`, e.g. `hutong.person.v1`.
    pub fn entity(&self, entity: &str, major: u32) -> String {
        format!("{}.{entity}.v{major}", self.prefix)
    }

    /// `<prefix>.audit.v1`, the copy of the audit trail.
    pub fn audit(&self) -> String {
        format!("{}.audit.v1", self.prefix)
    }

    /// `<prefix>.dlq.v1`, the dead-letter topic.
    pub fn dlq(&self) -> String {
        format!("{}.dlq.v1", self.prefix)
    }
}
