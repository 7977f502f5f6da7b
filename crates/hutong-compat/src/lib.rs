//! JSON Schema compatibility checking with the semantics of Confluent Schema Registry's JSON
//! Schema provider (`io.confluent.kafka.schemaregistry.json.diff.SchemaDiff`, strict rule set).
//!
//! [`diff`] lists every change from an original schema to an update, named as Confluent names
//! them (`MIN_LENGTH_INCREASED #/minLength`). Each [`ChangeKind`] is compatible or not; an update
//! is BACKWARD compatible with an original when no change is incompatible, i.e. a consumer using
//! the update can read everything written with the original. [`check`] applies a compatibility
//! [`Mode`] to a subject's history.
//!
//! ```
//! use serde_json::json;
//! use hutong_compat::{check, diff, Mode};
//!
//! let v1 = json!({"type": "object", "properties": {"a": {"type": "string"}},
//!                 "additionalProperties": false});
//! let v2 = json!({"type": "object", "properties": {"a": {"type": "string"}, "b": {"type": "number"}},
//!                 "additionalProperties": false});
//! let changes = diff(&v1, &v2);
//! assert_eq!(changes[0].to_string(), "OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b");
//! assert!(check(&[v1.clone()], &v2, Mode::Backward).compatible);
//! assert!(!check(&[v1], &v2, Mode::Forward).compatible);
//! ```
//!
//! Draft-04/06/07 documents follow Confluent's everit-based loading; a `$schema` naming 2019-09
//! or 2020-12 switches to the keyword set and quirks of Confluent's json-sKema translation
//! (`prefixItems`, `dependentRequired`, `unevaluated*`, ...). Local `$ref`s (`#/definitions/x`,
//! `#/$defs/x`, anchors, embedded `$id`s) are resolved, recursive ones included.

#![warn(missing_docs)]
#![forbid(unsafe_code)]

mod changes;
mod diff;
mod java_order;
mod kinds;
mod model;
mod regex;

use std::fmt;
use std::str::FromStr;

use serde_json::Value;

pub use kinds::ChangeKind;

/// One change between two schemas: what changed and where.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Change {
    /// What kind of change this is.
    pub kind: ChangeKind,
    /// Where it is, as Confluent writes it: `#/` followed by schema keywords, e.g. `#/properties/foo`.
    pub pointer: String,
}

impl Change {
    /// Whether this change keeps the update BACKWARD compatible.
    pub fn is_compatible(&self) -> bool {
        self.kind.is_compatible()
    }
}

impl fmt::Display for Change {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.kind.name(), self.pointer)
    }
}

/// Node pairs below which a comparison cannot recurse deep enough to need its own stack.
const INLINE_PAIRS: usize = 128;

/// Stack for large comparisons: room for `diff::MAX_DEPTH` levels even in debug builds.
const DEEP_STACK: usize = 256 << 20;

/// Lists every change from `original` to `update`, in the order Confluent reports them.
///
/// As in Confluent, a change is listed once per path that reaches it, so schemas sharing one
/// recursive definition from many places can yield very long lists; the verdict is unaffected.
pub fn diff(original: &Value, update: &Value) -> Vec<Change> {
    let original = model::Doc::load(original);
    let update = model::Doc::load(update);
    let run = || diff::Differ::new(&original, &update).run();
    // Like Confluent's, the comparison recurses once per (original, update) pair under way, and
    // mutually recursive unions can put thousands of pairs on the stack. Small documents cannot,
    // so they run here; larger ones get a thread whose stack fits `diff::MAX_DEPTH` levels (the
    // reservation is virtual memory, committed only as far as it is used).
    let diffs = if original.nodes.len() * update.nodes.len() <= INLINE_PAIRS {
        run()
    } else {
        std::thread::scope(|scope| {
            let spawned = std::thread::Builder::new()
                .name("hutong-compat-diff".into())
                .stack_size(DEEP_STACK)
                .spawn_scoped(scope, run);
            match spawned {
                Ok(handle) => handle.join().unwrap_or_else(|p| std::panic::resume_unwind(p)),
                Err(_) => run(),
            }
        })
    };
    diffs.into_iter().map(|d| Change { kind: d.kind, pointer: d.pointer }).collect()
}

/// A subject's compatibility mode, as in Confluent Schema Registry.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Mode {
    /// No checking: every new version is accepted.
    None,
    /// The new schema can read data written with the latest version.
    #[default]
    Backward,
    /// Data written with the new schema can be read with the latest version.
    Forward,
    /// Both [`Mode::Backward`] and [`Mode::Forward`] against the latest version.
    Full,
    /// [`Mode::Backward`] against every earlier version.
    BackwardTransitive,
    /// [`Mode::Forward`] against every earlier version.
    ForwardTransitive,
    /// [`Mode::Full`] against every earlier version.
    FullTransitive,
}

impl Mode {
    /// Every mode, in the order Confluent lists them.
    pub const ALL: [Mode; 7] = [
        Mode::None,
        Mode::Backward,
        Mode::Forward,
        Mode::Full,
        Mode::BackwardTransitive,
        Mode::ForwardTransitive,
        Mode::FullTransitive,
    ];

    /// Confluent's name for the mode, e.g. `"BACKWARD_TRANSITIVE"`.
    pub fn name(&self) -> &'static str {
        match self {
            Mode::None => "NONE",
            Mode::Backward => "BACKWARD",
            Mode::Forward => "FORWARD",
            Mode::Full => "FULL",
            Mode::BackwardTransitive => "BACKWARD_TRANSITIVE",
            Mode::ForwardTransitive => "FORWARD_TRANSITIVE",
            Mode::FullTransitive => "FULL_TRANSITIVE",
        }
    }

    /// Whether every earlier version is checked rather than only the latest.
    pub fn is_transitive(&self) -> bool {
        matches!(self, Mode::BackwardTransitive | Mode::ForwardTransitive | Mode::FullTransitive)
    }

    /// The transitive form of the mode (checking against every version); itself when it has none.
    pub fn transitive(self) -> Mode {
        match self {
            Mode::Backward => Mode::BackwardTransitive,
            Mode::Forward => Mode::ForwardTransitive,
            Mode::Full => Mode::FullTransitive,
            other => other,
        }
    }

    fn checks_backward(&self) -> bool {
        matches!(self, Mode::Backward | Mode::Full | Mode::BackwardTransitive | Mode::FullTransitive)
    }

    fn checks_forward(&self) -> bool {
        matches!(self, Mode::Forward | Mode::Full | Mode::ForwardTransitive | Mode::FullTransitive)
    }
}

impl fmt::Display for Mode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// The error for a string that names no [`Mode`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParseModeError {
    /// The text that was not recognised.
    pub input: String,
}

impl fmt::Display for ParseModeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "unknown compatibility mode {:?} (expected one of none, backward, forward, full, \
             backward_transitive, forward_transitive, full_transitive)",
            self.input
        )
    }
}

impl std::error::Error for ParseModeError {}

impl FromStr for Mode {
    type Err = ParseModeError;

    /// Parses `"backward"`, `"BACKWARD"`, `"full_transitive"`, `"full-transitive"`, ...
    fn from_str(s: &str) -> Result<Mode, ParseModeError> {
        let wanted = s.trim().replace('-', "_").to_ascii_uppercase();
        Mode::ALL.into_iter().find(|m| m.name() == wanted).ok_or_else(|| ParseModeError { input: s.to_owned() })
    }
}

/// The outcome of checking a new schema.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Report {
    /// Whether the new schema is accepted under the mode (no incompatible change).
    pub compatible: bool,
    /// The changes that make it incompatible (a subset of `all`).
    pub incompatible: Vec<Change>,
    /// Every change found, over all checked versions and directions, in checking order.
    pub all: Vec<Change>,
}

/// Checks `new` against the subject's history (oldest first) under `mode`: non-transitive modes
/// look only at the last version; transitive at every one. Backward: diff(old, new); Forward:
/// diff(new, old); Full: both.
pub fn check(history: &[Value], new: &Value, mode: Mode) -> Report {
    let versions: &[Value] = if mode == Mode::None {
        &[]
    } else if mode.is_transitive() {
        history
    } else {
        history.last().map(std::slice::from_ref).unwrap_or(&[])
    };
    let mut all = Vec::new();
    for old in versions {
        if mode.checks_backward() {
            all.extend(diff(old, new));
        }
        if mode.checks_forward() {
            all.extend(diff(new, old));
        }
    }
    let incompatible: Vec<Change> = all.iter().filter(|c| !c.is_compatible()).cloned().collect();
    Report { compatible: incompatible.is_empty(), incompatible, all }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn closed(props: Value) -> Value {
        json!({"type": "object", "properties": props, "additionalProperties": false})
    }

    /// v1 has `a`; v2 adds optional `b` to a closed model.
    fn widening_pair() -> (Value, Value) {
        (closed(json!({"a": {"type": "string"}})), closed(json!({"a": {"type": "string"}, "b": {"type": "string"}})))
    }

    #[test]
    fn mode_parsing_and_display() {
        assert_eq!("backward".parse::<Mode>(), Ok(Mode::Backward));
        assert_eq!("BACKWARD".parse::<Mode>(), Ok(Mode::Backward));
        assert_eq!("full_transitive".parse::<Mode>(), Ok(Mode::FullTransitive));
        assert_eq!("Forward-Transitive".parse::<Mode>(), Ok(Mode::ForwardTransitive));
        assert_eq!("none".parse::<Mode>(), Ok(Mode::None));
        assert!("sideways".parse::<Mode>().is_err());
        for m in Mode::ALL {
            assert_eq!(m.to_string().parse::<Mode>(), Ok(m));
        }
        assert_eq!(Mode::BackwardTransitive.to_string(), "BACKWARD_TRANSITIVE");
        assert_eq!(Mode::Backward.transitive(), Mode::BackwardTransitive);
        assert_eq!(Mode::Full.transitive(), Mode::FullTransitive);
        assert_eq!(Mode::None.transitive(), Mode::None);
        assert_eq!(Mode::ForwardTransitive.transitive(), Mode::ForwardTransitive);
    }

    #[test]
    fn backward_is_diff_old_new() {
        let (v1, v2) = widening_pair();
        let r = check(std::slice::from_ref(&v1), &v2, Mode::Backward);
        assert!(r.compatible);
        let names = |c: &[Change]| c.iter().map(ToString::to_string).collect::<Vec<_>>();
        assert_eq!(names(&r.all), ["OPTIONAL_PROPERTY_ADDED_TO_UNOPEN_CONTENT_MODEL #/properties/b"]);
        assert!(r.incompatible.is_empty());
        // A narrowing is reported, and breaks.
        let narrowed = closed(json!({"a": {"type": "string", "maxLength": 3}}));
        let r = check(std::slice::from_ref(&v1), &narrowed, Mode::Backward);
        assert!(!r.compatible);
        assert_eq!(names(&r.all), ["MAX_LENGTH_ADDED #/properties/a/maxLength"]);
        assert_eq!(names(&r.incompatible), names(&r.all));
    }

    #[test]
    fn forward_is_swapped() {
        let (v1, v2) = widening_pair();
        let r = check(std::slice::from_ref(&v1), &v2, Mode::Forward);
        assert!(!r.compatible);
        assert_eq!(r.all, diff(&v2, &v1));
        assert_eq!(
            r.incompatible.iter().map(ToString::to_string).collect::<Vec<_>>(),
            ["PROPERTY_REMOVED_FROM_CLOSED_CONTENT_MODEL #/properties/b"]
        );
        // Removing the property again is forward compatible.
        assert!(check(std::slice::from_ref(&v2), &v1, Mode::Forward).compatible);
    }

    #[test]
    fn full_is_both_directions() {
        let (v1, v2) = widening_pair();
        let full = check(std::slice::from_ref(&v1), &v2, Mode::Full);
        assert!(!full.compatible, "backward passes but forward fails");
        let mut expected = diff(&v1, &v2);
        expected.extend(diff(&v2, &v1));
        assert_eq!(full.all, expected);

        // A pure annotation change passes both ways.
        let v3 = json!({"type": "string", "title": "one"});
        let v4 = json!({"type": "string", "title": "two"});
        let r = check(&[v3], &v4, Mode::Full);
        assert!(r.compatible);
        assert_eq!(r.all.len(), 2);
    }

    #[test]
    fn transitive_checks_every_version() {
        // Only the first version conflicts with the new one: it had `a` as a string.
        let v1 = closed(json!({"a": {"type": "string"}}));
        let v2 = closed(json!({}));
        let v3 = closed(json!({"b": {"type": "number"}}));
        let new = closed(json!({"a": {"type": "number"}, "b": {"type": "number"}}));
        let history = [v1, v2, v3];

        assert!(check(&history, &new, Mode::Backward).compatible);
        let r = check(&history, &new, Mode::BackwardTransitive);
        assert!(!r.compatible);
        assert_eq!(r.incompatible.iter().map(ToString::to_string).collect::<Vec<_>>(), ["TYPE_CHANGED #/properties/a"]);

        assert!(!check(&history, &new, Mode::FullTransitive).compatible);
        assert!(check(&history[1..], &new, Mode::BackwardTransitive).compatible);
    }

    #[test]
    fn none_is_always_compatible() {
        let r = check(&[json!({"type": "string"})], &json!({"type": "number"}), Mode::None);
        assert!(r.compatible);
        assert!(r.all.is_empty() && r.incompatible.is_empty());
        assert!(!check(&[json!({"type": "string"})], &json!({"type": "number"}), Mode::Backward).compatible);
    }

    #[test]
    fn empty_history_is_compatible() {
        for m in Mode::ALL {
            assert!(check(&[], &json!({"type": "string"}), m).compatible);
        }
    }

    #[test]
    fn change_display_and_kind_names() {
        let c = Change { kind: ChangeKind::MinLengthIncreased, pointer: "#/minLength".into() };
        assert_eq!(c.to_string(), "MIN_LENGTH_INCREASED #/minLength");
        for k in ChangeKind::ALL {
            assert_eq!(ChangeKind::from_name(k.name()), Some(*k));
        }
        assert_eq!(ChangeKind::from_name("NOPE"), None);
        assert!(ChangeKind::SumTypeExtended.is_compatible());
        assert!(!ChangeKind::OptionalPropertyAddedToOpenContentModel.is_compatible());
    }

    #[test]
    fn recursive_schemas_terminate() {
        let tree = |leaf: &str| {
            json!({
                "$ref": "#/$defs/node",
                "$defs": {"node": {"type": "object", "properties": {
                    "value": {"type": leaf},
                    "children": {"type": "array", "items": {"$ref": "#/$defs/node"}},
                    "either": {"oneOf": [{"$ref": "#/$defs/node"}, {"type": "null"}]}
                }}}
            })
        };
        assert!(diff(&tree("string"), &tree("string")).is_empty());
        let changes = diff(&tree("integer"), &tree("number"));
        assert_eq!(changes.iter().map(ToString::to_string).collect::<Vec<_>>(), ["TYPE_EXTENDED #/properties/value"]);
        assert!(!check(&[tree("number")], &tree("integer"), Mode::Backward).compatible);
        // Self-referencing `$ref` chains do not hang either.
        assert!(diff(&json!({"$ref": "#"}), &json!({"$ref": "#"})).is_empty());
    }

    #[test]
    fn pattern_properties_cover_added_properties() {
        let orig = json!({"properties": {}, "additionalProperties": false,
                          "patternProperties": {"^n_[0-9]+$": {"type": "integer"}}});
        let ok = json!({"properties": {"n_1": {"type": "number"}}, "additionalProperties": false,
                        "patternProperties": {"^n_[0-9]+$": {"type": "integer"}}});
        let bad = json!({"properties": {"n_x": {"type": "number"}}, "additionalProperties": false,
                         "patternProperties": {"^n_[0-9]+$": {"type": "integer"}}});
        assert!(check(std::slice::from_ref(&orig), &ok, Mode::Backward).compatible);
        let names: Vec<_> = diff(&orig, &bad).iter().map(|c| c.kind).collect();
        assert_eq!(names, [ChangeKind::OptionalPropertyAddedToUnopenContentModel]);
    }
}
