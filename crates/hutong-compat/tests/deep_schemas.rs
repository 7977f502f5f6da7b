//! Deeply recursive schemas must neither overflow the stack nor take long. Test threads have
//! small (2 MiB) stacks, which these cases exceeded before the comparison got its own stack.

use hutong_compat::{ChangeKind, Mode, check, diff};
use serde_json::{Map, Value, json};

/// `n` mutually recursive definitions, each a `oneOf` over five others plus an array of the next.
fn web(leaf: &str, n: usize) -> Value {
    let mut defs = Map::new();
    for i in 0..n {
        let refs: Vec<Value> =
            (1..6).map(|k| json!({"$ref": format!("#/definitions/d{}", (i * 7 + k * 3) % n)})).collect();
        let next = format!("#/definitions/d{}", (i + 1) % n);
        defs.insert(
            format!("d{i}"),
            json!({"type": "object", "properties": {
                "v": {"type": leaf},
                "next": {"oneOf": refs},
                "list": {"type": "array", "items": {"anyOf": [{"$ref": next}, {"type": "null"}]}}
            }}),
        );
    }
    json!({"$ref": "#/definitions/d0", "definitions": defs})
}

/// A linked chain of `n` definitions, the last one with a `value` of type `leaf`.
fn chain(leaf: &str, n: usize) -> Value {
    let mut defs = Map::new();
    for i in 0..n {
        let next = format!("#/$defs/d{}", i + 1);
        defs.insert(format!("d{i}"), json!({"type": "object", "properties": {"next": {"$ref": next}}}));
    }
    defs.insert(format!("d{n}"), json!({"type": "object", "properties": {"value": {"type": leaf}}}));
    json!({"$schema": "https://json-schema.org/draft/2020-12/schema", "$ref": "#/$defs/d0", "$defs": defs})
}

#[test]
fn mutually_recursive_unions() {
    assert!(diff(&web("string", 40), &web("string", 40)).is_empty());

    let widened = diff(&web("integer", 40), &web("number", 40));
    assert!(!widened.is_empty());
    assert!(widened.iter().all(|c| c.kind == ChangeKind::TypeExtended));
    assert!(check(&[web("integer", 40)], &web("number", 40), Mode::Backward).compatible);

    let narrowed = check(&[web("number", 40)], &web("integer", 40), Mode::Backward);
    assert!(!narrowed.compatible);
    let got: Vec<String> = narrowed.incompatible.iter().map(ToString::to_string).collect();
    assert_eq!(
        got,
        [
            "COMBINED_TYPE_SUBSCHEMAS_CHANGED #/properties/next",
            "TYPE_NARROWED #/properties/v",
            "COMBINED_TYPE_SUBSCHEMAS_CHANGED #/properties/list/items",
        ]
    );
}

#[test]
fn long_reference_chains() {
    let n = 2000;
    assert!(diff(&chain("string", n), &chain("string", n)).is_empty());
    let changes = diff(&chain("number", n), &chain("string", n));
    assert_eq!(changes.len(), 1);
    assert_eq!(changes[0].kind, ChangeKind::TypeChanged);
    let expected = format!("#/{}properties/value", "properties/next/".repeat(n));
    assert_eq!(changes[0].pointer, expected);
}
