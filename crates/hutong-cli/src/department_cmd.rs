//! `hutong department new`: everything a new department needs before its first mapping — the
//! code in the department list, its folder with the adapter skeleton (the sample's source
//! fields listed), its sample and fixture folders, its policy entry and its development
//! certificate — then the commands that take it to its first submission.

use std::{
    path::{Path, PathBuf},
    process::ExitCode,
};

use anyhow::Context as _;
use hutong_client::{ReadOptions, decoded_payload, read_records};
use serde_json::Value;

use crate::input::FormatArg;

#[derive(Debug, clap::Subcommand)]
pub(crate) enum DepartmentCommand {
    /// Scaffold a new department: its code, adapter skeleton, sample and fixture folders, policy
    /// entry and development certificate; prints the next commands.
    #[command(after_help = "Example (退役军人事务局 with an Excel export):\n  \
        hutong department new tuiyi --name 退役军人事务局 --kind veteran_registration \\\n    \
        --sample 退役军人名册.xlsx --id-field 编号 --revision-field 更新时间")]
    New(NewArgs),
}

#[derive(Debug, clap::Args)]
pub(crate) struct NewArgs {
    /// The department id: lower-case letters and digits (pinyin, e.g. `tuiyi`), the folder under
    /// `schemas/departments/`, the prefix of its keys and the policy's identity.
    id: String,
    /// Its name in Chinese, e.g. 退役军人事务局.
    #[arg(long)]
    name: String,
    /// Its name in English (the department list's `name_en`).
    #[arg(long, default_value = "")]
    name_en: String,
    /// The source kind of its first export, e.g. `veteran_registration` (lower case, `_`).
    #[arg(long, short)]
    kind: String,
    /// The standard's entity the kind maps to (see docs/standard.md).
    #[arg(long, default_value = "person")]
    entity: String,
    /// A sample of its export (NDJSON, CSV or a workbook): copied to `samples/`, and its field
    /// names listed in the adapter skeleton.
    #[arg(long)]
    sample: Option<PathBuf>,
    /// The sample's shape.
    #[arg(long, value_enum, default_value = "auto")]
    format: FormatArg,
    /// The sample's encoding, for CSV (default: UTF-8 when it is, else GB18030).
    #[arg(long)]
    encoding: Option<String>,
    /// The field holding the record's id in the department's system (the adapter's `source-id`,
    /// the default of `hutong ingest --id-field`).
    #[arg(long)]
    id_field: Option<String>,
    /// The field holding the record's version or last-modified time (for the printed commands).
    #[arg(long)]
    revision_field: Option<String>,
    /// The `schemas/` folder.
    #[arg(long, default_value = "schemas")]
    schemas: PathBuf,
    /// The policy file to add the department to.
    #[arg(long, default_value = "deploy/local/policy.toml")]
    policy: PathBuf,
    /// The development PKI to issue its certificate in (`hutong certs init`); `-` issues none
    /// (production: the deployment's CA issues it).
    #[arg(long, default_value = ".hutong/pki")]
    pki: PathBuf,
}

pub(crate) fn run(cmd: DepartmentCommand) -> anyhow::Result<ExitCode> {
    match cmd {
        DepartmentCommand::New(args) => new(&args),
    }
}

fn is_id(s: &str, extra: &[char]) -> bool {
    s.chars().next().is_some_and(|c| c.is_ascii_lowercase())
        && s.chars().all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || extra.contains(&c))
}

/// The field names of a sample's records, in the order they first appear.
fn sample_fields(path: &Path, kind: &str, args: &NewArgs) -> anyhow::Result<Vec<String>> {
    let options =
        ReadOptions { format: args.format.into(), encoding: args.encoding.as_deref(), ..ReadOptions::default() };
    let mut fields: Vec<String> = Vec::new();
    for line in read_records(path, kind, &options)?.iter().take(1000) {
        if let Some(Value::Object(obj)) = decoded_payload(&line.record) {
            for k in obj.keys() {
                if !fields.contains(k) {
                    fields.push(k.clone());
                }
            }
        }
    }
    Ok(fields)
}

fn skeleton(args: &NewArgs, sample: Option<&str>, fields: &[String]) -> String {
    let mut s = format!(
        "# {name} {kind} → {entity}. Made by `hutong department new`: map the source fields below\n\
         # onto the standard's fields (docs/standard.md; transforms and expressions: docs/adapters.md),\n\
         # then `hutong adapter check schemas/departments/{id}` until it passes.\n",
        name = one_line(&args.name),
        kind = args.kind,
        entity = args.entity,
        id = args.id,
    );
    if let Some(sample) = sample {
        s.push_str(&format!("#\n# Source fields of {}:\n", one_line(sample)));
        for f in fields {
            s.push_str(&format!("#   {}\n", one_line(f)));
        }
    }
    s.push_str(&format!(
        "#\n# A draft: `hutong adapter check` checks it when named; the gateway and the other commands leave it\n\
         # aside until the line `draft = true` is removed (so it never stops the other adapters loading).\n\
         draft = true\nversion = 1\ndepartment = \"{id}\"\nkind = \"{kind}\"\nsource-version = \"1\"\n\
         update-cycle = \"monthly\"\ntitle = {title}\ndescription = \"What the export holds, for the resource catalogue.\"\n",
        id = args.id,
        kind = args.kind,
        title = toml_string(&format!("{} {}", args.name, args.kind)),
    ));
    if let Some(f) = &args.id_field {
        s.push_str(&format!("source-id = {{ from = {} }}\n", toml_string(f)));
    }
    s.push_str(&format!("\n[[output]]\nentity = \"{}\"\n", args.entity));
    for f in fields.iter().filter(|f| Some(*f) != args.id_field.as_ref() && Some(*f) != args.revision_field.as_ref()) {
        s.push_str(&format!(
            "\n# [[output.field]]\n# to = \"/…\"\n# from = {}\n# transforms = [\"trim\", \"nfkc\"]\n",
            toml_string(f)
        ));
    }
    s
}

/// Text for a comment line: control characters (a header cell's Alt+Enter) as spaces.
fn one_line(s: &str) -> String {
    s.chars().map(|c| if c.is_control() { ' ' } else { c }).collect()
}

/// A value for a printed shell command: quoted when it holds more than letters, digits, `_-.`.
fn shell_word(s: &str) -> String {
    if !s.is_empty() && s.chars().all(|c| c.is_alphanumeric() || "_-./".contains(c)) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', "'\\''"))
    }
}

fn toml_string(s: &str) -> String {
    serde_json::to_string(s).expect("a string serialises")
}

/// Adds the department to the code list (`schemas/codes/department.json`), keeping its layout.
fn add_code(schemas: &Path, args: &NewArgs) -> anyhow::Result<bool> {
    let path = schemas.join("codes/department.json");
    let text = std::fs::read_to_string(&path).with_context(|| format!("reading {}", path.display()))?;
    let mut list: Value = serde_json::from_str(&text).with_context(|| format!("{}: not JSON", path.display()))?;
    let codes = list["codes"].as_array_mut().with_context(|| format!("{}: no \"codes\" array", path.display()))?;
    if let Some(known) = codes.iter().find(|c| c["code"] == args.id.as_str()) {
        println!("{} is in {} already (as {})", args.id, path.display(), known["name"]);
        return Ok(false);
    }
    codes.push(serde_json::json!({"code": args.id, "name": args.name, "name_en": args.name_en, "aliases": []}));
    let mut out = Vec::new();
    let mut ser = serde_json::Serializer::with_formatter(&mut out, serde_json::ser::PrettyFormatter::with_indent(b" "));
    serde::Serialize::serialize(&list, &mut ser)?;
    out.push(b'\n');
    std::fs::write(&path, out).with_context(|| format!("writing {}", path.display()))?;
    Ok(true)
}

/// Adds `[departments.<id>]` to the policy file, refusing to leave a policy the gateway would not load.
fn add_to_policy(args: &NewArgs) -> anyhow::Result<bool> {
    let path = &args.policy;
    let before = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
    let policy = hutong_config::Policy::load(path)?;
    if policy.identities().iter().any(|i| i.principal.name() == args.id) {
        return Ok(false);
    }
    let block = format!(
        "\n[departments.{id}]  # {name}\ncertificate = \"{id}.departments.hutong.local\"\nkinds = [\"{kind}\"]\n",
        id = args.id,
        name = one_line(&args.name),
        kind = args.kind
    );
    let mut after = before.clone();
    if !after.ends_with('\n') {
        after.push('\n');
    }
    after.push_str(&block);
    std::fs::write(path, &after).with_context(|| format!("writing {}", path.display()))?;
    if let Err(e) = hutong_config::Policy::load(path) {
        std::fs::write(path, before)?;
        return Err(anyhow::Error::from(e).context(format!("{}: left as it was", path.display())));
    }
    Ok(true)
}

fn new(args: &NewArgs) -> anyhow::Result<ExitCode> {
    anyhow::ensure!(
        is_id(&args.id, &[]),
        "department id {:?}: lower-case letters and digits, starting with a letter (pinyin, e.g. tuiyi)",
        args.id
    );
    anyhow::ensure!(
        is_id(&args.kind, &['_']),
        "kind {:?}: lower-case letters, digits and _, starting with a letter (e.g. veteran_registration)",
        args.kind
    );
    anyhow::ensure!(
        !args.name.trim().is_empty() && !args.name.chars().any(char::is_control),
        "--name: the department's name in Chinese, on one line"
    );
    // Everything is read and checked before anything is written: a missing policy file or code
    // list leaves no half-made department behind.
    hutong_config::Policy::load(&args.policy)
        .with_context(|| format!("the policy file to add the department to (--policy {})", args.policy.display()))?;
    let codes = args.schemas.join("codes/department.json");
    anyhow::ensure!(codes.is_file(), "{}: the department code list is missing (--schemas DIR)", codes.display());
    let standard = hutong_standard::Standard::load(&args.schemas)
        .with_context(|| format!("the standard in {} (the schemas folder: --schemas DIR)", args.schemas.display()))?;
    anyhow::ensure!(
        standard.entity(&args.entity).is_some(),
        "--entity {}: the standard has {}",
        args.entity,
        standard.entities().map(|e| e.name.as_str()).collect::<Vec<_>>().join(", ")
    );
    let dir = args.schemas.join("departments").join(&args.id);
    anyhow::ensure!(!dir.exists(), "{} exists: the department is there already", dir.display());
    let fields = match &args.sample {
        Some(s) => sample_fields(s, &args.kind, args)?,
        None => Vec::new(),
    };

    std::fs::create_dir_all(dir.join("samples"))?;
    std::fs::create_dir_all(dir.join("fixtures").join(&args.kind))?;
    let sample_name = match &args.sample {
        Some(s) => {
            let ext = s.extension().and_then(|e| e.to_str()).unwrap_or("ndjson");
            let to = dir.join("samples").join(format!("{}.{ext}", args.kind));
            std::fs::copy(s, &to).with_context(|| format!("copying {} to {}", s.display(), to.display()))?;
            Some(format!("samples/{}.{ext}", args.kind))
        }
        None => None,
    };
    let adapter = dir.join(format!("{}.toml", args.kind));
    std::fs::write(&adapter, skeleton(args, sample_name.as_deref(), &fields))?;
    println!("created {}/ with {}, samples/, fixtures/{}/", dir.display(), adapter.display(), args.kind);
    if add_code(&args.schemas, args)? {
        println!("added {} ({}) to {}", args.id, args.name, args.schemas.join("codes/department.json").display());
    }
    if add_to_policy(args)? {
        println!("added [departments.{}] to {} (kinds: {})", args.id, args.policy.display(), args.kind);
    }
    if args.pki != Path::new("-") {
        crate::certs::init(&args.pki, &args.policy, &[], 365, false)?;
        println!("its certificate: {}", args.pki.join(format!("{}.pem", args.id)).display());
    }

    let d = dir.display();
    let sample = sample_name.map_or_else(|| format!("{d}/samples/{}.ndjson", args.kind), |s| format!("{d}/{s}"));
    let identity = match (&args.id_field, &args.revision_field) {
        (Some(i), Some(r)) => format!(" --id-field {} --revision-field {}", shell_word(i), shell_word(r)),
        (Some(i), None) => format!(" --id-field {} --revision-field <version or last-modified column>", shell_word(i)),
        _ => " --id-field <id column> --revision-field <version or last-modified column>".to_owned(),
    };
    println!("\nnext:");
    println!("  1. map the fields          $EDITOR {}", adapter.display());
    println!("  2. check the mapping       hutong adapter check {d}");
    println!("  3. fixtures (accept_*.json, reject_*.json in {d}/fixtures/{}/)", args.kind);
    println!("                             hutong adapter test {d}");
    println!("  4. dry run of the export   hutong validate -d {} -k {} {sample}{identity}", args.id, args.kind);
    println!(
        "  5. reload the gateway      kill -HUP <gateway pid>   (policy and certificates; adapters reload by themselves)"
    );
    println!(
        "  6. submit                  hutong ingest --pki {} --as {} -k {} {sample}{identity}",
        args.pki.display(),
        args.id,
        args.kind
    );
    println!("  7. see the records         hutong tail hutong.{}.v2 --from-beginning", args.entity);
    Ok(ExitCode::SUCCESS)
}
