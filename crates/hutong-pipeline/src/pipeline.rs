use std::{collections::BTreeMap, sync::Arc};

use chrono::{DateTime, Utc};
use hutong_adapter::{Adapters, Canonical, MapContext, PayloadLimits, PseudonymKey, decode_payload};
use hutong_bus::{
    BusConfig, CloudEvent, ContentDigest, DeadLetter, EntityTopic, Op, Origin, OutboundMessage, TopicNames, TopicPlan,
    fact_key,
};
use hutong_proto::v1::SourceRecord;
use hutong_registry::{Registry, subject_for_topic};
use hutong_standard::{
    Standard, Violation,
    privacy::{PrivacyConfig, TopicPolicy, topic_views},
};
use serde_json::Value;

use crate::PipelineError;

/// A source record after adapter and standard: what to publish.
#[derive(Debug, Clone)]
pub enum Outcome {
    /// Every canonical record is valid; publish these (one per output and topic).
    Publish(Vec<Prepared>),
    /// The record was rejected; publish the dead-letter copy.
    Reject {
        /// Every reason found.
        violations: Vec<Violation>,
        /// The dead-letter message (original payload and reasons).
        dlq: Box<OutboundMessage>,
    },
}

impl Outcome {
    /// How many canonical records a published outcome holds (outputs `0..n`: their event ids
    /// are `Origin::event_id(0..n)`; each may go to several topics under the same id); `None`
    /// for a rejected record, whose one message is its dead letter.
    pub fn outputs(&self) -> Option<usize> {
        match self {
            // The messages of one output (one per topic) stand together.
            Self::Publish(p) => Some(
                usize::from(!p.is_empty())
                    + p.windows(2).filter(|w| w[0].message.event.id != w[1].message.event.id).count(),
            ),
            Self::Reject { .. } => None,
        }
    }
}

/// One canonical record ready for one topic of the bus.
#[derive(Debug, Clone)]
pub struct Prepared {
    /// The record as the topic carries it, personal fields protected (also the message
    /// value, unless a tombstone); `Null` from [`Pipeline::prepare_for_bus`].
    pub record: Value,
    /// The message; it names its entity and topic.
    pub message: OutboundMessage,
    /// The standard's flagging checks the canonical record failed (the same on each of its
    /// topics; also in the message's `ce_flags`).
    pub flags: Vec<Violation>,
}

impl Prepared {
    /// The flags of a record's messages, each once (every topic of an entity carries the same).
    pub fn warnings(prepared: &[Prepared]) -> Vec<Violation> {
        let mut out: Vec<Violation> = Vec::new();
        for f in prepared.iter().flat_map(|p| &p.flags) {
            if !out.contains(f) {
                out.push(f.clone());
            }
        }
        out
    }
}

/// The per-record work of the gateway, with no I/O: adapter → standard →
/// protection → envelope. Shared by the ingest service, the dry run
/// (`hutong validate`, the admin RPC) and the benchmarks.
#[derive(Debug)]
pub struct Pipeline {
    standard: Arc<Standard>,
    adapters: Arc<Adapters>,
    registry: Arc<Registry>,
    key: PseudonymKey,
    topics: TopicNames,
    limits: PayloadLimits,
    /// The topics of each entity: protection and `ce_dataschema` (the registry URL of the view's exact version).
    outputs: BTreeMap<String, Vec<Output>>,
}

/// One topic an entity's records go to.
#[derive(Debug)]
struct Output {
    topic: String,
    policy: TopicPolicy,
    dataschema: String,
}

/// How the pipeline names, bounds and protects what it publishes.
#[derive(Debug, Clone)]
pub struct PipelineSettings {
    /// Topic names.
    pub topics: TopicNames,
    /// Payload bounds.
    pub limits: PayloadLimits,
    /// Public base URL of the schema registry (`ce_dataschema` points under it).
    pub registry_url: String,
    /// Per-topic protection of personal fields.
    pub privacy: PrivacyConfig,
}

impl Default for PipelineSettings {
    /// What a gateway with the default configuration uses: the `hutong` prefix, the default
    /// payload limits, the registry at `http://127.0.0.1:8081`, no `[privacy]` topics.
    fn default() -> Self {
        Self {
            topics: TopicNames::new("hutong"),
            limits: PayloadLimits::default(),
            registry_url: "http://127.0.0.1:8081".to_owned(),
            privacy: PrivacyConfig::default(),
        }
    }
}

impl Pipeline {
    /// A pipeline over a loaded standard, adapters and registry. Every topic's
    /// schema (the entity's view under the topic's protection) must be
    /// registered: its `ce_dataschema` is the registry URL of that exact version.
    pub fn new(
        standard: Arc<Standard>,
        adapters: Arc<Adapters>,
        registry: Arc<Registry>,
        key: PseudonymKey,
        settings: PipelineSettings,
    ) -> Result<Self, PipelineError> {
        let main = |e: &hutong_standard::Entity| settings.topics.entity(&e.name, e.major);
        let mut outputs = BTreeMap::new();
        for (entity, views) in topic_views(&standard, &main, &settings.privacy)? {
            let mut out = Vec::with_capacity(views.len());
            for v in views {
                let subject = subject_for_topic(&v.topic);
                let registered = registry
                    .find(&subject, &v.schema)
                    .ok_or_else(|| PipelineError::NotRegistered { topic: v.topic.clone(), subject })?;
                let url = format!("{}/schemas/ids/{}", settings.registry_url.trim_end_matches('/'), registered.id);
                out.push(Output { topic: v.topic, policy: v.policy, dataschema: url });
            }
            outputs.insert(entity, out);
        }
        Ok(Self { standard, adapters, registry, key, topics: settings.topics, limits: settings.limits, outputs })
    }

    /// The schema registry in use.
    pub fn registry(&self) -> &Registry {
        &self.registry
    }

    /// The standard in use.
    pub fn standard(&self) -> &Standard {
        &self.standard
    }

    /// The adapters in use.
    pub fn adapters(&self) -> &Adapters {
        &self.adapters
    }

    /// Runs one source record of `department` through adapter and standard (its content digest
    /// computed here).
    pub fn prepare(&self, department: &str, rec: &SourceRecord, received: DateTime<Utc>) -> Outcome {
        self.run(department, rec, &record_digest(rec), received, Views::Keep)
    }

    /// As [`Self::prepare`], for a record bound for the bus, whose content digest is `digest`
    /// (computed once for the dedupe window): each topic's view is
    /// dropped as soon as it is serialised into its message (`Prepared::record` is `Null`).
    /// Its memory is freed while still in cache, and the next record's allocations reuse it,
    /// instead of a batch's worth of views waiting, cold, for the batch's delivery reports.
    pub fn prepare_for_bus(
        &self,
        department: &str,
        rec: &SourceRecord,
        digest: &ContentDigest,
        received: DateTime<Utc>,
    ) -> Outcome {
        self.run(department, rec, digest, received, Views::Drop)
    }

    fn run(
        &self,
        department: &str,
        rec: &SourceRecord,
        digest: &ContentDigest,
        received: DateTime<Utc>,
        views: Views,
    ) -> Outcome {
        let op = op_of(rec);
        let source_id = self.travelling_source_id(department, rec);
        let origin =
            Origin { department, kind: &rec.kind, source_id: &source_id, revision: rec.revision, digest: *digest };
        match self.map(&origin, rec, op, views) {
            Ok(prepared) => Outcome::Publish(prepared),
            Err(violations) => {
                let dlq = DeadLetter {
                    origin,
                    op,
                    charset: &rec.charset,
                    payload: &rec.payload,
                    source_id: &rec.source_id,
                    received,
                    occurred: occurred_at(rec),
                    violations: &violations,
                }
                .into_message(self.topics.dlq());
                Outcome::Reject { violations, dlq: Box::new(dlq) }
            }
        }
    }

    /// The record's source id as it may leave the gateway: pseudonymised (`<key id>:<HMAC>`, like
    /// a personal field) when it is personal data ([`personal_source_id`]), as sent otherwise.
    fn travelling_source_id(&self, department: &str, rec: &SourceRecord) -> String {
        let declared = self.adapters.get(department, &rec.kind).and_then(|a| a.source_id_pii.as_deref());
        match personal_source_id(&rec.source_id, declared) {
            Some(normalised) => self.key.tagged_pseudonym(&normalised),
            None => rec.source_id.clone(),
        }
    }

    /// The event ids of a record's messages, had it been prepared with `digest` and given
    /// `outputs` canonical records (`None`: rejected, its dead letter).
    pub fn event_ids(
        &self,
        department: &str,
        rec: &SourceRecord,
        digest: &ContentDigest,
        outputs: Option<usize>,
    ) -> Vec<String> {
        let source_id = self.travelling_source_id(department, rec);
        let origin =
            Origin { department, kind: &rec.kind, source_id: &source_id, revision: rec.revision, digest: *digest };
        match outputs {
            Some(n) => (0..n).map(|i| origin.event_id(i)).collect(),
            None => vec![origin.event_id(hutong_bus::DEAD_LETTER_INDEX)],
        }
    }

    /// The adapter's canonical records of `rec` from `department`, before any topic's protection.
    fn adapt(&self, department: &str, rec: &SourceRecord) -> Result<Vec<Canonical>, Vec<Violation>> {
        if rec.source_id.is_empty() {
            return Err(vec![Violation::new("", "record:source-id", "source_id is empty")]);
        }
        let Some(adapter) = self.adapters.get(department, &rec.kind) else {
            return Err(vec![Violation::new(
                "",
                "record:kind",
                format!("department {department} has no adapter for kind {:?}", rec.kind),
            )]);
        };
        let payload = decode_payload(&rec.payload, &rec.charset, self.limits).map_err(|v| vec![v])?;
        let ctx =
            MapContext { key: &self.key, source_id: &rec.source_id, revision: rec.revision, op: op_of(rec).name() };
        adapter.map(&payload, &ctx)
    }

    /// The canonical records of `rec` (entity and record: adapter and standard, personal fields
    /// in clear, no topic's protection), or every violation: the admin's view of a dry run.
    /// Never logged.
    pub fn canonical(&self, department: &str, rec: &SourceRecord) -> Result<Vec<(String, Value)>, Vec<Violation>> {
        let mut violations = Vec::new();
        let mut out = Vec::new();
        for Canonical { entity, record, .. } in self.adapt(department, rec)? {
            match self.standard.entity(&entity) {
                Some(schema) => violations.extend(schema.validate(&record)),
                None => violations.push(Violation::new("", "entity", format!("the standard has no entity {entity:?}"))),
            }
            out.push((entity, record));
        }
        if violations.is_empty() { Ok(out) } else { Err(violations) }
    }

    fn map(
        &self,
        origin: &Origin<'_>,
        rec: &SourceRecord,
        op: Op,
        views: Views,
    ) -> Result<Vec<Prepared>, Vec<Violation>> {
        let canonical = self.adapt(origin.department, rec)?;
        let time = occurred_at(rec);
        let mut violations = Vec::new();
        let mut out = Vec::with_capacity(canonical.len());
        for (index, Canonical { entity, key, record }) in canonical.into_iter().enumerate() {
            let (Some(schema), Some(outputs)) = (self.standard.entity(&entity), self.outputs.get(&entity)) else {
                violations.push(Violation::new("", "entity", format!("the standard has no entity {entity:?}")));
                continue;
            };
            let mut flags = Vec::new();
            if op == Op::Delete {
                // A tombstone needs only its key.
                if key.is_none() {
                    violations.push(Violation::new(
                        format!("/{}", schema.key),
                        "required",
                        "a DELETE needs the entity key",
                    ));
                }
            } else {
                let (found, flagged) = schema.check(&record);
                violations.extend(found);
                flags = flagged;
            }
            if !violations.is_empty() {
                continue;
            }
            let mut event =
                CloudEvent::canonical(origin, index, &entity, op, key.clone(), time.unwrap_or_else(Utc::now));
            if !flags.is_empty() {
                event.flags = Some(flags.iter().map(|v| v.rule.as_str()).collect::<Vec<_>>().join(" "));
            }
            // Each topic gets its view of the record; the last one takes the record and the event themselves.
            let mut shared = Some((record, event));
            for (i, output) in outputs.iter().enumerate() {
                let (mut view, mut event) = if i + 1 == outputs.len() {
                    shared.take().expect("taken once, by the last output")
                } else {
                    shared.clone().expect("kept until the last output")
                };
                output.policy.apply(&mut view, &|v| self.key.tagged_pseudonym(v));
                let value = (op != Op::Delete).then(|| {
                    // Sized once from the payload: growing from empty cost several reallocations per record.
                    let mut bytes = Vec::with_capacity(rec.payload.len() + rec.payload.len() / 4 + 256);
                    serde_json::to_writer(&mut bytes, &view).expect("json values serialise");
                    bytes
                });
                event.dataschema = Some(output.dataschema.clone());
                // One source's fact about the entity: keyed by both, partitioned by the entity alone.
                let message = OutboundMessage {
                    topic: output.topic.clone(),
                    entity: entity.clone(),
                    event,
                    key: key.as_deref().map(|k| fact_key(k, origin.department, origin.kind, origin.source_id)),
                    value,
                };
                let record = match views {
                    Views::Keep => view,
                    Views::Drop => Value::Null,
                };
                out.push(Prepared { record, message, flags: flags.clone() });
            }
        }
        if violations.is_empty() { Ok(out) } else { Err(violations) }
    }
}

/// Whether [`Prepared::record`] keeps each topic's view of the record.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Views {
    Keep,
    Drop,
}

/// The normalised form of a source id that is personal data, `None` when it is not. Personal is
/// what the adapter declares (`source-id.pii`) and, undeclared, a valid citizen ID or phone
/// number: a key that names a person is protected even where an adapter forgot to say so.
/// Normalised as the standard normalises the field, so one record keeps one key across exports:
/// trimmed, NFKC (full-width digits and letters folded), and for a citizen ID upper-case with a
/// legacy 15-digit number converted to 18 characters.
fn personal_source_id(raw: &str, declared: Option<&str>) -> Option<String> {
    use hutong_standard::checks::check_cn_phone;
    use unicode_normalization::UnicodeNormalization as _;
    // ASCII is its own NFKC form: most source ids are folded without a copy.
    let trimmed = raw.trim();
    let folded: std::borrow::Cow<'_, str> =
        if trimmed.is_ascii() { trimmed.into() } else { trimmed.nfkc().collect::<String>().into() };
    // Folded, a citizen ID is 15 or 18 ASCII characters: anything else is none, unread.
    let citizen_id = || matches!(folded.len(), 15 | 18).then(|| normalise_citizen_id(&folded)).flatten();
    match declared {
        Some("citizen-id") => Some(citizen_id().unwrap_or_else(|| folded.clone().into_owned())),
        Some(_) => Some(folded.into_owned()),
        None => citizen_id().or_else(|| check_cn_phone(&folded).then(|| folded.into_owned())),
    }
}

/// A citizen ID as the adapters normalise it before keying a person (`person_key` is the
/// pseudonym of this): trimmed, NFKC (full-width digits folded), upper-case, a legacy 15-digit
/// number converted to 18 characters; `None` unless the result passes GB 11643's check.
pub fn normalise_citizen_id(raw: &str) -> Option<String> {
    use hutong_standard::checks::{check_gb11643, gb11643_from_legacy15};
    use unicode_normalization::UnicodeNormalization as _;
    let upper = raw.trim().nfkc().collect::<String>().to_ascii_uppercase();
    let id = gb11643_from_legacy15(&upper).unwrap_or(upper);
    check_gb11643(&id).is_ok().then_some(id)
}

/// The digest of a record's content as its event ids and the dedupe window use it: its op, payload
/// and charset ([`hutong_bus::content_digest`]).
pub fn record_digest(rec: &SourceRecord) -> ContentDigest {
    hutong_bus::content_digest(op_of(rec), &rec.payload, &rec.charset)
}

/// When the record says it happened in the source system (`occurred_at`), if it says.
fn occurred_at(rec: &SourceRecord) -> Option<DateTime<Utc>> {
    rec.occurred_at.as_ref().and_then(|t| DateTime::from_timestamp(t.seconds, t.nanos.max(0) as u32))
}

/// The record's op as the envelope names it (an unset op is an upsert).
fn op_of(rec: &SourceRecord) -> Op {
    use hutong_proto::v1::Op as Wire;
    match Wire::try_from(rec.op).unwrap_or(Wire::Unspecified) {
        Wire::Delete => Op::Delete,
        Wire::Event => Op::Event,
        Wire::Upsert | Wire::Unspecified => Op::Upsert,
    }
}

/// Every topic of a deployment ([`TopicPlan`]): the entity topics of `standard` (each entity's
/// main topic and its `[privacy]` topics) under `bus`, the dead-letter and the audit topic.
pub fn topic_plan(
    standard: &Standard,
    bus: &BusConfig,
    privacy: &PrivacyConfig,
    derived: hutong_bus::DerivedTopics,
) -> Result<TopicPlan, PipelineError> {
    let names = bus.topics();
    let main = |e: &hutong_standard::Entity| names.entity(&e.name, e.major);
    let views = topic_views(standard, &main, privacy)?;
    Ok(TopicPlan::with_derived(
        bus,
        views.into_iter().flat_map(|(entity, views)| {
            views.into_iter().map(move |v| EntityTopic {
                entity: entity.clone(),
                topic: v.topic,
                restricted: v.restricted,
            })
        }),
        derived,
    ))
}

#[cfg(test)]
mod tests {
    use super::personal_source_id;
    use crate::{Outcome, Pipeline, PipelineSettings};

    /// The gateway's way (`prepare_for_bus`) hands Kafka exactly the messages of the dry run's
    /// way (`prepare`), without the views; a rejected record is rejected alike.
    #[test]
    fn a_record_for_the_bus_is_the_same_messages_without_its_views() {
        let schemas = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let key = hutong_adapter::PseudonymKey::new(b"pipeline-unit-test-key-0123".to_vec()).unwrap();
        let pipeline = Pipeline::load(&schemas, key, PipelineSettings::default()).unwrap();
        let record = |sex: &str| hutong_proto::v1::SourceRecord {
            kind: "household_registration".into(),
            source_id: "330106196203150314".into(),
            revision: 3,
            op: hutong_proto::v1::Op::Upsert as i32,
            occurred_at: Some(hutong_proto::Timestamp { seconds: 1_733_000_000, nanos: 0 }),
            payload: serde_json::to_vec(&serde_json::json!({
                "GMSFHM": "330106196203150314", "XM": "陈建国", "XB": sex, "MZ": "01", "CSRQ": "19620315",
                "HJDZ_XZQH": "330106004053", "HJDZ_QHNXXDZ": "石灰桥新村3幢2单元501",
                "HH": "3301060040530001", "HB": "1", "YHZGX": "02", "HZ_GMSFHM": "330106196203150314"
            }))
            .unwrap(),
            charset: String::new(),
        };
        let now = chrono::Utc::now();
        let ok = record("男");
        let (Outcome::Publish(kept), Outcome::Publish(bus)) = (
            pipeline.prepare("gongan", &ok, now),
            pipeline.prepare_for_bus("gongan", &ok, &super::record_digest(&ok), now),
        ) else {
            panic!("the record is valid");
        };
        assert_eq!(kept.len(), 2, "a person and a household");
        assert_eq!(kept.len(), bus.len());
        for (k, b) in kept.iter().zip(&bus) {
            assert_eq!(k.message, b.message);
            assert_eq!(k.flags, b.flags);
            assert!(k.record.is_object(), "the dry run keeps the view");
            assert!(b.record.is_null(), "the bus's view is dropped");
            assert_eq!(
                serde_json::to_vec(&k.record).unwrap(),
                k.message.value.clone().unwrap(),
                "the view is the value"
            );
        }
        let bad = record("X");
        let (Outcome::Reject { violations: v1, dlq: d1 }, Outcome::Reject { violations: v2, dlq: d2 }) = (
            pipeline.prepare("gongan", &bad, now),
            pipeline.prepare_for_bus("gongan", &bad, &super::record_digest(&bad), now),
        ) else {
            panic!("X is no sex code");
        };
        assert_eq!((v1, d1), (v2, d2));
    }

    #[test]
    fn personal_source_ids_are_normalised_as_their_field_and_found_where_undeclared() {
        // 公安 declares its key a citizen ID: one person, one key, however the export spells it.
        let canonical = Some("11010519491231002X".to_owned());
        for spelling in ["11010519491231002X", " 11010519491231002x ", "１１０１０５１９４９１２３１００２Ｘ"]
        {
            assert_eq!(personal_source_id(spelling, Some("citizen-id")), canonical, "{spelling:?}");
        }
        // A legacy 15-digit number is the 18-character one it converts to.
        assert_eq!(personal_source_id("420106750312041", Some("citizen-id")), Some("420106197503120412".into()));
        // Declared personal but no valid ID: still protected, as written (folded).
        assert_eq!(personal_source_id("ＤＡＨ-0001", Some("other")), Some("DAH-0001".into()));
        assert_eq!(
            personal_source_id("ok.ndjson:1", Some("citizen-id")),
            Some("ok.ndjson:1".into()),
            "not upper-cased"
        );
        // Undeclared: a valid citizen ID or mobile number is protected anyway; a public code is not.
        assert_eq!(personal_source_id("11010519491231002X", None), canonical);
        assert_eq!(personal_source_id("13800138000", None), Some("13800138000".into()));
        assert_eq!(personal_source_id("330106004053001", None), None, "a grid code");
        assert_eq!(personal_source_id("GD-2024-0001", None), None, "a 12345 ticket number");
        assert_eq!(personal_source_id("110105194912310021", None), None, "a wrong check digit is no ID");
    }
}
