//! Conformance with Confluent Schema Registry's JSON Schema diff examples.
//!
//! Vectors: `$HUTONG_COMPAT_VECTORS` if set, else `shared/conformance/json-schema-compat` three
//! levels above this crate (its home in the Hutong workspace).

use std::path::PathBuf;

use hutong_compat::{Mode, check, diff};
use serde_json::Value;

const FILES: [&str; 2] = ["draft7-diff-examples.json", "draft2020-12-diff-examples.json"];

fn vectors_dir() -> PathBuf {
    match std::env::var_os("HUTONG_COMPAT_VECTORS") {
        Some(dir) => PathBuf::from(dir),
        None => PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/../../../shared/conformance/json-schema-compat")),
    }
}

fn load_cases(file: &str) -> Vec<Value> {
    let path = vectors_dir().join(file);
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let cases: Value = serde_json::from_str(&text).unwrap_or_else(|e| panic!("{} is not JSON: {e}", path.display()));
    cases.as_array().unwrap_or_else(|| panic!("{file}: expected an array")).clone()
}

#[test]
fn confluent_diff_examples() {
    let mut total = 0;
    let mut failures = Vec::new();
    let mut exact = 0;
    let mut inexact = Vec::new();
    for file in FILES {
        for (i, case) in load_cases(file).iter().enumerate() {
            total += 1;
            let description = case["description"].as_str().unwrap_or("?");
            let label = format!("{file}[{i}] {description:?}");
            let original = &case["original_schema"];
            let update = &case["update_schema"];
            let expected = case["compatible"].as_bool().expect("`compatible` flag");

            let report = check(std::slice::from_ref(original), update, Mode::Backward);
            if report.compatible != expected {
                let got: Vec<String> = report.all.iter().map(ToString::to_string).collect();
                failures.push(format!(
                    "{label}: expected compatible={expected}, got {} with changes {got:?}",
                    report.compatible
                ));
            }

            let want: Vec<&str> =
                case["changes"].as_array().map(|a| a.iter().filter_map(Value::as_str).collect()).unwrap_or_default();
            let got: Vec<String> = diff(original, update).iter().map(ToString::to_string).collect();
            if got == want {
                exact += 1;
            } else {
                inexact.push(format!("{label}:\n    want {want:?}\n    got  {got:?}"));
            }
        }
    }
    println!("compatible agreement: {}/{total}", total - failures.len());
    println!("exact change-list matches: {exact}/{total}");
    for line in &inexact {
        println!("  change list differs: {line}");
    }
    assert_eq!(total, 217, "expected 104 + 113 cases");
    assert_eq!(exact, total, "change lists that differ from Confluent's:\n{}", inexact.join("\n"));
    assert!(
        failures.is_empty(),
        "{} of {total} cases disagree on compatibility:\n{}",
        failures.len(),
        failures.join("\n")
    );
}
