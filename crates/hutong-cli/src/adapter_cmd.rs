//! `hutong adapter check|test`: the admin's tools for adapters, without Kafka.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use hutong_adapter::{Adapter, Adapters, golden};
use hutong_standard::Standard;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum AdapterCommand {
    /// Static checks: parse every adapter (or the one at PATH) and check it
    /// against the standard: targets exist with compatible types, required
    /// fields covered, code lists and maps valid, CEL compiles.
    Check(Target),
    /// Run the golden fixtures (schemas/departments/<dept>/fixtures/<kind>/*.json)
    /// through adapter and standard; a readable diff for each failure.
    Test(Target),
}

#[derive(Debug, clap::Args)]
pub(crate) struct Target {
    /// An adapter file, a department folder, or nothing for every adapter. Without `--schemas`
    /// or `--config`, the schemas folder is the one PATH is in.
    path: Option<PathBuf>,
    /// The configuration and the schemas folder.
    #[command(flatten)]
    deployment: crate::config::Deployment,
}

impl Target {
    /// The schemas folder: `--schemas`, else the config's, else the folder PATH lies in (the
    /// nearest one above it holding `standard/`), else `schemas`; refused with a hint when it
    /// holds no standard.
    fn schemas(&self) -> anyhow::Result<PathBuf> {
        let given = self.deployment.schemas.is_some() || self.deployment.config.is_some();
        let found = match (&self.path, given) {
            (Some(p), false) => canonical(p).ancestors().find(|a| a.join("standard").is_dir()).map(Path::to_owned),
            _ => None,
        };
        let schemas = match found {
            Some(s) => s,
            None => self.deployment.load()?.schemas_dir,
        };
        anyhow::ensure!(
            schemas.join("standard").is_dir(),
            "{} holds no standard (no standard/ folder): give the schemas folder with --schemas DIR (or --config), \
             run from the folder that holds schemas/, or name an adapter inside a schemas folder",
            schemas.display()
        );
        Ok(schemas)
    }
}

fn select(target: &Target, schemas: &Path, standard: &Standard) -> anyhow::Result<Vec<Adapter>> {
    if let Some(p) = &target.path
        && p.extension().is_some_and(|x| x == "toml")
    {
        return Ok(vec![Adapter::load(p, standard)?]);
    }
    let all = Adapters::load(&schemas.join("departments"), standard)?;
    let wanted = target.path.as_deref().map(canonical);
    let under = |p: &Path| wanted.as_ref().is_none_or(|w| canonical(p).starts_with(w));
    let mut chosen: Vec<Adapter> = all.iter().filter(|a| under(&a.path)).cloned().collect();
    // Drafts are checked when their folder or file is named (they are what is being written);
    // otherwise only listed.
    for draft in all.drafts().iter().filter(|p| under(p)) {
        if wanted.is_some() {
            chosen.push(Adapter::load(draft, standard)?);
        } else {
            println!("draft {}  (not live; name it to check it)", draft.display());
        }
    }
    anyhow::ensure!(
        !chosen.is_empty(),
        "no adapter under {}",
        target.path.as_deref().unwrap_or(Path::new("?")).display()
    );
    Ok(chosen)
}

fn canonical(p: &Path) -> PathBuf {
    p.canonicalize().unwrap_or_else(|_| p.to_owned())
}

pub(crate) fn run(cmd: AdapterCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        AdapterCommand::Check(t) => {
            let schemas = t.schemas()?;
            let standard = Standard::load(&schemas)?;
            let adapters = select(&t, &schemas, &standard)?;
            for a in &adapters {
                let entities: Vec<&str> = a.entities().collect();
                let draft = if a.draft { "  [draft: not live until the line draft = true is removed]" } else { "" };
                println!("ok    {}/{} → {}  ({}){draft}", a.department, a.kind, entities.join(", "), a.path.display());
            }
            println!("{} adapter(s) pass the static checks", adapters.len());
            Ok(ExitCode::SUCCESS)
        }
        AdapterCommand::Test(t) => {
            let schemas = t.schemas()?;
            let standard = Standard::load(&schemas)?;
            let (mut passed, mut failed) = (0usize, 0usize);
            for a in select(&t, &schemas, &standard)? {
                let results = match golden::run_fixtures(&a, &standard) {
                    Ok(r) => r,
                    Err(e) => {
                        failed += 1;
                        println!("FAIL  {}/{}: {e}", a.department, a.kind);
                        continue;
                    }
                };
                for r in results {
                    let name = r.path.file_name().and_then(|n| n.to_str()).unwrap_or("?");
                    match r.failure {
                        None => {
                            passed += 1;
                            println!("ok    {}/{} {name}  {}", a.department, a.kind, r.description);
                        }
                        Some(f) => {
                            failed += 1;
                            println!("FAIL  {}/{} {name}  {}\n{}", a.department, a.kind, r.description, indent(&f));
                        }
                    }
                }
            }
            println!("{passed} passed, {failed} failed");
            Ok(if failed == 0 { ExitCode::SUCCESS } else { ExitCode::from(1) })
        }
    }
}

fn indent(s: &str) -> String {
    s.lines().map(|l| format!("      {l}")).collect::<Vec<_>>().join("\n")
}
