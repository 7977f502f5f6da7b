//! One batch, start to answer: the size limit, admission, each record looked
//! up in the dedupe window (before any pipeline work) or prepared, every
//! message published concurrently, the answer built from the delivery
//! reports, the metrics counted once per batch, and its audit entry.

use std::{collections::BTreeMap, net::SocketAddr};

use chrono::Utc;
use futures::future::try_join_all;
use hutong_bus::ContentDigest;
use hutong_proto::v1::{RecordResult, Status as RecordStatus, SubmitRequest, SubmitResponse};
use tonic::Status;
use tracing::{info, warn};

use crate::{
    ErrorCode,
    audit::{Answered, AuditEvent},
    ingest::{
        IngestService,
        dedupe::Dedupe,
        delivery::{Delivered, record_result},
    },
    metrics::{ErrorLabels, RecordLabels, RuleLabels},
};

/// A batch that failed: the status answered, and the event ids that were handed to Kafka.
pub(crate) struct Failed {
    pub(crate) status: Status,
    pub(crate) sent: Vec<String>,
}

impl From<Status> for Failed {
    fn from(status: Status) -> Self {
        Self { status, sent: Vec::new() }
    }
}

impl IngestService {
    /// Handles one batch: every record prepared, every message published
    /// concurrently, the answer built only after every delivery report.
    pub async fn submit_batch(&self, department: &str, req: SubmitRequest) -> Result<SubmitResponse, Status> {
        self.run_batch(department, req).await.map_err(|f| f.status)
    }

    async fn run_batch(&self, department: &str, req: SubmitRequest) -> Result<SubmitResponse, Failed> {
        if req.records.len() > self.max_records {
            return Err(ErrorCode::InvalidArgument
                .status(format!("{} records in one request; the limit is {}", req.records.len(), self.max_records))
                .into());
        }
        let started = std::time::Instant::now();
        let _permits = self.admission.admit(department, req.records.len()).inspect_err(|_| {
            self.metrics.delivery_errors.get_or_create(&ErrorLabels { kind: "admission".into() }).inc();
        })?;
        let n = req.records.len() as i64;
        self.metrics.in_flight.inc_by(n);
        let result = self.deliver(department, req).await;
        self.metrics.in_flight.dec_by(n);
        self.metrics.batch_seconds.observe(started.elapsed().as_secs_f64());
        result
    }

    async fn deliver(&self, department: &str, mut req: SubmitRequest) -> Result<SubmitResponse, Failed> {
        let received = Utc::now();
        // The whole batch runs on the pipeline current at its start, even if a reload lands meanwhile.
        let pipeline = self.pipelines.current();
        // A retry within the window is answered from the window, without running the pipeline.
        // What each prepared record hands to Kafka is noted as (record, canonical outputs; None for
        // a dead letter): its event ids are derived from that on the failure path only.
        let mut sent: Vec<(usize, ContentDigest, Option<usize>)> = Vec::with_capacity(req.records.len());
        let mut work = Vec::with_capacity(req.records.len());
        for (index, rec) in req.records.iter_mut().enumerate() {
            let key = Dedupe::key(department, rec);
            let digest = hutong_pipeline::record_digest(rec);
            // The same revision with other content is not a retry: it is published as a new event.
            let outcome = match self.delivery.dedupe.published(&key, &digest) {
                Some(receipts) => Err(receipts),
                None => Ok(pipeline.prepare_for_bus(department, rec, &digest, received)),
            };
            // Nothing reads the payload once prepared: it is freed now, while still in cache, not
            // with the request after the batch's delivery reports.
            rec.payload = Vec::new();
            let rec = &*rec;
            match outcome {
                Err(receipts) => work.push(Err(record_result(
                    index,
                    rec,
                    RecordStatus::Duplicate,
                    receipts.as_ref().clone(),
                    vec![],
                ))),
                Ok(outcome) => {
                    sent.push((index, digest, outcome.outputs()));
                    work.push(Ok((index, rec, outcome, (key, digest))));
                }
            }
        }
        let futures = work.into_iter().map(|w| async move {
            match w {
                Err(duplicate) => Ok(Delivered::Answered(duplicate)),
                Ok((index, rec, outcome, key)) => self.delivery.record(department, index, rec, outcome, key).await,
            }
        });
        // The first failure answers the batch at once (e.g. RESOURCE_EXHAUSTED on a full queue).
        let results = match try_join_all(futures).await.and_then(|d| self.delivery.spool_in_order(d)) {
            Ok(results) => results,
            Err(e) => {
                warn!(department, error = %e, "batch not delivered");
                self.metrics.delivery_errors.get_or_create(&ErrorLabels { kind: e.kind().into() }).inc();
                // Every event id handed to Kafka: records already queued may still be delivered,
                // so the audit names them all (a retry reuses the same ids).
                let sent = sent
                    .into_iter()
                    .flat_map(|(index, digest, outputs)| {
                        pipeline.event_ids(department, &req.records[index], &digest, outputs)
                    })
                    .collect();
                return Err(Failed { status: ErrorCode::bus_status(&e), sent });
            }
        };
        self.count(department, &req, &results);
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

    /// Counts the batch per (kind, outcome), then adds once: label maps are not cheap per record.
    fn count(&self, department: &str, req: &SubmitRequest, results: &[RecordResult]) {
        let pipeline = self.pipelines.current();
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
    }

    /// A batch, and its audit entry: who, which kinds, counts, outcome, event ids. It runs in a
    /// task of its own, so a client that cancels (deadline, reset) cannot stop the entry from
    /// being written for records already on their way to Kafka.
    pub(crate) async fn audited_batch(
        &self,
        department: &str,
        peer: Option<SocketAddr>,
        req: SubmitRequest,
    ) -> Result<SubmitResponse, Status> {
        let (this, department) = (self.clone(), department.to_owned());
        tokio::spawn(async move { this.audit_batch(&department, peer, req).await })
            .await
            .unwrap_or_else(|e| Err(ErrorCode::Internal.status(format!("the batch task failed: {e}"))))
    }

    async fn audit_batch(
        &self,
        department: &str,
        peer: Option<SocketAddr>,
        req: SubmitRequest,
    ) -> Result<SubmitResponse, Status> {
        // Client-chosen text is bounded before it reaches the audit trail.
        let clip = |s: &str, n: usize| s.chars().take(n).collect::<String>();
        let mut kinds: BTreeMap<String, usize> = BTreeMap::new();
        for r in &req.records {
            *kinds.entry(clip(&r.kind, 64)).or_default() += 1;
        }
        let batch_id = clip(&req.batch_id, 128);
        let result = self.run_batch(department, req).await;
        let (outcome, answered, reason, unconfirmed) = match &result {
            Ok(r) => {
                let count = |s: RecordStatus| r.results.iter().filter(|x| x.status == s as i32).count();
                let answered = Answered {
                    records: r.results.len(),
                    published: count(RecordStatus::Published),
                    rejected: count(RecordStatus::Rejected),
                    duplicate: count(RecordStatus::Duplicate),
                    spooled: count(RecordStatus::Spooled),
                    event_ids: r.results.iter().flat_map(|x| x.receipts.iter().map(|rc| rc.event_id.clone())).collect(),
                };
                ("Ok".to_owned(), Some(answered), None, None)
            }
            Err(f) => {
                (format!("{:?}", f.status.code()), None, Some(f.status.message().to_owned()), Some(f.sent.clone()))
            }
        };
        self.guard.auditor().record(AuditEvent::Submit {
            principal: department.to_owned(),
            role: "department",
            peer: peer.map(|a| a.to_string()),
            batch_id,
            kinds,
            outcome,
            answered,
            reason,
            event_ids_unconfirmed: unconfirmed,
        });
        result.map_err(|f| f.status)
    }
}
