//! The schema registry of the standard.
//!
//! Every entity schema is a subject named by Kafka's TopicNameStrategy
//! (`hutong.person.v2-value`), with numbered versions and global schema ids.
//! The history is kept as files in the repository, under `schemas/registry/`:
//! `registry.json` (subjects, versions, ids, compatibility modes) and one
//! self-contained schema per version. Git is the durable, reviewed history;
//! the gateway serves it read-only (Confluent-compatible REST), and
//! `hutong schema register` adds a version only when it passes the subject's
//! compatibility mode.
#![warn(missing_docs)]

pub mod governance;
pub mod profile;

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use hutong_compat::{Change, Mode};
use hutong_standard::Standard;
use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why the registry could not be read, written or changed.
#[derive(Debug, thiserror::Error)]
pub enum RegistryError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The cause.
        source: std::io::Error,
    },
    /// A file is malformed or inconsistent.
    #[error("{path}: {message}")]
    Invalid {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// No such subject.
    #[error("no subject {subject}")]
    UnknownSubject {
        /// The subject asked for.
        subject: String,
    },
    /// The subject has no such version.
    #[error("{subject} has no version {version}")]
    UnknownVersion {
        /// The subject.
        subject: String,
        /// The version asked for.
        version: u32,
    },
    /// The deployment's `[privacy]` topics do not fit the standard.
    #[error(transparent)]
    Views(#[from] hutong_standard::privacy::TopicViewError),
    /// The new schema breaks the subject's compatibility mode.
    #[error("{subject}: the new schema is not {mode} compatible: {}", changes.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Incompatible {
        /// The subject.
        subject: String,
        /// Its compatibility mode.
        mode: Mode,
        /// The changes that break it.
        changes: Vec<Change>,
    },
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RegistryFile {
    /// Mode of subjects without their own.
    default_compatibility: String,
    subjects: BTreeMap<String, SubjectFile>,
}

#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct SubjectFile {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    compatibility: Option<String>,
    versions: Vec<VersionFile>,
}

#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct VersionFile {
    version: u32,
    id: u32,
    file: String,
    standard_version: String,
}

/// One registered version of a subject.
#[derive(Debug, Clone, PartialEq)]
pub struct SchemaVersion {
    /// The subject, e.g. `hutong.person.v2-value`.
    pub subject: String,
    /// Version within the subject, from 1.
    pub version: u32,
    /// Global schema id.
    pub id: u32,
    /// The version of the standard it was registered from.
    pub standard_version: String,
    /// The self-contained schema.
    pub schema: Value,
}

/// What `register` did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Registered {
    /// The schema equals the latest version already.
    Unchanged {
        /// That version.
        version: u32,
        /// Its id.
        id: u32,
    },
    /// A new version was added.
    New {
        /// The new version.
        version: u32,
        /// Its id.
        id: u32,
    },
}

/// The registry, loaded from `schemas/registry/`.
#[derive(Debug, Clone)]
pub struct Registry {
    dir: PathBuf,
    file: RegistryFile,
    schemas: BTreeMap<u32, SchemaVersion>,
}

/// The subject of a topic's values (TopicNameStrategy).
pub fn subject_for_topic(topic: &str) -> String {
    format!("{topic}-value")
}

fn parse_mode(s: &str, path: &Path) -> Result<Mode, RegistryError> {
    s.parse()
        .map_err(|_| RegistryError::Invalid { path: path.to_owned(), message: format!("unknown compatibility {s:?}") })
}

impl Registry {
    /// Loads `schemas_dir/registry/`; a missing folder is an empty registry.
    pub fn load(schemas_dir: &Path) -> Result<Self, RegistryError> {
        let dir = schemas_dir.join("registry");
        let index = dir.join("registry.json");
        if !index.exists() {
            let file = RegistryFile { default_compatibility: "BACKWARD".to_owned(), subjects: BTreeMap::new() };
            return Ok(Self { dir, file, schemas: BTreeMap::new() });
        }
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::Io { path, source }
        };
        let text = std::fs::read_to_string(&index).map_err(io(&index))?;
        let file: RegistryFile = serde_json::from_str(&text)
            .map_err(|e| RegistryError::Invalid { path: index.clone(), message: e.to_string() })?;
        parse_mode(&file.default_compatibility, &index)?;
        let mut schemas = BTreeMap::new();
        for (subject, s) in &file.subjects {
            if let Some(m) = &s.compatibility {
                parse_mode(m, &index)?;
            }
            for (i, v) in s.versions.iter().enumerate() {
                let bad = |message: String| RegistryError::Invalid { path: index.clone(), message };
                if v.version as usize != i + 1 {
                    return Err(bad(format!("{subject}: versions must be 1, 2, 3 … in order")));
                }
                let path = dir.join(&v.file);
                let text = std::fs::read_to_string(&path).map_err(io(&path))?;
                let schema: Value = serde_json::from_str(&text)
                    .map_err(|e| RegistryError::Invalid { path: path.clone(), message: e.to_string() })?;
                let entry = SchemaVersion {
                    subject: subject.clone(),
                    version: v.version,
                    id: v.id,
                    standard_version: v.standard_version.clone(),
                    schema,
                };
                if schemas.insert(v.id, entry).is_some() {
                    return Err(bad(format!("schema id {} is used twice", v.id)));
                }
            }
        }
        Ok(Self { dir, file, schemas })
    }

    /// Every subject, sorted.
    pub fn subjects(&self) -> Vec<&str> {
        self.file.subjects.keys().map(String::as_str).collect()
    }

    /// The versions of `subject`.
    pub fn versions(&self, subject: &str) -> Option<Vec<u32>> {
        self.file.subjects.get(subject).map(|s| s.versions.iter().map(|v| v.version).collect())
    }

    /// Version `version` of `subject` (`None`: the latest).
    pub fn version(&self, subject: &str, version: Option<u32>) -> Option<&SchemaVersion> {
        let s = self.file.subjects.get(subject)?;
        let v = match version {
            Some(n) => s.versions.iter().find(|v| v.version == n)?,
            None => s.versions.last()?,
        };
        self.schemas.get(&v.id)
    }

    /// The schema with global id `id`.
    pub fn by_id(&self, id: u32) -> Option<&SchemaVersion> {
        self.schemas.get(&id)
    }

    /// The registered version of `subject` whose schema is exactly `schema`.
    pub fn find(&self, subject: &str, schema: &Value) -> Option<&SchemaVersion> {
        self.schemas.values().find(|v| v.subject == subject && &v.schema == schema)
    }

    /// The compatibility mode of `subject` (its own, else the default).
    pub fn compatibility(&self, subject: &str) -> Mode {
        let m = self
            .file
            .subjects
            .get(subject)
            .and_then(|s| s.compatibility.as_deref())
            .unwrap_or(&self.file.default_compatibility);
        m.parse().unwrap_or(Mode::Backward)
    }

    /// The registry-wide default mode.
    pub fn default_compatibility(&self) -> Mode {
        self.file.default_compatibility.parse().unwrap_or(Mode::Backward)
    }

    /// The schemas of `subject` up to version `upto` (every version when `None`), oldest first.
    fn history(&self, subject: &str, upto: Option<u32>) -> Vec<Value> {
        self.versions(subject)
            .unwrap_or_default()
            .into_iter()
            .filter(|v| upto.is_none_or(|u| *v <= u))
            .filter_map(|v| self.version(subject, Some(v)).map(|s| s.schema.clone()))
            .collect()
    }

    /// Would `schema` be accepted as the next version of `subject`? Checked against its
    /// versions up to `upto` (all when `None`) under `mode` (default: the subject's own; a
    /// non-transitive mode compares with the last of those versions only). The one check
    /// behind `hutong schema check`, the admin RPC and the registry's REST API.
    pub fn check_subject(
        &self,
        subject: &str,
        schema: &Value,
        upto: Option<u32>,
        mode: Option<Mode>,
    ) -> Result<(Mode, hutong_compat::Report), RegistryError> {
        let versions =
            self.versions(subject).ok_or_else(|| RegistryError::UnknownSubject { subject: subject.to_owned() })?;
        if let Some(v) = upto.filter(|v| !versions.contains(v)) {
            return Err(RegistryError::UnknownVersion { subject: subject.to_owned(), version: v });
        }
        let mode = mode.unwrap_or_else(|| self.compatibility(subject));
        Ok((mode, hutong_compat::check(&self.history(subject, upto), schema, mode)))
    }

    /// Adds `schema` as the next version of `subject` if it differs from the
    /// latest and passes the subject's mode; writes nothing (see [`Self::save`]).
    pub fn register(
        &mut self,
        subject: &str,
        schema: Value,
        standard_version: &str,
    ) -> Result<Registered, RegistryError> {
        if let Some(latest) = self.version(subject, None)
            && latest.schema == schema
        {
            return Ok(Registered::Unchanged { version: latest.version, id: latest.id });
        }
        // A new subject has no history to be compatible with.
        let report = hutong_compat::check(&self.history(subject, None), &schema, self.compatibility(subject));
        if !report.compatible {
            return Err(RegistryError::Incompatible {
                subject: subject.to_owned(),
                mode: self.compatibility(subject),
                changes: report.incompatible,
            });
        }
        let id = self.schemas.keys().next_back().copied().unwrap_or(0) + 1;
        let entry = self.file.subjects.entry(subject.to_owned()).or_default();
        let version = entry.versions.len() as u32 + 1;
        let file = format!("{subject}/{version}.json");
        entry.versions.push(VersionFile { version, id, file, standard_version: standard_version.to_owned() });
        self.schemas.insert(
            id,
            SchemaVersion {
                subject: subject.to_owned(),
                version,
                id,
                standard_version: standard_version.to_owned(),
                schema,
            },
        );
        Ok(Registered::New { version, id })
    }

    /// Writes `registry.json` and every version's schema file.
    pub fn save(&self) -> Result<(), RegistryError> {
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RegistryError::Io { path, source }
        };
        for (subject, s) in &self.file.subjects {
            let dir = self.dir.join(subject);
            std::fs::create_dir_all(&dir).map_err(io(&dir))?;
            for v in &s.versions {
                let path = self.dir.join(&v.file);
                if !path.exists() {
                    let schema = &self.schemas[&v.id].schema;
                    let text = serde_json::to_string_pretty(schema).expect("json serialises") + "\n";
                    std::fs::write(&path, text).map_err(io(&path))?;
                }
            }
        }
        let index = self.dir.join("registry.json");
        let text = serde_json::to_string_pretty(&self.file).expect("json serialises") + "\n";
        std::fs::write(&index, text).map_err(io(&index))
    }

    /// The subject and self-contained schema of every topic of `standard`, each entity's own
    /// topic named by `topic`, under the deployment's `privacy` settings: each topic's schema is
    /// its view (protected fields widened).
    pub fn entity_subjects(
        standard: &Standard,
        topic: &dyn Fn(&hutong_standard::Entity) -> String,
        privacy: &hutong_standard::privacy::PrivacyConfig,
    ) -> Result<Vec<(String, Value)>, RegistryError> {
        Ok(hutong_standard::privacy::topic_views(standard, topic, privacy)?
            .into_values()
            .flatten()
            .map(|v| (subject_for_topic(&v.topic), v.schema))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn closed(props: Value) -> Value {
        json!({"type": "object", "properties": props, "additionalProperties": false})
    }

    #[test]
    fn registers_compatible_versions_and_refuses_breaking_ones() {
        let dir = tempfile::tempdir().unwrap();
        let mut r = Registry::load(dir.path()).unwrap();
        let v1 = closed(json!({"a": {"type": "string"}}));
        assert_eq!(r.register("s-value", v1.clone(), "1").unwrap(), Registered::New { version: 1, id: 1 });
        assert_eq!(r.register("s-value", v1.clone(), "1").unwrap(), Registered::Unchanged { version: 1, id: 1 });
        // Adding an optional property to a closed model is backward compatible.
        let v2 = closed(json!({"a": {"type": "string"}, "b": {"type": "integer"}}));
        assert_eq!(r.register("s-value", v2.clone(), "2").unwrap(), Registered::New { version: 2, id: 2 });
        // Narrowing a type is not.
        let v3 = closed(json!({"a": {"type": "string"}, "b": {"type": "string"}}));
        let err = r.register("s-value", v3, "3").unwrap_err();
        let RegistryError::Incompatible { changes, .. } = &err else { panic!("{err}") };
        assert!(changes.iter().any(|c| c.to_string().contains("#/properties/b")), "{err}");
        r.register("t-value", json!({"type": "string"}), "1").unwrap();
        r.save().unwrap();

        let again = Registry::load(dir.path()).unwrap();
        assert_eq!(again.subjects(), ["s-value", "t-value"]);
        assert_eq!(again.versions("s-value"), Some(vec![1, 2]));
        assert_eq!(again.version("s-value", None).unwrap().schema, v2);
        assert_eq!(again.by_id(3).unwrap().subject, "t-value");
        assert_eq!(again.find("s-value", &v1).unwrap().version, 1);
        assert_eq!(again.compatibility("s-value"), Mode::Backward);

        // One check for every caller: against the latest, a version, or (transitively) all.
        let narrowing = closed(json!({"a": {"type": "string", "maxLength": 3}, "b": {"type": "integer"}}));
        let (mode, report) = again.check_subject("s-value", &narrowing, None, None).unwrap();
        assert_eq!((mode, report.compatible), (Mode::Backward, false));
        let dropping_b = closed(json!({"a": {"type": "string"}}));
        // Removing `b` breaks nothing against v1 (which had no `b`), but does against v2.
        assert!(again.check_subject("s-value", &dropping_b, Some(1), None).unwrap().1.compatible);
        assert!(!again.check_subject("s-value", &dropping_b, Some(2), None).unwrap().1.compatible);
        assert!(again.check_subject("s-value", &dropping_b, Some(2), Some(Mode::Forward)).unwrap().1.compatible);
        let (mode, _) = again.check_subject("s-value", &dropping_b, None, Some(Mode::Backward.transitive())).unwrap();
        assert_eq!(mode, Mode::BackwardTransitive);
        assert!(matches!(again.check_subject("nope", &v1, None, None), Err(RegistryError::UnknownSubject { .. })));
        assert!(matches!(
            again.check_subject("s-value", &v1, Some(9), None),
            Err(RegistryError::UnknownVersion { version: 9, .. })
        ));
    }
}
