//! `hutong schema lint`: what a loadable standard must still get right for
//! people and for evolution — titles and descriptions everywhere, `$id`s
//! unique and versioned and matching their files.

use std::collections::BTreeMap;

use serde_json::Value;

use crate::Standard;

/// One problem found by [`lint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LintIssue {
    /// The schema's `$id`.
    pub schema: String,
    /// JSON pointer inside it.
    pub pointer: String,
    /// What is wrong.
    pub message: String,
}

impl std::fmt::Display for LintIssue {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}#{}: {}", self.schema, self.pointer, self.message)
    }
}

/// The standard's `$id` prefix.
pub const ID_PREFIX: &str = "https://schemas.hutong.dev/standard/";

/// Lints a loaded standard (loading already checked compilation, annotations
/// and code-list references).
pub fn lint(standard: &Standard) -> Vec<LintIssue> {
    let mut issues = Vec::new();
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    for (id, doc) in standard.documents() {
        *seen.entry(id).or_default() += 1;
        let issue =
            |pointer: &str, message: String| LintIssue { schema: id.to_owned(), pointer: pointer.to_owned(), message };
        let Some(rest) = id.strip_prefix(ID_PREFIX) else {
            issues.push(issue("", format!("$id must start with {ID_PREFIX}")));
            continue;
        };
        let folder = rest.split('/').next().unwrap_or_default();
        let versioned = folder == "core" || (folder.starts_with('v') && folder[1..].parse::<u32>().is_ok());
        if !versioned && rest != "annotations.json" {
            issues.push(issue("", format!("$id must carry its major version (…/v1/…) or be in core/, got {rest}")));
        }
        if rest == "annotations.json" {
            continue;
        }
        if doc.get("title").and_then(Value::as_str).is_none_or(str::is_empty) {
            issues.push(issue("", "the schema has no title".to_owned()));
        }
        if doc.get("description").and_then(Value::as_str).is_none_or(str::is_empty) {
            issues.push(issue("", "the schema has no description".to_owned()));
        }
        walk(doc, "", &mut |pointer, prop| {
            for k in ["title", "description"] {
                if prop.get(k).and_then(Value::as_str).is_none_or(str::is_empty) && prop.get("$ref").is_none() {
                    issues.push(issue(pointer, format!("property has no {k}")));
                }
            }
        });
    }
    for e in standard.entities() {
        let expected =
            format!("{ID_PREFIX}v{}/{}.json", e.major, e.path.file_stem().and_then(|s| s.to_str()).unwrap_or(""));
        if e.schema_id != expected {
            issues.push(LintIssue {
                schema: e.schema_id.clone(),
                pointer: String::new(),
                message: format!("$id does not match its file; expected {expected}"),
            });
        }
    }
    issues
}

/// Calls `f` for every property schema (under `properties`), depth first.
fn walk(node: &Value, at: &str, f: &mut impl FnMut(&str, &Value)) {
    let Value::Object(map) = node else {
        if let Value::Array(items) = node {
            for (i, x) in items.iter().enumerate() {
                walk(x, &format!("{at}/{i}"), f);
            }
        }
        return;
    };
    for (k, v) in map {
        match (k.as_str(), v) {
            ("examples" | "enum" | "const" | "default", _) => {}
            // Constraints on properties defined elsewhere, not definitions of their own.
            ("if" | "then" | "else" | "not", _) => {}
            ("properties", Value::Object(props)) => {
                for (name, prop) in props {
                    let here = format!("{at}/properties/{name}");
                    f(&here, prop);
                    walk(prop, &here, f);
                }
            }
            _ => walk(v, &format!("{at}/{k}"), f),
        }
    }
}
