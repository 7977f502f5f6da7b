//! Store and forward: when Kafka is unreachable, records are written to a
//! durable local spool (redb; every append is an fsync'd transaction before
//! the caller is answered SPOOLED) and replayed in order when Kafka returns.
//! The spool survives restarts and is bounded.

use std::{
    path::Path,
    sync::atomic::{AtomicU64, Ordering},
};

use redb::{Database, ReadableDatabase, ReadableTable, ReadableTableMetadata, TableDefinition};
use tracing::{info, warn};

use crate::{BusError, OutboundMessage, Publisher};

const TABLE: TableDefinition<'_, u64, &[u8]> = TableDefinition::new("spool");

/// Why the spool could not take or give back records.
#[derive(Debug, thiserror::Error)]
pub enum SpoolError {
    /// The spool holds `max` records already.
    #[error("the spool is full ({0} records); Kafka has been unreachable for long")]
    Full(u64),
    /// The store failed.
    #[error("spool store: {0}")]
    Store(String),
}

fn store<E: std::fmt::Display>(e: E) -> SpoolError {
    SpoolError::Store(e.to_string())
}

/// A durable, ordered, bounded queue of messages waiting for Kafka.
pub struct Spool {
    db: Database,
    max: u64,
    next: AtomicU64,
    len: AtomicU64,
}

impl std::fmt::Debug for Spool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Spool").field("len", &self.len()).field("max", &self.max).finish_non_exhaustive()
    }
}

impl Spool {
    /// Opens (or creates) the spool at `path`, holding at most `max` messages.
    pub fn open(path: &Path, max: u64) -> Result<Self, SpoolError> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(store)?;
        }
        let db = Database::create(path).map_err(store)?;
        let txn = db.begin_write().map_err(store)?;
        let (next, len) = {
            let table = txn.open_table(TABLE).map_err(store)?;
            let next = table.last().map_err(store)?.map(|(k, _)| k.value() + 1).unwrap_or(0);
            (next, table.len().map_err(store)?)
        };
        txn.commit().map_err(store)?;
        if len > 0 {
            info!(records = len, "spool holds records from before the restart; they will be replayed");
        }
        Ok(Self { db, max, next: AtomicU64::new(next), len: AtomicU64::new(len) })
    }

    /// Messages waiting.
    pub fn len(&self) -> u64 {
        self.len.load(Ordering::SeqCst)
    }

    /// Whether nothing waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Appends `msgs` durably (all or none); returns when they are on disk.
    pub fn append(&self, msgs: &[OutboundMessage]) -> Result<(), SpoolError> {
        if self.len() + msgs.len() as u64 > self.max {
            return Err(SpoolError::Full(self.max));
        }
        let txn = self.db.begin_write().map_err(store)?;
        {
            let mut table = txn.open_table(TABLE).map_err(store)?;
            for m in msgs {
                let seq = self.next.fetch_add(1, Ordering::SeqCst);
                let bytes = serde_json::to_vec(m).map_err(store)?;
                table.insert(seq, bytes.as_slice()).map_err(store)?;
            }
        }
        txn.commit().map_err(store)?;
        self.len.fetch_add(msgs.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    /// How many messages wait for each topic (read through the whole spool: for the start, where
    /// spooled messages of topics no longer in the plan must be found before replaying).
    pub fn topics(&self) -> Result<std::collections::BTreeMap<String, u64>, SpoolError> {
        #[derive(serde::Deserialize)]
        struct Topic {
            topic: String,
        }
        let txn = self.db.begin_read().map_err(store)?;
        let table = txn.open_table(TABLE).map_err(store)?;
        let mut out = std::collections::BTreeMap::new();
        for entry in table.iter().map_err(store)? {
            let (_, v) = entry.map_err(store)?;
            let t: Topic = serde_json::from_slice(v.value()).map_err(store)?;
            *out.entry(t.topic).or_insert(0) += 1;
        }
        Ok(out)
    }

    /// The oldest `n` messages, in order.
    fn peek(&self, n: usize) -> Result<Vec<(u64, OutboundMessage)>, SpoolError> {
        let txn = self.db.begin_read().map_err(store)?;
        let table = txn.open_table(TABLE).map_err(store)?;
        let mut out = Vec::with_capacity(n);
        for entry in table.iter().map_err(store)?.take(n) {
            let (k, v) = entry.map_err(store)?;
            out.push((k.value(), serde_json::from_slice(v.value()).map_err(store)?));
        }
        Ok(out)
    }

    fn remove(&self, seqs: &[u64]) -> Result<(), SpoolError> {
        let txn = self.db.begin_write().map_err(store)?;
        {
            let mut table = txn.open_table(TABLE).map_err(store)?;
            for s in seqs {
                table.remove(s).map_err(store)?;
            }
        }
        txn.commit().map_err(store)?;
        self.len.fetch_sub(seqs.len() as u64, Ordering::SeqCst);
        Ok(())
    }

    /// Publishes the spooled messages in order, oldest first, removing each
    /// chunk once delivered; stops at the first failure (order is kept).
    /// Returns how many were delivered.
    pub async fn replay(&self, publisher: &dyn Publisher) -> Result<u64, BusError> {
        let mut delivered = 0;
        loop {
            let chunk = self.peek(256).map_err(|e| BusError::unavailable(e.to_string()))?;
            if chunk.is_empty() {
                return Ok(delivered);
            }
            // Sent in order; the idempotent producer keeps that order per partition.
            let futures: Vec<_> = chunk.iter().map(|(_, m)| publisher.publish(m.clone())).collect();
            let results = futures::future::join_all(futures).await;
            let ok: Vec<u64> =
                chunk.iter().zip(&results).take_while(|(_, r)| r.is_ok()).map(|((seq, _), _)| *seq).collect();
            self.remove(&ok).map_err(|e| BusError::unavailable(e.to_string()))?;
            delivered += ok.len() as u64;
            if let Some(Err(e)) = results.into_iter().find(Result::is_err) {
                warn!(delivered, waiting = self.len(), error = %e, "spool replay paused");
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CloudEvent, MemoryPublisher};

    fn msg(i: u32) -> OutboundMessage {
        OutboundMessage {
            topic: "t".into(),
            entity: "person".into(),
            key: Some(format!("k{i}")),
            event: CloudEvent {
                id: format!("e{i}"),
                source: "/s".into(),
                ty: "x".into(),
                subject: None,
                time: chrono::Utc::now(),
                dataschema: None,
                source_id: None,
                revision: None,
                flags: None,
            },
            value: Some(format!("{{\"n\":{i}}}").into_bytes()),
        }
    }

    #[test]
    fn messages_spooled_before_the_entity_field_still_read() {
        let old = r#"{"topic":"t","key":"k","event":{"id":"e","source":"/s","ty":"x","subject":null,"time":"2026-11-01T00:00:00Z","dataschema":null},"value":[123,125]}"#;
        let m: OutboundMessage = serde_json::from_str(old).unwrap();
        assert_eq!((m.topic.as_str(), m.entity.as_str(), m.value.as_deref()), ("t", "", Some(&b"{}"[..])));
    }

    #[tokio::test]
    async fn survives_reopening_replays_in_order_and_is_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("spool.redb");
        {
            let s = Spool::open(&path, 5).unwrap();
            s.append(&[msg(0), msg(1)]).unwrap();
            s.append(&[msg(2)]).unwrap();
            assert!(matches!(s.append(&[msg(3), msg(4), msg(5)]), Err(SpoolError::Full(5))));
            assert_eq!(s.len(), 3);
        }
        let s = Spool::open(&path, 5).unwrap();
        assert_eq!(s.len(), 3, "the spool survives a restart");
        s.append(&[msg(3)]).unwrap();
        let p = MemoryPublisher::default();
        assert_eq!(s.replay(&p).await.unwrap(), 4);
        let ids: Vec<String> = p.sent().into_iter().map(|m| m.event.id).collect();
        assert_eq!(ids, ["e0", "e1", "e2", "e3"], "replayed in order");
        assert!(s.is_empty());
        drop(s);
        assert!(Spool::open(&path, 5).unwrap().is_empty());
    }
}
