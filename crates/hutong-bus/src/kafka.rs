use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use arc_swap::ArcSwap;

use rdkafka::{
    ClientConfig,
    admin::{AdminClient, AdminOptions, NewTopic, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{Header, OwnedHeaders},
    producer::{FutureProducer, FutureRecord, Producer},
    util::Timeout,
};
use tracing::{debug, info, warn};

use crate::{BusConfig, BusError, OutboundMessage, PublishFuture, Publisher, Receipt};

/// The rdkafka producer behind the [`Publisher`] seam: idempotent, `acks=all`.
///
/// A fatal producer error (e.g. an idempotence sequence error) rebuilds the
/// producer; the messages it failed are answered with an error (never OK), so
/// callers retry them with the same event ids.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Arc<ArcSwap<FutureProducer>>,
    /// Shared: every `publish` clones the publisher (the profile showed the
    /// config's map cloned per message when it was held by value).
    config: Arc<ClientConfig>,
    rebuilds: Arc<Mutex<u64>>,
    queue_timeout: Duration,
}

impl std::fmt::Debug for KafkaPublisher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KafkaPublisher").field("queue_timeout", &self.queue_timeout).finish_non_exhaustive()
    }
}

impl KafkaPublisher {
    /// Creates the producer (it connects lazily).
    pub fn new(config: &BusConfig) -> Result<Self, BusError> {
        let client = config.to_rdkafka()?;
        let producer: FutureProducer =
            client.create().map_err(|e| BusError::Config { reason: format!("producer: {e}") })?;
        Ok(Self {
            producer: Arc::new(ArcSwap::from_pointee(producer)),
            config: Arc::new(client),
            rebuilds: Arc::default(),
            queue_timeout: Duration::from_millis(config.queue_timeout_ms),
        })
    }

    /// Waits until every message in flight is delivered or `timeout` passes.
    pub fn flush(&self, timeout: Duration) -> Result<(), BusError> {
        self.producer.load().flush(Timeout::After(timeout)).map_err(classify)
    }

    /// Messages in the producer's queue, not yet acknowledged.
    pub fn queue_len(&self) -> i64 {
        i64::from(self.producer.load().in_flight_count())
    }

    /// How many times a fatal error made the producer be rebuilt.
    pub fn rebuilds(&self) -> u64 {
        *self.rebuilds.lock().expect("rebuild lock")
    }

    /// Replaces `failed` with a fresh producer, once, however many messages saw it fail.
    fn rebuild(&self, failed: &Arc<FutureProducer>) {
        let mut count = self.rebuilds.lock().expect("rebuild lock");
        if !Arc::ptr_eq(&self.producer.load_full(), failed) {
            return; // someone else already did
        }
        let reason = failed.client().fatal_error().map(|(_, r)| r).unwrap_or_default();
        match self.config.create::<FutureProducer>() {
            Ok(p) => {
                self.producer.store(Arc::new(p));
                *count += 1;
                warn!(rebuilds = *count, reason, "fatal producer error: producer rebuilt");
            }
            Err(e) => warn!(error = %e, "fatal producer error: rebuilding the producer failed"),
        }
    }
}

impl Publisher for KafkaPublisher {
    fn publish(&self, msg: OutboundMessage) -> PublishFuture {
        let producer = self.producer.load_full();
        let queue_timeout = self.queue_timeout;
        let this = self.clone();
        Box::pin(async move {
            let mut headers = OwnedHeaders::new_with_capacity(8);
            for (k, v) in msg.event.headers() {
                headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
            }
            let mut record = FutureRecord::<str, [u8]>::to(&msg.topic).headers(headers);
            if let Some(k) = &msg.key {
                record = record.key(k.as_str());
            }
            if let Some(v) = &msg.value {
                record = record.payload(v.as_slice());
            }
            match producer.send(record, Timeout::After(queue_timeout)).await {
                Ok(delivery) => {
                    Ok(Receipt { topic: msg.topic, partition: delivery.partition, offset: delivery.offset })
                }
                Err((e, _)) => {
                    if e.rdkafka_error_code() == Some(C::Fatal) || producer.client().fatal_error().is_some() {
                        this.rebuild(&producer);
                        return Err(BusError::unavailable(format!("fatal producer error, producer rebuilt: {e}")));
                    }
                    Err(classify(e))
                }
            }
        })
    }
}

/// Sorts a Kafka error into retryable trouble, backpressure or a refusal (of the record, of the
/// gateway, of the topic): the one place a librdkafka error is classified.
fn classify(e: KafkaError) -> BusError {
    use RDKafkaErrorCode as C;
    let reason = e.to_string();
    match e.rdkafka_error_code() {
        Some(C::QueueFull) => BusError::QueueFull,
        Some(C::MessageSizeTooLarge | C::InvalidMessageSize | C::InvalidRecord) => BusError::RecordRefused { reason },
        Some(C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed) => BusError::NotAuthorized { reason },
        Some(C::UnknownTopicOrPartition | C::InvalidTopic | C::UnknownTopic) => BusError::TopicRefused { reason },
        _ => BusError::Unavailable { reason },
    }
}

/// Creates `topics` that do not exist yet; existing ones are left as they are.
pub async fn ensure_topics(config: &BusConfig, topics: &[String]) -> Result<(), BusError> {
    let admin: AdminClient<DefaultClientContext> =
        config.to_rdkafka()?.create().map_err(|e| BusError::Config { reason: format!("admin client: {e}") })?;
    let new: Vec<NewTopic<'_>> = topics
        .iter()
        .map(|t| NewTopic::new(t, config.partitions, TopicReplication::Fixed(config.replication_factor)))
        .collect();
    // Bounded: with the brokers away the request would otherwise wait for socket.timeout.ms (60 s).
    let opts = AdminOptions::new()
        .operation_timeout(Some(Duration::from_secs(10)))
        .request_timeout(Some(Duration::from_secs(10)));
    let results = admin.create_topics(&new, &opts).await.map_err(classify)?;
    for r in results {
        match r {
            Ok(topic) => info!(topic, "topic created"),
            Err((topic, C::TopicAlreadyExists)) => debug!(topic, "topic exists"),
            Err((topic, code)) => {
                return Err(BusError::unavailable(format!("creating topic {topic}: {code}")));
            }
        }
    }
    Ok(())
}

use RDKafkaErrorCode as C;
