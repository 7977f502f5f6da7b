//! Delivery of one record's messages and its answer: published only on every
//! delivery report; a record Kafka refuses for good rejected alone; while
//! Kafka is unreachable (and store and forward is on) spooled, durably and in
//! record order; published records remembered for the dedupe window.

use std::sync::Arc;

use futures::future::try_join_all;
use hutong_bus::{BusError, OutboundMessage, Publisher, Spool, SpoolError};
use hutong_pipeline::{Outcome, Prepared};
use hutong_proto::v1::{Receipt, RecordResult, SourceRecord, Status as RecordStatus, Violation};
use tracing::warn;

use crate::ingest::dedupe::Dedupe;

/// A record's answer, or its messages bound for the spool with the answer they get there.
pub(crate) enum Delivered {
    Answered(RecordResult),
    Spool { messages: Vec<OutboundMessage>, result: RecordResult },
}

/// Where records go: the bus, the spool, and the dedupe window of what was published.
pub(crate) struct Delivery {
    pub(crate) publisher: Arc<dyn Publisher>,
    pub(crate) spool: Option<Arc<Spool>>,
    pub(crate) dedupe: Arc<Dedupe>,
}

impl Delivery {
    /// Publishes the messages of record `index` (`outcome` of the pipeline): OK only when
    /// every one is delivered. `key` is its dedupe key and content digest, remembered once published.
    pub(crate) async fn record(
        &self,
        department: &str,
        index: usize,
        rec: &SourceRecord,
        outcome: Outcome,
        key: (String, hutong_bus::ContentDigest),
    ) -> Result<Delivered, BusError> {
        let (status, messages, violations) = match outcome {
            Outcome::Publish(prepared) => {
                let warnings = Prepared::warnings(&prepared);
                (RecordStatus::Published, prepared.into_iter().map(|p| p.message).collect::<Vec<_>>(), warnings)
            }
            Outcome::Reject { violations, dlq } => (RecordStatus::Rejected, vec![*dlq], violations),
        };
        // While the spool holds anything, new records queue behind it: order is kept.
        if self.spool.as_ref().is_some_and(|s| !s.is_empty()) {
            return Ok(spooled(messages, index, rec, violations, status));
        }
        let ids: Vec<(String, String)> = messages.iter().map(|m| (m.event.id.clone(), m.entity.clone())).collect();
        let copies = self.spool.as_ref().map(|_| messages.clone());
        let delivered = match try_join_all(messages.into_iter().map(|m| self.publisher.publish(m))).await {
            Ok(d) => d,
            // Kafka unreachable and store-and-forward on: durable on disk, then SPOOLED.
            Err(BusError::Unavailable { reason }) if self.spool.is_some() => {
                warn!(department, error = %reason, "kafka unavailable: spooling");
                return Ok(spooled(copies.unwrap_or_default(), index, rec, violations, status));
            }
            // The broker refuses this record for good (e.g. too large): the record's fault, not the batch's.
            Err(BusError::RecordRefused { reason }) => {
                let v =
                    hutong_standard::Violation::new("", "bus:refused", format!("Kafka refused the record: {reason}"));
                return Ok(Delivered::Answered(record_result(index, rec, RecordStatus::Rejected, vec![], vec![v])));
            }
            Err(e) => return Err(e),
        };
        let receipts: Vec<Receipt> = delivered
            .into_iter()
            .zip(ids)
            .map(|(r, (event_id, entity))| Receipt {
                topic: r.topic,
                partition: r.partition,
                offset: r.offset,
                event_id,
                entity,
            })
            .collect();
        if status == RecordStatus::Published {
            self.dedupe.remember(key, receipts.clone());
        }
        Ok(Delivered::Answered(record_result(index, rec, status, receipts, violations)))
    }

    /// The answers of a batch, in record order: the records bound for the spool are appended to
    /// it in one transaction, in record order (not in the order their deliveries failed), so a
    /// replay keeps the order per key.
    pub(crate) fn spool_in_order(&self, delivered: Vec<Delivered>) -> Result<Vec<RecordResult>, BusError> {
        let waiting: Vec<OutboundMessage> = delivered
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
                SpoolError::Store(m) => BusError::unavailable(format!("spool: {m}")),
            })?;
        }
        Ok(delivered
            .into_iter()
            .map(|d| match d {
                Delivered::Answered(r) | Delivered::Spool { result: r, .. } => r,
            })
            .collect())
    }
}

/// A record bound for the spool: its messages and the answer, SPOOLED (receipts without offsets);
/// a spooled reject still reports why it was rejected.
fn spooled(
    messages: Vec<OutboundMessage>,
    index: usize,
    rec: &SourceRecord,
    violations: Vec<hutong_standard::Violation>,
    status: RecordStatus,
) -> Delivered {
    let receipts = messages
        .iter()
        .map(|m| Receipt {
            topic: m.topic.clone(),
            partition: -1,
            offset: -1,
            event_id: m.event.id.clone(),
            entity: m.entity.clone(),
        })
        .collect();
    let status = if status == RecordStatus::Rejected { RecordStatus::Rejected } else { RecordStatus::Spooled };
    Delivered::Spool { messages, result: record_result(index, rec, status, receipts, violations) }
}

/// The answer for record `index` of a request. `found` is what the standard found: the
/// violations of a rejected record, the flags of an accepted one (its warnings).
pub(crate) fn record_result(
    index: usize,
    rec: &SourceRecord,
    status: RecordStatus,
    receipts: Vec<Receipt>,
    found: Vec<hutong_standard::Violation>,
) -> RecordResult {
    let (violations, warnings) =
        if status == RecordStatus::Rejected { (found, Vec::new()) } else { (Vec::new(), found) };
    RecordResult {
        index: index as u32,
        source_id: rec.source_id.clone(),
        revision: rec.revision,
        status: status as i32,
        receipts,
        violations: pb_violations(violations),
        warnings: pb_violations(warnings),
    }
}

/// Violations as the wire carries them (pointer, rule and message kept whole).
pub(crate) fn pb_violations(violations: Vec<hutong_standard::Violation>) -> Vec<Violation> {
    violations.into_iter().map(|v| Violation { pointer: v.pointer, rule: v.rule, message: v.message }).collect()
}
