//! Golden fixtures of adapters: for each adapter, one case per file under
//! `schemas/departments/<department>/fixtures/<kind>/*.json`:
//!
//! ```json
//! { "description": "…", "input": { …payload… },
//!   "charset": "gbk", "input_base64": "…",        // instead of input, for legacy exports
//!   "source_id": "…", "revision": 1, "op": "delete", // optional, for `meta` in expressions
//!   "expect": [ { "entity": "person", "record": { … } } ],   // an accepted record
//!   "reject": [ { "pointer": "/sex", "rule": "adapter:code" } ] }  // or a rejected one
//! ```
//!
//! In expected records, `{"$pseudonym": "VALUE"}` stands for the keyed pseudonym
//! of VALUE under [`FIXTURE_KEY`], so fixtures stay readable.

use std::path::{Path, PathBuf};

use base64::Engine as _;
use hutong_standard::{Standard, Violation};
use serde::Deserialize;
use serde_json::Value;

use crate::{Adapter, MapContext, PayloadLimits, PseudonymKey, decode_payload};

/// The public, fixture-only pseudonym key.
pub const FIXTURE_KEY: &str = "hutong-golden-fixture-key";

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Case {
    #[serde(default)]
    description: String,
    #[serde(default)]
    input: Option<Value>,
    #[serde(default)]
    input_base64: Option<String>,
    #[serde(default)]
    charset: String,
    #[serde(default)]
    source_id: Option<String>,
    #[serde(default)]
    revision: Option<u64>,
    /// `upsert` (the default), `delete` or `event`: `meta.op` in expressions.
    #[serde(default)]
    op: Option<String>,
    #[serde(default)]
    expect: Option<Vec<Expected>>,
    #[serde(default)]
    reject: Option<Vec<ExpectedViolation>>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct Expected {
    entity: String,
    record: Value,
}

#[derive(Debug, Deserialize, PartialEq, Eq, PartialOrd, Ord, Clone)]
#[serde(deny_unknown_fields)]
struct ExpectedViolation {
    pointer: String,
    rule: String,
}

/// The outcome of one fixture.
#[derive(Debug)]
pub struct CaseResult {
    /// The fixture file.
    pub path: PathBuf,
    /// Its description.
    pub description: String,
    /// `None` when it passed; otherwise what differed, readable.
    pub failure: Option<String>,
}

/// The fixture folder of `adapter`.
pub fn fixture_dir(adapter: &Adapter) -> PathBuf {
    let dept_dir = adapter.path.parent().unwrap_or(Path::new("."));
    dept_dir.join("fixtures").join(&adapter.kind)
}

/// An adapter's fixture folder could not be read.
#[derive(Debug, thiserror::Error)]
#[error("{}: {source} (every adapter needs fixtures)", dir.display())]
pub struct NoFixtures {
    /// The folder.
    pub dir: PathBuf,
    /// The cause.
    pub source: std::io::Error,
}

/// Runs every fixture of `adapter` through adapter and standard.
pub fn run_fixtures(adapter: &Adapter, standard: &Standard) -> Result<Vec<CaseResult>, NoFixtures> {
    let dir = fixture_dir(adapter);
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .map_err(|source| NoFixtures { dir: dir.clone(), source })?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    files.sort();
    let key = PseudonymKey::new(FIXTURE_KEY.as_bytes().to_vec()).expect("fixture key is long enough");
    Ok(files.into_iter().map(|path| run_case(&path, adapter, standard, &key)).collect())
}

fn run_case(path: &Path, adapter: &Adapter, standard: &Standard, key: &PseudonymKey) -> CaseResult {
    let text = std::fs::read_to_string(path);
    let case: Result<Case, String> =
        text.map_err(|e| e.to_string()).and_then(|t| serde_json::from_str(&t).map_err(|e| e.to_string()));
    let (description, failure) = match case {
        Err(e) => (String::new(), Some(format!("not a fixture: {e}"))),
        Ok(case) => (case.description.clone(), check_case(&case, adapter, standard, key).err()),
    };
    CaseResult { path: path.to_owned(), description, failure }
}

fn check_case(case: &Case, adapter: &Adapter, standard: &Standard, key: &PseudonymKey) -> Result<(), String> {
    let bytes = match (&case.input, &case.input_base64) {
        (Some(v), None) => serde_json::to_vec(v).map_err(|e| e.to_string())?,
        (None, Some(b)) => {
            base64::engine::general_purpose::STANDARD.decode(b).map_err(|e| format!("input_base64: {e}"))?
        }
        _ => return Err("give exactly one of `input` and `input_base64`".to_owned()),
    };
    let source_id = case.source_id.clone().unwrap_or_else(|| "fixture".to_owned());
    let op = case.op.as_deref().unwrap_or("upsert");
    if !matches!(op, "upsert" | "delete" | "event") {
        return Err(format!("op {op:?} is not upsert, delete or event"));
    }
    let ctx = MapContext { key, source_id: &source_id, revision: case.revision.unwrap_or(1), op };
    let outcome = decode_payload(&bytes, &case.charset, PayloadLimits::default())
        .map_err(|v| vec![v])
        .and_then(|payload| adapter.map(&payload, &ctx))
        .and_then(|records| {
            let violations: Vec<Violation> =
                records.iter().flat_map(|r| standard.validate(&r.entity, &r.record)).collect();
            if violations.is_empty() { Ok(records) } else { Err(violations) }
        });
    match (outcome, &case.expect, &case.reject) {
        (Ok(records), Some(expect), None) => {
            let got: Vec<Value> =
                records.iter().map(|r| serde_json::json!({"entity": r.entity, "record": r.record})).collect();
            let want: Vec<Value> = expect
                .iter()
                .map(|e| serde_json::json!({"entity": e.entity, "record": resolve_pseudonyms(&e.record, key)}))
                .collect();
            if got == want { Ok(()) } else { Err(diff(&want, &got)) }
        }
        (Err(violations), None, Some(reject)) => {
            let mut got: Vec<ExpectedViolation> = violations
                .iter()
                .map(|v| ExpectedViolation { pointer: v.pointer.clone(), rule: v.rule.clone() })
                .collect();
            let mut want = reject.clone();
            got.sort();
            got.dedup();
            want.sort();
            want.dedup();
            if got == want {
                Ok(())
            } else {
                let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
                Err(format!("expected rejection {want:?}\ngot {got:?}:\n{}", lines.join("\n")))
            }
        }
        (Ok(records), None, Some(_)) => Err(format!(
            "expected a rejection, but it mapped to {}",
            serde_json::to_string_pretty(&records.iter().map(|r| &r.record).collect::<Vec<_>>()).unwrap_or_default()
        )),
        (Err(violations), Some(_), None) => {
            let lines: Vec<String> = violations.iter().map(|v| format!("  {v}")).collect();
            Err(format!("expected records, but it was rejected:\n{}", lines.join("\n")))
        }
        _ => Err("give exactly one of `expect` and `reject`".to_owned()),
    }
}

/// Replaces `{"$pseudonym": "VALUE"}` with the pseudonym of VALUE.
fn resolve_pseudonyms(v: &Value, key: &PseudonymKey) -> Value {
    match v {
        Value::Object(map) if map.len() == 1 && map.contains_key("$pseudonym") => {
            Value::String(key.pseudonym(map["$pseudonym"].as_str().unwrap_or_default()))
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve_pseudonyms(v, key))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|x| resolve_pseudonyms(x, key)).collect()),
        other => other.clone(),
    }
}

/// A unified diff of the pretty JSON of expected and actual records.
fn diff(want: &[Value], got: &[Value]) -> String {
    let w = serde_json::to_string_pretty(want).unwrap_or_default();
    let g = serde_json::to_string_pretty(got).unwrap_or_default();
    let d = similar::TextDiff::from_lines(&w, &g);
    format!("records differ (- expected, + got):\n{}", d.unified_diff().context_radius(3))
}

/// One adapter file's standing against a standard: its static checks and fixtures.
#[derive(Debug)]
pub struct Standing {
    /// The adapter file.
    pub path: PathBuf,
    /// `department/kind` when it loaded.
    pub name: Option<String>,
    /// Static-check error, if it does not load.
    pub check_error: Option<String>,
    /// Fixtures that fail, with why.
    pub failing_fixtures: Vec<String>,
    /// Fixtures run.
    pub fixtures: usize,
}

impl Standing {
    /// Whether the adapter loads and all its fixtures pass.
    pub fn is_ok(&self) -> bool {
        self.check_error.is_none() && self.failing_fixtures.is_empty()
    }
}

/// Checks every adapter file under `departments` one by one against
/// `standard` (one broken file does not hide the others): what a schema
/// change does to the adapters.
pub fn standing(departments: &Path, standard: &Standard) -> Vec<Standing> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(departments)
        .into_iter()
        .flatten()
        .filter_map(|d| d.ok().map(|d| d.path()))
        .filter(|d| d.is_dir())
        .flat_map(|d| std::fs::read_dir(d).into_iter().flatten().filter_map(|f| f.ok().map(|f| f.path())))
        .filter(|f| f.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    files
        .into_iter()
        .map(|path| match Adapter::load(&path, standard) {
            Err(e) => {
                Standing { path, name: None, check_error: Some(e.to_string()), failing_fixtures: vec![], fixtures: 0 }
            }
            Ok(a) => {
                let name = Some(format!("{}/{}", a.department, a.kind));
                match run_fixtures(&a, standard) {
                    Err(e) => {
                        Standing { path, name, check_error: None, failing_fixtures: vec![e.to_string()], fixtures: 0 }
                    }
                    Ok(results) => Standing {
                        path,
                        name,
                        check_error: None,
                        fixtures: results.len(),
                        failing_fixtures: results
                            .into_iter()
                            .filter_map(|r| r.failure.map(|f| format!("{}: {f}", r.path.display())))
                            .collect(),
                    },
                }
            }
        })
        .collect()
}
