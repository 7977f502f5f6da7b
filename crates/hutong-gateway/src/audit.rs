//! The gateway's audit trail: every submission, every admin call and every
//! refusal, appended to the hash-chained log on disk (`hutong audit verify`)
//! and copied to the audit topic.

use std::{path::PathBuf, sync::Arc};

use chrono::Utc;
use hutong_audit::AuditLog;
use hutong_bus::{CloudEvent, OutboundMessage, Publisher};
use prometheus_client::metrics::{counter::Counter, family::Family};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tracing::error;

use crate::{Metrics, metrics::RefusalLabels};

/// Where the audit trail goes (`[audit]`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields, default)]
pub struct AuditConfig {
    /// Directory of the day files (`audit-YYYYMMDD.jsonl`).
    pub dir: PathBuf,
    /// Days a day file is kept. The default, 190, keeps more than the six
    /// months the Cybersecurity Law (网络安全法, art. 21) requires for logs.
    pub retention_days: u32,
    /// Copy every entry to the audit topic (`<prefix>.audit.v1`) as well.
    pub publish: bool,
}

impl Default for AuditConfig {
    fn default() -> Self {
        Self { dir: PathBuf::from("audit"), retention_days: 190, publish: true }
    }
}

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

    /// Appends one event (a JSON object with a `type`). The file is the
    /// record; the topic copy is sent in the background. A `denied` event
    /// also counts as a refusal, by its `code`.
    pub fn record(&self, event: Value) {
        if event["type"] == "denied" {
            let code = event["code"].as_str().unwrap_or("Unknown").to_owned();
            self.refusals.get_or_create(&RefusalLabels { code }).inc();
        }
        let Some(log) = &self.log else { return };
        let entry = match log.append(event) {
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
                key: Some(entry.seq.to_string()),
                event: CloudEvent {
                    id: format!("audit-{}-{}", entry.seq, &entry.hash[..16]),
                    source: "/hutong/gateway".to_owned(),
                    ty: "cn.hutong.audit.entry".to_owned(),
                    subject: None,
                    time: Utc::now(),
                    dataschema: None,
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
}

#[cfg(test)]
mod tests {
    use super::*;
    use hutong_bus::{BusError, PublishFuture};

    /// A bus that refuses every message.
    struct Down;

    impl Publisher for Down {
        fn publish(&self, _: OutboundMessage) -> hutong_bus::PublishFuture {
            let refused: PublishFuture = Box::pin(async { Err(BusError::Unavailable("test: down".into())) });
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
        auditor.record(serde_json::json!({"type": "denied", "code": "PermissionDenied", "action": "Submit"}));
        auditor.record(serde_json::json!({"type": "admin", "operation": "ListSchemas"}));
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
