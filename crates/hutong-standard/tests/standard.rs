//! The standard as shipped under `schemas/`: every schema compiles, code lists
//! are well formed, and the person fixtures meet or fail it as expected.

use std::path::Path;

use hutong_standard::Standard;
use serde_json::json;

fn standard() -> Standard {
    Standard::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas")).expect("the standard loads")
}

#[test]
fn every_entity_compiles_and_declares_its_key() {
    let s = standard();
    let person = s.entity("person").expect("person entity");
    assert_eq!(person.major, 1);
    assert_eq!(person.key, "person_key");
    assert_eq!(person.schema_id, "https://schemas.hutong.dev/standard/v1/person.json");
    let (mut entities, mut examples) = (0, 0);
    for e in s.entities() {
        entities += 1;
        assert!(e.schema["properties"].get(&e.key).is_some(), "{}: key {} is not a property", e.name, e.key);
        for example in e.schema["examples"].as_array().into_iter().flatten() {
            examples += 1;
            assert_eq!(e.validate(example), vec![], "{}: its own example is invalid", e.name);
        }
    }
    assert!(entities >= 8, "the standard has {entities} entities");
    assert!(examples >= entities, "{examples} examples for {entities} entities");
}

#[test]
fn code_lists_are_well_formed() {
    let s = standard();
    let sex = s.codes().get("gb-t-2261.1").unwrap();
    assert_eq!(sex.codes().iter().map(|c| c.code.as_str()).collect::<Vec<_>>(), ["0", "1", "2", "9"]);
    let eth = s.codes().get("gb-t-3304").unwrap();
    assert_eq!(eth.codes().len(), 58, "56 ethnic groups plus 97 and 98");
    assert_eq!(eth.lookup("汉").map(|c| c.code.as_str()), Some("01"));
    assert_eq!(eth.lookup("基诺族").map(|c| c.code.as_str()), Some("56"));
    let div = s.codes().get("division").unwrap();
    assert!(div.codes().len() > 40_000, "provinces to townships");
    assert!(div.len() > 600_000, "villages and communities too");
    assert_eq!(div.name_of("110101001001"), Some("多福巷社区居委会"));
    assert!(!div.contains("110101001999") && !div.contains("1101010010010"));
    for (code, name) in div.compact_codes() {
        let code = format!("{code:012}");
        assert!(div.contains(&code[..9]), "village {code} {name} has no township {}", &code[..9]);
    }
    assert_eq!(div.get("110105").map(|c| c.name.as_str()), Some("朝阳区"));
    for c in div.codes() {
        if let Some(p) = &c.parent {
            assert!(div.contains(p), "{} has unknown parent {p}", c.code);
            assert!(c.code.starts_with(p.trim_end_matches("00")), "{} is not under {p}", c.code);
        } else {
            assert!(c.code.ends_with("0000") && c.code.len() == 6, "{} has no parent but is no province", c.code);
        }
    }
}

/// A well-formed ID whose province prefix 99 does not exist.
fn unknown_province_id() -> String {
    let body = "99010519491231002";
    format!("{body}{}", hutong_standard::checks::gb11643_check_char(body).unwrap())
}

fn valid_person() -> serde_json::Value {
    json!({
        "person_key": "a".repeat(64),
        "name": "张三",
        "sex": "2",
        "birth_date": "1949-12-31",
        "ethnicity": "01",
        "citizen_id": "11010519491231002X",
        "household_registration": {"division_code": "110105", "address_text": "朝阳路1号"},
        "residence": {"division_code": "110101001001"}
    })
}

#[test]
fn a_valid_person_passes() {
    let s = standard();
    let person = valid_person();
    assert_eq!(s.validate("person", &person), vec![]);
    // The checks are live: without any one of the schema's required fields, the same record fails
    // with `required` at the root, naming that field.
    let required: Vec<&str> = s.entity("person").unwrap().schema["required"]
        .as_array()
        .expect("person lists its required fields")
        .iter()
        .map(|f| f.as_str().unwrap())
        .collect();
    assert!(required.contains(&"person_key") && required.contains(&"name"), "{required:?}");
    for field in required {
        let mut p = person.clone();
        p.as_object_mut().unwrap().remove(field);
        let v = s.validate("person", &p);
        assert!(v.iter().any(|v| v.rule == "required" && v.message.contains(field)), "without {field}: {v:?}");
    }
}

#[test]
fn invalid_persons_fail_at_the_right_pointers() {
    let s = standard();
    let cases: &[(&str, serde_json::Value, &str, &str)] = &[
        ("/citizen_id", json!("110105194912310021"), "format:gb11643", "check character"),
        ("/citizen_id", json!("110105491231002"), "format:gb11643", "legacy"),
        ("/citizen_id", json!(unknown_province_id()), "format:gb11643", "province"),
        ("/sex", json!("3"), "x-code-list", "gb-t-2261.1"),
        ("/ethnicity", json!("57"), "x-code-list", "gb-t-3304"),
        ("/birth_date", json!("1949-02-30"), "format:date", ""),
        ("/household_registration/division_code", json!("110199"), "format:division-code", "division"),
        ("/person_key", json!("xyz"), "pattern", ""),
    ];
    for (pointer, bad, rule, words) in cases {
        let mut p = valid_person();
        *p.pointer_mut(pointer).unwrap() = bad.clone();
        let v = s.validate("person", &p);
        assert!(
            v.iter().any(|v| &v.pointer == pointer && &v.rule == rule && v.message.contains(words)),
            "{pointer} = {bad}: expected {rule} mentioning {words:?}, got {v:?}"
        );
    }
    let mut p = valid_person();
    p.as_object_mut().unwrap().remove("name");
    p["nickname"] = json!("x");
    let rules: Vec<String> = s.validate("person", &p).into_iter().map(|v| v.rule).collect();
    assert!(rules.contains(&"required".to_owned()) && rules.contains(&"additionalProperties".to_owned()), "{rules:?}");
    assert_eq!(s.validate("nobody", &p)[0].rule, "entity");
}

/// Every fixture under `schemas/fixtures/<entity>/`: valid ones pass, invalid
/// ones fail with exactly the expected (pointer, rule) pairs.
#[test]
fn entity_fixtures_meet_their_expectations() {
    let s = standard();
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas/fixtures");
    let mut checked = 0;
    let mut failures = Vec::new();
    for e in s.entities() {
        for kind in ["valid", "invalid"] {
            let dir = root.join(&e.name).join(kind);
            let mut files: Vec<_> = std::fs::read_dir(&dir)
                .unwrap_or_else(|err| panic!("{}: {err} (every entity needs fixtures)", dir.display()))
                .map(|f| f.unwrap().path())
                .collect();
            files.sort();
            assert!(files.len() >= 2, "{}: at least two {kind} fixtures", e.name);
            for f in files {
                let doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&f).unwrap()).unwrap();
                checked += 1;
                if kind == "valid" {
                    let v = e.validate(&doc);
                    if !v.is_empty() {
                        failures.push(format!("{}: expected valid, got {v:?}", f.display()));
                    }
                } else {
                    let mut got: Vec<(String, String)> =
                        e.validate(&doc["record"]).into_iter().map(|v| (v.pointer, v.rule)).collect();
                    let mut want: Vec<(String, String)> = doc["expect"]
                        .as_array()
                        .unwrap()
                        .iter()
                        .map(|x| (x["pointer"].as_str().unwrap().to_owned(), x["rule"].as_str().unwrap().to_owned()))
                        .collect();
                    got.sort();
                    got.dedup();
                    want.sort();
                    want.dedup();
                    if got != want {
                        failures.push(format!("{}:\n   expected {want:?}\n   got      {got:?}", f.display()));
                    }
                }
            }
        }
    }
    assert!(failures.is_empty(), "{} of {checked} fixtures disagree:\n{}", failures.len(), failures.join("\n"));
    assert!(checked >= 40, "only {checked} fixtures");
}

/// `docs/standard.md` is the rendering of the standard as it is now
/// (`HUTONG_BLESS=1` rewrites it).
#[test]
fn rendered_reference_is_in_sync() {
    let s = standard();
    let topics = hutong_bus::TopicNames::new("hutong");
    let rendered = hutong_standard::docs::render_markdown(&s, &|e| topics.entity(&e.name, e.major));
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/standard.md");
    if std::env::var_os("HUTONG_BLESS").is_some() {
        std::fs::write(&path, &rendered).unwrap();
    }
    let committed = std::fs::read_to_string(&path).unwrap_or_default();
    assert!(
        committed == rendered,
        "docs/standard.md is out of date: run `hutong standard docs --out docs/standard.md` (or HUTONG_BLESS=1 cargo test)"
    );
    for e in s.entities() {
        assert!(rendered.contains(&format!("## {}\n", e.name)), "{} missing from the reference", e.name);
    }
}

#[test]
fn a_typo_in_an_annotation_fails_the_load() {
    let copy = tempfile_copy();
    let dir = copy.path();
    let p = dir.join("standard/v1/person.json");
    let text = std::fs::read_to_string(&p).unwrap().replacen("\"x-pii\"", "\"x-pi\"", 1);
    std::fs::write(&p, text).unwrap();
    let e = Standard::load(dir).unwrap_err().to_string();
    assert!(e.contains("x-pi") && e.contains("person.json"), "{e}");

    let text = std::fs::read_to_string(&p).unwrap().replacen("\"x-pi\"", "\"x-pii\"", 1).replacen(
        "\"x-sensitivity\": \"general\"",
        "\"x-sensitivity\": \"secret\"",
        1,
    );
    std::fs::write(&p, text).unwrap();
    let e = Standard::load(dir).unwrap_err().to_string();
    assert!(e.contains("secret"), "{e}");
}

/// A copy of `schemas/` in a temporary folder of its own, so tests never share one.
fn tempfile_copy() -> tempfile::TempDir {
    let src = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../schemas");
    let dst = tempfile::tempdir().unwrap();
    copy_dir(&src, dst.path());
    dst
}

fn copy_dir(src: &Path, dst: &Path) {
    std::fs::create_dir_all(dst).unwrap();
    for entry in std::fs::read_dir(src).unwrap() {
        let p = entry.unwrap().path();
        let to = dst.join(p.file_name().unwrap());
        if p.is_dir() { copy_dir(&p, &to) } else { std::fs::copy(&p, &to).map(|_| ()).unwrap() }
    }
}

#[test]
fn a_hostile_pattern_in_a_schema_runs_in_linear_time() {
    let copy = tempfile_copy();
    let dir = copy.path();
    let p = dir.join("standard/v1/person.json");
    let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
    doc["properties"]["name"]["pattern"] = json!("^(a+)+$");
    doc["properties"]["name"]["maxLength"] = json!(100_000);
    std::fs::write(&p, doc.to_string()).unwrap();
    let s = Standard::load(dir).unwrap();
    let mut person = valid_person();
    // Catastrophic for a backtracking engine; the linear-time engine answers at once. The check
    // runs on its own thread with a generous bound, so a regression fails instead of hanging.
    person["name"] = json!(format!("{}b", "a".repeat(50_000)));
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(s.validate("person", &person));
    });
    let v = rx.recv_timeout(std::time::Duration::from_secs(30)).expect("the pattern check hangs: not linear time");
    assert!(v.iter().any(|v| v.pointer == "/name" && v.rule == "pattern"), "{v:?}");
}

/// 性别 and 出生日期 against the citizen ID (issue 18 item 8): the shipped standard rejects a
/// sex the 17th digit contradicts and flags a contradicting birth date (a department's birthday
/// slip still says who the person is); sex 0 and 9, an invalid ID and a missing field compare
/// nothing; neither value is echoed.
#[test]
fn the_citizen_id_is_checked_against_sex_and_birth_date() {
    let s = standard();
    let person = s.entity("person").unwrap();
    let rules =
        |v: &[hutong_standard::Violation]| v.iter().map(|v| (v.pointer.clone(), v.rule.clone())).collect::<Vec<_>>();
    // 11010519491231002X: 17th digit 2, even: female; born 1949-12-31.
    let mut p = valid_person();
    assert_eq!(p["sex"], "2");
    assert_eq!(person.validate(&p), vec![]);
    assert_eq!(person.flags(&p), vec![]);
    p["sex"] = json!("1");
    let v = person.validate(&p);
    assert_eq!(rules(&v), [("/sex".to_owned(), "consistency:citizen-id-sex".to_owned())]);
    assert!(!v[0].message.contains("11010519491231002X"));
    for unstated in ["0", "9"] {
        p["sex"] = json!(unstated);
        assert_eq!(person.validate(&p), vec![], "sex {unstated}");
    }
    p["sex"] = json!("2");
    p["birth_date"] = json!("1949-12-30");
    assert_eq!(person.validate(&p), vec![], "a birth date is flagged, not rejected");
    let f = person.flags(&p);
    assert_eq!(rules(&f), [("/birth_date".to_owned(), "consistency:citizen-id-birth-date".to_owned())]);
    assert!(!f[0].message.contains("1949"));
    p.as_object_mut().unwrap().remove("birth_date");
    assert_eq!(person.flags(&p), vec![]);
    // An ID that fails its own check is reported by its format, not compared.
    p["citizen_id"] = json!("110105194912310021");
    p["birth_date"] = json!("2000-01-01");
    assert!(
        person.flags(&p).is_empty() && !rules(&person.validate(&p)).iter().any(|(_, r)| r.starts_with("consistency"))
    );
}

#[test]
fn a_consistency_declaration_that_cannot_run_fails_the_load() {
    for (declared, expected) in [
        (json!({"citizen-id-sex": "warn"}), "warn"),
        (json!({"citizen-id-sex": "reject"}), "sex"),
        (json!({"citizen-id-shoe-size": "flag"}), "citizen-id-shoe-size"),
    ] {
        let copy = tempfile_copy();
        let p = copy.path().join("standard/v1/organization.json");
        let p = if expected == "sex" { p } else { copy.path().join("standard/v1/person.json") };
        let mut doc: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&p).unwrap()).unwrap();
        doc["x-consistency"] = declared.clone();
        std::fs::write(&p, doc.to_string()).unwrap();
        let e = Standard::load(copy.path()).unwrap_err().to_string();
        assert!(e.contains(expected), "{declared}: {e}");
    }
}
