//! Merging the current facts of one entity into its profile: per field the winner by the
//! rules, with the fact it came from; list fields as sets with each element's sources; the
//! losers of ranked fields as conflicts; derived checks on the merged record; the relations
//! the profile asserts (人房关联).

use std::cmp::Ordering;

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};

use crate::rules::{EntityRules, Merge};

/// One department's current fact about one entity, as the store holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Fact {
    /// The entity, e.g. `person`.
    pub entity: String,
    /// The entity key (the first element of the fact key).
    pub entity_key: String,
    /// Where it came from.
    #[serde(flatten)]
    pub source: Source,
    /// The record, or `None` for a tombstone (the department deleted its record).
    pub data: Option<Value>,
}

/// Where a fact came from: provenance of every profile field.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Source {
    /// Department.
    pub department: String,
    /// Source kind.
    pub kind: String,
    /// Source id (pseudonymised where personal, as on the bus).
    pub source_id: String,
    /// The record's revision.
    pub revision: i64,
    /// When the fact happened in the source system (`ce_time`, RFC 3339).
    pub time: String,
    /// The event id (`ce_id`).
    pub ce_id: String,
}

impl Source {
    /// Most recent first: later event time, then higher revision; the event id breaks ties so
    /// the order never depends on arrival.
    fn recency(&self, other: &Self) -> Ordering {
        other.time.cmp(&self.time).then(other.revision.cmp(&self.revision)).then(self.ce_id.cmp(&other.ce_id))
    }
}

/// A relation a profile asserts: `subject` (a person, household, building or organisation)
/// linked to `object`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Relation {
    /// Subject entity.
    pub subject_entity: &'static str,
    /// Subject key.
    pub subject_key: String,
    /// Object entity.
    pub object_entity: &'static str,
    /// Object key.
    pub object_key: String,
    /// What the sources say of the link (relation code, room, role …).
    pub detail: Value,
}

/// A merged profile.
#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    /// The document: `entity`, `key`, `rules_version`, `record` (the merged record), `fields`
    /// (provenance), `conflicts`, `checks`, `sources`.
    pub doc: Value,
    /// The conflicts (also in the document), one per (field, losing fact).
    pub conflicts: Vec<Conflict>,
    /// What the profile links to.
    pub relations: Vec<Relation>,
}

/// One fact that lost a ranked field to another with a different value, or a merged value
/// that fails a derived check.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Conflict {
    /// The field.
    pub field: String,
    /// `disagreement` or the check that failed (`citizen-id-sex`, `citizen-id-birth-date`).
    pub what: String,
    /// The department whose value lost (or failed the check).
    pub department: String,
    /// The document of the conflict: winner and loser with their values and sources.
    pub doc: Value,
}

/// Merges `facts` (the current facts of one entity; tombstones are ignored) under `rules`.
/// `None` when no fact has a record: the profile is deleted.
pub fn merge<F: std::borrow::Borrow<Fact>>(rules: &EntityRules, key: &str, facts: &[F]) -> Option<Profile> {
    let mut facts: Vec<&Fact> =
        facts.iter().map(F::borrow).filter(|f| f.data.as_ref().is_some_and(Value::is_object)).collect();
    if facts.is_empty() {
        return None;
    }
    facts.sort_by(|a, b| a.source.recency(&b.source));
    let mut names: Vec<&str> = facts
        .iter()
        .flat_map(|f| f.data.as_ref().and_then(Value::as_object).into_iter().flat_map(|m| m.keys()))
        .map(String::as_str)
        .filter(|n| *n != rules.key_field)
        .collect();
    names.sort_unstable();
    names.dedup();
    let mut record = Map::new();
    record.insert(rules.key_field.clone(), Value::String(key.to_owned()));
    let mut fields = Map::new();
    let mut conflicts = Vec::new();
    for name in names {
        let rule = rules.rule(name);
        let stated: Vec<(&Fact, &Value)> =
            facts.iter().filter_map(|f| f.data.as_ref()?.get(name).filter(|v| !v.is_null()).map(|v| (*f, v))).collect();
        if stated.is_empty() {
            continue;
        }
        match rule.merge {
            Merge::Set => {
                let mut elements: Vec<(Value, Vec<&Source>)> = Vec::new();
                for (f, v) in &stated {
                    for item in v.as_array().map_or(std::slice::from_ref(*v), Vec::as_slice) {
                        match elements.iter_mut().find(|(e, _)| e == item) {
                            Some((_, sources)) => sources.push(&f.source),
                            None => elements.push((item.clone(), vec![&f.source])),
                        }
                    }
                }
                elements.sort_by_key(|(v, _)| v.to_string());
                record.insert(name.to_owned(), Value::Array(elements.iter().map(|(v, _)| v.clone()).collect()));
                let elements: Vec<Value> = elements.iter().map(|(v, s)| json!({"value": v, "sources": s})).collect();
                fields.insert(name.to_owned(), json!({"merge": "set", "elements": elements}));
            }
            Merge::Ranked => {
                let rank = |f: &Fact| -> usize {
                    rule.authority.iter().position(|d| *d == f.source.department).unwrap_or(rule.authority.len())
                };
                let mut ranked = stated;
                ranked.sort_by(|(a, _), (b, _)| rank(a).cmp(&rank(b)).then(a.source.recency(&b.source)));
                let (winner, value) = ranked[0];
                record.insert(name.to_owned(), value.clone());
                let by = if rank(winner) < rule.authority.len() { "authority" } else { "most-recent" };
                fields.insert(name.to_owned(), json!({"source": winner.source, "by": by}));
                // Disagreement matters where the rules rank sources; "most recent" fields change
                // by nature (a new phone number is not a conflict).
                if rule.authority.is_empty() {
                    continue;
                }
                for (loser, v) in ranked[1..].iter().filter(|(_, v)| *v != value) {
                    conflicts.push(Conflict {
                        field: name.to_owned(),
                        what: "disagreement".to_owned(),
                        department: loser.source.department.clone(),
                        doc: json!({
                            "field": name,
                            "what": "disagreement",
                            "winner": {"value": value, "source": winner.source},
                            "loser": {"value": v, "source": loser.source},
                        }),
                    });
                }
            }
        }
    }
    if rules.entity == "person" {
        conflicts.extend(citizen_id_checks(&record, &fields));
    }
    let relations = relations_of(&rules.entity, key, &record);
    let mut sources: Vec<&Source> = facts.iter().map(|f| &f.source).collect();
    sources.sort_by(|a, b| (&a.department, &a.kind, &a.source_id).cmp(&(&b.department, &b.kind, &b.source_id)));
    let doc = json!({
        "entity": rules.entity,
        "key": key,
        "rules_version": rules.rules_version,
        "record": record,
        "fields": fields,
        "conflicts": conflicts.iter().filter(|c| c.what == "disagreement").map(|c| &c.doc).collect::<Vec<_>>(),
        "checks": conflicts.iter().filter(|c| c.what != "disagreement").map(|c| &c.doc).collect::<Vec<_>>(),
        "sources": sources,
    });
    Some(Profile { doc, conflicts, relations })
}

/// The citizen ID's sex digit and birth date against the merged `sex` and `birth_date`, where
/// the merged ID is in clear (a restricted topic); a pseudonymised ID cannot be checked.
fn citizen_id_checks(record: &Map<String, Value>, fields: &Map<String, Value>) -> Vec<Conflict> {
    let Some(id) = record.get("citizen_id").and_then(Value::as_str) else { return Vec::new() };
    let mut out = Vec::new();
    for (what, field, expected) in hutong_standard::checks::citizen_id_implies(id) {
        let Some(actual) = record.get(field).and_then(Value::as_str) else { continue };
        if !hutong_standard::checks::contradicts(field, actual, &expected) {
            continue;
        }
        let source = &fields[field]["source"];
        out.push(Conflict {
            field: field.to_owned(),
            what: what.to_owned(),
            department: source["department"].as_str().unwrap_or_default().to_owned(),
            doc: json!({
                "field": field,
                "what": what,
                "expected": expected,
                "value": actual,
                "source": source,
                "citizen_id_source": fields["citizen_id"]["source"],
            }),
        });
    }
    out
}

/// The links a merged record states: person → household and grid; household members,
/// head and grid; building residents and grid; organisation → legal representative.
fn relations_of(entity: &str, key: &str, record: &Map<String, Value>) -> Vec<Relation> {
    let text = |v: &Value, f: &str| v.get(f).and_then(Value::as_str).map(str::to_owned);
    let mut out = Vec::new();
    let mut link = |subject_entity, subject_key: String, object_entity, object_key: Option<String>, detail| {
        if let Some(object_key) = object_key {
            out.push(Relation { subject_entity, subject_key, object_entity, object_key, detail });
        }
    };
    // The merged record's own fields and lists, read in place (this runs on every merge).
    let own = |f: &str| record.get(f).and_then(Value::as_str).map(str::to_owned);
    let items = |f: &str| record.get(f).and_then(Value::as_array).map(Vec::as_slice).unwrap_or_default();
    match entity {
        "person" => {
            link("person", key.into(), "household", own("household_key"), json!({"via": "person"}));
            link("person", key.into(), "grid", own("grid_code"), json!({"via": "person"}));
        }
        "household" => {
            for m in items("members") {
                let detail =
                    json!({"via": "household", "relation": m.get("relation"), "joined_on": m.get("joined_on")});
                link("person", text(m, "person_key").unwrap_or_default(), "household", Some(key.into()), detail);
            }
            link("household", key.into(), "grid", own("grid_code"), json!({"via": "household"}));
        }
        "building" => {
            for r in items("residents") {
                let detail = json!({"via": "building", "relation": r.get("relation"), "room": r.get("room")});
                link("person", text(r, "person_key").unwrap_or_default(), "building", Some(key.into()), detail);
            }
            link("building", key.into(), "grid", own("grid_code"), json!({"via": "building"}));
        }
        "organization" => {
            let rep = own("legal_representative_person_key");
            link("organization", key.into(), "person", rep, json!({"relation": "legal-representative"}));
        }
        _ => {}
    }
    out.retain(|r| !r.subject_key.is_empty());
    out.sort_by(|a, b| {
        (a.subject_key.as_str(), a.object_key.as_str()).cmp(&(b.subject_key.as_str(), b.object_key.as_str()))
    });
    out.dedup_by(|a, b| {
        a.subject_key == b.subject_key && a.object_entity == b.object_entity && a.object_key == b.object_key
    });
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::FieldRule;

    fn fact(dept: &str, rev: i64, time: &str, data: Value) -> Fact {
        Fact {
            entity: "person".into(),
            entity_key: "P".into(),
            source: Source {
                department: dept.into(),
                kind: format!("{dept}_kind"),
                source_id: format!("{dept}-1"),
                revision: rev,
                time: time.into(),
                ce_id: format!("{dept}-{rev}"),
            },
            data: Some(data),
        }
    }

    fn rules() -> EntityRules {
        let mut r = EntityRules::most_recent("person", "person_key");
        r.rules_version = "1.0.0".into();
        r.fields.insert("name".into(), FieldRule { authority: vec!["gongan".into()], merge: Merge::Ranked });
        r.fields.insert("sex".into(), FieldRule { authority: vec!["gongan".into()], merge: Merge::Ranked });
        r.fields.insert("special_population".into(), FieldRule { authority: vec![], merge: Merge::Set });
        r
    }

    #[test]
    fn authority_wins_over_recency_and_the_loser_is_a_conflict() {
        let facts = [
            fact("gongan", 1, "2024-01-01T00:00:00Z", json!({"name": "胡金凤", "sex": "2", "phone": "13800000001"})),
            fact("weijian", 4, "2025-06-01T00:00:00Z", json!({"name": "胡金风", "phone": "13800000002"})),
        ];
        let p = merge(&rules(), "P", &facts).expect("profile");
        assert_eq!(p.doc["record"]["name"], "胡金凤");
        assert_eq!(p.doc["fields"]["name"]["source"]["department"], "gongan");
        assert_eq!(p.doc["fields"]["name"]["by"], "authority");
        // No rule: the most recent fact's value, not a conflict.
        assert_eq!(p.doc["record"]["phone"], "13800000002");
        assert_eq!(p.doc["fields"]["phone"]["by"], "most-recent");
        assert_eq!(p.conflicts.len(), 1);
        assert_eq!((p.conflicts[0].field.as_str(), p.conflicts[0].department.as_str()), ("name", "weijian"));
        assert_eq!(p.doc["conflicts"][0]["loser"]["value"], "胡金风");
        assert_eq!(p.doc["record"]["person_key"], "P");
    }

    #[test]
    fn sets_merge_with_every_source_and_order_never_matters() {
        let tag = |t: &str| json!({"tag": t, "source_department": "minzheng"});
        let facts = vec![
            fact("minzheng", 2, "2024-02-01T00:00:00Z", json!({"special_population": [tag("0101"), tag("0401")]})),
            fact("weijian", 1, "2024-03-01T00:00:00Z", json!({"special_population": [tag("0101")]})),
        ];
        let p = merge(&rules(), "P", &facts).unwrap();
        assert_eq!(p.doc["record"]["special_population"], json!([tag("0101"), tag("0401")]));
        let both = &p.doc["fields"]["special_population"]["elements"][0]["sources"];
        assert_eq!(both.as_array().map(Vec::len), Some(2), "0101 from both departments: {both}");
        let mut reversed = facts.clone();
        reversed.reverse();
        assert_eq!(merge(&rules(), "P", &reversed).unwrap().doc, p.doc);
    }

    #[test]
    fn tombstones_alone_delete_the_profile() {
        let mut gone = fact("gongan", 2, "2024-01-01T00:00:00Z", json!({}));
        gone.data = None;
        assert!(merge(&rules(), "P", &[gone]).is_none());
    }

    #[test]
    fn the_citizen_id_is_checked_against_sex_and_birth_date_when_in_clear() {
        // 330106194803080242: born 1948-03-08, 17th digit 4 (even): female.
        let facts = [fact(
            "gongan",
            1,
            "2024-01-01T00:00:00Z",
            json!({"citizen_id": "330106194803080242", "sex": "1", "birth_date": "1948-03-08"}),
        )];
        let p = merge(&rules(), "P", &facts).unwrap();
        let checks: Vec<&str> = p.conflicts.iter().map(|c| c.what.as_str()).collect();
        assert_eq!(checks, ["citizen-id-sex"]);
        assert_eq!(p.doc["checks"][0]["expected"], "2");
        // A pseudonymised ID cannot be checked: no finding either way.
        let facts = [fact("gongan", 1, "2024-01-01T00:00:00Z", json!({"citizen_id": "k1:abcdef", "sex": "1"}))];
        assert!(merge(&rules(), "P", &facts).unwrap().conflicts.is_empty());
    }

    #[test]
    fn relations_follow_the_merged_record() {
        let mut r = EntityRules::most_recent("building", "building_key");
        r.fields.insert("residents".into(), FieldRule { authority: vec![], merge: Merge::Set });
        let flat = |room: &str, who: &str| {
            let mut f = fact(
                "zhujian",
                1,
                "2024-01-01T00:00:00Z",
                json!({"grid_code": "G1", "residents": [{"person_key": who, "room": room, "relation": "1"}]}),
            );
            f.source.source_id = format!("FW-{room}");
            f
        };
        let p = merge(&r, "B", &[flat("302", "P1"), flat("501", "P2")]).unwrap();
        let links: Vec<(&str, &str, &str)> =
            p.relations.iter().map(|r| (r.subject_key.as_str(), r.object_entity, r.object_key.as_str())).collect();
        assert_eq!(links, [("B", "grid", "G1"), ("P1", "building", "B"), ("P2", "building", "B")]);
        assert_eq!(p.relations[1].detail["room"], "302");
    }
}
