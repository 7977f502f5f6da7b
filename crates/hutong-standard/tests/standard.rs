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
    for e in s.entities() {
        assert!(e.schema["properties"].get(&e.key).is_some(), "{}: key {} is not a property", e.name, e.key);
        for example in e.schema["examples"].as_array().into_iter().flatten() {
            assert_eq!(e.validate(example), vec![], "{}: its own example is invalid", e.name);
        }
    }
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
        "sex": "1",
        "birth_date": "1949-12-31",
        "ethnicity": "01",
        "citizen_id": "11010519491231002X",
        "household_registration": {"division_code": "110105", "address_text": "朝阳路1号"},
        "residence": {"division_code": "110105001"}
    })
}

#[test]
fn a_valid_person_passes() {
    assert_eq!(standard().validate("person", &valid_person()), vec![]);
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
