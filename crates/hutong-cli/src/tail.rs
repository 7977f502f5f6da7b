//! `hutong tail`: print a topic's messages with key, headers and JSON value.

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use rdkafka::{
    ClientConfig,
    consumer::{Consumer, StreamConsumer},
    message::{Headers, Message},
};

#[derive(Debug, clap::Args)]
pub(crate) struct TailArgs {
    /// Topic to read, e.g. `hutong.person.v2` or `hutong.dlq.v1`.
    topic: String,
    /// Start at the earliest message instead of new ones only.
    #[arg(long)]
    from_beginning: bool,
    /// Stop after this many messages.
    #[arg(long)]
    max: Option<usize>,
    /// Stop after this many seconds without a message (default: follow forever).
    #[arg(long)]
    idle_timeout: Option<u64>,
    /// Kafka bootstrap servers.
    #[arg(long, default_value = "127.0.0.1:9092", env = "HUTONG_BROKERS")]
    brokers: String,
    /// One JSON object per message instead of the readable form.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(args: TailArgs) -> anyhow::Result<ExitCode> {
    let consumer: StreamConsumer = ClientConfig::new()
        .set("bootstrap.servers", &args.brokers)
        .set("group.id", format!("hutong-tail-{}", uuid::Uuid::new_v4()))
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", if args.from_beginning { "earliest" } else { "latest" })
        .set("session.timeout.ms", "6000")
        .create()
        .context("creating the consumer")?;
    consumer.subscribe(&[&args.topic]).with_context(|| format!("subscribing to {}", args.topic))?;
    let mut seen = 0usize;
    while args.max.is_none_or(|m| seen < m) {
        let next = consumer.recv();
        let msg = match args.idle_timeout {
            Some(secs) => match tokio::time::timeout(Duration::from_secs(secs), next).await {
                Ok(m) => m,
                Err(_) => break,
            },
            None => next.await,
        }
        .context("reading from kafka")?;
        seen += 1;
        let key = msg.key().map(|k| String::from_utf8_lossy(k).into_owned());
        let headers: Vec<(String, String)> = msg
            .headers()
            .map(|h| {
                h.iter()
                    .map(|x| {
                        (x.key.to_owned(), x.value.map(|v| String::from_utf8_lossy(v).into_owned()).unwrap_or_default())
                    })
                    .collect()
            })
            .unwrap_or_default();
        let value: Option<serde_json::Value> = msg
            .payload()
            .map(|p| serde_json::from_slice(p).unwrap_or_else(|_| String::from_utf8_lossy(p).into_owned().into()));
        if args.json {
            let h: serde_json::Map<String, serde_json::Value> =
                headers.into_iter().map(|(k, v)| (k, v.into())).collect();
            println!(
                "{}",
                serde_json::json!({"topic": msg.topic(), "partition": msg.partition(), "offset": msg.offset(),
                    "key": key, "headers": h, "value": value})
            );
        } else {
            println!(
                "── {} [{}] @{}  key={}",
                msg.topic(),
                msg.partition(),
                msg.offset(),
                key.as_deref().unwrap_or("-")
            );
            for (k, v) in headers {
                println!("   {k}: {v}");
            }
            match value {
                Some(v) => println!("{}", serde_json::to_string_pretty(&v)?),
                None => println!("   (tombstone)"),
            }
        }
    }
    eprintln!("{seen} message(s) from {}", args.topic);
    Ok(ExitCode::SUCCESS)
}
