//! The Kafka bus: the CloudEvents envelope of every message, topic names and
//! creation, and a [`Publisher`] seam with a real rdkafka implementation
//! ([`KafkaPublisher`]) and an in-memory one for tests ([`MemoryPublisher`]).
#![warn(missing_docs)]

mod config;
mod envelope;
mod kafka;
mod publisher;

pub use config::{BusConfig, TopicNames};
pub use envelope::{event_id, CloudEvent, OutboundMessage, CONTENT_TYPE_JSON};
pub use kafka::{ensure_topics, KafkaPublisher};
pub use publisher::{BusError, MemoryPublisher, PublishFuture, Publisher, Receipt};
