//! Where facts and profiles are kept: an embedded SQLite file by default, PostgreSQL in
//! production. Both run the same SQL (`$n` parameters, `ON CONFLICT … DO UPDATE`); the
//! difference is only in how a statement reaches the database ([`Sql`]).
//!
//! Applying a batch of facts is one transaction, guarded by revision per source record
//! (docs/consuming.md's rules), so replays and duplicates change nothing; the profiles of every
//! entity the batch touched are merged again in the same transaction.

use std::{
    collections::{BTreeMap, BTreeSet},
    path::PathBuf,
};

use serde_json::Value;

use crate::{
    merge::{Fact, Profile, Source, merge},
    rules::Rules,
};

/// The store could not be reached or refused a statement.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// SQLite.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// PostgreSQL.
    #[error("postgresql: {0}")]
    Postgres(#[from] postgres::Error),
    /// A store URL that names neither.
    #[error("store {0:?}: expected sqlite:PATH or postgres://…")]
    Url(String),
    /// A stored document that does not parse (the store was written by something else).
    #[error("stored document: {0}")]
    Corrupt(String),
}

impl StoreError {
    /// Whether the database went away (a connection lost, the server shut down), as opposed
    /// to a statement it refused.
    pub fn is_unavailable(&self) -> bool {
        match self {
            Self::Postgres(e) => e.is_closed() || e.as_db_error().is_none(),
            Self::Sqlite(rusqlite::Error::SqliteFailure(e, _)) => {
                matches!(e.code, rusqlite::ErrorCode::DatabaseBusy | rusqlite::ErrorCode::DatabaseLocked)
            }
            _ => false,
        }
    }
}

/// Where the store is: `sqlite:PATH` (the embedded default) or a PostgreSQL URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StoreUrl {
    /// An SQLite file (created when missing).
    Sqlite(PathBuf),
    /// A PostgreSQL connection string (`postgres://user@host:port/db`).
    Postgres(String),
}

impl std::str::FromStr for StoreUrl {
    type Err = StoreError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        if let Some(path) = s.strip_prefix("sqlite:") {
            let path = path.strip_prefix("//").unwrap_or(path);
            if path.is_empty() {
                return Err(StoreError::Url(s.to_owned()));
            }
            Ok(Self::Sqlite(PathBuf::from(path)))
        } else if s.starts_with("postgres://") || s.starts_with("postgresql://") {
            Ok(Self::Postgres(s.to_owned()))
        } else {
            Err(StoreError::Url(s.to_owned()))
        }
    }
}

impl std::fmt::Display for StoreUrl {
    /// The URL without a password.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(p) => write!(f, "sqlite:{}", p.display()),
            Self::Postgres(url) => match (url.find("://"), url.rfind('@')) {
                (Some(s), Some(at)) if at > s => {
                    let user = &url[s + 3..at];
                    let user = user.split(':').next().unwrap_or_default();
                    write!(f, "{}{user}@{}", &url[..s + 3], &url[at + 1..])
                }
                _ => f.write_str(url),
            },
        }
    }
}

/// A parameter of a statement.
#[derive(Debug, Clone, Copy)]
enum P<'a> {
    T(&'a str),
    I(i64),
}

/// A column of a result row.
#[derive(Debug, Clone, PartialEq)]
enum Cell {
    T(String),
    I(i64),
    N,
}

impl Cell {
    fn as_text(&self) -> Option<&str> {
        match self {
            Self::T(s) => Some(s),
            _ => None,
        }
    }
    fn text(self) -> Option<String> {
        match self {
            Self::T(s) => Some(s),
            Self::I(i) => Some(i.to_string()),
            Self::N => None,
        }
    }
    fn int(&self) -> i64 {
        match self {
            Self::I(i) => *i,
            Self::T(s) => s.parse().unwrap_or_default(),
            Self::N => 0,
        }
    }
}

/// How a statement reaches the database: the one place the two engines differ.
trait Sql {
    fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, StoreError>;
    fn rows(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Vec<Cell>>, StoreError>;
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
}

impl Sql for rusqlite::Connection {
    fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params.iter().map(sqlite_param)))? as u64)
    }
    fn rows(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Vec<Cell>>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let n = stmt.column_count();
        let rows = stmt.query_map(rusqlite::params_from_iter(params.iter().map(sqlite_param)), |row| {
            (0..n)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Integer(v) => Cell::I(v),
                        rusqlite::types::ValueRef::Text(t) => Cell::T(String::from_utf8_lossy(t).into_owned()),
                        rusqlite::types::ValueRef::Null => Cell::N,
                        other => Cell::T(format!("{other:?}")),
                    })
                })
                .collect::<Result<Vec<_>, rusqlite::Error>>()
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }
    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.execute_batch(sql)?)
    }
}

fn sqlite_param(p: &P<'_>) -> rusqlite::types::Value {
    match *p {
        P::T(s) => rusqlite::types::Value::Text(s.to_owned()),
        P::I(i) => rusqlite::types::Value::Integer(i),
    }
}

/// A PostgreSQL connection with its prepared statements.
struct Pg {
    client: postgres::Client,
    prepared: BTreeMap<String, postgres::Statement>,
}

impl Pg {
    fn statement(&mut self, sql: &str) -> Result<postgres::Statement, StoreError> {
        if let Some(s) = self.prepared.get(sql) {
            return Ok(s.clone());
        }
        let s = self.client.prepare(sql)?;
        self.prepared.insert(sql.to_owned(), s.clone());
        Ok(s)
    }
}

fn pg_params<'a>(params: &'a [P<'a>]) -> Vec<Box<dyn postgres::types::ToSql + Sync + 'a>> {
    params
        .iter()
        .map(|p| -> Box<dyn postgres::types::ToSql + Sync> {
            match *p {
                P::T(s) => Box::new(s),
                P::I(i) => Box::new(i),
            }
        })
        .collect()
}

impl Sql for Pg {
    fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, StoreError> {
        let stmt = self.statement(sql)?;
        let boxed = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        Ok(self.client.execute(&stmt, &refs)?)
    }
    fn rows(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Vec<Cell>>, StoreError> {
        let stmt = self.statement(sql)?;
        let boxed = pg_params(params);
        let refs: Vec<&(dyn postgres::types::ToSql + Sync)> = boxed.iter().map(|b| b.as_ref()).collect();
        let rows = self.client.query(&stmt, &refs)?;
        Ok(rows
            .iter()
            .map(|row| {
                (0..row.len())
                    .map(|i| match *row.columns()[i].type_() {
                        postgres::types::Type::INT8 => row.get::<_, Option<i64>>(i).map_or(Cell::N, Cell::I),
                        postgres::types::Type::INT4 => {
                            row.get::<_, Option<i32>>(i).map_or(Cell::N, |v| Cell::I(v.into()))
                        }
                        _ => row.get::<_, Option<String>>(i).map_or(Cell::N, Cell::T),
                    })
                    .collect()
            })
            .collect())
    }
    fn batch(&mut self, sql: &str) -> Result<(), StoreError> {
        Ok(self.client.batch_execute(sql)?)
    }
}

/// The tables, the same on both engines. `facts` holds every current fact (a row per fact
/// key); `records` the highest revision seen per source record and whether it was deleted;
/// `profiles` the merged documents with the keys they are found by; `relations` and
/// `conflicts` what each profile asserts, replaced whenever it is merged again.
const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS hutong_meta (name TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS facts (
  entity TEXT NOT NULL, entity_key TEXT NOT NULL,
  department TEXT NOT NULL, kind TEXT NOT NULL, source_id TEXT NOT NULL,
  revision BIGINT NOT NULL, ce_id TEXT NOT NULL, event_time TEXT NOT NULL, data TEXT NOT NULL,
  PRIMARY KEY (entity, entity_key, department, kind, source_id));
CREATE INDEX IF NOT EXISTS facts_by_record ON facts (department, kind, source_id);
CREATE TABLE IF NOT EXISTS records (
  department TEXT NOT NULL, kind TEXT NOT NULL, source_id TEXT NOT NULL,
  revision BIGINT NOT NULL, deleted BIGINT NOT NULL,
  PRIMARY KEY (department, kind, source_id));
CREATE TABLE IF NOT EXISTS profiles (
  entity TEXT NOT NULL, entity_key TEXT NOT NULL, doc TEXT NOT NULL,
  PRIMARY KEY (entity, entity_key));
CREATE TABLE IF NOT EXISTS relations (
  owner_entity TEXT NOT NULL, owner_key TEXT NOT NULL,
  subject_entity TEXT NOT NULL, subject_key TEXT NOT NULL,
  object_entity TEXT NOT NULL, object_key TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS relations_by_owner ON relations (owner_entity, owner_key);
CREATE INDEX IF NOT EXISTS relations_by_object ON relations (object_entity, object_key, subject_entity);
CREATE INDEX IF NOT EXISTS relations_by_subject ON relations (subject_entity, subject_key);
CREATE TABLE IF NOT EXISTS conflicts (
  entity TEXT NOT NULL, entity_key TEXT NOT NULL, field TEXT NOT NULL, what TEXT NOT NULL,
  department TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conflicts_by_entity ON conflicts (entity, entity_key);
CREATE INDEX IF NOT EXISTS conflicts_by_department ON conflicts (department);
";

/// The store's layout version, kept in `hutong_meta`; a store of another layout is refused.
const LAYOUT: &str = "1";

/// What applying a batch changed: the merged profiles to publish (`None`: deleted).
#[derive(Debug, Default)]
pub struct Applied {
    /// Facts that changed the store.
    pub applied: u64,
    /// Facts that did not (stale revision, duplicate, retired by a DELETE).
    pub skipped: u64,
    /// Every entity the batch touched with its profile now (`None`: no facts left).
    pub profiles: BTreeMap<(String, String), Option<Value>>,
}

/// A link found by [`Store::people_of`].
#[derive(Debug, Clone, PartialEq)]
pub struct PersonLink {
    /// The person.
    pub person_key: String,
    /// How (relation, room, via), as the sources say.
    pub link: Value,
    /// The person's profile, if any department describes the person.
    pub profile: Option<Value>,
}

/// The profile store.
pub struct Store {
    db: Box<dyn Sql + Send>,
    url: StoreUrl,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// Opens (and creates, when missing) the store at `url`.
    pub fn open(url: &StoreUrl) -> Result<Self, StoreError> {
        let mut db: Box<dyn Sql + Send> = match url {
            StoreUrl::Sqlite(path) => {
                if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
                    std::fs::create_dir_all(dir).map_err(|e| StoreError::Url(format!("{}: {e}", dir.display())))?;
                }
                let c = rusqlite::Connection::open(path)?;
                c.busy_timeout(std::time::Duration::from_secs(5))?;
                // WAL: queries read while the consumer writes; NORMAL is durable at each
                // checkpoint and never corrupts (a crash may lose the last transactions,
                // which the consumer re-reads: offsets are committed only after the store).
                c.pragma_update_and_check(None, "journal_mode", "WAL", |_| Ok(()))?;
                c.pragma_update(None, "synchronous", "NORMAL")?;
                // SQLite's default page cache is 2 MiB: past that every B-tree step was a
                // pread (the bench's apply rate halved from 2,000 to 20,000 persons). 64 MiB of
                // cache per connection and the file memory-mapped.
                c.pragma_update(None, "cache_size", -65_536)?;
                c.pragma_update_and_check(None, "mmap_size", 268_435_456, |_| Ok(()))?;
                Box::new(c)
            }
            StoreUrl::Postgres(conn) => {
                let client = postgres::Client::connect(conn, postgres::NoTls)?;
                Box::new(Pg { client, prepared: BTreeMap::new() })
            }
        };
        db.batch(SCHEMA)?;
        let layout = db.rows("SELECT value FROM hutong_meta WHERE name = 'layout'", &[])?;
        match layout.into_iter().next().and_then(|r| r.into_iter().next()).and_then(Cell::text) {
            None => {
                db.exec(
                    "INSERT INTO hutong_meta (name, value) VALUES ('layout', $1) ON CONFLICT (name) DO NOTHING",
                    &[P::T(LAYOUT)],
                )?;
            }
            Some(l) if l == LAYOUT => {}
            Some(l) => return Err(StoreError::Corrupt(format!("store layout {l}, this version reads {LAYOUT}"))),
        }
        Ok(Self { db, url: url.clone() })
    }

    /// Where it is (without a password).
    pub fn url(&self) -> &StoreUrl {
        &self.url
    }

    /// Whether the database answers.
    pub fn ping(&mut self) -> Result<(), StoreError> {
        self.db.rows("SELECT 1", &[]).map(drop)
    }

    /// Applies `facts` (in log order) in one transaction, then merges every entity they touched
    /// under `rules`. Per source record (department, kind, source id) only the highest
    /// revision counts: a lower one changes nothing; a higher one retires the record's facts of
    /// lower revisions (under whatever key); a tombstone at r deletes them up to r. Per fact key
    /// at an equal revision the later message wins; the same event id again changes nothing.
    /// Every touched entity is merged again even when nothing changed, so a replay re-publishes
    /// what a crash may have left unpublished.
    pub fn apply(&mut self, facts: &[Fact], rules: &Rules) -> Result<Applied, StoreError> {
        self.db.batch("BEGIN")?;
        match self.apply_in_transaction(facts, rules) {
            Ok(applied) => {
                self.db.batch("COMMIT")?;
                Ok(applied)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    fn apply_in_transaction(&mut self, facts: &[Fact], rules: &Rules) -> Result<Applied, StoreError> {
        let mut out = Applied::default();
        let mut touched: BTreeSet<(String, String)> = BTreeSet::new();
        for f in facts {
            touched.insert((f.entity.clone(), f.entity_key.clone()));
            if self.apply_one(f, &mut touched)? {
                out.applied += 1;
            } else {
                out.skipped += 1;
            }
        }
        for (entity, key) in touched {
            let profile = self.merge_again(&entity, &key, rules)?;
            out.profiles.insert((entity, key), profile.map(|p| p.doc));
        }
        Ok(out)
    }

    /// Applies one fact; whether it changed anything.
    fn apply_one(&mut self, f: &Fact, touched: &mut BTreeSet<(String, String)>) -> Result<bool, StoreError> {
        let s = &f.source;
        let record = [P::T(&s.department), P::T(&s.kind), P::T(&s.source_id)];
        let held = self
            .db
            .rows(
                "SELECT revision, deleted FROM records WHERE department = $1 AND kind = $2 AND source_id = $3",
                &record,
            )?
            .into_iter()
            .next()
            .map(|r| (r[0].int(), r[1].int() != 0));
        let deleted = f.data.is_none();
        match held {
            Some((rev, _)) if s.revision < rev => return Ok(false),
            // A DELETE at r retires the record up to r: only a higher revision brings it back.
            Some((rev, true)) if s.revision == rev => return Ok(false),
            Some((rev, _)) if s.revision == rev && !deleted => {}
            _ => {
                // A new record, a higher revision, or a DELETE at the revision held: the record's
                // facts of lower revisions (of any revision ≤ r for a DELETE) are retired.
                let upto = if deleted { s.revision + 1 } else { s.revision };
                let retired = self.db.rows(
                    "SELECT entity, entity_key FROM facts WHERE department = $1 AND kind = $2 AND source_id = $3 AND revision < $4",
                    &[record[0], record[1], record[2], P::I(upto)],
                )?;
                for r in retired {
                    let mut r = r.into_iter();
                    let (e, k) = (r.next().and_then(Cell::text), r.next().and_then(Cell::text));
                    touched.insert((e.unwrap_or_default(), k.unwrap_or_default()));
                }
                self.db.exec(
                    "DELETE FROM facts WHERE department = $1 AND kind = $2 AND source_id = $3 AND revision < $4",
                    &[record[0], record[1], record[2], P::I(upto)],
                )?;
                self.db.exec(
                    "INSERT INTO records (department, kind, source_id, revision, deleted) VALUES ($1, $2, $3, $4, $5) \
                     ON CONFLICT (department, kind, source_id) DO UPDATE SET revision = excluded.revision, deleted = excluded.deleted",
                    &[record[0], record[1], record[2], P::I(s.revision), P::I(i64::from(deleted))],
                )?;
                if deleted {
                    return Ok(true);
                }
            }
        }
        let data = f.data.as_ref().map(Value::to_string).unwrap_or_default();
        let changed = self.db.exec(
            "INSERT INTO facts (entity, entity_key, department, kind, source_id, revision, ce_id, event_time, data) \
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) \
             ON CONFLICT (entity, entity_key, department, kind, source_id) DO UPDATE SET \
             revision = excluded.revision, ce_id = excluded.ce_id, event_time = excluded.event_time, data = excluded.data \
             WHERE facts.ce_id <> excluded.ce_id",
            &[
                P::T(&f.entity),
                P::T(&f.entity_key),
                record[0],
                record[1],
                record[2],
                P::I(s.revision),
                P::T(&s.ce_id),
                P::T(&s.time),
                P::T(&data),
            ],
        )?;
        Ok(changed > 0 || held.is_none_or(|(rev, _)| rev < s.revision))
    }

    /// The current facts of one entity.
    pub fn facts_of(&mut self, entity: &str, key: &str) -> Result<Vec<Fact>, StoreError> {
        let rows = self.db.rows(
            "SELECT department, kind, source_id, revision, ce_id, event_time, data FROM facts \
             WHERE entity = $1 AND entity_key = $2 ORDER BY department, kind, source_id",
            &[P::T(entity), P::T(key)],
        )?;
        rows.into_iter()
            .map(|r| {
                let mut c = r.into_iter();
                let mut text = || c.next().and_then(Cell::text).unwrap_or_default();
                let (department, kind, source_id) = (text(), text(), text());
                let revision = text().parse().unwrap_or_default();
                let (ce_id, time, data) = (text(), text(), text());
                let data = serde_json::from_str(&data).map_err(|e| StoreError::Corrupt(e.to_string()))?;
                Ok(Fact {
                    entity: entity.to_owned(),
                    entity_key: key.to_owned(),
                    source: Source { department, kind, source_id, revision, time, ce_id },
                    data: Some(data),
                })
            })
            .collect()
    }

    /// Merges one entity again from its current facts and stores the result (or deletes the
    /// profile when no fact is left).
    fn merge_again(&mut self, entity: &str, key: &str, rules: &Rules) -> Result<Option<Profile>, StoreError> {
        let facts = self.facts_of(entity, key)?;
        let profile = rules.entity(entity).and_then(|r| merge(r, key, &facts));
        let id = [P::T(entity), P::T(key)];
        self.db.exec("DELETE FROM relations WHERE owner_entity = $1 AND owner_key = $2", &id)?;
        self.db.exec("DELETE FROM conflicts WHERE entity = $1 AND entity_key = $2", &id)?;
        let Some(p) = profile else {
            self.db.exec("DELETE FROM profiles WHERE entity = $1 AND entity_key = $2", &id)?;
            return Ok(None);
        };
        self.db.exec(
            "INSERT INTO profiles (entity, entity_key, doc) VALUES ($1, $2, $3) \
             ON CONFLICT (entity, entity_key) DO UPDATE SET doc = excluded.doc",
            &[id[0], id[1], P::T(&p.doc.to_string())],
        )?;
        for r in &p.relations {
            self.db.exec(
                "INSERT INTO relations (owner_entity, owner_key, subject_entity, subject_key, object_entity, object_key, detail) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7)",
                &[
                    id[0],
                    id[1],
                    P::T(r.subject_entity),
                    P::T(&r.subject_key),
                    P::T(r.object_entity),
                    P::T(&r.object_key),
                    P::T(&r.detail.to_string()),
                ],
            )?;
        }
        for c in &p.conflicts {
            self.db.exec(
                "INSERT INTO conflicts (entity, entity_key, field, what, department, doc) VALUES ($1, $2, $3, $4, $5, $6)",
                &[id[0], id[1], P::T(&c.field), P::T(&c.what), P::T(&c.department), P::T(&c.doc.to_string())],
            )?;
        }
        Ok(Some(p))
    }

    /// The profile of one entity.
    pub fn profile(&mut self, entity: &str, key: &str) -> Result<Option<Value>, StoreError> {
        let rows = self
            .db
            .rows("SELECT doc FROM profiles WHERE entity = $1 AND entity_key = $2", &[P::T(entity), P::T(key)])?;
        rows.into_iter().next().and_then(|r| r.into_iter().next()).and_then(Cell::text).map(parse).transpose()
    }

    /// The people of a household (its members, and whoever names it as theirs), a building
    /// (its residents) or a grid (who lives there directly, or through a building or household
    /// of the grid), with their profiles; at most `limit`, and how many there are.
    pub fn people_of(&mut self, entity: &str, key: &str, limit: usize) -> Result<(Vec<PersonLink>, u64), StoreError> {
        // No ORDER BY: with one, SQLite merged the two halves by walking every person's
        // relations in key order (81 ms for a grid of 2,000 among 20,000 persons, 4 ms without).
        let sql = "SELECT subject_key, detail FROM relations \
                WHERE object_entity = $1 AND object_key = $2 AND subject_entity = 'person' \
               UNION ALL \
               SELECT r.subject_key, r.detail FROM relations g JOIN relations r \
                 ON r.object_entity = g.subject_entity AND r.object_key = g.subject_key AND r.subject_entity = 'person' \
                WHERE g.object_entity = $1 AND g.object_key = $2 AND g.subject_entity IN ('building', 'household')";
        let mut rows = self.db.rows(sql, &[P::T(entity), P::T(key)])?;
        rows.sort_by(|a, b| a.first().and_then(Cell::as_text).cmp(&b.first().and_then(Cell::as_text)));
        // One person may be linked several ways (member of the household and naming it): one
        // entry per person, with every link.
        let mut people: Vec<PersonLink> = Vec::new();
        for r in rows {
            let mut c = r.into_iter();
            let person_key = c.next().and_then(Cell::text).unwrap_or_default();
            let link = parse(c.next().and_then(Cell::text).unwrap_or_default())?;
            match people.last_mut().filter(|p| p.person_key == person_key) {
                Some(p) => {
                    if let Value::Array(links) = &mut p.link
                        && !links.contains(&link)
                    {
                        links.push(link);
                    }
                }
                None => people.push(PersonLink { person_key, link: Value::Array(vec![link]), profile: None }),
            }
        }
        let total = people.len() as u64;
        people.truncate(limit);
        // Profiles only of the people returned: a grid has thousands.
        for p in &mut people {
            p.profile = self.profile("person", &p.person_key)?;
        }
        Ok((people, total))
    }

    /// Conflicts, newest merge first, optionally of one entity and/or losing department, and
    /// the count per department over all of them.
    pub fn conflicts(
        &mut self,
        entity: Option<&str>,
        department: Option<&str>,
        limit: usize,
    ) -> Result<(Vec<Value>, BTreeMap<String, u64>), StoreError> {
        let (e, d) = (entity.unwrap_or(""), department.unwrap_or(""));
        let rows = self.db.rows(
            "SELECT entity, entity_key, doc FROM conflicts WHERE ($1 = '' OR entity = $1) AND ($2 = '' OR department = $2) \
             ORDER BY entity, entity_key, field, department",
            &[P::T(e), P::T(d)],
        )?;
        let mut docs = Vec::new();
        for r in rows.into_iter().take(limit) {
            let mut c = r.into_iter();
            let (entity, key) = (c.next().and_then(Cell::text), c.next().and_then(Cell::text));
            let mut doc = parse(c.next().and_then(Cell::text).unwrap_or_default())?;
            doc["entity"] = entity.into();
            doc["key"] = key.into();
            docs.push(doc);
        }
        let counts = self
            .db
            .rows("SELECT department, COUNT(*) FROM conflicts GROUP BY department ORDER BY department", &[])?
            .into_iter()
            .map(|r| {
                let mut c = r.into_iter();
                (c.next().and_then(Cell::text).unwrap_or_default(), c.next().map_or(0, |c| c.int()) as u64)
            })
            .collect();
        Ok((docs, counts))
    }

    /// Every profile, by (entity, key): what a rebuild is compared with.
    pub fn all_profiles(&mut self) -> Result<BTreeMap<(String, String), Value>, StoreError> {
        let rows = self.db.rows("SELECT entity, entity_key, doc FROM profiles", &[])?;
        rows.into_iter()
            .map(|r| {
                let mut c = r.into_iter();
                let e = c.next().and_then(Cell::text).unwrap_or_default();
                let k = c.next().and_then(Cell::text).unwrap_or_default();
                Ok(((e, k), parse(c.next().and_then(Cell::text).unwrap_or_default())?))
            })
            .collect()
    }

    /// How many profiles of each entity there are.
    pub fn counts(&mut self) -> Result<BTreeMap<String, u64>, StoreError> {
        let rows = self.db.rows("SELECT entity, COUNT(*) FROM profiles GROUP BY entity ORDER BY entity", &[])?;
        Ok(rows
            .into_iter()
            .map(|r| {
                let mut c = r.into_iter();
                (c.next().and_then(Cell::text).unwrap_or_default(), c.next().map_or(0, |c| c.int()) as u64)
            })
            .collect())
    }
}

fn parse(text: String) -> Result<Value, StoreError> {
    serde_json::from_str(&text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn store_urls() {
        assert_eq!(
            "sqlite:.hutong/profiles.db".parse::<StoreUrl>().unwrap(),
            StoreUrl::Sqlite(".hutong/profiles.db".into())
        );
        assert_eq!("sqlite:///tmp/p.db".parse::<StoreUrl>().unwrap(), StoreUrl::Sqlite("/tmp/p.db".into()));
        assert!("mysql://x".parse::<StoreUrl>().is_err());
        assert!("sqlite:".parse::<StoreUrl>().is_err());
        let pg: StoreUrl = "postgres://hutong:secret@127.0.0.1:5432/hutong".parse().unwrap();
        assert_eq!(pg.to_string(), "postgres://hutong@127.0.0.1:5432/hutong", "no password shown");
    }
}
