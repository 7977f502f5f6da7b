//! `hutong topics`: the declaration of every topic (plan) and how the brokers compare (check).

use std::{process::ExitCode, time::Duration};

use anyhow::Context as _;
use hutong_bus::{TopicPlan, TopicRole};
use hutong_standard::Standard;
use rdkafka::message::Message as _;

use crate::config::Deployment;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum TopicsCommand {
    /// Print every topic of the deployment with its role, key, partitions, replication and
    /// config: as JSON, as `kafka-topics.sh` commands, or as Strimzi `KafkaTopic` resources.
    Plan(PlanArgs),
    /// Compare the brokers' topics with the plan (missing topics, settings that differ);
    /// exit status 1 when anything differs.
    Check(CheckArgs),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum PlanFormat {
    /// The plan as one JSON document.
    Json,
    /// A shell script of `kafka-topics.sh --create --if-not-exists` commands.
    KafkaTopics,
    /// Strimzi `KafkaTopic` resources (kafka.strimzi.io/v1beta2), one YAML document per topic.
    Strimzi,
}

#[derive(Debug, clap::Args)]
pub(crate) struct PlanArgs {
    /// The configuration (topic prefix, partitions, retention, `[privacy]` topics) and the schemas folder.
    #[command(flatten)]
    deployment: Deployment,
    /// Output format.
    #[arg(long, value_enum, default_value_t = PlanFormat::Json)]
    format: PlanFormat,
    /// Strimzi: the Kafka cluster the topics belong to (the `strimzi.io/cluster` label).
    #[arg(long, default_value = "my-cluster")]
    cluster: String,
    /// Strimzi: the namespace of the resources (default: none, `kubectl apply -n` decides).
    #[arg(long)]
    namespace: Option<String>,
    /// kafka-topics: the bootstrap server the commands address (default: the config's).
    #[arg(long)]
    bootstrap_server: Option<String>,
}

#[derive(Debug, clap::Args)]
pub(crate) struct CheckArgs {
    /// The configuration (its `[kafka]` reaches the brokers) and the schemas folder.
    #[command(flatten)]
    deployment: Deployment,
    /// Also read every topic to its end and print how many messages it holds.
    #[arg(long)]
    counts: bool,
    /// With `--counts`: exit status 1 when an entity topic holds no message.
    #[arg(long, requires = "counts")]
    require_messages: bool,
    /// One JSON document instead of the table.
    #[arg(long)]
    json: bool,
}

pub(crate) async fn run(cmd: TopicsCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        TopicsCommand::Plan(args) => plan(&args),
        TopicsCommand::Check(args) => check(&args).await,
    }
}

pub(crate) fn load(deployment: &Deployment) -> anyhow::Result<(hutong_config::ConfigFile, TopicPlan)> {
    let file = deployment.load_schemas()?;
    file.validate_topics()?;
    let standard = Standard::load(&file.schemas_dir)
        .with_context(|| format!("loading the standard from {}", file.schemas_dir.display()))?;
    let plan = hutong_pipeline::topic_plan(&standard, &file.kafka, &file.privacy, file.derived_topics())?;
    Ok((file, plan))
}

fn plan(args: &PlanArgs) -> anyhow::Result<ExitCode> {
    let (file, plan) = load(&args.deployment)?;
    match args.format {
        PlanFormat::Json => println!("{}", serde_json::to_string_pretty(&plan)?),
        PlanFormat::KafkaTopics => {
            print!(
                "{}",
                plan.kafka_topics_commands(args.bootstrap_server.as_deref().unwrap_or(&file.kafka.bootstrap_servers))
            );
        }
        PlanFormat::Strimzi => print!("{}", plan.strimzi(&args.cluster, args.namespace.as_deref())?),
    }
    Ok(ExitCode::SUCCESS)
}

async fn check(args: &CheckArgs) -> anyhow::Result<ExitCode> {
    let (file, plan) = load(&args.deployment)?;
    let found = hutong_bus::check_topics(&file.kafka, &plan).await?;
    let mut counts = std::collections::BTreeMap::new();
    if args.counts {
        let client = file.kafka.client()?;
        let present: Vec<&str> =
            plan.topics.iter().map(|t| t.name.as_str()).filter(|n| !found.missing.iter().any(|m| m == n)).collect();
        let names: Vec<String> = present.iter().map(|n| (*n).to_owned()).collect();
        let read = tokio::task::spawn_blocking(move || {
            let names: Vec<&str> = names.iter().map(String::as_str).collect();
            hutong_bus::read_to_end(&client, &names, Duration::from_secs(120))
        })
        .await??;
        for n in present {
            counts.insert(n.to_owned(), 0usize);
        }
        for m in &read {
            *counts.entry(m.topic().to_owned()).or_default() += 1;
        }
    }
    // Empty entity (and profile) topics count only when asked for.
    let empty_entities: Vec<&str> = plan
        .topics
        .iter()
        .filter(|t| {
            args.require_messages
                && matches!(t.role, TopicRole::Entity { .. } | TopicRole::Profile { .. })
                && counts.get(&t.name) == Some(&0)
        })
        .map(|t| t.name.as_str())
        .collect();
    if args.json {
        println!("{}", serde_json::json!({"missing": found.missing, "mismatches": found.mismatches, "counts": counts}));
    } else {
        println!("{:<34} {:<12} {:>10} {:>9}  state", "topic", "role", "partitions", "messages");
        for t in &plan.topics {
            let role = match &t.role {
                TopicRole::Entity { restricted: true, .. } => "entity (r)",
                TopicRole::Entity { .. } => "entity",
                TopicRole::DeadLetter => "dead-letter",
                TopicRole::Audit => "audit",
                TopicRole::Profile { .. } => "profile",
                TopicRole::ProfileDeadLetter => "profiles dlq",
                TopicRole::Alert => "alert",
                TopicRole::Objection => "objection",
                TopicRole::Match => "match",
            };
            let state = if found.missing.contains(&t.name) {
                "missing".to_owned()
            } else {
                let n = found.mismatches.iter().filter(|m| m.topic == t.name).count();
                if n == 0 { "as declared".to_owned() } else { format!("{n} setting(s) differ") }
            };
            let count = counts.get(&t.name).map_or_else(|| "-".to_owned(), ToString::to_string);
            println!("{:<34} {:<12} {:>10} {:>9}  {state}", t.name, role, t.partitions, count);
        }
        for m in &found.mismatches {
            println!("✗ {m}");
        }
        if !empty_entities.is_empty() {
            println!("✗ entity topic(s) without a message: {}", empty_entities.join(", "));
        }
    }
    let clean = found.is_clean() && empty_entities.is_empty();
    Ok(if clean { ExitCode::SUCCESS } else { ExitCode::from(1) })
}
