//! `hutong catalog …`, `hutong access …`, `hutong objection …`: the resource catalogue
//! (共享目录), access requests and grants (申请审批), the Kafka ACLs the grants call for, and
//! objections on published facts (数据异议). The catalogue is built locally from `schemas/` and
//! the config; everything else asks the consumer service (`hutong.v1.Access`), which audits it.

use std::{collections::BTreeMap, path::PathBuf, process::ExitCode, time::Duration};

use anyhow::{Context as _, bail};
use clap::{Subcommand, ValueEnum};
use hutong_bus::{AclChanges, KafkaAcl};
use hutong_proto::v1::{
    DecideRequest, FileObjectionRequest, GetCatalogRequest, ListObjectionsRequest, ListRequestsRequest,
    ListUsageRequest, RequestAccessRequest, ResolveObjectionRequest, RevokeRequest, access_client::AccessClient,
};
use hutong_sharing::{
    Catalog, Grant,
    acl::{Acl, AclPlan},
    sharing_name,
};
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::{
    client::Ask,
    config::Deployment,
    table::{pad, row},
};

/// `hutong catalog`.
#[derive(Debug, Subcommand)]
pub(crate) enum CatalogCommand {
    /// Every resource: code, name, provider, sharing class, approver, update cycle.
    List {
        #[command(flatten)]
        deployment: Deployment,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// One resource with its information items (共享类型, 共享条件, 分级, 个人信息) and channels.
    Show {
        /// The resource, e.g. gongan.household_registration.
        id: String,
        #[command(flatten)]
        deployment: Deployment,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Render the catalogue as Markdown (`docs/catalog.md`).
    Docs {
        #[command(flatten)]
        deployment: Deployment,
        /// Write to this file instead of standard output.
        #[arg(long)]
        out: Option<PathBuf>,
    },
}

async fn client(ask: &Ask) -> anyhow::Result<AccessClient<tonic::transport::Channel>> {
    Ok(AccessClient::new(ask.channel().await?))
}

/// The format of `hutong access acls`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub(crate) enum AclFormat {
    /// `kafka-acls.sh --add …` commands.
    KafkaAcls,
    /// Strimzi `KafkaUser` resources (YAML).
    Strimzi,
    /// The plan as JSON.
    Json,
}

/// `hutong access`.
#[derive(Debug, Subcommand)]
pub(crate) enum AccessCommand {
    /// The catalogue as you stand: granted (until when), pending, or requestable.
    Catalog {
        #[command(flatten)]
        ask: Ask,
    },
    /// Ask for a resource (consumers): purpose, scenario, until when.
    Request {
        /// The resource, e.g. gongan.household_registration (see `hutong catalog list`).
        #[arg(long)]
        resource: String,
        /// An information item (`entity.field`); repeat; none: every shareable one.
        #[arg(long = "field")]
        fields: Vec<String>,
        /// 用途: what the data is used for.
        #[arg(long)]
        purpose: String,
        /// 应用场景: where (the application and its users).
        #[arg(long)]
        scenario: String,
        /// The last day (YYYY-MM-DD), at most a year ahead.
        #[arg(long)]
        until: String,
        /// A 网格 (grid code) the grant is limited to; repeat; none: anywhere.
        #[arg(long = "grid")]
        grids: Vec<String>,
        #[command(flatten)]
        ask: Ask,
    },
    /// Requests you may see (consumer: yours; department: for your resources; admin: all),
    /// with overdue replies marked. `--json` is the export of the grants.
    List {
        /// Only pending ones.
        #[arg(long)]
        pending: bool,
        #[command(flatten)]
        ask: Ask,
    },
    /// Approve a pending request (the owning department for 有条件共享, an admin otherwise).
    Approve {
        /// The request, e.g. AR-0001.
        id: String,
        /// Why (kept with the grant).
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// Deny a pending request, with the reason the consumer is told.
    Deny {
        /// The request.
        id: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// End a grant (or withdraw a request) at once: its consumer, its provider or an admin.
    Revoke {
        /// The request.
        id: String,
        /// Why.
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// Usage per consumer and resource: queries, records returned, last access; misuse
    /// signals; with `--lag`, each consumer's Kafka groups (`<consumer>.` prefixed) with their
    /// committed offsets and lag on the topics of its active grants.
    Usage {
        /// Also ask the brokers (the config's `[kafka]`) for the consumers' groups and their lag.
        #[arg(long)]
        lag: bool,
        #[command(flatten)]
        deployment: Deployment,
        #[command(flatten)]
        ask: Ask,
    },
    /// The Kafka ACLs the active grants call for (READ on each granted topic, the consumer's
    /// groups), from the service's grants (ask as an admin) or an export (`--grants`).
    Acls {
        /// Output format.
        #[arg(long, value_enum, default_value = "json")]
        format: AclFormat,
        /// Grants exported by `hutong access list --json` instead of asking the service.
        #[arg(long)]
        grants: Option<PathBuf>,
        /// The day the grants are taken at (YYYY-MM-DD; default today).
        #[arg(long)]
        on: Option<String>,
        /// The policy file naming each consumer's certificate (default: the config's).
        #[arg(long)]
        policy: Option<PathBuf>,
        /// For `kafka-acls`: the brokers.
        #[arg(long, default_value = "localhost:9092")]
        bootstrap_server: String,
        /// For `strimzi`: the cluster name and namespace.
        #[arg(long, default_value = "hutong")]
        cluster: String,
        /// For `strimzi`: the namespace.
        #[arg(long)]
        namespace: Option<String>,
        /// Reconcile the brokers (the config's `[kafka]`, with its security settings) with the
        /// plan: create the missing bindings, delete the bindings of the policy's consumers on
        /// Hutong's topics and groups that no active grant calls for; every other binding is left
        /// alone. Prints what it did as JSON; exit status 1 if any change failed. Needs brokers
        /// with an authorizer and an admin identity allowed to alter the cluster's ACLs. A
        /// consumer taken out of the policy is no longer managed: revoke its grants and apply
        /// before removing it.
        #[arg(long)]
        apply: bool,
        /// With `--apply`: read the brokers' ACLs and print the changes, change nothing.
        #[arg(long, requires = "apply")]
        dry_run: bool,
        /// With `--apply`: how long each call to the brokers may take, in seconds.
        #[arg(long, default_value_t = 30, requires = "apply", value_parser = clap::value_parser!(u64).range(1..=3600))]
        timeout: u64,
        #[command(flatten)]
        deployment: Deployment,
        #[command(flatten)]
        ask: Ask,
    },
}

/// `hutong objection`.
#[derive(Debug, Subcommand)]
pub(crate) enum ObjectionCommand {
    /// Object to a published fact: its event id (a profile field's `source.ce_id`), what is
    /// wrong (a JSON pointer) and why. It goes to the fact's source department.
    File {
        /// The fact's event id.
        #[arg(long)]
        ce_id: String,
        /// What is wrong in it, e.g. /birth_date.
        #[arg(long)]
        pointer: String,
        /// Why.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// Objections: open ones (`--all`: closed and dismissed too); `--mine`: on your own facts
    /// (a department's queue).
    List {
        /// Only those on your department's facts.
        #[arg(long)]
        mine: bool,
        /// Closed and dismissed too.
        #[arg(long)]
        all: bool,
        #[command(flatten)]
        ask: Ask,
    },
    /// Acknowledge an objection (the source department): seen, being checked.
    Ack {
        /// The objection, e.g. OB-0001.
        id: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// Dismiss an objection with the reason (the source department). A correction needs no
    /// command: the corrected record (a higher revision) closes it.
    Dismiss {
        /// The objection.
        id: String,
        /// Why the record stands.
        #[arg(long)]
        reason: String,
        #[command(flatten)]
        ask: Ask,
    },
}

/// The catalogue of a deployment, from its `schemas/` and config.
fn catalog_of(deployment: &Deployment) -> anyhow::Result<Catalog> {
    let file = deployment.load()?;
    let standard = hutong_standard::Standard::load(&file.schemas_dir)
        .with_context(|| format!("loading the standard from {}", file.schemas_dir.display()))?;
    let adapters = hutong_adapter::Adapters::load(&file.schemas_dir.join("departments"), &standard)?;
    let plan = hutong_pipeline::topic_plan(&standard, &file.kafka, &file.privacy, file.derived_topics())?;
    Ok(Catalog::build(&standard, &adapters, &plan))
}

pub(crate) fn catalog(cmd: CatalogCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        CatalogCommand::List { deployment, json } => {
            let c = catalog_of(&deployment)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&c)?);
            } else {
                println!(
                    "{}",
                    row(&[
                        ("资源代码", 18),
                        ("resource", 40),
                        ("提供方", 8),
                        ("共享类型", 10),
                        ("approver", 8),
                        ("更新周期", 0)
                    ])
                );
                for r in &c.resources {
                    println!(
                        "{}",
                        row(&[
                            (&r.code, 18),
                            (&r.id, 40),
                            (&r.provider_name, 8),
                            (sharing_name(&r.sharing), 10),
                            (&r.approver, 8),
                            (r.update_cycle.as_deref().unwrap_or("—"), 0)
                        ])
                    );
                }
                println!("{} resources (standard {})", c.resources.len(), c.standard);
            }
        }
        CatalogCommand::Show { id, deployment, json } => {
            let c = catalog_of(&deployment)?;
            let Some(r) = c.get(&id) else { bail!("no resource {id:?} in the catalogue (see `hutong catalog list`)") };
            if json {
                println!("{}", serde_json::to_string_pretty(r)?);
            } else {
                println!("{} {} — {}", r.code, r.id, r.name);
                println!(
                    "提供方 {} ({}) · 共享类型 {} · approved by {} · 更新周期 {} · 发布日期 {}",
                    r.provider_name,
                    r.provider,
                    sharing_name(&r.sharing),
                    r.approver,
                    r.update_cycle.as_deref().unwrap_or("—"),
                    r.published.as_deref().unwrap_or("—")
                );
                println!("{}", r.summary);
                for ch in &r.channels {
                    println!(
                        "  共享方式 {} {}{}",
                        pad(&ch.way, 14),
                        ch.name,
                        if ch.restricted { " (restricted)" } else { "" }
                    );
                }
                for i in &r.items {
                    println!(
                        "  {}  {}  {}  {}",
                        pad(&i.id, 36),
                        pad(&i.title, 16),
                        pad(sharing_name(&i.sharing), 10),
                        i.pii.as_deref().unwrap_or("")
                    );
                }
            }
        }
        CatalogCommand::Docs { deployment, out } => {
            return crate::write_out(&catalog_of(&deployment)?.markdown(), out.as_deref());
        }
    }
    Ok(ExitCode::SUCCESS)
}

fn parse(text: &str) -> Value {
    serde_json::from_str(text).unwrap_or(Value::Null)
}

fn text<'v>(v: &'v Value, k: &str) -> &'v str {
    v[k].as_str().unwrap_or("")
}

fn print_requests(docs: &[Value]) {
    println!(
        "{}",
        row(&[
            ("id", 8),
            ("consumer", 9),
            ("resource", 34),
            ("status", 9),
            ("until", 10),
            ("reply due", 10),
            ("purpose", 0)
        ])
    );
    for g in docs {
        let mut status = text(g, "status").to_owned();
        if g["overdue"] == true {
            status.push_str(" OVERDUE");
        } else if g["expired"] == true {
            status = "expired".into();
        }
        println!(
            "{}",
            row(&[
                (text(g, "id"), 8),
                (text(g, "consumer"), 9),
                (text(g, "resource"), 34),
                (&status, 9),
                (text(g, "until"), 10),
                (text(g, "due"), 10),
                (text(g, "purpose"), 0)
            ])
        );
    }
}

fn print_one(doc: &Value, json: bool) {
    if json {
        println!("{doc}");
    } else {
        print_requests(std::slice::from_ref(doc));
        if let Some(r) = doc["reason"].as_str() {
            println!("reason: {r}");
        }
    }
}

pub(crate) async fn access(cmd: AccessCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AccessCommand::Catalog { ask } => {
            let reply = client(&ask).await?.get_catalog(GetCatalogRequest {}).await?.into_inner();
            let docs: Vec<Value> = reply.resources_json.iter().map(|r| parse(r)).collect();
            if ask.json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                for r in &docs {
                    let s = &r["standing"];
                    let standing = if s["granted"] == true {
                        format!("granted ({}) until {}", text(s, "grant"), text(s, "until"))
                    } else if let Some(p) = s["pending"].as_str() {
                        format!("pending ({p})")
                    } else if s["requestable"] == true {
                        format!("requestable (approved by {})", text(s, "approver"))
                    } else if s["provider"] == true {
                        "yours".to_owned()
                    } else {
                        String::new()
                    };
                    println!(
                        "{}  {}  {}  {standing}",
                        pad(text(r, "id"), 40),
                        pad(sharing_name(text(r, "sharing")), 10),
                        pad(text(r, "provider_name"), 8)
                    );
                }
            }
        }
        AccessCommand::Request { resource, fields, purpose, scenario, until, grids, ask } => {
            let reply = client(&ask)
                .await?
                .request_access(RequestAccessRequest { resource, fields, purpose, scenario, until, grids })
                .await?
                .into_inner();
            print_one(&parse(&reply.request_json), ask.json);
        }
        AccessCommand::List { pending, ask } => {
            let reply = client(&ask).await?.list_requests(ListRequestsRequest { pending }).await?.into_inner();
            let docs: Vec<Value> = reply.requests_json.iter().map(|r| parse(r)).collect();
            if ask.json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                print_requests(&docs);
                let overdue = docs.iter().filter(|g| g["overdue"] == true).count();
                println!("{} requests at {}; {overdue} past their reply deadline", docs.len(), reply.now);
            }
        }
        AccessCommand::Approve { id, reason, ask } => {
            let reply = client(&ask).await?.decide(DecideRequest { id, approve: true, reason }).await?.into_inner();
            print_one(&parse(&reply.request_json), ask.json);
        }
        AccessCommand::Deny { id, reason, ask } => {
            let reply = client(&ask).await?.decide(DecideRequest { id, approve: false, reason }).await?.into_inner();
            print_one(&parse(&reply.request_json), ask.json);
        }
        AccessCommand::Revoke { id, reason, ask } => {
            let reply = client(&ask).await?.revoke(RevokeRequest { id, reason }).await?.into_inner();
            print_one(&parse(&reply.request_json), ask.json);
        }
        AccessCommand::Usage { lag, deployment, ask } => {
            let mut client = client(&ask).await?;
            let reply = client.list_usage(ListUsageRequest {}).await?.into_inner();
            let docs: Vec<Value> = reply.usage_json.iter().map(|r| parse(r)).collect();
            let signals: Vec<Value> = reply.signals_json.iter().map(|r| parse(r)).collect();
            let lags = if lag {
                let grants: Vec<Value> = client
                    .list_requests(ListRequestsRequest { pending: false })
                    .await?
                    .into_inner()
                    .requests_json
                    .iter()
                    .map(|r| parse(r))
                    .filter(|g| g["active"] == true)
                    .collect();
                consumer_lag(&deployment, &grants).await?
            } else {
                Vec::new()
            };
            if ask.json {
                let all = serde_json::json!({"usage": docs, "signals": signals, "lag": lags});
                println!("{}", serde_json::to_string_pretty(&all)?);
            } else {
                for l in &lags {
                    println!(
                        "kafka group {} {}[{}]: committed {}, end {}, lag {}",
                        l.group,
                        l.topic,
                        l.partition,
                        l.committed.map_or("none".to_owned(), |c| c.to_string()),
                        l.end,
                        l.lag
                    );
                }
                println!(
                    "{}",
                    row(&[("consumer", 9), ("resource", 34), ("queries", 8), ("records", 8), ("last access", 0)])
                );
                for u in &docs {
                    println!(
                        "{}",
                        row(&[
                            (text(u, "consumer"), 9),
                            (text(u, "resource"), 34),
                            (&u["queries"].to_string(), 8),
                            (&u["records"].to_string(), 8),
                            (text(u, "last_access"), 0)
                        ])
                    );
                }
                for g in &signals {
                    println!(
                        "misuse signal {}: {} — {} (grants: {})",
                        text(g, "at"),
                        text(g, "consumer"),
                        text(g, "detail"),
                        g["resources"]
                    );
                }
            }
        }
        AccessCommand::Acls {
            format,
            grants,
            on,
            policy,
            bootstrap_server,
            cluster,
            namespace,
            apply,
            dry_run,
            timeout,
            deployment,
            ask,
        } => {
            let catalog = catalog_of(&deployment)?;
            let grants: Vec<Grant> = match grants {
                Some(path) => serde_json::from_str(
                    &std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?,
                )
                .with_context(|| format!("{}: expected the JSON of `hutong access list --json`", path.display()))?,
                None => {
                    let reply =
                        client(&ask).await?.list_requests(ListRequestsRequest { pending: false }).await?.into_inner();
                    reply.requests_json.iter().map(|r| serde_json::from_str(r)).collect::<Result<_, _>>()?
                }
            };
            let policy_path = match policy {
                Some(p) => p,
                None => deployment.load()?.auth.policy_file,
            };
            let policy = hutong_config::Policy::load(&policy_path)?;
            let certificates: BTreeMap<String, String> = policy
                .identities()
                .iter()
                .filter(|i| matches!(i.principal, hutong_config::Principal::Consumer(_)))
                .filter_map(|i| Some((i.principal.name().to_owned(), i.certificate.clone()?)))
                .collect();
            let today = match on {
                Some(d) => chrono::NaiveDate::parse_from_str(&d, "%Y-%m-%d")
                    .with_context(|| format!("--on {d}: YYYY-MM-DD"))?,
                None => chrono::Local::now().date_naive(),
            };
            let plan = AclPlan::build(&catalog, &grants, &certificates, today);
            if apply {
                let managed = certificates.values().map(|c| format!("User:{c}")).collect();
                return apply_acls(&deployment, &plan, managed, dry_run, Duration::from_secs(timeout));
            }
            match format {
                AclFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
                AclFormat::KafkaAcls => print!("{}", plan.kafka_acls(&bootstrap_server)),
                AclFormat::Strimzi => print!("{}", plan.strimzi(&cluster, namespace.as_deref())),
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// What `hutong access acls --apply` hands its worker.
#[derive(Serialize, Deserialize)]
struct AclWork {
    /// librdkafka's settings: the brokers and their security.
    client: BTreeMap<String, String>,
    wanted: Vec<KafkaAcl>,
    managed: std::collections::BTreeSet<String>,
    topic_prefix: String,
    dry_run: bool,
    timeout_ms: u64,
}

/// What the worker did.
#[derive(Serialize, Deserialize)]
struct AclReport {
    dry_run: bool,
    /// Bindings on the brokers before.
    found: usize,
    #[serde(flatten)]
    changes: AclChanges,
    /// What failed: the binding and the broker's words.
    errors: Vec<String>,
    /// What may be wrong although nothing failed.
    warnings: Vec<String>,
}

/// Reconciles the brokers with `plan` in a worker process (a broker whose answer librdkafka
/// cannot read aborts that process, not this one) and prints its report.
fn apply_acls(
    deployment: &Deployment,
    plan: &AclPlan,
    managed: std::collections::BTreeSet<String>,
    dry_run: bool,
    timeout: Duration,
) -> anyhow::Result<ExitCode> {
    use std::io::Write as _;
    let kafka = deployment.load()?.kafka;
    let client = kafka.client()?;
    // config_map() shows passwords as "[sanitized for safety]": each value is read with get().
    let settings =
        client.config_map().into_keys().filter_map(|k| Some((k.to_owned(), client.get(k)?.to_owned()))).collect();
    let work = AclWork {
        client: settings,
        wanted: plan.acls.iter().map(Acl::to_kafka).collect(),
        managed,
        topic_prefix: kafka.topic_prefix.clone(),
        dry_run,
        timeout_ms: u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX),
    };
    let mut child = std::process::Command::new(std::env::current_exe().context("the hutong executable")?)
        .arg("kafka-acls-worker")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .context("starting the ACL worker")?;
    // The request carries the brokers' credentials: on a pipe, never on the command line. A
    // worker that ends early breaks the pipe; what it said is reported below either way.
    let sent = child.stdin.take().context("the worker's stdin")?.write_all(&serde_json::to_vec(&work)?);
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    match out.status.code() {
        None => anyhow::bail!(
            "the ACL calls to {} failed: the worker was killed ({}), having said: {}. librdkafka aborts on \
             an answer it cannot read; tansu 0.6 answers CreateAcls without a result per binding (and \
             neither stores nor enforces ACLs). Deletions it reported may have been applied. Apply the plan \
             with --format kafka-acls or strimzi instead",
            kafka.bootstrap_servers,
            out.status,
            stderr.trim()
        ),
        Some(0) => sent.context("handing the work to the ACL worker")?,
        Some(_) => anyhow::bail!(
            "the ACL calls to {} failed: {}",
            kafka.bootstrap_servers,
            stderr.trim().strip_prefix("error: ").unwrap_or(stderr.trim())
        ),
    }
    let report: AclReport = serde_json::from_slice(&out.stdout).context("the ACL worker's report")?;
    println!("{}", serde_json::to_string_pretty(&report)?);
    let c = &report.changes;
    eprintln!(
        "{} {} binding(s) on {}: {} to create, {} to delete, {} kept, {} not Hutong's left alone{}",
        if report.dry_run { "dry run," } else { "applied," },
        report.found,
        kafka.bootstrap_servers,
        c.create.len(),
        c.delete.len(),
        c.kept,
        c.foreign,
        if report.errors.is_empty() { String::new() } else { format!("; {} failed", report.errors.len()) }
    );
    for w in &report.warnings {
        eprintln!("warning: {w}");
    }
    Ok(if report.errors.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

/// `hutong kafka-acls-worker`: reads an [`AclWork`] on stdin, describes the brokers' ACLs,
/// reconciles, deletes then creates (unless a dry run), and prints an [`AclReport`].
pub(crate) fn kafka_acls_worker() -> anyhow::Result<ExitCode> {
    let work: AclWork = serde_json::from_reader(std::io::stdin().lock()).context("the ACL work on stdin")?;
    let mut client = rdkafka::ClientConfig::new();
    for (k, v) in &work.client {
        client.set(k, v);
    }
    let admin = hutong_bus::AclAdmin::new(&client, Duration::from_millis(work.timeout_ms))?;
    let found = admin.describe()?;
    let changes = hutong_bus::reconcile_acls(&found, &work.wanted, &work.managed, &work.topic_prefix);
    let mut errors = Vec::new();
    let mut warnings = Vec::new();
    if found.is_empty() && !work.wanted.is_empty() {
        // librdkafka drops DescribeAcls' own error: no authorizer, or not authorised, reads as
        // an empty list.
        warnings.push(
            "the brokers listed no ACL at all: if they have no authorizer or this identity may not describe \
             ACLs, the list is empty too (librdkafka drops that error)"
                .to_owned(),
        );
    }
    if !work.dry_run {
        let deleted = admin.delete(&changes.delete)?;
        for (acl, outcome) in changes.delete.iter().zip(&deleted) {
            match outcome {
                Ok(1) => {}
                Ok(n) => errors.push(format!("delete {}: the broker matched {n} bindings", acl_words(acl))),
                Err(e) => errors.push(format!("delete {}: {e}", acl_words(acl))),
            }
        }
        // Said before creating, which a broker's answer can make librdkafka abort.
        eprintln!("deleted {} of {} binding(s)", deleted.iter().filter(|d| d.is_ok()).count(), deleted.len());
        for (acl, outcome) in changes.create.iter().zip(admin.create(&changes.create)?) {
            if let Some(e) = outcome {
                errors.push(format!("create {}: {e}", acl_words(acl)));
            }
        }
    }
    let report = AclReport { dry_run: work.dry_run, found: found.len(), changes, errors, warnings };
    println!("{}", serde_json::to_string(&report)?);
    Ok(ExitCode::SUCCESS)
}

fn acl_words(a: &KafkaAcl) -> String {
    format!("{} {} {} {} {} {}", a.permission, a.principal, a.operation, a.resource_type, a.pattern_type, a.name)
}

/// The Kafka groups of each consumer with an active grant (`<consumer>.` prefixed) and their
/// lag on the topics of its grants.
async fn consumer_lag(deployment: &Deployment, grants: &[Value]) -> anyhow::Result<Vec<hutong_bus::GroupLag>> {
    let catalog = catalog_of(deployment)?;
    let client = deployment.load()?.kafka.client()?;
    let mut topics: BTreeMap<String, std::collections::BTreeSet<String>> = BTreeMap::new();
    for g in grants {
        if let Some(r) = catalog.get(text(g, "resource")) {
            topics.entry(text(g, "consumer").to_owned()).or_default().extend(r.topics().map(|t| t.name.clone()));
        }
    }
    tokio::task::spawn_blocking(move || {
        let mut out = Vec::new();
        for (consumer, topics) in topics {
            let names: Vec<&str> = topics.iter().map(String::as_str).collect();
            out.extend(hutong_bus::group_lag(
                &client,
                &format!("{consumer}."),
                &names,
                std::time::Duration::from_secs(10),
            )?);
        }
        Ok(out)
    })
    .await?
}

fn print_objections(docs: &[Value]) {
    println!(
        "{}",
        row(&[("id", 8), ("status", 12), ("source", 28), ("pointer", 14), ("filed by", 9), ("days", 4), ("reason", 0)])
    );
    for o in docs {
        let mut status = text(o, "status").to_owned();
        if o["overdue"] == true {
            status.push_str(" OVERDUE");
        }
        let source = format!("{}/{}/{}", text(o, "department"), text(o, "kind"), text(o, "source_id"));
        println!(
            "{}",
            row(&[
                (text(o, "id"), 8),
                (&status, 12),
                (&source, 28),
                (text(o, "pointer"), 14),
                (text(o, "filed_by"), 9),
                (&o["working_days"].to_string(), 4),
                (text(o, "reason"), 0)
            ])
        );
        if let Some(r) = o["resolution"].as_str() {
            println!("          → {r}");
        }
    }
}

pub(crate) async fn objection(cmd: ObjectionCommand) -> anyhow::Result<ExitCode> {
    let (reply, json) = match cmd {
        ObjectionCommand::File { ce_id, pointer, reason, ask } => {
            let r = client(&ask).await?.file_objection(FileObjectionRequest { ce_id, pointer, reason }).await?;
            (r.into_inner().objection_json, ask.json)
        }
        ObjectionCommand::List { mine, all, ask } => {
            let reply = client(&ask).await?.list_objections(ListObjectionsRequest { mine, all }).await?.into_inner();
            let docs: Vec<Value> = reply.objections_json.iter().map(|r| parse(r)).collect();
            if ask.json {
                println!("{}", serde_json::to_string_pretty(&docs)?);
            } else {
                print_objections(&docs);
                println!("{} objections at {}", docs.len(), reply.now);
            }
            return Ok(ExitCode::SUCCESS);
        }
        ObjectionCommand::Ack { id, ask } => {
            let r = client(&ask)
                .await?
                .resolve_objection(ResolveObjectionRequest { id, action: "acknowledge".into(), reason: String::new() })
                .await?;
            (r.into_inner().objection_json, ask.json)
        }
        ObjectionCommand::Dismiss { id, reason, ask } => {
            let r = client(&ask)
                .await?
                .resolve_objection(ResolveObjectionRequest { id, action: "dismiss".into(), reason })
                .await?;
            (r.into_inner().objection_json, ask.json)
        }
    };
    let doc = parse(&reply);
    if json {
        println!("{doc}");
    } else {
        print_objections(std::slice::from_ref(&doc));
    }
    Ok(ExitCode::SUCCESS)
}
