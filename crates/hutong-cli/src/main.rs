//! `hutong`: the Hutong (互通) gateway and its tools.

mod adapter_cmd;
mod audit_cmd;
mod bench;
mod certs;
mod client;
mod config;
mod department_cmd;
mod dlq;
mod governance_cmd;
mod ingest;
mod input;
mod profiles_cmd;
mod schema_cmd;
mod sharing_cmd;
mod table;
mod tail;
mod topics_cmd;
mod validate;

use std::{path::PathBuf, process::ExitCode};

use clap::{Parser, Subcommand};
use tracing_subscriber::EnvFilter;

/// mimalloc: the profile of the gateway under load showed glibc malloc/free
/// taking ~30% of its CPU (docs/benchmarks.md).
#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// Hutong (互通): departments submit records over gRPC as they are; adapters map
/// them to one data standard; valid records are published to Kafka.
#[derive(Debug, Parser)]
#[command(name = "hutong", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Run the gateway: gRPC ingest → adapters → standard → Kafka.
    Serve(ServeArgs),
    /// Submit a department's export (NDJSON, CSV, Excel) to a running gateway and summarise the answers.
    Ingest(ingest::IngestArgs),
    /// Print messages of a topic: key, headers and JSON value.
    Tail(tail::TailArgs),
    /// Dry run of an export (NDJSON, CSV, Excel) through adapter and standard, without Kafka:
    /// one JSON line per record; exit status 1 if any record is rejected.
    Validate(validate::ValidateArgs),
    /// Benchmark a running gateway over gRPC against the raw producer, same run.
    Bench(bench::BenchArgs),
    /// Department adapters: static checks and golden fixtures, without Kafka.
    #[command(subcommand)]
    Adapter(adapter_cmd::AdapterCommand),
    /// Schema governance: compatibility, diff, lint, register, impact.
    #[command(subcommand)]
    Schema(schema_cmd::SchemaCommand),
    /// The unified data standard: render its reference for people.
    #[command(subcommand)]
    Standard(StandardCommand),
    /// Ask a gateway whether it is serving (gRPC health); exit status 0 when it is.
    Health(HealthArgs),
    /// Connect a new department: its code, adapter skeleton, folders, policy entry and certificate.
    #[command(subcommand)]
    Department(department_cmd::DepartmentCommand),
    /// Development PKI: a CA, the gateway's certificate and one client certificate per identity of a policy.
    #[command(subcommand)]
    Certs(certs::CertsCommand),
    /// The audit trail: verify its hash chain.
    #[command(subcommand)]
    Audit(audit_cmd::AuditCommand),
    /// Kafka topics: the declaration of every topic, and a check of the brokers against it.
    #[command(subcommand)]
    Topics(topics_cmd::TopicsCommand),
    /// The dead-letter topic: rejected records counted by rule, and sent again after a fix.
    #[command(subcommand)]
    Dlq(dlq::DlqCommand),
    /// The profile service (一人一档): run it, check its merge rules.
    #[command(subcommand)]
    Profiles(profiles_cmd::ProfilesCommand),
    /// Ask the profile service: a person, household, building or grid with its people, conflicts.
    #[command(subcommand)]
    Profile(profiles_cmd::ProfileCommand),
    /// Governance events (交办反馈) with their age and deadline status, by grid, community or
    /// department (open ones unless --all).
    Events(governance_cmd::EventsArgs),
    /// One matter across departments: every linked event (派单, 转办, 移交 …) and one timeline.
    Thread(governance_cmd::ThreadArgs),
    /// Supervision alerts (督查督办: 提醒 → 预警 → 督办) by grid, department and level.
    Alerts(governance_cmd::AlertsArgs),
    /// Residents' needs with the service resources proposed for them (供需对接).
    Matches(governance_cmd::MatchesArgs),
    /// The effectiveness report (成效评估) of a month, as HTML with charts, CSV or JSON.
    Report(governance_cmd::ReportArgs),
    /// The resource catalogue (政务信息资源目录): every shared resource with its items,
    /// sharing classes and channels, built from the adapters, the standard and the topics.
    #[command(subcommand)]
    Catalog(sharing_cmd::CatalogCommand),
    /// Access requests and grants (申请审批): request, approve, deny, revoke, list, usage, and
    /// the Kafka ACLs the grants call for.
    #[command(subcommand)]
    Access(sharing_cmd::AccessCommand),
    /// 数据异议: object to a published fact; the source department's queue; acknowledge or
    /// dismiss (a corrected record closes it).
    #[command(subcommand)]
    Objection(sharing_cmd::ObjectionCommand),
    /// `hutong access acls --apply`'s worker: the brokers' ACL calls, in a process of their own
    /// (librdkafka aborts the process on some brokers' answers). Reads its request on stdin.
    #[command(hide = true)]
    KafkaAclsWorker,
}

#[derive(Debug, Subcommand)]
enum StandardCommand {
    /// Render the standard (entities, fields, code lists) as Markdown.
    Docs {
        /// The configuration (its topic prefix names the topics) and the schemas folder.
        #[command(flatten)]
        deployment: config::Deployment,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
    /// Every rule a record can fail (the `rule` of a violation) with its meaning, as Markdown
    /// (`docs/rules.md`).
    Rules {
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

#[derive(Debug, clap::Args)]
struct HealthArgs {
    /// Gateway address and CA (health needs no client certificate).
    #[command(flatten)]
    connect: client::ConnectArgs,
    /// Keep asking for up to this many seconds.
    #[arg(long, default_value_t = 0)]
    wait: u64,
    /// The service to ask about: the gateway's (default) or `hutong.v1.Profiles` for the profile
    /// service (not serving while its store is away).
    #[arg(long, default_value = hutong_proto::v1::ingest_server::SERVICE_NAME)]
    service: String,
}

#[derive(Debug, clap::Args)]
struct ServeArgs {
    /// Config file (TOML); layered over built-in defaults and under `HUTONG__*`
    /// environment variables (e.g. `HUTONG__KAFKA__BOOTSTRAP_SERVERS`).
    #[arg(long, short)]
    config: Option<PathBuf>,
    /// Print the effective configuration and exit.
    #[arg(long)]
    print_config: bool,
}

/// A reader that stops early (`hutong validate … | head`) closes stdout: the command ends
/// there, quietly, with the status a shell gives a process ended by SIGPIPE (141), instead of
/// a panic and its backtrace. Only stdout: a closed socket stays an error the code handles
/// (SIGPIPE itself stays ignored, as Rust sets it, so a peer's reset never kills a client).
/// Whichever thread meets the closed stdout ends the process, a task of the runtime included,
/// and librdkafka's threads with it (`hutong tail … | head`): nothing is left to write to.
fn quiet_on_closed_stdout() {
    let default = std::panic::take_hook();
    std::panic::set_hook(Box::new(move |info| {
        let message = info
            .payload()
            .downcast_ref::<String>()
            .map(String::as_str)
            .or_else(|| info.payload().downcast_ref::<&str>().copied());
        // std's words for it: "failed printing to stdout: Broken pipe (os error 32)".
        if message.is_some_and(|m| m.starts_with("failed printing to stdout") && m.contains("Broken pipe")) {
            std::process::exit(141);
        }
        default(info);
    }));
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    quiet_on_closed_stdout();
    tracing_subscriber::fmt()
        .with_env_filter(EnvFilter::try_from_env("HUTONG_LOG").unwrap_or_else(|_| EnvFilter::new("info")))
        .with_writer(std::io::stderr)
        .init();
    let runtime = match tokio::runtime::Runtime::new() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    let result = runtime.block_on(async {
        match cli.command {
            Command::Serve(args) => serve(args).await.map(|()| ExitCode::SUCCESS),
            Command::Ingest(args) => ingest::run(args).await,
            Command::Tail(args) => tail::run(args).await,
            Command::Validate(args) => validate::run(args),
            Command::Health(args) => health(args).await,
            Command::Adapter(cmd) => adapter_cmd::run(cmd),
            Command::Bench(args) => bench::run(args).await,
            Command::Schema(cmd) => schema_cmd::run(cmd),
            Command::Certs(cmd) => certs::run(cmd),
            Command::Department(cmd) => department_cmd::run(cmd),
            Command::Audit(cmd) => audit_cmd::run(cmd),
            Command::Topics(cmd) => topics_cmd::run(cmd).await,
            Command::Dlq(cmd) => dlq::run(cmd).await,
            Command::Profiles(cmd) => profiles_cmd::serve_or_check(cmd, shutdown_signal()).await,
            Command::Profile(cmd) => profiles_cmd::ask(cmd).await,
            Command::Events(args) => governance_cmd::events(args).await,
            Command::Thread(args) => governance_cmd::thread(args).await,
            Command::Alerts(args) => governance_cmd::alerts(args).await,
            Command::Matches(args) => governance_cmd::matches(args).await,
            Command::Report(args) => governance_cmd::report(args).await,
            Command::Catalog(cmd) => sharing_cmd::catalog(cmd),
            Command::Access(cmd) => sharing_cmd::access(cmd).await,
            Command::Objection(cmd) => sharing_cmd::objection(cmd).await,
            Command::KafkaAclsWorker => sharing_cmd::kafka_acls_worker(),
            Command::Standard(StandardCommand::Docs { deployment, out }) => standard_docs(&deployment, out.as_deref()),
            Command::Standard(StandardCommand::Rules { out }) => {
                write_out(&hutong_standard::rules::render_markdown(), out.as_deref())
            }
        }
    });
    match result {
        Ok(code) => code,
        Err(e) => {
            eprintln!("error: {}", error_text(&e));
            ExitCode::from(2)
        }
    }
}

/// An error and its causes on one line, each said once: a cause whose text its error already
/// quotes (`path: {source}`) is not repeated.
fn error_text(e: &anyhow::Error) -> String {
    let mut out = String::new();
    for cause in e.chain() {
        let text = cause.to_string();
        if out.contains(&text) {
            continue;
        }
        if !out.is_empty() {
            out.push_str(": ");
        }
        out.push_str(&text);
    }
    out
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let file = hutong_config::ConfigFile::load(args.config.as_deref())?;
    if args.print_config {
        println!("{}", serde_json::to_string_pretty(&file)?);
        return Ok(());
    }
    // Checked as a whole before anything starts.
    let config = file.validate_and_build()?;
    #[cfg(feature = "serve")]
    {
        hutong_gateway::serve(config, shutdown_signal()).await?;
        tracing::info!("gateway stopped");
        Ok(())
    }
    #[cfg(not(feature = "serve"))]
    {
        let _ = (config, shutdown_signal);
        anyhow::bail!("this hutong was built without the `serve` feature: it has no gateway")
    }
}

fn standard_docs(deployment: &config::Deployment, out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    let file = deployment.load_schemas()?;
    let standard = hutong_standard::Standard::load(&file.schemas_dir)?;
    let topics = file.kafka.topics();
    let text = hutong_standard::docs::render_markdown(&standard, &|e| topics.entity(&e.name, e.major));
    write_out(&text, out)
}

/// Writes `text` to `out`, or to standard output.
pub(crate) fn write_out(text: &str, out: Option<&std::path::Path>) -> anyhow::Result<ExitCode> {
    match out {
        Some(path) => {
            std::fs::write(path, text)?;
            eprintln!("wrote {}", path.display());
        }
        None => print!("{text}"),
    }
    Ok(ExitCode::SUCCESS)
}

async fn health(args: HealthArgs) -> anyhow::Result<ExitCode> {
    use tonic_health::pb::{HealthCheckRequest, health_check_response::ServingStatus, health_client::HealthClient};
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(args.wait);
    loop {
        let channel = args.connect.channel().await;
        let answer = match channel {
            Ok(channel) => HealthClient::new(channel)
                .check(HealthCheckRequest { service: args.service.clone() })
                .await
                .map(|r| r.into_inner().status)
                .map_err(|e| anyhow::anyhow!(e.message().to_owned())),
            Err(e) => Err(anyhow::anyhow!(e)),
        };
        match answer {
            Ok(s) if s == ServingStatus::Serving as i32 => {
                println!("{}: serving", args.connect.addr.replace(',', " or "));
                return Ok(ExitCode::SUCCESS);
            }
            other if std::time::Instant::now() >= deadline => {
                eprintln!("{}: not serving ({other:?})", args.connect.addr.replace(',', " or "));
                return Ok(ExitCode::from(1));
            }
            _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
        }
    }
}

/// Resolves on SIGINT or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        if let Ok(mut s) = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            s.recv().await;
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested: finishing requests in flight");
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory as _;

    #[test]
    fn every_command_line_is_well_formed() {
        // Catches clashing flags and the like in every subcommand.
        super::Cli::command().debug_assert();
    }
}
