//! `hutong validate`: the dry run through adapter and standard, without Kafka.

use std::process::ExitCode;

use chrono::Utc;
use hutong_adapter::PseudonymKey;
use hutong_pipeline::{Pipeline, dry_run};

use crate::{config::Deployment, input::InputArgs};

#[derive(Debug, clap::Args)]
pub(crate) struct ValidateArgs {
    /// Department id the records come from.
    #[arg(long, short)]
    department: String,
    /// The department's source kind.
    #[arg(long, short)]
    kind: String,
    /// The export, as for `hutong ingest`; records without an id or revision field get their
    /// position and revision 1 (a dry run sends nothing).
    #[command(flatten)]
    input: InputArgs,
    /// The configuration and the schemas folder.
    #[command(flatten)]
    deployment: Deployment,
    /// What to show of a valid record: `topic`, each message as its topic carries it (IDs
    /// pseudonymised, phones masked …), or `canonical`, the standard's record with personal
    /// data in clear — for an admin checking a mapping on an export it already holds; printed
    /// only, never logged.
    #[arg(long, value_enum, default_value = "topic")]
    view: View,
}

/// `hutong validate --view`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum View {
    /// As each topic carries it.
    Topic,
    /// The canonical record, personal data in clear.
    Canonical,
}

pub(crate) fn run(args: ValidateArgs) -> anyhow::Result<ExitCode> {
    let config = args.deployment.load_schemas()?;
    let key = config.pseudonym.load_key().unwrap_or_else(|e| {
        eprintln!(
            "note: no pseudonym key ({e}); using a throw-away key, so person_key values differ from the gateway's"
        );
        let random: Vec<u8> = (0..2).flat_map(|_| uuid::Uuid::new_v4().into_bytes()).collect();
        PseudonymKey::new(random).expect("32 bytes is long enough")
    });
    let pipeline = Pipeline::load(&config.schemas_dir, key, config.pipeline_settings())?;
    let lines = args.input.read(&args.kind, None, false)?;
    let now = Utc::now();
    let mut rejected = 0usize;
    if args.view == View::Canonical {
        eprintln!("note: canonical view: personal data in clear on standard output; do not keep it in logs");
    }
    for line in &lines {
        let run = dry_run(&pipeline, &args.department, &line.record, now);
        rejected += usize::from(!run.is_valid());
        let mut answer = run.to_json(line.number, &line.record.source_id);
        if args.view == View::Canonical && run.is_valid() {
            let records = pipeline.canonical(&args.department, &line.record).unwrap_or_default();
            let warnings = answer.get("warnings").cloned();
            answer = serde_json::json!({
                "line": line.number,
                "source_id": line.record.source_id,
                "status": "VALID",
                "view": "canonical",
                "records": records.into_iter().map(|(entity, record)| serde_json::json!({"entity": entity, "record": record})).collect::<Vec<_>>(),
            });
            if let Some(w) = warnings {
                answer["warnings"] = w;
            }
        }
        if let Some(sheet) = &line.sheet {
            answer["sheet"] = sheet.clone().into();
        }
        println!("{answer}");
    }
    eprintln!("{} record(s): {} valid, {rejected} rejected", lines.len(), lines.len() - rejected);
    Ok(if rejected == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
