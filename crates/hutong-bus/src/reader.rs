//! Reading a topic to its end: what `hutong topics check --counts` and the tests count with.

use std::{
    collections::BTreeSet,
    time::{Duration, Instant},
};

use rdkafka::{
    ClientConfig, ClientContext, Offset, TopicPartitionList,
    consumer::{BaseConsumer, Consumer as _, ConsumerContext},
    error::{KafkaError, RDKafkaErrorCode},
    message::{BorrowedMessage, Message as _, OwnedMessage},
};
use tracing::warn;

use crate::BusError;

/// Every message `topics` hold now, read from the beginning of each partition to its end (its
/// high watermark when the read began; a message written meanwhile may be included), topic by
/// topic in the order given. The topics are read at once, one consumer each. `client` carries
/// the bootstrap servers and any security settings; no consumer group offsets are committed.
/// Gives up after `timeout`.
pub fn read_to_end(client: &ClientConfig, topics: &[&str], timeout: Duration) -> Result<Vec<OwnedMessage>, BusError> {
    scan_to_end(client, topics, timeout, |m| Some(m.detach()))
}

/// [`read_to_end`] keeping only what `keep` makes of each message: a scan of large topics for a
/// few messages holds those few, not the topics.
pub fn scan_to_end<T: Send>(
    client: &ClientConfig,
    topics: &[&str],
    timeout: Duration,
    keep: impl Fn(&BorrowedMessage<'_>) -> Option<T> + Sync,
) -> Result<Vec<T>, BusError> {
    let deadline = Instant::now() + timeout;
    let keep = &keep;
    let read: Vec<Result<Vec<T>, BusError>> = std::thread::scope(|s| {
        let readers: Vec<_> = topics.iter().map(|t| s.spawn(move || read_topic(client, t, deadline, keep))).collect();
        readers
            .into_iter()
            .map(|r| r.join().unwrap_or_else(|_| Err(BusError::unavailable("a reader panicked"))))
            .collect()
    });
    let mut out = Vec::new();
    for r in read {
        out.extend(r?);
    }
    Ok(out)
}

fn read_topic<T>(
    client: &ClientConfig,
    topic: &str,
    deadline: Instant,
    keep: &impl Fn(&BorrowedMessage<'_>) -> Option<T>,
) -> Result<Vec<T>, BusError> {
    let err = |e: KafkaError| BusError::unavailable(format!("reading {topic}: {e}"));
    let mut config = client.clone();
    config
        .set("group.id", format!("hutong-read-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "true")
        // An empty partition answers after this long poll: keep it short, the read ends at EOF.
        .set("fetch.wait.max.ms", "50");
    let consumer: BaseConsumer<EndIsNoError> = config.create_with_context(EndIsNoError).map_err(err)?;
    let md = consumer.fetch_metadata(Some(topic), deadline.saturating_duration_since(Instant::now())).map_err(err)?;
    let partitions: Vec<i32> = match md.topics().iter().find(|t| t.name() == topic) {
        Some(t) if t.error().is_none() => t.partitions().iter().map(|p| p.id()).collect(),
        Some(t) => return Err(BusError::TopicRefused { reason: format!("{topic}: {:?}", t.error()) }),
        None => return Err(BusError::TopicRefused { reason: format!("{topic}: no such topic") }),
    };
    let mut tpl = TopicPartitionList::new();
    for p in &partitions {
        tpl.add_partition_offset(topic, *p, Offset::Beginning).map_err(err)?;
    }
    consumer.assign(&tpl).map_err(err)?;
    let mut at_end = BTreeSet::new();
    let (mut out, mut read) = (Vec::new(), 0u64);
    while at_end.len() < partitions.len() {
        if Instant::now() >= deadline {
            return Err(BusError::unavailable(format!("{topic}: read {read} message(s), not to the end in time")));
        }
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(KafkaError::PartitionEOF(p))) => {
                at_end.insert(p);
            }
            // librdkafka says so when a broker connection drops, and connects again by itself:
            // the read goes on until the deadline (a CI run saw tansu drop one mid-read).
            Some(Err(KafkaError::MessageConsumption(
                RDKafkaErrorCode::AllBrokersDown | RDKafkaErrorCode::BrokerTransportFailure,
            ))) => {}
            Some(Err(e)) => return Err(err(e)),
            Some(Ok(m)) => {
                at_end.remove(&m.partition());
                read += 1;
                out.extend(keep(&m));
            }
        }
    }
    Ok(out)
}

/// A reader's context: reaching the end of a partition is what it waits for, not an error
/// (librdkafka also reports it on the client's main queue, which the default context logs as one).
struct EndIsNoError;

impl ClientContext for EndIsNoError {
    fn error(&self, error: KafkaError, reason: &str) {
        if !matches!(error, KafkaError::Global(RDKafkaErrorCode::PartitionEOF)) {
            warn!(%error, reason, "kafka client error while reading a topic");
        }
    }
}

impl ConsumerContext for EndIsNoError {}

/// How far one consumer group is behind on one partition.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct GroupLag {
    /// The consumer group.
    pub group: String,
    /// The topic.
    pub topic: String,
    /// The partition.
    pub partition: i32,
    /// The group's committed offset (`None`: nothing committed).
    pub committed: Option<i64>,
    /// The partition's end (high watermark).
    pub end: i64,
    /// Messages not consumed yet: the end less the committed offset (the whole partition when
    /// nothing is committed).
    pub lag: i64,
}

/// The consumer groups whose names start with `prefix` (the broker's group list), with their
/// committed offsets and lag on each partition of `topics`. `client` carries the bootstrap
/// servers and any security settings; nothing is committed.
pub fn group_lag(
    client: &ClientConfig,
    prefix: &str,
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<GroupLag>, BusError> {
    let err = |what: &str, e: KafkaError| BusError::unavailable(format!("{what}: {e}"));
    let admin: BaseConsumer = client.create().map_err(|e| err("a client", e))?;
    let groups: Vec<String> = admin
        .fetch_group_list(None, timeout)
        .map_err(|e| err("listing consumer groups", e))?
        .groups()
        .iter()
        .map(|g| g.name().to_owned())
        .filter(|g| g.starts_with(prefix))
        .collect();
    lag_of(client, &groups, topics, timeout)
}

/// How far each of `groups` is behind on each partition of `topics` (no group listing: for a
/// caller that knows its group, and brokers that cannot list groups).
pub fn lag_of(
    client: &ClientConfig,
    groups: &[String],
    topics: &[&str],
    timeout: Duration,
) -> Result<Vec<GroupLag>, BusError> {
    let err = |what: &str, e: KafkaError| BusError::unavailable(format!("{what}: {e}"));
    let admin: BaseConsumer = client.create().map_err(|e| err("a client", e))?;
    let mut partitions = Vec::new();
    for topic in topics {
        let metadata = admin.fetch_metadata(Some(topic), timeout).map_err(|e| err(topic, e))?;
        for t in metadata.topics() {
            for p in t.partitions() {
                let (_, high) = admin.fetch_watermarks(topic, p.id(), timeout).map_err(|e| err(topic, e))?;
                partitions.push(((*topic).to_owned(), p.id(), high));
            }
        }
    }
    let mut out = Vec::new();
    for group in groups {
        let consumer: BaseConsumer = client
            .clone()
            .set("group.id", group)
            .set("enable.auto.commit", "false")
            .create()
            .map_err(|e| err(group, e))?;
        let mut tpl = TopicPartitionList::new();
        for (topic, partition, _) in &partitions {
            tpl.add_partition(topic, *partition);
        }
        let committed = consumer.committed_offsets(tpl, timeout).map_err(|e| err(group, e))?;
        for (topic, partition, end) in &partitions {
            let at = committed.find_partition(topic, *partition).and_then(|p| match p.offset() {
                Offset::Offset(o) => Some(o),
                _ => None,
            });
            out.push(GroupLag {
                group: group.clone(),
                topic: topic.clone(),
                partition: *partition,
                committed: at,
                end: *end,
                lag: (end - at.unwrap_or(0)).max(0),
            });
        }
    }
    Ok(out)
}
