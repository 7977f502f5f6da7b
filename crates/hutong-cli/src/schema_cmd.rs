//! `hutong schema …`: compatibility, diff, lint, register, impact.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use hutong_adapter::golden;
use hutong_bus::TopicNames;
use hutong_compat::{Change, Mode};
use hutong_registry::{Registered, Registry, RegistryError};
use hutong_standard::{Standard, privacy::PrivacyConfig};
use serde_json::Value;

use crate::config::Deployment;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum SchemaCommand {
    /// Is NEW compatible with OLD? Exit 0 when compatible, 1 when not, 2 on bad input.
    /// Prints every change with its kind and JSON pointer (Confluent's rules).
    Compat {
        /// The registered (old) schema, a JSON file.
        old: PathBuf,
        /// The proposed (new) schema, a JSON file.
        new: PathBuf,
        /// backward, forward, full, their _transitive forms, or none.
        #[arg(long, default_value = "backward")]
        mode: Mode,
    },
    /// Would NEW be accepted as the next version of SUBJECT in the registry
    /// (under its mode, or --mode)? Exit 0 yes, 1 no, 2 bad input. Same answer
    /// as the admin RPC CheckCompatibility.
    Check {
        /// A subject, e.g. `hutong.person.v2-value`.
        subject: String,
        /// The proposed schema, a JSON file.
        new: PathBuf,
        /// Override the subject's mode.
        #[arg(long)]
        mode: Option<Mode>,
        /// The configuration and the schemas folder.
        #[command(flatten)]
        deployment: Deployment,
    },
    /// The registry's subjects, versions, ids and modes (as JSON with --json).
    List {
        /// The configuration and the schemas folder.
        #[command(flatten)]
        deployment: Deployment,
        /// One JSON object per subject.
        #[arg(long)]
        json: bool,
    },
    /// Print a registered schema version.
    Show {
        /// A subject, e.g. `hutong.person.v2-value`.
        subject: String,
        /// The version (default: the latest).
        #[arg(value_name = "VERSION")]
        number: Option<u32>,
        /// The configuration and the schemas folder.
        #[command(flatten)]
        deployment: Deployment,
    },
    /// The changes from OLD to NEW in words an admin reads.
    Diff {
        /// The old schema, a JSON file.
        old: PathBuf,
        /// The new schema, a JSON file.
        new: PathBuf,
    },
    /// Check the standard: every schema compiles, `$id`s unique and versioned,
    /// titles and descriptions present, annotations valid, code lists exist,
    /// and every topic's schema (under the config's topic prefix and `[privacy]`) is registered.
    Lint {
        /// The configuration and the schemas folder.
        #[command(flatten)]
        deployment: Deployment,
        /// Topic prefix of the subjects (overrides the config's `kafka.topic-prefix`).
        #[arg(long)]
        prefix: Option<String>,
    },
    /// Register the standard's entity schemas as new subject versions where
    /// they changed; refused (exit 1) when a change breaks the subject's
    /// compatibility mode, with the changes and the adapters affected.
    Register {
        /// The gateway's config (its topic prefix and `[privacy]` topics: each topic's schema is its
        /// view) and the schemas folder.
        #[command(flatten)]
        deployment: Deployment,
        /// Topic prefix of the subjects (overrides the config's `kafka.topic-prefix`).
        #[arg(long)]
        prefix: Option<String>,
        /// Check only; write nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Which adapters no longer pass their static checks or fixtures against
    /// the standard as it is now in `schemas/` (run it after editing a schema).
    Impact {
        /// The configuration and the schemas folder.
        #[command(flatten)]
        deployment: Deployment,
    },
}

fn read_json(path: &Path) -> anyhow::Result<Value> {
    let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))
}

/// Exit status 2 for unreadable input, as the compat contract promises.
fn bad_input(e: anyhow::Error) -> ExitCode {
    eprintln!("error: {e:#}");
    ExitCode::from(2)
}

pub(crate) fn run(cmd: SchemaCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        SchemaCommand::Compat { old, new, mode } => {
            let (old, new) = match (read_json(&old), read_json(&new)) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(e), _) | (_, Err(e)) => return Ok(bad_input(e)),
            };
            let report = hutong_compat::check(&[old], &new, mode);
            for c in &report.all {
                println!("{} {c}", if c.is_compatible() { "  " } else { "✗ " });
            }
            if report.compatible {
                println!("compatible ({mode}): {} change(s)", report.all.len());
                Ok(ExitCode::SUCCESS)
            } else {
                println!("NOT compatible ({mode}): {} breaking change(s)", report.incompatible.len());
                Ok(ExitCode::from(1))
            }
        }
        SchemaCommand::Diff { old, new } => {
            let (old, new) = match (read_json(&old), read_json(&new)) {
                (Ok(o), Ok(n)) => (o, n),
                (Err(e), _) | (_, Err(e)) => return Ok(bad_input(e)),
            };
            let changes = hutong_compat::diff(&old, &new);
            if changes.is_empty() {
                println!("no changes that matter to consumers");
            }
            for c in &changes {
                println!("{}", in_words(c));
            }
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::Check { subject, new, mode, deployment } => {
            let new = match read_json(&new) {
                Ok(n) => n,
                Err(e) => return Ok(bad_input(e)),
            };
            let registry = Registry::load(&deployment.load_schemas()?.schemas_dir)?;
            let (mode, report) = match registry.check_subject(&subject, &new, None, mode) {
                Ok(r) => r,
                Err(e) => return Ok(bad_input(e.into())),
            };
            for c in &report.all {
                println!("{} {c}", if c.is_compatible() { "  " } else { "✗ " });
            }
            println!(
                "{} ({mode}) as the next version of {subject}",
                if report.compatible { "compatible" } else { "NOT compatible" }
            );
            Ok(if report.compatible { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
        SchemaCommand::List { deployment, json } => {
            let registry = Registry::load(&deployment.load_schemas()?.schemas_dir)?;
            for s in registry.subjects() {
                let versions = registry.versions(s).unwrap_or_default();
                let latest = registry.version(s, None).map(|v| v.id).unwrap_or_default();
                let mode = registry.compatibility(s);
                if json {
                    println!(
                        "{}",
                        serde_json::json!({"subject": s, "versions": versions, "compatibility": mode.name(), "latest_id": latest})
                    );
                } else {
                    println!("{s:<36} versions {versions:?}  latest id {latest}  {mode}");
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::Show { subject, number: version, deployment } => {
            let registry = Registry::load(&deployment.load_schemas()?.schemas_dir)?;
            let v = registry
                .version(&subject, version)
                .with_context(|| format!("no version {version:?} of subject {subject}"))?;
            eprintln!("{} version {} (id {}, standard {})", v.subject, v.version, v.id, v.standard_version);
            println!("{}", serde_json::to_string_pretty(&v.schema)?);
            Ok(ExitCode::SUCCESS)
        }
        SchemaCommand::Lint { deployment, prefix } => lint(&topics_of(&deployment, prefix)?),
        SchemaCommand::Register { deployment, prefix, dry_run } => register(&topics_of(&deployment, prefix)?, dry_run),
        SchemaCommand::Impact { deployment } => {
            let schemas = deployment.load_schemas()?.schemas_dir;
            let standard = Standard::load(&schemas)?;
            Ok(if print_impact(&schemas, &standard) == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

/// A change in words: where, what, and whether consumers break.
pub(crate) fn in_words(c: &Change) -> String {
    let place = c.pointer.trim_start_matches('#');
    let place = if place.is_empty() || place == "/" { "the root".to_owned() } else { place_in_words(place) };
    let verdict = if c.is_compatible() { "compatible" } else { "BREAKS readers of old data" };
    format!("- at {place}: {} [{}] — {verdict}", c.kind.description(), c.kind.name())
}

fn place_in_words(pointer: &str) -> String {
    let mut words = Vec::new();
    let mut segs = pointer.trim_start_matches('/').split('/').peekable();
    while let Some(s) = segs.next() {
        match s {
            "properties" => {
                if let Some(name) = segs.next() {
                    words.push(format!("field `{name}`"));
                }
            }
            "items" => words.push("each item".to_owned()),
            "$defs" | "definitions" => {
                if let Some(name) = segs.next() {
                    words.push(format!("definition `{name}`"));
                }
            }
            other => words.push(format!("`{other}`")),
        }
    }
    words.join(" → ")
}

/// Where the subjects come from: the schemas folder, the topic names, the `[privacy]` topics
/// and the entities merged into profiles (`[profiles] entities`: their profile topics are
/// subjects whether or not this deployment runs the profile service; the registry is shared),
/// and the governance consumers' alert and match topics.
struct Topics {
    schemas: PathBuf,
    names: TopicNames,
    privacy: PrivacyConfig,
    profiles: Vec<String>,
}

impl Topics {
    /// Every topic's subject and schema (its view) under these names and privacy settings, then
    /// every profile topic's.
    fn subjects(&self, standard: &Standard) -> anyhow::Result<Vec<(String, Value)>> {
        let topic = |e: &hutong_standard::Entity| self.names.entity(&e.name, e.major);
        let mut subjects = Registry::entity_subjects(standard, &topic, &self.privacy)?;
        let profile = |entity: &str| self.names.profile(entity);
        let profiles =
            hutong_registry::profile::profile_subjects(standard, &topic, &profile, &self.privacy, &self.profiles)?;
        subjects.extend(profiles.into_iter().map(|p| (p.subject, p.schema)));
        let governance = hutong_registry::governance::governance_subjects(
            &self.names.alert(),
            &self.names.matching(),
            &self.names.objection(),
        );
        subjects.extend(governance.into_iter().map(|g| (g.subject, g.schema)));
        Ok(subjects)
    }
}

fn topics_of(deployment: &Deployment, prefix: Option<String>) -> anyhow::Result<Topics> {
    let mut file = deployment.load_schemas()?;
    if let Some(p) = prefix {
        file.kafka.topic_prefix = p;
    }
    Ok(Topics {
        schemas: file.schemas_dir,
        names: file.kafka.topics(),
        privacy: file.privacy,
        profiles: file.profiles.entities,
    })
}

fn lint(topics: &Topics) -> anyhow::Result<ExitCode> {
    let schemas = &topics.schemas;
    let standard = match Standard::load(schemas) {
        Ok(s) => s,
        Err(e) => {
            println!("✗ the standard does not load: {e}");
            return Ok(ExitCode::from(1));
        }
    };
    let mut issues: Vec<String> = hutong_standard::lint::lint(&standard).iter().map(ToString::to_string).collect();
    let registry = Registry::load(schemas)?;
    for (subject, schema) in topics.subjects(&standard)? {
        if registry.find(&subject, &schema).is_none() {
            issues.push(format!("{subject}: the current schema is not registered (run `hutong schema register`)"));
        }
    }
    for i in &issues {
        println!("✗ {i}");
    }
    let docs = standard.documents().count();
    println!(
        "{} schema(s), {} entities, {} code lists: {} issue(s)",
        docs,
        standard.entities().count(),
        standard.codes().iter().count(),
        issues.len()
    );
    Ok(if issues.is_empty() { ExitCode::SUCCESS } else { ExitCode::from(1) })
}

fn register(topics: &Topics, dry_run: bool) -> anyhow::Result<ExitCode> {
    let schemas = &topics.schemas;
    let standard = Standard::load(schemas)?;
    let mut registry = Registry::load(schemas)?;
    let mut refused = 0;
    for (subject, schema) in topics.subjects(&standard)? {
        match registry.register(&subject, schema, standard.version()) {
            Ok(Registered::Unchanged { version, id }) => {
                println!("  {subject}: unchanged (version {version}, id {id})")
            }
            Ok(Registered::New { version, id }) => println!("+ {subject}: version {version}, id {id}"),
            Err(RegistryError::Incompatible { subject, mode, changes }) => {
                refused += 1;
                println!("✗ {subject}: refused, not {mode} compatible with its history:");
                for c in &changes {
                    println!("    {}", in_words(c));
                }
            }
            Err(e) => return Err(e.into()),
        }
    }
    if refused > 0 {
        println!("{refused} subject(s) refused; nothing written. Adapters affected by the working-tree standard:");
        print_impact(schemas, &standard);
        return Ok(ExitCode::from(1));
    }
    if dry_run {
        println!("dry run: nothing written");
    } else {
        registry.save()?;
        println!("registry saved under {}", schemas.join("registry").display());
    }
    Ok(ExitCode::SUCCESS)
}

/// Prints the adapters that fail against `standard`; returns how many.
fn print_impact(schemas: &Path, standard: &Standard) -> usize {
    let standing = golden::standing(&schemas.join("departments"), standard);
    let mut broken = 0;
    for s in &standing {
        let name = s.name.clone().unwrap_or_else(|| s.path.display().to_string());
        if let Some(e) = &s.check_error {
            broken += 1;
            println!("  ✗ {name}: static checks fail: {e}");
        } else if s.fixtures == 0 {
            broken += 1;
            println!("  ✗ {name}: {}", s.failing_fixtures.join("; "));
        } else if !s.failing_fixtures.is_empty() {
            broken += 1;
            println!("  ✗ {name}: {} of {} fixtures fail", s.failing_fixtures.len(), s.fixtures);
            for f in &s.failing_fixtures {
                println!("      {}", f.lines().next().unwrap_or_default());
            }
        }
    }
    println!("  {} of {} adapter(s) affected", broken, standing.len());
    broken
}
