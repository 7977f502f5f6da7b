//! `hutong bench`: drive a running gateway over gRPC with realistic records,
//! and in the same run produce the same canonical records straight to the
//! same broker with the same producer settings (the raw baseline).

use std::{
    process::ExitCode,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use futures::StreamExt as _;
use hdrhistogram::Histogram;
use hutong_adapter::PseudonymKey;
use hutong_bus::{KafkaPublisher, Publisher};
use hutong_pipeline::{Outcome, Pipeline};
use hutong_proto::v1::{Op, SourceRecord, Status, SubmitRequest, ingest_client::IngestClient};
use hutong_standard::checks::synthetic_citizen_id;
use serde_json::{Value, json};
use tonic::Request;

use crate::client::ConnectArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct BenchArgs {
    /// Gateway and identity (a 公安 certificate: the benchmark submits household registrations).
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
    /// Concurrent streams (or unary callers).
    #[arg(long, default_value_t = 4)]
    concurrency: usize,
    /// `stream` (SubmitStream) or `unary` (Submit).
    #[arg(long, default_value = "stream")]
    mode: String,
    /// Offered load in records/s (default: as fast as answers come).
    #[arg(long)]
    rate: Option<f64>,
    /// Approximate payload size of each record, in bytes.
    #[arg(long, default_value_t = 1000)]
    payload_bytes: usize,
    /// The gateway's process id, to report its CPU seconds per record and peak memory.
    #[arg(long)]
    gateway_pid: Option<u32>,
    /// Answers per task left out of the latency figures: the first calls pay for connecting and
    /// the producer's first metadata fetch, which is not the steady state being measured.
    #[arg(long, default_value_t = 2)]
    warmup_batches: usize,
    /// Skip the raw-producer baseline.
    #[arg(long)]
    skip_raw: bool,
}

fn records(n: usize, payload_bytes: usize, run: &str) -> Vec<SourceRecord> {
    (0..n)
        .map(|i| {
            let mut p = json!({"GMSFHM": synthetic_citizen_id(i as u32), "XM": format!("压测{i}"), "XB": hutong_standard::checks::citizen_id_sex(&synthetic_citizen_id(i as u32)),
                "MZ": "01", "CSRQ": "19800101", "HJDZ_XZQH": "110105", "HJDZ_QHNXXDZ": ""});
            let pad = payload_bytes.saturating_sub(serde_json::to_vec(&p).map(|v| v.len()).unwrap_or(0)) / 3;
            p["HJDZ_QHNXXDZ"] = Value::String("朝阳区建国路八十八号".chars().cycle().take(pad.clamp(1, 250)).collect());
            SourceRecord {
                kind: "household_registration".into(),
                source_id: format!("{run}-{i}"),
                revision: 1,
                op: Op::Upsert as i32,
                occurred_at: None,
                payload: serde_json::to_vec(&p).expect("json"),
                charset: String::new(),
            }
        })
        .collect()
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

struct Run {
    seconds: f64,
    published: usize,
    latency: Histogram<u64>,
}

async fn through_gateway(args: &BenchArgs, recs: Vec<SourceRecord>) -> anyhow::Result<Run> {
    let channel = args.connect.channel().await?;
    let auth = Arc::new(args.connect.auth());
    let batches: Vec<Vec<SourceRecord>> = recs.chunks(args.batch.max(1)).map(<[SourceRecord]>::to_vec).collect();
    let per_task: Vec<Vec<Vec<SourceRecord>>> = (0..args.concurrency.max(1))
        .map(|t| batches.iter().skip(t).step_by(args.concurrency.max(1)).cloned().collect())
        .collect();
    let latency = Arc::new(Mutex::new(Histogram::<u64>::new(3)?));
    let published = Arc::new(Mutex::new(0usize));
    // Each task offers its share of the rate.
    let interval = args.rate.map(|r| Duration::from_secs_f64(args.batch as f64 * args.concurrency as f64 / r));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for mine in per_task {
        let (channel, auth, latency, published) =
            (channel.clone(), Arc::clone(&auth), Arc::clone(&latency), Arc::clone(&published));
        let stream = args.mode == "stream";
        let warmup = args.warmup_batches;
        tasks.push(tokio::spawn(async move {
            let mut client = IngestClient::new(channel);
            let mut answered = 0usize;
            let mut record = |resp: hutong_proto::v1::SubmitResponse, sent: Instant| {
                let us = sent.elapsed().as_micros() as u64;
                let ok = resp.results.iter().filter(|r| r.status == Status::Published as i32).count();
                *published.lock().expect("lock") += ok;
                answered += 1;
                if answered > warmup {
                    latency.lock().expect("lock").record(us.max(1)).ok();
                }
            };
            if stream {
                let (tx, rx) = tokio::sync::mpsc::channel::<SubmitRequest>(4);
                let sent_at = Arc::new(Mutex::new(std::collections::VecDeque::new()));
                let mut req = Request::new(tokio_stream::wrappers::ReceiverStream::new(rx));
                auth.authorize(&mut req);
                let feeder = {
                    let sent_at = Arc::clone(&sent_at);
                    tokio::spawn(async move {
                        let mut tick = interval.map(tokio::time::interval);
                        for b in mine {
                            if let Some(t) = tick.as_mut() {
                                t.tick().await;
                            }
                            sent_at.lock().expect("lock").push_back(Instant::now());
                            if tx.send(SubmitRequest { batch_id: String::new(), records: b }).await.is_err() {
                                break;
                            }
                        }
                    })
                };
                let mut answers = client.submit_stream(req).await?.into_inner();
                while let Some(resp) = answers.next().await {
                    let sent = sent_at.lock().expect("lock").pop_front().unwrap_or_else(Instant::now);
                    record(resp?, sent);
                }
                feeder.await?;
            } else {
                let mut tick = interval.map(tokio::time::interval);
                for b in mine {
                    if let Some(t) = tick.as_mut() {
                        t.tick().await;
                    }
                    let mut req = Request::new(SubmitRequest { batch_id: String::new(), records: b });
                    auth.authorize(&mut req);
                    let sent = Instant::now();
                    record(client.submit(req).await?.into_inner(), sent);
                }
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let seconds = started.elapsed().as_secs_f64();
    let latency = latency.lock().expect("lock").clone();
    let published = *published.lock().expect("lock");
    Ok(Run { seconds, published, latency })
}

async fn raw(args: &BenchArgs, recs: &[SourceRecord]) -> anyhow::Result<Run> {
    let config = args.deployment.load_schemas()?;
    let key = config.pseudonym.load_key().unwrap_or_else(|_| PseudonymKey::new(vec![7; 32]).expect("key"));
    let pipeline = Pipeline::load(&config.schemas_dir, key, config.pipeline_settings())?;
    let now = chrono::Utc::now();
    // The same canonical records, already normalised: prepared before the clock starts.
    let messages: Vec<_> = recs
        .iter()
        .filter_map(|r| match pipeline.prepare("gongan", r, now) {
            Outcome::Publish(p) => Some(p.into_iter().map(|p| p.message).collect::<Vec<_>>()),
            Outcome::Reject { .. } => None,
        })
        .flatten()
        .collect();
    let publisher = KafkaPublisher::new(&config.kafka)?;
    let mut latency = Histogram::<u64>::new(3)?;
    let window = args.batch * args.concurrency;
    let started = Instant::now();
    let mut published = 0;
    for chunk in messages.chunks(window.max(1)) {
        let sent = Instant::now();
        let results = futures::future::join_all(chunk.iter().cloned().map(|m| publisher.publish(m))).await;
        published += results.iter().filter(|r| r.is_ok()).count();
        latency.record(sent.elapsed().as_micros() as u64).ok();
    }
    Ok(Run { seconds: started.elapsed().as_secs_f64(), published, latency })
}

fn ms(h: &Histogram<u64>, q: f64) -> f64 {
    h.value_at_quantile(q) as f64 / 1000.0
}

pub(crate) async fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    let run_id = format!("bench{}", chrono::Utc::now().timestamp());
    let recs = records(args.records, args.payload_bytes, &run_id);
    let avg = recs.iter().map(|r| r.payload.len()).sum::<usize>() / recs.len().max(1);
    let before = args.gateway_pid.and_then(proc_usage);
    let gw = through_gateway(&args, recs.clone()).await?;
    let after = args.gateway_pid.and_then(proc_usage);
    let gw_rate = gw.published as f64 / gw.seconds;
    println!(
        "gateway ({} , batch {}, concurrency {}{}): {} records of ~{avg} B in {:.2} s = {:.0} records/s",
        args.mode,
        args.batch,
        args.concurrency,
        args.rate.map(|r| format!(", offered {r:.0}/s")).unwrap_or_default(),
        gw.published,
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
            (c1 - c0) / gw.published.max(1) as f64 * 1e6,
            c1 - c0,
            hwm as f64 / (1 << 20) as f64
        );
    }
    if !args.skip_raw {
        let raw = raw(&args, &recs).await?;
        let raw_rate = raw.published as f64 / raw.seconds;
        println!(
            "raw producer (same canonical records, same producer settings): {} in {:.2} s = {:.0} records/s",
            raw.published, raw.seconds, raw_rate
        );
        println!("ratio gateway/raw = {:.2}", gw_rate / raw_rate);
    }
    Ok(ExitCode::SUCCESS)
}
