//! The consumer side of the profile service: a Kafka consumer group over the entity topics;
//! each batch of facts applied to the store in one transaction, the merged profiles published,
//! and only then the offsets committed. A fact it cannot use goes to its own dead-letter topic
//! with the reason; the partition keeps moving. While the store is away it stops consuming and
//! reports not-ready, then resumes where it stopped.

use std::{
    collections::BTreeMap,
    sync::atomic::{AtomicBool, AtomicU64, Ordering},
    time::{Duration, Instant},
};

use hutong_bus::BusConfig;
use hutong_standard::{Standard, ViewValidator, privacy::PrivacyConfig};
use rdkafka::{
    ClientContext, Message as _, Offset, TopicPartitionList,
    consumer::{BaseConsumer, CommitMode, Consumer as _, ConsumerContext},
    message::{BorrowedMessage, Header, Headers as _, OwnedHeaders},
    producer::{BaseRecord, DeliveryResult, Producer as _, ProducerContext, ThreadedProducer},
};
use serde_json::Value;
use tracing::{debug, info, warn};

use crate::{
    ProfilesError,
    governance::{GovernanceRuntime, Outbox, Reject, Submission},
    merge::{Fact, Source},
    rules::Rules,
    store::{Applied, Store, StoreError, StoreUrl},
};

/// What an entity topic's messages are checked with.
struct TopicIn {
    entity: String,
    key_field: String,
    view: ViewValidator,
}

/// Turns messages of the entity topics into facts, or the reason they cannot be one.
pub struct Intake {
    topics: BTreeMap<String, TopicIn>,
    /// The gateway's dead-letter topic, read for the effectiveness report (governance only).
    rejects: Option<String>,
}

impl Intake {
    /// The main (public) topic of each of `entities`, with the view schema its messages follow
    /// under `privacy`.
    pub fn new(
        standard: &Standard,
        bus: &BusConfig,
        privacy: &PrivacyConfig,
        entities: &[String],
    ) -> Result<Self, ProfilesError> {
        let names = bus.topics();
        let main = |e: &hutong_standard::Entity| names.entity(&e.name, e.major);
        let views = hutong_standard::privacy::topic_views(standard, &main, privacy)
            .map_err(|e| ProfilesError::Config(e.to_string()))?;
        let mut topics = BTreeMap::new();
        for name in entities {
            let entity = standard
                .entity(name)
                .ok_or_else(|| ProfilesError::Config(format!("profiles.entities: no entity {name:?}")))?;
            let topic = main(entity);
            let view = views
                .get(name)
                .and_then(|v| v.iter().find(|v| v.topic == topic))
                .ok_or_else(|| ProfilesError::Config(format!("no topic view of {name}")))?;
            let view = standard.view_validator(&view.schema).map_err(|e| ProfilesError::Config(e.to_string()))?;
            topics.insert(topic, TopicIn { entity: name.clone(), key_field: entity.key.clone(), view });
        }
        Ok(Self { topics, rejects: None })
    }

    /// Also reads the gateway's dead-letter topic `dlq`: what each department had refused.
    pub fn with_rejects(mut self, dlq: String) -> Self {
        self.rejects = Some(dlq);
        self
    }

    /// The topics read.
    pub fn topics(&self) -> Vec<&str> {
        self.topics.keys().map(String::as_str).chain(self.rejects.as_deref()).collect()
    }

    /// Whether `topic` is the dead-letter topic read for rejects.
    pub fn is_rejects(&self, topic: &str) -> bool {
        self.rejects.as_deref() == Some(topic)
    }

    /// A refused record of the gateway's dead-letter topic (its value names the department,
    /// kind and every violation), or why it is not one.
    pub fn reject(value: Option<&[u8]>, event_id: Option<String>) -> Result<Reject, String> {
        let v: Value =
            serde_json::from_slice(value.ok_or("no value")?).map_err(|e| format!("the value is not JSON: {e}"))?;
        let text = |k: &str| v[k].as_str().map(str::to_owned).ok_or_else(|| format!("no {k}"));
        let received_at = chrono::DateTime::parse_from_rfc3339(&text("received_at")?)
            .map_err(|e| format!("received_at: {e}"))?
            .with_timezone(&chrono::Utc);
        let rules = v["violations"]
            .as_array()
            .into_iter()
            .flatten()
            .filter_map(|x| x["rule"].as_str().map(str::to_owned))
            .collect();
        Ok(Reject {
            event_id: event_id.ok_or("no ce_id header")?,
            department: text("department")?,
            kind: text("kind")?,
            received_at,
            rules,
        })
    }

    /// The fact a message carries: its key is a fact key (docs/consuming.md), its headers carry
    /// `ce_id`, `ce_time` and `ce_revision`, its value (unless a tombstone) is a record of the
    /// topic's schema naming the key's entity.
    pub fn fact(
        &self,
        topic: &str,
        key: Option<&[u8]>,
        value: Option<&[u8]>,
        header: &dyn Fn(&str) -> Option<String>,
    ) -> Result<Fact, String> {
        let t = self.topics.get(topic).ok_or_else(|| format!("not an entity topic read here: {topic}"))?;
        let key = key.ok_or("no key (a fact key is required)")?;
        let parts: Vec<String> = serde_json::from_slice(key)
            .map_err(|e| format!("the key is not a fact key [entity key, department, kind, source id]: {e}"))?;
        let [entity_key, department, kind, source_id]: [String; 4] =
            parts.try_into().map_err(|p: Vec<String>| format!("the key has {} elements, a fact key has 4", p.len()))?;
        if [&entity_key, &department, &kind, &source_id].iter().any(|p| p.is_empty()) {
            return Err("the key has an empty element".into());
        }
        let revision: i64 = header("ce_revision")
            .ok_or("no ce_revision header")?
            .parse()
            .map_err(|_| "ce_revision is not a decimal integer".to_owned())?;
        let ce_id = header("ce_id").ok_or("no ce_id header")?;
        let time = header("ce_time").ok_or("no ce_time header")?;
        let time = chrono::DateTime::parse_from_rfc3339(&time)
            .map_err(|e| format!("ce_time is not RFC 3339: {e}"))?
            .with_timezone(&chrono::Utc)
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
        let data = match value {
            None => None,
            Some(bytes) => {
                let record: Value = serde_json::from_slice(bytes).map_err(|e| format!("the value is not JSON: {e}"))?;
                let violations = t.view.validate(&record);
                if let Some(v) = violations.first() {
                    return Err(format!(
                        "the value fails the topic's schema ({} violation(s)), first at {}: {}",
                        violations.len(),
                        if v.pointer.is_empty() { "/" } else { &v.pointer },
                        v.message
                    ));
                }
                if record.get(&t.key_field).and_then(Value::as_str) != Some(entity_key.as_str()) {
                    return Err(format!("the value's {} is not the key's entity key", t.key_field));
                }
                Some(record)
            }
        };
        Ok(Fact {
            entity: t.entity.clone(),
            entity_key,
            source: Source { department, kind, source_id, revision, time, ce_id },
            data,
        })
    }
}

/// A profile topic: where an entity's merged profiles go, the registered schema they point
/// to (`ce_dataschema`) and are checked with before they leave.
struct TopicOut {
    topic: String,
    dataschema: String,
    check: ViewValidator,
}

/// The profile topics published to (none when `[profiles] publish` is off).
pub struct Outlet {
    topics: BTreeMap<String, TopicOut>,
}

impl Outlet {
    /// The profile topic of each of `entities`, whose schema must be registered in `registry`
    /// exactly as this standard, these topic names and `privacy` make it (`hutong schema
    /// register` writes it).
    pub fn new(
        standard: &Standard,
        bus: &BusConfig,
        privacy: &PrivacyConfig,
        registry: &hutong_registry::Registry,
        registry_url: &str,
        entities: &[String],
    ) -> Result<Self, ProfilesError> {
        let names = bus.topics();
        let main = |e: &hutong_standard::Entity| names.entity(&e.name, e.major);
        let profile = |entity: &str| names.profile(entity);
        let subjects = hutong_registry::profile::profile_subjects(standard, &main, &profile, privacy, entities)
            .map_err(|e| ProfilesError::Config(e.to_string()))?;
        let mut topics = BTreeMap::new();
        for s in subjects {
            let out = TopicOut::registered(standard, registry, registry_url, &s.subject, s.topic, &s.schema)?;
            topics.insert(s.entity, out);
        }
        Ok(Self { topics })
    }

    /// Also publishes alerts and matches, to topics whose schemas must be registered in
    /// `registry` as Hutong makes them.
    pub fn with_governance(
        mut self,
        bus: &BusConfig,
        standard: &Standard,
        registry: &hutong_registry::Registry,
        registry_url: &str,
    ) -> Result<Self, ProfilesError> {
        let names = bus.topics();
        for s in hutong_registry::governance::governance_subjects(&names.alert(), &names.matching(), &names.objection())
        {
            let out = TopicOut::registered(standard, registry, registry_url, &s.subject, s.topic, &s.schema)?;
            self.topics.insert(s.kind.to_owned(), out);
        }
        Ok(self)
    }

    /// Nothing published.
    pub fn none() -> Self {
        Self { topics: BTreeMap::new() }
    }
}

impl TopicOut {
    /// `topic`, whose messages follow `schema`: registered in `registry` under `subject` exactly
    /// as this Hutong and its standard make it (`hutong schema register` writes it).
    fn registered(
        standard: &Standard,
        registry: &hutong_registry::Registry,
        registry_url: &str,
        subject: &str,
        topic: String,
        schema: &Value,
    ) -> Result<Self, ProfilesError> {
        let registered = registry.find(subject, schema).ok_or_else(|| {
            ProfilesError::Schemas(format!(
                "{subject}: the schema of {topic} is not registered as this Hutong and its standard make it (run `hutong schema register`)"
            ))
        })?;
        let dataschema = format!("{}/schemas/ids/{}", registry_url.trim_end_matches('/'), registered.id);
        let check = standard.view_validator(schema).map_err(|e| ProfilesError::Schemas(e.to_string()))?;
        Ok(Self { topic, dataschema, check })
    }

    /// The CloudEvents headers of a message of this topic about `key`: `ce_id` a UUIDv5 of
    /// `name` and the message's `value` (the same message again has the same id, so a
    /// re-publication after a replay or a crash is a duplicate consumers drop).
    fn headers(&self, name: &str, value: Option<&str>, ty: &str, source: &str, key: &str) -> OwnedHeaders {
        let id = uuid::Uuid::new_v5(&uuid::Uuid::NAMESPACE_URL, format!("{name}:{}", value.unwrap_or("")).as_bytes())
            .to_string();
        OwnedHeaders::new()
            .insert(Header { key: "ce_specversion", value: Some("1.0") })
            .insert(Header { key: "ce_id", value: Some(&id) })
            .insert(Header { key: "ce_type", value: Some(ty) })
            .insert(Header { key: "ce_source", value: Some(source) })
            .insert(Header { key: "ce_subject", value: Some(key) })
            .insert(Header { key: "ce_dataschema", value: Some(&self.dataschema) })
            .insert(Header { key: "content-type", value: Some("application/json") })
    }

    /// Why `doc` may not be published here, if it may not.
    fn refusal(&self, doc: &Value) -> Option<String> {
        let violations = self.check.validate(doc);
        let v = violations.first()?;
        Some(format!(
            "the merged profile fails the schema of {} ({} violation(s)), first at {}: {}",
            self.topic,
            violations.len(),
            if v.pointer.is_empty() { "/" } else { &v.pointer },
            v.message
        ))
    }
}

/// Counts a delivery's failures, for the batch that waits on them.
#[derive(Default)]
struct Deliveries {
    failed: AtomicU64,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        if let Err((e, _)) = result {
            warn!(error = %e, "a profile or dead letter was not delivered");
            self.failed.fetch_add(1, Ordering::Relaxed);
        }
    }
}

/// Logs rebalances (which partitions this instance holds).
struct Group;

impl ClientContext for Group {}

impl ConsumerContext for Group {
    fn post_rebalance(&self, _: &BaseConsumer<Self>, rebalance: &rdkafka::consumer::Rebalance<'_>) {
        match rebalance {
            rdkafka::consumer::Rebalance::Assign(tpl) => info!(partitions = tpl.count(), "partitions assigned"),
            rdkafka::consumer::Rebalance::Revoke(tpl) => info!(partitions = tpl.count(), "partitions revoked"),
            rdkafka::consumer::Rebalance::Error(e) => warn!(error = %e, "rebalance failed"),
        }
    }
}

/// What the service reports while it runs.
#[derive(Debug, Default)]
pub struct Status {
    /// The store answers and the last batch was applied.
    pub ready: AtomicBool,
    /// Facts that changed the store.
    pub applied: AtomicU64,
    /// Facts that changed nothing (stale, duplicate).
    pub skipped: AtomicU64,
    /// Messages sent to the dead-letter topic.
    pub dead_letters: AtomicU64,
    /// Batches committed.
    pub batches: AtomicU64,
    /// Alerts and matches published.
    pub published: AtomicU64,
}

/// How the consumer runs.
#[derive(Debug, Clone)]
pub struct ConsumerSettings {
    /// Kafka.
    pub bus: BusConfig,
    /// The consumer group.
    pub group_id: String,
    /// The store.
    pub store: StoreUrl,
    /// Most facts per transaction.
    pub batch_size: usize,
    /// Consumer session timeout: how soon the group gives a dead instance's partitions to the
    /// others.
    pub session_timeout_ms: u32,
    /// The governance consumers, when they run.
    pub governance: Option<std::sync::Arc<GovernanceRuntime>>,
    /// How often deadline alerts are checked against the clock.
    pub tick: Duration,
    /// Open objections on the losing facts of new conflicts (`[sharing]
    /// objections-from-conflicts`).
    pub objections_from_conflicts: bool,
}

impl ConsumerSettings {
    /// Opens the store, with the governance consumers when they run.
    fn open_store(&self) -> Result<Store, ProfilesError> {
        let store = Store::open(&self.store)?.with_objections_from_conflicts(self.objections_from_conflicts);
        Ok(match &self.governance {
            Some(g) => store.with_governance(std::sync::Arc::clone(g)),
            None => store,
        })
    }
}

/// Runs the consumer until `stop` is set: poll a batch, apply it, publish, commit.
pub fn run(
    settings: &ConsumerSettings,
    intake: &Intake,
    outlet: &Outlet,
    rules: &Rules,
    status: &Status,
    stop: &AtomicBool,
) -> Result<(), ProfilesError> {
    let kafka = |e: rdkafka::error::KafkaError| ProfilesError::Kafka(e.to_string());
    let mut config = settings.bus.client().map_err(|e| ProfilesError::Kafka(e.to_string()))?;
    config
        .set("group.id", &settings.group_id)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", settings.session_timeout_ms.to_string())
        .set("heartbeat.interval.ms", (settings.session_timeout_ms / 4).max(100).to_string())
        // A batch is applied well within this; a store away for longer makes the instance leave
        // the group until it answers (see apply_until_done).
        .set("max.poll.interval.ms", "300000");
    let consumer: BaseConsumer<Group> = config.create_with_context(Group).map_err(kafka)?;
    consumer.subscribe(&intake.topics()).map_err(kafka)?;
    let mut producer_config = settings.bus.to_rdkafka().map_err(|e| ProfilesError::Kafka(e.to_string()))?;
    // The Java clients' murmur2 of the entity key, as on the entity topics: profiles are
    // co-partitioned with the facts they merge.
    producer_config.set("partitioner", "murmur2_random");
    let producer: ThreadedProducer<Deliveries> =
        producer_config.create_with_context(Deliveries::default()).map_err(kafka)?;
    let names = settings.bus.topics();
    let dlq = names.profiles_dlq();
    let mut store = Some(settings.open_store()?);
    let mut ticker = Ticker::default();
    let mut stranded = Stranded::default();
    status.ready.store(true, Ordering::Relaxed);
    info!(store = %settings.store, topics = intake.topics().len(), group = %settings.group_id, "profiles consuming");
    while !stop.load(Ordering::Relaxed) {
        let batch = poll_batch(&consumer, settings.batch_size, stop);
        if batch.is_empty() {
            stranded.check(&consumer, settings, &intake.topics());
            // Caught up: deadlines against the clock, and what the outbox still holds.
            if settings.governance.is_some() {
                govern_time(&mut store, settings, &producer, outlet, status, &mut ticker, true);
            }
            continue;
        }
        let mut facts = Vec::with_capacity(batch.len());
        let mut dead = Vec::new();
        let mut offsets = TopicPartitionList::new();
        let (mut submissions, mut rejects) = (Vec::new(), Vec::new());
        for m in &batch {
            let header = |name: &str| header_of(m, name);
            let _ = offsets.add_partition_offset(m.topic(), m.partition(), Offset::Offset(m.offset() + 1));
            if intake.is_rejects(m.topic()) {
                match Intake::reject(m.payload(), header("ce_id")) {
                    Ok(r) => rejects.push(r),
                    Err(reason) => {
                        debug!(topic = m.topic(), offset = m.offset(), %reason, "not a dead letter of the gateway")
                    }
                }
                continue;
            }
            match intake.fact(m.topic(), m.key(), m.payload(), &header) {
                Ok(f) => {
                    if settings.governance.is_some()
                        && let (Some(occurred), Some(published)) = (
                            chrono::DateTime::parse_from_rfc3339(&f.source.time).ok(),
                            m.timestamp().to_millis().and_then(chrono::DateTime::from_timestamp_millis),
                        )
                    {
                        submissions.push(Submission {
                            department: f.source.department.clone(),
                            kind: f.source.kind.clone(),
                            source_id: f.source.source_id.clone(),
                            revision: f.source.revision,
                            occurred_at: occurred.with_timezone(&chrono::Utc),
                            published_at: published,
                        });
                    }
                    facts.push(f);
                }
                Err(reason) => dead.push((m, reason)),
            }
        }
        let work = |s: &mut Store| -> Result<Applied, StoreError> {
            let applied = s.apply(&facts, rules)?;
            s.record_intake(&submissions, &rejects)?;
            Ok(applied)
        };
        let applied = apply_until_done(&mut store, settings, work, status, stop)?;
        let Some(applied) = applied else { break };
        status.applied.fetch_add(applied.applied, Ordering::Relaxed);
        status.skipped.fetch_add(applied.skipped, Ordering::Relaxed);
        let failed_before = producer.context().failed.load(Ordering::Relaxed);
        for ((entity, key), doc) in &applied.profiles {
            let Some(out) = outlet.topics.get(entity) else { continue };
            let value = doc.as_ref().map(Value::to_string);
            let ty = format!("cn.hutong.{entity}.profile");
            let headers =
                out.headers(&format!("hutong:profile:{entity}:{key}"), value.as_deref(), &ty, "/profiles", key);
            // A document off its registered schema is a fault of the merge: it goes to the
            // dead-letter topic with the reason instead of reaching the profile's readers (the
            // store keeps it; the next change of the entity is checked again).
            let refusal = doc.as_ref().and_then(|d| out.refusal(d));
            let topic = if refusal.is_some() { &dlq } else { &out.topic };
            let mut headers = headers;
            if let Some(reason) = &refusal {
                status.dead_letters.fetch_add(1, Ordering::Relaxed);
                warn!(entity = entity.as_str(), %reason, "profile not published: to the dead-letter topic");
                headers = headers
                    .insert(Header { key: "hutong_reason", value: Some(reason.as_str()) })
                    .insert(Header { key: "hutong_topic", value: Some(out.topic.as_str()) });
            }
            let mut record = BaseRecord::to(topic).key(key.as_bytes()).headers(headers);
            if let Some(v) = &value {
                record = record.payload(v.as_bytes());
            }
            send(&producer, record);
        }
        for (m, reason) in &dead {
            status.dead_letters.fetch_add(1, Ordering::Relaxed);
            warn!(topic = m.topic(), partition = m.partition(), offset = m.offset(), %reason, "fact refused: to the dead-letter topic");
            send(&producer, dead_letter(&dlq, m, reason));
        }
        // Profiles and dead letters are in Kafka before the offsets move: a crash in between
        // re-reads the batch, which changes nothing in the store and publishes the same again.
        while producer.flush(Duration::from_secs(10)).is_err() {
            if stop.load(Ordering::Relaxed) {
                return Ok(());
            }
            warn!("kafka slow to take the profiles; still waiting before committing offsets");
        }
        if producer.context().failed.load(Ordering::Relaxed) != failed_before {
            // Not committed: the batch is read again after a rewind.
            warn!("profiles undelivered: reading the batch again");
            rewind(&consumer, &batch);
            continue;
        }
        if let Err(e) = consumer.commit(&offsets, CommitMode::Sync) {
            // A rebalance took the partitions: the new owner re-reads from the last commit, which
            // changes nothing the store already holds.
            warn!(error = %e, "offsets not committed");
        }
        status.batches.fetch_add(1, Ordering::Relaxed);
        if settings.governance.is_some() {
            // New facts: the next idle moment reads the clock at once.
            ticker.dirty = true;
            govern_time(&mut store, settings, &producer, outlet, status, &mut ticker, false);
        }
        debug!(facts = facts.len(), dead = dead.len(), profiles = applied.profiles.len(), "batch committed");
    }
    Ok(())
}

/// An instance that holds no partition while nobody reads its topics, and what it does about it.
///
/// tansu 0.6 can leave a group so: when the leader of a forming group (an instance killed a
/// moment ago) expires between a new member's JoinGroup and its SyncGroup, the follower's sync
/// forms the group with the follower's own assignments, which are empty; its heartbeats are then
/// answered as if all were well and nobody reads again. Kafka gives a sole member every
/// partition. So an instance that has held nothing for a session timeout looks at its group's
/// committed offsets twice, a session timeout apart: messages past them and no commit in between
/// mean no member is reading, and it leaves the group and joins again. (Where other instances
/// hold every partition and read, their commits move and nothing happens.)
#[derive(Default)]
struct Stranded {
    since: Option<Instant>,
    /// The group's committed offsets at the last look, when some partition had messages past them.
    lagging: Option<Commits>,
}

impl Stranded {
    fn check(&mut self, consumer: &BaseConsumer<Group>, settings: &ConsumerSettings, topics: &[&str]) {
        let holds_nothing = consumer.assignment().is_ok_and(|tpl| tpl.count() == 0);
        if !holds_nothing {
            *self = Self::default();
            return;
        }
        let since = *self.since.get_or_insert_with(Instant::now);
        if since.elapsed() < Duration::from_millis(u64::from(settings.session_timeout_ms)) {
            return;
        }
        self.since = Some(Instant::now());
        let now = match lagging_commits(consumer, topics) {
            Ok(now) => now,
            Err(e) => {
                debug!(error = %e, "committed offsets not read");
                return;
            }
        };
        let before = std::mem::replace(&mut self.lagging, now);
        if before.is_some() && before == self.lagging {
            warn!(group = %settings.group_id, "no partition held and nobody reading: joining the group again");
            *self = Self::default();
            consumer.unsubscribe();
            if let Err(e) = consumer.subscribe(topics) {
                warn!(error = %e, "subscribing again failed");
            }
        }
    }
}

/// Committed offsets: topic, partition, offset.
type Commits = Vec<(String, i32, i64)>;

/// The group's committed offsets of every partition of `topics`, when some partition has
/// messages past its committed offset; `None` when the group has read everything.
fn lagging_commits(
    consumer: &BaseConsumer<Group>,
    topics: &[&str],
) -> Result<Option<Commits>, rdkafka::error::KafkaError> {
    let timeout = Duration::from_secs(5);
    let mut tpl = TopicPartitionList::new();
    for topic in topics {
        let md = consumer.fetch_metadata(Some(topic), timeout)?;
        for t in md.topics() {
            for p in t.partitions() {
                tpl.add_partition(t.name(), p.id());
            }
        }
    }
    let committed = consumer.committed_offsets(tpl, timeout)?;
    let mut lagging = false;
    let mut offsets = Vec::new();
    for e in committed.elements() {
        let at = match e.offset() {
            Offset::Offset(o) => o,
            _ => 0,
        };
        let (_, high) = consumer.fetch_watermarks(e.topic(), e.partition(), timeout)?;
        lagging |= high > at;
        offsets.push((e.topic().to_owned(), e.partition(), at));
    }
    Ok(lagging.then_some(offsets))
}

/// Up to `max` messages: waits for the first, then takes what is already there.
fn poll_batch<'c>(consumer: &'c BaseConsumer<Group>, max: usize, stop: &AtomicBool) -> Vec<BorrowedMessage<'c>> {
    let mut batch = Vec::new();
    let started = Instant::now();
    while batch.len() < max && !stop.load(Ordering::Relaxed) {
        let wait = if batch.is_empty() { Duration::from_millis(200) } else { Duration::ZERO };
        match consumer.poll(wait) {
            Some(Ok(m)) => batch.push(m),
            Some(Err(e)) => {
                warn!(error = %e, "kafka");
                break;
            }
            None if batch.is_empty() && started.elapsed() < Duration::from_millis(200) => {}
            None => break,
        }
    }
    batch
}

/// Applies `facts`, waiting out a store that is away; `None` when stopped while waiting.
/// Meanwhile the service is not ready and does not poll: what it holds is applied once the store
/// answers. Waiting longer than `max.poll.interval.ms` (5 min) it leaves the group, whose other
/// members take its partitions and re-read them from the last committed offsets; its own commit
/// then fails and it rejoins, which changes nothing already applied.
fn apply_until_done(
    store: &mut Option<Store>,
    settings: &ConsumerSettings,
    work: impl Fn(&mut Store) -> Result<Applied, StoreError>,
    status: &Status,
    stop: &AtomicBool,
) -> Result<Option<Applied>, ProfilesError> {
    let url = &settings.store;
    let mut wait = Duration::from_millis(100);
    loop {
        let result = (|| -> Result<crate::store::Applied, ProfilesError> {
            if store.is_none() {
                *store = Some(settings.open_store()?);
                info!(store = %url, "store reachable again");
            }
            Ok(work(store.as_mut().expect("opened"))?)
        })();
        match result {
            Ok(a) => {
                if !status.ready.swap(true, Ordering::Relaxed) {
                    info!("store back: consuming again");
                }
                return Ok(Some(a));
            }
            Err(e) => {
                if status.ready.swap(false, Ordering::Relaxed) {
                    warn!(error = %e, "store unavailable: not consuming until it answers");
                }
                // Reconnect from scratch: a PostgreSQL connection that saw its server go stays
                // closed.
                *store = None;
                let until = Instant::now() + wait;
                while Instant::now() < until {
                    if stop.load(Ordering::Relaxed) {
                        return Ok(None);
                    }
                    std::thread::sleep(Duration::from_millis(50));
                }
                wait = (wait * 2).min(Duration::from_secs(2));
            }
        }
    }
}

/// When the clock was last read for deadline alerts, and whether facts arrived since.
#[derive(Debug, Default)]
struct Ticker {
    last: Option<Instant>,
    dirty: bool,
}

/// The governance consumers' side of the clock: raises the deadline alerts that came due
/// (every `tick`, and whenever the consumer has caught up) and publishes what the outbox
/// holds. A store that is away or Kafka refusing leaves everything in the outbox for the
/// next time: nothing is lost, an alert published twice keeps its `ce_id`.
fn govern_time(
    store: &mut Option<Store>,
    settings: &ConsumerSettings,
    producer: &ThreadedProducer<Deliveries>,
    outlet: &Outlet,
    status: &Status,
    ticker: &mut Ticker,
    idle: bool,
) {
    let Some(s) = store.as_mut() else { return };
    let Some(g) = &settings.governance else { return };
    // Deadline alerts are a function of each event's record and the time: taken while the
    // consumer is still catching up (a replay, a backlog), they would see revisions that later
    // ones supersede. So the clock is read when the consumer is idle (caught up: at once after
    // new facts, else every `tick`), and under a load that never lets it idle only every ten
    // ticks.
    let due = match (idle, ticker.last) {
        (true, None) => true,
        (true, Some(t)) => ticker.dirty || t.elapsed() >= settings.tick,
        (false, None) => false,
        (false, Some(t)) => t.elapsed() >= settings.tick * 10,
    };
    if due {
        match s.tick(g.clock.now()) {
            Ok(n) => {
                if n > 0 {
                    info!(alerts = n, "deadline alerts raised");
                }
                *ticker = Ticker { last: Some(Instant::now()), dirty: false };
            }
            Err(e) => warn!(error = %e, "deadline check"),
        }
    } else if !idle {
        return;
    }
    if let Err(e) = publish_outbox(s, producer, outlet, status) {
        warn!(error = %e, "alerts and matches stay in the outbox");
    }
}

/// Publishes the outbox (alerts, matches) and marks what Kafka took.
fn publish_outbox(
    store: &mut Store,
    producer: &ThreadedProducer<Deliveries>,
    outlet: &Outlet,
    status: &Status,
) -> Result<(), ProfilesError> {
    loop {
        let outbox: Outbox = store.outbox(500)?;
        if outbox.alerts.is_empty() && outbox.matches.is_empty() && outbox.objections.is_empty() {
            return Ok(());
        }
        let failed_before = producer.context().failed.load(Ordering::Relaxed);
        let items = outbox
            .alerts
            .iter()
            .map(|(id, doc)| ("alert", id, Some(doc), "cn.hutong.alert"))
            .chain(outbox.matches.iter().map(|(key, doc)| ("match", key, doc.as_ref(), "cn.hutong.match")))
            .chain(outbox.objections.iter().map(|(id, doc)| ("objection", id, Some(doc), "cn.hutong.objection")));
        for (kind, key, doc, ty) in items {
            let Some(out) = outlet.topics.get(kind) else { continue };
            let value = doc.map(Value::to_string);
            if let Some(reason) = doc.and_then(|d| out.refusal(d)) {
                // A fault of Hutong's own rules, not of anyone's data: kept in the outbox.
                warn!(kind, %reason, "not published: off its registered schema");
                continue;
            }
            let headers = out.headers(&format!("hutong:{kind}:{key}"), value.as_deref(), ty, "/governance", key);
            let mut record = BaseRecord::to(&out.topic).key(key.as_bytes()).headers(headers);
            if let Some(v) = &value {
                record = record.payload(v.as_bytes());
            }
            send(producer, record);
        }
        if producer.flush(Duration::from_secs(10)).is_err()
            || producer.context().failed.load(Ordering::Relaxed) != failed_before
        {
            return Err(ProfilesError::Kafka("alerts, matches or objections undelivered".into()));
        }
        // Not publishing (`[governance] publish = false`): marked all the same, so the outbox
        // does not grow.
        store.mark_published(&outbox)?;
        let n = outbox.alerts.len() + outbox.matches.len() + outbox.objections.len();
        status.published.fetch_add(n as u64, Ordering::Relaxed);
    }
}

/// Sends `record`, waiting while the producer's queue is full.
fn send(producer: &ThreadedProducer<Deliveries>, mut record: BaseRecord<'_, [u8], [u8]>) {
    loop {
        match producer.send(record) {
            Ok(()) => return,
            Err((e, back)) => {
                debug!(error = %e, "producer queue full");
                record = back;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// Puts every partition of `batch` back to its first message.
fn rewind(consumer: &BaseConsumer<Group>, batch: &[BorrowedMessage<'_>]) {
    let mut first: BTreeMap<(&str, i32), i64> = BTreeMap::new();
    for m in batch {
        first.entry((m.topic(), m.partition())).or_insert(m.offset());
    }
    for ((topic, partition), offset) in first {
        if let Err(e) = consumer.seek(topic, partition, Offset::Offset(offset), Duration::from_secs(5)) {
            warn!(error = %e, topic, partition, "rewind failed");
        }
    }
}

fn header_of(m: &BorrowedMessage<'_>, name: &str) -> Option<String> {
    let headers = m.headers()?;
    headers
        .iter()
        .find(|h| h.key == name)
        .and_then(|h| h.value)
        .and_then(|v| std::str::from_utf8(v).ok())
        .map(str::to_owned)
}

/// A refused fact for `<prefix>.profiles.dlq.v1`: its key and value as they were, where they
/// came from and why.
fn dead_letter<'m>(topic: &'m str, m: &'m BorrowedMessage<'_>, reason: &str) -> BaseRecord<'m, [u8], [u8]> {
    let mut headers = OwnedHeaders::new()
        .insert(Header { key: "hutong_reason", value: Some(reason) })
        .insert(Header { key: "hutong_topic", value: Some(m.topic()) })
        .insert(Header { key: "hutong_partition", value: Some(&m.partition().to_string()) })
        .insert(Header { key: "hutong_offset", value: Some(&m.offset().to_string()) });
    if let Some(h) = m.headers() {
        for h in h.iter().filter(|h| h.key.starts_with("ce_")) {
            headers = headers.insert(Header { key: h.key, value: h.value });
        }
    }
    let mut record = BaseRecord::to(topic).headers(headers);
    if let Some(k) = m.key() {
        record = record.key(k);
    }
    if let Some(v) = m.payload() {
        record = record.payload(v);
    }
    record
}

#[cfg(test)]
mod tests {
    use super::*;

    fn intake() -> Intake {
        let root = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).expect("standard");
        let entities = ["grid".to_owned()];
        Intake::new(&standard, &BusConfig::default(), &PrivacyConfig::default(), &entities).expect("intake")
    }

    #[test]
    fn facts_are_read_from_key_headers_and_value_and_anything_else_has_a_reason() {
        let intake = intake();
        let headers = |revision: Option<&'static str>| {
            move |name: &str| match name {
                "ce_revision" => revision.map(str::to_owned),
                "ce_id" => Some("id-1".to_owned()),
                "ce_time" => Some("2024-05-20T08:00:00+08:00".to_owned()),
                _ => None,
            }
        };
        let key = br#"["330106004053001","wangge","grid_registry","330106004053001"]"#;
        let grid = r#"{"grid_code":"330106004053001","name":"石灰桥社区第一网格","level":"30","parent_division_code":"330106004053"}"#.as_bytes();
        let topic = "hutong.grid.v2";
        let f = intake.fact(topic, Some(key), Some(grid), &headers(Some("2"))).expect("a fact");
        assert_eq!((f.entity.as_str(), f.entity_key.as_str(), f.source.revision), ("grid", "330106004053001", 2));
        assert_eq!(f.source.time, "2024-05-20T00:00:00.000Z", "normalised to UTC");
        // A tombstone is a fact without a record.
        assert_eq!(intake.fact(topic, Some(key), None, &headers(Some("3"))).expect("tombstone").data, None);
        let reason = |key: &[u8], value: &[u8], revision| {
            intake.fact(topic, Some(key), Some(value), &headers(revision)).expect_err("refused")
        };
        assert!(reason(b"330106004053001", grid, Some("1")).contains("not a fact key"));
        assert!(reason(br#"["a","b","c"]"#, grid, Some("1")).contains("has 3 elements"));
        assert!(reason(key, grid, None).contains("ce_revision"));
        assert!(reason(key, grid, Some("two")).contains("decimal"));
        assert!(reason(key, b"{", Some("1")).contains("not JSON"));
        assert!(reason(key, br#"{"grid_code":"330106004053001"}"#, Some("1")).contains("schema"));
        let other = br#"["330106004053002","wangge","grid_registry","x"]"#;
        assert!(reason(other, grid, Some("1")).contains("not the key's entity key"));
        assert!(intake.fact("hutong.person.v2", Some(key), Some(grid), &headers(Some("1"))).is_err());
    }
}
