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
    merge::{Fact, Source, merge},
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

/// `sslrootcert=PATH` of a PostgreSQL URL's query (libpq's name; rust-postgres takes no such
/// option): the URL without it, and the path (taken as written, not percent-decoded).
fn root_cert(url: &str) -> (String, Option<PathBuf>) {
    let Some((base, query)) = url.split_once('?') else {
        return (url.to_owned(), None);
    };
    let mut ca = None;
    let rest: Vec<&str> = query
        .split('&')
        .filter(|kv| match kv.strip_prefix("sslrootcert=") {
            Some(path) => {
                ca = Some(PathBuf::from(path));
                false
            }
            None => true,
        })
        .collect();
    (if rest.is_empty() { base.to_owned() } else { format!("{base}?{}", rest.join("&")) }, ca)
}

/// The TLS connector to PostgreSQL: the system's CAs, and `ca` when given.
fn tls_to(ca: Option<&std::path::Path>) -> Result<postgres_openssl::MakeTlsConnector, StoreError> {
    let mut builder = openssl::ssl::SslConnector::builder(openssl::ssl::SslMethod::tls_client())
        .map_err(|e| StoreError::Url(format!("TLS to PostgreSQL: {e}")))?;
    if let Some(ca) = ca {
        builder.set_ca_file(ca).map_err(|e| StoreError::Url(format!("sslrootcert {}: {e}", ca.display())))?;
    }
    Ok(postgres_openssl::MakeTlsConnector::new(builder.build()))
}

/// A parameter of a statement.
#[derive(Debug, Clone, Copy)]
pub(crate) enum P<'a> {
    T(&'a str),
    I(i64),
    /// NULL.
    N,
}

/// A column of a result row.
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Cell {
    T(String),
    I(i64),
    N,
}

impl Cell {
    pub(crate) fn text(self) -> Option<String> {
        match self {
            Self::T(s) => Some(s),
            Self::I(i) => Some(i.to_string()),
            Self::N => None,
        }
    }
    pub(crate) fn int(&self) -> i64 {
        match self {
            Self::I(i) => *i,
            Self::T(s) => s.parse().unwrap_or_default(),
            Self::N => 0,
        }
    }
}

/// How `{match a, b}` is written: `(a = $1 AND b = $2) OR …`, or `(a, b) IN (VALUES ($1, $2), …)`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum TupleMatch {
    OrChain,
    InValues,
}

/// How a statement reaches the database: the one place the two engines differ.
pub(crate) trait Sql {
    /// How this engine finds rows matching one of several tuples from an index: SQLite plans
    /// equalities joined by `OR` as one index search each (it scans the table for a row-value
    /// `IN (VALUES …)`); PostgreSQL plans `IN (VALUES …)` as a nested loop over the index (and
    /// spends milliseconds planning a long `OR`).
    fn tuple_match(&self) -> TupleMatch;
    /// How a transaction that will write begins: SQLite takes the write lock at once (`BEGIN
    /// IMMEDIATE`, waiting out the busy timeout), so a transaction that reads first is never
    /// refused `SQLITE_BUSY` when it comes to write while the other connection (consumer or
    /// queries) writes.
    fn begin(&self) -> &'static str {
        "BEGIN"
    }
    fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, StoreError>;
    fn rows(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Vec<Cell>>, StoreError>;
    fn batch(&mut self, sql: &str) -> Result<(), StoreError>;
}

impl Sql for rusqlite::Connection {
    fn tuple_match(&self) -> TupleMatch {
        TupleMatch::OrChain
    }
    fn begin(&self) -> &'static str {
        "BEGIN IMMEDIATE"
    }
    fn exec(&mut self, sql: &str, params: &[P<'_>]) -> Result<u64, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        Ok(stmt.execute(rusqlite::params_from_iter(params))? as u64)
    }
    fn rows(&mut self, sql: &str, params: &[P<'_>]) -> Result<Vec<Vec<Cell>>, StoreError> {
        let mut stmt = self.prepare_cached(sql)?;
        let n = stmt.column_count();
        let rows = stmt.query_map(rusqlite::params_from_iter(params), |row| {
            (0..n)
                .map(|i| {
                    Ok(match row.get_ref(i)? {
                        rusqlite::types::ValueRef::Integer(v) => Cell::I(v),
                        // std's validator skips ASCII runs word by word; the lossy one goes
                        // chunk by chunk (6 % of a grid query). Stored text is UTF-8 anyway.
                        rusqlite::types::ValueRef::Text(t) => Cell::T(match std::str::from_utf8(t) {
                            Ok(s) => s.to_owned(),
                            Err(_) => String::from_utf8_lossy(t).into_owned(),
                        }),
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

/// Bound as borrowed: no copy of a parameter's text.
impl rusqlite::ToSql for P<'_> {
    fn to_sql(&self) -> rusqlite::Result<rusqlite::types::ToSqlOutput<'_>> {
        use rusqlite::types::{ToSqlOutput, ValueRef};
        Ok(match *self {
            P::T(s) => ToSqlOutput::Borrowed(ValueRef::Text(s.as_bytes())),
            P::I(i) => ToSqlOutput::Borrowed(ValueRef::Integer(i)),
            P::N => ToSqlOutput::Borrowed(ValueRef::Null),
        })
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
                P::N => Box::new(None::<&str>),
            }
        })
        .collect()
}

impl Sql for Pg {
    fn tuple_match(&self) -> TupleMatch {
        TupleMatch::InValues
    }
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
/// `profiles` the merged documents with the keys they are found by, and `digest` (of the
/// document and of the relations and conflicts it asserts: a profile is rewritten only when its
/// document changed, its relations and conflicts only when they changed, and neither is read
/// back to find out);
/// `relations` and `conflicts` what each profile asserts.
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
  entity TEXT NOT NULL, entity_key TEXT NOT NULL, doc TEXT NOT NULL, digest TEXT NOT NULL DEFAULT '',
  PRIMARY KEY (entity, entity_key));
CREATE TABLE IF NOT EXISTS relations (
  owner_entity TEXT NOT NULL, owner_key TEXT NOT NULL,
  subject_entity TEXT NOT NULL, subject_key TEXT NOT NULL,
  object_entity TEXT NOT NULL, object_key TEXT NOT NULL, detail TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS relations_by_owner ON relations (owner_entity, owner_key);
CREATE INDEX IF NOT EXISTS relations_by_object ON relations (object_entity, object_key, subject_entity, subject_key, detail);
CREATE INDEX IF NOT EXISTS relations_by_subject ON relations (subject_entity, subject_key);
CREATE TABLE IF NOT EXISTS conflicts (
  entity TEXT NOT NULL, entity_key TEXT NOT NULL, field TEXT NOT NULL, what TEXT NOT NULL,
  department TEXT NOT NULL, doc TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS conflicts_by_entity ON conflicts (entity, entity_key);
CREATE INDEX IF NOT EXISTS conflicts_by_department ON conflicts (department);
";

/// The store's layout version, kept in `hutong_meta`; a store of an unknown layout is refused.
/// Older layouts are brought to this one on open ([`MIGRATIONS`]).
const LAYOUT: &str = "3";

/// From each older layout to the next, in order: a store of layout `from` runs its step and
/// every later one, in one transaction.
const MIGRATIONS: [(&str, &str); 2] = [
    // An empty digest matches no profile: each is rewritten when next touched.
    ("1", "ALTER TABLE profiles ADD COLUMN digest TEXT NOT NULL DEFAULT ''"),
    // The people of an entity, and how they are linked, are found from the index alone.
    (
        "2",
        "DROP INDEX relations_by_object; \
         CREATE INDEX relations_by_object ON relations (object_entity, object_key, subject_entity, subject_key, detail)",
    ),
];

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

/// A source record: department, kind, source id.
type Record = (String, String, String);
/// An entity: its name and key.
pub(crate) type EntityId = (String, String);

/// The sizes multi-row statements are cut into: a few shapes of each statement to prepare,
/// whatever the batch's length.
const CHUNKS: [usize; 4] = [64, 16, 4, 1];

/// A fact of a source record as the batch goes: as stored, or to be written.
enum Held<'f> {
    Stored { revision: i64, ce_id: String },
    New(&'f Fact),
}

impl Held<'_> {
    fn revision(&self) -> i64 {
        match self {
            Self::Stored { revision, .. } => *revision,
            Self::New(f) => f.source.revision,
        }
    }
    fn ce_id(&self) -> &str {
        match self {
            Self::Stored { ce_id, .. } => ce_id,
            Self::New(f) => &f.source.ce_id,
        }
    }
}

/// What the store holds of a batch's source records, changed in memory fact by fact in log
/// order, then written at once.
#[derive(Default)]
struct Ledger<'f> {
    /// Per source record, its revision and whether it was deleted (`None`: never seen).
    records: BTreeMap<Record, Option<(i64, bool)>>,
    /// The records whose revision changed.
    changed: BTreeSet<Record>,
    /// Per source record, its facts by entity.
    facts: BTreeMap<Record, BTreeMap<EntityId, Held<'f>>>,
    /// Stored facts retired by a higher revision or a DELETE.
    gone: BTreeSet<(Record, EntityId)>,
}

impl<'f> Ledger<'f> {
    /// Applies one fact; whether it changed anything. The entities whose facts it retired are
    /// added to `touched`.
    fn apply(&mut self, f: &'f Fact, touched: &mut BTreeSet<EntityId>) -> bool {
        let s = &f.source;
        let record = (s.department.clone(), s.kind.clone(), s.source_id.clone());
        let held = self.records.get(&record).copied().flatten();
        let deleted = f.data.is_none();
        match held {
            Some((rev, _)) if s.revision < rev => return false,
            // A DELETE at r retires the record up to r: only a higher revision brings it back.
            Some((rev, true)) if s.revision == rev => return false,
            Some((rev, _)) if s.revision == rev && !deleted => {}
            _ => {
                // A new record, a higher revision, or a DELETE at the revision held: the record's
                // facts of lower revisions (of any revision ≤ r for a DELETE) are retired.
                let upto = if deleted { s.revision + 1 } else { s.revision };
                if let Some(of_record) = self.facts.get_mut(&record) {
                    let gone = &mut self.gone;
                    of_record.retain(|id, h| {
                        if h.revision() >= upto {
                            return true;
                        }
                        touched.insert(id.clone());
                        if matches!(h, Held::Stored { .. }) {
                            gone.insert((record.clone(), id.clone()));
                        }
                        false
                    });
                }
                self.records.insert(record.clone(), Some((s.revision, deleted)));
                self.changed.insert(record.clone());
                if deleted {
                    return true;
                }
            }
        }
        let of_record = self.facts.entry(record).or_default();
        let id = (f.entity.clone(), f.entity_key.clone());
        let new = of_record.get(&id).is_none_or(|h| h.ce_id() != s.ce_id);
        if new {
            of_record.insert(id, Held::New(f));
        }
        new || held.is_none_or(|(rev, _)| rev < s.revision)
    }

    /// The current facts of each entity once the batch is applied: the `stored` ones (as held
    /// before the batch) less those it retired, with those it adds or replaces. In the order of
    /// the facts' key (department, kind, source id), as the store would list them.
    fn current<'a>(&'a self, stored: &'a [Fact]) -> BTreeMap<EntityId, Vec<&'a Fact>> {
        let mut by_entity: BTreeMap<EntityId, BTreeMap<Record, &Fact>> = BTreeMap::new();
        for f in stored {
            let s = &f.source;
            let record = (s.department.clone(), s.kind.clone(), s.source_id.clone());
            let id = (f.entity.clone(), f.entity_key.clone());
            if !self.gone.contains(&(record.clone(), id.clone())) {
                by_entity.entry(id).or_default().insert(record, f);
            }
        }
        for (record, of_record) in &self.facts {
            for (id, held) in of_record {
                if let Held::New(f) = held {
                    by_entity.entry(id.clone()).or_default().insert(record.clone(), *f);
                }
            }
        }
        by_entity.into_iter().map(|(id, facts)| (id, facts.into_values().collect())).collect()
    }
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
    pub(crate) db: Box<dyn Sql + Send>,
    /// [`Store::chunked`]'s statements as expanded, by template and chunk size (formatting a
    /// 64-tuple match anew for every chunk cost 5 % of the apply); found by the borrowed
    /// template, so a hit allocates nothing.
    expanded: std::collections::HashMap<String, BTreeMap<usize, String>>,
    url: StoreUrl,
    /// The governance consumers, when they run ([`Store::with_governance`]).
    pub(crate) governance: Option<std::sync::Arc<crate::governance::GovernanceRuntime>>,
    /// Whether new conflicts open objections ([`Store::with_objections_from_conflicts`]).
    pub(crate) objections_from_conflicts: bool,
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Store({})", self.url)
    }
}

impl Store {
    /// The governance consumers run in every batch applied from now on: events kept with their
    /// threads, deadlines and alerts, needs matched to resources.
    pub fn with_governance(mut self, governance: std::sync::Arc<crate::governance::GovernanceRuntime>) -> Self {
        self.governance = Some(governance);
        self
    }

    /// Every new disagreement between departments found from now on opens an objection on the
    /// losing fact (数据异议, filed by `hutong`), unless one on that fact and field exists.
    pub fn with_objections_from_conflicts(mut self, on: bool) -> Self {
        self.objections_from_conflicts = on;
        self
    }

    /// Runs `f` in one transaction.
    pub(crate) fn transaction<T>(
        &mut self,
        f: impl FnOnce(&mut Self) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let begin = self.db.begin();
        self.db.batch(begin)?;
        match f(self) {
            Ok(v) => {
                self.db.batch("COMMIT")?;
                Ok(v)
            }
            Err(e) => {
                let _ = self.db.batch("ROLLBACK");
                Err(e)
            }
        }
    }

    /// Now (RFC 3339, Beijing time): the governance clock when the governance consumers run
    /// (fixed in replays and tests), else the system's.
    pub fn now(&self) -> String {
        let now = match &self.governance {
            Some(g) => g.clock.now(),
            None => chrono::Utc::now().with_timezone(&hutong_governance::beijing()),
        };
        now.to_rfc3339_opts(chrono::SecondsFormat::Secs, false)
    }

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
                // A checkpoint every 65,536 pages (256 MiB of WAL): each page a batch touches
                // is written to the database file once per checkpoint, so fewer checkpoints
                // write less (16,384 pages: 15.5k facts/s at 100,000 persons; 65,536: 16.4–19.4k).
                // A crash replays at most that much WAL at the next open.
                c.pragma_update(None, "wal_autocheckpoint", 65_536)?;
                c.pragma_update(None, "temp_store", "MEMORY")?;
                // SQLite's default page cache is 2 MiB: past that every B-tree step was a
                // pread (the bench's apply rate halved from 2,000 to 20,000 persons). 64 MiB of
                // cache per connection and the file memory-mapped.
                c.pragma_update(None, "cache_size", -65_536)?;
                c.pragma_update_and_check(None, "mmap_size", 268_435_456, |_| Ok(()))?;
                // Each multi-row statement comes in a few lengths (CHUNKS): every shape stays prepared.
                c.set_prepared_statement_cache_capacity(128);
                Box::new(c)
            }
            StoreUrl::Postgres(conn) => {
                // TLS when the server offers it (rust-postgres's default `sslmode=prefer`), or
                // always (`require`); the server's certificate is checked against the system's CAs
                // and `sslrootcert`, and its name against the host (stricter than libpq's `require`).
                let (conn, ca) = root_cert(conn);
                let client = postgres::Client::connect(&conn, tls_to(ca.as_deref())?)?;
                Box::new(Pg { client, prepared: BTreeMap::new() })
            }
        };
        db.batch(SCHEMA)?;
        db.batch(crate::governance::SCHEMA)?;
        db.batch(crate::access::SCHEMA)?;
        // Read again after each migration: another instance may have moved the store meanwhile,
        // an older version to an older layout during a rolling upgrade among them.
        for attempt in 0.. {
            let layout = db.rows("SELECT value FROM hutong_meta WHERE name = 'layout'", &[])?;
            match layout.into_iter().next().and_then(|r| r.into_iter().next()).and_then(Cell::text) {
                None => {
                    db.exec(
                        "INSERT INTO hutong_meta (name, value) VALUES ('layout', $1) ON CONFLICT (name) DO NOTHING",
                        &[P::T(LAYOUT)],
                    )?;
                }
                Some(l) if l == LAYOUT => break,
                Some(l) if attempt <= MIGRATIONS.len() && MIGRATIONS.iter().any(|(from, _)| *from == l) => {
                    // One instance migrates: the others wait on the row and then find it done.
                    db.batch("BEGIN")?;
                    let migrating = db.exec(
                        "UPDATE hutong_meta SET value = $1 WHERE name = 'layout' AND value = $2",
                        &[P::T(LAYOUT), P::T(&l)],
                    )?;
                    if migrating == 1 {
                        for (_, step) in MIGRATIONS.iter().skip_while(|(from, _)| *from != l) {
                            db.batch(step)?;
                        }
                    }
                    db.batch("COMMIT")?;
                }
                Some(l) => return Err(StoreError::Corrupt(format!("store layout {l}, this version reads {LAYOUT}"))),
            }
        }
        Ok(Self {
            db,
            url: url.clone(),
            governance: None,
            objections_from_conflicts: false,
            expanded: std::collections::HashMap::new(),
        })
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
    ///
    /// What the store holds of the batch's records is read once, the batch is decided in
    /// memory, and the changes are written in multi-row statements: a handful of round trips
    /// per batch, not several per fact (what PostgreSQL pays for most).
    pub fn apply(&mut self, facts: &[Fact], rules: &Rules) -> Result<Applied, StoreError> {
        self.transaction(|s| s.apply_in_transaction(facts, rules))
    }

    fn apply_in_transaction(&mut self, facts: &[Fact], rules: &Rules) -> Result<Applied, StoreError> {
        let mut ledger = self.ledger_of(facts)?;
        let mut out = Applied::default();
        let mut touched: BTreeSet<EntityId> = BTreeSet::new();
        for f in facts {
            touched.insert((f.entity.clone(), f.entity_key.clone()));
            if ledger.apply(f, &mut touched) {
                out.applied += 1;
            } else {
                out.skipped += 1;
            }
        }
        // The touched entities' facts as stored before this batch, then the batch's changes laid
        // over them in memory: what is merged, without reading back (and parsing) what the
        // batch itself writes.
        let stored = self.facts_of(&touched)?;
        let current = ledger.current(&stored);
        self.write(&ledger)?;
        let raised: BTreeMap<Record, (i64, bool)> = ledger
            .changed
            .iter()
            .filter_map(|r| Some((r.clone(), ledger.records.get(r).copied().flatten()?)))
            .collect();
        self.close_corrected(&raised, &self.now())?;
        out.profiles = self.merge_again(&touched, &current, rules)?;
        if self.objections_from_conflicts {
            self.object_to_conflicts(&out.profiles)?;
        }
        if let Some(g) = self.governance.clone() {
            self.govern(&g, &out.profiles)?;
        }
        Ok(out)
    }

    /// Runs `sql` over `rows` (each of `width` parameters) in chunks of [`CHUNKS`]; the result
    /// rows of them all. In `sql`, `{rows}` stands for the chunk's tuples (`VALUES {rows}`), and
    /// `{match a, b}` for "(a, b) is one of the chunk's tuples" written as equalities joined by
    /// `OR`, which both engines answer from an index (SQLite scans the table for a row-value
    /// `IN (VALUES …)`); `{in c}` (one parameter per row) for "c is one of the chunk's values".
    pub(crate) fn chunked(
        &mut self,
        sql: &str,
        width: usize,
        rows: &[Vec<P<'_>>],
    ) -> Result<Vec<Vec<Cell>>, StoreError> {
        let mut out = Vec::new();
        let mut rest = rows;
        while !rest.is_empty() {
            let n = CHUNKS.into_iter().find(|&c| c <= rest.len()).unwrap_or(1);
            let (now, later) = rest.split_at(n);
            let params: Vec<P<'_>> = now.iter().flatten().copied().collect();
            if !self.expanded.get(sql).is_some_and(|m| m.contains_key(&n)) {
                let statement = expand(sql, n, width, self.db.tuple_match());
                self.expanded.entry(sql.to_owned()).or_default().insert(n, statement);
            }
            out.extend(self.db.rows(&self.expanded[sql][&n], &params)?);
            rest = later;
        }
        Ok(out)
    }

    /// What the store holds of the source records of `facts`: their revisions and facts.
    fn ledger_of<'f>(&mut self, facts: &'f [Fact]) -> Result<Ledger<'f>, StoreError> {
        let mut ledger = Ledger::default();
        for f in facts {
            let s = &f.source;
            ledger.records.entry((s.department.clone(), s.kind.clone(), s.source_id.clone())).or_insert(None);
        }
        let keys: Vec<Vec<P<'_>>> = ledger.records.keys().map(|(d, k, s)| vec![P::T(d), P::T(k), P::T(s)]).collect();
        let held = self.chunked(
            "SELECT department, kind, source_id, revision, deleted FROM records \
             WHERE {match department, kind, source_id}",
            3,
            &keys,
        )?;
        let stored = self.chunked(
            "SELECT department, kind, source_id, entity, entity_key, revision, ce_id FROM facts \
             WHERE {match department, kind, source_id}",
            3,
            &keys,
        )?;
        for r in held {
            let mut text = text_of(r);
            let record = (text(), text(), text());
            let (revision, deleted) = (text().parse().unwrap_or_default(), text() != "0");
            ledger.records.insert(record, Some((revision, deleted)));
        }
        for r in stored {
            let mut text = text_of(r);
            let record = (text(), text(), text());
            let id = (text(), text());
            let (revision, ce_id) = (text().parse().unwrap_or_default(), text());
            ledger.facts.entry(record).or_default().insert(id, Held::Stored { revision, ce_id });
        }
        Ok(ledger)
    }

    /// Writes what the batch changed: retired facts deleted, records' revisions, new facts.
    fn write(&mut self, ledger: &Ledger<'_>) -> Result<(), StoreError> {
        let gone: Vec<Vec<P<'_>>> = ledger
            .gone
            .iter()
            .map(|((d, k, s), (e, key))| vec![P::T(e), P::T(key), P::T(d), P::T(k), P::T(s)])
            .collect();
        self.chunked("DELETE FROM facts WHERE {match entity, entity_key, department, kind, source_id}", 5, &gone)?;
        let records: Vec<Vec<P<'_>>> = ledger
            .changed
            .iter()
            .filter_map(|r| {
                let (revision, deleted) = ledger.records.get(r).copied().flatten()?;
                Some(vec![P::T(&r.0), P::T(&r.1), P::T(&r.2), P::I(revision), P::I(i64::from(deleted))])
            })
            .collect();
        self.chunked(
            "INSERT INTO records (department, kind, source_id, revision, deleted) VALUES {rows} \
             ON CONFLICT (department, kind, source_id) DO UPDATE SET revision = excluded.revision, deleted = excluded.deleted",
            5,
            &records,
        )?;
        let new: Vec<&Fact> = ledger
            .facts
            .values()
            .flat_map(BTreeMap::values)
            .filter_map(|h| match h {
                Held::New(f) => Some(*f),
                Held::Stored { .. } => None,
            })
            .collect();
        let data: Vec<String> = new.iter().map(|f| f.data.as_ref().map(Value::to_string).unwrap_or_default()).collect();
        let rows: Vec<Vec<P<'_>>> = new
            .iter()
            .zip(&data)
            .map(|(f, data)| {
                let s = &f.source;
                vec![
                    P::T(&f.entity),
                    P::T(&f.entity_key),
                    P::T(&s.department),
                    P::T(&s.kind),
                    P::T(&s.source_id),
                    P::I(s.revision),
                    P::T(&s.ce_id),
                    P::T(&s.time),
                    P::T(data),
                ]
            })
            .collect();
        self.chunked(
            "INSERT INTO facts (entity, entity_key, department, kind, source_id, revision, ce_id, event_time, data) \
             VALUES {rows} ON CONFLICT (entity, entity_key, department, kind, source_id) DO UPDATE SET \
             revision = excluded.revision, ce_id = excluded.ce_id, event_time = excluded.event_time, data = excluded.data",
            9,
            &rows,
        )?;
        Ok(())
    }

    /// The stored facts of `entities`.
    fn facts_of(&mut self, entities: &BTreeSet<EntityId>) -> Result<Vec<Fact>, StoreError> {
        let ids = entity_params(&entities.iter().collect::<Vec<_>>());
        let rows = self.chunked(
            "SELECT entity, entity_key, department, kind, source_id, revision, ce_id, event_time, data FROM facts \
             WHERE {match entity, entity_key}",
            2,
            &ids,
        )?;
        rows.into_iter()
            .map(|r| {
                let mut text = text_of(r);
                let (entity, entity_key) = (text(), text());
                let (department, kind, source_id) = (text(), text(), text());
                let revision = text().parse().unwrap_or_default();
                let (ce_id, time) = (text(), text());
                let data = parse(&text())?;
                let source = Source { department, kind, source_id, revision, time, ce_id };
                Ok(Fact { entity, entity_key, source, data: Some(data) })
            })
            .collect()
    }

    /// Merges the `touched` entities again from their current `facts` and stores the results:
    /// a profile written only when its document changed, its relations and conflicts only when
    /// they changed, and deleted (with them) when no fact is left.
    fn merge_again(
        &mut self,
        touched: &BTreeSet<EntityId>,
        facts: &BTreeMap<EntityId, Vec<&Fact>>,
        rules: &Rules,
    ) -> Result<BTreeMap<EntityId, Option<Value>>, StoreError> {
        let ids = entity_params(&touched.iter().collect::<Vec<_>>());
        let mut old: BTreeMap<EntityId, String> = BTreeMap::new();
        let rows =
            self.chunked("SELECT entity, entity_key, digest FROM profiles WHERE {match entity, entity_key}", 2, &ids)?;
        for r in rows {
            let mut text = text_of(r);
            old.insert((text(), text()), text());
        }
        let mut out = BTreeMap::new();
        let (mut gone, mut relinked, mut docs, mut links) = (Vec::new(), Vec::new(), Vec::new(), Vec::new());
        let mut profiles = Vec::new();
        for id in touched {
            let current: &[&Fact] = facts.get(id).map(Vec::as_slice).unwrap_or_default();
            let profile = rules.entity(&id.0).and_then(|r| merge(r, &id.1, current));
            let before = old.get(id);
            match profile {
                None => {
                    if before.is_some() {
                        gone.push(id);
                        relinked.push(id);
                    }
                    out.insert(id.clone(), None);
                }
                Some(p) => {
                    let doc = json_text(&p.doc)?;
                    let link = digest(json_text(&(&p.relations, &p.conflicts))?.as_bytes());
                    let digest = format!("{}:{link}", self::digest(doc.as_bytes()));
                    if before.is_none_or(|d| *d != digest) {
                        docs.push(id);
                        if before.is_none_or(|d| !d.ends_with(&format!(":{link}"))) {
                            relinked.push(id);
                            links.push(id);
                        }
                    }
                    profiles.push((id, doc, digest, p));
                }
            }
        }
        let drop = entity_params(&gone);
        self.chunked("DELETE FROM profiles WHERE {match entity, entity_key}", 2, &drop)?;
        let unlink = entity_params(&relinked);
        self.chunked("DELETE FROM relations WHERE {match owner_entity, owner_key}", 2, &unlink)?;
        self.chunked("DELETE FROM conflicts WHERE {match entity, entity_key}", 2, &unlink)?;
        let (docs, links): (BTreeSet<&EntityId>, BTreeSet<&EntityId>) =
            (docs.into_iter().collect(), links.into_iter().collect());
        let mut doc_rows = Vec::new();
        let (mut relation_rows, mut conflict_rows) = (Vec::new(), Vec::new());
        let details: Vec<Vec<String>> = profiles
            .iter()
            .map(|(_, _, _, p)| p.relations.iter().map(|r| json_text(&r.detail)).collect())
            .collect::<Result<_, _>>()?;
        let conflict_docs: Vec<Vec<String>> = profiles
            .iter()
            .map(|(_, _, _, p)| p.conflicts.iter().map(|c| json_text(&c.doc)).collect())
            .collect::<Result<_, _>>()?;
        for (((id, doc, link, p), details), conflict_docs) in profiles.iter().zip(&details).zip(&conflict_docs) {
            let (e, k) = (P::T(&id.0), P::T(&id.1));
            if docs.contains(id) {
                doc_rows.push(vec![e, k, P::T(doc), P::T(link)]);
            }
            if !links.contains(id) {
                continue;
            }
            for (r, detail) in p.relations.iter().zip(details) {
                relation_rows.push(vec![
                    e,
                    k,
                    P::T(r.subject_entity),
                    P::T(&r.subject_key),
                    P::T(r.object_entity),
                    P::T(&r.object_key),
                    P::T(detail),
                ]);
            }
            for (c, doc) in p.conflicts.iter().zip(conflict_docs) {
                conflict_rows.push(vec![e, k, P::T(&c.field), P::T(&c.what), P::T(&c.department), P::T(doc)]);
            }
        }
        self.chunked(
            "INSERT INTO profiles (entity, entity_key, doc, digest) VALUES {rows} \
             ON CONFLICT (entity, entity_key) DO UPDATE SET doc = excluded.doc, digest = excluded.digest",
            4,
            &doc_rows,
        )?;
        self.chunked(
            "INSERT INTO relations (owner_entity, owner_key, subject_entity, subject_key, object_entity, object_key, detail) \
             VALUES {rows}",
            7,
            &relation_rows,
        )?;
        self.chunked(
            "INSERT INTO conflicts (entity, entity_key, field, what, department, doc) VALUES {rows}",
            6,
            &conflict_rows,
        )?;
        for (id, _, _, p) in profiles {
            out.insert(id.clone(), Some(p.doc));
        }
        Ok(out)
    }

    /// The profile of one entity.
    pub fn profile(&mut self, entity: &str, key: &str) -> Result<Option<Value>, StoreError> {
        let rows = self
            .db
            .rows("SELECT doc FROM profiles WHERE entity = $1 AND entity_key = $2", &[P::T(entity), P::T(key)])?;
        rows.into_iter().next().and_then(|r| r.into_iter().next()).and_then(Cell::text).map(|t| parse(&t)).transpose()
    }

    /// The people of a household (its members, and whoever names it as theirs), a building
    /// (its residents) or a grid (who lives there directly, or through a building or household
    /// of the grid), with their profiles; at most `limit`, and how many there are.
    pub fn people_of(&mut self, entity: &str, key: &str, limit: usize) -> Result<(Vec<PersonLink>, u64), StoreError> {
        // Who and how, from the index alone (relations_by_object covers it, `detail` included):
        // the people linked to the entity directly, and those linked to a building or household
        // that is in it, each with the link's detail. No ORDER BY: with one, SQLite merged the
        // two halves by walking every person's relations in key order (81 ms for a grid of 2,000
        // among 20,000 persons, 4 ms without).
        let sql = "SELECT subject_key, detail FROM relations \
                WHERE object_entity = $1 AND object_key = $2 AND subject_entity = 'person' \
               UNION ALL \
               SELECT r.subject_key, r.detail FROM relations g JOIN relations r \
                 ON r.object_entity = g.subject_entity AND r.object_key = g.subject_key AND r.subject_entity = 'person' \
                WHERE g.object_entity = $1 AND g.object_key = $2 AND g.subject_entity IN ('building', 'household')";
        let mut found: Vec<(String, String)> = self
            .db
            .rows(sql, &[P::T(entity), P::T(key)])?
            .into_iter()
            .map(|r| {
                let mut text = text_of(r);
                (text(), text())
            })
            .collect();
        // By person, and every link once per person (a member of the household who also names
        // it, through two buildings of the grid …).
        found.sort_unstable();
        found.dedup();
        let mut keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        keys.dedup();
        let total = keys.len() as u64;
        keys.truncate(limit);
        let mut people: Vec<PersonLink> = Vec::with_capacity(keys.len());
        let mut links = found.iter().peekable();
        for k in keys {
            let mut link = Vec::new();
            while let Some((_, detail)) = links.next_if(|(p, _)| p == k) {
                link.push(parse(detail)?);
            }
            people.push(PersonLink { person_key: k.to_owned(), link: Value::Array(link), profile: None });
        }
        // Profiles only of the people returned (a grid has thousands), read at once.
        let ids: Vec<Vec<P<'_>>> = people.iter().map(|p| vec![P::T(&p.person_key)]).collect();
        let rows =
            self.chunked("SELECT entity_key, doc FROM profiles WHERE entity = 'person' AND {in entity_key}", 1, &ids)?;
        let mut docs: BTreeMap<String, Value> = BTreeMap::new();
        for r in rows {
            let mut c = r.into_iter();
            let key = c.next().and_then(Cell::text).unwrap_or_default();
            docs.insert(key, parse(&c.next().and_then(Cell::text).unwrap_or_default())?);
        }
        for p in &mut people {
            p.profile = docs.remove(&p.person_key);
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
            let mut doc = parse(&c.next().and_then(Cell::text).unwrap_or_default())?;
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
                Ok(((e, k), parse(&c.next().and_then(Cell::text).unwrap_or_default())?))
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

/// `sql` for `n` tuples of `width` parameters: `{rows}` as `($1, $2), ($3, $4) …`, `{match a, b}`
/// as the engine finds such tuples fastest ([`TupleMatch`]).
fn expand(sql: &str, n: usize, width: usize, how: TupleMatch) -> String {
    let param = |r: usize, c: usize| format!("${}", r * width + c + 1);
    let tuples = || -> Vec<String> {
        (0..n).map(|r| format!("({})", (0..width).map(|c| param(r, c)).collect::<Vec<_>>().join(", "))).collect()
    };
    if let Some(start) = sql.find("{in ") {
        let end = start + sql[start..].find('}').expect("a closed {in …}");
        debug_assert_eq!(width, 1);
        let list: Vec<String> = (0..n).map(|r| param(r, 0)).collect();
        return format!("{}{} IN ({}){}", &sql[..start], sql[start + 4..end].trim(), list.join(", "), &sql[end + 1..]);
    }
    let Some(start) = sql.find("{match ") else { return sql.replace("{rows}", &tuples().join(", ")) };
    let end = start + sql[start..].find('}').expect("a closed {match …}");
    let cols: Vec<&str> = sql[start + 7..end].split(',').map(str::trim).collect();
    debug_assert_eq!(cols.len(), width);
    let matched = match how {
        TupleMatch::OrChain => {
            let ors: Vec<String> = (0..n)
                .map(|r| {
                    let eqs: Vec<String> =
                        cols.iter().enumerate().map(|(c, col)| format!("{col} = {}", param(r, c))).collect();
                    format!("({})", eqs.join(" AND "))
                })
                .collect();
            format!("({})", ors.join(" OR "))
        }
        TupleMatch::InValues => format!("({}) IN (VALUES {})", cols.join(", "), tuples().join(", ")),
    };
    format!("{}{matched}{}", &sql[..start], &sql[end + 1..])
}

/// The columns of a result row as text, one after the other (NULL as empty, integers in
/// decimal).
pub(crate) fn text_of(row: Vec<Cell>) -> impl FnMut() -> String {
    let mut c = row.into_iter();
    move || c.next().and_then(Cell::text).unwrap_or_default()
}

/// Compact JSON text, written straight into a string (`Value::to_string` goes through
/// `fmt::Formatter`, a call per piece).
fn json_text<T: serde::Serialize + ?Sized>(value: &T) -> Result<String, StoreError> {
    serde_json::to_string(value).map_err(|e| StoreError::Corrupt(e.to_string()))
}

/// A stored digest: the first 128 bits of SHA-256, in hex.
pub(crate) fn digest(bytes: &[u8]) -> String {
    use sha2::Digest as _;
    hex::encode(&sha2::Sha256::digest(bytes)[..16])
}

/// The parameters naming each of `ids`.
fn entity_params<'a>(ids: &[&'a EntityId]) -> Vec<Vec<P<'a>>> {
    ids.iter().map(|(e, k)| vec![P::T(e), P::T(k)]).collect()
}

pub(crate) fn parse(text: &str) -> Result<Value, StoreError> {
    serde_json::from_str(text).map_err(|e| StoreError::Corrupt(e.to_string()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sslrootcert_is_taken_out_of_the_url_for_the_connector() {
        let (url, ca) = root_cert("postgres://h@db:5432/hutong?sslmode=require&sslrootcert=/etc/pg/ca.pem");
        assert_eq!(url, "postgres://h@db:5432/hutong?sslmode=require");
        assert_eq!(ca, Some(PathBuf::from("/etc/pg/ca.pem")));
        let (url, ca) = root_cert("postgres://h@db/hutong?sslrootcert=ca.pem");
        assert_eq!((url.as_str(), ca.as_deref()), ("postgres://h@db/hutong", Some(std::path::Path::new("ca.pem"))));
        assert_eq!(root_cert("postgres://h@db/hutong").1, None);
        let missing = tls_to(Some(std::path::Path::new("/nonexistent/ca.pem"))).err().map(|e| e.to_string());
        assert!(missing.is_some_and(|e| e.contains("/nonexistent/ca.pem")));
    }

    #[test]
    fn chunks_expand_to_tuples_and_index_friendly_matches() {
        let or = TupleMatch::OrChain;
        assert_eq!(
            expand("INSERT INTO t (a, b) VALUES {rows}", 2, 2, or),
            "INSERT INTO t (a, b) VALUES ($1, $2), ($3, $4)"
        );
        assert_eq!(
            expand("SELECT x FROM t WHERE {match a, b} ORDER BY x", 2, 2, or),
            "SELECT x FROM t WHERE ((a = $1 AND b = $2) OR (a = $3 AND b = $4)) ORDER BY x"
        );
        assert_eq!(
            expand("SELECT x FROM t WHERE {match a, b}", 2, 2, TupleMatch::InValues),
            "SELECT x FROM t WHERE (a, b) IN (VALUES ($1, $2), ($3, $4))"
        );
        // SQLite answers the match from the primary key, not by scanning the table.
        let c = rusqlite::Connection::open_in_memory().expect("sqlite");
        c.execute_batch(SCHEMA).expect("schema");
        let sql = expand("SELECT revision FROM records WHERE {match department, kind, source_id}", 3, 3, or)
            .replace('$', "?");
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {sql}"))
            .and_then(|mut s| s.query_map([""; 9], |r| r.get::<_, String>(3))?.collect())
            .expect("plan");
        assert!(plan.iter().all(|p| !p.starts_with("SCAN")), "{plan:?}");
        // One column: an IN list, searched in the index.
        let sql = expand("SELECT doc FROM profiles WHERE entity = 'person' AND {in entity_key}", 3, 1, or);
        assert_eq!(sql, "SELECT doc FROM profiles WHERE entity = 'person' AND entity_key IN ($1, $2, $3)");
        let plan: Vec<String> = c
            .prepare(&format!("EXPLAIN QUERY PLAN {}", sql.replace('$', "?")))
            .and_then(|mut s| s.query_map([""; 3], |r| r.get::<_, String>(3))?.collect())
            .expect("plan");
        assert!(plan.iter().all(|p| !p.starts_with("SCAN")), "{plan:?}");
    }

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
