use std::collections::BTreeMap;

use rdkafka::ClientConfig;
use serde::{Deserialize, Serialize};

use crate::{BusError, MismatchPolicy};

const HOUR_MS: u64 = 3_600_000;
/// A day in milliseconds.
pub const DAY_MS: u64 = 24 * HOUR_MS;

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
    /// `min.insync.replicas` of every topic (with `acks=all`, how many replicas must have a
    /// record before it is acknowledged); unset: the broker's default.
    pub min_insync_replicas: Option<i32>,
    /// `min.compaction.lag.ms` of the entity topics: how long every fact stays readable before
    /// compaction may drop it for a newer one of the same source record (default 1 hour).
    pub entity_min_compaction_lag_ms: u64,
    /// `segment.ms` of the entity topics: the open segment is never compacted, so it rolls at
    /// least this often (default 1 day).
    pub entity_segment_ms: u64,
    /// `delete.retention.ms` of the entity topics: how long a tombstone (a DELETE) stays readable;
    /// a consumer further behind than this must rebuild from the beginning (default 7 days).
    pub entity_delete_retention_ms: u64,
    /// `retention.ms` of the dead-letter topic (default 30 days; -1 keeps it for ever).
    pub dlq_retention_ms: i64,
    /// `retention.ms` of the audit topic: at least the file log's `audit.retention-days`
    /// (default 190 days; -1 keeps it for ever).
    pub audit_retention_ms: i64,
    /// What an existing topic whose settings differ from the plan does at start: `error`
    /// (refuse to start, naming each difference) or `warn`.
    pub topic_config_mismatch: MismatchPolicy,
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
            min_insync_replicas: None,
            entity_min_compaction_lag_ms: HOUR_MS,
            entity_segment_ms: DAY_MS,
            entity_delete_retention_ms: 7 * DAY_MS,
            dlq_retention_ms: 30 * DAY_MS as i64,
            audit_retention_ms: 190 * DAY_MS as i64,
            topic_config_mismatch: MismatchPolicy::Error,
            message_timeout_ms: 30_000,
            queue_timeout_ms: 5_000,
            linger_ms: 2,
            options: BTreeMap::new(),
        }
    }
}

/// librdkafka options `kafka.options` may not set: the delivery guarantees rest on them, or
/// they have a setting of their own.
const GUARDED_OPTIONS: &[(&str, &str)] = &[
    ("acks", "the gateway answers OK only for records every in-sync replica has (acks=all)"),
    ("request.required.acks", "the gateway answers OK only for records every in-sync replica has (acks=all)"),
    ("enable.idempotence", "retries must not write a record twice"),
    ("max.in.flight", "idempotence bounds the requests in flight"),
    ("max.in.flight.requests.per.connection", "idempotence bounds the requests in flight"),
    ("bootstrap.servers", "set kafka.bootstrap-servers"),
    ("metadata.broker.list", "set kafka.bootstrap-servers"),
    ("message.timeout.ms", "set kafka.message-timeout-ms"),
    ("linger.ms", "set kafka.linger-ms"),
    ("queue.buffering.max.ms", "set kafka.linger-ms"),
];

impl BusConfig {
    /// Checks the settings: `options` may not override what the delivery guarantees rest on
    /// (`acks`, `enable.idempotence`, `max.in.flight`) nor what has a setting of its own.
    pub fn validate(&self) -> Result<(), BusError> {
        if self.bootstrap_servers.trim().is_empty() {
            return Err(BusError::Config { reason: "kafka.bootstrap-servers is empty".into() });
        }
        let bad = |reason: String| Err(BusError::Config { reason });
        let prefix = &self.topic_prefix;
        if prefix.is_empty()
            || prefix.len() > 200
            || !prefix.bytes().all(|c| c.is_ascii_alphanumeric() || b"._-".contains(&c))
        {
            return bad(format!(
                "kafka.topic-prefix {prefix:?}: 1 to 200 of the characters Kafka allows in topic names (a-z A-Z 0-9 . _ -)"
            ));
        }
        if self.partitions < 1 || self.replication_factor < 1 {
            return bad("kafka.partitions and kafka.replication-factor must be at least 1".into());
        }
        if let Some(n) = self.min_insync_replicas
            && !(1..=self.replication_factor).contains(&n)
        {
            return bad(format!(
                "kafka.min-insync-replicas {n} must be between 1 and kafka.replication-factor ({})",
                self.replication_factor
            ));
        }
        if self.entity_segment_ms == 0 || self.entity_delete_retention_ms == 0 {
            return bad(
                "kafka.entity-segment-ms and kafka.entity-delete-retention-ms must be at least 1 (a tombstone kept 0 ms could vanish before any consumer saw the DELETE)"
                    .into(),
            );
        }
        for (key, v) in
            [("kafka.dlq-retention-ms", self.dlq_retention_ms), ("kafka.audit-retention-ms", self.audit_retention_ms)]
        {
            if v == 0 || v < -1 {
                return bad(format!("{key} {v}: a positive number of milliseconds, or -1 to keep for ever"));
            }
        }
        for key in self.options.keys() {
            if let Some((_, why)) = GUARDED_OPTIONS.iter().find(|(k, _)| k.eq_ignore_ascii_case(key.trim())) {
                return Err(BusError::Config { reason: format!("kafka.options may not set {key:?}: {why}") });
            }
        }
        Ok(())
    }

    /// The producer configuration: idempotent, `acks=all`, then the passthrough options
    /// (refused when they would override those; see [`Self::validate`]).
    pub fn to_rdkafka(&self) -> Result<ClientConfig, BusError> {
        let mut c = self.client()?;
        c.set("enable.idempotence", "true")
            .set("acks", "all")
            .set("message.timeout.ms", self.message_timeout_ms.to_string())
            .set("linger.ms", self.linger_ms.to_string())
            // Nagle's algorithm with delayed ACKs adds ~40 ms to every produce round trip.
            .set("socket.nagle.disable", "true");
        Ok(c)
    }

    /// What any client of these brokers needs (a consumer too): the bootstrap servers and the
    /// passthrough options (security settings among them).
    pub fn client(&self) -> Result<ClientConfig, BusError> {
        self.validate()?;
        let mut c = ClientConfig::new();
        for (k, v) in &self.options {
            c.set(k, v);
        }
        c.set("bootstrap.servers", &self.bootstrap_servers);
        Ok(c)
    }

    /// Topic names under this configuration's prefix.
    pub fn topics(&self) -> TopicNames {
        TopicNames { prefix: self.topic_prefix.clone() }
    }
}

/// The key format of entity topics: 1 keyed a message by the entity key alone; 2 keys each
/// source's fact ([`crate::fact_key`]) and partitions by the entity key. A consumer of format 1
/// would misread format 2, so the topics' version went up with it.
pub const KEY_FORMAT: u32 = 2;

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

    /// `<prefix>.<entity>.v<version>`, e.g. `hutong.person.v2`: the one formula of an entity's
    /// topic (the gateway, the registry's subjects, lint and the standard's reference use it).
    /// The topic's version counts the breaking changes a consumer of the topic sees: the schema's
    /// `major` and the key format ([`KEY_FORMAT`]), so version = major + KEY_FORMAT − 1.
    pub fn entity(&self, entity: &str, major: u32) -> String {
        format!("{}.{entity}.v{}", self.prefix, major + KEY_FORMAT - 1)
    }

    /// `<prefix>.audit.v1`, the copy of the audit trail.
    pub fn audit(&self) -> String {
        format!("{}.audit.v1", self.prefix)
    }

    /// `<prefix>.dlq.v1`, the dead-letter topic.
    pub fn dlq(&self) -> String {
        format!("{}.dlq.v1", self.prefix)
    }

    /// `<prefix>.<entity>.profile.v1`: the merged profiles of an entity (一人一档), keyed by the
    /// entity key.
    pub fn profile(&self, entity: &str) -> String {
        format!("{}.{entity}.profile.v1", self.prefix)
    }

    /// `<prefix>.profiles.dlq.v1`: facts the profile service could not use, with the reason.
    pub fn profiles_dlq(&self) -> String {
        format!("{}.profiles.dlq.v1", self.prefix)
    }

    /// `<prefix>.alert.v1`: supervision alerts (督查督办) of the consumer service, keyed by
    /// alert id.
    pub fn alert(&self) -> String {
        format!("{}.alert.v1", self.prefix)
    }

    /// `<prefix>.objection.v1`: objections (数据异议) on departments' facts, keyed by the
    /// objection id; each department consumes those routed to it (`department`).
    pub fn objection(&self) -> String {
        format!("{}.objection.v1", self.prefix)
    }

    /// `<prefix>.match.v1`: the candidate resources of each service request (供需对接), keyed by
    /// the request key.
    pub fn matching(&self) -> String {
        format!("{}.match.v1", self.prefix)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn options_may_not_override_the_delivery_guarantees() {
        for key in ["acks", "enable.idempotence", "max.in.flight", "Max.In.Flight.Requests.Per.Connection", "linger.ms"]
        {
            let mut c = BusConfig::default();
            c.options.insert(key.to_owned(), "1".to_owned());
            let e = c.to_rdkafka().unwrap_err().to_string();
            assert!(e.contains("kafka.options may not set") && e.contains(key), "{key}: {e}");
        }
        let mut c = BusConfig::default();
        c.options.insert("compression.type".into(), "lz4".into());
        let rd = c.to_rdkafka().unwrap();
        assert_eq!(rd.get("compression.type"), Some("lz4"));
        assert_eq!((rd.get("acks"), rd.get("enable.idempotence")), (Some("all"), Some("true")));
        c.bootstrap_servers = " ".into();
        assert!(c.validate().is_err());
    }
}
