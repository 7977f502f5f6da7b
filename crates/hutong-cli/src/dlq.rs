//! `hutong dlq`: the dead letters on `<prefix>.dlq.v1`, counted (`list`) and, once an adapter or
//! the standard is fixed, sent through the gateways again (`replay`).
//!
//! A replayed record is the rejected original as it was received (payload bytes, charset, source
//! id, revision, op, occurred_at), submitted as its own department with that department's
//! certificate: the gateway's authorisation is the one every submission meets, and a record that
//! passes now is published with the event ids it would have had (they derive from department,
//! kind, source id, revision and the content digest).

use std::{
    collections::{BTreeMap, HashSet},
    process::ExitCode,
    time::Duration,
};

use anyhow::Context as _;
use chrono::{DateTime, Utc};
use hutong_proto::{
    json::status_name,
    v1::{Op as WireOp, SourceRecord, Status, SubmitRequest},
};
use rdkafka::message::Message as _;
use serde::Deserialize;

use crate::{client::ConnectArgs, config::Deployment, ingest::Gateways};

/// The dead-letter topic: what was rejected, and sending it again after a fix.
#[derive(Debug, clap::Subcommand)]
pub(crate) enum DlqCommand {
    /// Count the dead letters by department, kind and rule (one line each; `--json` for all).
    List(ListArgs),
    /// Send the selected dead letters through the gateways again, each as its own department:
    /// after an adapter fix, what passes now is published with the event ids it would have had.
    /// A dead letter whose fact the entity topics already hold at a higher revision (or at the
    /// same revision with other content sent after the rejection: the department corrected it),
    /// or that a newer dead letter of the same fact follows, is not sent: on a compacted topic the
    /// last message of a fact stays, so the old one would replace the new.
    #[command(after_help = "After fixing the 民政 adapter's date format:\n  \
        hutong dlq replay -c hutong.toml --pki pki --department minzheng --rule adapter:date --since 7d --dry-run\n  \
        hutong dlq replay -c hutong.toml --pki pki --department minzheng --rule adapter:date --since 7d\n\
        The entity topics are read to their end first (only the selected facts are kept). Counted `superseded`: a \
        dead letter of a fact published since at a higher revision, or at its revision with other content after it \
        was rejected, or rejected again in a newer version (only the newest of a fact is sent, even when the newer \
        one is not selected). `already published`: this very record, sent by a replay before. A record the gateway \
        answers DUPLICATE was published by it lately.")]
    Replay(ReplayArgs),
}

/// Which dead letters.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Select {
    /// The deployment: its brokers (with their security settings) and topic prefix.
    #[command(flatten)]
    deployment: Deployment,
    /// Only this department's records (e.g. `minzheng`).
    #[arg(long)]
    department: Option<String>,
    /// Only records of this source kind (e.g. `social_assistance`).
    #[arg(long)]
    kind: Option<String>,
    /// Only records with a violation of this rule (e.g. `format:gb11643`, `adapter:date`; see
    /// docs/rules.md).
    #[arg(long)]
    rule: Option<String>,
    /// Only records received since: an RFC 3339 time (`2026-12-01T00:00:00+08:00`) or a
    /// duration back from now (`24h`, `7d`).
    #[arg(long, value_parser = since)]
    since: Option<DateTime<Utc>>,
    /// Give up reading the topic after this many seconds.
    #[arg(long, default_value_t = 120, value_parser = clap::value_parser!(u64).range(1..=3600))]
    timeout: u64,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ListArgs {
    #[command(flatten)]
    select: Select,
    /// Print the counts as JSON.
    #[arg(long)]
    json: bool,
}

#[derive(Debug, clap::Args)]
pub(crate) struct ReplayArgs {
    #[command(flatten)]
    select: Select,
    /// The gateways (`--addr a,b`: spread and failed over as `hutong ingest` does) and the PKI
    /// holding `<department>.pem` / `.key` for every department replayed.
    #[command(flatten)]
    connect: ConnectArgs,
    /// Records per request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch_size: u64,
    /// Say what would be sent, send nothing.
    #[arg(long)]
    dry_run: bool,
    /// Print the outcome as JSON.
    #[arg(long)]
    json: bool,
}

fn since(text: &str) -> Result<DateTime<Utc>, String> {
    hutong_governance::since(text, Utc::now())
}

/// A dead letter as read from the topic: its value, its own event id (the key) and the source id
/// as it travels on the bus (`ce_sourceid`: pseudonymised where it is personal).
#[derive(Debug, Clone)]
struct Letter {
    value: DeadLetter,
    id: String,
    travelling: String,
}

/// A dead letter as `DeadLetter::into_message` writes it.
#[derive(Debug, Clone, Deserialize)]
struct DeadLetter {
    department: String,
    kind: String,
    source_id: String,
    revision: u64,
    op: String,
    #[serde(default)]
    charset: String,
    received_at: DateTime<Utc>,
    #[serde(default)]
    occurred_at: Option<DateTime<Utc>>,
    payload: Payload,
    violations: Vec<Violation>,
}

#[derive(Debug, Clone, Deserialize)]
struct Payload {
    #[serde(default)]
    json: Option<serde_json::Value>,
    #[serde(default)]
    base64: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
struct Violation {
    rule: String,
}

impl DeadLetter {
    /// The original as it was submitted: the exact bytes where the topic keeps them.
    fn source_record(&self) -> anyhow::Result<SourceRecord> {
        use base64::Engine as _;
        let payload = match (&self.payload.base64, &self.payload.json) {
            (Some(b), _) => base64::engine::general_purpose::STANDARD.decode(b).context("payload.base64")?,
            (None, Some(v)) => serde_json::to_vec(v)?,
            (None, None) => anyhow::bail!("no payload"),
        };
        let op = match self.op.as_str() {
            "delete" => WireOp::Delete,
            "event" => WireOp::Event,
            "upsert" => WireOp::Upsert,
            other => anyhow::bail!("unknown op {other:?}"),
        };
        Ok(SourceRecord {
            kind: self.kind.clone(),
            source_id: self.source_id.clone(),
            revision: self.revision,
            op: op as i32,
            occurred_at: self
                .occurred_at
                .map(|t| prost_types::Timestamp { seconds: t.timestamp(), nanos: t.timestamp_subsec_nanos() as i32 }),
            payload,
            charset: self.charset.clone(),
        })
    }

    fn rules(&self) -> impl Iterator<Item = &str> {
        self.violations.iter().map(|v| v.rule.as_str())
    }
}

impl Select {
    fn wants(&self, letter: &DeadLetter) -> bool {
        self.department.as_ref().is_none_or(|d| *d == letter.department)
            && self.kind.as_ref().is_none_or(|k| *k == letter.kind)
            && self.rule.as_ref().is_none_or(|r| letter.rules().any(|x| x == r))
            && self.since.is_none_or(|t| letter.received_at >= t)
    }
}

/// Every dead letter on the topic, oldest first, each once (a record rejected again unchanged
/// has the same event id, the message key: the latest is kept); `Select::wants` picks among them.
/// Messages that are not dead letters of this version are counted, not fatal.
async fn read(select: &Select) -> anyhow::Result<(String, Vec<Letter>, usize)> {
    let file = select.deployment.load()?;
    let topic = file.kafka.topics().dlq();
    let client = file.kafka.client()?;
    let (name, timeout) = (topic.clone(), Duration::from_secs(select.timeout));
    let messages = tokio::task::spawn_blocking(move || hutong_bus::read_to_end(&client, &[&name], timeout))
        .await?
        .with_context(|| format!("reading {topic} on {}", file.kafka.bootstrap_servers))?;
    let mut unreadable = 0;
    let mut seen = HashSet::new();
    let mut letters = Vec::new();
    // Newest first, so the latest of each event id is the one kept.
    for m in messages.iter().rev() {
        let letter = m.payload().and_then(|p| serde_json::from_slice::<DeadLetter>(p).ok());
        let (Some(letter), Some(id), Some(travelling)) =
            (letter, m.key().and_then(|k| std::str::from_utf8(k).ok()), header(m, "ce_sourceid"))
        else {
            unreadable += 1;
            continue;
        };
        if seen.insert(id.to_owned()) {
            letters.push(Letter { value: letter, id: id.to_owned(), travelling: travelling.to_owned() });
        }
    }
    letters.sort_by_key(|l| l.value.received_at);
    Ok((topic, letters, unreadable))
}

pub(crate) async fn run(cmd: DlqCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DlqCommand::List(args) => list(args).await,
        DlqCommand::Replay(args) => replay(args).await,
    }
}

async fn list(args: ListArgs) -> anyhow::Result<ExitCode> {
    let (topic, mut letters, unreadable) = read(&args.select).await?;
    letters.retain(|l| args.select.wants(&l.value));
    // (department, kind, rule) → records; a record with two rules counts under each.
    let mut counts: BTreeMap<(String, String, String), u64> = BTreeMap::new();
    for Letter { value: l, .. } in &letters {
        let rules: std::collections::BTreeSet<&str> = l.rules().collect();
        for r in rules {
            *counts.entry((l.department.clone(), l.kind.clone(), r.to_owned())).or_default() += 1;
        }
    }
    if args.json {
        let rows: Vec<serde_json::Value> = counts
            .iter()
            .map(|((d, k, r), n)| serde_json::json!({"department": d, "kind": k, "rule": r, "records": n}))
            .collect();
        println!(
            "{}",
            serde_json::json!({"topic": topic, "records": letters.len(), "unreadable": unreadable, "by_rule": rows})
        );
    } else {
        println!("{topic}: {} dead letter(s) selected", letters.len());
        if !counts.is_empty() {
            println!("  {:<12} {:<26} {:<34} {:>7}", "department", "kind", "rule", "records");
        }
        for ((d, k, r), n) in &counts {
            println!("  {d:<12} {k:<26} {r:<34} {n:>7}");
        }
        if unreadable > 0 {
            println!("  {unreadable} message(s) on the topic are not dead letters Hutong can read; left out");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The value of header `name` of `m`, as text.
fn header<'a>(m: &'a impl rdkafka::message::Message, name: &str) -> Option<&'a str> {
    use rdkafka::message::Headers as _;
    m.headers()?.iter().find(|h| h.key == name).and_then(|h| std::str::from_utf8(h.value?).ok())
}

/// A fact as the bus names it: `ce_source` (`/departments/<department>/<kind>`) and `ce_sourceid`.
type FactName = (String, String);

/// One message of a fact on an entity topic.
#[derive(Debug, Clone)]
struct OnBus {
    revision: u64,
    /// `ce_id`.
    id: String,
    /// When it was produced (the message's timestamp), in milliseconds since the epoch.
    at: i64,
}

/// What the entity topics hold of the facts of `letters`: per fact, each published message.
/// Every entity topic is read to its end; only these facts are kept.
async fn published(select: &Select, letters: &[&Letter]) -> anyhow::Result<BTreeMap<FactName, Vec<OnBus>>> {
    let (file, plan) = crate::topics_cmd::load(&select.deployment)?;
    let topics: Vec<String> = plan
        .topics
        .iter()
        .filter(|t| matches!(t.role, hutong_bus::TopicRole::Entity { .. }))
        .map(|t| t.name.clone())
        .collect();
    let wanted: HashSet<FactName> = letters.iter().map(|l| fact_of(l)).collect();
    let client = file.kafka.client()?;
    let timeout = Duration::from_secs(select.timeout);
    let found = tokio::task::spawn_blocking(move || {
        let names: Vec<&str> = topics.iter().map(String::as_str).collect();
        hutong_bus::scan_to_end(&client, &names, timeout, |m| {
            let fact = (header(m, "ce_source")?.to_owned(), header(m, "ce_sourceid")?.to_owned());
            if !wanted.contains(&fact) {
                return None;
            }
            let on_bus = OnBus {
                revision: header(m, "ce_revision")?.parse().ok()?,
                id: header(m, "ce_id")?.to_owned(),
                at: m.timestamp().to_millis()?,
            };
            Some((fact, on_bus))
        })
    })
    .await?
    .context("reading the entity topics for what is already published")?;
    let mut out: BTreeMap<FactName, Vec<OnBus>> = BTreeMap::new();
    for (fact, on_bus) in found {
        out.entry(fact).or_default().push(on_bus);
    }
    Ok(out)
}

fn fact_of(l: &Letter) -> FactName {
    (format!("/departments/{}/{}", l.value.department, l.value.kind), l.travelling.clone())
}

/// Whether a dead letter is worth sending, given what the bus holds of its fact.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Standing {
    /// Nothing of its revision or later, or only older content at its revision: send it.
    Send,
    /// A higher revision, or its revision with other content sent after it was rejected
    /// (corrected by the department).
    Superseded,
    /// This very record: published by an earlier replay.
    AlreadyPublished,
}

/// Where `l` stands against the bus's messages of its fact. At its revision the last message
/// produced is the one a compacted topic keeps: this record's own (already published), or
/// other content produced after `l` was rejected (superseded), or before it (`l` is the newer
/// content: send it).
fn standing(l: &Letter, on_bus: Option<&Vec<OnBus>>) -> anyhow::Result<Standing> {
    let v = &l.value;
    let on_bus = on_bus.map(Vec::as_slice).unwrap_or_default();
    if on_bus.iter().any(|m| m.revision > v.revision) {
        return Ok(Standing::Superseded);
    }
    let same: Vec<&OnBus> = on_bus.iter().filter(|m| m.revision == v.revision).collect();
    let Some(last) = same.iter().max_by_key(|m| m.at) else {
        return Ok(Standing::Send);
    };
    // The ids this record's outputs get (output index 0, 1, …).
    let rec = v.source_record()?;
    let op = match WireOp::try_from(rec.op) {
        Ok(WireOp::Delete) => hutong_bus::Op::Delete,
        Ok(WireOp::Event) => hutong_bus::Op::Event,
        _ => hutong_bus::Op::Upsert,
    };
    let digest = hutong_bus::content_digest(op, &rec.payload, &rec.charset);
    let mine = (0..same.len())
        .any(|i| hutong_bus::event_id(&v.department, &v.kind, &l.travelling, v.revision, &digest, i) == last.id);
    Ok(if mine {
        Standing::AlreadyPublished
    } else if last.at >= v.received_at.timestamp_millis() {
        Standing::Superseded
    } else {
        Standing::Send
    })
}

/// Per fact, the (revision, received at) of its newest dead letter.
fn newest_by_fact(letters: &[Letter]) -> BTreeMap<FactName, (u64, DateTime<Utc>)> {
    let mut newest: BTreeMap<FactName, (u64, DateTime<Utc>)> = BTreeMap::new();
    for l in letters {
        let this = (l.value.revision, l.value.received_at);
        let n = newest.entry(fact_of(l)).or_insert(this);
        *n = (*n).max(this);
    }
    newest
}

/// Whether `l` is the newest dead letter of its fact (by revision, then by when it was
/// received): of several rejected versions of one fact only the newest may be sent.
fn newest_of_its_fact(l: &Letter, newest: &BTreeMap<FactName, (u64, DateTime<Utc>)>) -> bool {
    newest.get(&fact_of(l)).is_none_or(|n| *n <= (l.value.revision, l.value.received_at))
}

/// Whether `name` is a department name as the PKI names its files (`[a-z0-9_]+`): a dead
/// letter is data, never a path to a certificate.
fn is_department_name(name: &str) -> bool {
    !name.is_empty() && name.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

async fn replay(args: ReplayArgs) -> anyhow::Result<ExitCode> {
    let (topic, letters, unreadable) = read(&args.select).await?;
    if unreadable > 0 {
        eprintln!("{unreadable} message(s) on {topic} are not dead letters Hutong can read; left out");
    }
    // The newest dead letter of every fact, selected or not.
    let newest = newest_by_fact(&letters);
    let selected: Vec<&Letter> = letters.iter().filter(|l| args.select.wants(&l.value)).collect();
    let on_bus = if selected.is_empty() { BTreeMap::new() } else { published(&args.select, &selected).await? };
    // department → outcome → records; rules of the records rejected again.
    let mut outcome: BTreeMap<String, BTreeMap<String, u64>> = BTreeMap::new();
    let mut to_send: BTreeMap<&str, Vec<&Letter>> = BTreeMap::new();
    for l in selected.iter().copied() {
        let counts = outcome.entry(l.value.department.clone()).or_default();
        let standing =
            if newest_of_its_fact(l, &newest) { standing(l, on_bus.get(&fact_of(l)))? } else { Standing::Superseded };
        match standing {
            Standing::Send if !is_department_name(&l.value.department) => {
                *counts.entry("not a department name".to_owned()).or_default() += 1
            }
            Standing::Send => to_send.entry(&l.value.department).or_default().push(l),
            Standing::Superseded => *counts.entry("superseded".to_owned()).or_default() += 1,
            Standing::AlreadyPublished => *counts.entry("already published".to_owned()).or_default() += 1,
        }
    }
    // Every certificate is there before anything is sent: a replay stops at no department.
    let mut auths = BTreeMap::new();
    for department in to_send.keys() {
        auths.insert(*department, args.connect.auth_as(department)?);
    }
    let mut still: BTreeMap<String, u64> = BTreeMap::new();
    for (department, mine) in &to_send {
        let counts = outcome.entry((*department).to_owned()).or_default();
        if args.dry_run {
            counts.insert("to send".to_owned(), mine.len() as u64);
            continue;
        }
        let records: Vec<SourceRecord> = mine
            .iter()
            .map(|l| l.value.source_record().with_context(|| format!("dead letter {} of {department}", l.id)))
            .collect::<Result<_, _>>()?;
        let auth = &auths[department];
        let mut gateways = Gateways::connect(args.connect.addresses(), auth).await?;
        for (i, chunk) in records.chunks(args.batch_size as usize).enumerate() {
            let batch = SubmitRequest { batch_id: format!("dlq-replay-{department}#{i}"), records: chunk.to_vec() };
            let resp = gateways.submit(auth, &batch).await.with_context(|| format!("replaying {department}"))?;
            anyhow::ensure!(
                resp.results.len() == chunk.len(),
                "gateway answered {} of {} records of a batch",
                resp.results.len(),
                chunk.len()
            );
            for r in &resp.results {
                *counts.entry(status_name(r.status).to_owned()).or_default() += 1;
                if r.status == Status::Rejected as i32 {
                    let rules: std::collections::BTreeSet<&str> =
                        r.violations.iter().map(|v| v.rule.as_str()).collect();
                    for rule in rules {
                        *still.entry(rule.to_owned()).or_default() += 1;
                    }
                }
            }
        }
    }
    if args.json {
        println!(
            "{}",
            serde_json::json!({"topic": topic, "records": selected.len(), "dry_run": args.dry_run,
                "by_department": outcome, "rejected_again_by_rule": still})
        );
    } else {
        let verb = if args.dry_run { "dry run" } else { "replayed" };
        println!("{topic}: {verb}, {} dead letter(s) selected", selected.len());
        for (department, counts) in &outcome {
            let parts: Vec<String> = counts.iter().map(|(s, n)| format!("{n} {s}")).collect();
            println!("  {department:<12} {}", parts.join(", "));
        }
        if !still.is_empty() {
            let parts: Vec<String> = still.iter().map(|(r, n)| format!("{r} ×{n}")).collect();
            println!("  rejected again, by rule: {}", parts.join(", "));
        }
    }
    Ok(ExitCode::SUCCESS)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn since_takes_a_time_or_a_duration_back() {
        let t = since("2026-12-01T08:00:00+08:00").unwrap();
        assert_eq!(t.to_rfc3339(), "2026-12-01T00:00:00+00:00");
        let day = since("24h").unwrap();
        let back = Utc::now() - day;
        assert!((back.num_seconds() - 86_400).abs() < 60, "{back}");
        assert!(since("7d").unwrap() < day);
        let e = since("yesterday").unwrap_err();
        assert!(e.contains("RFC 3339") && e.contains("7d"), "{e}");
    }

    #[test]
    fn a_dead_letter_gives_back_the_bytes_it_was_sent_with() {
        use base64::Engine as _;
        let original = br#"{ "XM": "\u5f20\u4e09",  "b": 1.50 }"#;
        let letter: DeadLetter = serde_json::from_value(serde_json::json!({
            "department": "gongan", "kind": "household_registration", "source_id": "R1", "revision": 3,
            "op": "delete", "charset": "", "received_at": "2026-12-01T00:00:00Z",
            "occurred_at": "2026-11-30T12:00:00Z",
            "payload": {"json": {"XM": "张三", "b": 1.5},
                        "base64": base64::engine::general_purpose::STANDARD.encode(original)},
            "violations": [{"pointer": "/x", "rule": "required", "message": "m"}],
        }))
        .unwrap();
        let rec = letter.source_record().unwrap();
        assert_eq!(rec.payload, original);
        assert_eq!(rec.op, WireOp::Delete as i32);
        assert_eq!(rec.revision, 3);
        assert_eq!(rec.occurred_at.unwrap().seconds, 1_796_040_000);
        // An older letter without the bytes: the JSON as written.
        let mut older = letter.clone();
        older.payload.base64 = None;
        older.occurred_at = None;
        let rec = older.source_record().unwrap();
        assert_eq!(rec.payload, r#"{"XM":"张三","b":1.5}"#.as_bytes());
        assert!(rec.occurred_at.is_none());
        older.op = "merge".into();
        assert!(older.source_record().unwrap_err().to_string().contains("merge"));
    }

    fn letter(revision: u64, received_at: &str, payload: serde_json::Value) -> Letter {
        let value = serde_json::from_value(serde_json::json!({
            "department": "gongan", "kind": "household_registration", "source_id": "R1", "revision": revision,
            "op": "upsert", "received_at": received_at, "payload": {"json": payload},
            "violations": [{"rule": "adapter:code"}],
        }))
        .unwrap();
        Letter { value, id: format!("dl-{revision}"), travelling: "R1".into() }
    }

    fn ids_of(l: &Letter) -> Vec<String> {
        let rec = l.value.source_record().unwrap();
        let digest = hutong_bus::content_digest(hutong_bus::Op::Upsert, &rec.payload, "");
        (0..2)
            .map(|i| hutong_bus::event_id("gongan", "household_registration", "R1", l.value.revision, &digest, i))
            .collect()
    }

    #[test]
    fn a_dead_letter_stands_against_the_last_message_of_its_revision() {
        let l = letter(2, "2026-12-01T00:00:10Z", serde_json::json!({"XB": "F"}));
        let at = |t: &str| DateTime::parse_from_rfc3339(t).unwrap().timestamp_millis();
        let msg = |revision, id: &str, t: &str| OnBus { revision, id: id.to_owned(), at: at(t) };
        let mine = ids_of(&l);
        assert_eq!(standing(&l, None).unwrap(), Standing::Send);
        // Older revisions only: send.
        let older = vec![msg(1, "x", "2026-12-01T00:00:20Z")];
        assert_eq!(standing(&l, Some(&older)).unwrap(), Standing::Send);
        // A higher revision, whenever: superseded.
        let higher = vec![msg(3, "x", "2026-12-01T00:00:00Z")];
        assert_eq!(standing(&l, Some(&higher)).unwrap(), Standing::Superseded);
        // Its revision with other content, produced before the rejection: this is the newer content.
        let before = vec![msg(2, "x", "2026-12-01T00:00:05Z")];
        assert_eq!(standing(&l, Some(&before)).unwrap(), Standing::Send);
        // … produced after it: corrected by the department.
        let after = vec![msg(2, "x", "2026-12-01T00:00:15Z")];
        assert_eq!(standing(&l, Some(&after)).unwrap(), Standing::Superseded);
        // Its own ids, last: already published (even over older other content at its revision).
        let own = vec![msg(2, "x", "2026-12-01T00:00:05Z"), msg(2, &mine[0], "2026-12-01T00:01:00Z")];
        assert_eq!(standing(&l, Some(&own)).unwrap(), Standing::AlreadyPublished);
        // Its own, then other content after: superseded.
        let then = vec![msg(2, &mine[0], "2026-12-01T00:01:00Z"), msg(2, "x", "2026-12-01T00:02:00Z")];
        assert_eq!(standing(&l, Some(&then)).unwrap(), Standing::Superseded);
    }

    #[test]
    fn only_the_newest_dead_letter_of_a_fact_is_sent() {
        let first = letter(1, "2026-12-01T00:00:00Z", serde_json::json!({"XB": "F"}));
        let second = letter(2, "2026-12-01T00:00:00Z", serde_json::json!({"XB": "M"}));
        let again = letter(2, "2026-12-02T00:00:00Z", serde_json::json!({"XB": "X"}));
        let newest = newest_by_fact(&[first.clone(), second.clone(), again.clone()]);
        assert!(!newest_of_its_fact(&first, &newest));
        assert!(!newest_of_its_fact(&second, &newest));
        assert!(newest_of_its_fact(&again, &newest));
    }

    #[test]
    fn a_department_name_is_never_a_path() {
        assert!(is_department_name("minzheng") && is_department_name("dept_12"));
        for bad in ["", "../etc/passwd", "Gongan", "a/b", "a.b", "公安"] {
            assert!(!is_department_name(bad), "{bad}");
        }
    }
}
