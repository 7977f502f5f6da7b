//! `hutong profiles serve|rules` (the profile service, 一人一档) and `hutong profile …` (asking
//! it: a person by citizen ID, a household with its members, a building with its residents, a
//! grid with its population, the conflicts).

use std::{path::PathBuf, process::ExitCode};

use clap::Subcommand;
use hutong_proto::v1::{
    FindPersonRequest, GetProfileRequest, ListConflictsRequest, ListPeopleRequest, profiles_client::ProfilesClient,
};
use serde_json::{Value, json};

use crate::{
    client::ProfilesConnectArgs,
    config::Deployment,
    table::{clip, pad},
};

/// The profile service.
#[derive(Debug, Subcommand)]
pub(crate) enum ProfilesCommand {
    /// Run the profile service: a consumer group over the entity topics merging every
    /// department's facts into one profile per entity (`[profiles]` of the config: store,
    /// group, port), publishing them, and serving `hutong.v1.Profiles`.
    Serve {
        /// Config file (TOML), as `hutong serve` reads it; `[profiles]` is this service's part.
        #[arg(long, short)]
        config: Option<PathBuf>,
    },
    /// Measure the store without Kafka: synthetic facts (4 per person) applied in batches as the
    /// consumer applies them (a rebuild from scratch), then person-by-citizen-ID and
    /// people-of-a-grid queries with the persons loaded. Needs a fresh store.
    Bench {
        #[command(flatten)]
        deployment: Deployment,
        /// The store: `sqlite:PATH` or `postgres://…` (default: a new SQLite file in a temp dir).
        #[arg(long)]
        store: Option<String>,
        /// Persons to load (4 facts each).
        #[arg(long, default_value_t = 100_000)]
        persons: usize,
        /// Facts per transaction (default: the config's `profiles.batch-size`, 20,000).
        #[arg(long)]
        batch: Option<usize>,
        /// Queries of each kind.
        #[arg(long, default_value_t = 2_000)]
        queries: usize,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
    /// Check the merge rules (`schemas/profiles/*.toml`) against the standard and the adapters
    /// and print them: per entity and field, the authorities in order, or a set merge.
    Rules {
        #[command(flatten)]
        deployment: Deployment,
        /// Print JSON.
        #[arg(long)]
        json: bool,
    },
}

/// Questions to the profile service; every answer is audited there.
#[derive(Debug, Subcommand)]
pub(crate) enum ProfileCommand {
    /// A person's merged profile: by citizen ID (the service computes the person key; the ID is
    /// neither stored nor logged) or by person key.
    Person {
        /// The person key (64 hex characters).
        #[arg(value_name = "PERSON_KEY", required_unless_present = "citizen_id", conflicts_with = "citizen_id")]
        person_key: Option<String>,
        /// The citizen ID (公民身份号码); from the environment keeps it out of the process list.
        #[arg(long, env = "HUTONG_CITIZEN_ID", hide_env_values = true)]
        citizen_id: Option<String>,
        #[command(flatten)]
        ask: Ask,
    },
    /// A household (户) with its members and their relation to the head.
    Household {
        /// The household key.
        #[arg(value_name = "HOUSEHOLD_KEY")]
        household_key: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// A building (楼栋) with its residents (人房关系, room).
    Building {
        /// The building key.
        #[arg(value_name = "BUILDING_KEY")]
        building_key: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// A grid (网格) with everyone living in it (directly, or through a building or household).
    Grid {
        /// The grid code.
        code: String,
        #[command(flatten)]
        ask: Ask,
    },
    /// Fields where departments disagree, and failed checks, counted per department.
    Conflicts {
        /// Only this entity.
        #[arg(long)]
        entity: Option<String>,
        /// Only conflicts this department's value lost.
        #[arg(long)]
        department: Option<String>,
        /// At most this many.
        #[arg(long, default_value_t = 50)]
        limit: u32,
        #[command(flatten)]
        ask: Ask,
    },
}

/// What every question needs.
#[derive(Debug, Clone, clap::Args)]
pub(crate) struct Ask {
    #[command(flatten)]
    connect: ProfilesConnectArgs,
    /// Print the answer as JSON.
    #[arg(long)]
    json: bool,
    /// At most this many people in a list.
    #[arg(long, default_value_t = 100)]
    people: u32,
}

/// `hutong profiles …`.
pub(crate) async fn serve_or_check(
    cmd: ProfilesCommand,
    shutdown: impl Future<Output = ()> + Send,
) -> anyhow::Result<ExitCode> {
    #[cfg(not(feature = "serve"))]
    {
        let _ = (cmd, shutdown);
        anyhow::bail!("this hutong was built without the `serve` feature: it has no profile service")
    }
    #[cfg(feature = "serve")]
    {
        match cmd {
            ProfilesCommand::Serve { config } => {
                let file = hutong_config::ConfigFile::load(config.as_deref())?;
                let config = file.validate_and_build()?;
                hutong_profiles::serve(config, shutdown).await?;
                tracing::info!("profile service stopped");
                Ok(ExitCode::SUCCESS)
            }
            ProfilesCommand::Bench { deployment, store, persons, batch, queries, json } => {
                let file = deployment.load()?;
                let (_, rules) = hutong_profiles::load_rules(&file.schemas_dir, file.profiles.rules_dir.as_deref())?;
                let dir = tempfile::tempdir()?;
                let url: hutong_profiles::StoreUrl = match store {
                    Some(s) => s.parse()?,
                    None => hutong_profiles::StoreUrl::Sqlite(dir.path().join("bench.db")),
                };
                let step = (persons * 4 / 10).max(1);
                let last = std::cell::Cell::new(0);
                let progress = |done: usize, total: usize| {
                    if done - last.get() >= step || done == total {
                        last.set(done);
                        eprintln!("[bench] {done}/{total} facts applied");
                    }
                };
                // The PostgreSQL client blocks on a runtime of its own: off the async threads.
                let report = tokio::task::block_in_place(|| {
                    let batch = batch.unwrap_or(file.profiles.batch_size).max(1);
                    hutong_profiles::bench::run(&url, &rules, persons, batch, queries.max(1), &progress)
                })?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&report)?);
                } else {
                    println!("store                 {}", report.store);
                    println!(
                        "facts applied         {} ({} persons, batches of {})",
                        report.facts, report.persons, report.batch
                    );
                    println!("apply (rebuild) time  {:.1} s", report.apply_seconds);
                    println!("facts/s               {:.0}", report.facts_per_second);
                    let [p50, p99, max] = report.person_by_citizen_id_us;
                    println!("person by citizen ID  p50 {p50} µs, p99 {p99} µs, max {max} µs");
                    let [p50, p99, max] = report.people_of_grid_us;
                    println!(
                        "people of a grid      p50 {p50} µs, p99 {p99} µs, max {max} µs ({} persons per grid, 100 returned)",
                        report.persons_per_grid
                    );
                }
                Ok(ExitCode::SUCCESS)
            }
            ProfilesCommand::Rules { deployment, json } => {
                let file = deployment.load()?;
                let (_, rules) = hutong_profiles::load_rules(&file.schemas_dir, file.profiles.rules_dir.as_deref())?;
                if json {
                    println!("{}", serde_json::to_string_pretty(&rules)?);
                    return Ok(ExitCode::SUCCESS);
                }
                for e in rules.iter() {
                    println!("{} (rules {}, key {})", e.entity, e.rules_version, e.key_field);
                    for (field, rule) in &e.fields {
                        let how = match rule.merge {
                            hutong_profiles::rules::Merge::Set => "set: every source's elements".to_owned(),
                            hutong_profiles::rules::Merge::Ranked if rule.authority.is_empty() => {
                                "most recent".to_owned()
                            }
                            hutong_profiles::rules::Merge::Ranked => {
                                format!("{}, then most recent", rule.authority.join(" > "))
                            }
                        };
                        println!("  {} {how}", pad(field, 24));
                    }
                    println!("  {} most recent", pad("(any other field)", 24));
                }
                Ok(ExitCode::SUCCESS)
            }
        }
    }
}

/// `hutong profile …`.
pub(crate) async fn ask(cmd: ProfileCommand) -> anyhow::Result<ExitCode> {
    let (ask, answer) = match cmd {
        ProfileCommand::Person { person_key, citizen_id, ask } => {
            let mut client = ProfilesClient::new(ask.connect.channel().await?);
            let reply = match citizen_id {
                Some(citizen_id) => client.find_person(FindPersonRequest { citizen_id }).await,
                None => {
                    let key = person_key.unwrap_or_default();
                    client.get_profile(GetProfileRequest { entity: "person".into(), key }).await
                }
            };
            let profile: Value = serde_json::from_str(&reply?.into_inner().profile_json)?;
            (ask, json!({"profile": profile}))
        }
        ProfileCommand::Household { household_key, ask } => {
            let answer = with_people(&ask, "household", household_key).await?;
            (ask, answer)
        }
        ProfileCommand::Building { building_key, ask } => {
            let answer = with_people(&ask, "building", building_key).await?;
            (ask, answer)
        }
        ProfileCommand::Grid { code, ask } => {
            let answer = with_people(&ask, "grid", code).await?;
            (ask, answer)
        }
        ProfileCommand::Conflicts { entity, department, limit, ask } => {
            let mut client = ProfilesClient::new(ask.connect.channel().await?);
            let request = ListConflictsRequest {
                entity: entity.unwrap_or_default(),
                department: department.unwrap_or_default(),
                limit,
            };
            let reply = client.list_conflicts(request).await?.into_inner();
            let conflicts: Vec<Value> =
                reply.conflicts_json.iter().map(|c| serde_json::from_str(c)).collect::<Result<_, _>>()?;
            let per: std::collections::BTreeMap<_, _> = reply.per_department.into_iter().collect();
            (ask, json!({"conflicts": conflicts, "per_department": per}))
        }
    };
    if ask.json {
        println!("{}", serde_json::to_string_pretty(&answer)?);
    } else {
        print_answer(&answer);
    }
    Ok(ExitCode::SUCCESS)
}

/// The profile of a household, building or grid (if any department describes it) and its people.
async fn with_people(ask: &Ask, entity: &str, key: String) -> anyhow::Result<Value> {
    let mut client = ProfilesClient::new(ask.connect.channel().await?);
    let profile = match client.get_profile(GetProfileRequest { entity: entity.into(), key: key.clone() }).await {
        Ok(r) => serde_json::from_str(&r.into_inner().profile_json)?,
        Err(s) if s.code() == tonic::Code::NotFound => Value::Null,
        // A consumer may be granted the people and not the household, building or grid itself.
        Err(s) if s.code() == tonic::Code::PermissionDenied => {
            eprintln!("the {entity}'s own profile is not shown: {}", s.message());
            Value::Null
        }
        Err(s) => return Err(s.into()),
    };
    let people = client
        .list_people(ListPeopleRequest { entity: entity.into(), key: key.clone(), limit: ask.people })
        .await?
        .into_inner();
    if profile.is_null() && people.total == 0 {
        anyhow::bail!("no {entity} {key}: no department states anything about it, and nobody is linked to it");
    }
    let list: Vec<Value> = people
        .people
        .iter()
        .map(|p| {
            let profile: Value = serde_json::from_str(&p.profile_json).unwrap_or(Value::Null);
            let link: Value = serde_json::from_str(&p.link_json).unwrap_or(Value::Null);
            json!({"person_key": p.person_key, "link": link, "profile": profile})
        })
        .collect();
    Ok(json!({"profile": profile, "people": list, "population": people.total}))
}

/// For people: the record's fields with their source, the conflicts, the people.
fn print_answer(answer: &Value) {
    if let Some(conflicts) = answer.get("conflicts").and_then(Value::as_array) {
        println!("{} conflict(s) shown; per department whose value lost or failed a check:", conflicts.len());
        for (d, n) in answer["per_department"].as_object().into_iter().flatten() {
            println!("  {} {n}", pad(d, 12));
        }
        for c in conflicts {
            println!(
                "{} {} {}: {}",
                c["entity"].as_str().unwrap_or(""),
                short(&c["key"]),
                c["field"].as_str().unwrap_or(""),
                describe(c)
            );
        }
        return;
    }
    let p = &answer["profile"];
    if !p.is_null() {
        println!(
            "{} {}  (rules {}, {} source record(s))",
            p["entity"].as_str().unwrap_or(""),
            p["key"].as_str().unwrap_or(""),
            p["rules_version"].as_str().unwrap_or(""),
            p["sources"].as_array().map_or(0, Vec::len)
        );
        println!("  {} {} source", pad("field", 24), pad("value", 44));
        for (field, value) in p["record"].as_object().into_iter().flatten() {
            let prov = &p["fields"][field];
            let source = match prov.get("elements").and_then(Value::as_array) {
                Some(elements) => {
                    let mut depts: Vec<&str> = elements
                        .iter()
                        .flat_map(|e| e["sources"].as_array().into_iter().flatten())
                        .filter_map(|s| s["department"].as_str())
                        .collect();
                    depts.sort_unstable();
                    depts.dedup();
                    format!("set of {} from {}", elements.len(), depts.join(", "))
                }
                None if prov.get("source").is_some() => source_of(&prov["source"], prov["by"].as_str()),
                None => "(the key)".to_owned(),
            };
            println!("  {} {} {source}", pad(field, 24), pad(&clip(&value_text(value), 44), 44));
        }
        for (field, prov) in p["fields"].as_object().into_iter().flatten() {
            if let Some(w) = prov.get("withheld").and_then(Value::as_str) {
                println!("  {} {} {w}", pad(field, 24), pad("(withheld)", 44));
            }
        }
        for c in p["conflicts"].as_array().into_iter().flatten().chain(p["checks"].as_array().into_iter().flatten()) {
            println!("  conflict: {} — {}", c["field"].as_str().unwrap_or(""), describe(c));
        }
        for o in p["objections"].as_array().into_iter().flatten() {
            let fields: Vec<&str> = o["fields"].as_array().into_iter().flatten().filter_map(Value::as_str).collect();
            println!(
                "  异议 {} ({}): {} {} — on {}",
                o["id"].as_str().unwrap_or(""),
                o["status"].as_str().unwrap_or(""),
                o["pointer"].as_str().unwrap_or(""),
                o["reason"].as_str().unwrap_or(""),
                fields.join(", ")
            );
        }
    }
    if let Some(people) = answer.get("people").and_then(Value::as_array) {
        let population = answer["population"].as_u64().unwrap_or_default();
        match people.len() as u64 {
            shown if shown < population => println!("people: {population} (the first {shown} shown; --people N)"),
            _ => println!("people: {population}"),
        }
        for person in people {
            let name = person["profile"]["record"]["name"].as_str().unwrap_or("(no profile)");
            let links: Vec<String> = person["link"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|l| {
                    let mut parts = vec![format!("via {}", l["via"].as_str().unwrap_or("?"))];
                    for k in ["relation", "room"] {
                        if let Some(v) = l[k].as_str() {
                            parts.push(format!("{k} {v}"));
                        }
                    }
                    parts.join(" ")
                })
                .collect();
            println!("  {}  {} {}", short(&person["person_key"]), pad(name, 8), links.join("; "));
        }
    }
}

fn describe(c: &Value) -> String {
    match c["what"].as_str() {
        Some("disagreement") => format!(
            "{} says {}, {} says {} (kept: {})",
            c["winner"]["source"]["department"].as_str().unwrap_or("?"),
            value_text(&c["winner"]["value"]),
            c["loser"]["source"]["department"].as_str().unwrap_or("?"),
            value_text(&c["loser"]["value"]),
            c["winner"]["source"]["department"].as_str().unwrap_or("?"),
        ),
        Some(check) => format!(
            "{check}: the citizen ID says {}, {} says {}",
            value_text(&c["expected"]),
            c["source"]["department"].as_str().unwrap_or("?"),
            value_text(&c["value"])
        ),
        None => c.to_string(),
    }
}

fn source_of(s: &Value, by: Option<&str>) -> String {
    format!(
        "{}/{} r{} {}{}",
        s["department"].as_str().unwrap_or("?"),
        s["kind"].as_str().unwrap_or("?"),
        s["revision"],
        s["time"].as_str().map_or("", |t| t.get(..10).unwrap_or(t)),
        by.map_or(String::new(), |b| format!(" ({b})"))
    )
}

fn value_text(v: &Value) -> String {
    match v {
        Value::String(s) => s.clone(),
        Value::Null => "(withheld)".to_owned(),
        other => other.to_string(),
    }
}

fn short(v: &Value) -> String {
    let s = v.as_str().unwrap_or_default();
    if s.len() > 16 && s.is_ascii() { format!("{}…", &s[..12]) } else { s.to_owned() }
}
