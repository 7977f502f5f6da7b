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

/// Why a message was not delivered.
#[derive(Debug, Clone, thiserror::Error)]
pub enum BusError {
    /// Broker unreachable, timed out, or a transient error: retry later.
    #[error("kafka unavailable: {0}")]
    Unavailable(String),
    /// The producer queue is full: slow down.
    #[error("producer queue full")]
    QueueFull,
    /// The broker refused the message for good (too large, not authorised …).
    #[error("kafka refused the message: {0}")]
    Refused(String),
}

impl BusError {
    /// Whether the same message may succeed if sent again later.
    pub fn is_retryable(&self) -> bool {
        !matches!(self, Self::Refused(_))
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
