//! The rule list (`docs/rules.md`, issue 18 item 6) stays true: it is rendered from
//! `rules::RULES`, and `RULES` holds every rule the code can report and nothing else.

use std::{
    collections::BTreeSet,
    path::{Path, PathBuf},
};

use hutong_standard::{Standard, rules};
use serde_json::Value;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn listed() -> BTreeSet<&'static str> {
    rules::RULES.iter().map(|r| r.name).collect()
}

/// Every `.rs` file under `dir`.
fn sources(dir: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(dir).unwrap() {
        let p = entry.unwrap().path();
        if p.is_dir() {
            sources(&p, out);
        } else if p.extension().is_some_and(|e| e == "rs") {
            out.push(p);
        }
    }
}

/// The string literals of the crates' sources that name a prefixed rule (`"adapter:date"` …),
/// outside `rules.rs` itself.
fn rule_literals() -> BTreeSet<String> {
    let mut files = Vec::new();
    for entry in std::fs::read_dir(repo().join("crates")).unwrap() {
        let src = entry.unwrap().path().join("src");
        if src.is_dir() {
            sources(&src, &mut files);
        }
    }
    let prefixes = ["record:", "payload:", "adapter:", "consistency:", "bus:"];
    let mut found = BTreeSet::new();
    for f in files.iter().filter(|f| !f.ends_with("hutong-standard/src/rules.rs")) {
        let text = std::fs::read_to_string(f).unwrap();
        for literal in text.split('"').skip(1).step_by(2) {
            let is_rule = prefixes.iter().any(|p| {
                literal.strip_prefix(p).is_some_and(|rest| {
                    !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
                })
            });
            if is_rule {
                found.insert(literal.to_owned());
            }
        }
    }
    found
}

#[test]
fn the_rule_document_is_in_sync() {
    let rendered = rules::render_markdown();
    let path = repo().join("docs/rules.md");
    if std::env::var_os("HUTONG_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/rules.md is out of date: run `hutong standard rules --out docs/rules.md` (or HUTONG_BLESS=1 cargo test)"
    );
    for r in rules::RULES {
        assert!(rendered.contains(&format!("| `{}` |", r.name)), "{} missing", r.name);
    }
}

/// Every prefixed rule name the code writes is listed, and every listed one is written
/// somewhere (no stale entry).
#[test]
fn every_rule_the_code_reports_is_listed() {
    let literals = rule_literals();
    assert!(literals.len() >= 15, "the scan found only {literals:?}");
    let listed = listed();
    let missing: Vec<&String> = literals.iter().filter(|l| !listed.contains(l.as_str())).collect();
    assert!(missing.is_empty(), "rules reported by the code but not in rules::RULES: {missing:?}");
    // Consistency rules are built from the check names.
    let checks: Vec<String> = [hutong_standard::checks::CITIZEN_ID_SEX, hutong_standard::checks::CITIZEN_ID_BIRTH_DATE]
        .iter()
        .map(|c| format!("{}{c}", hutong_standard::CONSISTENCY_RULE))
        .collect();
    for c in &checks {
        assert!(listed.contains(c.as_str()), "{c} not listed");
    }
    for name in listed.iter().filter(|n| n.contains(':') && !n.starts_with("format:")) {
        assert!(
            literals.contains(*name) || checks.iter().any(|c| c == name),
            "{name} is listed but nothing reports it"
        );
    }
}

/// Every validation keyword and format the shipped standard uses is listed: a keyword that can
/// fail names the rule (`required`, `pattern`, `format:<f>` …).
#[test]
fn every_keyword_and_format_of_the_standard_is_listed() {
    const VALIDATING: &[&str] = &[
        "additionalProperties",
        "const",
        "enum",
        "exclusiveMaximum",
        "exclusiveMinimum",
        "maxItems",
        "maxLength",
        "maxProperties",
        "maximum",
        "minItems",
        "minLength",
        "minProperties",
        "minimum",
        "multipleOf",
        "pattern",
        "required",
        "type",
        "uniqueItems",
        "x-code-list",
    ];
    fn walk(v: &Value, used: &mut BTreeSet<String>) {
        match v {
            Value::Object(m) => {
                for (k, child) in m {
                    if VALIDATING.contains(&k.as_str()) {
                        used.insert(k.clone());
                    }
                    if k == "format"
                        && let Some(f) = child.as_str()
                    {
                        used.insert(format!("format:{f}"));
                    }
                    // Property names are data, not keywords.
                    if k == "properties" {
                        for p in child.as_object().into_iter().flat_map(|m| m.values()) {
                            walk(p, used);
                        }
                    } else {
                        walk(child, used);
                    }
                }
            }
            Value::Array(a) => a.iter().for_each(|c| walk(c, used)),
            _ => {}
        }
    }
    let standard = Standard::load(&repo().join("schemas")).unwrap();
    let mut used = BTreeSet::new();
    for (_, doc) in standard.documents() {
        walk(doc, &mut used);
    }
    assert!(used.contains("required") && used.contains("format:gb11643"), "{used:?}");
    let listed = listed();
    let missing: Vec<&String> = used.iter().filter(|u| !listed.contains(u.as_str())).collect();
    assert!(missing.is_empty(), "keywords the standard uses but rules::RULES does not list: {missing:?}");
    assert!(rules::find("entity").is_some());
}
