//! The dedupe window: source records published lately, by (department, kind,
//! source_id, revision), so a retry is answered DUPLICATE with the original
//! receipts — looked up before the pipeline runs, since the key needs nothing
//! the pipeline computes.

use std::{
    sync::Arc,
    time::{Duration, Instant},
};

use hutong_bus::ContentDigest;
use hutong_proto::v1::{Receipt, SourceRecord};

use crate::DeliveryConfig;

/// quick_cache (bounded, S3-FIFO) with the insertion time kept for the TTL: the profile
/// showed moka's insert path at ~4.6 µs per record, the largest single cost of the gateway.
type RecentCache = quick_cache::sync::Cache<String, (Instant, ContentDigest, Arc<Vec<Receipt>>)>;

/// Published source records and their receipts.
pub(crate) struct Dedupe {
    recent: RecentCache,
    ttl: Duration,
}

impl std::fmt::Debug for Dedupe {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dedupe").field("ttl", &self.ttl).finish_non_exhaustive()
    }
}

impl Dedupe {
    pub(crate) fn new(delivery: &DeliveryConfig) -> Self {
        Self {
            recent: quick_cache::sync::Cache::new(delivery.dedupe_capacity.max(1) as usize),
            ttl: Duration::from_secs(delivery.dedupe_ttl_secs),
        }
    }

    /// The identity of a source record: what makes a retry a duplicate.
    pub(crate) fn key(department: &str, rec: &SourceRecord) -> String {
        format!("{department}\u{0}{}\u{0}{}\u{0}{}", rec.kind, rec.source_id, rec.revision)
    }

    /// The receipts of `key`, if it was published within the window with this content.
    pub(crate) fn published(&self, key: &str, digest: &ContentDigest) -> Option<Arc<Vec<Receipt>>> {
        self.recent.get(key).filter(|(at, d, _)| at.elapsed() < self.ttl && d == digest).map(|(_, _, r)| r)
    }

    /// Remembers that `key` was published, with content `digest`, with `receipts`.
    pub(crate) fn remember(&self, (key, digest): (String, ContentDigest), receipts: Vec<Receipt>) {
        self.recent.insert(key, (Instant::now(), digest, Arc::new(receipts)));
    }
}
