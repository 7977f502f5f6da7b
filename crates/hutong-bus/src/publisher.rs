use std::sync::{Arc, Mutex};

use futures::future::BoxFuture;

use crate::OutboundMessage;

/// Where a message landed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Receipt {
    /// Topic.
    pub topic: String,
    /// Partition.
    pub partition: i32,
    /// Offset within the partition.
    pub offset: i64,
}

/// Why a message was not delivered (or a Kafka client not made): each kind is decided once,
/// from librdkafka's error code, in `classify`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BusError {
    /// Broker unreachable, timed out, or a transient error: retry later.
    #[error("kafka unavailable: {reason}")]
    Unavailable {
        /// librdkafka's words.
        reason: String,
    },
    /// The producer queue (or the spool) is full: slow down.
    #[error("producer queue full")]
    QueueFull,
    /// The broker refuses this record for good (too large, invalid): the record's fault.
    #[error("kafka refused the record: {reason}")]
    RecordRefused {
        /// librdkafka's words.
        reason: String,
    },
    /// The broker does not authorise the gateway for the topic or the cluster.
    #[error("kafka refused the gateway: {reason}")]
    NotAuthorized {
        /// librdkafka's words.
        reason: String,
    },
    /// The topic does not exist or its name is invalid.
    #[error("kafka refused the topic: {reason}")]
    TopicRefused {
        /// librdkafka's words.
        reason: String,
    },
    /// Existing topics differ from the plan (`kafka.topic-config-mismatch = "error"`).
    #[error("{} existing topic setting(s) differ from the plan: {}", .mismatches.len(), crate::topics::join(.mismatches))]
    TopicMismatch {
        /// Every difference.
        mismatches: Vec<crate::TopicMismatch>,
    },
    /// The client configuration is refused (by librdkafka or by Hutong's rules).
    #[error("kafka client configuration: {reason}")]
    Config {
        /// What is wrong.
        reason: String,
    },
}

impl BusError {
    /// A short name for metrics labels: `unavailable`, `queue_full`, `record_refused`,
    /// `not_authorized`, `topic_refused`, `topic_mismatch` or `config`.
    pub fn kind(&self) -> &'static str {
        match self {
            Self::Unavailable { .. } => "unavailable",
            Self::QueueFull => "queue_full",
            Self::RecordRefused { .. } => "record_refused",
            Self::NotAuthorized { .. } => "not_authorized",
            Self::TopicRefused { .. } => "topic_refused",
            Self::TopicMismatch { .. } => "topic_mismatch",
            Self::Config { .. } => "config",
        }
    }

    /// `Unavailable` with `reason`.
    pub fn unavailable(reason: impl Into<String>) -> Self {
        Self::Unavailable { reason: reason.into() }
    }
}

/// The future of one delivery.
pub type PublishFuture = BoxFuture<'static, Result<Receipt, BusError>>;

/// Sends messages to the bus; resolves only when the broker acknowledged.
pub trait Publisher: Send + Sync + 'static {
    /// Sends `msg`; the future resolves with its delivery report.
    fn publish(&self, msg: OutboundMessage) -> PublishFuture;
}

/// An in-memory publisher for tests: keeps every message, one partition per topic.
#[derive(Debug, Clone, Default)]
pub struct MemoryPublisher {
    sent: Arc<Mutex<Vec<OutboundMessage>>>,
}

impl MemoryPublisher {
    /// Everything published so far.
    pub fn sent(&self) -> Vec<OutboundMessage> {
        self.sent.lock().expect("memory publisher lock").clone()
    }
}

impl Publisher for MemoryPublisher {
    fn publish(&self, msg: OutboundMessage) -> PublishFuture {
        let mut sent = self.sent.lock().expect("memory publisher lock");
        let offset = sent.iter().filter(|m| m.topic == msg.topic).count() as i64;
        let receipt = Receipt { topic: msg.topic.clone(), partition: 0, offset };
        sent.push(msg);
        Box::pin(futures::future::ready(Ok(receipt)))
    }
}
