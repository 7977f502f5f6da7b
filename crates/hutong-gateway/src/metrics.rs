//! Prometheus metrics (`GET /metrics` on the registry's HTTP port), named by
//! Prometheus conventions: records by department, kind and outcome; violations
//! by rule; batch latency; records in flight; producer queue depth; delivery
//! errors; the hot-reload generation.

use std::sync::{
    Arc,
    atomic::{AtomicI64, AtomicU64},
};

use axum::{Router, extract::State, http::header, response::IntoResponse, routing::get};
use prometheus_client::{
    encoding::{EncodeLabelSet, text::encode},
    metrics::{counter::Counter, family::Family, gauge::Gauge, histogram::Histogram},
    registry::Registry,
};

/// Labels of `hutong_records_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RecordLabels {
    /// Department id (or `unknown` for one without adapters, to bound cardinality).
    pub department: String,
    /// Source kind (or `unknown`).
    pub kind: String,
    /// `published`, `rejected` or `duplicate`.
    pub outcome: String,
}

/// Labels of `hutong_violations_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RuleLabels {
    /// The rule, e.g. `format:gb11643`.
    pub rule: String,
}

/// Labels of `hutong_delivery_errors_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ErrorLabels {
    /// `admission`, or the kind of bus trouble: `unavailable`, `queue_full`, `not_authorized`,
    /// `topic_refused`, `record_refused`, `config`.
    pub kind: String,
}

/// Labels of `hutong_refusals_total`.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct RefusalLabels {
    /// The gRPC code answered (`Unauthenticated`, `PermissionDenied`); TLS refusals count as `Unauthenticated`.
    pub code: String,
}

/// The gateway's metrics.
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
    /// Records answered, by department, kind and outcome.
    pub records: Family<RecordLabels, Counter>,
    /// Violations, by rule.
    pub violations: Family<RuleLabels, Counter>,
    /// Submit-to-answer latency of batches.
    pub batch_seconds: Histogram,
    /// Records accepted and not yet answered.
    pub in_flight: Gauge<i64, AtomicI64>,
    /// Messages in the producer's queue (set at scrape time).
    pub producer_queue: Gauge<i64, AtomicI64>,
    /// Requests failed by bus trouble or refused by admission, by kind.
    pub delivery_errors: Family<ErrorLabels, Counter>,
    /// Generation of the pipeline in use (hot reloads).
    pub reload_generation: Gauge<u64, AtomicU64>,
    /// 1 while the last hot reload was refused (the working version still serves).
    pub reload_failed: Gauge<i64, AtomicI64>,
    /// Messages waiting in the store-and-forward spool.
    pub spool_depth: Gauge<i64, AtomicI64>,
    /// Calls and connections refused by authentication or authorisation, by code.
    pub refusals: Family<RefusalLabels, Counter>,
    /// Audit entries that could not be written (file) or copied (topic).
    pub audit_errors: Counter,
}

impl Default for Metrics {
    fn default() -> Self {
        let mut registry = Registry::with_prefix("hutong");
        let records = Family::<RecordLabels, Counter>::default();
        registry.register("records", "Source records answered, by department, kind and outcome", records.clone());
        let violations = Family::<RuleLabels, Counter>::default();
        registry.register("violations", "Violations found in rejected records, by rule", violations.clone());
        let batch_seconds = Histogram::new(prometheus_client::metrics::histogram::exponential_buckets(0.0005, 2.0, 16));
        registry.register_with_unit(
            "batch_duration",
            "Time from a batch's arrival to its answer",
            prometheus_client::registry::Unit::Seconds,
            batch_seconds.clone(),
        );
        let in_flight = Gauge::<i64, AtomicI64>::default();
        registry.register("records_in_flight", "Records accepted and not yet answered", in_flight.clone());
        let producer_queue = Gauge::<i64, AtomicI64>::default();
        registry.register(
            "producer_queue_messages",
            "Messages waiting in the Kafka producer's queue",
            producer_queue.clone(),
        );
        let delivery_errors = Family::<ErrorLabels, Counter>::default();
        registry.register(
            "delivery_errors",
            "Requests failed by bus trouble or refused by admission, by kind",
            delivery_errors.clone(),
        );
        let reload_generation = Gauge::<u64, AtomicU64>::default();
        registry.register(
            "reload_generation",
            "Generation of the standard and adapters in use",
            reload_generation.clone(),
        );
        let reload_failed = Gauge::<i64, AtomicI64>::default();
        registry.register("reload_failed", "1 while the last hot reload was refused", reload_failed.clone());
        let spool_depth = Gauge::<i64, AtomicI64>::default();
        registry.register("spool_messages", "Messages waiting in the store-and-forward spool", spool_depth.clone());
        let refusals = Family::<RefusalLabels, Counter>::default();
        registry.register("refusals", "Calls and connections refused by identity or policy, by code", refusals.clone());
        let audit_errors = Counter::default();
        registry.register(
            "audit_errors",
            "Audit entries not written to the file or not copied to the topic",
            audit_errors.clone(),
        );
        Self {
            registry,
            refusals,
            audit_errors,
            records,
            violations,
            batch_seconds,
            in_flight,
            producer_queue,
            delivery_errors,
            reload_generation,
            reload_failed,
            spool_depth,
        }
    }
}

impl Metrics {
    /// The OpenMetrics text of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        encode(&mut out, &self.registry).expect("writing to a String cannot fail");
        out
    }
}

/// Refreshes, at scrape time, the gauges read from elsewhere (producer queue, spool, reloads).
pub type BeforeScrape = Arc<dyn Fn(&Metrics) + Send + Sync>;

/// `GET /metrics`; `before_scrape` refreshes gauges read from elsewhere.
pub fn router(metrics: Arc<Metrics>, before_scrape: BeforeScrape) -> Router {
    Router::new()
        .route(
            "/metrics",
            get(|State((m, f)): State<(Arc<Metrics>, BeforeScrape)>| async move {
                f(&m);
                ([(header::CONTENT_TYPE, "application/openmetrics-text; version=1.0.0; charset=utf-8")], m.encode())
                    .into_response()
            }),
        )
        .with_state((metrics, before_scrape))
}
