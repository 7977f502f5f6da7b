//! The Kafka bus: the CloudEvents envelope of every message, topic names and
//! creation, and a [`Publisher`] seam with a real rdkafka implementation
//! ([`KafkaPublisher`]) and an in-memory one for tests ([`MemoryPublisher`]).
#![warn(missing_docs)]

mod acl;
mod config;
mod envelope;
mod kafka;
mod partition;
mod publisher;
mod reader;
mod spool;
mod topics;

pub use acl::{AclAdmin, AclChanges, DeleteOutcome, KafkaAcl, reconcile as reconcile_acls};
pub use config::{BusConfig, DAY_MS, KEY_FORMAT, TopicNames};
pub use envelope::{
    CONTENT_TYPE_JSON, CloudEvent, ContentDigest, DEAD_LETTER_ENTITY, DEAD_LETTER_INDEX, DeadLetter, Op, Origin,
    OutboundMessage, content_digest, event_id,
};
pub use kafka::{EntityPartitioner, KafkaPublisher, check_topics, ensure_topics};
pub use partition::{fact_key, murmur2, partition_for};
pub use publisher::{BusError, MemoryPublisher, PublishFuture, Publisher, Receipt};
pub use reader::{GroupLag, group_lag, lag_of, read_to_end, scan_to_end};
pub use spool::{Spool, SpoolError};
pub use topics::{
    DerivedTopics, ENTITY_KEY, EntityTopic, MismatchPolicy, TopicCheck, TopicMismatch, TopicPlan, TopicRole, TopicSpec,
    compare as compare_topic,
};
