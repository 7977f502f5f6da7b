use std::{
    borrow::Cow,
    collections::BTreeMap,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use rdkafka::{
    ClientConfig, ClientContext,
    admin::{AdminClient, AdminOptions, NewTopic, ResourceSpecifier, TopicReplication},
    client::DefaultClientContext,
    error::{KafkaError, RDKafkaErrorCode},
    message::{DeliveryResult, Header, Message as _, OwnedHeaders},
    producer::{BaseRecord, Partitioner, Producer, ProducerContext, ThreadedProducer},
    util::Timeout,
};
use tokio::sync::oneshot;
use tracing::{info, warn};

use crate::{
    BusConfig, BusError, MismatchPolicy, OutboundMessage, PublishFuture, Publisher, Receipt, TopicCheck, TopicMismatch,
    TopicPlan,
};

/// Kafka's partitioning of a keyed record, applied by librdkafka as it enqueues (so a record
/// waits, in order, while the topic's partition count is not known yet): a fact key
/// (`["<entity key>", …]`, [`crate::fact_key`]) goes to the partition of its entity key, any
/// other key to the partition of the whole key — both as Java's default partitioner would.
#[derive(Debug, Clone, Copy, Default)]
pub struct EntityPartitioner;

impl Partitioner for EntityPartitioner {
    fn partition(&self, _topic: &str, key: Option<&[u8]>, partition_cnt: i32, _available: impl Fn(i32) -> bool) -> i32 {
        let Some(key) = key else { return 0 };
        match serde_json::from_slice::<FactKey<'_>>(key) {
            Ok(FactKey(entity, ..)) => crate::partition_for(&entity, partition_cnt),
            Err(_) => (crate::murmur2(key) & 0x7fff_ffff) % partition_cnt.max(1),
        }
    }
}

/// A fact key as [`EntityPartitioner`] reads it: exactly four strings, read in place (a string
/// is copied only when it holds an escape), for every message the gateway enqueues.
#[derive(serde::Deserialize)]
#[expect(dead_code, reason = "the last three are read only to require exactly four strings")]
struct FactKey<'a>(
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
    #[serde(borrow)] Cow<'a, str>,
);

/// The answer to one enqueued record: its partition and offset, or why it failed.
type DeliveryAnswer = Result<(i32, i64), KafkaError>;
type DeliveryTx = oneshot::Sender<DeliveryAnswer>;

/// The producer's context: delivery reports to the waiting record, Hutong's partitioner.
struct Context {
    partitioner: EntityPartitioner,
}

impl ClientContext for Context {}

impl ProducerContext<EntityPartitioner> for Context {
    type DeliveryOpaque = Box<DeliveryTx>;

    fn delivery(&self, result: &DeliveryResult<'_>, tx: Box<DeliveryTx>) {
        let answer = match result {
            Ok(m) => Ok((m.partition(), m.offset())),
            Err((e, _)) => Err(e.clone()),
        };
        let _ = tx.send(answer);
    }

    fn get_custom_partitioner(&self) -> Option<&EntityPartitioner> {
        Some(&self.partitioner)
    }
}

type Inner = ThreadedProducer<Context, EntityPartitioner>;

fn create(config: &ClientConfig) -> Result<Inner, BusError> {
    config
        .create_with_context(Context { partitioner: EntityPartitioner })
        .map_err(|e| BusError::Config { reason: format!("producer: {e}") })
}

/// The rdkafka producer behind the [`Publisher`] seam: idempotent, `acks=all`,
/// facts partitioned by their entity key ([`EntityPartitioner`]).
///
/// A fatal producer error (e.g. an idempotence sequence error) rebuilds the
/// producer; the messages it failed are answered with an error (never OK), so
/// callers retry them with the same event ids.
#[derive(Clone)]
pub struct KafkaPublisher {
    producer: Arc<ArcSwap<Inner>>,
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
        let producer = create(&client)?;
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
    fn rebuild(&self, failed: &Arc<Inner>) {
        let mut count = self.rebuilds.lock().expect("rebuild lock");
        if !Arc::ptr_eq(&self.producer.load_full(), failed) {
            return; // someone else already did
        }
        let reason = failed.client().fatal_error().map(|(_, r)| r).unwrap_or_default();
        match create(&self.config) {
            Ok(p) => {
                self.producer.store(Arc::new(p));
                *count += 1;
                warn!(rebuilds = *count, reason, "fatal producer error: producer rebuilt");
            }
            Err(e) => warn!(error = %e, "fatal producer error: rebuilding the producer failed"),
        }
    }

    /// Enqueues `msg` (synchronously, so records keep the order they are handed over in).
    fn enqueue(producer: &Inner, msg: &OutboundMessage) -> Result<oneshot::Receiver<DeliveryAnswer>, KafkaError> {
        let (tx, rx) = oneshot::channel();
        let mut headers = OwnedHeaders::new_with_capacity(10);
        for (k, v) in msg.event.headers() {
            headers = headers.insert(Header { key: k, value: Some(v.as_bytes()) });
        }
        let mut record =
            BaseRecord::<str, [u8], Box<DeliveryTx>>::with_opaque_to(&msg.topic, Box::new(tx)).headers(headers);
        if let Some(k) = &msg.key {
            record = record.key(k.as_str());
        }
        if let Some(v) = &msg.value {
            record = record.payload(v.as_slice());
        }
        producer.send(record).map(|()| rx).map_err(|(e, _)| e)
    }
}

impl Publisher for KafkaPublisher {
    fn publish(&self, msg: OutboundMessage) -> PublishFuture {
        let producer = self.producer.load_full();
        let queue_timeout = self.queue_timeout;
        let this = self.clone();
        // The first attempt enqueues now, before the future is polled: records keep the order
        // in which they were handed over.
        let first = Self::enqueue(&producer, &msg);
        Box::pin(async move {
            let mut attempt = first;
            let started = Instant::now();
            let rx = loop {
                match attempt {
                    Ok(rx) => break rx,
                    // A full queue is backpressure: wait for room up to the queue timeout.
                    Err(e) if e.rdkafka_error_code() == Some(C::QueueFull) && started.elapsed() < queue_timeout => {
                        tokio::time::sleep(Duration::from_millis(5).min(queue_timeout)).await;
                        attempt = Self::enqueue(&producer, &msg);
                    }
                    Err(e) => return Err(this.failed(&producer, e)),
                }
            };
            match rx.await {
                Ok(Ok((partition, offset))) => Ok(Receipt { topic: msg.topic, partition, offset }),
                Ok(Err(e)) => Err(this.failed(&producer, e)),
                Err(_) => Err(BusError::unavailable("the producer was dropped before the delivery report")),
            }
        })
    }
}

impl KafkaPublisher {
    /// The error a failed record is answered with; a fatal producer error rebuilds the producer.
    fn failed(&self, producer: &Arc<Inner>, e: KafkaError) -> BusError {
        if e.rdkafka_error_code() == Some(C::Fatal) || producer.client().fatal_error().is_some() {
            self.rebuild(producer);
            return BusError::unavailable(format!("fatal producer error, producer rebuilt: {e}"));
        }
        classify(e)
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

fn admin(config: &BusConfig) -> Result<Arc<AdminClient<DefaultClientContext>>, BusError> {
    let client =
        config.to_rdkafka()?.create().map_err(|e| BusError::Config { reason: format!("admin client: {e}") })?;
    Ok(Arc::new(client))
}

/// Bounded: with the brokers away a request would otherwise wait for socket.timeout.ms (60 s).
const ADMIN_TIMEOUT: Duration = Duration::from_secs(10);

fn admin_options() -> AdminOptions {
    AdminOptions::new().operation_timeout(Some(ADMIN_TIMEOUT)).request_timeout(Some(ADMIN_TIMEOUT))
}

/// Makes sure the plan's topics are there as declared: creates the missing ones with their
/// partitions, replication and config (when `kafka.create-topics`; otherwise a missing topic is
/// a difference too) and checks the ones that already existed against the plan
/// (DescribeConfigs and the metadata). A difference is an error naming the topic, the setting
/// and both values ([`BusError::TopicMismatch`]), or a warning when
/// `kafka.topic-config-mismatch = "warn"`. Returns what was found.
pub async fn ensure_topics(config: &BusConfig, plan: &TopicPlan) -> Result<TopicCheck, BusError> {
    let admin = admin(config)?;
    let check = if config.create_topics {
        let new: Vec<NewTopic<'_>> = plan
            .topics
            .iter()
            .map(|t| {
                t.config.iter().fold(
                    NewTopic::new(&t.name, t.partitions, TopicReplication::Fixed(t.replication_factor)),
                    |n, (k, v)| n.set(k, v),
                )
            })
            .collect();
        let results = admin.create_topics(&new, &admin_options()).await.map_err(classify)?;
        let mut existing = Vec::new();
        for r in results {
            match r {
                Ok(topic) => info!(topic, "topic created"),
                Err((topic, C::TopicAlreadyExists)) => existing.push(topic),
                Err((topic, code)) => return Err(creation_refused(&topic, code)),
            }
        }
        TopicCheck { missing: Vec::new(), mismatches: differences(&admin, plan, &existing).await? }
    } else {
        let mut check = inspect(&admin, plan).await?;
        check.mismatches.extend(check.missing.iter().map(|t| TopicMismatch::missing(t)));
        check
    };
    match config.topic_config_mismatch {
        _ if check.mismatches.is_empty() => {}
        MismatchPolicy::Error => return Err(BusError::TopicMismatch { mismatches: check.mismatches }),
        MismatchPolicy::Warn => {
            for m in &check.mismatches {
                warn!(topic = %m.topic, setting = %m.setting, declared = %m.declared, actual = ?m.actual, "existing topic differs from the plan");
            }
        }
    }
    Ok(check)
}

/// Why the brokers did not create `topic`: refused for good (replication factor, partitions or a
/// config they do not accept, a policy, authorisation), or trouble worth a retry.
fn creation_refused(topic: &str, code: RDKafkaErrorCode) -> BusError {
    let reason = format!("creating topic {topic}: {code}");
    match code {
        C::TopicAuthorizationFailed | C::ClusterAuthorizationFailed => BusError::NotAuthorized { reason },
        C::InvalidReplicationFactor
        | C::InvalidPartitions
        | C::InvalidConfig
        | C::PolicyViolation
        | C::InvalidTopic
        | C::InvalidReplicaAssignment
        | C::InvalidRequest => BusError::Config { reason },
        _ => BusError::Unavailable { reason },
    }
}

/// Compares the brokers' topics with the plan without changing anything: what is missing and
/// how the existing ones differ.
pub async fn check_topics(config: &BusConfig, plan: &TopicPlan) -> Result<TopicCheck, BusError> {
    inspect(&admin(config)?, plan).await
}

async fn inspect(admin: &Arc<AdminClient<DefaultClientContext>>, plan: &TopicPlan) -> Result<TopicCheck, BusError> {
    let known = metadata(admin).await?;
    let (existing, missing): (Vec<&str>, Vec<&str>) =
        plan.topics.iter().map(|t| t.name.as_str()).partition(|n| known.contains_key(*n));
    let existing: Vec<String> = existing.into_iter().map(str::to_owned).collect();
    Ok(TopicCheck {
        missing: missing.into_iter().map(str::to_owned).collect(),
        mismatches: differences(admin, plan, &existing).await?,
    })
}

/// Partitions and replicas of every topic of the cluster (from its metadata).
async fn metadata(admin: &Arc<AdminClient<DefaultClientContext>>) -> Result<BTreeMap<String, (i32, i32)>, BusError> {
    let admin = Arc::clone(admin);
    tokio::task::spawn_blocking(move || {
        let md = admin.inner().fetch_metadata(None, ADMIN_TIMEOUT).map_err(classify)?;
        Ok(md
            .topics()
            .iter()
            .filter(|t| t.error().is_none())
            .map(|t| {
                let partitions = i32::try_from(t.partitions().len()).unwrap_or(i32::MAX);
                let replicas =
                    t.partitions().first().map_or(0, |p| i32::try_from(p.replicas().len()).unwrap_or(i32::MAX));
                (t.name().to_owned(), (partitions, replicas))
            })
            .collect())
    })
    .await
    .map_err(|e| BusError::unavailable(format!("reading the metadata: {e}")))?
}

/// How the `existing` topics of the plan differ from it.
async fn differences(
    admin: &Arc<AdminClient<DefaultClientContext>>,
    plan: &TopicPlan,
    existing: &[String],
) -> Result<Vec<TopicMismatch>, BusError> {
    if existing.is_empty() {
        return Ok(Vec::new());
    }
    let shape = metadata(admin).await?;
    let specs: Vec<ResourceSpecifier<'_>> = existing.iter().map(|t| ResourceSpecifier::Topic(t)).collect();
    let described = admin.describe_configs(&specs, &admin_options()).await.map_err(classify)?;
    let mut out = Vec::new();
    for (name, result) in existing.iter().zip(described) {
        let Some(spec) = plan.get(name) else { continue };
        let resource = result.map_err(|code| BusError::unavailable(format!("describing topic {name}: {code}")))?;
        let configs: BTreeMap<String, String> =
            resource.entries.into_iter().filter_map(|e| Some((e.name, e.value?))).collect();
        let (partitions, replicas) = shape.get(name).copied().unwrap_or((0, 0));
        out.extend(crate::compare_topic(spec, &configs, partitions, replicas));
    }
    Ok(out)
}

use RDKafkaErrorCode as C;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn facts_go_to_the_partition_of_their_entity_key() {
        let p = EntityPartitioner;
        for n in [1, 3, 12] {
            // Read in place, or copied where an escape makes the key's text differ from its bytes.
            for entity in ["abc", "21", "foobar", "gongan:3301060040530001", "石灰桥\"5\\幢\n"] {
                let fact = crate::fact_key(entity, "gongan", "household_registration", "k1:ff");
                assert_eq!(p.partition("t", Some(fact.as_bytes()), n, |_| true), crate::partition_for(entity, n));
            }
            // Any other key (the dead-letter topic's event ids, the audit's sequence numbers):
            // the whole key, as Java's default partitioner.
            assert_eq!(p.partition("t", Some(b"17"), n, |_| true), crate::partition_for("17", n));
            // Not exactly four strings: the whole key too.
            for other in [r#"["abc","gongan","k"]"#, r#"["abc","gongan","k","s","t"]"#, r#"["abc",1,"k","s"]"#] {
                assert_eq!(p.partition("t", Some(other.as_bytes()), n, |_| true), crate::partition_for(other, n));
            }
        }
    }
}
