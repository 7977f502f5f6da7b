//! `hutong bench`: drive a running gateway over gRPC with realistic records,
//! and in the same run produce the same canonical records straight to the
//! same broker with the same producer settings (the raw baseline).
//!
//! Records are synthetic 公安 household rows (the default), or with `--mix`
//! the shipped departments' sample exports in a weighted mix, each department
//! submitting on its own connection with its own certificate.

use std::{
    collections::{BTreeMap, HashMap, VecDeque},
    path::Path,
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use anyhow::Context as _;
use futures::StreamExt as _;
use hdrhistogram::Histogram;
use hutong_adapter::PseudonymKey;
use hutong_bus::{KafkaPublisher, Publisher};
use hutong_client::ClientAuth;
use hutong_pipeline::{Outcome, Pipeline};
use hutong_proto::v1::{Op, SourceRecord, Status, SubmitRequest, SubmitResponse, ingest_client::IngestClient};
use hutong_standard::checks::synthetic_citizen_id;
use serde_json::{Value, json};
use tonic::{Request, transport::Channel};

use crate::client::ConnectArgs;

/// The default mix: the share of each shipped source kind in a city district's daily traffic.
/// 12345 tickets and grid patrol reports dominate (every call and every patrol is a record);
/// mediation cases, household changes and petitions follow; the registers (facilities, grids,
/// buildings, market entities) change rarely.
pub(crate) const DEFAULT_MIX: &[(&str, &str, u32)] = &[
    ("rexian", "hotline_ticket", 30),
    ("wangge", "patrol_report", 25),
    ("sifa", "mediation_case", 8),
    ("gongan", "household_registration", 8),
    ("xinfang", "petition_item", 5),
    ("renshe", "social_insurance", 4),
    ("minzheng", "social_assistance", 3),
    ("minzheng", "elderly_care", 3),
    ("renshe", "employment_registration", 3),
    ("weijian", "family_doctor", 3),
    ("weijian", "elderly_health", 3),
    ("shichang", "market_entity", 2),
    ("minzheng", "service_facility", 1),
    ("wangge", "grid_registry", 1),
    ("zhujian", "building_register", 1),
];

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Gateway and identity. Without `--mix`: a 公安 certificate (the benchmark submits household
    /// registrations). With `--mix`: `--pki` with every department's certificate.
    #[command(flatten)]
    connect: ConnectArgs,
    /// The gateway's config (schemas, Kafka and pseudonym key) for the raw baseline.
    #[command(flatten)]
    deployment: crate::config::Deployment,
    /// Records to send through the gateway (and, for the baseline, straight to Kafka).
    #[arg(long, default_value_t = 100_000)]
    records: usize,
    /// Records per request.
    #[arg(long, default_value_t = 500)]
    batch: usize,
    /// Concurrent submitters. Streamed, each keeps at most 4 batches in flight over its streams
    /// (one per department it sends for); unary, each waits for every answer.
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `stream` (SubmitStream) or `unary` (Submit).
    #[arg(long, default_value = "stream", value_parser = ["stream", "unary"])]
    mode: String,
    /// Offered load in records/s (default: as fast as answers come).
    #[arg(long)]
    rate: Option<f64>,
    /// The department mix instead of synthetic 公安 rows: `default` (docs/benchmarks.md gives
    /// its weights and why), a TOML file of `"dept/kind" = weight` lines, or
    /// `dept/kind=weight,…`. Records are the shipped sample exports' records that pass, with
    /// unique source ids.
    #[arg(long, value_name = "default|FILE|LIST")]
    mix: Option<String>,
    /// Approximate payload size of each synthetic record, in bytes (not with `--mix`).
    #[arg(long, default_value_t = 1000, conflicts_with = "mix")]
    payload_bytes: usize,
    /// The gateway's process id, to report its CPU seconds per record and peak memory.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Answers per submitter left out of the latency figures: the first calls pay for
    /// connecting and the producer's first metadata fetch, which is not the steady state.
    #[arg(long, default_value_t = 2)]
    warmup_batches: usize,
    /// Skip the raw-producer baseline.
    #[arg(long)]
    skip_raw: bool,
}

/// A record to submit and the department that submits it.
struct Submission {
    department: String,
    record: SourceRecord,
}

fn synthetic(n: usize, payload_bytes: usize, run: &str, department: &str) -> Vec<Submission> {
    (0..n)
        .map(|i| {
            let id = synthetic_citizen_id(i as u32);
            let mut p = json!({"GMSFHM": id, "XM": format!("压测{i}"), "XB": hutong_standard::checks::citizen_id_sex(&id),
                "MZ": "01", "CSRQ": "19800101", "HJDZ_XZQH": "110105", "HJDZ_QHNXXDZ": ""});
            let pad = payload_bytes.saturating_sub(serde_json::to_vec(&p).map(|v| v.len()).unwrap_or(0)) / 3;
            p["HJDZ_QHNXXDZ"] = Value::String("朝阳区建国路八十八号".chars().cycle().take(pad.clamp(1, 250)).collect());
            Submission {
                department: department.to_owned(),
                record: SourceRecord {
                    kind: "household_registration".into(),
                    source_id: format!("{run}-{i}"),
                    revision: 1,
                    op: Op::Upsert as i32,
                    occurred_at: None,
                    payload: serde_json::to_vec(&p).expect("json"),
                    charset: String::new(),
                },
            }
        })
        .collect()
}

/// `--mix`: (department, kind) → weight, in the order given.
fn parse_mix(spec: &str) -> anyhow::Result<Vec<(String, String, u32)>> {
    if spec == "default" {
        return Ok(DEFAULT_MIX.iter().map(|(d, k, w)| ((*d).to_owned(), (*k).to_owned(), *w)).collect());
    }
    let entries: Vec<(String, u32)> = if Path::new(spec).is_file() {
        let text = std::fs::read_to_string(spec).with_context(|| format!("reading the mix {spec}"))?;
        let table: BTreeMap<String, u32> =
            toml::from_str(&text).with_context(|| format!("{spec}: expected lines of \"dept/kind\" = weight"))?;
        table.into_iter().collect()
    } else {
        spec.split(',')
            .map(|e| {
                let (name, w) = e.trim().split_once('=').with_context(|| {
                    format!("--mix {e:?}: expected default, a file, or dept/kind=weight,… (no such file either)")
                })?;
                let w = w.trim().parse().with_context(|| format!("--mix {e:?}: the weight is not a whole number"))?;
                Ok((name.trim().to_owned(), w))
            })
            .collect::<anyhow::Result<_>>()?
    };
    let mix: Vec<_> = entries
        .into_iter()
        .map(|(name, w)| {
            let (d, k) = name.split_once('/').with_context(|| format!("--mix {name:?}: expected dept/kind"))?;
            Ok((d.to_owned(), k.to_owned(), w))
        })
        .collect::<anyhow::Result<_>>()?;
    anyhow::ensure!(mix.iter().any(|(_, _, w)| *w > 0), "--mix {spec}: no kind has a weight above 0");
    Ok(mix)
}

/// `n` records in the proportions of `mix`, made from the shipped sample exports' records that
/// pass `pipeline`, each with a source id of its own; the kinds spread evenly over the run.
fn mix_records(
    mix: &[(String, String, u32)],
    n: usize,
    run: &str,
    schemas: &Path,
    pipeline: &Pipeline,
) -> anyhow::Result<Vec<Submission>> {
    let total: u64 = mix.iter().map(|(_, _, w)| u64::from(*w)).sum();
    let now = chrono::Utc::now();
    let mut per_kind = Vec::new();
    for (dept, kind, w) in mix.iter().filter(|(_, _, w)| *w > 0) {
        let path = schemas.join("departments").join(dept).join("samples").join(format!("{kind}.ndjson"));
        let lines = hutong_client::read_ndjson(&path, kind, None)
            .with_context(|| format!("--mix {dept}/{kind}: the sample export {}", path.display()))?;
        let passing: Vec<SourceRecord> = lines
            .into_iter()
            .map(|l| l.record)
            .filter(|r| matches!(pipeline.prepare(dept, r, now), Outcome::Publish(_)))
            .collect();
        anyhow::ensure!(!passing.is_empty(), "--mix {dept}/{kind}: no record of {} passes", path.display());
        let count = usize::try_from(n as u64 * u64::from(*w) / total).unwrap_or(n).max(1);
        per_kind.push((dept.clone(), kind.clone(), passing, count));
    }
    // Record i of a kind with c records goes at position (i + 0.5) / c of the run.
    let mut out: Vec<(f64, Submission)> = Vec::with_capacity(n);
    for (dept, kind, passing, count) in per_kind {
        for i in 0..count {
            let mut record = passing[i % passing.len()].clone();
            record.source_id = format!("{run}-{dept}-{kind}-{i}");
            out.push(((i as f64 + 0.5) / count as f64, Submission { department: dept.clone(), record }));
        }
    }
    out.sort_by(|a, b| a.0.total_cmp(&b.0));
    Ok(out.into_iter().map(|(_, s)| s).collect())
}

/// Requests of at most `size` records, each of one department; a department's records in
/// their order, the departments interleaved as the records were.
fn batches(subs: &[Submission], size: usize) -> Vec<(String, Vec<SourceRecord>)> {
    let mut open: HashMap<&str, Vec<SourceRecord>> = HashMap::new();
    let mut out = Vec::new();
    for s in subs {
        let batch = open.entry(&s.department).or_default();
        batch.push(s.record.clone());
        if batch.len() >= size.max(1) {
            out.push((s.department.clone(), std::mem::take(batch)));
        }
    }
    let mut rest: Vec<_> = open.into_iter().filter(|(_, b)| !b.is_empty()).collect();
    rest.sort_by(|a, b| a.0.cmp(b.0));
    out.extend(rest.into_iter().map(|(d, b)| (d.to_owned(), b)));
    out
}

/// (user + system CPU seconds, peak resident bytes) of a process, from /proc.
fn proc_usage(pid: u32) -> Option<(f64, u64)> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let fields: Vec<&str> = stat.rsplit_once(')')?.1.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let hwm = status.lines().find(|l| l.starts_with("VmHWM:"))?.split_whitespace().nth(1)?.parse::<u64>().ok()? * 1024;
    Some((ticks / 100.0, hwm)) // USER_HZ is 100 on Linux
}

/// The answers of a run, by status.
#[derive(Debug, Default)]
struct Tally {
    published: usize,
    duplicate: usize,
    rejected: usize,
    other: usize,
}

impl Tally {
    fn add(&mut self, resp: &SubmitResponse) {
        for r in &resp.results {
            match Status::try_from(r.status) {
                Ok(Status::Published) => self.published += 1,
                Ok(Status::Duplicate) => self.duplicate += 1,
                Ok(Status::Rejected) => self.rejected += 1,
                _ => self.other += 1,
            }
        }
    }
}

struct Run {
    seconds: f64,
    /// Source records, by answer.
    tally: Tally,
    latency: Histogram<u64>,
    /// Kafka messages produced (the raw baseline).
    messages: usize,
}

/// What every submitter shares: the answers so far and their latencies.
#[derive(Clone)]
struct Shared {
    tally: Arc<Mutex<Tally>>,
    latency: Arc<Mutex<Histogram<u64>>>,
    warmup: usize,
}

impl Shared {
    fn answer(&self, resp: &SubmitResponse, sent: Instant, answered: &mut usize) {
        let us = sent.elapsed().as_micros() as u64;
        self.tally.lock().expect("lock").add(resp);
        *answered += 1;
        if *answered > self.warmup {
            self.latency.lock().expect("lock").record(us.max(1)).ok();
        }
    }
}

/// Batches a submitter has in flight at most (sent, not yet answered), over all its streams.
const IN_FLIGHT: usize = 4;

/// One department's stream within a submitter: requests go in, answers are counted as they come,
/// each answer freeing its batch's place in flight.
struct Lane {
    tx: tokio::sync::mpsc::Sender<SubmitRequest>,
    sent_at: Arc<Mutex<VecDeque<(Instant, tokio::sync::OwnedSemaphorePermit)>>>,
    reader: tokio::task::JoinHandle<anyhow::Result<()>>,
}

/// A department's connection and the identity it presents (a bearer token in token mode).
#[derive(Clone)]
struct Conn {
    channel: Channel,
    auth: Arc<ClientAuth>,
}

impl Conn {
    fn request<T>(&self, body: T) -> Request<T> {
        let mut req = Request::new(body);
        self.auth.authorize(&mut req);
        req
    }
}

impl Lane {
    fn open(conn: &Conn, shared: Shared) -> Self {
        let (tx, rx) = tokio::sync::mpsc::channel::<SubmitRequest>(4);
        let sent_at = Arc::new(Mutex::new(VecDeque::new()));
        let queue = Arc::clone(&sent_at);
        let (channel, req) = (conn.channel.clone(), conn.request(tokio_stream::wrappers::ReceiverStream::new(rx)));
        let reader = tokio::spawn(async move {
            let mut answers = IngestClient::new(channel).submit_stream(req).await?.into_inner();
            let mut answered = 0;
            while let Some(resp) = answers.next().await {
                let sent = queue.lock().expect("lock").pop_front().map(|(at, _place)| at);
                shared.answer(&resp?, sent.unwrap_or_else(Instant::now), &mut answered);
            }
            anyhow::Ok(())
        });
        Self { tx, sent_at, reader }
    }
}

/// Submits every batch, each over its department's connection; `concurrency` submitters share
/// the batches in turn.
async fn through_gateway(
    args: &BenchArgs,
    conns: &HashMap<String, Conn>,
    batches: Vec<(String, Vec<SourceRecord>)>,
) -> anyhow::Result<Run> {
    let workers = args.concurrency.max(1);
    let mut per_task: Vec<Vec<(String, Vec<SourceRecord>)>> = (0..workers).map(|_| Vec::new()).collect();
    for (i, b) in batches.into_iter().enumerate() {
        per_task[i % workers].push(b);
    }
    let shared = Shared {
        tally: Arc::new(Mutex::new(Tally::default())),
        latency: Arc::new(Mutex::new(Histogram::<u64>::new(3)?)),
        warmup: args.warmup_batches,
    };
    // Each submitter offers its share of the rate.
    let interval = args.rate.map(|r| Duration::from_secs_f64(args.batch as f64 * workers as f64 / r));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mine in per_task {
        let (conns, shared, stream) = (conns.clone(), shared.clone(), args.mode == "stream");
        tasks.push(tokio::spawn(async move {
            let mut tick = interval.map(tokio::time::interval);
            let mut lanes: HashMap<String, Lane> = HashMap::new();
            let places = Arc::new(tokio::sync::Semaphore::new(IN_FLIGHT));
            let mut answered = 0;
            for (dept, records) in mine {
                if let Some(t) = tick.as_mut() {
                    t.tick().await;
                }
                let conn = conns.get(&dept).with_context(|| format!("no connection for {dept}"))?;
                let request = SubmitRequest { batch_id: String::new(), records };
                if stream {
                    let place = Arc::clone(&places).acquire_owned().await?;
                    let lane = lanes.entry(dept).or_insert_with(|| Lane::open(conn, shared.clone()));
                    lane.sent_at.lock().expect("lock").push_back((Instant::now(), place));
                    if lane.tx.send(request).await.is_err() {
                        break; // the reader ended: its error is reported below
                    }
                } else {
                    let sent = Instant::now();
                    let resp =
                        IngestClient::new(conn.channel.clone()).submit(conn.request(request)).await?.into_inner();
                    shared.answer(&resp, sent, &mut answered);
                }
            }
            for (_, lane) in lanes {
                drop(lane.tx);
                lane.reader.await??;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let latency = shared.latency.lock().expect("lock").clone();
    let tally = std::mem::take(&mut *shared.tally.lock().expect("lock"));
    Ok(Run { seconds, tally, latency, messages: 0 })
}

async fn raw(
    args: &BenchArgs,
    config: &hutong_config::ConfigFile,
    pipeline: &Pipeline,
    subs: &[Submission],
) -> anyhow::Result<Run> {
    let now = chrono::Utc::now();
    // The same canonical records, already normalised: prepared before the clock starts. A source
    // record may give several messages (a person and a household …): each is tagged with its
    // record, which counts as published when all of its messages are.
    let messages: Vec<(usize, _)> = subs
        .iter()
        .enumerate()
        .filter_map(|(i, s)| match pipeline.prepare(&s.department, &s.record, now) {
            Outcome::Publish(p) => Some(p.into_iter().map(move |p| (i, p.message))),
            Outcome::Reject { .. } => None,
        })
        .flatten()
        .collect();
    let records = messages.iter().map(|(i, _)| *i).collect::<std::collections::HashSet<_>>().len();
    let mut failed = std::collections::HashSet::new();
    let publisher = KafkaPublisher::new(&config.kafka)?;
    let mut latency = Histogram::<u64>::new(3)?;
    let window = args.batch * args.concurrency;
    let started = Instant::now();
    for chunk in messages.chunks(window.max(1)) {
        let sent = Instant::now();
        let results = futures::future::join_all(chunk.iter().map(|(_, m)| publisher.publish(m.clone()))).await;
        failed.extend(chunk.iter().zip(&results).filter(|(_, r)| r.is_err()).map(|((i, _), _)| *i));
        latency.record(sent.elapsed().as_micros() as u64).ok();
    }
    let seconds = started.elapsed().as_secs_f64();
    let tally = Tally { published: records - failed.len(), ..Tally::default() };
    Ok(Run { seconds, tally, latency, messages: messages.len() })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

/// One connection per department that submits: its own certificate from `--pki` with `--mix`,
/// the identity given otherwise.
async fn connections(args: &BenchArgs, subs: &[Submission]) -> anyhow::Result<HashMap<String, Conn>> {
    let mut out = HashMap::new();
    for s in subs {
        if out.contains_key(&s.department) {
            continue;
        }
        let auth = if args.mix.is_some() { args.connect.auth_as(&s.department)? } else { args.connect.auth() };
        let addr = args.connect.addresses().first().copied().context("--addr names no gateway")?;
        let channel = auth.connect(addr).await?;
        out.insert(s.department.clone(), Conn { channel, auth: Arc::new(auth) });
    }
    Ok(out)
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let run_id = format!("bench{}", chrono::Utc::now().timestamp());
    // The deployment (schemas, key, Kafka) only where the mix or the raw baseline needs it: a
    // synthetic run without the baseline needs nothing but the gateway.
    let deployment = if args.mix.is_some() || !args.skip_raw {
        let config = args.deployment.load_schemas()?;
        let key = config.pseudonym.load_key().unwrap_or_else(|_| PseudonymKey::new(vec![7; 32]).expect("key"));
        let pipeline = Pipeline::load(&config.schemas_dir, key, config.pipeline_settings())?;
        Some((config, pipeline))
    } else {
        None
    };
    let subs = match (&args.mix, &deployment) {
        (Some(spec), Some((config, pipeline))) => {
            mix_records(&parse_mix(spec)?, args.records, &run_id, &config.schemas_dir, pipeline)?
        }
        _ => synthetic(args.records, args.payload_bytes, &run_id, args.connect.identity_name().unwrap_or("gongan")),
    };
    let avg = subs.iter().map(|s| s.record.payload.len()).sum::<usize>() / subs.len().max(1);
    if args.mix.is_some() {
        let mut kinds: BTreeMap<(&str, &str), usize> = BTreeMap::new();
        for s in &subs {
            *kinds.entry((&s.department, &s.record.kind)).or_default() += 1;
        }
        let list: Vec<String> = kinds.iter().map(|((d, k), n)| format!("{d}/{k} {n}")).collect();
        println!("mix: {}", list.join(", "));
    }
    let conns = connections(&args, &subs).await?;
    let before = args.gateway_pid.and_then(proc_usage);
    let gw = through_gateway(&args, &conns, batches(&subs, args.batch)).await?;
    let after = args.gateway_pid.and_then(proc_usage);
    let gw_rate = gw.tally.published as f64 / gw.seconds;
    println!(
        "gateway ({}, batch {}, concurrency {}{}): {} records of ~{avg} B in {:.2} s = {:.0} records/s",
        args.mode,
        args.batch,
        args.concurrency,
        args.rate.map(|r| format!(", offered {r:.0}/s")).unwrap_or_default(),
        gw.tally.published,
        gw.seconds,
        gw_rate
    );
    println!(
        "  batch latency submit→answer: p50 {:.2} ms, p99 {:.2} ms, p99.9 {:.2} ms (max {:.2} ms)",
        ms(&gw.latency, 0.5),
        ms(&gw.latency, 0.99),
        ms(&gw.latency, 0.999),
        gw.latency.max() as f64 / 1000.0
    );
    if let (Some((c0, _)), Some((c1, hwm))) = (before, after) {
        println!(
            "  gateway CPU: {:.1} µs per record ({:.2} CPU-s); peak memory {:.0} MiB",
            (c1 - c0) / gw.tally.published.max(1) as f64 * 1e6,
            c1 - c0,
            hwm as f64 / (1 << 20) as f64
        );
    }
    let complete = gw.tally.published == subs.len();
    if !complete {
        println!(
            "  NOT ALL PUBLISHED: {} of {} (duplicate {}, rejected {}, other {})",
            gw.tally.published,
            subs.len(),
            gw.tally.duplicate,
            gw.tally.rejected,
            gw.tally.other
        );
    }
    if let (false, Some((config, pipeline))) = (args.skip_raw, &deployment) {
        let raw = raw(&args, config, pipeline, &subs).await?;
        let raw_rate = raw.tally.published as f64 / raw.seconds;
        println!(
            "raw producer (same canonical records, same producer settings): {} ({} messages) in {:.2} s = {:.0} records/s",
            raw.tally.published, raw.messages, raw.seconds, raw_rate
        );
        println!("ratio gateway/raw = {:.2}", gw_rate / raw_rate);
    }
    Ok(if complete { ExitCode::SUCCESS } else { ExitCode::FAILURE })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mixes_parse_and_batches_keep_one_department() {
        assert_eq!(parse_mix("default").unwrap().len(), DEFAULT_MIX.len());
        assert_eq!(
            parse_mix("rexian/hotline_ticket=3, sifa/mediation_case=1").unwrap(),
            vec![("rexian".into(), "hotline_ticket".into(), 3), ("sifa".into(), "mediation_case".into(), 1)]
        );
        assert!(parse_mix("rexian=3").is_err());
        assert!(parse_mix("rexian/hotline_ticket=x").is_err());
        assert!(parse_mix("rexian/hotline_ticket=0").is_err());
        let sub = |d: &str, i: usize| Submission {
            department: d.into(),
            record: SourceRecord { source_id: format!("{d}{i}"), ..SourceRecord::default() },
        };
        let subs: Vec<_> = (0..7).map(|i| sub(if i % 3 == 0 { "a" } else { "b" }, i)).collect();
        let b = batches(&subs, 2);
        assert_eq!(b.iter().map(|(_, r)| r.len()).sum::<usize>(), 7);
        for (d, records) in &b {
            assert!(records.iter().all(|r| r.source_id.starts_with(d.as_str())), "{d}: {records:?}");
            assert!(records.len() <= 2);
        }
    }

    /// The default mix made from the shipped samples: every record passes, every source id is
    /// new, and each kind has its share.
    #[test]
    fn the_default_mix_is_the_shipped_samples_in_their_weights() {
        let schemas = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let key = PseudonymKey::new(vec![7; 32]).unwrap();
        let pipeline = Pipeline::load(&schemas, key, hutong_pipeline::PipelineSettings::default()).unwrap();
        let mix = parse_mix("default").unwrap();
        let subs = mix_records(&mix, 1000, "t", &schemas, &pipeline).unwrap();
        let now = chrono::Utc::now();
        let mut ids = std::collections::HashSet::new();
        let mut counts: HashMap<(String, String), usize> = HashMap::new();
        for s in &subs {
            assert!(ids.insert(s.record.source_id.clone()), "unique: {}", s.record.source_id);
            assert!(
                matches!(pipeline.prepare(&s.department, &s.record, now), Outcome::Publish(_)),
                "{} passes",
                s.record.source_id
            );
            *counts.entry((s.department.clone(), s.record.kind.clone())).or_default() += 1;
        }
        assert_eq!(counts.len(), DEFAULT_MIX.len(), "every kind of the mix: {counts:?}");
        for (d, k, w) in DEFAULT_MIX {
            assert_eq!(counts[&((*d).to_owned(), (*k).to_owned())], *w as usize * 10, "{d}/{k}");
        }
        // Spread over the run: the first tenth holds about a tenth of the 12345 tickets.
        let early = subs[..100].iter().filter(|s| s.department == "rexian").count();
        assert!((25..=35).contains(&early), "12345 tickets in the first tenth: {early}");
    }
}
