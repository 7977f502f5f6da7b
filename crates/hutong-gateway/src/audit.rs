//! The gateway's audit trail: every submission, every admin call and every
//! refusal, appended to the hash-chained log on disk (`hutong audit verify`)
//! and copied to the audit topic.

use std::{collections::BTreeMap, sync::Arc};

use chrono::Utc;
use hutong_audit::AuditLog;
use hutong_bus::{CloudEvent, OutboundMessage, Publisher};
use prometheus_client::metrics::{counter::Counter, family::Family};
use serde::Serialize;
use serde_json::Value;
use tracing::error;

use crate::{Metrics, metrics::RefusalLabels};

/// One entry of the audit trail: who did what, with which outcome. Never a payload.
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "lowercase")]
pub enum AuditEvent {
    /// A department's batch of records, and what became of it.
    Submit {
        /// The department.
        principal: String,
        /// Always `department`.
        role: &'static str,
        /// Its network address.
        peer: Option<String>,
        /// The batch id it gave (at most 128 characters).
        batch_id: String,
        /// Records per kind (kinds clipped to 64 characters).
        kinds: BTreeMap<String, usize>,
        /// `Ok`, or the gRPC code of the failure.
        outcome: String,
        /// How the batch ended, when it was answered.
        #[serde(flatten, skip_serializing_if = "Option::is_none")]
        answered: Option<Answered>,
        /// Why it failed, when it did.
        #[serde(skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
        /// Every event id handed to Kafka before a failure: delivery unconfirmed (some may
        /// have arrived; a retry reuses the same ids).
        #[serde(skip_serializing_if = "Option::is_none")]
        event_ids_unconfirmed: Option<Vec<String>>,
    },
    /// An admin call.
    Admin {
        /// The admin identity.
        principal: String,
        /// Always `admin`.
        role: &'static str,
        /// The operation.
        operation: &'static str,
        /// What was asked about (subject, kind …), never a payload.
        detail: Value,
        /// `Ok`, or the gRPC code.
        outcome: String,
    },
    /// A read of shared data (a profile, the people of a grid …).
    Read {
        /// The identity.
        principal: String,
        /// `department` or `admin`.
        role: &'static str,
        /// Its network address.
        peer: Option<String>,
        /// The operation (`GetProfile`, `FindPerson` …).
        operation: &'static str,
        /// What was asked for (entity and key, how many answers), never a citizen ID.
        detail: Value,
        /// `Ok`, or the gRPC code.
        outcome: String,
    },
    /// A refused call or connection.
    Denied {
        /// The identity, when known.
        principal: Option<String>,
        /// `department` or `admin`, when known.
        role: Option<&'static str>,
        /// The network address.
        peer: Option<String>,
        /// What was attempted (`connect`, `Submit <kind>`, an admin operation …).
        action: String,
        /// The gRPC code answered (`Unauthenticated`, `PermissionDenied`).
        code: String,
        /// Why.
        reason: String,
    },
}

/// The counts and event ids of an answered batch.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Answered {
    /// Records in the batch.
    pub records: usize,
    /// Answered PUBLISHED.
    pub published: usize,
    /// Answered REJECTED.
    pub rejected: usize,
    /// Answered DUPLICATE.
    pub duplicate: usize,
    /// Answered SPOOLED.
    pub spooled: usize,
    /// Every event id of the answers' receipts.
    pub event_ids: Vec<String>,
}

/// How often the audit file is made durable while serving (and once more at shutdown).
pub const SYNC_EVERY: std::time::Duration = std::time::Duration::from_secs(1);

/// Appends audit events; cheap to share.
pub struct Auditor {
    log: Option<AuditLog>,
    topic: Option<(String, Arc<dyn Publisher>)>,
    errors: Counter,
    refusals: Family<RefusalLabels, Counter>,
}

impl std::fmt::Debug for Auditor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Auditor").field("file", &self.log.as_ref().map(AuditLog::dir)).finish_non_exhaustive()
    }
}

impl Auditor {
    /// An auditor writing to `log` and, when given, copying to `topic`;
    /// counts into `metrics` (`hutong_audit_errors_total`, `hutong_refusals_total`).
    pub fn new(log: AuditLog, topic: Option<(String, Arc<dyn Publisher>)>, metrics: &Metrics) -> Self {
        Self { log: Some(log), topic, errors: metrics.audit_errors.clone(), refusals: metrics.refusals.clone() }
    }

    /// An auditor that keeps nothing (in-process tests).
    pub fn disabled() -> Self {
        Self { log: None, topic: None, errors: Counter::default(), refusals: Family::default() }
    }

    /// Appends one event. The file is the record; the topic copy is sent in the
    /// background. A refusal also counts in `hutong_refusals_total`, by its code.
    pub fn record(&self, event: AuditEvent) {
        if let AuditEvent::Denied { code, .. } = &event {
            self.refusals.get_or_create(&RefusalLabels { code: code.clone() }).inc();
        }
        let Some(log) = &self.log else { return };
        let entry = match log.append(serde_json::to_value(&event).expect("audit events serialise")) {
            Ok(e) => e,
            Err(e) => {
                self.errors.inc();
                error!(error = %e, "audit entry not written");
                return;
            }
        };
        if let Some((topic, publisher)) = &self.topic {
            let message = OutboundMessage {
                topic: topic.clone(),
                entity: String::new(),
                key: Some(entry.seq.to_string()),
                event: CloudEvent {
                    id: format!("audit-{}-{}", entry.seq, &entry.hash[..16]),
                    source: "/hutong/gateway".to_owned(),
                    ty: "cn.hutong.audit.entry".to_owned(),
                    subject: None,
                    time: Utc::now(),
                    dataschema: None,
                    source_id: None,
                    revision: None,
                    flags: None,
                },
                value: Some(entry.to_line().into_bytes()),
            };
            let (publisher, errors) = (Arc::clone(publisher), self.errors.clone());
            tokio::spawn(async move {
                if let Err(e) = publisher.publish(message).await {
                    errors.inc();
                    error!(error = %e, "audit entry not copied to the audit topic (the file has it)");
                }
            });
        }
    }

    /// Makes the file durable (fsync).
    pub fn sync(&self) {
        if let Some(log) = &self.log
            && let Err(e) = log.sync()
        {
            error!(error = %e, "audit fsync failed");
        }
    }

    /// Makes the file durable every `every` until the task is aborted (the server does at
    /// shutdown, then syncs once more): a node lost loses at most that much of the file (the
    /// topic copy may have it).
    pub fn sync_every(self: &Arc<Self>, every: std::time::Duration) -> tokio::task::JoinHandle<()> {
        let auditor = Arc::clone(self);
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(every);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                tick.tick().await;
                let a = Arc::clone(&auditor);
                let _ = tokio::task::spawn_blocking(move || a.sync()).await;
            }
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use hutong_bus::{BusError, PublishFuture};

    /// A bus that refuses every message.
    struct Down;

    impl Publisher for Down {
        fn publish(&self, _: OutboundMessage) -> hutong_bus::PublishFuture {
            let refused: PublishFuture = Box::pin(async { Err(BusError::unavailable("test: down")) });
            refused
        }
    }

    fn sample(metrics: &Metrics, name: &str) -> Option<String> {
        metrics.encode().lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ').map(str::to_owned))
    }

    #[tokio::test]
    async fn entries_not_copied_to_the_topic_are_counted_and_refusals_counted_by_code() {
        let dir = tempfile::tempdir().unwrap();
        let metrics = Metrics::default();
        let log = AuditLog::open(dir.path(), 190).unwrap();
        let auditor = Auditor::new(log, Some(("hutong.audit.v1".into(), Arc::new(Down))), &metrics);
        assert_eq!(sample(&metrics, "hutong_audit_errors_total").as_deref(), Some("0"));
        auditor.record(AuditEvent::Denied {
            principal: None,
            role: None,
            peer: None,
            action: "Submit".into(),
            code: "PermissionDenied".into(),
            reason: "test".into(),
        });
        auditor.record(AuditEvent::Admin {
            principal: "ops".into(),
            role: "admin",
            operation: "ListSchemas",
            detail: Value::Null,
            outcome: "Ok".into(),
        });
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(10);
        while sample(&metrics, "hutong_audit_errors_total").as_deref() != Some("2") {
            assert!(std::time::Instant::now() < deadline, "{}", metrics.encode());
            tokio::task::yield_now().await;
        }
        assert_eq!(sample(&metrics, "hutong_refusals_total{code=\"PermissionDenied\"}").as_deref(), Some("1"));
        // The file has both entries all the same.
        let text = std::fs::read_to_string(
            std::fs::read_dir(dir.path())
                .unwrap()
                .find_map(|e| {
                    let p = e.ok()?.path();
                    p.extension().is_some_and(|x| x == "jsonl").then_some(p)
                })
                .unwrap(),
        )
        .unwrap();
        assert_eq!(text.lines().count(), 2);
    }
}
