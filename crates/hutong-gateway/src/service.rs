use std::{
    collections::HashMap,
    pin::Pin,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use chrono::Utc;
use futures::{Stream, StreamExt, future::try_join_all};
use hutong_bus::{BusError, Publisher, Spool, SpoolError};
use hutong_proto::v1::{
    Receipt, RecordResult, SourceRecord, Status as RecordStatus, SubmitRequest, SubmitResponse, Violation,
    ingest_server::Ingest,
};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};
use tonic::{Request, Response, Status, Streaming};
use tracing::{info, warn};

use crate::{
    DeliveryConfig, Guard, Metrics, Outcome, Reloader,
    metrics::{ErrorLabels, RecordLabels, RuleLabels},
};

/// Requests of one stream processed at once (their answers keep request order).
const STREAM_CONCURRENCY: usize = 8;

/// The `hutong.v1.Ingest` service.
#[derive(Clone)]
pub struct IngestService {
    pipelines: Arc<Reloader>,
    publisher: Arc<dyn Publisher>,
    max_records: usize,
    /// Published source records, by (department, kind, source_id, revision): retries answer DUPLICATE.
    /// quick_cache (bounded, S3-FIFO) with the insertion time kept for the TTL: the profile
    /// showed moka's insert path at ~4.6 µs per record, the largest single cost of the gateway.
    recent: Arc<RecentCache>,
    in_flight: Arc<Semaphore>,
    per_department: Arc<Mutex<HashMap<String, Arc<Semaphore>>>>,
    delivery: DeliveryConfig,
    metrics: Arc<Metrics>,
    spool: Option<Arc<Spool>>,
    guard: Arc<Guard>,
}

impl std::fmt::Debug for IngestService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IngestService").field("max_records", &self.max_records).finish_non_exhaustive()
    }
}

impl IngestService {
    /// A service publishing through `publisher`, accepting at most `max_records` per request.
    pub fn new(
        pipelines: Arc<Reloader>,
        publisher: Arc<dyn Publisher>,
        max_records: usize,
        delivery: DeliveryConfig,
        metrics: Arc<Metrics>,
        guard: Arc<Guard>,
    ) -> Self {
        Self {
            pipelines,
            publisher,
            max_records,
            recent: Arc::new(quick_cache::sync::Cache::new(delivery.dedupe_capacity.max(1) as usize)),
            in_flight: Arc::new(Semaphore::new(delivery.max_in_flight)),
            per_department: Arc::default(),
            delivery,
            metrics,
            spool: None,
            guard,
        }
    }

    /// Store and forward through `spool` while Kafka is unreachable.
    pub fn with_spool(mut self, spool: Arc<Spool>) -> Self {
        self.spool = Some(spool);
        self
    }

    /// Records accepted and not yet answered, across departments.
    pub fn in_flight(&self) -> usize {
        self.delivery.max_in_flight - self.in_flight.available_permits()
    }

    /// Admission: room for `n` records globally and for the department, or
    /// RESOURCE_EXHAUSTED at once (never an unbounded queue).
    fn admit(&self, department: &str, n: usize) -> Result<(OwnedSemaphorePermit, OwnedSemaphorePermit), Status> {
        let n32 = u32::try_from(n).unwrap_or(u32::MAX);
        let dept = {
            let mut map = self.per_department.lock().expect("per-department limits lock");
            Arc::clone(
                map.entry(department.to_owned())
                    .or_insert_with(|| Arc::new(Semaphore::new(self.delivery.max_in_flight_per_department))),
            )
        };
        let busy = |scope: &str| {
            Status::resource_exhausted(format!("{scope} has too many records in flight; retry after a short back-off"))
        };
        let d = dept.try_acquire_many_owned(n32).map_err(|_| busy(&format!("department {department}")))?;
        let g = Arc::clone(&self.in_flight).try_acquire_many_owned(n32).map_err(|_| busy("the gateway"))?;
        Ok((d, g))
    }

    /// Handles one batch: every record prepared, every message published
    /// concurrently, the answer built only after every delivery report.
    pub async fn submit_batch(&self, department: &str, req: SubmitRequest) -> Result<SubmitResponse, Status> {
        self.run_batch(department, req).await.map_err(|f| f.status)
    }

    async fn run_batch(&self, department: &str, req: SubmitRequest) -> Result<SubmitResponse, Failed> {
        if req.records.len() > self.max_records {
            return Err(Status::invalid_argument(format!(
                "{} records in one request; the limit is {}",
                req.records.len(),
                self.max_records
            ))
            .into());
        }
        let started = std::time::Instant::now();
        let _permits = self.admit(department, req.records.len()).inspect_err(|_| {
            self.metrics.delivery_errors.get_or_create(&ErrorLabels { kind: "admission".into() }).inc();
        })?;
        let n = req.records.len() as i64;
        self.metrics.in_flight.inc_by(n);
        let result = self.deliver(department, req).await;
        self.metrics.in_flight.dec_by(n);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        result
    }

    async fn deliver(&self, department: &str, req: SubmitRequest) -> Result<SubmitResponse, Failed> {
        let received = Utc::now();
        // The whole batch runs on the pipeline current at its start, even if a reload lands meanwhile.
        let pipeline = self.pipelines.current();
        let futures = req.records.iter().enumerate().map(|(index, rec)| {
            let outcome = pipeline.prepare(department, rec, received);
            self.publish_record(department, index, rec, outcome)
        });
        // The first failure answers the batch at once (e.g. RESOURCE_EXHAUSTED on a full queue).
        let results: Vec<RecordResult> = match try_join_all(futures).await.and_then(|d| self.spool_in_order(d)) {
            Ok(results) => results,
            Err(e) => {
                warn!(department, error = %e, "batch not delivered");
                let kind = match e {
                    BusError::Unavailable(_) => "unavailable",
                    BusError::QueueFull => "queue_full",
                    BusError::Refused(_) => "refused",
                };
                self.metrics.delivery_errors.get_or_create(&ErrorLabels { kind: kind.into() }).inc();
                // Every event id handed to Kafka: records already queued may still be delivered, so the
                // audit names them all (a retry reuses the same ids). Event ids are deterministic, so they
                // are derived again here, off the path of batches that succeed.
                let sent = req
                    .records
                    .iter()
                    .flat_map(|rec| match pipeline.prepare(department, rec, received) {
                        Outcome::Publish(p) => p.into_iter().map(|p| p.message.event.id).collect::<Vec<_>>(),
                        Outcome::Reject { dlq, .. } => vec![dlq.event.id],
                    })
                    .collect();
                return Err(Failed { status: status_from_bus(&e), sent });
            }
        };
        // Counted per (kind, outcome) for the batch, then added once: label maps are not cheap per record.
        let mut tally: Vec<(&str, RecordStatus, u64)> = Vec::new();
        for (r, rec) in results.iter().zip(&req.records) {
            let status = RecordStatus::try_from(r.status).unwrap_or(RecordStatus::Unspecified);
            match tally.iter_mut().find(|(k, s, _)| *k == rec.kind && *s == status) {
                Some(t) => t.2 += 1,
                None => tally.push((&rec.kind, status, 1)),
            }
            for v in &r.violations {
                let rule = v.rule.split(':').take(2).collect::<Vec<_>>().join(":");
                self.metrics.violations.get_or_create(&RuleLabels { rule }).inc();
            }
        }
        for (kind, status, n) in tally {
            // Only names the adapters know become label values: cardinality stays bounded.
            let known = pipeline.adapters().get(department, kind).is_some();
            let outcome = match status {
                RecordStatus::Published => "published",
                RecordStatus::Rejected => "rejected",
                RecordStatus::Duplicate => "duplicate",
                RecordStatus::Spooled => "spooled",
                RecordStatus::Unspecified => "unspecified",
            };
            let labels = RecordLabels {
                department: if known { department.to_owned() } else { "unknown".to_owned() },
                kind: if known { kind.to_owned() } else { "unknown".to_owned() },
                outcome: outcome.to_owned(),
            };
            self.metrics.records.get_or_create(&labels).inc_by(n);
        }
        let count = |s: RecordStatus| results.iter().filter(|r| r.status == s as i32).count();
        info!(
            department,
            records = results.len(),
            rejected = count(RecordStatus::Rejected),
            duplicate = count(RecordStatus::Duplicate),
            "batch handled"
        );
        Ok(SubmitResponse { batch_id: req.batch_id, results })
    }

    /// The answers of a batch, in record order: the records bound for the spool are appended to
    /// it in one transaction, in record order (not in the order their deliveries failed), so a
    /// replay keeps the order per key.
    fn spool_in_order(&self, delivered: Vec<Delivered>) -> Result<Vec<RecordResult>, BusError> {
        let waiting: Vec<hutong_bus::OutboundMessage> = delivered
            .iter()
            .filter_map(|d| match d {
                Delivered::Spool { messages, .. } => Some(messages.iter().cloned()),
                Delivered::Answered(_) => None,
            })
            .flatten()
            .collect();
        if let (Some(spool), false) = (&self.spool, waiting.is_empty()) {
            spool.append(&waiting).map_err(|e| match e {
                SpoolError::Full(_) => BusError::QueueFull,
                SpoolError::Store(m) => BusError::Unavailable(format!("spool: {m}")),
            })?;
        }
        Ok(delivered
            .into_iter()
            .map(|d| match d {
                Delivered::Answered(r) => r,
                Delivered::Spool { result, .. } => result,
            })
            .collect())
    }

    async fn publish_record(
        &self,
        department: &str,
        index: usize,
        rec: &SourceRecord,
        outcome: Outcome,
    ) -> Result<Delivered, BusError> {
        let answer = |status: RecordStatus, receipts: Vec<Receipt>, violations: Vec<hutong_standard::Violation>| {
            Delivered::Answered(record_result(index, rec, status, receipts, violations))
        };
        // The key is built once: looked up now, remembered after delivery.
        let mut dedupe = None;
        let (status, messages, violations) = match outcome {
            Outcome::Publish(prepared) => {
                let key = dedupe_key(department, rec);
                let ttl = Duration::from_secs(self.delivery.dedupe_ttl_secs);
                if let Some((_, receipts)) = self.recent.get(&key).filter(|(at, _)| at.elapsed() < ttl) {
                    return Ok(answer(RecordStatus::Duplicate, receipts.as_ref().clone(), vec![]));
                }
                dedupe = Some(key);
                (RecordStatus::Published, prepared.into_iter().map(|p| p.message).collect::<Vec<_>>(), vec![])
            }
            Outcome::Reject { violations, dlq } => (RecordStatus::Rejected, vec![*dlq], violations),
        };
        let entities: Vec<String> = messages
            .iter()
            .map(|m| if status == RecordStatus::Rejected { "dlq".to_owned() } else { entity_of(&m.event.ty) })
            .collect();
        let ids: Vec<String> = messages.iter().map(|m| m.event.id.clone()).collect();
        // While the spool holds anything, new records queue behind it: order is kept.
        if self.spool.as_ref().is_some_and(|s| !s.is_empty()) {
            return Ok(spooled(messages, ids, entities, index, rec, violations, status));
        }
        let copies = self.spool.as_ref().map(|_| messages.clone());
        // All of a record's messages, or an error for the record: OK only when every one is delivered.
        let delivered = match try_join_all(messages.into_iter().map(|m| self.publisher.publish(m))).await {
            Ok(d) => d,
            // Kafka unreachable and store-and-forward on: durable on disk, then SPOOLED.
            Err(BusError::Unavailable(reason)) if self.spool.is_some() => {
                warn!(department, error = %reason, "kafka unavailable: spooling");
                let messages = copies.unwrap_or_default();
                return Ok(spooled(messages, ids, entities, index, rec, violations, status));
            }
            // The broker refuses this record for good (e.g. too large): the record's fault, not the batch's.
            Err(BusError::Refused(reason)) if is_record_refusal(&reason) => {
                let v =
                    hutong_standard::Violation::new("", "bus:refused", format!("Kafka refused the record: {reason}"));
                return Ok(answer(RecordStatus::Rejected, vec![], vec![v]));
            }
            Err(e) => return Err(e),
        };
        let receipts: Vec<Receipt> = delivered
            .into_iter()
            .zip(ids)
            .zip(entities)
            .map(|((r, event_id), entity)| Receipt {
                topic: r.topic,
                partition: r.partition,
                offset: r.offset,
                event_id,
                entity,
            })
            .collect();
        if let Some(key) = dedupe {
            self.recent.insert(key, (Instant::now(), Arc::new(receipts.clone())));
        }
        Ok(answer(status, receipts, violations))
    }
}

/// A record's answer, or its messages bound for the spool with the answer they get there.
enum Delivered {
    Answered(RecordResult),
    Spool { messages: Vec<hutong_bus::OutboundMessage>, result: RecordResult },
}

/// A record bound for the spool: its messages and the answer, SPOOLED (receipts without offsets).
#[allow(clippy::too_many_arguments)]
fn spooled(
    messages: Vec<hutong_bus::OutboundMessage>,
    ids: Vec<String>,
    entities: Vec<String>,
    index: usize,
    rec: &SourceRecord,
    violations: Vec<hutong_standard::Violation>,
    status: RecordStatus,
) -> Delivered {
    let receipts = messages
        .iter()
        .zip(ids)
        .zip(entities)
        .map(|((m, event_id), entity)| Receipt { topic: m.topic.clone(), partition: -1, offset: -1, event_id, entity })
        .collect();
    // A spooled reject still reports why it was rejected.
    let status = if status == RecordStatus::Rejected { RecordStatus::Rejected } else { RecordStatus::Spooled };
    Delivered::Spool { messages, result: record_result(index, rec, status, receipts, violations) }
}

impl IngestService {
    /// Whether any department has an adapter for `kind`.
    fn has_adapter(&self, kind: &str) -> bool {
        self.pipelines.current().adapters().iter().any(|a| a.kind == kind)
    }

    /// A batch, and its audit entry: who, which kinds, counts, outcome, event ids. It runs in a
    /// task of its own, so a client that cancels (deadline, reset) cannot stop the entry from
    /// being written for records already on their way to Kafka.
    async fn audited_batch(
        &self,
        department: &str,
        peer: Option<std::net::SocketAddr>,
        req: SubmitRequest,
    ) -> Result<SubmitResponse, Status> {
        let (this, department) = (self.clone(), department.to_owned());
        tokio::spawn(async move { this.audit_batch(&department, peer, req).await })
            .await
            .unwrap_or_else(|e| Err(Status::internal(format!("the batch task failed: {e}"))))
    }

    async fn audit_batch(
        &self,
        department: &str,
        peer: Option<std::net::SocketAddr>,
        req: SubmitRequest,
    ) -> Result<SubmitResponse, Status> {
        // Client-chosen text is bounded before it reaches the audit trail.
        let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        let mut kinds: std::collections::BTreeMap<String, usize> = Default::default();
        for r in &req.records {
            *kinds.entry(clip(&r.kind, 64)).or_default() += 1;
        }
        let batch_id = clip(&req.batch_id, 128);
        let result = self.run_batch(department, req).await;
        let mut event = serde_json::json!({
            "type": "submit", "principal": department, "role": "department",
            "peer": peer.map(|a| a.to_string()), "batch_id": batch_id, "kinds": kinds,
        });
        match &result {
            Ok(r) => {
                let count = |s: RecordStatus| r.results.iter().filter(|x| x.status == s as i32).count();
                event["outcome"] = "Ok".into();
                event["records"] = r.results.len().into();
                event["published"] = count(RecordStatus::Published).into();
                event["rejected"] = count(RecordStatus::Rejected).into();
                event["duplicate"] = count(RecordStatus::Duplicate).into();
                event["spooled"] = count(RecordStatus::Spooled).into();
                let ids: Vec<&str> =
                    r.results.iter().flat_map(|x| x.receipts.iter().map(|rc| rc.event_id.as_str())).collect();
                event["event_ids"] = ids.into();
            }
            Err(f) => {
                event["outcome"] = format!("{:?}", f.status.code()).into();
                event["reason"] = f.status.message().into();
                // Handed to Kafka before the failure: delivery unconfirmed (some may have arrived).
                event["event_ids_unconfirmed"] = f.sent.clone().into();
            }
        }
        self.guard.auditor().record(event);
        result.map_err(|f| f.status)
    }
}

/// A batch that failed: the code answered, and the event ids that were handed to Kafka.
struct Failed {
    status: Status,
    sent: Vec<String>,
}

impl From<Status> for Failed {
    fn from(status: Status) -> Self {
        Self { status, sent: Vec::new() }
    }
}

/// The dedupe window: source-record identity → (when published, its receipts).
type RecentCache = quick_cache::sync::Cache<String, (Instant, Arc<Vec<Receipt>>)>;

/// The answer for record `index` of a request.
fn record_result(
    index: usize,
    rec: &SourceRecord,
    status: RecordStatus,
    receipts: Vec<Receipt>,
    violations: Vec<hutong_standard::Violation>,
) -> RecordResult {
    RecordResult {
        index: index as u32,
        source_id: rec.source_id.clone(),
        revision: rec.revision,
        status: status as i32,
        receipts,
        violations: pb_violations(violations),
    }
}

/// Violations as the wire carries them (pointer, rule and message kept whole).
pub(crate) fn pb_violations(violations: Vec<hutong_standard::Violation>) -> Vec<Violation> {
    violations.into_iter().map(|v| Violation { pointer: v.pointer, rule: v.rule, message: v.message }).collect()
}

/// The identity of a source record: what makes a retry a duplicate.
fn dedupe_key(department: &str, rec: &SourceRecord) -> String {
    format!("{department}\u{0}{}\u{0}{}\u{0}{}", rec.kind, rec.source_id, rec.revision)
}

/// Refusals that concern the record itself rather than the topic or the cluster.
fn is_record_refusal(reason: &str) -> bool {
    reason.contains("MessageSizeTooLarge") || reason.contains("InvalidRecord") || reason.contains("too large")
}

/// `cn.hutong.<entity>.<op>` → `<entity>`.
fn entity_of(ce_type: &str) -> String {
    ce_type.split('.').nth(2).unwrap_or_default().to_owned()
}

/// The one mapping from bus trouble to gRPC codes.
pub(crate) fn status_from_bus(e: &BusError) -> Status {
    match e {
        BusError::Unavailable(m) => Status::unavailable(format!("kafka unavailable, retry later: {m}")),
        BusError::QueueFull => {
            Status::resource_exhausted("the producer queue (or the spool) is full, retry after a short back-off")
        }
        BusError::Refused(m) if m.contains("Authorization") => {
            Status::permission_denied(format!("kafka refused the gateway: {m}"))
        }
        BusError::Refused(m) => Status::failed_precondition(format!("kafka refused the record: {m}")),
    }
}

type ResponseStream = Pin<Box<dyn Stream<Item = Result<SubmitResponse, Status>> + Send + 'static>>;

#[tonic::async_trait]
impl Ingest for IngestService {
    async fn submit(&self, request: Request<SubmitRequest>) -> Result<Response<SubmitResponse>, Status> {
        let department = self.guard.department(&request, "Submit")?;
        let peer = request.remote_addr();
        let req = request.into_inner();
        let kinds = req.records.iter().map(|r| r.kind.as_str());
        self.guard.check_kinds(&department, peer, "Submit", kinds, |k| self.has_adapter(k))?;
        self.audited_batch(&department, peer, req).await.map(Response::new)
    }

    type SubmitStreamStream = ResponseStream;

    async fn submit_stream(
        &self,
        request: Request<Streaming<SubmitRequest>>,
    ) -> Result<Response<Self::SubmitStreamStream>, Status> {
        let department: Arc<str> = self.guard.department(&request, "SubmitStream")?.into();
        let peer = request.remote_addr();
        let service = self.clone();
        let stream = request
            .into_inner()
            .map(move |req| {
                let service = service.clone();
                let department = Arc::clone(&department);
                async move {
                    let req = req?;
                    let kinds = req.records.iter().map(|r| r.kind.as_str());
                    service.guard.check_kinds(&department, peer, "SubmitStream", kinds, |k| service.has_adapter(k))?;
                    service.audited_batch(&department, peer, req).await
                }
            })
            .buffered(STREAM_CONCURRENCY);
        Ok(Response::new(Box::pin(stream)))
    }
}
