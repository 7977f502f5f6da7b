//! `hutong ingest`: submit an NDJSON export over gRPC and summarise the answers.

use std::{path::PathBuf, process::ExitCode};

use futures::StreamExt as _;
use hutong_proto::v1::{RecordResult, Status, SubmitRequest, SubmitResponse, ingest_client::IngestClient};
use tonic::Request;

use hutong_client::{Identity, Line, read_export};

use crate::client::ConnectArgs;

#[derive(Debug, clap::Args)]
pub(crate) struct IngestArgs {
    /// The department's source kind, e.g. `household_registration`.
    #[arg(long, short)]
    kind: String,
    /// NDJSON file: one wrapper `{"source_id", "revision", "op", "payload"}` or bare payload per line.
    file: PathBuf,
    /// Gateway and identity: the department is the one its certificate (or token) names.
    #[command(flatten)]
    connect: ConnectArgs,
    /// Records per request.
    #[arg(long, default_value_t = 500)]
    batch_size: usize,
    /// Use the streaming RPC (SubmitStream) instead of unary Submit.
    #[arg(long)]
    stream: bool,
    /// Payload field that holds the source id of bare payload lines (required for them: a
    /// record's id in the department's system, never its position in the file). Default: the
    /// adapter's declared `source-id` field, when `--schemas` has the adapter of this kind.
    #[arg(long)]
    id_field: Option<String>,
    /// The schemas folder, to find the adapter's declared `source-id` field for bare lines.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// Payload field that holds the revision of bare payload lines (required for them): a
    /// version number, or a last-modified time (its Unix seconds), so an update supersedes.
    #[arg(long)]
    revision_field: Option<String>,
    /// Print one JSON line per record instead of the summary.
    #[arg(long)]
    json: bool,
    /// Print only the summary line.
    #[arg(long, short, conflicts_with = "json")]
    quiet: bool,
}

/// The source-id field the adapter of `kind` declares (of `department` when known, else the
/// only adapter of that kind), if `schemas` has it.
fn declared_id_field(schemas: &std::path::Path, department: Option<&str>, kind: &str) -> Option<String> {
    let standard = hutong_standard::Standard::load(schemas).ok()?;
    let adapters = hutong_adapter::Adapters::load(&schemas.join("departments"), &standard).ok()?;
    let mut of_kind = adapters.iter().filter(|a| a.kind == kind && department.is_none_or(|d| a.department == d));
    let first = of_kind.next()?;
    if of_kind.next().is_some() {
        return None;
    }
    first.source_id_field.clone()
}

pub(crate) async fn run(args: IngestArgs) -> anyhow::Result<ExitCode> {
    let declared = match &args.id_field {
        Some(_) => None,
        None => declared_id_field(&args.schemas, args.connect.identity_name(), &args.kind),
    };
    let identity = Identity {
        id_field: args.id_field.as_deref().or(declared.as_deref()),
        revision_field: args.revision_field.as_deref(),
        strict: true,
    };
    let lines = read_export(&args.file, &args.kind, identity)?;
    let auth = args.connect.auth();
    let mut client = IngestClient::new(args.connect.channel().await?);
    let batches: Vec<SubmitRequest> = lines
        .chunks(args.batch_size.max(1))
        .enumerate()
        .map(|(i, chunk)| SubmitRequest {
            batch_id: format!("{}#{i}", args.file.display()),
            records: chunk.iter().map(|l| l.record.clone()).collect(),
        })
        .collect();

    let mut responses: Vec<SubmitResponse> = Vec::with_capacity(batches.len());
    if args.stream {
        let mut req = Request::new(futures::stream::iter(batches));
        auth.authorize(&mut req);
        let mut stream = client.submit_stream(req).await?.into_inner();
        while let Some(resp) = stream.next().await {
            responses.push(resp?);
        }
    } else {
        for batch in batches {
            let mut req = Request::new(batch);
            auth.authorize(&mut req);
            responses.push(client.submit(req).await?.into_inner());
        }
    }

    let results: Vec<RecordResult> = responses.into_iter().flat_map(|r| r.results).collect();
    anyhow::ensure!(results.len() == lines.len(), "gateway answered {} of {} records", results.len(), lines.len());
    if args.json {
        for (line, r) in lines.iter().zip(&results) {
            println!("{}", result_json(line, r));
        }
    } else {
        print_summary(&args, &lines, &results);
    }
    Ok(ExitCode::SUCCESS)
}

fn status_name(s: i32) -> &'static str {
    match Status::try_from(s).unwrap_or(Status::Unspecified) {
        Status::Published => "PUBLISHED",
        Status::Rejected => "REJECTED",
        Status::Duplicate => "DUPLICATE",
        Status::Spooled => "SPOOLED",
        Status::Unspecified => "UNSPECIFIED",
    }
}

fn result_json(line: &Line, r: &RecordResult) -> serde_json::Value {
    serde_json::json!({
        "line": line.number,
        "source_id": r.source_id,
        "status": status_name(r.status),
        "receipts": r.receipts.iter().map(|x| serde_json::json!({
            "entity": x.entity, "topic": x.topic, "partition": x.partition, "offset": x.offset, "event_id": x.event_id,
        })).collect::<Vec<_>>(),
        "violations": r.violations.iter().map(|v| serde_json::json!({
            "pointer": v.pointer, "rule": v.rule, "message": v.message,
        })).collect::<Vec<_>>(),
        "warnings": r.warnings.iter().map(|v| serde_json::json!({
            "pointer": v.pointer, "rule": v.rule, "message": v.message,
        })).collect::<Vec<_>>(),
    })
}

fn print_summary(args: &IngestArgs, lines: &[Line], results: &[RecordResult]) {
    let count = |s: Status| results.iter().filter(|r| r.status == s as i32).count();
    println!(
        "{}: {} records of kind {}: {} published, {} rejected, {} duplicate",
        args.file.display(),
        results.len(),
        args.kind,
        count(Status::Published),
        count(Status::Rejected),
        count(Status::Duplicate),
    );
    if args.quiet {
        return;
    }
    for (line, r) in lines.iter().zip(results) {
        let receipts: Vec<String> =
            r.receipts.iter().map(|x| format!("{}[{}]@{}", x.topic, x.partition, x.offset)).collect();
        println!("  line {:>3}  {:<10} {:<16} {}", line.number, status_name(r.status), r.source_id, receipts.join(" "));
        for (v, kind) in
            r.violations.iter().map(|v| (v, "")).chain(r.warnings.iter().map(|v| (v, "flagged, accepted: ")))
        {
            let p = if v.pointer.is_empty() { "/" } else { &v.pointer };
            println!("             {p} [{}] {kind}{}", v.rule, v.message);
        }
    }
}
