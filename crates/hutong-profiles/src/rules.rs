//! Merge rules as data (`schemas/profiles/<entity>.toml`): per field, the authoritative
//! departments in order, or a set merge for list fields; everything else is "most recent".
//! Checked against the standard and the adapters like adapters are.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
};

use hutong_adapter::Adapters;
use hutong_standard::Standard;
use serde::Deserialize;

/// A rule file that cannot be used, naming the file and what is wrong.
#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    /// The folder or a file could not be read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not valid TOML of the rules' shape.
    #[error("{path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// What did not parse.
        message: String,
    },
    /// A file parses but does not fit the standard or the adapters.
    #[error("{path}: {message}")]
    Check {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
}

/// How a field's value is chosen among the facts that state it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Merge {
    /// One winner: the first authority that states it, else the most recent fact.
    #[default]
    Ranked,
    /// A list field: the union of every fact's elements, each with its source.
    Set,
}

/// The rule of one field.
#[derive(Debug, Clone, PartialEq, Eq, Default, Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
pub struct FieldRule {
    /// Departments whose fact wins, best first.
    #[serde(default)]
    pub authority: Vec<String>,
    /// Ranked (default) or set.
    #[serde(default)]
    pub merge: Merge,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "kebab-case", deny_unknown_fields)]
struct RulesFile {
    version: u32,
    entity: String,
    rules_version: String,
    #[serde(default)]
    fields: BTreeMap<String, FieldRule>,
}

/// The checked rules of one entity.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct EntityRules {
    /// The entity, e.g. `person`.
    pub entity: String,
    /// The rules' own version, carried on every profile.
    pub rules_version: String,
    /// The entity's key field.
    pub key_field: String,
    /// Rules per field; a field not here is "most recent".
    pub fields: BTreeMap<String, FieldRule>,
}

impl EntityRules {
    /// The rule of `field` ("most recent" when it has none).
    pub fn rule(&self, field: &str) -> FieldRule {
        self.fields.get(field).cloned().unwrap_or_default()
    }

    /// "Most recent" for every field: the rules of an entity without a file.
    pub fn most_recent(entity: &str, key_field: &str) -> Self {
        Self {
            entity: entity.to_owned(),
            rules_version: "0".to_owned(),
            key_field: key_field.to_owned(),
            fields: BTreeMap::new(),
        }
    }
}

/// The rules of every entity of the standard.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Rules {
    entities: BTreeMap<String, EntityRules>,
}

impl Rules {
    /// Loads every `*.toml` of `dir` and checks it: the entity is in the standard, every field a
    /// property of it (list fields for `merge = "set"`), every authority a department with an
    /// adapter that fills the field. Entities without a file merge "most recent".
    pub fn load(dir: &Path, standard: &Standard, adapters: &Adapters) -> Result<Self, RulesError> {
        let mut entities: BTreeMap<String, EntityRules> =
            standard.entities().map(|e| (e.name.clone(), EntityRules::most_recent(&e.name, &e.key))).collect();
        let io = |path: &Path| {
            let path = path.to_owned();
            move |source| RulesError::Io { path, source }
        };
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .map_err(io(dir))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "toml"))
            .collect();
        files.sort();
        for path in files {
            let text = std::fs::read_to_string(&path).map_err(io(&path))?;
            let rules = Self::check(&text, &path, standard, adapters)?;
            entities.insert(rules.entity.clone(), rules);
        }
        Ok(Self { entities })
    }

    fn check(text: &str, path: &Path, standard: &Standard, adapters: &Adapters) -> Result<EntityRules, RulesError> {
        let file: RulesFile =
            toml::from_str(text).map_err(|e| RulesError::Parse { path: path.to_owned(), message: e.to_string() })?;
        let check = |message: String| RulesError::Check { path: path.to_owned(), message };
        if file.version != 1 {
            return Err(check(format!("version = {} is not supported (only 1)", file.version)));
        }
        let entity = standard
            .entity(&file.entity)
            .ok_or_else(|| check(format!("entity {:?} is not in the standard", file.entity)))?;
        let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
        if stem != file.entity {
            return Err(check(format!("the rules of {:?} belong in {}.toml", file.entity, file.entity)));
        }
        for (field, rule) in &file.fields {
            let schema = entity.dereferenced["properties"]
                .get(field)
                .ok_or_else(|| check(format!("fields.{field}: {} has no property {field:?}", entity.name)))?;
            if field == &entity.key {
                return Err(check(format!("fields.{field}: the key is not merged, it is what facts share")));
            }
            if rule.merge == Merge::Set && schema["type"] != "array" {
                return Err(check(format!("fields.{field}: merge = \"set\" needs a list field, {field} is not one")));
            }
            for (i, dept) in rule.authority.iter().enumerate() {
                if rule.authority[..i].contains(dept) {
                    return Err(check(format!("fields.{field}: authority {dept:?} is listed twice")));
                }
                if !adapters
                    .iter()
                    .any(|a| &a.department == dept && a.fields_of(&entity.name).any(|f| f == field.as_str()))
                {
                    return Err(check(format!(
                        "fields.{field}: authority {dept:?} has no adapter that fills {}.{field}",
                        entity.name
                    )));
                }
            }
        }
        Ok(EntityRules {
            entity: file.entity,
            rules_version: file.rules_version,
            key_field: entity.key.clone(),
            fields: file.fields,
        })
    }

    /// The rules of `entity`.
    pub fn entity(&self, entity: &str) -> Option<&EntityRules> {
        self.entities.get(entity)
    }

    /// Every entity's rules, by name.
    pub fn iter(&self) -> impl Iterator<Item = &EntityRules> {
        self.entities.values()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn shipped() -> (Standard, Adapters) {
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
        let standard = Standard::load(&root).expect("standard");
        let adapters = Adapters::load(&root.join("departments"), &standard).expect("adapters");
        (standard, adapters)
    }

    #[test]
    fn the_shipped_rules_pass_their_checks() {
        let (standard, adapters) = shipped();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/profiles");
        let rules = Rules::load(&dir, &standard, &adapters).expect("shipped rules");
        let person = rules.entity("person").expect("person");
        assert_eq!(person.rule("name").authority, ["gongan"]);
        assert_eq!(person.rule("special_population").merge, Merge::Set);
        assert_eq!(person.rule("phone"), FieldRule::default(), "no rule: most recent");
        // Every entity of the standard has rules, with or without a file.
        assert_eq!(rules.iter().count(), standard.entities().count());
    }

    #[test]
    fn wrong_rules_are_refused_naming_the_field() {
        let (standard, adapters) = shipped();
        let path = Path::new("person.toml");
        let refused = |body: &str| {
            let text = format!("version = 1\nentity = \"person\"\nrules-version = \"1\"\n{body}");
            Rules::check(&text, path, &standard, &adapters).expect_err(body).to_string()
        };
        assert!(refused("[fields.nickname]\nauthority = [\"gongan\"]").contains("no property \"nickname\""));
        // 人社 sends persons, but no household link.
        assert!(refused("[fields.household_key]\nauthority = [\"renshe\"]").contains("no adapter that fills"));
        assert!(refused("[fields.name]\nmerge = \"set\"").contains("needs a list field"));
        assert!(refused("[fields.name]\nauthority = [\"gongan\", \"gongan\"]").contains("listed twice"));
        assert!(refused("[fields.person_key]\nauthority = [\"gongan\"]").contains("the key is not merged"));
        assert!(refused("[fields.name]\nwinner = \"gongan\"").contains("unknown field"));
        let other = Rules::check("version = 1\nentity = \"grid\"\nrules-version = \"1\"\n", path, &standard, &adapters);
        assert!(other.expect_err("grid in person.toml").to_string().contains("belong in grid.toml"));
    }

    #[test]
    fn merged_profiles_follow_the_registered_profile_schema() {
        use crate::merge::{Fact, Source, merge};
        use serde_json::json;
        let (standard, adapters) = shipped();
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/profiles");
        let rules = Rules::load(&dir, &standard, &adapters).expect("shipped rules");
        let entity = standard.entity("person").expect("person");
        // The unrestricted schema: the citizen ID in clear, so the derived checks run too.
        let schema = hutong_registry::profile::profile_schema("person", &entity.key, &entity.dereferenced);
        let check = standard.view_validator(&schema).expect("the profile schema compiles");
        let key = "5e".repeat(32);
        let fact = |department: &str, time: &str, data: serde_json::Value| Fact {
            entity: "person".into(),
            entity_key: key.clone(),
            source: Source {
                department: department.into(),
                kind: "k".into(),
                source_id: format!("{department}-1"),
                revision: 1,
                time: time.into(),
                ce_id: format!("{department}-1"),
            },
            data: Some(data),
        };
        let tag = json!({"tag": "0101", "source_department": "minzheng", "recognized_on": "2020-01-01"});
        let facts = [
            fact(
                "gongan",
                "2024-01-01T00:00:00.000Z",
                json!({"person_key": key, "name": "胡金凤", "citizen_id": "330106194803080242", "sex": "1"}),
            ),
            fact(
                "minzheng",
                "2024-02-01T00:00:00.000Z",
                json!({"person_key": key, "name": "胡金风", "special_population": [tag]}),
            ),
        ];
        let doc = merge(rules.entity("person").unwrap(), &key, &facts).expect("a profile").doc;
        assert_eq!(
            (doc["conflicts"].as_array().map(Vec::len), doc["checks"].as_array().map(Vec::len)),
            (Some(1), Some(1))
        );
        assert_eq!(check.validate(&doc), []);
        // What a reader relies on is checked: a field the record does not have, a conflict
        // without its loser, a source without its event id.
        let spoiled = |pointer: &str, f: &dyn Fn(&mut serde_json::Value)| {
            let mut d = doc.clone();
            f(&mut d);
            let v = check.validate(&d);
            assert!(v.iter().any(|v| v.pointer.starts_with(pointer)), "{pointer}: {v:?}");
        };
        spoiled("/fields", &|d| d["fields"]["nickname"] = doc["fields"]["name"].clone());
        spoiled("/conflicts/0", &|d| _ = d["conflicts"][0].as_object_mut().unwrap().remove("loser"));
        spoiled("/sources/0", &|d| _ = d["sources"][0].as_object_mut().unwrap().remove("ce_id"));
        spoiled("/record/sex", &|d| d["record"]["sex"] = json!("7"));
    }
}
