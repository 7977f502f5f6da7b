//! `hutong validate`: the dry run through adapter and standard, without Kafka.

use std::{path::PathBuf, process::ExitCode, sync::Arc};

use chrono::Utc;
use hutong_adapter::{Adapters, PseudonymKey};
use hutong_gateway::{Outcome, Pipeline};
use hutong_standard::Standard;
use serde_json::json;

use crate::records::read_ndjson;

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Department id the records come from.
    #[arg(long, short)]
    department: String,
    /// The department's source kind.
    #[arg(long, short)]
    kind: String,
    /// NDJSON file, as for `hutong ingest`.
    file: PathBuf,
    /// Config file (for `schemas-dir`, topic prefix, limits and the pseudonym key).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// The `schemas/` folder (overrides the config).
    #[arg(long)]
    schemas: Option<PathBuf>,
    /// Payload field that holds the source id of bare payload lines.
    #[arg(long)]
    id_field: Option<String>,
}

pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let mut config = crate::config::load(args.config.as_deref())?;
    if let Some(s) = args.schemas {
        config.schemas_dir = s;
    }
    let standard = Arc::new(Standard::load(&config.schemas_dir)?);
    let adapters = Arc::new(Adapters::load(&config.schemas_dir.join("departments"), &standard)?);
    let key = config.pseudonym.load_key().unwrap_or_else(|e| {
        eprintln!(
            "note: no pseudonym key ({e}); using a throw-away key, so person_key values differ from the gateway's"
        );
        let random: Vec<u8> = (0..2).flat_map(|_| uuid::Uuid::new_v4().into_bytes()).collect();
        PseudonymKey::new(random).expect("32 bytes is long enough")
    });
    let pipeline = Pipeline::new(standard, adapters, key, config.kafka.topics(), config.limits.payload());
    let lines = read_ndjson(&args.file, &args.kind, args.id_field.as_deref())?;
    let now = Utc::now();
    let mut rejected = 0usize;
    for line in &lines {
        let out = match pipeline.prepare(&args.department, &line.record, now) {
            Outcome::Publish(prepared) => json!({
                "line": line.number,
                "source_id": line.record.source_id,
                "status": "VALID",
                "records": prepared.iter().map(|p| json!({
                    "entity": p.entity,
                    "topic": p.message.topic,
                    "key": p.message.key,
                    "event_id": p.message.event.id,
                    "value": p.record,
                })).collect::<Vec<_>>(),
            }),
            Outcome::Reject { violations, .. } => {
                rejected += 1;
                json!({
                    "line": line.number,
                    "source_id": line.record.source_id,
                    "status": "REJECTED",
                    "violations": violations,
                })
            }
        };
        println!("{out}");
    }
    eprintln!("{} record(s): {} valid, {rejected} rejected", lines.len(), lines.len() - rejected);
    Ok(if rejected == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
