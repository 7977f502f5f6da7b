//! The Kafka bus: the CloudEvents envelope of every message, topic names and
//! creation, and a [`Publisher`] seam with a real rdkafka implementation
//! ([`KafkaPublisher`]) and an in-memory one for tests ([`MemoryPublisher`]).
#![warn(missing_docs)]

mod config;
mod envelope;
mod kafka;
mod publisher;
mod spool;

pub use config::{BusConfig, TopicNames};
pub use envelope::{
    CONTENT_TYPE_JSON, CloudEvent, DEAD_LETTER_ENTITY, DEAD_LETTER_INDEX, DeadLetter, Op, Origin, OutboundMessage,
    event_id,
};
pub use kafka::{KafkaPublisher, ensure_topics};
pub use publisher::{BusError, MemoryPublisher, PublishFuture, Publisher, Receipt};
pub use spool::{Spool, SpoolError};
