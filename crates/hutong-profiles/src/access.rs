//! Grants, usage and objections in the consumer service's store (the same on both engines):
//!
//! - `access_grants`: every access request with its status (a grant once approved), as the
//!   document of [`hutong_sharing::Grant`]; they survive restarts and are exported with
//!   `hutong access list --json`.
//! - `access_usage`: per consumer and resource, queries answered, records returned, last access.
//! - `access_signals`: misuse signals (a consumer reading far beyond its purpose).
//! - `objections`: 数据异议 on published facts, routed to the fact's source department; a
//!   higher revision of the same source record closes the open ones by itself (in the same
//!   transaction as the corrected fact). Each change is published to `<prefix>.objection.v1`
//!   (keyed by the objection id) through the governance outbox (`published`).

use std::collections::{BTreeMap, BTreeSet};

use hutong_sharing::Grant;
use serde_json::{Value, json};

use crate::store::{P, Store, StoreError, parse, text_of};

/// The tables.
pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS access_grants (
  id TEXT PRIMARY KEY, consumer TEXT NOT NULL, resource TEXT NOT NULL, provider TEXT NOT NULL,
  status TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS access_grants_by_consumer ON access_grants (consumer);
CREATE TABLE IF NOT EXISTS access_usage (
  consumer TEXT NOT NULL, resource TEXT NOT NULL, queries BIGINT NOT NULL, records BIGINT NOT NULL,
  last_access TEXT NOT NULL, PRIMARY KEY (consumer, resource));
CREATE TABLE IF NOT EXISTS objections (
  id TEXT PRIMARY KEY, ce_id TEXT NOT NULL, department TEXT NOT NULL, kind TEXT NOT NULL,
  source_id TEXT NOT NULL, revision BIGINT NOT NULL, open BIGINT NOT NULL, doc TEXT NOT NULL,
  published BIGINT NOT NULL);
CREATE INDEX IF NOT EXISTS objections_by_ce_id ON objections (ce_id);
CREATE INDEX IF NOT EXISTS objections_open ON objections (open, department);
CREATE INDEX IF NOT EXISTS objections_unpublished ON objections (published);
CREATE TABLE IF NOT EXISTS access_signals (at TEXT NOT NULL, consumer TEXT NOT NULL, doc TEXT NOT NULL);
";

/// The day of a document's date (`YYYY-MM-DD`) or time (RFC 3339, its local day), if it has one.
pub(crate) fn day_of(v: &Value) -> Option<chrono::NaiveDate> {
    v.as_str().and_then(|t| t.get(..10)).and_then(|d| d.parse().ok())
}

/// A fact as an objection names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FactRef {
    /// Entity and key.
    pub entity: String,
    /// The entity key.
    pub entity_key: String,
    /// Source department, kind, record id and revision.
    pub department: String,
    /// Kind.
    pub kind: String,
    /// Source record id.
    pub source_id: String,
    /// Revision.
    pub revision: i64,
}

impl Store {
    /// Every access request, newest first.
    pub fn grants(&mut self) -> Result<Vec<Grant>, StoreError> {
        self.grant_rows("SELECT doc FROM access_grants ORDER BY id DESC", &[])
    }

    /// The requests of one consumer.
    pub fn grants_of(&mut self, consumer: &str) -> Result<Vec<Grant>, StoreError> {
        self.grant_rows("SELECT doc FROM access_grants WHERE consumer = $1 ORDER BY id DESC", &[P::T(consumer)])
    }

    /// One request.
    pub fn grant(&mut self, id: &str) -> Result<Option<Grant>, StoreError> {
        Ok(self.grant_rows("SELECT doc FROM access_grants WHERE id = $1", &[P::T(id)])?.pop())
    }

    fn grant_rows(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Grant>, StoreError> {
        self.db
            .rows(sql, params)?
            .into_iter()
            .map(|r| {
                let doc = text_of(r)();
                serde_json::from_str(&doc).map_err(|e| StoreError::Corrupt(format!("access grant: {e}")))
            })
            .collect()
    }

    /// Stores a new request, numbered `AR-0001` on; it is returned with its id.
    pub fn add_grant(&mut self, mut grant: Grant) -> Result<Grant, StoreError> {
        self.transaction(|s| {
            let n = s.db.rows("SELECT COUNT(*) FROM access_grants", &[])?.pop().and_then(|r| r.into_iter().next());
            grant.id = format!("AR-{:04}", n.map_or(0, |c| c.int()) + 1);
            s.put_grant(&grant)?;
            Ok(grant)
        })
    }

    /// Writes `grant` (a decision, a revocation).
    pub fn put_grant(&mut self, grant: &Grant) -> Result<(), StoreError> {
        let doc = serde_json::to_string(grant).map_err(|e| StoreError::Corrupt(e.to_string()))?;
        self.db.exec(
            "INSERT INTO access_grants (id, consumer, resource, provider, status, doc) VALUES ($1, $2, $3, $4, $5, $6) \
             ON CONFLICT (id) DO UPDATE SET status = excluded.status, doc = excluded.doc",
            &[
                P::T(&grant.id),
                P::T(&grant.consumer),
                P::T(&grant.resource),
                P::T(&grant.provider),
                P::T(grant.status.as_str()),
                P::T(&doc),
            ],
        )?;
        Ok(())
    }

    /// Counts a query of `consumer` on each of `resources` (with the records it returned of
    /// each) at `now`.
    pub fn record_usage(
        &mut self,
        consumer: &str,
        resources: &BTreeMap<String, u64>,
        now: &str,
    ) -> Result<(), StoreError> {
        for (resource, records) in resources {
            self.db.exec(
                "INSERT INTO access_usage (consumer, resource, queries, records, last_access) VALUES ($1, $2, 1, $3, $4) \
                 ON CONFLICT (consumer, resource) DO UPDATE SET queries = access_usage.queries + 1, \
                 records = access_usage.records + excluded.records, last_access = excluded.last_access",
                &[P::T(consumer), P::T(resource), P::I(i64::try_from(*records).unwrap_or(i64::MAX)), P::T(now)],
            )?;
        }
        Ok(())
    }

    /// Usage per consumer and resource.
    pub fn usage(&mut self) -> Result<Vec<Value>, StoreError> {
        Ok(self
            .db
            .rows(
                "SELECT consumer, resource, queries, records, last_access FROM access_usage ORDER BY consumer, resource",
                &[],
            )?
            .into_iter()
            .map(|r| {
                let mut t = text_of(r);
                let (consumer, resource) = (t(), t());
                let (queries, records): (i64, i64) = (t().parse().unwrap_or_default(), t().parse().unwrap_or_default());
                let last = t();
                json!({"consumer": consumer, "resource": resource, "queries": queries, "records": records, "last_access": last})
            })
            .collect())
    }

    /// Keeps a misuse signal.
    pub fn add_signal(&mut self, doc: &Value) -> Result<(), StoreError> {
        self.db.exec(
            "INSERT INTO access_signals (at, consumer, doc) VALUES ($1, $2, $3)",
            &[
                P::T(doc["at"].as_str().unwrap_or_default()),
                P::T(doc["consumer"].as_str().unwrap_or_default()),
                P::T(&doc.to_string()),
            ],
        )?;
        Ok(())
    }

    /// Misuse signals, newest first.
    pub fn signals(&mut self) -> Result<Vec<Value>, StoreError> {
        let rows = self.db.rows("SELECT doc FROM access_signals ORDER BY at DESC", &[])?;
        rows.into_iter().map(|r| parse(&text_of(r)())).collect()
    }

    /// The current fact with event id `ce_id` (a scan of the facts: objections are rare).
    pub fn fact_by_ce_id(&mut self, ce_id: &str) -> Result<Option<FactRef>, StoreError> {
        let row = self
            .db
            .rows(
                "SELECT entity, entity_key, department, kind, source_id, revision FROM facts WHERE ce_id = $1",
                &[P::T(ce_id)],
            )?
            .into_iter()
            .next();
        Ok(row.map(|r| {
            let mut t = text_of(r);
            FactRef {
                entity: t(),
                entity_key: t(),
                department: t(),
                kind: t(),
                source_id: t(),
                revision: t().parse().unwrap_or_default(),
            }
        }))
    }

    /// Stores a new objection `doc` on `fact`, numbered `OB-0001` on; returns it with its id.
    pub fn add_objection(&mut self, fact: &FactRef, doc: Value) -> Result<Value, StoreError> {
        self.transaction(|s| s.insert_objection(fact, doc))
    }

    fn insert_objection(&mut self, fact: &FactRef, mut doc: Value) -> Result<Value, StoreError> {
        let n = self.db.rows("SELECT COUNT(*) FROM objections", &[])?.pop().and_then(|r| r.into_iter().next());
        let id = format!("OB-{:04}", n.map_or(0, |c| c.int()) + 1);
        doc["id"] = id.clone().into();
        self.db.exec(
            "INSERT INTO objections (id, ce_id, department, kind, source_id, revision, open, doc, published) \
             VALUES ($1, $2, $3, $4, $5, $6, 1, $7, 0)",
            &[
                P::T(&id),
                P::T(doc["ce_id"].as_str().unwrap_or_default()),
                P::T(&fact.department),
                P::T(&fact.kind),
                P::T(&fact.source_id),
                P::I(fact.revision),
                P::T(&doc.to_string()),
            ],
        )?;
        Ok(doc)
    }

    /// Opens an objection on the losing fact of every disagreement in `profiles` that has none
    /// on that fact and field yet (any status: a dismissed one is not reopened; a corrected
    /// fact has a new event id).
    pub(crate) fn object_to_conflicts(
        &mut self,
        profiles: &BTreeMap<(String, String), Option<Value>>,
    ) -> Result<(), StoreError> {
        let conflicts: Vec<(&(String, String), &Value)> = profiles
            .iter()
            .filter_map(|(id, p)| Some((id, p.as_ref()?)))
            .flat_map(|(id, p)| p["conflicts"].as_array().into_iter().flatten().map(move |c| (id, c)))
            .filter(|(_, c)| c["loser"]["source"]["ce_id"].is_string())
            .collect();
        if conflicts.is_empty() {
            return Ok(());
        }
        let ce_ids: Vec<Vec<P<'_>>> = conflicts
            .iter()
            .map(|(_, c)| vec![P::T(c["loser"]["source"]["ce_id"].as_str().unwrap_or_default())])
            .collect();
        let mut held: BTreeSet<(String, String)> = BTreeSet::new();
        for r in self.chunked("SELECT ce_id, doc FROM objections WHERE {match ce_id}", 1, &ce_ids)? {
            let mut t = text_of(r);
            let ce_id = t();
            held.insert((ce_id, parse(&t())?["pointer"].as_str().unwrap_or_default().to_owned()));
        }
        let now = self.now();
        let due = self.governance.as_ref().map(|g| {
            let today = g.clock.now().date_naive();
            g.rules.calendar.add_working_days(today, crate::access_service::OBJECTION_WORKING_DAYS).value.to_string()
        });
        for ((entity, key), c) in conflicts {
            let loser = &c["loser"]["source"];
            let ce_id = loser["ce_id"].as_str().unwrap_or_default().to_owned();
            let pointer = format!("/{}", c["field"].as_str().unwrap_or_default());
            if !held.insert((ce_id.clone(), pointer.clone())) {
                continue;
            }
            let text = |k: &str| loser[k].as_str().unwrap_or_default().to_owned();
            let fact = FactRef {
                entity: entity.clone(),
                entity_key: key.clone(),
                department: text("department"),
                kind: text("kind"),
                source_id: text("source_id"),
                revision: loser["revision"].as_i64().unwrap_or_default(),
            };
            let winner = &c["winner"];
            let doc = json!({
                "ce_id": ce_id, "entity": entity, "entity_key": key, "department": fact.department, "kind": fact.kind,
                "source_id": fact.source_id, "revision": fact.revision, "pointer": pointer,
                "reason": format!(
                    "conflict found by the profile service: {} states {}, {} (ranked first for this field) states {}",
                    fact.department, c["loser"]["value"], winner["source"]["department"].as_str().unwrap_or_default(),
                    winner["value"]
                ),
                "filed_by": "hutong", "filed_by_role": "service", "filed_at": now, "due": due, "status": "open",
            });
            self.insert_objection(&fact, doc)?;
        }
        Ok(())
    }

    /// Rewrites an objection's document (acknowledged, dismissed).
    pub fn put_objection(&mut self, doc: &Value) -> Result<(), StoreError> {
        let open = matches!(doc["status"].as_str(), Some("open" | "acknowledged"));
        self.db.exec(
            // SQLite numbers `$n` parameters in the order they appear: keep them in order.
            "UPDATE objections SET open = $1, doc = $2, published = 0 WHERE id = $3",
            &[P::I(i64::from(open)), P::T(&doc.to_string()), P::T(doc["id"].as_str().unwrap_or_default())],
        )?;
        Ok(())
    }

    /// Objections, newest first: all, or only open ones; of one department's facts, or all.
    pub fn objections(&mut self, department: Option<&str>, open_only: bool) -> Result<Vec<Value>, StoreError> {
        let rows = self.db.rows(
            "SELECT doc FROM objections WHERE ($1 = '' OR department = $1) AND (CAST($2 AS BIGINT) = 0 OR open = 1) ORDER BY id DESC",
            &[P::T(department.unwrap_or("")), P::I(i64::from(open_only))],
        )?;
        rows.into_iter().map(|r| parse(&text_of(r)())).collect()
    }

    /// One objection.
    pub fn objection(&mut self, id: &str) -> Result<Option<Value>, StoreError> {
        let rows = self.db.rows("SELECT doc FROM objections WHERE id = $1", &[P::T(id)])?;
        rows.into_iter().next().map(|r| parse(&text_of(r)())).transpose()
    }

    /// The open objections on the facts with these event ids.
    pub fn open_objections_on(
        &mut self,
        ce_ids: &BTreeSet<String>,
    ) -> Result<BTreeMap<String, Vec<Value>>, StoreError> {
        let mut out: BTreeMap<String, Vec<Value>> = BTreeMap::new();
        if ce_ids.is_empty() || !self.any_open_objection()? {
            return Ok(out);
        }
        let ids: Vec<Vec<P<'_>>> = ce_ids.iter().map(|c| vec![P::T(c)]).collect();
        for r in self.chunked("SELECT ce_id, doc FROM objections WHERE open = 1 AND {match ce_id}", 1, &ids)? {
            let mut t = text_of(r);
            let ce_id = t();
            out.entry(ce_id).or_default().push(parse(&t())?);
        }
        Ok(out)
    }

    fn any_open_objection(&mut self) -> Result<bool, StoreError> {
        Ok(!self.db.rows("SELECT id FROM objections WHERE open = 1 LIMIT 1", &[])?.is_empty())
    }

    /// Closes the open objections on the source records a batch raised to a higher revision
    /// (`changed`: record → its revision now, and whether it is deleted), at `now`.
    pub(crate) fn close_corrected(
        &mut self,
        changed: &BTreeMap<(String, String, String), (i64, bool)>,
        now: &str,
    ) -> Result<(), StoreError> {
        if changed.is_empty() || !self.any_open_objection()? {
            return Ok(());
        }
        let open =
            self.db.rows("SELECT department, kind, source_id, revision, doc FROM objections WHERE open = 1", &[])?;
        for r in open {
            let mut t = text_of(r);
            let record = (t(), t(), t());
            let revision: i64 = t().parse().unwrap_or_default();
            let Some(&(now_revision, deleted)) = changed.get(&record) else { continue };
            if now_revision <= revision && !deleted {
                continue;
            }
            let mut doc = parse(&t())?;
            doc["status"] = "closed".into();
            doc["resolved_at"] = now.into();
            doc["resolution"] = if deleted {
                format!("the source deleted the record (revision {now_revision})")
            } else {
                format!("corrected by the source: revision {now_revision} of the same record")
            }
            .into();
            self.put_objection(&doc)?;
        }
        Ok(())
    }
}
